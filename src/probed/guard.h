/*
 * guard — the destination guard: probed never connects to loopback,
 * private, link-local, multicast or otherwise special-purpose addresses
 * unless the configuration lets a network through (smtp.allow_networks).
 * A hostile DNS zone must not be able to point probed at the mail server's
 * own LAN.  IPv4-mapped (::ffff:0:0/96) and NAT64 (64:ff9b::/96) forms are
 * judged by the IPv4 address they carry.
 */
#ifndef PROBED_GUARD_H
#define PROBED_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct guard;
struct strlist;

/* allow: CIDR strings ("127.0.0.0/8", "::1/128", bare address = host). */
struct guard *guard_new(const struct strlist *allow, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void guard_free(struct guard *g);

/* true: connecting to sa is allowed.  Otherwise *why names the range
 * ("loopback", "private", "link-local", ...). */
bool guard_allows(const struct guard *g, const struct sockaddr *sa, const char **why);

#endif
