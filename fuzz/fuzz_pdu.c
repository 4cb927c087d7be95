/*
 * fuzz_pdu: bytes into the iSCSI engine's receive path.
 *
 * Each input runs a fresh engine in-process, as tests/unit/test_engine.c
 * does: an ev_loop, an iscsi_server with one target whose LUN 0 is a RAM
 * block device (and LUN 1 a read-only one) served through spt_bdev_execute,
 * whose backing store fails any I/O touching byte FZ_LUN0_BAD_BYTE (EIO),
 * and a socketpair whose other end the harness plays as the initiator. The
 * input bytes are written to the initiator end, the loop runs until the
 * engine is idle, then the initiator hangs up and every connection, session
 * and task must be gone within a bounded number of loop passes (a leftover
 * is a bug: the harness aborts). After its own login the harness also
 * checks every PDU the target sends (fz_check_pdu: opcode, no AHS, digests,
 * StatSN order, the CmdSN window). Nothing depends on time: the loop's
 * once-a-second tick never fires within one input.
 *
 * Input layout:
 *   byte 0   options
 *            bits 0-1  phase the fuzz bytes start in:
 *                      0 raw (login phase: the bytes are the login),
 *                      1 after a normal-session login (InitialR2T=No, ImmediateData=Yes,
 *                        FirstBurstLength 8192 so short writes reach the R2T path too),
 *                      2 after a discovery-session login,
 *                      3 after a normal-session login with InitialR2T=Yes, ImmediateData=No,
 *                        MaxBurstLength 4096, MaxOutstandingR2T 4 and our
 *                        MaxRecvDataSegmentLength 4096 (R2T and text-continuation paths)
 *            bit 2     (phases 1-3) HeaderDigest and DataDigest CRC32C: the harness
 *                      frames the bytes as PDUs (BHS, AHS, DataSegmentLength) and
 *                      inserts correct digests
 *            bit 3     the LUNs complete their I/O from a deferred call instead of
 *                      inside submit (tasks are at the provider when TMFs and
 *                      logouts arrive)
 *            bit 4     LUN 0 has 4096-byte blocks (else 512)
 *            bit 5     (phases 1, 3) after the bytes, a second connection logs in with
 *                      the same initiator name and ISID: session reinstatement
 *                      while the first session may still have tasks
 *            bit 6     the target requires CHAP (--chap, --discovery-chap), has
 *                      mutual credentials (--mutual-chap) and an ACL naming only
 *                      FZ_INITIATOR (--allow); the harness's login prefix then
 *                      authenticates with CHAP_A=5 and asks for mutual CHAP (the
 *                      challenge is random, so raw bytes cannot pass it, but they
 *                      go through every CHAP check of login.c)
 *            bit 7     (with bit 2) digest errors on demand: a PDU whose BHS byte 3
 *                      (reserved in every initiator PDU but the Login Request) has
 *                      bit 7 set gets a wrong header digest, bit 6 a wrong data digest
 *   byte 1   write size: 0 writes the stream at once; 1-127 that many bytes per
 *            write; 128-255 (n - 127) * 64 bytes. One loop pass after each write
 *            (partial BHS, data segments split anywhere). At most
 *            FZ_MAX_WRITES writes: a smaller size grows to fit.
 *   byte 2.. the stream.
 *
 * After the login the session's ExpCmdSN is FZ_CMDSN (0), the initiator's
 * ISID is FZ_ISID and the login ITT FZ_LOGIN_ITT: the seed corpus
 * (fuzz/make_corpus.py) numbers its PDUs from there.
 *
 * FUZZ_LOG=debug|info|warn in the environment shows the engine's log.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "ram_bdev.h"
#include "iscsi/chap.h"
#include "iscsi/server.h"
#include "util/log.h"

#define FZ_TARGET "iqn.2026-11.org.spt:fuzz"
#define FZ_INITIATOR "iqn.2026-11.org.spt:fuzz-initiator"
#define FZ_ISID { 0x80, 0x00, 0x00, 0x00, 0x00, 0x01 }
#define FZ_LOGIN_ITT 0x0u
#define FZ_CMDSN 0x0u
#define FZ_LOGIN_STATSN 0x0u

#define FZ_PHASE_RAW 0
#define FZ_PHASE_NORMAL 1
#define FZ_PHASE_DISCOVERY 2
#define FZ_PHASE_NORMAL_R2T 3
#define FZ_OPT_DIGESTS 0x04
#define FZ_OPT_DEFER_IO 0x08
#define FZ_OPT_BS4096 0x10
#define FZ_OPT_REINSTATE 0x20
#define FZ_OPT_AUTH 0x40
#define FZ_OPT_BAD_DIGESTS 0x80
#define FZ_BAD_HEADER_DIGEST 0x80	/* in BHS byte 3, with FZ_OPT_BAD_DIGESTS */
#define FZ_BAD_DATA_DIGEST 0x40

