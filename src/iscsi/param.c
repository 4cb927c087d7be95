/*
 * iSCSI text keys and login/text negotiation.
 *
 * RFC 7143 section 6 gives the text format and the negotiation rules,
 * section 13 (with RFC 7144 for iSCSIProtocolLevel) the keys. Each key is
 * one row of param_defs below, in the RFC's own words (Use, Senders,
 * result function, range, "Irrelevant when"); the code after the table
 * only adds what a row cannot say.
 *
 * A login request is answered in two steps: every key is resolved first
 * (SessionType and AuthMethod before the others, since they decide how the
 * rest is answered), then the answers are written in the order the keys
 * were received. Negotiated keys are answered with the outcome after the
 * whole request, so a rule spanning two keys of one request (FirstBurstLength
 * <= MaxBurstLength) shows in the answer whatever their order.
 */
#include "iscsi/param.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "util/log.h"

/* RFC 7143 6.1: a simple-value is at most 255 bytes unless its key says otherwise */
#define PARAM_SIMPLE_VALUE_MAX 255
/* RFC 7143 13.12: MaxRecvDataSegmentLength until declared (both directions) */
#define PARAM_DSL_DEFAULT 8192u
#define PARAM_LENGTH_MIN 512u
#define PARAM_LENGTH_MAX 16777215u	/* 2**24 - 1 */
#define PARAM_TIME_MAX 3600u
#define PARAM_COUNT_MAX 65535u
#define PARAM_ERL_MAX 2u
#define PARAM_PROTOCOL_LEVEL_MAX 31u
/* RFC 7143 13.24: level 1 is RFC 7143 itself; level 2 would promise the RFC 7144 features */
#define PARAM_PROTOCOL_LEVEL_OURS 1u
/* our preference for DataPDUInOrder/DataSequenceInOrder (OR): the data path expects order */
#define PARAM_DATA_IN_ORDER_OURS true
#define PARAM_NUMBER_TEXT 16		/* "16777215" and every other answer fit */

enum param_id {
	P_HEADER_DIGEST,
	P_DATA_DIGEST,
	P_MAX_CONNECTIONS,
	P_SEND_TARGETS,
	P_TARGET_NAME,
	P_INITIATOR_NAME,
	P_TARGET_ALIAS,
	P_INITIATOR_ALIAS,
	P_TARGET_ADDRESS,
	P_TARGET_PORTAL_GROUP_TAG,
	P_INITIAL_R2T,
	P_IMMEDIATE_DATA,
	P_MAX_RECV_DSL,
	P_MAX_BURST_LENGTH,
	P_FIRST_BURST_LENGTH,
	P_DEFAULT_TIME2WAIT,
	P_DEFAULT_TIME2RETAIN,
	P_MAX_OUTSTANDING_R2T,
	P_DATA_PDU_IN_ORDER,
	P_DATA_SEQUENCE_IN_ORDER,
	P_ERROR_RECOVERY_LEVEL,
	P_SESSION_TYPE,
	P_TASK_REPORTING,
	P_PROTOCOL_LEVEL,
	P_IFMARKER,
	P_OFMARKER,
	P_IFMARKINT,
	P_OFMARKINT,
	P_NODE_ARCHITECTURE,
	P_AUTH_METHOD,
	P_COUNT
};

/* neg->seen: one bit per key above, and two of our own past them */
_Static_assert(P_COUNT <= 60, "struct iscsi_negotiation.seen has a bit per key");
#define SEEN_KEY(id) (UINT64_C(1) << (id))
#define SEEN_AUTH_NONE (UINT64_C(1) << 60)	/* AuthMethod=None answered: nothing to authenticate */
#define SEEN_ALIAS_SENT (UINT64_C(1) << 61)	/* our TargetAlias declared */

enum param_use {
	USE_LO,		/* leading connection, login only */
	USE_IO,		/* login only */
	USE_ALL,	/* login and full feature phase */
	USE_FFPO,	/* full feature phase only */
	USE_SECURITY,	/* security negotiation stage only (RFC 7143 12) */
};

enum param_rule {
	RULE_LIST,	/* 6.2.1: the first offered value we support */
	RULE_MIN,	/* numerical, result function Minimum */
	RULE_MAX,	/* numerical, result function Maximum */
	RULE_AND,	/* Boolean, result function AND */
	RULE_OR,	/* Boolean, result function OR */
	RULE_DECLARE,	/* declarative: stored, not answered */
	RULE_REJECT,	/* 13.25: obsolete marker keys */
	RULE_CALLER,	/* SendTargets: the caller answers it */
};

/* RFC 7143 6.3: a parameter is declared or negotiated once per login, unless its key allows more */
enum param_redeclare {
	REDECLARE_NEVER,
	REDECLARE_SAME,	/* identity keys: a resend with the same value (libiscsi does) is harmless */
	REDECLARE_ANY,	/* a later declaration replaces the earlier one */
};

struct param_def {
	const char *name;
	const char *clause;		/* RFC 7143 section, for logs */
	enum param_use use;
	enum param_rule rule;
	bool any_stage;			/* may appear in the security stage */
	bool target_only;		/* Senders: Target */
	bool irrelevant_discovery;	/* Irrelevant when: SessionType=Discovery */
	enum param_redeclare redeclare;
	uint32_t min;			/* numerical range */
	uint32_t max;
};

