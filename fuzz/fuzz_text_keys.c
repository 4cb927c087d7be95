/*
 * fuzz_text_keys: bytes into the text-key parser and the login and text
 * negotiation (src/iscsi/param.c), the way login.c and session.c call them.
 *
 * Input layout:
 *   byte 0   options
 *            bit 0  non-leading connection (a login with a TSIH: LO keys are errors)
 *            bit 1  target limits of a strict target: InitialR2T=Yes and
 *                   ImmediateData=No preferred, no CRC32C, MaxRecvDataSegmentLength
 *                   4096, small bursts, a TargetAlias; else the defaults
 *            bit 2  the target allows ErrorRecoveryLevel up to 2
 *   then requests separated by the byte 0xff (FZ_SEP); each request is
 *   byte 0   request flags
 *            bits 0-1  CSG of the request (0 security, 1 operational; 2 and 3
 *                      are answered as the negotiation code's own stage check says)
 *            bit 2     T bit: after the keys, the login moves on; with bit 3
 *                      also set, to full feature phase (iscsi_negotiate_finish)
 *            bit 3     NSG = full feature phase when T is set
 *   the rest  the text of the request, "key=value\0key=value\0" as on the wire
 *
 * Requests are answered in order like one login, until one fails (a login
 * status) or reaches full feature phase. Each request's text is also given,
 * on its own, to iscsi_negotiate_text as a full feature phase Text request
 * (session.c: a copy of the session's parameters, leading).
 *
 * After every call the harness checks what the RFC guarantees the
 * initiator: the response text is well formed ("key=value\0", a key of 1 to
 * 63 bytes, a value), it fits its buffer, and, after every request that did
 * not fail the login, every negotiated parameter is
 * within the range of its key (RFC 7143 13), FirstBurstLength not above
 * MaxBurstLength, digests only when the target offers CRC32C, an
 * ErrorRecoveryLevel within the target's. A violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi/param.h"
#include "util/log.h"

#define FZ_SEP 0xff
#define FZ_MAX_REQUESTS 16
#define FZ_OUT_CAP 8192		/* login.c: the response text of one Login PDU */
#define FZ_TEXT_OUT_CAP 65536	/* session.c: ISCSI_SENDTARGETS_MAX */

#define FZ_OPT_NON_LEADING 0x01
#define FZ_OPT_STRICT 0x02
#define FZ_OPT_ERL2 0x04

#define FZ_REQ_CSG(f) ((f) & 3)
#define FZ_REQ_TRANSIT 0x04
#define FZ_REQ_FULL 0x08

/* RFC 7143 section 13 ranges */
#define FZ_LENGTH_MIN 512u
#define FZ_LENGTH_MAX 16777215u
#define FZ_TIME_MAX 3600u
#define FZ_COUNT_MAX 65535u

static void fz_fail(const char *what)
{
	fprintf(stderr, "fuzz_text_keys: %s\n", what);
	abort();
}

/* The response text: "key=value\0" pairs, nothing else, within its buffer. */
static void fz_check_out(const struct iscsi_text_out *out)
{
	if (out->len > out->cap)
		fz_fail("response text longer than its buffer");
	for (size_t pos = 0; pos < out->len;) {
		const char *pair = out->buf + pos;
		const char *nul = memchr(pair, '\0', out->len - pos);
		const char *eq;

		if (!nul)
			fz_fail("response pair without its terminating NUL");
		eq = memchr(pair, '=', (size_t)(nul - pair));
		if (!eq)
			fz_fail("response pair without '='");
		/* RFC 7143 6.1: a key name of 1 to 63 bytes, and a value */
		if (eq == pair || eq - pair > ISCSI_KEY_NAME_MAX)
			fz_fail("response key name empty or longer than 63 bytes");
		if (eq + 1 == nul)
			fz_fail("response key with an empty value");
		pos += (size_t)(nul - pair) + 1;
	}
}

