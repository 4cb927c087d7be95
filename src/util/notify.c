#include "util/notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* $NOTIFY_SOCKET as a socket address. sd_notify(3): an absolute path, or an
 * abstract address written with a leading '@'. Later systemd versions
 * also hand out "vsock:" addresses, for virtual machines only; sptd runs
 * on the host, so those are refused rather than guessed at. */
static int notify_address(const char *env, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = strlen(env);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (env[0] != '/' && env[0] != '@')
		return -EAFNOSUPPORT;
	if (n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, env, n);
	if (env[0] == '@') {
		/* abstract: a leading NUL, and the length counts exactly the
		 * name's bytes (no terminating NUL, which would be part of it) */
		sa->sun_path[0] = '\0';
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	return 0;
}

int notify_send(const char *state)
{
	const char *env = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t salen;
	size_t len = strlen(state);
	ssize_t sent;
	int fd, rc;

	if (!env || !env[0])
		return 0;
	rc = notify_address(env, &sa, &salen);
	if (rc < 0)
		return rc;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* one datagram per message: the manager parses each on its own */
	sent = sendto(fd, state, len, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	rc = sent < 0 ? -errno : (size_t)sent != len ? -EMSGSIZE : 1;
	close(fd);
	return rc;
}

int notify_sendf(const char *fmt, ...)
{
	char buf[NOTIFY_STATE_MAX + 1];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || n > NOTIFY_STATE_MAX)
		return -EMSGSIZE;
	return notify_send(buf);
}
