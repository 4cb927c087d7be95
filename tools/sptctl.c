/*
 * sptctl: manage a running sptd through its --control socket.
 *
 *   sptctl [--socket PATH] [--timeout SEC] session list [--json]
 *   sptctl [--socket PATH] [--timeout SEC] session stop HANDLE [--grace SEC]
 *   sptctl [--socket PATH] [--timeout SEC] target list [--json]
 *   sptctl [--socket PATH] [--timeout SEC] lun list [--json]
 *   sptctl [--socket PATH] [--timeout SEC] stats [--json]
 *
 * Speaks the pass-through frames of include/spt/spt.h (struct
 * spt_io_header + payload: SESSION_LIST, SESSION_END, TARGET_LIST,
 * LUN_LIST, STATS); every response is checked like any input from outside before
 * a byte of it is printed. Lists come page by page, each page's cursor
 * checked to move forward. Tables show sizes in binary units (1.0G =
 * 2^30 bytes); JSON carries exact byte counts.
 */
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl/frame.h"

#define SPTCTL_VERSION "0.1.0"
#define SPTCTL_DEFAULT_SOCKET "/run/sptd/control.sock"
#define SPTCTL_SOCKET_ENV "SPT_CONTROL_SOCKET"
#define SPTCTL_LIST_TIMEOUT_S 10	/* a list is answered at once; this is generous */
#define SPTCTL_REPLY_SLACK_S 5		/* beyond the daemon's own bound */
/* a daemon never has more (--max-sessions <= 65535); a bound against a
 * daemon that keeps saying "more" */
#define SPTCTL_MAX_SESSIONS 65536
/* the same against a daemon that keeps paging targets or LUNs */
#define SPTCTL_MAX_TARGETS 65536
#define SPTCTL_MAX_LUNS (1u << 20)
/* an ACL cell of the target table stops growing here ("+N more") */
#define SPTCTL_ACL_CELL_MAX 1024

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
		"                                   type, state, CHAP user, commands in flight, bytes\n"
		"                                   read and written (SCSI data) and connections\n"
		"  session stop HANDLE [--grace SEC]\n"
		"                                   ask the session's initiator to log out (Async\n"
		"                                   Message), close the session after SEC seconds\n"
		"                                   (default: sptd's --logout-grace, at most %u) if it\n"
		"                                   has not; returns once the session is gone\n"
		"  target list [--json]             targets: name, TPGT, portals, LUNs, sessions,\n"
		"                                   ACL (allowed initiators, or any) and whether\n"
		"                                   CHAP is required\n"
		"  lun list [--json]                LUNs: target, LUN, backend (file:PATH,\n"
		"                                   provider:NAME, ...), state (online, no provider,\n"
		"                                   ...), size, block size and mode (ro or rw)\n"
		"  stats [--json]                   statistics: per target and LUN commands (read,\n"
		"                                   write, other), bytes, errors, aborts, queue depth\n"
		"                                   and latency (average; P50/P99 as histogram bucket\n"
		"                                   bounds); per session and connection commands,\n"
		"                                   PDUs, bytes and digest errors\n"
		"  target add IQN | target remove IQN\n"
		"                                   add a target, or remove one without sessions\n"
		"  lun add TARGET LUN SPEC          add a LUN (SPEC as sptd's --lun option: an absolute\n"
		"                                   PATH[,size=SIZE][,block_size=N][,ro], ram:SIZE,\n"
		"                                   provider:NAME); its target's sessions are told\n"
		"  lun remove TARGET LUN [--force]  remove a LUN; refused while its target has\n"
		"                                   sessions unless --force\n"
		"  lun resize TARGET LUN SIZE       grow a LUN (file or ram); initiators get\n"
		"                                   CAPACITY DATA HAS CHANGED\n"
		"  acl add|remove TARGET INITIATOR  allow an initiator, or take it off the list (its\n"
		"                                   sessions are asked to log out and closed)\n"
		"  portal add|remove ADDR:PORT      listen on a portal, or stop listening there\n"
		"  chap set normal|discovery|mutual USER SECRET | chap set KIND none\n"
		"                                   set or clear CHAP credentials for new logins\n"
		"  alua list [--json]               target portal groups (ALUA target ports): tag,\n"
		"                                   asymmetric access state, portals\n"
		"  alua set TPG STATE               set a target portal group's state: active-optimized,\n"
		"                                   active-non-optimized, standby or unavailable;\n"
		"                                   initiators get ASYMMETRIC ACCESS STATE CHANGED\n"
		"  config save [FILE]               write the running configuration (targets, LUNs,\n"
		"                                   ACLs, portals, limits ...) atomically to FILE\n"
		"                                   (default: the file sptd was started with)\n"
		"  help                             this text\n"
		"\n"
		"Lists print an aligned table (sizes in binary units: 1.0G = 1073741824 bytes)\n"
		"or, with --json, a JSON array with exact byte counts.\n"
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

/* Sends a request on the connection and reads its answer into rx (reset
 * by the caller). Returns SPTCTL_OK or the exit status after printing why. */
static int sptctl_request(struct sptctl *c, uint32_t code, const void *payload, uint32_t len,
			  struct ctl_rx *rx)
{
	int rc;

	ctl_rx_reset(rx);
	rc = sptctl_call(c, code, c->timeout_s, payload, len, rx);
	if (rc < 0)
		return SPTCTL_UNREACHABLE;
	if (rc != 0)
		return sptctl_report_error(rx);
	return SPTCTL_OK;
}

static int sptctl_malformed(const char *why)
{
	fprintf(stderr, "sptctl: malformed answer from sptd: %s\n", why);
	return SPTCTL_UNREACHABLE;
}

/* ---- output helpers ---- */

/* Printable for a terminal: control bytes become '?'. */
static void sptctl_sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

/* "1.0G": binary units, one decimal, as `--lun ...,size=1G` means them. */
static void sptctl_human_size(uint64_t bytes, char *out, size_t len)
{
	static const char units[] = "KMGTPE";
	double v = (double)bytes;
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(out, len, "%llu", (unsigned long long)bytes);
		return;
	}
	v /= 1024;
	/* 1023.96K would print as 1024.0K: the next unit reads better */
	while (v >= 1023.95 && u + 1 < sizeof(units) - 1) {
		v /= 1024;
		u++;
	}
	snprintf(out, len, "%.1f%c", v, units[u]);
}

/* A table of text cells, printed with aligned columns under a header. */
struct sptctl_table {
	size_t ncols, nrows;
	const char *const *head;
	const bool *right;	/* per column: right-aligned (numbers) */
	char **cell;		/* nrows * ncols strings, each malloc'd */
	bool oom;
};

static int sptctl_table_init(struct sptctl_table *t, const char *const *head, const bool *right,
			     size_t ncols, size_t nrows)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->nrows = nrows;
	t->head = head;
	t->right = right;
	t->cell = calloc(nrows * ncols > 0 ? nrows * ncols : 1, sizeof(*t->cell));
	return t->cell ? 0 : -1;
}

static void sptctl_table_free(struct sptctl_table *t)
{
	if (!t->cell)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cell[i]);
	free(t->cell);
	t->cell = NULL;
}

static void sptctl_table_set(struct sptctl_table *t, size_t row, size_t col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void sptctl_table_set(struct sptctl_table *t, size_t row, size_t col, const char *fmt, ...)
{
	char **slot = &t->cell[row * t->ncols + col];
	va_list ap;

	va_start(ap, fmt);
	free(*slot);
	if (vasprintf(slot, fmt, ap) < 0) {
		*slot = NULL;
		t->oom = true;
	} else {
		sptctl_sanitize(*slot);
	}
	va_end(ap);
}

static int sptctl_table_print(const struct sptctl_table *t)
{
	size_t *width;

	if (t->oom) {
		fprintf(stderr, "sptctl: out of memory\n");
		return SPTCTL_UNREACHABLE;
	}
	width = calloc(t->ncols, sizeof(*width));
	if (!width) {
		fprintf(stderr, "sptctl: out of memory\n");
		return SPTCTL_UNREACHABLE;
	}
	for (size_t k = 0; k < t->ncols; k++) {
		width[k] = strlen(t->head[k]);
		for (size_t i = 0; i < t->nrows; i++) {
			const char *v = t->cell[i * t->ncols + k];

			if (v && strlen(v) > width[k])
				width[k] = strlen(v);
		}
	}
	/* a left-aligned last column is not padded: no trailing blanks */
	if (!t->right[t->ncols - 1])
		width[t->ncols - 1] = 0;
	for (size_t i = 0; i <= t->nrows; i++) {
		for (size_t k = 0; k < t->ncols; k++) {
			const char *v = i == 0 ? t->head[k] : t->cell[(i - 1) * t->ncols + k];

			printf(t->right[k] ? "%*s%s" : "%-*s%s", (int)width[k], v ? v : "",
			       k + 1 < t->ncols ? "  " : "\n");
		}
	}
	free(width);
	return SPTCTL_OK;
}

/* RFC 8259 7: a JSON string; bytes that are not UTF-8 become U+FFFD. */
static void sptctl_json_string(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	putchar('"');
	while (*p) {
		size_t n = ctl_utf8_len(p);

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

/* `--json` is the only option of a list. 0, or -1 after saying why. */
static int sptctl_list_args(const char *what, int argc, char **argv, bool *json)
{
	*json = false;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			*json = true;
		} else {
			fprintf(stderr, "sptctl: %s: unexpected argument '%s'\n", what, argv[i]);
			return -1;
		}
	}
	return 0;
}

/* stdout may be a closed pipe or a full disk: that is a failure too. */
static int sptctl_flush(int status)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "sptctl: writing the output: %s\n", strerror(errno));
		return SPTCTL_UNREACHABLE;
	}
	return status;
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

