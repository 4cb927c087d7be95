/*
 * The iSCSI engine driven in-process: a real ev_loop and iscsi_server, a
 * target whose LUN 0 is a small RAM block device served through the
 * scsi/ helpers (spt_bdev_execute), and an initiator played by the test on
 * the other end of a socketpair. Each test writes PDUs, runs the loop a
 * bounded number of iterations and asserts on what comes back, following
 * RFC 7143 (login, CmdSN window, data transfer, TMF, Reject, Logout).
 *
 * The loop is run one iteration at a time: a deferred ev_loop_stop() queued
 * before ev_loop_run() ends the run after the first pass (epoll with a zero
 * timeout because a deferred call is pending, the events, then every
 * deferred call). Ticks never fire (the first is a second away), so nothing
 * depends on time. SPT_TEST_LOG=debug shows the engine's log.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spt/scsi.h>

#include "iscsi/server.h"
#include "util/log.h"

#define FX_TARGET "iqn.2024-01.org.example.spt:unit"
#define FX_TARGET2 "iqn.2024-01.org.example.spt:other"
#define FX_INITIATOR "iqn.2024-01.org.example:host1"
#define FX_BS 512u
#define FX_BLOCKS 2048u
#define FX_MEM (FX_BS * FX_BLOCKS)
#define FX_HOLD_MAX 8
#define FX_SPINS 64		/* loop iterations any expected PDU may take */
#define FX_QUIET_SPINS 8	/* iterations after which silence counts as silence */
#define FX_INIS 2
#define FX_TEXT_MAX 4096
#define FX_LOGIN_CMDSN 0x10u
#define FX_LOGIN_STATSN 0x1234u

#define RD 1			/* struct cmd direction flags */
#define WR 2

/* ------------------------------------------------------------------ */
/* RAM provider: struct spt_bdev over a buffer                          */
/* ------------------------------------------------------------------ */

struct ram_lun {
	struct spt_bdev bdev;
	uint8_t *mem;
	struct ev_loop *loop;
	bool defer_io;			/* backing-store I/O completes from ev_defer */
	bool hold;			/* keep SCSI requests instead of executing them */
	struct spt_cmd *held[FX_HOLD_MAX];
	int nheld;
	int nscsi;
	int session_starts, session_ends;
	bool last_start_reinstated;
	int ntmf;
	uint32_t last_tmf_function;
};

static void ram_io_run(void *arg)
{
	struct spt_bdev_io *io = arg;
	struct ram_lun *r = io->bdev->ctx;
	int rc = 0;

	if (io->offset > FX_MEM || io->length > FX_MEM - io->offset) {
		rc = -EIO;
	} else {
		switch (io->op) {
		case SPT_BDEV_READ:
			memcpy(io->buf, r->mem + io->offset, io->length);
			break;
		case SPT_BDEV_WRITE:
			memcpy(r->mem + io->offset, io->buf, io->length);
			break;
		case SPT_BDEV_UNMAP:
		case SPT_BDEV_WRITE_ZEROES:
			memset(r->mem + io->offset, 0, io->length);
			break;
		default:
			break;
		}
	}
	io->done(io, rc);
}

static void ram_submit(struct spt_bdev *bdev, struct spt_bdev_io *io)
{
	struct ram_lun *r = bdev->ctx;

	if (r->defer_io)
		ev_defer(r->loop, ram_io_run, io);
	else
		ram_io_run(io);
}

static const struct spt_bdev_ops ram_bdev_ops = { .submit = ram_submit };

static void ram_scsi(void *ctx, struct spt_cmd *cmd)
{
	struct ram_lun *r = ctx;

	r->nscsi++;
	if (r->hold && r->nheld < FX_HOLD_MAX) {
		r->held[r->nheld++] = cmd;
		return;
	}
	spt_bdev_execute(&r->bdev, cmd);
}

static void ram_session_start(void *ctx, const struct spt_session_start *ss)
{
	struct ram_lun *r = ctx;

	r->session_starts++;
	r->last_start_reinstated = ss->is_reinstated;
	spt_bdev_session_start(&r->bdev, ss);
}

static void ram_session_end(void *ctx, const struct spt_session_end *se)
{
	struct ram_lun *r = ctx;

	r->session_ends++;
	spt_bdev_session_end(&r->bdev, se);
}

static void ram_tmf(void *ctx, struct spt_tmf *tmf)
{
	struct ram_lun *r = ctx;

	r->ntmf++;
	r->last_tmf_function = tmf->w.function;
	spt_bdev_tmf(&r->bdev, tmf);
}

static void ram_close(void *ctx)
{
	struct ram_lun *r = ctx;

	spt_bdev_fini(&r->bdev);
}

static const struct spt_provider_ops ram_ops = {
	.name = "ram",
	.session_start = ram_session_start,
	.session_end = ram_session_end,
	.tmf = ram_tmf,
	.scsi = ram_scsi,
	.close = ram_close,
};

/*
 * Executes the requests the provider kept, oldest first. One the engine
 * aborted meanwhile ends without running, as a provider that checks
 * cmd->aborted before it starts would end it (running it would, among
 * other things, consume a unit attention meant for the next command).
 */
static void ram_release(struct ram_lun *r)
{
	int n = r->nheld;
	struct spt_cmd *held[FX_HOLD_MAX];

	memcpy(held, r->held, sizeof(held));
	r->hold = false;
	r->nheld = 0;
	for (int i = 0; i < n; i++) {
		if (held[i]->aborted) {
			held[i]->cpl.scsi_status = SPT_STATUS_TASK_ABORTED;
			spt_cmd_complete(held[i]);
		} else {
			spt_bdev_execute(&r->bdev, held[i]);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Fixture: loop, server, target, initiators                            */
/* ------------------------------------------------------------------ */

/* The test's side of one connection. */
struct ini {
	int fd;
	uint8_t *buf;			/* bytes read, not yet parsed */
	size_t len, cap;
	uint8_t *data;			/* data segment of the last PDU parsed */
	const char *name;		/* InitiatorName */
	uint8_t isid[6];
	uint16_t tsih, cid;
	uint32_t login_itt;
	uint32_t itt;			/* next ITT */
	uint32_t cmdsn;			/* next CmdSN */
	uint32_t statsn;		/* next StatSN expected (our ExpStatSN) */
	bool seen_window;
	uint32_t exp_cmdsn, max_cmdsn;	/* as last reported by the target */
	uint32_t mrdsl;			/* our MaxRecvDataSegmentLength */
	uint32_t target_mrdsl;		/* the target's, from its declaration */
	size_t trickle;			/* send in pieces this small, one loop pass each */
	bool hd, dd;			/* digests in use */
	bool eof;
};

struct fx {
	struct ev_loop *loop;
	struct iscsi_server *srv;
	struct iscsi_target *tgt;
	struct ram_lun ram;
	struct ini ini[FX_INIS];
};

/* A PDU received by the initiator. */
struct rx {
	union {
		uint8_t b[ISCSI_BHS_LEN];
		struct iscsi_bhs bhs;
		struct iscsi_scsi_rsp rsp;
		struct iscsi_data_in din;
		struct iscsi_r2t r2t;
		struct iscsi_nop nop;
		struct iscsi_tmf_rsp tmf;
		struct iscsi_login_rsp login;
		struct iscsi_text text;
		struct iscsi_logout_rsp logout;
		struct iscsi_async async;
		struct iscsi_reject rej;
	};
	const uint8_t *data;
	uint32_t dlen;
};

static void fx_stop(void *arg)
{
	ev_loop_stop(arg);
}

/* One pass of the loop: ready events, then every deferred call. */
static void fx_spin(struct fx *f)
{
	ev_defer(f->loop, fx_stop, f->loop);
	ev_loop_run(f->loop);
}

static void fx_spins(struct fx *f, int n)
{
	for (int i = 0; i < n; i++)
		fx_spin(f);
}

static void ini_init(struct ini *ini, int idx)
{
	memset(ini, 0, sizeof(*ini));
	ini->fd = -1;
	ini->name = FX_INITIATOR;
	/* RFC 7143 11.12.5: T=10b random format */
	ini->isid[0] = 0x80;
	ini->isid[5] = (uint8_t)(idx + 1);
	ini->cid = (uint16_t)idx;
	ini->login_itt = 0x1000u * (uint32_t)(idx + 1);
	ini->itt = ini->login_itt + 1;
	ini->cmdsn = FX_LOGIN_CMDSN;
	ini->statsn = FX_LOGIN_STATSN;
	ini->mrdsl = 262144;
}

/* A new TCP-like connection: one end to the engine, the other ours. */
static struct ini *fx_connect(struct fx *f, int idx)
{
	struct ini *ini = &f->ini[idx];
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	if (ini->fd >= 0)
		close(ini->fd);
	free(ini->buf);
	free(ini->data);
	ini_init(ini, idx);
	ini->fd = sv[1];
	iscsi_conn_accept(f->srv, sv[0]);
	return ini;
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *lvl = getenv("SPT_TEST_LOG");

	if (!f)
		return -1;
	if (!lvl || log_parse_level(lvl, &log_threshold) < 0)
		log_threshold = LOG_ERR;
	f->loop = ev_loop_new();
	f->srv = f->loop ? iscsi_server_new(f->loop) : NULL;
	f->tgt = f->srv ? iscsi_server_add_target(f->srv, FX_TARGET) : NULL;
	f->ram.mem = calloc(1, FX_MEM);
	if (!f->tgt || !f->ram.mem)
		return -1;

	struct spt_bdev *b = &f->ram.bdev;

	b->ops = &ram_bdev_ops;
	b->ctx = &f->ram;
	b->block_size = FX_BS;
	b->num_blocks = FX_BLOCKS;
	b->write_cache = true;
	b->max_transfer_bytes = 1u << 20;
	snprintf(b->vendor, sizeof(b->vendor), "SPT");
	snprintf(b->product, sizeof(b->product), "RAM");
	snprintf(b->revision, sizeof(b->revision), "0001");
	snprintf(b->serial, sizeof(b->serial), "ram0");
	b->naa = 0x3000000000000001ull;
	b->relative_port = 1;
	snprintf(b->target_name, sizeof(b->target_name), "%s", FX_TARGET);
	if (spt_bdev_init(b) != 0)
		return -1;
	f->ram.loop = f->loop;
	f->tgt->luns.luns[0] = (struct spt_lun){ .lun = 0, .ops = &ram_ops, .ctx = &f->ram };
	snprintf(f->tgt->luns.luns[0].desc, SPT_LUN_DESC_MAX, "ram");
	f->tgt->luns.count = 1;

	/* a portal for SendTargets, as iscsi_server_listen() would record it,
	 * without a socket: the test connects through socketpairs */
	struct iscsi_portal *p = &f->srv->portals[0];
	struct sockaddr_in *in = (struct sockaddr_in *)&p->addr;

	in->sin_family = AF_INET;
	in->sin_port = htons(3260);
	in->sin_addr.s_addr = htonl(0x7f000001);
	p->addrlen = sizeof(*in);
	p->srv = f->srv;
	p->h.fd = -1;
	snprintf(p->text, sizeof(p->text), "127.0.0.1:3260");
	p->tpgt = ISCSI_DEFAULT_TPGT;	/* target portal group 1 (issue 5) */
	f->srv->nportals = 1;

	for (int i = 0; i < FX_INIS; i++)
		ini_init(&f->ini[i], i);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	int rc = 0;

	/* the initiators hang up; tasks still at the provider finish */
	for (int i = 0; i < FX_INIS; i++) {
		if (f->ini[i].fd >= 0)
			close(f->ini[i].fd);
		f->ini[i].fd = -1;
	}
	fx_spins(f, 4);
	ram_release(&f->ram);
	fx_spins(f, 4);
	/* every connection and session is gone once its peer is */
	if (!list_empty(&f->srv->conns) || f->srv->nsessions != 0) {
		fprintf(stderr, "teardown: %zu session(s) or a connection left behind\n",
			f->srv->nsessions);
		rc = -1;
	}
	if (f->ram.session_starts != f->ram.session_ends) {
		fprintf(stderr, "teardown: %d SESSION_START but %d SESSION_END\n",
			f->ram.session_starts, f->ram.session_ends);
		rc = -1;
	}
	iscsi_server_free(f->srv);
	ev_loop_free(f->loop);
	for (int i = 0; i < FX_INIS; i++) {
		free(f->ini[i].buf);
		free(f->ini[i].data);
	}
	free(f->ram.mem);
	free(f);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Initiator: sending                                                   */
/* ------------------------------------------------------------------ */

static uint32_t le32_crc(const void *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static void put_crc(uint8_t *p, uint32_t crc)
{
	uint32_t v = htole32(crc);

	memcpy(p, &v, 4);
}

/* Writes everything, running the loop while the socket is full. */
static void ini_send_raw(struct fx *f, struct ini *ini, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	for (int tries = 0; len && tries < 100000; tries++) {
		size_t piece = ini->trickle && ini->trickle < len ? ini->trickle : len;
		ssize_t w = send(ini->fd, p, piece, MSG_NOSIGNAL);

		if (ini->trickle)
			fx_spin(f);

		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				fx_spin(f);
				continue;
			}
			return;	/* the engine closed: the test sees EOF when it reads */
		}
		p += w;
		len -= (size_t)w;
	}
}

/* One PDU: the BHS with DataSegmentLength set, digests if in use, padding. */
static void ini_send(struct fx *f, struct ini *ini, const void *bhs, const void *data, uint32_t dlen)
{
	uint32_t pad = pdu_pad(dlen);
	size_t total = ISCSI_BHS_LEN + 4 + dlen + pad + 4;
	uint8_t *pdu = calloc(1, total);
	size_t n = ISCSI_BHS_LEN;

	assert_non_null(pdu);
	memcpy(pdu, bhs, ISCSI_BHS_LEN);
	pdu_set_dsl(pdu, dlen);
	if (ini->hd) {
		put_crc(pdu + n, ~pdu_crc32c(pdu, ISCSI_BHS_LEN, PDU_CRC32C_INIT));
		n += 4;
	}
	if (dlen) {
		memcpy(pdu + n, data, dlen);
		n += dlen + pad;
		if (ini->dd) {
			put_crc(pdu + n, ~pdu_crc32c(pdu + n - dlen - pad, dlen + pad, PDU_CRC32C_INIT));
			n += 4;
		}
	}
	ini_send_raw(f, ini, pdu, n);
	free(pdu);
}

/* "k=v\nk=v\n" to the wire form "k=v\0k=v\0". */
static uint32_t kv_text(char *out, size_t cap, const char *text)
{
	size_t n = strlen(text);

	assert_true(n < cap);
	for (size_t i = 0; i < n; i++)
		out[i] = text[i] == '\n' ? '\0' : text[i];
	return (uint32_t)n;
}

#define LOGIN_FLAGS(t, csg, nsg) ((uint8_t)(((t) ? ISCSI_LOGIN_TRANSIT : 0) | (csg) << 2 | (nsg)))

static void ini_login_req_v(struct fx *f, struct ini *ini, uint8_t flags, uint8_t vmax, uint8_t vmin,
			    const char *text)
{
	struct iscsi_login_req h;
	char buf[FX_TEXT_MAX];
	uint32_t n = kv_text(buf, sizeof(buf), text);

	memset(&h, 0, sizeof(h));
	/* RFC 7143 11.12: the I bit is always set on a Login Request */
	h.opcode = ISCSI_OP_LOGIN_REQ | ISCSI_FLAG_IMMEDIATE;
	h.flags = flags;
	h.version_max = vmax;
	h.version_min = vmin;
	memcpy(h.isid, ini->isid, 6);
	h.tsih = pdu_put16(ini->tsih);
	h.itt = pdu_put32(ini->login_itt);
	h.cid = pdu_put16(ini->cid);
	h.cmdsn = pdu_put32(ini->cmdsn);
	h.exp_statsn = pdu_put32(ini->statsn);
	ini_send(f, ini, &h, buf, n);
}

static void ini_login_req(struct fx *f, struct ini *ini, uint8_t flags, const char *text)
{
	ini_login_req_v(f, ini, flags, 0, 0, text);
}

/* A SCSI Command; zero fields take defaults (next ITT, next CmdSN, F set). */
struct cmd {
	uint32_t itt;
	bool use_sn;
	uint32_t cmdsn;
	bool immediate;
	int dir;		/* RD | WR */
	bool not_final;
	uint32_t edtl;
	uint8_t lun;
	uint8_t cdb[16];
	const void *data;	/* immediate data */
	uint32_t dlen;
};

static uint32_t send_cmd(struct fx *f, struct ini *ini, const struct cmd *c)
{
	struct iscsi_scsi_cmd h;
	uint32_t itt = c->itt ? c->itt : ini->itt++;
	uint32_t sn = c->use_sn ? c->cmdsn : ini->cmdsn;

	if (!c->use_sn && !c->immediate)
		ini->cmdsn++;
	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_SCSI_CMD | (c->immediate ? ISCSI_FLAG_IMMEDIATE : 0);
	h.flags = (uint8_t)((c->not_final ? 0 : ISCSI_FLAG_FINAL) | (c->dir & RD ? ISCSI_CMD_READ : 0) |
			    (c->dir & WR ? ISCSI_CMD_WRITE : 0) | SPT_TASK_SIMPLE);
	pdu_flat_to_lun(c->lun, h.lun);
	h.itt = pdu_put32(itt);
	h.edtl = pdu_put32(c->edtl);
	h.cmdsn = pdu_put32(sn);
	h.exp_statsn = pdu_put32(ini->statsn);
	memcpy(h.cdb, c->cdb, 16);
	ini_send(f, ini, &h, c->data, c->dlen);
	return itt;
}

#define SEND_CMD(f, ini, ...) send_cmd((f), (ini), &(struct cmd){ __VA_ARGS__ })
#define CDB_RW10(op, lba, n) { (op), 0, (uint8_t)((lba) >> 24), (uint8_t)((lba) >> 16), \
			       (uint8_t)((lba) >> 8), (uint8_t)(lba), 0, (uint8_t)((n) >> 8), (uint8_t)(n), 0 }
#define CDB_READ10(lba, n) CDB_RW10(0x28, lba, n)
#define CDB_WRITE10(lba, n) CDB_RW10(0x2a, lba, n)

static void send_data_out(struct fx *f, struct ini *ini, uint32_t itt, uint32_t ttt, uint32_t datasn,
			  uint32_t off, const void *data, uint32_t len, bool final)
{
	struct iscsi_data_out h;

	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_DATA_OUT;
	h.flags = final ? ISCSI_FLAG_FINAL : 0;
	h.itt = pdu_put32(itt);
	h.ttt = pdu_put32(ttt);
	h.exp_statsn = pdu_put32(ini->statsn);
	h.datasn = pdu_put32(datasn);
	h.buffer_offset = pdu_put32(off);
	ini_send(f, ini, &h, data, len);
}

static void send_nop(struct fx *f, struct ini *ini, uint32_t itt, bool immediate, const void *data,
		     uint32_t len)
{
	struct iscsi_nop h;

	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_NOP_OUT | (immediate ? ISCSI_FLAG_IMMEDIATE : 0);
	h.flags = ISCSI_FLAG_FINAL;
	h.itt = pdu_put32(itt);
	h.ttt = ISCSI_RESERVED_TAG;
	h.sn1 = pdu_put32(ini->cmdsn);
	h.sn2 = pdu_put32(ini->statsn);
	if (!immediate)
		ini->cmdsn++;
	ini_send(f, ini, &h, data, len);
}

static uint32_t send_tmf(struct fx *f, struct ini *ini, uint8_t function, uint8_t lun, uint32_t ref_itt,
			 uint32_t ref_cmdsn)
{
	struct iscsi_tmf_req h;
	uint32_t itt = ini->itt++;

	memset(&h, 0, sizeof(h));
	/* TMF requests are usually immediate: CmdSN is the next one, not taken */
	h.opcode = ISCSI_OP_TMF_REQ | ISCSI_FLAG_IMMEDIATE;
	h.function = (uint8_t)(ISCSI_FLAG_FINAL | function);
	pdu_flat_to_lun(lun, h.lun);
	h.itt = pdu_put32(itt);
	h.ref_itt = pdu_put32(ref_itt);
	h.cmdsn = pdu_put32(ini->cmdsn);
	h.exp_statsn = pdu_put32(ini->statsn);
	h.ref_cmdsn = pdu_put32(ref_cmdsn);
	ini_send(f, ini, &h, NULL, 0);
	return itt;
}

static uint32_t send_text_itt(struct fx *f, struct ini *ini, uint32_t itt, const char *text, uint32_t ttt)
{
	struct iscsi_text h;
	char buf[FX_TEXT_MAX];
	uint32_t n = kv_text(buf, sizeof(buf), text);

	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_TEXT_REQ | ISCSI_FLAG_IMMEDIATE;
	h.flags = ISCSI_FLAG_FINAL;
	h.itt = pdu_put32(itt);
	h.ttt = pdu_put32(ttt);
	h.sn1 = pdu_put32(ini->cmdsn);
	h.sn2 = pdu_put32(ini->statsn);
	ini_send(f, ini, &h, buf, n);
	return itt;
}

static uint32_t send_text(struct fx *f, struct ini *ini, const char *text, uint32_t ttt)
{
	return send_text_itt(f, ini, ini->itt++, text, ttt);
}

static uint32_t send_logout_cid(struct fx *f, struct ini *ini, uint8_t reason, uint16_t cid)
{
	struct iscsi_logout_req h;
	uint32_t itt = ini->itt++;

	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_LOGOUT_REQ | ISCSI_FLAG_IMMEDIATE;
	h.reason = (uint8_t)(ISCSI_FLAG_FINAL | reason);
	h.itt = pdu_put32(itt);
	h.cid = pdu_put16(cid);
	h.cmdsn = pdu_put32(ini->cmdsn);
	h.exp_statsn = pdu_put32(ini->statsn);
	ini_send(f, ini, &h, NULL, 0);
	return itt;
}

static uint32_t send_logout(struct fx *f, struct ini *ini, uint8_t reason)
{
	return send_logout_cid(f, ini, reason, ini->cid);
}

/* ------------------------------------------------------------------ */
/* Initiator: receiving                                                 */
/* ------------------------------------------------------------------ */

/* Reads what the socket has; false if nothing (or EOF). */
static bool ini_fill(struct ini *ini)
{
	if (ini->eof || ini->fd < 0)
		return false;
	if (ini->cap - ini->len < 65536) {
		size_t ncap = ini->cap ? ini->cap * 2 : 262144;
		uint8_t *nb = realloc(ini->buf, ncap);

		assert_non_null(nb);
		ini->buf = nb;
		ini->cap = ncap;
	}
	ssize_t r = read(ini->fd, ini->buf + ini->len, ini->cap - ini->len);

	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		ini->eof = true;
		return false;
	}
	if (r < 0)
		return false;
	ini->len += (size_t)r;
	return true;
}

static bool op_counts_statsn(const struct rx *rx)
{
	switch (pdu_opcode(&rx->bhs)) {
	case ISCSI_OP_SCSI_RSP:
	case ISCSI_OP_TMF_RSP:
	case ISCSI_OP_LOGIN_RSP:
	case ISCSI_OP_TEXT_RSP:
	case ISCSI_OP_LOGOUT_RSP:
	case ISCSI_OP_REJECT:
	case ISCSI_OP_ASYNC:
		return true;
	case ISCSI_OP_NOP_IN:
		/* RFC 7143 11.19.3: a ping of ours carries StatSN but does not advance it */
		return rx->bhs.itt != ISCSI_RESERVED_TAG;
	case ISCSI_OP_DATA_IN:
		return rx->din.flags & ISCSI_DATAIN_STATUS;
	default:
		return false;
	}
}

/* RFC 7143 4.2.2.2 StatSN order, 4.2.2.1 ExpCmdSN/MaxCmdSN never go back. */
static void ini_check_numbering(struct ini *ini, const struct rx *rx)
{
	uint8_t op = pdu_opcode(&rx->bhs);
	uint32_t statsn = spt_get_be32(rx->b + 24);
	uint32_t exp = spt_get_be32(rx->b + 28), max = spt_get_be32(rx->b + 32);

	if (op_counts_statsn(rx)) {
		if (statsn != ini->statsn)
			fail_msg("%s: StatSN %u, expected %u", pdu_opcode_name(op), statsn, ini->statsn);
		ini->statsn++;
	} else if (op == ISCSI_OP_R2T || op == ISCSI_OP_NOP_IN) {
		if (statsn != ini->statsn)
			fail_msg("%s: StatSN %u, expected the next one %u", pdu_opcode_name(op), statsn,
				 ini->statsn);
	}
	/* MaxCmdSN = ExpCmdSN - 1 means an empty window; anything less is wrong */
	if (!sn_le(exp, max + 1))
		fail_msg("%s: ExpCmdSN %u beyond MaxCmdSN %u + 1", pdu_opcode_name(op), exp, max);
	if (ini->seen_window && op != ISCSI_OP_LOGIN_RSP) {
		if (sn_lt(exp, ini->exp_cmdsn) || sn_lt(max, ini->max_cmdsn))
			fail_msg("%s: ExpCmdSN/MaxCmdSN went back: %u/%u after %u/%u", pdu_opcode_name(op),
				 exp, max, ini->exp_cmdsn, ini->max_cmdsn);
	}
	ini->seen_window = true;
	ini->exp_cmdsn = exp;
	ini->max_cmdsn = max;
}

/* Takes one whole PDU out of the buffer, checking digests if in use. */
static bool ini_parse(struct ini *ini, struct rx *rx)
{
	size_t hlen = ISCSI_BHS_LEN + (ini->hd ? 4 : 0);

	if (ini->len < hlen)
		return false;
	const struct iscsi_bhs *h = (const struct iscsi_bhs *)ini->buf;
	uint32_t dsl = pdu_dsl(h);
	size_t dd = ini->dd && dsl ? 4 : 0;
	size_t total = hlen + dsl + pdu_pad(dsl) + dd;

	assert_int_equal(h->total_ahs_len, 0);
	if (ini->len < total)
		return false;
	if (ini->hd && le32_crc(ini->buf + ISCSI_BHS_LEN) != ~pdu_crc32c(ini->buf, ISCSI_BHS_LEN, PDU_CRC32C_INIT))
		fail_msg("%s: bad header digest", pdu_opcode_name(h->opcode));
	if (dd && le32_crc(ini->buf + hlen + dsl + pdu_pad(dsl)) !=
		  ~pdu_crc32c(ini->buf + hlen, dsl + pdu_pad(dsl), PDU_CRC32C_INIT))
		fail_msg("%s: bad data digest", pdu_opcode_name(h->opcode));
	memcpy(rx->b, ini->buf, ISCSI_BHS_LEN);
	free(ini->data);
	ini->data = calloc(1, dsl + 1);	/* NUL-terminated for text */
	assert_non_null(ini->data);
	memcpy(ini->data, ini->buf + hlen, dsl);
	rx->data = ini->data;
	rx->dlen = dsl;
	memmove(ini->buf, ini->buf + total, ini->len - total);
	ini->len -= total;
	ini_check_numbering(ini, rx);
	return true;
}

/* The next PDU, running the loop until it comes; false on EOF or silence. */
static bool ini_recv(struct fx *f, struct ini *ini, struct rx *rx)
{
	for (int spin = 0; spin <= FX_SPINS; spin++) {
		for (;;) {
			if (ini_parse(ini, rx))
				return true;
			if (!ini_fill(ini))
				break;
		}
		if (ini->eof)
			return false;
		fx_spin(f);
	}
	return false;
}

static void rx_expect(struct fx *f, struct ini *ini, uint8_t op, struct rx *rx)
{
	if (!ini_recv(f, ini, rx))
		fail_msg("expected %s, got %s", pdu_opcode_name(op), ini->eof ? "EOF" : "nothing");
	if (pdu_opcode(&rx->bhs) != op)
		fail_msg("expected %s, got %s (reason/response 0x%02x)", pdu_opcode_name(op),
			 pdu_opcode_name(rx->bhs.opcode), rx->b[2]);
}

/* Nothing arrives while the loop runs a while. */
static void ini_expect_silence(struct fx *f, struct ini *ini)
{
	for (int i = 0; i < FX_QUIET_SPINS; i++) {
		fx_spin(f);
		while (ini_fill(ini))
			;
	}
	if (ini->len)
		fail_msg("unexpected %s", pdu_opcode_name(ini->buf[0]));
	assert_false(ini->eof);
}

/* The target closes the connection without another PDU. */
static void ini_expect_closed(struct fx *f, struct ini *ini)
{
	for (int i = 0; i < FX_SPINS && !ini->eof; i++) {
		fx_spin(f);
		while (ini_fill(ini))
			;
	}
	if (ini->len)
		fail_msg("unexpected %s before the close", pdu_opcode_name(ini->buf[0]));
	assert_true(ini->eof);
}

/* The value of key in a response's text, or NULL. */
static const char *text_get(const struct rx *rx, const char *key)
{
	size_t klen = strlen(key);

	for (uint32_t i = 0; i < rx->dlen;) {
		const char *kv = (const char *)rx->data + i;
		size_t n = strnlen(kv, rx->dlen - i);

		if (n > klen && strncmp(kv, key, klen) == 0 && kv[klen] == '=')
			return kv + klen + 1;
		i += (uint32_t)n + 1;
	}
	return NULL;
}

static int text_count(const struct rx *rx, const char *key)
{
	size_t klen = strlen(key);
	int c = 0;

	for (uint32_t i = 0; i < rx->dlen;) {
		const char *kv = (const char *)rx->data + i;
		size_t n = strnlen(kv, rx->dlen - i);

		if (n > klen && strncmp(kv, key, klen) == 0 && kv[klen] == '=')
			c++;
		i += (uint32_t)n + 1;
	}
	return c;
}

static uint16_t login_status(const struct rx *rx)
{
	return (uint16_t)(rx->login.status_class << 8 | rx->login.status_detail);
}

/* ------------------------------------------------------------------ */
/* Composite steps                                                      */
/* ------------------------------------------------------------------ */

/*
 * A normal-session login, security then operational stage, with `ops` added
 * to the operational keys (HeaderDigest/DataDigest None unless ops has them).
 */
static void ini_login(struct fx *f, struct ini *ini, const char *ops)
{
	struct rx rx;
	char text[FX_TEXT_MAX];

	ops = ops ? ops : "";
	snprintf(text, sizeof(text), "InitiatorName=%s\nTargetName=%s\nSessionType=Normal\nAuthMethod=None\n",
		 ini->name, FX_TARGET);
	ini_login_req(f, ini, LOGIN_FLAGS(1, 0, 1), text);
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), 0);
	assert_int_equal(rx.login.flags, LOGIN_FLAGS(1, 0, 1));
	snprintf(text, sizeof(text), "%s%sMaxRecvDataSegmentLength=%u\n%s",
		 strstr(ops, "HeaderDigest") ? "" : "HeaderDigest=None\n",
		 strstr(ops, "DataDigest") ? "" : "DataDigest=None\n", ini->mrdsl, ops);
	ini_login_req(f, ini, LOGIN_FLAGS(1, 1, 3), text);
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), 0);
	assert_int_equal(rx.login.flags, LOGIN_FLAGS(1, 1, 3));
	ini->tsih = pdu_get16(rx.login.tsih);
	assert_int_not_equal(ini->tsih, 0);
	const char *v = text_get(&rx, "MaxRecvDataSegmentLength");

	ini->target_mrdsl = v ? (uint32_t)strtoul(v, NULL, 10) : 8192;
	v = text_get(&rx, "HeaderDigest");
	ini->hd = v && strcmp(v, "CRC32C") == 0;
	v = text_get(&rx, "DataDigest");
	ini->dd = v && strcmp(v, "CRC32C") == 0;
}

