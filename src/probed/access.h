/*
 * access — who may use the control socket beyond its file permissions: an
 * allow-list of UIDs and GIDs (socket_allow_users, socket_allow_groups),
 * judged from the kernel's credentials of the connecting process
 * (SO_PEERCRED, SO_PEERGROUPS), never from anything the client says.
 *
 * An empty list (both empty) allows everyone who could connect: the file's
 * mode, owner and group are then the only gate, as before the lists
 * existed.  root and probed's own UID are always allowed (access.c says
 * why).
 */
#ifndef PROBED_ACCESS_H
#define PROBED_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct access_list {
	uid_t *uids;            /* sorted, no duplicates */
	size_t n_uids;
	gid_t *gids;            /* sorted, no duplicates */
	size_t n_gids;
};

/* Who is at the other end of a connection, as the kernel saw it at
 * connect(2). */
struct access_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;              /* primary (effective) GID */
	bool groups_known;      /* SO_PEERGROUPS answered */
};

enum access_verdict {
	ACCESS_ALLOWED,
	ACCESS_DENIED,
	ACCESS_ERROR,           /* the credentials could not be read: deny */
};

/* Replace the lists with copies of uids/gids (each sorted, unique).
 * Returns -1 (and keeps the old lists) when out of memory. */
int access_list_set(struct access_list *al, const uid_t *uids, size_t n_uids,
    const gid_t *gids, size_t n_gids) __attribute__((warn_unused_result));
void access_list_free(struct access_list *al);
static inline bool
access_list_empty(const struct access_list *al)
{
	return al->n_uids == 0 && al->n_gids == 0;
}

/*
 * Judge the peer of a connected AF_UNIX stream socket.  Fills *peer
 * (as far as it could be read) and returns the verdict; on ACCESS_ERROR
 * err holds the reason.  Does no NSS lookup: safe in the event loop.
 */
enum access_verdict access_check(const struct access_list *al, int fd,
    struct access_peer *peer, char *err, size_t errlen);

#endif
