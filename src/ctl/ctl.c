/*
 * The control socket: accepts sptctl (and any client speaking the frames of
 * include/spt/spt.h), checks who it is, reads requests through a resumable
 * frame parser and answers each with one frame. A stop request waits, off
 * the socket, until the session is gone; nothing here blocks the loop.
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "ctl/frame.h"
#include "iscsi/admin.h"
#include "util/evloop.h"
#include "util/log.h"
#include "util/unixsock.h"

#define CTL_IN_STAGE 4096

struct ctl_client {
	struct ev_handler h;
	struct ctl_server *cs;
	unsigned id;		/* for logs */
	pid_t pid;
	uid_t uid;
	struct ctl_rx rx;
	uint8_t in[CTL_IN_STAGE];	/* bytes read, not yet parsed */
	uint32_t in_pos, in_len;
	uint8_t *out;		/* the response being written */
	size_t out_len, out_sent;
	bool waiting;		/* a SESSION_END waits for its session to go */
	bool closing;		/* close once the response is written */
	bool closed;
	uint32_t events;	/* registered with epoll */
	uint64_t last_progress_ms;
};

struct ctl_server {
	ctl_config_save_fn config_save;	/* CONFIG_SAVE, set by the daemon */
	void *config_save_arg;
	ctl_config_change_fn config_change;	/* CONFIG_CHANGE, set by the daemon */
	void *config_change_arg;
	struct ev_loop *loop;
	struct iscsi_admin *admin;
	struct ev_handler listen;
	struct ev_handler timer;
	struct ctl_client *clients[CTL_MAX_CLIENTS];
	size_t nclients;
	unsigned next_id;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void client_process(struct ctl_client *c);

static void client_free(void *arg)
{
	struct ctl_client *c = arg;

	ctl_rx_reset(&c->rx);
	free(c->out);
	free(c);
}

/* Detaches the client from the loop and the server; the memory goes once
 * the current batch of events is over. */
static void client_detach(struct ctl_client *c, const char *why)
{
	struct ctl_server *cs = c->cs;

	c->closed = true;
	log_debug("control: client %u (pid %d): closed: %s", c->id, (int)c->pid, why);
	if (c->waiting)
		iscsi_admin_cancel(cs->admin, c);
	ev_del(cs->loop, &c->h);
	close(c->h.fd);
	c->h.fd = -1;
	for (size_t i = 0; i < CTL_MAX_CLIENTS; i++) {
		if (cs->clients[i] == c) {
			cs->clients[i] = NULL;
			cs->nclients--;
		}
	}
}

static void client_close(struct ctl_client *c, const char *why)
{
	if (c->closed)
		return;
	client_detach(c, why);
	/* a later event of this batch may still name the client */
	if (ev_defer(c->cs->loop, client_free, c) < 0)
		log_err("control: client %u: cannot schedule its release (memory kept)", c->id);
}

static bool client_busy(const struct ctl_client *c)
{
	return c->out != NULL || c->waiting || c->closing;
}

static void client_update_events(struct ctl_client *c)
{
	uint32_t ev = 0;

	if (c->closed)
		return;
	if (c->out)
		ev = EPOLLOUT;
	else if (!client_busy(c))
		ev = EPOLLIN;
	/* with none, EPOLLHUP still tells that a waiting client went away */
	if (ev != c->events && ev_mod(c->cs->loop, &c->h, ev) == 0)
		c->events = ev;
}

/* Writes what the socket takes now; the rest goes on EPOLLOUT. */
static void client_write(struct ctl_client *c)
{
	while (c->out && c->out_sent < c->out_len) {
		ssize_t w = send(c->h.fd, c->out + c->out_sent, c->out_len - c->out_sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			client_close(c, strerror(errno));
			return;
		}
		c->out_sent += (size_t)w;
		c->last_progress_ms = ev_now_ms();
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_sent = 0;
	if (c->closing)
		client_close(c, "response sent, closing");
}

static void client_reply(struct ctl_client *c, uint32_t code, uint32_t rc, const void *payload,
			 uint32_t len)
{
	size_t flen;
	uint8_t *f = ctl_frame_new(code, rc, 0, payload, len, &flen);

	if (!f) {
		client_close(c, "out of memory for a response");
		return;
	}
	c->out = f;
	c->out_len = flen;
	c->out_sent = 0;
	client_write(c);
}

/* An error response whose payload is the message (NUL-terminated). */
static void client_error(struct ctl_client *c, uint32_t code, uint32_t rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void client_error(struct ctl_client *c, uint32_t code, uint32_t rc, const char *fmt, ...)
{
	char msg[SPT_CTL_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info("control: client %u (pid %d): request 0x%x: %s: %s", c->id, (int)c->pid, code,
		 ctl_return_code_name(rc), msg);
	client_reply(c, code, rc, msg, (uint32_t)strlen(msg) + 1);
}

static void client_session_list(struct ctl_client *c)
{
	struct spt_ctl_session_list_request req;
	struct spt_ctl_session_list lh;
	struct spt_ctl_session *v = NULL;
	uint8_t *payload = NULL;
	char why[CTL_WHY_MAX];
	uint32_t rc, total;
	size_t max, n;
	bool more;

	rc = ctl_session_list_request_decode(c->rx.payload, c->rx.h.length, &req, why, sizeof(why));
	if (rc) {
		client_error(c, SPT_CC_SESSION_LIST, rc, "%s", why);
		goto out;
	}
	max = req.max_entries == 0 || req.max_entries > SPT_CTL_SESSION_PAGE_MAX ?
	      SPT_CTL_SESSION_PAGE_MAX : req.max_entries;
	v = calloc(max, sizeof(*v));
	/* the page bound keeps this within SPT_CTL_RESPONSE_MAX (spt.h asserts it) */
	payload = malloc(sizeof(lh) + max * sizeof(*v));
	if (!v || !payload) {
		client_error(c, SPT_CC_SESSION_LIST, SPT_CTL_RC_NO_MEMORY, "out of memory");
		goto out;
	}
	memset(&lh, 0, sizeof(lh));
	n = iscsi_admin_session_list(c->cs->admin, req.after_handle, v, max, &total, &more);
	lh.total = total;
	lh.count = (uint32_t)n;
	lh.entry_length = sizeof(*v);
	lh.more = more;
	ctl_session_list_encode(payload, &lh);
	for (size_t i = 0; i < n; i++)
		ctl_session_encode(payload + sizeof(lh) + i * sizeof(*v), &v[i]);
	client_reply(c, SPT_CC_SESSION_LIST, SPT_CTL_RC_SUCCESS, payload,
		     (uint32_t)(sizeof(lh) + n * sizeof(*v)));
out:
	free(v);
	free(payload);
}

/* Bytes a target's record takes on the wire: entry, portals, ACL names. */
static size_t client_target_record_len(const struct spt_ctl_target *t)
{
	return sizeof(struct spt_ctl_target) + t->portal_count * sizeof(struct spt_ctl_portal) +
	       (size_t)t->initiator_count * sizeof(struct spt_ctl_initiator);
}

static void client_target_list(struct ctl_client *c)
{
	struct spt_ctl_target_list_request req;
	struct spt_ctl_target_list lh;
	struct iscsi_admin_target *v = NULL;
	const char **portals = NULL;
	uint8_t *payload = NULL;
	char why[CTL_WHY_MAX];
	uint32_t rc, total;
	size_t max, n, nportals, len, off;
	bool more;

	rc = ctl_target_list_request_decode(c->rx.payload, c->rx.h.length, &req, why, sizeof(why));
	if (rc) {
		client_error(c, SPT_CC_TARGET_LIST, rc, "%s", why);
		goto out;
	}
	max = req.max_entries == 0 || req.max_entries > SPT_CTL_TARGET_PAGE_MAX ?
	      SPT_CTL_TARGET_PAGE_MAX : req.max_entries;
	nportals = iscsi_admin_portals(c->cs->admin, NULL, 0);
	v = calloc(max, sizeof(*v));
	portals = calloc(nportals ? nportals : 1, sizeof(*portals));
	if (!v || !portals) {
		client_error(c, SPT_CC_TARGET_LIST, SPT_CTL_RC_NO_MEMORY, "out of memory");
		goto out;
	}
	iscsi_admin_portals(c->cs->admin, portals, nportals);
	n = iscsi_admin_target_list(c->cs->admin, req.after_name, v, max, &total, &more);
	/* records vary in size: the page ends before the one that would pass
	 * SPT_CTL_RESPONSE_MAX (admin.c asserts one always fits) */
	len = sizeof(lh);
	for (size_t i = 0; i < n; i++) {
		size_t rl = client_target_record_len(&v[i].info);

		if (len + rl > SPT_CTL_RESPONSE_MAX) {
			n = i;
			more = true;
			break;
		}
		len += rl;
	}
	payload = malloc(len);
	if (!payload) {
		client_error(c, SPT_CC_TARGET_LIST, SPT_CTL_RC_NO_MEMORY, "out of memory");
		goto out;
	}
	memset(&lh, 0, sizeof(lh));
	lh.count = (uint32_t)n;
	lh.target_entry_length = sizeof(struct spt_ctl_target);
	lh.portal_entry_length = sizeof(struct spt_ctl_portal);
	lh.initiator_entry_length = sizeof(struct spt_ctl_initiator);
	lh.total = total;
	lh.more = more;
	ctl_target_list_encode(payload, &lh);
	off = sizeof(lh);
	for (size_t i = 0; i < n; i++) {
		const struct iscsi_admin_target *t = &v[i];

		ctl_target_encode(payload + off, &t->info);
		off += sizeof(struct spt_ctl_target);
		for (uint32_t k = 0; k < t->info.portal_count; k++) {
			/* the count and the array come from one snapshot */
			ctl_string_encode(payload + off, SPT_CTL_PORTAL_MAX,
					  k < nportals ? portals[k] : "");
			off += sizeof(struct spt_ctl_portal);
		}
		for (uint32_t k = 0; k < t->info.initiator_count; k++) {
			ctl_string_encode(payload + off, SPT_CTL_NAME_MAX, t->initiators[k]);
			off += sizeof(struct spt_ctl_initiator);
		}
	}
	client_reply(c, SPT_CC_TARGET_LIST, SPT_CTL_RC_SUCCESS, payload, (uint32_t)off);
out:
	free(v);
	free(portals);
	free(payload);
}

static void client_lun_list(struct ctl_client *c)
{
	struct spt_ctl_lun_list_request req;
	struct spt_ctl_lun_list lh;
	struct spt_ctl_lun *v = NULL;
	uint8_t *payload = NULL;
	char why[CTL_WHY_MAX];
	uint32_t rc, total;
	size_t max, n;
	bool more;

	rc = ctl_lun_list_request_decode(c->rx.payload, c->rx.h.length, &req, why, sizeof(why));
	if (rc) {
		client_error(c, SPT_CC_LUN_LIST, rc, "%s", why);
		goto out;
	}
	max = req.max_entries == 0 || req.max_entries > SPT_CTL_LUN_PAGE_MAX ?
	      SPT_CTL_LUN_PAGE_MAX : req.max_entries;
	v = calloc(max, sizeof(*v));
	/* the page bound keeps this within SPT_CTL_RESPONSE_MAX (spt.h asserts it) */
	payload = malloc(sizeof(lh) + max * sizeof(*v));
	if (!v || !payload) {
		client_error(c, SPT_CC_LUN_LIST, SPT_CTL_RC_NO_MEMORY, "out of memory");
		goto out;
	}
	n = iscsi_admin_lun_list(c->cs->admin, req.after_target, req.after_lun, v, max, &total, &more);
	memset(&lh, 0, sizeof(lh));
	lh.count = (uint32_t)n;
	lh.entry_length = sizeof(*v);
	lh.total = total;
	lh.more = more;
	ctl_lun_list_encode(payload, &lh);
	for (size_t i = 0; i < n; i++)
		ctl_lun_encode(payload + sizeof(lh) + i * sizeof(*v), &v[i]);
	client_reply(c, SPT_CC_LUN_LIST, SPT_CTL_RC_SUCCESS, payload,
		     (uint32_t)(sizeof(lh) + n * sizeof(*v)));
out:
	free(v);
	free(payload);
}

/* STATS: one kind of object per request, paged like the lists. */
static void client_stats(struct ctl_client *c)
{
	struct spt_ctl_stats_request req;
	struct spt_ctl_stats sh;
	void *v = NULL;
	uint8_t *payload = NULL;
	char why[CTL_WHY_MAX];
	uint32_t rc, total = 0;
	size_t page, max, n = 0, esize;
	bool more = false;

	rc = ctl_stats_request_decode(c->rx.payload, c->rx.h.length, &req, why, sizeof(why));
	if (rc) {
		client_error(c, SPT_CC_STATS, rc, "%s", why);
		goto out;
	}
	esize = ctl_stats_entry_size(req.kind);
	page = req.kind == SPT_CTL_STATS_SERVER ? 1 :
	       req.kind == SPT_CTL_STATS_TARGETS ? SPT_CTL_STATS_TARGET_PAGE_MAX :
	       req.kind == SPT_CTL_STATS_LUNS ? SPT_CTL_STATS_LUN_PAGE_MAX : SPT_CTL_STATS_SESSION_PAGE_MAX;
	max = req.max_entries == 0 || req.max_entries > page ? page : req.max_entries;
	v = calloc(max, esize);
	/* the page bounds keep this within SPT_CTL_RESPONSE_MAX (spt.h asserts it) */
	payload = malloc(sizeof(sh) + max * esize);
	if (!v || !payload) {
		client_error(c, SPT_CC_STATS, SPT_CTL_RC_NO_MEMORY, "out of memory");
		goto out;
	}
	switch (req.kind) {
	case SPT_CTL_STATS_SERVER:
		iscsi_admin_stats_server(c->cs->admin, v);
		n = total = 1;
		break;
	case SPT_CTL_STATS_TARGETS:
		n = iscsi_admin_stats_targets(c->cs->admin, req.after_name, v, max, &total, &more);
		break;
	case SPT_CTL_STATS_LUNS:
		n = iscsi_admin_stats_luns(c->cs->admin, req.after_name, req.after_number, v, max, &total,
					   &more);
		break;
	default:
		n = iscsi_admin_stats_sessions(c->cs->admin, req.after_number, v, max, &total, &more);
		break;
	}
	memset(&sh, 0, sizeof(sh));
	sh.kind = req.kind;
	sh.count = (uint32_t)n;
	sh.entry_length = (uint32_t)esize;
	sh.total = total;
	sh.more = more;
	sh.latency_buckets = SPT_CTL_STATS_BUCKETS;
	ctl_stats_encode(payload, &sh);
	for (size_t i = 0; i < n; i++) {
		uint8_t *e = payload + sizeof(sh) + i * esize;
		const char *x = (const char *)v + i * esize;

		switch (req.kind) {
		case SPT_CTL_STATS_SERVER:
			ctl_stats_server_encode(e, (const struct spt_ctl_stats_server *)x);
			break;
		case SPT_CTL_STATS_TARGETS:
			ctl_stats_target_encode(e, (const struct spt_ctl_stats_target *)x);
			break;
		case SPT_CTL_STATS_LUNS:
			ctl_stats_lun_encode(e, (const struct spt_ctl_stats_lun *)x);
			break;
		default:
			ctl_stats_session_encode(e, (const struct spt_ctl_stats_session *)x);
			break;
		}
	}
	client_reply(c, SPT_CC_STATS, SPT_CTL_RC_SUCCESS, payload, (uint32_t)(sizeof(sh) + n * esize));
out:
	free(v);
	free(payload);
}

static void client_stop_done(void *arg, uint64_t handle, uint32_t rc)
{
	struct ctl_client *c = arg;

	c->waiting = false;
	if (rc == SPT_CTL_RC_SUCCESS) {
		struct spt_session_end se = { .itnexus_handle = htole64(handle) };

		log_info("control: client %u (pid %d): session 0x%016llx stopped", c->id, (int)c->pid,
			 (unsigned long long)handle);
		client_reply(c, SPT_CC_SESSION_END, rc, &se, sizeof(se));
	} else {
		client_error(c, SPT_CC_SESSION_END, rc,
			     "session 0x%016llx: connections closed, but its commands have not all "
			     "finished yet", (unsigned long long)handle);
	}
	if (!c->closed) {
		client_process(c);
		client_update_events(c);
	}
}

static void client_session_stop(struct ctl_client *c)
{
	struct spt_ctl_session_stop stop;
	char why[CTL_WHY_MAX];
	bool has_grace;
	uint32_t rc, grace;

	rc = ctl_session_stop_decode(c->rx.payload, c->rx.h.length, &stop, &has_grace, why,
				     sizeof(why));
	if (rc) {
		client_error(c, SPT_CC_SESSION_END, rc, "%s", why);
		return;
	}
	grace = has_grace ? stop.grace_seconds : iscsi_admin_default_grace(c->cs->admin);
	if (grace > SPT_CTL_GRACE_MAX)
		grace = SPT_CTL_GRACE_MAX;
	log_info("control: client %u (pid %d uid %u): stop session 0x%016llx, grace %u s", c->id,
		 (int)c->pid, (unsigned)c->uid, (unsigned long long)stop.itnexus_handle, grace);
	/* Timeout (0: grace + SPT_CTL_STOP_SLACK_S) bounds the wait for the reply */
	rc = iscsi_admin_session_stop(c->cs->admin, stop.itnexus_handle, grace, c->rx.h.timeout,
				      client_stop_done, c);
	if (rc == SPT_CTL_RC_NO_SUCH_SESSION) {
		client_error(c, SPT_CC_SESSION_END, rc, "no session has handle 0x%016llx",
			     (unsigned long long)stop.itnexus_handle);
		return;
	}
	if (rc) {
		client_error(c, SPT_CC_SESSION_END, rc, "cannot stop session 0x%016llx: %s",
			     (unsigned long long)stop.itnexus_handle, ctl_return_code_name(rc));
		return;
	}
	c->waiting = true;
}

/* CONFIG_SAVE: the running configuration to a file (the payload: a path,
 * or nothing for the daemon's --config file). */
static void client_config_save(struct ctl_client *c)
{
	const struct spt_io_header *h = &c->rx.h;
	char path[SPT_CTL_PATH_MAX], err[SPT_CTL_MESSAGE_MAX];

	if (h->length >= sizeof(path) || (h->length && memchr(c->rx.payload, '\0', h->length) &&
					  strlen((const char *)c->rx.payload) + 1 != h->length)) {
		client_error(c, SPT_CC_CONFIG_SAVE, SPT_CTL_RC_BAD_REQUEST,
			     "the path must be at most %u bytes, NUL-terminated or not", SPT_CTL_PATH_MAX - 1);
		return;
	}
	memcpy(path, c->rx.payload ? (const char *)c->rx.payload : "", h->length);
	path[h->length] = '\0';
	if (!c->cs->config_save) {
		client_error(c, SPT_CC_CONFIG_SAVE, SPT_CTL_RC_UNSUPPORTED, "this sptd cannot save its configuration");
		return;
	}
	if (c->cs->config_save(c->cs->config_save_arg, path, err, sizeof(err)) < 0) {
		client_error(c, SPT_CC_CONFIG_SAVE, SPT_CTL_RC_BAD_REQUEST, "%s", err);
		return;
	}
	client_reply(c, SPT_CC_CONFIG_SAVE, SPT_CTL_RC_SUCCESS, NULL, 0);
}

/* CONFIG_CHANGE: one live change (struct spt_ctl_config_change). */
static void client_config_change(struct ctl_client *c)
{
	const struct spt_io_header *h = &c->rx.h;
	struct spt_ctl_config_change ch;
	char err[SPT_CTL_MESSAGE_MAX];

	if (h->length != sizeof(ch)) {
		client_error(c, SPT_CC_CONFIG_CHANGE, SPT_CTL_RC_BAD_REQUEST,
			     "CONFIG_CHANGE payload is %u bytes, expected %zu", h->length, sizeof(ch));
		return;
	}
	memcpy(&ch, c->rx.payload, sizeof(ch));
	ch.op = le32toh(ch.op);
	ch.flags = le32toh(ch.flags);
	ch.lun = le64toh(ch.lun);
	ch.size_bytes = le64toh(ch.size_bytes);
	ch.chap_kind = le32toh(ch.chap_kind);
	if (!memchr(ch.target, '\0', sizeof(ch.target)) || !memchr(ch.arg, '\0', sizeof(ch.arg)) ||
	    ch.reserved || (ch.flags & ~(uint32_t)SPT_CTL_CONFIG_FORCE)) {
		client_error(c, SPT_CC_CONFIG_CHANGE, SPT_CTL_RC_BAD_REQUEST,
			     "CONFIG_CHANGE: strings must be NUL-terminated, reserved fields 0");
		return;
	}
	if (!c->cs->config_change) {
		client_error(c, SPT_CC_CONFIG_CHANGE, SPT_CTL_RC_UNSUPPORTED,
			     "this sptd cannot change its configuration");
		return;
	}
	if (c->cs->config_change(c->cs->config_change_arg, &ch, err, sizeof(err)) < 0) {
		client_error(c, SPT_CC_CONFIG_CHANGE, SPT_CTL_RC_BAD_REQUEST, "%s", err);
		return;
	}
	client_reply(c, SPT_CC_CONFIG_CHANGE, SPT_CTL_RC_SUCCESS, NULL, 0);
}

void ctl_server_set_config_change(struct ctl_server *cs, ctl_config_change_fn fn, void *arg)
{
	if (!cs)
		return;
	cs->config_change = fn;
	cs->config_change_arg = arg;
}

void ctl_server_set_config_save(struct ctl_server *cs, ctl_config_save_fn fn, void *arg)
{
	if (!cs)
		return;
	cs->config_save = fn;
	cs->config_save_arg = arg;
}

/* One complete frame whose header framed correctly. */
/* ALUA_LIST (issue 5): the target portal groups and their states. */
static void client_alua_list(struct ctl_client *c)
{
	struct spt_ctl_alua_group g[ISCSI_ADMIN_ALUA_GROUPS_MAX];
	size_t n;

	if (c->rx.h.length != 0) {
		client_error(c, SPT_CC_ALUA_LIST, SPT_CTL_RC_BAD_REQUEST,
			     "ALUA_LIST takes no payload, got %u bytes", c->rx.h.length);
		return;
	}
	n = iscsi_admin_alua_list(c->cs->admin, g, ISCSI_ADMIN_ALUA_GROUPS_MAX);
	if (n > ISCSI_ADMIN_ALUA_GROUPS_MAX)
		n = ISCSI_ADMIN_ALUA_GROUPS_MAX;
	for (size_t i = 0; i < n; i++) {
		g[i].tpgt = htole16(g[i].tpgt);
		g[i].portal_count = htole32(g[i].portal_count);
	}
	client_reply(c, SPT_CC_ALUA_LIST, SPT_CTL_RC_SUCCESS, g, (uint32_t)(n * sizeof(g[0])));
}

/* ALUA_SET (issue 5): one group's asymmetric access state. */
static void client_alua_set(struct ctl_client *c)
{
	struct spt_ctl_alua_group g;
	char err[SPT_CTL_MESSAGE_MAX];

	if (c->rx.h.length != sizeof(g)) {
		client_error(c, SPT_CC_ALUA_SET, SPT_CTL_RC_BAD_REQUEST,
			     "ALUA_SET payload is %u bytes, expected %zu", c->rx.h.length, sizeof(g));
		return;
	}
	memcpy(&g, c->rx.payload, sizeof(g));
	if (g.reserved) {
		client_error(c, SPT_CC_ALUA_SET, SPT_CTL_RC_BAD_REQUEST, "ALUA_SET: reserved field not 0");
		return;
	}
	if (iscsi_admin_alua_set(c->cs->admin, le16toh(g.tpgt), g.state, err, sizeof(err)) < 0) {
		client_error(c, SPT_CC_ALUA_SET, SPT_CTL_RC_BAD_REQUEST, "%s", err);
		return;
	}
	client_reply(c, SPT_CC_ALUA_SET, SPT_CTL_RC_SUCCESS, NULL, 0);
}

static void client_request(struct ctl_client *c)
{
	const struct spt_io_header *h = &c->rx.h;

	/* a request has no status yet: a non-zero ReturnCode is a peer that
	 * confuses requests with responses */
	if (h->return_code != 0) {
		client_error(c, h->control_code, SPT_CTL_RC_BAD_REQUEST,
			     "ReturnCode %u in a request, expected 0", h->return_code);
		return;
	}
	if (h->timeout > SPT_CTL_TIMEOUT_MAX) {
		client_error(c, h->control_code, SPT_CTL_RC_BAD_REQUEST,
			     "Timeout %u s exceeds the limit of %u s", h->timeout, SPT_CTL_TIMEOUT_MAX);
		return;
	}
	switch (h->control_code) {
	case SPT_CC_SESSION_LIST:
		client_session_list(c);
		break;
	case SPT_CC_SESSION_END:
		client_session_stop(c);
		break;
	case SPT_CC_TARGET_LIST:
		client_target_list(c);
		break;
	case SPT_CC_LUN_LIST:
		client_lun_list(c);
		break;
	case SPT_CC_STATS:
		client_stats(c);
		break;
	case SPT_CC_CONFIG_SAVE:
		client_config_save(c);
		break;
	case SPT_CC_CONFIG_CHANGE:
		client_config_change(c);
		break;
	case SPT_CC_ALUA_LIST:
		client_alua_list(c);
		break;
	case SPT_CC_ALUA_SET:
		client_alua_set(c);
		break;
	default:
		client_error(c, h->control_code, SPT_CTL_RC_UNSUPPORTED,
			     "control code 0x%x is not served on the control socket", h->control_code);
		break;
	}
}

/* Reads and answers requests one at a time until the client must wait
 * (a response not yet written, a stop in progress) or the socket is dry. */
static void client_process(struct ctl_client *c)
{
	uint32_t budget = CTL_READ_BUDGET;

	while (!c->closed && !client_busy(c)) {
		if (c->in_pos == c->in_len) {
			if (budget == 0)
				break;	/* level-triggered: the loop calls again */
			ssize_t r = read(c->h.fd, c->in, sizeof(c->in));

			if (r == 0) {
				client_close(c, c->rx.hdr_have ? "peer closed mid-frame" : "peer closed");
				return;
			}
			if (r < 0) {
				if (errno == EINTR)
					continue;
				if (errno != EAGAIN && errno != EWOULDBLOCK)
					client_close(c, strerror(errno));
				break;
			}
			c->in_pos = 0;
			c->in_len = (uint32_t)r;
			budget = (uint32_t)r >= budget ? 0 : budget - (uint32_t)r;
			c->last_progress_ms = ev_now_ms();
		}
		size_t used;
		enum ctl_rx_status st = ctl_rx_feed(&c->rx, c->in + c->in_pos, c->in_len - c->in_pos,
						    &used);

		c->in_pos += (uint32_t)used;
		switch (st) {
		case CTL_RX_MORE:
			break;
		case CTL_RX_FRAME:
			client_request(c);
			ctl_rx_reset(&c->rx);
			break;
		case CTL_RX_BAD:
			/* the stream cannot be framed any more: say why, then close */
			client_error(c, 0, SPT_CTL_RC_BAD_FRAME, "%s", c->rx.why);
			c->closing = true;
			if (!c->out)
				client_close(c, "malformed frame");
			break;
		case CTL_RX_NOMEM:
			client_error(c, 0, SPT_CTL_RC_NO_MEMORY, "%s", c->rx.why);
			c->closing = true;
			if (!c->out)
				client_close(c, "out of memory");
			break;
		}
	}
	client_update_events(c);
}

static void client_on_event(struct ev_handler *h, uint32_t events)
{
	struct ctl_client *c = h->arg;

	if (c->closed)
		return;
	if (events & EPOLLERR) {
		client_close(c, "socket error");
		return;
	}
	if (events & EPOLLOUT)
		client_write(c);
	if (c->closed)
		return;
	if (!client_busy(c)) {
		client_process(c);
		return;
	}
	if ((events & EPOLLHUP) && !c->out) {
		client_close(c, "peer went away");
		return;
	}
	client_update_events(c);
}

/* A connection we will not serve: one best-effort error frame, then close. */
static void ctl_refuse(int fd, uint32_t rc, const char *msg)
{
	size_t flen;
	uint8_t *f = ctl_frame_new(0, rc, 0, msg, (uint32_t)strlen(msg) + 1, &flen);

	if (f && send(fd, f, flen, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("control: refusing a client: %s", strerror(errno));
	free(f);
	close(fd);
}

static void ctl_on_accept(struct ev_handler *h, uint32_t events)
{
	struct ctl_server *cs = h->arg;

	for (int i = 0; i < CTL_LISTEN_BACKLOG; i++) {
		int fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		pid_t pid;
		uid_t uid;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("control: accept: %s", strerror(errno));
			return;
		}
		if (!unixsock_peer_trusted(fd, &pid, &uid)) {
			log_warn("control: refused pid %d uid %d: only root or uid %u may manage sptd",
				 (int)pid, (int)uid, (unsigned)geteuid());
			ctl_refuse(fd, SPT_CTL_RC_PERMISSION,
				   "only root or the daemon's user may manage sptd");
			continue;
		}
		if (cs->nclients >= CTL_MAX_CLIENTS) {
			log_warn("control: refused pid %d: %d clients already connected", (int)pid,
				 CTL_MAX_CLIENTS);
			ctl_refuse(fd, SPT_CTL_RC_BUSY, "too many control clients connected; try again");
			continue;
		}
		struct ctl_client *c = calloc(1, sizeof(*c));

		if (!c) {
			close(fd);
			continue;
		}
		c->cs = cs;
		c->id = ++cs->next_id;
		c->pid = pid;
		c->uid = uid;
		c->h.fd = fd;
		c->h.cb = client_on_event;
		c->h.arg = c;
		c->events = EPOLLIN;
		c->last_progress_ms = ev_now_ms();
		ctl_rx_init(&c->rx, SPT_CTL_REQUEST_MAX);
		if (ev_add(cs->loop, &c->h, EPOLLIN) < 0) {
			close(fd);
			free(c);
			continue;
		}
		for (size_t k = 0; k < CTL_MAX_CLIENTS; k++) {
			if (!cs->clients[k]) {
				cs->clients[k] = c;
				break;
			}
		}
		cs->nclients++;
		log_debug("control: client %u: pid %d uid %u", c->id, (int)pid, (unsigned)uid);
	}
}

static void ctl_on_timer(struct ev_handler *h, uint32_t events)
{
	struct ctl_server *cs = h->arg;
	uint64_t expirations, now = ev_now_ms();

	while (read(h->fd, &expirations, sizeof(expirations)) == sizeof(expirations))
		;
	for (size_t i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct ctl_client *c = cs->clients[i];

		/* a waiting stop is bounded by its own Timeout */
		if (c && !c->waiting && now - c->last_progress_ms > CTL_IDLE_TIMEOUT_S * 1000ull)
			client_close(c, "idle");
	}
}

struct ctl_server *ctl_server_open(struct ev_loop *loop, struct iscsi_server *srv, const char *path,
				   char *err, size_t errlen)
{
	struct ctl_server *cs = NULL;
	struct itimerspec its = { .it_interval = { 1, 0 }, .it_value = { 1, 0 } };
	bool bound = false;

	cs = calloc(1, sizeof(*cs));
	if (!cs) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	cs->loop = loop;
	cs->listen.fd = cs->timer.fd = -1;
	if (strlen(path) >= sizeof(cs->path)) {
		snprintf(err, errlen, "path too long (at most %zu bytes): %s", sizeof(cs->path) - 1, path);
		goto fail;
	}
	snprintf(cs->path, sizeof(cs->path), "%s", path);
	/* a stale socket of a dead daemon is replaced, a live one refused;
	 * created 0600 from the start */
	cs->listen.fd = unixsock_listen(path, CTL_LISTEN_BACKLOG, err, errlen);
	if (cs->listen.fd < 0)
		goto fail;
	bound = true;
	cs->admin = iscsi_admin_new(srv);
	if (!cs->admin) {
		snprintf(err, errlen, "cannot set up session administration");
		goto fail;
	}
	cs->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (cs->timer.fd < 0 || timerfd_settime(cs->timer.fd, 0, &its, NULL) < 0) {
		snprintf(err, errlen, "timerfd: %s", strerror(errno));
		goto fail;
	}
	cs->timer.cb = ctl_on_timer;
	cs->timer.arg = cs;
	cs->listen.cb = ctl_on_accept;
	cs->listen.arg = cs;
	if (ev_add(loop, &cs->timer, EPOLLIN) < 0) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		goto fail;
	}
	if (ev_add(loop, &cs->listen, EPOLLIN) < 0) {
		ev_del(loop, &cs->timer);
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		goto fail;
	}
	log_info("control socket %s ready", path);
	return cs;
fail:
	if (cs) {
		iscsi_admin_free(cs->admin);
		if (cs->timer.fd >= 0)
			close(cs->timer.fd);
		if (cs->listen.fd >= 0)
			close(cs->listen.fd);
		if (bound)
			unlink(path);
		free(cs);
	}
	return NULL;
}

void ctl_server_close(struct ctl_server *cs)
{
	if (!cs)
		return;
	for (size_t i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct ctl_client *c = cs->clients[i];

		if (!c)
			continue;
		if (c->waiting) {
			/* best effort: one non-blocking send, the loop is over */
			size_t flen;
			static const char msg[] = "sptd is shutting down";
			uint8_t *f = ctl_frame_new(SPT_CC_SESSION_END, SPT_CTL_RC_SHUTTING_DOWN, 0, msg,
						   sizeof(msg), &flen);

			if (f && send(c->h.fd, f, flen, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				log_debug("control: client %u: %s", c->id, strerror(errno));
			free(f);
		}
		client_detach(c, "daemon stopping");
		/* the loop has stopped: no event can name the client any more */
		client_free(c);
	}
	ev_del(cs->loop, &cs->listen);
	close(cs->listen.fd);
	ev_del(cs->loop, &cs->timer);
	close(cs->timer.fd);
	iscsi_admin_free(cs->admin);
	unlink(cs->path);
	free(cs);
}
