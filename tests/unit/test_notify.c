/* Unit tests: the sd_notify(3) protocol of src/util/notify.c against a
 * datagram socket standing in for the service manager. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/notify.h"

struct manager {
	int fd;
	char dir[64];		/* for a path socket; "" for an abstract one */
	char env[100];		/* what NOTIFY_SOCKET says (fits sun_path) */
};

/* A manager's socket, with SO_PASSCRED as systemd sets it, so the sender's
 * pid can be checked (NotifyAccess=main accepts the main pid only). */
static void manager_open(struct manager *m, int abstract)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	int one = 1;

	memset(m, 0, sizeof(*m));
	m->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(m->fd >= 0);
	assert_int_equal(setsockopt(m->fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
	if (abstract) {
		snprintf(m->env, sizeof(m->env), "@spt-test-notify/%d/%u", (int)getpid(),
			 (unsigned)rand());
		memcpy(sa.sun_path, m->env, strlen(m->env));
		sa.sun_path[0] = '\0';
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(m->env));
	} else {
		snprintf(m->dir, sizeof(m->dir), "%s/spt-notify.XXXXXX",
			 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
		assert_non_null(mkdtemp(m->dir));
		snprintf(m->env, sizeof(m->env), "%s/notify", m->dir);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", m->env);
		len = sizeof(sa);
	}
	assert_int_equal(bind(m->fd, (struct sockaddr *)&sa, len), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", m->env, 1), 0);
}

/* The next datagram, NUL-terminated; checks it came from this process. */
static void manager_recv(struct manager *m, char *buf, size_t size)
{
	union {
		char raw[CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = size - 1 };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.raw,
		.msg_controllen = sizeof(ctl.raw),
	};
	struct cmsghdr *c;
	struct ucred cred;
	ssize_t n = recvmsg(m->fd, &msg, MSG_DONTWAIT);

	assert_true(n >= 0);
	assert_false(msg.msg_flags & MSG_TRUNC);
	buf[n] = '\0';
	c = CMSG_FIRSTHDR(&msg);
	assert_non_null(c);
	assert_int_equal(c->cmsg_type, SCM_CREDENTIALS);
	memcpy(&cred, CMSG_DATA(c), sizeof(cred));
	assert_int_equal(cred.pid, getpid());
}

static void manager_nothing_pending(struct manager *m)
{
	char c;

	assert_int_equal(recv(m->fd, &c, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
}

static void manager_close(struct manager *m)
{
	char path[128];

	unsetenv("NOTIFY_SOCKET");
	close(m->fd);
	if (m->dir[0]) {
		snprintf(path, sizeof(path), "%s/notify", m->dir);
		unlink(path);
		rmdir(m->dir);
	}
}

static void test_no_manager(void **state)
{
	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(notify_send("READY=1"), 0);
	assert_int_equal(notify_sendf("STATUS=%d LUNs", 2), 0);
	/* systemd sets it empty in some setups (e.g. a unit without Type=notify
	 * that inherited one): nobody to tell either */
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(notify_send("READY=1"), 0);
	unsetenv("NOTIFY_SOCKET");
}

static void test_path_socket(void **state)
{
	struct manager m;
	char buf[256];

	(void)state;
	manager_open(&m, 0);
	assert_int_equal(notify_send("READY=1\nSTATUS=serving"), 1);
	manager_recv(&m, buf, sizeof(buf));
	assert_string_equal(buf, "READY=1\nSTATUS=serving");
	assert_int_equal(notify_send("STOPPING=1"), 1);
	manager_recv(&m, buf, sizeof(buf));
	assert_string_equal(buf, "STOPPING=1");
	manager_nothing_pending(&m);
	manager_close(&m);
}

static void test_abstract_socket(void **state)
{
	struct manager m;
	char buf[256];

	(void)state;
	manager_open(&m, 1);
	assert_int_equal(notify_sendf("READY=1\nSTATUS=target %s, %d LUN(s)", "iqn.x", 3), 1);
	manager_recv(&m, buf, sizeof(buf));
	assert_string_equal(buf, "READY=1\nSTATUS=target iqn.x, 3 LUN(s)");
	manager_nothing_pending(&m);
	manager_close(&m);
}

/* Each message is its own datagram, never merged with the next. */
static void test_one_datagram_per_message(void **state)
{
	struct manager m;
	char buf[256];

	(void)state;
	manager_open(&m, 1);
	assert_int_equal(notify_send("STATUS=a"), 1);
	assert_int_equal(notify_send("STATUS=b"), 1);
	manager_recv(&m, buf, sizeof(buf));
	assert_string_equal(buf, "STATUS=a");
	manager_recv(&m, buf, sizeof(buf));
	assert_string_equal(buf, "STATUS=b");
	manager_close(&m);
}

static void test_bad_addresses(void **state)
{
	char longpath[200];

	(void)state;
	setenv("NOTIFY_SOCKET", "relative/notify", 1);
	assert_int_equal(notify_send("READY=1"), -EAFNOSUPPORT);
	setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
	assert_int_equal(notify_send("READY=1"), -EAFNOSUPPORT);
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longpath, 1);
	assert_int_equal(notify_send("READY=1"), -ENAMETOOLONG);
	unsetenv("NOTIFY_SOCKET");
}

/* A manager that went away is an error for the caller to log, not a hang
 * or a SIGPIPE. */
static void test_nobody_listening(void **state)
{
	struct manager m;
	int rc;

	(void)state;
	manager_open(&m, 0);
	close(m.fd);
	m.fd = socket(AF_UNIX, SOCK_DGRAM, 0);	/* for manager_close */
	rc = notify_send("READY=1");
	assert_true(rc == -ECONNREFUSED || rc == -ENOENT);
	manager_close(&m);

	setenv("NOTIFY_SOCKET", "@spt-test-notify/nobody/here", 1);
	assert_int_equal(notify_send("READY=1"), -ECONNREFUSED);
	unsetenv("NOTIFY_SOCKET");
}

static void test_sendf_too_long(void **state)
{
	struct manager m;
	char big[NOTIFY_STATE_MAX + 1];

	(void)state;
	manager_open(&m, 1);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(notify_sendf("STATUS=%s", big), -EMSGSIZE);
	manager_nothing_pending(&m);
	manager_close(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_manager),
		cmocka_unit_test(test_path_socket),
		cmocka_unit_test(test_abstract_socket),
		cmocka_unit_test(test_one_datagram_per_message),
		cmocka_unit_test(test_bad_addresses),
		cmocka_unit_test(test_nobody_listening),
		cmocka_unit_test(test_sendf_too_long),
	};

	srand((unsigned)getpid());
	return cmocka_run_group_tests(tests, NULL, NULL);
}
