/*
 * Unit tests for src/iscsi/param.c: the text format (RFC 7143 6.1) and one
 * test per negotiation rule of RFC 7143 sections 6 and 13.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "iscsi/param.h"

/* a string literal with embedded NULs, without the compiler's final NUL */
#define TEXT(s) (s), (sizeof(s) - 1)

#define FX_IN_MAX 32768
#define FX_OUT_MAX 16384

#define INITIATOR "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test"
#define TARGET "iqn.2024-01.org.example:disk1"

struct fx {
	struct iscsi_target_limits lim;
	struct iscsi_session_params sess;
	struct iscsi_conn_params conn;
	struct iscsi_negotiation neg;
	char in[FX_IN_MAX];
	struct iscsi_kv kv[ISCSI_TEXT_MAX_KEYS];
	char outbuf[FX_OUT_MAX];
	struct iscsi_text_out out;
};

static void fx_reset(struct fx *f, bool leading)
{
	iscsi_limits_default(&f->lim);
	iscsi_session_params_default(&f->sess);
	iscsi_conn_params_default(&f->conn);
	iscsi_negotiation_init(&f->neg, &f->lim, &f->sess, &f->conn, leading);
	f->out.buf = f->outbuf;
	f->out.cap = sizeof(f->outbuf);
	f->out.len = 0;
	f->out.overflow = false;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	fx_reset(f, true);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

static int fx_parse(struct fx *f, const char *text, size_t len)
{
	assert_true(len <= sizeof(f->in));
	memcpy(f->in, text, len);
	return iscsi_text_parse(f->in, len, f->kv, ISCSI_TEXT_MAX_KEYS);
}

/* Runs one login request in the given stage; the response replaces f->out. */
static int fx_login(struct fx *f, enum iscsi_login_stage stage, const char *text, size_t len)
{
	int n = fx_parse(f, text, len);

	assert_true(n >= 0);
	f->neg.stage = stage;
	f->out.len = 0;
	f->out.overflow = false;
	return iscsi_negotiate_login(&f->neg, f->kv, n, &f->out);
}

static int fx_text(struct fx *f, const char *text, size_t len)
{
	int n = fx_parse(f, text, len);

	assert_true(n >= 0);
	f->neg.stage = ISCSI_STAGE_FULL_FEATURE;
	f->out.len = 0;
	f->out.overflow = false;
	return iscsi_negotiate_text(&f->neg, f->kv, n, &f->out);
}

/* The i-th key of the response, or NULL. */
static const char *fx_key_at(const struct fx *f, int index)
{
	size_t pos = 0;

	for (int i = 0; pos < f->out.len; i++) {
		const char *pair = f->out.buf + pos;

		if (i == index)
			return pair;
		pos += strlen(pair) + 1;
	}
	return NULL;
}

static int fx_pairs(const struct fx *f)
{
	int n = 0;

	while (fx_key_at(f, n) != NULL)
		n++;
	return n;
}

/* The value answered for key (the first one), or NULL when not answered. */
static const char *fx_answer(const struct fx *f, const char *key)
{
	size_t klen = strlen(key);

	for (int i = 0;; i++) {
		const char *pair = fx_key_at(f, i);

		if (pair == NULL)
			return NULL;
		if (strncmp(pair, key, klen) == 0 && pair[klen] == '=')
			return pair + klen + 1;
	}
}

static int fx_answer_count(const struct fx *f, const char *key)
{
	size_t klen = strlen(key);
	int count = 0;

	for (int i = 0;; i++) {
		const char *pair = fx_key_at(f, i);

		if (pair == NULL)
			return count;
		if (strncmp(pair, key, klen) == 0 && pair[klen] == '=')
			count++;
	}
}

/* ---- text format ---- */

static void test_parse_pairs(void **state)
{
	struct fx *f = *state;
	int n = fx_parse(f, TEXT("A=1\0Empty=\0Eq=x=y\0"));

	assert_int_equal(n, 3);
	assert_string_equal(f->kv[0].key, "A");
	assert_string_equal(f->kv[0].value, "1");
	assert_string_equal(f->kv[1].key, "Empty");
	assert_string_equal(f->kv[1].value, "");
	/* RFC 7143 6.1: the key ends at the first '=' */
	assert_string_equal(f->kv[2].key, "Eq");
	assert_string_equal(f->kv[2].value, "x=y");
	assert_int_equal(fx_parse(f, "", 0), 0);
	assert_int_equal(iscsi_text_parse(NULL, 0, f->kv, ISCSI_TEXT_MAX_KEYS), 0);
}

static void test_parse_missing_equals(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_parse(f, TEXT("A=1\0NoEquals\0")), -1);
}

static void test_parse_empty_key(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_parse(f, TEXT("=value\0")), -1);
}

static void test_parse_key_length(void **state)
{
	struct fx *f = *state;
	char text[80];

	/* RFC 7143 6.1: 63 bytes is the longest key name */
	memset(text, 'K', 63);
	memcpy(text + 63, "=v", 3);
	assert_int_equal(fx_parse(f, text, 66), 1);
	assert_int_equal(strlen(f->kv[0].key), 63);
	memset(text, 'K', 64);
	memcpy(text + 64, "=v", 3);
	assert_int_equal(fx_parse(f, text, 67), -1);
}

static void test_parse_value_length(void **state)
{
	struct fx *f = *state;
	static char text[2 + ISCSI_VALUE_MAX + 2];

	memcpy(text, "V=", 2);
	memset(text + 2, 'a', ISCSI_VALUE_MAX);
	text[2 + ISCSI_VALUE_MAX] = '\0';
	assert_int_equal(fx_parse(f, text, 2 + ISCSI_VALUE_MAX + 1), 1);
	assert_int_equal(strlen(f->kv[0].value), ISCSI_VALUE_MAX);
	memset(text + 2, 'a', ISCSI_VALUE_MAX + 1);
	text[2 + ISCSI_VALUE_MAX + 1] = '\0';
	assert_int_equal(fx_parse(f, text, sizeof(text)), -1);
}

