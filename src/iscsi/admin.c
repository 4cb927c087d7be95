/*
 * Session administration: the session, target and LUN lists and the
 * statistics snapshots (sptctl stats, the metrics endpoint) for the
 * control plane, and
 * SESSION_END received by the target (from sptctl or a provider): RFC 7143
 * 11.9.1 Async Message "target requests Logout" on every connection of the
 * session, a bounded grace time, then the session is closed whatever the
 * initiator did. A timerfd polls the stops in progress so their requesters
 * hear when the session is gone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "iscsi/admin.h"
#include "iscsi/iscsi.h"
#include "util/log.h"

_Static_assert(ISCSI_NAME_MAX + 1 <= SPT_CTL_NAME_MAX, "an iSCSI name fits the list entry");
_Static_assert(sizeof(((struct iscsi_conn *)0)->peer) <= SPT_PEER_ADDRESS_MAX,
	       "a peer address fits the list entry");
_Static_assert(sizeof(((struct iscsi_portal *)0)->text) <= SPT_CTL_PORTAL_MAX,
	       "a portal fits its TARGET_LIST part");
_Static_assert(SPT_LUN_DESC_MAX <= SPT_CTL_BACKEND_MAX, "a LUN's backend fits the list entry");
/* the largest target record the daemon can make fits one response, so a
 * page always holds at least one */
_Static_assert(sizeof(struct spt_ctl_target_list) + sizeof(struct spt_ctl_target) +
	       ISCSI_MAX_PORTALS * sizeof(struct spt_ctl_portal) +
	       ISCSI_MAX_ALLOW * sizeof(struct spt_ctl_initiator) <= SPT_CTL_RESPONSE_MAX,
	       "a target record fits in a response");

/* One stop in progress, or one more requester waiting for it. */
struct admin_stop {
	struct list_node node;
	uint64_t handle;
	uint64_t close_at_ms;	/* grace over: close the connections */
	uint64_t give_up_ms;	/* the requester stops waiting */
	bool closed;		/* this entry already closed the session */
	iscsi_admin_stop_done done;	/* NULL once answered or cancelled */
	void *arg;
};

struct iscsi_admin {
	struct iscsi_server *srv;
	struct ev_handler timer;
	bool timer_armed;
	struct list_node stops;
	size_t nstops;
};

static void admin_on_timer(struct ev_handler *h, uint32_t events);

struct iscsi_admin *iscsi_admin_new(struct iscsi_server *srv)
{
	struct iscsi_admin *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->srv = srv;
	list_init(&a->stops);
	a->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	a->timer.cb = admin_on_timer;
	a->timer.arg = a;
	if (a->timer.fd < 0 || ev_add(srv->loop, &a->timer, EPOLLIN) < 0) {
		log_err("session admin: timer: %s", strerror(errno));
		if (a->timer.fd >= 0)
			close(a->timer.fd);
		free(a);
		return NULL;
	}
	return a;
}

void iscsi_admin_free(struct iscsi_admin *a)
{
	struct list_node *n, *tmp;

	if (!a)
		return;
	list_for_each_safe(n, tmp, &a->stops) {
		list_del(n);
		free(list_entry(n, struct admin_stop, node));
	}
	ev_del(a->srv->loop, &a->timer);
	close(a->timer.fd);
	free(a);
}

uint32_t iscsi_admin_default_grace(const struct iscsi_admin *a)
{
	return a->srv->cfg.logout_grace_s;
}

static struct iscsi_session *admin_find(struct iscsi_server *srv, uint64_t handle)
{
	struct list_node *n, *tmp;

	list_for_each_safe(n, tmp, &srv->sessions) {
		struct iscsi_session *s = list_entry(n, struct iscsi_session, srv_node);

		if (s->handle == handle)
			return s;
	}
	return NULL;
}

static bool admin_stopping(const struct iscsi_admin *a, uint64_t handle)
{
	struct list_node *n, *tmp;

	list_for_each_safe(n, tmp, &a->stops)
		if (list_entry(n, struct admin_stop, node)->handle == handle)
			return true;
	return false;
}

