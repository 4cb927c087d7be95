/*
 * sptctl: manage a running sptd through its --control socket.
 *
 *   sptctl [--socket PATH] [--timeout SEC] session list [--json]
 *   sptctl [--socket PATH] [--timeout SEC] session stop HANDLE [--grace SEC]
 *
 * Speaks the pass-through frames of include/spt/spt.h (struct
 * spt_io_header + payload); every response is checked like any input
 * from outside before a byte of it is printed.
 */
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl/frame.h"

#define SPTCTL_VERSION "0.1.0"
#define SPTCTL_DEFAULT_SOCKET "/run/sptd.sock"
#define SPTCTL_SOCKET_ENV "SPT_CONTROL_SOCKET"
#define SPTCTL_LIST_TIMEOUT_S 10	/* a list is answered at once; this is generous */
#define SPTCTL_REPLY_SLACK_S 5		/* beyond the daemon's own bound */
/* a daemon never has more (--max-sessions <= 65535); a bound against a
 * daemon that keeps saying "more" */
#define SPTCTL_MAX_SESSIONS 65536

/* Exit statuses. */
enum {
	SPTCTL_OK = 0,
	SPTCTL_REFUSED = 1,	/* sptd answered with an error (unknown handle, ...) */
	SPTCTL_USAGE = 2,	/* bad command line */
	SPTCTL_UNREACHABLE = 3,	/* no answer: socket missing, refused, broken reply */
};

struct sptctl {
	const char *socket_path;
	uint32_t timeout_s;	/* 0: per command */
	int fd;
};

static void sptctl_usage(FILE *f)
{
	fprintf(f,
		"usage: sptctl [--socket PATH] [--timeout SEC] COMMAND\n"
		"\n"
		"commands:\n"
		"  session list [--json]            sessions: handle, initiator, ISID, target, TSIH,\n"
		"                                   type, state, CHAP user, commands in flight and\n"
		"                                   connections (a table, or a JSON array)\n"
		"  session stop HANDLE [--grace SEC]\n"
		"                                   ask the session's initiator to log out (Async\n"
		"                                   Message), close the session after SEC seconds\n"
		"                                   (default: sptd's --logout-grace, at most %u) if it\n"
		"                                   has not; returns once the session is gone\n"
		"\n"
		"options:\n"
		"  --socket PATH    sptd's --control socket (default: $" SPTCTL_SOCKET_ENV ", else\n"
		"                   " SPTCTL_DEFAULT_SOCKET ")\n"
		"  --timeout SEC    how long sptd may take to answer (default: %u for a list,\n"
		"                   grace + %u for a stop; at most %u)\n"
		"  --help, --version\n"
		"\n"
		"exit status: 0 done, 1 sptd refused the request (e.g. no such session),\n"
		"2 bad command line, 3 sptd could not be reached or answered wrongly\n",
		SPT_CTL_GRACE_MAX, SPTCTL_LIST_TIMEOUT_S, SPT_CTL_STOP_SLACK_S, SPT_CTL_TIMEOUT_MAX);
}

static int sptctl_parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* "0x0123456789abcdef" or without 0x: the handle as `session list` shows it. */
static int sptctl_parse_handle(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = 0;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	for (; *s; s++, n++) {
		int d;

		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			return -1;
		if (n == 16)
			return -1;	/* more than 64 bits */
		v = v << 4 | (uint64_t)d;
	}
	if (n == 0)
		return -1;
	*out = v;
	return 0;
}

static int sptctl_connect(struct sptctl *c, uint32_t wait_s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = wait_s + SPTCTL_REPLY_SLACK_S };

	if (strlen(c->socket_path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "sptctl: socket path too long: %s\n", c->socket_path);
		return -1;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->socket_path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fprintf(stderr, "sptctl: socket: %s\n", strerror(errno));
		return -1;
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		const char *hint = "";

		if (e == ENOENT)
			hint = " (is sptd running with --control on this path? see --socket)";
		else if (e == ECONNREFUSED)
			hint = " (nothing listens there: sptd has stopped)";
		else if (e == EACCES || e == EPERM)
			hint = " (run as root or as the user sptd runs as)";
		fprintf(stderr, "sptctl: cannot connect to %s: %s%s\n", c->socket_path, strerror(e), hint);
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return 0;
}

