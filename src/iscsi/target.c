/*
 * Targets and portals: listening sockets, accepted connections, the
 * once-a-second tick (login and NOP timeouts, shutdown), SendTargets
 * (RFC 7143 appendix C), CHAP configuration and the initiator ACLs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iscsi/server.h"
#include "util/log.h"

struct iscsi_server_ext {
	struct iscsi_server srv;
	void (*shutdown_done)(void *);
	void *shutdown_arg;
};

static void server_tick(void *arg);

struct iscsi_server *iscsi_server_new(struct ev_loop *loop)
{
	struct iscsi_server_ext *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	struct iscsi_server *srv = &x->srv;

	srv->loop = loop;
	srv->bp = bufpool_new();
	if (!srv->bp) {
		free(x);
		return NULL;
	}
	srv->cfg.login_timeout_s = 15;
	srv->cfg.nop_interval_s = 30;
	srv->cfg.nop_timeout_s = 30;
	srv->cfg.logout_grace_s = 3;
	srv->cfg.max_sessions = ISCSI_DEFAULT_MAX_SESSIONS;
	srv->cfg.max_sessions_per_target = ISCSI_DEFAULT_MAX_SESSIONS_PER_TARGET;
	srv->cfg.max_conns_per_address = ISCSI_DEFAULT_MAX_CONNS_PER_ADDRESS;
	srv->cfg.max_half_open = ISCSI_DEFAULT_MAX_HALF_OPEN;
	srv->cfg.max_login_text = ISCSI_LOGIN_TEXT_MAX;
	srv->cfg.max_login_keys = ISCSI_TEXT_MAX_KEYS;
	srv->cfg.max_pending_commands = ISCSI_DEFAULT_MAX_PENDING_COMMANDS;
	srv->cfg.pdu_timeout_s = ISCSI_DEFAULT_PDU_TIMEOUT_S;
	srv->cfg.max_recv_dsl = ISCSI_DEFAULT_MAX_RECV_DSL;
	srv->cfg.max_session_buffer_mib = ISCSI_DEFAULT_SESSION_BUFFER_MIB;
	iscsi_limits_default(&srv->limits);
	list_init(&srv->sessions);
	list_init(&srv->conns);
	ev_tick_add(loop, server_tick, srv);
	return srv;
}

void iscsi_server_free(struct iscsi_server *srv)
{
	if (!srv)
		return;
	for (size_t i = 0; i < srv->nportals; i++) {
		ev_del(srv->loop, &srv->portals[i].h);
		close(srv->portals[i].h.fd);
	}
	for (size_t i = 0; i < srv->ntargets; i++) {
		spt_lun_map_close(&srv->targets[i]->luns);
		for (size_t a = 0; a < srv->targets[i]->nallow; a++)
			free(srv->targets[i]->allow[a]);
		free(srv->targets[i]->allow);
		free(srv->targets[i]);
	}
	chap_config_wipe(&srv->chap);
	bufpool_free(srv->bp);
	free((struct iscsi_server_ext *)srv);
}

struct iscsi_target *iscsi_server_add_target(struct iscsi_server *srv, const char *name)
{
	if (srv->ntargets == ISCSI_MAX_TARGETS || strlen(name) > ISCSI_NAME_MAX)
		return NULL;
	struct iscsi_target *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->tpgt = ISCSI_DEFAULT_TPGT;
	srv->targets[srv->ntargets++] = t;
	return t;
}

struct iscsi_target *iscsi_target_find(struct iscsi_server *srv, const char *name)
{
	/* RFC 7143 4.2.7.1: iSCSI names compare case-insensitively after
	 * stringprep; initiators send them lowercased */
	for (size_t i = 0; i < srv->ntargets; i++)
		if (strcasecmp(srv->targets[i]->name, name) == 0)
			return srv->targets[i];
	return NULL;
}

int iscsi_server_set_chap(struct iscsi_server *srv, const struct chap_config *cfg, char *err,
			  size_t errlen)
{
	if (chap_config_check(cfg, err, errlen) < 0)
		return -1;
	srv->chap = *cfg;
	srv->limits.chap_normal = cfg->initiator.set;
	srv->limits.chap_discovery = cfg->discovery.set;
	return 0;
}