/* RFC 7143 section 13 (and 12.1 for AuthMethod), one row per key. */
static const struct param_def param_defs[P_COUNT] = {
	[P_HEADER_DIGEST] = { .name = "HeaderDigest", .clause = "13.1",
		.use = USE_IO, .rule = RULE_LIST },
	[P_DATA_DIGEST] = { .name = "DataDigest", .clause = "13.1",
		.use = USE_IO, .rule = RULE_LIST },
	[P_MAX_CONNECTIONS] = { .name = "MaxConnections", .clause = "13.2",
		.use = USE_LO, .rule = RULE_MIN, .irrelevant_discovery = true,
		.min = 1, .max = PARAM_COUNT_MAX },
	[P_SEND_TARGETS] = { .name = "SendTargets", .clause = "13.3",
		.use = USE_FFPO, .rule = RULE_CALLER },
	[P_TARGET_NAME] = { .name = "TargetName", .clause = "13.4",
		.use = USE_IO, .rule = RULE_DECLARE, .any_stage = true,
		.redeclare = REDECLARE_SAME },
	[P_INITIATOR_NAME] = { .name = "InitiatorName", .clause = "13.5",
		.use = USE_IO, .rule = RULE_DECLARE, .any_stage = true,
		.redeclare = REDECLARE_SAME },
	[P_TARGET_ALIAS] = { .name = "TargetAlias", .clause = "13.6",
		.use = USE_ALL, .rule = RULE_DECLARE, .any_stage = true, .target_only = true },
	[P_INITIATOR_ALIAS] = { .name = "InitiatorAlias", .clause = "13.7",
		.use = USE_ALL, .rule = RULE_DECLARE, .any_stage = true,
		.redeclare = REDECLARE_SAME },
	[P_TARGET_ADDRESS] = { .name = "TargetAddress", .clause = "13.8",
		.use = USE_ALL, .rule = RULE_DECLARE, .any_stage = true, .target_only = true },
	[P_TARGET_PORTAL_GROUP_TAG] = { .name = "TargetPortalGroupTag", .clause = "13.9",
		.use = USE_IO, .rule = RULE_DECLARE, .any_stage = true, .target_only = true },
	[P_INITIAL_R2T] = { .name = "InitialR2T", .clause = "13.10",
		.use = USE_LO, .rule = RULE_OR, .irrelevant_discovery = true },
	[P_IMMEDIATE_DATA] = { .name = "ImmediateData", .clause = "13.11",
		.use = USE_LO, .rule = RULE_AND, .irrelevant_discovery = true },
	[P_MAX_RECV_DSL] = { .name = "MaxRecvDataSegmentLength", .clause = "13.12",
		.use = USE_ALL, .rule = RULE_DECLARE, .redeclare = REDECLARE_ANY,
		.min = PARAM_LENGTH_MIN, .max = PARAM_LENGTH_MAX },
	[P_MAX_BURST_LENGTH] = { .name = "MaxBurstLength", .clause = "13.13",
		.use = USE_LO, .rule = RULE_MIN, .irrelevant_discovery = true,
		.min = PARAM_LENGTH_MIN, .max = PARAM_LENGTH_MAX },
	[P_FIRST_BURST_LENGTH] = { .name = "FirstBurstLength", .clause = "13.14",
		.use = USE_LO, .rule = RULE_MIN, .irrelevant_discovery = true,
		.min = PARAM_LENGTH_MIN, .max = PARAM_LENGTH_MAX },
	[P_DEFAULT_TIME2WAIT] = { .name = "DefaultTime2Wait", .clause = "13.15",
		.use = USE_LO, .rule = RULE_MAX, .min = 0, .max = PARAM_TIME_MAX },
	[P_DEFAULT_TIME2RETAIN] = { .name = "DefaultTime2Retain", .clause = "13.16",
		.use = USE_LO, .rule = RULE_MIN, .min = 0, .max = PARAM_TIME_MAX },
	[P_MAX_OUTSTANDING_R2T] = { .name = "MaxOutstandingR2T", .clause = "13.17",
		.use = USE_LO, .rule = RULE_MIN, .irrelevant_discovery = true,
		.min = 1, .max = PARAM_COUNT_MAX },
	[P_DATA_PDU_IN_ORDER] = { .name = "DataPDUInOrder", .clause = "13.18",
		.use = USE_LO, .rule = RULE_OR, .irrelevant_discovery = true },
	[P_DATA_SEQUENCE_IN_ORDER] = { .name = "DataSequenceInOrder", .clause = "13.19",
		.use = USE_LO, .rule = RULE_OR, .irrelevant_discovery = true },
	[P_ERROR_RECOVERY_LEVEL] = { .name = "ErrorRecoveryLevel", .clause = "13.20",
		.use = USE_LO, .rule = RULE_MIN, .min = 0, .max = PARAM_ERL_MAX },
	[P_SESSION_TYPE] = { .name = "SessionType", .clause = "13.21",
		.use = USE_LO, .rule = RULE_DECLARE, .any_stage = true,
		.redeclare = REDECLARE_SAME },
	[P_TASK_REPORTING] = { .name = "TaskReporting", .clause = "13.23",
		.use = USE_LO, .rule = RULE_LIST, .irrelevant_discovery = true },
	[P_PROTOCOL_LEVEL] = { .name = "iSCSIProtocolLevel", .clause = "13.24",
		.use = USE_LO, .rule = RULE_MIN, .irrelevant_discovery = true,
		.min = 0, .max = PARAM_PROTOCOL_LEVEL_MAX },
	[P_IFMARKER] = { .name = "IFMarker", .clause = "13.25",
		.use = USE_IO, .rule = RULE_REJECT },
	[P_OFMARKER] = { .name = "OFMarker", .clause = "13.25",
		.use = USE_IO, .rule = RULE_REJECT },
	[P_IFMARKINT] = { .name = "IFMarkInt", .clause = "13.25",
		.use = USE_IO, .rule = RULE_REJECT },
	[P_OFMARKINT] = { .name = "OFMarkInt", .clause = "13.25",
		.use = USE_IO, .rule = RULE_REJECT },
	[P_NODE_ARCHITECTURE] = { .name = "X#NodeArchitecture", .clause = "13.26",
		.use = USE_LO, .rule = RULE_DECLARE, .redeclare = REDECLARE_ANY },
	[P_AUTH_METHOD] = { .name = "AuthMethod", .clause = "12.1",
		.use = USE_SECURITY, .rule = RULE_LIST },
};

/* What a received key gets in the response. */
enum param_answer {
	ANSWER_NONE,		/* declarative, an answer of the initiator, or the caller's */
	ANSWER_LITERAL,		/* Reject, Irrelevant, NotUnderstood or a list choice */
	ANSWER_OUTCOME,		/* the negotiated value once the whole request is resolved */
	ANSWER_OUR_DSL,		/* our MaxRecvDataSegmentLength, declared in place */
};