#define FZ_CHAP_SECRET "fuzz-initiator-secret"
#define FZ_CHAP_USER "fuzz-chap-user"
#define FZ_CHAP_TARGET_USER "fuzz-chap-target"
#define FZ_CHAP_TARGET_SECRET "fuzz-target-secret-2"

#define FZ_MAX_WRITES 512	/* writes (each followed by a loop pass) per input */
#define FZ_SEND_TRIES 4096	/* loop passes a full socket may take to drain */
#define FZ_IDLE_SPINS 3		/* passes without output that count as idle */
#define FZ_MAX_SPINS 256	/* passes after the stream before giving up on idle */
#define FZ_TEARDOWN_SPINS 64	/* passes for every connection and session to go */
#define FZ_LOGIN_SPINS 64	/* passes a login response may take */
#define FZ_TEXT_MAX 2048
#define FZ_RX_MAX (ISCSI_BHS_LEN + 65536)
#define FZ_LUN0_BYTES (128u * 1024)
#define FZ_LUN0_BAD_BYTE (100u * 1024)	/* LBA 200 (512-byte blocks), 25 (4096) */
#define FZ_LUN1_BLOCKS 64
#define FZ_MAX_TRANSFER (1u << 20)

struct fz_ini {
	int fd;
	bool eof;
	uint8_t rx[FZ_RX_MAX];	/* login: the response being read */
	size_t rx_len;
	/* full feature phase after the harness's own login: what the engine
	 * sends is parsed and checked (see fz_check_pdu) */
	bool check;
	bool hd, dd;		/* digests negotiated */
	uint32_t statsn;	/* the next StatSN expected */
	uint32_t exp_cmdsn, max_cmdsn;
	uint8_t *acc;		/* bytes read, not yet parsed */
	size_t acc_len, acc_cap;
};

struct fz {
	struct ev_loop *loop;
	struct iscsi_server *srv;
	struct fuzz_ram ram[2];
	struct fz_ini ini[2];
};

static void fz_stop(void *arg)
{
	ev_loop_stop(arg);
}

/* One pass of the loop: ready events, then every deferred call. */
static void fz_spin(struct fz *f)
{
	ev_defer(f->loop, fz_stop, f->loop);
	ev_loop_run(f->loop);
}

static void fz_bad_output(const char *what, const uint8_t *bhs)
{
	fprintf(stderr, "fuzz_pdu: the target sent %s", what);
	if (bhs) {
		fprintf(stderr, " (%s, BHS", pdu_opcode_name(bhs[0]));
		for (int i = 0; i < ISCSI_BHS_LEN; i++)
			fprintf(stderr, "%s%02x", i % 4 ? "" : " ", bhs[i]);
		fprintf(stderr, ")");
	}
	fprintf(stderr, "\n");
	abort();
}

static uint32_t fz_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * One PDU from the target, checked against what RFC 7143 promises the
 * initiator: a target opcode without AHS, correct digests, StatSN in order
 * (11.x: the PDUs that carry status advance it by one; R2T, a NOP-In ping
 * and a Data-In without status carry the next one without advancing it),
 * ExpCmdSN <= MaxCmdSN + 1, and neither going back (4.2.2.1).
 */