static struct ini *fx_session(struct fx *f, int idx, const char *ops)
{
	struct ini *ini = fx_connect(f, idx);

	ini_login(f, ini, ops);
	return ini;
}

static void fill_pattern(uint8_t *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 131 + seed * 7 + (i >> 8)) ^ seed);
}

/* A response PDU for itt with status (SCSI Response or a Data-In with S). */
static void expect_status(struct fx *f, struct ini *ini, uint32_t itt, uint8_t status)
{
	struct rx rx;

	rx_expect(f, ini, ISCSI_OP_SCSI_RSP, &rx);
	assert_int_equal(pdu_get32(rx.rsp.itt), itt);
	assert_int_equal(rx.rsp.response, 0);
	assert_int_equal(rx.rsp.status, status);
}

/* CHECK CONDITION with the sense key/ASC/ASCQ in the response's sense data. */
static void expect_sense(struct fx *f, struct ini *ini, uint32_t itt, uint8_t key, uint8_t asc, uint8_t ascq)
{
	struct rx rx;

	rx_expect(f, ini, ISCSI_OP_SCSI_RSP, &rx);
	assert_int_equal(pdu_get32(rx.rsp.itt), itt);
	assert_int_equal(rx.rsp.status, SPT_STATUS_CHECK_CONDITION);
	/* RFC 7143 11.4.7: SenseLength (2 bytes), then the sense data */
	assert_true(rx.dlen >= 2 + 14);
	uint32_t slen = spt_get_be16(rx.data);

	assert_int_equal(rx.dlen, 2 + slen);
	const uint8_t *s = rx.data + 2;

	if ((s[0] & 0x7f) == 0x72) {
		assert_int_equal(s[1] & 0x0f, key);
		assert_int_equal(s[2], asc);
		assert_int_equal(s[3], ascq);
	} else {
		assert_int_equal(s[0] & 0x7f, 0x70);
		assert_int_equal(s[2] & 0x0f, key);
		assert_int_equal(s[12], asc);
		assert_int_equal(s[13], ascq);
	}
}

static uint32_t tur(struct fx *f, struct ini *ini)
{
	return SEND_CMD(f, ini, .cdb = { 0 });
}

/* A ping with an immediate NOP-Out: shows ExpCmdSN/MaxCmdSN without taking a CmdSN. */
static void ping(struct fx *f, struct ini *ini)
{
	struct rx rx;
	uint32_t itt = ini->itt++;

	send_nop(f, ini, itt, true, NULL, 0);
	rx_expect(f, ini, ISCSI_OP_NOP_IN, &rx);
	assert_int_equal(pdu_get32(rx.nop.itt), itt);
}

/* READ(10) gathering Data-In; returns the status (collapsed or in a SCSI Response). */
static uint8_t read_blocks(struct fx *f, struct ini *ini, uint32_t lba, uint32_t n, uint8_t *out)
{
	struct rx rx;
	uint32_t edtl = n * FX_BS;
	uint32_t itt = SEND_CMD(f, ini, .dir = RD, .edtl = edtl, .cdb = CDB_READ10(lba, n));
	uint32_t got = 0;

	for (;;) {
		assert_true(ini_recv(f, ini, &rx));
		assert_int_equal(pdu_get32(rx.bhs.itt), itt);
		if (pdu_opcode(&rx.bhs) == ISCSI_OP_SCSI_RSP)
			return rx.rsp.status;
		assert_int_equal(pdu_opcode(&rx.bhs), ISCSI_OP_DATA_IN);
		uint32_t off = pdu_get32(rx.din.buffer_offset);

		assert_int_equal(off, got);
		assert_true(off + rx.dlen <= edtl);
		memcpy(out + off, rx.data, rx.dlen);
		got += rx.dlen;
		if (rx.din.flags & ISCSI_DATAIN_STATUS) {
			assert_int_equal(got, edtl);
			return rx.din.status;
		}
	}
}

/* WRITE(10) without unsolicited data: answers every R2T in order. */
static uint8_t write_blocks(struct fx *f, struct ini *ini, uint32_t lba, uint32_t n, const uint8_t *data)
{
	struct rx rx;
	uint32_t edtl = n * FX_BS;
	uint32_t itt = SEND_CMD(f, ini, .dir = WR, .edtl = edtl, .cdb = CDB_WRITE10(lba, n));

	for (;;) {
		assert_true(ini_recv(f, ini, &rx));
		assert_int_equal(pdu_get32(rx.bhs.itt), itt);
		if (pdu_opcode(&rx.bhs) == ISCSI_OP_SCSI_RSP)
			return rx.rsp.status;
		assert_int_equal(pdu_opcode(&rx.bhs), ISCSI_OP_R2T);
		uint32_t off = pdu_get32(rx.r2t.buffer_offset), len = pdu_get32(rx.r2t.desired_length);
		uint32_t ttt = pdu_get32(rx.r2t.ttt), sn = 0;

		assert_true(off + len <= edtl);
		for (uint32_t done = 0; done < len; sn++) {
			uint32_t chunk = len - done < ini->target_mrdsl ? len - done : ini->target_mrdsl;

			send_data_out(f, ini, itt, ttt, sn, off + done, data + off + done, chunk,
				      done + chunk == len);
			done += chunk;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Login                                                                */
/* ------------------------------------------------------------------ */

static void test_login_normal(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_connect(f, 0);
	struct rx rx;
	char text[FX_TEXT_MAX];

	snprintf(text, sizeof(text), "InitiatorName=%s\nTargetName=%s\nSessionType=Normal\nAuthMethod=None\n",
		 FX_INITIATOR, FX_TARGET);
	ini_login_req(f, ini, LOGIN_FLAGS(1, 0, 1), text);
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	/* RFC 7143 11.13: the response echoes ISID and ITT, TSIH 0 until the last */
	assert_int_equal(rx.login.flags, LOGIN_FLAGS(1, 0, 1));
	assert_int_equal(login_status(&rx), 0);
	assert_int_equal(rx.login.version_max, 0);
	assert_int_equal(rx.login.version_active, 0);
	assert_memory_equal(rx.login.isid, ini->isid, 6);
	assert_int_equal(pdu_get16(rx.login.tsih), 0);
	assert_int_equal(pdu_get32(rx.login.itt), ini->login_itt);
	/* StatSN starts at the ExpStatSN of the first request (checked in ini_parse) */
	assert_int_equal(pdu_get32(rx.login.statsn), FX_LOGIN_STATSN);
	assert_int_equal(pdu_get32(rx.login.exp_cmdsn), FX_LOGIN_CMDSN);
	assert_true(sn_le(FX_LOGIN_CMDSN, pdu_get32(rx.login.max_cmdsn)));
	/* RFC 7143 13.9: TargetPortalGroupTag in the first response of a normal session */
	assert_non_null(text_get(&rx, "TargetPortalGroupTag"));
	assert_string_equal(text_get(&rx, "TargetPortalGroupTag"), "1");
	assert_string_equal(text_get(&rx, "AuthMethod"), "None");

	ini_login_req(f, ini, LOGIN_FLAGS(1, 1, 3),
		      "HeaderDigest=None\nDataDigest=None\nMaxRecvDataSegmentLength=65536\n"
		      "InitialR2T=No\nImmediateData=Yes\nMaxBurstLength=65536\nFirstBurstLength=8192\n"
		      "MaxOutstandingR2T=1\nErrorRecoveryLevel=0\nDataPDUInOrder=Yes\n"
		      "DataSequenceInOrder=Yes\nMaxConnections=1\n");
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), 0);
	assert_int_equal(rx.login.flags, LOGIN_FLAGS(1, 1, 3));
	assert_int_equal(pdu_get32(rx.login.statsn), FX_LOGIN_STATSN + 1);
	assert_int_not_equal(pdu_get16(rx.login.tsih), 0);
	assert_int_equal(pdu_get32(rx.login.exp_cmdsn), FX_LOGIN_CMDSN);
	/* RFC 7143 6.2: every negotiated key answered */
	assert_string_equal(text_get(&rx, "HeaderDigest"), "None");
	assert_string_equal(text_get(&rx, "DataDigest"), "None");
	assert_string_equal(text_get(&rx, "InitialR2T"), "No");
	assert_string_equal(text_get(&rx, "ImmediateData"), "Yes");
	assert_string_equal(text_get(&rx, "MaxBurstLength"), "65536");
	assert_string_equal(text_get(&rx, "FirstBurstLength"), "8192");
	assert_string_equal(text_get(&rx, "MaxOutstandingR2T"), "1");
	assert_string_equal(text_get(&rx, "ErrorRecoveryLevel"), "0");
	assert_string_equal(text_get(&rx, "MaxConnections"), "1");
	/* RFC 7143 13.12: the target declares what it receives */
	assert_non_null(text_get(&rx, "MaxRecvDataSegmentLength"));
	/* the tag belongs to the first response only */
	assert_null(text_get(&rx, "TargetPortalGroupTag"));
	assert_int_equal(f->ram.session_starts, 1);
	assert_false(f->ram.last_start_reinstated);
	ini->tsih = pdu_get16(rx.login.tsih);

	/* full feature phase: the first command takes the login's CmdSN */
	uint32_t itt = tur(f, ini);

	rx_expect(f, ini, ISCSI_OP_SCSI_RSP, &rx);
	assert_int_equal(pdu_get32(rx.rsp.itt), itt);
	assert_int_equal(rx.rsp.status, SPT_STATUS_GOOD);
	assert_int_equal(pdu_get32(rx.rsp.statsn), FX_LOGIN_STATSN + 2);
	assert_int_equal(pdu_get32(rx.rsp.exp_cmdsn), FX_LOGIN_CMDSN + 1);
}

/* RFC 7143 11.12.2: a request with C set is answered with an empty response. */
static void test_login_continue(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_connect(f, 0);
	struct rx rx;
	char text[FX_TEXT_MAX];

	snprintf(text, sizeof(text), "InitiatorName=%s\nTargetName=%s\n", FX_INITIATOR, FX_TARGET);
	ini_login_req(f, ini, ISCSI_FLAG_CONTINUE | LOGIN_FLAGS(0, 0, 1), text);
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), 0);
	assert_int_equal(rx.dlen, 0);
	assert_false(rx.login.flags & ISCSI_LOGIN_TRANSIT);
	ini_login_req(f, ini, LOGIN_FLAGS(1, 0, 1), "SessionType=Normal\nAuthMethod=None\n");
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), 0);
	assert_string_equal(text_get(&rx, "TargetPortalGroupTag"), "1");
	ini_login_req(f, ini, LOGIN_FLAGS(1, 1, 3), "HeaderDigest=None\nDataDigest=None\n");
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), 0);
	assert_int_not_equal(pdu_get16(rx.login.tsih), 0);
}

