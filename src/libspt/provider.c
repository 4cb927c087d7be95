/*
 * libspt: the provider side of sptd's --provider-socket (include/spt/provider.h).
 *
 * One connection serves one LUN. Frames arrive on a non-blocking Unix
 * stream socket, are cut from a fixed input buffer (no allocation per
 * frame) and become calls of the provider's struct spt_provider_ops;
 * command data stays in the memfd sptd passed at registration, mapped
 * shared. Completions, TMF answers and stop requests are encoded into an
 * output buffer and sent as the socket takes them.
 *
 * Tasks: each SCSI request is held in a struct provider_task (from a pool
 * that grows in chunks and never shrinks, so there is no malloc per command
 * in steady state), found by task_cookie in a hash table. A task is
 *   AT_PROVIDER  between ops->scsi and spt_cmd_complete();
 *   BETWEEN      after a non-final data sequence completed with GOOD: sptd
 *                will send the next sequence under the same cookie, and
 *                the provider finds its per-command state (cmd->scratch)
 *                where it left it, as with an in-process engine.
 * sptd does not say when it gives up a task between sequences (the engine
 * frees such a task itself), so a BETWEEN task is forgotten when a TMF or
 * the SESSION_END of its session covers it, or when a new command (sequence
 * offset 0) arrives under its cookie.
 *
 * Re-entrancy: completions made inside an op only append to the output
 * buffer; the frame being handled was copied out of the input buffer
 * before the op was called, and the input buffer is only compacted between
 * frames. spt_provider_close() inside an op is allowed: the connection ends
 * at once and the memory goes when dispatch unwinds.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <spt/provider.h>
#include <spt/scsi.h>

#include "ctl/frame.h"
#include "libspt/provider_internal.h"

/* Commands held at once (AT_PROVIDER or BETWEEN); beyond it a request is
 * answered TASK SET FULL without reaching the provider. sptd keeps at most
 * 128 commands per session queued (the MaxCmdSN window). */
#define PROVIDER_CMDS_MAX 65536
/* Tasks allocated together when the pool runs dry. */
#define PROVIDER_POOL_CHUNK 64
/* Hash buckets of the in-flight table (a power of two; cookies are random). */
#define PROVIDER_HASH_BUCKETS 4096
/* TMFs held by the provider at once; beyond it a TMF is answered REJECTED. */
#define PROVIDER_TMFS_MAX 256
/* Stop requests (SESSION_END to sptd) awaiting their answer. */
#define PROVIDER_STOPS_MAX 256
/* The input buffer: at least one frame of the largest allowed payload. */
#define PROVIDER_IN_BUF (64u * 1024)
/* Bytes read per dispatch before returning to the caller's loop. */
#define PROVIDER_READ_BUDGET (256u * 1024)
/* Stop reading requests while this much output waits for sptd to read it:
 * sptd then holds what it wants to send (its own bounded queue). */
#define PROVIDER_OUT_HIGH_WATER (1u << 20)
#define PROVIDER_OUT_INITIAL (16u * 1024)
/* Largest frame the provider sends: a SCSI completion. */
#define PROVIDER_OUT_FRAME_MAX (CTL_HEADER_LEN + sizeof(struct spt_scsi_completion))
/* The output bound: once above the high-water mark no more requests are
 * read, so what can still be added is one answer per held command, held
 * TMF, pending stop and per frame already in the input buffer. */
#define PROVIDER_OUT_MAX                                                                  \
	((size_t)PROVIDER_OUT_HIGH_WATER +                                                \
	 ((size_t)PROVIDER_CMDS_MAX + PROVIDER_TMFS_MAX + PROVIDER_STOPS_MAX +            \
	  PROVIDER_IN_BUF / CTL_HEADER_LEN) * PROVIDER_OUT_FRAME_MAX)
/* File descriptors looked for on the register answer: one is expected, room
 * for more lets us close extras instead of having the kernel truncate. */
#define PROVIDER_REGISTER_FDS_MAX 4

_Static_assert(PROVIDER_IN_BUF >= CTL_HEADER_LEN + SPT_PROVIDER_FRAME_MAX,
	       "the input buffer holds a whole frame");
_Static_assert((PROVIDER_HASH_BUCKETS & (PROVIDER_HASH_BUCKETS - 1)) == 0,
	       "hash buckets are a power of two");

enum provider_task_state {
	PROVIDER_TASK_FREE = 0,
	PROVIDER_TASK_AT_PROVIDER,
	PROVIDER_TASK_BETWEEN,
};

struct provider_task {
	struct spt_cmd cmd;
	struct spt_provider *p;
	struct provider_task *next;	/* hash chain, or the free list */
	/* the request as sptd sent it: cmd->req is the provider's to read, the
	 * library trusts only its own copy */
	uint64_t cookie;		/* task_cookie */
	uint64_t session;		/* session_cookie */
	uint64_t data_offset;		/* the buffer in the shared memory */
	uint32_t buf_len;
	bool is_final;			/* of the sequence with the provider */
	uint8_t state;			/* enum provider_task_state */
};

struct provider_chunk {
	struct provider_chunk *next;
	struct provider_task tasks[PROVIDER_POOL_CHUNK];
};

struct provider_tmf {
	struct spt_tmf tmf;
	struct spt_provider *p;
	uint64_t tmf_cookie;
};

struct spt_provider {
	int fd;
	char name[SPT_PROVIDER_NAME_MAX];
	const struct spt_provider_ops *ops;
	void *lun_ctx;
	struct spt_provider_info info;
	uint8_t *shm;
	size_t shm_size;
	int err;			/* 0, or -errno once the connection is over */
	bool closing;			/* spt_provider_close() is calling ops->close */
	bool closed;			/* spt_provider_close() was called */
	unsigned in_dispatch;		/* spt_provider_dispatch() is on the stack */

	size_t in_len;
	uint8_t in[PROVIDER_IN_BUF];

	uint8_t *out;
	size_t out_head;		/* first byte not yet sent */
	size_t out_len;			/* end of the queued bytes */
	size_t out_cap;

	struct provider_task *buckets[PROVIDER_HASH_BUCKETS];
	struct provider_task *free_tasks;
	struct provider_chunk *chunks;
	uint32_t tasks_allocated;
	uint32_t tasks_held;		/* AT_PROVIDER + BETWEEN */
	uint32_t at_provider;
	uint32_t tmfs_held;