static void fz_check_pdu(struct fz_ini *ini, const uint8_t *b)
{
	uint8_t op = b[0] & ISCSI_OPCODE_MASK;
	uint32_t statsn = spt_get_be32(b + 24), exp = spt_get_be32(b + 28), max = spt_get_be32(b + 32);
	uint32_t itt = spt_get_be32(b + 16);
	bool advances;

	switch (op) {
	case ISCSI_OP_SCSI_RSP:
	case ISCSI_OP_TMF_RSP:
	case ISCSI_OP_TEXT_RSP:
	case ISCSI_OP_LOGOUT_RSP:
	case ISCSI_OP_REJECT:
	case ISCSI_OP_ASYNC:
		advances = true;
		break;
	case ISCSI_OP_NOP_IN:
		advances = itt != ISCSI_RESERVED_TAG;
		break;
	case ISCSI_OP_DATA_IN:
		advances = b[1] & ISCSI_DATAIN_STATUS;
		break;
	case ISCSI_OP_R2T:
		advances = false;
		break;
	default:
		fz_bad_output("an opcode a target does not send in full feature phase", b);
		return;
	}
	if (b[4] != 0)
		fz_bad_output("an AHS", b);
	if (advances || op == ISCSI_OP_R2T || op == ISCSI_OP_NOP_IN) {
		if (statsn != ini->statsn)
			fz_bad_output("a StatSN out of order", b);
		if (advances)
			ini->statsn++;
	}
	if (op == ISCSI_OP_DATA_IN && !advances)
		return;		/* RFC 7143 11.7.4: StatSN reserved without the S bit */
	if (!sn_le(exp, max + 1))
		fz_bad_output("ExpCmdSN beyond MaxCmdSN + 1", b);
	if (sn_lt(exp, ini->exp_cmdsn) || sn_lt(max, ini->max_cmdsn))
		fz_bad_output("ExpCmdSN or MaxCmdSN going back", b);
	ini->exp_cmdsn = exp;
	ini->max_cmdsn = max;
}

/* Parses the whole PDUs in ini->acc, checking digests. */
static void fz_parse_output(struct fz_ini *ini)
{
	size_t pos = 0;

	for (;;) {
		size_t left = ini->acc_len - pos;
		const uint8_t *b = ini->acc + pos;
		size_t hlen = ISCSI_BHS_LEN + (ini->hd ? ISCSI_DIGEST_LEN : 0);

		if (left < hlen)
			break;
		uint32_t dsl = pdu_dsl((const struct iscsi_bhs *)b);
		size_t dlen = dsl ? (size_t)dsl + pdu_pad(dsl) + (ini->dd ? ISCSI_DIGEST_LEN : 0) : 0;

		if (left < hlen + b[4] * 4u + dlen)
			break;
		if (ini->hd && fz_le32(b + ISCSI_BHS_LEN) != ~pdu_crc32c(b, ISCSI_BHS_LEN, PDU_CRC32C_INIT))
			fz_bad_output("a wrong header digest", b);
		if (dsl && ini->dd &&
		    fz_le32(b + hlen + dsl + pdu_pad(dsl)) !=
			    ~pdu_crc32c(b + hlen, dsl + pdu_pad(dsl), PDU_CRC32C_INIT))
			fz_bad_output("a wrong data digest", b);
		fz_check_pdu(ini, b);
		pos += hlen + dlen;
	}
	memmove(ini->acc, ini->acc + pos, ini->acc_len - pos);
	ini->acc_len -= pos;
}

/* Reads what the engine sent (checking it after our own login); true if anything came. */
static bool fz_drain(struct fz_ini *ini)
{
	uint8_t buf[65536];
	bool got = false;

	while (ini->fd >= 0 && !ini->eof) {
		ssize_t r = read(ini->fd, buf, sizeof(buf));

		if (r > 0) {
			got = true;
			if (!ini->check)
				continue;
			if (ini->acc_cap - ini->acc_len < (size_t)r) {
				size_t ncap = (ini->acc_len + (size_t)r) * 2;
				uint8_t *n = realloc(ini->acc, ncap);

				if (!n)
					abort();
				ini->acc = n;
				ini->acc_cap = ncap;
			}
			memcpy(ini->acc + ini->acc_len, buf, (size_t)r);
			ini->acc_len += (size_t)r;
			fz_parse_output(ini);
			continue;
		}
		if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			ini->eof = true;
		break;
	}
	return got;
}

/* Writes everything, running the loop while the socket is full; false if
 * the engine closed its end. */
static bool fz_send(struct fz *f, struct fz_ini *ini, const uint8_t *p, size_t len)
{
	for (int tries = 0; len && tries < FZ_SEND_TRIES; tries++) {
		ssize_t w = send(ini->fd, p, len, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				return false;
			fz_spin(f);
			fz_drain(ini);
			continue;
		}
		p += w;
		len -= (size_t)w;
	}
	return len == 0;
}