/*
 * Sends one request and reads its response into rx (checked: signature,
 * header length, Length <= SPT_CTL_RESPONSE_MAX, ControlCode). Returns the
 * response's ReturnCode, or -1 after printing why there is none.
 */
static int sptctl_call(struct sptctl *c, uint32_t code, uint32_t timeout, const void *payload,
		       uint32_t len, struct ctl_rx *rx)
{
	struct spt_io_header h;
	uint8_t hdr[CTL_HEADER_LEN];
	uint8_t buf[4096];
	size_t off = 0;

	ctl_header_init(&h, code, 0, timeout, len);
	ctl_header_encode(hdr, &h);
	struct iovec_part {
		const uint8_t *p;
		size_t n;
	} parts[2] = { { hdr, sizeof(hdr) }, { payload, len } };

	for (int i = 0; i < 2; i++) {
		for (off = 0; off < parts[i].n;) {
			ssize_t w = send(c->fd, parts[i].p + off, parts[i].n - off, MSG_NOSIGNAL);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				/* a refusal (permission, busy) may be waiting to be read */
				if (errno == EPIPE || errno == ECONNRESET)
					goto receive;
				fprintf(stderr, "sptctl: sending to %s: %s\n", c->socket_path,
					strerror(errno));
				return -1;
			}
			off += (size_t)w;
		}
	}
receive:
	ctl_rx_init(rx, SPT_CTL_RESPONSE_MAX);
	for (;;) {
		ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
		size_t pos = 0;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				fprintf(stderr, "sptctl: no answer from sptd within the timeout\n");
			else
				fprintf(stderr, "sptctl: reading from %s: %s\n", c->socket_path,
					strerror(errno));
			return -1;
		}
		if (r == 0) {
			fprintf(stderr, "sptctl: sptd closed the connection without answering\n");
			return -1;
		}
		while (pos < (size_t)r) {
			size_t used;
			enum ctl_rx_status st = ctl_rx_feed(rx, buf + pos, (size_t)r - pos, &used);

			pos += used;
			if (st == CTL_RX_BAD || st == CTL_RX_NOMEM) {
				fprintf(stderr, "sptctl: malformed answer from sptd: %s\n", rx->why);
				return -1;
			}
			if (st != CTL_RX_FRAME)
				continue;
			/* one response per request; 0 marks an error not tied to
			 * a request (connection refused, malformed frame) */
			if (rx->h.control_code != code &&
			    !(rx->h.control_code == 0 && rx->h.return_code != 0)) {
				fprintf(stderr, "sptctl: sptd answered control code 0x%x to 0x%x\n",
					rx->h.control_code, code);
				return -1;
			}
			return (int)rx->h.return_code;
		}
	}
}

/* Prints the error of a response; the exit status that goes with it. */
static int sptctl_report_error(const struct ctl_rx *rx)
{
	char msg[SPT_CTL_MESSAGE_MAX];
	uint32_t rc = rx->h.return_code;

	ctl_message_decode(rx->payload, rx->h.length, msg, sizeof(msg));
	fprintf(stderr, "sptctl: %s%s%s\n", ctl_return_code_name(rc), msg[0] ? ": " : "", msg);
	switch (rc) {
	case SPT_CTL_RC_BAD_FRAME:
	case SPT_CTL_RC_UNSUPPORTED:
	case SPT_CTL_RC_PERMISSION:
	case SPT_CTL_RC_BUSY:
	case SPT_CTL_RC_SHUTTING_DOWN:
		return SPTCTL_UNREACHABLE;
	default:
		return SPTCTL_REFUSED;
	}
}

/* ---- session list ---- */

static const char *sptctl_type_name(uint8_t t)
{
	return t == SPT_CTL_SESSION_DISCOVERY ? "discovery" : t == SPT_CTL_SESSION_NORMAL ? "normal" : "unknown";
}

static const char *sptctl_state_name(uint8_t s)
{
	switch (s) {
	case SPT_CTL_SESSION_ACTIVE:
		return "active";
	case SPT_CTL_SESSION_LOGGING_OUT:
		return "logging-out";
	case SPT_CTL_SESSION_STOPPING:
		return "stopping";
	case SPT_CTL_SESSION_ENDING:
		return "ending";
	default:
		return "unknown";
	}
}

