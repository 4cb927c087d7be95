/*
 * fuzz_chap: bytes into the target's side of CHAP (src/iscsi/chap.c): the
 * exchange (chap_target_step) over a sequence of security-stage requests,
 * and the value codecs and parsers it is built on.
 *
 * The target's challenge is random, so a fuzzer cannot compute a valid
 * CHAP_R by itself: with option bit 1 the harness writes the right response
 * (the one for the challenge just sent, with the configured secret) in
 * place of every CHAP_R value, which takes the exchange past verification
 * into mutual authentication.
 *
 * Input layout:
 *   byte 0   options
 *            bit 0  the target has mutual-CHAP credentials (--mutual-chap)
 *            bit 1  replace CHAP_R values by the correct response
 *            bit 2  ... encoded in base64 (else hex)
 *            bit 3  the initiator credentials are the short ones (FZ_USER2)
 *            bit 4  the initiator credentials are not configured at all
 *   then requests separated by the byte 0xff, each "key=value\0..." as on
 *   the wire, answered in order until the exchange fails.
 *
 * Checks (a violation aborts): the login status is OK, 0x0201 or 0x0300,
 * and a failure says why; a challenge is CHAP_A (5-8), CHAP_I (0-255) and a
 * CHAP_C of at least 16 bytes matching the exchange state; the exchange
 * ends DONE only if the request carried the configured CHAP_N and the
 * correct CHAP_R and did not reflect our challenge; a mutual CHAP_R is the
 * right one for the initiator's CHAP_I/CHAP_C with the target's secret;
 * binary values decode, re-encode and decode to the same bytes; the
 * response text is "key=value\0" pairs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi/chap.h"
#include "iscsi/param.h"
#include "util/log.h"

#define FZ_SEP 0xff
#define FZ_MAX_REQUESTS 8
#define FZ_OUT_CAP 8192		/* login.c: the response text of one Login PDU */

#define FZ_OPT_MUTUAL 0x01
#define FZ_OPT_FIX_R 0x02
#define FZ_OPT_FIX_BASE64 0x04
#define FZ_OPT_USER2 0x08
#define FZ_OPT_NO_PEER 0x10

#define FZ_USER1 "fuzz-chap-user"
#define FZ_SECRET1 "initiator-secret-16"
#define FZ_USER2 "u"
#define FZ_SECRET2 "twelve-bytes"
#define FZ_TARGET_CREDS "fuzz-chap-target:target-secret-99"

static void fz_fail(const char *what)
{
	fprintf(stderr, "fuzz_chap: %s\n", what);
	abort();
}

static void fz_creds(const char *spec, struct chap_credentials *c)
{
	char err[256];

	if (chap_credentials_parse(spec, c, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_chap: credentials '%s': %s\n", spec, err);
		abort();
	}
}

/* The value of key in a wire text of len bytes, or NULL. */
static const char *fz_text_get(const char *buf, size_t len, const char *key)
{
	size_t klen = strlen(key);

	for (size_t pos = 0; pos < len;) {
		const char *pair = buf + pos;
		size_t n = strnlen(pair, len - pos);

		if (n > klen && strncmp(pair, key, klen) == 0 && pair[klen] == '=')
			return pair + klen + 1;
		pos += n + 1;
	}
	return NULL;
}

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
		if (!eq || eq == pair || eq + 1 == nul)
			fz_fail("response pair not key=value");
		pos += (size_t)(nul - pair) + 1;
	}
}

/* The codecs on any value: decode, encode, decode gives the same bytes. */
static void fz_codecs(const char *value)
{
	static uint8_t bin[CHAP_BINARY_MAX], again[CHAP_BINARY_MAX];
	static char text[CHAP_TEXT_MAX];
	struct chap_credentials c;
	char err[512];
	enum chap_encoding enc, enc2;
	size_t len = 0, len2 = 0;
	int alg;

	if (chap_binary_decode(value, bin, sizeof(bin), &len, &enc) == 0) {
		if (len == 0 || len > sizeof(bin))
			fz_fail("binary value decoded to an impossible length");
		if (chap_binary_encode(bin, len, enc, text, sizeof(text)) != 0)
			fz_fail("a decoded binary value does not encode again");
		if (chap_binary_decode(text, again, sizeof(again), &len2, &enc2) != 0 || len2 != len ||
		    enc2 != enc || memcmp(bin, again, len) != 0)
			fz_fail("binary value: decode(encode(decode(v))) != decode(v)");
	}
	alg = chap_alg_pick(value);
	if (alg != -1 && chap_digest_len(alg) == 0)
		fz_fail("chap_alg_pick chose an algorithm without a digest");
	if (chap_credentials_parse(value, &c, err, sizeof(err)) == 0) {
		if (!c.set || !c.user[0] || strlen(c.user) > CHAP_NAME_MAX ||
		    c.secret_len < CHAP_SECRET_MIN || c.secret_len > CHAP_SECRET_MAX)
			fz_fail("chap_credentials_parse accepted credentials out of its limits");
	} else if (strnlen(err, sizeof(err)) == sizeof(err)) {
		fz_fail("chap_credentials_parse left its error unterminated");
	}
}