struct param_slot {
	enum param_answer answer;
	enum param_id id;
	const char *literal;
};

static const char param_reject[] = "Reject";
static const char param_irrelevant[] = "Irrelevant";
static const char param_not_understood[] = "NotUnderstood";

/* ---- text format (RFC 7143 6.1) ---- */

size_t iscsi_text_count(const char *data, size_t len)
{
	size_t count = 0;
	bool in_item = false;

	for (size_t i = 0; data && i < len; i++) {
		if (data[i] == '\0') {
			in_item = false;
		} else if (!in_item) {
			in_item = true;
			count++;
		}
	}
	return count;
}

int iscsi_text_parse(char *data, size_t len, struct iscsi_kv *kv, int max)
{
	/*
	 * When the final NUL is missing there is one byte too few to end both
	 * the last key and its value in place; the key moves here and stays
	 * valid until the next call on this thread.
	 */
	static _Thread_local char last_key[ISCSI_KEY_NAME_MAX + 1];
	size_t pos = 0;
	int n = 0;
	int rc = -1;

	if (data == NULL && len > 0)
		goto out;
	while (pos < len) {
		char *pair = data + pos;
		char *nul = memchr(pair, '\0', len - pos);
		size_t pair_len = nul ? (size_t)(nul - pair) : len - pos;
		char *eq;
		size_t key_len, value_len;

		/* a stray NUL (padding, a doubled separator) carries no pair */
		if (pair_len == 0) {
			pos++;
			continue;
		}
		/* RFC 7143 6.1: the key name is whatever precedes the first '=' */
		eq = memchr(pair, '=', pair_len);
		if (eq == NULL)
			goto out;
		key_len = (size_t)(eq - pair);
		value_len = pair_len - key_len - 1;
		/* RFC 7143 6.1: key names are 1 to 63 bytes */
		if (key_len == 0 || key_len > ISCSI_KEY_NAME_MAX)
			goto out;
		if (value_len > ISCSI_VALUE_MAX)
			goto out;
		if (n >= max)
			goto out;
		if (nul != NULL) {
			*eq = '\0';
			kv[n].key = pair;
			kv[n].value = eq + 1;
			pos += pair_len + 1;
		} else {
			memcpy(last_key, pair, key_len);
			last_key[key_len] = '\0';
			memmove(pair, eq + 1, value_len);
			pair[value_len] = '\0';
			kv[n].key = last_key;
			kv[n].value = pair;
			pos = len;
		}
		n++;
	}
	rc = n;
out:
	return rc;
}

void iscsi_text_append(struct iscsi_text_out *out, const char *key, const char *value)
{
	size_t key_len = strlen(key);
	size_t value_len = strlen(value);
	size_t need = key_len + 1 + value_len + 1;

	/* after one answer did not fit, none may follow: the text would skip a key */
	if (out->overflow)
		return;
	if (out->buf == NULL || out->len > out->cap || need > out->cap - out->len) {
		out->overflow = true;
		return;
	}
	memcpy(out->buf + out->len, key, key_len);
	out->len += key_len;
	out->buf[out->len++] = '=';
	memcpy(out->buf + out->len, value, value_len);
	out->len += value_len;
	out->buf[out->len++] = '\0';
}

/* ---- defaults ---- */

void iscsi_limits_default(struct iscsi_target_limits *lim)
{
	memset(lim, 0, sizeof(*lim));
	lim->max_recv_dsl = 262144;
	lim->max_connections = 1;
	lim->initial_r2t = false;	/* lets InitialR2T=No through (OR) */
	lim->immediate_data = true;
	lim->max_burst_length = 1048576;
	lim->first_burst_length = 262144;
	lim->default_time2wait = 2;
	/* ErrorRecoveryLevel 0 reassigns no task after a connection loss: nothing to retain */
	lim->default_time2retain = 0;
	lim->max_outstanding_r2t = 8;
	lim->max_error_recovery_level = 0;
	lim->allow_crc32c = true;
	lim->target_alias = NULL;
}

void iscsi_session_params_default(struct iscsi_session_params *sp)
{
	/* RFC 7143 13: the default of every session-wide key */
	memset(sp, 0, sizeof(*sp));
	sp->session_type = ISCSI_SESSION_NORMAL;
	sp->max_connections = 1;
	sp->initial_r2t = true;
	sp->immediate_data = true;
	sp->max_burst_length = 262144;
	sp->first_burst_length = 65536;
	sp->default_time2wait = 2;
	sp->default_time2retain = 20;
	sp->max_outstanding_r2t = 1;
	sp->data_pdu_in_order = true;
	sp->data_sequence_in_order = true;
	sp->error_recovery_level = 0;
	sp->protocol_level = PARAM_PROTOCOL_LEVEL_OURS;
}

void iscsi_conn_params_default(struct iscsi_conn_params *cp)
{
	/* RFC 7143 13.1, 13.12: no digests, 8192-byte data segments both ways */
	memset(cp, 0, sizeof(*cp));
	cp->header_digest = false;
	cp->data_digest = false;
	cp->max_send_dsl = PARAM_DSL_DEFAULT;
	cp->max_recv_dsl = PARAM_DSL_DEFAULT;
}

void iscsi_negotiation_init(struct iscsi_negotiation *neg, const struct iscsi_target_limits *lim,
			    struct iscsi_session_params *sess, struct iscsi_conn_params *conn,
			    bool leading)
{
	memset(neg, 0, sizeof(*neg));
	neg->limits = lim;
	neg->sess = sess;
	neg->conn = conn;
	neg->leading = leading;
	neg->stage = ISCSI_STAGE_SECURITY;
}

/* ---- value syntax (RFC 7143 6.1) ---- */

static int param_lookup(const char *key)
{
	for (int id = 0; id < P_COUNT; id++) {
		if (strcmp(key, param_defs[id].name) == 0)
			return id;
	}
	return -1;
}

/* RFC 7143 6.2: Reject, Irrelevant and NotUnderstood are answers, never offers */
static bool param_is_answer_value(const char *value)
{
	return strcmp(value, param_reject) == 0 || strcmp(value, param_irrelevant) == 0 ||
	       strcmp(value, param_not_understood) == 0;
}