static void test_parse_no_trailing_nul(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_parse(f, TEXT("A=1\0Last=value")), 2);
	assert_string_equal(f->kv[0].key, "A");
	assert_string_equal(f->kv[0].value, "1");
	assert_string_equal(f->kv[1].key, "Last");
	assert_string_equal(f->kv[1].value, "value");
	/* a one-character pair, and an empty last value */
	assert_int_equal(fx_parse(f, TEXT("K=")), 1);
	assert_string_equal(f->kv[0].key, "K");
	assert_string_equal(f->kv[0].value, "");
	/* and such a request negotiates like any other */
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("HeaderDigest=None\0MaxConnections=1")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_key_at(f, 1), "MaxConnections=1");
}

static void test_parse_embedded_empty_pair(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_parse(f, TEXT("A=1\0\0B=2\0\0\0")), 2);
	assert_string_equal(f->kv[1].key, "B");
	assert_string_equal(f->kv[1].value, "2");
}

static void test_parse_max_keys(void **state)
{
	struct fx *f = *state;
	static char text[(ISCSI_TEXT_MAX_KEYS + 1) * 4];
	size_t len = 0;

	for (int i = 0; i < ISCSI_TEXT_MAX_KEYS; i++) {
		memcpy(text + len, "K=1", 4);
		len += 4;
	}
	assert_int_equal(fx_parse(f, text, len), ISCSI_TEXT_MAX_KEYS);
	memcpy(text + len, "K=1", 4);
	len += 4;
	assert_int_equal(fx_parse(f, text, len), -1);
	/* the caller's own bound counts too */
	memcpy(f->in, TEXT("A=1\0B=2\0C=3\0"));
	assert_int_equal(iscsi_text_parse(f->in, 12, f->kv, 2), -1);
}

static void test_append_overflow(void **state)
{
	struct fx *f = *state;
	char small[10];
	struct iscsi_text_out out = { .buf = small, .cap = sizeof(small), .len = 0, .overflow = false };

	iscsi_text_append(&out, "A", "1");
	assert_int_equal(out.len, 4);
	assert_memory_equal(small, "A=1\0", 4);
	iscsi_text_append(&out, "Long", "value");
	assert_true(out.overflow);
	assert_int_equal(out.len, 4);
	/* nothing after a key that did not fit */
	iscsi_text_append(&out, "B", "2");
	assert_int_equal(out.len, 4);
	(void)f;
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
	struct fx *f = *state;

	assert_int_equal(f->lim.max_recv_dsl, 262144);
	assert_int_equal(f->lim.max_connections, 1);
	assert_false(f->lim.initial_r2t);
	assert_true(f->lim.immediate_data);
	assert_int_equal(f->lim.max_burst_length, 1048576);
	assert_int_equal(f->lim.first_burst_length, 262144);
	assert_int_equal(f->lim.max_error_recovery_level, 0);
	assert_true(f->lim.allow_crc32c);	/* CRC32C digests offered back by default */
	assert_null(f->lim.target_alias);
	/* RFC 7143 13 defaults */
	assert_int_equal(f->sess.session_type, ISCSI_SESSION_NORMAL);
	assert_int_equal(f->sess.max_connections, 1);
	assert_true(f->sess.initial_r2t);
	assert_true(f->sess.immediate_data);
	assert_int_equal(f->sess.max_burst_length, 262144);
	assert_int_equal(f->sess.first_burst_length, 65536);
	assert_int_equal(f->sess.default_time2wait, 2);
	assert_int_equal(f->sess.default_time2retain, 20);
	assert_int_equal(f->sess.max_outstanding_r2t, 1);
	assert_true(f->sess.data_pdu_in_order);
	assert_true(f->sess.data_sequence_in_order);
	assert_int_equal(f->sess.error_recovery_level, 0);
	assert_string_equal(f->sess.initiator_name, "");
	assert_false(f->conn.header_digest);
	assert_false(f->conn.data_digest);
	assert_int_equal(f->conn.max_send_dsl, 8192);
	assert_int_equal(f->conn.max_recv_dsl, 8192);
}

/* ---- result functions ---- */

static void test_min_rule(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("MaxBurstLength=16776192\0MaxConnections=4\0")), ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "MaxBurstLength"), "1048576");
	assert_string_equal(fx_answer(f, "MaxConnections"), "1");
	assert_int_equal(f->sess.max_burst_length, 1048576);
	fx_reset(f, true);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("MaxBurstLength=65536\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "MaxBurstLength"), "65536");
	assert_int_equal(f->sess.max_burst_length, 65536);
}

