/*
 * Unit tests for libspt's provider side (src/libspt/provider.c) and the
 * spt-memprovider tool.
 *
 * The library is driven by a fake sptd living in the test: the two ends of
 * a socketpair, a memfd as the shared memory, frames built byte for byte
 * from include/spt/spt.h. The fake daemon writes frames, the test calls
 * spt_provider_dispatch() and reads what came back; the "provider" is a set
 * of recording ops. The memprovider tests run the real binary against a
 * fake daemon on a listening socket and talk SCSI to it (INQUIRY, READ
 * CAPACITY(16), WRITE(10) and READ(10)), so the whole chain spt_bdev ->
 * libspt -> socket is exercised as sptd would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <spt/provider.h>
#include <spt/scsi.h>

#include "ctl/frame.h"
#include "libspt/provider_internal.h"

#ifndef MEMPROVIDER_BIN
#define MEMPROVIDER_BIN "build/spt-memprovider"
#endif

#define T_SHM (1u << 20)
#define T_MAX_XFER (256u * 1024)
#define T_LUN 3
#define T_TARGET "iqn.2024-01.test:target"
#define T_NAME "ram0"
#define T_WAIT_MS 5000
#define T_HELD_MAX 16

/* ------------------------------------------------------------------ */
/* The fake daemon's side of the wire                                   */
/* ------------------------------------------------------------------ */

static void wire_header(uint8_t out[CTL_HEADER_LEN], uint32_t cc, uint32_t rc, uint32_t timeout,
			uint32_t len)
{
	struct spt_io_header h;

	ctl_header_init(&h, cc, rc, timeout, len);
	ctl_header_encode(out, &h);
}

static void write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *b = buf;

	while (len > 0) {
		ssize_t n = write(fd, b, len);

		assert_true(n > 0);
		b += n;
		len -= (size_t)n;
	}
}

static void send_frame(int fd, uint32_t cc, uint32_t rc, const void *payload, uint32_t len)
{
	uint8_t buf[CTL_HEADER_LEN + 4096];

	assert_true(len <= 4096);
	wire_header(buf, cc, rc, 30, len);
	if (len)
		memcpy(buf + CTL_HEADER_LEN, payload, len);
	write_all(fd, buf, CTL_HEADER_LEN + len);
}

/* Reads exactly len bytes within T_WAIT_MS; false on EOF or timeout. */
static bool read_exact(int fd, void *buf, size_t len)
{
	uint8_t *b = buf;

	while (len > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, T_WAIT_MS) <= 0)
			return false;
		n = read(fd, b, len);
		if (n <= 0)
			return false;
		b += n;
		len -= (size_t)n;
	}
	return true;
}

/* One frame from the provider: header (host order) and payload. */
static void recv_frame(int fd, struct spt_io_header *h, void *payload, size_t cap)
{
	uint8_t hdr[CTL_HEADER_LEN];
	char why[CTL_WHY_MAX];

	assert_true(read_exact(fd, hdr, sizeof(hdr)));
	ctl_header_decode(hdr, h);
	assert_int_equal(ctl_header_check(h, SPT_PROVIDER_FRAME_MAX, why, sizeof(why)), 0);
	assert_true(h->length <= cap);
	if (h->length)
		assert_true(read_exact(fd, payload, h->length));
}

/* Nothing more has come from the provider. */
static void assert_no_frame(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	assert_int_equal(poll(&pfd, 1, 0), 0);
}

static struct spt_scsi_completion recv_completion(int fd)
{
	struct spt_scsi_completion c;
	struct spt_io_header h;

	recv_frame(fd, &h, &c, sizeof(c));
	assert_int_equal(h.control_code, SPT_CC_SCSI_COMPLETION);
	assert_int_equal(h.return_code, 0);
	assert_int_equal(h.length, sizeof(c));
	c.task_cookie = le64toh(c.task_cookie);
	c.transfer_length = le32toh(c.transfer_length);
	c.data_in_length = le32toh(c.data_in_length);
	return c;
}

static struct spt_wire_tmf recv_tmf_answer(int fd)
{
	struct spt_wire_tmf w;
	struct spt_io_header h;

	recv_frame(fd, &h, &w, sizeof(w));
	assert_int_equal(h.control_code, SPT_CC_TMF);
	assert_int_equal(h.length, sizeof(w));
	w.tmf_cookie = le64toh(w.tmf_cookie);
	w.tmf.itnexus_handle = le64toh(w.tmf.itnexus_handle);
	w.tmf.lun = le64toh(w.tmf.lun);
	w.tmf.function = le32toh(w.tmf.function);
	w.tmf.response = le32toh(w.tmf.response);
	w.tmf.reference_task_cookie = le64toh(w.tmf.reference_task_cookie);
	return w;
}

