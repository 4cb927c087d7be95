/*
 * CHAP (RFC 1994, RFC 7143 12.1.3) and the initiator ACL.
 *
 * Part one checks the module's pieces against independent ones: responses
 * against vectors computed with Python's hashlib and against OpenSSL's
 * one-shot EVP_Q_digest fed the bytes by the test; the RFC 7143 6.1
 * binary-value encodings; the algorithm choice; the credentials rules.
 *
 * Part two runs both sides of the exchange in-process: the target's
 * chap_target_step() against an initiator the test plays with its own
 * hashing, for every algorithm and both encodings, mutual CHAP included,
 * and every way it must fail (wrong name or secret, reflection, ...).
 *
 * Part three drives the whole login through the engine (a socketpair to
 * an iscsi_server): the stages and T bits of a CHAP login, the login
 * statuses 0x0201 and 0x0202, SendTargets under an ACL, and the
 * ChapUserName that SESSION_START carries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <spt/scsi.h>

#include "iscsi/chap.h"
#include "iscsi/server.h"
#include "util/log.h"

#define SECRET "secretsecret12"
#define TSECRET "targetsecret-99"
#define USER "bob"
#define TUSER "spt-target"

/* ------------------------------------------------------------------ */
/* CRYPTO_memcmp seen from here                                         */
/* ------------------------------------------------------------------ */

/*
 * The test binary's own CRYPTO_memcmp takes the place of libcrypto's for
 * every caller (the executable's definition comes first in symbol
 * resolution): same contract, constant time, and it counts its calls, so a
 * test can see the module compare responses with it and not with memcmp.
 */
static int memcmp_calls;