static void admin_arm(struct iscsi_admin *a, bool on)
{
	struct itimerspec its;

	if (a->timer_armed == on)
		return;
	memset(&its, 0, sizeof(its));
	if (on) {
		its.it_value.tv_nsec = ISCSI_ADMIN_POLL_MS * 1000000L;
		its.it_interval = its.it_value;
	}
	if (timerfd_settime(a->timer.fd, 0, &its, NULL) < 0) {
		log_err("session admin: timerfd_settime: %s", strerror(errno));
		return;
	}
	a->timer_armed = on;
}

static uint8_t admin_session_state(const struct iscsi_admin *a, const struct iscsi_session *s)
{
	struct list_node *n, *tmp;
	bool all_logging_out = true;

	if (admin_stopping(a, s->handle))
		return SPT_CTL_SESSION_STOPPING;
	if (s->ending || s->nconns == 0)
		return SPT_CTL_SESSION_ENDING;
	list_for_each_safe(n, tmp, &((struct iscsi_session *)s)->conns)
		if (list_entry(n, struct iscsi_conn, sess_node)->state != CONN_LOGGED_OUT)
			all_logging_out = false;
	return all_logging_out ? SPT_CTL_SESSION_LOGGING_OUT : SPT_CTL_SESSION_ACTIVE;
}

static void admin_describe(const struct iscsi_admin *a, struct iscsi_session *s,
			   struct spt_ctl_session *out)
{
	struct list_node *n, *tmp;
	uint32_t i = 0;

	memset(out, 0, sizeof(*out));
	out->itnexus_handle = s->handle;
	memcpy(out->isid, s->isid, sizeof(out->isid));
	out->tsih = s->tsih;
	out->tpgt = s->target ? s->target->tpgt : 0;
	out->session_type = s->params.session_type == ISCSI_SESSION_DISCOVERY ?
			    SPT_CTL_SESSION_DISCOVERY : SPT_CTL_SESSION_NORMAL;
	out->state = admin_session_state(a, s);
	out->commands_in_flight = s->ntasks > 0 ? (uint32_t)s->ntasks : 0;
	out->connection_count = s->nconns > 0 ? (uint32_t)s->nconns : 0;
	snprintf(out->initiator_name, sizeof(out->initiator_name), "%s", s->params.initiator_name);
	snprintf(out->target_name, sizeof(out->target_name), "%s", s->target ? s->target->name : "");
	snprintf(out->chap_user_name, sizeof(out->chap_user_name), "%s", s->chap_user);
	out->bytes_read = s->bytes_read;
	out->bytes_written = s->bytes_written;
	list_for_each_safe(n, tmp, &s->conns) {
		const struct iscsi_conn *c = list_entry(n, struct iscsi_conn, sess_node);

		if (i == SPT_CTL_CONNS_MAX)
			break;
		out->conns[i].cid = c->cid;
		out->conns[i].state = c->state == CONN_LOGGED_OUT ? SPT_CTL_CONN_LOGGING_OUT :
								   SPT_CTL_CONN_FULL_FEATURE;
		snprintf(out->conns[i].peer_address, sizeof(out->conns[i].peer_address), "%s", c->peer);
		i++;
	}
}

static int admin_by_handle(const void *x, const void *y)
{
	uint64_t a = (*(struct iscsi_session *const *)x)->handle;
	uint64_t b = (*(struct iscsi_session *const *)y)->handle;

	return a < b ? -1 : a > b;
}

