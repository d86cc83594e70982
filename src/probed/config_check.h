/*
 * config_check — the value checks of probed.conf's string keys: paths,
 * accounts, host names, mailboxes, IP addresses and networks, resolvers,
 * policy actions and domain patterns.  Each takes the value as written,
 * may write a canonical form into canon (which starts empty; the stored
 * value is then canon), and on refusal writes the reason into why; config.c
 * puts "FILE:LINE: key 'NAME': 'VALUE' " in front of it.
 */
#ifndef PROBED_CONFIG_CHECK_H
#define PROBED_CONFIG_CHECK_H

#include <stdbool.h>
#include <stddef.h>

typedef bool check_fn(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap);

check_fn check_socket_path, check_abs_path, check_group, check_user, check_helo,
    check_mailbox, check_ip, check_ip_or_empty, check_cidr, check_dns_server,
    check_action, check_action_or_builtin, check_domain_pattern;

#endif
