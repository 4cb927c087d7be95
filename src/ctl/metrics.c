/*
 * The Prometheus endpoint of sptd (--metrics ADDR:PORT): libmicrohttpd
 * without a thread of its own (MHD_USE_EPOLL, "external" polling): its
 * epoll fd is one more handler of sptd's event loop and MHD_run() is called
 * when it is readable, or when the timeout MHD asks for (MHD_get_timeout,
 * kept in a timerfd) is over. A scrape takes a snapshot through the
 * session administration (src/iscsi/admin.c), on the reactor thread, and
 * renders it in the text exposition format 0.0.4: metric names with their
 * unit and _total for counters, HELP and TYPE before each family, label
 * values escaped.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <microhttpd.h>

#include "ctl/frame.h"
#include "ctl/metrics.h"
#include "iscsi/admin.h"
#include "util/evloop.h"
#include "util/log.h"

/* targets per scrape: every target the daemon can have fits one STATS page */
#define METRICS_MAX_TARGETS SPT_CTL_STATS_TARGET_PAGE_MAX
#define METRICS_TEXT_START 16384	/* first size of a scrape's buffer */
#define METRICS_ADDR_MAX 256
#define METRICS_STR_(x) #x
#define METRICS_STR(x) METRICS_STR_(x)

struct metrics_server {
	struct ev_loop *loop;
	struct iscsi_admin *admin;
	struct MHD_Daemon *mhd;
	struct ev_handler mhd_h;	/* MHD's epoll fd */
	struct ev_handler timer;	/* MHD's timeouts */
	bool mhd_added;
	char version[32];
	char spec[METRICS_ADDR_MAX];
	uint64_t scrapes;
};

/* ---- text ---- */

void metrics_text_init(struct metrics_text *t, size_t max)
{
	memset(t, 0, sizeof(*t));
	t->max = max;
}

void metrics_text_free(struct metrics_text *t)
{
	free(t->buf);
	t->buf = NULL;
	t->len = t->cap = 0;
}

/* Room for n more bytes and a NUL; false (and failed) past max or memory. */
static bool metrics_text_reserve(struct metrics_text *t, size_t n)
{
	size_t cap;
	char *nb;

	if (t->failed)
		return false;
	if (n > t->max || t->len > t->max - n) {
		t->failed = true;
		return false;
	}
	if (t->len + n + 1 <= t->cap)
		return true;
	cap = t->cap ? t->cap : METRICS_TEXT_START;
	while (cap < t->len + n + 1)
		cap *= 2;
	nb = realloc(t->buf, cap);
	if (!nb) {
		t->failed = true;
		return false;
	}
	t->buf = nb;
	t->cap = cap;
	return true;
}