size_t iscsi_admin_session_list(struct iscsi_admin *a, uint64_t after, struct spt_ctl_session *out,
				size_t max, uint32_t *total, bool *more)
{
	struct iscsi_server *srv = a->srv;
	struct iscsi_session **v = NULL;
	struct list_node *n, *tmp;
	size_t nv = 0, ret = 0;

	*total = (uint32_t)srv->nsessions;
	*more = false;
	if (srv->nsessions == 0 || max == 0)
		goto out;
	v = malloc(srv->nsessions * sizeof(*v));
	if (!v)
		goto out;
	list_for_each_safe(n, tmp, &srv->sessions) {
		struct iscsi_session *s = list_entry(n, struct iscsi_session, srv_node);

		if (s->handle > after && nv < srv->nsessions)
			v[nv++] = s;
	}
	/* by handle, so that a page boundary (after = the last handle seen)
	 * neither repeats nor skips a session that lives on */
	qsort(v, nv, sizeof(*v), admin_by_handle);
	ret = nv < max ? nv : max;
	for (size_t i = 0; i < ret; i++)
		admin_describe(a, v[i], &out[i]);
	*more = nv > ret;
out:
	free(v);
	return ret;
}

_Static_assert(ISCSI_ADMIN_ALUA_GROUPS_MAX == ISCSI_MAX_PORTAL_GROUPS, "ALUA_LIST holds every group");

size_t iscsi_admin_alua_list(struct iscsi_admin *a, struct spt_ctl_alua_group *out, size_t max)
{
	struct iscsi_portal_group g[ISCSI_MAX_PORTAL_GROUPS];
	size_t n = iscsi_portal_groups(a->srv, g, ISCSI_MAX_PORTAL_GROUPS);

	for (size_t i = 0; i < n && i < max; i++) {
		size_t used = 0;

		memset(&out[i], 0, sizeof(out[i]));
		out[i].tpgt = g[i].tpgt;
		out[i].state = g[i].state;
		for (size_t p = 0; p < a->srv->nportals; p++) {
			const struct iscsi_portal *po = &a->srv->portals[p];
			int w;

			if (po->tpgt != g[i].tpgt)
				continue;
			out[i].portal_count++;
			/* SPT_CTL_ALUA_PORTALS_MAX: the list is cut, the count stays exact */
			w = snprintf(out[i].portals + used, sizeof(out[i].portals) - used, "%s%s",
				     used ? ", " : "", po->text);
			if (w < 0 || (size_t)w >= sizeof(out[i].portals) - used)
				used = sizeof(out[i].portals) - 1;
			else
				used += (size_t)w;
		}
	}
	return n;
}

int iscsi_admin_alua_set(struct iscsi_admin *a, uint16_t tpgt, uint8_t state, char *err,
			 size_t errlen)
{
	return iscsi_portal_group_set_state(a->srv, tpgt, state, err, errlen);
}

size_t iscsi_admin_portals(struct iscsi_admin *a, const char **out, size_t max)
{
	const struct iscsi_server *srv = a->srv;

	for (size_t i = 0; i < srv->nportals && i < max; i++)
		out[i] = srv->portals[i].text;
	return srv->nportals;
}

static int admin_target_by_name(const void *x, const void *y)
{
	return strcmp((*(struct iscsi_target *const *)x)->name, (*(struct iscsi_target *const *)y)->name);
}

/* The daemon's targets sorted by name: the order both lists page in. */
static size_t admin_targets_sorted(const struct iscsi_server *srv,
				   struct iscsi_target *v[ISCSI_MAX_TARGETS])
{
	size_t n = srv->ntargets < ISCSI_MAX_TARGETS ? srv->ntargets : ISCSI_MAX_TARGETS;

	memcpy(v, srv->targets, n * sizeof(*v));
	qsort(v, n, sizeof(*v), admin_target_by_name);
	return n;
}

static void admin_describe_target(const struct iscsi_server *srv, struct iscsi_target *t,
				  struct iscsi_admin_target *out)
{
	struct list_node *n, *tmp;

	memset(out, 0, sizeof(*out));
	snprintf(out->info.name, sizeof(out->info.name), "%s", t->name);
	out->info.tpgt = t->tpgt;
	/* CHAP is the server's, applied to every target's normal sessions */
	if (srv->limits.chap_normal)
		out->info.flags |= SPT_CTL_TARGET_CHAP;
	if (srv->chap.target.set)
		out->info.flags |= SPT_CTL_TARGET_MUTUAL_CHAP;
	out->info.lun_count = (uint32_t)t->luns.count;
	list_for_each_safe(n, tmp, &((struct iscsi_server *)srv)->sessions)
		if (list_entry(n, struct iscsi_session, srv_node)->target == t)
			out->info.session_count++;
	/* every portal serves every target (one portal group) */
	out->info.portal_count = (uint32_t)srv->nportals;
	out->info.initiator_count = (uint32_t)t->nallow;
	out->initiators = (const char *const *)t->allow;
}