static struct fz_ini *fz_connect(struct fz *f, int idx)
{
	struct fz_ini *ini = &f->ini[idx];
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) {
		perror("fuzz_pdu: socketpair");
		abort();
	}
	free(ini->acc);
	memset(ini, 0, sizeof(*ini));
	ini->fd = sv[1];
	iscsi_conn_accept(f->srv, sv[0]);
	return ini;
}

/* ------------------------------------------------------------------ */
/* The login prefix                                                     */
/* ------------------------------------------------------------------ */

/* "k=v\n..." to "k=v\0...", as a Login Request with stage flags. */
static void fz_login_send(struct fz *f, struct fz_ini *ini, uint8_t flags, const char *text)
{
	uint8_t pdu[ISCSI_BHS_LEN + FZ_TEXT_MAX];
	struct iscsi_login_req *h = (struct iscsi_login_req *)pdu;
	static const uint8_t isid[6] = FZ_ISID;
	size_t n = strlen(text);

	if (n > FZ_TEXT_MAX - 4)
		abort();
	memset(pdu, 0, sizeof(pdu));
	/* RFC 7143 11.12: the I bit is always set on a Login Request */
	h->opcode = ISCSI_OP_LOGIN_REQ | ISCSI_FLAG_IMMEDIATE;
	h->flags = flags;
	memcpy(h->isid, isid, 6);
	h->itt = pdu_put32(FZ_LOGIN_ITT);
	h->cmdsn = pdu_put32(FZ_CMDSN);
	h->exp_statsn = pdu_put32(FZ_LOGIN_STATSN);
	for (size_t i = 0; i < n; i++)
		pdu[ISCSI_BHS_LEN + i] = text[i] == '\n' ? '\0' : (uint8_t)text[i];
	pdu_set_dsl(pdu, (uint32_t)n);
	fz_send(f, ini, pdu, ISCSI_BHS_LEN + n + pdu_pad((uint32_t)n));
}

/* The next Login Response (login PDUs carry no digests): status, flags and
 * its text, NUL-terminated, in text[FZ_TEXT_MAX] (*text_len bytes). */
static bool fz_login_recv(struct fz *f, struct fz_ini *ini, uint16_t *status, uint8_t *flags, char *text,
			  size_t *text_len)
{
	for (int spin = 0; spin < FZ_LOGIN_SPINS; spin++) {
		fz_spin(f);
		while (!ini->eof && ini->rx_len < sizeof(ini->rx)) {
			ssize_t r = read(ini->fd, ini->rx + ini->rx_len, sizeof(ini->rx) - ini->rx_len);

			if (r > 0) {
				ini->rx_len += (size_t)r;
				continue;
			}
			if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
				ini->eof = true;
			break;
		}
		if (ini->rx_len < ISCSI_BHS_LEN)
			continue;
		const struct iscsi_login_rsp *r = (const struct iscsi_login_rsp *)ini->rx;
		uint32_t dsl = pdu_dsl((const struct iscsi_bhs *)ini->rx);
		size_t total = ISCSI_BHS_LEN + dsl + pdu_pad(dsl);

		if (total > sizeof(ini->rx) || dsl >= FZ_TEXT_MAX ||
		    (r->opcode & ISCSI_OPCODE_MASK) != ISCSI_OP_LOGIN_RSP)
			return false;
		if (ini->rx_len < total)
			continue;
		*status = (uint16_t)(r->status_class << 8 | r->status_detail);
		*flags = r->flags;
		/* what full feature phase numbering continues from */
		ini->statsn = pdu_get32(r->statsn) + 1;
		ini->exp_cmdsn = pdu_get32(r->exp_cmdsn);
		ini->max_cmdsn = pdu_get32(r->max_cmdsn);
		memcpy(text, ini->rx + ISCSI_BHS_LEN, dsl);
		text[dsl] = '\0';
		*text_len = dsl;
		memmove(ini->rx, ini->rx + total, ini->rx_len - total);
		ini->rx_len -= total;
		return true;
	}
	return false;
}

