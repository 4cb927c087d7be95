/*
 * CHAP for iSCSI: RFC 1994 responses through OpenSSL's EVP digests, the
 * binary-value encodings of RFC 7143 6.1, and the target's side of the
 * exchange of RFC 7143 12.1.3:
 *
 *   initiator                         target
 *   AuthMethod=CHAP,None        ->    AuthMethod=CHAP
 *   CHAP_A=<A1,A2...>           ->    CHAP_A=<A> CHAP_I=<I> CHAP_C=<C>
 *   CHAP_N=<N> CHAP_R=<R>
 *     [CHAP_I=<I'> CHAP_C=<C'>] ->    [CHAP_N=<N'> CHAP_R=<R'>]   (mutual)
 *
 * Every failure ends the exchange with an authentication failure (login
 * status 0x0201); the login code sends it and closes the connection.
 */
#include "iscsi/chap.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

_Static_assert(CHAP_CHALLENGE_MIN <= CHAP_DIGEST_MAX, "our challenge fits its buffer");
_Static_assert(CHAP_DIGEST_MAX <= CHAP_BINARY_MAX, "a digest is a binary value");

/* "CHAP_A=<number>", "CHAP_I=<number>": a numerical value up to 255 fits in this */
#define CHAP_NUMBER_TEXT 8
/* RFC 7143 6.1: numerical values of CHAP_A and CHAP_I are small; longer text is not one */
#define CHAP_NUMBER_DIGITS_MAX 10

/* ---- credentials ---- */

int chap_credentials_set(struct chap_credentials *c, const char *user, size_t user_len,
			 const char *secret, char *err, size_t errlen)
{
	size_t secret_len = strlen(secret);

	memset(c, 0, sizeof(*c));
	if (user_len == 0) {
		snprintf(err, errlen, "the CHAP user name is empty");
		return -1;
	}
	if (user_len > CHAP_NAME_MAX) {
		snprintf(err, errlen, "the CHAP user name is %zu bytes, at most %d allowed", user_len,
			 CHAP_NAME_MAX);
		return -1;
	}
	/* RFC 7143 12.1.3: less than 96 random bits is only safe under IPsec; initiators refuse it */
	if (secret_len < CHAP_SECRET_MIN) {
		snprintf(err, errlen,
			 "the CHAP secret is %zu bytes; it must be at least %d bytes (RFC 7143 12.1.3, "
			 "and initiators such as open-iscsi refuse shorter ones)",
			 secret_len, CHAP_SECRET_MIN);
		return -1;
	}
	if (secret_len > CHAP_SECRET_MAX) {
		snprintf(err, errlen, "the CHAP secret is %zu bytes, at most %d allowed", secret_len,
			 CHAP_SECRET_MAX);
		return -1;
	}
	memcpy(c->user, user, user_len);
	c->user[user_len] = '\0';
	memcpy(c->secret, secret, secret_len);
	c->secret_len = secret_len;
	c->set = true;
	return 0;
}

int chap_credentials_parse(const char *spec, struct chap_credentials *c, char *err, size_t errlen)
{
	const char *colon = spec ? strchr(spec, ':') : NULL;

	memset(c, 0, sizeof(*c));
	if (colon == NULL) {
		snprintf(err, errlen, "expected USER:SECRET");
		return -1;
	}
	return chap_credentials_set(c, spec, (size_t)(colon - spec), colon + 1, err, errlen);
}

static bool chap_same_secret(const struct chap_credentials *a, const struct chap_credentials *b)
{
	return a->set && b->set && a->secret_len == b->secret_len &&
	       chap_equal(a->secret, b->secret, a->secret_len);
}

int chap_config_check(const struct chap_config *cfg, char *err, size_t errlen)
{
	int rc = -1;

	if (!cfg->target.set) {
		rc = 0;
		goto out;
	}
	/* mutual CHAP answers a challenge sent inside a CHAP exchange we ask for */
	if (!cfg->initiator.set && !cfg->discovery.set) {
		snprintf(err, errlen,
			 "mutual CHAP needs CHAP for normal or discovery sessions (--chap or --discovery-chap)");
		goto out;
	}
	/*
	 * RFC 7143 12.1.3: a secret used to authenticate initiators MUST NOT be
	 * configured to authenticate a target, or one side can reflect the
	 * other's challenge and pass.
	 */
	if (chap_same_secret(&cfg->target, &cfg->initiator) ||
	    chap_same_secret(&cfg->target, &cfg->discovery)) {
		snprintf(err, errlen,
			 "the target's mutual CHAP secret must differ from the secret initiators prove "
			 "(RFC 7143 12.1.3)");
		goto out;
	}
	rc = 0;
out:
	return rc;
}