size_t iscsi_admin_target_list(struct iscsi_admin *a, const char *after,
			       struct iscsi_admin_target *out, size_t max, uint32_t *total,
			       bool *more)
{
	struct iscsi_target *v[ISCSI_MAX_TARGETS];
	size_t nv = admin_targets_sorted(a->srv, v), first = 0, ret = 0;

	*total = (uint32_t)nv;
	/* names are unique: a page boundary neither repeats nor skips one */
	while (first < nv && strcmp(v[first]->name, after) <= 0)
		first++;
	for (size_t i = first; i < nv && ret < max; i++)
		admin_describe_target(a->srv, v[i], &out[ret++]);
	*more = first + ret < nv;
	return ret;
}

static int admin_lun_by_number(const void *x, const void *y)
{
	uint64_t a = (*(const struct spt_lun *const *)x)->lun;
	uint64_t b = (*(const struct spt_lun *const *)y)->lun;

	return a < b ? -1 : a > b;
}

static void admin_describe_lun(const struct iscsi_target *t, const struct spt_lun *l,
			       struct spt_ctl_lun *out)
{
	struct spt_lun_status st;

	memset(&st, 0, sizeof(st));
	/* a provider that says nothing serves, as far as the daemon knows */
	st.state = "online";
	if (l->status)
		l->status(l->ctx, &st);
	st.backend[sizeof(st.backend) - 1] = '\0';
	memset(out, 0, sizeof(*out));
	snprintf(out->target_name, sizeof(out->target_name), "%s", t->name);
	out->lun = l->lun;
	out->size_bytes = st.size_bytes;
	out->block_size = st.block_size;
	out->read_only = st.read_only;
	snprintf(out->state, sizeof(out->state), "%s", st.state ? st.state : "unknown");
	snprintf(out->backend, sizeof(out->backend), "%s", st.backend[0] ? st.backend : l->desc);
}

size_t iscsi_admin_lun_list(struct iscsi_admin *a, const char *after_target, uint64_t after_lun,
			    struct spt_ctl_lun *out, size_t max, uint32_t *total, bool *more)
{
	struct iscsi_target *v[ISCSI_MAX_TARGETS];
	const struct spt_lun *luns[SPT_MAX_LUNS];
	size_t nv = admin_targets_sorted(a->srv, v), ret = 0;

	*total = 0;
	*more = false;
	for (size_t i = 0; i < nv; i++)
		*total += (uint32_t)v[i]->luns.count;
	for (size_t i = 0; i < nv; i++) {
		int c = strcmp(v[i]->name, after_target);
		size_t nl = v[i]->luns.count < SPT_MAX_LUNS ? v[i]->luns.count : SPT_MAX_LUNS;

		if (c < 0)
			continue;
		for (size_t k = 0; k < nl; k++)
			luns[k] = &v[i]->luns.luns[k];
		qsort(luns, nl, sizeof(luns[0]), admin_lun_by_number);
		for (size_t k = 0; k < nl; k++) {
			if (c == 0 && luns[k]->lun <= after_lun)
				continue;
			if (ret == max) {
				*more = true;
				return ret;
			}
			admin_describe_lun(v[i], luns[k], &out[ret++]);
		}
	}
	return ret;
}

/* RFC 7143 11.9.1: AsyncEvent 1 on every connection of the session; false
 * if none can take it (then the session is closed at once). */