static const char *sptctl_conn_state_name(uint8_t s)
{
	return s == SPT_CTL_CONN_FULL_FEATURE ? "full-feature" :
	       s == SPT_CTL_CONN_LOGGING_OUT ? "logging-out" : "unknown";
}

static int sptctl_by_name(const void *x, const void *y)
{
	const struct spt_ctl_session *a = x, *b = y;
	int r = strcmp(a->target_name, b->target_name);

	if (!r)
		r = strcmp(a->initiator_name, b->initiator_name);
	if (!r)
		r = memcmp(a->isid, b->isid, sizeof(a->isid));
	if (!r)
		r = (a->tsih > b->tsih) - (a->tsih < b->tsih);
	return r;
}

/* Every session, page by page. *out is malloc'd. Returns an exit status. */
static int sptctl_fetch_sessions(struct sptctl *c, struct spt_ctl_session **out, size_t *nout)
{
	struct spt_ctl_session *v = NULL;
	size_t n = 0, cap = 0;
	uint64_t after = 0;
	int status = SPTCTL_OK;
	struct ctl_rx rx;

	ctl_rx_init(&rx, SPT_CTL_RESPONSE_MAX);
	for (;;) {
		struct spt_ctl_session_list_request req = { .after_handle = after };
		struct spt_ctl_session_list lh;
		uint8_t reqbuf[sizeof(req)];
		char why[CTL_WHY_MAX];

		ctl_session_list_request_encode(reqbuf, &req);
		ctl_rx_reset(&rx);
		int rc = sptctl_call(c, SPT_CC_SESSION_LIST, c->timeout_s, reqbuf, sizeof(reqbuf), &rx);

		if (rc < 0) {
			status = SPTCTL_UNREACHABLE;
			goto out;
		}
		if (rc != 0) {
			status = sptctl_report_error(&rx);
			goto out;
		}
		if (ctl_session_list_decode(rx.payload, rx.h.length, &lh, why, sizeof(why)) < 0) {
			fprintf(stderr, "sptctl: malformed answer from sptd: %s\n", why);
			status = SPTCTL_UNREACHABLE;
			goto out;
		}
		if (n + lh.count > SPTCTL_MAX_SESSIONS) {
			fprintf(stderr, "sptctl: sptd lists more than %d sessions\n", SPTCTL_MAX_SESSIONS);
			status = SPTCTL_UNREACHABLE;
			goto out;
		}
		if (n + lh.count > cap) {
			size_t ncap = n + lh.count;
			struct spt_ctl_session *nv = realloc(v, ncap * sizeof(*v));

			if (!nv) {
				fprintf(stderr, "sptctl: out of memory\n");
				status = SPTCTL_UNREACHABLE;
				goto out;
			}
			v = nv;
			cap = ncap;
		}
		for (uint32_t i = 0; i < lh.count; i++) {
			struct spt_ctl_session *s = &v[n];

			ctl_session_decode(rx.payload + sizeof(lh) + (size_t)i * lh.entry_length,
					   lh.entry_length, s);
			/* pages come by ascending handle: anything else would loop */
			if (s->itnexus_handle <= after) {
				fprintf(stderr, "sptctl: malformed answer from sptd: handles out of order\n");
				status = SPTCTL_UNREACHABLE;
				goto out;
			}
			after = s->itnexus_handle;
			n++;
		}
		if (!lh.more || lh.count == 0)
			break;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), sptctl_by_name);
out:
	ctl_rx_reset(&rx);
	if (status != SPTCTL_OK) {
		free(v);
		v = NULL;
		n = 0;
	}
	*out = v;
	*nout = n;
	return status;
}

/* Printable for a terminal: control bytes become '?'. */
static void sptctl_cell(char *dst, size_t len, const char *src)
{
	size_t o = 0;

	for (; *src && o + 1 < len; src++)
		dst[o++] = ((unsigned char)*src < 0x20 || *src == 0x7f) ? '?' : *src;
	dst[o] = '\0';
}

#define SPTCTL_COLS 10
#define SPTCTL_CELL_MAX 1024

struct sptctl_row {
	char cell[SPTCTL_COLS][SPTCTL_CELL_MAX];
};