static void test_max_rule(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("DefaultTime2Wait=0\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "DefaultTime2Wait"), "2");
	fx_reset(f, true);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("DefaultTime2Wait=10\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "DefaultTime2Wait"), "10");
	assert_int_equal(f->sess.default_time2wait, 10);
}

static void test_and_rule(void **state)
{
	struct fx *f = *state;

	f->lim.immediate_data = false;
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("ImmediateData=Yes\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "ImmediateData"), "No");
	assert_false(f->sess.immediate_data);
	fx_reset(f, true);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("ImmediateData=Yes\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "ImmediateData"), "Yes");
	fx_reset(f, true);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("ImmediateData=No\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "ImmediateData"), "No");
}

static void test_or_rule(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("InitialR2T=No\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "InitialR2T"), "No");
	assert_false(f->sess.initial_r2t);
	fx_reset(f, true);
	f->lim.initial_r2t = true;
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("InitialR2T=No\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "InitialR2T"), "Yes");
	assert_true(f->sess.initial_r2t);
	/* our preference for in-order data is Yes, so OR always gives Yes */
	fx_reset(f, true);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("DataPDUInOrder=No\0DataSequenceInOrder=No\0")), ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "DataPDUInOrder"), "Yes");
	assert_string_equal(fx_answer(f, "DataSequenceInOrder"), "Yes");
}

static void test_list_rule_digests(void **state)
{
	struct fx *f = *state;

	f->lim.allow_crc32c = false;	/* a target configured without digests */
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("HeaderDigest=CRC32C,None\0DataDigest=CRC32C\0")), ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "HeaderDigest"), "None");
	/* RFC 7143 6.2.1: nothing acceptable in the list */
	assert_string_equal(fx_answer(f, "DataDigest"), "Reject");
	assert_false(f->conn.header_digest);
	assert_false(f->conn.data_digest);
	fx_reset(f, true);
	f->lim.allow_crc32c = true;
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("HeaderDigest=CRC32C,None\0DataDigest=None,CRC32C\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "HeaderDigest"), "CRC32C");
	assert_string_equal(fx_answer(f, "DataDigest"), "None");
	assert_true(f->conn.header_digest);
	assert_false(f->conn.data_digest);
	/* values we do not know are skipped */
	fx_reset(f, true);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("HeaderDigest=Y-vendor,None\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "HeaderDigest"), "None");
}

static void test_list_rule_task_reporting(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("TaskReporting=FastAbort,ResponseFence,RFC3720\0")), ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "TaskReporting"), "RFC3720");
	fx_reset(f, true);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("TaskReporting=FastAbort\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "TaskReporting"), "Reject");
}

static void test_protocol_level(void **state)
{
	struct fx *f = *state;

	/* RFC 7143 13.24: Minimum of the offer and our level 1 */
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("iSCSIProtocolLevel=2\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "iSCSIProtocolLevel"), "1");
	assert_int_equal(f->sess.protocol_level, 1);
	fx_reset(f, true);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("iSCSIProtocolLevel=0\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "iSCSIProtocolLevel"), "0");
	fx_reset(f, true);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("iSCSIProtocolLevel=32\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "iSCSIProtocolLevel"), "Reject");
}

static void test_error_recovery_level(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("ErrorRecoveryLevel=2\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "ErrorRecoveryLevel"), "0");
	/* RFC 7143 13.19: ERL > 0 with DataSequenceInOrder=Yes forces MaxOutstandingR2T=1 */
	fx_reset(f, true);
	f->lim.max_error_recovery_level = 2;
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("MaxOutstandingR2T=4\0ErrorRecoveryLevel=1\0DataSequenceInOrder=Yes\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "ErrorRecoveryLevel"), "1");
	assert_string_equal(fx_answer(f, "MaxOutstandingR2T"), "1");
	assert_int_equal(f->sess.max_outstanding_r2t, 1);
}

/* ---- declarations ---- */

static void test_declarative(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("InitiatorName=" INITIATOR "\0TargetName=" TARGET
				       "\0InitiatorAlias=host one\0MaxRecvDataSegmentLength=65536\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(f->sess.initiator_name, INITIATOR);
	assert_string_equal(f->sess.target_name, TARGET);
	assert_string_equal(f->sess.initiator_alias, "host one");
	assert_int_equal(f->conn.max_send_dsl, 65536);
	/* declarations are not echoed; ours answers MaxRecvDataSegmentLength in place */
	assert_null(fx_answer(f, "InitiatorName"));
	assert_null(fx_answer(f, "TargetName"));
	assert_null(fx_answer(f, "InitiatorAlias"));
	assert_int_equal(fx_pairs(f), 1);
	assert_string_equal(fx_answer(f, "MaxRecvDataSegmentLength"), "262144");
	assert_int_equal(f->conn.max_recv_dsl, 262144);
	assert_true(f->neg.sent_declarations);
}

static void test_our_dsl_declared_once(void **state)
{
	struct fx *f = *state;

	f->lim.max_recv_dsl = 65536;
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("MaxConnections=1\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_key_at(f, 1), "MaxRecvDataSegmentLength=65536");
	assert_int_equal(f->conn.max_recv_dsl, 65536);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("InitialR2T=Yes\0")),
			 ISCSI_LOGIN_OK);
	assert_null(fx_answer(f, "MaxRecvDataSegmentLength"));
	f->out.len = 0;
	iscsi_negotiate_finish(&f->neg, &f->out);
	assert_int_equal(fx_pairs(f), 0);
}

static void test_initiator_name_validation(void **state)
{
	static const char *const valid[] = {
		INITIATOR,
		"iqn.1993-08.org.debian:01:abcdef0123",
		"iqn.2001-04.com.example",
		"IQN.2001-04.com.Example:Host",
		"eui.02004567A425678D",
		"naa.52004567BA64678D",
		"naa.62004567BA64678D0123456789ABCDEF",
	};
	static const char *const invalid[] = {
		"iqn.2001-13.com.example",
		"iqn.01-04.com.example",
		"iqn.2001-04.",
		"iqn.2001-04:foo",
		"iqn.2001-04.com.example:has space",
		"iqn.2001-04.com.example:under_score",
		"eui.0200",
		"eui.02004567A425678G",
		"naa.1234",
		"foo.bar",
		"",
	};
	struct fx *f = *state;
	char text[ISCSI_NAME_MAX + 64];

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		int len = snprintf(text, sizeof(text), "InitiatorName=%s", valid[i]);

		fx_reset(f, true);
		assert_int_equal(fx_login(f, ISCSI_STAGE_SECURITY, text, (size_t)len + 1), ISCSI_LOGIN_OK);
		assert_string_equal(f->sess.initiator_name, valid[i]);
		assert_null(fx_answer(f, "InitiatorName"));
	}
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		int len = snprintf(text, sizeof(text), "InitiatorName=%s", invalid[i]);

		fx_reset(f, true);
		assert_int_equal(fx_login(f, ISCSI_STAGE_SECURITY, text, (size_t)len + 1), ISCSI_LOGIN_OK);
		assert_string_equal(fx_answer(f, "InitiatorName"), "Reject");
		assert_string_equal(f->sess.initiator_name, "");
	}
}

static void test_name_max_length(void **state)
{
	struct fx *f = *state;
	char text[16 + ISCSI_NAME_MAX + 2];
	size_t prefix = strlen("TargetName=");
	size_t iqn = strlen("iqn.2001-04.com.example:");

	/* RFC 7143 4.2.7.1: 223 bytes fit, 224 do not */
	memcpy(text, "TargetName=iqn.2001-04.com.example:", prefix + iqn);
	memset(text + prefix + iqn, 'a', ISCSI_NAME_MAX - iqn);
	text[prefix + ISCSI_NAME_MAX] = '\0';
	assert_int_equal(fx_login(f, ISCSI_STAGE_SECURITY, text, prefix + ISCSI_NAME_MAX + 1),
			 ISCSI_LOGIN_OK);
	assert_int_equal(strlen(f->sess.target_name), ISCSI_NAME_MAX);
	fx_reset(f, true);
	text[prefix + ISCSI_NAME_MAX] = 'a';
	text[prefix + ISCSI_NAME_MAX + 1] = '\0';
	assert_int_equal(fx_login(f, ISCSI_STAGE_SECURITY, text, prefix + ISCSI_NAME_MAX + 2),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "TargetName"), "Reject");
	assert_string_equal(f->sess.target_name, "");
}

static void test_session_type(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_SECURITY,
				  TEXT("InitiatorName=" INITIATOR "\0SessionType=Discovery\0")),
			 ISCSI_LOGIN_OK);
	assert_int_equal(f->sess.session_type, ISCSI_SESSION_DISCOVERY);
	assert_null(fx_answer(f, "SessionType"));
	/* RFC 7143 13.21: a type we do not know is "session type not supported" */
	fx_reset(f, true);
	assert_int_equal(fx_login(f, ISCSI_STAGE_SECURITY, TEXT("SessionType=Boot\0")),
			 ISCSI_LOGIN_SESSION_TYPE_UNSUPPORTED);
	assert_string_equal(fx_answer(f, "SessionType"), "Reject");
}

/* ---- discovery sessions ---- */

static void test_discovery_irrelevant(void **state)
{
	struct fx *f = *state;

	/* SessionType last: it is resolved before the keys it decides */
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("MaxConnections=1\0InitialR2T=No\0ImmediateData=Yes\0"
				       "MaxBurstLength=262144\0FirstBurstLength=65536\0"
				       "MaxOutstandingR2T=1\0DataPDUInOrder=Yes\0DataSequenceInOrder=Yes\0"
				       "TaskReporting=RFC3720\0iSCSIProtocolLevel=1\0"
				       "ErrorRecoveryLevel=0\0DefaultTime2Wait=2\0DefaultTime2Retain=0\0"
				       "HeaderDigest=None\0InitiatorName=" INITIATOR "\0"
				       "SessionType=Discovery\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "MaxConnections"), "Irrelevant");
	assert_string_equal(fx_answer(f, "InitialR2T"), "Irrelevant");
	assert_string_equal(fx_answer(f, "ImmediateData"), "Irrelevant");
	assert_string_equal(fx_answer(f, "MaxBurstLength"), "Irrelevant");
	assert_string_equal(fx_answer(f, "FirstBurstLength"), "Irrelevant");
	assert_string_equal(fx_answer(f, "MaxOutstandingR2T"), "Irrelevant");
	assert_string_equal(fx_answer(f, "DataPDUInOrder"), "Irrelevant");
	assert_string_equal(fx_answer(f, "DataSequenceInOrder"), "Irrelevant");
	assert_string_equal(fx_answer(f, "TaskReporting"), "Irrelevant");
	assert_string_equal(fx_answer(f, "iSCSIProtocolLevel"), "Irrelevant");
	/* keys without "Irrelevant when: SessionType=Discovery" are negotiated */
	assert_string_equal(fx_answer(f, "ErrorRecoveryLevel"), "0");
	assert_string_equal(fx_answer(f, "DefaultTime2Wait"), "2");
	assert_string_equal(fx_answer(f, "DefaultTime2Retain"), "0");
	assert_string_equal(fx_answer(f, "HeaderDigest"), "None");
	assert_string_equal(fx_answer(f, "MaxRecvDataSegmentLength"), "262144");
}

/* ---- NotUnderstood, Reject ---- */

static void test_not_understood(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("X-com.cisco.protocol=draft20\0FooBar=1\0X#Example=2\0"
				       "RDMAExtensions=Yes\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "X-com.cisco.protocol"), "NotUnderstood");
	assert_string_equal(fx_answer(f, "FooBar"), "NotUnderstood");
	assert_string_equal(fx_answer(f, "X#Example"), "NotUnderstood");
	assert_string_equal(fx_answer(f, "RDMAExtensions"), "NotUnderstood");
	/* RFC 7143 13.26 is a key of the RFC: understood, declarative */
	fx_reset(f, true);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("X#NodeArchitecture=ExampleOS/v1,Initiator/1.0\0")), ISCSI_LOGIN_OK);
	assert_null(fx_answer(f, "X#NodeArchitecture"));
	/* an unknown key in the security stage is not an operational key */
	fx_reset(f, true);
	assert_int_equal(fx_login(f, ISCSI_STAGE_SECURITY, TEXT("Vendor=1\0")), ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "Vendor"), "NotUnderstood");
}

