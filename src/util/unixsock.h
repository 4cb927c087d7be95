/*
 * Unix stream sockets for sptd's local peers (sptctl, external providers):
 * listening on a path that only the owner may use, and checking who
 * connected.
 */
#ifndef UTIL_UNIXSOCK_H
#define UTIL_UNIXSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Listens on path (non-blocking, close-on-exec, mode 0600 from the start).
 * A stale socket left by a dead daemon is replaced; a live one, or anything
 * that is not a socket, is refused. Returns the fd, or -1 with err.
 */
int unixsock_listen(const char *path, int backlog, char *err, size_t errlen);

/* The peer's credentials (SO_PEERCRED); true when it is root or our own
 * user, the only ones who may drive the daemon. */
bool unixsock_peer_trusted(int fd, pid_t *pid, uid_t *uid);

#endif