static void sptctl_row_fill(struct sptctl_row *r, const struct spt_ctl_session *s)
{
	char conns[SPTCTL_CELL_MAX] = "";
	size_t shown = s->connection_count < SPT_CTL_CONNS_MAX ? s->connection_count : SPT_CTL_CONNS_MAX;
	size_t o = 0;

	for (size_t i = 0; i < shown; i++) {
		const struct spt_ctl_connection *k = &s->conns[i];
		int w = snprintf(conns + o, sizeof(conns) - o, "%s%s%s", i ? ", " : "", k->peer_address,
				 k->state == SPT_CTL_CONN_FULL_FEATURE ? "" : " (logging-out)");

		if (w < 0 || (size_t)w >= sizeof(conns) - o)
			break;
		o += (size_t)w;
	}
	if (s->connection_count > shown && o < sizeof(conns))
		snprintf(conns + o, sizeof(conns) - o, ", +%u more", s->connection_count - (uint32_t)shown);
	snprintf(r->cell[0], SPTCTL_CELL_MAX, "0x%016llx", (unsigned long long)s->itnexus_handle);
	snprintf(r->cell[1], SPTCTL_CELL_MAX, "0x%04x", s->tsih);
	snprintf(r->cell[2], SPTCTL_CELL_MAX, "%s", sptctl_type_name(s->session_type));
	snprintf(r->cell[3], SPTCTL_CELL_MAX, "%s", sptctl_state_name(s->state));
	sptctl_cell(r->cell[4], SPTCTL_CELL_MAX, s->initiator_name);
	snprintf(r->cell[5], SPTCTL_CELL_MAX, "0x%02x%02x%02x%02x%02x%02x", s->isid[0], s->isid[1],
		 s->isid[2], s->isid[3], s->isid[4], s->isid[5]);
	sptctl_cell(r->cell[6], SPTCTL_CELL_MAX, s->target_name[0] ? s->target_name : "-");
	sptctl_cell(r->cell[7], SPTCTL_CELL_MAX, s->chap_user_name[0] ? s->chap_user_name : "-");
	snprintf(r->cell[8], SPTCTL_CELL_MAX, "%u", s->commands_in_flight);
	sptctl_cell(r->cell[9], SPTCTL_CELL_MAX, conns[0] ? conns : "-");
}