/* RFC 7143 12.1.3: the CHAP keys, which the caller's authentication code answers */
static bool param_is_chap_key(const char *key)
{
	static const char *const chap_keys[] = { "CHAP_A", "CHAP_I", "CHAP_C", "CHAP_N", "CHAP_R" };

	for (size_t i = 0; i < sizeof(chap_keys) / sizeof(chap_keys[0]); i++) {
		if (strcmp(key, chap_keys[i]) == 0)
			return true;
	}
	return false;
}

static bool param_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int param_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * RFC 7143 6.1: a numerical-value is a decimal-constant (the digit 0, or
 * digits not starting with 0) or a hex-constant ("0x"/"0X" and hex digits),
 * always below 2**64.
 */
static bool param_parse_number(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	bool ok = false;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		if (*s == '\0')
			goto out;
		for (; *s != '\0'; s++) {
			int d = param_hex_value(*s);

			if (d < 0 || v > (UINT64_MAX >> 4))
				goto out;
			v = (v << 4) | (uint64_t)d;
		}
	} else {
		if (*s == '\0' || (s[0] == '0' && s[1] != '\0'))
			goto out;
		for (; *s != '\0'; s++) {
			uint64_t d;

			if (!param_is_digit(*s))
				goto out;
			d = (uint64_t)(*s - '0');
			if (v > (UINT64_MAX - d) / 10)
				goto out;
			v = v * 10 + d;
		}
	}
	*out = v;
	ok = true;
out:
	return ok;
}

/* RFC 7143 6.1: boolean-value is exactly "Yes" or "No" */
static bool param_parse_bool(const char *s, bool *out)
{
	if (strcmp(s, "Yes") == 0) {
		*out = true;
		return true;
	}
	if (strcmp(s, "No") == 0) {
		*out = false;
		return true;
	}
	return false;
}

static bool param_prefix_nocase(const char *s, const char *prefix)
{
	for (; *prefix != '\0'; s++, prefix++) {
		char c = *s;

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != *prefix)
			return false;
	}
	return true;
}

static bool param_all_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (param_hex_value(s[i]) < 0)
			return false;
	}
	return true;
}

/*
 * RFC 7143 4.2.7.2 and RFC 3722: after stringprep an iSCSI name holds only
 * '-', '.', ':', lower-case letters, digits and non-ASCII characters. Upper
 * case is accepted because stringprep folds it (initiators configured with
 * capitals send them as typed).
 */
static bool param_name_char_ok(unsigned char c)
{
	return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == ':';
}

static bool param_iscsi_name_valid(const char *name)
{
	size_t len = strlen(name);
	bool ok = false;

	/* RFC 7143 4.2.7.1: at most 223 bytes */
	if (len == 0 || len > ISCSI_NAME_MAX)
		goto out;
	for (size_t i = 0; i < len; i++) {
		if (!param_name_char_ok((unsigned char)name[i]))
			goto out;
	}
	if (param_prefix_nocase(name, "iqn.")) {
		/* RFC 7143 4.2.7.4: iqn.yyyy-mm.<reversed domain>[:<anything>] */
		const char *p = name + 4;
		unsigned month;

		if (len < 4 + 8 + 1)
			goto out;
		for (int i = 0; i < 4; i++) {
			if (!param_is_digit(p[i]))
				goto out;
		}
		if (p[4] != '-' || !param_is_digit(p[5]) || !param_is_digit(p[6]) || p[7] != '.')
			goto out;
		month = (unsigned)(p[5] - '0') * 10 + (unsigned)(p[6] - '0');
		if (month < 1 || month > 12)
			goto out;
		/* the naming authority follows the date */
		if (p[8] == ':' || p[8] == '.')
			goto out;
		ok = true;
	} else if (param_prefix_nocase(name, "eui.")) {
		/* RFC 7143 4.2.7.5: eui. and an EUI-64 in 16 hex digits */
		ok = len == 4 + 16 && param_all_hex(name + 4, 16);
	} else if (param_prefix_nocase(name, "naa.")) {
		/* RFC 7143 4.2.7.6: naa. and a 64- or 128-bit NAA in hex */
		ok = (len == 4 + 16 || len == 4 + 32) && param_all_hex(name + 4, len - 4);
	}
out:
	return ok;
}

/*
 * RFC 7143 6.2.1: the first value of the initiator's list that we support.
 * Values we do not understand are skipped; NULL when none is left.
 */
static const char *param_list_pick(const char *list, const char *const *ours, size_t n_ours)
{
	const char *p = list;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		for (size_t i = 0; i < n_ours; i++) {
			if (ours[i] != NULL && strlen(ours[i]) == len && strncmp(p, ours[i], len) == 0)
				return ours[i];
		}
		if (comma == NULL)
			return NULL;
		p = comma + 1;
	}
}

static uint32_t param_clamp(uint32_t v, uint32_t lo, uint32_t hi)
{
	return v < lo ? lo : (v > hi ? hi : v);
}

/* ---- where each key lives ---- */

static uint32_t *param_session_number(struct iscsi_session_params *sp, enum param_id id)
{
	switch (id) {
	case P_MAX_CONNECTIONS:
		return &sp->max_connections;
	case P_MAX_BURST_LENGTH:
		return &sp->max_burst_length;
	case P_FIRST_BURST_LENGTH:
		return &sp->first_burst_length;
	case P_DEFAULT_TIME2WAIT:
		return &sp->default_time2wait;
	case P_DEFAULT_TIME2RETAIN:
		return &sp->default_time2retain;
	case P_MAX_OUTSTANDING_R2T:
		return &sp->max_outstanding_r2t;
	case P_ERROR_RECOVERY_LEVEL:
		return &sp->error_recovery_level;
	case P_PROTOCOL_LEVEL:
		return &sp->protocol_level;
	default:
		return NULL;
	}
}