/* Security straight to full feature phase (RFC 7143 6.3: stages may be skipped). */
static void test_login_security_to_full_feature(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_connect(f, 0);
	struct rx rx;
	char text[FX_TEXT_MAX];

	snprintf(text, sizeof(text), "InitiatorName=%s\nTargetName=%s\nAuthMethod=None\n", FX_INITIATOR,
		 FX_TARGET);
	ini_login_req(f, ini, LOGIN_FLAGS(1, 0, 3), text);
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), 0);
	assert_int_equal(rx.login.flags, LOGIN_FLAGS(1, 0, 3));
	assert_int_not_equal(pdu_get16(rx.login.tsih), 0);
	assert_string_equal(text_get(&rx, "TargetPortalGroupTag"), "1");
	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);
	/* RFC 7143 13.12: nobody declared MaxRecvDataSegmentLength: 8192 both ways */
	uint8_t pattern[4 * 8192];

	fill_pattern(pattern, sizeof(pattern), 7);
	memcpy(f->ram.mem, pattern, sizeof(pattern));
	uint32_t itt = SEND_CMD(f, ini, .dir = RD, .edtl = sizeof(pattern), .cdb = CDB_READ10(0, 64));

	for (uint32_t i = 0; i < 4; i++) {
		rx_expect(f, ini, ISCSI_OP_DATA_IN, &rx);
		assert_int_equal(pdu_get32(rx.din.itt), itt);
		assert_int_equal(rx.dlen, 8192);
		assert_memory_equal(rx.data, pattern + 8192 * i, 8192);
	}
	assert_true(rx.din.flags & ISCSI_DATAIN_STATUS);
	struct iscsi_nop h;

	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_NOP_OUT | ISCSI_FLAG_IMMEDIATE;
	h.flags = ISCSI_FLAG_FINAL;
	h.itt = pdu_put32(3);
	h.ttt = ISCSI_RESERVED_TAG;
	pdu_set_dsl(&h, 8192 + 4);
	ini_send_raw(f, ini, &h, sizeof(h));
	ini_expect_closed(f, ini);
}

/* A failed login response and the close, with sessions possibly live elsewhere. */
static void login_expect_failure_started(struct fx *f, struct ini *ini, uint16_t status)
{
	struct rx rx;

	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), status);
	ini_expect_closed(f, ini);
}

static void login_expect_failure(struct fx *f, struct ini *ini, uint16_t status)
{
	struct rx rx;

	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), status);
	/* RFC 7143 11.13.5: TSIH is 0 on a failed login; the target closes */
	assert_int_equal(pdu_get16(rx.login.tsih), 0);
	ini_expect_closed(f, ini);
	assert_int_equal(f->ram.session_starts, 0);
}

static void test_login_unknown_target(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_connect(f, 0);

	ini_login_req(f, ini, LOGIN_FLAGS(1, 0, 1),
		      "InitiatorName=" FX_INITIATOR "\nTargetName=iqn.2024-01.org.example.spt:nope\n"
		      "SessionType=Normal\nAuthMethod=None\n");
	login_expect_failure(f, ini, ISCSI_LOGIN_NOT_FOUND);
}

static void test_login_missing_initiator_name(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_connect(f, 0);

	ini_login_req(f, ini, LOGIN_FLAGS(1, 0, 1),
		      "TargetName=" FX_TARGET "\nSessionType=Normal\nAuthMethod=None\n");
	login_expect_failure(f, ini, ISCSI_LOGIN_MISSING_PARAMETER);
}

static void test_login_missing_target_name(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_connect(f, 0);

	ini_login_req(f, ini, LOGIN_FLAGS(1, 0, 1),
		      "InitiatorName=" FX_INITIATOR "\nSessionType=Normal\nAuthMethod=None\n");
	login_expect_failure(f, ini, ISCSI_LOGIN_MISSING_PARAMETER);
}

static void test_login_bad_version(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_connect(f, 0);

	/* RFC 7143 11.12.4: Version-min above what the target speaks (0x00) */
	ini_login_req_v(f, ini, LOGIN_FLAGS(1, 0, 1), 2, 1,
			"InitiatorName=" FX_INITIATOR "\nTargetName=" FX_TARGET "\nAuthMethod=None\n");
	login_expect_failure(f, ini, ISCSI_LOGIN_UNSUPPORTED_VERSION);
}

static void test_login_bad_transition(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_connect(f, 0);

	/* RFC 7143 11.12.2 / 6.3: operational back to security */
	ini_login_req(f, ini, LOGIN_FLAGS(1, 1, 0),
		      "InitiatorName=" FX_INITIATOR "\nTargetName=" FX_TARGET "\n");
	login_expect_failure(f, ini, ISCSI_LOGIN_INITIATOR_ERROR);

	/* NSG 2 is reserved */
	ini = fx_connect(f, 1);
	ini_login_req(f, ini, LOGIN_FLAGS(1, 0, 2),
		      "InitiatorName=" FX_INITIATOR "\nTargetName=" FX_TARGET "\nAuthMethod=None\n");
	login_expect_failure(f, ini, ISCSI_LOGIN_INITIATOR_ERROR);

	/* T and C together */
	ini = fx_connect(f, 0);
	ini_login_req(f, ini, ISCSI_FLAG_CONTINUE | LOGIN_FLAGS(1, 0, 1),
		      "InitiatorName=" FX_INITIATOR "\nTargetName=" FX_TARGET "\nAuthMethod=None\n");
	login_expect_failure(f, ini, ISCSI_LOGIN_INITIATOR_ERROR);
}

/* RFC 7143 6.3: nothing but Login Requests before full feature phase. */
static void test_login_non_login_pdu_first(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_connect(f, 0);

	send_nop(f, ini, 1, true, NULL, 0);
	ini_expect_closed(f, ini);
	/* a SCSI command is no better */
	ini = fx_connect(f, 1);
	tur(f, ini);
	ini_expect_closed(f, ini);
}

/* ------------------------------------------------------------------ */
/* Discovery and Text                                                   */
/* ------------------------------------------------------------------ */

static void test_discovery_sendtargets_all(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_connect(f, 0);
	struct rx rx;

	assert_non_null(iscsi_server_add_target(f->srv, FX_TARGET2));
	ini_login_req(f, ini, LOGIN_FLAGS(1, 0, 1),
		      "InitiatorName=" FX_INITIATOR "\nSessionType=Discovery\nAuthMethod=None\n");
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), 0);
	ini_login_req(f, ini, LOGIN_FLAGS(1, 1, 3), "HeaderDigest=None\nDataDigest=None\n");
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), 0);
	assert_int_not_equal(pdu_get16(rx.login.tsih), 0);
	/* a discovery session reaches no provider */
	assert_int_equal(f->ram.session_starts, 0);

	uint32_t itt = send_text(f, ini, "SendTargets=All\n", ISCSI_RESERVED_TAG);

	rx_expect(f, ini, ISCSI_OP_TEXT_RSP, &rx);
	assert_int_equal(pdu_get32(rx.text.itt), itt);
	assert_true(rx.text.flags & ISCSI_FLAG_FINAL);
	assert_int_equal(rx.text.ttt, ISCSI_RESERVED_TAG);
	/* RFC 7143 appendix C: every target, each followed by its addresses */
	assert_int_equal(text_count(&rx, "TargetName"), 2);
	assert_int_equal(text_count(&rx, "TargetAddress"), 2);
	const char *expect = "TargetName=" FX_TARGET "\0TargetAddress=127.0.0.1:3260,1\0"
			     "TargetName=" FX_TARGET2 "\0TargetAddress=127.0.0.1:3260,1\0";
	size_t elen = sizeof("TargetName=" FX_TARGET "\0TargetAddress=127.0.0.1:3260,1\0"
			     "TargetName=" FX_TARGET2 "\0TargetAddress=127.0.0.1:3260,1\0") - 1;

	assert_int_equal(rx.dlen, elen);
	assert_memory_equal(rx.data, expect, elen);

	/* RFC 7143 4.3: a discovery session carries no SCSI command */
	uint32_t bad = tur(f, ini);

	rx_expect(f, ini, ISCSI_OP_REJECT, &rx);
	assert_int_equal(rx.rej.reason, ISCSI_REJECT_PROTOCOL_ERROR);
	assert_int_equal(spt_get_be32(rx.data + 16), bad);
	ini->cmdsn--;	/* RFC 7143 7.3: a rejected command's CmdSN is not received */
	/* logout of the discovery session */
	itt = send_logout(f, ini, 0);
	rx_expect(f, ini, ISCSI_OP_LOGOUT_RSP, &rx);
	assert_int_equal(rx.logout.response, 0);
	ini_expect_closed(f, ini);
}

/* RFC 7143 appendix C: SendTargets with an empty value in a normal session. */
static void test_normal_sendtargets_empty(void **state)
{
	struct fx *f = *state;
	struct rx rx;

	assert_non_null(iscsi_server_add_target(f->srv, FX_TARGET2));
	struct ini *ini = fx_session(f, 0, NULL);
	uint32_t itt = send_text(f, ini, "SendTargets=\n", ISCSI_RESERVED_TAG);

	rx_expect(f, ini, ISCSI_OP_TEXT_RSP, &rx);
	assert_int_equal(pdu_get32(rx.text.itt), itt);
	assert_int_equal(text_count(&rx, "TargetName"), 1);
	assert_string_equal(text_get(&rx, "TargetName"), FX_TARGET);
	assert_string_equal(text_get(&rx, "TargetAddress"), "127.0.0.1:3260,1");
}

/* Text negotiation in full feature phase (RFC 7143 6.2, 13.12). */
static void test_text_full_feature(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, "MaxBurstLength=65536\n");
	uint8_t pattern[8192], out[8192];

	uint32_t itt = send_text(f, ini, "X-org.example.Frob=1\nMaxRecvDataSegmentLength=4096\n",
				 ISCSI_RESERVED_TAG);

	rx_expect(f, ini, ISCSI_OP_TEXT_RSP, &rx);
	assert_int_equal(pdu_get32(rx.text.itt), itt);
	assert_string_equal(text_get(&rx, "X-org.example.Frob"), "NotUnderstood");
	/* a declaration is not answered */
	assert_null(text_get(&rx, "MaxRecvDataSegmentLength"));
	/* the new declaration bounds what the target sends */
	fill_pattern(pattern, sizeof(pattern), 3);
	memcpy(f->ram.mem, pattern, sizeof(pattern));
	itt = SEND_CMD(f, ini, .dir = RD, .edtl = 8192, .cdb = CDB_READ10(0, 16));
	for (int i = 0; i < 2; i++) {
		rx_expect(f, ini, ISCSI_OP_DATA_IN, &rx);
		assert_int_equal(rx.dlen, 4096);
		memcpy(out + 4096 * i, rx.data, 4096);
	}
	assert_true(rx.din.flags & ISCSI_DATAIN_STATUS);
	assert_memory_equal(out, pattern, sizeof(pattern));
}

/* ------------------------------------------------------------------ */
/* CmdSN window (RFC 7143 4.2.2.1)                                      */
/* ------------------------------------------------------------------ */

static void test_cmdsn_out_of_order(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, "ImmediateData=Yes\n");
	uint8_t a[FX_BS], b[FX_BS], out[FX_BS];
	uint32_t n = ini->cmdsn;

	memset(a, 0xaa, sizeof(a));
	memset(b, 0xbb, sizeof(b));
	/* CmdSN n+1 arrives first: it waits for n */
	uint32_t ita = SEND_CMD(f, ini, .use_sn = true, .cmdsn = n + 1, .dir = WR, .edtl = FX_BS,
				.cdb = CDB_WRITE10(5, 1), .data = a, .dlen = FX_BS);

	ini_expect_silence(f, ini);
	assert_int_equal(f->ram.nscsi, 0);
	ping(f, ini);
	assert_int_equal(ini->exp_cmdsn, n);
	/* n arrives: n runs, then n+1; the last by CmdSN wins */
	uint32_t itb = SEND_CMD(f, ini, .use_sn = true, .cmdsn = n, .dir = WR, .edtl = FX_BS,
				.cdb = CDB_WRITE10(5, 1), .data = b, .dlen = FX_BS);

	rx_expect(f, ini, ISCSI_OP_SCSI_RSP, &rx);
	assert_int_equal(pdu_get32(rx.rsp.itt), itb);
	assert_int_equal(rx.rsp.status, SPT_STATUS_GOOD);
	rx_expect(f, ini, ISCSI_OP_SCSI_RSP, &rx);
	assert_int_equal(pdu_get32(rx.rsp.itt), ita);
	assert_int_equal(rx.rsp.status, SPT_STATUS_GOOD);
	assert_int_equal(pdu_get32(rx.rsp.exp_cmdsn), n + 2);
	assert_memory_equal(f->ram.mem + 5 * FX_BS, a, FX_BS);
	ini->cmdsn = n + 2;
	assert_int_equal(read_blocks(f, ini, 5, 1, out), SPT_STATUS_GOOD);
	assert_memory_equal(out, a, FX_BS);
}

/* The same with the provider completing later (ev_defer), reads among writes. */
static void test_cmdsn_out_of_order_deferred(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, "ImmediateData=Yes\n");
	uint8_t a[FX_BS];
	uint32_t n = ini->cmdsn;

	f->ram.defer_io = true;
	memset(a, 0x5a, sizeof(a));
	/* n+2 reads what n+1 writes, n+1 arrives before n */
	uint32_t itr = SEND_CMD(f, ini, .use_sn = true, .cmdsn = n + 2, .dir = RD, .edtl = FX_BS,
				.cdb = CDB_READ10(9, 1));
	uint32_t itw = SEND_CMD(f, ini, .use_sn = true, .cmdsn = n + 1, .dir = WR, .edtl = FX_BS,
				.cdb = CDB_WRITE10(9, 1), .data = a, .dlen = FX_BS);

	ini_expect_silence(f, ini);
	uint32_t itt = SEND_CMD(f, ini, .use_sn = true, .cmdsn = n, .cdb = { 0 });

	expect_status(f, ini, itt, SPT_STATUS_GOOD);
	expect_status(f, ini, itw, SPT_STATUS_GOOD);
	rx_expect(f, ini, ISCSI_OP_DATA_IN, &rx);
	assert_int_equal(pdu_get32(rx.din.itt), itr);
	assert_true(rx.din.flags & ISCSI_DATAIN_STATUS);
	assert_int_equal(rx.dlen, FX_BS);
	assert_memory_equal(rx.data, a, FX_BS);
	assert_int_equal(pdu_get32(rx.din.exp_cmdsn), n + 3);
	ini->cmdsn = n + 3;
}

/* RFC 7143 4.2.2.1: a non-immediate NOP-Out ahead of ExpCmdSN is answered
 * at once; once the gap before it fills, the window steps over its CmdSN. */
static void test_cmdsn_nop_ahead(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, "ImmediateData=Yes\n");
	uint32_t n = ini->cmdsn;
	uint32_t itn = ini->itt++;

	ini->cmdsn = n + 1;
	send_nop(f, ini, itn, false, NULL, 0);
	rx_expect(f, ini, ISCSI_OP_NOP_IN, &rx);
	assert_int_equal(pdu_get32(rx.nop.itt), itn);
	assert_int_equal(pdu_get32(rx.nop.sn2), n);	/* ExpCmdSN still waits for n */
	uint32_t itt = SEND_CMD(f, ini, .use_sn = true, .cmdsn = n, .cdb = { 0 });

	rx_expect(f, ini, ISCSI_OP_SCSI_RSP, &rx);
	assert_int_equal(pdu_get32(rx.rsp.itt), itt);
	ini->cmdsn = n + 2;
	itt = tur(f, ini);
	rx_expect(f, ini, ISCSI_OP_SCSI_RSP, &rx);
	assert_int_equal(pdu_get32(rx.rsp.itt), itt);
	assert_int_equal(rx.rsp.status, SPT_STATUS_GOOD);
	assert_int_equal(pdu_get32(rx.rsp.exp_cmdsn), n + 3);
}