/* The register answer: header and payload, fds attached to the first byte. */
static void send_register_answer(int fd, uint32_t rc, const void *payload, uint32_t len,
				 const int *fds, int nfds)
{
	uint8_t buf[CTL_HEADER_LEN + 1024];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = CTL_HEADER_LEN + len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	assert_true(len <= 1024 && nfds <= 4);
	wire_header(buf, SPT_CC_PROVIDER_REGISTER, rc, 0, len);
	if (len)
		memcpy(buf + CTL_HEADER_LEN, payload, len);
	if (nfds > 0) {
		struct cmsghdr *c;

		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	assert_int_equal(sendmsg(fd, &msg, MSG_NOSIGNAL), (ssize_t)(CTL_HEADER_LEN + len));
}

static struct spt_provider_registered registered_payload(uint64_t shm_size)
{
	struct spt_provider_registered r;

	memset(&r, 0, sizeof(r));
	r.lun = htole64(T_LUN);
	r.shm_size = htole64(shm_size);
	r.max_transfer_bytes = htole32(T_MAX_XFER);
	r.command_timeout = htole32(30);
	r.relative_port = htole16(2);
	r.tpgt = htole16(7);
	r.version = htole32(SPT_PROVIDER_VERSION);
	snprintf(r.target_name, sizeof(r.target_name), "%s", T_TARGET);
	return r;
}

static int make_memfd(size_t size, uint8_t **map)
{
	int fd = memfd_create("test-shm", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	if (map) {
		*map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		assert_true(*map != MAP_FAILED);
	}
	return fd;
}

/* The REGISTER frame the provider sent: version and name. */
static void check_register_frame(int fd, const char *name)
{
	struct spt_provider_register reg;
	struct spt_io_header h;

	recv_frame(fd, &h, &reg, sizeof(reg));
	assert_int_equal(h.control_code, SPT_CC_PROVIDER_REGISTER);
	assert_int_equal(h.length, sizeof(reg));
	assert_int_equal(le32toh(reg.version), SPT_PROVIDER_VERSION);
	assert_int_equal(le32toh(reg.flags), 0);
	assert_string_equal(reg.name, name);
}

static int count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* ------------------------------------------------------------------ */
/* A recording provider                                                 */
/* ------------------------------------------------------------------ */

/* CDB opcodes the recording provider understands. */
#define OP_READ 0x28		/* fills read_len bytes of a pattern, GOOD */
#define OP_WRITE 0x2a		/* checks the data-out, GOOD per sequence */
#define OP_HOLD 0xc0		/* kept in held[] until the test completes it */
#define OP_CLOSE 0xc1		/* closes the connection from inside the op */
#define OP_BAD_LENGTHS 0xc2	/* completes with data_in and sense lengths over their limits */

#define SCRATCH_MAGIC 0x5ca7c4ull

struct rec {
	struct spt_provider *p;
	unsigned session_starts, session_ends, tmfs, scsis;
	struct spt_session_start last_ss;
	struct spt_session_end last_se;
	struct spt_tmf *held_tmf;
	bool hold_tmfs;
	bool held_aborted_at_tmf[T_HELD_MAX];	/* held[i]->aborted seen in the tmf op */
	struct spt_cmd *held[T_HELD_MAX];
	unsigned nheld;
	uint32_t read_len;
	struct spt_cmd *write_cmd;		/* the cmd of the first write sequence */
	uint8_t write_seen[8192];		/* data-out as the provider saw it */
	uint32_t write_seen_len;
	unsigned scratch_ok;			/* later sequences that found their scratch */
};

static void rec_session_start(void *ctx, const struct spt_session_start *ss)
{
	struct rec *r = ctx;

	r->session_starts++;
	r->last_ss = *ss;
}

static void rec_session_end(void *ctx, const struct spt_session_end *se)
{
	struct rec *r = ctx;

	r->session_ends++;
	r->last_se = *se;
}

static void rec_tmf(void *ctx, struct spt_tmf *tmf)
{
	struct rec *r = ctx;

	r->tmfs++;
	for (unsigned i = 0; i < r->nheld; i++)
		r->held_aborted_at_tmf[i] = r->held[i]->aborted;
	if (r->hold_tmfs) {
		r->held_tmf = tmf;
		return;
	}
	tmf->w.response = SPT_TMF_RSP_COMPLETE;
	spt_tmf_complete(tmf);
}

static void rec_scsi(void *ctx, struct spt_cmd *cmd)
{
	struct rec *r = ctx;
	uint64_t magic;

	r->scsis++;
	switch (cmd->req.cdb[0]) {
	case OP_READ: {
		uint32_t n = r->read_len < cmd->buf_len ? r->read_len : cmd->buf_len;

		for (uint32_t i = 0; i < n; i++)
			cmd->buf[i] = (uint8_t)(i * 7 + 1);
		cmd->cpl.data_in_length = n;
		cmd->cpl.transfer_length = r->read_len;
		cmd->cpl.scsi_status = SPT_STATUS_GOOD;
		spt_cmd_complete(cmd);
		break;
	}
	case OP_WRITE:
		if (cmd->req.sequence_byte_offset == 0) {
			r->write_cmd = cmd;
			magic = SCRATCH_MAGIC;
			memcpy(cmd->scratch, &magic, sizeof(magic));
		} else {
			memcpy(&magic, cmd->scratch, sizeof(magic));
			if (cmd == r->write_cmd && magic == SCRATCH_MAGIC)
				r->scratch_ok++;
		}
		/* bytes of earlier sequences stay in place: copy all so far */
		r->write_seen_len = cmd->req.sequence_byte_offset + cmd->req.data_length;
		assert_true(r->write_seen_len <= sizeof(r->write_seen));
		memcpy(r->write_seen, cmd->buf, r->write_seen_len);
		cmd->cpl.transfer_length = cmd->req.expected_length;
		cmd->cpl.scsi_status = SPT_STATUS_GOOD;
		spt_cmd_complete(cmd);
		break;
	case OP_HOLD:
		assert_true(r->nheld < T_HELD_MAX);
		r->held[r->nheld++] = cmd;
		break;
	case OP_CLOSE:
		spt_provider_close(r->p);
		r->p = NULL;
		/* completing after close is harmless */
		spt_cmd_complete(cmd);
		break;
	case OP_BAD_LENGTHS:
		cmd->cpl.data_in_length = cmd->buf_len + 100;
		cmd->cpl.sense_length = 255;
		cmd->cpl.scsi_status = SPT_STATUS_CHECK_CONDITION;
		spt_cmd_complete(cmd);
		break;
	default:
		cmd->cpl.scsi_status = SPT_STATUS_GOOD;
		spt_cmd_complete(cmd);
		break;
	}
}

static const struct spt_provider_ops rec_ops = {
	.name = "rec",
	.session_start = rec_session_start,
	.session_end = rec_session_end,
	.tmf = rec_tmf,
	.scsi = rec_scsi,
};

/* ------------------------------------------------------------------ */
/* Fixture: a registered connection over a socketpair                   */
/* ------------------------------------------------------------------ */

struct fx {
	int dfd;		/* the fake daemon's end */
	uint8_t *shm;		/* the daemon's view of the shared memory */
	struct rec rec;
	struct spt_provider *p;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct spt_provider_registered reg = registered_payload(T_SHM);
	char err[256] = "";
	int sv[2], memfd;

	assert_non_null(f);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	memfd = make_memfd(T_SHM, &f->shm);
	/* the answer waits in the socket before the provider asks */
	send_register_answer(sv[1], SPT_CTL_RC_SUCCESS, &reg, sizeof(reg), &memfd, 1);
	close(memfd);
	f->rec.read_len = 512;
	assert_int_equal(provider_attach(sv[0], T_NAME, &rec_ops, &f->rec, &f->p, err, sizeof(err)),
			 0);
	f->rec.p = f->p;
	f->dfd = sv[1];
	check_register_frame(f->dfd, T_NAME);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	if (f->rec.p)
		spt_provider_close(f->rec.p);
	if (f->dfd >= 0)
		close(f->dfd);
	munmap(f->shm, T_SHM);
	free(f);
	return 0;
}

static struct spt_wire_scsi_request mk_request(uint64_t cookie, uint8_t opcode, uint64_t data_offset,
					       uint32_t buf_len)
{
	struct spt_wire_scsi_request w;

	memset(&w, 0, sizeof(w));
	w.req.session_cookie = 0x1111;
	w.req.task_cookie = cookie;
	w.req.lun = T_LUN;
	w.req.expected_length = buf_len;
	w.req.is_final = 1;
	w.req.direction = SPT_DIR_NONE;
	w.req.cdb_length = 16;
	w.req.task_attribute = SPT_TASK_SIMPLE;
	w.req.cdb[0] = opcode;
	w.data_offset = data_offset;
	w.buf_len = buf_len;
	return w;
}

static void send_request(int fd, const struct spt_wire_scsi_request *in)
{
	struct spt_wire_scsi_request w = *in;

	w.req.session_cookie = htole64(in->req.session_cookie);
	w.req.task_cookie = htole64(in->req.task_cookie);
	w.req.lun = htole64(in->req.lun);
	w.req.sequence_byte_offset = htole32(in->req.sequence_byte_offset);
	w.req.data_length = htole32(in->req.data_length);
	w.req.expected_length = htole32(in->req.expected_length);
	w.data_offset = htole64(in->data_offset);
	w.buf_len = htole32(in->buf_len);
	w.reserved = htole32(in->reserved);
	send_frame(fd, SPT_CC_SCSI_REQUEST, 0, &w, sizeof(w));
}

static void send_tmf(int fd, uint64_t tmf_cookie, uint64_t handle, uint32_t function,
		     uint64_t ref)
{
	struct spt_wire_tmf w;

	memset(&w, 0, sizeof(w));
	w.tmf_cookie = htole64(tmf_cookie);
	w.tmf.itnexus_handle = htole64(handle);
	w.tmf.lun = htole64(T_LUN);
	w.tmf.function = htole32(function);
	w.tmf.reference_task_cookie = htole64(ref);
	send_frame(fd, SPT_CC_TMF, 0, &w, sizeof(w));
}

static void send_session_end(int fd, uint32_t rc, uint64_t handle)
{
	struct spt_session_end se = { .itnexus_handle = htole64(handle) };

	send_frame(fd, SPT_CC_SESSION_END, rc, &se, sizeof(se));
}

/* ------------------------------------------------------------------ */
/* Registration                                                         */
/* ------------------------------------------------------------------ */

static void test_register_fills_info(void **state)
{
	struct fx *f = *state;
	const struct spt_provider_info *info = spt_provider_get_info(f->p);

	assert_int_equal(info->lun, T_LUN);
	assert_int_equal(info->shm_size, T_SHM);
	assert_int_equal(info->max_transfer_bytes, T_MAX_XFER);
	assert_int_equal(info->command_timeout, 30);
	assert_int_equal(info->relative_port, 2);
	assert_int_equal(info->tpgt, 7);
	assert_string_equal(info->target_name, T_TARGET);
	assert_true(spt_provider_fd(f->p) >= 0);
	/* non-blocking from here on: dispatch with nothing to read returns */
	assert_int_equal(spt_provider_dispatch(f->p), 0);
}

/* Registers over a socketpair against a queued answer; returns attach's result. */
static int attach_against(uint32_t rc, const void *payload, uint32_t len, const int *fds, int nfds,
			  char *err, size_t errlen)
{
	struct spt_provider *p = NULL;
	struct rec r;
	int sv[2], ret;

	memset(&r, 0, sizeof(r));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	send_register_answer(sv[1], rc, payload, len, fds, nfds);
	if (rc != SPT_CTL_RC_SUCCESS)
		close(sv[1]);	/* sptd closes after a refusal */
	ret = provider_attach(sv[0], T_NAME, &rec_ops, &r, &p, err, errlen);
	if (ret == 0) {
		assert_non_null(p);
		spt_provider_close(p);
	} else {
		assert_null(p);
	}
	if (rc == SPT_CTL_RC_SUCCESS)
		close(sv[1]);
	return ret;
}

static void test_register_refusals_map_to_errno(void **state)
{
	static const char msg[] = "no --lun provider:ram0";
	char err[256];

	assert_int_equal(attach_against(SPT_CTL_RC_UNKNOWN_PROVIDER, msg, sizeof(msg), NULL, 0, err,
					sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "no --lun provider:ram0"));
	assert_int_equal(attach_against(SPT_CTL_RC_PROVIDER_IN_USE, NULL, 0, NULL, 0, err,
					sizeof(err)), -EEXIST);
	assert_int_equal(attach_against(SPT_CTL_RC_VERSION, NULL, 0, NULL, 0, err, sizeof(err)),
			 -EPROTONOSUPPORT);
	assert_int_equal(attach_against(SPT_CTL_RC_BAD_REQUEST, NULL, 0, NULL, 0, err, sizeof(err)),
			 -EPROTO);
	assert_non_null(strstr(err, "code 3"));

	/* an error frame not tied to a request: ControlCode 0 */
	{
		struct spt_provider *p = NULL;
		uint8_t hdr[CTL_HEADER_LEN];
		struct rec r;
		int sv[2];

		memset(&r, 0, sizeof(r));
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		wire_header(hdr, 0, SPT_CTL_RC_PERMISSION, 0, 0);
		write_all(sv[1], hdr, sizeof(hdr));
		close(sv[1]);
		assert_int_equal(provider_attach(sv[0], T_NAME, &rec_ops, &r, &p, err, sizeof(err)),
				 -EPROTO);
		assert_non_null(strstr(err, "permission denied"));
		assert_null(p);
	}
}

static void test_register_bad_answers(void **state)
{
	struct spt_provider_registered reg = registered_payload(T_SHM);
	char err[256];
	int memfd = make_memfd(T_SHM, NULL);
	int small = make_memfd(T_SHM / 2, NULL);
	int fds[2] = { memfd, memfd };
	int before;

	/* success without the memfd */
	assert_int_equal(attach_against(0, &reg, sizeof(reg), NULL, 0, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "shared memory"));
	/* success with a payload of the wrong size */
	assert_int_equal(attach_against(0, &reg, sizeof(reg) - 1, &memfd, 1, err, sizeof(err)),
			 -EPROTO);
	/* a memfd smaller than announced */
	assert_int_equal(attach_against(0, &reg, sizeof(reg), &small, 1, err, sizeof(err)), -EPROTO);
	/* max transfer beyond the shared memory */
	reg.max_transfer_bytes = htole32(T_SHM + 1);
	assert_int_equal(attach_against(0, &reg, sizeof(reg), &memfd, 1, err, sizeof(err)), -EPROTO);
	reg = registered_payload(T_SHM);
	/* a target name without its NUL */
	memset(reg.target_name, 'x', sizeof(reg.target_name));
	assert_int_equal(attach_against(0, &reg, sizeof(reg), &memfd, 1, err, sizeof(err)), -EPROTO);
	reg = registered_payload(T_SHM);
	/* two descriptors: the extra one is closed, registration stands */
	before = count_open_fds();
	assert_int_equal(attach_against(0, &reg, sizeof(reg), fds, 2, err, sizeof(err)), 0);
	assert_int_equal(count_open_fds(), before);
	/* nothing leaked by the failures either */
	assert_int_equal(attach_against(0, &reg, sizeof(reg) - 1, fds, 2, err, sizeof(err)), -EPROTO);
	assert_int_equal(count_open_fds(), before);
	close(memfd);
	close(small);
}

static void test_register_wrong_frames(void **state)
{
	struct spt_provider *p = NULL;
	uint8_t junk[CTL_HEADER_LEN];
	char err[256];
	struct rec r;
	int sv[2];

	memset(&r, 0, sizeof(r));
	/* sptd closes without answering */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	assert_int_equal(provider_attach(sv[0], T_NAME, &rec_ops, &r, &p, err, sizeof(err)), -EPIPE);
	/* an answer with another signature */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	wire_header(junk, SPT_CC_PROVIDER_REGISTER, 0, 0, 0);
	junk[4] = 'X';
	write_all(sv[1], junk, sizeof(junk));
	assert_int_equal(provider_attach(sv[0], T_NAME, &rec_ops, &r, &p, err, sizeof(err)), -EPROTO);
	close(sv[1]);
	/* an answer with another control code */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	wire_header(junk, SPT_CC_SESSION_START, 0, 0, 0);
	write_all(sv[1], junk, sizeof(junk));
	assert_int_equal(provider_attach(sv[0], T_NAME, &rec_ops, &r, &p, err, sizeof(err)), -EPROTO);
	close(sv[1]);
	assert_null(p);
}

static void test_register_checks_name_and_ops(void **state)
{
	static const struct spt_provider_ops no_tmf = { .scsi = rec_scsi };
	char long_name[SPT_PROVIDER_NAME_MAX + 1];
	struct spt_provider *p = NULL;
	char err[256];

	memset(long_name, 'a', SPT_PROVIDER_NAME_MAX);
	long_name[SPT_PROVIDER_NAME_MAX] = '\0';
	assert_int_equal(spt_provider_connect("/nonexistent/p.sock", "", &rec_ops, NULL, &p, err,
					      sizeof(err)), -EINVAL);
	assert_int_equal(spt_provider_connect("/nonexistent/p.sock", "a/b", &rec_ops, NULL, &p, err,
					      sizeof(err)), -EINVAL);
	assert_int_equal(spt_provider_connect("/nonexistent/p.sock", "a b", &rec_ops, NULL, &p, err,
					      sizeof(err)), -EINVAL);
	assert_int_equal(spt_provider_connect("/nonexistent/p.sock", long_name, &rec_ops, NULL, &p,
					      err, sizeof(err)), -EINVAL);
	long_name[SPT_PROVIDER_NAME_MAX - 1] = '\0';	/* 63 characters: fine */
	assert_int_equal(spt_provider_connect("/nonexistent/p.sock", long_name, &rec_ops, NULL, &p,
					      err, sizeof(err)), -ENOENT);
	assert_int_equal(spt_provider_connect("/nonexistent/p.sock", "Ok.name_1-2", &no_tmf, NULL, &p,
					      err, sizeof(err)), -EINVAL);
	assert_null(p);
}

/* A daemon on a real socket path, answering one registration. */
struct path_daemon {
	int lfd;
	int memfd;
	int cfd;		/* the accepted connection, left open */
	uint32_t rc;
	char name[SPT_PROVIDER_NAME_MAX];
};

static void *path_daemon_run(void *arg)
{
	struct path_daemon *d = arg;
	struct spt_provider_registered reg = registered_payload(T_SHM);
	struct spt_provider_register req;
	uint8_t hdr[CTL_HEADER_LEN];

	d->cfd = accept4(d->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (d->cfd < 0)
		return NULL;
	if (!read_exact(d->cfd, hdr, sizeof(hdr)) || !read_exact(d->cfd, &req, sizeof(req)))
		return NULL;
	memcpy(d->name, req.name, sizeof(d->name));
	d->name[sizeof(d->name) - 1] = '\0';
	if (d->rc == SPT_CTL_RC_SUCCESS) {
		uint8_t frame[CTL_HEADER_LEN + sizeof(reg)];
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(int))];
		} control;
		struct iovec iov = { .iov_base = frame, .iov_len = sizeof(frame) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
				      .msg_controllen = sizeof(control.buf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

		wire_header(frame, SPT_CC_PROVIDER_REGISTER, 0, 0, sizeof(reg));
		memcpy(frame + CTL_HEADER_LEN, &reg, sizeof(reg));
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &d->memfd, sizeof(int));
		if (sendmsg(d->cfd, &msg, MSG_NOSIGNAL) < 0)
			return NULL;
	} else {
		wire_header(hdr, SPT_CC_PROVIDER_REGISTER, d->rc, 0, 0);
		if (write(d->cfd, hdr, sizeof(hdr)) < 0)
			return NULL;
		close(d->cfd);
		d->cfd = -1;
	}
	return NULL;
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

static void test_connect_by_path(void **state)
{
	char dir[] = "/tmp/spt-provider-test-XXXXXX";
	char path[128], err[256] = "";
	struct path_daemon d = { .cfd = -1 };
	struct spt_provider *p = NULL;
	struct rec r;
	pthread_t th;

	memset(&r, 0, sizeof(r));
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/p.sock", dir);
	/* nothing there yet */
	assert_int_equal(spt_provider_connect(path, T_NAME, &rec_ops, &r, &p, err, sizeof(err)),
			 -ENOENT);
	/* a socket nobody listens on any more */
	d.lfd = listen_on(path);
	close(d.lfd);
	assert_int_equal(spt_provider_connect(path, T_NAME, &rec_ops, &r, &p, err, sizeof(err)),
			 -ECONNREFUSED);

	d.lfd = listen_on(path);
	d.memfd = make_memfd(T_SHM, NULL);
	d.rc = SPT_CTL_RC_SUCCESS;
	assert_int_equal(pthread_create(&th, NULL, path_daemon_run, &d), 0);
	assert_int_equal(spt_provider_connect(path, "disk.1", &rec_ops, &r, &p, err, sizeof(err)), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_string_equal(d.name, "disk.1");
	assert_string_equal(spt_provider_get_info(p)->target_name, T_TARGET);
	/* sptd goes away: the connection reports it */
	close(d.cfd);
	assert_int_equal(spt_provider_run(p), -EPIPE);
	spt_provider_close(p);

	d.rc = SPT_CTL_RC_PROVIDER_IN_USE;
	assert_int_equal(pthread_create(&th, NULL, path_daemon_run, &d), 0);
	assert_int_equal(spt_provider_connect(path, "disk.1", &rec_ops, &r, &p, err, sizeof(err)),
			 -EEXIST);
	assert_int_equal(pthread_join(th, NULL), 0);

	close(d.lfd);
	close(d.memfd);
	unlink(path);
	rmdir(dir);
}

/* ------------------------------------------------------------------ */
/* Sessions                                                             */
/* ------------------------------------------------------------------ */

static void test_session_start_reaches_ops_terminated(void **state)
{
	struct fx *f = *state;
	struct spt_session_start ss;

	/* every string field full to its end: the library terminates them */
	memset(&ss, 'A', sizeof(ss));
	ss.is_reinstated = 1;
	ss.itnexus_handle = htole64(0x0102030405060708ull);
	send_frame(f->dfd, SPT_CC_SESSION_START, 0, &ss, sizeof(ss));
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	assert_int_equal(f->rec.session_starts, 1);
	assert_int_equal(f->rec.last_ss.is_reinstated, 1);
	assert_int_equal(f->rec.last_ss.itnexus_handle, 0x0102030405060708ull);
	assert_int_equal(strlen(f->rec.last_ss.peer_address), SPT_PEER_ADDRESS_MAX - 1);
	assert_int_equal(strlen(f->rec.last_ss.itnexus), SPT_ITNEXUS_MAX - 1);
	assert_int_equal(strlen(f->rec.last_ss.chap_user_name), SPT_CHAP_USER_MAX - 1);
	assert_no_frame(f->dfd);	/* notifications are not answered */
}

static void test_session_end_and_stop_answers(void **state)
{
	struct fx *f = *state;
	struct spt_ctl_session_stop st;
	struct spt_session_end se;
	struct spt_io_header h;

	send_session_end(f->dfd, 0, 0x42);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	assert_int_equal(f->rec.session_ends, 1);
	assert_int_equal(f->rec.last_se.itnexus_handle, 0x42);

	/* a stop with sptd's grace: the short form */
	assert_int_equal(spt_provider_stop_session(f->p, 0x77, 0), 0);
	recv_frame(f->dfd, &h, &se, sizeof(se));
	assert_int_equal(h.control_code, SPT_CC_SESSION_END);
	assert_int_equal(h.length, sizeof(se));
	assert_int_equal(le64toh(se.itnexus_handle), 0x77);
	/* with a grace of its own */
	assert_int_equal(spt_provider_stop_session(f->p, 0x78, 9), 0);
	recv_frame(f->dfd, &h, &st, sizeof(st));
	assert_int_equal(h.length, sizeof(st));
	assert_int_equal(le64toh(st.itnexus_handle), 0x78);
	assert_int_equal(le32toh(st.grace_seconds), 9);
	assert_int_equal(spt_provider_stop_session(f->p, 0x79, SPT_CTL_GRACE_MAX + 1), -EINVAL);

	/* the answers are not session ends; the notification after is */
	send_session_end(f->dfd, SPT_CTL_RC_SUCCESS, 0x77);
	send_session_end(f->dfd, SPT_CTL_RC_NO_SUCH_SESSION, 0x78);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	assert_int_equal(f->rec.session_ends, 1);
	send_session_end(f->dfd, SPT_CTL_RC_SUCCESS, 0x77);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	assert_int_equal(f->rec.session_ends, 2);
	assert_int_equal(f->rec.last_se.itnexus_handle, 0x77);
	/* an error with no stop outstanding is not a notification either */
	send_session_end(f->dfd, SPT_CTL_RC_NO_SUCH_SESSION, 0x99);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	assert_int_equal(f->rec.session_ends, 2);
}

/* ------------------------------------------------------------------ */
/* SCSI requests                                                        */
/* ------------------------------------------------------------------ */

static void test_read_completion_carries_data_in(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request w = mk_request(0xabcdef0123456789ull, OP_READ, 8192, 1024);
	struct spt_scsi_completion c;

	w.req.direction = SPT_DIR_IN;
	f->rec.read_len = 700;
	memset(f->shm + 8192, 0xee, 1024);
	send_request(f->dfd, &w);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	assert_int_equal(f->rec.scsis, 1);
	c = recv_completion(f->dfd);
	assert_int_equal(c.task_cookie, 0xabcdef0123456789ull);
	assert_int_equal(c.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(c.data_in_length, 700);
	assert_int_equal(c.transfer_length, 700);
	assert_int_equal(c.sense_length, 0);
	/* the data is in the shared memory at the command's buffer */
	for (uint32_t i = 0; i < 700; i++)
		assert_int_equal(f->shm[8192 + i], (uint8_t)(i * 7 + 1));
	assert_int_equal(f->shm[8192 + 700], 0xee);

	/* the pooled cmd is reused for the next command */
	w.req.task_cookie = 2;
	f->rec.read_len = 2000;	/* more than the buffer: clamped by the provider */
	send_request(f->dfd, &w);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	c = recv_completion(f->dfd);
	assert_int_equal(c.task_cookie, 2);
	assert_int_equal(c.data_in_length, 1024);
	assert_int_equal(c.transfer_length, 2000);
}

static void test_completion_lengths_clamped(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request w = mk_request(5, OP_BAD_LENGTHS, 0, 64);
	struct spt_scsi_completion c;

	send_request(f->dfd, &w);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	c = recv_completion(f->dfd);
	assert_int_equal(c.data_in_length, 64);
	assert_int_equal(c.sense_length, SPT_SENSE_MAX);
	assert_int_equal(c.scsi_status, SPT_STATUS_CHECK_CONDITION);
	/* the connection lives on */
	assert_int_equal(spt_provider_dispatch(f->p), 0);
}

static void test_write_in_two_sequences(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request w = mk_request(0x77aa, OP_WRITE, 65536, 1024);
	struct spt_scsi_completion c;

	w.req.direction = SPT_DIR_OUT;
	w.req.expected_length = 1024;
	/* first burst: [0, 512) */
	for (int i = 0; i < 512; i++)
		f->shm[65536 + i] = (uint8_t)i;
	w.req.is_final = 0;
	w.req.sequence_byte_offset = 0;
	w.req.data_length = 512;
	send_request(f->dfd, &w);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	c = recv_completion(f->dfd);
	assert_int_equal(c.task_cookie, 0x77aa);
	assert_int_equal(c.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(f->rec.write_seen_len, 512);

	/* second burst: [512, 1024), final; the first bytes stay in place */
	for (int i = 512; i < 1024; i++)
		f->shm[65536 + i] = (uint8_t)(i ^ 0x5a);
	w.req.is_final = 1;
	w.req.sequence_byte_offset = 512;
	w.req.data_length = 512;
	send_request(f->dfd, &w);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	c = recv_completion(f->dfd);
	assert_int_equal(c.task_cookie, 0x77aa);
	assert_int_equal(c.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(c.transfer_length, 1024);
	assert_int_equal(f->rec.write_seen_len, 1024);
	for (int i = 0; i < 1024; i++)
		assert_int_equal(f->rec.write_seen[i], i < 512 ? (uint8_t)i : (uint8_t)(i ^ 0x5a));
	/* the same cmd, its scratch as the provider left it */
	assert_int_equal(f->rec.scratch_ok, 1);

	/* the cookie is free again: a new command under it is fine */
	w.req.sequence_byte_offset = 0;
	w.req.data_length = 1024;
	send_request(f->dfd, &w);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	c = recv_completion(f->dfd);
	assert_int_equal(c.scsi_status, SPT_STATUS_GOOD);
}

static void test_later_sequence_of_forgotten_task_fails_alone(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request w = mk_request(0x3001, OP_WRITE, 0, 1024);
	struct spt_scsi_completion c;
	struct spt_wire_tmf a;
	unsigned scsis;

	w.req.direction = SPT_DIR_OUT;
	w.req.is_final = 0;
	w.req.data_length = 512;
	send_request(f->dfd, &w);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	c = recv_completion(f->dfd);
	assert_int_equal(c.scsi_status, SPT_STATUS_GOOD);
	/* aborted between sequences: sptd frees it without telling */
	send_tmf(f->dfd, 0x9001, 0x1111, SPT_TMF_ABORT_TASK, 0x3001);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	a = recv_tmf_answer(f->dfd);
	assert_int_equal(a.tmf_cookie, 0x9001);
	scsis = f->rec.scsis;
	/* a next sequence all the same: that command fails, nothing else */
	w.req.sequence_byte_offset = 512;
	w.req.is_final = 1;
	send_request(f->dfd, &w);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	c = recv_completion(f->dfd);
	assert_int_equal(c.task_cookie, 0x3001);
	assert_int_equal(c.scsi_status, SPT_STATUS_CHECK_CONDITION);
	assert_true(c.sense_length >= 14);
	assert_int_equal(c.sense[2] & 0x0f, SPT_KEY_ABORTED_COMMAND);
	assert_int_equal(f->rec.scsis, scsis);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
}

static void test_session_end_forgets_its_tasks(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request w = mk_request(0x4001, OP_WRITE, 0, 1024);
	struct spt_wire_scsi_request h = mk_request(0x4002, OP_HOLD, 4096, 0);
	struct spt_scsi_completion c;

	w.req.is_final = 0;
	w.req.data_length = 512;
	send_request(f->dfd, &w);
	send_request(f->dfd, &h);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	c = recv_completion(f->dfd);
	assert_int_equal(c.task_cookie, 0x4001);
	assert_false(f->rec.held[0]->aborted);
	send_session_end(f->dfd, 0, 0x1111);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	/* the held one is aborted as an in-process engine would mark it */
	assert_true(f->rec.held[0]->aborted);
	spt_cmd_complete(f->rec.held[0]);
	c = recv_completion(f->dfd);
	assert_int_equal(c.task_cookie, 0x4002);
	/* the one between sequences is gone */
	w.req.sequence_byte_offset = 512;
	w.req.is_final = 1;
	send_request(f->dfd, &w);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	c = recv_completion(f->dfd);
	assert_int_equal(c.scsi_status, SPT_STATUS_CHECK_CONDITION);
}

static void test_completion_outside_dispatch_is_sent(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request w = mk_request(0x5001, OP_HOLD, 0, 0);
	struct spt_scsi_completion c;

	send_request(f->dfd, &w);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	assert_no_frame(f->dfd);
	assert_int_equal(f->rec.nheld, 1);
	f->rec.held[0]->cpl.scsi_status = SPT_STATUS_BUSY;
	spt_cmd_complete(f->rec.held[0]);
	c = recv_completion(f->dfd);
	assert_int_equal(c.task_cookie, 0x5001);
	assert_int_equal(c.scsi_status, SPT_STATUS_BUSY);
}

static void test_many_completions_survive_a_full_socket(void **state)
{
	struct fx *f = *state;
	const unsigned n = 3000;	/* ~900 KB of completions: more than the socket holds */
	unsigned got = 0, sent = 0, rounds = 0;

	while (got < n) {
		struct pollfd pfd = { .fd = f->dfd, .events = POLLIN };
		unsigned batch = 0;

		assert_true(++rounds < 100000);
		/* requests in batches the socket takes without blocking */
		for (unsigned i = 0; i < 200 && sent < n; i++, sent++) {
			struct spt_wire_scsi_request w = mk_request(1000 + sent, OP_READ, 0, 64);

			send_request(f->dfd, &w);
		}
		assert_int_equal(spt_provider_dispatch(f->p), 0);
		/* read only some each round, so that the provider has to keep
		 * the rest while the socket is full */
		while (got < n && batch < 64 && poll(&pfd, 1, sent == n ? 1000 : 0) > 0) {
			struct spt_scsi_completion c = recv_completion(f->dfd);

			assert_int_equal(c.task_cookie, 1000 + got);
			got++;
			batch++;
		}
		if (sent == n && got < n)
			assert_true(provider_output_pending(f->p) || poll(&pfd, 1, 1000) > 0);
	}
	assert_int_equal(got, n);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	assert_false(provider_output_pending(f->p));
}

/* ------------------------------------------------------------------ */
/* Task management                                                      */
/* ------------------------------------------------------------------ */

static void test_tmf_abort_task_marks_the_task(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request a = mk_request(0x6001, OP_HOLD, 0, 0);
	struct spt_wire_scsi_request b = mk_request(0x6002, OP_HOLD, 0, 0);
	struct spt_scsi_completion c;
	struct spt_wire_tmf t;

	send_request(f->dfd, &a);
	send_request(f->dfd, &b);
	send_tmf(f->dfd, 0xfeedbeef, 0x1111, SPT_TMF_ABORT_TASK, 0x6002);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	assert_int_equal(f->rec.tmfs, 1);
	assert_int_equal(f->rec.nheld, 2);
	/* set before the provider's tmf op ran, and only on that task */
	assert_false(f->rec.held_aborted_at_tmf[0]);
	assert_true(f->rec.held_aborted_at_tmf[1]);
	t = recv_tmf_answer(f->dfd);
	assert_int_equal(t.tmf_cookie, 0xfeedbeef);
	assert_int_equal(t.tmf.function, SPT_TMF_ABORT_TASK);
	assert_int_equal(t.tmf.response, SPT_TMF_RSP_COMPLETE);
	assert_int_equal(t.tmf.reference_task_cookie, 0x6002);
	assert_int_equal(t.tmf.lun, T_LUN);
	/* the aborted task still answers: sptd frees its buffer on it */
	spt_cmd_complete(f->rec.held[1]);
	c = recv_completion(f->dfd);
	assert_int_equal(c.task_cookie, 0x6002);
	spt_cmd_complete(f->rec.held[0]);
	c = recv_completion(f->dfd);
	assert_int_equal(c.task_cookie, 0x6001);
}

static void test_tmf_task_set_and_reset_scope(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request a = mk_request(0x7001, OP_HOLD, 0, 0);
	struct spt_wire_scsi_request b = mk_request(0x7002, OP_HOLD, 0, 0);
	struct spt_wire_tmf t;

	b.req.session_cookie = 0x2222;
	send_request(f->dfd, &a);
	send_request(f->dfd, &b);
	/* ABORT TASK SET: the tasks of the I_T nexus that asked */
	send_tmf(f->dfd, 1, 0x2222, SPT_TMF_ABORT_TASK_SET, 0);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	assert_false(f->rec.held[0]->aborted);
	assert_true(f->rec.held[1]->aborted);
	t = recv_tmf_answer(f->dfd);
	assert_int_equal(t.tmf_cookie, 1);
	/* CLEAR ACA ends no task */
	send_tmf(f->dfd, 2, 0x1111, SPT_TMF_CLEAR_ACA, 0);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	assert_false(f->rec.held[0]->aborted);
	recv_tmf_answer(f->dfd);
	/* LOGICAL UNIT RESET: all of them; answered later by the provider */
	f->rec.hold_tmfs = true;
	send_tmf(f->dfd, 3, 0x2222, SPT_TMF_LOGICAL_UNIT_RESET, 0);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	assert_true(f->rec.held[0]->aborted);
	assert_no_frame(f->dfd);
	f->rec.held_tmf->w.response = SPT_TMF_RSP_COMPLETE;
	spt_tmf_complete(f->rec.held_tmf);
	t = recv_tmf_answer(f->dfd);
	assert_int_equal(t.tmf_cookie, 3);
	assert_int_equal(t.tmf.function, SPT_TMF_LOGICAL_UNIT_RESET);
	spt_cmd_complete(f->rec.held[0]);
	spt_cmd_complete(f->rec.held[1]);
	recv_completion(f->dfd);
	recv_completion(f->dfd);
}

/* ------------------------------------------------------------------ */
/* Bad input ends the connection                                        */
/* ------------------------------------------------------------------ */

static void expect_proto_error(struct fx *f)
{
	assert_int_equal(spt_provider_dispatch(f->p), -EPROTO);
	/* and stays over */
	assert_int_equal(spt_provider_dispatch(f->p), -EPROTO);
	assert_int_equal(spt_provider_run(f->p), -EPROTO);
}

static void test_bad_signature(void **state)
{
	struct fx *f = *state;
	uint8_t hdr[CTL_HEADER_LEN];

	wire_header(hdr, SPT_CC_SESSION_END, 0, 0, 8);
	memcpy(hdr + 4, "SPTPT002", 8);
	write_all(f->dfd, hdr, sizeof(hdr));
	expect_proto_error(f);
}

static void test_bad_header_length_and_oversize(void **state)
{
	struct fx *f = *state;
	uint8_t hdr[CTL_HEADER_LEN];

	/* Length beyond SPT_PROVIDER_FRAME_MAX: never awaited */
	wire_header(hdr, SPT_CC_SCSI_REQUEST, 0, 0, SPT_PROVIDER_FRAME_MAX + 1);
	write_all(f->dfd, hdr, sizeof(hdr));
	expect_proto_error(f);
}

static void test_unknown_control_code(void **state)
{
	struct fx *f = *state;
	uint8_t payload[8] = { 0 };

	send_frame(f->dfd, 0x1ff, 0, payload, sizeof(payload));
	expect_proto_error(f);
	assert_int_equal(f->rec.scsis, 0);
}

static void test_request_of_wrong_length(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request w = mk_request(1, OP_READ, 0, 16);

	send_frame(f->dfd, SPT_CC_SCSI_REQUEST, 0, &w, sizeof(w) - 1);
	expect_proto_error(f);
}

static void test_buffer_beyond_shm(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request w = mk_request(1, OP_READ, T_SHM - 100, 200);

	send_request(f->dfd, &w);
	expect_proto_error(f);
	assert_int_equal(f->rec.scsis, 0);
}

static void test_buffer_offset_wraps(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request w = mk_request(1, OP_READ, UINT64_MAX - 10, 64);

	send_request(f->dfd, &w);
	expect_proto_error(f);
}

static void test_buffer_over_max_transfer(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request w = mk_request(1, OP_READ, 0, T_MAX_XFER + 512);

	send_request(f->dfd, &w);
	expect_proto_error(f);
}

static void test_sequence_beyond_buffer(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request w = mk_request(1, OP_WRITE, 0, 1024);

	w.req.sequence_byte_offset = 0;
	w.req.data_length = 1025;
	send_request(f->dfd, &w);
	expect_proto_error(f);
}

static void test_bad_cdb_length_and_direction(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request w = mk_request(1, OP_READ, 0, 16);

	w.req.cdb_length = SPT_CDB_MAX + 1;
	send_request(f->dfd, &w);
	expect_proto_error(f);
}

static void test_bad_direction(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request w = mk_request(1, OP_READ, 0, 16);

	w.req.direction = 4;
	send_request(f->dfd, &w);
	expect_proto_error(f);
}

static void test_duplicate_task_cookie(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request w = mk_request(0x8001, OP_HOLD, 0, 0);

	send_request(f->dfd, &w);
	send_request(f->dfd, &w);
	expect_proto_error(f);
	assert_int_equal(f->rec.scsis, 1);
	/* completing the held command after the error is harmless */
	spt_cmd_complete(f->rec.held[0]);
}

static void test_bad_session_frames(void **state)
{
	struct fx *f = *state;
	uint8_t shortpayload[4] = { 0 };

	send_frame(f->dfd, SPT_CC_SESSION_START, 0, shortpayload, sizeof(shortpayload));
	expect_proto_error(f);
}

static void test_daemon_close_is_epipe(void **state)
{
	struct fx *f = *state;
	struct spt_session_end se = { .itnexus_handle = htole64(5) };

	/* what came before the close is still handled */
	send_frame(f->dfd, SPT_CC_SESSION_END, 0, &se, sizeof(se));
	close(f->dfd);
	f->dfd = -1;
	assert_int_equal(spt_provider_dispatch(f->p), -EPIPE);
	assert_int_equal(f->rec.session_ends, 1);
	assert_int_equal(spt_provider_dispatch(f->p), -EPIPE);
	assert_int_equal(spt_provider_stop_session(f->p, 1, 0), -EPIPE);
}

/* ------------------------------------------------------------------ */
/* Closing                                                              */
/* ------------------------------------------------------------------ */

static void test_close_with_commands_held(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request w = mk_request(0x9001, OP_HOLD, 0, 4096);
	struct spt_cmd *cmd;

	f->rec.hold_tmfs = true;
	send_request(f->dfd, &w);
	send_tmf(f->dfd, 1, 0x1111, SPT_TMF_LOGICAL_UNIT_RESET, 0);
	assert_int_equal(spt_provider_dispatch(f->p), 0);
	cmd = f->rec.held[0];
	spt_provider_close(f->p);
	f->rec.p = NULL;
	/* late use: the buffer is still memory, nothing reaches sptd */
	memset(cmd->buf, 0x11, cmd->buf_len);
	assert_int_equal(f->shm[0], 0);
	spt_cmd_complete(cmd);
	f->rec.held_tmf->w.response = SPT_TMF_RSP_COMPLETE;
	spt_tmf_complete(f->rec.held_tmf);	/* the last one frees the connection */
	/* sptd sees the connection end */
	{
		uint8_t b;

		assert_int_equal(read(f->dfd, &b, 1), 0);
	}
}

static void test_close_inside_an_op(void **state)
{
	struct fx *f = *state;
	struct spt_wire_scsi_request w = mk_request(0xa001, OP_CLOSE, 0, 0);
	struct spt_wire_scsi_request later = mk_request(0xa002, OP_READ, 0, 0);

	send_request(f->dfd, &w);
	send_request(f->dfd, &later);
	assert_int_equal(spt_provider_dispatch(f->p), -ECANCELED);
	assert_null(f->rec.p);
	assert_int_equal(f->rec.scsis, 1);	/* nothing handled after the close */
}

/* ------------------------------------------------------------------ */
/* spt-memprovider, the real binary                                     */
/* ------------------------------------------------------------------ */

struct mp {
	char dir[64];
	char sock[128];
	char log[128];
	int lfd;
	int cfd;
	int memfd;
	uint8_t *shm;
	pid_t pid;
	uint64_t next_cookie;
};

static pid_t spawn_memprovider(const char *log, char *const argv[])
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd >= 0)
			dup2(fd, 2);
		execv(MEMPROVIDER_BIN, argv);
		_exit(127);
	}
	return pid;
}

/* Exit status of pid within T_WAIT_MS, or -1 (then killed). */
static int wait_exit(pid_t pid)
{
	for (int i = 0; i < T_WAIT_MS / 10; i++) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

/* Accepts the memprovider's connection and registers it. */
static void mp_accept(struct mp *m)
{
	struct pollfd pfd = { .fd = m->lfd, .events = POLLIN };
	struct spt_provider_registered reg = registered_payload(T_SHM);

	assert_int_equal(poll(&pfd, 1, T_WAIT_MS), 1);
	m->cfd = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(m->cfd >= 0);
	check_register_frame(m->cfd, T_NAME);
	send_register_answer(m->cfd, SPT_CTL_RC_SUCCESS, &reg, sizeof(reg), &m->memfd, 1);
}

static int mp_setup(void **state)
{
	struct mp *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	snprintf(m->dir, sizeof(m->dir), "/tmp/spt-memprovider-test-XXXXXX");
	assert_non_null(mkdtemp(m->dir));
	snprintf(m->sock, sizeof(m->sock), "%s/p.sock", m->dir);
	snprintf(m->log, sizeof(m->log), "%s/log", m->dir);
	m->lfd = listen_on(m->sock);
	m->memfd = make_memfd(T_SHM, &m->shm);
	m->cfd = -1;
	m->pid = -1;
	m->next_cookie = 0x100;
	*state = m;
	return 0;
}

static int mp_teardown(void **state)
{
	struct mp *m = *state;

	if (m->pid > 0) {
		kill(m->pid, SIGKILL);
		waitpid(m->pid, NULL, 0);
	}
	if (m->cfd >= 0)
		close(m->cfd);
	close(m->lfd);
	close(m->memfd);
	munmap(m->shm, T_SHM);
	unlink(m->sock);
	unlink(m->log);
	rmdir(m->dir);
	free(m);
	return 0;
}

/* One SCSI command through the memprovider: CDB, data-out already in the
 * buffer at offset 0 of the shm, one sequence. */
static struct spt_scsi_completion mp_command(struct mp *m, const uint8_t *cdb, uint8_t dir,
					     uint32_t len)
{
	struct spt_wire_scsi_request w = mk_request(m->next_cookie++, 0, 0, len);

	memcpy(w.req.cdb, cdb, 16);
	w.req.direction = dir;
	w.req.session_cookie = 0x5e55;
	w.req.expected_length = len;
	w.req.data_length = dir == SPT_DIR_OUT ? len : 0;
	send_request(m->cfd, &w);
	return recv_completion(m->cfd);
}

static void mp_session_start(struct mp *m)
{
	struct spt_session_start ss;

	memset(&ss, 0, sizeof(ss));
	ss.itnexus_handle = htole64(0x5e55);
	snprintf(ss.peer_address, sizeof(ss.peer_address), "127.0.0.1:5000");
	snprintf(ss.itnexus, sizeof(ss.itnexus), "iqn.i,i,0x1,%s,t,0x1", T_TARGET);
	send_frame(m->cfd, SPT_CC_SESSION_START, 0, &ss, sizeof(ss));
}

static void expected_serial(char out[17])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	const char *what = "spt-memprovider:" T_NAME;

	assert_true(EVP_Digest(what, strlen(what), md, &mdlen, EVP_sha256(), NULL));
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void mp_write_read(struct mp *m, uint32_t lba, uint8_t seed)
{
	uint8_t cdb[16] = { 0 };
	struct spt_scsi_completion c;

	/* WRITE(10) of 4 blocks */
	for (int i = 0; i < 2048; i++)
		m->shm[i] = (uint8_t)(i * 13 + seed);
	cdb[0] = 0x2a;
	spt_put_be32(cdb + 2, lba);
	spt_put_be16(cdb + 7, 4);
	c = mp_command(m, cdb, SPT_DIR_OUT, 2048);
	assert_int_equal(c.scsi_status, SPT_STATUS_GOOD);
	memset(m->shm, 0, 4096);
	/* READ(10) of the same blocks */
	cdb[0] = 0x28;
	c = mp_command(m, cdb, SPT_DIR_IN, 2048);
	assert_int_equal(c.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(c.data_in_length, 2048);
	for (int i = 0; i < 2048; i++)
		assert_int_equal(m->shm[i], (uint8_t)(i * 13 + seed));
}

static void mp_read_check(struct mp *m, uint32_t lba, uint8_t seed)
{
	uint8_t cdb[16] = { 0 };
	struct spt_scsi_completion c;

	memset(m->shm, 0, 4096);
	cdb[0] = 0x28;
	spt_put_be32(cdb + 2, lba);
	spt_put_be16(cdb + 7, 4);
	c = mp_command(m, cdb, SPT_DIR_IN, 2048);
	assert_int_equal(c.scsi_status, SPT_STATUS_GOOD);
	for (int i = 0; i < 2048; i++)
		assert_int_equal(m->shm[i], (uint8_t)(i * 13 + seed));
}

static bool log_contains(const char *path, const char *needle)
{
	char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

static void test_memprovider_is_a_disk(void **state)
{
	struct mp *m = *state;
	char *argv[] = { "spt-memprovider", "--socket", m->sock, "--name", T_NAME, "--size", "1M",
			 "--once", NULL };
	uint8_t cdb[16] = { 0 };
	struct spt_scsi_completion c;
	char serial[17];

	m->pid = spawn_memprovider(m->log, argv);
	mp_accept(m);
	mp_session_start(m);

	/* INQUIRY: a direct-access device, our vendor and product */
	cdb[0] = 0x12;
	spt_put_be16(cdb + 3, 96);
	c = mp_command(m, cdb, SPT_DIR_IN, 96);
	assert_int_equal(c.scsi_status, SPT_STATUS_GOOD);
	assert_true(c.data_in_length >= 36);
	assert_int_equal(m->shm[0] & 0x1f, 0x00);
	assert_memory_equal(m->shm + 8, "SPT     ", 8);
	assert_memory_equal(m->shm + 16, "spt memprovider ", 16);

	/* VPD 0x80: the serial derived from the name */
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x12;
	cdb[1] = 0x01;
	cdb[2] = 0x80;
	spt_put_be16(cdb + 3, 64);
	c = mp_command(m, cdb, SPT_DIR_IN, 64);
	assert_int_equal(c.scsi_status, SPT_STATUS_GOOD);
	expected_serial(serial);
	assert_int_equal(m->shm[3], 16);
	assert_memory_equal(m->shm + 4, serial, 16);

	/* READ CAPACITY(16): 2048 blocks of 512 */
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x9e;
	cdb[1] = 0x10;
	spt_put_be32(cdb + 10, 32);
	c = mp_command(m, cdb, SPT_DIR_IN, 32);
	assert_int_equal(c.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(spt_get_be64(m->shm), 2047);
	assert_int_equal(spt_get_be32(m->shm + 8), 512);

	mp_write_read(m, 100, 1);

	/* sptd closes the connection: --once ends with 0 */
	close(m->cfd);
	m->cfd = -1;
	assert_int_equal(wait_exit(m->pid), 0);
	m->pid = -1;
	assert_true(log_contains(m->log, "spt-memprovider: serving LUN 3 of " T_TARGET
				 " as ram0, 1048576 bytes"));
}

static void test_memprovider_reconnects_keeping_data(void **state)
{
	struct mp *m = *state;
	char *argv[] = { "spt-memprovider", "--socket", m->sock, "--name", T_NAME, "--size", "4M",
			 "--block-size", "512", NULL };

	m->pid = spawn_memprovider(m->log, argv);
	mp_accept(m);
	mp_session_start(m);
	mp_write_read(m, 7, 9);
	/* sptd "restarts": the provider comes back, the data with it */
	close(m->cfd);
	m->cfd = -1;
	mp_accept(m);
	mp_session_start(m);
	mp_read_check(m, 7, 9);
	/* SIGTERM ends it with 0 */
	kill(m->pid, SIGTERM);
	assert_int_equal(wait_exit(m->pid), 0);
	m->pid = -1;
}

static void test_memprovider_waits_for_the_socket(void **state)
{
	struct mp *m = *state;
	char *argv[] = { "spt-memprovider", "--socket", m->sock, "--name", T_NAME, "--size", "1M",
			 "--block-size", "4096", "--once", NULL };
	uint8_t cdb[16] = { 0 };
	struct spt_scsi_completion c;

	/* no daemon yet: it retries until the socket appears */
	close(m->lfd);
	unlink(m->sock);
	m->pid = spawn_memprovider(m->log, argv);
	usleep(300000);
	m->lfd = listen_on(m->sock);
	mp_accept(m);
	mp_session_start(m);
	cdb[0] = 0x9e;
	cdb[1] = 0x10;
	spt_put_be32(cdb + 10, 32);
	c = mp_command(m, cdb, SPT_DIR_IN, 32);
	assert_int_equal(c.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(spt_get_be64(m->shm), 255);
	assert_int_equal(spt_get_be32(m->shm + 8), 4096);
	/* a protocol error from the daemon's side: --once ends with 1 */
	send_frame(m->cfd, 0x1ff, 0, NULL, 0);
	assert_int_equal(wait_exit(m->pid), 1);
	m->pid = -1;
}

static void test_memprovider_refused_once_exits_1(void **state)
{
	struct mp *m = *state;
	char *argv[] = { "spt-memprovider", "--socket", m->sock, "--name", T_NAME, "--size", "1M",
			 "--once", NULL };
	struct pollfd pfd = { .fd = m->lfd, .events = POLLIN };
	uint8_t hdr[CTL_HEADER_LEN];

	m->pid = spawn_memprovider(m->log, argv);
	assert_int_equal(poll(&pfd, 1, T_WAIT_MS), 1);
	m->cfd = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC);
	check_register_frame(m->cfd, T_NAME);
	wire_header(hdr, SPT_CC_PROVIDER_REGISTER, SPT_CTL_RC_UNKNOWN_PROVIDER, 0, 0);
	write_all(m->cfd, hdr, sizeof(hdr));
	assert_int_equal(wait_exit(m->pid), 1);
	m->pid = -1;
	assert_true(log_contains(m->log, "no LUN for provider 'ram0'"));
}

static void test_memprovider_bad_command_lines(void **state)
{
	struct mp *m = *state;
	char *bad[][12] = {
		{ "spt-memprovider", "--socket", m->sock, "--name", T_NAME, NULL },
		{ "spt-memprovider", "--socket", m->sock, "--name", T_NAME, "--size", "0", NULL },
		{ "spt-memprovider", "--socket", m->sock, "--name", T_NAME, "--size", "1X", NULL },
		{ "spt-memprovider", "--socket", m->sock, "--name", T_NAME, "--size", "1000", NULL },
		{ "spt-memprovider", "--socket", m->sock, "--name", "a/b", "--size", "1M", NULL },
		{ "spt-memprovider", "--socket", m->sock, "--name", T_NAME, "--size", "1M",
		  "--block-size", "1024", NULL },
		{ "spt-memprovider", "--bogus", NULL },
		{ "spt-memprovider", "--socket", m->sock, "--name", T_NAME, "--size", "1M", "extra",
		  NULL },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pid_t pid = spawn_memprovider(m->log, bad[i]);

		assert_int_equal(wait_exit(pid), 2);
	}
	{
		char *help[] = { "spt-memprovider", "--help", NULL };

		assert_int_equal(wait_exit(spawn_memprovider(m->log, help)), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_fills_info, fx_setup, fx_teardown),
		cmocka_unit_test(test_register_refusals_map_to_errno),
		cmocka_unit_test(test_register_bad_answers),
		cmocka_unit_test(test_register_wrong_frames),
		cmocka_unit_test(test_register_checks_name_and_ops),
		cmocka_unit_test(test_connect_by_path),
		cmocka_unit_test_setup_teardown(test_session_start_reaches_ops_terminated, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_session_end_and_stop_answers, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_read_completion_carries_data_in, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_completion_lengths_clamped, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_write_in_two_sequences, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_later_sequence_of_forgotten_task_fails_alone,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_session_end_forgets_its_tasks, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_completion_outside_dispatch_is_sent, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_many_completions_survive_a_full_socket, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_tmf_abort_task_marks_the_task, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_tmf_task_set_and_reset_scope, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_bad_signature, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_bad_header_length_and_oversize, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_control_code, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_request_of_wrong_length, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_buffer_beyond_shm, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_buffer_offset_wraps, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_buffer_over_max_transfer, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sequence_beyond_buffer, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_bad_cdb_length_and_direction, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_bad_direction, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_task_cookie, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_bad_session_frames, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_daemon_close_is_epipe, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_close_with_commands_held, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_close_inside_an_op, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_memprovider_is_a_disk, mp_setup, mp_teardown),
		cmocka_unit_test_setup_teardown(test_memprovider_reconnects_keeping_data, mp_setup,
						mp_teardown),
		cmocka_unit_test_setup_teardown(test_memprovider_waits_for_the_socket, mp_setup,
						mp_teardown),
		cmocka_unit_test_setup_teardown(test_memprovider_refused_once_exits_1, mp_setup,
						mp_teardown),
		cmocka_unit_test_setup_teardown(test_memprovider_bad_command_lines, mp_setup,
						mp_teardown),
	};

	/* the fake daemon's writes to a provider that already left */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