/* One login request and its response, which must succeed; the response
 * text goes to rsp[FZ_TEXT_MAX] if rsp is not NULL. */
static void fz_login_step(struct fz *f, struct fz_ini *ini, uint8_t flags, const char *text, char *rsp,
			  size_t *rsp_len)
{
	uint16_t status = 0xffff;
	uint8_t rflags = 0;
	/* RFC 7143 11.13.3: NSG is reserved in a response without T */
	uint8_t want = (flags & ISCSI_LOGIN_TRANSIT) ? flags : (uint8_t)(flags & 0x0c);
	char buf[FZ_TEXT_MAX];
	size_t len = 0;

	fz_login_send(f, ini, flags, text);
	/* a harness whose login prefix fails fuzzes nothing past login: say so loudly */
	if (!fz_login_recv(f, ini, &status, &rflags, rsp ? rsp : buf, rsp_len ? rsp_len : &len) ||
	    status != 0 || rflags != want) {
		fprintf(stderr, "fuzz_pdu: the login prefix failed (status 0x%04x, flags 0x%02x, "
			"expected flags 0x%02x); the harness needs updating\n", status, rflags, want);
		abort();
	}
}

/* The value of key in a login response text of len bytes, or NULL. */
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

#define FZ_LOGIN_FLAGS(csg, nsg) ((uint8_t)(ISCSI_LOGIN_TRANSIT | (csg) << 2 | (nsg)))

/*
 * The security stage with CHAP, as open-iscsi does it: AuthMethod, then
 * CHAP_A, then CHAP_N/CHAP_R with our own challenge for mutual CHAP.
 */
static void fz_login_chap(struct fz *f, struct fz_ini *ini, const char *first_keys)
{
	static const uint8_t our_challenge[16] = "fuzz-challenge!";
	char text[FZ_TEXT_MAX], rsp[FZ_TEXT_MAX], hex[CHAP_TEXT_MAX], chal_hex[64];
	uint8_t chal[CHAP_BINARY_MAX], r[CHAP_DIGEST_MAX];
	size_t rsp_len = 0, chal_len = 0;
	enum chap_encoding enc;
	const char *id, *c;

	snprintf(text, sizeof(text), "%sAuthMethod=CHAP,None\n", first_keys);
	fz_login_step(f, ini, 0, text, NULL, NULL);
	fz_login_step(f, ini, 0, "CHAP_A=5\n", rsp, &rsp_len);
	id = fz_text_get(rsp, rsp_len, "CHAP_I");
	c = fz_text_get(rsp, rsp_len, "CHAP_C");
	if (!id || !c || chap_binary_decode(c, chal, sizeof(chal), &chal_len, &enc) != 0 ||
	    chap_response(CHAP_ALG_MD5, (uint8_t)atoi(id), (const uint8_t *)FZ_CHAP_SECRET,
			  strlen(FZ_CHAP_SECRET), chal, chal_len, r) != 16 ||
	    chap_binary_encode(r, 16, CHAP_ENC_HEX, hex, sizeof(hex)) != 0 ||
	    chap_binary_encode(our_challenge, sizeof(our_challenge), CHAP_ENC_HEX, chal_hex,
			       sizeof(chal_hex)) != 0) {
		fprintf(stderr, "fuzz_pdu: no usable CHAP challenge in the login response\n");
		abort();
	}
	snprintf(text, sizeof(text), "CHAP_N=%s\nCHAP_R=%s\nCHAP_I=9\nCHAP_C=%s\n", FZ_CHAP_USER, hex,
		 chal_hex);
	fz_login_step(f, ini, FZ_LOGIN_FLAGS(0, 1), text, NULL, NULL);
}

/* The last login step: full feature phase, whose PDUs are checked from now on. */
static void fz_login_final(struct fz *f, struct fz_ini *ini, const char *text)
{
	char rsp[FZ_TEXT_MAX];
	size_t len = 0;
	const char *hd, *dd;

	fz_login_step(f, ini, FZ_LOGIN_FLAGS(1, 3), text, rsp, &len);
	hd = fz_text_get(rsp, len, "HeaderDigest");
	dd = fz_text_get(rsp, len, "DataDigest");
	ini->hd = hd && strcmp(hd, "CRC32C") == 0;
	ini->dd = dd && strcmp(dd, "CRC32C") == 0;
	ini->check = true;
}