void metrics_text_printf(struct metrics_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		t->failed = true;
		return;
	}
	if (!metrics_text_reserve(t, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

static void metrics_text_put(struct metrics_text *t, const char *p, size_t n)
{
	if (!metrics_text_reserve(t, n))
		return;
	memcpy(t->buf + t->len, p, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

void metrics_label_value(struct metrics_text *t, const char *value)
{
	const unsigned char *p = (const unsigned char *)value;

	while (*p) {
		size_t n = ctl_utf8_len(p);

		if (n == 0) {
			metrics_text_put(t, "\xef\xbf\xbd", 3);	/* U+FFFD */
			p++;
		} else if (*p == '\\') {
			metrics_text_put(t, "\\\\", 2);
			p++;
		} else if (*p == '"') {
			metrics_text_put(t, "\\\"", 2);
			p++;
		} else if (*p == '\n') {
			metrics_text_put(t, "\\n", 2);
			p++;
		} else {
			metrics_text_put(t, (const char *)p, n);
			p += n;
		}
	}
}

/* ---- rendering ---- */

typedef void (*metrics_labels_fn)(struct metrics_text *t, const void *obj);

static void metrics_family(struct metrics_text *t, const char *name, const char *type, const char *help)
{
	metrics_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{labels(obj)[,extra]} v */
static void metrics_sample(struct metrics_text *t, const char *name, metrics_labels_fn labels,
			   const void *obj, const char *extra, uint64_t v)
{
	metrics_text_printf(t, "%s{", name);
	labels(t, obj);
	if (extra)
		metrics_text_printf(t, ",%s", extra);
	metrics_text_printf(t, "} %llu\n", (unsigned long long)v);
}

static void metrics_target_labels(struct metrics_text *t, const void *obj)
{
	const struct spt_ctl_stats_target *e = obj;

	metrics_text_put(t, "target=\"", 8);
	metrics_label_value(t, e->name);
	metrics_text_put(t, "\"", 1);
}

static void metrics_lun_labels(struct metrics_text *t, const void *obj)
{
	const struct spt_ctl_stats_lun *e = obj;

	metrics_text_put(t, "target=\"", 8);
	metrics_label_value(t, e->target_name);
	metrics_text_printf(t, "\",lun=\"%llu\"", (unsigned long long)e->lun);
}

static void metrics_session_labels(struct metrics_text *t, const void *obj)
{
	const struct spt_ctl_stats_session *s = obj;

	metrics_text_put(t, "target=\"", 8);
	metrics_label_value(t, s->target_name);
	metrics_text_put(t, "\",initiator=\"", 13);
	metrics_label_value(t, s->initiator_name);
	metrics_text_printf(t, "\",isid=\"0x%02x%02x%02x%02x%02x%02x\",handle=\"0x%016llx\"",
			    s->isid[0], s->isid[1], s->isid[2], s->isid[3], s->isid[4], s->isid[5],
			    (unsigned long long)s->itnexus_handle);
}

/* A connection's labels: its session's, then cid and peer. */
struct metrics_conn_ref {
	const struct spt_ctl_stats_session *s;
	const struct spt_ctl_stats_connection *c;
};

static void metrics_conn_labels(struct metrics_text *t, const void *obj)
{
	const struct metrics_conn_ref *r = obj;

	metrics_session_labels(t, r->s);
	metrics_text_printf(t, ",cid=\"%u\",peer=\"", r->c->cid);
	metrics_label_value(t, r->c->peer_address);
	metrics_text_put(t, "\"", 1);
}

/* The I/O families of targets or LUNs: n entries of `stride` bytes at objs,
 * each with its struct spt_ctl_stats_io at io_offset. */
struct metrics_io_set {
	const char *prefix;	/* "spt_target", "spt_lun" */
	const char *what;	/* for HELP: "target", "LUN" */
	const void *objs;
	size_t n, stride, io_offset;
	metrics_labels_fn labels;
};

static const struct spt_ctl_stats_io *metrics_io_at(const struct metrics_io_set *set, size_t i,
						     const void **obj)
{
	*obj = (const char *)set->objs + i * set->stride;
	return (const struct spt_ctl_stats_io *)((const char *)*obj + set->io_offset);
}

static void metrics_io_families(struct metrics_text *t, const struct metrics_io_set *set)
{
	char name[64], help[160];
	const void *o;

	snprintf(name, sizeof(name), "%s_commands_total", set->prefix);
	snprintf(help, sizeof(help), "SCSI commands of the %s completed with a status, by class "
		 "(read: READ(6/10/12/16), write: WRITE(6/10/12/16) and WRITE AND VERIFY).", set->what);
	metrics_family(t, name, "counter", help);
	for (size_t i = 0; i < set->n; i++) {
		const struct spt_ctl_stats_io *io = metrics_io_at(set, i, &o);
		uint64_t rw = io->read_commands + io->write_commands;

		metrics_sample(t, name, set->labels, o, "op=\"read\"", io->read_commands);
		metrics_sample(t, name, set->labels, o, "op=\"write\"", io->write_commands);
		metrics_sample(t, name, set->labels, o, "op=\"other\"",
			       io->commands >= rw ? io->commands - rw : 0);
	}
	snprintf(name, sizeof(name), "%s_bytes_total", set->prefix);
	snprintf(help, sizeof(help), "SCSI data bytes of the %s's completed commands: read (data-in) "
		 "and written (data-out).", set->what);
	metrics_family(t, name, "counter", help);
	for (size_t i = 0; i < set->n; i++) {
		const struct spt_ctl_stats_io *io = metrics_io_at(set, i, &o);

		metrics_sample(t, name, set->labels, o, "direction=\"read\"", io->bytes_read);
		metrics_sample(t, name, set->labels, o, "direction=\"write\"", io->bytes_written);
	}
	snprintf(name, sizeof(name), "%s_errors_total", set->prefix);
	snprintf(help, sizeof(help), "SCSI commands of the %s completed with a status other than GOOD "
		 "and CONDITION MET.", set->what);
	metrics_family(t, name, "counter", help);
	for (size_t i = 0; i < set->n; i++) {
		const struct spt_ctl_stats_io *io = metrics_io_at(set, i, &o);

		metrics_sample(t, name, set->labels, o, NULL, io->errors);
	}
	snprintf(name, sizeof(name), "%s_aborts_total", set->prefix);
	snprintf(help, sizeof(help), "SCSI commands of the %s ended by a task management function or "
		 "the loss of their connection.", set->what);
	metrics_family(t, name, "counter", help);
	for (size_t i = 0; i < set->n; i++) {
		const struct spt_ctl_stats_io *io = metrics_io_at(set, i, &o);

		metrics_sample(t, name, set->labels, o, NULL, io->aborts);
	}
	snprintf(name, sizeof(name), "%s_queue_depth", set->prefix);
	snprintf(help, sizeof(help), "SCSI commands in flight at the %s now.", set->what);
	metrics_family(t, name, "gauge", help);
	for (size_t i = 0; i < set->n; i++) {
		const struct spt_ctl_stats_io *io = metrics_io_at(set, i, &o);

		metrics_sample(t, name, set->labels, o, NULL, io->queue_depth);
	}
}

/* A bucket bound of us microseconds in seconds, exactly: "0.000512". */
static void metrics_le_seconds(uint64_t us, char *out, size_t len)
{
	char frac[8];
	size_t n;

	snprintf(frac, sizeof(frac), "%06llu", (unsigned long long)(us % 1000000));
	n = strlen(frac);
	while (n > 1 && frac[n - 1] == '0')
		frac[--n] = '\0';
	snprintf(out, len, "%llu.%s", (unsigned long long)(us / 1000000), frac);
}

static void metrics_lun_latency(struct metrics_text *t, const struct metrics_snapshot *s)
{
	static const char name[] = "spt_lun_command_duration_seconds";
	static const char bucket[] = "spt_lun_command_duration_seconds_bucket";

	metrics_family(t, name, "histogram",
		       "Time from the arrival of a SCSI command to its status, of the LUN's "
		       "completed commands.");
	for (size_t i = 0; i < s->nluns; i++) {
		const struct spt_ctl_stats_lun *l = &s->luns[i];
		uint64_t cum = 0;

		for (size_t b = 0; b < SPT_CTL_STATS_BUCKETS; b++) {
			char le[32], extra[48];

			cum += l->latency.buckets[b];
			if (b + 1 < SPT_CTL_STATS_BUCKETS) {
				metrics_le_seconds(1ull << b, le, sizeof(le));
				snprintf(extra, sizeof(extra), "le=\"%s\"", le);
				metrics_sample(t, bucket, metrics_lun_labels, l, extra, cum);
			} else {
				/* +Inf is the count, as the format wants */
				metrics_sample(t, bucket, metrics_lun_labels, l, "le=\"+Inf\"",
					       l->latency.count);
			}
		}
		metrics_text_printf(t, "%s_sum{", name);
		metrics_lun_labels(t, l);
		metrics_text_printf(t, "} %llu.%09llu\n",
				    (unsigned long long)(l->latency.sum_ns / 1000000000),
				    (unsigned long long)(l->latency.sum_ns % 1000000000));
		metrics_sample(t, "spt_lun_command_duration_seconds_count", metrics_lun_labels, l, NULL,
			       l->latency.count);
	}
}

static void metrics_sessions(struct metrics_text *t, const struct metrics_snapshot *s)
{
	static const struct {
		const char *name, *type, *help;
		size_t offset;
	} fam[] = {
		{ "spt_session_commands_total", "counter",
		  "SCSI commands of the session completed with a status.",
		  offsetof(struct spt_ctl_stats_session, commands) },
		{ "spt_session_errors_total", "counter",
		  "SCSI commands of the session completed with a status other than GOOD and CONDITION MET.",
		  offsetof(struct spt_ctl_stats_session, errors) },
		{ "spt_session_aborts_total", "counter",
		  "SCSI commands of the session ended by a task management function or the loss of "
		  "their connection.", offsetof(struct spt_ctl_stats_session, aborts) },
		{ "spt_session_queue_depth", "gauge", "SCSI commands of the session in flight now.",
		  offsetof(struct spt_ctl_stats_session, queue_depth) },
	};

	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		metrics_family(t, fam[f].name, fam[f].type, fam[f].help);
		for (size_t i = 0; i < s->nsessions; i++) {
			uint64_t v;

			memcpy(&v, (const char *)&s->sessions[i] + fam[f].offset, sizeof(v));
			metrics_sample(t, fam[f].name, metrics_session_labels, &s->sessions[i], NULL, v);
		}
	}
	metrics_family(t, "spt_session_bytes_total", "counter",
		       "SCSI data bytes of the session: read (data-in sent) and written "
		       "(data-out taken in).");
	for (size_t i = 0; i < s->nsessions; i++) {
		metrics_sample(t, "spt_session_bytes_total", metrics_session_labels, &s->sessions[i],
			       "direction=\"read\"", s->sessions[i].bytes_read);
		metrics_sample(t, "spt_session_bytes_total", metrics_session_labels, &s->sessions[i],
			       "direction=\"write\"", s->sessions[i].bytes_written);
	}
	metrics_family(t, "spt_session_digest_errors_total", "counter",
		       "RFC 7143 header and data digest errors on the session's connections.");
	for (size_t i = 0; i < s->nsessions; i++) {
		metrics_sample(t, "spt_session_digest_errors_total", metrics_session_labels,
			       &s->sessions[i], "kind=\"header\"", s->sessions[i].header_digest_errors);
		metrics_sample(t, "spt_session_digest_errors_total", metrics_session_labels,
			       &s->sessions[i], "kind=\"data\"", s->sessions[i].data_digest_errors);
	}
}

static size_t metrics_conns_shown(const struct spt_ctl_stats_session *s)
{
	return s->connection_count < SPT_CTL_CONNS_MAX ? s->connection_count : SPT_CTL_CONNS_MAX;
}

static void metrics_connections(struct metrics_text *t, const struct metrics_snapshot *s)
{
	static const struct {
		const char *name, *help, *extra[2];
		size_t offset[2];
	} fam[] = {
		{ "spt_connection_pdus_total", "iSCSI PDUs received whole (in) and written (out).",
		  { "direction=\"in\"", "direction=\"out\"" },
		  { offsetof(struct spt_ctl_stats_connection, pdus_in),
		    offsetof(struct spt_ctl_stats_connection, pdus_out) } },
		{ "spt_connection_bytes_total", "Bytes read from (in) and written to (out) the "
		  "connection's socket, headers and digests included.",
		  { "direction=\"in\"", "direction=\"out\"" },
		  { offsetof(struct spt_ctl_stats_connection, bytes_in),
		    offsetof(struct spt_ctl_stats_connection, bytes_out) } },
		{ "spt_connection_digest_errors_total", "RFC 7143 header and data digest errors on the "
		  "connection.", { "kind=\"header\"", "kind=\"data\"" },
		  { offsetof(struct spt_ctl_stats_connection, header_digest_errors),
		    offsetof(struct spt_ctl_stats_connection, data_digest_errors) } },
	};

	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		metrics_family(t, fam[f].name, "counter", fam[f].help);
		for (size_t i = 0; i < s->nsessions; i++) {
			for (size_t k = 0; k < metrics_conns_shown(&s->sessions[i]); k++) {
				struct metrics_conn_ref r = { &s->sessions[i], &s->sessions[i].conns[k] };

				for (size_t d = 0; d < 2; d++) {
					uint64_t v;

					memcpy(&v, (const char *)r.c + fam[f].offset[d], sizeof(v));
					metrics_sample(t, fam[f].name, metrics_conn_labels, &r,
						       fam[f].extra[d], v);
				}
			}
		}
	}
}

int metrics_render(const struct metrics_snapshot *s, struct metrics_text *t)
{
	const struct metrics_io_set targets = {
		.prefix = "spt_target", .what = "target", .objs = s->targets, .n = s->ntargets,
		.stride = sizeof(*s->targets), .io_offset = offsetof(struct spt_ctl_stats_target, io),
		.labels = metrics_target_labels,
	};
	const struct metrics_io_set luns = {
		.prefix = "spt_lun", .what = "LUN", .objs = s->luns, .n = s->nluns,
		.stride = sizeof(*s->luns), .io_offset = offsetof(struct spt_ctl_stats_lun, io),
		.labels = metrics_lun_labels,
	};

	metrics_family(t, "spt_up", "gauge", "1: sptd answers scrapes.");
	metrics_text_printf(t, "spt_up 1\n");
	metrics_family(t, "spt_build_info", "gauge", "The sptd version, as a label.");
	metrics_text_printf(t, "spt_build_info{version=\"");
	metrics_label_value(t, s->version ? s->version : "");
	metrics_text_printf(t, "\"} 1\n");
	metrics_family(t, "spt_sessions", "gauge", "iSCSI sessions logged in now, discovery included.");
	metrics_text_printf(t, "spt_sessions %u\n", s->server.sessions);
	metrics_family(t, "spt_connections", "gauge",
		       "iSCSI connections open now, those still logging in included.");
	metrics_text_printf(t, "spt_connections %u\n", s->server.connections);
	metrics_family(t, "spt_targets", "gauge", "Targets the daemon serves.");
	metrics_text_printf(t, "spt_targets %u\n", s->server.targets);
	metrics_family(t, "spt_luns", "gauge", "LUNs the daemon serves, all targets together.");
	metrics_text_printf(t, "spt_luns %u\n", s->server.luns);
	metrics_family(t, "spt_digest_errors_total", "counter",
		       "RFC 7143 header and data digest errors on every connection since the start.");
	metrics_text_printf(t, "spt_digest_errors_total{kind=\"header\"} %llu\n",
			    (unsigned long long)s->server.header_digest_errors);
	metrics_text_printf(t, "spt_digest_errors_total{kind=\"data\"} %llu\n",
			    (unsigned long long)s->server.data_digest_errors);
	metrics_family(t, "spt_metrics_omitted", "gauge",
		       "Objects whose series this scrape left out (at most " METRICS_STR(METRICS_MAX_SESSIONS)
		       " sessions and " METRICS_STR(METRICS_MAX_LUNS) " LUNs are exported).");
	metrics_text_printf(t, "spt_metrics_omitted{kind=\"lun\"} %u\n", s->luns_omitted);
	metrics_text_printf(t, "spt_metrics_omitted{kind=\"session\"} %u\n", s->sessions_omitted);

	metrics_family(t, "spt_target_sessions", "gauge", "iSCSI sessions logged in to the target now.");
	for (size_t i = 0; i < s->ntargets; i++)
		metrics_sample(t, "spt_target_sessions", metrics_target_labels, &s->targets[i], NULL,
			       s->targets[i].session_count);
	metrics_io_families(t, &targets);
	metrics_io_families(t, &luns);
	metrics_lun_latency(t, s);
	metrics_sessions(t, s);
	metrics_connections(t, s);
	return t->failed ? -1 : 0;
}

/* ---- the HTTP server ---- */

int metrics_parse_address(const char *spec, struct sockaddr_storage *ss, socklen_t *len, char *err,
			  size_t errlen)
{
	char host[METRICS_ADDR_MAX];
	const char *port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	char *endp;
	long pn;
	int rc;

	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');

		if (!end || end[1] != ':' || (size_t)(end - spec - 1) >= sizeof(host)) {
			snprintf(err, errlen, "bad address '%s': expected [IPV6]:PORT", spec);
			return -1;
		}
		memcpy(host, spec + 1, (size_t)(end - spec - 1));
		host[end - spec - 1] = '\0';
		port = end + 2;
	} else {
		const char *colon = strrchr(spec, ':');

		if (!colon || (size_t)(colon - spec) >= sizeof(host) || strchr(spec, ':') != colon) {
			snprintf(err, errlen, "bad address '%s': expected ADDR:PORT or [IPV6]:PORT", spec);
			return -1;
		}
		memcpy(host, spec, (size_t)(colon - spec));
		host[colon - spec] = '\0';
		port = colon + 1;
	}
	pn = strtol(port, &endp, 10);
	if (!*port || *endp || pn < 1 || pn > 65535) {
		snprintf(err, errlen, "bad port in '%s'", spec);
		return -1;
	}
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "bad address in '%s': %s", spec, gai_strerror(rc));
		return -1;
	}
	if (ai->ai_addrlen > sizeof(*ss)) {
		snprintf(err, errlen, "bad address in '%s'", spec);
		freeaddrinfo(ai);
		return -1;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* One scrape: snapshot, render. 0 with t filled, or -1. */
static int metrics_scrape(struct metrics_server *ms, struct metrics_text *t)
{
	struct metrics_snapshot s;
	struct spt_ctl_stats_target *targets = NULL;
	struct spt_ctl_stats_lun *luns = NULL;
	struct spt_ctl_stats_session *sessions = NULL;
	uint32_t total;
	bool more;
	int rc = -1;

	memset(&s, 0, sizeof(s));
	s.version = ms->version;
	targets = calloc(METRICS_MAX_TARGETS, sizeof(*targets));
	luns = calloc(METRICS_MAX_LUNS, sizeof(*luns));
	sessions = calloc(METRICS_MAX_SESSIONS, sizeof(*sessions));
	if (!targets || !luns || !sessions)
		goto out;
	iscsi_admin_stats_server(ms->admin, &s.server);
	s.targets = targets;
	s.ntargets = iscsi_admin_stats_targets(ms->admin, "", targets, METRICS_MAX_TARGETS, &total, &more);
	s.luns = luns;
	s.nluns = iscsi_admin_stats_luns(ms->admin, "", 0, luns, METRICS_MAX_LUNS, &total, &more);
	s.luns_omitted = total > s.nluns ? total - (uint32_t)s.nluns : 0;
	s.sessions = sessions;
	s.nsessions = iscsi_admin_stats_sessions(ms->admin, 0, sessions, METRICS_MAX_SESSIONS, &total,
						 &more);
	s.sessions_omitted = total > s.nsessions ? total - (uint32_t)s.nsessions : 0;
	rc = metrics_render(&s, t);
out:
	free(targets);
	free(luns);
	free(sessions);
	return rc;
}

static enum MHD_Result metrics_reply(struct MHD_Connection *conn, unsigned int code, const char *text,
				     const char *allow)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text,
								 MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result metrics_on_request(void *cls, struct MHD_Connection *conn, const char *url,
					  const char *method, const char *version,
					  const char *upload_data, size_t *upload_data_size,
					  void **con_cls)
{
	struct metrics_server *ms = cls;
	struct metrics_text t;
	struct MHD_Response *r;
	enum MHD_Result ret;

	/* a refusal goes at once, whatever body follows: MHD drops it and
	 * closes the connection after the answer */
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return metrics_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET is served\n", "GET, HEAD");
	/* MHD calls once the headers are in and again once the request is
	 * whole; answering on the first call would cost the connection its
	 * keep-alive (Prometheus reuses its connection scrape after scrape) */
	if (*con_cls == NULL) {
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);

		/* a scrape sends no body; one that does is refused at once rather
		 * than read (MHD answers only before a body or after all of it) */
		if ((cl && strcmp(cl, "0") != 0) ||
		    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
			return metrics_reply(conn, MHD_HTTP_BAD_REQUEST, "a scrape has no body\n", NULL);
		*con_cls = ms;
		return MHD_YES;
	}
	if (strcmp(url, "/metrics") != 0)
		return metrics_reply(conn, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n",
				     NULL);
	metrics_text_init(&t, METRICS_BODY_MAX);
	if (metrics_scrape(ms, &t) < 0 || !t.buf) {
		log_warn("metrics: a scrape failed (%s)", t.len >= METRICS_BODY_MAX ? "body over its limit" :
			 "out of memory");
		metrics_text_free(&t);
		return metrics_reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "the scrape failed\n", NULL);
	}
	ms->scrapes++;
	log_debug("metrics: scrape %llu: %zu bytes", (unsigned long long)ms->scrapes, t.len);
	/* MHD frees the body with free() once it is sent */
	r = MHD_create_response_from_buffer(t.len, t.buf, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		metrics_text_free(&t);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, METRICS_CONTENT_TYPE);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static void metrics_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_warn("metrics: %s", msg);
}

/* Arms the timerfd for the timeout MHD asks for (none: disarmed). */
static void metrics_arm(struct metrics_server *ms)
{
	struct itimerspec its;
	MHD_UNSIGNED_LONG_LONG ms_left;

	memset(&its, 0, sizeof(its));
	if (MHD_get_timeout(ms->mhd, &ms_left) == MHD_YES) {
		its.it_value.tv_sec = (time_t)(ms_left / 1000);
		its.it_value.tv_nsec = (long)(ms_left % 1000) * 1000000L;
		/* 0 would disarm: "now" is one nanosecond away */
		if (ms_left == 0)
			its.it_value.tv_nsec = 1;
	}
	if (timerfd_settime(ms->timer.fd, 0, &its, NULL) < 0)
		log_err("metrics: timerfd_settime: %s", strerror(errno));
}

static void metrics_run(struct metrics_server *ms)
{
	if (MHD_run(ms->mhd) != MHD_YES)
		log_debug("metrics: MHD_run reported an error");
	metrics_arm(ms);
}

static void metrics_on_mhd(struct ev_handler *h, uint32_t events)
{
	metrics_run(h->arg);
}

static void metrics_on_timer(struct ev_handler *h, uint32_t events)
{
	uint64_t expirations;

	while (read(h->fd, &expirations, sizeof(expirations)) == sizeof(expirations))
		;
	metrics_run(h->arg);
}

struct metrics_server *metrics_server_open(struct ev_loop *loop, struct iscsi_server *srv,
					   const char *spec, const char *version, char *err,
					   size_t errlen)
{
	struct metrics_server *ms = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen;
	const union MHD_DaemonInfo *info;
	int fd = -1, mhd_fd, one = 1;

	if (metrics_parse_address(spec, &ss, &sslen, err, errlen) < 0)
		goto fail;
	ms = calloc(1, sizeof(*ms));
	if (!ms) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	ms->loop = loop;
	ms->timer.fd = -1;
	snprintf(ms->version, sizeof(ms->version), "%s", version);
	snprintf(ms->spec, sizeof(ms->spec), "%s", spec);
	/* our own socket, so that the address is parsed and refused as
	 * --listen's is, with the same words */
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto fail;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, METRICS_LISTEN_BACKLOG) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(errno));
		goto fail;
	}
	ms->admin = iscsi_admin_new(srv);
	if (!ms->admin) {
		snprintf(err, errlen, "cannot set up the statistics snapshot");
		goto fail;
	}
	/* MHD closes the socket it is given when it stops, and maybe when it
	 * fails to start: it gets a copy of its own, ours is closed either way */
	mhd_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (mhd_fd < 0) {
		snprintf(err, errlen, "dup: %s", strerror(errno));
		goto fail;
	}
	/* no MHD thread: MHD_USE_EPOLL alone is "external" polling, driven
	 * from our loop */
	ms->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, metrics_on_request, ms,
				   MHD_OPTION_EXTERNAL_LOGGER, metrics_mhd_log, ms,
				   MHD_OPTION_LISTEN_SOCKET, mhd_fd,
				   MHD_OPTION_CONNECTION_LIMIT, (unsigned int)METRICS_MAX_CLIENTS,
				   MHD_OPTION_PER_IP_CONNECTION_LIMIT,
				   (unsigned int)METRICS_MAX_CLIENTS_PER_IP,
				   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)METRICS_IDLE_TIMEOUT_S,
				   MHD_OPTION_END);
	if (!ms->mhd) {
		snprintf(err, errlen, "cannot start the HTTP server on %s", spec);
		goto fail;
	}
	info = MHD_get_daemon_info(ms->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info || info->epoll_fd < 0) {
		snprintf(err, errlen, "the HTTP server has no epoll fd");
		goto fail;
	}
	ms->mhd_h.fd = info->epoll_fd;
	ms->mhd_h.cb = metrics_on_mhd;
	ms->mhd_h.arg = ms;
	ms->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	ms->timer.cb = metrics_on_timer;
	ms->timer.arg = ms;
	if (ms->timer.fd < 0 || ev_add(loop, &ms->timer, EPOLLIN) < 0) {
		snprintf(err, errlen, "timerfd: %s", strerror(errno));
		goto fail;
	}
	if (ev_add(loop, &ms->mhd_h, EPOLLIN) < 0) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		goto fail;
	}
	ms->mhd_added = true;
	close(fd);
	metrics_arm(ms);
	log_info("metrics on http://%s/metrics", spec);
	return ms;
fail:
	if (fd >= 0)
		close(fd);
	metrics_server_close(ms);
	return NULL;
}

void metrics_server_close(struct metrics_server *ms)
{
	if (!ms)
		return;
	if (ms->mhd_added)
		ev_del(ms->loop, &ms->mhd_h);
	if (ms->timer.fd >= 0) {
		ev_del(ms->loop, &ms->timer);
		close(ms->timer.fd);
	}
	/* closes the listening socket and every HTTP connection */
	if (ms->mhd)
		MHD_stop_daemon(ms->mhd);
	iscsi_admin_free(ms->admin);
	free(ms);
}