int iscsi_target_allow(struct iscsi_target *t, const char *initiator, char *err, size_t errlen)
{
	size_t len = strlen(initiator);
	char **grown;

	/* RFC 7143 4.2.7: an iqn., eui. or naa. name of at most 223 bytes */
	if (len == 0 || len > ISCSI_NAME_MAX ||
	    (strncasecmp(initiator, "iqn.", 4) != 0 && strncasecmp(initiator, "eui.", 4) != 0 &&
	     strncasecmp(initiator, "naa.", 4) != 0)) {
		snprintf(err, errlen, "'%s' is not an iSCSI name (iqn., eui. or naa., <= %d bytes)",
			 initiator, ISCSI_NAME_MAX);
		return -1;
	}
	if (t->nallow == ISCSI_MAX_ALLOW) {
		snprintf(err, errlen, "at most %d initiators per target", ISCSI_MAX_ALLOW);
		return -1;
	}
	grown = realloc(t->allow, (t->nallow + 1) * sizeof(*t->allow));
	if (!grown) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	t->allow = grown;
	t->allow[t->nallow] = strdup(initiator);
	if (!t->allow[t->nallow]) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	t->nallow++;
	return 0;
}

bool iscsi_target_allows(const struct iscsi_target *t, const char *initiator)
{
	if (t->nallow == 0)
		return true;
	/* RFC 7143 4.2.7.1: iSCSI names compare case-insensitively */
	for (size_t i = 0; i < t->nallow; i++)
		if (strcasecmp(t->allow[i], initiator) == 0)
			return true;
	return false;
}

static void portal_accept(struct ev_handler *h, uint32_t events)
{
	struct iscsi_portal *p = h->arg;

	for (int i = 0; i < 64; i++) {
		int fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* the pending connection stays queued and the socket
				 * readable: stop watching it until the next tick rather
				 * than spin on the same failure */
				log_warn("portal %s: accept: %s; pausing it for a second", p->text,
					 strerror(errno));
				if (ev_mod(p->srv->loop, &p->h, 0) == 0)
					p->paused = true;
			} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				log_warn("portal %s: accept: %s", p->text, strerror(errno));
			}
			return;
		}
		if (p->srv->shutting_down) {
			close(fd);
			continue;
		}
		iscsi_conn_accept(p->srv, fd);
	}
}

/* Tells the daemon the group table after portals or states changed. */
static void portal_groups_changed(struct iscsi_server *srv)
{
	struct iscsi_portal_group g[ISCSI_MAX_PORTAL_GROUPS];
	size_t n;

	if (!srv->groups_changed)
		return;
	n = iscsi_portal_groups(srv, g, ISCSI_MAX_PORTAL_GROUPS);
	srv->groups_changed(srv->groups_changed_arg, g, n);
}

/*
 * Splits "ADDR:PORT[,tpg=N]" into the address part and the group. RFC 7143
 * 13.9: a TargetPortalGroupTag is 0..65535; 0 is kept out because SPC-4
 * 7.8.6.7 reserves relative target port identifier 0, and the tag is used as
 * that identifier.
 */
static int portal_spec_split(const char *spec, char *addr, size_t addrlen, uint16_t *tpgt, char *err,
			     size_t errlen)
{
	const char *comma = strchr(spec, ',');
	size_t alen = comma ? (size_t)(comma - spec) : strlen(spec);

	*tpgt = ISCSI_DEFAULT_TPGT;
	if (alen >= addrlen) {
		snprintf(err, errlen, "bad portal '%s': address too long", spec);
		return -1;
	}
	memcpy(addr, spec, alen);
	addr[alen] = '\0';
	if (!comma)
		return 0;
	char *endp;
	long v;

	if (strncmp(comma + 1, "tpg=", 4) != 0 || !comma[5]) {
		snprintf(err, errlen, "bad portal '%s': expected ADDR:PORT[,tpg=N]", spec);
		return -1;
	}
	errno = 0;
	v = strtol(comma + 5, &endp, 10);
	if (errno || *endp || v < 1 || v > ISCSI_TPGT_MAX) {
		snprintf(err, errlen, "bad portal '%s': tpg must be 1..%d", spec, ISCSI_TPGT_MAX);
		return -1;
	}
	*tpgt = (uint16_t)v;
	return 0;
}