/* A two-stage login (security, then operational), as open-iscsi makes it. */
static void fz_login(struct fz *f, struct fz_ini *ini, int phase, bool digests, bool chap)
{
	char text[FZ_TEXT_MAX];
	const char *dig = digests ? "CRC32C,None" : "None";

	if (phase == FZ_PHASE_DISCOVERY) {
		snprintf(text, sizeof(text), "InitiatorName=%s\nSessionType=Discovery\n", FZ_INITIATOR);
		if (chap) {
			fz_login_chap(f, ini, text);
		} else {
			strcat(text, "AuthMethod=None\n");
			fz_login_step(f, ini, FZ_LOGIN_FLAGS(0, 1), text, NULL, NULL);
		}
		snprintf(text, sizeof(text),
			 "HeaderDigest=%s\nDataDigest=%s\nMaxRecvDataSegmentLength=262144\n"
			 "DefaultTime2Wait=2\nDefaultTime2Retain=0\nIFMarker=No\nOFMarker=No\n"
			 "ErrorRecoveryLevel=0\n", dig, dig);
		fz_login_final(f, ini, text);
		return;
	}
	snprintf(text, sizeof(text),
		 "InitiatorName=%s\nInitiatorAlias=fuzz\nTargetName=%s\nSessionType=Normal\n",
		 FZ_INITIATOR, FZ_TARGET);
	if (chap) {
		fz_login_chap(f, ini, text);
	} else {
		strcat(text, "AuthMethod=None\n");
		fz_login_step(f, ini, FZ_LOGIN_FLAGS(0, 1), text, NULL, NULL);
	}
	if (phase == FZ_PHASE_NORMAL_R2T)
		snprintf(text, sizeof(text),
			 "HeaderDigest=%s\nDataDigest=%s\nMaxRecvDataSegmentLength=4096\n"
			 "InitialR2T=Yes\nImmediateData=No\nMaxBurstLength=4096\n"
			 "FirstBurstLength=2048\nMaxOutstandingR2T=4\nMaxConnections=1\n"
			 "DefaultTime2Wait=2\nDefaultTime2Retain=0\nDataPDUInOrder=Yes\n"
			 "DataSequenceInOrder=Yes\nErrorRecoveryLevel=0\n", dig, dig);
	else
		snprintf(text, sizeof(text),
			 "HeaderDigest=%s\nDataDigest=%s\nMaxRecvDataSegmentLength=262144\n"
			 "InitialR2T=No\nImmediateData=Yes\nMaxBurstLength=262144\n"
			 "FirstBurstLength=8192\nMaxOutstandingR2T=1\nMaxConnections=1\n"
			 "DefaultTime2Wait=2\nDefaultTime2Retain=0\nIFMarker=No\nOFMarker=No\n"
			 "DataPDUInOrder=Yes\nDataSequenceInOrder=Yes\nErrorRecoveryLevel=0\n", dig, dig);
	fz_login_final(f, ini, text);
}

/* ------------------------------------------------------------------ */
/* Digest framing                                                       */
/* ------------------------------------------------------------------ */

static size_t fz_put_digest(uint8_t *out, const uint8_t *p, size_t len, bool wrong)
{
	uint32_t crc = ~pdu_crc32c(p, len, PDU_CRC32C_INIT) ^ (wrong ? 1u : 0u);

	/* RFC 7143 B.4: least significant byte first on the wire */
	out[0] = (uint8_t)crc;
	out[1] = (uint8_t)(crc >> 8);
	out[2] = (uint8_t)(crc >> 16);
	out[3] = (uint8_t)(crc >> 24);
	return ISCSI_DIGEST_LEN;
}

/*
 * Splits the stream into PDUs by their own BHS (TotalAHSLength,
 * DataSegmentLength) and adds a correct header and data digest to each; a
 * PDU cut short by the end of the input goes out as it is. With bad, BHS
 * byte 3 asks for wrong digests. Returns the framed stream (malloc) and its
 * length in *outlen.
 */
