/*
 * iSCSI text keys (RFC 7143 section 6) and login/text parameter negotiation
 * (RFC 7143 section 13): each key with its own rule.
 */
#ifndef ISCSI_PARAM_H
#define ISCSI_PARAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ISCSI_KEY_NAME_MAX 63		/* RFC 7143 6.1: key names up to 63 bytes */
#define ISCSI_VALUE_MAX 8192		/* longest value we accept (CHAP_C may be long) */
#define ISCSI_TEXT_MAX_KEYS 256		/* keys per login/text exchange */
#define ISCSI_NAME_MAX 223		/* RFC 7143 4.2.7.1: iSCSI names up to 223 bytes */
#define ISCSI_ALIAS_MAX 255

/* One received key=value pair: points into the caller's buffer. */
struct iscsi_kv {
	const char *key;
	const char *value;
};

/* Splits "key=value\0key=value\0..." (the last \0 may be missing if len
 * ends exactly at the value). Returns the number of pairs, or -1 if the
 * text is malformed (no '=', empty or too-long key name, value too long,
 * more than max pairs). */
int iscsi_text_parse(char *data, size_t len, struct iscsi_kv *kv, int max);

/* The key=value items of a text as iscsi_text_parse() would see them
 * (stray NULs carry none), well-formed or not: checked against a limit
 * before parsing. */
size_t iscsi_text_count(const char *data, size_t len);

/* A growing output text buffer for responses. */
struct iscsi_text_out {
	char *buf;
	size_t cap;
	size_t len;
	bool overflow;	/* set when an append did not fit */
};
/* Appends "key=value\0". */
void iscsi_text_append(struct iscsi_text_out *out, const char *key, const char *value);

enum iscsi_session_type {
	ISCSI_SESSION_NORMAL = 0,
	ISCSI_SESSION_DISCOVERY = 1,
};

/* Session-wide values (leading-only keys), RFC 7143 defaults after init. */
struct iscsi_session_params {
	enum iscsi_session_type session_type;
	char initiator_name[ISCSI_NAME_MAX + 1];
	char initiator_alias[ISCSI_ALIAS_MAX + 1];
	char target_name[ISCSI_NAME_MAX + 1];
	uint32_t max_connections;
	bool initial_r2t;
	bool immediate_data;
	uint32_t max_burst_length;
	uint32_t first_burst_length;
	uint32_t default_time2wait;
	uint32_t default_time2retain;
	uint32_t max_outstanding_r2t;
	bool data_pdu_in_order;
	bool data_sequence_in_order;
	uint32_t error_recovery_level;
	uint32_t protocol_level;	/* iSCSIProtocolLevel (RFC 7144) */
};

/* Per-connection values. */
struct iscsi_conn_params {
	bool header_digest;		/* CRC32C */
	bool data_digest;		/* CRC32C */
	uint32_t max_send_dsl;		/* the initiator's MaxRecvDataSegmentLength */
	uint32_t max_recv_dsl;		/* ours, as we declared it */
};

/* What this target accepts and prefers (from configuration). */
struct iscsi_target_limits {
	uint32_t max_recv_dsl;		/* declared to the initiator */
	uint32_t max_connections;
	bool initial_r2t;		/* our preference: Yes forces Yes (OR) */
	bool immediate_data;		/* our preference: No forces No (AND) */
	uint32_t max_burst_length;
	uint32_t first_burst_length;
	uint32_t default_time2wait;
	uint32_t default_time2retain;
	uint32_t max_outstanding_r2t;
	uint32_t max_error_recovery_level;
	bool allow_crc32c;		/* digests offered back when the initiator lists CRC32C */
	const char *target_alias;	/* may be NULL */
	/* RFC 7143 12.1: AuthMethod=CHAP is required (and None refused) for these sessions */
	bool chap_normal;
	bool chap_discovery;
};

void iscsi_limits_default(struct iscsi_target_limits *lim);
void iscsi_session_params_default(struct iscsi_session_params *sp);
void iscsi_conn_params_default(struct iscsi_conn_params *cp);