	uint64_t stops[PROVIDER_STOPS_MAX];	/* handles of stop requests awaiting answers */
	uint32_t nstops;
};

static void provider_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void provider_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void provider_log(const struct spt_provider *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The library has no logger of its own: one line on stderr, naming the
 * connection, for what the caller cannot see in a return code. */
static void provider_log(const struct spt_provider *p, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "libspt provider %s: %s\n", p->name, line);
}

/* [A-Za-z0-9._-], 1 to SPT_PROVIDER_NAME_MAX - 1 characters. */
static int provider_check_name(const char *name, char *err, size_t errlen)
{
	size_t len;

	if (!name || name[0] == '\0') {
		provider_seterr(err, errlen, "provider name is empty");
		return -EINVAL;
	}
	len = strnlen(name, SPT_PROVIDER_NAME_MAX);
	if (len >= SPT_PROVIDER_NAME_MAX) {
		provider_seterr(err, errlen, "provider name is longer than %d characters",
				SPT_PROVIDER_NAME_MAX - 1);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-')) {
			provider_seterr(err, errlen,
					"provider name '%s' has a character outside [A-Za-z0-9._-]", name);
			return -EINVAL;
		}
	}
	return 0;
}

/* What connect and attach refuse before touching the socket. */
static int provider_check_args(const char *name, const struct spt_provider_ops *ops, char *err,
			       size_t errlen)
{
	int ret = provider_check_name(name, err, errlen);

	if (ret < 0)
		return ret;
	if (!ops || !ops->scsi || !ops->tmf) {
		provider_seterr(err, errlen, "the provider ops need scsi and tmf");
		return -EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Output                                                               */
/* ------------------------------------------------------------------ */

/* Marks the connection over; the first error is the one reported. */
static int provider_fail(struct spt_provider *p, int error)
{
	if (p->err == 0)
		p->err = error;
	return p->err;
}

bool provider_output_pending(const struct spt_provider *p)
{
	return !p->closed && p->err == 0 && p->out_len > p->out_head;
}

/* Below the high-water mark of output, requests are read. */
static bool provider_wants_input(const struct spt_provider *p)
{
	return p->out_len - p->out_head <= PROVIDER_OUT_HIGH_WATER;
}

/* Appends one frame to the output buffer. A frame that cannot be queued
 * would leave sptd waiting for an answer forever: the connection is over. */
static int provider_queue(struct spt_provider *p, uint32_t control_code, uint32_t return_code,
			  const void *payload, uint32_t length)
{
	struct spt_io_header h;
	size_t need = CTL_HEADER_LEN + (size_t)length;

	if (p->err)
		return p->err;
	if (p->out_head == p->out_len)
		p->out_head = p->out_len = 0;
	if (p->out_len - p->out_head + need > PROVIDER_OUT_MAX) {
		provider_log(p, "output buffer over its limit of %zu bytes", (size_t)PROVIDER_OUT_MAX);
		return provider_fail(p, -ENOBUFS);
	}
	if (p->out_len + need > p->out_cap && p->out_head > 0) {
		memmove(p->out, p->out + p->out_head, p->out_len - p->out_head);
		p->out_len -= p->out_head;
		p->out_head = 0;
	}
	if (p->out_len + need > p->out_cap) {
		size_t cap = p->out_cap ? p->out_cap : PROVIDER_OUT_INITIAL;
		uint8_t *n;

		while (cap < p->out_len + need)
			cap *= 2;
		if (cap > PROVIDER_OUT_MAX)
			cap = PROVIDER_OUT_MAX;
		n = realloc(p->out, cap);
		if (!n) {
			provider_log(p, "out of memory for %zu bytes of output", cap);
			return provider_fail(p, -ENOMEM);
		}
		p->out = n;
		p->out_cap = cap;
	}
	ctl_header_init(&h, control_code, return_code, 0, length);
	ctl_header_encode(p->out + p->out_len, &h);
	if (length)
		memcpy(p->out + p->out_len + CTL_HEADER_LEN, payload, length);
	p->out_len += need;
	return 0;
}

/* Sends what the socket takes now; the rest waits for POLLOUT. */
static int provider_flush(struct spt_provider *p)
{
	while (p->err == 0 && p->out_head < p->out_len) {
		ssize_t n = send(p->fd, p->out + p->out_head, p->out_len - p->out_head,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return provider_fail(p, -EPIPE);
		if (n < 0)
			return provider_fail(p, -errno);
		p->out_head += (size_t)n;
	}
	if (p->out_head == p->out_len)
		p->out_head = p->out_len = 0;
	return p->err;
}

/* After a completion made outside dispatch: nobody else would send it. */
static void provider_flush_if_idle(struct spt_provider *p)
{
	if (p->in_dispatch == 0)
		provider_flush(p);
}

/* ------------------------------------------------------------------ */
/* Tasks                                                                */
/* ------------------------------------------------------------------ */

static size_t provider_hash(uint64_t cookie)
{
	/* Fibonacci hashing: spreads cookies that differ in any bits */
	return (size_t)((cookie * 0x9e3779b97f4a7c15ull) >> 52) & (PROVIDER_HASH_BUCKETS - 1);
}

static struct provider_task *provider_task_find(struct spt_provider *p, uint64_t cookie)
{
	struct provider_task *t;

	for (t = p->buckets[provider_hash(cookie)]; t; t = t->next)
		if (t->cookie == cookie)
			return t;
	return NULL;
}

static void provider_task_unlink(struct spt_provider *p, struct provider_task *t)
{
	struct provider_task **pp = &p->buckets[provider_hash(t->cookie)];

	while (*pp && *pp != t)
		pp = &(*pp)->next;
	if (*pp)
		*pp = t->next;
	t->next = NULL;
}

/* A task from the pool, or NULL at PROVIDER_CMDS_MAX / without memory. */
static struct provider_task *provider_task_get(struct spt_provider *p, int *why)
{
	struct provider_task *t;

	if (p->tasks_held >= PROVIDER_CMDS_MAX) {
		*why = -EBUSY;
		return NULL;
	}
	if (!p->free_tasks) {
		struct provider_chunk *c = calloc(1, sizeof(*c));

		if (!c) {
			*why = -ENOMEM;
			return NULL;
		}
		c->next = p->chunks;
		p->chunks = c;
		for (size_t i = 0; i < PROVIDER_POOL_CHUNK; i++) {
			c->tasks[i].p = p;
			c->tasks[i].next = p->free_tasks;
			p->free_tasks = &c->tasks[i];
		}
		p->tasks_allocated += PROVIDER_POOL_CHUNK;
	}
	t = p->free_tasks;
	p->free_tasks = t->next;
	t->next = NULL;
	p->tasks_held++;
	return t;
}

/* Out of the table, back to the pool. */
static void provider_task_release(struct spt_provider *p, struct provider_task *t)
{
	if (t->state == PROVIDER_TASK_FREE)
		return;
	provider_task_unlink(p, t);
	t->state = PROVIDER_TASK_FREE;
	t->next = p->free_tasks;
	p->free_tasks = t;
	p->tasks_held--;
}

static void provider_free(struct spt_provider *p)
{
	struct provider_chunk *c;

	while ((c = p->chunks)) {
		p->chunks = c->next;
		free(c);
	}
	if (p->shm)
		munmap(p->shm, p->shm_size);
	if (p->fd >= 0)
		close(p->fd);
	free(p->out);
	free(p);
}

/* After close: the memory goes once nothing can reach it any more, i.e.
 * no dispatch on the stack and no command or TMF left with the provider. */
static void provider_maybe_free(struct spt_provider *p)
{
	if (p->closed && p->in_dispatch == 0 && p->at_provider == 0 && p->tmfs_held == 0)
		provider_free(p);
}

/* The completion hook of every struct spt_cmd this library hands out. */
static void provider_cmd_done(struct spt_cmd *cmd)
{
	struct provider_task *t = cmd->engine_priv;
	struct spt_provider *p = t->p;
	struct spt_scsi_completion w;

	if (t->state != PROVIDER_TASK_AT_PROVIDER) {
		provider_log(p, "task 0x%016" PRIx64 " completed twice; ignored", t->cookie);
		return;
	}
	p->at_provider--;
	if (p->closed) {
		provider_task_release(p, t);
		provider_maybe_free(p);
		return;
	}
	memcpy(&w, &cmd->cpl, sizeof(w));
	/* the answer goes to the task sptd sent, whatever the provider wrote */
	w.task_cookie = htole64(t->cookie);
	/* sptd ends the connection over data-in beyond the buffer: a provider
	 * bug must cost one command, not every command of the LUN */
	if (cmd->cpl.data_in_length > t->buf_len) {
		provider_log(p, "task 0x%016" PRIx64 ": data_in_length %u beyond its %u-byte buffer; clamped",
			     t->cookie, cmd->cpl.data_in_length, t->buf_len);
		w.data_in_length = t->buf_len;
	}
	if (cmd->cpl.sense_length > SPT_SENSE_MAX)
		w.sense_length = SPT_SENSE_MAX;
	w.transfer_length = htole32(w.transfer_length);
	w.data_in_length = htole32(w.data_in_length);
	memset(w.reserved, 0, sizeof(w.reserved));
	provider_queue(p, SPT_CC_SCSI_COMPLETION, SPT_CTL_RC_SUCCESS, &w, sizeof(w));

	/* GOOD on a non-final sequence asks for the next one, which reaches
	 * this same cmd (cmd->scratch kept); an aborted task gets none */
	if (!t->is_final && cmd->cpl.scsi_status == SPT_STATUS_GOOD && !cmd->aborted &&
	    p->err == 0)
		t->state = PROVIDER_TASK_BETWEEN;
	else
		provider_task_release(p, t);
	provider_flush_if_idle(p);
}

/* A request answered by the library itself (no task for it). */
static int provider_answer_status(struct spt_provider *p, uint64_t cookie, uint8_t status,
				  uint8_t key, uint8_t asc, uint8_t ascq)
{
	struct spt_scsi_completion w;

	memset(&w, 0, sizeof(w));
	w.task_cookie = htole64(cookie);
	w.scsi_status = status;
	if (status == SPT_STATUS_CHECK_CONDITION)
		w.sense_length = (uint8_t)spt_sense_build(w.sense, sizeof(w.sense), false, key, asc,
							  ascq, NULL);
	return provider_queue(p, SPT_CC_SCSI_COMPLETION, SPT_CTL_RC_SUCCESS, &w, sizeof(w));
}

/* ------------------------------------------------------------------ */
/* Frames from sptd                                                     */
/* ------------------------------------------------------------------ */

static int provider_proto_error(struct spt_provider *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* sptd sent something this version cannot accept: the connection is over. */
static int provider_proto_error(struct spt_provider *p, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	provider_log(p, "protocol error: %s; closing the connection", why);
	return provider_fail(p, -EPROTO);
}

static int provider_on_session_start(struct spt_provider *p, const uint8_t *payload, uint32_t len)
{
	struct spt_session_start ss;

	if (len != sizeof(ss))
		return provider_proto_error(p, "SESSION_START of %u bytes, expected %zu", len,
					    sizeof(ss));
	memcpy(&ss, payload, sizeof(ss));
	ss.itnexus_handle = le64toh(ss.itnexus_handle);
	/* strings end within their fields whatever sptd sent */
	ss.peer_address[sizeof(ss.peer_address) - 1] = '\0';
	ss.itnexus[sizeof(ss.itnexus) - 1] = '\0';
	ss.chap_user_name[sizeof(ss.chap_user_name) - 1] = '\0';
	if (p->ops->session_start)
		p->ops->session_start(p->lun_ctx, &ss);
	return 0;
}

/* Tasks of a session that ended: the ones with the provider are aborted (as
 * an in-process engine marks them), the ones between sequences are gone. */
static void provider_session_tasks_end(struct spt_provider *p, uint64_t handle)
{
	for (size_t b = 0; b < PROVIDER_HASH_BUCKETS; b++) {
		struct provider_task *t = p->buckets[b], *next;

		for (; t; t = next) {
			next = t->next;
			if (t->session != handle)
				continue;
			if (t->state == PROVIDER_TASK_BETWEEN)
				provider_task_release(p, t);
			else
				t->cmd.aborted = true;
		}
	}
}

static bool provider_stop_answered(struct spt_provider *p, uint64_t handle)
{
	for (uint32_t i = 0; i < p->nstops; i++) {
		if (p->stops[i] == handle) {
			p->stops[i] = p->stops[--p->nstops];
			return true;
		}
	}
	return false;
}

/*
 * SESSION_END is both a notification and the answer to our own stop
 * request. The rule: while a stop request for handle H is outstanding, the
 * first SESSION_END carrying H is its answer (sptd answers "once the stop
 * has begun", before the session is gone, and sends the notification when
 * it is); the answer is logged if ReturnCode is not SUCCESS and never
 * reaches ops->session_end. A SESSION_END with a non-zero ReturnCode and no
 * stop outstanding is a stray answer: logged, not passed on either, since a
 * notification always carries SUCCESS.
 */
static int provider_on_session_end(struct spt_provider *p, const struct spt_io_header *h,
				   const uint8_t *payload, uint32_t len)
{
	struct spt_session_end se;

	/* the answer to a stop may repeat its struct spt_ctl_session_stop */
	if (len != sizeof(se) && len != sizeof(struct spt_ctl_session_stop))
		return provider_proto_error(p, "SESSION_END of %u bytes, expected %zu", len,
					    sizeof(se));
	memcpy(&se, payload, sizeof(se));
	se.itnexus_handle = le64toh(se.itnexus_handle);
	if (provider_stop_answered(p, se.itnexus_handle)) {
		if (h->return_code != SPT_CTL_RC_SUCCESS)
			provider_log(p, "stopping session 0x%016" PRIx64 " failed: %s (%u)",
				     se.itnexus_handle, ctl_return_code_name(h->return_code),
				     h->return_code);
		return 0;
	}
	if (h->return_code != SPT_CTL_RC_SUCCESS) {
		provider_log(p, "SESSION_END for session 0x%016" PRIx64
			     " with %s (%u) and no stop request of ours; ignored",
			     se.itnexus_handle, ctl_return_code_name(h->return_code), h->return_code);
		return 0;
	}
	if (len != sizeof(se))
		return provider_proto_error(p, "SESSION_END notification of %u bytes, expected %zu",
					    len, sizeof(se));
	provider_session_tasks_end(p, se.itnexus_handle);
	if (p->ops->session_end)
		p->ops->session_end(p->lun_ctx, &se);
	return 0;
}

/* The TMF answer: sptd's tmf_cookie, the TMF with its response. */
static int provider_queue_tmf_answer(struct spt_provider *p, uint64_t tmf_cookie,
				     const struct spt_tmf_wire *tmf)
{
	struct spt_wire_tmf w;

	w.tmf_cookie = htole64(tmf_cookie);
	w.tmf.itnexus_handle = htole64(tmf->itnexus_handle);
	w.tmf.lun = htole64(tmf->lun);
	w.tmf.function = htole32(tmf->function);
	w.tmf.response = htole32(tmf->response);
	w.tmf.reference_task_cookie = htole64(tmf->reference_task_cookie);
	return provider_queue(p, SPT_CC_TMF, SPT_CTL_RC_SUCCESS, &w, sizeof(w));
}

static void provider_tmf_done(struct spt_tmf *tmf)
{
	struct provider_tmf *pt = tmf->engine_priv;
	struct spt_provider *p = pt->p;

	p->tmfs_held--;
	if (!p->closed)
		provider_queue_tmf_answer(p, pt->tmf_cookie, &tmf->w);
	free(pt);
	if (p->closed)
		provider_maybe_free(p);
	else
		provider_flush_if_idle(p);
}

/* Whether a TMF covers a task (SAM-5 7: the task set of the LU, one I_T
 * nexus's share of it, or one task). */
static bool provider_tmf_covers(const struct spt_tmf_wire *w, const struct provider_task *t)
{
	switch (w->function) {
	case SPT_TMF_ABORT_TASK:
		return t->cookie == w->reference_task_cookie;
	case SPT_TMF_ABORT_TASK_SET:
		return t->session == w->itnexus_handle;
	case SPT_TMF_CLEAR_TASK_SET:
	case SPT_TMF_LOGICAL_UNIT_RESET:
	case SPT_TMF_TARGET_WARM_RESET:
	case SPT_TMF_TARGET_COLD_RESET:
		return true;
	default:
		return false;	/* CLEAR ACA, TASK REASSIGN: no task ends */
	}
}

static int provider_on_tmf(struct spt_provider *p, const uint8_t *payload, uint32_t len)
{
	struct spt_wire_tmf w;
	struct provider_tmf *pt;

	if (len != sizeof(w))
		return provider_proto_error(p, "TMF of %u bytes, expected %zu", len, sizeof(w));
	memcpy(&w, payload, sizeof(w));
	w.tmf_cookie = le64toh(w.tmf_cookie);
	w.tmf.itnexus_handle = le64toh(w.tmf.itnexus_handle);
	w.tmf.lun = le64toh(w.tmf.lun);
	w.tmf.function = le32toh(w.tmf.function);
	w.tmf.response = le32toh(w.tmf.response);
	w.tmf.reference_task_cookie = le64toh(w.tmf.reference_task_cookie);

	for (size_t b = 0; b < PROVIDER_HASH_BUCKETS; b++) {
		struct provider_task *t = p->buckets[b], *next;

		for (; t; t = next) {
			next = t->next;
			if (!provider_tmf_covers(&w.tmf, t))
				continue;
			/* sptd frees a task it aborts between sequences: nothing
			 * more comes for it */
			if (t->state == PROVIDER_TASK_BETWEEN)
				provider_task_release(p, t);
			else
				t->cmd.aborted = true;
		}
	}

	pt = p->tmfs_held < PROVIDER_TMFS_MAX ? calloc(1, sizeof(*pt)) : NULL;
	if (!pt) {
		/* RFC 7143 11.6.1: "Function rejected" when it cannot be run */
		provider_log(p, "TMF 0x%016" PRIx64 " rejected: %u TMFs already held or no memory",
			     w.tmf_cookie, p->tmfs_held);
		w.tmf.response = SPT_TMF_RSP_REJECTED;
		return provider_queue_tmf_answer(p, w.tmf_cookie, &w.tmf);
	}
	pt->p = p;
	pt->tmf_cookie = w.tmf_cookie;
	pt->tmf.w = w.tmf;
	pt->tmf.done = provider_tmf_done;
	pt->tmf.engine_priv = pt;
	p->tmfs_held++;
	p->ops->tmf(p->lun_ctx, &pt->tmf);
	return 0;
}

/* Checks every field of a request that the library relies on. */
static int provider_check_request(struct spt_provider *p, const struct spt_wire_scsi_request *w)
{
	const struct spt_scsi_request *r = &w->req;

	if (r->cdb_length == 0 || r->cdb_length > SPT_CDB_MAX)
		return provider_proto_error(p, "task 0x%016" PRIx64 ": CDB length %u (1..%d)",
					    r->task_cookie, r->cdb_length, SPT_CDB_MAX);
	if (r->direction > SPT_DIR_BIDI)
		return provider_proto_error(p, "task 0x%016" PRIx64 ": data direction %u",
					    r->task_cookie, r->direction);
	if (r->is_final > 1)
		return provider_proto_error(p, "task 0x%016" PRIx64 ": is_final %u", r->task_cookie,
					    r->is_final);
	if (r->task_attribute > SPT_TASK_ACA)
		return provider_proto_error(p, "task 0x%016" PRIx64 ": task attribute %u",
					    r->task_cookie, r->task_attribute);
	if (w->buf_len > p->info.max_transfer_bytes)
		return provider_proto_error(p, "task 0x%016" PRIx64 ": buffer of %u bytes beyond the %u-byte maximum transfer",
					    r->task_cookie, w->buf_len, p->info.max_transfer_bytes);
	/* both sides of the comparison in 64 bits, the subtraction cannot wrap */
	if (w->data_offset > p->shm_size || w->buf_len > p->shm_size - w->data_offset)
		return provider_proto_error(p, "task 0x%016" PRIx64 ": buffer [%" PRIu64 ", +%u) beyond the %zu-byte shared memory",
					    r->task_cookie, w->data_offset, w->buf_len, p->shm_size);
	if ((uint64_t)r->sequence_byte_offset + r->data_length > w->buf_len)
		return provider_proto_error(p, "task 0x%016" PRIx64 ": sequence [%u, +%u) beyond its %u-byte buffer",
					    r->task_cookie, r->sequence_byte_offset, r->data_length,
					    w->buf_len);
	return 0;
}

static int provider_on_scsi_request(struct spt_provider *p, uint32_t timeout,
				    const uint8_t *payload, uint32_t len)
{
	struct spt_wire_scsi_request w;
	struct provider_task *t;
	int ret, why = 0;

	(void)timeout;	/* sptd enforces the command timeout itself */
	if (len != sizeof(w))
		return provider_proto_error(p, "SCSI_REQUEST of %u bytes, expected %zu", len,
					    sizeof(w));
	memcpy(&w, payload, sizeof(w));
	w.req.session_cookie = le64toh(w.req.session_cookie);
	w.req.task_cookie = le64toh(w.req.task_cookie);
	w.req.lun = le64toh(w.req.lun);
	w.req.sequence_byte_offset = le32toh(w.req.sequence_byte_offset);
	w.req.data_length = le32toh(w.req.data_length);
	w.req.expected_length = le32toh(w.req.expected_length);
	w.data_offset = le64toh(w.data_offset);
	w.buf_len = le32toh(w.buf_len);
	w.reserved = le32toh(w.reserved);
	ret = provider_check_request(p, &w);
	if (ret < 0)
		return ret;

	t = provider_task_find(p, w.req.task_cookie);
	if (t && t->state == PROVIDER_TASK_AT_PROVIDER)
		return provider_proto_error(p, "task 0x%016" PRIx64 " sent again while the provider holds it",
					    w.req.task_cookie);
	if (t && w.req.sequence_byte_offset == 0) {
		/* a new command: sptd gave the old one up between sequences */
		provider_task_release(p, t);
		t = NULL;
	}
	if (t) {
		/* spt.h: later sequences come "always with the same buffer" */
		if (w.data_offset != t->data_offset || w.buf_len != t->buf_len)
			return provider_proto_error(p, "task 0x%016" PRIx64 " moved its buffer between sequences",
						    w.req.task_cookie);
	} else if (w.req.sequence_byte_offset != 0) {
		/* a later sequence of a task forgotten here (a TMF or the end
		 * of its session covered it): its earlier state is gone */
		provider_log(p, "task 0x%016" PRIx64 ": sequence at offset %u of an unknown task; failed",
			     w.req.task_cookie, w.req.sequence_byte_offset);
		return provider_answer_status(p, w.req.task_cookie, SPT_STATUS_CHECK_CONDITION,
					      SPT_KEY_ABORTED_COMMAND, 0x08, 0x00);
	} else {
		t = provider_task_get(p, &why);
		if (!t) {
			/* SAM-5 5.3: TASK SET FULL when no more tasks fit, BUSY
			 * when a resource is short for a while */
			return provider_answer_status(p, w.req.task_cookie,
						      why == -EBUSY ? SPT_STATUS_TASK_SET_FULL
								    : SPT_STATUS_BUSY, 0, 0, 0);
		}
		t->cookie = w.req.task_cookie;
		t->session = w.req.session_cookie;
		t->data_offset = w.data_offset;
		t->buf_len = w.buf_len;
		t->cmd.aborted = false;
		t->cmd.buf = p->shm + w.data_offset;
		t->cmd.buf_len = w.buf_len;
		t->cmd.done = provider_cmd_done;
		t->cmd.engine_priv = t;
		t->next = p->buckets[provider_hash(t->cookie)];
		p->buckets[provider_hash(t->cookie)] = t;
	}
	t->cmd.req = w.req;
	t->is_final = w.req.is_final;
	memset(&t->cmd.cpl, 0, sizeof(t->cmd.cpl));
	t->cmd.cpl.task_cookie = w.req.task_cookie;
	t->state = PROVIDER_TASK_AT_PROVIDER;
	p->at_provider++;
	p->ops->scsi(p->lun_ctx, &t->cmd);
	return 0;
}

static int provider_on_frame(struct spt_provider *p, const struct spt_io_header *h,
			     const uint8_t *payload)
{
	switch (h->control_code) {
	case SPT_CC_SESSION_START:
		return provider_on_session_start(p, payload, h->length);
	case SPT_CC_SESSION_END:
		return provider_on_session_end(p, h, payload, h->length);
	case SPT_CC_TMF:
		return provider_on_tmf(p, payload, h->length);
	case SPT_CC_SCSI_REQUEST:
		return provider_on_scsi_request(p, h->timeout, payload, h->length);
	default:
		return provider_proto_error(p, "unexpected control code 0x%x", h->control_code);
	}
}

/* Handles the complete frames in the input buffer; keeps a partial one. */
static int provider_handle_input(struct spt_provider *p)
{
	/* the payload of the frame being handled, out of p->in so that nothing
	 * an op does can move it; sized by the largest frame sptd may send */
	_Alignas(8) uint8_t payload[SPT_PROVIDER_FRAME_MAX];
	size_t pos = 0;
	int ret = 0;

	while (ret == 0 && !p->closed && p->err == 0 && p->in_len - pos >= CTL_HEADER_LEN) {
		struct spt_io_header h;
		char why[CTL_WHY_MAX];

		ctl_header_decode(p->in + pos, &h);
		if (ctl_header_check(&h, SPT_PROVIDER_FRAME_MAX, why, sizeof(why)) != 0) {
			ret = provider_proto_error(p, "%s", why);
			break;
		}
		if (p->in_len - pos < CTL_HEADER_LEN + (size_t)h.length)
			break;
		memcpy(payload, p->in + pos + CTL_HEADER_LEN, h.length);
		pos += CTL_HEADER_LEN + (size_t)h.length;
		ret = provider_on_frame(p, &h, payload);
	}
	if (pos > 0) {
		memmove(p->in, p->in + pos, p->in_len - pos);
		p->in_len -= pos;
	}
	return ret < 0 ? ret : p->err;
}

/* Reads and handles until the socket is empty or the budget is spent. */
static int provider_read(struct spt_provider *p)
{
	size_t budget = PROVIDER_READ_BUDGET;
	int ret = 0;

	while (ret == 0 && !p->closed && budget > 0) {
		ssize_t n;

		/* backpressure: sptd keeps its requests while ours wait */
		if (!provider_wants_input(p))
			break;
		n = recv(p->fd, p->in + p->in_len, sizeof(p->in) - p->in_len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 && errno == ECONNRESET)
			return provider_fail(p, -EPIPE);
		if (n < 0)
			return provider_fail(p, -errno);
		if (n == 0)
			return provider_fail(p, -EPIPE);
		p->in_len += (size_t)n;
		budget -= (size_t)n < budget ? (size_t)n : budget;
		ret = provider_handle_input(p);
	}
	return ret;
}

int spt_provider_dispatch(struct spt_provider *p)
{
	int ret;

	if (p->closed)
		return -EBADF;
	if (p->in_dispatch)
		return -EBUSY;	/* called from inside an op */
	if (p->err)
		return p->err;
	p->in_dispatch++;
	ret = provider_flush(p);
	if (ret == 0)
		ret = provider_read(p);
	if (ret == 0 && !p->closed)
		ret = provider_flush(p);
	p->in_dispatch--;
	if (p->closed) {
		/* an op closed the connection: p is the caller's no more */
		provider_maybe_free(p);
		return -ECANCELED;
	}
	if (ret < 0)
		provider_fail(p, ret);
	return p->err;
}

/* Beyond provider.h: a signal interrupting the poll returns -EINTR with the
 * connection intact (call again to go on), so that a provider can look at
 * what its signal handler set. */
int spt_provider_run(struct spt_provider *p)
{
	int ret;

	for (;;) {
		struct pollfd pfd;

		ret = spt_provider_dispatch(p);
		if (ret < 0)
			break;
		pfd.fd = p->fd;
		/* not POLLIN while reading is paused: it would spin */
		pfd.events = provider_wants_input(p) ? POLLIN : 0;
		if (provider_output_pending(p))
			pfd.events |= POLLOUT;
		pfd.revents = 0;
		if (poll(&pfd, 1, -1) < 0) {
			/* a signal: the caller decides whether to go on */
			ret = -errno;
			break;
		}
	}
	return ret;
}

int spt_provider_stop_session(struct spt_provider *p, uint64_t itnexus_handle, uint32_t grace_s)
{
	int ret;

	if (p->closed)
		return -EBADF;
	if (p->err)
		return p->err;
	if (grace_s > SPT_CTL_GRACE_MAX)
		return -EINVAL;
	if (p->nstops >= PROVIDER_STOPS_MAX)
		return -EAGAIN;
	if (grace_s == 0) {
		struct spt_session_end se = { .itnexus_handle = htole64(itnexus_handle) };

		/* the short form: sptd's own --logout-grace */
		ret = provider_queue(p, SPT_CC_SESSION_END, SPT_CTL_RC_SUCCESS, &se, sizeof(se));
	} else {
		struct spt_ctl_session_stop st = {
			.itnexus_handle = htole64(itnexus_handle),
			.grace_seconds = htole32(grace_s),
		};

		ret = provider_queue(p, SPT_CC_SESSION_END, SPT_CTL_RC_SUCCESS, &st, sizeof(st));
	}
	if (ret < 0)
		return ret;
	p->stops[p->nstops++] = itnexus_handle;
	provider_flush_if_idle(p);
	return p->err;
}

const struct spt_provider_info *spt_provider_get_info(const struct spt_provider *p)
{
	return &p->info;
}

int spt_provider_fd(const struct spt_provider *p)
{
	return p->fd;
}

void spt_provider_close(struct spt_provider *p)
{
	if (!p || p->closed || p->closing)
		return;
	/* the provider may complete what it holds while releasing the LUN:
	 * those answers still go out, as far as the socket takes them */
	p->closing = true;
	if (p->ops->close)
		p->ops->close(p->lun_ctx);
	if (p->err == 0)
		provider_flush(p);
	p->closed = true;
	close(p->fd);
	p->fd = -1;
	if (p->shm && p->at_provider > 0) {
		/* commands the provider still holds point into the shared
		 * memory: give them private memory in its place, so that late
		 * writes touch neither sptd's buffers nor an unmapped page */
		void *m = mmap(p->shm, p->shm_size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);

		if (m == MAP_FAILED) {
			munmap(p->shm, p->shm_size);
			p->shm = NULL;
		}
	} else if (p->shm) {
		munmap(p->shm, p->shm_size);
		p->shm = NULL;
	}
	provider_maybe_free(p);
}

/* ------------------------------------------------------------------ */
/* Registration                                                         */
/* ------------------------------------------------------------------ */

/* Sends all of buf on the blocking socket (SO_SNDTIMEO bounds it). */
static int provider_send_all(int fd, const uint8_t *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return -ETIMEDOUT;
		if (n < 0 && errno == ECONNRESET)
			return -EPIPE;
		if (n < 0)
			return -errno;
		off += (size_t)n;
	}
	return 0;
}

/*
 * Reads exactly len bytes (never more: the frames after the answer belong
 * to dispatch) and collects a file descriptor passed with them into *memfd;
 * any further descriptor is closed. *ctrunc says the kernel had to drop
 * control data.
 */
static int provider_recv_exact(int fd, uint8_t *buf, size_t len, int *memfd, bool *ctrunc)
{
	size_t have = 0;

	while (have < len) {
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(int) * PROVIDER_REGISTER_FDS_MAX)];
		} control;
		struct iovec iov = { .iov_base = buf + have, .iov_len = len - have };
		struct msghdr msg = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = control.buf,
			.msg_controllen = sizeof(control.buf),
		};
		struct cmsghdr *c;
		ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return -ETIMEDOUT;
		if (n < 0 && errno == ECONNRESET)
			return -EPIPE;
		if (n < 0)
			return -errno;
		for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			size_t nfds;

			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
			    c->cmsg_len < CMSG_LEN(0))
				continue;
			nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < nfds; i++) {
				int got;

				memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(got));
				if (*memfd < 0)
					*memfd = got;
				else
					close(got);
			}
		}
		if (msg.msg_flags & MSG_CTRUNC)
			*ctrunc = true;
		if (n == 0)
			return -EPIPE;
		have += (size_t)n;
	}
	return 0;
}