/* RFC 7143 4.2.2.1: a non-immediate command outside [ExpCmdSN, MaxCmdSN] is ignored. */
static void test_cmdsn_outside_window(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_session(f, 0, NULL);
	uint32_t n = ini->cmdsn;

	ping(f, ini);
	assert_int_equal(ini->exp_cmdsn, n);
	/* the window is ISCSI_QUEUE_DEPTH commands */
	assert_int_equal(ini->max_cmdsn - ini->exp_cmdsn + 1, ISCSI_QUEUE_DEPTH);
	uint32_t max = ini->max_cmdsn;

	SEND_CMD(f, ini, .use_sn = true, .cmdsn = n - 1, .cdb = { 0 });
	SEND_CMD(f, ini, .use_sn = true, .cmdsn = max + 1, .cdb = { 0 });
	SEND_CMD(f, ini, .use_sn = true, .cmdsn = n + 0x80000000u, .cdb = { 0 });
	ini_expect_silence(f, ini);
	assert_int_equal(f->ram.nscsi, 0);
	ping(f, ini);
	assert_int_equal(ini->exp_cmdsn, n);
	/* the window still works */
	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);
	assert_int_equal(ini->exp_cmdsn, n + 1);
	assert_int_equal(f->ram.nscsi, 1);
}

/* RFC 7143 3.2.2.1: an immediate command does not take a CmdSN. */
static void test_cmdsn_immediate(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_session(f, 0, NULL);
	uint32_t n = ini->cmdsn;

	expect_status(f, ini, SEND_CMD(f, ini, .immediate = true, .cdb = { 0 }), SPT_STATUS_GOOD);
	assert_int_equal(ini->exp_cmdsn, n);
	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);
	assert_int_equal(ini->exp_cmdsn, n + 1);
	/* a non-immediate NOP-Out takes one too */
	send_nop(f, ini, ini->itt++, false, NULL, 0);
	struct rx rx;

	rx_expect(f, ini, ISCSI_OP_NOP_IN, &rx);
	assert_int_equal(pdu_get32(rx.nop.sn2), n + 2);
}

/* ------------------------------------------------------------------ */
/* Data-Out: immediate, unsolicited, R2T                                */
/* ------------------------------------------------------------------ */

static void test_write_immediate_data(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_session(f, 0, "ImmediateData=Yes\nInitialR2T=Yes\n");
	uint8_t data[2 * FX_BS], out[2 * FX_BS];

	fill_pattern(data, sizeof(data), 11);
	uint32_t itt = SEND_CMD(f, ini, .dir = WR, .edtl = sizeof(data), .cdb = CDB_WRITE10(20, 2),
				.data = data, .dlen = sizeof(data));

	/* all data came with the command: no R2T */
	expect_status(f, ini, itt, SPT_STATUS_GOOD);
	assert_memory_equal(f->ram.mem + 20 * FX_BS, data, sizeof(data));
	assert_int_equal(read_blocks(f, ini, 20, 2, out), SPT_STATUS_GOOD);
	assert_memory_equal(out, data, sizeof(data));

	/* part immediate, the rest solicited */
	fill_pattern(data, sizeof(data), 12);
	struct rx rx;

	itt = SEND_CMD(f, ini, .dir = WR, .edtl = sizeof(data), .cdb = CDB_WRITE10(30, 2), .data = data,
		       .dlen = FX_BS);
	rx_expect(f, ini, ISCSI_OP_R2T, &rx);
	assert_int_equal(pdu_get32(rx.r2t.itt), itt);
	assert_int_equal(pdu_get32(rx.r2t.buffer_offset), FX_BS);
	assert_int_equal(pdu_get32(rx.r2t.desired_length), FX_BS);
	assert_int_equal(pdu_get32(rx.r2t.r2tsn), 0);
	send_data_out(f, ini, itt, pdu_get32(rx.r2t.ttt), 0, FX_BS, data + FX_BS, FX_BS, true);
	expect_status(f, ini, itt, SPT_STATUS_GOOD);
	assert_memory_equal(f->ram.mem + 30 * FX_BS, data, sizeof(data));
}

/* RFC 7143 13.14: immediate data when ImmediateData=No is a protocol error. */
static void test_write_immediate_data_not_negotiated(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, "ImmediateData=No\n");
	uint8_t data[FX_BS];

	memset(data, 1, sizeof(data));
	uint32_t itt = SEND_CMD(f, ini, .dir = WR, .edtl = FX_BS, .cdb = CDB_WRITE10(0, 1), .data = data,
				.dlen = FX_BS);

	rx_expect(f, ini, ISCSI_OP_REJECT, &rx);
	assert_int_equal(rx.rej.reason, ISCSI_REJECT_PROTOCOL_ERROR);
	assert_int_equal(spt_get_be32(rx.data + 16), itt);
	/* RFC 7143 7.3: the rejected command's CmdSN is not received */
	ini->cmdsn--;
	ping(f, ini);
	assert_int_equal(ini->exp_cmdsn, ini->cmdsn);
	assert_int_equal(write_blocks(f, ini, 0, 1, data), SPT_STATUS_GOOD);
	assert_memory_equal(f->ram.mem, data, FX_BS);
}

/* RFC 7143 13.10, 13.14: InitialR2T=No, unsolicited Data-Out up to FirstBurstLength. */
static void test_write_unsolicited_data_out(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, "InitialR2T=No\nImmediateData=Yes\nFirstBurstLength=2048\n"
				     "MaxBurstLength=4096\n");
	uint8_t data[8 * FX_BS];

	fill_pattern(data, sizeof(data), 21);
	/* immediate 512 + unsolicited 1024 + 512 = FirstBurstLength, F=0 on the command */
	uint32_t itt = SEND_CMD(f, ini, .dir = WR, .not_final = true, .edtl = sizeof(data),
				.cdb = CDB_WRITE10(40, 8), .data = data, .dlen = 512);

	send_data_out(f, ini, itt, ISCSI_RESERVED_TAG, 0, 512, data + 512, 1024, false);
	/* the unsolicited burst is not complete: no R2T yet */
	ini_expect_silence(f, ini);
	send_data_out(f, ini, itt, ISCSI_RESERVED_TAG, 1, 1536, data + 1536, 512, true);
	rx_expect(f, ini, ISCSI_OP_R2T, &rx);
	assert_int_equal(pdu_get32(rx.r2t.itt), itt);
	assert_int_equal(pdu_get32(rx.r2t.buffer_offset), 2048);
	assert_int_equal(pdu_get32(rx.r2t.desired_length), 2048);
	assert_int_equal(pdu_get32(rx.r2t.r2tsn), 0);
	assert_int_not_equal(rx.r2t.ttt, ISCSI_RESERVED_TAG);
	assert_memory_equal(rx.r2t.lun, ((uint8_t[8]){ 0 }), 8);
	send_data_out(f, ini, itt, pdu_get32(rx.r2t.ttt), 0, 2048, data + 2048, 2048, true);
	rx_expect(f, ini, ISCSI_OP_SCSI_RSP, &rx);
	assert_int_equal(pdu_get32(rx.rsp.itt), itt);
	assert_int_equal(rx.rsp.status, SPT_STATUS_GOOD);
	/* RFC 7143 11.4.8: ExpDataSN of a write counts the R2Ts */
	assert_int_equal(pdu_get32(rx.rsp.exp_datasn), 1);
	assert_memory_equal(f->ram.mem + 40 * FX_BS, data, sizeof(data));

	/* all of it unsolicited: F on the last Data-Out, no R2T at all */
	fill_pattern(data, 2048, 22);
	itt = SEND_CMD(f, ini, .dir = WR, .not_final = true, .edtl = 2048, .cdb = CDB_WRITE10(60, 4),
		       .data = data, .dlen = 1024);
	send_data_out(f, ini, itt, ISCSI_RESERVED_TAG, 0, 1024, data + 1024, 1024, true);
	rx_expect(f, ini, ISCSI_OP_SCSI_RSP, &rx);
	assert_int_equal(rx.rsp.status, SPT_STATUS_GOOD);
	assert_int_equal(pdu_get32(rx.rsp.exp_datasn), 0);
	assert_memory_equal(f->ram.mem + 60 * FX_BS, data, 2048);
}

/* RFC 7143 13.13, 13.17: R2Ts within MaxBurstLength, at most MaxOutstandingR2T at once. */
static void test_write_r2t_window(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, "InitialR2T=Yes\nImmediateData=No\nMaxBurstLength=1024\n"
				     "FirstBurstLength=512\nMaxOutstandingR2T=2\n");
	uint8_t data[8 * FX_BS];
	uint32_t ttt[4];

	fill_pattern(data, sizeof(data), 31);
	uint32_t itt = SEND_CMD(f, ini, .dir = WR, .edtl = sizeof(data), .cdb = CDB_WRITE10(100, 8));

	for (uint32_t i = 0; i < 2; i++) {
		rx_expect(f, ini, ISCSI_OP_R2T, &rx);
		assert_int_equal(pdu_get32(rx.r2t.itt), itt);
		assert_int_equal(pdu_get32(rx.r2t.r2tsn), i);
		assert_int_equal(pdu_get32(rx.r2t.buffer_offset), 1024 * i);
		assert_int_equal(pdu_get32(rx.r2t.desired_length), 1024);
		ttt[i] = pdu_get32(rx.r2t.ttt);
		assert_int_not_equal(ttt[i], ISCSI_RESERVED_TAG);
	}
	assert_int_not_equal(ttt[0], ttt[1]);
	/* MaxOutstandingR2T=2: the third waits for the first burst */
	ini_expect_silence(f, ini);
	for (uint32_t burst = 0; burst < 4; burst++) {
		/* two Data-Out PDUs per burst, DataSN from 0 in each */
		send_data_out(f, ini, itt, ttt[burst], 0, 1024 * burst, data + 1024 * burst, 512, false);
		send_data_out(f, ini, itt, ttt[burst], 1, 1024 * burst + 512, data + 1024 * burst + 512, 512,
			      true);
		if (burst + 2 < 4) {
			rx_expect(f, ini, ISCSI_OP_R2T, &rx);
			assert_int_equal(pdu_get32(rx.r2t.r2tsn), burst + 2);
			assert_int_equal(pdu_get32(rx.r2t.buffer_offset), 1024 * (burst + 2));
			assert_int_equal(pdu_get32(rx.r2t.desired_length), 1024);
			ttt[burst + 2] = pdu_get32(rx.r2t.ttt);
		}
	}
	rx_expect(f, ini, ISCSI_OP_SCSI_RSP, &rx);
	assert_int_equal(pdu_get32(rx.rsp.itt), itt);
	assert_int_equal(rx.rsp.status, SPT_STATUS_GOOD);
	assert_int_equal(pdu_get32(rx.rsp.exp_datasn), 4);
	assert_memory_equal(f->ram.mem + 100 * FX_BS, data, sizeof(data));
}

/* The same write with the provider completing each sequence later. */
static void test_write_r2t_deferred_provider(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_session(f, 0, "InitialR2T=Yes\nImmediateData=No\nMaxBurstLength=1024\n"
				     "FirstBurstLength=512\nMaxOutstandingR2T=4\n");
	uint8_t data[16 * FX_BS], out[16 * FX_BS];

	f->ram.defer_io = true;
	fill_pattern(data, sizeof(data), 41);
	assert_int_equal(write_blocks(f, ini, 200, 16, data), SPT_STATUS_GOOD);
	assert_memory_equal(f->ram.mem + 200 * FX_BS, data, sizeof(data));
	assert_int_equal(read_blocks(f, ini, 200, 16, out), SPT_STATUS_GOOD);
	assert_memory_equal(out, data, sizeof(data));
}

/* Data-Out outside its R2T: Reject, the connection lives on. */
static void test_write_data_out_outside_r2t(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, "InitialR2T=Yes\nImmediateData=No\nMaxBurstLength=1024\n"
				     "FirstBurstLength=512\n");
	uint8_t data[2 * FX_BS];

	fill_pattern(data, sizeof(data), 51);
	uint32_t itt = SEND_CMD(f, ini, .dir = WR, .edtl = 1024, .cdb = CDB_WRITE10(0, 2));

	rx_expect(f, ini, ISCSI_OP_R2T, &rx);
	uint32_t ttt = pdu_get32(rx.r2t.ttt);

	/* past the R2T's Desired Data Transfer Length */
	send_data_out(f, ini, itt, ttt, 0, 512, data, 1024, true);
	rx_expect(f, ini, ISCSI_OP_REJECT, &rx);
	assert_int_equal(rx.rej.reason, ISCSI_REJECT_PROTOCOL_ERROR);
	assert_int_equal(rx.dlen, ISCSI_BHS_LEN);
	assert_int_equal(rx.data[0] & ISCSI_OPCODE_MASK, ISCSI_OP_DATA_OUT);
	/* the right data still completes the command */
	send_data_out(f, ini, itt, ttt, 0, 0, data, 1024, true);
	expect_status(f, ini, itt, SPT_STATUS_GOOD);
	assert_memory_equal(f->ram.mem, data, sizeof(data));
}

/* ------------------------------------------------------------------ */
/* Data-In and status                                                   */
/* ------------------------------------------------------------------ */

/* RFC 7143 11.7: Data-In bounded by the initiator's MaxRecvDataSegmentLength,
 * F at each MaxBurstLength, status in the last one (S bit). */
static void test_read_data_in_split(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_connect(f, 0);
	uint8_t pattern[16 * FX_BS];

	ini->mrdsl = 1024;
	ini_login(f, ini, "MaxBurstLength=4096\n");
	fill_pattern(pattern, sizeof(pattern), 61);
	memcpy(f->ram.mem + 8 * FX_BS, pattern, sizeof(pattern));
	uint32_t itt = SEND_CMD(f, ini, .dir = RD, .edtl = sizeof(pattern), .cdb = CDB_READ10(8, 16));

	for (uint32_t i = 0; i < 8; i++) {
		rx_expect(f, ini, ISCSI_OP_DATA_IN, &rx);
		assert_int_equal(pdu_get32(rx.din.itt), itt);
		assert_int_equal(rx.dlen, 1024);
		assert_int_equal(pdu_get32(rx.din.datasn), i);
		assert_int_equal(pdu_get32(rx.din.buffer_offset), 1024 * i);
		assert_int_equal(rx.din.ttt, ISCSI_RESERVED_TAG);
		assert_memory_equal(rx.data, pattern + 1024 * i, 1024);
		/* F closes each 4096-byte sequence */
		assert_int_equal(!!(rx.din.flags & ISCSI_FLAG_FINAL), i == 3 || i == 7);
		assert_int_equal(!!(rx.din.flags & ISCSI_DATAIN_STATUS), i == 7);
	}
	assert_int_equal(rx.din.status, SPT_STATUS_GOOD);
	assert_false(rx.din.flags & (ISCSI_RSP_OVERFLOW | ISCSI_RSP_UNDERFLOW));
	assert_int_equal(pdu_get32(rx.din.residual), 0);
	/* the status went with the data: no SCSI Response */
	ini_expect_silence(f, ini);
}

/* RFC 7143 11.4.5: U and O with the residual count, in the status-carrying Data-In. */
static void test_read_residuals(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);
	uint8_t pattern[2 * FX_BS];

	fill_pattern(pattern, sizeof(pattern), 71);
	memcpy(f->ram.mem, pattern, sizeof(pattern));
	/* underflow: one block read, 1024 expected */
	uint32_t itt = SEND_CMD(f, ini, .dir = RD, .edtl = 1024, .cdb = CDB_READ10(0, 1));

	rx_expect(f, ini, ISCSI_OP_DATA_IN, &rx);
	assert_int_equal(pdu_get32(rx.din.itt), itt);
	assert_int_equal(rx.dlen, FX_BS);
	assert_true(rx.din.flags & ISCSI_DATAIN_STATUS);
	assert_true(rx.din.flags & ISCSI_RSP_UNDERFLOW);
	assert_false(rx.din.flags & ISCSI_RSP_OVERFLOW);
	assert_int_equal(pdu_get32(rx.din.residual), 512);
	assert_memory_equal(rx.data, pattern, FX_BS);

	/* overflow: two blocks asked by the CDB, 512 expected */
	itt = SEND_CMD(f, ini, .dir = RD, .edtl = 512, .cdb = CDB_READ10(0, 2));
	rx_expect(f, ini, ISCSI_OP_DATA_IN, &rx);
	assert_int_equal(pdu_get32(rx.din.itt), itt);
	assert_int_equal(rx.dlen, 512);
	assert_true(rx.din.flags & ISCSI_DATAIN_STATUS);
	assert_true(rx.din.flags & ISCSI_RSP_OVERFLOW);
	assert_false(rx.din.flags & ISCSI_RSP_UNDERFLOW);
	assert_int_equal(pdu_get32(rx.din.residual), 512);
	assert_memory_equal(rx.data, pattern, 512);

	/* exact: no flag, residual 0 */
	itt = SEND_CMD(f, ini, .dir = RD, .edtl = 1024, .cdb = CDB_READ10(0, 2));
	rx_expect(f, ini, ISCSI_OP_DATA_IN, &rx);
	assert_false(rx.din.flags & (ISCSI_RSP_OVERFLOW | ISCSI_RSP_UNDERFLOW));
	assert_int_equal(pdu_get32(rx.din.residual), 0);
	ini_expect_silence(f, ini);
}

/* RFC 7143 11.4.7: CHECK CONDITION carries SenseLength + sense in the response. */
static void test_check_condition_sense(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_session(f, 0, NULL);

	/* SBC-3: LBA OUT OF RANGE (21/00) */
	expect_sense(f, ini, SEND_CMD(f, ini, .dir = RD, .edtl = FX_BS, .cdb = CDB_READ10(FX_BLOCKS, 1)),
		     SPT_KEY_ILLEGAL_REQUEST, 0x21, 0x00);
	/* SPC-4: INVALID COMMAND OPERATION CODE (20/00) */
	expect_sense(f, ini, SEND_CMD(f, ini, .cdb = { 0xff }), SPT_KEY_ILLEGAL_REQUEST, 0x20, 0x00);
	/* LUN 3 does not exist: LOGICAL UNIT NOT SUPPORTED (25/00) */
	expect_sense(f, ini, SEND_CMD(f, ini, .lun = 3, .cdb = { 0 }), SPT_KEY_ILLEGAL_REQUEST, 0x25, 0x00);
	ini_expect_silence(f, ini);
}

/* ------------------------------------------------------------------ */
/* NOP, Logout                                                          */
/* ------------------------------------------------------------------ */

static void test_nop_ping(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);
	static const char msg[] = "ping data, 23 bytes ...";
	uint32_t itt = ini->itt++;

	/* RFC 7143 11.19.4: the ping data comes back */
	send_nop(f, ini, itt, true, msg, sizeof(msg) - 1);
	rx_expect(f, ini, ISCSI_OP_NOP_IN, &rx);
	assert_int_equal(pdu_get32(rx.nop.itt), itt);
	assert_int_equal(rx.nop.ttt, ISCSI_RESERVED_TAG);
	assert_true(rx.nop.flags & ISCSI_FLAG_FINAL);
	assert_int_equal(rx.dlen, sizeof(msg) - 1);
	assert_memory_equal(rx.data, msg, sizeof(msg) - 1);
	/* RFC 7143 11.18.3: ITT 0xffffffff asks for no answer */
	send_nop(f, ini, ISCSI_RESERVED_TAG, true, NULL, 0);
	ini_expect_silence(f, ini);
	send_nop(f, ini, ISCSI_RESERVED_TAG, true, msg, 5);
	ini_expect_silence(f, ini);
	ping(f, ini);
}

static void test_logout_session(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);

	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);
	uint32_t itt = send_logout(f, ini, 0);

	rx_expect(f, ini, ISCSI_OP_LOGOUT_RSP, &rx);
	assert_int_equal(pdu_get32(rx.logout.itt), itt);
	assert_int_equal(rx.logout.response, 0);
	assert_true(rx.logout.flags & ISCSI_FLAG_FINAL);
	ini_expect_closed(f, ini);
	fx_spins(f, 2);
	assert_int_equal(f->srv->nsessions, 0);
	assert_int_equal(f->ram.session_ends, 1);
}