/* The response we expect for (alg, id, challenge) with secret, encoded. */
static bool fz_response(int alg, uint8_t id, const struct chap_credentials *c, const uint8_t *chal,
			size_t chal_len, uint8_t *out)
{
	return c->set && chap_response(alg, id, c->secret, c->secret_len, chal, chal_len, out) ==
			 (int)chap_digest_len(alg);
}

/* After a challenge: what was sent matches the exchange state. */
static void fz_check_challenge(const struct chap_exchange *x, const struct iscsi_text_out *out)
{
	const char *a = fz_text_get(out->buf, out->len, "CHAP_A");
	const char *i = fz_text_get(out->buf, out->len, "CHAP_I");
	const char *c = fz_text_get(out->buf, out->len, "CHAP_C");
	static uint8_t bin[CHAP_BINARY_MAX];
	enum chap_encoding enc;
	size_t len = 0;

	if (!a || !i || !c)
		fz_fail("challenge without CHAP_A, CHAP_I and CHAP_C");
	if (atoi(a) != x->alg || chap_digest_len(x->alg) == 0)
		fz_fail("CHAP_A sent is not the exchange's algorithm");
	if (strtoul(i, NULL, 10) != x->id)
		fz_fail("CHAP_I sent is not the exchange's identifier");
	if (chap_binary_decode(c, bin, sizeof(bin), &len, &enc) != 0 || len != x->challenge_len ||
	    memcmp(bin, x->challenge, len) != 0)
		fz_fail("CHAP_C sent is not the exchange's challenge");
	/* RFC 7143 12.1.3 / issue 4: at least 16 random bytes */
	if (len < CHAP_CHALLENGE_MIN)
		fz_fail("challenge shorter than 16 bytes");
}