enum iscsi_login_stage {
	ISCSI_STAGE_SECURITY = 0,
	ISCSI_STAGE_OPERATIONAL = 1,
	ISCSI_STAGE_FULL_FEATURE = 3,
};

/* State of one login's negotiation (lives for the login phase). */
struct iscsi_negotiation {
	const struct iscsi_target_limits *limits;
	struct iscsi_session_params *sess;
	struct iscsi_conn_params *conn;
	bool leading;			/* leading connection: LO keys allowed */
	enum iscsi_login_stage stage;	/* stage of the PDU being answered */
	uint64_t seen;			/* bit per known key already negotiated */
	bool auth_chosen;		/* AuthMethod answered */
	bool auth_chap;			/* AuthMethod=CHAP answered: the login code runs the exchange */
	bool sent_declarations;		/* our MaxRecvDataSegmentLength etc. sent */
};

/* Login status class/detail returned for fatal negotiation errors
 * (RFC 7143 11.13.5), as (class << 8) | detail. 0 = OK. */
#define ISCSI_LOGIN_OK 0x0000
#define ISCSI_LOGIN_INITIATOR_ERROR 0x0200
#define ISCSI_LOGIN_AUTH_FAILED 0x0201
#define ISCSI_LOGIN_FORBIDDEN 0x0202
#define ISCSI_LOGIN_NOT_FOUND 0x0203
#define ISCSI_LOGIN_TARGET_REMOVED 0x0204
#define ISCSI_LOGIN_UNSUPPORTED_VERSION 0x0205
#define ISCSI_LOGIN_TOO_MANY_CONNECTIONS 0x0206
#define ISCSI_LOGIN_MISSING_PARAMETER 0x0207
#define ISCSI_LOGIN_CANT_INCLUDE_IN_SESSION 0x0208
#define ISCSI_LOGIN_SESSION_TYPE_UNSUPPORTED 0x0209
#define ISCSI_LOGIN_SESSION_DOES_NOT_EXIST 0x020a
#define ISCSI_LOGIN_INVALID_DURING_LOGIN 0x020b
#define ISCSI_LOGIN_TARGET_ERROR 0x0300
#define ISCSI_LOGIN_SERVICE_UNAVAILABLE 0x0301
#define ISCSI_LOGIN_OUT_OF_RESOURCES 0x0302

void iscsi_negotiation_init(struct iscsi_negotiation *neg, const struct iscsi_target_limits *lim,
			    struct iscsi_session_params *sess, struct iscsi_conn_params *conn,
			    bool leading);

/*
 * Answers the keys of one login request (all PDUs of it, C bit resolved)
 * in neg->stage: appends responses to out, updates sess/conn. Declarative
 * keys from the initiator (InitiatorName, TargetName, SessionType,
 * InitiatorAlias, MaxRecvDataSegmentLength) are stored, not echoed.
 * Unknown keys get NotUnderstood, out-of-range or malformed values Reject,
 * keys irrelevant for the session type Irrelevant. Returns ISCSI_LOGIN_OK or
 * a login status for a fatal error (e.g. a key negotiated twice, an
 * operational key in the security stage with AuthMethod pending).
 */
int iscsi_negotiate_login(struct iscsi_negotiation *neg, const struct iscsi_kv *kv, int n,
			  struct iscsi_text_out *out);

/*
 * At the transition to full feature phase: appends the target's own
 * declarations not yet sent (MaxRecvDataSegmentLength, TargetAlias ...) and
 * settles values that depend on each other (FirstBurstLength <= MaxBurstLength).
 */
void iscsi_negotiate_finish(struct iscsi_negotiation *neg, struct iscsi_text_out *out);

/*
 * Full feature phase Text request keys other than SendTargets (RFC 7143
 * 13: only a few keys may be renegotiated; the rest get Reject or
 * NotUnderstood). SendTargets is handled by the caller.
 */
int iscsi_negotiate_text(struct iscsi_negotiation *neg, const struct iscsi_kv *kv, int n,
			 struct iscsi_text_out *out);

#endif