static bool admin_ask_logout(struct iscsi_session *s, uint32_t grace_s)
{
	struct list_node *n, *tmp;
	bool asked = false;

	/* a discovery session holds no state worth a grace time; the
	 * shutdown path treats it the same way */
	if (grace_s == 0 || s->ending || s->params.session_type != ISCSI_SESSION_NORMAL)
		return false;
	list_for_each_safe(n, tmp, &s->conns) {
		struct iscsi_conn *c = list_entry(n, struct iscsi_conn, sess_node);

		if (c->state == CONN_FULL_FEATURE) {
			iscsi_send_async_logout(c, (uint16_t)grace_s);
			asked = true;
		} else if (c->state == CONN_LOGGED_OUT) {
			asked = true;	/* already on its way out */
		}
	}
	return asked;
}

uint32_t iscsi_admin_session_stop(struct iscsi_admin *a, uint64_t handle, uint32_t grace_s,
				  uint32_t wait_s, iscsi_admin_stop_done done, void *arg)
{
	struct iscsi_session *s = admin_find(a->srv, handle);
	struct admin_stop *st;
	uint64_t now = ev_now_ms();

	if (!s)
		return SPT_CTL_RC_NO_SUCH_SESSION;
	if (a->nstops >= ISCSI_ADMIN_MAX_STOPS)
		return SPT_CTL_RC_BUSY;
	st = calloc(1, sizeof(*st));
	if (!st)
		return SPT_CTL_RC_NO_MEMORY;
	if (grace_s > SPT_CTL_GRACE_MAX)
		grace_s = SPT_CTL_GRACE_MAX;
	if (wait_s == 0)
		wait_s = grace_s + SPT_CTL_STOP_SLACK_S;
	st->handle = handle;
	st->close_at_ms = now + grace_s * 1000ull;
	st->give_up_ms = now + wait_s * 1000ull;
	st->done = done;
	st->arg = arg;
	/* a second stop of the same session waits with the first; its own
	 * (maybe shorter) grace still applies */
	if (!admin_stopping(a, handle)) {
		bool asked = admin_ask_logout(s, grace_s);

		log_info("session 0x%04x of %s (handle 0x%016llx): stop requested; %s", s->tsih,
			 s->params.initiator_name, (unsigned long long)handle,
			 asked ? "asked the initiator to log out" : "closing it now");
		if (!asked) {
			st->closed = true;
			iscsi_session_stop(s, "stopped by the administrator");
		}
	}
	list_add_tail(&a->stops, &st->node);
	a->nstops++;
	admin_arm(a, true);
	return SPT_CTL_RC_SUCCESS;
}

void iscsi_admin_cancel(struct iscsi_admin *a, void *arg)
{
	struct list_node *n, *tmp;

	list_for_each_safe(n, tmp, &a->stops) {
		struct admin_stop *st = list_entry(n, struct admin_stop, node);

		if (st->arg == arg) {
			st->done = NULL;
			st->arg = NULL;
		}
	}
}

static void admin_on_timer(struct ev_handler *h, uint32_t events)
{
	struct iscsi_admin *a = h->arg;
	struct list_node *n, *tmp;
	struct list_node finished;
	uint64_t expirations, now = ev_now_ms();

	while (read(h->fd, &expirations, sizeof(expirations)) == sizeof(expirations))
		;
	list_init(&finished);
	list_for_each_safe(n, tmp, &a->stops) {
		struct admin_stop *st = list_entry(n, struct admin_stop, node);
		struct iscsi_session *s = admin_find(a->srv, st->handle);

		/* closed already (by another stop, a logout, a connection
		 * loss): only its tasks are left to finish */
		if (s && !st->closed && s->ending)
			st->closed = true;
		if (s && !st->closed && now >= st->close_at_ms) {
			log_info("session 0x%04x of %s: not logged out within the grace time", s->tsih,
				 s->params.initiator_name);
			st->closed = true;
			iscsi_session_stop(s, "stopped by the administrator (grace time over)");
			/* the session may be gone now, or wait for its tasks */
			s = admin_find(a->srv, st->handle);
		}
		if (!s || (st->closed && !st->done)) {
			list_del(&st->node);
			a->nstops--;
			list_add_tail(&finished, &st->node);
		}
	}
	/* requesters hear after the walk: their callbacks may start or
	 * cancel other stops */
	list_for_each_safe(n, tmp, &finished) {
		struct admin_stop *st = list_entry(n, struct admin_stop, node);

		list_del(&st->node);
		if (st->done)
			st->done(st->arg, st->handle, SPT_CTL_RC_SUCCESS);
		free(st);
	}
again:
	list_for_each_safe(n, tmp, &a->stops) {
		struct admin_stop *st = list_entry(n, struct admin_stop, node);

		if (st->done && now >= st->give_up_ms) {
			iscsi_admin_stop_done done = st->done;
			void *arg = st->arg;

			st->done = NULL;
			st->arg = NULL;
			/* the stop goes on; only the requester stops waiting.
			 * The callback may change the list: walk it again (each
			 * pass answers one more, so this ends) */
			done(arg, st->handle, SPT_CTL_RC_TIMEOUT);
			goto again;
		}
	}
	if (list_empty(&a->stops))
		admin_arm(a, false);
}

