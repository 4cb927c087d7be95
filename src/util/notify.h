/*
 * Readiness and status for a service manager: the sd_notify(3) datagram
 * protocol, spoken directly so that sptd needs no libsystemd. Under
 * systemd (Type=notify) the manager sets NOTIFY_SOCKET; anywhere else the
 * calls do nothing.
 */
#ifndef UTIL_NOTIFY_H
#define UTIL_NOTIFY_H

/* Longest state message sent (the manager reads datagrams of any size; a
 * bound keeps the formatting on the stack). */
#define NOTIFY_STATE_MAX 1024

/*
 * Sends state, newline-separated VAR=VALUE lines such as "READY=1\n
 * STATUS=serving", as one datagram to $NOTIFY_SOCKET: a path ("/run/...")
 * or an abstract address ("@name"). Returns 1 when sent, 0 when
 * NOTIFY_SOCKET is unset or empty (no manager is listening), or -errno.
 */
int notify_send(const char *state);

/* notify_send of a printf-style message (at most NOTIFY_STATE_MAX bytes,
 * else -EMSGSIZE). */
int notify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
