/*
 * External providers over sptd's --provider-socket (see remote.h and the
 * protocol comment in include/spt/spt.h).
 *
 * Each registered connection owns a memfd that sptd creates, seals against
 * resizing and maps shared; the provider maps it too. A command gets a run
 * of chunks of it for its whole life (all its data sequences): data-out is
 * copied in before a request is sent, data-in copied out when the
 * completion arrives. What the engine asks of a command is bounded here:
 * a command not completed within the command timeout, or aborted and not
 * completed within the TMF timeout, is completed to the engine at once and
 * its chunks stay reserved (an "orphan") until the provider answers it or
 * goes away, so a late write into the shared memory never lands in another
 * command's buffer.
 */
#include "spt/remote.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spt/scsi.h>

#include "ctl/frame.h"
#include "util/evloop.h"
#include "util/list.h"
#include "util/log.h"
#include "util/unixsock.h"

#define REMOTE_CHUNK 4096u		/* shared-memory allocation unit */
#define REMOTE_HASH_BUCKETS 1024u	/* commands by task cookie, per connection */
#define REMOTE_IN_BUF (64u << 10)	/* received bytes not yet parsed */
#define REMOTE_MAGIC 0x53505452u	/* marks a command this module has seen */
#define REMOTE_LISTEN_BACKLOG 16

/* LOGICAL UNIT COMMUNICATION FAILURE / TIME-OUT (SPC-4 table of ASCs) */
#define ASC_LU_COMMUNICATION 0x08
#define ASCQ_COMMUNICATION_FAILURE 0x00
#define ASCQ_COMMUNICATION_TIMEOUT 0x01

struct remote_conn;

/*
 * A command as this module tracks it: inside the engine's spt_cmd scratch
 * while the engine holds the command, or on the heap as an orphan.
 */
struct remote_cmd {
	uint32_t magic;
	bool in_flight;		/* a request is with the provider */
	bool waiting;		/* queued for shared memory */
	bool orphan;		/* the engine has it back; only the chunks are held */
	struct spt_cmd *cmd;	/* NULL for an orphan */
	struct remote_conn *conn;	/* the connection it belongs to; NULL once that died */
	uint64_t cookie;
	uint64_t shm_off;
	uint32_t shm_len;	/* bytes reserved; 0: none */
	uint64_t deadline_ms;	/* command timeout of the request in flight */
	uint64_t abort_seen_ms;	/* when the engine's abort was first seen */
	struct remote_cmd *hnext;
	struct list_node node;	/* conn's inflight, parked, waitq or orphans */
};
_Static_assert(sizeof(struct remote_cmd) <= SPT_PROVIDER_SCRATCH, "remote_cmd fits the scratch");

/* A TMF sent to the provider; tmf NULL: one of ours (after a timeout). */
struct remote_tmf {
	struct list_node node;
	struct spt_tmf *tmf;
	uint64_t cookie;
	uint64_t deadline_ms;
};

struct remote_session {
	struct list_node node;
	struct spt_session_start ss;
};

struct remote_lun {
	struct list_node node;		/* r->luns */
	struct spt_remote *r;
	char name[SPT_PROVIDER_NAME_MAX];
	uint64_t lun;
	char target_name[224];
	uint16_t tpgt, relative_port;
	struct remote_conn *conn;	/* the registered provider, or NULL */
	struct list_node sessions;	/* struct remote_session: who reaches the LUN */
	size_t nsessions;
	bool closed;
};

struct remote_conn {
	struct ev_handler h;
	struct spt_remote *r;
	struct list_node node;		/* r->conns */
	unsigned id;
	pid_t pid;
	uint64_t connected_ms;
	struct remote_lun *lun;		/* NULL until registered */
	bool dead;
	bool flush_queued;
	uint32_t events;
	uint8_t in[REMOTE_IN_BUF];
	uint32_t in_len;
	uint8_t *out;
	size_t out_len, out_sent, out_cap;
	int memfd;
	uint8_t *shm;
	uint64_t shm_size;
	uint64_t *chunk_map;		/* 1 bit per chunk, set = in use */
	uint32_t nchunks, free_chunks;
	struct remote_cmd *hash[REMOTE_HASH_BUCKETS];
	struct list_node inflight, parked, waitq, orphans, tmfs;
	uint64_t next_tmf_cookie;
};

struct spt_remote {
	struct ev_loop *loop;
	struct spt_remote_config cfg;
	char path[108];
	struct ev_handler listen;
	struct list_node conns, luns;
	size_t nconns;
	unsigned next_id;
	spt_remote_stop_fn stop;
	void *stop_arg;
	bool closing;		/* the loop has stopped: nothing deferred runs any more */
	bool shutting_down;	/* sptd is stopping: no new registrations */
};

static void remote_conn_kill(struct remote_conn *c, const char *why);
static void remote_send_request(struct remote_conn *c, struct remote_cmd *rc);

/* ---- shared memory ---- */

static bool remote_chunk_used(const struct remote_conn *c, uint32_t i)
{
	return c->chunk_map[i / 64] & (1ull << (i % 64));
}

static void remote_chunks_mark(struct remote_conn *c, uint32_t first, uint32_t n, bool used)
{
	for (uint32_t i = first; i < first + n; i++) {
		if (used)
			c->chunk_map[i / 64] |= 1ull << (i % 64);
		else
			c->chunk_map[i / 64] &= ~(1ull << (i % 64));
	}
	if (used)
		c->free_chunks -= n;
	else
		c->free_chunks += n;
}

/* First fit: low offsets are reused, so a light load touches few pages. */
static bool remote_shm_alloc(struct remote_conn *c, struct remote_cmd *rc, uint32_t bytes)
{
	uint32_t n = (bytes + REMOTE_CHUNK - 1) / REMOTE_CHUNK, run = 0;

	if (n == 0 || n > c->free_chunks)
		return n == 0;
	for (uint32_t i = 0; i < c->nchunks; i++) {
		if (i % 64 == 0 && c->chunk_map[i / 64] == UINT64_MAX) {
			run = 0;
			i += 63;
			continue;
		}
		if (remote_chunk_used(c, i)) {
			run = 0;
			continue;
		}
		if (++run == n) {
			remote_chunks_mark(c, i + 1 - n, n, true);
			rc->shm_off = (uint64_t)(i + 1 - n) * REMOTE_CHUNK;
			rc->shm_len = n * REMOTE_CHUNK;
			return true;
		}
	}
	return false;
}