static void test_reject_out_of_range(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("MaxConnections=0\0MaxBurstLength=511\0FirstBurstLength=16777216\0"
				       "ErrorRecoveryLevel=3\0DefaultTime2Wait=3601\0DefaultTime2Retain=3601\0"
				       "MaxOutstandingR2T=65536\0MaxRecvDataSegmentLength=511\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "MaxConnections"), "Reject");
	assert_string_equal(fx_answer(f, "MaxBurstLength"), "Reject");
	assert_string_equal(fx_answer(f, "FirstBurstLength"), "Reject");
	assert_string_equal(fx_answer(f, "ErrorRecoveryLevel"), "Reject");
	assert_string_equal(fx_answer(f, "DefaultTime2Wait"), "Reject");
	assert_string_equal(fx_answer(f, "DefaultTime2Retain"), "Reject");
	assert_string_equal(fx_answer(f, "MaxOutstandingR2T"), "Reject");
	assert_string_equal(fx_key_at(f, 7), "MaxRecvDataSegmentLength=Reject");
	/* RFC 7143 6.2: a Reject keeps the current value */
	assert_int_equal(f->sess.max_connections, 1);
	assert_int_equal(f->sess.max_burst_length, 262144);
	assert_int_equal(f->sess.first_burst_length, 65536);
	assert_int_equal(f->sess.default_time2wait, 2);
	assert_int_equal(f->conn.max_send_dsl, 8192);
	/* our own declaration still goes out */
	assert_string_equal(fx_key_at(f, 8), "MaxRecvDataSegmentLength=262144");
}

static void test_reject_garbage(void **state)
{
	struct fx *f = *state;
	static char text[64 + 300];
	size_t len;

	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("MaxBurstLength=abc\0InitialR2T=yes\0ImmediateData=\0"
				       "FirstBurstLength=0100\0MaxConnections=-1\0MaxOutstandingR2T=0x\0"
				       "DefaultTime2Wait= 2\0DataPDUInOrder=YES\0"
				       "ErrorRecoveryLevel=99999999999999999999999\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "MaxBurstLength"), "Reject");
	assert_string_equal(fx_answer(f, "InitialR2T"), "Reject");
	assert_string_equal(fx_answer(f, "ImmediateData"), "Reject");
	/* RFC 7143 6.1: a decimal-constant does not start with 0 */
	assert_string_equal(fx_answer(f, "FirstBurstLength"), "Reject");
	assert_string_equal(fx_answer(f, "MaxConnections"), "Reject");
	assert_string_equal(fx_answer(f, "MaxOutstandingR2T"), "Reject");
	assert_string_equal(fx_answer(f, "DefaultTime2Wait"), "Reject");
	assert_string_equal(fx_answer(f, "DataPDUInOrder"), "Reject");
	assert_string_equal(fx_answer(f, "ErrorRecoveryLevel"), "Reject");
	assert_true(f->sess.initial_r2t);
	/* RFC 7143 6.1: a simple value longer than 255 bytes */
	fx_reset(f, true);
	memcpy(text, "InitiatorAlias=", 15);
	memset(text + 15, 'a', 300);
	text[15 + 300] = '\0';
	len = 15 + 300 + 1;
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, text, len), ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "InitiatorAlias"), "Reject");
	assert_string_equal(f->sess.initiator_alias, "");
}