int CRYPTO_memcmp(const void *in_a, const void *in_b, size_t len)
{
	const volatile unsigned char *a = in_a;
	const volatile unsigned char *b = in_b;
	unsigned char x = 0;

	memcmp_calls++;
	for (size_t i = 0; i < len; i++)
		x |= a[i] ^ b[i];
	return x;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static const char *alg_name(int alg)
{
	switch (alg) {
	case CHAP_ALG_MD5:
		return "MD5";
	case CHAP_ALG_SHA1:
		return "SHA1";
	case CHAP_ALG_SHA256:
		return "SHA2-256";
	default:
		return "SHA3-256";
	}
}

/* The RFC 1994 response as the test computes it: one buffer, one-shot digest by name. */
static size_t ref_response(int alg, uint8_t id, const char *secret, const uint8_t *ch, size_t chlen,
			   uint8_t *out)
{
	size_t slen = strlen(secret);
	uint8_t *buf = malloc(1 + slen + chlen);
	size_t len = 0;

	assert_non_null(buf);
	buf[0] = id;
	memcpy(buf + 1, secret, slen);
	memcpy(buf + 1 + slen, ch, chlen);
	assert_int_equal(EVP_Q_digest(NULL, alg_name(alg), NULL, buf, 1 + slen + chlen, out, &len), 1);
	free(buf);
	return len;
}

static void hex_to_bytes(const char *hex, uint8_t *out, size_t *len)
{
	size_t n = strlen(hex) / 2;

	for (size_t i = 0; i < n; i++) {
		unsigned v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	*len = n;
}

static void creds(struct chap_credentials *c, const char *user, const char *secret)
{
	char spec[600];
	char err[256];

	snprintf(spec, sizeof(spec), "%s:%s", user, secret);
	assert_int_equal(chap_credentials_parse(spec, c, err, sizeof(err)), 0);
}

/* ------------------------------------------------------------------ */
/* Part one: primitives                                                 */
/* ------------------------------------------------------------------ */

/* Vectors from Python's hashlib of 0x2a || "secretsecret12" || 00 01 .. 0f. */
static void test_response_known_vectors(void **state)
{
	static const struct {
		int alg;
		const char *hex;
	} v[] = {
		{ CHAP_ALG_MD5, "9860bd91695fa19d4538a10ade829698" },
		{ CHAP_ALG_SHA1, "4e55b217c1706e26ab6f73995f6ecd43a7634d66" },
		{ CHAP_ALG_SHA256, "86521a55d0dcb9552bd5b68e8dc869ccc73616aaa09ce25ba3d6e90d3a839f6e" },
		{ CHAP_ALG_SHA3_256, "add866f22d33ac994ac4b855d39fc06ce58be029468cf9024391ceddb622e4f2" },
	};
	uint8_t ch[16], out[CHAP_DIGEST_MAX], want[CHAP_DIGEST_MAX];
	size_t want_len;

	for (int i = 0; i < 16; i++)
		ch[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		hex_to_bytes(v[i].hex, want, &want_len);
		assert_int_equal(chap_digest_len(v[i].alg), want_len);
		assert_int_equal(chap_response(v[i].alg, 0x2a, (const uint8_t *)SECRET, strlen(SECRET), ch,
					       sizeof(ch), out),
				 (int)want_len);
		assert_memory_equal(out, want, want_len);
	}
	/* an algorithm we do not implement */
	assert_int_equal(chap_digest_len(4), 0);
	assert_int_equal(chap_response(4, 1, (const uint8_t *)SECRET, 14, ch, 16, out), -1);
}

/* RFC 1994 4.1 against OpenSSL's one-shot digest, over varied identifiers and lengths. */
static void test_response_matches_reference(void **state)
{
	uint8_t ch[CHAP_BINARY_MAX], out[CHAP_DIGEST_MAX], want[CHAP_DIGEST_MAX];
	const size_t lens[] = { 1, 16, 17, 32, 255, CHAP_BINARY_MAX };

	for (size_t i = 0; i < sizeof(ch); i++)
		ch[i] = (uint8_t)(i * 7 + 3);
	for (int alg = CHAP_ALG_MD5; alg <= CHAP_ALG_SHA3_256; alg++) {
		for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
			uint8_t id = (uint8_t)(l * 51);
			size_t n = ref_response(alg, id, SECRET ":x", ch, lens[l], want);

			assert_int_equal(chap_response(alg, id, (const uint8_t *)SECRET ":x", 16, ch,
						       lens[l], out),
					 (int)n);
			assert_memory_equal(out, want, n);
		}
	}
}

static void test_hex_decode(void **state)
{
	uint8_t out[8];
	size_t len = 0;
	enum chap_encoding enc = CHAP_ENC_BASE64;

	assert_int_equal(chap_binary_decode("0x0102aBcD", out, sizeof(out), &len, &enc), 0);
	assert_int_equal(enc, CHAP_ENC_HEX);
	assert_int_equal(len, 4);
	assert_memory_equal(out, "\x01\x02\xab\xcd", 4);
	/* RFC 7143 6.1: n digits are (n + 1) / 2 bytes, an odd count with a leading 0 implied */
	assert_int_equal(chap_binary_decode("0X123", out, sizeof(out), &len, &enc), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(out, "\x01\x23", 2);
	assert_int_equal(chap_binary_decode("0x0", out, sizeof(out), &len, &enc), 0);
	assert_int_equal(len, 1);
	assert_int_equal(out[0], 0);
	/* bad: no digits, bad digits, no prefix, decimal, a sign, too long for the buffer */
	assert_int_equal(chap_binary_decode("0x", out, sizeof(out), &len, &enc), -1);
	assert_int_equal(chap_binary_decode("0xg1", out, sizeof(out), &len, &enc), -1);
	assert_int_equal(chap_binary_decode("0x12 ", out, sizeof(out), &len, &enc), -1);
	assert_int_equal(chap_binary_decode("0x-1", out, sizeof(out), &len, &enc), -1);
	assert_int_equal(chap_binary_decode("1234", out, sizeof(out), &len, &enc), -1);
	assert_int_equal(chap_binary_decode("", out, sizeof(out), &len, &enc), -1);
	assert_int_equal(chap_binary_decode("x12", out, sizeof(out), &len, &enc), -1);
	assert_int_equal(chap_binary_decode("0y12", out, sizeof(out), &len, &enc), -1);
	assert_int_equal(chap_binary_decode("0x112233445566778899", out, sizeof(out), &len, &enc), -1);
	assert_int_equal(chap_binary_decode("0x1122334455667788", out, sizeof(out), &len, &enc), 0);
	assert_int_equal(len, 8);
}

static void test_base64_decode(void **state)
{
	uint8_t out[8];
	size_t len = 0;
	enum chap_encoding enc = CHAP_ENC_HEX;

	assert_int_equal(chap_binary_decode("0bAQIDBAU=", out, sizeof(out), &len, &enc), 0);
	assert_int_equal(enc, CHAP_ENC_BASE64);
	assert_int_equal(len, 5);
	assert_memory_equal(out, "\x01\x02\x03\x04\x05", 5);
	assert_int_equal(chap_binary_decode("0BAQID", out, sizeof(out), &len, &enc), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(out, "\x01\x02\x03", 3);
	assert_int_equal(chap_binary_decode("0b+/8=", out, sizeof(out), &len, &enc), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(out, "\xfb\xff", 2);
	/* RFC 7143 6.1: without padding, n digits are 3n/4 bytes */
	assert_int_equal(chap_binary_decode("0bAQIDBAU", out, sizeof(out), &len, &enc), 0);
	assert_int_equal(len, 5);
	/* bad: empty, padding only, one digit, '=' inside, three '=', padding that does not
	 * square with the length, characters outside the alphabet, too long */
	assert_int_equal(chap_binary_decode("0b", out, sizeof(out), &len, &enc), -1);
	assert_int_equal(chap_binary_decode("0b==", out, sizeof(out), &len, &enc), -1);
	assert_int_equal(chap_binary_decode("0bA", out, sizeof(out), &len, &enc), -1);
	assert_int_equal(chap_binary_decode("0bAQ=D", out, sizeof(out), &len, &enc), -1);
	assert_int_equal(chap_binary_decode("0bA===", out, sizeof(out), &len, &enc), -1);
	assert_int_equal(chap_binary_decode("0bAQIDB=", out, sizeof(out), &len, &enc), -1);
	assert_int_equal(chap_binary_decode("0bAQ-D", out, sizeof(out), &len, &enc), -1);
	assert_int_equal(chap_binary_decode("0bAQ D", out, sizeof(out), &len, &enc), -1);
	assert_int_equal(chap_binary_decode("0bAAECAwQFBgcI", out, sizeof(out), &len, &enc), -1);
}

static void test_encode_round_trip(void **state)
{
	uint8_t bin[CHAP_BINARY_MAX], back[CHAP_BINARY_MAX];
	char text[CHAP_TEXT_MAX];
	size_t len;
	enum chap_encoding enc;

	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (uint8_t)(i * 13 + 1);
	assert_int_equal(chap_binary_encode(bin, 3, CHAP_ENC_HEX, text, sizeof(text)), 0);
	assert_string_equal(text, "0x010e1b");
	assert_int_equal(chap_binary_encode((const uint8_t *)"\x01\x02\x03\x04\x05", 5, CHAP_ENC_BASE64,
					    text, sizeof(text)), 0);
	assert_string_equal(text, "0bAQIDBAU=");
	for (size_t n = 1; n <= CHAP_BINARY_MAX; n += (n < 40 ? 1 : 97)) {
		for (int e = CHAP_ENC_HEX; e <= CHAP_ENC_BASE64; e++) {
			assert_int_equal(chap_binary_encode(bin, n, (enum chap_encoding)e, text, sizeof(text)), 0);
			assert_int_equal(chap_binary_decode(text, back, sizeof(back), &len, &enc), 0);
			assert_int_equal(enc, e);
			assert_int_equal(len, n);
			assert_memory_equal(back, bin, n);
		}
	}
	/* the buffer is checked, not overrun */
	assert_int_equal(chap_binary_encode(bin, 16, CHAP_ENC_HEX, text, 34), -1);
	assert_int_equal(chap_binary_encode(bin, 16, CHAP_ENC_HEX, text, 35), 0);
	assert_int_equal(chap_binary_encode(bin, 16, CHAP_ENC_BASE64, text, 26), -1);
	assert_int_equal(chap_binary_encode(bin, 16, CHAP_ENC_BASE64, text, 27), 0);
}

/* RFC 7143 12.1.3: the first of the initiator's list we support, in its order. */
static void test_alg_pick(void **state)
{
	assert_int_equal(chap_alg_pick("5"), 5);
	assert_int_equal(chap_alg_pick("7,6,5"), 7);
	assert_int_equal(chap_alg_pick("5,7"), 5);
	assert_int_equal(chap_alg_pick("8,5"), 8);
	assert_int_equal(chap_alg_pick("6"), 6);
	assert_int_equal(chap_alg_pick("9,128,6"), 6);
	assert_int_equal(chap_alg_pick("0x7,5"), 7);
	assert_int_equal(chap_alg_pick("md5,,5"), 5);
	assert_int_equal(chap_alg_pick("1,2,3,4"), -1);
	assert_int_equal(chap_alg_pick(""), -1);
	assert_int_equal(chap_alg_pick("05"), -1);
	assert_int_equal(chap_alg_pick("5x"), -1);
	assert_int_equal(chap_alg_pick("99999999999,5"), 5);
}

static void test_credentials(void **state)
{
	struct chap_credentials c;
	char err[256];

	assert_int_equal(chap_credentials_parse("bob:secretsecret12", &c, err, sizeof(err)), 0);
	assert_true(c.set);
	assert_string_equal(c.user, "bob");
	assert_int_equal(c.secret_len, 14);
	assert_memory_equal(c.secret, "secretsecret12", 14);
	/* a secret may hold ':' after the first one */
	assert_int_equal(chap_credentials_parse("bob:a:b:c:d:e:f:g", &c, err, sizeof(err)), 0);
	assert_string_equal(c.user, "bob");
	assert_int_equal(c.secret_len, 13);
	assert_memory_equal(c.secret, "a:b:c:d:e:f:g", 13);
	/* RFC 7143 12.1.3: 12 bytes at least */
	assert_int_equal(chap_credentials_parse("bob:12345678901", &c, err, sizeof(err)), -1);
	assert_false(c.set);
	assert_non_null(strstr(err, "at least 12"));
	assert_int_equal(chap_credentials_parse("bob:123456789012", &c, err, sizeof(err)), 0);
	assert_int_equal(chap_credentials_parse("bob", &c, err, sizeof(err)), -1);
	assert_int_equal(chap_credentials_parse(":secretsecret12", &c, err, sizeof(err)), -1);
	assert_int_equal(chap_credentials_parse("bob:", &c, err, sizeof(err)), -1);

	char spec[CHAP_SECRET_MAX + 8];

	snprintf(spec, sizeof(spec), "u:%0*d", CHAP_SECRET_MAX, 0);
	assert_int_equal(chap_credentials_parse(spec, &c, err, sizeof(err)), 0);
	snprintf(spec, sizeof(spec), "u:%0*d", CHAP_SECRET_MAX + 1, 0);
	assert_int_equal(chap_credentials_parse(spec, &c, err, sizeof(err)), -1);
}

static void test_config_check(void **state)
{
	struct chap_config cfg;
	char err[256];

	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(chap_config_check(&cfg, err, sizeof(err)), 0);
	creds(&cfg.target, TUSER, TSECRET);
	/* mutual CHAP only makes sense inside a CHAP exchange we ask for */
	assert_int_equal(chap_config_check(&cfg, err, sizeof(err)), -1);
	creds(&cfg.initiator, USER, SECRET);
	assert_int_equal(chap_config_check(&cfg, err, sizeof(err)), 0);
	/* RFC 7143 12.1.3: one secret never serves both directions */
	creds(&cfg.discovery, "disco", TSECRET);
	assert_int_equal(chap_config_check(&cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "differ"));
	creds(&cfg.discovery, "disco", SECRET);
	assert_int_equal(chap_config_check(&cfg, err, sizeof(err)), 0);
	creds(&cfg.initiator, USER, TSECRET);
	assert_int_equal(chap_config_check(&cfg, err, sizeof(err)), -1);
	chap_config_wipe(&cfg);
	assert_false(cfg.initiator.set);
	assert_int_equal(cfg.initiator.secret[0], 0);
}

static void test_equal_constant_time(void **state)
{
	uint8_t a[32], b[32];

	for (int i = 0; i < 32; i++)
		a[i] = b[i] = (uint8_t)i;
	memcmp_calls = 0;
	assert_true(chap_equal(a, b, 32));
	b[0] ^= 1;
	assert_false(chap_equal(a, b, 32));
	b[0] ^= 1;
	b[31] ^= 0x80;
	assert_false(chap_equal(a, b, 32));
	assert_true(chap_equal(a, b, 0));
	assert_int_equal(memcmp_calls, 4);
}

/* ------------------------------------------------------------------ */
/* Part two: both sides of the exchange in-process                      */
/* ------------------------------------------------------------------ */

struct xfx {
	struct chap_credentials peer;	/* what the initiator proves */
	struct chap_credentials self;	/* the target's own (mutual) */
	struct chap_exchange x;
	char outbuf[ISCSI_LOGIN_DSL_MAX];
	struct iscsi_text_out out;
	char inbuf[8192];
	struct iscsi_kv kv[16];
	int n;
	const char *why;
};

static int xfx_setup(void **state)
{
	struct xfx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	creds(&f->peer, USER, SECRET);
	creds(&f->self, TUSER, TSECRET);
	*state = f;
	return 0;
}

static int xfx_teardown(void **state)
{
	free(*state);
	return 0;
}

/* One initiator request, "k=v\nk=v\n", through chap_target_step. */
static int xfx_step(struct xfx *f, const char *text)
{
	size_t len = strlen(text);

	assert_true(len < sizeof(f->inbuf));
	for (size_t i = 0; i < len; i++)
		f->inbuf[i] = text[i] == '\n' ? '\0' : text[i];
	f->n = len ? iscsi_text_parse(f->inbuf, len, f->kv, 16) : 0;
	assert_true(f->n >= 0);
	f->out = (struct iscsi_text_out){ .buf = f->outbuf, .cap = sizeof(f->outbuf) };
	return chap_target_step(&f->x, &f->peer, &f->self, f->kv, f->n, &f->out, &f->why);
}

static const char *xfx_answer(const struct xfx *f, const char *key)
{
	size_t klen = strlen(key);

	for (size_t i = 0; i < f->out.len;) {
		const char *kv = f->outbuf + i;
		size_t n = strnlen(kv, f->out.len - i);

		if (n > klen && strncmp(kv, key, klen) == 0 && kv[klen] == '=')
			return kv + klen + 1;
		i += n + 1;
	}
	return NULL;
}

/* AuthMethod agreed, CHAP_A sent: the target's challenge comes back. */
static void xfx_challenge(struct xfx *f, const char *algs, int want_alg)
{
	char req[64];
	uint8_t ch[CHAP_BINARY_MAX];
	size_t len;
	enum chap_encoding enc;

	assert_int_equal(xfx_step(f, ""), ISCSI_LOGIN_OK);
	assert_int_equal(f->out.len, 0);
	snprintf(req, sizeof(req), "CHAP_A=%s\n", algs);
	assert_int_equal(xfx_step(f, req), ISCSI_LOGIN_OK);
	assert_int_equal(atoi(xfx_answer(f, "CHAP_A")), want_alg);
	/* RFC 1994: a one-octet identifier */
	char *end;
	long id = strtol(xfx_answer(f, "CHAP_I"), &end, 10);

	assert_int_equal(*end, '\0');
	assert_true(id >= 0 && id <= 255);
	assert_int_equal(id, f->x.id);
	/* our challenge: hex, at least 16 bytes, the digest length for longer digests */
	assert_int_equal(chap_binary_decode(xfx_answer(f, "CHAP_C"), ch, sizeof(ch), &len, &enc), 0);
	assert_int_equal(enc, CHAP_ENC_HEX);
	assert_true(len >= CHAP_CHALLENGE_MIN);
	assert_true(len >= chap_digest_len(want_alg));
	assert_int_equal(len, f->x.challenge_len);
	assert_memory_equal(ch, f->x.challenge, len);
}

/* The initiator's CHAP_N/CHAP_R (and for mutual CHAP_I/CHAP_C) text. */
static void xfx_response_text(struct xfx *f, const char *user, const char *secret,
			      enum chap_encoding enc, const char *extra, char *req, size_t cap)
{
	uint8_t r[CHAP_DIGEST_MAX];
	char text[CHAP_TEXT_MAX];
	size_t n = ref_response(f->x.alg, f->x.id, secret, f->x.challenge, f->x.challenge_len, r);

	assert_int_equal(chap_binary_encode(r, n, enc, text, sizeof(text)), 0);
	snprintf(req, cap, "CHAP_N=%s\nCHAP_R=%s\n%s", user, text, extra ? extra : "");
}

static void test_exchange_every_alg_and_encoding(void **state)
{
	struct xfx *f = *state;
	char req[CHAP_TEXT_MAX + 512];
	static const char *const lists[] = { "5", "6,5", "7,6,5", "8,7,6,5" };

	for (int alg = CHAP_ALG_MD5; alg <= CHAP_ALG_SHA3_256; alg++) {
		for (int e = CHAP_ENC_HEX; e <= CHAP_ENC_BASE64; e++) {
			memset(&f->x, 0, sizeof(f->x));
			xfx_challenge(f, lists[alg - CHAP_ALG_MD5], alg);
			xfx_response_text(f, USER, SECRET, (enum chap_encoding)e, NULL, req, sizeof(req));
			memcmp_calls = 0;
			assert_int_equal(xfx_step(f, req), ISCSI_LOGIN_OK);
			/* the response was compared with CRYPTO_memcmp */
			assert_true(memcmp_calls >= 1);
			assert_int_equal(f->x.state, CHAP_STATE_DONE);
			assert_string_equal(f->x.user, USER);
			assert_false(f->x.mutual);
			/* no mutual CHAP asked: nothing said back */
			assert_int_equal(f->out.len, 0);
			/* the exchange is over: more CHAP keys are an error, none are fine */
			assert_int_equal(xfx_step(f, ""), ISCSI_LOGIN_OK);
		}
	}
}

/* Mutual CHAP: the target proves its own secret, in the initiator's encoding. */
static void test_exchange_mutual(void **state)
{
	struct xfx *f = *state;
	char req[CHAP_TEXT_MAX + 512];
	uint8_t ich[40], want[CHAP_DIGEST_MAX], got[CHAP_BINARY_MAX];
	char ichtext[CHAP_TEXT_MAX], extra[CHAP_TEXT_MAX + 32];
	size_t got_len;
	enum chap_encoding enc;

	for (size_t i = 0; i < sizeof(ich); i++)
		ich[i] = (uint8_t)(0xa0 + i);
	for (int alg = CHAP_ALG_MD5; alg <= CHAP_ALG_SHA3_256; alg++) {
		for (int e = CHAP_ENC_HEX; e <= CHAP_ENC_BASE64; e++) {
			char list[8];

			memset(&f->x, 0, sizeof(f->x));
			snprintf(list, sizeof(list), "%d", alg);
			xfx_challenge(f, list, alg);
			assert_int_equal(chap_binary_encode(ich, sizeof(ich), (enum chap_encoding)e, ichtext,
							    sizeof(ichtext)), 0);
			snprintf(extra, sizeof(extra), "CHAP_I=%d\nCHAP_C=%s\n", 200 + alg, ichtext);
			/* the initiator's own response in hex, its challenge in encoding e */
			xfx_response_text(f, USER, SECRET, CHAP_ENC_HEX, extra, req, sizeof(req));
			assert_int_equal(xfx_step(f, req), ISCSI_LOGIN_OK);
			assert_true(f->x.mutual);
			assert_string_equal(xfx_answer(f, "CHAP_N"), TUSER);
			assert_int_equal(chap_binary_decode(xfx_answer(f, "CHAP_R"), got, sizeof(got), &got_len,
							    &enc), 0);
			assert_int_equal(enc, e);
			size_t n = ref_response(alg, (uint8_t)(200 + alg), TSECRET, ich, sizeof(ich), want);

			assert_int_equal(got_len, n);
			assert_memory_equal(got, want, n);
		}
	}
}

/* RFC 7143 12.1.3: an initiator that sends our own challenge back gets nothing but a failure. */
static void test_exchange_reflection_refused(void **state)
{
	struct xfx *f = *state;
	char req[CHAP_TEXT_MAX + 512], extra[CHAP_TEXT_MAX + 32], ctext[CHAP_TEXT_MAX];

	xfx_challenge(f, "5", CHAP_ALG_MD5);
	assert_int_equal(chap_binary_encode(f->x.challenge, f->x.challenge_len, CHAP_ENC_BASE64, ctext,
					    sizeof(ctext)), 0);
	snprintf(extra, sizeof(extra), "CHAP_I=%u\nCHAP_C=%s\n", (unsigned)f->x.id, ctext);
	xfx_response_text(f, USER, SECRET, CHAP_ENC_HEX, extra, req, sizeof(req));
	assert_int_equal(xfx_step(f, req), ISCSI_LOGIN_AUTH_FAILED);
	assert_non_null(strstr(f->why, "reflect"));
	assert_null(xfx_answer(f, "CHAP_R"));
	assert_int_equal(f->x.state, CHAP_STATE_FAILED);
	/* and once failed, it stays failed */
	assert_int_equal(xfx_step(f, ""), ISCSI_LOGIN_AUTH_FAILED);
}

/* A response made with the target's secret: the same secret in both directions. */
static void test_exchange_own_secret_refused(void **state)
{
	struct xfx *f = *state;
	char req[CHAP_TEXT_MAX + 512];

	xfx_challenge(f, "7", CHAP_ALG_SHA256);
	xfx_response_text(f, USER, TSECRET, CHAP_ENC_HEX, NULL, req, sizeof(req));
	assert_int_equal(xfx_step(f, req), ISCSI_LOGIN_AUTH_FAILED);
	assert_non_null(strstr(f->why, "target's own secret"));
}

static void test_exchange_wrong_secret(void **state)
{
	struct xfx *f = *state;
	char req[CHAP_TEXT_MAX + 512];

	xfx_challenge(f, "5", CHAP_ALG_MD5);
	xfx_response_text(f, USER, SECRET "x", CHAP_ENC_HEX, NULL, req, sizeof(req));
	memcmp_calls = 0;
	assert_int_equal(xfx_step(f, req), ISCSI_LOGIN_AUTH_FAILED);
	assert_true(memcmp_calls >= 1);
	assert_non_null(strstr(f->why, "wrong CHAP_R"));
	assert_string_equal(f->x.user, "");
}

static void test_exchange_wrong_user(void **state)
{
	struct xfx *f = *state;
	char req[CHAP_TEXT_MAX + 512];

	xfx_challenge(f, "5", CHAP_ALG_MD5);
	xfx_response_text(f, "Bob", SECRET, CHAP_ENC_HEX, NULL, req, sizeof(req));
	assert_int_equal(xfx_step(f, req), ISCSI_LOGIN_AUTH_FAILED);
	assert_non_null(strstr(f->why, "CHAP_N"));
}

static void test_exchange_bad_requests(void **state)
{
	struct xfx *f = *state;
	char req[CHAP_TEXT_MAX + 512], extra[128];
	static const char *const after_challenge[] = {
		"CHAP_N=" USER "\n",				/* CHAP_R missing */
		"CHAP_R=0x00112233445566778899aabbccddeeff\n",	/* CHAP_N missing */
		"CHAP_N=" USER "\nCHAP_R=0x0011\n",		/* wrong length */
		"CHAP_N=" USER "\nCHAP_R=00112233445566778899aabbccddeeff\n",	/* no prefix */
		"CHAP_N=" USER "\nCHAP_R=0bnot*base64\n",
		"CHAP_A=5\n",					/* CHAP_A again */
		"",						/* nothing at all */
	};

	for (size_t i = 0; i < sizeof(after_challenge) / sizeof(after_challenge[0]); i++) {
		memset(&f->x, 0, sizeof(f->x));
		xfx_challenge(f, "5", CHAP_ALG_MD5);
		assert_int_equal(xfx_step(f, after_challenge[i]), ISCSI_LOGIN_AUTH_FAILED);
		assert_non_null(f->why);
	}
	/* no algorithm we know: CHAP_A=Reject, and the exchange fails */
	memset(&f->x, 0, sizeof(f->x));
	assert_int_equal(xfx_step(f, ""), ISCSI_LOGIN_OK);
	assert_int_equal(xfx_step(f, "CHAP_A=1,2,3\n"), ISCSI_LOGIN_AUTH_FAILED);
	assert_string_equal(xfx_answer(f, "CHAP_A"), "Reject");
	assert_null(xfx_answer(f, "CHAP_C"));
	/* the initiator must start with CHAP_A */
	memset(&f->x, 0, sizeof(f->x));
	assert_int_equal(xfx_step(f, ""), ISCSI_LOGIN_OK);
	assert_int_equal(xfx_step(f, "CHAP_N=bob\nCHAP_R=0x00\n"), ISCSI_LOGIN_AUTH_FAILED);
	memset(&f->x, 0, sizeof(f->x));
	assert_int_equal(xfx_step(f, ""), ISCSI_LOGIN_OK);
	assert_int_equal(xfx_step(f, "CHAP_A=5\nCHAP_I=1\n"), ISCSI_LOGIN_AUTH_FAILED);
	/* RFC 7143 6.3: a key twice in one request */
	memset(&f->x, 0, sizeof(f->x));
	assert_int_equal(xfx_step(f, "CHAP_A=5\nCHAP_A=5\n"), ISCSI_LOGIN_AUTH_FAILED);
	/* CHAP_A may come with AuthMethod in the same request */
	memset(&f->x, 0, sizeof(f->x));
	assert_int_equal(xfx_step(f, "CHAP_A=6\n"), ISCSI_LOGIN_OK);
	assert_string_equal(xfx_answer(f, "CHAP_A"), "6");
	assert_int_equal(f->x.state, CHAP_STATE_WAIT_R);

	/* mutual CHAP halves, bad identifiers and challenges */
	static const char *const mutual_bad[] = {
		"CHAP_I=1\n", "CHAP_C=0x0102030405060708\n", "CHAP_I=256\nCHAP_C=0x0102\n",
		"CHAP_I=-1\nCHAP_C=0x0102\n", "CHAP_I=01\nCHAP_C=0x0102\n", "CHAP_I=1\nCHAP_C=0x\n",
		"CHAP_I=1\nCHAP_C=hello\n",
	};
	for (size_t i = 0; i < sizeof(mutual_bad) / sizeof(mutual_bad[0]); i++) {
		memset(&f->x, 0, sizeof(f->x));
		xfx_challenge(f, "5", CHAP_ALG_MD5);
		xfx_response_text(f, USER, SECRET, CHAP_ENC_HEX, mutual_bad[i], req, sizeof(req));
		assert_int_equal(xfx_step(f, req), ISCSI_LOGIN_AUTH_FAILED);
		assert_null(xfx_answer(f, "CHAP_R"));
	}
	/* RFC 7143 12.1.3: a challenge of 1024 bytes is answered, one of 1025 is not */
	for (int extra_bytes = 0; extra_bytes <= 1; extra_bytes++) {
		size_t nbytes = CHAP_BINARY_MAX + (size_t)extra_bytes;
		char *big = malloc(64 + 2 * nbytes);
		char *bigreq = malloc(CHAP_TEXT_MAX + 2 * nbytes + 256);

		assert_non_null(big);
		assert_non_null(bigreq);
		strcpy(big, "CHAP_I=1\nCHAP_C=0x");
		for (size_t i = 0; i < nbytes; i++)
			strcat(big, "ab");
		strcat(big, "\n");
		memset(&f->x, 0, sizeof(f->x));
		xfx_challenge(f, "5", CHAP_ALG_MD5);
		xfx_response_text(f, USER, SECRET, CHAP_ENC_HEX, big, bigreq, CHAP_TEXT_MAX + 2 * nbytes + 256);
		assert_int_equal(xfx_step(f, bigreq), extra_bytes ? ISCSI_LOGIN_AUTH_FAILED : ISCSI_LOGIN_OK);
		free(big);
		free(bigreq);
	}

	/* mutual CHAP asked of a target that has no credentials of its own */
	memset(&f->x, 0, sizeof(f->x));
	f->self.set = false;
	xfx_challenge(f, "5", CHAP_ALG_MD5);
	snprintf(extra, sizeof(extra), "CHAP_I=7\nCHAP_C=0x00112233445566778899aabbccddeeff\n");
	xfx_response_text(f, USER, SECRET, CHAP_ENC_HEX, extra, req, sizeof(req));
	assert_int_equal(xfx_step(f, req), ISCSI_LOGIN_AUTH_FAILED);
	assert_non_null(strstr(f->why, "mutual"));
}

/* Fresh randomness for every exchange. */
static void test_challenges_differ(void **state)
{
	struct xfx *f = *state;
	uint8_t first[CHAP_DIGEST_MAX];
	size_t first_len;

	xfx_challenge(f, "7", CHAP_ALG_SHA256);
	assert_int_equal(f->x.challenge_len, 32);
	memcpy(first, f->x.challenge, f->x.challenge_len);
	first_len = f->x.challenge_len;
	memset(&f->x, 0, sizeof(f->x));
	xfx_challenge(f, "7", CHAP_ALG_SHA256);
	assert_int_equal(f->x.challenge_len, first_len);
	assert_memory_not_equal(first, f->x.challenge, first_len);
	memset(&f->x, 0, sizeof(f->x));
	xfx_challenge(f, "5", CHAP_ALG_MD5);
	assert_int_equal(f->x.challenge_len, 16);
	memset(&f->x, 0, sizeof(f->x));
	xfx_challenge(f, "6", CHAP_ALG_SHA1);
	assert_int_equal(f->x.challenge_len, 20);
}

/* ------------------------------------------------------------------ */
/* Part three: the login through the engine                             */
/* ------------------------------------------------------------------ */

#define EFX_TARGET "iqn.2024-01.org.example.spt:chap"
#define EFX_GOOD "iqn.2024-01.org.example:good"
#define EFX_OTHER "iqn.2024-01.org.example:other"
#define EFX_SPINS 64
#define EFX_TEXT_MAX 8192

struct efx {
	struct ev_loop *loop;
	struct iscsi_server *srv;
	struct iscsi_target *tgt;
	int fd;
	uint8_t *buf;
	size_t len, cap;
	bool eof;
	uint32_t statsn;
	uint16_t tsih;
	/* the one LUN's provider: what SESSION_START said */
	int starts, ends;
	char chap_user[SPT_CHAP_USER_MAX];
	/* last PDU */
	uint8_t hdr[ISCSI_BHS_LEN];
	char data[EFX_TEXT_MAX + 1];
	uint32_t dlen;
};

static void efx_session_start(void *ctx, const struct spt_session_start *ss)
{
	struct efx *f = ctx;

	f->starts++;
	snprintf(f->chap_user, sizeof(f->chap_user), "%s", ss->chap_user_name);
}

static void efx_session_end(void *ctx, const struct spt_session_end *se)
{
	struct efx *f = ctx;

	f->ends++;
}

static const struct spt_provider_ops efx_ops = {
	.name = "chap-test",
	.session_start = efx_session_start,
	.session_end = efx_session_end,
};

static void efx_stop(void *arg)
{
	ev_loop_stop(arg);
}

static void efx_spin(struct efx *f)
{
	ev_defer(f->loop, efx_stop, f->loop);
	ev_loop_run(f->loop);
}

static int efx_setup(void **state)
{
	struct efx *f = calloc(1, sizeof(*f));
	const char *lvl = getenv("SPT_TEST_LOG");
	struct chap_config cfg;
	char err[256];

	if (!f)
		return -1;
	if (!lvl || log_parse_level(lvl, &log_threshold) < 0)
		log_threshold = LOG_ERR;
	f->fd = -1;
	f->loop = ev_loop_new();
	f->srv = f->loop ? iscsi_server_new(f->loop) : NULL;
	f->tgt = f->srv ? iscsi_server_add_target(f->srv, EFX_TARGET) : NULL;
	if (!f->tgt)
		return -1;
	f->tgt->luns.luns[0] = (struct spt_lun){ .lun = 0, .ops = &efx_ops, .ctx = f };
	f->tgt->luns.count = 1;
	memset(&cfg, 0, sizeof(cfg));
	creds(&cfg.initiator, USER, SECRET);
	creds(&cfg.discovery, "disco", "discoverysecret");
	creds(&cfg.target, TUSER, TSECRET);
	if (iscsi_server_set_chap(f->srv, &cfg, err, sizeof(err)) < 0)
		return -1;
	/* the ACL lists the good initiator, in other letter case */
	if (iscsi_target_allow(f->tgt, "IQN.2024-01.org.example:GOOD", err, sizeof(err)) < 0)
		return -1;
	/* a portal for SendTargets, recorded without a socket */
	struct iscsi_portal *p = &f->srv->portals[0];
	struct sockaddr_in *in = (struct sockaddr_in *)&p->addr;

	in->sin_family = AF_INET;
	in->sin_port = htons(3260);
	in->sin_addr.s_addr = htonl(0x7f000001);
	p->addrlen = sizeof(*in);
	p->srv = f->srv;
	p->h.fd = -1;
	f->srv->nportals = 1;
	*state = f;
	return 0;
}

static int efx_teardown(void **state)
{
	struct efx *f = *state;
	int rc = 0;

	if (f->fd >= 0)
		close(f->fd);
	for (int i = 0; i < 8; i++)
		efx_spin(f);
	if (!list_empty(&f->srv->conns) || f->srv->nsessions != 0 || f->starts != f->ends)
		rc = -1;
	iscsi_server_free(f->srv);
	ev_loop_free(f->loop);
	free(f->buf);
	free(f);
	return rc;
}

static void efx_connect(struct efx *f)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = sv[1];
	f->len = 0;
	f->eof = false;
	f->statsn = 0x100;
	f->tsih = 0;
	iscsi_conn_accept(f->srv, sv[0]);
}

static void efx_send(struct efx *f, const void *bhs, const char *text)
{
	uint8_t pdu[ISCSI_BHS_LEN + EFX_TEXT_MAX + 4];
	size_t n = strlen(text);

	assert_true(n <= EFX_TEXT_MAX);
	memcpy(pdu, bhs, ISCSI_BHS_LEN);
	for (size_t i = 0; i < n; i++)
		pdu[ISCSI_BHS_LEN + i] = text[i] == '\n' ? '\0' : (uint8_t)text[i];
	pdu_set_dsl(pdu, (uint32_t)n);
	memset(pdu + ISCSI_BHS_LEN + n, 0, pdu_pad((uint32_t)n));
	size_t total = ISCSI_BHS_LEN + n + pdu_pad((uint32_t)n);
	const uint8_t *p = pdu;

	while (total) {
		ssize_t w = send(f->fd, p, total, MSG_NOSIGNAL);

		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			efx_spin(f);
			continue;
		}
		if (w < 0)
			return;
		p += w;
		total -= (size_t)w;
	}
}

#define LF(t, csg, nsg) ((uint8_t)(((t) ? ISCSI_LOGIN_TRANSIT : 0) | (csg) << 2 | (nsg)))

static void efx_login_req(struct efx *f, uint8_t flags, const char *text)
{
	struct iscsi_login_req h;

	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_LOGIN_REQ | ISCSI_FLAG_IMMEDIATE;
	h.flags = flags;
	memcpy(h.isid, "\x80\x00\x00\x00\x00\x01", 6);
	h.tsih = pdu_put16(f->tsih);
	h.itt = pdu_put32(0x77);
	h.cmdsn = pdu_put32(1);
	h.exp_statsn = pdu_put32(f->statsn);
	efx_send(f, &h, text);
}

/* The next PDU; false on EOF or silence. */
static bool efx_recv(struct efx *f)
{
	for (int spin = 0; spin <= EFX_SPINS; spin++) {
		for (;;) {
			if (f->len >= ISCSI_BHS_LEN) {
				uint32_t dsl = pdu_dsl((const struct iscsi_bhs *)f->buf);
				size_t total = ISCSI_BHS_LEN + dsl + pdu_pad(dsl);

				assert_true(dsl <= EFX_TEXT_MAX);
				if (f->len >= total) {
					memcpy(f->hdr, f->buf, ISCSI_BHS_LEN);
					memcpy(f->data, f->buf + ISCSI_BHS_LEN, dsl);
					f->data[dsl] = '\0';
					f->dlen = dsl;
					memmove(f->buf, f->buf + total, f->len - total);
					f->len -= total;
					f->statsn = spt_get_be32(f->hdr + 24) + 1;
					return true;
				}
			}
			if (f->cap - f->len < 65536) {
				f->cap = f->cap ? f->cap * 2 : 131072;
				f->buf = realloc(f->buf, f->cap);
				assert_non_null(f->buf);
			}
			ssize_t r = read(f->fd, f->buf + f->len, f->cap - f->len);

			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
				f->eof = true;
				return false;
			}
			if (r < 0)
				break;
			f->len += (size_t)r;
		}
		efx_spin(f);
	}
	return false;
}

static const char *efx_get(const struct efx *f, const char *key)
{
	size_t klen = strlen(key);

	for (uint32_t i = 0; i < f->dlen;) {
		const char *kv = f->data + i;
		size_t n = strnlen(kv, f->dlen - i);

		if (n > klen && strncmp(kv, key, klen) == 0 && kv[klen] == '=')
			return kv + klen + 1;
		i += (uint32_t)n + 1;
	}
	return NULL;
}

static uint16_t efx_status(const struct efx *f)
{
	return (uint16_t)(f->hdr[36] << 8 | f->hdr[37]);
}

static void efx_expect_login_rsp(struct efx *f, uint16_t status, uint8_t flags)
{
	assert_true(efx_recv(f));
	assert_int_equal(f->hdr[0] & ISCSI_OPCODE_MASK, ISCSI_OP_LOGIN_RSP);
	assert_int_equal(efx_status(f), status);
	if (status == 0)
		assert_int_equal(f->hdr[1], flags);
}

/* RFC 7143 11.13.5: a failing status, then the target closes the connection. */
static void efx_expect_failure(struct efx *f, uint16_t status)
{
	efx_expect_login_rsp(f, status, 0);
	assert_int_equal(pdu_get16(((const struct iscsi_login_rsp *)f->hdr)->tsih), 0);
	assert_false(efx_recv(f));
	assert_true(f->eof);
}

/* Security stage up to our challenge; returns its algorithm, id and challenge. */
static void efx_to_challenge(struct efx *f, const char *initiator, const char *session,
			     const char *algs, int *alg, uint8_t *id, uint8_t *ch, size_t *chlen)
{
	char text[512];
	enum chap_encoding enc;

	snprintf(text, sizeof(text), "InitiatorName=%s\n%sAuthMethod=CHAP,None\n", initiator, session);
	/* libiscsi and open-iscsi ask to transit at once; the target answers T=0 */
	efx_login_req(f, LF(1, 0, 1), text);
	efx_expect_login_rsp(f, 0, LF(0, 0, 0));
	assert_string_equal(efx_get(f, "AuthMethod"), "CHAP");
	snprintf(text, sizeof(text), "CHAP_A=%s\n", algs);
	efx_login_req(f, LF(0, 0, 1), text);
	efx_expect_login_rsp(f, 0, LF(0, 0, 0));
	*alg = atoi(efx_get(f, "CHAP_A"));
	*id = (uint8_t)atoi(efx_get(f, "CHAP_I"));
	assert_int_equal(chap_binary_decode(efx_get(f, "CHAP_C"), ch, CHAP_BINARY_MAX, chlen, &enc), 0);
}

static void efx_response(int alg, uint8_t id, const char *secret, const uint8_t *ch, size_t chlen,
			 enum chap_encoding enc, char *text, size_t cap)
{
	uint8_t r[CHAP_DIGEST_MAX];
	size_t n = ref_response(alg, id, secret, ch, chlen, r);

	assert_int_equal(chap_binary_encode(r, n, enc, text, cap), 0);
}

#define NORMAL "TargetName=" EFX_TARGET "\nSessionType=Normal\n"

/* A whole login: CHAP with SHA-256, mutual in base64, operational stage, SESSION_START. */
static void test_login_chap_mutual(void **state)
{
	struct efx *f = *state;
	uint8_t ch[CHAP_BINARY_MAX], id, ich[24], want[CHAP_DIGEST_MAX], got[CHAP_BINARY_MAX];
	size_t chlen, got_len;
	int alg;
	char r[CHAP_TEXT_MAX], c[CHAP_TEXT_MAX], text[CHAP_TEXT_MAX * 2 + 256];
	enum chap_encoding enc;

	efx_connect(f);
	efx_to_challenge(f, EFX_GOOD, NORMAL, "7,5", &alg, &id, ch, &chlen);
	assert_int_equal(alg, CHAP_ALG_SHA256);
	assert_int_equal(chlen, 32);
	for (size_t i = 0; i < sizeof(ich); i++)
		ich[i] = (uint8_t)(i + 1);
	efx_response(alg, id, SECRET, ch, chlen, CHAP_ENC_BASE64, r, sizeof(r));
	assert_int_equal(chap_binary_encode(ich, sizeof(ich), CHAP_ENC_BASE64, c, sizeof(c)), 0);
	snprintf(text, sizeof(text), "CHAP_N=%s\nCHAP_R=%s\nCHAP_I=9\nCHAP_C=%s\n", USER, r, c);
	efx_login_req(f, LF(1, 0, 1), text);
	/* authenticated: the transit to the operational stage is granted, with our proof */
	efx_expect_login_rsp(f, 0, LF(1, 0, 1));
	assert_string_equal(efx_get(f, "CHAP_N"), TUSER);
	assert_int_equal(chap_binary_decode(efx_get(f, "CHAP_R"), got, sizeof(got), &got_len, &enc), 0);
	assert_int_equal(enc, CHAP_ENC_BASE64);
	assert_int_equal(got_len, ref_response(alg, 9, TSECRET, ich, sizeof(ich), want));
	assert_memory_equal(got, want, got_len);
	efx_login_req(f, LF(1, 1, 3), "HeaderDigest=None\nDataDigest=None\nMaxRecvDataSegmentLength=65536\n");
	efx_expect_login_rsp(f, 0, LF(1, 1, 3));
	assert_int_not_equal(pdu_get16(((const struct iscsi_login_rsp *)f->hdr)->tsih), 0);
	/* SESSION_START carries the CHAP name the initiator proved */
	assert_int_equal(f->starts, 1);
	assert_string_equal(f->chap_user, USER);
}

/* Plain CHAP, MD5, hex, straight from the security stage to full feature phase. */
static void test_login_chap_md5_to_full_feature(void **state)
{
	struct efx *f = *state;
	uint8_t ch[CHAP_BINARY_MAX], id;
	size_t chlen;
	int alg;
	char r[CHAP_TEXT_MAX], text[CHAP_TEXT_MAX + 64];

	efx_connect(f);
	efx_to_challenge(f, EFX_GOOD, NORMAL, "5", &alg, &id, ch, &chlen);
	assert_int_equal(alg, CHAP_ALG_MD5);
	assert_int_equal(chlen, 16);
	efx_response(alg, id, SECRET, ch, chlen, CHAP_ENC_HEX, r, sizeof(r));
	snprintf(text, sizeof(text), "CHAP_N=%s\nCHAP_R=%s\n", USER, r);
	efx_login_req(f, LF(1, 0, 3), text);
	efx_expect_login_rsp(f, 0, LF(1, 0, 3));
	assert_null(efx_get(f, "CHAP_R"));
	assert_int_equal(f->starts, 1);
	assert_string_equal(f->chap_user, USER);
}

static void test_login_wrong_secret(void **state)
{
	struct efx *f = *state;
	uint8_t ch[CHAP_BINARY_MAX], id;
	size_t chlen;
	int alg;
	char r[CHAP_TEXT_MAX], text[CHAP_TEXT_MAX + 64];

	efx_connect(f);
	efx_to_challenge(f, EFX_GOOD, NORMAL, "5", &alg, &id, ch, &chlen);
	efx_response(alg, id, "secretsecret13", ch, chlen, CHAP_ENC_HEX, r, sizeof(r));
	snprintf(text, sizeof(text), "CHAP_N=%s\nCHAP_R=%s\n", USER, r);
	efx_login_req(f, LF(1, 0, 1), text);
	efx_expect_failure(f, ISCSI_LOGIN_AUTH_FAILED);
	assert_int_equal(f->starts, 0);
}

static void test_login_reflection(void **state)
{
	struct efx *f = *state;
	uint8_t ch[CHAP_BINARY_MAX], id;
	size_t chlen;
	int alg;
	char r[CHAP_TEXT_MAX], c[CHAP_TEXT_MAX], text[CHAP_TEXT_MAX * 2 + 64];

	efx_connect(f);
	efx_to_challenge(f, EFX_GOOD, NORMAL, "5", &alg, &id, ch, &chlen);
	efx_response(alg, id, SECRET, ch, chlen, CHAP_ENC_HEX, r, sizeof(r));
	assert_int_equal(chap_binary_encode(ch, chlen, CHAP_ENC_HEX, c, sizeof(c)), 0);
	snprintf(text, sizeof(text), "CHAP_N=%s\nCHAP_R=%s\nCHAP_I=%u\nCHAP_C=%s\n", USER, r,
		 (unsigned)id, c);
	efx_login_req(f, LF(1, 0, 1), text);
	efx_expect_failure(f, ISCSI_LOGIN_AUTH_FAILED);
	assert_null(efx_get(f, "CHAP_R"));
}

/* None offered while CHAP is required: AuthMethod=Reject with status 0x0201. */
static void test_login_none_refused(void **state)
{
	struct efx *f = *state;

	efx_connect(f);
	efx_login_req(f, LF(1, 0, 1), "InitiatorName=" EFX_GOOD "\n" NORMAL "AuthMethod=None\n");
	efx_expect_failure(f, ISCSI_LOGIN_AUTH_FAILED);
	assert_string_equal(efx_get(f, "AuthMethod"), "Reject");
}

/* Skipping the security stage when CHAP is required: 0x0201. */
static void test_login_skip_security(void **state)
{
	struct efx *f = *state;

	efx_connect(f);
	efx_login_req(f, LF(1, 1, 3), "InitiatorName=" EFX_GOOD "\n" NORMAL "HeaderDigest=None\n");
	efx_expect_failure(f, ISCSI_LOGIN_AUTH_FAILED);
	/* leaving the security stage without AuthMethod: the same */
	efx_connect(f);
	efx_login_req(f, LF(1, 0, 1), "InitiatorName=" EFX_GOOD "\n" NORMAL);
	efx_expect_failure(f, ISCSI_LOGIN_AUTH_FAILED);
	/* and CHAP keys without AuthMethod=CHAP */
	efx_connect(f);
	efx_login_req(f, LF(0, 0, 1), "InitiatorName=" EFX_GOOD "\n" NORMAL "CHAP_A=5\n");
	efx_expect_failure(f, ISCSI_LOGIN_AUTH_FAILED);
	assert_int_equal(f->starts, 0);
}

/* RFC 7143 11.13.5: an initiator outside the ACL gets 0x0202, before any CHAP. */
static void test_login_acl_refused(void **state)
{
	struct efx *f = *state;

	efx_connect(f);
	efx_login_req(f, LF(1, 0, 1), "InitiatorName=" EFX_OTHER "\n" NORMAL "AuthMethod=CHAP,None\n");
	efx_expect_failure(f, ISCSI_LOGIN_FORBIDDEN);
	assert_null(efx_get(f, "AuthMethod"));
	/* who logs in to what comes before authentication, even when AuthMethod fails */
	efx_connect(f);
	efx_login_req(f, LF(1, 0, 1), "InitiatorName=" EFX_OTHER "\n" NORMAL "AuthMethod=None\n");
	efx_expect_failure(f, ISCSI_LOGIN_FORBIDDEN);
	efx_connect(f);
	efx_login_req(f, LF(1, 0, 1), "AuthMethod=None\nInitiatorName=" EFX_GOOD
		      "\nTargetName=iqn.2024-01.org.example.spt:nosuch\n");
	efx_expect_failure(f, ISCSI_LOGIN_NOT_FOUND);
	/* an initiator skipping the security stage is told about the ACL too */
	efx_connect(f);
	efx_login_req(f, LF(1, 1, 3), "InitiatorName=" EFX_OTHER "\n" NORMAL "HeaderDigest=None\n");
	efx_expect_failure(f, ISCSI_LOGIN_FORBIDDEN);
	assert_int_equal(f->starts, 0);
}

/* Discovery with --discovery-chap, and SendTargets that lists only what the ACL allows. */
static void test_discovery_chap_and_acl(void **state)
{
	struct efx *f = *state;
	const char *initiators[] = { EFX_GOOD, EFX_OTHER };

	for (int i = 0; i < 2; i++) {
		uint8_t ch[CHAP_BINARY_MAX], id;
		size_t chlen;
		int alg;
		char r[CHAP_TEXT_MAX], text[CHAP_TEXT_MAX + 64];
		struct iscsi_text h;

		efx_connect(f);
		efx_to_challenge(f, initiators[i], "SessionType=Discovery\n", "5", &alg, &id, ch, &chlen);
		efx_response(alg, id, "discoverysecret", ch, chlen, CHAP_ENC_HEX, r, sizeof(r));
		snprintf(text, sizeof(text), "CHAP_N=disco\nCHAP_R=%s\n", r);
		efx_login_req(f, LF(1, 0, 3), text);
		efx_expect_login_rsp(f, 0, LF(1, 0, 3));
		memset(&h, 0, sizeof(h));
		h.opcode = ISCSI_OP_TEXT_REQ | ISCSI_FLAG_IMMEDIATE;
		h.flags = ISCSI_FLAG_FINAL;
		h.itt = pdu_put32(0x78);
		h.ttt = pdu_put32(ISCSI_RESERVED_TAG);
		h.sn1 = pdu_put32(1);
		h.sn2 = pdu_put32(f->statsn);
		efx_send(f, &h, "SendTargets=All\n");
		assert_true(efx_recv(f));
		assert_int_equal(f->hdr[0] & ISCSI_OPCODE_MASK, ISCSI_OP_TEXT_RSP);
		if (i == 0) {
			assert_string_equal(efx_get(f, "TargetName"), EFX_TARGET);
			assert_non_null(efx_get(f, "TargetAddress"));
		} else {
			/* nothing about a target this initiator may not log in to */
			assert_int_equal(f->dlen, 0);
		}
	}
	/* discovery without CHAP is refused when --discovery-chap is set */
	efx_connect(f);
	efx_login_req(f, LF(1, 0, 3), "InitiatorName=" EFX_GOOD "\nSessionType=Discovery\nAuthMethod=None\n");
	efx_expect_failure(f, ISCSI_LOGIN_AUTH_FAILED);
	/* and the normal-session credentials do not open it */
	uint8_t ch[CHAP_BINARY_MAX], id;
	size_t chlen;
	int alg;
	char r[CHAP_TEXT_MAX], text[CHAP_TEXT_MAX + 64];

	efx_connect(f);
	efx_to_challenge(f, EFX_GOOD, "SessionType=Discovery\n", "5", &alg, &id, ch, &chlen);
	efx_response(alg, id, SECRET, ch, chlen, CHAP_ENC_HEX, r, sizeof(r));
	snprintf(text, sizeof(text), "CHAP_N=%s\nCHAP_R=%s\n", USER, r);
	efx_login_req(f, LF(1, 0, 3), text);
	efx_expect_failure(f, ISCSI_LOGIN_AUTH_FAILED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_response_known_vectors),
		cmocka_unit_test(test_response_matches_reference),
		cmocka_unit_test(test_hex_decode),
		cmocka_unit_test(test_base64_decode),
		cmocka_unit_test(test_encode_round_trip),
		cmocka_unit_test(test_alg_pick),
		cmocka_unit_test(test_credentials),
		cmocka_unit_test(test_config_check),
		cmocka_unit_test(test_equal_constant_time),
		cmocka_unit_test_setup_teardown(test_exchange_every_alg_and_encoding, xfx_setup, xfx_teardown),
		cmocka_unit_test_setup_teardown(test_exchange_mutual, xfx_setup, xfx_teardown),
		cmocka_unit_test_setup_teardown(test_exchange_reflection_refused, xfx_setup, xfx_teardown),
		cmocka_unit_test_setup_teardown(test_exchange_own_secret_refused, xfx_setup, xfx_teardown),
		cmocka_unit_test_setup_teardown(test_exchange_wrong_secret, xfx_setup, xfx_teardown),
		cmocka_unit_test_setup_teardown(test_exchange_wrong_user, xfx_setup, xfx_teardown),
		cmocka_unit_test_setup_teardown(test_exchange_bad_requests, xfx_setup, xfx_teardown),
		cmocka_unit_test_setup_teardown(test_challenges_differ, xfx_setup, xfx_teardown),
		cmocka_unit_test_setup_teardown(test_login_chap_mutual, efx_setup, efx_teardown),
		cmocka_unit_test_setup_teardown(test_login_chap_md5_to_full_feature, efx_setup, efx_teardown),
		cmocka_unit_test_setup_teardown(test_login_wrong_secret, efx_setup, efx_teardown),
		cmocka_unit_test_setup_teardown(test_login_reflection, efx_setup, efx_teardown),
		cmocka_unit_test_setup_teardown(test_login_none_refused, efx_setup, efx_teardown),
		cmocka_unit_test_setup_teardown(test_login_skip_security, efx_setup, efx_teardown),
		cmocka_unit_test_setup_teardown(test_login_acl_refused, efx_setup, efx_teardown),
		cmocka_unit_test_setup_teardown(test_discovery_chap_and_acl, efx_setup, efx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