static void fz_check_string(const char *s, size_t size, const char *what)
{
	if (strnlen(s, size) >= size)
		fz_fail(what);
}

static void fz_check_params(const struct iscsi_target_limits *lim, const struct iscsi_session_params *sp,
			    const struct iscsi_conn_params *cp)
{
	fz_check_string(sp->initiator_name, sizeof(sp->initiator_name), "InitiatorName not terminated");
	fz_check_string(sp->initiator_alias, sizeof(sp->initiator_alias), "InitiatorAlias not terminated");
	fz_check_string(sp->target_name, sizeof(sp->target_name), "TargetName not terminated");
	if (sp->session_type != ISCSI_SESSION_NORMAL && sp->session_type != ISCSI_SESSION_DISCOVERY)
		fz_fail("SessionType neither Normal nor Discovery");
	/* RFC 7143 13.2, 13.13-13.17, 13.20 */
	if (sp->max_connections < 1 || sp->max_connections > FZ_COUNT_MAX)
		fz_fail("MaxConnections out of 1..65535");
	if (sp->max_burst_length < FZ_LENGTH_MIN || sp->max_burst_length > FZ_LENGTH_MAX)
		fz_fail("MaxBurstLength out of 512..2^24-1");
	if (sp->first_burst_length < FZ_LENGTH_MIN || sp->first_burst_length > FZ_LENGTH_MAX)
		fz_fail("FirstBurstLength out of 512..2^24-1");
	/* RFC 7143 13.14: FirstBurstLength MUST NOT exceed MaxBurstLength */
	if (sp->first_burst_length > sp->max_burst_length)
		fz_fail("FirstBurstLength above MaxBurstLength");
	if (sp->default_time2wait > FZ_TIME_MAX || sp->default_time2retain > FZ_TIME_MAX)
		fz_fail("DefaultTime2Wait/Retain above 3600");
	if (sp->max_outstanding_r2t < 1 || sp->max_outstanding_r2t > FZ_COUNT_MAX)
		fz_fail("MaxOutstandingR2T out of 1..65535");
	if (sp->error_recovery_level > lim->max_error_recovery_level)
		fz_fail("ErrorRecoveryLevel above what the target allows");
	/* RFC 7143 13.12 */
	if (cp->max_send_dsl < FZ_LENGTH_MIN || cp->max_send_dsl > FZ_LENGTH_MAX)
		fz_fail("the initiator's MaxRecvDataSegmentLength out of 512..2^24-1");
	if (cp->max_recv_dsl < FZ_LENGTH_MIN || cp->max_recv_dsl > FZ_LENGTH_MAX)
		fz_fail("our MaxRecvDataSegmentLength out of 512..2^24-1");
	if ((cp->header_digest || cp->data_digest) && !lim->allow_crc32c)
		fz_fail("a digest in use that the target does not offer");
}

static void fz_limits(struct iscsi_target_limits *lim, uint8_t opts)
{
	iscsi_limits_default(lim);
	if (opts & FZ_OPT_STRICT) {
		lim->max_recv_dsl = 4096;
		lim->initial_r2t = true;
		lim->immediate_data = false;
		lim->max_burst_length = 16384;
		lim->first_burst_length = 8192;
		lim->max_outstanding_r2t = 1;
		lim->allow_crc32c = false;
		lim->target_alias = "fuzz target";
	}
	if (opts & FZ_OPT_ERL2)
		lim->max_error_recovery_level = 2;
}

/* Parses one request's text from an exact-size copy (ASan sees any overread). */
static int fz_parse(const uint8_t *text, size_t len, char **copy, struct iscsi_kv *kv)
{
	*copy = malloc(len ? len : 1);
	if (!*copy)
		abort();
	if (len)
		memcpy(*copy, text, len);
	return iscsi_text_parse(*copy, len, kv, ISCSI_TEXT_MAX_KEYS);
}