/* A refused registration: ReturnCode to -errno, with sptd's message. */
static int provider_register_refused(uint32_t rc, const uint8_t *msg, uint32_t msglen,
				     const char *name, char *err, size_t errlen)
{
	char text[SPT_CTL_MESSAGE_MAX];
	const char *sep;
	int ret;

	ctl_message_decode(msg, msglen, text, sizeof(text));
	sep = text[0] ? ": " : "";
	switch (rc) {
	case SPT_CTL_RC_UNKNOWN_PROVIDER:
		provider_seterr(err, errlen, "sptd has no LUN for provider '%s' (--lun provider:%s)%s%s",
				name, name, sep, text);
		ret = -ENODEV;
		break;
	case SPT_CTL_RC_PROVIDER_IN_USE:
		provider_seterr(err, errlen, "another provider already serves '%s'%s%s", name, sep,
				text);
		ret = -EEXIST;
		break;
	case SPT_CTL_RC_VERSION:
		provider_seterr(err, errlen, "sptd does not speak provider protocol version %d%s%s",
				SPT_PROVIDER_VERSION, sep, text);
		ret = -EPROTONOSUPPORT;
		break;
	default:
		provider_seterr(err, errlen, "sptd refused the registration of '%s' with code %u (%s)%s%s",
				name, rc, ctl_return_code_name(rc), sep, text);
		ret = -EPROTO;
		break;
	}
	return ret;
}