/* Every session, page by page. *out is malloc'd; *has_bytes: the daemon
 * sends the byte counters (a daemon of the first version does not).
 * Returns an exit status. */
static int sptctl_fetch_sessions(struct sptctl *c, struct spt_ctl_session **out, size_t *nout,
				 bool *has_bytes)
{
	struct spt_ctl_session *v = NULL;
	size_t n = 0, cap = 0;
	uint64_t after = 0;
	int status = SPTCTL_OK;
	struct ctl_rx rx;

	*has_bytes = true;
	ctl_rx_init(&rx, SPT_CTL_RESPONSE_MAX);
	for (;;) {
		struct spt_ctl_session_list_request req = { .after_handle = after };
		struct spt_ctl_session_list lh;
		uint8_t reqbuf[sizeof(req)];
		char why[CTL_WHY_MAX];

		ctl_session_list_request_encode(reqbuf, &req);
		status = sptctl_request(c, SPT_CC_SESSION_LIST, reqbuf, sizeof(reqbuf), &rx);
		if (status != SPTCTL_OK)
			goto out;
		if (ctl_session_list_decode(rx.payload, rx.h.length, &lh, why, sizeof(why)) < 0) {
			status = sptctl_malformed(why);
			goto out;
		}
		if (!CTL_SESSION_HAS_BYTES(lh.entry_length))
			*has_bytes = false;
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
				status = sptctl_malformed("handles out of order");
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

/* "127.0.0.1:5000, 127.0.0.1:5001 (logging-out), +1 more" */
static char *sptctl_conns_text(const struct spt_ctl_session *s)
{
	size_t shown = s->connection_count < SPT_CTL_CONNS_MAX ? s->connection_count : SPT_CTL_CONNS_MAX;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	for (size_t i = 0; i < shown; i++)
		fprintf(f, "%s%s%s", i ? ", " : "", s->conns[i].peer_address,
			s->conns[i].state == SPT_CTL_CONN_FULL_FEATURE ? "" : " (logging-out)");
	if (s->connection_count > shown)
		fprintf(f, ", +%u more", s->connection_count - (uint32_t)shown);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

enum {
	SESS_HANDLE, SESS_TSIH, SESS_TYPE, SESS_STATE, SESS_INITIATOR, SESS_ISID, SESS_TARGET,
	SESS_CHAP, SESS_CMDS, SESS_READ, SESS_WRITTEN, SESS_CONNS, SESS_COLS
};

static int sptctl_print_sessions(const struct spt_ctl_session *v, size_t n, bool has_bytes)
{
	static const char *const head[SESS_COLS] = {
		"HANDLE", "TSIH", "TYPE", "STATE", "INITIATOR", "ISID", "TARGET", "CHAP USER",
		"CMDS", "READ", "WRITTEN", "CONNECTIONS",
	};
	static const bool right[SESS_COLS] = {
		[SESS_CMDS] = true, [SESS_READ] = true, [SESS_WRITTEN] = true,
	};
	struct sptctl_table t;
	int status;

	if (n == 0) {
		printf("no sessions\n");
		return SPTCTL_OK;
	}
	if (sptctl_table_init(&t, head, right, SESS_COLS, n) < 0) {
		fprintf(stderr, "sptctl: out of memory\n");
		return SPTCTL_UNREACHABLE;
	}
	for (size_t i = 0; i < n; i++) {
		const struct spt_ctl_session *s = &v[i];
		char rd[32] = "-", wr[32] = "-";
		char *conns = sptctl_conns_text(s);

		if (has_bytes) {
			sptctl_human_size(s->bytes_read, rd, sizeof(rd));
			sptctl_human_size(s->bytes_written, wr, sizeof(wr));
		}
		sptctl_table_set(&t, i, SESS_HANDLE, "0x%016llx", (unsigned long long)s->itnexus_handle);
		sptctl_table_set(&t, i, SESS_TSIH, "0x%04x", s->tsih);
		sptctl_table_set(&t, i, SESS_TYPE, "%s", sptctl_type_name(s->session_type));
		sptctl_table_set(&t, i, SESS_STATE, "%s", sptctl_state_name(s->state));
		sptctl_table_set(&t, i, SESS_INITIATOR, "%s", s->initiator_name);
		sptctl_table_set(&t, i, SESS_ISID, "0x%02x%02x%02x%02x%02x%02x", s->isid[0], s->isid[1],
				 s->isid[2], s->isid[3], s->isid[4], s->isid[5]);
		sptctl_table_set(&t, i, SESS_TARGET, "%s", s->target_name[0] ? s->target_name : "-");
		sptctl_table_set(&t, i, SESS_CHAP, "%s", s->chap_user_name[0] ? s->chap_user_name : "-");
		sptctl_table_set(&t, i, SESS_CMDS, "%u", s->commands_in_flight);
		sptctl_table_set(&t, i, SESS_READ, "%s", rd);
		sptctl_table_set(&t, i, SESS_WRITTEN, "%s", wr);
		if (conns)
			sptctl_table_set(&t, i, SESS_CONNS, "%s", conns[0] ? conns : "-");
		else
			t.oom = true;
		free(conns);
	}
	status = sptctl_table_print(&t);
	sptctl_table_free(&t);
	return status;
}

static void sptctl_json_bytes(const char *name, uint64_t v, bool known)
{
	if (known)
		printf("\"%s\": %llu, ", name, (unsigned long long)v);
	else
		printf("\"%s\": null, ", name);
}

static int sptctl_print_sessions_json(const struct spt_ctl_session *v, size_t n, bool has_bytes)
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
		printf("\"commands_in_flight\": %u, ", s->commands_in_flight);
		/* exact counts: a byte count stays below 2^53 for years of I/O */
		sptctl_json_bytes("bytes_read", s->bytes_read, has_bytes);
		sptctl_json_bytes("bytes_written", s->bytes_written, has_bytes);
		printf("\"connection_count\": %u, \"connections\": [", s->connection_count);
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
	struct spt_ctl_session *v;
	bool json, has_bytes;
	size_t n;
	int status;

	if (sptctl_list_args("session list", argc, argv, &json) < 0)
		return SPTCTL_USAGE;
	if (sptctl_connect(c, c->timeout_s ? c->timeout_s : SPTCTL_LIST_TIMEOUT_S) < 0)
		return SPTCTL_UNREACHABLE;
	status = sptctl_fetch_sessions(c, &v, &n, &has_bytes);
	if (status != SPTCTL_OK)
		return status;
	status = json ? sptctl_print_sessions_json(v, n, has_bytes) :
			sptctl_print_sessions(v, n, has_bytes);
	free(v);
	return sptctl_flush(status);
}

/* ---- target list ---- */

/* One target with its portals and ACL, copied out of the response. */
struct sptctl_target {
	struct spt_ctl_target info;
	char (*portals)[SPT_CTL_PORTAL_MAX];		/* info.portal_count */
	char (*initiators)[SPT_CTL_NAME_MAX];		/* info.initiator_count */
};

static void sptctl_targets_free(struct sptctl_target *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].portals);
		free(v[i].initiators);
	}
	free(v);
}

/* The record at p (avail bytes left) into *t: 0, or an exit status. */
static int sptctl_target_from_record(const uint8_t *p, size_t avail,
				     const struct spt_ctl_target_list *lh, struct sptctl_target *t,
				     size_t *record_len)
{
	char why[CTL_WHY_MAX];

	memset(t, 0, sizeof(*t));
	if (ctl_target_decode(p, avail, lh, &t->info, record_len, why, sizeof(why)) < 0)
		return sptctl_malformed(why);
	/* counts are bounded by the record, which fits the payload */
	t->portals = calloc(t->info.portal_count ? t->info.portal_count : 1, sizeof(*t->portals));
	t->initiators = calloc(t->info.initiator_count ? t->info.initiator_count : 1,
			       sizeof(*t->initiators));
	if (!t->portals || !t->initiators) {
		fprintf(stderr, "sptctl: out of memory\n");
		return SPTCTL_UNREACHABLE;
	}
	for (uint32_t k = 0; k < t->info.portal_count; k++)
		ctl_string_decode(ctl_target_portal_at(p, lh, k), lh->portal_entry_length,
				  SPT_CTL_PORTAL_MAX, t->portals[k]);
	for (uint32_t k = 0; k < t->info.initiator_count; k++)
		ctl_string_decode(ctl_target_initiator_at(p, lh, &t->info, k),
				  lh->initiator_entry_length, SPT_CTL_NAME_MAX, t->initiators[k]);
	return SPTCTL_OK;
}