void chap_config_wipe(struct chap_config *cfg)
{
	OPENSSL_cleanse(cfg, sizeof(*cfg));
}

/* ---- hashes ---- */

static const EVP_MD *chap_md(int alg)
{
	switch (alg) {
	case CHAP_ALG_MD5:
		return EVP_md5();
	case CHAP_ALG_SHA1:
		return EVP_sha1();
	case CHAP_ALG_SHA256:
		return EVP_sha256();
	case CHAP_ALG_SHA3_256:
		return EVP_sha3_256();
	default:
		return NULL;
	}
}

size_t chap_digest_len(int alg)
{
	switch (alg) {
	case CHAP_ALG_MD5:
		return 16;
	case CHAP_ALG_SHA1:
		return 20;
	case CHAP_ALG_SHA256:
	case CHAP_ALG_SHA3_256:
		return 32;
	default:
		return 0;
	}
}

int chap_response(int alg, uint8_t id, const uint8_t *secret, size_t secret_len,
		  const uint8_t *challenge, size_t challenge_len, uint8_t *out)
{
	const EVP_MD *md = chap_md(alg);
	EVP_MD_CTX *ctx = NULL;
	unsigned int len = 0;
	int rc = -1;

	if (md == NULL || (size_t)EVP_MD_get_size(md) != chap_digest_len(alg))
		goto out;
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		goto out;
	/* RFC 1994 4.1: the hash of Identifier, then the secret, then the Challenge */
	if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, &id, 1) != 1 ||
	    EVP_DigestUpdate(ctx, secret, secret_len) != 1 ||
	    EVP_DigestUpdate(ctx, challenge, challenge_len) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, &len) != 1)
		goto out;
	rc = (int)len;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

bool chap_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
	/* the time taken must not tell an attacker how many leading bytes were right */
	return CRYPTO_memcmp(a, b, len) == 0;
}

/* ---- text values (RFC 7143 6.1) ---- */

static int chap_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int chap_base64_digit(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* RFC 7143 6.1: a numerical-value, decimal or "0x" hex, here at most max. */
static bool chap_parse_number(const char *s, size_t len, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;
	bool hex = len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	size_t i = hex ? 2 : 0;

	if (len == 0 || len > CHAP_NUMBER_DIGITS_MAX)
		return false;
	/* RFC 7143 6.1: a decimal-constant has no leading zero */
	if (!hex && s[0] == '0' && len > 1)
		return false;
	for (; i < len; i++) {
		int d = hex ? chap_hex_digit(s[i]) : (s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : -1);

		if (d < 0)
			return false;
		v = v * (hex ? 16u : 10u) + (uint64_t)d;
	}
	if (v > max)
		return false;
	*out = (uint32_t)v;
	return true;
}

int chap_alg_pick(const char *list)
{
	const char *p = list;

	/* RFC 7143 12.1.3: A is one of A1, A2... as the initiator proposed them, in its order */
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		uint32_t alg;

		/* RFC 7143 6.2.1: values we do not understand are skipped */
		if (chap_parse_number(p, len, 255, &alg) && chap_digest_len((int)alg) != 0)
			return (int)alg;
		if (comma == NULL)
			return -1;
		p = comma + 1;
	}
}