int iscsi_server_listen(struct iscsi_server *srv, const char *full_spec, char *err, size_t errlen)
{
	char host[256], spec[128];
	const char *port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	int fd = -1, one = 1, rc;
	uint16_t tpgt;

	if (srv->nportals == ISCSI_MAX_PORTALS) {
		snprintf(err, errlen, "too many portals (at most %d)", ISCSI_MAX_PORTALS);
		return -1;
	}
	if (strlen(full_spec) >= sizeof(srv->portals[0].text)) {
		snprintf(err, errlen, "bad portal '%s': longer than %zu bytes", full_spec,
			 sizeof(srv->portals[0].text) - 1);
		return -1;
	}
	if (portal_spec_split(full_spec, spec, sizeof(spec), &tpgt, err, errlen) < 0)
		return -1;
	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');

		if (!end || end[1] != ':' || (size_t)(end - spec - 1) >= sizeof(host)) {
			snprintf(err, errlen, "bad portal '%s': expected [IPV6]:PORT", spec);
			return -1;
		}
		memcpy(host, spec + 1, (size_t)(end - spec - 1));
		host[end - spec - 1] = '\0';
		port = end + 2;
	} else {
		const char *colon = strrchr(spec, ':');

		if (!colon || (size_t)(colon - spec) >= sizeof(host) || strchr(spec, ':') != colon) {
			snprintf(err, errlen, "bad portal '%s': expected ADDR:PORT or [IPV6]:PORT", spec);
			return -1;
		}
		memcpy(host, spec, (size_t)(colon - spec));
		host[colon - spec] = '\0';
		port = colon + 1;
	}
	char *endp;
	long pn = strtol(port, &endp, 10);

	if (!*port || *endp || pn < 1 || pn > 65535) {
		snprintf(err, errlen, "bad port in '%s'", spec);
		return -1;
	}
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "bad address in '%s': %s", spec, gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 512) < 0)
		goto fail;
	struct iscsi_portal *p = &srv->portals[srv->nportals];

	memcpy(&p->addr, ai->ai_addr, ai->ai_addrlen);
	p->addrlen = ai->ai_addrlen;
	p->srv = srv;
	p->tpgt = tpgt;
	snprintf(p->text, sizeof(p->text), "%s", full_spec);
	p->h.fd = fd;
	p->h.cb = portal_accept;
	p->h.arg = p;
	if (ev_add(srv->loop, &p->h, EPOLLIN) < 0)
		goto fail;
	srv->nportals++;
	freeaddrinfo(ai);
	log_info("listening on %s (target portal group %u)", spec, tpgt);
	portal_groups_changed(srv);
	return 0;
fail:
	snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return -1;
}

static bool addr_is_any(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return false;
}

static void format_addr(const struct sockaddr_storage *ss, uint16_t port, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "";

	if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%u", host, port);
	} else {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%u", host, port);
	}
}

static uint16_t addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

/*
 * RFC 7143 appendix C / 13.3: SendTargets=All lists every target with its
 * portals; an empty value (normal session) the session's target; a name
 * that target. A wildcard portal is reported with the address the
 * initiator reached us on.
 */
int iscsi_sendtargets(struct iscsi_conn *conn, const char *what, struct iscsi_text_out *out)
{
	struct iscsi_server *srv = conn->srv;
	bool discovery = conn->sess->params.session_type == ISCSI_SESSION_DISCOVERY;
	bool all = strcmp(what, "All") == 0;

	if (all && !discovery) {
		/* RFC 7143 13.3: "All" only in a discovery session */
		iscsi_text_append(out, "SendTargets", "Reject");
		return 0;
	}
	for (size_t i = 0; i < srv->ntargets; i++) {
		struct iscsi_target *t = srv->targets[i];

		if (!all) {
			if (what[0] ? strcasecmp(what, t->name) != 0 : conn->sess->target != t)
				continue;
		}
		/* an initiator the ACL refuses learns nothing of the target, not even its name */
		if (!iscsi_target_allows(t, conn->sess->params.initiator_name))
			continue;
		iscsi_text_append(out, "TargetName", t->name);
		for (size_t p = 0; p < srv->nportals; p++) {
			char addr[96], val[112];
			const struct iscsi_portal *po = &srv->portals[p];

			if (addr_is_any(&po->addr)) {
				if (conn->local.ss_family != po->addr.ss_family)
					continue;
				format_addr(&conn->local, addr_port(&po->addr), addr, sizeof(addr));
			} else {
				format_addr(&po->addr, addr_port(&po->addr), addr, sizeof(addr));
			}
			/* RFC 7143 appendix C: each address with the tag of its own portal group */
			snprintf(val, sizeof(val), "%s,%u", addr, po->tpgt);
			iscsi_text_append(out, "TargetAddress", val);
		}
	}
	return 0;
}