static uint8_t *fz_frame(const uint8_t *in, size_t n, bool bad, size_t *outlen)
{
	size_t cap = n + 2 * ISCSI_DIGEST_LEN * (n / ISCSI_BHS_LEN + 1);
	uint8_t *out = malloc(cap ? cap : 1);
	size_t pos = 0, o = 0;

	if (!out)
		abort();
	while (pos < n) {
		size_t left = n - pos;
		const uint8_t *bhs = in + pos;

		if (left < ISCSI_BHS_LEN)
			break;
		size_t hlen = ISCSI_BHS_LEN + bhs[4] * 4u;
		uint32_t dsl = pdu_dsl((const struct iscsi_bhs *)bhs);
		size_t dlen = (size_t)dsl + pdu_pad(dsl);

		if (left < hlen)
			break;
		bool bad_header = bad && (bhs[3] & FZ_BAD_HEADER_DIGEST);
		bool bad_data = bad && (bhs[3] & FZ_BAD_DATA_DIGEST);

		memcpy(out + o, bhs, hlen);
		o += fz_put_digest(out + o + hlen, bhs, hlen, bad_header) + hlen;
		pos += hlen;
		if (!dlen)
			continue;
		if (n - pos < dlen)
			break;
		memcpy(out + o, in + pos, dlen);
		o += fz_put_digest(out + o + dlen, in + pos, dlen, bad_data) + dlen;
		pos += dlen;
	}
	memcpy(out + o, in + pos, n - pos);
	o += n - pos;
	*outlen = o;
	return out;
}

/* ------------------------------------------------------------------ */
/* Setup and teardown                                                   */
/* ------------------------------------------------------------------ */

static void fz_setup(struct fz *f, uint8_t opts)
{
	struct ev_loop *io_loop;

	memset(f, 0, sizeof(*f));
	f->ini[0].fd = f->ini[1].fd = -1;
	f->loop = ev_loop_new();
	f->srv = f->loop ? iscsi_server_new(f->loop) : NULL;
	struct iscsi_target *t = f->srv ? iscsi_server_add_target(f->srv, FZ_TARGET) : NULL;

	if (!t)
		abort();
	io_loop = (opts & FZ_OPT_DEFER_IO) ? f->loop : NULL;
	struct fuzz_ram_geometry g0 = {
		.block_size = (opts & FZ_OPT_BS4096) ? 4096 : 512,
		.write_cache = true,
		.thin = true,
		.max_transfer_bytes = FZ_MAX_TRANSFER,
		/* a bad spot: I/O touching it fails, so commands fail midway too */
		.fail_offset = FZ_LUN0_BAD_BYTE,
		.fail_errno = EIO,
	};
	struct fuzz_ram_geometry g1 = {
		.block_size = 512,
		.num_blocks = FZ_LUN1_BLOCKS,
		.read_only = true,
		.max_transfer_bytes = FZ_MAX_TRANSFER,
	};

	g0.num_blocks = FZ_LUN0_BYTES / g0.block_size;
	if (fuzz_ram_init(&f->ram[0], &g0, io_loop) != 0 || fuzz_ram_init(&f->ram[1], &g1, io_loop) != 0)
		abort();
	for (int i = 0; i < 2; i++) {
		t->luns.luns[i] = (struct spt_lun){ .lun = (uint64_t)i, .ops = &fuzz_ram_ops,
						    .ctx = &f->ram[i] };
		snprintf(t->luns.luns[i].desc, SPT_LUN_DESC_MAX, "fuzz-ram%d", i);
	}
	t->luns.count = 2;
	if (opts & FZ_OPT_AUTH) {
		struct chap_config cfg;
		char err[256];

		memset(&cfg, 0, sizeof(cfg));
		if (chap_credentials_parse(FZ_CHAP_USER ":" FZ_CHAP_SECRET, &cfg.initiator, err, sizeof(err)) ||
		    chap_credentials_parse(FZ_CHAP_USER ":" FZ_CHAP_SECRET, &cfg.discovery, err, sizeof(err)) ||
		    chap_credentials_parse(FZ_CHAP_TARGET_USER ":" FZ_CHAP_TARGET_SECRET, &cfg.target, err,
					   sizeof(err)) ||
		    iscsi_server_set_chap(f->srv, &cfg, err, sizeof(err)) ||
		    iscsi_target_allow(t, FZ_INITIATOR, err, sizeof(err))) {
			fprintf(stderr, "fuzz_pdu: CHAP or ACL setup: %s\n", err);
			abort();
		}
	}

	/* a portal for SendTargets, as iscsi_server_listen() records it,
	 * without a socket: connections come from socketpairs */
	struct iscsi_portal *p = &f->srv->portals[0];
	struct sockaddr_in *in = (struct sockaddr_in *)&p->addr;

	in->sin_family = AF_INET;
	in->sin_port = htons(3260);
	in->sin_addr.s_addr = htonl(0x7f000001);
	p->addrlen = sizeof(*in);
	p->srv = f->srv;
	p->h.fd = -1;
	snprintf(p->text, sizeof(p->text), "127.0.0.1:3260");
	f->srv->nportals = 1;
}