static void test_hex_numbers(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("MaxBurstLength=0x10000\0FirstBurstLength=0X8000\0"
				       "DefaultTime2Wait=0x0\0MaxRecvDataSegmentLength=0x00002000\0")),
			 ISCSI_LOGIN_OK);
	/* answers are decimal whatever the offer's encoding */
	assert_string_equal(fx_answer(f, "MaxBurstLength"), "65536");
	assert_string_equal(fx_answer(f, "FirstBurstLength"), "32768");
	assert_string_equal(fx_answer(f, "DefaultTime2Wait"), "2");
	assert_int_equal(f->conn.max_send_dsl, 8192);
}

static void test_obsolete_markers(void **state)
{
	struct fx *f = *state;

	/* RFC 7143 13.25: Reject, never NotUnderstood */
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("IFMarker=No\0OFMarker=Yes\0IFMarkInt=2048~8192\0OFMarkInt=1\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "IFMarker"), "Reject");
	assert_string_equal(fx_answer(f, "OFMarker"), "Reject");
	assert_string_equal(fx_answer(f, "IFMarkInt"), "Reject");
	assert_string_equal(fx_answer(f, "OFMarkInt"), "Reject");
}

static void test_target_only_keys(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("TargetAlias=x\0TargetAddress=10.0.0.1:3260,1\0TargetPortalGroupTag=1\0"
				       "SendTargets=All\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "TargetAlias"), "Reject");
	assert_string_equal(fx_answer(f, "TargetAddress"), "Reject");
	assert_string_equal(fx_answer(f, "TargetPortalGroupTag"), "Reject");
	/* RFC 7143 13.3: SendTargets is FFPO */
	assert_string_equal(fx_answer(f, "SendTargets"), "Reject");
}

static void test_answer_values_silent(void **state)
{
	struct fx *f = *state;

	/* open-iscsi echoes Irrelevant back when the target did not transit */
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("MaxConnections=Irrelevant\0X-foo=NotUnderstood\0HeaderDigest=Reject\0")),
			 ISCSI_LOGIN_OK);
	assert_int_equal(fx_pairs(f), 1);
	assert_non_null(fx_answer(f, "MaxRecvDataSegmentLength"));
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("MaxConnections=1\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "MaxConnections"), "1");
}

/* ---- once per login ---- */

static void test_duplicate_key_fatal(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("MaxBurstLength=65536\0MaxBurstLength=65536\0")),
			 ISCSI_LOGIN_INITIATOR_ERROR);
	/* across the PDUs of one login */
	fx_reset(f, true);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("HeaderDigest=None\0")),
			 ISCSI_LOGIN_OK);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("HeaderDigest=None\0")),
			 ISCSI_LOGIN_INITIATOR_ERROR);
	/* a key answered Reject was negotiated all the same */
	fx_reset(f, true);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("MaxConnections=0\0")),
			 ISCSI_LOGIN_OK);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("MaxConnections=1\0")),
			 ISCSI_LOGIN_INITIATOR_ERROR);
}

static void test_identity_redeclared(void **state)
{
	struct fx *f = *state;

	/* libiscsi resends its identity keys in the operational stage after AuthMethod=None */
	assert_int_equal(fx_login(f, ISCSI_STAGE_SECURITY,
				  TEXT("InitiatorName=" INITIATOR "\0TargetName=" TARGET
				       "\0SessionType=Normal\0AuthMethod=CHAP,None\0")),
			 ISCSI_LOGIN_OK);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("InitiatorName=" INITIATOR "\0TargetName=" TARGET
				       "\0SessionType=Normal\0MaxRecvDataSegmentLength=8192\0")),
			 ISCSI_LOGIN_OK);
	/* a different target after authentication is not a resend */
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("TargetName=iqn.2024-01.org.example:other\0")),
			 ISCSI_LOGIN_INITIATOR_ERROR);
	assert_string_equal(f->sess.target_name, TARGET);
	fx_reset(f, true);
	assert_int_equal(fx_login(f, ISCSI_STAGE_SECURITY, TEXT("SessionType=Normal\0")),
			 ISCSI_LOGIN_OK);
	assert_int_equal(fx_login(f, ISCSI_STAGE_SECURITY, TEXT("SessionType=Discovery\0")),
			 ISCSI_LOGIN_INITIATOR_ERROR);
	assert_int_equal(f->sess.session_type, ISCSI_SESSION_NORMAL);
}