/* ---- statistics ---- */

void iscsi_admin_stats_server(struct iscsi_admin *a, struct spt_ctl_stats_server *out)
{
	struct iscsi_server *srv = a->srv;
	struct list_node *n;

	memset(out, 0, sizeof(*out));
	out->sessions = (uint32_t)srv->nsessions;
	list_for_each(n, &srv->conns)
		out->connections++;
	out->targets = (uint32_t)srv->ntargets;
	for (size_t i = 0; i < srv->ntargets; i++)
		out->luns += (uint32_t)srv->targets[i]->luns.count;
	out->header_digest_errors = srv->header_digest_errors;
	out->data_digest_errors = srv->data_digest_errors;
}

static void admin_stats_target(const struct iscsi_server *srv, struct iscsi_target *t,
			       struct spt_ctl_stats_target *out)
{
	struct list_node *n;

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", t->name);
	out->lun_count = (uint32_t)t->luns.count;
	list_for_each(n, &((struct iscsi_server *)srv)->sessions)
		if (list_entry(n, struct iscsi_session, srv_node)->target == t)
			out->session_count++;
	/* a target's counters are its LUNs': they outlive every session */
	for (size_t i = 0; i < t->luns.count; i++) {
		struct spt_ctl_stats_io io;
		struct spt_ctl_stats_latency lat;

		iscsi_stats_lun_snapshot(&t->luns.luns[i].stats, &io, &lat);
		iscsi_stats_io_add(&out->io, &io);
		iscsi_stats_latency_add(&out->latency, &lat);
	}
}

size_t iscsi_admin_stats_targets(struct iscsi_admin *a, const char *after,
				 struct spt_ctl_stats_target *out, size_t max, uint32_t *total,
				 bool *more)
{
	struct iscsi_target *v[ISCSI_MAX_TARGETS];
	size_t nv = admin_targets_sorted(a->srv, v), first = 0, ret = 0;

	*total = (uint32_t)nv;
	while (first < nv && strcmp(v[first]->name, after) <= 0)
		first++;
	for (size_t i = first; i < nv && ret < max; i++)
		admin_stats_target(a->srv, v[i], &out[ret++]);
	*more = first + ret < nv;
	return ret;
}

size_t iscsi_admin_stats_luns(struct iscsi_admin *a, const char *after_target, uint64_t after_lun,
			      struct spt_ctl_stats_lun *out, size_t max, uint32_t *total, bool *more)
{
	struct iscsi_target *v[ISCSI_MAX_TARGETS];
	const struct spt_lun *luns[SPT_MAX_LUNS];
	size_t nv = admin_targets_sorted(a->srv, v), ret = 0;