static void remote_shm_free(struct remote_conn *c, struct remote_cmd *rc)
{
	if (!rc->shm_len)
		return;
	remote_chunks_mark(c, (uint32_t)(rc->shm_off / REMOTE_CHUNK), rc->shm_len / REMOTE_CHUNK, false);
	rc->shm_len = 0;
}

/* ---- commands by cookie ---- */

static struct remote_cmd **remote_bucket(struct remote_conn *c, uint64_t cookie)
{
	/* cookies of one session are consecutive: mix the bits */
	uint64_t h = cookie * 0x9e3779b97f4a7c15ull;

	return &c->hash[(h >> 40) % REMOTE_HASH_BUCKETS];
}

static struct remote_cmd *remote_find(struct remote_conn *c, uint64_t cookie)
{
	for (struct remote_cmd *rc = *remote_bucket(c, cookie); rc; rc = rc->hnext)
		if (rc->cookie == cookie)
			return rc;
	return NULL;
}

static void remote_hash_add(struct remote_conn *c, struct remote_cmd *rc)
{
	struct remote_cmd **b = remote_bucket(c, rc->cookie);

	rc->hnext = *b;
	*b = rc;
}

static void remote_hash_del(struct remote_conn *c, struct remote_cmd *rc)
{
	for (struct remote_cmd **p = remote_bucket(c, rc->cookie); *p; p = &(*p)->hnext) {
		if (*p == rc) {
			*p = rc->hnext;
			rc->hnext = NULL;
			return;
		}
	}
}

/* The command leaves its connection: no chunks, no list, not findable. */
static void remote_cmd_detach(struct remote_cmd *rc)
{
	struct remote_conn *c = rc->conn;

	if (!c)
		return;
	remote_shm_free(c, rc);
	remote_hash_del(c, rc);
	if (list_linked(&rc->node))
		list_del(&rc->node);
	rc->in_flight = rc->waiting = false;
	rc->conn = NULL;
}

/* ---- output ---- */

static void remote_update_events(struct remote_conn *c)
{
	uint32_t ev = EPOLLIN;

	if (c->dead)
		return;
	if (c->out_sent < c->out_len)
		ev |= EPOLLOUT;
	if (ev != c->events && ev_mod(c->r->loop, &c->h, ev) == 0)
		c->events = ev;
}

static void remote_flush(struct remote_conn *c)
{
	while (!c->dead && c->out_sent < c->out_len) {
		ssize_t w = send(c->h.fd, c->out + c->out_sent, c->out_len - c->out_sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			remote_conn_kill(c, strerror(errno));
			return;
		}
		c->out_sent += (size_t)w;
	}
	if (c->out_sent == c->out_len)
		c->out_sent = c->out_len = 0;
	remote_update_events(c);
}

static void remote_flush_deferred(void *arg)
{
	struct remote_conn *c = arg;

	c->flush_queued = false;
	remote_flush(c);
}

/* Queues one frame; written after the current event (one send for a batch). */
static void remote_send(struct remote_conn *c, uint32_t code, uint32_t rc, uint32_t timeout,
			const void *payload, uint32_t len)
{
	struct spt_io_header h;
	size_t need;

	if (c->dead)
		return;
	if (c->out_sent && c->out_sent == c->out_len)
		c->out_sent = c->out_len = 0;
	need = c->out_len + CTL_HEADER_LEN + len;
	if (need - c->out_sent > SPT_REMOTE_OUT_MAX) {
		remote_conn_kill(c, "provider does not read what it is sent");
		return;
	}
	if (need > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 65536;
		uint8_t *p;

		while (cap < need)
			cap *= 2;
		p = realloc(c->out, cap);
		if (!p) {
			remote_conn_kill(c, "out of memory for its frames");
			return;
		}
		c->out = p;
		c->out_cap = cap;
	}
	ctl_header_init(&h, code, rc, timeout, len);
	ctl_header_encode(c->out + c->out_len, &h);
	if (len)
		memcpy(c->out + c->out_len + CTL_HEADER_LEN, payload, len);
	c->out_len = need;
	if (!c->flush_queued) {
		if (ev_defer(c->r->loop, remote_flush_deferred, c) == 0)
			c->flush_queued = true;
		else
			remote_flush(c);
	}
}

/* ---- toward the engine ---- */

static void remote_fail(struct spt_cmd *cmd, uint8_t key, uint8_t asc, uint8_t ascq)
{
	uint64_t cookie = cmd->cpl.task_cookie;

	memset(&cmd->cpl, 0, sizeof(cmd->cpl));
	cmd->cpl.task_cookie = cookie;
	spt_cmd_check_condition(cmd, false, key, asc, ascq, NULL);
}

/* Completes a command the provider will not (or may no longer) answer.
 * In flight, its chunks become an orphan's until the provider answers. */
static void remote_cmd_abandon(struct remote_cmd *rc, uint8_t ascq)
{
	struct remote_conn *c = rc->conn;
	struct spt_cmd *cmd = rc->cmd;

	if (c && rc->in_flight) {
		struct remote_cmd *o = malloc(sizeof(*o));

		if (!o) {
			remote_cmd_detach(rc);
			remote_conn_kill(c, "out of memory");
		} else {
			remote_hash_del(c, rc);
			list_del(&rc->node);
			*o = *rc;
			o->cmd = NULL;
			o->orphan = true;
			o->in_flight = false;
			o->hnext = NULL;
			list_init(&o->node);
			remote_hash_add(c, o);
			list_add_tail(&c->orphans, &o->node);
			rc->shm_len = 0;
			rc->conn = NULL;
			rc->in_flight = false;
		}
	} else {
		remote_cmd_detach(rc);
	}
	rc->magic = 0;
	remote_fail(cmd, SPT_KEY_ABORTED_COMMAND, ASC_LU_COMMUNICATION, ascq);
	spt_cmd_complete(cmd);
}