static void server_tick(void *arg)
{
	struct iscsi_server *srv = arg;
	uint64_t now = ev_now_ms();
	struct list_node *n, *tmp;

	list_for_each_safe(n, tmp, &srv->conns)
		iscsi_conn_tick(list_entry(n, struct iscsi_conn, srv_node), now);
	for (size_t i = 0; i < srv->nportals; i++) {
		if (srv->portals[i].paused && ev_mod(srv->loop, &srv->portals[i].h, EPOLLIN) == 0)
			srv->portals[i].paused = false;
	}
	if (srv->refused_unlogged) {
		log_warn("refused %u more connection(s) at accept in the last second (%llu for "
			 "--max-connections-per-address, %llu for --max-half-open since start)",
			 srv->refused_unlogged, (unsigned long long)srv->refused_per_address,
			 (unsigned long long)srv->refused_half_open);
		srv->refused_unlogged = 0;
		srv->refused_logged_ms = now;
	}
	if (!srv->shutting_down)
		return;
	if (now >= srv->shutdown_deadline_ms) {
		list_for_each_safe(n, tmp, &srv->conns)
			iscsi_conn_close(list_entry(n, struct iscsi_conn, srv_node), "target shutting down");
	}
	if (list_empty(&srv->conns) && list_empty(&srv->sessions)) {
		struct iscsi_server_ext *x = (struct iscsi_server_ext *)srv;

		if (x->shutdown_done) {
			void (*done)(void *) = x->shutdown_done;

			x->shutdown_done = NULL;
			done(x->shutdown_arg);
		}
	}
}

void iscsi_server_shutdown(struct iscsi_server *srv, void (*done)(void *), void *arg)
{
	struct iscsi_server_ext *x = (struct iscsi_server_ext *)srv;
	struct list_node *n, *tmp;

	if (srv->shutting_down)
		return;
	srv->shutting_down = true;
	srv->shutdown_deadline_ms = ev_now_ms() + srv->cfg.logout_grace_s * 1000ull;
	x->shutdown_done = done;
	x->shutdown_arg = arg;
	for (size_t i = 0; i < srv->nportals; i++)
		ev_del(srv->loop, &srv->portals[i].h);
	list_for_each_safe(n, tmp, &srv->conns) {
		struct iscsi_conn *c = list_entry(n, struct iscsi_conn, srv_node);

		if (c->state == CONN_FULL_FEATURE && c->sess &&
		    c->sess->params.session_type == ISCSI_SESSION_NORMAL)
			iscsi_send_async_logout(c, (uint16_t)srv->cfg.logout_grace_s);
		else
			iscsi_conn_close(c, "target shutting down");
	}
	log_info("shutting down: asked %zu session(s) to log out", srv->nsessions);
}

/* ---- runtime reconfiguration (SIGHUP, sptctl) ---- */

size_t iscsi_target_session_count(const struct iscsi_server *srv, const struct iscsi_target *t)
{
	struct list_node *n;
	size_t count = 0;

	list_for_each(n, &srv->sessions)
		if (list_entry(n, struct iscsi_session, srv_node)->target == t)
			count++;
	return count;
}

/* A target is busy while a session uses it or a login names it. */
static bool target_busy(const struct iscsi_server *srv, const struct iscsi_target *t)
{
	struct list_node *n;

	if (iscsi_target_session_count(srv, t))
		return true;
	list_for_each(n, &srv->conns)
		if (list_entry(n, struct iscsi_conn, srv_node)->login_target == t)
			return true;
	return false;
}

struct iscsi_target *iscsi_server_find_target(const struct iscsi_server *srv, const char *name)
{
	for (size_t i = 0; i < srv->ntargets; i++)
		if (!strcasecmp(srv->targets[i]->name, name))
			return srv->targets[i];
	return NULL;
}

int iscsi_target_set_allow(struct iscsi_server *srv, struct iscsi_target *t,
			   const char *const *names, size_t n, char *err, size_t errlen)
{
	char **old = t->allow;
	size_t nold = t->nallow;
	struct list_node *sn, *tmp;

	t->allow = NULL;
	t->nallow = 0;
	for (size_t i = 0; i < n; i++) {
		if (iscsi_target_allow(t, names[i], err, errlen) < 0) {
			for (size_t j = 0; j < t->nallow; j++)
				free(t->allow[j]);
			free(t->allow);
			t->allow = old;
			t->nallow = nold;
			return -1;
		}
	}
	for (size_t j = 0; j < nold; j++)
		free(old[j]);
	free(old);
	/* an initiator taken off the list loses its sessions too: asked to
	 * log out, closed after the grace time */
	list_for_each_safe(sn, tmp, &srv->sessions) {
		struct iscsi_session *s = list_entry(sn, struct iscsi_session, srv_node);

		if (s->target == t && !s->ending && !iscsi_target_allows(t, s->params.initiator_name)) {
			log_info("session 0x%04x of %s: no longer in the ACL of %s, stopping it", s->tsih,
				 s->params.initiator_name, t->name);
			iscsi_session_stop(s, "initiator removed from the target's ACL");
		}
	}
	return 0;
}