/* RFC 7143 11.14: nothing after the Logout Request is executed. */
static void test_logout_then_more_pdus(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);

	send_logout(f, ini, 0);
	send_nop(f, ini, ini->itt++, true, NULL, 0);
	tur(f, ini);
	rx_expect(f, ini, ISCSI_OP_LOGOUT_RSP, &rx);
	ini_expect_closed(f, ini);
	assert_int_equal(f->ram.nscsi, 0);
}

/* A task at the provider when the session logs out ends quietly later. */
static void test_logout_with_task_at_provider(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);

	f->ram.hold = true;
	SEND_CMD(f, ini, .dir = RD, .edtl = FX_BS, .cdb = CDB_READ10(0, 1));
	fx_spins(f, 2);
	assert_int_equal(f->ram.nheld, 1);
	send_logout(f, ini, 0);
	rx_expect(f, ini, ISCSI_OP_LOGOUT_RSP, &rx);
	ini_expect_closed(f, ini);
	/* the session waits for its task */
	assert_int_equal(f->ram.session_ends, 0);
	ram_release(&f->ram);
	fx_spins(f, 2);
	assert_int_equal(f->ram.session_ends, 1);
	assert_int_equal(f->srv->nsessions, 0);
}

/* ------------------------------------------------------------------ */
/* Task management (RFC 7143 11.5, 11.6)                                */
/* ------------------------------------------------------------------ */

static void test_tmf_abort_task_at_provider(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);
	uint32_t n = ini->cmdsn;

	f->ram.hold = true;
	uint32_t itt = SEND_CMD(f, ini, .dir = RD, .edtl = FX_BS, .cdb = CDB_READ10(0, 1));

	fx_spins(f, 2);
	assert_int_equal(f->ram.nheld, 1);
	uint32_t tmf = send_tmf(f, ini, SPT_TMF_ABORT_TASK, 0, itt, n);

	/* the response waits until the provider hands the task back */
	ini_expect_silence(f, ini);
	assert_true(f->ram.held[0]->aborted);
	ram_release(&f->ram);
	rx_expect(f, ini, ISCSI_OP_TMF_RSP, &rx);
	assert_int_equal(pdu_get32(rx.tmf.itt), tmf);
	assert_int_equal(rx.tmf.response, SPT_TMF_RSP_COMPLETE);
	/* the aborted task gets no response of its own (same I_T nexus) */
	ini_expect_silence(f, ini);
	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);
}

/* A task still waiting for its CmdSN is aborted and never runs. */
static void test_tmf_abort_task_waiting(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);
	uint32_t n = ini->cmdsn;
	uint8_t data[FX_BS];

	memset(data, 0x77, sizeof(data));
	uint32_t itw = SEND_CMD(f, ini, .use_sn = true, .cmdsn = n + 1, .dir = WR, .edtl = FX_BS,
				.cdb = CDB_WRITE10(7, 1), .data = data, .dlen = FX_BS);

	ini_expect_silence(f, ini);
	uint32_t tmf = send_tmf(f, ini, SPT_TMF_ABORT_TASK, 0, itw, n + 1);

	rx_expect(f, ini, ISCSI_OP_TMF_RSP, &rx);
	assert_int_equal(pdu_get32(rx.tmf.itt), tmf);
	assert_int_equal(rx.tmf.response, SPT_TMF_RSP_COMPLETE);
	expect_status(f, ini, SEND_CMD(f, ini, .use_sn = true, .cmdsn = n, .cdb = { 0 }), SPT_STATUS_GOOD);
	ini_expect_silence(f, ini);
	/* its CmdSN still counted; its data never reached the medium */
	ping(f, ini);
	assert_int_equal(ini->exp_cmdsn, n + 2);
	assert_int_equal(f->ram.mem[7 * FX_BS], 0);
	assert_int_equal(f->ram.nscsi, 1);
	ini->cmdsn = n + 2;
}

static void test_tmf_abort_task_missing(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);

	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);
	/* RFC 7143 11.6.1: 1 = task does not exist (RefCmdSN already past) */
	uint32_t tmf = send_tmf(f, ini, SPT_TMF_ABORT_TASK, 0, 0xdead, ini->cmdsn - 1);

	rx_expect(f, ini, ISCSI_OP_TMF_RSP, &rx);
	assert_int_equal(pdu_get32(rx.tmf.itt), tmf);
	assert_int_equal(rx.tmf.response, SPT_TMF_RSP_NO_TASK);
	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);
}

/* SAM-5 6.3.3: after a LOGICAL UNIT RESET the next command gets 29/03. */
static void test_tmf_lun_reset_unit_attention(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);

	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);
	uint32_t tmf = send_tmf(f, ini, SPT_TMF_LOGICAL_UNIT_RESET, 0, ISCSI_RESERVED_TAG, 0);

	rx_expect(f, ini, ISCSI_OP_TMF_RSP, &rx);
	assert_int_equal(pdu_get32(rx.tmf.itt), tmf);
	assert_int_equal(rx.tmf.response, SPT_TMF_RSP_COMPLETE);
	assert_int_equal(f->ram.ntmf, 1);
	assert_int_equal(f->ram.last_tmf_function, SPT_TMF_LOGICAL_UNIT_RESET);
	expect_sense(f, ini, tur(f, ini), SPT_KEY_UNIT_ATTENTION, 0x29, 0x03);
	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);
	/* a LUN the target does not have: 2 = LUN does not exist */
	tmf = send_tmf(f, ini, SPT_TMF_LOGICAL_UNIT_RESET, 9, ISCSI_RESERVED_TAG, 0);
	rx_expect(f, ini, ISCSI_OP_TMF_RSP, &rx);
	assert_int_equal(rx.tmf.response, SPT_TMF_RSP_NO_LUN);
}

/* A LUN reset aborts the tasks at the provider and answers once they are back. */
static void test_tmf_lun_reset_with_tasks(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);

	f->ram.hold = true;
	SEND_CMD(f, ini, .dir = RD, .edtl = FX_BS, .cdb = CDB_READ10(0, 1));
	SEND_CMD(f, ini, .dir = RD, .edtl = FX_BS, .cdb = CDB_READ10(1, 1));
	fx_spins(f, 2);
	assert_int_equal(f->ram.nheld, 2);
	uint32_t tmf = send_tmf(f, ini, SPT_TMF_LOGICAL_UNIT_RESET, 0, ISCSI_RESERVED_TAG, 0);

	ini_expect_silence(f, ini);
	ram_release(&f->ram);
	rx_expect(f, ini, ISCSI_OP_TMF_RSP, &rx);
	assert_int_equal(pdu_get32(rx.tmf.itt), tmf);
	assert_int_equal(rx.tmf.response, SPT_TMF_RSP_COMPLETE);
	ini_expect_silence(f, ini);
	expect_sense(f, ini, tur(f, ini), SPT_KEY_UNIT_ATTENTION, 0x29, 0x03);
}

static void test_tmf_unknown_function(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);

	/* RFC 7143 11.6.1: 5 = function not supported */
	uint32_t tmf = send_tmf(f, ini, 0x14, 0, ISCSI_RESERVED_TAG, 0);

	rx_expect(f, ini, ISCSI_OP_TMF_RSP, &rx);
	assert_int_equal(pdu_get32(rx.tmf.itt), tmf);
	assert_int_equal(rx.tmf.response, SPT_TMF_RSP_NOT_SUPPORTED);
	/* 4 = task allegiance reassignment not supported (ErrorRecoveryLevel 0) */
	tmf = send_tmf(f, ini, SPT_TMF_TASK_REASSIGN, 0, 0x1234, 0);
	rx_expect(f, ini, ISCSI_OP_TMF_RSP, &rx);
	assert_int_equal(rx.tmf.response, SPT_TMF_RSP_NO_REASSIGN);
	assert_int_equal(f->ram.ntmf, 0);
	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);
}

/* ------------------------------------------------------------------ */
/* Reject and connection-fatal errors                                   */
/* ------------------------------------------------------------------ */

/* RFC 7143 11.17: an unknown opcode gets Reject with the header as data. */
static void test_reject_unknown_opcode(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);
	uint8_t bhs[ISCSI_BHS_LEN];
	uint8_t junk[37];

	memset(bhs, 0, sizeof(bhs));
	bhs[0] = ISCSI_FLAG_IMMEDIATE | 0x1c;	/* a vendor-specific initiator opcode */
	bhs[1] = ISCSI_FLAG_FINAL;
	spt_put_be32(bhs + 16, 0x4242);
	spt_put_be32(bhs + 24, ini->cmdsn);
	ini_send(f, ini, bhs, NULL, 0);
	rx_expect(f, ini, ISCSI_OP_REJECT, &rx);
	assert_int_equal(rx.rej.reason, ISCSI_REJECT_CMD_NOT_SUPPORTED);
	assert_int_equal(rx.rej.itt, ISCSI_RESERVED_TAG);
	assert_int_equal(rx.dlen, ISCSI_BHS_LEN);
	assert_memory_equal(rx.data, bhs, ISCSI_BHS_LEN);
	ping(f, ini);

	/* with a data segment: consumed, the next PDU framed correctly */
	memset(junk, 0x3c, sizeof(junk));
	bhs[0] = ISCSI_FLAG_IMMEDIATE | 0x1d;
	ini_send(f, ini, bhs, junk, sizeof(junk));
	rx_expect(f, ini, ISCSI_OP_REJECT, &rx);
	assert_int_equal(rx.rej.reason, ISCSI_REJECT_CMD_NOT_SUPPORTED);
	assert_int_equal(rx.data[0], ISCSI_FLAG_IMMEDIATE | 0x1d);
	assert_int_equal(pdu_dsl((const struct iscsi_bhs *)rx.data), sizeof(junk));

	/* a target opcode from the initiator: protocol error */
	bhs[0] = ISCSI_OP_NOP_IN;
	ini_send(f, ini, bhs, NULL, 0);
	rx_expect(f, ini, ISCSI_OP_REJECT, &rx);
	assert_int_equal(rx.rej.reason, ISCSI_REJECT_PROTOCOL_ERROR);
	/* SNACK at ErrorRecoveryLevel 0 */
	bhs[0] = ISCSI_OP_SNACK;
	ini_send(f, ini, bhs, NULL, 0);
	rx_expect(f, ini, ISCSI_OP_REJECT, &rx);
	assert_int_equal(rx.rej.reason, ISCSI_REJECT_CMD_NOT_SUPPORTED);
	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);
}

/* RFC 7143 13.12: a data segment beyond our MaxRecvDataSegmentLength cannot be framed. */
static void test_dsl_exceeds_max_recv(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_session(f, 0, NULL);
	struct iscsi_nop h;

	assert_true(ini->target_mrdsl >= 512);
	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_NOP_OUT | ISCSI_FLAG_IMMEDIATE;
	h.flags = ISCSI_FLAG_FINAL;
	h.itt = pdu_put32(77);
	h.ttt = ISCSI_RESERVED_TAG;
	h.sn1 = pdu_put32(ini->cmdsn);
	pdu_set_dsl(&h, ini->target_mrdsl + 1);
	ini_send_raw(f, ini, &h, sizeof(h));
	ini_expect_closed(f, ini);
}

/* RFC 7143 11.17.1: a command whose ITT is in use: Reject, Task in progress. */
static void test_duplicate_itt(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);
	uint32_t n = ini->cmdsn;

	f->ram.hold = true;
	uint32_t itt = SEND_CMD(f, ini, .use_sn = true, .cmdsn = n, .dir = RD, .edtl = FX_BS,
				.cdb = CDB_READ10(0, 1));

	fx_spins(f, 2);
	SEND_CMD(f, ini, .itt = itt, .use_sn = true, .cmdsn = n + 1, .cdb = { 0 });
	rx_expect(f, ini, ISCSI_OP_REJECT, &rx);
	assert_int_equal(rx.rej.reason, ISCSI_REJECT_TASK_IN_PROGRESS);
	assert_int_equal(rx.dlen, ISCSI_BHS_LEN);
	assert_int_equal(spt_get_be32(rx.data + 16), itt);
	assert_int_equal(spt_get_be32(rx.data + 24), n + 1);
	ram_release(&f->ram);
	rx_expect(f, ini, ISCSI_OP_DATA_IN, &rx);
	assert_int_equal(pdu_get32(rx.din.itt), itt);
	assert_true(rx.din.flags & ISCSI_DATAIN_STATUS);
	/* the rejected CmdSN was not received: it is used again */
	expect_status(f, ini, SEND_CMD(f, ini, .use_sn = true, .cmdsn = n + 1, .cdb = { 0 }), SPT_STATUS_GOOD);
	assert_int_equal(ini->exp_cmdsn, n + 2);
	ini->cmdsn = n + 2;
}

/* ------------------------------------------------------------------ */
/* Sessions                                                             */
/* ------------------------------------------------------------------ */

/* RFC 7143 6.3.5: a login with the I_T nexus of a live session replaces it. */
static void test_session_reinstatement(void **state)
{
	struct fx *f = *state;
	struct ini *a = fx_session(f, 0, NULL);

	expect_status(f, a, tur(f, a), SPT_STATUS_GOOD);
	uint16_t old_tsih = a->tsih;
	struct ini *b = fx_connect(f, 1);

	memcpy(b->isid, a->isid, 6);
	ini_login(f, b, NULL);
	assert_int_not_equal(b->tsih, old_tsih);
	/* the old session's connection is gone */
	ini_expect_closed(f, a);
	assert_int_equal(f->ram.session_starts, 2);
	assert_int_equal(f->ram.session_ends, 1);
	assert_true(f->ram.last_start_reinstated);
	assert_int_equal(f->srv->nsessions, 1);
	/* SAM-5 6.3.4: the new nexus learns of the old one's loss (29/07) */
	expect_sense(f, b, tur(f, b), SPT_KEY_UNIT_ATTENTION, 0x29, 0x07);
	expect_status(f, b, tur(f, b), SPT_STATUS_GOOD);
}

/* Another ISID is another session: both live. */
static void test_session_two_isids(void **state)
{
	struct fx *f = *state;
	struct ini *a = fx_session(f, 0, NULL);
	struct ini *b = fx_session(f, 1, NULL);

	assert_int_not_equal(a->tsih, b->tsih);
	assert_int_equal(f->srv->nsessions, 2);
	expect_status(f, a, tur(f, a), SPT_STATUS_GOOD);
	expect_status(f, b, tur(f, b), SPT_STATUS_GOOD);
	assert_int_equal(f->ram.session_ends, 0);
}

/* Reinstatement while the old session has a task at the provider. */
static void test_session_reinstatement_with_task(void **state)
{
	struct fx *f = *state;
	struct ini *a = fx_session(f, 0, NULL);

	f->ram.hold = true;
	SEND_CMD(f, a, .dir = RD, .edtl = FX_BS, .cdb = CDB_READ10(0, 1));
	fx_spins(f, 2);
	assert_int_equal(f->ram.nheld, 1);
	struct ini *b = fx_connect(f, 1);

	memcpy(b->isid, a->isid, 6);
	ini_login(f, b, NULL);
	ini_expect_closed(f, a);
	ram_release(&f->ram);
	fx_spins(f, 2);
	assert_int_equal(f->ram.session_ends, 1);
	expect_sense(f, b, tur(f, b), SPT_KEY_UNIT_ATTENTION, 0x29, 0x07);
}

/* The initiator drops the connection with a task at the provider. */
static void test_connection_drop_with_task(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_session(f, 0, NULL);
	uint8_t data[4 * FX_BS];

	f->ram.hold = true;
	fill_pattern(data, sizeof(data), 81);
	SEND_CMD(f, ini, .dir = RD, .edtl = FX_BS, .cdb = CDB_READ10(0, 1));
	/* and one waiting for data-out */
	SEND_CMD(f, ini, .dir = WR, .edtl = sizeof(data), .cdb = CDB_WRITE10(0, 4), .data = data,
		 .dlen = FX_BS);
	fx_spins(f, 2);
	close(ini->fd);
	ini->fd = -1;
	fx_spins(f, 4);
	assert_int_equal(f->ram.session_ends, 0);
	ram_release(&f->ram);
	fx_spins(f, 2);
	assert_int_equal(f->ram.session_ends, 1);
	assert_int_equal(f->srv->nsessions, 0);
}

/* ------------------------------------------------------------------ */
/* Digests (RFC 7143 13.1, appendix B.4)                                */
/* ------------------------------------------------------------------ */

static void test_digests(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_connect(f, 0);
	uint8_t data[3 * FX_BS], out[3 * FX_BS];

	f->srv->limits.allow_crc32c = true;
	ini_login(f, ini, "HeaderDigest=CRC32C,None\nDataDigest=CRC32C,None\nImmediateData=Yes\n");
	assert_true(ini->hd);
	assert_true(ini->dd);
	/* every PDU of full feature phase carries both digests (checked in ini_parse) */
	send_nop(f, ini, ini->itt++, true, "abcde", 5);
	rx_expect(f, ini, ISCSI_OP_NOP_IN, &rx);
	assert_int_equal(rx.dlen, 5);
	assert_memory_equal(rx.data, "abcde", 5);
	fill_pattern(data, sizeof(data), 91);
	uint32_t itt = SEND_CMD(f, ini, .dir = WR, .edtl = sizeof(data), .cdb = CDB_WRITE10(3, 3),
				.data = data, .dlen = FX_BS);

	rx_expect(f, ini, ISCSI_OP_R2T, &rx);
	send_data_out(f, ini, itt, pdu_get32(rx.r2t.ttt), 0, FX_BS, data + FX_BS, 2 * FX_BS, true);
	expect_status(f, ini, itt, SPT_STATUS_GOOD);
	assert_int_equal(read_blocks(f, ini, 3, 3, out), SPT_STATUS_GOOD);
	assert_memory_equal(out, data, sizeof(data));
}

/* RFC 7143 7.8: a header digest error cannot be framed past: the connection ends. */
static void test_header_digest_error(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_connect(f, 0);
	struct iscsi_nop h;
	uint8_t pdu[ISCSI_BHS_LEN + 4];

	f->srv->limits.allow_crc32c = true;
	ini_login(f, ini, "HeaderDigest=CRC32C\n");
	assert_true(ini->hd);
	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_NOP_OUT | ISCSI_FLAG_IMMEDIATE;
	h.flags = ISCSI_FLAG_FINAL;
	h.itt = pdu_put32(5);
	h.ttt = ISCSI_RESERVED_TAG;
	memcpy(pdu, &h, sizeof(h));
	put_crc(pdu + ISCSI_BHS_LEN, ~pdu_crc32c(&h, sizeof(h), PDU_CRC32C_INIT) ^ 1);
	ini_send_raw(f, ini, pdu, sizeof(pdu));
	ini_expect_closed(f, ini);
}