/* Every target, page by page, by name. *out is malloc'd. Returns an exit status. */
static int sptctl_fetch_targets(struct sptctl *c, struct sptctl_target **out, size_t *nout)
{
	struct sptctl_target *v = NULL;
	size_t n = 0, cap = 0;
	char after[SPT_CTL_NAME_MAX] = "";
	int status = SPTCTL_OK;
	struct ctl_rx rx;

	ctl_rx_init(&rx, SPT_CTL_RESPONSE_MAX);
	for (;;) {
		struct spt_ctl_target_list_request req;
		struct spt_ctl_target_list lh;
		uint8_t reqbuf[sizeof(req)];
		char why[CTL_WHY_MAX];
		size_t off;

		memset(&req, 0, sizeof(req));
		memcpy(req.after_name, after, sizeof(req.after_name));
		ctl_target_list_request_encode(reqbuf, &req);
		status = sptctl_request(c, SPT_CC_TARGET_LIST, reqbuf, sizeof(reqbuf), &rx);
		if (status != SPTCTL_OK)
			goto out;
		if (ctl_target_list_decode(rx.payload, rx.h.length, &lh, why, sizeof(why)) < 0) {
			status = sptctl_malformed(why);
			goto out;
		}
		if (n + lh.count > SPTCTL_MAX_TARGETS) {
			fprintf(stderr, "sptctl: sptd lists more than %d targets\n", SPTCTL_MAX_TARGETS);
			status = SPTCTL_UNREACHABLE;
			goto out;
		}
		if (n + lh.count > cap) {
			size_t ncap = n + lh.count;
			struct sptctl_target *nv = realloc(v, ncap * sizeof(*v));

			if (!nv) {
				fprintf(stderr, "sptctl: out of memory\n");
				status = SPTCTL_UNREACHABLE;
				goto out;
			}
			v = nv;
			cap = ncap;
		}
		off = sizeof(lh);
		for (uint32_t i = 0; i < lh.count; i++) {
			size_t rl;

			status = sptctl_target_from_record(rx.payload + off, rx.h.length - off, &lh, &v[n],
							   &rl);
			n++;	/* freed with the others, also when it failed half-way */
			if (status != SPTCTL_OK)
				goto out;
			off += rl;
			/* pages come by ascending name: anything else would loop */
			if (strcmp(v[n - 1].info.name, after) <= 0) {
				status = sptctl_malformed("target names out of order");
				goto out;
			}
			memcpy(after, v[n - 1].info.name, sizeof(after));
		}
		if (off != rx.h.length) {
			status = sptctl_malformed("bytes after the last target record");
			goto out;
		}
		if (!lh.more || lh.count == 0)
			break;
	}
out:
	ctl_rx_reset(&rx);
	if (status != SPTCTL_OK) {
		sptctl_targets_free(v, n);
		v = NULL;
		n = 0;
	}
	*out = v;
	*nout = n;
	return status;
}

static const char *sptctl_chap_text(uint16_t flags)
{
	if (!(flags & SPT_CTL_TARGET_CHAP))
		return "no";
	return flags & SPT_CTL_TARGET_MUTUAL_CHAP ? "yes, mutual" : "yes";
}