static int sptctl_print_table(const struct spt_ctl_session *v, size_t n)
{
	static const char *const head[SPTCTL_COLS] = {
		"HANDLE", "TSIH", "TYPE", "STATE", "INITIATOR", "ISID", "TARGET", "CHAP USER",
		"CMDS", "CONNECTIONS",
	};
	struct sptctl_row *rows;
	size_t width[SPTCTL_COLS];

	if (n == 0) {
		printf("no sessions\n");
		return SPTCTL_OK;
	}
	rows = calloc(n, sizeof(*rows));
	if (!rows) {
		fprintf(stderr, "sptctl: out of memory\n");
		return SPTCTL_UNREACHABLE;
	}
	for (size_t k = 0; k < SPTCTL_COLS; k++)
		width[k] = strlen(head[k]);
	for (size_t i = 0; i < n; i++) {
		sptctl_row_fill(&rows[i], &v[i]);
		for (size_t k = 0; k < SPTCTL_COLS; k++)
			if (strlen(rows[i].cell[k]) > width[k])
				width[k] = strlen(rows[i].cell[k]);
	}
	/* the last column is not padded: no trailing blanks */
	width[SPTCTL_COLS - 1] = 0;
	for (size_t k = 0; k < SPTCTL_COLS; k++)
		printf("%-*s%s", (int)width[k], head[k], k + 1 < SPTCTL_COLS ? "  " : "\n");
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < SPTCTL_COLS; k++)
			printf("%-*s%s", (int)width[k], rows[i].cell[k], k + 1 < SPTCTL_COLS ? "  " : "\n");
	free(rows);
	return SPTCTL_OK;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t sptctl_utf8_len(const unsigned char *p)
{
	size_t n;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;	/* also stops at the NUL */
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* overlong forms, surrogates and beyond U+10FFFF are not UTF-8 */
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

/* RFC 8259 7: a JSON string; bytes that are not UTF-8 become U+FFFD. */
static void sptctl_json_string(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	putchar('"');
	while (*p) {
		size_t n = sptctl_utf8_len(p);

		if (n == 0) {
			fputs("\\ufffd", stdout);
			p++;
		} else if (n > 1) {
			fwrite(p, 1, n, stdout);
			p += n;
		} else if (*p == '"' || *p == '\\') {
			printf("\\%c", *p++);
		} else if (*p < 0x20 || *p == 0x7f) {
			printf("\\u%04x", *p++);
		} else {
			putchar(*p++);
		}
	}
	putchar('"');
}

static void sptctl_json_field(const char *name, const char *value, bool last)
{
	printf("\"%s\": ", name);
	sptctl_json_string(value);
	fputs(last ? "" : ", ", stdout);
}

static int sptctl_print_json(const struct spt_ctl_session *v, size_t n)
{
	char buf[64];

	printf("[");
	for (size_t i = 0; i < n; i++) {
		const struct spt_ctl_session *s = &v[i];
		size_t shown = s->connection_count < SPT_CTL_CONNS_MAX ? s->connection_count :
									 SPT_CTL_CONNS_MAX;

		printf("%s\n  {", i ? "," : "");
		/* 64-bit handles as strings: JSON numbers lose bits past 2^53 */
		snprintf(buf, sizeof(buf), "0x%016llx", (unsigned long long)s->itnexus_handle);
		sptctl_json_field("handle", buf, false);
		sptctl_json_field("initiator", s->initiator_name, false);
		snprintf(buf, sizeof(buf), "0x%02x%02x%02x%02x%02x%02x", s->isid[0], s->isid[1],
			 s->isid[2], s->isid[3], s->isid[4], s->isid[5]);
		sptctl_json_field("isid", buf, false);
		sptctl_json_field("target", s->target_name, false);
		printf("\"tpgt\": %u, \"tsih\": %u, ", s->tpgt, s->tsih);
		sptctl_json_field("type", sptctl_type_name(s->session_type), false);
		sptctl_json_field("state", sptctl_state_name(s->state), false);
		sptctl_json_field("chap_user", s->chap_user_name, false);
		sptctl_json_field("peer_address", shown ? s->conns[0].peer_address : "", false);
		printf("\"commands_in_flight\": %u, \"connection_count\": %u, \"connections\": [",
		       s->commands_in_flight, s->connection_count);
		for (size_t k = 0; k < shown; k++) {
			printf("%s{\"cid\": %u, ", k ? ", " : "", s->conns[k].cid);
			sptctl_json_field("peer_address", s->conns[k].peer_address, false);
			sptctl_json_field("state", sptctl_conn_state_name(s->conns[k].state), true);
			putchar('}');
		}
		printf("]}");
	}
	printf("%s]\n", n ? "\n" : "");
	return SPTCTL_OK;
}

static int sptctl_session_list(struct sptctl *c, int argc, char **argv)
{
	bool json = false;
	struct spt_ctl_session *v;
	size_t n;
	int status;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else {
			fprintf(stderr, "sptctl: session list: unexpected argument '%s'\n", argv[i]);
			return SPTCTL_USAGE;
		}
	}
	if (sptctl_connect(c, c->timeout_s ? c->timeout_s : SPTCTL_LIST_TIMEOUT_S) < 0)
		return SPTCTL_UNREACHABLE;
	status = sptctl_fetch_sessions(c, &v, &n);
	if (status != SPTCTL_OK)
		return status;
	status = json ? sptctl_print_json(v, n) : sptctl_print_table(v, n);
	free(v);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "sptctl: writing the output: %s\n", strerror(errno));
		return SPTCTL_UNREACHABLE;
	}
	return status;
}

/* ---- session stop ---- */