/* RFC 7143 7.8: a data digest error is answered with Reject reason 0x02. */
static void test_data_digest_error(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_connect(f, 0);
	struct iscsi_nop h;
	struct rx rx;
	uint8_t pdu[ISCSI_BHS_LEN + 8 + 4];

	f->srv->limits.allow_crc32c = true;
	ini_login(f, ini, "DataDigest=CRC32C\n");
	assert_true(ini->dd);
	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_NOP_OUT | ISCSI_FLAG_IMMEDIATE;
	h.flags = ISCSI_FLAG_FINAL;
	h.itt = pdu_put32(6);
	h.ttt = ISCSI_RESERVED_TAG;
	pdu_set_dsl(&h, 8);
	memcpy(pdu, &h, sizeof(h));
	memcpy(pdu + ISCSI_BHS_LEN, "12345678", 8);
	put_crc(pdu + ISCSI_BHS_LEN + 8, ~pdu_crc32c("12345678", 8, PDU_CRC32C_INIT) ^ 0x100);
	ini_send_raw(f, ini, pdu, sizeof(pdu));
	rx_expect(f, ini, ISCSI_OP_REJECT, &rx);
	assert_int_equal(rx.rej.reason, ISCSI_REJECT_DATA_DIGEST);
	assert_int_equal(spt_get_be32(rx.data + 16), 6);
}

/* ------------------------------------------------------------------ */
/* Shutdown                                                             */
/* ------------------------------------------------------------------ */

/* RFC 7143 11.9.1: a target that stops asks for a logout (AsyncEvent 1). */
static void test_shutdown_async_logout(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);

	iscsi_server_shutdown(f->srv, NULL, NULL);
	rx_expect(f, ini, ISCSI_OP_ASYNC, &rx);
	assert_int_equal(rx.async.itt, ISCSI_RESERVED_TAG);
	assert_int_equal(rx.async.event, 1);
	assert_int_equal(pdu_get16(rx.async.param3), f->srv->cfg.logout_grace_s);
	send_logout(f, ini, 0);
	rx_expect(f, ini, ISCSI_OP_LOGOUT_RSP, &rx);
	assert_int_equal(rx.logout.response, 0);
	ini_expect_closed(f, ini);
	/* new logins are turned away while stopping */
	ini = fx_connect(f, 1);
	ini_login_req(f, ini, LOGIN_FLAGS(1, 0, 1),
		      "InitiatorName=" FX_INITIATOR "\nTargetName=" FX_TARGET "\nAuthMethod=None\n");
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), ISCSI_LOGIN_SERVICE_UNAVAILABLE);
	ini_expect_closed(f, ini);
}

/* ------------------------------------------------------------------ */
/* More login and session cases                                         */
/* ------------------------------------------------------------------ */

/* The engine's newest connection (the one accepted last). */
static struct iscsi_conn *fx_last_conn(struct fx *f)
{
	assert_false(list_empty(&f->srv->conns));
	return list_entry(f->srv->conns.prev, struct iscsi_conn, srv_node);
}

/* A login that adds a connection to a session (TSIH non-zero). */
static void ini_login_join(struct fx *f, struct ini *ini, const char *target, uint16_t tsih)
{
	char text[FX_TEXT_MAX];

	ini->tsih = tsih;
	snprintf(text, sizeof(text), "InitiatorName=%s\nTargetName=%s\nSessionType=Normal\nAuthMethod=None\n",
		 ini->name, target);
	ini_login_req(f, ini, LOGIN_FLAGS(1, 0, 3), text);
}

/* RFC 7143 6.3.4: a login with the TSIH and CID of a live connection replaces
 * that connection; at ErrorRecoveryLevel < 2 the session goes on. */
static void test_connection_reinstatement(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *a = fx_session(f, 0, NULL);

	expect_status(f, a, tur(f, a), SPT_STATUS_GOOD);
	uint32_t next_cmdsn = a->cmdsn;
	struct ini *b = fx_connect(f, 1);

	memcpy(b->isid, a->isid, 6);
	b->cid = a->cid;
	b->cmdsn = next_cmdsn;
	ini_login_join(f, b, FX_TARGET, a->tsih);
	rx_expect(f, b, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), 0);
	assert_int_equal(pdu_get16(rx.login.tsih), a->tsih);
	ini_expect_closed(f, a);
	/* the same session: no SESSION_END, no second SESSION_START, CmdSN goes on */
	assert_int_equal(f->ram.session_starts, 1);
	assert_int_equal(f->ram.session_ends, 0);
	assert_int_equal(f->srv->nsessions, 1);
	assert_int_equal(pdu_get32(rx.login.exp_cmdsn), next_cmdsn);
	expect_status(f, b, tur(f, b), SPT_STATUS_GOOD);
}

/* MaxConnections=1: a second connection (another CID) is refused with 0x0206. */
static void test_login_too_many_connections(void **state)
{
	struct fx *f = *state;
	struct ini *a = fx_session(f, 0, NULL);
	struct ini *b = fx_connect(f, 1);

	memcpy(b->isid, a->isid, 6);
	b->cid = (uint16_t)(a->cid + 1);
	ini_login_join(f, b, FX_TARGET, a->tsih);
	login_expect_failure_started(f, b, ISCSI_LOGIN_TOO_MANY_CONNECTIONS);
	expect_status(f, a, tur(f, a), SPT_STATUS_GOOD);
}

/* RFC 7143 11.12.6: a TSIH names a session of one target; used with another
 * target's name it names no session (0x020a), and the live one is untouched. */
static void test_login_tsih_of_other_target(void **state)
{
	struct fx *f = *state;

	assert_non_null(iscsi_server_add_target(f->srv, FX_TARGET2));
	struct ini *a = fx_session(f, 0, NULL);
	struct ini *b = fx_connect(f, 1);

	memcpy(b->isid, a->isid, 6);
	b->cid = a->cid;
	ini_login_join(f, b, FX_TARGET2, a->tsih);
	login_expect_failure_started(f, b, ISCSI_LOGIN_SESSION_DOES_NOT_EXIST);
	expect_status(f, a, tur(f, a), SPT_STATUS_GOOD);
	/* an unknown TSIH likewise */
	b = fx_connect(f, 1);
	ini_login_join(f, b, FX_TARGET, (uint16_t)(a->tsih + 100));
	login_expect_failure_started(f, b, ISCSI_LOGIN_SESSION_DOES_NOT_EXIST);
}

/* The login timer (iscsi_conn_tick) closes a connection that never logs in. */
static void test_login_timeout(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_connect(f, 0);
	struct iscsi_conn *conn;
	uint64_t now = ev_now_ms();

	fx_spin(f);
	conn = fx_last_conn(f);
	iscsi_conn_tick(conn, now + 1000);
	ini_expect_silence(f, ini);
	iscsi_conn_tick(conn, now + f->srv->cfg.login_timeout_s * 1000ull + 1000);
	ini_expect_closed(f, ini);
}

/* RFC 7143 11.19: an idle connection is pinged (ITT 0xffffffff, a TTT, StatSN
 * not advanced); an answered ping keeps it, an unanswered one ends it. */
static void test_nop_in_keepalive(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);
	struct iscsi_conn *conn = fx_last_conn(f);
	uint64_t now = ev_now_ms();
	struct iscsi_nop h;

	f->srv->cfg.nop_interval_s = 5;
	f->srv->cfg.nop_timeout_s = 5;
	iscsi_conn_tick(conn, now + 1000);
	ini_expect_silence(f, ini);
	iscsi_conn_tick(conn, now + 6000);
	rx_expect(f, ini, ISCSI_OP_NOP_IN, &rx);
	assert_int_equal(rx.nop.itt, ISCSI_RESERVED_TAG);
	assert_int_not_equal(rx.nop.ttt, ISCSI_RESERVED_TAG);
	assert_int_equal(rx.dlen, 0);
	/* the answer: ITT 0xffffffff, the TTT back, I bit (RFC 7143 11.18) */
	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_NOP_OUT | ISCSI_FLAG_IMMEDIATE;
	h.flags = ISCSI_FLAG_FINAL;
	h.itt = ISCSI_RESERVED_TAG;
	h.ttt = rx.nop.ttt;
	h.sn1 = pdu_put32(ini->cmdsn);
	h.sn2 = pdu_put32(ini->statsn);
	ini_send(f, ini, &h, NULL, 0);
	ini_expect_silence(f, ini);
	/* answered: past the first ping's deadline the connection is still
	 * there, and being idle it is pinged again */
	iscsi_conn_tick(conn, now + 12000);
	rx_expect(f, ini, ISCSI_OP_NOP_IN, &rx);
	assert_int_not_equal(rx.nop.ttt, h.ttt);
	/* not answered in nop_timeout_s: the connection goes */
	iscsi_conn_tick(conn, now + 16000);
	ini_expect_silence(f, ini);
	iscsi_conn_tick(conn, now + 17001);
	ini_expect_closed(f, ini);
}

/* RFC 7143 11.5.1: ABORT TASK for a task never received, RefCmdSN in the
 * window and below the TMF's CmdSN: "function complete", and the CmdSN
 * counts as received, so the commands behind it run. */
static void test_tmf_abort_task_never_received(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, "ImmediateData=No\n");
	uint32_t n = ini->cmdsn;
	uint8_t data[FX_BS];

	memset(data, 9, sizeof(data));
	/* rejected: its CmdSN n is a gap (RFC 7143 7.3) */
	uint32_t lost = SEND_CMD(f, ini, .dir = WR, .edtl = FX_BS, .cdb = CDB_WRITE10(0, 1), .data = data,
				 .dlen = FX_BS);

	rx_expect(f, ini, ISCSI_OP_REJECT, &rx);
	uint32_t itt = tur(f, ini);	/* n + 1 waits for the gap */

	ini_expect_silence(f, ini);
	uint32_t tmf = send_tmf(f, ini, SPT_TMF_ABORT_TASK, 0, lost, n);
	bool got_tmf = false, got_tur = false;

	for (int i = 0; i < 2; i++) {
		assert_true(ini_recv(f, ini, &rx));
		if (pdu_opcode(&rx.bhs) == ISCSI_OP_TMF_RSP) {
			assert_int_equal(pdu_get32(rx.tmf.itt), tmf);
			assert_int_equal(rx.tmf.response, SPT_TMF_RSP_COMPLETE);
			got_tmf = true;
		} else {
			assert_int_equal(pdu_opcode(&rx.bhs), ISCSI_OP_SCSI_RSP);
			assert_int_equal(pdu_get32(rx.rsp.itt), itt);
			assert_int_equal(rx.rsp.status, SPT_STATUS_GOOD);
			got_tur = true;
		}
	}
	assert_true(got_tmf && got_tur);
	ping(f, ini);
	assert_int_equal(ini->exp_cmdsn, n + 2);
	/* the lost command arriving after all is old news */
	SEND_CMD(f, ini, .use_sn = true, .cmdsn = n, .dir = WR, .edtl = FX_BS, .cdb = CDB_WRITE10(0, 1));
	ini_expect_silence(f, ini);
	assert_int_equal(f->ram.nscsi, 1);
}

/* ------------------------------------------------------------------ */
/* More data-transfer and PDU-level cases                               */
/* ------------------------------------------------------------------ */

/* RFC 7143 11.7.5: a Data-Out DataSN gap at ERL 0 fails the command (4B/00). */
static void test_data_out_datasn_gap(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, "InitialR2T=Yes\nImmediateData=No\n");
	uint8_t data[2 * FX_BS];

	fill_pattern(data, sizeof(data), 101);
	uint32_t itt = SEND_CMD(f, ini, .dir = WR, .edtl = sizeof(data), .cdb = CDB_WRITE10(0, 2));

	rx_expect(f, ini, ISCSI_OP_R2T, &rx);
	uint32_t ttt = pdu_get32(rx.r2t.ttt);

	send_data_out(f, ini, itt, ttt, 0, 0, data, FX_BS, false);
	send_data_out(f, ini, itt, ttt, 2, FX_BS, data + FX_BS, FX_BS, true);
	expect_sense(f, ini, itt, SPT_KEY_ABORTED_COMMAND, 0x4b, 0x00);
	ini_expect_silence(f, ini);
	assert_int_equal(f->ram.mem[FX_BS], 0);
	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);
}

/*
 * The same failure on a command still waiting for its CmdSN (one ahead of
 * ExpCmdSN), then the initiator hangs up before the gap fills: the task,
 * its connection and its session are freed all the same (found by
 * fuzz/fuzz_pdu: the session used to outlive the connection for good).
 */
static void test_data_out_datasn_gap_cmdsn_ahead(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_session(f, 0, "InitialR2T=No\n");
	uint8_t data[FX_BS];

	fill_pattern(data, sizeof(data), 102);
	uint32_t itt = SEND_CMD(f, ini, .dir = WR, .edtl = 2 * FX_BS, .not_final = true, .use_sn = true,
				.cmdsn = ini->cmdsn + 1, .cdb = CDB_WRITE10(0, 2));

	send_data_out(f, ini, itt, ISCSI_RESERVED_TAG, 3, 0, data, FX_BS, false);
	expect_sense(f, ini, itt, SPT_KEY_ABORTED_COMMAND, 0x4b, 0x00);
	assert_int_equal(f->ram.nscsi, 0);
	/* fx_teardown hangs up and checks that no session or connection is left */
}

/* Immediate data beyond FirstBurstLength or beyond EDTL: protocol error. */
static void test_immediate_data_limits(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, "ImmediateData=Yes\nFirstBurstLength=512\n");
	uint8_t data[2 * FX_BS];

	memset(data, 4, sizeof(data));
	SEND_CMD(f, ini, .dir = WR, .edtl = sizeof(data), .cdb = CDB_WRITE10(0, 2), .data = data,
		 .dlen = sizeof(data));
	rx_expect(f, ini, ISCSI_OP_REJECT, &rx);
	assert_int_equal(rx.rej.reason, ISCSI_REJECT_PROTOCOL_ERROR);
	ini->cmdsn--;
	SEND_CMD(f, ini, .dir = WR, .edtl = 256, .cdb = CDB_WRITE10(0, 1), .data = data, .dlen = 512);
	rx_expect(f, ini, ISCSI_OP_REJECT, &rx);
	assert_int_equal(rx.rej.reason, ISCSI_REJECT_PROTOCOL_ERROR);
	ini->cmdsn--;
	/* immediate data on a command without W */
	SEND_CMD(f, ini, .edtl = 0, .cdb = { 0 }, .data = data, .dlen = 4);
	rx_expect(f, ini, ISCSI_OP_REJECT, &rx);
	ini->cmdsn--;
	assert_int_equal(f->ram.nscsi, 0);
	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);
}

/* An AHS (extended CDB) is read past and answered with Reject 0x05. */
static void test_cmd_with_ahs(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);
	uint8_t pdu[ISCSI_BHS_LEN + 8];
	struct iscsi_scsi_cmd *h = (struct iscsi_scsi_cmd *)pdu;

	memset(pdu, 0, sizeof(pdu));
	h->opcode = ISCSI_OP_SCSI_CMD;
	h->flags = ISCSI_FLAG_FINAL | SPT_TASK_SIMPLE;
	h->total_ahs_len = 2;
	h->itt = pdu_put32(0x777);
	h->cmdsn = pdu_put32(ini->cmdsn);
	pdu[ISCSI_BHS_LEN + 1] = 4;	/* AHSLength 4, type 1: extended CDB */
	pdu[ISCSI_BHS_LEN + 2] = 1;
	ini_send_raw(f, ini, pdu, sizeof(pdu));
	rx_expect(f, ini, ISCSI_OP_REJECT, &rx);
	assert_int_equal(rx.rej.reason, ISCSI_REJECT_CMD_NOT_SUPPORTED);
	assert_int_equal(spt_get_be32(rx.data + 16), 0x777);
	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);
}

/* Logout of one connection (reason 1), of an unknown CID, recovery removal (2). */
static void test_logout_reasons(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);

	/* RFC 7143 11.15.1: 1 = CID not found */
	uint32_t itt = send_logout_cid(f, ini, 1, (uint16_t)(ini->cid + 5));

	rx_expect(f, ini, ISCSI_OP_LOGOUT_RSP, &rx);
	assert_int_equal(pdu_get32(rx.logout.itt), itt);
	assert_int_equal(rx.logout.response, 1);
	/* 2 = connection recovery is not supported */
	send_logout(f, ini, 2);
	rx_expect(f, ini, ISCSI_OP_LOGOUT_RSP, &rx);
	assert_int_equal(rx.logout.response, 2);
	/* reason 3 does not exist */
	send_logout(f, ini, 3);
	rx_expect(f, ini, ISCSI_OP_REJECT, &rx);
	assert_int_equal(rx.rej.reason, ISCSI_REJECT_INVALID_PDU_FIELD);
	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);
	/* closing the only connection ends the session (ErrorRecoveryLevel 0) */
	send_logout(f, ini, 1);
	rx_expect(f, ini, ISCSI_OP_LOGOUT_RSP, &rx);
	assert_int_equal(rx.logout.response, 0);
	ini_expect_closed(f, ini);
	fx_spins(f, 2);
	assert_int_equal(f->srv->nsessions, 0);
}

/* RFC 7143 11.11.2: a long Text Response comes in pieces: C set, a TTT, and
 * the initiator asks for each next piece with that TTT. */
static void test_text_continuation(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_connect(f, 0);
	char name[ISCSI_NAME_MAX + 1];
	char *all = calloc(1, 65536);
	size_t all_len = 0;

	assert_non_null(all);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "iqn.2024-01.org.example.spt:a-rather-long-target-name-%02d", i);
		assert_non_null(iscsi_server_add_target(f->srv, name));
	}
	ini->mrdsl = 512;
	ini_login_req(f, ini, LOGIN_FLAGS(1, 0, 1),
		      "InitiatorName=" FX_INITIATOR "\nSessionType=Discovery\nAuthMethod=None\n");
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	ini_login_req(f, ini, LOGIN_FLAGS(1, 1, 3), "MaxRecvDataSegmentLength=512\n");
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), 0);

	uint32_t itt = send_text(f, ini, "SendTargets=All\n", ISCSI_RESERVED_TAG);
	int pieces = 0;

	for (;;) {
		rx_expect(f, ini, ISCSI_OP_TEXT_RSP, &rx);
		assert_int_equal(pdu_get32(rx.text.itt), itt);
		assert_true(rx.dlen <= 512);
		assert_true(all_len + rx.dlen <= 65536);
		memcpy(all + all_len, rx.data, rx.dlen);
		all_len += rx.dlen;
		pieces++;
		if (!(rx.text.flags & ISCSI_FLAG_CONTINUE))
			break;
		/* C and F are never both set; the TTT asks for more */
		assert_false(rx.text.flags & ISCSI_FLAG_FINAL);
		assert_int_equal(rx.dlen, 512);
		assert_int_not_equal(rx.text.ttt, ISCSI_RESERVED_TAG);
		send_text_itt(f, ini, itt, "", pdu_get32(rx.text.ttt));
	}
	assert_true(rx.text.flags & ISCSI_FLAG_FINAL);
	assert_int_equal(rx.text.ttt, ISCSI_RESERVED_TAG);
	assert_true(pieces >= 4);
	struct rx whole = { .data = (const uint8_t *)all, .dlen = (uint32_t)all_len };

	assert_int_equal(text_count(&whole, "TargetName"), 21);
	assert_int_equal(text_count(&whole, "TargetAddress"), 21);
	/* a TTT that is not outstanding: Reject, invalid PDU field */
	send_text(f, ini, "", 0x4321);
	rx_expect(f, ini, ISCSI_OP_REJECT, &rx);
	assert_int_equal(rx.rej.reason, ISCSI_REJECT_INVALID_PDU_FIELD);
	free(all);
}

/* Transfers larger than the socket buffers: Data-In waits for EPOLLOUT,
 * Data-Out segments are read straight into the task buffer. */
