/*
 * access — the control socket's allow-list.  See access.h.
 *
 * The peer's UID, primary GID and PID come from SO_PEERCRED; its
 * supplementary groups from SO_PEERGROUPS (Linux 4.13), which the kernel
 * answers from the credentials the peer had at connect(2), so no NSS
 * lookup (getgrouplist, LDAP, ...) ever runs in the event loop.  A kernel
 * without SO_PEERGROUPS (ENOPROTOOPT) leaves only the primary GID to match
 * socket_allow_groups; that is logged once, and the docs say so.  The
 * group buffer grows on ERANGE up to the kernel's NGROUPS_MAX (65536).
 *
 * Always allowed, whatever the lists say:
 *   - root (UID 0): root can read and change probed's configuration, its
 *     memory and its socket file anyway; refusing it would stop the admin's
 *     tools and protect nothing.
 *   - probed's own UID: that account already owns probed's state and
 *     process (it could ptrace it); it is also who systemd's ExecReload and
 *     health checks run as.
 *
 * SECURITY: the credentials are the kernel's, taken at connect(2): a client
 * cannot claim another identity, and one that changes its IDs after
 * connecting keeps the ones it connected with.  In a user namespace
 * (systemd's PrivateUsers=yes) the kernel shows every unmapped UID and GID
 * as the overflow ID (65534, "nobody"): such peers never match a list entry
 * other than nobody itself.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "access.h"
#include "log.h"

#define PEER_GROUPS_STACK 64      /* most accounts have fewer groups */
#define PEER_GROUPS_MAX 65536     /* the kernel's NGROUPS_MAX */

static int
cmp_id(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

static bool
has_id(const unsigned *v, size_t n, unsigned id)
{
	return n > 0 && bsearch(&id, v, n, sizeof(*v), cmp_id) != NULL;
}

int
access_list_set(struct access_list *al, const uid_t *uids, size_t n_uids,
    const gid_t *gids, size_t n_gids)
{
	uid_t *u = NULL;
	gid_t *g = NULL;

	_Static_assert(sizeof(uid_t) == sizeof(unsigned) && sizeof(gid_t) ==
	    sizeof(unsigned), "uid_t and gid_t are unsigned int");
	if (n_uids > 0 && (u = malloc(n_uids * sizeof(*u))) == NULL)
		return -1;
	if (n_gids > 0 && (g = malloc(n_gids * sizeof(*g))) == NULL) {
		free(u);
		return -1;
	}
	if (n_uids > 0)
		memcpy(u, uids, n_uids * sizeof(*u));
	if (n_gids > 0)
		memcpy(g, gids, n_gids * sizeof(*g));
	/* config_load() sorts them already; sorting again costs nothing and
	 * makes bsearch() right whoever the caller is. */
	if (n_uids > 1)
		qsort(u, n_uids, sizeof(*u), cmp_id);
	if (n_gids > 1)
		qsort(g, n_gids, sizeof(*g), cmp_id);
	access_list_free(al);
	al->uids = u;
	al->n_uids = n_uids;
	al->gids = g;
	al->n_gids = n_gids;
	return 0;
}

void
access_list_free(struct access_list *al)
{
	free(al->uids);
	free(al->gids);
	al->uids = NULL;
	al->gids = NULL;
	al->n_uids = al->n_gids = 0;
}

/*
 * Does any supplementary group of the peer hold a listed GID?  1 yes,
 * 0 no, -1 SO_PEERGROUPS is not available (errno set).
 */
static int
peer_groups_match(const struct access_list *al, int fd)
{
#ifdef SO_PEERGROUPS
	gid_t stack[PEER_GROUPS_STACK], *v = stack;
	socklen_t len = sizeof(stack);
	int r;

	while (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, v, &len) != 0) {
		int e = errno;

		if (v != stack)
			free(v);
		/* ERANGE: len now says how much the list needs. */
		if (e != ERANGE || len == 0 || len > PEER_GROUPS_MAX * sizeof(gid_t)) {
			errno = e;
			return -1;
		}
		if ((v = malloc(len)) == NULL) {
			errno = ENOMEM;
			return -1;
		}
	}
	r = 0;
	for (size_t i = 0; i < len / sizeof(gid_t) && r == 0; i++)
		if (has_id(al->gids, al->n_gids, v[i]))
			r = 1;
	if (v != stack)
		free(v);
	return r;
#else
	(void)al;
	(void)fd;
	errno = ENOPROTOOPT;
	return -1;
#endif
}

enum access_verdict
access_check(const struct access_list *al, int fd, struct access_peer *peer,
    char *err, size_t errlen)
{
	static bool told_no_groups;
	struct ucred uc;
	socklen_t len = sizeof(uc);

	memset(peer, 0, sizeof(*peer));
	peer->pid = -1;
	peer->uid = (uid_t)-1;
	peer->gid = (gid_t)-1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0 ||
	    len != sizeof(uc)) {
		/* No lists: the file's permissions decided; the
		 * credentials were only wanted for the log. */
		if (access_list_empty(al))
			return ACCESS_ALLOWED;
		snprintf(err, errlen, "SO_PEERCRED: %s", len != sizeof(uc) ?
		    "short answer" : strerror(errno));
		return ACCESS_ERROR;
	}
	peer->pid = uc.pid;
	peer->uid = uc.uid;
	peer->gid = uc.gid;
	if (access_list_empty(al))
		return ACCESS_ALLOWED;
	if (uc.uid == 0 || uc.uid == geteuid())
		return ACCESS_ALLOWED;
	if (has_id(al->uids, al->n_uids, uc.uid) || has_id(al->gids, al->n_gids, uc.gid))
		return ACCESS_ALLOWED;
	if (al->n_gids == 0)
		return ACCESS_DENIED;

	int m = peer_groups_match(al, fd);
	if (m >= 0) {
		peer->groups_known = true;
		return m > 0 ? ACCESS_ALLOWED : ACCESS_DENIED;
	}
	if (errno != ENOPROTOOPT) {
		snprintf(err, errlen, "SO_PEERGROUPS: %s", strerror(errno));
		return ACCESS_ERROR;
	}
	if (!told_no_groups) {
		told_no_groups = true;
		log_warning("control socket_allow_groups: this kernel cannot tell a "
		    "peer's supplementary groups (no SO_PEERGROUPS, Linux < 4.13): "
		    "only primary groups are matched");
	}
	return ACCESS_DENIED;
}