/* The exchange ended DONE: the request really proved the secret. */
static void fz_check_done(const struct chap_exchange *x, const struct chap_credentials *peer,
			  const struct chap_credentials *self, const struct iscsi_kv *kv, int n,
			  const struct iscsi_text_out *out, size_t out_mark)
{
	static uint8_t got[CHAP_BINARY_MAX], chal[CHAP_BINARY_MAX];
	uint8_t want[CHAP_DIGEST_MAX];
	const char *name = NULL, *r = NULL, *ci = NULL, *cc = NULL;
	enum chap_encoding enc;
	size_t len = 0, clen = 0;

	for (int j = 0; j < n; j++) {
		if (strcmp(kv[j].key, "CHAP_N") == 0)
			name = kv[j].value;
		else if (strcmp(kv[j].key, "CHAP_R") == 0)
			r = kv[j].value;
		else if (strcmp(kv[j].key, "CHAP_I") == 0)
			ci = kv[j].value;
		else if (strcmp(kv[j].key, "CHAP_C") == 0)
			cc = kv[j].value;
	}
	if (!peer->set || !name || !r || strcmp(name, peer->user) != 0)
		fz_fail("exchange DONE without the configured CHAP_N");
	if (strcmp(x->user, name) != 0)
		fz_fail("exchange DONE with another user name than CHAP_N");
	if (chap_binary_decode(r, got, sizeof(got), &len, &enc) != 0 ||
	    !fz_response(x->alg, x->id, peer, x->challenge, x->challenge_len, want) ||
	    len != chap_digest_len(x->alg) || memcmp(got, want, len) != 0)
		fz_fail("exchange DONE with a wrong CHAP_R");
	if (!ci && !cc)
		return;
	/* mutual: our CHAP_R answers the initiator's challenge with our secret */
	const char *tr = fz_text_get(out->buf + out_mark, out->len - out_mark, "CHAP_R");
	char *end;
	unsigned long id = strtoul(ci ? ci : "", &end, 0);

	if (!self->set || !ci || !cc || !tr)
		fz_fail("exchange DONE after a mutual challenge without our CHAP_R");
	if (chap_binary_decode(cc, chal, sizeof(chal), &clen, &enc) != 0)
		fz_fail("exchange DONE after an undecodable CHAP_C");
	/* RFC 7143 12.1.3: never answer our own challenge */
	if (clen == x->challenge_len && memcmp(chal, x->challenge, clen) == 0)
		fz_fail("answered a reflected challenge");
	if (id > 255 || !fz_response(x->alg, (uint8_t)id, self, chal, clen, want) ||
	    chap_binary_decode(tr, got, sizeof(got), &len, &enc) != 0 ||
	    len != chap_digest_len(x->alg) || memcmp(got, want, len) != 0)
		fz_fail("our mutual CHAP_R is not the response to the initiator's challenge");
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
	static char fixed[CHAP_TEXT_MAX];
	struct chap_credentials peer, self;
	struct chap_exchange x;
	uint8_t opts;
	size_t pos = 1;

	if (size < 1)
		return 0;
	opts = data[0];
	memset(&peer, 0, sizeof(peer));
	memset(&self, 0, sizeof(self));
	if (!(opts & FZ_OPT_NO_PEER))
		fz_creds((opts & FZ_OPT_USER2) ? FZ_USER2 ":" FZ_SECRET2 : FZ_USER1 ":" FZ_SECRET1, &peer);
	if (opts & FZ_OPT_MUTUAL)
		fz_creds(FZ_TARGET_CREDS, &self);
	memset(&x, 0, sizeof(x));
	x.state = CHAP_STATE_INIT;

	for (int req = 0; req < FZ_MAX_REQUESTS && pos < size; req++) {
		const uint8_t *end = memchr(data + pos, FZ_SEP, size - pos);
		size_t len = end ? (size_t)(end - (data + pos)) : size - pos;
		char *copy = malloc(len ? len : 1);
		struct iscsi_text_out out = { .buf = outbuf, .cap = sizeof(outbuf) };
		const char *why = NULL;
		enum chap_state before = x.state;
		int n, status;

		if (!copy)
			abort();
		memcpy(copy, data + pos, len);
		pos += len + 1;
		n = iscsi_text_parse(copy, len, kv, ISCSI_TEXT_MAX_KEYS);
		if (n < 0) {
			free(copy);
			continue;
		}
		for (int j = 0; j < n; j++) {
			bool chap_key = strlen(kv[j].key) == 6 && strncmp(kv[j].key, "CHAP_", 5) == 0 &&
					strchr("AICNR", kv[j].key[5]) != NULL;

			if (chap_is_key(kv[j].key) != chap_key)
				fz_fail("chap_is_key disagrees with RFC 7143 12.1.3's five keys");
			fz_codecs(kv[j].value);
		}
		if ((opts & FZ_OPT_FIX_R) && x.state == CHAP_STATE_WAIT_R) {
			uint8_t r[CHAP_DIGEST_MAX];
			enum chap_encoding enc = (opts & FZ_OPT_FIX_BASE64) ? CHAP_ENC_BASE64 : CHAP_ENC_HEX;

			if (fz_response(x.alg, x.id, &peer, x.challenge, x.challenge_len, r) &&
			    chap_binary_encode(r, chap_digest_len(x.alg), enc, fixed, sizeof(fixed)) == 0) {
				for (int j = 0; j < n; j++)
					if (strcmp(kv[j].key, "CHAP_R") == 0)
						kv[j].value = fixed;
			}
		}
		status = chap_target_step(&x, &peer, &self, kv, n, &out, &why);
		fz_check_out(&out);
		if (status != ISCSI_LOGIN_OK) {
			if (status != ISCSI_LOGIN_AUTH_FAILED && status != ISCSI_LOGIN_TARGET_ERROR)
				fz_fail("CHAP failure with a status other than 0x0201 or 0x0300");
			if (!why)
				fz_fail("CHAP failure without a reason");
			if (x.state != CHAP_STATE_FAILED)
				fz_fail("CHAP failure without the exchange failed");
			free(copy);
			break;
		}
		if (x.state == CHAP_STATE_WAIT_R && before != CHAP_STATE_WAIT_R)
			fz_check_challenge(&x, &out);
		if (x.state == CHAP_STATE_DONE && before != CHAP_STATE_DONE)
			fz_check_done(&x, &peer, &self, kv, n, &out, 0);
		if (x.state == CHAP_STATE_FAILED)
			fz_fail("exchange FAILED with a status OK");
		free(copy);
	}
	return 0;
}