/* ---- toward the provider ---- */

static void remote_send_tmf(struct remote_conn *c, struct spt_tmf *tmf, const struct spt_tmf_wire *w)
{
	struct remote_tmf *t = calloc(1, sizeof(*t));
	struct spt_wire_tmf wt;

	if (!t) {
		if (tmf)
			spt_tmf_complete(tmf);
		return;
	}
	t->tmf = tmf;
	t->cookie = ++c->next_tmf_cookie;
	t->deadline_ms = ev_now_ms() + (uint64_t)c->r->cfg.tmf_timeout_s * 1000;
	list_add_tail(&c->tmfs, &t->node);
	memset(&wt, 0, sizeof(wt));
	wt.tmf_cookie = htole64(t->cookie);
	wt.tmf.itnexus_handle = htole64(w->itnexus_handle);
	wt.tmf.lun = htole64(w->lun);
	wt.tmf.function = htole32(w->function);
	wt.tmf.response = htole32(w->response);
	wt.tmf.reference_task_cookie = htole64(w->reference_task_cookie);
	remote_send(c, SPT_CC_TMF, 0, c->r->cfg.tmf_timeout_s, &wt, sizeof(wt));
}

static void remote_send_request(struct remote_conn *c, struct remote_cmd *rc)
{
	struct spt_cmd *cmd = rc->cmd;
	const struct spt_scsi_request *q = &cmd->req;
	struct spt_wire_scsi_request w;

	if (q->data_length)
		memcpy(c->shm + rc->shm_off + q->sequence_byte_offset,
		       cmd->buf + q->sequence_byte_offset, q->data_length);
	memset(&w, 0, sizeof(w));
	w.req = *q;
	w.req.session_cookie = htole64(q->session_cookie);
	w.req.task_cookie = htole64(q->task_cookie);
	w.req.lun = htole64(q->lun);
	w.req.sequence_byte_offset = htole32(q->sequence_byte_offset);
	w.req.data_length = htole32(q->data_length);
	w.req.expected_length = htole32(q->expected_length);
	w.data_offset = htole64(rc->shm_off);
	w.buf_len = htole32(cmd->buf_len);
	rc->in_flight = true;
	rc->abort_seen_ms = 0;
	rc->deadline_ms = ev_now_ms() + (uint64_t)c->r->cfg.command_timeout_s * 1000;
	list_add_tail(&c->inflight, &rc->node);
	remote_send(c, SPT_CC_SCSI_REQUEST, 0, c->r->cfg.command_timeout_s, &w, sizeof(w));
}

/* Commands that waited for shared memory, in arrival order. */
static void remote_run_waiting(struct remote_conn *c)
{
	while (!c->dead && !list_empty(&c->waitq)) {
		struct remote_cmd *rc = list_first(&c->waitq, struct remote_cmd, node);

		if (!remote_shm_alloc(c, rc, rc->cmd->buf_len))
			return;
		list_del(&rc->node);
		rc->waiting = false;
		remote_send_request(c, rc);
	}
}

/* ---- the provider ops of a remote LUN ---- */

static void remote_scsi(void *ctx, struct spt_cmd *cmd)
{
	struct remote_lun *l = ctx;
	struct remote_conn *c = l->conn;
	struct remote_cmd *rc = (struct remote_cmd *)cmd->scratch;

	if (rc->magic != REMOTE_MAGIC) {
		if (!c || c->dead) {
			spt_scsi_lun_not_connected(cmd);
			spt_cmd_complete(cmd);
			return;
		}
		if (remote_find(c, cmd->req.task_cookie)) {
			/* cookies are unique while referenced; two sessions whose
			 * random starting points met would end here */
			cmd->cpl.scsi_status = SPT_STATUS_BUSY;
			spt_cmd_complete(cmd);
			return;
		}
		memset(rc, 0, sizeof(*rc));
		rc->magic = REMOTE_MAGIC;
		rc->cmd = cmd;
		rc->conn = c;
		rc->cookie = cmd->req.task_cookie;
		list_init(&rc->node);
		remote_hash_add(c, rc);
		if (!remote_shm_alloc(c, rc, cmd->buf_len)) {
			rc->waiting = true;
			list_add_tail(&c->waitq, &rc->node);
			return;
		}
	} else {
		/* a later data sequence: its buffer lives in the connection
		 * that saw the first one */
		if (!rc->conn || rc->conn != c || c->dead) {
			remote_cmd_detach(rc);
			rc->magic = 0;
			remote_fail(cmd, SPT_KEY_ABORTED_COMMAND, ASC_LU_COMMUNICATION,
				    ASCQ_COMMUNICATION_FAILURE);
			spt_cmd_complete(cmd);
			return;
		}
		list_del(&rc->node);	/* from parked */
	}
	remote_send_request(c, rc);
}

static void remote_tmf_op(void *ctx, struct spt_tmf *tmf)
{
	struct remote_lun *l = ctx;
	struct remote_conn *c = l->conn;

	if (!c || c->dead) {
		/* nothing of this LUN is with a provider */
		tmf->w.response = SPT_TMF_RSP_COMPLETE;
		spt_tmf_complete(tmf);
		return;
	}
	if (tmf->w.function == SPT_TMF_ABORT_TASK) {
		struct remote_cmd *rc = remote_find(c, tmf->w.reference_task_cookie);

		/* between sequences the engine will not hand it back again */
		if (rc && !rc->orphan && !rc->in_flight && !rc->waiting) {
			remote_cmd_detach(rc);
			rc->magic = 0;
		}
	}
	/* a command still waiting for memory never reached the provider */
	struct list_node *n, *tmp;

	list_for_each_safe(n, tmp, &c->waitq) {
		struct remote_cmd *rc = list_entry(n, struct remote_cmd, node);

		if (rc->cmd->aborted) {
			struct spt_cmd *cmd = rc->cmd;

			remote_cmd_detach(rc);
			rc->magic = 0;
			cmd->cpl.scsi_status = SPT_STATUS_TASK_ABORTED;
			spt_cmd_complete(cmd);
			break;	/* the list may have changed: the tick finishes the rest */
		}
	}
	if (c->dead) {
		tmf->w.response = SPT_TMF_RSP_COMPLETE;
		spt_tmf_complete(tmf);
		return;
	}
	remote_send_tmf(c, tmf, &tmf->w);
}