/* Checks and maps the memfd of the answer into p. */
static int provider_map_shm(struct spt_provider *p, int memfd, char *err, size_t errlen)
{
	struct stat st;
	void *m;

	if (fstat(memfd, &st) < 0) {
		provider_seterr(err, errlen, "fstat of the shared memory: %s", strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < p->info.shm_size) {
		provider_seterr(err, errlen, "the shared memory is %lld bytes, sptd announced %" PRIu64,
				(long long)st.st_size, p->info.shm_size);
		return -EPROTO;
	}
	m = mmap(NULL, p->shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (m == MAP_FAILED) {
		int e = errno;

		provider_seterr(err, errlen, "mapping %zu bytes of shared memory: %s", p->shm_size,
				strerror(e));
		return -e;
	}
	p->shm = m;
	return 0;
}

/* The PROVIDER_REGISTER answer's payload into p->info. */
static int provider_take_registered(struct spt_provider *p, const uint8_t *payload, uint32_t len,
				    char *err, size_t errlen)
{
	struct spt_provider_registered r;

	if (len != sizeof(r)) {
		provider_seterr(err, errlen, "register answer of %u bytes, expected %zu", len, sizeof(r));
		return -EPROTO;
	}
	memcpy(&r, payload, sizeof(r));
	p->info.lun = le64toh(r.lun);
	p->info.shm_size = le64toh(r.shm_size);
	p->info.max_transfer_bytes = le32toh(r.max_transfer_bytes);
	p->info.command_timeout = le32toh(r.command_timeout);
	p->info.relative_port = le16toh(r.relative_port);
	p->info.tpgt = le16toh(r.tpgt);
	if (!memchr(r.target_name, '\0', sizeof(r.target_name))) {
		provider_seterr(err, errlen, "the target name in the register answer has no end");
		return -EPROTO;
	}
	_Static_assert(sizeof(p->info.target_name) == sizeof(r.target_name), "target name sizes");
	memcpy(p->info.target_name, r.target_name, sizeof(r.target_name));
	if (p->info.shm_size == 0 || p->info.shm_size > SIZE_MAX) {
		provider_seterr(err, errlen, "shared memory of %" PRIu64 " bytes", p->info.shm_size);
		return -EPROTO;
	}
	p->shm_size = (size_t)p->info.shm_size;
	if (p->info.max_transfer_bytes == 0 || p->info.max_transfer_bytes > p->info.shm_size) {
		provider_seterr(err, errlen, "maximum transfer of %u bytes with %" PRIu64
				" bytes of shared memory", p->info.max_transfer_bytes, p->info.shm_size);
		return -EPROTO;
	}
	return 0;
}

int provider_attach(int fd, const char *name, const struct spt_provider_ops *ops, void *lun_ctx,
		    struct spt_provider **out, char *err, size_t errlen)
{
	struct timeval tv = { .tv_sec = PROVIDER_REGISTER_TIMEOUT_S };
	uint8_t frame[CTL_HEADER_LEN + sizeof(struct spt_provider_register)];
	uint8_t hdr[CTL_HEADER_LEN];
	uint8_t *payload = NULL;
	struct spt_provider_register reg;
	struct spt_provider *p = NULL;
	struct spt_io_header h;
	char why[CTL_WHY_MAX];
	bool ctrunc = false;
	int memfd = -1, flags, ret;

	*out = NULL;
	ret = provider_check_args(name, ops, err, errlen);
	if (ret < 0)
		goto out;
	p = calloc(1, sizeof(*p));
	if (!p) {
		provider_seterr(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	p->fd = fd;
	fd = -1;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->ops = ops;
	p->lun_ctx = lun_ctx;

	/* registration blocks, but not for ever on a daemon that hangs */
	if (setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		ret = -errno;
		provider_seterr(err, errlen, "setsockopt: %s", strerror(-ret));
		goto out;
	}

	memset(&reg, 0, sizeof(reg));
	reg.version = htole32(SPT_PROVIDER_VERSION);
	reg.flags = htole32(0);
	memcpy(reg.name, name, strlen(name));
	ctl_header_init(&h, SPT_CC_PROVIDER_REGISTER, SPT_CTL_RC_SUCCESS, PROVIDER_REGISTER_TIMEOUT_S,
			sizeof(reg));
	ctl_header_encode(frame, &h);
	memcpy(frame + CTL_HEADER_LEN, &reg, sizeof(reg));
	ret = provider_send_all(p->fd, frame, sizeof(frame));
	if (ret < 0 && ret != -EPIPE) {
		provider_seterr(err, errlen, "sending PROVIDER_REGISTER: %s", strerror(-ret));
		goto out;
	}
	/* a daemon that refused us before reading (a peer it does not
	 * accept) may have said why before closing: read it either way */

	ret = provider_recv_exact(p->fd, hdr, sizeof(hdr), &memfd, &ctrunc);
	if (ret == -EPIPE) {
		provider_seterr(err, errlen, "sptd closed the connection without answering PROVIDER_REGISTER");
		goto out;
	}
	if (ret < 0) {
		provider_seterr(err, errlen, "reading the PROVIDER_REGISTER answer: %s", strerror(-ret));
		goto out;
	}
	ctl_header_decode(hdr, &h);
	if (ctl_header_check(&h, SPT_PROVIDER_FRAME_MAX, why, sizeof(why)) != 0) {
		provider_seterr(err, errlen, "bad register answer: %s", why);
		ret = -EPROTO;
		goto out;
	}
	if (h.length) {
		payload = malloc(h.length);
		if (!payload) {
			provider_seterr(err, errlen, "out of memory");
			ret = -ENOMEM;
			goto out;
		}
		ret = provider_recv_exact(p->fd, payload, h.length, &memfd, &ctrunc);
		if (ret < 0) {
			provider_seterr(err, errlen, "reading the PROVIDER_REGISTER answer: %s",
					ret == -EPIPE ? "connection closed" : strerror(-ret));
			goto out;
		}
	}
	/* spt.h: an error not tied to a request comes with ControlCode 0 */
	if (h.control_code != SPT_CC_PROVIDER_REGISTER &&
	    !(h.control_code == 0 && h.return_code != SPT_CTL_RC_SUCCESS)) {
		provider_seterr(err, errlen, "sptd answered PROVIDER_REGISTER with control code 0x%x",
				h.control_code);
		ret = -EPROTO;
		goto out;
	}
	if (h.return_code != SPT_CTL_RC_SUCCESS) {
		ret = provider_register_refused(h.return_code, payload, h.length, name, err, errlen);
		goto out;
	}
	if (ctrunc) {
		provider_seterr(err, errlen, "the register answer carried more control data than a memfd");
		ret = -EPROTO;
		goto out;
	}
	ret = provider_take_registered(p, payload, h.length, err, errlen);
	if (ret < 0)
		goto out;
	if (memfd < 0) {
		provider_seterr(err, errlen, "the register answer carried no shared memory");
		ret = -EPROTO;
		goto out;
	}
	ret = provider_map_shm(p, memfd, err, errlen);
	if (ret < 0)
		goto out;

	flags = fcntl(p->fd, F_GETFL);
	if (flags < 0 || fcntl(p->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		ret = -errno;
		provider_seterr(err, errlen, "making the socket non-blocking: %s", strerror(-ret));
		goto out;
	}
	*out = p;
	p = NULL;
	ret = 0;
out:
	if (memfd >= 0)
		close(memfd);	/* the mapping keeps the memory */
	if (fd >= 0)
		close(fd);
	if (p)
		provider_free(p);
	free(payload);
	return ret;
}

/* Beyond provider.h: -EINVAL for a bad name or ops, -ENAMETOOLONG for a
 * path sun_path cannot hold, -ETIMEDOUT when sptd does not answer within
 * PROVIDER_REGISTER_TIMEOUT_S, -EPIPE when it closes without answering,
 * -EINTR when a signal interrupts the wait. */
int spt_provider_connect(const char *socket_path, const char *name,
			 const struct spt_provider_ops *ops, void *lun_ctx,
			 struct spt_provider **out, char *err, size_t errlen)
{
	struct timeval tv = { .tv_sec = PROVIDER_REGISTER_TIMEOUT_S };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len;
	int fd = -1, ret;

	*out = NULL;
	ret = provider_check_args(name, ops, err, errlen);
	if (ret < 0)
		goto out;
	if (!socket_path || socket_path[0] == '\0') {
		provider_seterr(err, errlen, "no provider socket path given");
		ret = -EINVAL;
		goto out;
	}
	len = strlen(socket_path);
	if (len >= sizeof(sa.sun_path)) {
		provider_seterr(err, errlen, "socket path is %zu bytes, longer than the limit of %zu",
				len, sizeof(sa.sun_path) - 1);
		ret = -ENAMETOOLONG;
		goto out;
	}
	memcpy(sa.sun_path, socket_path, len);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		provider_seterr(err, errlen, "socket: %s", strerror(-ret));
		goto out;
	}
	/* a Unix connect waits while the listen backlog is full: bounded too */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		ret = -errno;
		provider_seterr(err, errlen, "setsockopt: %s", strerror(-ret));
		goto out;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT : -errno;
		provider_seterr(err, errlen, "connecting to %s: %s", socket_path, strerror(-ret));
		goto out;
	}
	ret = provider_attach(fd, name, ops, lun_ctx, out, err, errlen);
	fd = -1;	/* attach took it */
out:
	if (fd >= 0)
		close(fd);
	return ret;
}