static void test_large_transfers(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_session(f, 0, NULL);
	uint32_t n = 1024;	/* 512 KiB */
	uint8_t *data = malloc(n * FX_BS), *out = malloc(n * FX_BS);

	assert_non_null(data);
	assert_non_null(out);
	assert_int_equal(ini->target_mrdsl, 262144);
	fill_pattern(data, n * FX_BS, 111);
	assert_int_equal(write_blocks(f, ini, 512, n, data), SPT_STATUS_GOOD);
	assert_memory_equal(f->ram.mem + 512 * FX_BS, data, n * FX_BS);
	memset(out, 0, n * FX_BS);
	assert_int_equal(read_blocks(f, ini, 512, n, out), SPT_STATUS_GOOD);
	assert_memory_equal(out, data, n * FX_BS);
	free(data);
	free(out);
}

/* The receive state machine resumes after any partial read. */
static void test_partial_reads(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_connect(f, 0);
	uint8_t data[2 * FX_BS], out[2 * FX_BS];

	ini->trickle = 3;
	ini_login(f, ini, "ImmediateData=Yes\n");
	fill_pattern(data, sizeof(data), 121);
	uint32_t itt = SEND_CMD(f, ini, .dir = WR, .edtl = sizeof(data), .cdb = CDB_WRITE10(1, 2), .data = data,
				.dlen = 1000);
	struct rx rx;

	rx_expect(f, ini, ISCSI_OP_R2T, &rx);
	assert_int_equal(pdu_get32(rx.r2t.buffer_offset), 1000);
	assert_int_equal(pdu_get32(rx.r2t.desired_length), 24);
	send_data_out(f, ini, itt, pdu_get32(rx.r2t.ttt), 0, 1000, data + 1000, 24, true);
	expect_status(f, ini, itt, SPT_STATUS_GOOD);
	send_nop(f, ini, 0x99, true, "odd", 3);
	rx_expect(f, ini, ISCSI_OP_NOP_IN, &rx);
	assert_memory_equal(rx.data, "odd", 3);
	ini->trickle = 0;
	assert_int_equal(read_blocks(f, ini, 1, 2, out), SPT_STATUS_GOOD);
	assert_memory_equal(out, data, sizeof(data));
}

/* Many PDUs in one segment: each answered, in CmdSN order. */
static void test_pipelined_commands(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);
	uint8_t buf[32 * ISCSI_BHS_LEN];
	uint32_t n = ini->cmdsn;

	memset(buf, 0, sizeof(buf));
	for (int i = 0; i < 32; i++) {
		struct iscsi_scsi_cmd *h = (struct iscsi_scsi_cmd *)(buf + i * ISCSI_BHS_LEN);

		h->opcode = ISCSI_OP_SCSI_CMD;
		h->flags = ISCSI_FLAG_FINAL | SPT_TASK_SIMPLE;
		h->itt = pdu_put32(0x500u + (uint32_t)i);
		/* every other pair swapped: the window puts them back in order */
		h->cmdsn = pdu_put32(n + (uint32_t)(i ^ 1));
	}
	ini_send_raw(f, ini, buf, sizeof(buf));
	for (int i = 0; i < 32; i++) {
		rx_expect(f, ini, ISCSI_OP_SCSI_RSP, &rx);
		assert_int_equal(pdu_get32(rx.rsp.itt), 0x500u + (uint32_t)(i ^ 1));
		assert_int_equal(rx.rsp.status, SPT_STATUS_GOOD);
	}
	assert_int_equal(ini->exp_cmdsn, n + 32);
	ini->cmdsn = n + 32;
}

/* ------------------------------------------------------------------ */
/* Task management across sessions                                      */
/* ------------------------------------------------------------------ */

/* ABORT TASK SET: this session's tasks on the LUN go; another session's stay. */
static void test_tmf_abort_task_set(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *a = fx_session(f, 0, NULL);
	struct ini *b = fx_session(f, 1, NULL);

	f->ram.hold = true;
	SEND_CMD(f, a, .dir = RD, .edtl = FX_BS, .cdb = CDB_READ10(0, 1));
	SEND_CMD(f, a, .dir = RD, .edtl = FX_BS, .cdb = CDB_READ10(1, 1));
	fx_spins(f, 2);
	uint32_t itb = SEND_CMD(f, b, .dir = RD, .edtl = FX_BS, .cdb = CDB_READ10(2, 1));

	fx_spins(f, 2);
	assert_int_equal(f->ram.nheld, 3);
	uint32_t tmf = send_tmf(f, a, SPT_TMF_ABORT_TASK_SET, 0, ISCSI_RESERVED_TAG, 0);

	ini_expect_silence(f, a);
	assert_true(f->ram.held[0]->aborted);
	assert_true(f->ram.held[1]->aborted);
	assert_false(f->ram.held[2]->aborted);
	ram_release(&f->ram);
	rx_expect(f, a, ISCSI_OP_TMF_RSP, &rx);
	assert_int_equal(pdu_get32(rx.tmf.itt), tmf);
	assert_int_equal(rx.tmf.response, SPT_TMF_RSP_COMPLETE);
	ini_expect_silence(f, a);
	rx_expect(f, b, ISCSI_OP_DATA_IN, &rx);
	assert_int_equal(pdu_get32(rx.din.itt), itb);
	assert_int_equal(rx.din.status, SPT_STATUS_GOOD);
}

/* CLEAR TASK SET from one nexus: the other nexus's task ends with TASK
 * ABORTED (TAS) and that nexus then sees COMMANDS CLEARED BY ANOTHER
 * INITIATOR (2F/00). */
static void test_tmf_clear_task_set_other_session(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *a = fx_session(f, 0, NULL);
	struct ini *b = fx_session(f, 1, NULL);

	f->ram.hold = true;
	uint32_t ita = SEND_CMD(f, a, .dir = RD, .edtl = FX_BS, .cdb = CDB_READ10(0, 1));

	fx_spins(f, 2);
	assert_int_equal(f->ram.nheld, 1);
	uint32_t tmf = send_tmf(f, b, SPT_TMF_CLEAR_TASK_SET, 0, ISCSI_RESERVED_TAG, 0);

	ini_expect_silence(f, b);
	ram_release(&f->ram);
	rx_expect(f, b, ISCSI_OP_TMF_RSP, &rx);
	assert_int_equal(pdu_get32(rx.tmf.itt), tmf);
	assert_int_equal(rx.tmf.response, SPT_TMF_RSP_COMPLETE);
	expect_status(f, a, ita, SPT_STATUS_TASK_ABORTED);
	expect_sense(f, a, tur(f, a), SPT_KEY_UNIT_ATTENTION, 0x2f, 0x00);
	expect_status(f, b, tur(f, b), SPT_STATUS_GOOD);
}

/* TARGET WARM RESET: every nexus gets a reset unit attention, sessions stay. */
static void test_tmf_target_warm_reset(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *a = fx_session(f, 0, NULL);
	struct ini *b = fx_session(f, 1, NULL);

	uint32_t tmf = send_tmf(f, a, SPT_TMF_TARGET_WARM_RESET, 0, ISCSI_RESERVED_TAG, 0);

	rx_expect(f, a, ISCSI_OP_TMF_RSP, &rx);
	assert_int_equal(pdu_get32(rx.tmf.itt), tmf);
	assert_int_equal(rx.tmf.response, SPT_TMF_RSP_COMPLETE);
	struct rx r1;
	uint32_t itt = tur(f, b);

	rx_expect(f, b, ISCSI_OP_SCSI_RSP, &r1);
	assert_int_equal(pdu_get32(r1.rsp.itt), itt);
	assert_int_equal(r1.rsp.status, SPT_STATUS_CHECK_CONDITION);
	assert_int_equal(r1.data[2 + 2] & 0x0f, SPT_KEY_UNIT_ATTENTION);
	assert_int_equal(r1.data[2 + 12], 0x29);
	itt = tur(f, a);
	rx_expect(f, a, ISCSI_OP_SCSI_RSP, &r1);
	assert_int_equal(r1.rsp.status, SPT_STATUS_CHECK_CONDITION);
	assert_int_equal(f->srv->nsessions, 2);
}

/* RFC 7143 11.5.1: after TARGET COLD RESET the target closes every
 * connection of the target, the requester's once the response is out. */
static void test_tmf_target_cold_reset(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *a = fx_session(f, 0, NULL);
	struct ini *b = fx_session(f, 1, NULL);

	uint32_t tmf = send_tmf(f, a, SPT_TMF_TARGET_COLD_RESET, 0, ISCSI_RESERVED_TAG, 0);

	rx_expect(f, a, ISCSI_OP_TMF_RSP, &rx);
	assert_int_equal(pdu_get32(rx.tmf.itt), tmf);
	assert_int_equal(rx.tmf.response, SPT_TMF_RSP_COMPLETE);
	ini_expect_closed(f, a);
	ini_expect_closed(f, b);
	fx_spins(f, 2);
	assert_int_equal(f->srv->nsessions, 0);
}

/* ------------------------------------------------------------------ */
/* Login limits                                                         */
/* ------------------------------------------------------------------ */

static void test_login_limits(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_connect(f, 0);
	struct iscsi_login_req h;
	char text[FX_TEXT_MAX];

	/* a login data segment beyond 8192 bytes cannot be taken (RFC 7143 13.12) */
	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_LOGIN_REQ | ISCSI_FLAG_IMMEDIATE;
	h.flags = LOGIN_FLAGS(1, 0, 1);
	pdu_set_dsl(&h, 8193);
	ini_send_raw(f, ini, &h, sizeof(h));
	ini_expect_closed(f, ini);

	/* RFC 7143 11.12: ISID (and TSIH, ITT) stay the same through a login */
	ini = fx_connect(f, 0);
	snprintf(text, sizeof(text), "InitiatorName=%s\nTargetName=%s\nAuthMethod=None\n", FX_INITIATOR,
		 FX_TARGET);
	ini_login_req(f, ini, LOGIN_FLAGS(1, 0, 1), text);
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), 0);
	ini->isid[5] ^= 0x40;
	ini_login_req(f, ini, LOGIN_FLAGS(1, 1, 3), "HeaderDigest=None\n");
	login_expect_failure(f, ini, ISCSI_LOGIN_INITIATOR_ERROR);

	/* max_sessions: the next session is refused for lack of resources */
	f->srv->cfg.max_sessions = 1;
	struct ini *a = fx_session(f, 0, NULL);

	ini = fx_connect(f, 1);
	ini_login_req(f, ini, LOGIN_FLAGS(1, 0, 3), text);
	login_expect_failure_started(f, ini, ISCSI_LOGIN_OUT_OF_RESOURCES);
	/* RFC 7143 11.12: a Login Request in full feature phase is rejected */
	ini_login_req(f, a, LOGIN_FLAGS(1, 0, 1), text);
	rx_expect(f, a, ISCSI_OP_REJECT, &rx);
	assert_int_equal(rx.rej.reason, ISCSI_REJECT_PROTOCOL_ERROR);
	expect_status(f, a, tur(f, a), SPT_STATUS_GOOD);
}

/* ------------------------------------------------------------------ */
/* Writes that end early or short                                       */
/* ------------------------------------------------------------------ */

/* The provider refuses the write at its first sequence: the command ends
 * with the sense at once; data for R2Ts still out is dropped quietly. */
static void test_write_fails_at_first_burst(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, "InitialR2T=Yes\nImmediateData=No\nMaxBurstLength=1024\n"
				     "FirstBurstLength=512\nMaxOutstandingR2T=2\n");
	uint8_t data[4 * FX_BS];
	uint32_t ttt[2];

	fill_pattern(data, sizeof(data), 131);
	uint32_t itt = SEND_CMD(f, ini, .dir = WR, .edtl = sizeof(data), .cdb = CDB_WRITE10(FX_BLOCKS - 2, 4));

	for (int i = 0; i < 2; i++) {
		rx_expect(f, ini, ISCSI_OP_R2T, &rx);
		ttt[i] = pdu_get32(rx.r2t.ttt);
	}
	send_data_out(f, ini, itt, ttt[0], 0, 0, data, 1024, true);
	/* the status waits for the data of the R2T still outstanding, so
	 * the initiator is never left answering an R2T of a finished task */
	ini_expect_silence(f, ini);
	send_data_out(f, ini, itt, ttt[1], 0, 1024, data + 1024, 1024, true);
	expect_sense(f, ini, itt, SPT_KEY_ILLEGAL_REQUEST, 0x21, 0x00);
	ini_expect_silence(f, ini);
	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);
}

/* RFC 7143 11.4.5.1: a write that consumes less than EDTL reports underflow. */
static void test_write_underflow(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, "ImmediateData=Yes\n");
	uint8_t data[2 * FX_BS];

	fill_pattern(data, sizeof(data), 141);
	uint32_t itt = SEND_CMD(f, ini, .dir = WR, .edtl = sizeof(data), .cdb = CDB_WRITE10(10, 1), .data = data,
				.dlen = sizeof(data));

	rx_expect(f, ini, ISCSI_OP_SCSI_RSP, &rx);
	assert_int_equal(pdu_get32(rx.rsp.itt), itt);
	assert_int_equal(rx.rsp.status, SPT_STATUS_GOOD);
	assert_true(rx.rsp.flags & ISCSI_RSP_UNDERFLOW);
	assert_int_equal(pdu_get32(rx.rsp.residual), FX_BS);
	assert_memory_equal(f->ram.mem + 10 * FX_BS, data, FX_BS);
	assert_int_equal(f->ram.mem[11 * FX_BS], 0);
}

/* A task of another nexus still waiting for its CmdSN when CLEAR TASK SET
 * aborts it: it never runs and, when its turn comes, ends with TASK ABORTED. */
static void test_tmf_clear_task_set_waiting_task(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *a = fx_session(f, 0, NULL);
	struct ini *b = fx_session(f, 1, "ImmediateData=Yes\n");
	uint32_t n = a->cmdsn;
	uint8_t data[FX_BS];

	memset(data, 0x66, sizeof(data));
	uint32_t itw = SEND_CMD(f, a, .use_sn = true, .cmdsn = n + 1, .dir = WR, .edtl = FX_BS,
				.cdb = CDB_WRITE10(3, 1), .data = data, .dlen = FX_BS);

	ini_expect_silence(f, a);
	uint32_t tmf = send_tmf(f, b, SPT_TMF_CLEAR_TASK_SET, 0, ISCSI_RESERVED_TAG, 0);

	rx_expect(f, b, ISCSI_OP_TMF_RSP, &rx);
	assert_int_equal(pdu_get32(rx.tmf.itt), tmf);
	assert_int_equal(rx.tmf.response, SPT_TMF_RSP_COMPLETE);
	/* n fills the gap; n itself meets the unit attention of the clear */
	uint32_t itt = SEND_CMD(f, a, .use_sn = true, .cmdsn = n, .cdb = { 0 });

	expect_sense(f, a, itt, SPT_KEY_UNIT_ATTENTION, 0x2f, 0x00);
	expect_status(f, a, itw, SPT_STATUS_TASK_ABORTED);
	assert_int_equal(f->ram.mem[3 * FX_BS], 0);
	a->cmdsn = n + 2;
	ping(f, a);
	assert_int_equal(a->exp_cmdsn, n + 2);
}

/* A write larger than the engine's task buffer is refused from the CDB. */
static void test_write_oversize(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct ini *ini = fx_session(f, 0, NULL);
	uint32_t blocks = (ISCSI_MAX_TASK_BUF / FX_BS) * 2;

	uint32_t itt = SEND_CMD(f, ini, .dir = WR, .edtl = blocks * FX_BS, .cdb = CDB_WRITE10(0, blocks));

	/* no R2T for data that cannot be taken: the status comes at once */
	rx_expect(f, ini, ISCSI_OP_SCSI_RSP, &rx);
	assert_int_equal(pdu_get32(rx.rsp.itt), itt);
	assert_int_equal(rx.rsp.status, SPT_STATUS_CHECK_CONDITION);
	assert_int_equal(rx.data[2 + 2] & 0x0f, SPT_KEY_ILLEGAL_REQUEST);
	/* ITT 0xffffffff is reserved (RFC 7143 11.2.1.8) */
	SEND_CMD(f, ini, .itt = ISCSI_RESERVED_TAG, .cdb = { 0 });
	rx_expect(f, ini, ISCSI_OP_REJECT, &rx);
	assert_int_equal(rx.rej.reason, ISCSI_REJECT_INVALID_PDU_FIELD);
	ini->cmdsn--;
	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);
}

/* The DataSegmentLength limit is enforced from the BHS alone, before an
 * announced AHS arrives: a header that promises 1020 bytes of AHS and a
 * 16 MiB data segment is refused without waiting for either. */
static void test_dsl_checked_before_ahs(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_connect(f, 0);
	struct iscsi_login_req h;

	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_LOGIN_REQ | ISCSI_FLAG_IMMEDIATE;
	h.flags = LOGIN_FLAGS(1, 0, 1);
	h.total_ahs_len = 255;
	pdu_set_dsl(&h, ISCSI_DSL_MAX);
	ini_send_raw(f, ini, &h, sizeof(h));
	ini_expect_closed(f, ini);

	/* in full feature phase likewise, against MaxRecvDataSegmentLength */
	ini = fx_session(f, 1, NULL);
	struct iscsi_nop n;

	memset(&n, 0, sizeof(n));
	n.opcode = ISCSI_OP_NOP_OUT | ISCSI_FLAG_IMMEDIATE;
	n.flags = ISCSI_FLAG_FINAL;
	n.total_ahs_len = 255;
	n.itt = pdu_put32(1);
	n.ttt = ISCSI_RESERVED_TAG;
	pdu_set_dsl(&n, ini->target_mrdsl + 4);
	ini_send_raw(f, ini, &n, sizeof(n));
	ini_expect_closed(f, ini);
}

/* ------------------------------------------------------------------ */
/* Named limits (README "Limits"): what a hostile or broken peer meets  */
/* ------------------------------------------------------------------ */

/* A connection the test only opens and watches: the engine takes one end,
 * the test keeps the other (non-blocking). */
static int lim_raw_connect(struct fx *f)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	iscsi_conn_accept(f->srv, sv[0]);
	return sv[1];
}

/* Whether the engine closed its end within a few loop passes. */
static bool lim_raw_closed(struct fx *f, int fd)
{
	char b[64];

	for (int i = 0; i < FX_QUIET_SPINS; i++) {
		if (read(fd, b, sizeof(b)) == 0)
			return true;
		fx_spin(f);
	}
	return read(fd, b, sizeof(b)) == 0;
}

/* A Login Request whose data segment is given in wire form. */
static void lim_login_raw(struct fx *f, struct ini *ini, uint8_t flags, const char *data, uint32_t len)
{
	struct iscsi_login_req h;

	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_LOGIN_REQ | ISCSI_FLAG_IMMEDIATE;
	h.flags = flags;
	memcpy(h.isid, ini->isid, 6);
	h.tsih = pdu_put16(ini->tsih);
	h.itt = pdu_put32(ini->login_itt);
	h.cid = pdu_put16(ini->cid);
	h.cmdsn = pdu_put32(ini->cmdsn);
	h.exp_statsn = pdu_put32(ini->statsn);
	ini_send(f, ini, &h, data, len);
}

/* --max-sessions-per-target: one target's sessions are counted apart from
 * another's; past it the login fails with 0302 (RFC 7143 11.13.5). */