int iscsi_target_add_lun(struct iscsi_server *srv, struct iscsi_target *t, const struct spt_lun *l,
			 char *err, size_t errlen)
{
	struct list_node *n;
	struct spt_lun *slot;

	if (t->luns.count == SPT_MAX_LUNS) {
		snprintf(err, errlen, "target %s has %d LUNs already", t->name, SPT_MAX_LUNS);
		return -1;
	}
	if (spt_lun_find(&t->luns, l->lun)) {
		snprintf(err, errlen, "target %s has a LUN %llu already", t->name, (unsigned long long)l->lun);
		return -1;
	}
	slot = &t->luns.luns[t->luns.count++];
	*slot = *l;
	t->luns_gen++;
	/* sessions already in full feature phase reach the new LUN too */
	list_for_each(n, &srv->sessions) {
		struct iscsi_session *s = list_entry(n, struct iscsi_session, srv_node);

		if (s->target == t && s->started && slot->ops->session_start)
			slot->ops->session_start(slot->ctx, &s->start);
	}
	log_info("target %s: LUN %llu added: %s", t->name, (unsigned long long)l->lun, l->desc);
	return 0;
}

/* Commands the target's sessions hold (tasks point into its LUN map). */
static size_t target_tasks(const struct iscsi_server *srv, const struct iscsi_target *t)
{
	struct list_node *n;
	size_t count = 0;

	list_for_each(n, &srv->sessions) {
		const struct iscsi_session *s = list_entry(n, struct iscsi_session, srv_node);

		if (s->target == t)
			count += (size_t)s->ntasks;
	}
	return count;
}

int iscsi_target_remove_lun(struct iscsi_server *srv, struct iscsi_target *t, uint64_t lun,
			    bool force, char *err, size_t errlen)
{
	struct spt_lun *l = (struct spt_lun *)spt_lun_find(&t->luns, lun);
	size_t i;

	if (!l) {
		snprintf(err, errlen, "target %s has no LUN %llu", t->name, (unsigned long long)lun);
		return -1;
	}
	if (!force && target_busy(srv, t)) {
		snprintf(err, errlen, "target %s has sessions: LUN %llu is in use (force to remove it "
			 "anyway)", t->name, (unsigned long long)lun);
		return -1;
	}
	/* forced: the sessions stay and get REPORTED LUNS DATA HAS CHANGED,
	 * but no command may be in flight (tasks point into the map) */
	if (target_tasks(srv, t)) {
		snprintf(err, errlen, "target %s has %zu command(s) in flight; try again", t->name,
			 target_tasks(srv, t));
		return -1;
	}
	if (l->ops->close)
		l->ops->close(l->ctx);
	i = (size_t)(l - t->luns.luns);
	memmove(&t->luns.luns[i], &t->luns.luns[i + 1], (t->luns.count - i - 1) * sizeof(*l));
	t->luns.count--;
	t->luns_gen++;
	log_info("target %s: LUN %llu removed", t->name, (unsigned long long)lun);
	return 0;
}

int iscsi_server_remove_target(struct iscsi_server *srv, struct iscsi_target *t, char *err,
			       size_t errlen)
{
	size_t i;

	if (target_busy(srv, t)) {
		snprintf(err, errlen, "target %s has sessions or logins in progress", t->name);
		return -1;
	}
	for (i = 0; i < srv->ntargets && srv->targets[i] != t; i++)
		;
	if (i == srv->ntargets) {
		snprintf(err, errlen, "no such target");
		return -1;
	}
	log_info("target %s removed", t->name);
	spt_lun_map_close(&t->luns);
	for (size_t a = 0; a < t->nallow; a++)
		free(t->allow[a]);
	free(t->allow);
	free(t);
	memmove(&srv->targets[i], &srv->targets[i + 1], (srv->ntargets - i - 1) * sizeof(srv->targets[0]));
	srv->ntargets--;
	return 0;
}