static void remote_send_session_start(struct remote_conn *c, const struct spt_session_start *ss)
{
	struct spt_session_start w = *ss;

	w.itnexus_handle = htole64(ss->itnexus_handle);
	remote_send(c, SPT_CC_SESSION_START, 0, 0, &w, sizeof(w));
}

static void remote_session_start(void *ctx, const struct spt_session_start *ss)
{
	struct remote_lun *l = ctx;
	struct remote_session *s = malloc(sizeof(*s));

	if (!s) {
		log_err("provider %s: out of memory for session 0x%016" PRIx64 "; a provider that "
			"registers later will not hear of it", l->name, ss->itnexus_handle);
	} else {
		s->ss = *ss;
		list_add_tail(&l->sessions, &s->node);
		l->nsessions++;
	}
	if (l->conn)
		remote_send_session_start(l->conn, ss);
}

static void remote_session_end(void *ctx, const struct spt_session_end *se)
{
	struct remote_lun *l = ctx;
	struct list_node *n, *tmp;

	list_for_each_safe(n, tmp, &l->sessions) {
		struct remote_session *s = list_entry(n, struct remote_session, node);

		if (s->ss.itnexus_handle == se->itnexus_handle) {
			list_del(&s->node);
			l->nsessions--;
			free(s);
			break;
		}
	}
	if (l->conn) {
		struct spt_session_end w = { .itnexus_handle = htole64(se->itnexus_handle) };

		remote_send(l->conn, SPT_CC_SESSION_END, 0, 0, &w, sizeof(w));
	}
}

static void remote_lun_close(void *ctx)
{
	struct remote_lun *l = ctx;

	l->closed = true;
	/* sptd is stopping: nothing may be completed to the engine any more,
	 * and spt_remote_close() disconnects the provider */
	if (ev_loop_stopping(l->r->loop))
		return;
	/* the LUN was removed at run time (no session uses it): its provider
	 * is told by the closed connection, and the name is free again */
	if (l->conn)
		remote_conn_kill(l->conn, "its LUN was removed");
	while (!list_empty(&l->sessions)) {
		struct remote_session *s = list_first(&l->sessions, struct remote_session, node);

		list_del(&s->node);
		free(s);
	}
	list_del(&l->node);
	free(l);
}

static void remote_lun_status(void *ctx, struct spt_lun_status *st)
{
	struct remote_lun *l = ctx;

	snprintf(st->backend, sizeof(st->backend), "provider:%s", l->name);
	st->state = l->conn && !l->conn->dead ? "online" : "no provider";
	st->size_bytes = 0;
	st->block_size = 0;
	st->read_only = false;
}

static const struct spt_provider_ops remote_ops = {
	.name = "provider",
	.session_start = remote_session_start,
	.session_end = remote_session_end,
	.tmf = remote_tmf_op,
	.scsi = remote_scsi,
	.close = remote_lun_close,
};

/* ---- frames from the provider ---- */

