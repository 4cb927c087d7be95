/*
 * CHAP (RFC 1994) as iSCSI carries it in the security negotiation stage
 * (RFC 7143 12.1.3): the hash primitives, the binary-value encodings of
 * RFC 7143 6.1, the credentials from the command line, and the target's
 * side of one exchange (CHAP_A -> CHAP_A/CHAP_I/CHAP_C -> CHAP_N/CHAP_R,
 * with CHAP_I/CHAP_C from the initiator for mutual authentication).
 */
#ifndef ISCSI_CHAP_H
#define ISCSI_CHAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iscsi/param.h"

/* RFC 7143 12.1.3: secrets of less than 96 bits need IPsec; initiators
 * (open-iscsi, Windows) refuse shorter ones, so we never configure them */
#define CHAP_SECRET_MIN 12
#define CHAP_SECRET_MAX 255
/* a CHAP name travels as ChapUserName in SESSION_START (SPT_CHAP_USER_MAX) */
#define CHAP_NAME_MAX 255
/* RFC 7143 12.1.3: C and R are binary values of at most 1024 bytes */
#define CHAP_BINARY_MAX 1024
/* the longest digest of the algorithms we offer (SHA-256, SHA3-256) */
#define CHAP_DIGEST_MAX 32
/* our challenges: at least 16 random bytes, the digest length if longer */
#define CHAP_CHALLENGE_MIN 16
/* "0x" + two hex digits per byte + NUL, enough for any binary value we send */
#define CHAP_TEXT_MAX (2 + 2 * CHAP_BINARY_MAX + 1)

/* RFC 1994, RFC 7143 12.1.3 and the IANA "PPP Authentication Algorithms" */
enum chap_alg {
	CHAP_ALG_MD5 = 5,
	CHAP_ALG_SHA1 = 6,
	CHAP_ALG_SHA256 = 7,
	CHAP_ALG_SHA3_256 = 8,
};

/* RFC 7143 6.1: the two encodings of a binary-value */
enum chap_encoding {
	CHAP_ENC_HEX,		/* "0x" / "0X" */
	CHAP_ENC_BASE64,	/* "0b" / "0B" (RFC 4648) */
};

/* One name and secret ("USER:SECRET" on the command line). */
struct chap_credentials {
	bool set;
	char user[CHAP_NAME_MAX + 1];
	uint8_t secret[CHAP_SECRET_MAX];
	size_t secret_len;
};

/* What the target asks for and proves. */
struct chap_config {
	struct chap_credentials initiator;	/* --chap: normal sessions must prove it */
	struct chap_credentials discovery;	/* --discovery-chap: discovery sessions must prove it */
	struct chap_credentials target;		/* --mutual-chap: what we prove when asked */
};

enum chap_state {
	CHAP_STATE_INIT = 0,	/* AuthMethod=CHAP agreed in the request being answered */
	CHAP_STATE_WAIT_A,	/* waiting for CHAP_A */
	CHAP_STATE_WAIT_R,	/* challenge sent, waiting for CHAP_N and CHAP_R */
	CHAP_STATE_DONE,	/* the initiator proved its secret */
	CHAP_STATE_FAILED,
};

/* The target's side of one exchange (lives in the connection during login). */
struct chap_exchange {
	enum chap_state state;
	int alg;
	uint8_t id;
	uint8_t challenge[CHAP_DIGEST_MAX];	/* ours: CHAP_CHALLENGE_MIN or the digest length */
	size_t challenge_len;
	char user[CHAP_NAME_MAX + 1];	/* the authenticated CHAP_N once DONE */
	bool mutual;			/* we answered the initiator's challenge */
};

/* "USER:SECRET", the secret being everything after the first ':'. 0 or -1 with err. */
int chap_credentials_parse(const char *spec, struct chap_credentials *c, char *err, size_t errlen);
/* The same from separate fields (a configuration file): the user name may
 * then hold ':' (an IQN). 0 or -1 with err. */
int chap_credentials_set(struct chap_credentials *c, const char *user, size_t user_len,
			 const char *secret, char *err, size_t errlen);
/* Cross-checks of a whole configuration (RFC 7143 12.1.3). 0 or -1 with err. */
int chap_config_check(const struct chap_config *cfg, char *err, size_t errlen);
/* Overwrites every secret. */
void chap_config_wipe(struct chap_config *cfg);

/* Digest length of an algorithm we implement, 0 for any other. */
size_t chap_digest_len(int alg);
/* RFC 7143 12.1.3: the first algorithm of the initiator's CHAP_A list we support, or -1. */
int chap_alg_pick(const char *list);
/* RFC 1994 4.1: Response = H(Identifier || secret || Challenge). Digest length or -1. */
int chap_response(int alg, uint8_t id, const uint8_t *secret, size_t secret_len,
		  const uint8_t *challenge, size_t challenge_len, uint8_t *out);
/* Constant-time equality of two byte strings of the same length (CRYPTO_memcmp). */
bool chap_equal(const uint8_t *a, const uint8_t *b, size_t len);

/* RFC 7143 6.1 binary-value to bytes: 0 or -1 if malformed, empty or longer than cap. */
int chap_binary_decode(const char *text, uint8_t *out, size_t cap, size_t *len,
		       enum chap_encoding *enc);
/* Bytes to a binary-value with its prefix. 0 or -1 if it does not fit. */
int chap_binary_encode(const uint8_t *bin, size_t len, enum chap_encoding enc, char *out,
		       size_t cap);

/* True for the CHAP_* keys of RFC 7143 12.1.3. */
bool chap_is_key(const char *key);

/*
 * Answers the CHAP keys of one security-stage request once AuthMethod=CHAP
 * is agreed: appends CHAP_A/CHAP_I/CHAP_C (challenge) or, for mutual CHAP,
 * CHAP_N/CHAP_R to out. `peer` is what the initiator must prove, `self`
 * (may be unset) what we prove back. Returns ISCSI_LOGIN_OK, or
 * ISCSI_LOGIN_AUTH_FAILED (ISCSI_LOGIN_TARGET_ERROR if we cannot hash or
 * draw random bytes) with *why set for the log; the exchange is then over.
 */
int chap_target_step(struct chap_exchange *x, const struct chap_credentials *peer,
		     const struct chap_credentials *self, const struct iscsi_kv *kv, int n,
		     struct iscsi_text_out *out, const char **why);

#endif