static bool *param_session_flag(struct iscsi_session_params *sp, enum param_id id)
{
	switch (id) {
	case P_INITIAL_R2T:
		return &sp->initial_r2t;
	case P_IMMEDIATE_DATA:
		return &sp->immediate_data;
	case P_DATA_PDU_IN_ORDER:
		return &sp->data_pdu_in_order;
	case P_DATA_SEQUENCE_IN_ORDER:
		return &sp->data_sequence_in_order;
	default:
		return NULL;
	}
}

/* Our side of a numerical key, kept inside the key's range even if misconfigured. */
static uint32_t param_our_number(const struct iscsi_target_limits *lim, enum param_id id)
{
	const struct param_def *def = &param_defs[id];
	uint32_t v;

	switch (id) {
	case P_MAX_CONNECTIONS:
		v = lim->max_connections;
		break;
	case P_MAX_BURST_LENGTH:
		v = lim->max_burst_length;
		break;
	case P_FIRST_BURST_LENGTH:
		v = lim->first_burst_length;
		break;
	case P_DEFAULT_TIME2WAIT:
		v = lim->default_time2wait;
		break;
	case P_DEFAULT_TIME2RETAIN:
		v = lim->default_time2retain;
		break;
	case P_MAX_OUTSTANDING_R2T:
		v = lim->max_outstanding_r2t;
		break;
	case P_ERROR_RECOVERY_LEVEL:
		v = lim->max_error_recovery_level;
		break;
	case P_PROTOCOL_LEVEL:
		v = PARAM_PROTOCOL_LEVEL_OURS;
		break;
	default:
		v = def->min;
		break;
	}
	return param_clamp(v, def->min, def->max);
}

static bool param_our_flag(const struct iscsi_target_limits *lim, enum param_id id)
{
	switch (id) {
	case P_INITIAL_R2T:
		return lim->initial_r2t;
	case P_IMMEDIATE_DATA:
		return lim->immediate_data;
	default:
		return PARAM_DATA_IN_ORDER_OURS;
	}
}

/* The answer for a negotiated numerical or Boolean key: its value now. */
static void param_outcome_text(const struct iscsi_negotiation *neg, enum param_id id,
			       char *buf, size_t size)
{
	const uint32_t *num = param_session_number(neg->sess, id);
	const bool *flag = param_session_flag(neg->sess, id);

	if (num != NULL)
		snprintf(buf, size, "%" PRIu32, *num);
	else if (flag != NULL)
		snprintf(buf, size, "%s", *flag ? "Yes" : "No");
	else
		snprintf(buf, size, "%s", param_reject);
}

/*
 * Rules that tie session keys together, applied whenever values change so
 * that answers and the final state obey them.
 */
static void param_settle(struct iscsi_session_params *sp)
{
	/* RFC 7143 13.14: FirstBurstLength MUST NOT exceed MaxBurstLength */
	if (sp->first_burst_length > sp->max_burst_length)
		sp->first_burst_length = sp->max_burst_length;
	/* RFC 7143 13.19: ErrorRecoveryLevel > 0 with DataSequenceInOrder=Yes means MaxOutstandingR2T=1 */
	if (sp->error_recovery_level > 0 && sp->data_sequence_in_order)
		sp->max_outstanding_r2t = 1;
}

static void param_answer(struct param_slot *slot, const char *literal)
{
	slot->answer = ANSWER_LITERAL;
	slot->literal = literal;
}

/* RFC 7143 13.12: our MaxRecvDataSegmentLength, declared once per connection. */
static void param_declare_dsl(struct iscsi_negotiation *neg, struct iscsi_text_out *out)
{
	char text[PARAM_NUMBER_TEXT];
	uint32_t dsl = param_clamp(neg->limits->max_recv_dsl, PARAM_LENGTH_MIN, PARAM_LENGTH_MAX);

	snprintf(text, sizeof(text), "%" PRIu32, dsl);
	iscsi_text_append(out, param_defs[P_MAX_RECV_DSL].name, text);
	neg->conn->max_recv_dsl = dsl;
	neg->sent_declarations = true;
}

/* ---- one key of a login request ---- */

static bool param_redeclaration_ok(const struct iscsi_negotiation *neg, enum param_id id,
				   const char *value)
{
	const struct iscsi_session_params *sp = neg->sess;

	switch (param_defs[id].redeclare) {
	case REDECLARE_ANY:
		return true;
	case REDECLARE_SAME:
		break;
	default:
		return false;
	}
	switch (id) {
	case P_INITIATOR_NAME:
		return strcmp(value, sp->initiator_name) == 0;
	case P_TARGET_NAME:
		return strcmp(value, sp->target_name) == 0;
	case P_INITIATOR_ALIAS:
		return strcmp(value, sp->initiator_alias) == 0;
	case P_SESSION_TYPE:
		return (sp->session_type == ISCSI_SESSION_DISCOVERY && strcmp(value, "Discovery") == 0) ||
		       (sp->session_type == ISCSI_SESSION_NORMAL && strcmp(value, "Normal") == 0);
	default:
		return false;
	}
}

/* RFC 7143 12.1: whether this session (by its SessionType so far) must authenticate with CHAP */
static bool param_auth_required(const struct iscsi_negotiation *neg)
{
	return neg->sess->session_type == ISCSI_SESSION_DISCOVERY ? neg->limits->chap_discovery :
								    neg->limits->chap_normal;
}

static int param_apply_list(struct iscsi_negotiation *neg, enum param_id id, const char *value,
			    struct param_slot *slot)
{
	static const char none[] = "None";
	static const char chap[] = "CHAP";
	static const char crc32c[] = "CRC32C";
	static const char rfc3720[] = "RFC3720";
	const char *ours[2] = { NULL, NULL };
	const char *pick;
	int status = ISCSI_LOGIN_OK;