/* Runs the loop until nothing comes out for a few passes. */
static void fz_run_idle(struct fz *f)
{
	int quiet = 0;

	for (int spin = 0; spin < FZ_MAX_SPINS && quiet < FZ_IDLE_SPINS; spin++) {
		bool got = false;

		fz_spin(f);
		for (int i = 0; i < 2; i++)
			got |= fz_drain(&f->ini[i]);
		quiet = got ? 0 : quiet + 1;
	}
}

static void fz_teardown(struct fz *f)
{
	/* the initiator hangs up: every connection, session and task must go */
	for (int i = 0; i < 2; i++) {
		if (f->ini[i].fd >= 0)
			close(f->ini[i].fd);
		f->ini[i].fd = -1;
		free(f->ini[i].acc);
		f->ini[i].acc = NULL;
	}
	for (int spin = 0; spin < FZ_TEARDOWN_SPINS; spin++) {
		if (list_empty(&f->srv->conns) && f->srv->nsessions == 0 && !f->ram[0].pending &&
		    !f->ram[1].pending)
			break;
		fz_spin(f);
	}
	if (!list_empty(&f->srv->conns) || f->srv->nsessions != 0) {
		fprintf(stderr, "fuzz_pdu: %zu session(s) or a connection left %d loop passes "
			"after the initiator hung up\n", f->srv->nsessions, FZ_TEARDOWN_SPINS);
		abort();
	}
	/* deferred frees of the connections run in this pass */
	fz_spin(f);
	iscsi_server_free(f->srv);
	fuzz_ram_free(&f->ram[0]);
	fuzz_ram_free(&f->ram[1]);
	ev_loop_free(f->loop);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *lvl = getenv("FUZZ_LOG");

	/* a write to a connection the engine closed must not kill the process */
	signal(SIGPIPE, SIG_IGN);
	if (!lvl || log_parse_level(lvl, &log_threshold) < 0)
		log_threshold = LOG_ERR;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz f;
	uint8_t opts, wsize;
	int phase;
	uint8_t *framed = NULL;
	const uint8_t *stream;
	size_t len, chunk;

	if (size < 2)
		return 0;
	opts = data[0];
	wsize = data[1];
	stream = data + 2;
	len = size - 2;
	phase = opts & 3;

	fz_setup(&f, opts);
	struct fz_ini *ini = fz_connect(&f, 0);

	if (phase != FZ_PHASE_RAW) {
		bool digests = opts & FZ_OPT_DIGESTS;

		fz_login(&f, ini, phase, digests, opts & FZ_OPT_AUTH);
		if (digests) {
			framed = fz_frame(stream, len, opts & FZ_OPT_BAD_DIGESTS, &len);
			stream = framed;
		}
	}

	chunk = wsize == 0 ? len : wsize < 128 ? wsize : (size_t)(wsize - 127) * 64;
	if (chunk && len / chunk >= FZ_MAX_WRITES)
		chunk = len / FZ_MAX_WRITES + 1;
	for (size_t off = 0; off < len && !ini->eof;) {
		size_t n = len - off < chunk ? len - off : chunk;

		if (!fz_send(&f, ini, stream + off, n))
			break;
		off += n;
		fz_spin(&f);
		fz_drain(ini);
	}
	fz_run_idle(&f);

	if ((opts & FZ_OPT_REINSTATE) && (phase == FZ_PHASE_NORMAL || phase == FZ_PHASE_NORMAL_R2T)) {
		struct fz_ini *again = fz_connect(&f, 1);

		fz_login(&f, again, phase, false, opts & FZ_OPT_AUTH);
		fz_run_idle(&f);
	}
	fz_teardown(&f);
	free(framed);
	return 0;
}