static int chap_hex_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *len)
{
	/* RFC 7143 6.1: n hex digits encode (n + 1) / 2 bytes; an odd count has an implied leading 0 */
	size_t bytes = (n + 1) / 2;
	size_t pos = 0;

	if (n == 0 || bytes > cap)
		return -1;
	for (size_t i = 0; i < bytes; i++) {
		int hi = 0, lo;

		if (i > 0 || n % 2 == 0)
			hi = chap_hex_digit(s[pos++]);
		lo = chap_hex_digit(s[pos++]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = bytes;
	return 0;
}

static int chap_base64_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *len)
{
	size_t pad = 0, digits, bytes;
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	/* RFC 4648 4: at most two '=' and only at the end */
	while (pad < n && pad < 2 && s[n - 1 - pad] == '=')
		pad++;
	digits = n - pad;
	/* RFC 7143 6.1: n digits encode 3n/4 bytes; one digit alone holds no whole byte */
	if (digits == 0 || digits % 4 == 1 || (pad > 0 && n % 4 != 0))
		return -1;
	bytes = digits * 3 / 4;
	if (bytes > cap)
		return -1;
	for (size_t i = 0; i < digits; i++) {
		int d = chap_base64_digit(s[i]);

		if (d < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	*len = o;
	return 0;
}

int chap_binary_decode(const char *text, uint8_t *out, size_t cap, size_t *len,
		       enum chap_encoding *enc)
{
	size_t n = strlen(text);

	/* RFC 7143 6.1: a binary-value is a hex-constant or a base64-constant, nothing else */
	if (n < 3 || text[0] != '0')
		return -1;
	if (text[1] == 'x' || text[1] == 'X') {
		*enc = CHAP_ENC_HEX;
		return chap_hex_decode(text + 2, n - 2, out, cap, len);
	}
	if (text[1] == 'b' || text[1] == 'B') {
		*enc = CHAP_ENC_BASE64;
		return chap_base64_decode(text + 2, n - 2, out, cap, len);
	}
	return -1;
}

int chap_binary_encode(const uint8_t *bin, size_t len, enum chap_encoding enc, char *out,
		       size_t cap)
{
	static const char hex[] = "0123456789abcdef";

	if (len > CHAP_BINARY_MAX)
		return -1;
	if (enc == CHAP_ENC_HEX) {
		if (cap < 2 + 2 * len + 1)
			return -1;
		out[0] = '0';
		out[1] = 'x';
		for (size_t i = 0; i < len; i++) {
			out[2 + 2 * i] = hex[bin[i] >> 4];
			out[3 + 2 * i] = hex[bin[i] & 0xf];
		}
		out[2 + 2 * len] = '\0';
		return 0;
	}
	/* RFC 4648 4 with padding; EVP_EncodeBlock writes the terminating NUL */
	if (cap < 2 + 4 * ((len + 2) / 3) + 1)
		return -1;
	out[0] = '0';
	out[1] = 'b';
	EVP_EncodeBlock((unsigned char *)out + 2, bin, (int)len);
	return 0;
}

bool chap_is_key(const char *key)
{
	static const char *const keys[] = { "CHAP_A", "CHAP_I", "CHAP_C", "CHAP_N", "CHAP_R" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strcmp(key, keys[i]) == 0)
			return true;
	}
	return false;
}

/* ---- the target's side of the exchange ---- */

struct chap_keys {
	const char *a, *i, *c, *n, *r;
};

/* The CHAP keys of one request; false if one appears twice (RFC 7143 6.3). */
static bool chap_collect(const struct iscsi_kv *kv, int n, struct chap_keys *k)
{
	memset(k, 0, sizeof(*k));
	for (int j = 0; j < n; j++) {
		const char **slot = NULL;

		if (strncmp(kv[j].key, "CHAP_", 5) != 0 || kv[j].key[5] == '\0' || kv[j].key[6] != '\0')
			continue;
		switch (kv[j].key[5]) {
		case 'A':
			slot = &k->a;
			break;
		case 'I':
			slot = &k->i;
			break;
		case 'C':
			slot = &k->c;
			break;
		case 'N':
			slot = &k->n;
			break;
		case 'R':
			slot = &k->r;
			break;
		default:
			continue;
		}
		if (*slot != NULL)
			return false;
		*slot = kv[j].value;
	}
	return true;
}

/* CHAP_A answered: pick the algorithm, send the identifier and a fresh challenge. */
static int chap_send_challenge(struct chap_exchange *x, const char *offer, struct iscsi_text_out *out,
			       const char **why)
{
	char text[CHAP_TEXT_MAX];
	char number[CHAP_NUMBER_TEXT];
	size_t dlen;

	x->alg = chap_alg_pick(offer);
	if (x->alg < 0) {
		/* RFC 7143 6.2.1: none of the offered values is acceptable */
		iscsi_text_append(out, "CHAP_A", "Reject");
		*why = "the initiator offers no CHAP algorithm we support (CHAP_A 5, 6, 7 or 8)";
		return ISCSI_LOGIN_AUTH_FAILED;
	}
	dlen = chap_digest_len(x->alg);
	x->challenge_len = dlen > CHAP_CHALLENGE_MIN ? dlen : CHAP_CHALLENGE_MIN;
	/* RFC 1994 2.3: each challenge unique and unpredictable: a CSPRNG's bytes */
	if (RAND_bytes(&x->id, 1) != 1 || RAND_bytes(x->challenge, (int)x->challenge_len) != 1) {
		*why = "no random bytes for a CHAP challenge";
		return ISCSI_LOGIN_TARGET_ERROR;
	}
	if (chap_binary_encode(x->challenge, x->challenge_len, CHAP_ENC_HEX, text, sizeof(text)) < 0) {
		*why = "cannot encode our CHAP challenge";
		return ISCSI_LOGIN_TARGET_ERROR;
	}
	snprintf(number, sizeof(number), "%d", x->alg);
	iscsi_text_append(out, "CHAP_A", number);
	snprintf(number, sizeof(number), "%u", (unsigned)x->id);
	iscsi_text_append(out, "CHAP_I", number);
	iscsi_text_append(out, "CHAP_C", text);
	x->state = CHAP_STATE_WAIT_R;
	return ISCSI_LOGIN_OK;
}

/* CHAP_N and CHAP_R: does the initiator know the secret? */
static int chap_check_response(struct chap_exchange *x, const struct chap_credentials *peer,
			       const struct chap_credentials *self, const struct chap_keys *k,
			       const char **why)
{
	uint8_t got[CHAP_BINARY_MAX];
	uint8_t expect[CHAP_DIGEST_MAX];
	uint8_t own[CHAP_DIGEST_MAX];
	size_t got_len = 0;
	size_t dlen = chap_digest_len(x->alg);
	enum chap_encoding enc;
	bool user_ok, response_ok;

	/* RFC 7143 12.1.3: the initiator MUST continue with CHAP_N and CHAP_R */
	if (k->n == NULL || k->r == NULL) {
		*why = "CHAP_N or CHAP_R missing";
		return ISCSI_LOGIN_AUTH_FAILED;
	}
	if (strlen(k->n) > CHAP_NAME_MAX) {
		*why = "CHAP_N too long";
		return ISCSI_LOGIN_AUTH_FAILED;
	}
	if (chap_binary_decode(k->r, got, sizeof(got), &got_len, &enc) < 0) {
		*why = "CHAP_R is not a hex or base64 binary value";
		return ISCSI_LOGIN_AUTH_FAILED;
	}
	if (got_len != dlen) {
		*why = "CHAP_R has the wrong length for the algorithm";
		return ISCSI_LOGIN_AUTH_FAILED;
	}
	if (!peer->set || chap_response(x->alg, x->id, peer->secret, peer->secret_len, x->challenge,
					x->challenge_len, expect) != (int)dlen) {
		*why = "cannot compute the expected CHAP response";
		return ISCSI_LOGIN_TARGET_ERROR;
	}
	/*
	 * RFC 7143 12.1.3: a response equal to the one we would make with our
	 * own secret means that secret serves both directions: a failure.
	 */
	if (self->set && chap_response(x->alg, x->id, self->secret, self->secret_len, x->challenge,
				       x->challenge_len, own) == (int)dlen &&
	    chap_equal(got, own, dlen)) {
		*why = "CHAP_R was computed with the target's own secret";
		return ISCSI_LOGIN_AUTH_FAILED;
	}
	/* both are always evaluated: the time taken does not say which one was wrong */
	user_ok = strcmp(k->n, peer->user) == 0;
	response_ok = chap_equal(got, expect, dlen);
	if (!user_ok) {
		*why = "unknown CHAP_N";
		return ISCSI_LOGIN_AUTH_FAILED;
	}
	if (!response_ok) {
		*why = "wrong CHAP_R (wrong secret)";
		return ISCSI_LOGIN_AUTH_FAILED;
	}
	return ISCSI_LOGIN_OK;
}

/* CHAP_I and CHAP_C from the initiator: prove our own secret (mutual CHAP). */
static int chap_answer_challenge(struct chap_exchange *x, const struct chap_credentials *self,
				 const struct chap_keys *k, struct iscsi_text_out *out, const char **why)
{
	uint8_t challenge[CHAP_BINARY_MAX];
	uint8_t response[CHAP_DIGEST_MAX];
	char text[CHAP_TEXT_MAX];
	size_t challenge_len = 0;
	size_t dlen = chap_digest_len(x->alg);
	enum chap_encoding enc;
	uint32_t id;

	if (k->i == NULL || k->c == NULL) {
		*why = "CHAP_I without CHAP_C or CHAP_C without CHAP_I";
		return ISCSI_LOGIN_AUTH_FAILED;
	}
	/* RFC 7143 12.1.3: the target either proves itself or fails the login */
	if (!self->set) {
		*why = "the initiator asks for mutual CHAP but the target has no credentials (--mutual-chap)";
		return ISCSI_LOGIN_AUTH_FAILED;
	}
	/* RFC 7143 12.1.3: I is a numerical value, an RFC 1994 one-octet identifier */
	if (!chap_parse_number(k->i, strlen(k->i), 255, &id)) {
		*why = "CHAP_I is not a number from 0 to 255";
		return ISCSI_LOGIN_AUTH_FAILED;
	}
	/* RFC 7143 12.1.3: C is a binary value of at most 1024 bytes */
	if (chap_binary_decode(k->c, challenge, sizeof(challenge), &challenge_len, &enc) < 0) {
		*why = "CHAP_C is not a hex or base64 binary value of at most 1024 bytes";
		return ISCSI_LOGIN_AUTH_FAILED;
	}
	/*
	 * RFC 7143 12.1.3: originators MUST NOT reuse the responder's challenge
	 * for the other direction; responders MUST check for it. Answering our
	 * own challenge would hand the initiator the response it owes us.
	 */
	if (challenge_len == x->challenge_len && chap_equal(challenge, x->challenge, challenge_len)) {
		*why = "the initiator's CHAP_C reflects our own challenge";
		return ISCSI_LOGIN_AUTH_FAILED;
	}
	if (chap_response(x->alg, (uint8_t)id, self->secret, self->secret_len, challenge,
			  challenge_len, response) != (int)dlen ||
	    chap_binary_encode(response, dlen, enc, text, sizeof(text)) < 0) {
		*why = "cannot compute our CHAP response";
		return ISCSI_LOGIN_TARGET_ERROR;
	}
	iscsi_text_append(out, "CHAP_N", self->user);
	iscsi_text_append(out, "CHAP_R", text);
	x->mutual = true;
	return ISCSI_LOGIN_OK;
}

int chap_target_step(struct chap_exchange *x, const struct chap_credentials *peer,
		     const struct chap_credentials *self, const struct iscsi_kv *kv, int n,
		     struct iscsi_text_out *out, const char **why)
{
	struct chap_keys k;
	bool any;
	int status = ISCSI_LOGIN_AUTH_FAILED;

	*why = NULL;
	/* RFC 7143 6.3: a key once per request */
	if (!chap_collect(kv, n, &k)) {
		*why = "a CHAP key twice in one request";
		goto out;
	}
	any = k.a || k.i || k.c || k.n || k.r;
	switch (x->state) {
	case CHAP_STATE_INIT:
		/* AuthMethod=CHAP was agreed in this request: CHAP_A usually follows in the next */
		x->state = CHAP_STATE_WAIT_A;
		if (!any) {
			status = ISCSI_LOGIN_OK;
			break;
		}
		/* fall through - CHAP_A offered together with AuthMethod */
	case CHAP_STATE_WAIT_A:
		/* RFC 7143 12.1.3: the initiator MUST start with CHAP_A */
		if (k.a == NULL) {
			*why = "CHAP_A expected";
			break;
		}
		if (k.i || k.c || k.n || k.r) {
			*why = "CHAP_I, CHAP_C, CHAP_N or CHAP_R sent before our challenge";
			break;
		}
		status = chap_send_challenge(x, k.a, out, why);
		break;
	case CHAP_STATE_WAIT_R:
		if (k.a != NULL) {
			*why = "CHAP_A sent again";
			break;
		}
		status = chap_check_response(x, peer, self, &k, why);
		if (status != ISCSI_LOGIN_OK)
			break;
		/* only an authenticated initiator gets a response from us */
		if (k.i != NULL || k.c != NULL) {
			status = chap_answer_challenge(x, self, &k, out, why);
			if (status != ISCSI_LOGIN_OK)
				break;
		}
		snprintf(x->user, sizeof(x->user), "%s", k.n);
		x->state = CHAP_STATE_DONE;
		break;
	case CHAP_STATE_DONE:
		if (any) {
			*why = "CHAP keys after the exchange ended";
			break;
		}
		status = ISCSI_LOGIN_OK;
		break;
	case CHAP_STATE_FAILED:
	default:
		*why = "the CHAP exchange already failed";
		break;
	}
out:
	if (status != ISCSI_LOGIN_OK)
		x->state = CHAP_STATE_FAILED;
	return status;
}