	switch (id) {
	case P_HEADER_DIGEST:
	case P_DATA_DIGEST:
		/* RFC 7143 13.1: None always; CRC32C when configured */
		ours[0] = none;
		ours[1] = neg->limits->allow_crc32c ? crc32c : NULL;
		break;
	case P_TASK_REPORTING:
		/* RFC 7143 13.23: we give RFC 3720 task reporting semantics only */
		ours[0] = rfc3720;
		break;
	case P_AUTH_METHOD:
		/*
		 * RFC 7143 12.1: CHAP when this kind of session must authenticate,
		 * and then None is not acceptable; otherwise None, and an initiator
		 * offering only CHAP gets Reject (authentication failure).
		 */
		ours[0] = param_auth_required(neg) ? chap : none;
		break;
	default:
		break;
	}
	pick = param_list_pick(value, ours, 2);
	if (pick == NULL) {
		/* RFC 7143 6.2.1: none of the offered values is supported */
		param_answer(slot, param_reject);
		/* RFC 7143 11.13.5: no acceptable authentication method is an authentication failure */
		if (id == P_AUTH_METHOD) {
			log_warn("iscsi login: initiator '%s' offers AuthMethod=%s, none supported",
				 neg->sess->initiator_name, value);
			status = ISCSI_LOGIN_AUTH_FAILED;
		}
		goto out;
	}
	param_answer(slot, pick);
	if (id == P_HEADER_DIGEST) {
		neg->conn->header_digest = pick == crc32c;
	} else if (id == P_DATA_DIGEST) {
		neg->conn->data_digest = pick == crc32c;
	} else if (id == P_AUTH_METHOD) {
		neg->auth_chosen = true;
		if (pick == chap)
			neg->auth_chap = true;
		else
			neg->seen |= SEEN_AUTH_NONE;
	}
out:
	return status;
}

static int param_apply_declaration(struct iscsi_negotiation *neg, enum param_id id,
				   const char *value, struct param_slot *slot)
{
	struct iscsi_session_params *sp = neg->sess;
	size_t len = strlen(value);
	uint64_t number;
	int status = ISCSI_LOGIN_OK;

	switch (id) {
	case P_INITIATOR_NAME:
	case P_TARGET_NAME:
		/* RFC 7143 4.2.7: a well-formed iqn., eui. or naa. name */
		if (!param_iscsi_name_valid(value)) {
			param_answer(slot, param_reject);
			break;
		}
		memcpy(id == P_INITIATOR_NAME ? sp->initiator_name : sp->target_name, value, len + 1);
		break;
	case P_INITIATOR_ALIAS:
		/* RFC 7143 13.7: a UTF-8 alias, bounded like every simple value */
		if (len > ISCSI_ALIAS_MAX) {
			param_answer(slot, param_reject);
			break;
		}
		memcpy(sp->initiator_alias, value, len + 1);
		break;
	case P_SESSION_TYPE:
		/* RFC 7143 13.21: Discovery or Normal; any other type is not supported (status 0209) */
		if (strcmp(value, "Discovery") == 0) {
			sp->session_type = ISCSI_SESSION_DISCOVERY;
		} else if (strcmp(value, "Normal") == 0) {
			sp->session_type = ISCSI_SESSION_NORMAL;
		} else {
			log_warn("iscsi login: initiator '%s' asks for SessionType=%s",
				 sp->initiator_name, value);
			param_answer(slot, param_reject);
			status = ISCSI_LOGIN_SESSION_TYPE_UNSUPPORTED;
		}
		break;
	case P_MAX_RECV_DSL:
		/* RFC 7143 13.12: 512 to 2**24-1, what we may send in one data segment */
		if (!param_parse_number(value, &number) || number < param_defs[id].min ||
		    number > param_defs[id].max) {
			param_answer(slot, param_reject);
			break;
		}
		neg->conn->max_send_dsl = (uint32_t)number;
		/* RFC 7143 13.12 is an operational key: ours goes out with the first operational answer */
		if (neg->stage == ISCSI_STAGE_OPERATIONAL && !neg->sent_declarations) {
			slot->answer = ANSWER_OUR_DSL;
			neg->conn->max_recv_dsl = param_clamp(neg->limits->max_recv_dsl,
							      PARAM_LENGTH_MIN, PARAM_LENGTH_MAX);
			neg->sent_declarations = true;
		}
		break;
	case P_NODE_ARCHITECTURE:
		/* RFC 7143 13.26: informative only, it must not change behaviour */
		log_debug("iscsi login: initiator '%s' X#NodeArchitecture=%s", sp->initiator_name, value);
		break;
	default:
		param_answer(slot, param_reject);
		break;
	}
	return status;
}

static void param_apply_number(struct iscsi_negotiation *neg, enum param_id id, const char *value,
			       struct param_slot *slot)
{
	const struct param_def *def = &param_defs[id];
	uint32_t *field = param_session_number(neg->sess, id);
	uint32_t ours = param_our_number(neg->limits, id);
	uint32_t offer;
	uint64_t number;

	/* RFC 7143 6.2.2: an offer outside the key's range may be answered Reject */
	if (field == NULL || !param_parse_number(value, &number) || number < def->min ||
	    number > def->max) {
		param_answer(slot, param_reject);
		return;
	}
	offer = (uint32_t)number;
	if (def->rule == RULE_MIN)
		*field = offer < ours ? offer : ours;
	else
		*field = offer > ours ? offer : ours;
	slot->answer = ANSWER_OUTCOME;
}

static void param_apply_flag(struct iscsi_negotiation *neg, enum param_id id, const char *value,
			     struct param_slot *slot)
{
	bool *field = param_session_flag(neg->sess, id);
	bool ours = param_our_flag(neg->limits, id);
	bool offer;

	if (field == NULL || !param_parse_bool(value, &offer)) {
		param_answer(slot, param_reject);
		return;
	}
	/* RFC 7143 6.2.2: the answer is the function of the offer and our choice */
	*field = param_defs[id].rule == RULE_AND ? (offer && ours) : (offer || ours);
	slot->answer = ANSWER_OUTCOME;
}

static int param_apply(struct iscsi_negotiation *neg, enum param_id id, const char *value,
		       struct param_slot *slot)
{
	const struct param_def *def = &param_defs[id];
	int status = ISCSI_LOGIN_OK;