/* session.c iscsi_text_req: the keys of a full feature phase Text request. */
static void fz_text_request(const struct iscsi_target_limits *lim, const struct iscsi_session_params *sess,
			    const uint8_t *text, size_t len)
{
	static struct iscsi_kv kv[ISCSI_TEXT_MAX_KEYS];
	static char outbuf[FZ_TEXT_OUT_CAP];
	struct iscsi_text_out out = { .buf = outbuf, .cap = sizeof(outbuf) };
	struct iscsi_session_params sp = *sess;
	struct iscsi_conn_params cp;
	struct iscsi_negotiation neg;
	char *copy;
	int n = fz_parse(text, len, &copy, kv);

	if (n >= 0) {
		iscsi_conn_params_default(&cp);
		cp.max_recv_dsl = lim->max_recv_dsl;
		iscsi_negotiation_init(&neg, lim, &sp, &cp, true);
		neg.stage = ISCSI_STAGE_FULL_FEATURE;
		iscsi_negotiate_text(&neg, kv, n, &out);
		fz_check_out(&out);
		fz_check_params(lim, &sp, &cp);
	}
	free(copy);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *lvl = getenv("FUZZ_LOG");

	if (!lvl || log_parse_level(lvl, &log_threshold) < 0)
		log_threshold = LOG_ERR;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct iscsi_kv kv[ISCSI_TEXT_MAX_KEYS];
	static char outbuf[FZ_OUT_CAP];
	struct iscsi_target_limits lim;
	struct iscsi_session_params sp, settled;
	struct iscsi_conn_params cp;
	struct iscsi_negotiation neg;
	uint8_t opts;
	size_t pos = 1;
	bool login_over = false;

	if (size < 1)
		return 0;
	opts = data[0];
	fz_limits(&lim, opts);
	/* login.c: defaults, then the negotiation of this connection */
	iscsi_session_params_default(&sp);
	iscsi_conn_params_default(&cp);
	iscsi_negotiation_init(&neg, &lim, &sp, &cp, !(opts & FZ_OPT_NON_LEADING));
	/* what a session would start with: the values after the last good request */
	settled = sp;

	for (int req = 0; req < FZ_MAX_REQUESTS && pos < size; req++) {
		const uint8_t *end = memchr(data + pos, FZ_SEP, size - pos);
		size_t rlen = end ? (size_t)(end - (data + pos)) : size - pos;
		const uint8_t *r = data + pos;

		pos += rlen + 1;
		if (rlen == 0)
			continue;
		uint8_t flags = r[0];
		const uint8_t *text = r + 1;
		size_t tlen = rlen - 1;

		fz_text_request(&lim, &settled, text, tlen);
		if (login_over)
			continue;

		struct iscsi_text_out out = { .buf = outbuf, .cap = sizeof(outbuf) };
		char *copy;
		int n = fz_parse(text, tlen, &copy, kv);

		if (n < 0) {
			/* login.c: malformed text fails the login */
			free(copy);
			login_over = true;
			continue;
		}
		neg.stage = (enum iscsi_login_stage)FZ_REQ_CSG(flags);
		int status = iscsi_negotiate_login(&neg, kv, n, &out);

		fz_check_out(&out);
		if (status != ISCSI_LOGIN_OK) {
			/* the values a failed request leaves behind end with the login */
			/* RFC 7143 11.13.5: a status class of 2 (initiator) or 3 (target) */
			if ((status >> 8) != 2 && (status >> 8) != 3)
				fz_fail("a login status neither initiator nor target error");
			login_over = true;
			free(copy);
			continue;
		}
		fz_check_params(&lim, &sp, &cp);
		if ((flags & FZ_REQ_TRANSIT) && (flags & FZ_REQ_FULL)) {
			iscsi_negotiate_finish(&neg, &out);
			fz_check_out(&out);
			fz_check_params(&lim, &sp, &cp);
			login_over = true;
		}
		settled = sp;
		free(copy);
	}
	return 0;
}