static int sptctl_session_stop(struct sptctl *c, int argc, char **argv)
{
	const char *handle_arg = NULL;
	bool has_grace = false;
	uint32_t grace = 0, wait_s;
	uint64_t handle;
	uint8_t payload[sizeof(struct spt_ctl_session_stop)];
	uint32_t len;
	struct ctl_rx rx;
	int rc, status;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--grace") == 0) {
			if (i + 1 == argc || sptctl_parse_u32(argv[i + 1], SPT_CTL_GRACE_MAX, &grace) < 0) {
				fprintf(stderr, "sptctl: --grace: expected seconds from 0 to %u\n",
					SPT_CTL_GRACE_MAX);
				return SPTCTL_USAGE;
			}
			has_grace = true;
			i++;
		} else if (!handle_arg && argv[i][0] != '-') {
			handle_arg = argv[i];
		} else {
			fprintf(stderr, "sptctl: session stop: unexpected argument '%s'\n", argv[i]);
			return SPTCTL_USAGE;
		}
	}
	if (!handle_arg) {
		fprintf(stderr, "sptctl: session stop: which session? give its HANDLE (see 'sptctl session list')\n");
		return SPTCTL_USAGE;
	}
	if (sptctl_parse_handle(handle_arg, &handle) < 0) {
		fprintf(stderr, "sptctl: '%s' is not a session handle (up to 16 hex digits, e.g. 0x%016llx)\n",
			handle_arg, 0x1234abcd5678ef90ull);
		return SPTCTL_USAGE;
	}
	if (has_grace) {
		struct spt_ctl_session_stop st = { .itnexus_handle = handle, .grace_seconds = grace };

		ctl_session_stop_encode(payload, &st);
		len = sizeof(struct spt_ctl_session_stop);
	} else {
		struct spt_session_end se = { .itnexus_handle = htole64(handle) };

		memcpy(payload, &se, sizeof(se));
		len = sizeof(se);
	}
	/* the daemon answers within Timeout, or grace + slack when it is 0 */
	wait_s = c->timeout_s ? c->timeout_s :
		 (has_grace ? grace : SPT_CTL_GRACE_MAX) + SPT_CTL_STOP_SLACK_S;
	if (sptctl_connect(c, wait_s) < 0)
		return SPTCTL_UNREACHABLE;
	ctl_rx_init(&rx, SPT_CTL_RESPONSE_MAX);
	rc = sptctl_call(c, SPT_CC_SESSION_END, c->timeout_s, payload, len, &rx);
	if (rc < 0) {
		status = SPTCTL_UNREACHABLE;
	} else if (rc != 0) {
		status = sptctl_report_error(&rx);
	} else {
		printf("session 0x%016llx stopped\n", (unsigned long long)handle);
		status = SPTCTL_OK;
	}
	ctl_rx_reset(&rx);
	return status;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct sptctl c = { .fd = -1 };
	int opt, status;

	c.socket_path = getenv(SPTCTL_SOCKET_ENV);
	if (!c.socket_path || !*c.socket_path)
		c.socket_path = SPTCTL_DEFAULT_SOCKET;
	/* "+": options after the command belong to the command */
	while ((opt = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			c.socket_path = optarg;
			break;
		case 't':
			if (sptctl_parse_u32(optarg, SPT_CTL_TIMEOUT_MAX, &c.timeout_s) < 0 ||
			    c.timeout_s == 0) {
				fprintf(stderr, "sptctl: --timeout: expected seconds from 1 to %u\n",
					SPT_CTL_TIMEOUT_MAX);
				return SPTCTL_USAGE;
			}
			break;
		case 'h':
			sptctl_usage(stdout);
			return SPTCTL_OK;
		case 'V':
			printf("sptctl %s\n", SPTCTL_VERSION);
			return SPTCTL_OK;
		default:
			sptctl_usage(stderr);
			return SPTCTL_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc >= 1 && (strcmp(argv[0], "help") == 0)) {
		sptctl_usage(stdout);
		return SPTCTL_OK;
	}
	if (argc < 2 || strcmp(argv[0], "session") != 0) {
		if (argc == 0)
			fprintf(stderr, "sptctl: no command given\n");
		else
			fprintf(stderr, "sptctl: unknown command '%s%s%s'\n", argv[0], argc > 1 ? " " : "",
				argc > 1 ? argv[1] : "");
		sptctl_usage(stderr);
		return SPTCTL_USAGE;
	}
	if (strcmp(argv[1], "list") == 0) {
		status = sptctl_session_list(&c, argc - 2, argv + 2);
	} else if (strcmp(argv[1], "stop") == 0) {
		status = sptctl_session_stop(&c, argc - 2, argv + 2);
	} else {
		fprintf(stderr, "sptctl: unknown command 'session %s' (list or stop)\n", argv[1]);
		status = SPTCTL_USAGE;
	}
	if (c.fd >= 0)
		close(c.fd);
	return status;
}