	/* RFC 7143 6.1: a simple value is at most 255 bytes (lists are bounded per value) */
	if (def->rule != RULE_LIST && id != P_NODE_ARCHITECTURE &&
	    strlen(value) > PARAM_SIMPLE_VALUE_MAX) {
		param_answer(slot, param_reject);
		goto out;
	}
	switch (def->rule) {
	case RULE_LIST:
		status = param_apply_list(neg, id, value, slot);
		break;
	case RULE_MIN:
	case RULE_MAX:
		param_apply_number(neg, id, value, slot);
		break;
	case RULE_AND:
	case RULE_OR:
		param_apply_flag(neg, id, value, slot);
		break;
	case RULE_DECLARE:
		status = param_apply_declaration(neg, id, value, slot);
		break;
	case RULE_REJECT:
		/*
		 * RFC 7143 13.25: IFMarker/OFMarker SHOULD be answered Reject
		 * (never NotUnderstood); IFMarkInt/OFMarkInt MUST be.
		 */
		param_answer(slot, param_reject);
		break;
	case RULE_CALLER:
		param_answer(slot, param_reject);
		break;
	}
out:
	return status;
}

static int param_login_key(struct iscsi_negotiation *neg, const struct iscsi_kv *kv,
			   struct param_slot *slot)
{
	const struct param_def *def;
	enum param_id id;
	int found;
	int status = ISCSI_LOGIN_OK;

	/*
	 * RFC 7143 6.2: these are answers. From an initiator they answer one of
	 * our declarations, or echo an Irrelevant back (open-iscsi does when we
	 * do not transit): nothing to say.
	 */
	if (param_is_answer_value(kv->value))
		goto out;
	found = param_lookup(kv->key);
	if (found < 0) {
		/* the caller's authentication code answers the CHAP keys */
		if (!param_is_chap_key(kv->key)) {
			/* RFC 7143 6.2: unknown keys, X- and X# extensions included, get NotUnderstood */
			param_answer(slot, param_not_understood);
		}
		goto out;
	}
	id = (enum param_id)found;
	def = &param_defs[id];
	slot->id = id;

	/* RFC 7143 6.3: a parameter is declared or negotiated once per login; a repeat is an initiator error */
	if (neg->seen & SEEN_KEY(id)) {
		if (!param_redeclaration_ok(neg, id, kv->value)) {
			log_warn("iscsi login: initiator '%s' sends %s twice (RFC 7143 6.3)",
				 neg->sess->initiator_name, def->name);
			status = ISCSI_LOGIN_INITIATOR_ERROR;
			goto out;
		}
		if (def->redeclare == REDECLARE_SAME)
			goto out;
	}
	neg->seen |= SEEN_KEY(id);

	/*
	 * RFC 7143 13: only Any-Stage keys belong to the security stage. An
	 * operational key there while authentication is still open is a
	 * protocol error; once AuthMethod=None settled it, nothing is at stake
	 * and the key is negotiated as it would be a stage later.
	 */
	if (neg->stage == ISCSI_STAGE_SECURITY && !def->any_stage && def->use != USE_SECURITY &&
	    !(neg->seen & SEEN_AUTH_NONE)) {
		log_warn("iscsi login: initiator '%s' sends operational key %s before authentication",
			 neg->sess->initiator_name, def->name);
		status = ISCSI_LOGIN_INITIATOR_ERROR;
		goto out;
	}
	/* RFC 7143 12.1: AuthMethod belongs to the security stage */
	if (def->use == USE_SECURITY && neg->stage != ISCSI_STAGE_SECURITY) {
		param_answer(slot, param_reject);
		goto out;
	}
	/* RFC 7143 13.6, 13.8, 13.9: Senders: Target */
	if (def->target_only) {
		param_answer(slot, param_reject);
		goto out;
	}
	/* RFC 7143 13.3: SendTargets is FFPO, a Text request key */
	if (def->use == USE_FFPO) {
		param_answer(slot, param_reject);
		goto out;
	}
	/*
	 * RFC 7143 13: LO keys are negotiated on the leading connection only; the
	 * session keeps its values. A declarative LO key (SessionType) is still
	 * recorded so the caller can check it against the session.
	 */
	if (def->use == USE_LO && !neg->leading && def->rule != RULE_DECLARE) {
		param_answer(slot, param_reject);
		goto out;
	}
	/* RFC 7143 13: "Irrelevant when: SessionType=Discovery" */
	if (def->irrelevant_discovery && neg->sess->session_type == ISCSI_SESSION_DISCOVERY) {
		param_answer(slot, param_irrelevant);
		goto out;
	}
	status = param_apply(neg, id, kv->value, slot);
out:
	return status;
}

/*
 * SessionType and AuthMethod are resolved before the other keys of a
 * request, SessionType first: it decides whether AuthMethod must be CHAP.
 * The names come with SessionType, so that a login failing on AuthMethod
 * still says who tried, and what for.
 */
#define PARAM_PASSES 3
static int param_resolve_pass(const char *key)
{
	if (strcmp(key, param_defs[P_SESSION_TYPE].name) == 0 ||
	    strcmp(key, param_defs[P_INITIATOR_NAME].name) == 0 ||
	    strcmp(key, param_defs[P_TARGET_NAME].name) == 0)
		return 0;
	if (strcmp(key, param_defs[P_AUTH_METHOD].name) == 0)
		return 1;
	return 2;
}

static void param_emit(struct iscsi_negotiation *neg, const struct iscsi_kv *kv,
		       const struct param_slot *slots, int n, struct iscsi_text_out *out)
{
	char text[PARAM_NUMBER_TEXT];

	for (int i = 0; i < n; i++) {
		switch (slots[i].answer) {
		case ANSWER_NONE:
			break;
		case ANSWER_LITERAL:
			iscsi_text_append(out, kv[i].key, slots[i].literal);
			break;
		case ANSWER_OUTCOME:
			param_outcome_text(neg, slots[i].id, text, sizeof(text));
			iscsi_text_append(out, kv[i].key, text);
			break;
		case ANSWER_OUR_DSL:
			snprintf(text, sizeof(text), "%" PRIu32, neg->conn->max_recv_dsl);
			iscsi_text_append(out, param_defs[P_MAX_RECV_DSL].name, text);
			break;
		}
	}
}