	*total = 0;
	*more = false;
	for (size_t i = 0; i < nv; i++)
		*total += (uint32_t)v[i]->luns.count;
	for (size_t i = 0; i < nv; i++) {
		int c = strcmp(v[i]->name, after_target);
		size_t nl = v[i]->luns.count < SPT_MAX_LUNS ? v[i]->luns.count : SPT_MAX_LUNS;

		if (c < 0)
			continue;
		for (size_t k = 0; k < nl; k++)
			luns[k] = &v[i]->luns.luns[k];
		qsort(luns, nl, sizeof(luns[0]), admin_lun_by_number);
		for (size_t k = 0; k < nl; k++) {
			if (c == 0 && luns[k]->lun <= after_lun)
				continue;
			if (ret == max) {
				*more = true;
				return ret;
			}
			memset(&out[ret], 0, sizeof(out[ret]));
			snprintf(out[ret].target_name, sizeof(out[ret].target_name), "%s", v[i]->name);
			out[ret].lun = luns[k]->lun;
			iscsi_stats_lun_snapshot(&luns[k]->stats, &out[ret].io, &out[ret].latency);
			ret++;
		}
	}
	return ret;
}

static void admin_stats_session(struct iscsi_session *s, struct spt_ctl_stats_session *out)
{
	struct list_node *n;
	uint32_t i = 0;

	memset(out, 0, sizeof(*out));
	out->itnexus_handle = s->handle;
	memcpy(out->isid, s->isid, sizeof(out->isid));
	out->tsih = s->tsih;
	out->session_type = s->params.session_type == ISCSI_SESSION_DISCOVERY ?
			    SPT_CTL_SESSION_DISCOVERY : SPT_CTL_SESSION_NORMAL;
	out->connection_count = s->nconns > 0 ? (uint32_t)s->nconns : 0;
	snprintf(out->initiator_name, sizeof(out->initiator_name), "%s", s->params.initiator_name);
	snprintf(out->target_name, sizeof(out->target_name), "%s", s->target ? s->target->name : "");
	out->commands = s->stats.commands;
	out->errors = s->stats.errors;
	out->aborts = s->stats.aborts;
	out->queue_depth = s->ntasks > 0 ? (uint64_t)s->ntasks : 0;
	out->bytes_read = s->bytes_read;
	out->bytes_written = s->bytes_written;
	out->header_digest_errors = s->header_digest_errors;
	out->data_digest_errors = s->data_digest_errors;
	list_for_each(n, &s->conns) {
		const struct iscsi_conn *c = list_entry(n, struct iscsi_conn, sess_node);
		struct spt_ctl_stats_connection *o;

		if (i == SPT_CTL_CONNS_MAX)
			break;
		o = &out->conns[i];
		o->cid = c->cid;
		snprintf(o->peer_address, sizeof(o->peer_address), "%s", c->peer);
		o->pdus_in = c->stats.pdus_in;
		o->pdus_out = c->stats.pdus_out;
		o->bytes_in = c->stats.bytes_in;
		o->bytes_out = c->stats.bytes_out;
		o->header_digest_errors = c->header_digest_errors;
		o->data_digest_errors = c->data_digest_errors;
		i++;
	}
}

size_t iscsi_admin_stats_sessions(struct iscsi_admin *a, uint64_t after_handle,
				  struct spt_ctl_stats_session *out, size_t max, uint32_t *total,
				  bool *more)
{
	struct iscsi_server *srv = a->srv;
	struct iscsi_session **v = NULL;
	struct list_node *n;
	size_t nv = 0, ret = 0;

	*total = (uint32_t)srv->nsessions;
	*more = false;
	if (srv->nsessions == 0 || max == 0)
		goto out;
	v = malloc(srv->nsessions * sizeof(*v));
	if (!v)
		goto out;
	list_for_each(n, &srv->sessions) {
		struct iscsi_session *s = list_entry(n, struct iscsi_session, srv_node);

		if (s->handle > after_handle && nv < srv->nsessions)
			v[nv++] = s;
	}
	/* by handle, as SESSION_LIST pages */
	qsort(v, nv, sizeof(*v), admin_by_handle);
	ret = nv < max ? nv : max;
	for (size_t i = 0; i < ret; i++)
		admin_stats_session(v[i], &out[i]);
	*more = nv > ret;
out:
	free(v);
	return ret;
}