static void test_limit_sessions_per_target(void **state)
{
	struct fx *f = *state;
	struct rx rx;

	assert_non_null(iscsi_server_add_target(f->srv, FX_TARGET2));
	f->srv->cfg.max_sessions_per_target = 1;
	struct ini *a = fx_session(f, 0, NULL);
	struct ini *b = fx_connect(f, 1);

	ini_login_req(f, b, LOGIN_FLAGS(1, 0, 3), "InitiatorName=" FX_INITIATOR "\nTargetName=" FX_TARGET
		      "\nSessionType=Normal\nAuthMethod=None\n");
	login_expect_failure_started(f, b, ISCSI_LOGIN_OUT_OF_RESOURCES);
	b = fx_connect(f, 1);
	ini_login_req(f, b, LOGIN_FLAGS(1, 0, 3), "InitiatorName=" FX_INITIATOR "\nTargetName=" FX_TARGET2
		      "\nSessionType=Normal\nAuthMethod=None\n");
	rx_expect(f, b, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), 0);
	assert_int_equal(rx.login.flags & ISCSI_LOGIN_TRANSIT, ISCSI_LOGIN_TRANSIT);
	assert_int_equal(iscsi_session_count(f->srv, NULL), 2);
	assert_int_equal(iscsi_session_count(f->srv, f->tgt), 1);
	expect_status(f, a, tur(f, a), SPT_STATUS_GOOD);
}

/* --max-half-open: a connection beyond it is closed at accept; those
 * already there, and logged-in sessions, are untouched. */
static void test_limit_half_open(void **state)
{
	struct fx *f = *state;

	f->srv->cfg.max_half_open = 2;
	struct ini *a = fx_connect(f, 0);
	int r1 = lim_raw_connect(f);
	int r2 = lim_raw_connect(f);

	assert_true(lim_raw_closed(f, r2));
	assert_false(lim_raw_closed(f, r1));
	assert_int_equal(f->srv->refused_half_open, 1);
	assert_int_equal(f->srv->refused_per_address, 0);
	/* once logged in, a no longer counts: room for one more */
	ini_login(f, a, NULL);
	int r3 = lim_raw_connect(f);

	assert_false(lim_raw_closed(f, r3));
	assert_int_equal(f->srv->refused_half_open, 1);
	expect_status(f, a, tur(f, a), SPT_STATUS_GOOD);
	close(r1);
	close(r2);
	close(r3);
}

/* --max-connections-per-address counts sessions and logins alike (the
 * test's socketpairs are all one address). */
static void test_limit_per_address(void **state)
{
	struct fx *f = *state;

	f->srv->cfg.max_conns_per_address = 2;
	struct ini *a = fx_session(f, 0, NULL);
	int r1 = lim_raw_connect(f);
	int r2 = lim_raw_connect(f);

	assert_true(lim_raw_closed(f, r2));
	assert_false(lim_raw_closed(f, r1));
	assert_int_equal(f->srv->refused_per_address, 1);
	expect_status(f, a, tur(f, a), SPT_STATUS_GOOD);
	/* a connection gone frees its place */
	close(r1);
	fx_spins(f, 2);
	int r3 = lim_raw_connect(f);

	assert_false(lim_raw_closed(f, r3));
	assert_int_equal(f->srv->refused_per_address, 1);
	close(r2);
	close(r3);
}

/* --max-login-keys and --max-login-text: beyond them the login fails with
 * 0302, out of resources (RFC 7143 11.13.5): a limit of ours, not an error
 * of the initiator (RFC 7143 6.1 sets no bound). */
static void test_limit_login_keys_and_text(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	char text[FX_TEXT_MAX];
	size_t len;

	f->srv->cfg.max_login_keys = 32;
	/* 4 keys of ours and 28 private ones: exactly the limit */
	struct ini *ini = fx_connect(f, 0);

	len = (size_t)snprintf(text, sizeof(text), "InitiatorName=%s\nTargetName=%s\nSessionType=Normal\n"
			       "AuthMethod=None\n", FX_INITIATOR, FX_TARGET);
	for (int i = 0; i < 28; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "X-org.example.k%02d=v\n", i);
	ini_login_req(f, ini, LOGIN_FLAGS(1, 0, 1), text);
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), 0);
	/* one more is too many */
	ini = fx_connect(f, 0);
	snprintf(text + len, sizeof(text) - len, "X-org.example.k28=v\n");
	ini_login_req(f, ini, LOGIN_FLAGS(1, 0, 1), text);
	login_expect_failure(f, ini, ISCSI_LOGIN_OUT_OF_RESOURCES);

	/* text: 16384 bytes over C-bit continuations; the PDU that passes them fails */
	f->srv->cfg.max_login_text = 16384;
	ini = fx_connect(f, 0);
	char *big = calloc(1, 6000);

	assert_non_null(big);
	len = (size_t)snprintf(big, 6000, "InitiatorName=%s", FX_INITIATOR) + 1;
	memcpy(big + len, "X-org.example.pad=", 18);
	memset(big + len + 18, 'a', 6000 - len - 18);
	lim_login_raw(f, ini, ISCSI_FLAG_CONTINUE | LOGIN_FLAGS(0, 0, 1), big, 6000);
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), 0);
	memset(big, 'a', 6000);
	lim_login_raw(f, ini, ISCSI_FLAG_CONTINUE | LOGIN_FLAGS(0, 0, 1), big, 6000);
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), 0);
	lim_login_raw(f, ini, ISCSI_FLAG_CONTINUE | LOGIN_FLAGS(0, 0, 1), big, 6000);
	free(big);
	rx_expect(f, ini, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), ISCSI_LOGIN_OUT_OF_RESOURCES);
	ini_expect_closed(f, ini);
}

/* --max-pending-commands: the window is that many commands, closes while
 * they are held (RFC 7143 4.2.2.1: MaxCmdSN = ExpCmdSN - 1), ignores a
 * command sent into a closed window, and the answers open it again: also
 * with a window of one, where a late update would stall the session. */
static void test_limit_pending_commands(void **state)
{
	struct fx *f = *state;
	uint32_t itt[4];

	f->srv->cfg.max_pending_commands = 4;
	struct ini *ini = fx_session(f, 0, NULL);
	uint32_t n = ini->cmdsn;

	ping(f, ini);
	assert_int_equal(ini->max_cmdsn - ini->exp_cmdsn + 1, 4);
	f->ram.hold = true;
	for (int i = 0; i < 4; i++)
		itt[i] = tur(f, ini);
	fx_spins(f, FX_QUIET_SPINS);
	assert_int_equal(f->ram.nheld, 4);
	ping(f, ini);
	assert_int_equal(ini->exp_cmdsn, n + 4);
	assert_int_equal(ini->max_cmdsn, n + 3);
	SEND_CMD(f, ini, .use_sn = true, .cmdsn = n + 4, .cdb = { 0 });
	ini_expect_silence(f, ini);
	assert_int_equal(f->ram.nscsi, 4);
	ram_release(&f->ram);
	for (int i = 0; i < 4; i++)
		expect_status(f, ini, itt[i], SPT_STATUS_GOOD);
	assert_int_equal(ini->max_cmdsn - ini->exp_cmdsn + 1, 4);
	ini->cmdsn = n + 4;
	expect_status(f, ini, tur(f, ini), SPT_STATUS_GOOD);

	/* a window of one */
	f->srv->cfg.max_pending_commands = 1;
	struct ini *b = fx_session(f, 1, NULL);

	ping(f, b);
	assert_int_equal(b->max_cmdsn, b->exp_cmdsn);
	f->ram.hold = true;
	uint32_t t1 = tur(f, b);

	fx_spins(f, FX_QUIET_SPINS);
	ping(f, b);
	assert_int_equal(b->max_cmdsn + 1, b->exp_cmdsn);
	ram_release(&f->ram);
	expect_status(f, b, t1, SPT_STATUS_GOOD);
	/* the answer itself reopened the window */
	assert_int_equal(b->max_cmdsn, b->exp_cmdsn);
	expect_status(f, b, tur(f, b), SPT_STATUS_GOOD);
	expect_status(f, b, tur(f, b), SPT_STATUS_GOOD);
}

/* --max-session-buffer-mib: a command whose buffer would pass the budget is
 * answered TASK SET FULL in its turn, its immediate data dropped; the
 * budget comes back as commands end, and the retry succeeds. */
static void test_limit_session_buffer(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	uint8_t data[FX_BS], out[FX_BS];

	f->srv->cfg.max_session_buffer_mib = ISCSI_SESSION_BUFFER_MIN_MIB;
	struct ini *ini = fx_session(f, 0, "ImmediateData=Yes\n");
	struct iscsi_session *s = fx_last_conn(f)->sess;
	uint32_t half = ISCSI_SESSION_BUFFER_MIN_MIB << 19;

	f->ram.hold = true;
	uint32_t a = SEND_CMD(f, ini, .dir = RD, .edtl = half, .cdb = CDB_READ10(0, 1));
	uint32_t b = SEND_CMD(f, ini, .dir = RD, .edtl = half, .cdb = CDB_READ10(1, 1));

	fx_spins(f, FX_QUIET_SPINS);
	assert_int_equal(f->ram.nheld, 2);
	assert_int_equal(s->buf_bytes, 2ull * half);
	fill_pattern(data, sizeof(data), 77);
	uint32_t c = SEND_CMD(f, ini, .dir = WR, .edtl = FX_BS, .cdb = CDB_WRITE10(100, 1), .data = data,
			      .dlen = FX_BS);

	expect_status(f, ini, c, SPT_STATUS_TASK_SET_FULL);
	assert_int_equal(f->ram.nscsi, 2);
	assert_int_equal(s->task_set_full, 1);
	ram_release(&f->ram);
	for (int i = 0; i < 2; i++) {
		assert_true(ini_recv(f, ini, &rx));
		assert_int_equal(pdu_opcode(&rx.bhs), ISCSI_OP_DATA_IN);
		assert_true(rx.din.flags & ISCSI_DATAIN_STATUS);
		assert_int_equal(rx.din.status, SPT_STATUS_GOOD);
		assert_int_equal(pdu_get32(rx.din.itt), i == 0 ? a : b);
	}
	fx_spins(f, 2);
	assert_int_equal(s->buf_bytes, 0);
	assert_int_not_equal(memcmp(f->ram.mem + 100 * FX_BS, data, FX_BS), 0);
	c = SEND_CMD(f, ini, .dir = WR, .edtl = FX_BS, .cdb = CDB_WRITE10(100, 1), .data = data,
		     .dlen = FX_BS);
	expect_status(f, ini, c, SPT_STATUS_GOOD);
	assert_int_equal(read_blocks(f, ini, 100, 1, out), SPT_STATUS_GOOD);
	assert_memory_equal(out, data, FX_BS);
}

/* --pdu-timeout: a PDU begun and left unfinished ends the connection; an
 * idle connection with no PDU begun is not touched by it. */
static void test_limit_pdu_timeout(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_session(f, 0, NULL);
	struct iscsi_conn *conn = fx_last_conn(f);
	uint64_t pdu_ms = f->srv->cfg.pdu_timeout_s * 1000ull;
	struct iscsi_nop h;

	f->srv->cfg.nop_interval_s = 0;
	iscsi_conn_tick(conn, ev_now_ms() + 10 * pdu_ms);
	ini_expect_silence(f, ini);
	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_NOP_OUT | ISCSI_FLAG_IMMEDIATE;
	h.flags = ISCSI_FLAG_FINAL;
	h.itt = pdu_put32(7);
	h.ttt = ISCSI_RESERVED_TAG;
	ini_send_raw(f, ini, &h, 20);
	fx_spins(f, 2);
	uint64_t now = ev_now_ms();

	iscsi_conn_tick(conn, now + pdu_ms - 1000);
	ini_expect_silence(f, ini);
	iscsi_conn_tick(conn, now + pdu_ms + 1000);
	ini_expect_closed(f, ini);
}

/* A peer that asks for answers (NOP-Out echoes) and reads none: past
 * ISCSI_CONN_TX_OWNED_MAX nothing more is read from it, and --pdu-timeout
 * without a byte written ends it. */
static void test_limit_peer_not_reading(void **state)
{
	struct fx *f = *state;
	struct ini *ini = fx_session(f, 0, NULL);
	struct iscsi_conn *conn = fx_last_conn(f);
	uint32_t dlen = 65536;
	size_t len = ISCSI_BHS_LEN + dlen;
	uint8_t *pdu = calloc(1, len);
	int sent = 0;

	assert_non_null(pdu);
	assert_true(dlen <= ini->target_mrdsl);
	while (conn->state == CONN_FULL_FEATURE && sent < 4096) {
		struct iscsi_nop *h = (struct iscsi_nop *)pdu;
		size_t off = 0;

		memset(h, 0, sizeof(*h));
		h->opcode = ISCSI_OP_NOP_OUT | ISCSI_FLAG_IMMEDIATE;
		h->flags = ISCSI_FLAG_FINAL;
		h->itt = pdu_put32(0x9000u + (uint32_t)sent);
		h->ttt = ISCSI_RESERVED_TAG;
		pdu_set_dsl(h, dlen);
		while (off < len && conn->state == CONN_FULL_FEATURE) {
			ssize_t w = send(ini->fd, pdu + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

			if (w > 0)
				off += (size_t)w;
			else
				fx_spin(f);
		}
		sent++;
	}
	free(pdu);
	assert_int_equal(conn->state, CONN_LOGGED_OUT);
	assert_true(conn->tx_owned_bytes > ISCSI_CONN_TX_OWNED_MAX);
	iscsi_conn_tick(conn, ev_now_ms() + f->srv->cfg.pdu_timeout_s * 1000ull + 1000);
	for (int i = 0; i < FX_SPINS && !ini->eof; i++) {
		fx_spin(f);
		while (ini_fill(ini))
			ini->len = 0;
	}
	assert_true(ini->eof);
}

/* RFC 7143 7.8 digest errors are counted per connection, session and
 * server; the session of a data digest error on one connection lives on
 * on its other one. */
static void test_limit_digest_error_counters(void **state)
{
	struct fx *f = *state;
	struct rx rx;
	struct iscsi_nop h;
	uint8_t pdu[ISCSI_BHS_LEN + 4 + 8 + 4];

	f->srv->limits.allow_crc32c = true;
	f->srv->limits.max_connections = 2;
	struct ini *a = fx_connect(f, 0);

	ini_login(f, a, "HeaderDigest=CRC32C\nDataDigest=CRC32C\nMaxConnections=2\n");
	assert_true(a->dd);
	struct ini *b = fx_connect(f, 1);

	memcpy(b->isid, a->isid, 6);
	b->cid = (uint16_t)(a->cid + 1);
	ini_login_join(f, b, FX_TARGET, a->tsih);
	rx_expect(f, b, ISCSI_OP_LOGIN_RSP, &rx);
	assert_int_equal(login_status(&rx), 0);
	struct iscsi_session *s = fx_last_conn(f)->sess;

	assert_non_null(s);
	memset(&h, 0, sizeof(h));
	h.opcode = ISCSI_OP_NOP_OUT | ISCSI_FLAG_IMMEDIATE;
	h.flags = ISCSI_FLAG_FINAL;
	h.itt = pdu_put32(6);
	h.ttt = ISCSI_RESERVED_TAG;
	pdu_set_dsl(&h, 8);
	memcpy(pdu, &h, sizeof(h));
	put_crc(pdu + ISCSI_BHS_LEN, ~pdu_crc32c(pdu, ISCSI_BHS_LEN, PDU_CRC32C_INIT));
	memcpy(pdu + ISCSI_BHS_LEN + 4, "12345678", 8);
	put_crc(pdu + ISCSI_BHS_LEN + 12, ~pdu_crc32c("12345678", 8, PDU_CRC32C_INIT) ^ 1);
	ini_send_raw(f, a, pdu, sizeof(pdu));
	rx_expect(f, a, ISCSI_OP_REJECT, &rx);
	assert_int_equal(rx.rej.reason, ISCSI_REJECT_DATA_DIGEST);
	ini_expect_closed(f, a);
	assert_int_equal(s->data_digest_errors, 1);
	assert_int_equal(s->header_digest_errors, 0);
	assert_int_equal(f->srv->data_digest_errors, 1);
	b->cmdsn = a->cmdsn;
	expect_status(f, b, tur(f, b), SPT_STATUS_GOOD);

	/* a header digest error: counted, and the connection closed */
	a = fx_connect(f, 0);
	ini_login(f, a, "HeaderDigest=CRC32C\n");
	memcpy(pdu, &h, sizeof(h));
	pdu_set_dsl(pdu, 0);
	put_crc(pdu + ISCSI_BHS_LEN, ~pdu_crc32c(pdu, ISCSI_BHS_LEN, PDU_CRC32C_INIT) ^ 1);
	ini_send_raw(f, a, pdu, ISCSI_BHS_LEN + 4);
	ini_expect_closed(f, a);
	assert_int_equal(f->srv->header_digest_errors, 1);
	assert_int_equal(f->srv->data_digest_errors, 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_login_normal),
		T(test_login_continue),
		T(test_login_security_to_full_feature),
		T(test_login_unknown_target),
		T(test_login_missing_initiator_name),
		T(test_login_missing_target_name),
		T(test_login_bad_version),
		T(test_login_bad_transition),
		T(test_login_non_login_pdu_first),
		T(test_discovery_sendtargets_all),
		T(test_normal_sendtargets_empty),
		T(test_text_full_feature),
		T(test_cmdsn_out_of_order),
		T(test_cmdsn_out_of_order_deferred),
		T(test_cmdsn_outside_window),
		T(test_cmdsn_immediate),
		T(test_write_immediate_data),
		T(test_write_immediate_data_not_negotiated),
		T(test_write_unsolicited_data_out),
		T(test_write_r2t_window),
		T(test_write_r2t_deferred_provider),
		T(test_write_data_out_outside_r2t),
		T(test_read_data_in_split),
		T(test_read_residuals),
		T(test_check_condition_sense),
		T(test_nop_ping),
		T(test_logout_session),
		T(test_logout_then_more_pdus),
		T(test_logout_with_task_at_provider),
		T(test_tmf_abort_task_at_provider),
		T(test_tmf_abort_task_waiting),
		T(test_tmf_abort_task_missing),
		T(test_tmf_lun_reset_unit_attention),
		T(test_tmf_lun_reset_with_tasks),
		T(test_tmf_unknown_function),
		T(test_reject_unknown_opcode),
		T(test_dsl_exceeds_max_recv),
		T(test_duplicate_itt),
		T(test_session_reinstatement),
		T(test_session_two_isids),
		T(test_session_reinstatement_with_task),
		T(test_connection_drop_with_task),
		T(test_digests),
		T(test_header_digest_error),
		T(test_data_digest_error),
		T(test_shutdown_async_logout),
		T(test_connection_reinstatement),
		T(test_login_too_many_connections),
		T(test_login_tsih_of_other_target),
		T(test_login_timeout),
		T(test_nop_in_keepalive),
		T(test_tmf_abort_task_never_received),
		T(test_data_out_datasn_gap),
		T(test_data_out_datasn_gap_cmdsn_ahead),
		T(test_immediate_data_limits),
		T(test_cmd_with_ahs),
		T(test_logout_reasons),
		T(test_text_continuation),
		T(test_large_transfers),
		T(test_partial_reads),
		T(test_pipelined_commands),
		T(test_tmf_abort_task_set),
		T(test_tmf_clear_task_set_other_session),
		T(test_tmf_target_warm_reset),
		T(test_tmf_target_cold_reset),
		T(test_login_limits),
		T(test_write_fails_at_first_burst),
		T(test_write_underflow),
		T(test_cmdsn_nop_ahead),
		T(test_tmf_clear_task_set_waiting_task),
		T(test_write_oversize),
		T(test_dsl_checked_before_ahs),
		T(test_limit_sessions_per_target),
		T(test_limit_half_open),
		T(test_limit_per_address),
		T(test_limit_login_keys_and_text),
		T(test_limit_pending_commands),
		T(test_limit_session_buffer),
		T(test_limit_pdu_timeout),
		T(test_limit_peer_not_reading),
		T(test_limit_digest_error_counters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