static void test_leading_only_on_non_leading(void **state)
{
	struct fx *f = *state;

	fx_reset(f, false);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("MaxConnections=1\0InitialR2T=No\0ErrorRecoveryLevel=0\0"
				       "MaxBurstLength=65536\0HeaderDigest=None\0SessionType=Normal\0"
				       "MaxRecvDataSegmentLength=65536\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "MaxConnections"), "Reject");
	assert_string_equal(fx_answer(f, "InitialR2T"), "Reject");
	assert_string_equal(fx_answer(f, "ErrorRecoveryLevel"), "Reject");
	assert_string_equal(fx_answer(f, "MaxBurstLength"), "Reject");
	assert_int_equal(f->sess.max_burst_length, 262144);
	/* connection keys are negotiated on every connection */
	assert_string_equal(fx_answer(f, "HeaderDigest"), "None");
	assert_int_equal(f->conn.max_send_dsl, 65536);
	assert_string_equal(fx_answer(f, "MaxRecvDataSegmentLength"), "262144");
	/* SessionType is recorded for the caller's check against the session */
	assert_null(fx_answer(f, "SessionType"));
}

/* ---- FirstBurstLength <= MaxBurstLength ---- */

static void test_first_burst_settled_in_request(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("FirstBurstLength=262144\0MaxBurstLength=65536\0")), ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "FirstBurstLength"), "65536");
	assert_string_equal(fx_answer(f, "MaxBurstLength"), "65536");
	assert_int_equal(f->sess.first_burst_length, 65536);
}

static void test_first_burst_settled_at_finish(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("FirstBurstLength=262144\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "FirstBurstLength"), "262144");
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("MaxBurstLength=16384\0")),
			 ISCSI_LOGIN_OK);
	f->out.len = 0;
	iscsi_negotiate_finish(&f->neg, &f->out);
	assert_int_equal(f->sess.max_burst_length, 16384);
	assert_int_equal(f->sess.first_burst_length, 16384);
	/* a limit below the default caps an unnegotiated FirstBurstLength too */
	fx_reset(f, true);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("MaxBurstLength=4096\0")),
			 ISCSI_LOGIN_OK);
	iscsi_negotiate_finish(&f->neg, &f->out);
	assert_int_equal(f->sess.first_burst_length, 4096);
}

/* ---- order ---- */

static void test_response_order(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("DataDigest=None\0MaxConnections=1\0Unknown=1\0HeaderDigest=None\0"
				       "InitiatorName=" INITIATOR "\0ImmediateData=Yes\0")),
			 ISCSI_LOGIN_OK);
	assert_int_equal(fx_pairs(f), 6);
	assert_string_equal(fx_key_at(f, 0), "DataDigest=None");
	assert_string_equal(fx_key_at(f, 1), "MaxConnections=1");
	assert_string_equal(fx_key_at(f, 2), "Unknown=NotUnderstood");
	assert_string_equal(fx_key_at(f, 3), "HeaderDigest=None");
	assert_string_equal(fx_key_at(f, 4), "ImmediateData=Yes");
	assert_string_equal(fx_key_at(f, 5), "MaxRecvDataSegmentLength=262144");
}

/* ---- security stage ---- */

static void test_auth_method_none(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_SECURITY,
				  TEXT("InitiatorName=" INITIATOR "\0TargetName=" TARGET
				       "\0SessionType=Normal\0AuthMethod=CHAP,None\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "AuthMethod"), "None");
	assert_true(f->neg.auth_chosen);
	/* nothing operational in a security stage answer */
	assert_int_equal(fx_pairs(f), 1);
}

static void test_auth_method_unsupported(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_SECURITY,
				  TEXT("InitiatorName=" INITIATOR "\0AuthMethod=CHAP,SRP\0")),
			 ISCSI_LOGIN_AUTH_FAILED);
	assert_string_equal(fx_answer(f, "AuthMethod"), "Reject");
	assert_false(f->neg.auth_chosen);
}

static void test_auth_method_outside_security(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("AuthMethod=None\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "AuthMethod"), "Reject");
	assert_false(f->neg.auth_chosen);
}

static void test_operational_key_in_security(void **state)
{
	struct fx *f = *state;

	/* before any AuthMethod: a protocol error */
	assert_int_equal(fx_login(f, ISCSI_STAGE_SECURITY,
				  TEXT("InitiatorName=" INITIATOR "\0HeaderDigest=None\0")),
			 ISCSI_LOGIN_INITIATOR_ERROR);
	/* with AuthMethod=None settled (whatever the order in the PDU) it is negotiated */
	fx_reset(f, true);
	assert_int_equal(fx_login(f, ISCSI_STAGE_SECURITY,
				  TEXT("HeaderDigest=None\0MaxRecvDataSegmentLength=65536\0AuthMethod=None\0")),
			 ISCSI_LOGIN_OK);
	assert_string_equal(fx_key_at(f, 0), "HeaderDigest=None");
	assert_string_equal(fx_key_at(f, 1), "AuthMethod=None");
	assert_int_equal(fx_pairs(f), 2);
	assert_int_equal(f->conn.max_send_dsl, 65536);
}

static void test_chap_keys_left_to_caller(void **state)
{
	struct fx *f = *state;

	assert_int_equal(fx_login(f, ISCSI_STAGE_SECURITY,
				  TEXT("AuthMethod=None\0CHAP_A=5\0CHAP_N=user\0CHAP_R=0x00\0")),
			 ISCSI_LOGIN_OK);
	assert_int_equal(fx_pairs(f), 1);
	assert_string_equal(fx_answer(f, "AuthMethod"), "None");
}

/* ---- finish ---- */

static void test_finish_declarations(void **state)
{
	struct fx *f = *state;

	f->lim.target_alias = "disk one";
	/* no operational request answered yet: finish declares ours */
	f->neg.stage = ISCSI_STAGE_OPERATIONAL;
	iscsi_negotiate_finish(&f->neg, &f->out);
	assert_string_equal(fx_key_at(f, 0), "MaxRecvDataSegmentLength=262144");
	assert_string_equal(fx_key_at(f, 1), "TargetAlias=disk one");
	assert_int_equal(f->conn.max_recv_dsl, 262144);
	f->out.len = 0;
	iscsi_negotiate_finish(&f->neg, &f->out);
	assert_int_equal(fx_pairs(f), 0);
	/* discovery sessions get no alias */
	fx_reset(f, true);
	f->lim.target_alias = "disk one";
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL, TEXT("SessionType=Discovery\0")),
			 ISCSI_LOGIN_OK);
	f->out.len = 0;
	iscsi_negotiate_finish(&f->neg, &f->out);
	assert_int_equal(fx_pairs(f), 0);
}

