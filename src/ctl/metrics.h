/*
 * sptd --metrics ADDR:PORT: the statistics of src/iscsi/stats.c in the
 * Prometheus text exposition format 0.0.4 on GET /metrics, served by
 * libmicrohttpd inside sptd's event loop (MHD's epoll fd and a timerfd for
 * its timeouts are ordinary handlers of the loop), so every scrape reads
 * the counters on the reactor thread that writes them: no lock, no race.
 *
 * The renderer is apart from the server so that tests drive it with any
 * snapshot.
 */
#ifndef CTL_METRICS_H
#define CTL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <spt/spt.h>

struct ev_loop;
struct iscsi_server;
struct metrics_server;

#define METRICS_MAX_CLIENTS 16		/* HTTP connections at once */
#define METRICS_MAX_CLIENTS_PER_IP 8	/* ... from one address */
#define METRICS_IDLE_TIMEOUT_S 10	/* an idle HTTP connection is closed after this */
#define METRICS_LISTEN_BACKLOG 16
/* Per scrape: the series of at most this many sessions (by handle) and
 * LUNs (by target and number) are exported, so a scrape stays bounded
 * whatever the daemon holds; spt_metrics_*_omitted says what was left out. */
#define METRICS_MAX_SESSIONS 256
#define METRICS_MAX_LUNS 1024
/* The largest body a scrape may make (the limits above keep it far below);
 * past it the scrape fails with 500 rather than grow without bound. */
#define METRICS_BODY_MAX (16u << 20)
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* What one scrape shows (host order). */
struct metrics_snapshot {
	const char *version;			/* spt_build_info */
	struct spt_ctl_stats_server server;
	const struct spt_ctl_stats_target *targets;
	size_t ntargets;
	const struct spt_ctl_stats_lun *luns;
	size_t nluns;
	uint32_t luns_omitted;			/* beyond METRICS_MAX_LUNS */
	const struct spt_ctl_stats_session *sessions;
	size_t nsessions;
	uint32_t sessions_omitted;		/* beyond METRICS_MAX_SESSIONS */
};

/* A growing text buffer with a ceiling. */
struct metrics_text {
	char *buf;		/* NUL-terminated; malloc'd */
	size_t len, cap;
	size_t max;		/* len never passes this */
	bool failed;		/* out of memory or over max: the text is incomplete */
};

void metrics_text_init(struct metrics_text *t, size_t max);
void metrics_text_free(struct metrics_text *t);
void metrics_text_printf(struct metrics_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * A label value as the exposition format wants it between its quotes:
 * backslash, double quote and line feed escaped (\\, \", \n); bytes that
 * are not UTF-8 become U+FFFD, as the format's text must be UTF-8.
 */
void metrics_label_value(struct metrics_text *t, const char *value);

/* The whole exposition of a snapshot. 0, or -1 if t->failed. */
int metrics_render(const struct metrics_snapshot *s, struct metrics_text *t);

/* "ADDR:PORT" or "[V6ADDR]:PORT" (numeric, as --listen). 0, or -1 with err. */
int metrics_parse_address(const char *spec, struct sockaddr_storage *ss, socklen_t *len, char *err,
			  size_t errlen);

/* Listens on spec and serves on loop (the loop of srv). NULL with err. */
struct metrics_server *metrics_server_open(struct ev_loop *loop, struct iscsi_server *srv,
					   const char *spec, const char *version, char *err,
					   size_t errlen);
/* Closes the listening socket and every HTTP connection. Call it before
 * the iSCSI server and the loop are freed. */
void metrics_server_close(struct metrics_server *ms);

#endif