static bool remote_name_valid(const char *name, size_t max)
{
	size_t n = strnlen(name, max);

	if (n == 0 || n == max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

static struct remote_lun *remote_lun_by_name(struct spt_remote *r, const char *name)
{
	struct list_node *n;

	list_for_each(n, &r->luns) {
		struct remote_lun *l = list_entry(n, struct remote_lun, node);

		if (!strcmp(l->name, name))
			return l;
	}
	return NULL;
}

/* The answer that carries the memfd: sent at once, with SCM_RIGHTS. */
static int remote_send_registered(struct remote_conn *c, const struct spt_provider_registered *reg)
{
	uint8_t frame[CTL_HEADER_LEN + sizeof(*reg)];
	struct spt_io_header h;
	union {
		struct cmsghdr align;
		uint8_t buf[CMSG_SPACE(sizeof(int))];
	} ctrl;
	struct iovec iov = { .iov_base = frame, .iov_len = sizeof(frame) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctrl.buf, .msg_controllen = sizeof(ctrl.buf),
	};
	struct cmsghdr *cm;
	ssize_t w;

	ctl_header_init(&h, SPT_CC_PROVIDER_REGISTER, SPT_CTL_RC_SUCCESS, 0, sizeof(*reg));
	ctl_header_encode(frame, &h);
	memcpy(frame + CTL_HEADER_LEN, reg, sizeof(*reg));
	memset(&ctrl, 0, sizeof(ctrl));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &c->memfd, sizeof(int));
	do {
		w = sendmsg(c->h.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	if ((size_t)w < sizeof(frame)) {
		/* the descriptor went with the first byte; the rest queues */
		size_t rest = sizeof(frame) - (size_t)w;
		uint8_t *p = malloc(rest > 65536 ? rest : 65536);

		if (!p)
			return -ENOMEM;
		memcpy(p, frame + w, rest);
		free(c->out);
		c->out = p;
		c->out_cap = rest > 65536 ? rest : 65536;
		c->out_len = rest;
		c->out_sent = 0;
		remote_update_events(c);
	}
	return 0;
}

static int remote_shm_create(struct remote_conn *c, const char *name)
{
	char label[SPT_PROVIDER_NAME_MAX + 16];

	snprintf(label, sizeof(label), "spt-provider-%s", name);
	c->memfd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (c->memfd < 0)
		return -errno;
	c->shm_size = c->r->cfg.shm_size;
	if (ftruncate(c->memfd, (off_t)c->shm_size) < 0)
		return -errno;
	/* a provider that shrank the file would make our copies fault */
	if (fcntl(c->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		return -errno;
	c->shm = mmap(NULL, c->shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->memfd, 0);
	if (c->shm == MAP_FAILED) {
		c->shm = NULL;
		return -errno;
	}
	c->nchunks = (uint32_t)(c->shm_size / REMOTE_CHUNK);
	c->free_chunks = c->nchunks;
	c->chunk_map = calloc((c->nchunks + 63) / 64, sizeof(uint64_t));
	if (!c->chunk_map)
		return -ENOMEM;
	/* bits past the last chunk count as used */
	for (uint32_t i = c->nchunks; i % 64; i++)
		c->chunk_map[i / 64] |= 1ull << (i % 64);
	return 0;
}

static void remote_refuse(struct remote_conn *c, uint32_t code, uint32_t rc, const char *why)
{
	log_warn("provider socket: connection %u (pid %d): %s", c->id, (int)c->pid, why);
	remote_send(c, code, rc, 0, why, (uint32_t)strlen(why) + 1);
	remote_flush(c);
	remote_conn_kill(c, why);
}

static void remote_on_register(struct remote_conn *c, const uint8_t *p, uint32_t len)
{
	struct spt_provider_register req;
	struct spt_provider_registered reg;
	struct remote_lun *l;
	struct list_node *n;
	char why[160];
	int err;

	if (c->lun) {
		remote_refuse(c, SPT_CC_PROVIDER_REGISTER, SPT_CTL_RC_BAD_REQUEST, "registered twice");
		return;
	}
	if (len != sizeof(req)) {
		remote_refuse(c, SPT_CC_PROVIDER_REGISTER, SPT_CTL_RC_BAD_REQUEST,
			      "PROVIDER_REGISTER has the wrong length");
		return;
	}
	memcpy(&req, p, sizeof(req));
	if (le32toh(req.version) != SPT_PROVIDER_VERSION) {
		snprintf(why, sizeof(why), "provider protocol version %u; this sptd speaks %u",
			 le32toh(req.version), SPT_PROVIDER_VERSION);
		remote_refuse(c, SPT_CC_PROVIDER_REGISTER, SPT_CTL_RC_VERSION, why);
		return;
	}
	if (!remote_name_valid(req.name, sizeof(req.name)) || req.flags) {
		remote_refuse(c, SPT_CC_PROVIDER_REGISTER, SPT_CTL_RC_BAD_REQUEST,
			      "provider name must be 1-63 characters of A-Z a-z 0-9 . _ -, flags 0");
		return;
	}
	if (c->r->shutting_down) {
		remote_refuse(c, SPT_CC_PROVIDER_REGISTER, SPT_CTL_RC_SHUTTING_DOWN, "sptd is stopping");
		return;
	}
	l = remote_lun_by_name(c->r, req.name);
	if (!l || l->closed) {
		snprintf(why, sizeof(why), "no --lun provider:%s in this sptd", req.name);
		remote_refuse(c, SPT_CC_PROVIDER_REGISTER, SPT_CTL_RC_UNKNOWN_PROVIDER, why);
		return;
	}
	if (l->conn) {
		snprintf(why, sizeof(why), "provider %s is already connected (pid %d)", req.name,
			 (int)l->conn->pid);
		remote_refuse(c, SPT_CC_PROVIDER_REGISTER, SPT_CTL_RC_PROVIDER_IN_USE, why);
		return;
	}
	err = remote_shm_create(c, l->name);
	if (err < 0) {
		snprintf(why, sizeof(why), "cannot set up shared memory: %s", strerror(-err));
		remote_refuse(c, SPT_CC_PROVIDER_REGISTER, SPT_CTL_RC_NO_MEMORY, why);
		return;
	}
	memset(&reg, 0, sizeof(reg));
	reg.lun = htole64(l->lun);
	reg.shm_size = htole64(c->shm_size);
	reg.max_transfer_bytes = htole32(c->r->cfg.max_transfer_bytes);
	reg.command_timeout = htole32(c->r->cfg.command_timeout_s);
	reg.relative_port = htole16(l->relative_port);
	reg.tpgt = htole16(l->tpgt);
	reg.version = htole32(SPT_PROVIDER_VERSION);
	snprintf(reg.target_name, sizeof(reg.target_name), "%s", l->target_name);
	err = remote_send_registered(c, &reg);
	if (err < 0) {
		remote_conn_kill(c, strerror(-err));
		return;
	}
	c->lun = l;
	l->conn = c;
	log_info("provider %s registered (pid %d): serves LUN %" PRIu64 " of %s; %" PRIu64
		 " MiB shared; %zu session(s) replayed", l->name, (int)c->pid, l->lun, l->target_name,
		 c->shm_size >> 20, l->nsessions);
	list_for_each(n, &l->sessions)
		remote_send_session_start(c, &list_entry(n, struct remote_session, node)->ss);
}

/* return_code != 0: the provider could not run the command (spt.h) */
static void remote_on_completion(struct remote_conn *c, const uint8_t *p, uint32_t len,
				 uint32_t return_code)
{
	struct spt_scsi_completion cpl;
	struct remote_cmd *rc;
	struct spt_cmd *cmd;
	char why[128];

	if (len != sizeof(cpl)) {
		remote_conn_kill(c, "SCSI_COMPLETION has the wrong length");
		return;
	}
	memcpy(&cpl, p, sizeof(cpl));
	cpl.task_cookie = le64toh(cpl.task_cookie);
	cpl.transfer_length = le32toh(cpl.transfer_length);
	cpl.data_in_length = le32toh(cpl.data_in_length);
	rc = remote_find(c, cpl.task_cookie);
	if (!rc || !(rc->in_flight || rc->orphan)) {
		snprintf(why, sizeof(why), "SCSI_COMPLETION for task 0x%016" PRIx64 " that it does not hold",
			 cpl.task_cookie);
		remote_conn_kill(c, why);
		return;
	}
	if (rc->orphan) {
		/* the engine finished it already; the buffer is free now */
		remote_cmd_detach(rc);
		free(rc);
		remote_run_waiting(c);
		return;
	}
	cmd = rc->cmd;
	if (cpl.data_in_length > cmd->buf_len || cpl.sense_length > SPT_SENSE_MAX) {
		snprintf(why, sizeof(why), "SCSI_COMPLETION with %u data-in bytes for a %u-byte buffer "
			 "or %u sense bytes", cpl.data_in_length, cmd->buf_len, cpl.sense_length);
		remote_conn_kill(c, why);
		return;
	}
	list_del(&rc->node);
	rc->in_flight = false;
	if (return_code != 0) {
		remote_fail(cmd, SPT_KEY_HARDWARE_ERROR, ASC_LU_COMMUNICATION, ASCQ_COMMUNICATION_FAILURE);
	} else {
		if (cpl.data_in_length)
			memcpy(cmd->buf, c->shm + rc->shm_off, cpl.data_in_length);
		memcpy(&cmd->cpl, &cpl, sizeof(cpl));
	}
	if (!cmd->req.is_final && cmd->cpl.scsi_status == SPT_STATUS_GOOD) {
		list_add_tail(&c->parked, &rc->node);
	} else {
		remote_cmd_detach(rc);
		rc->magic = 0;
		remote_run_waiting(c);
	}
	spt_cmd_complete(cmd);
}

static void remote_on_tmf(struct remote_conn *c, const uint8_t *p, uint32_t len)
{
	struct spt_wire_tmf wt;
	struct list_node *n;

	if (len != sizeof(wt)) {
		remote_conn_kill(c, "TMF answer has the wrong length");
		return;
	}
	memcpy(&wt, p, sizeof(wt));
	list_for_each(n, &c->tmfs) {
		struct remote_tmf *t = list_entry(n, struct remote_tmf, node);

		if (t->cookie != le64toh(wt.tmf_cookie))
			continue;
		list_del(&t->node);
		if (t->tmf) {
			t->tmf->w.response = le32toh(wt.tmf.response);
			spt_tmf_complete(t->tmf);
		}
		free(t);
		return;
	}
	/* answered after its timeout: the engine has moved on */
	log_debug("provider %s: late TMF answer %" PRIu64, c->lun->name, le64toh(wt.tmf_cookie));
}

static void remote_on_session_end(struct remote_conn *c, const uint8_t *p, uint32_t len)
{
	struct spt_ctl_session_stop stop;
	uint32_t rc = SPT_CTL_RC_UNSUPPORTED;
	struct spt_session_end answer;

	if (len != sizeof(struct spt_session_end) && len != sizeof(stop)) {
		remote_conn_kill(c, "SESSION_END has the wrong length");
		return;
	}
	memset(&stop, 0, sizeof(stop));
	memcpy(&stop, p, len);
	stop.itnexus_handle = le64toh(stop.itnexus_handle);
	stop.grace_seconds = le32toh(stop.grace_seconds);
	if (stop.grace_seconds > SPT_CTL_GRACE_MAX)
		rc = SPT_CTL_RC_BAD_REQUEST;
	else if (c->r->stop)
		rc = c->r->stop(c->r->stop_arg, stop.itnexus_handle, stop.grace_seconds);
	log_info("provider %s asked to stop session 0x%016" PRIx64 ": %s", c->lun->name,
		 stop.itnexus_handle, rc == SPT_CTL_RC_SUCCESS ? "stopping" : "refused");
	answer.itnexus_handle = htole64(stop.itnexus_handle);
	remote_send(c, SPT_CC_SESSION_END, rc, 0, &answer, sizeof(answer));
}

static void remote_on_frame(struct remote_conn *c, const struct spt_io_header *h, const uint8_t *p)
{
	if (!c->lun && h->control_code != SPT_CC_PROVIDER_REGISTER) {
		remote_refuse(c, h->control_code, SPT_CTL_RC_BAD_REQUEST,
			      "the first frame must be PROVIDER_REGISTER");
		return;
	}
	switch (h->control_code) {
	case SPT_CC_PROVIDER_REGISTER:
		remote_on_register(c, p, h->length);
		break;
	case SPT_CC_SCSI_COMPLETION:
		remote_on_completion(c, p, h->length, h->return_code);
		break;
	case SPT_CC_TMF:
		remote_on_tmf(c, p, h->length);
		break;
	case SPT_CC_SESSION_END:
		remote_on_session_end(c, p, h->length);
		break;
	default: {
		char why[96];

		snprintf(why, sizeof(why), "control code 0x%x is not served on the provider socket",
			 h->control_code);
		remote_conn_kill(c, why);
		break;
	}
	}
}

static void remote_on_readable(struct remote_conn *c)
{
	size_t budget = SPT_REMOTE_READ_BUDGET;

	while (!c->dead && budget) {
		ssize_t n = recv(c->h.fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
		uint32_t pos = 0;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				remote_conn_kill(c, strerror(errno));
			return;
		}
		if (n == 0) {
			remote_conn_kill(c, "the provider closed the connection");
			return;
		}
		budget = (size_t)n < budget ? budget - (size_t)n : 0;
		c->in_len += (uint32_t)n;
		while (!c->dead && c->in_len - pos >= CTL_HEADER_LEN) {
			struct spt_io_header h;
			char why[CTL_WHY_MAX];

			ctl_header_decode(c->in + pos, &h);
			if (ctl_header_check(&h, SPT_PROVIDER_FRAME_MAX, why, sizeof(why)) !=
			    SPT_CTL_RC_SUCCESS) {
				remote_conn_kill(c, why);
				return;
			}
			if (c->in_len - pos < CTL_HEADER_LEN + h.length)
				break;
			remote_on_frame(c, &h, c->in + pos + CTL_HEADER_LEN);
			pos += CTL_HEADER_LEN + h.length;
		}
		if (c->dead)
			return;
		memmove(c->in, c->in + pos, c->in_len - pos);
		c->in_len -= pos;
	}
}

static void remote_on_event(struct ev_handler *h, uint32_t events)
{
	struct remote_conn *c = h->arg;

	if (events & EPOLLOUT)
		remote_flush(c);
	if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		remote_on_readable(c);
}

/* ---- connection life ---- */

static void remote_conn_free(void *arg)
{
	struct remote_conn *c = arg;

	free(c->out);
	free(c);
}

/*
 * The provider is gone (or misbehaved): its commands fail with ABORTED
 * COMMAND, LOGICAL UNIT COMMUNICATION FAILURE, its TMFs complete, the
 * sessions stay and the LUN answers NOT READY until a provider registers
 * again.
 */
static void remote_conn_kill(struct remote_conn *c, const char *why)
{
	struct spt_remote *r = c->r;
	struct remote_lun *l = c->lun;

	if (c->dead)
		return;
	c->dead = true;
	if (l) {
		log_warn("provider %s (pid %d) disconnected: %s; LUN %" PRIu64 " not ready until it "
			 "registers again", l->name, (int)c->pid, why, l->lun);
		l->conn = NULL;
	} else {
		log_info("provider socket: connection %u (pid %d) closed: %s", c->id, (int)c->pid, why);
	}
	ev_del(r->loop, &c->h);
	close(c->h.fd);
	c->h.fd = -1;
	list_del(&c->node);
	r->nconns--;
	/* parked commands fail when the engine brings their next sequence */
	while (!list_empty(&c->parked))
		remote_cmd_detach(list_first(&c->parked, struct remote_cmd, node));
	while (!list_empty(&c->orphans)) {
		struct remote_cmd *o = list_first(&c->orphans, struct remote_cmd, node);

		remote_cmd_detach(o);
		free(o);
	}
	/* completing may make the engine call us again: each command leaves
	 * the lists before it is completed */
	while (!list_empty(&c->inflight) || !list_empty(&c->waitq)) {
		struct list_node *q = !list_empty(&c->inflight) ? &c->inflight : &c->waitq;
		struct remote_cmd *rc = list_first(q, struct remote_cmd, node);
		struct spt_cmd *cmd = rc->cmd;

		remote_cmd_detach(rc);
		rc->magic = 0;
		if (l && !l->closed) {
			remote_fail(cmd, SPT_KEY_ABORTED_COMMAND, ASC_LU_COMMUNICATION,
				    ASCQ_COMMUNICATION_FAILURE);
			spt_cmd_complete(cmd);
		}
	}
	while (!list_empty(&c->tmfs)) {
		struct remote_tmf *t = list_first(&c->tmfs, struct remote_tmf, node);

		list_del(&t->node);
		if (t->tmf && !(l && l->closed))
			spt_tmf_complete(t->tmf);
		free(t);
	}
	if (c->shm)
		munmap(c->shm, c->shm_size);
	c->shm = NULL;
	if (c->memfd >= 0)
		close(c->memfd);
	c->memfd = -1;
	free(c->chunk_map);
	c->chunk_map = NULL;
	/* a later event of this batch may still name the connection */
	if (r->closing)
		remote_conn_free(c);
	else if (ev_defer(r->loop, remote_conn_free, c) < 0)
		log_err("provider socket: cannot schedule a release (memory kept)");
}

/* Once a second: commands past their timeout, aborted commands the
 * provider sits on, TMFs it does not answer, connections that never
 * register. */
static void remote_conn_tick(struct remote_conn *c, uint64_t now)
{
	const uint64_t tmf_ms = (uint64_t)c->r->cfg.tmf_timeout_s * 1000;
	bool again = true;

	if (!c->lun) {
		if (now - c->connected_ms >= SPT_REMOTE_REGISTER_TIMEOUT_S * 1000ull)
			remote_conn_kill(c, "no PROVIDER_REGISTER in time");
		return;
	}
	/* one command per pass: completing it may change the lists */
	while (again && !c->dead) {
		struct list_node *n;

		again = false;
		list_for_each(n, &c->inflight) {
			struct remote_cmd *rc = list_entry(n, struct remote_cmd, node);
			struct spt_tmf_wire w;

			if (rc->cmd->aborted && !rc->abort_seen_ms)
				rc->abort_seen_ms = now;
			if (now < rc->deadline_ms &&
			    !(rc->abort_seen_ms && now - rc->abort_seen_ms >= tmf_ms))
				continue;
			log_warn("provider %s: task 0x%016" PRIx64 " %s; failed to the initiator",
				 c->lun->name, rc->cookie,
				 now >= rc->deadline_ms ? "not completed within the command timeout" :
				 "aborted and not completed within the TMF timeout");
			memset(&w, 0, sizeof(w));
			w.itnexus_handle = rc->cmd->req.session_cookie;
			w.lun = rc->cmd->req.lun;
			w.function = SPT_TMF_ABORT_TASK;
			w.reference_task_cookie = rc->cookie;
			remote_cmd_abandon(rc, ASCQ_COMMUNICATION_TIMEOUT);
			remote_send_tmf(c, NULL, &w);
			again = true;
			break;
		}
		if (again || c->dead)
			continue;
		list_for_each(n, &c->waitq) {
			struct remote_cmd *rc = list_entry(n, struct remote_cmd, node);

			if (!rc->cmd->aborted)
				continue;
			struct spt_cmd *cmd = rc->cmd;

			remote_cmd_detach(rc);
			rc->magic = 0;
			cmd->cpl.scsi_status = SPT_STATUS_TASK_ABORTED;
			spt_cmd_complete(cmd);
			again = true;
			break;
		}
		if (again || c->dead)
			continue;
		list_for_each(n, &c->tmfs) {
			struct remote_tmf *t = list_entry(n, struct remote_tmf, node);

			if (now < t->deadline_ms)
				continue;
			list_del(&t->node);
			if (t->tmf) {
				log_warn("provider %s: TMF %u not answered within %u s; completed without it",
					 c->lun->name, t->tmf->w.function, c->r->cfg.tmf_timeout_s);
				spt_tmf_complete(t->tmf);
			}
			free(t);
			again = true;
			break;
		}
	}
}

static void remote_tick(void *arg)
{
	struct spt_remote *r = arg;
	uint64_t now = ev_now_ms();
	bool again = true;

	/* a connection may die during its tick: restart the walk then */
	while (again) {
		struct list_node *n;

		again = false;
		list_for_each(n, &r->conns) {
			struct remote_conn *c = list_entry(n, struct remote_conn, node);

			remote_conn_tick(c, now);
			if (c->dead) {
				again = true;
				break;
			}
		}
	}
}

static void remote_on_accept(struct ev_handler *h, uint32_t events)
{
	struct spt_remote *r = h->arg;

	for (;;) {
		int fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct remote_conn *c;
		pid_t pid;
		uid_t uid;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("provider socket: accept: %s", strerror(errno));
			return;
		}
		if (!unixsock_peer_trusted(fd, &pid, &uid)) {
			log_warn("provider socket: refused pid %d uid %d: only root or uid %u may serve LUNs",
				 (int)pid, (int)uid, (unsigned)geteuid());
			close(fd);
			continue;
		}
		if (r->nconns >= SPT_REMOTE_MAX_CONNS) {
			log_warn("provider socket: refused pid %d: %d connections already", (int)pid,
				 SPT_REMOTE_MAX_CONNS);
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->r = r;
		c->id = ++r->next_id;
		c->pid = pid;
		c->memfd = -1;
		c->connected_ms = ev_now_ms();
		c->h.fd = fd;
		c->h.cb = remote_on_event;
		c->h.arg = c;
		list_init(&c->inflight);
		list_init(&c->parked);
		list_init(&c->waitq);
		list_init(&c->orphans);
		list_init(&c->tmfs);
		if (ev_add(r->loop, &c->h, EPOLLIN) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->events = EPOLLIN;
		list_add_tail(&r->conns, &c->node);
		r->nconns++;
		log_debug("provider socket: connection %u from pid %d", c->id, (int)pid);
	}
}

/* ---- setup ---- */

struct spt_remote *spt_remote_open(struct ev_loop *loop, const struct spt_remote_config *cfg,
				   char *err, size_t errlen)
{
	struct spt_remote *r;

	if (cfg->shm_size < cfg->max_transfer_bytes || cfg->shm_size > SPT_REMOTE_SHM_MAX ||
	    cfg->shm_size % REMOTE_CHUNK) {
		snprintf(err, errlen, "shared memory of %" PRIu64 " bytes: must be a multiple of %u "
			 "between %u and %llu", cfg->shm_size, REMOTE_CHUNK, cfg->max_transfer_bytes,
			 (unsigned long long)SPT_REMOTE_SHM_MAX);
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->loop = loop;
	r->cfg = *cfg;
	list_init(&r->conns);
	list_init(&r->luns);
	snprintf(r->path, sizeof(r->path), "%s", cfg->path);
	r->cfg.path = r->path;
	r->listen.fd = unixsock_listen(cfg->path, REMOTE_LISTEN_BACKLOG, err, errlen);
	if (r->listen.fd < 0)
		goto fail;
	r->listen.cb = remote_on_accept;
	r->listen.arg = r;
	if (ev_add(loop, &r->listen, EPOLLIN) < 0 || ev_tick_add(loop, remote_tick, r) < 0) {
		snprintf(err, errlen, "cannot watch the socket: %s", strerror(errno));
		goto fail;
	}
	log_info("provider socket %s ready (command timeout %u s, TMF timeout %u s, %" PRIu64
		 " MiB shared per provider)", cfg->path, cfg->command_timeout_s, cfg->tmf_timeout_s,
		 cfg->shm_size >> 20);
	return r;
fail:
	if (r->listen.fd >= 0) {
		ev_del(loop, &r->listen);
		close(r->listen.fd);
		unlink(r->path);
	}
	free(r);
	return NULL;
}

void spt_remote_shutdown(struct spt_remote *r)
{
	if (r)
		r->shutting_down = true;
}

void spt_remote_set_stop(struct spt_remote *r, spt_remote_stop_fn fn, void *arg)
{
	r->stop = fn;
	r->stop_arg = arg;
}

int spt_remote_lun_open(struct spt_remote *r, const char *name, uint64_t lun_no,
			const char *target_name, uint16_t tpgt, uint16_t relative_port,
			struct spt_lun *out, char *err, size_t errlen)
{
	struct remote_lun *l;

	if (!remote_name_valid(name, SPT_PROVIDER_NAME_MAX)) {
		snprintf(err, errlen, "provider name '%s': 1-63 characters of A-Z a-z 0-9 . _ -", name);
		return -1;
	}
	if (remote_lun_by_name(r, name)) {
		snprintf(err, errlen, "provider %s already serves another LUN (one LUN per name)", name);
		return -1;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	l->r = r;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->lun = lun_no;
	snprintf(l->target_name, sizeof(l->target_name), "%s", target_name);
	l->tpgt = tpgt;
	l->relative_port = relative_port;
	list_init(&l->sessions);
	list_add_tail(&r->luns, &l->node);
	memset(out, 0, sizeof(*out));
	out->lun = lun_no;
	out->ops = &remote_ops;
	out->ctx = l;
	out->status = remote_lun_status;
	snprintf(out->desc, sizeof(out->desc), "provider:%s", name);
	return 0;
}

void spt_remote_close(struct spt_remote *r)
{
	if (!r)
		return;
	r->closing = true;
	while (!list_empty(&r->conns)) {
		struct remote_conn *c = list_first(&r->conns, struct remote_conn, node);

		if (c->lun)
			c->lun->closed = true;
		remote_conn_kill(c, "sptd is stopping");
	}
	while (!list_empty(&r->luns)) {
		struct remote_lun *l = list_first(&r->luns, struct remote_lun, node);

		while (!list_empty(&l->sessions)) {
			struct remote_session *s = list_first(&l->sessions, struct remote_session, node);

			list_del(&s->node);
			free(s);
		}
		list_del(&l->node);
		free(l);
	}
	ev_del(r->loop, &r->listen);
	close(r->listen.fd);
	unlink(r->path);
	free(r);
}