int iscsi_server_unlisten(struct iscsi_server *srv, const char *spec)
{
	size_t i;

	for (i = 0; i < srv->nportals && strcmp(srv->portals[i].text, spec); i++)
		;
	if (i == srv->nportals)
		return -1;
	ev_del(srv->loop, &srv->portals[i].h);
	close(srv->portals[i].h.fd);
	log_info("no longer listening on %s (connections made there stay)", spec);
	memmove(&srv->portals[i], &srv->portals[i + 1], (srv->nportals - i - 1) * sizeof(srv->portals[0]));
	srv->nportals--;
	/* the portals that moved: epoll holds a pointer to each */
	for (size_t j = i; j < srv->nportals; j++) {
		srv->portals[j].h.arg = &srv->portals[j];
		ev_mod(srv->loop, &srv->portals[j].h, EPOLLIN);
	}
	portal_groups_changed(srv);
	return 0;
}

/* ---- target portal groups and their ALUA states ---- */

static bool portal_addr_matches(const struct iscsi_portal *p, const struct sockaddr_storage *local)
{
	if (p->addr.ss_family != local->ss_family || addr_port(&p->addr) != addr_port(local))
		return false;
	if (addr_is_any(&p->addr))
		return true;
	if (local->ss_family == AF_INET6)
		return IN6_ARE_ADDR_EQUAL(&((const struct sockaddr_in6 *)&p->addr)->sin6_addr,
					  &((const struct sockaddr_in6 *)local)->sin6_addr);
	return ((const struct sockaddr_in *)&p->addr)->sin_addr.s_addr ==
	       ((const struct sockaddr_in *)local)->sin_addr.s_addr;
}

uint16_t iscsi_portal_tpgt(const struct iscsi_server *srv, const struct sockaddr_storage *local)
{
	const struct iscsi_portal *wild = NULL;

	/* an exact address wins over a wildcard portal on the same port */
	for (size_t i = 0; i < srv->nportals; i++) {
		const struct iscsi_portal *p = &srv->portals[i];

		if (!portal_addr_matches(p, local))
			continue;
		if (!addr_is_any(&p->addr))
			return p->tpgt;
		if (!wild)
			wild = p;
	}
	return wild ? wild->tpgt : ISCSI_DEFAULT_TPGT;
}

static const struct iscsi_portal_group *portal_group_find(const struct iscsi_server *srv,
							  uint16_t tpgt)
{
	for (size_t i = 0; i < srv->ngroups; i++)
		if (srv->groups[i].tpgt == tpgt)
			return &srv->groups[i];
	return NULL;
}

size_t iscsi_portal_groups(const struct iscsi_server *srv, struct iscsi_portal_group *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < srv->nportals; i++) {
		uint16_t tpgt = srv->portals[i].tpgt;
		const struct iscsi_portal_group *set = portal_group_find(srv, tpgt);
		size_t k;

		for (k = 0; k < n && out[k].tpgt != tpgt; k++)
			;
		if (k < n || n == max)
			continue;
		/* ascending by tag: insertion sort, the table is small */
		for (k = n; k > 0 && out[k - 1].tpgt > tpgt; k--)
			out[k] = out[k - 1];
		out[k].tpgt = tpgt;
		out[k].state = set ? set->state : ISCSI_ALUA_ACTIVE_OPTIMIZED;
		n++;
	}
	return n;
}

int iscsi_portal_group_set_state(struct iscsi_server *srv, uint16_t tpgt, uint8_t state, char *err,
				 size_t errlen)
{
	struct iscsi_portal_group *g = (struct iscsi_portal_group *)portal_group_find(srv, tpgt);

	/* SPC-4 7.8.6.7: the tag is the relative port identifier, 0 is reserved */
	if (tpgt < 1) {
		snprintf(err, errlen, "target portal group %u: must be 1..%d", tpgt, ISCSI_TPGT_MAX);
		return -1;
	}
	/* SPC-4 5.16.2.4: the four states of a group with one port each */
	if (state > ISCSI_ALUA_UNAVAILABLE) {
		snprintf(err, errlen, "asymmetric access state %u is not one sptd supports", state);
		return -1;
	}
	if (!g) {
		if (srv->ngroups == ISCSI_MAX_PORTAL_GROUPS) {
			snprintf(err, errlen, "at most %d target portal groups", ISCSI_MAX_PORTAL_GROUPS);
			return -1;
		}
		g = &srv->groups[srv->ngroups++];
		g->tpgt = tpgt;
	}
	log_info("target portal group %u: asymmetric access state %u (was %u)", tpgt, state, g->state);
	g->state = state;
	portal_groups_changed(srv);
	return 0;
}