int iscsi_negotiate_login(struct iscsi_negotiation *neg, const struct iscsi_kv *kv, int n,
			  struct iscsi_text_out *out)
{
	struct param_slot slots[ISCSI_TEXT_MAX_KEYS];
	int status = ISCSI_LOGIN_OK;

	if (n < 0 || n > ISCSI_TEXT_MAX_KEYS) {
		status = ISCSI_LOGIN_INITIATOR_ERROR;
		goto out;
	}
	if (neg->stage != ISCSI_STAGE_SECURITY && neg->stage != ISCSI_STAGE_OPERATIONAL) {
		status = ISCSI_LOGIN_TARGET_ERROR;
		goto out;
	}
	/* RFC 7143 6.3: within one request a key appears once; a redeclaration
	 * allowed across requests is still a protocol error inside one */
	uint64_t in_request = 0;

	for (int i = 0; i < n; i++) {
		int id = param_lookup(kv[i].key);

		if (id < 0)
			continue;
		if (in_request & SEEN_KEY(id)) {
			log_warn("iscsi login: initiator '%s' sends %s twice in one request (RFC 7143 6.3)",
				 neg->sess->initiator_name, kv[i].key);
			status = ISCSI_LOGIN_INITIATOR_ERROR;
			goto out;
		}
		in_request |= SEEN_KEY(id);
	}
	memset(slots, 0, sizeof(slots[0]) * (size_t)n);
	for (int pass = 0; pass < PARAM_PASSES; pass++) {
		for (int i = 0; i < n; i++) {
			if (param_resolve_pass(kv[i].key) != pass)
				continue;
			status = param_login_key(neg, &kv[i], &slots[i]);
			if (status != ISCSI_LOGIN_OK) {
				/* the failing key's own answer (AuthMethod=Reject) still explains the failure */
				if (slots[i].answer == ANSWER_LITERAL)
					iscsi_text_append(out, kv[i].key, slots[i].literal);
				goto out;
			}
		}
	}
	param_settle(neg->sess);
	param_emit(neg, kv, slots, n, out);
	/* RFC 7143 13.12: the initiator must know our MaxRecvDataSegmentLength before full feature phase */
	if (neg->stage == ISCSI_STAGE_OPERATIONAL && !neg->sent_declarations)
		param_declare_dsl(neg, out);
	if (out->overflow)
		status = ISCSI_LOGIN_OUT_OF_RESOURCES;
out:
	return status;
}

void iscsi_negotiate_finish(struct iscsi_negotiation *neg, struct iscsi_text_out *out)
{
	const char *alias = neg->limits->target_alias;

	param_settle(neg->sess);
	/*
	 * RFC 7143 13.12: MaxRecvDataSegmentLength is operational, never sent in
	 * the security stage (open-iscsi fails a login on it there). A login
	 * going from security straight to full feature phase keeps 8192.
	 */
	if (!neg->sent_declarations) {
		if (neg->stage == ISCSI_STAGE_OPERATIONAL)
			param_declare_dsl(neg, out);
		else
			neg->conn->max_recv_dsl = PARAM_DSL_DEFAULT;
	}
	/* RFC 7143 13.6: TargetAlias is Any-Stage; it names a target, so normal sessions only */
	if (alias != NULL && alias[0] != '\0' && strlen(alias) <= ISCSI_ALIAS_MAX &&
	    neg->sess->session_type == ISCSI_SESSION_NORMAL && !(neg->seen & SEEN_ALIAS_SENT)) {
		iscsi_text_append(out, param_defs[P_TARGET_ALIAS].name, alias);
		neg->seen |= SEEN_ALIAS_SENT;
	}
}

int iscsi_negotiate_text(struct iscsi_negotiation *neg, const struct iscsi_kv *kv, int n,
			 struct iscsi_text_out *out)
{
	uint64_t seen = 0;
	int status = ISCSI_LOGIN_OK;

	if (n < 0 || n > ISCSI_TEXT_MAX_KEYS) {
		status = ISCSI_LOGIN_INITIATOR_ERROR;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		const struct param_def *def;
		enum param_id id;
		int found;
		size_t len = strlen(kv[i].value);
		uint64_t number;

		/* RFC 7143 6.2: answers need no answer */
		if (param_is_answer_value(kv[i].value))
			continue;
		found = param_lookup(kv[i].key);
		if (found < 0) {
			/* RFC 7143 12.1: CHAP belongs to the login; anything else unknown is NotUnderstood */
			iscsi_text_append(out, kv[i].key,
					  param_is_chap_key(kv[i].key) ? param_reject : param_not_understood);
			continue;
		}
		id = (enum param_id)found;
		def = &param_defs[id];
		/* RFC 7143 13.3: SendTargets is the caller's */
		if (def->rule == RULE_CALLER)
			continue;
		/* RFC 7143 6.2: one key once per negotiation */
		if (seen & SEEN_KEY(id)) {
			log_warn("iscsi text: initiator '%s' sends %s twice", neg->sess->initiator_name,
				 def->name);
			status = ISCSI_LOGIN_INITIATOR_ERROR;
			goto out;
		}
		seen |= SEEN_KEY(id);
		/* RFC 7143 13: Senders: Target; and only Use ALL/FFPO keys exist after login */
		if (def->target_only || (def->use != USE_ALL && def->use != USE_FFPO)) {
			iscsi_text_append(out, kv[i].key, param_reject);
			continue;
		}
		if (len > PARAM_SIMPLE_VALUE_MAX) {
			iscsi_text_append(out, kv[i].key, param_reject);
			continue;
		}
		if (id == P_MAX_RECV_DSL) {
			/* RFC 7143 13.12: a new declaration of what the initiator can receive */
			if (!param_parse_number(kv[i].value, &number) || number < def->min ||
			    number > def->max) {
				iscsi_text_append(out, kv[i].key, param_reject);
				continue;
			}
			neg->conn->max_send_dsl = (uint32_t)number;
		} else if (id == P_INITIATOR_ALIAS) {
			/* RFC 7143 13.7 */
			memcpy(neg->sess->initiator_alias, kv[i].value, len + 1);
		}
	}
	if (out->overflow)
		status = ISCSI_LOGIN_OUT_OF_RESOURCES;
out:
	return status;
}