static void test_finish_from_security_stage(void **state)
{
	struct fx *f = *state;

	/* open-iscsi discovery: security straight to full feature phase */
	assert_int_equal(fx_login(f, ISCSI_STAGE_SECURITY,
				  TEXT("InitiatorName=" INITIATOR "\0SessionType=Discovery\0AuthMethod=None\0")),
			 ISCSI_LOGIN_OK);
	iscsi_negotiate_finish(&f->neg, &f->out);
	assert_int_equal(fx_pairs(f), 1);
	assert_string_equal(fx_answer(f, "AuthMethod"), "None");
	/* RFC 7143 13.12: nothing declared, the default holds both ways */
	assert_int_equal(f->conn.max_recv_dsl, 8192);
	assert_int_equal(f->conn.max_send_dsl, 8192);
}

/* ---- full feature phase Text ---- */

static void test_text_full_feature(void **state)
{
	struct fx *f = *state;

	strcpy(f->sess.initiator_alias, "old");
	assert_int_equal(fx_text(f, TEXT("MaxRecvDataSegmentLength=16384\0InitiatorAlias=new\0"
					 "MaxBurstLength=512\0HeaderDigest=None\0SendTargets=All\0"
					 "Foo=1\0TargetAlias=x\0CHAP_A=5\0")),
			 ISCSI_LOGIN_OK);
	assert_int_equal(f->conn.max_send_dsl, 16384);
	assert_string_equal(f->sess.initiator_alias, "new");
	assert_null(fx_answer(f, "MaxRecvDataSegmentLength"));
	assert_null(fx_answer(f, "InitiatorAlias"));
	/* LO and IO keys belong to the login */
	assert_string_equal(fx_answer(f, "MaxBurstLength"), "Reject");
	assert_string_equal(fx_answer(f, "HeaderDigest"), "Reject");
	assert_null(fx_answer(f, "SendTargets"));
	assert_string_equal(fx_answer(f, "Foo"), "NotUnderstood");
	assert_string_equal(fx_answer(f, "TargetAlias"), "Reject");
	assert_string_equal(fx_answer(f, "CHAP_A"), "Reject");
	assert_int_equal(f->sess.max_burst_length, 262144);
	assert_int_equal(fx_text(f, TEXT("MaxRecvDataSegmentLength=100\0")), ISCSI_LOGIN_OK);
	assert_string_equal(fx_answer(f, "MaxRecvDataSegmentLength"), "Reject");
	assert_int_equal(f->conn.max_send_dsl, 16384);
	/* a new Text request may declare it again; one request may not twice */
	assert_int_equal(fx_text(f, TEXT("MaxRecvDataSegmentLength=32768\0")), ISCSI_LOGIN_OK);
	assert_int_equal(f->conn.max_send_dsl, 32768);
	assert_int_equal(fx_text(f, TEXT("InitiatorAlias=a\0InitiatorAlias=b\0")),
			 ISCSI_LOGIN_INITIATOR_ERROR);
}

/* ---- real initiators ---- */

static bool open_iscsi_knows(const char *pair)
{
	/* the keys open-iscsi's login parser accepts in the operational stage */
	static const char *const known[] = {
		"TargetAlias", "TargetAddress", "TargetPortalGroupTag", "InitialR2T",
		"ImmediateData", "MaxRecvDataSegmentLength", "FirstBurstLength", "MaxBurstLength",
		"HeaderDigest", "DataDigest", "DefaultTime2Wait", "DefaultTime2Retain", "OFMarker",
		"OFMarkInt", "IFMarker", "IFMarkInt", "DataPDUInOrder", "DataSequenceInOrder",
		"MaxOutstandingR2T", "MaxConnections", "ErrorRecoveryLevel",
	};
	size_t key_len = strcspn(pair, "=");

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (strlen(known[i]) == key_len && strncmp(pair, known[i], key_len) == 0)
			return true;
	}
	return false;
}