/* "iqn.a, iqn.b, +3 more", at most about SPTCTL_ACL_CELL_MAX bytes; "any" without an ACL. */
static char *sptctl_acl_text(const struct sptctl_target *t)
{
	char *text = NULL;
	size_t len = 0;
	uint32_t k;
	FILE *f;

	if (t->info.initiator_count == 0)
		return strdup("any");
	f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	for (k = 0; k < t->info.initiator_count; k++) {
		/* ftell: what the stream holds so far */
		if (k > 0 && (size_t)ftell(f) + strlen(t->initiators[k]) > SPTCTL_ACL_CELL_MAX)
			break;
		fprintf(f, "%s%s", k ? ", " : "", t->initiators[k]);
	}
	if (k < t->info.initiator_count)
		fprintf(f, ", +%u more", t->info.initiator_count - k);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static char *sptctl_portals_text(const struct sptctl_target *t)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	if (t->info.portal_count == 0)
		return strdup("-");
	f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	for (uint32_t k = 0; k < t->info.portal_count; k++)
		fprintf(f, "%s%s", k ? ", " : "", t->portals[k]);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

enum { TGT_NAME, TGT_TPGT, TGT_PORTALS, TGT_LUNS, TGT_SESSIONS, TGT_ACL, TGT_CHAP, TGT_COLS };

static int sptctl_print_targets(const struct sptctl_target *v, size_t n)
{
	static const char *const head[TGT_COLS] = {
		"TARGET", "TPGT", "PORTALS", "LUNS", "SESSIONS", "ACL", "CHAP",
	};
	static const bool right[TGT_COLS] = {
		[TGT_TPGT] = true, [TGT_LUNS] = true, [TGT_SESSIONS] = true,
	};
	struct sptctl_table t;
	int status;

	if (n == 0) {
		printf("no targets\n");
		return SPTCTL_OK;
	}
	if (sptctl_table_init(&t, head, right, TGT_COLS, n) < 0) {
		fprintf(stderr, "sptctl: out of memory\n");
		return SPTCTL_UNREACHABLE;
	}
	for (size_t i = 0; i < n; i++) {
		char *portals = sptctl_portals_text(&v[i]);
		char *acl = sptctl_acl_text(&v[i]);

		sptctl_table_set(&t, i, TGT_NAME, "%s", v[i].info.name);
		sptctl_table_set(&t, i, TGT_TPGT, "%u", v[i].info.tpgt);
		sptctl_table_set(&t, i, TGT_LUNS, "%u", v[i].info.lun_count);
		sptctl_table_set(&t, i, TGT_SESSIONS, "%u", v[i].info.session_count);
		sptctl_table_set(&t, i, TGT_CHAP, "%s", sptctl_chap_text(v[i].info.flags));
		if (portals && acl) {
			sptctl_table_set(&t, i, TGT_PORTALS, "%s", portals);
			sptctl_table_set(&t, i, TGT_ACL, "%s", acl);
		} else {
			t.oom = true;
		}
		free(portals);
		free(acl);
	}
	status = sptctl_table_print(&t);
	sptctl_table_free(&t);
	return status;
}

static int sptctl_print_targets_json(const struct sptctl_target *v, size_t n)
{
	printf("[");
	for (size_t i = 0; i < n; i++) {
		const struct spt_ctl_target *t = &v[i].info;

		printf("%s\n  {", i ? "," : "");
		sptctl_json_field("name", t->name, false);
		printf("\"tpgt\": %u, \"portals\": [", t->tpgt);
		for (uint32_t k = 0; k < t->portal_count; k++) {
			fputs(k ? ", " : "", stdout);
			sptctl_json_string(v[i].portals[k]);
		}
		printf("], \"lun_count\": %u, \"session_count\": %u, ", t->lun_count, t->session_count);
		printf("\"chap_required\": %s, \"mutual_chap\": %s, ",
		       t->flags & SPT_CTL_TARGET_CHAP ? "true" : "false",
		       t->flags & SPT_CTL_TARGET_MUTUAL_CHAP ? "true" : "false");
		/* an empty ACL lets any initiator in: said outright, not left
		 * to be inferred from an empty list */
		printf("\"any_initiator\": %s, \"allowed_initiators\": [",
		       t->initiator_count == 0 ? "true" : "false");
		for (uint32_t k = 0; k < t->initiator_count; k++) {
			fputs(k ? ", " : "", stdout);
			sptctl_json_string(v[i].initiators[k]);
		}
		printf("]}");
	}
	printf("%s]\n", n ? "\n" : "");
	return SPTCTL_OK;
}

static int sptctl_target_list(struct sptctl *c, int argc, char **argv)
{
	struct sptctl_target *v;
	bool json;
	size_t n;
	int status;

	if (sptctl_list_args("target list", argc, argv, &json) < 0)
		return SPTCTL_USAGE;
	if (sptctl_connect(c, c->timeout_s ? c->timeout_s : SPTCTL_LIST_TIMEOUT_S) < 0)
		return SPTCTL_UNREACHABLE;
	status = sptctl_fetch_targets(c, &v, &n);
	if (status != SPTCTL_OK)
		return status;
	status = json ? sptctl_print_targets_json(v, n) : sptctl_print_targets(v, n);
	sptctl_targets_free(v, n);
	return sptctl_flush(status);
}

/* ---- lun list ---- */

/* Every LUN, page by page, by target name and LUN. *out is malloc'd.
 * Returns an exit status. */
static int sptctl_fetch_luns(struct sptctl *c, struct spt_ctl_lun **out, size_t *nout)
{
	struct spt_ctl_lun *v = NULL;
	size_t n = 0, cap = 0;
	struct spt_ctl_lun_list_request req;
	int status = SPTCTL_OK;
	struct ctl_rx rx;

	memset(&req, 0, sizeof(req));
	ctl_rx_init(&rx, SPT_CTL_RESPONSE_MAX);
	for (;;) {
		struct spt_ctl_lun_list lh;
		uint8_t reqbuf[sizeof(req)];
		char why[CTL_WHY_MAX];

		ctl_lun_list_request_encode(reqbuf, &req);
		status = sptctl_request(c, SPT_CC_LUN_LIST, reqbuf, sizeof(reqbuf), &rx);
		if (status != SPTCTL_OK)
			goto out;
		if (ctl_lun_list_decode(rx.payload, rx.h.length, &lh, why, sizeof(why)) < 0) {
			status = sptctl_malformed(why);
			goto out;
		}
		if (n + lh.count > SPTCTL_MAX_LUNS) {
			fprintf(stderr, "sptctl: sptd lists more than %u LUNs\n", SPTCTL_MAX_LUNS);
			status = SPTCTL_UNREACHABLE;
			goto out;
		}
		if (n + lh.count > cap) {
			size_t ncap = n + lh.count;
			struct spt_ctl_lun *nv = realloc(v, ncap * sizeof(*v));

			if (!nv) {
				fprintf(stderr, "sptctl: out of memory\n");
				status = SPTCTL_UNREACHABLE;
				goto out;
			}
			v = nv;
			cap = ncap;
		}
		for (uint32_t i = 0; i < lh.count; i++) {
			struct spt_ctl_lun *e = &v[n];
			int cmp;

			ctl_lun_decode(rx.payload + sizeof(lh) + (size_t)i * lh.entry_length,
				       lh.entry_length, e);
			/* pages come in (target, LUN) order, and "" restarts the
			 * list: anything else would loop */
			cmp = strcmp(e->target_name, req.after_target);
			if (!e->target_name[0] || cmp < 0 || (cmp == 0 && e->lun <= req.after_lun)) {
				status = sptctl_malformed("LUNs out of order");
				goto out;
			}
			memcpy(req.after_target, e->target_name, sizeof(req.after_target));
			req.after_lun = e->lun;
			n++;
		}
		if (!lh.more || lh.count == 0)
			break;
	}
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

enum { LUN_TARGET, LUN_NUMBER, LUN_BACKEND, LUN_STATE, LUN_SIZE, LUN_BLOCK, LUN_MODE, LUN_COLS };

static int sptctl_print_luns(const struct spt_ctl_lun *v, size_t n)
{
	static const char *const head[LUN_COLS] = {
		"TARGET", "LUN", "BACKEND", "STATE", "SIZE", "BLOCK", "MODE",
	};
	static const bool right[LUN_COLS] = {
		[LUN_NUMBER] = true, [LUN_SIZE] = true, [LUN_BLOCK] = true,
	};
	struct sptctl_table t;
	int status;

	if (n == 0) {
		printf("no LUNs\n");
		return SPTCTL_OK;
	}
	if (sptctl_table_init(&t, head, right, LUN_COLS, n) < 0) {
		fprintf(stderr, "sptctl: out of memory\n");
		return SPTCTL_UNREACHABLE;
	}
	for (size_t i = 0; i < n; i++) {
		const struct spt_ctl_lun *e = &v[i];
		char size[32] = "-";

		if (e->size_bytes)
			sptctl_human_size(e->size_bytes, size, sizeof(size));
		sptctl_table_set(&t, i, LUN_TARGET, "%s", e->target_name);
		sptctl_table_set(&t, i, LUN_NUMBER, "%llu", (unsigned long long)e->lun);
		sptctl_table_set(&t, i, LUN_SIZE, "%s", size);
		if (e->block_size)
			sptctl_table_set(&t, i, LUN_BLOCK, "%u", e->block_size);
		else
			sptctl_table_set(&t, i, LUN_BLOCK, "-");
		sptctl_table_set(&t, i, LUN_MODE, "%s", e->read_only ? "ro" : "rw");
		sptctl_table_set(&t, i, LUN_STATE, "%s", e->state[0] ? e->state : "-");
		sptctl_table_set(&t, i, LUN_BACKEND, "%s", e->backend[0] ? e->backend : "-");
	}
	status = sptctl_table_print(&t);
	sptctl_table_free(&t);
	return status;
}

static int sptctl_print_luns_json(const struct spt_ctl_lun *v, size_t n)
{
	printf("[");
	for (size_t i = 0; i < n; i++) {
		const struct spt_ctl_lun *e = &v[i];

		printf("%s\n  {", i ? "," : "");
		sptctl_json_field("target", e->target_name, false);
		printf("\"lun\": %llu, ", (unsigned long long)e->lun);
		sptctl_json_field("backend", e->backend, false);
		sptctl_json_field("state", e->state, false);
		/* 0 on the wire means the daemon does not know */
		sptctl_json_bytes("size_bytes", e->size_bytes, e->size_bytes != 0);
		if (e->block_size)
			printf("\"block_size\": %u, ", e->block_size);
		else
			printf("\"block_size\": null, ");
		printf("\"read_only\": %s}", e->read_only ? "true" : "false");
	}
	printf("%s]\n", n ? "\n" : "");
	return SPTCTL_OK;
}

static int sptctl_lun_list(struct sptctl *c, int argc, char **argv)
{
	struct spt_ctl_lun *v;
	bool json;
	size_t n;
	int status;

	if (sptctl_list_args("lun list", argc, argv, &json) < 0)
		return SPTCTL_USAGE;
	if (sptctl_connect(c, c->timeout_s ? c->timeout_s : SPTCTL_LIST_TIMEOUT_S) < 0)
		return SPTCTL_UNREACHABLE;
	status = sptctl_fetch_luns(c, &v, &n);
	if (status != SPTCTL_OK)
		return status;
	status = json ? sptctl_print_luns_json(v, n) : sptctl_print_luns(v, n);
	free(v);
	return sptctl_flush(status);
}

/* ---- stats ---- */

/* Everything `sptctl stats` shows, fetched kind by kind, page by page. */
struct sptctl_stats {
	struct spt_ctl_stats_server server;
	struct spt_ctl_stats_target *targets;
	size_t ntargets;
	struct spt_ctl_stats_lun *luns;
	size_t nluns;
	struct spt_ctl_stats_session *sessions;
	size_t nsessions;
};

static void sptctl_stats_free(struct sptctl_stats *st)
{
	free(st->targets);
	free(st->luns);
	free(st->sessions);
}

/*
 * Every entry of one kind into *out (malloc'd, *nout of them, each
 * ctl_stats_entry_size(kind) bytes), the cursor checked to move forward on
 * every entry. limit bounds a daemon that keeps saying "more". Returns an
 * exit status.
 */
static int sptctl_fetch_stats(struct sptctl *c, uint32_t kind, size_t limit, void **out, size_t *nout)
{
	size_t esize = ctl_stats_entry_size(kind), n = 0, cap = 0;
	struct spt_ctl_stats_request req;
	char *v = NULL;
	int status = SPTCTL_OK;
	struct ctl_rx rx;

	memset(&req, 0, sizeof(req));
	req.kind = kind;
	ctl_rx_init(&rx, SPT_CTL_RESPONSE_MAX);
	for (;;) {
		struct spt_ctl_stats sh;
		uint8_t reqbuf[sizeof(req)];
		char why[CTL_WHY_MAX];

		ctl_stats_request_encode(reqbuf, &req);
		status = sptctl_request(c, SPT_CC_STATS, reqbuf, sizeof(reqbuf), &rx);
		if (status != SPTCTL_OK)
			goto out;
		if (ctl_stats_decode(rx.payload, rx.h.length, &sh, why, sizeof(why)) < 0) {
			status = sptctl_malformed(why);
			goto out;
		}
		if (sh.kind != kind) {
			status = sptctl_malformed("STATS answered with another kind");
			goto out;
		}
		if (n + sh.count > limit) {
			fprintf(stderr, "sptctl: sptd reports more than %zu entries of kind %u\n", limit,
				kind);
			status = SPTCTL_UNREACHABLE;
			goto out;
		}
		if (n + sh.count > cap) {
			size_t ncap = n + sh.count;
			char *nv = realloc(v, ncap * esize);

			if (!nv) {
				fprintf(stderr, "sptctl: out of memory\n");
				status = SPTCTL_UNREACHABLE;
				goto out;
			}
			v = nv;
			cap = ncap;
		}
		for (uint32_t i = 0; i < sh.count; i++, n++) {
			const uint8_t *p = rx.payload + sizeof(sh) + (size_t)i * sh.entry_length;
			void *e = v + n * esize;
			bool in_order = true;

			switch (kind) {
			case SPT_CTL_STATS_SERVER:
				ctl_stats_server_decode(p, sh.entry_length, e);
				break;
			case SPT_CTL_STATS_TARGETS: {
				struct spt_ctl_stats_target *t = e;

				ctl_stats_target_decode(p, sh.entry_length, t);
				in_order = t->name[0] && strcmp(t->name, req.after_name) > 0;
				memcpy(req.after_name, t->name, sizeof(req.after_name));
				break;
			}
			case SPT_CTL_STATS_LUNS: {
				struct spt_ctl_stats_lun *l = e;
				int cmp;

				ctl_stats_lun_decode(p, sh.entry_length, l);
				cmp = strcmp(l->target_name, req.after_name);
				in_order = l->target_name[0] &&
					   (cmp > 0 || (cmp == 0 && l->lun > req.after_number));
				memcpy(req.after_name, l->target_name, sizeof(req.after_name));
				req.after_number = l->lun;
				break;
			}
			default: {
				struct spt_ctl_stats_session *s = e;

				ctl_stats_session_decode(p, sh.entry_length, s);
				in_order = s->itnexus_handle > req.after_number;
				req.after_number = s->itnexus_handle;
				break;
			}
			}
			/* pages come in cursor order: anything else would loop */
			if (!in_order) {
				status = sptctl_malformed("statistics out of order");
				goto out;
			}
		}
		if (kind == SPT_CTL_STATS_SERVER || !sh.more || sh.count == 0)
			break;
	}
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

static int sptctl_fetch_all_stats(struct sptctl *c, struct sptctl_stats *st)
{
	void *v = NULL;
	size_t n = 0;
	int status;

	memset(st, 0, sizeof(*st));
	status = sptctl_fetch_stats(c, SPT_CTL_STATS_SERVER, 1, &v, &n);
	if (status != SPTCTL_OK)
		goto out;
	if (n != 1) {
		status = sptctl_malformed("STATS server without its entry");
		goto out;
	}
	st->server = *(struct spt_ctl_stats_server *)v;
	free(v);
	v = NULL;
	status = sptctl_fetch_stats(c, SPT_CTL_STATS_TARGETS, SPTCTL_MAX_TARGETS, &v, &st->ntargets);
	st->targets = v;
	if (status != SPTCTL_OK)
		goto out;
	status = sptctl_fetch_stats(c, SPT_CTL_STATS_LUNS, SPTCTL_MAX_LUNS, &v, &st->nluns);
	st->luns = v;
	if (status != SPTCTL_OK)
		goto out;
	status = sptctl_fetch_stats(c, SPT_CTL_STATS_SESSIONS, SPTCTL_MAX_SESSIONS, &v, &st->nsessions);
	st->sessions = v;
	v = NULL;
out:
	free(v);
	if (status != SPTCTL_OK) {
		sptctl_stats_free(st);
		memset(st, 0, sizeof(*st));
	}
	return status;
}

/* "125us", "3.2ms", "1.50s": a latency for a table. */
static void sptctl_human_ns(uint64_t ns, char *out, size_t len)
{
	if (ns < 10000)
		snprintf(out, len, "%lluns", (unsigned long long)ns);
	else if (ns < 10000000)
		snprintf(out, len, "%lluus", (unsigned long long)(ns / 1000));
	else if (ns < 10000000000ull)
		snprintf(out, len, "%.1fms", (double)ns / 1e6);
	else
		snprintf(out, len, "%.2fs", (double)ns / 1e9);
}

/* A bucket bound of us microseconds: "512us", "1.0ms", "16.8s". */
static void sptctl_human_us(uint64_t us, char *out, size_t len)
{
	if (us < 1000)
		snprintf(out, len, "%lluus", (unsigned long long)us);
	else if (us < 1000000)
		snprintf(out, len, "%.1fms", (double)us / 1e3);
	else
		snprintf(out, len, "%.1fs", (double)us / 1e6);
}

/* The upper bound of the bucket holding quantile q of the histogram:
 * "<=512us"; ">16.8s" for the last bucket; "-" when empty. */
static void sptctl_quantile_text(const struct spt_ctl_stats_latency *lat, double q, char *out, size_t len)
{
	uint64_t total = 0, seen = 0, rank;

	for (size_t i = 0; i < SPT_CTL_STATS_BUCKETS; i++)
		total += lat->buckets[i];
	if (total == 0) {
		snprintf(out, len, "-");
		return;
	}
	rank = (uint64_t)(q * (double)total);
	if (rank < 1)
		rank = 1;
	for (size_t i = 0; i < SPT_CTL_STATS_BUCKETS; i++) {
		char b[24];

		seen += lat->buckets[i];
		if (seen < rank)
			continue;
		if (i == SPT_CTL_STATS_BUCKETS - 1) {
			sptctl_human_us(1ull << (SPT_CTL_STATS_BUCKETS - 2), b, sizeof(b));
			snprintf(out, len, ">%s", b);
		} else {
			sptctl_human_us(1ull << i, b, sizeof(b));
			snprintf(out, len, "<=%s", b);
		}
		return;
	}
	snprintf(out, len, "-");
}

enum {
	IO_CMDS, IO_READS, IO_WRITES, IO_OTHER, IO_READ, IO_WRITTEN, IO_ERRORS, IO_ABORTS, IO_QD,
	IO_AVG, IO_P50, IO_P99, IO_COLS
};

static const char *const sptctl_io_head[IO_COLS] = {
	"CMDS", "READS", "WRITES", "OTHER", "READ", "WRITTEN", "ERRORS", "ABORTS", "QD",
	"AVG LAT", "P50", "P99",
};

/* The I/O columns of a target or LUN row, from column `first` on. */
static void sptctl_io_cells(struct sptctl_table *t, size_t row, size_t first,
			    const struct spt_ctl_stats_io *io, const struct spt_ctl_stats_latency *lat)
{
	char rd[32], wr[32], avg[32] = "-", p50[32], p99[32];

	sptctl_human_size(io->bytes_read, rd, sizeof(rd));
	sptctl_human_size(io->bytes_written, wr, sizeof(wr));
	if (lat->count)
		sptctl_human_ns(lat->sum_ns / lat->count, avg, sizeof(avg));
	sptctl_quantile_text(lat, 0.5, p50, sizeof(p50));
	sptctl_quantile_text(lat, 0.99, p99, sizeof(p99));
	sptctl_table_set(t, row, first + IO_CMDS, "%llu", (unsigned long long)io->commands);
	sptctl_table_set(t, row, first + IO_READS, "%llu", (unsigned long long)io->read_commands);
	sptctl_table_set(t, row, first + IO_WRITES, "%llu", (unsigned long long)io->write_commands);
	/* a daemon's counters move between the fields' reads: never below 0 */
	sptctl_table_set(t, row, first + IO_OTHER, "%llu",
			 (unsigned long long)(io->commands >= io->read_commands + io->write_commands ?
					      io->commands - io->read_commands - io->write_commands : 0));
	sptctl_table_set(t, row, first + IO_READ, "%s", rd);
	sptctl_table_set(t, row, first + IO_WRITTEN, "%s", wr);
	sptctl_table_set(t, row, first + IO_ERRORS, "%llu", (unsigned long long)io->errors);
	sptctl_table_set(t, row, first + IO_ABORTS, "%llu", (unsigned long long)io->aborts);
	sptctl_table_set(t, row, first + IO_QD, "%llu", (unsigned long long)io->queue_depth);
	sptctl_table_set(t, row, first + IO_AVG, "%s", avg);
	sptctl_table_set(t, row, first + IO_P50, "%s", p50);
	sptctl_table_set(t, row, first + IO_P99, "%s", p99);
}

/* A table with `key` leading columns and then the I/O columns. */
static int sptctl_io_table_init(struct sptctl_table *t, const char **head, bool *right,
				const char *const *key, size_t nkey, size_t nrows)
{
	for (size_t k = 0; k < nkey; k++) {
		head[k] = key[k];
		right[k] = false;
	}
	for (size_t k = 0; k < IO_COLS; k++) {
		head[nkey + k] = sptctl_io_head[k];
		right[nkey + k] = true;
	}
	if (sptctl_table_init(t, head, right, nkey + IO_COLS, nrows) < 0) {
		fprintf(stderr, "sptctl: out of memory\n");
		return -1;
	}
	return 0;
}

#define SPTCTL_STATS_KEYS_MAX 4

static int sptctl_print_stats(const struct sptctl_stats *st)
{
	const char *head[SPTCTL_STATS_KEYS_MAX + IO_COLS];
	bool right[SPTCTL_STATS_KEYS_MAX + IO_COLS];
	static const char *const target_key[] = { "TARGET", "LUNS", "SESSIONS" };
	static const char *const lun_key[] = { "TARGET", "LUN" };
	struct sptctl_table t;
	int status;

	printf("server: %u session%s, %u connection%s, %u target%s, %u LUN%s; digest errors: "
	       "%llu header, %llu data\n",
	       st->server.sessions, st->server.sessions == 1 ? "" : "s", st->server.connections,
	       st->server.connections == 1 ? "" : "s", st->server.targets,
	       st->server.targets == 1 ? "" : "s", st->server.luns, st->server.luns == 1 ? "" : "s",
	       (unsigned long long)st->server.header_digest_errors,
	       (unsigned long long)st->server.data_digest_errors);

	printf("\ntargets:\n");
	if (st->ntargets == 0) {
		printf("no targets\n");
	} else {
		if (sptctl_io_table_init(&t, head, right, target_key, 3, st->ntargets) < 0)
			return SPTCTL_UNREACHABLE;
		right[1] = right[2] = true;
		for (size_t i = 0; i < st->ntargets; i++) {
			const struct spt_ctl_stats_target *e = &st->targets[i];

			sptctl_table_set(&t, i, 0, "%s", e->name);
			sptctl_table_set(&t, i, 1, "%u", e->lun_count);
			sptctl_table_set(&t, i, 2, "%u", e->session_count);
			sptctl_io_cells(&t, i, 3, &e->io, &e->latency);
		}
		status = sptctl_table_print(&t);
		sptctl_table_free(&t);
		if (status != SPTCTL_OK)
			return status;
	}

	printf("\nLUNs:\n");
	if (st->nluns == 0) {
		printf("no LUNs\n");
	} else {
		if (sptctl_io_table_init(&t, head, right, lun_key, 2, st->nluns) < 0)
			return SPTCTL_UNREACHABLE;
		right[1] = true;
		for (size_t i = 0; i < st->nluns; i++) {
			const struct spt_ctl_stats_lun *e = &st->luns[i];

			sptctl_table_set(&t, i, 0, "%s", e->target_name);
			sptctl_table_set(&t, i, 1, "%llu", (unsigned long long)e->lun);
			sptctl_io_cells(&t, i, 2, &e->io, &e->latency);
		}
		status = sptctl_table_print(&t);
		sptctl_table_free(&t);
		if (status != SPTCTL_OK)
			return status;
	}
	return SPTCTL_OK;
}

enum {
	SST_HANDLE, SST_INITIATOR, SST_ISID, SST_TARGET, SST_CMDS, SST_ERRORS, SST_ABORTS, SST_QD,
	SST_READ, SST_WRITTEN, SST_HDIGEST, SST_DDIGEST, SST_COLS
};

enum {
	CST_HANDLE, CST_CID, CST_PEER, CST_PDUS_IN, CST_PDUS_OUT, CST_IN, CST_OUT, CST_HDIGEST,
	CST_DDIGEST, CST_COLS
};

static int sptctl_print_stats_sessions(const struct sptctl_stats *st)
{
	static const char *const shead[SST_COLS] = {
		"HANDLE", "INITIATOR", "ISID", "TARGET", "CMDS", "ERRORS", "ABORTS", "QD", "READ",
		"WRITTEN", "HDR DIGEST ERR", "DATA DIGEST ERR",
	};
	static const bool sright[SST_COLS] = {
		[SST_CMDS] = true, [SST_ERRORS] = true, [SST_ABORTS] = true, [SST_QD] = true,
		[SST_READ] = true, [SST_WRITTEN] = true, [SST_HDIGEST] = true, [SST_DDIGEST] = true,
	};
	static const char *const chead[CST_COLS] = {
		"HANDLE", "CID", "PEER", "PDUS IN", "PDUS OUT", "BYTES IN", "BYTES OUT",
		"HDR DIGEST ERR", "DATA DIGEST ERR",
	};
	static const bool cright[CST_COLS] = {
		[CST_CID] = true, [CST_PDUS_IN] = true, [CST_PDUS_OUT] = true, [CST_IN] = true,
		[CST_OUT] = true, [CST_HDIGEST] = true, [CST_DDIGEST] = true,
	};
	struct sptctl_table t;
	size_t nconns = 0, row = 0;
	int status;

	printf("\nsessions:\n");
	if (st->nsessions == 0) {
		printf("no sessions\n");
		return SPTCTL_OK;
	}
	if (sptctl_table_init(&t, shead, sright, SST_COLS, st->nsessions) < 0) {
		fprintf(stderr, "sptctl: out of memory\n");
		return SPTCTL_UNREACHABLE;
	}
	for (size_t i = 0; i < st->nsessions; i++) {
		const struct spt_ctl_stats_session *s = &st->sessions[i];
		char rd[32], wr[32];

		sptctl_human_size(s->bytes_read, rd, sizeof(rd));
		sptctl_human_size(s->bytes_written, wr, sizeof(wr));
		sptctl_table_set(&t, i, SST_HANDLE, "0x%016llx", (unsigned long long)s->itnexus_handle);
		sptctl_table_set(&t, i, SST_INITIATOR, "%s", s->initiator_name);
		sptctl_table_set(&t, i, SST_ISID, "0x%02x%02x%02x%02x%02x%02x", s->isid[0], s->isid[1],
				 s->isid[2], s->isid[3], s->isid[4], s->isid[5]);
		sptctl_table_set(&t, i, SST_TARGET, "%s", s->target_name[0] ? s->target_name : "-");
		sptctl_table_set(&t, i, SST_CMDS, "%llu", (unsigned long long)s->commands);
		sptctl_table_set(&t, i, SST_ERRORS, "%llu", (unsigned long long)s->errors);
		sptctl_table_set(&t, i, SST_ABORTS, "%llu", (unsigned long long)s->aborts);
		sptctl_table_set(&t, i, SST_QD, "%llu", (unsigned long long)s->queue_depth);
		sptctl_table_set(&t, i, SST_READ, "%s", rd);
		sptctl_table_set(&t, i, SST_WRITTEN, "%s", wr);
		sptctl_table_set(&t, i, SST_HDIGEST, "%llu", (unsigned long long)s->header_digest_errors);
		sptctl_table_set(&t, i, SST_DDIGEST, "%llu", (unsigned long long)s->data_digest_errors);
		nconns += s->connection_count < SPT_CTL_CONNS_MAX ? s->connection_count : SPT_CTL_CONNS_MAX;
	}
	status = sptctl_table_print(&t);
	sptctl_table_free(&t);
	if (status != SPTCTL_OK)
		return status;

	printf("\nconnections:\n");
	if (nconns == 0) {
		printf("no connections\n");
		return SPTCTL_OK;
	}
	if (sptctl_table_init(&t, chead, cright, CST_COLS, nconns) < 0) {
		fprintf(stderr, "sptctl: out of memory\n");
		return SPTCTL_UNREACHABLE;
	}
	for (size_t i = 0; i < st->nsessions; i++) {
		const struct spt_ctl_stats_session *s = &st->sessions[i];
		size_t shown = s->connection_count < SPT_CTL_CONNS_MAX ? s->connection_count :
									 SPT_CTL_CONNS_MAX;

		for (size_t k = 0; k < shown; k++, row++) {
			const struct spt_ctl_stats_connection *cn = &s->conns[k];
			char in[32], out[32];

			sptctl_human_size(cn->bytes_in, in, sizeof(in));
			sptctl_human_size(cn->bytes_out, out, sizeof(out));
			sptctl_table_set(&t, row, CST_HANDLE, "0x%016llx",
					 (unsigned long long)s->itnexus_handle);
			sptctl_table_set(&t, row, CST_CID, "%u", cn->cid);
			sptctl_table_set(&t, row, CST_PEER, "%s", cn->peer_address);
			sptctl_table_set(&t, row, CST_PDUS_IN, "%llu", (unsigned long long)cn->pdus_in);
			sptctl_table_set(&t, row, CST_PDUS_OUT, "%llu", (unsigned long long)cn->pdus_out);
			sptctl_table_set(&t, row, CST_IN, "%s", in);
			sptctl_table_set(&t, row, CST_OUT, "%s", out);
			sptctl_table_set(&t, row, CST_HDIGEST, "%llu",
					 (unsigned long long)cn->header_digest_errors);
			sptctl_table_set(&t, row, CST_DDIGEST, "%llu",
					 (unsigned long long)cn->data_digest_errors);
		}
	}
	status = sptctl_table_print(&t);
	sptctl_table_free(&t);
	return status;
}

static void sptctl_json_u64(const char *name, uint64_t v, bool last)
{
	printf("\"%s\": %llu%s", name, (unsigned long long)v, last ? "" : ", ");
}

/* The I/O counters and the histogram of a target or LUN: exact numbers;
 * buckets per bucket (not cumulative), le_us null for the last one. */
static void sptctl_json_io(const struct spt_ctl_stats_io *io, const struct spt_ctl_stats_latency *lat)
{
	sptctl_json_u64("commands", io->commands, false);
	sptctl_json_u64("read_commands", io->read_commands, false);
	sptctl_json_u64("write_commands", io->write_commands, false);
	sptctl_json_u64("other_commands",
			io->commands >= io->read_commands + io->write_commands ?
			io->commands - io->read_commands - io->write_commands : 0, false);
	sptctl_json_u64("bytes_read", io->bytes_read, false);
	sptctl_json_u64("bytes_written", io->bytes_written, false);
	sptctl_json_u64("errors", io->errors, false);
	sptctl_json_u64("aborts", io->aborts, false);
	sptctl_json_u64("queue_depth", io->queue_depth, false);
	printf("\"latency\": {");
	sptctl_json_u64("count", lat->count, false);
	sptctl_json_u64("sum_ns", lat->sum_ns, false);
	printf("\"buckets\": [");
	for (size_t i = 0; i < SPT_CTL_STATS_BUCKETS; i++) {
		if (i + 1 < SPT_CTL_STATS_BUCKETS)
			printf("%s{\"le_us\": %llu, ", i ? ", " : "", 1ull << i);
		else
			printf(", {\"le_us\": null, ");
		sptctl_json_u64("count", lat->buckets[i], true);
		putchar('}');
	}
	printf("]}");
}

static int sptctl_print_stats_json(const struct sptctl_stats *st)
{
	char buf[64];

	printf("{\"server\": {");
	printf("\"sessions\": %u, \"connections\": %u, \"targets\": %u, \"luns\": %u, ",
	       st->server.sessions, st->server.connections, st->server.targets, st->server.luns);
	sptctl_json_u64("header_digest_errors", st->server.header_digest_errors, false);
	sptctl_json_u64("data_digest_errors", st->server.data_digest_errors, true);
	printf("},\n\"targets\": [");
	for (size_t i = 0; i < st->ntargets; i++) {
		const struct spt_ctl_stats_target *e = &st->targets[i];

		printf("%s\n  {", i ? "," : "");
		sptctl_json_field("name", e->name, false);
		printf("\"lun_count\": %u, \"session_count\": %u, ", e->lun_count, e->session_count);
		sptctl_json_io(&e->io, &e->latency);
		putchar('}');
	}
	printf("%s],\n\"luns\": [", st->ntargets ? "\n" : "");
	for (size_t i = 0; i < st->nluns; i++) {
		const struct spt_ctl_stats_lun *e = &st->luns[i];

		printf("%s\n  {", i ? "," : "");
		sptctl_json_field("target", e->target_name, false);
		sptctl_json_u64("lun", e->lun, false);
		sptctl_json_io(&e->io, &e->latency);
		putchar('}');
	}
	printf("%s],\n\"sessions\": [", st->nluns ? "\n" : "");
	for (size_t i = 0; i < st->nsessions; i++) {
		const struct spt_ctl_stats_session *s = &st->sessions[i];
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
		printf("\"tsih\": %u, ", s->tsih);
		sptctl_json_field("type", sptctl_type_name(s->session_type), false);
		sptctl_json_u64("commands", s->commands, false);
		sptctl_json_u64("errors", s->errors, false);
		sptctl_json_u64("aborts", s->aborts, false);
		sptctl_json_u64("queue_depth", s->queue_depth, false);
		sptctl_json_u64("bytes_read", s->bytes_read, false);
		sptctl_json_u64("bytes_written", s->bytes_written, false);
		sptctl_json_u64("header_digest_errors", s->header_digest_errors, false);
		sptctl_json_u64("data_digest_errors", s->data_digest_errors, false);
		printf("\"connection_count\": %u, \"connections\": [", s->connection_count);
		for (size_t k = 0; k < shown; k++) {
			const struct spt_ctl_stats_connection *cn = &s->conns[k];

			printf("%s{\"cid\": %u, ", k ? ", " : "", cn->cid);
			sptctl_json_field("peer_address", cn->peer_address, false);
			sptctl_json_u64("pdus_in", cn->pdus_in, false);
			sptctl_json_u64("pdus_out", cn->pdus_out, false);
			sptctl_json_u64("bytes_in", cn->bytes_in, false);
			sptctl_json_u64("bytes_out", cn->bytes_out, false);
			sptctl_json_u64("header_digest_errors", cn->header_digest_errors, false);
			sptctl_json_u64("data_digest_errors", cn->data_digest_errors, true);
			putchar('}');
		}
		printf("]}");
	}
	printf("%s]}\n", st->nsessions ? "\n" : "");
	return SPTCTL_OK;
}

static int sptctl_stats(struct sptctl *c, int argc, char **argv)
{
	struct sptctl_stats st;
	bool json;
	int status;

	if (sptctl_list_args("stats", argc, argv, &json) < 0)
		return SPTCTL_USAGE;
	if (sptctl_connect(c, c->timeout_s ? c->timeout_s : SPTCTL_LIST_TIMEOUT_S) < 0)
		return SPTCTL_UNREACHABLE;
	status = sptctl_fetch_all_stats(c, &st);
	if (status != SPTCTL_OK)
		return status;
	if (json) {
		status = sptctl_print_stats_json(&st);
	} else {
		status = sptctl_print_stats(&st);
		if (status == SPTCTL_OK)
			status = sptctl_print_stats_sessions(&st);
	}
	sptctl_stats_free(&st);
	return sptctl_flush(status);
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

/* config save [FILE]: a relative FILE is made absolute here, since the
 * daemon's working directory is not ours. */
static int sptctl_config_save(struct sptctl *c, int argc, char **argv)
{
	char path[SPT_CTL_PATH_MAX] = "";
	struct ctl_rx rx;
	int rc, status;

	if (argc > 1 || (argc == 1 && argv[0][0] == '-')) {
		fprintf(stderr, "sptctl: usage: config save [FILE]\n");
		return SPTCTL_USAGE;
	}
	if (argc == 1) {
		char cwd[SPT_CTL_PATH_MAX];
		int n;

		if (argv[0][0] == '/')
			n = snprintf(path, sizeof(path), "%s", argv[0]);
		else if (getcwd(cwd, sizeof(cwd)))
			n = snprintf(path, sizeof(path), "%s/%s", cwd, argv[0]);
		else
			n = -1;
		if (n < 0 || (size_t)n >= sizeof(path) || !argv[0][0]) {
			fprintf(stderr, "sptctl: config save: bad or too long path '%s'\n", argv[0]);
			return SPTCTL_USAGE;
		}
	}
	if (sptctl_connect(c, c->timeout_s ? c->timeout_s : SPTCTL_LIST_TIMEOUT_S) < 0)
		return SPTCTL_UNREACHABLE;
	ctl_rx_init(&rx, SPT_CTL_RESPONSE_MAX);
	rc = sptctl_call(c, SPT_CC_CONFIG_SAVE, c->timeout_s, path, (uint32_t)strlen(path), &rx);
	if (rc < 0) {
		status = SPTCTL_UNREACHABLE;
	} else if (rc != 0) {
		status = sptctl_report_error(&rx);
	} else {
		printf("configuration saved%s%s\n", path[0] ? " to " : " to sptd's --config file", path);
		status = SPTCTL_OK;
	}
	ctl_rx_reset(&rx);
	return status;
}

/* ---- live configuration changes ---- */

static int sptctl_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	case 'T': case 't': shift = 40; end++; break;
	default: break;
	}
	if (*end || v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int sptctl_change(struct sptctl *c, struct spt_ctl_config_change *ch, const char *done)
{
	struct ctl_rx rx;
	int rc, status;

	ch->op = htole32(ch->op);
	ch->flags = htole32(ch->flags);
	ch->lun = htole64(ch->lun);
	ch->size_bytes = htole64(ch->size_bytes);
	ch->chap_kind = htole32(ch->chap_kind);
	if (sptctl_connect(c, c->timeout_s ? c->timeout_s : SPTCTL_LIST_TIMEOUT_S) < 0)
		return SPTCTL_UNREACHABLE;
	ctl_rx_init(&rx, SPT_CTL_RESPONSE_MAX);
	rc = sptctl_call(c, SPT_CC_CONFIG_CHANGE, c->timeout_s, ch, sizeof(*ch), &rx);
	if (rc < 0) {
		status = SPTCTL_UNREACHABLE;
	} else if (rc != 0) {
		status = sptctl_report_error(&rx);
	} else {
		printf("%s\n", done);
		status = SPTCTL_OK;
	}
	ctl_rx_reset(&rx);
	return status;
}

/* Copies a command-line string into a fixed field. */
static int sptctl_field(char *dst, size_t len, const char *src, const char *what)
{
	if (strlen(src) >= len) {
		fprintf(stderr, "sptctl: %s is longer than %zu bytes\n", what, len - 1);
		return -1;
	}
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

static int sptctl_lun_number(const char *s, struct spt_ctl_config_change *ch)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (!*s || *end || *s == '-' || v > 16383) {
		fprintf(stderr, "sptctl: '%s' is not a LUN number (0 to 16383)\n", s);
		return -1;
	}
	ch->lun = v;
	return 0;
}

static int sptctl_usage_err(const char *usage)
{
	fprintf(stderr, "sptctl: usage: %s\n", usage);
	return SPTCTL_USAGE;
}

static int sptctl_target_add(struct sptctl *c, int argc, char **argv)
{
	struct spt_ctl_config_change ch = { .op = SPT_CTL_TARGET_ADD };

	if (argc != 1)
		return sptctl_usage_err("target add IQN");
	if (sptctl_field(ch.target, sizeof(ch.target), argv[0], "the target name") < 0)
		return SPTCTL_USAGE;
	return sptctl_change(c, &ch, "target added");
}

static int sptctl_target_remove(struct sptctl *c, int argc, char **argv)
{
	struct spt_ctl_config_change ch = { .op = SPT_CTL_TARGET_REMOVE };

	if (argc != 1)
		return sptctl_usage_err("target remove IQN");
	if (sptctl_field(ch.target, sizeof(ch.target), argv[0], "the target name") < 0)
		return SPTCTL_USAGE;
	return sptctl_change(c, &ch, "target removed");
}

static int sptctl_lun_add(struct sptctl *c, int argc, char **argv)
{
	struct spt_ctl_config_change ch = { .op = SPT_CTL_LUN_ADD };

	if (argc != 3)
		return sptctl_usage_err("lun add TARGET LUN SPEC   (SPEC as sptd --lun: PATH[,size=..], ram:SIZE, provider:NAME)");
	if (sptctl_field(ch.target, sizeof(ch.target), argv[0], "the target name") < 0 ||
	    sptctl_lun_number(argv[1], &ch) < 0)
		return SPTCTL_USAGE;
	if (argv[2][0] != '/' && strncmp(argv[2], "ram:", 4) && strncmp(argv[2], "provider:", 9)) {
		fprintf(stderr, "sptctl: lun add: give an absolute path (sptd's working directory is not ours)\n");
		return SPTCTL_USAGE;
	}
	if (sptctl_field(ch.arg, sizeof(ch.arg), argv[2], "the LUN spec") < 0)
		return SPTCTL_USAGE;
	return sptctl_change(c, &ch, "LUN added");
}

static int sptctl_lun_remove(struct sptctl *c, int argc, char **argv)
{
	struct spt_ctl_config_change ch = { .op = SPT_CTL_LUN_REMOVE };

	if (argc == 3 && !strcmp(argv[2], "--force")) {
		ch.flags = SPT_CTL_CONFIG_FORCE;
		argc--;
	}
	if (argc != 2)
		return sptctl_usage_err("lun remove TARGET LUN [--force]");
	if (sptctl_field(ch.target, sizeof(ch.target), argv[0], "the target name") < 0 ||
	    sptctl_lun_number(argv[1], &ch) < 0)
		return SPTCTL_USAGE;
	return sptctl_change(c, &ch, "LUN removed");
}

static int sptctl_lun_resize(struct sptctl *c, int argc, char **argv)
{
	struct spt_ctl_config_change ch = { .op = SPT_CTL_LUN_RESIZE };

	if (argc != 3)
		return sptctl_usage_err("lun resize TARGET LUN SIZE   (bytes, or with K/M/G/T)");
	if (sptctl_field(ch.target, sizeof(ch.target), argv[0], "the target name") < 0 ||
	    sptctl_lun_number(argv[1], &ch) < 0)
		return SPTCTL_USAGE;
	uint64_t bytes;

	if (sptctl_parse_size(argv[2], &bytes) < 0) {
		fprintf(stderr, "sptctl: '%s' is not a size (bytes, or with K/M/G/T)\n", argv[2]);
		return SPTCTL_USAGE;
	}
	ch.size_bytes = bytes;
	return sptctl_change(c, &ch, "LUN resized");
}

static int sptctl_acl(struct sptctl *c, int argc, char **argv, uint32_t op)
{
	struct spt_ctl_config_change ch = { .op = op };

	if (argc != 2)
		return sptctl_usage_err(op == SPT_CTL_ACL_ADD ? "acl add TARGET INITIATOR" :
					"acl remove TARGET INITIATOR");
	if (sptctl_field(ch.target, sizeof(ch.target), argv[0], "the target name") < 0 ||
	    sptctl_field(ch.arg, sizeof(ch.arg), argv[1], "the initiator name") < 0)
		return SPTCTL_USAGE;
	return sptctl_change(c, &ch, op == SPT_CTL_ACL_ADD ? "initiator allowed" :
			     "initiator removed from the ACL (its sessions are stopped)");
}

static int sptctl_acl_add(struct sptctl *c, int argc, char **argv)
{
	return sptctl_acl(c, argc, argv, SPT_CTL_ACL_ADD);
}

static int sptctl_acl_remove(struct sptctl *c, int argc, char **argv)
{
	return sptctl_acl(c, argc, argv, SPT_CTL_ACL_REMOVE);
}

static int sptctl_portal(struct sptctl *c, int argc, char **argv, uint32_t op)
{
	struct spt_ctl_config_change ch = { .op = op };

	if (argc != 1)
		return sptctl_usage_err(op == SPT_CTL_PORTAL_ADD ? "portal add ADDR:PORT" :
					"portal remove ADDR:PORT");
	if (sptctl_field(ch.arg, sizeof(ch.arg), argv[0], "the portal") < 0)
		return SPTCTL_USAGE;
	return sptctl_change(c, &ch, op == SPT_CTL_PORTAL_ADD ? "portal added" : "portal removed");
}

static int sptctl_portal_add(struct sptctl *c, int argc, char **argv)
{
	return sptctl_portal(c, argc, argv, SPT_CTL_PORTAL_ADD);
}

static int sptctl_portal_remove(struct sptctl *c, int argc, char **argv)
{
	return sptctl_portal(c, argc, argv, SPT_CTL_PORTAL_REMOVE);
}

/* ---- alua (issue 5): target portal groups and their ALUA states ---- */

/* SPC-4 5.16.2.4 states by their code (enum spt_alua_state). */
static const char *const sptctl_alua_states[] = {
	"active-optimized", "active-non-optimized", "standby", "unavailable",
};
#define SPTCTL_ALUA_NSTATES (sizeof(sptctl_alua_states) / sizeof(sptctl_alua_states[0]))

static const char *sptctl_alua_state_name(uint8_t state)
{
	return state < SPTCTL_ALUA_NSTATES ? sptctl_alua_states[state] : "unknown";
}

static int sptctl_alua_list(struct sptctl *c, int argc, char **argv)
{
	struct ctl_rx rx;
	bool json;
	int status;
	size_t n;

	if (sptctl_list_args("alua list", argc, argv, &json) < 0)
		return SPTCTL_USAGE;
	if (sptctl_connect(c, c->timeout_s ? c->timeout_s : SPTCTL_LIST_TIMEOUT_S) < 0)
		return SPTCTL_UNREACHABLE;
	ctl_rx_init(&rx, SPT_CTL_RESPONSE_MAX);
	status = sptctl_request(c, SPT_CC_ALUA_LIST, NULL, 0, &rx);
	if (status != SPTCTL_OK)
		goto out;
	if (rx.h.length % sizeof(struct spt_ctl_alua_group)) {
		status = sptctl_malformed("ALUA_LIST response is not a whole number of groups");
		goto out;
	}
	n = rx.h.length / sizeof(struct spt_ctl_alua_group);
	if (json)
		printf("[");
	else
		printf("%-5s  %-20s  %s\n", "TPG", "STATE", "PORTALS");
	for (size_t i = 0; i < n; i++) {
		struct spt_ctl_alua_group g;

		memcpy(&g, rx.payload + i * sizeof(g), sizeof(g));
		g.portals[sizeof(g.portals) - 1] = '\0';
		if (json) {
			printf("%s{\"tpgt\": %u, \"state\": ", i ? ", " : "", le16toh(g.tpgt));
			sptctl_json_string(sptctl_alua_state_name(g.state));
			printf(", \"portal_count\": %u, \"portals\": ", le32toh(g.portal_count));
			sptctl_json_string(g.portals);
			printf("}");
		} else {
			printf("%-5u  %-20s  %s\n", le16toh(g.tpgt), sptctl_alua_state_name(g.state),
			       g.portals);
		}
	}
	if (json)
		printf("]\n");
	status = sptctl_flush(SPTCTL_OK);
out:
	ctl_rx_reset(&rx);
	return status;
}

static int sptctl_alua_set(struct sptctl *c, int argc, char **argv)
{
	struct spt_ctl_alua_group g;
	struct ctl_rx rx;
	uint32_t tpgt;
	size_t state;
	int status;

	if (argc != 2)
		return sptctl_usage_err("alua set TPG active-optimized|active-non-optimized|standby|unavailable");
	/* RFC 7143 13.9: a 16-bit tag; 0 is not a relative port identifier (SPC-4 7.8.6.7) */
	if (sptctl_parse_u32(argv[0], 65535, &tpgt) < 0 || tpgt == 0) {
		fprintf(stderr, "sptctl: alua set: bad target portal group '%s' (1-65535)\n", argv[0]);
		return SPTCTL_USAGE;
	}
	for (state = 0; state < SPTCTL_ALUA_NSTATES && strcmp(argv[1], sptctl_alua_states[state]); state++)
		;
	if (state == SPTCTL_ALUA_NSTATES) {
		fprintf(stderr, "sptctl: alua set: unknown state '%s'\n", argv[1]);
		return SPTCTL_USAGE;
	}
	memset(&g, 0, sizeof(g));
	g.tpgt = htole16((uint16_t)tpgt);
	g.state = (uint8_t)state;
	if (sptctl_connect(c, c->timeout_s ? c->timeout_s : SPTCTL_LIST_TIMEOUT_S) < 0)
		return SPTCTL_UNREACHABLE;
	ctl_rx_init(&rx, SPT_CTL_RESPONSE_MAX);
	status = sptctl_request(c, SPT_CC_ALUA_SET, &g, sizeof(g), &rx);
	if (status == SPTCTL_OK)
		printf("target portal group %u: %s\n", tpgt, sptctl_alua_states[state]);
	ctl_rx_reset(&rx);
	return status;
}

static int sptctl_chap_set(struct sptctl *c, int argc, char **argv)
{
	struct spt_ctl_config_change ch = { .op = SPT_CTL_CHAP_SET };
	const char *usage = "chap set normal|discovery|mutual USER SECRET | chap set KIND none";
	int rc;

	if (argc < 2 || argc > 3 || (argc == 2 && strcmp(argv[1], "none")) ||
	    (argc == 3 && (strchr(argv[1], '\n') || strchr(argv[2], '\n'))))
		return sptctl_usage_err(usage);
	if (!strcmp(argv[0], "normal"))
		ch.chap_kind = SPT_CTL_CHAP_NORMAL;
	else if (!strcmp(argv[0], "discovery"))
		ch.chap_kind = SPT_CTL_CHAP_DISCOVERY;
	else if (!strcmp(argv[0], "mutual"))
		ch.chap_kind = SPT_CTL_CHAP_MUTUAL;
	else
		return sptctl_usage_err(usage);
	if (argc == 3) {
		/* user and secret apart: a user name may hold ':' (an IQN) */
		if (strlen(argv[1]) + strlen(argv[2]) + 2 > sizeof(ch.arg)) {
			fprintf(stderr, "sptctl: chap set: credentials too long\n");
			return SPTCTL_USAGE;
		}
		size_t ulen = strlen(argv[1]);

		memcpy(ch.arg, argv[1], ulen);
		ch.arg[ulen] = '\n';
		memcpy(ch.arg + ulen + 1, argv[2], strlen(argv[2]) + 1);
		/* the secret does not stay on the command line ps shows */
		memset(argv[2], 'x', strlen(argv[2]));
	}
	rc = sptctl_change(c, &ch, "CHAP credentials set");
	explicit_bzero(ch.arg, sizeof(ch.arg));
	return rc;
}

/* ---- commands ---- */

struct sptctl_command {
	const char *noun, *verb;
	int (*run)(struct sptctl *c, int argc, char **argv);
};

static const struct sptctl_command sptctl_commands[] = {
	{ "session", "list", sptctl_session_list },
	{ "session", "stop", sptctl_session_stop },
	{ "target", "list", sptctl_target_list },
	{ "lun", "list", sptctl_lun_list },
	{ "stats", NULL, sptctl_stats },	/* a noun alone */
	{ "config", "save", sptctl_config_save },
	{ "target", "add", sptctl_target_add },
	{ "target", "remove", sptctl_target_remove },
	{ "lun", "add", sptctl_lun_add },
	{ "lun", "remove", sptctl_lun_remove },
	{ "lun", "resize", sptctl_lun_resize },
	{ "acl", "add", sptctl_acl_add },
	{ "acl", "remove", sptctl_acl_remove },
	{ "portal", "add", sptctl_portal_add },
	{ "portal", "remove", sptctl_portal_remove },
	{ "chap", "set", sptctl_chap_set },
	{ "alua", "list", sptctl_alua_list },
	{ "alua", "set", sptctl_alua_set },
};
#define SPTCTL_NCOMMANDS (sizeof(sptctl_commands) / sizeof(sptctl_commands[0]))

/* The command argv[0] argv[1] names, or NULL after saying what exists. */
static const struct sptctl_command *sptctl_find_command(int argc, char **argv)
{
	char verbs[128] = "";
	bool noun_known = false;

	for (size_t i = 0; i < SPTCTL_NCOMMANDS; i++) {
		const struct sptctl_command *k = &sptctl_commands[i];
		size_t o = strlen(verbs);

		if (strcmp(argv[0], k->noun) != 0)
			continue;
		if (!k->verb)
			return k;
		noun_known = true;
		if (argc >= 2 && strcmp(argv[1], k->verb) == 0)
			return k;
		snprintf(verbs + o, sizeof(verbs) - o, "%s%s", o ? " or " : "", k->verb);
	}
	if (!noun_known) {
		fprintf(stderr, "sptctl: unknown command '%s%s%s'\n", argv[0], argc > 1 ? " " : "",
			argc > 1 ? argv[1] : "");
		sptctl_usage(stderr);
	} else if (argc < 2) {
		fprintf(stderr, "sptctl: '%s' needs a subcommand (%s)\n", argv[0], verbs);
	} else {
		fprintf(stderr, "sptctl: unknown command '%s %s' (%s)\n", argv[0], argv[1], verbs);
	}
	return NULL;
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
	const struct sptctl_command *cmd;
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
	if (argc == 0) {
		fprintf(stderr, "sptctl: no command given\n");
		sptctl_usage(stderr);
		return SPTCTL_USAGE;
	}
	cmd = sptctl_find_command(argc, argv);
	if (!cmd)
		return SPTCTL_USAGE;
	status = cmd->verb ? cmd->run(&c, argc - 2, argv + 2) : cmd->run(&c, argc - 1, argv + 1);
	if (c.fd >= 0)
		close(c.fd);
	return status;
}