static void test_open_iscsi_login(void **state)
{
	struct fx *f = *state;

	f->lim.target_alias = "disk1";
	assert_int_equal(fx_login(f, ISCSI_STAGE_SECURITY,
				  TEXT("InitiatorName=iqn.1993-08.org.debian:01:4f2b1a0c9d8e\0"
				       "InitiatorAlias=host\0TargetName=" TARGET "\0SessionType=Normal\0"
				       "AuthMethod=None\0")),
			 ISCSI_LOGIN_OK);
	assert_int_equal(fx_pairs(f), 1);
	assert_string_equal(fx_answer(f, "AuthMethod"), "None");
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("HeaderDigest=None\0DataDigest=None\0DefaultTime2Wait=2\0"
				       "DefaultTime2Retain=0\0IFMarker=No\0OFMarker=No\0ErrorRecoveryLevel=0\0"
				       "InitialR2T=No\0ImmediateData=Yes\0MaxBurstLength=16776192\0"
				       "FirstBurstLength=262144\0MaxOutstandingR2T=1\0MaxConnections=1\0"
				       "DataPDUInOrder=Yes\0DataSequenceInOrder=Yes\0"
				       "MaxRecvDataSegmentLength=262144\0")),
			 ISCSI_LOGIN_OK);
	iscsi_negotiate_finish(&f->neg, &f->out);
	/* open-iscsi fails the login unless these are exactly what it offered */
	assert_string_equal(fx_answer(f, "MaxOutstandingR2T"), "1");
	assert_string_equal(fx_answer(f, "MaxConnections"), "1");
	assert_string_equal(fx_answer(f, "ErrorRecoveryLevel"), "0");
	assert_string_equal(fx_answer(f, "HeaderDigest"), "None");
	assert_string_equal(fx_answer(f, "DataDigest"), "None");
	assert_string_equal(fx_answer(f, "InitialR2T"), "No");
	assert_string_equal(fx_answer(f, "ImmediateData"), "Yes");
	assert_string_equal(fx_answer(f, "MaxBurstLength"), "1048576");
	assert_string_equal(fx_answer(f, "FirstBurstLength"), "262144");
	assert_string_equal(fx_answer(f, "TargetAlias"), "disk1");
	assert_int_equal(fx_answer_count(f, "MaxRecvDataSegmentLength"), 1);
	/* and it fails it on any key it does not know */
	for (int i = 0; i < fx_pairs(f); i++)
		assert_true(open_iscsi_knows(fx_key_at(f, i)));
	assert_int_equal(f->conn.max_send_dsl, 262144);
	assert_int_equal(f->conn.max_recv_dsl, 262144);
	assert_int_equal(f->sess.default_time2retain, 0);
}

static void test_libiscsi_login(void **state)
{
	struct fx *f = *state;

	/* libiscsi without CHAP: everything in one operational PDU */
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("InitiatorName=" INITIATOR "\0TargetName=" TARGET "\0"
				       "SessionType=Normal\0HeaderDigest=None,CRC32C\0DataDigest=None\0"
				       "InitialR2T=No\0ImmediateData=Yes\0MaxBurstLength=16776192\0"
				       "FirstBurstLength=262144\0DefaultTime2Wait=2\0DefaultTime2Retain=0\0"
				       "MaxOutstandingR2T=1\0ErrorRecoveryLevel=0\0IFMarker=No\0OFMarker=No\0"
				       "MaxConnections=1\0MaxRecvDataSegmentLength=262144\0"
				       "DataPDUInOrder=Yes\0DataSequenceInOrder=Yes\0")),
			 ISCSI_LOGIN_OK);
	iscsi_negotiate_finish(&f->neg, &f->out);
	assert_null(fx_answer(f, "InitiatorName"));
	assert_string_equal(fx_answer(f, "HeaderDigest"), "None");
	/* libiscsi reads these with strtol: decimal numbers */
	assert_string_equal(fx_answer(f, "MaxBurstLength"), "1048576");
	assert_string_equal(fx_answer(f, "FirstBurstLength"), "262144");
	assert_string_equal(fx_answer(f, "MaxRecvDataSegmentLength"), "262144");
	assert_string_equal(fx_answer(f, "InitialR2T"), "No");
	assert_string_equal(fx_answer(f, "ImmediateData"), "Yes");
	assert_int_equal(fx_answer_count(f, "MaxRecvDataSegmentLength"), 1);
	for (int i = 0; i < fx_pairs(f); i++) {
		const char *pair = fx_key_at(f, i);

		assert_null(strstr(pair, "NotUnderstood"));
		assert_null(strstr(pair, "Irrelevant"));
	}
	assert_string_equal(f->sess.initiator_name, INITIATOR);
	assert_string_equal(f->sess.target_name, TARGET);
	assert_false(f->sess.initial_r2t);
	assert_true(f->sess.immediate_data);
	assert_int_equal(f->sess.max_burst_length, 1048576);
	assert_int_equal(f->sess.first_burst_length, 262144);
}

/* ---- bounds ---- */

static void test_bounds(void **state)
{
	struct fx *f = *state;
	char small[24];

	/* more pairs than the named limit */
	f->neg.stage = ISCSI_STAGE_OPERATIONAL;
	assert_int_equal(iscsi_negotiate_login(&f->neg, f->kv, ISCSI_TEXT_MAX_KEYS + 1, &f->out),
			 ISCSI_LOGIN_INITIATOR_ERROR);
	assert_int_equal(iscsi_negotiate_login(&f->neg, f->kv, -1, &f->out),
			 ISCSI_LOGIN_INITIATOR_ERROR);
	/* an answer that does not fit the response buffer */
	fx_reset(f, true);
	f->out.buf = small;
	f->out.cap = sizeof(small);
	assert_int_equal(fx_login(f, ISCSI_STAGE_OPERATIONAL,
				  TEXT("SomeRatherLongUnknownKey=1\0")),
			 ISCSI_LOGIN_OUT_OF_RESOURCES);
	assert_true(f->out.overflow);
	assert_int_equal(f->out.len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_parse_pairs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_missing_equals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_empty_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_key_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_value_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_no_trailing_nul, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_embedded_empty_pair, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_max_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_min_rule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_rule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_and_rule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_or_rule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_rule_digests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_rule_task_reporting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_protocol_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_recovery_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_declarative, setup, teardown),
		cmocka_unit_test_setup_teardown(test_our_dsl_declared_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_initiator_name_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_name_max_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_type, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discovery_irrelevant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_understood, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reject_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reject_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hex_numbers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_obsolete_markers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_target_only_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_answer_values_silent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_key_fatal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identity_redeclared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leading_only_on_non_leading, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_burst_settled_in_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_burst_settled_at_finish, setup, teardown),
		cmocka_unit_test_setup_teardown(test_response_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_method_none, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_method_unsupported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_method_outside_security, setup, teardown),
		cmocka_unit_test_setup_teardown(test_operational_key_in_security, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chap_keys_left_to_caller, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_declarations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_from_security_stage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_text_full_feature, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_iscsi_login, setup, teardown),
		cmocka_unit_test_setup_teardown(test_libiscsi_login, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
