/*
 * Unit tests for the SBC half of the block emulation (src/scsi/sbc.c):
 * spt_bdev_execute() against a RAM backend whose operations complete inside
 * submit() or later (deferred), with injectable errors and a provisioning map
 * for GET LBA STATUS. One test per behaviour, named after it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <spt/scsi.h>
#include "scsi/spc.h"

#define T_BS 512u
#define T_BLOCKS 4096u
#define T_SESSION 0x1234u
#define T_IO_LOG 64
#define T_PENDING 8
#define T_BUF (1u << 20)

/* ------------------------------------------------------------------ */
/* RAM backend                                                          */
/* ------------------------------------------------------------------ */

struct io_rec {
	uint8_t op;
	uint32_t flags;
	uint64_t offset;
	uint64_t length;
};

struct ram {
	struct spt_bdev bdev;
	uint8_t *mem;
	bool *mapped;			/* per block */
	bool deferred;			/* queue operations instead of completing them */
	struct spt_bdev_io *pending[T_PENDING];
	unsigned npending;
	int fail_op;			/* -1: none; else enum spt_bdev_op to fail */
	int fail_err;
	unsigned nios;
	struct io_rec ios[T_IO_LOG];
	unsigned count[5];		/* operations per enum spt_bdev_op */
	uintptr_t sp_min, sp_max;	/* stack depth seen by submit() */
};

static uint64_t ram_size(const struct ram *r)
{
	return r->bdev.num_blocks * r->bdev.block_size;
}

static int ram_perform(struct ram *r, struct spt_bdev_io *io)
{
	uint32_t bs = r->bdev.block_size;

	if (r->fail_op == io->op)
		return r->fail_err;
	if (io->op != SPT_BDEV_FLUSH)
		assert_true(io->offset + io->length <= ram_size(r));
	switch (io->op) {
	case SPT_BDEV_READ:
		memcpy(io->buf, r->mem + io->offset, io->length);
		break;
	case SPT_BDEV_WRITE:
		memcpy(r->mem + io->offset, io->buf, io->length);
		for (uint64_t b = io->offset / bs; b * bs < io->offset + io->length; b++)
			r->mapped[b] = true;
		break;
	case SPT_BDEV_UNMAP:
		memset(r->mem + io->offset, 0, io->length);
		for (uint64_t b = io->offset / bs; b * bs < io->offset + io->length; b++)
			r->mapped[b] = false;
		break;
	case SPT_BDEV_WRITE_ZEROES:
		memset(r->mem + io->offset, 0, io->length);
		break;
	case SPT_BDEV_FLUSH:
		break;
	default:
		fail();
	}
	return 0;
}

static void ram_submit(struct spt_bdev *bdev, struct spt_bdev_io *io)
{
	struct ram *r = bdev->ctx;
	/* the frame address, not a local's: ASan may move locals to a fake stack */
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);

	if (r->sp_min == 0 || sp < r->sp_min)
		r->sp_min = sp;
	if (sp > r->sp_max)
		r->sp_max = sp;
	assert_ptr_equal(io->bdev, bdev);
	assert_true(io->op <= SPT_BDEV_WRITE_ZEROES);
	r->count[io->op]++;
	if (r->nios < T_IO_LOG)
		r->ios[r->nios++] = (struct io_rec){ io->op, io->flags, io->offset, io->length };
	if (r->deferred) {
		assert_true(r->npending < T_PENDING);
		r->pending[r->npending++] = io;
		return;
	}
	io->done(io, ram_perform(r, io));
}

/* Completes the oldest deferred operation. */
static void ram_complete_one(struct ram *r)
{
	struct spt_bdev_io *io;

	assert_true(r->npending > 0);
	io = r->pending[0];
	memmove(&r->pending[0], &r->pending[1], --r->npending * sizeof(r->pending[0]));
	io->done(io, ram_perform(r, io));
}

static int ram_map_status(struct spt_bdev *bdev, uint64_t offset, bool *mapped, uint64_t *length)
{
	struct ram *r = bdev->ctx;
	uint64_t b = offset / T_BS, e = b;

	while (e < r->bdev.num_blocks && r->mapped[e] == r->mapped[b])
		e++;
	*mapped = r->mapped[b];
	*length = (e - b) * T_BS;
	return 0;
}

static const struct spt_bdev_ops ram_ops = { .submit = ram_submit, .map_status = ram_map_status };
static const struct spt_bdev_ops ram_ops_no_map = { .submit = ram_submit };

struct ram_opts {
	uint64_t blocks;
	bool thin, wce, ro;
	uint32_t max_transfer;
};

static struct ram *ram_new(struct ram_opts o)
{
	struct ram *r = calloc(1, sizeof(*r));
	struct spt_session_start ss = { .itnexus_handle = T_SESSION };

	assert_non_null(r);
	r->bdev.ops = &ram_ops;
	r->bdev.ctx = r;
	r->bdev.block_size = T_BS;
	r->bdev.num_blocks = o.blocks ? o.blocks : T_BLOCKS;
	r->bdev.thin = o.thin;
	r->bdev.write_cache = o.wce;
	r->bdev.read_only = o.ro;
	r->bdev.max_transfer_bytes = o.max_transfer ? o.max_transfer : T_BUF;
	r->mem = calloc(1, ram_size(r));
	r->mapped = calloc(r->bdev.num_blocks, sizeof(bool));
	assert_non_null(r->mem);
	assert_non_null(r->mapped);
	for (uint64_t i = 0; i < ram_size(r); i++)
		r->mem[i] = (uint8_t)(i * 7 + i / T_BS);
	for (uint64_t b = 0; b < r->bdev.num_blocks; b++)
		r->mapped[b] = true;
	r->fail_op = -1;
	assert_int_equal(spt_bdev_init(&r->bdev), 0);
	spt_bdev_session_start(&r->bdev, &ss);
	return r;
}

static void ram_free(struct ram *r)
{
	spt_bdev_fini(&r->bdev);
	free(r->mem);
	free(r->mapped);
	free(r);
}

static void ram_reset_log(struct ram *r)
{
	r->nios = 0;
	memset(r->count, 0, sizeof(r->count));
}

/* ------------------------------------------------------------------ */
/* Commands                                                             */
/* ------------------------------------------------------------------ */

struct tcmd {
	struct spt_cmd cmd;
	unsigned completions;
	struct spt_scsi_completion last;
	uint8_t *buf;
};

static void tcmd_done(struct spt_cmd *cmd)
{
	struct tcmd *tc = (struct tcmd *)cmd;

	tc->completions++;
	tc->last = cmd->cpl;
}

static struct tcmd *tcmd_new(void)
{
	struct tcmd *tc = calloc(1, sizeof(*tc));

	assert_non_null(tc);
	tc->buf = calloc(1, T_BUF);
	assert_non_null(tc->buf);
	tc->cmd.buf = tc->buf;
	tc->cmd.done = tcmd_done;
	return tc;
}

static void tcmd_free(struct tcmd *tc)
{
	free(tc->buf);
	free(tc);
}

/* Prepares a new command: CDB, direction and ExpectedDataTransferLength. */
static void tcmd_start(struct tcmd *tc, const uint8_t *cdb, size_t cdb_len, uint8_t dir,
		       uint32_t edtl)
{
	memset(&tc->cmd.req, 0, sizeof(tc->cmd.req));
	tc->cmd.req.session_cookie = T_SESSION;
	tc->cmd.req.task_cookie = 77;
	tc->cmd.req.direction = dir;
	tc->cmd.req.expected_length = edtl;
	tc->cmd.req.cdb_length = (uint8_t)(cdb_len < 16 ? 16 : cdb_len);
	memcpy(tc->cmd.req.cdb, cdb, cdb_len);
	tc->cmd.buf_len = edtl < T_BUF ? edtl : T_BUF;
	tc->cmd.aborted = false;
	tc->completions = 0;
}

/* Delivers one request: [offset, offset + len) of the data-out is new. */
static void tcmd_request(struct ram *r, struct tcmd *tc, uint32_t offset, uint32_t len, bool final)
{
	tc->cmd.req.sequence_byte_offset = offset;
	tc->cmd.req.data_length = len;
	tc->cmd.req.is_final = final;
	memset(&tc->cmd.cpl, 0, sizeof(tc->cmd.cpl));
	spt_bdev_execute(&r->bdev, &tc->cmd);
}

/* A whole command in one request; data-out (if any) already in tc->buf. */
static void run(struct ram *r, struct tcmd *tc, const uint8_t *cdb, size_t cdb_len, uint8_t dir,
		uint32_t edtl)
{
	tcmd_start(tc, cdb, cdb_len, dir, edtl);
	tcmd_request(r, tc, 0, dir == SPT_DIR_OUT ? edtl : 0, true);
}

struct tsense {
	uint8_t key, asc, ascq;
	bool sksv, cd, bpv;
	uint8_t bit;
	uint16_t field;
	bool info_valid;
	uint64_t info;
};

/* Parses fixed (70h) or descriptor (72h) sense data. */
static struct tsense sense_of(const struct spt_scsi_completion *c)
{
	struct tsense s = { 0 };
	const uint8_t *p = c->sense;

	assert_int_equal(c->scsi_status, SPT_STATUS_CHECK_CONDITION);
	assert_true(c->sense_length >= 8);
	if ((p[0] & 0x7f) == 0x70) {
		assert_true(c->sense_length >= 18);
		s.key = p[2] & 0x0f;
		s.asc = p[12];
		s.ascq = p[13];
		s.info_valid = p[0] & 0x80;
		s.info = spt_get_be32(p + 3);
		s.sksv = p[15] & 0x80;
		s.cd = p[15] & 0x40;
		s.bpv = p[15] & 0x08;
		s.bit = p[15] & 0x07;
		s.field = spt_get_be16(p + 16);
	} else {
		assert_int_equal(p[0] & 0x7f, 0x72);
		s.key = p[1] & 0x0f;
		s.asc = p[2];
		s.ascq = p[3];
		for (unsigned off = 8; off + 2 <= c->sense_length; off += 2 + p[off + 1]) {
			const uint8_t *d = p + off;

			if (d[0] == 0x00) {
				s.info_valid = d[2] & 0x80;
				s.info = spt_get_be64(d + 4);
			} else if (d[0] == 0x02) {
				s.sksv = d[4] & 0x80;
				s.cd = d[4] & 0x40;
				s.bpv = d[4] & 0x08;
				s.bit = d[4] & 0x07;
				s.field = spt_get_be16(d + 5);
			}
		}
	}
	return s;
}

static void assert_good(const struct tcmd *tc)
{
	assert_int_equal(tc->completions, 1);
	assert_int_equal(tc->last.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(tc->last.sense_length, 0);
}

static void assert_sense(const struct tcmd *tc, uint8_t key, uint8_t asc, uint8_t ascq)
{
	struct tsense s;

	assert_int_equal(tc->completions, 1);
	s = sense_of(&tc->last);
	assert_int_equal(s.key, key);
	assert_int_equal(s.asc, asc);
	assert_int_equal(s.ascq, ascq);
}

/* INVALID FIELD IN CDB with the field pointer at byte/bit (bit < 0: none). */
static void assert_invalid_field(const struct tcmd *tc, uint16_t byte, int bit)
{
	struct tsense s;

	assert_sense(tc, SPT_KEY_ILLEGAL_REQUEST, 0x24, 0x00);
	s = sense_of(&tc->last);
	assert_true(s.sksv);
	assert_true(s.cd);
	assert_int_equal(s.field, byte);
	if (bit < 0) {
		assert_false(s.bpv);
	} else {
		assert_true(s.bpv);
		assert_int_equal(s.bit, bit);
	}
}

static void assert_lba_oob(const struct tcmd *tc)
{
	assert_sense(tc, SPT_KEY_ILLEGAL_REQUEST, 0x21, 0x00);
}

/* CDB builders. */
static void cdb10(uint8_t *c, uint8_t op, uint8_t b1, uint32_t lba, uint16_t n)
{
	memset(c, 0, 10);
	c[0] = op;
	c[1] = b1;
	spt_put_be32(c + 2, lba);
	spt_put_be16(c + 7, n);
}

static void cdb12(uint8_t *c, uint8_t op, uint8_t b1, uint32_t lba, uint32_t n)
{
	memset(c, 0, 12);
	c[0] = op;
	c[1] = b1;
	spt_put_be32(c + 2, lba);
	spt_put_be32(c + 6, n);
}

static void cdb16(uint8_t *c, uint8_t op, uint8_t b1, uint64_t lba, uint32_t n)
{
	memset(c, 0, 16);
	c[0] = op;
	c[1] = b1;
	spt_put_be64(c + 2, lba);
	spt_put_be32(c + 10, n);
}

static uint8_t *blk(struct ram *r, uint64_t lba)
{
	return r->mem + lba * T_BS;
}

/* Fixture: every test gets a fresh RAM LU and command. */
struct fx {
	struct ram *r;
	struct tcmd *tc;
};

static int fx_setup_opts(void **state, struct ram_opts o)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->r = ram_new(o);
	f->tc = tcmd_new();
	*state = f;
	return 0;
}

static int fx_setup(void **state)
{
	return fx_setup_opts(state, (struct ram_opts){ .wce = true });
}

static int fx_setup_thin(void **state)
{
	return fx_setup_opts(state, (struct ram_opts){ .wce = true, .thin = true });
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	tcmd_free(f->tc);
	ram_free(f->r);
	free(f);
	return 0;
}

/* ------------------------------------------------------------------ */
/* READ                                                                 */
/* ------------------------------------------------------------------ */

static void test_read10_returns_the_blocks(void **state)
{
	struct fx *f = *state;
	uint8_t c[10];

	cdb10(c, 0x28, 0, 3, 2);
	run(f->r, f->tc, c, 10, SPT_DIR_IN, 2 * T_BS);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, 2 * T_BS);
	assert_int_equal(f->tc->last.data_in_length, 2 * T_BS);
	assert_memory_equal(f->tc->buf, blk(f->r, 3), 2 * T_BS);
	assert_int_equal(f->r->count[SPT_BDEV_READ], 1);
}

static void test_read_6_12_16_decode_lba_and_length(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	/* READ(6): 21-bit LBA, TRANSFER LENGTH 0 is 256 blocks */
	memset(c, 0, 6);
	c[0] = 0x08;
	c[1] = 0x00;
	c[2] = 0x01;
	c[3] = 0x02;	/* LBA 0x102 */
	c[4] = 0;
	run(f->r, f->tc, c, 6, SPT_DIR_IN, 256 * T_BS);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, 256 * T_BS);
	assert_memory_equal(f->tc->buf, blk(f->r, 0x102), 256 * T_BS);

	cdb12(c, 0xa8, 0, 7, 3);
	run(f->r, f->tc, c, 12, SPT_DIR_IN, 3 * T_BS);
	assert_good(f->tc);
	assert_memory_equal(f->tc->buf, blk(f->r, 7), 3 * T_BS);

	cdb16(c, 0x88, 0, T_BLOCKS - 1, 1);
	run(f->r, f->tc, c, 16, SPT_DIR_IN, T_BS);
	assert_good(f->tc);
	assert_memory_equal(f->tc->buf, blk(f->r, T_BLOCKS - 1), T_BS);
}

static void test_read_short_edtl_reads_only_edtl(void **state)
{
	struct fx *f = *state;
	uint8_t c[10];

	/* libiscsi Read10Residuals: EDTL 200 for one block gives 200 bytes */
	cdb10(c, 0x28, 0, 5, 1);
	run(f->r, f->tc, c, 10, SPT_DIR_IN, 200);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, T_BS);
	assert_int_equal(f->tc->last.data_in_length, 200);
	assert_int_equal(f->r->ios[0].length, 200);
	assert_memory_equal(f->tc->buf, blk(f->r, 5), 200);

	/* EDTL 0: GOOD, nothing read, the engine reports the overflow */
	ram_reset_log(f->r);
	run(f->r, f->tc, c, 10, SPT_DIR_IN, 0);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, T_BS);
	assert_int_equal(f->tc->last.data_in_length, 0);
	assert_int_equal(f->r->nios, 0);

	/* EDTL larger than the transfer: one block */
	run(f->r, f->tc, c, 10, SPT_DIR_IN, 10000);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, T_BS);
	assert_int_equal(f->tc->last.data_in_length, T_BS);
}

static void test_read_beyond_end_is_lba_out_of_range(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	cdb10(c, 0x28, 0, T_BLOCKS - 1, 2);
	run(f->r, f->tc, c, 10, SPT_DIR_IN, 2 * T_BS);
	assert_lba_oob(f->tc);

	/* LBA + count wrapping around 2^64 */
	cdb16(c, 0x88, 0, UINT64_MAX, 2);
	run(f->r, f->tc, c, 16, SPT_DIR_IN, 2 * T_BS);
	assert_lba_oob(f->tc);
	cdb16(c, 0x88, 0, 0x8000000000000000ull, 1);
	run(f->r, f->tc, c, 16, SPT_DIR_IN, T_BS);
	assert_lba_oob(f->tc);

	/* zero blocks: fine at the start and at the end, not past it */
	cdb10(c, 0x28, 0, 0, 0);
	run(f->r, f->tc, c, 10, SPT_DIR_IN, 0);
	assert_good(f->tc);
	cdb10(c, 0x28, 0, T_BLOCKS, 0);
	run(f->r, f->tc, c, 10, SPT_DIR_IN, 0);
	assert_good(f->tc);
	cdb10(c, 0x28, 0, T_BLOCKS + 1, 0);
	run(f->r, f->tc, c, 10, SPT_DIR_IN, 0);
	assert_lba_oob(f->tc);
	assert_int_equal(f->r->nios, 0);
}

static void test_rdprotect_is_invalid_field(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	for (uint8_t p = 1; p < 8; p++) {
		cdb10(c, 0x28, (uint8_t)(p << 5), 0, 1);
		run(f->r, f->tc, c, 10, SPT_DIR_IN, T_BS);
		assert_invalid_field(f->tc, 1, 7);
	}
	cdb16(c, 0x8a, 0x40, 0, 1);	/* WRPROTECT on WRITE(16) */
	run(f->r, f->tc, c, 16, SPT_DIR_OUT, T_BS);
	assert_invalid_field(f->tc, 1, 7);
	assert_int_equal(f->r->nios, 0);
}

static void test_reserved_bits_and_control_byte(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	cdb10(c, 0x28, 0x04, 0, 1);	/* READ(10) byte 1 bit 2 reserved */
	run(f->r, f->tc, c, 10, SPT_DIR_IN, T_BS);
	assert_invalid_field(f->tc, 1, 2);

	cdb10(c, 0x28, 0, 0, 1);
	c[6] = 0x21;			/* bit 5 reserved, group number 1 ignored */
	run(f->r, f->tc, c, 10, SPT_DIR_IN, T_BS);
	assert_invalid_field(f->tc, 6, 5);

	cdb10(c, 0x28, 0, 0, 1);
	c[6] = 0x1f;			/* group number alone is fine */
	run(f->r, f->tc, c, 10, SPT_DIR_IN, T_BS);
	assert_good(f->tc);

	cdb10(c, 0x28, 0x18, 0, 1);	/* DPO and FUA are accepted */
	run(f->r, f->tc, c, 10, SPT_DIR_IN, T_BS);
	assert_good(f->tc);

	cdb10(c, 0x28, 0, 0, 1);
	c[9] = 0x04;			/* NACA */
	run(f->r, f->tc, c, 10, SPT_DIR_IN, T_BS);
	assert_invalid_field(f->tc, 9, 2);

	cdb16(c, 0x88, 0, 0, 1);
	c[15] = 0x04;
	run(f->r, f->tc, c, 16, SPT_DIR_IN, T_BS);
	assert_invalid_field(f->tc, 15, 2);

	memset(c, 0, 6);		/* READ(6) byte 1 bits 7-5 reserved */
	c[0] = 0x08;
	c[1] = 0x40;
	c[4] = 1;
	run(f->r, f->tc, c, 6, SPT_DIR_IN, T_BS);
	assert_invalid_field(f->tc, 1, 6);
	assert_int_equal(f->r->count[SPT_BDEV_READ], 2);
}

static void test_transfer_above_maximum_is_invalid_field(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	f->r->bdev.max_transfer_bytes = 64 * 1024;
	cdb10(c, 0x28, 0, 0, 129);
	run(f->r, f->tc, c, 10, SPT_DIR_IN, 129 * T_BS);
	assert_invalid_field(f->tc, 7, -1);
	cdb12(c, 0xaa, 0, 0, 129);
	run(f->r, f->tc, c, 12, SPT_DIR_OUT, 129 * T_BS);
	assert_invalid_field(f->tc, 6, -1);
	cdb16(c, 0x88, 0, 0, 129);
	run(f->r, f->tc, c, 16, SPT_DIR_IN, 129 * T_BS);
	assert_invalid_field(f->tc, 10, -1);
	cdb10(c, 0x28, 0, 0, 128);
	run(f->r, f->tc, c, 10, SPT_DIR_IN, 128 * T_BS);
	assert_good(f->tc);

	/* an engine buffer smaller than the transfer is never silently cut */
	cdb10(c, 0x28, 0, 0, 4);
	tcmd_start(f->tc, c, 10, SPT_DIR_IN, 4 * T_BS);
	f->tc->cmd.buf_len = 2 * T_BS;
	tcmd_request(f->r, f->tc, 0, 0, true);
	assert_invalid_field(f->tc, 7, -1);
	cdb10(c, 0x2a, 0, 0, 4);
	tcmd_start(f->tc, c, 10, SPT_DIR_OUT, 4 * T_BS);
	f->tc->cmd.buf_len = 2 * T_BS;
	tcmd_request(f->r, f->tc, 0, 2 * T_BS, true);
	assert_invalid_field(f->tc, 7, -1);
	assert_int_equal(f->r->count[SPT_BDEV_READ] + f->r->count[SPT_BDEV_WRITE], 1);
}

static void test_read_flagged_as_write_reads_on_final_request(void **state)
{
	struct fx *f = *state;
	uint8_t c[10];

	/* libiscsi Read10Invalid: READ(10) sent with data-out */
	cdb10(c, 0x28, 0, 9, 1);
	tcmd_start(f->tc, c, 10, SPT_DIR_OUT, T_BS);
	tcmd_request(f->r, f->tc, 0, 100, false);
	assert_good(f->tc);
	assert_int_equal(f->r->nios, 0);
	f->tc->completions = 0;
	tcmd_request(f->r, f->tc, 100, T_BS - 100, true);
	assert_good(f->tc);
	assert_int_equal(f->r->count[SPT_BDEV_READ], 1);
}

static void test_read_error_is_unrecovered_read_error(void **state)
{
	struct fx *f = *state;
	uint8_t c[10];

	f->r->fail_op = SPT_BDEV_READ;
	f->r->fail_err = -EIO;
	cdb10(c, 0x28, 0, 0, 1);
	run(f->r, f->tc, c, 10, SPT_DIR_IN, T_BS);
	assert_sense(f->tc, SPT_KEY_MEDIUM_ERROR, 0x11, 0x00);
	assert_int_equal(f->tc->last.data_in_length, 0);
}

/* ------------------------------------------------------------------ */
/* WRITE                                                                */
/* ------------------------------------------------------------------ */

static void test_write10_writes_and_fua_follows_cdb(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	memset(f->tc->buf, 0xab, 2 * T_BS);
	cdb10(c, 0x2a, 0, 10, 2);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, 2 * T_BS);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, 2 * T_BS);
	assert_memory_equal(blk(f->r, 10), f->tc->buf, 2 * T_BS);
	assert_int_equal(f->r->ios[0].op, SPT_BDEV_WRITE);
	assert_int_equal(f->r->ios[0].offset, 10 * T_BS);
	assert_int_equal(f->r->ios[0].flags, 0);

	ram_reset_log(f->r);
	cdb16(c, 0x8a, 0x08, 20, 1);	/* FUA */
	run(f->r, f->tc, c, 16, SPT_DIR_OUT, T_BS);
	assert_good(f->tc);
	assert_int_equal(f->r->ios[0].flags, SPT_BDEV_FUA);

	ram_reset_log(f->r);
	memset(c, 0, 6);		/* WRITE(6) */
	c[0] = 0x0a;
	c[3] = 30;
	c[4] = 1;
	run(f->r, f->tc, c, 6, SPT_DIR_OUT, T_BS);
	assert_good(f->tc);
	assert_int_equal(f->r->ios[0].offset, 30 * T_BS);
}

static void test_write_without_write_cache_is_always_fua(void **state)
{
	struct ram *r = ram_new((struct ram_opts){ .wce = false });
	struct tcmd *tc = tcmd_new();
	uint8_t c[10];

	cdb10(c, 0x2a, 0, 0, 1);
	run(r, tc, c, 10, SPT_DIR_OUT, T_BS);
	assert_good(tc);
	assert_int_equal(r->ios[0].flags, SPT_BDEV_FUA);
	tcmd_free(tc);
	ram_free(r);
	(void)state;
}

static void test_write_multi_sequence_writes_whole_blocks_as_they_arrive(void **state)
{
	struct fx *f = *state;
	uint8_t c[10];

	for (unsigned i = 0; i < 4 * T_BS; i++)
		f->tc->buf[i] = (uint8_t)(i * 13);
	cdb10(c, 0x2a, 0, 100, 4);
	tcmd_start(f->tc, c, 10, SPT_DIR_OUT, 4 * T_BS);

	tcmd_request(f->r, f->tc, 0, 700, false);	/* one whole block in */
	assert_good(f->tc);
	assert_int_equal(f->r->nios, 1);
	assert_int_equal(f->r->ios[0].offset, 100 * T_BS);
	assert_int_equal(f->r->ios[0].length, T_BS);

	f->tc->completions = 0;
	tcmd_request(f->r, f->tc, 700, 900, false);	/* up to byte 1600: block 1 and 2 */
	assert_good(f->tc);
	assert_int_equal(f->r->nios, 2);
	assert_int_equal(f->r->ios[1].offset, 101 * T_BS);
	assert_int_equal(f->r->ios[1].length, 2 * T_BS);

	f->tc->completions = 0;
	tcmd_request(f->r, f->tc, 1600, 4 * T_BS - 1600, true);
	assert_good(f->tc);
	assert_int_equal(f->r->nios, 3);
	assert_int_equal(f->r->ios[2].offset, 103 * T_BS);
	assert_int_equal(f->tc->last.transfer_length, 4 * T_BS);
	assert_memory_equal(blk(f->r, 100), f->tc->buf, 4 * T_BS);
}

static void test_write_sequence_without_whole_block_asks_for_more(void **state)
{
	struct fx *f = *state;
	uint8_t c[10];

	cdb10(c, 0x2a, 0, 0, 2);
	tcmd_start(f->tc, c, 10, SPT_DIR_OUT, 2 * T_BS);
	tcmd_request(f->r, f->tc, 0, 0, false);		/* no immediate data */
	assert_good(f->tc);
	f->tc->completions = 0;
	tcmd_request(f->r, f->tc, 0, 100, false);
	assert_good(f->tc);
	assert_int_equal(f->r->nios, 0);
	f->tc->completions = 0;
	tcmd_request(f->r, f->tc, 100, 2 * T_BS - 100, true);
	assert_good(f->tc);
	assert_int_equal(f->r->nios, 1);
	assert_int_equal(f->r->ios[0].length, 2 * T_BS);
}

static void test_write_residuals_follow_libiscsi(void **state)
{
	struct fx *f = *state;
	uint8_t c[10];
	uint8_t before[T_BS];

	/* EDTL one block for a two-block WRITE: only the first block */
	memcpy(before, blk(f->r, 41), T_BS);
	memset(f->tc->buf, 'b', 2 * T_BS);
	cdb10(c, 0x2a, 0, 40, 2);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, 2 * T_BS);
	assert_memory_equal(blk(f->r, 40), f->tc->buf, T_BS);
	assert_memory_equal(blk(f->r, 41), before, T_BS);

	/* EDTL above the transfer: only the CDB's block */
	ram_reset_log(f->r);
	cdb10(c, 0x2a, 0, 50, 1);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, 10000);
	assert_good(f->tc);
	assert_int_equal(f->r->ios[0].length, T_BS);

	/* EDTL 0: GOOD, nothing written */
	ram_reset_log(f->r);
	run(f->r, f->tc, c, 10, SPT_DIR_NONE, 0);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, T_BS);
	assert_int_equal(f->r->nios, 0);

	/* EDTL 200: a partial block cannot be written */
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, 200);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x0e, 0x03);
	assert_int_equal(f->tc->last.transfer_length, T_BS);
	assert_int_equal(f->r->nios, 0);
}

static void test_write_ended_early_is_not_enough_data(void **state)
{
	struct fx *f = *state;
	uint8_t c[10];

	cdb10(c, 0x2a, 0, 0, 2);
	tcmd_start(f->tc, c, 10, SPT_DIR_OUT, 2 * T_BS);
	tcmd_request(f->r, f->tc, 0, T_BS, true);
	assert_sense(f->tc, SPT_KEY_ABORTED_COMMAND, 0x0c, 0x0d);
}

static void test_write_to_read_only_lu_is_write_protected(void **state)
{
	struct ram *r = ram_new((struct ram_opts){ .wce = true, .ro = true, .thin = true });
	struct tcmd *tc = tcmd_new();
	uint8_t c[16];

	cdb10(c, 0x2a, 0, 0, 1);
	run(r, tc, c, 10, SPT_DIR_OUT, T_BS);
	assert_sense(tc, SPT_KEY_DATA_PROTECT, 0x27, 0x00);
	cdb16(c, 0x8b, 0, 0, 1);	/* ORWRITE */
	run(r, tc, c, 16, SPT_DIR_OUT, T_BS);
	assert_sense(tc, SPT_KEY_DATA_PROTECT, 0x27, 0x00);
	/* WRITE SAME UNMAP without data-out: write protection comes first */
	cdb10(c, 0x41, 0x08, 0, 1);
	run(r, tc, c, 10, SPT_DIR_NONE, 0);
	assert_sense(tc, SPT_KEY_DATA_PROTECT, 0x27, 0x00);
	cdb10(c, 0x42, 0, 0, 24);	/* UNMAP */
	run(r, tc, c, 10, SPT_DIR_OUT, 24);
	assert_sense(tc, SPT_KEY_DATA_PROTECT, 0x27, 0x00);
	/* reads still work */
	cdb10(c, 0x28, 0, 0, 1);
	run(r, tc, c, 10, SPT_DIR_IN, T_BS);
	assert_good(tc);
	assert_int_equal(r->count[SPT_BDEV_WRITE] + r->count[SPT_BDEV_UNMAP], 0);
	tcmd_free(tc);
	ram_free(r);
	(void)state;
}

static void test_write_completes_from_deferred_io(void **state)
{
	struct fx *f = *state;
	uint8_t c[10];

	f->r->deferred = true;
	cdb10(c, 0x2a, 0, 0, 1);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS);
	assert_int_equal(f->tc->completions, 0);
	assert_int_equal(f->r->npending, 1);
	ram_complete_one(f->r);
	assert_good(f->tc);
}

static void test_backend_errors_map_to_sense(void **state)
{
	struct fx *f = *state;
	uint8_t c[10];

	cdb10(c, 0x2a, 0, 0, 1);
	f->r->fail_op = SPT_BDEV_WRITE;
	f->r->fail_err = -EIO;
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS);
	assert_sense(f->tc, SPT_KEY_MEDIUM_ERROR, 0x0c, 0x00);

	f->r->fail_err = -ENOSPC;
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS);
	assert_sense(f->tc, SPT_KEY_MEDIUM_ERROR, 0x0c, 0x00);
	f->r->bdev.thin = true;
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS);
	assert_sense(f->tc, SPT_KEY_DATA_PROTECT, 0x27, 0x07);

	f->r->fail_err = -EINVAL;
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS);
	assert_sense(f->tc, SPT_KEY_HARDWARE_ERROR, 0x44, 0x00);

	f->r->fail_err = -ENOMEM;
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS);
	assert_int_equal(f->tc->completions, 1);
	assert_int_equal(f->tc->last.scsi_status, SPT_STATUS_BUSY);
}

static void test_aborted_command_still_completes_once(void **state)
{
	struct fx *f = *state;
	uint8_t c[10];

	f->r->deferred = true;
	cdb10(c, 0x2a, 0, 0, 1);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS);
	f->tc->cmd.aborted = true;
	ram_complete_one(f->r);
	assert_int_equal(f->tc->completions, 1);
}

/* ------------------------------------------------------------------ */
/* VERIFY, WRITE AND VERIFY, ORWRITE                                    */
/* ------------------------------------------------------------------ */

static void test_verify_bytchk0_checks_range_only(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	cdb10(c, 0x2f, 0x10, 0, 16);	/* DPO accepted */
	run(f->r, f->tc, c, 10, SPT_DIR_NONE, 0);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, 0);
	assert_int_equal(f->r->nios, 0);
	cdb16(c, 0x8f, 0, T_BLOCKS - 1, 2);
	run(f->r, f->tc, c, 16, SPT_DIR_NONE, 0);
	assert_lba_oob(f->tc);
	cdb10(c, 0x2f, 0x04, 0, 1);	/* BYTCHK 10b is reserved */
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS);
	assert_invalid_field(f->tc, 1, 2);
	cdb10(c, 0x2f, 0x20, 0, 1);	/* VRPROTECT */
	run(f->r, f->tc, c, 10, SPT_DIR_NONE, 0);
	assert_invalid_field(f->tc, 1, 7);
}

static void test_verify_bytchk1_compares_and_reports_offset(void **state)
{
	struct fx *f = *state;
	uint8_t c[12];

	memcpy(f->tc->buf, blk(f->r, 8), 3 * T_BS);
	cdb12(c, 0xaf, 0x02, 8, 3);
	run(f->r, f->tc, c, 12, SPT_DIR_OUT, 3 * T_BS);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, 3 * T_BS);

	f->tc->buf[700] ^= 'X';
	run(f->r, f->tc, c, 12, SPT_DIR_OUT, 3 * T_BS);
	assert_sense(f->tc, SPT_KEY_MISCOMPARE, 0x1d, 0x00);
	assert_true(sense_of(&f->tc->last).info_valid);
	assert_int_equal(sense_of(&f->tc->last).info, 700);
}

static void test_verify_bytchk1_waits_for_all_data(void **state)
{
	struct fx *f = *state;
	uint8_t c[10];

	memcpy(f->tc->buf, blk(f->r, 0), 2 * T_BS);
	cdb10(c, 0x2f, 0x02, 0, 2);
	tcmd_start(f->tc, c, 10, SPT_DIR_OUT, 2 * T_BS);
	tcmd_request(f->r, f->tc, 0, T_BS, false);
	assert_good(f->tc);
	assert_int_equal(f->r->nios, 0);
	f->tc->completions = 0;
	tcmd_request(f->r, f->tc, T_BS, T_BS, true);
	assert_good(f->tc);
	assert_int_equal(f->r->count[SPT_BDEV_READ], 1);
}

static void test_verify_bytchk3_compares_one_block_with_each(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	for (unsigned b = 60; b < 64; b++)
		memset(blk(f->r, b), 0x5a, T_BS);
	memset(f->tc->buf, 0x5a, T_BS);
	cdb16(c, 0x8f, 0x06, 60, 4);
	run(f->r, f->tc, c, 16, SPT_DIR_OUT, T_BS);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, T_BS);

	blk(f->r, 62)[5] = 0;
	run(f->r, f->tc, c, 16, SPT_DIR_OUT, T_BS);
	assert_sense(f->tc, SPT_KEY_MISCOMPARE, 0x1d, 0x00);
	assert_int_equal(sense_of(&f->tc->last).info, 2 * T_BS + 5);
}

static void test_write_and_verify_writes_durably_then_compares(void **state)
{
	struct fx *f = *state;
	uint8_t c[10];

	memset(f->tc->buf, 0x77, 2 * T_BS);
	cdb10(c, 0x2e, 0x02, 200, 2);	/* BYTCHK=1 */
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, 2 * T_BS);
	assert_good(f->tc);
	assert_memory_equal(blk(f->r, 200), f->tc->buf, 2 * T_BS);
	assert_int_equal(f->r->ios[0].op, SPT_BDEV_WRITE);
	assert_int_equal(f->r->ios[0].flags, SPT_BDEV_FUA);
	assert_int_equal(f->r->ios[1].op, SPT_BDEV_READ);

	cdb10(c, 0x2e, 0x06, 200, 2);	/* BYTCHK 11b not allowed here */
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, 2 * T_BS);
	assert_invalid_field(f->tc, 1, 2);
}

static void test_orwrite_ors_data_into_medium(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];
	uint8_t want[2 * T_BS];

	memset(blk(f->r, 300), 0x0f, 2 * T_BS);
	memset(f->tc->buf, 0x30, 2 * T_BS);
	f->tc->buf[3] = 0xf0;
	memset(want, 0x3f, sizeof(want));
	want[3] = 0xff;
	cdb16(c, 0x8b, 0, 300, 2);
	run(f->r, f->tc, c, 16, SPT_DIR_OUT, 2 * T_BS);
	assert_good(f->tc);
	assert_memory_equal(blk(f->r, 300), want, sizeof(want));
	assert_int_equal(f->r->ios[0].op, SPT_BDEV_READ);
	assert_int_equal(f->r->ios[1].op, SPT_BDEV_WRITE);

	cdb16(c, 0x8b, 0, T_BLOCKS, 1);
	run(f->r, f->tc, c, 16, SPT_DIR_OUT, T_BS);
	assert_lba_oob(f->tc);
}

/* ------------------------------------------------------------------ */
/* PRE-FETCH, SYNCHRONIZE CACHE                                         */
/* ------------------------------------------------------------------ */

static void test_prefetch_is_good_and_range_checked(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	cdb10(c, 0x34, 0x02, T_BLOCKS - 256, 256);	/* IMMED */
	c[6] = 3;					/* group number */
	run(f->r, f->tc, c, 10, SPT_DIR_NONE, 0);
	assert_good(f->tc);
	cdb16(c, 0x90, 0, T_BLOCKS, 1);
	run(f->r, f->tc, c, 16, SPT_DIR_NONE, 0);
	assert_lba_oob(f->tc);
	cdb16(c, 0x90, 0, T_BLOCKS + 1, 0);
	run(f->r, f->tc, c, 16, SPT_DIR_NONE, 0);
	assert_lba_oob(f->tc);
	assert_int_equal(f->r->nios, 0);
}

static void test_synchronize_cache_flushes(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	cdb10(c, 0x35, 0, 0, 0);
	run(f->r, f->tc, c, 10, SPT_DIR_NONE, 0);
	assert_good(f->tc);
	assert_int_equal(f->r->count[SPT_BDEV_FLUSH], 1);

	cdb16(c, 0x91, 0x02, 5, 10);	/* IMMED: still waits for the flush */
	f->r->deferred = true;
	run(f->r, f->tc, c, 16, SPT_DIR_NONE, 0);
	assert_int_equal(f->tc->completions, 0);
	ram_complete_one(f->r);
	assert_good(f->tc);

	f->r->deferred = false;
	f->r->fail_op = SPT_BDEV_FLUSH;
	f->r->fail_err = -EIO;
	run(f->r, f->tc, c, 16, SPT_DIR_NONE, 0);
	assert_sense(f->tc, SPT_KEY_MEDIUM_ERROR, 0x0c, 0x00);

	cdb10(c, 0x35, 0, T_BLOCKS - 1, 2);
	run(f->r, f->tc, c, 10, SPT_DIR_NONE, 0);
	assert_lba_oob(f->tc);
}

/* ------------------------------------------------------------------ */
/* WRITE SAME                                                           */
/* ------------------------------------------------------------------ */

static void test_write_same_replicates_the_block(void **state)
{
	struct fx *f = *state;
	uint8_t c[10];

	memset(f->tc->buf, 0xc3, T_BS);
	f->tc->buf[0] = 1;
	cdb10(c, 0x41, 0, 500, 5);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, T_BS);
	for (unsigned b = 500; b < 505; b++)
		assert_memory_equal(blk(f->r, b), f->tc->buf, T_BS);
	assert_int_equal(f->r->count[SPT_BDEV_WRITE], 1);
}

static void test_write_same_large_pattern_is_chunked(void **state)
{
	struct ram *r = ram_new((struct ram_opts){ .wce = true, .blocks = 8192 });
	struct tcmd *tc = tcmd_new();
	uint8_t c[16];

	/* 8192 blocks = 4 MiB: several chunks, each completing inside submit() */
	memset(tc->buf, 0x11, T_BS);
	cdb16(c, 0x93, 0, 0, 8192);
	run(r, tc, c, 16, SPT_DIR_OUT, T_BS);
	assert_good(tc);
	assert_true(r->count[SPT_BDEV_WRITE] > 1);
	for (unsigned b = 0; b < 8192; b++)
		assert_int_equal(blk(r, b)[T_BS - 1], 0x11);
	tcmd_free(tc);
	ram_free(r);
	(void)state;
}

static void test_write_same_zero_block_unmaps_on_thin_lu(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	memset(f->tc->buf, 0, T_BS);
	cdb16(c, 0x93, 0x08, 64, 16);	/* UNMAP=1 */
	run(f->r, f->tc, c, 16, SPT_DIR_OUT, T_BS);
	assert_good(f->tc);
	assert_int_equal(f->r->count[SPT_BDEV_UNMAP], 1);
	assert_int_equal(f->r->ios[0].offset, 64 * T_BS);
	assert_int_equal(f->r->ios[0].length, 16 * T_BS);
	assert_false(f->r->mapped[64]);
	assert_false(f->r->mapped[79]);
	assert_true(f->r->mapped[80]);

	/* UNMAP=0 with zeros: zeroed, not deallocated */
	ram_reset_log(f->r);
	cdb10(c, 0x41, 0, 100, 4);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS);
	assert_good(f->tc);
	assert_int_equal(f->r->count[SPT_BDEV_WRITE_ZEROES], 1);
	assert_true(f->r->mapped[100]);

	/* UNMAP=1 with a non-zero block: the block is written, reads return it */
	ram_reset_log(f->r);
	memset(f->tc->buf, 0xff, T_BS);
	cdb10(c, 0x41, 0x08, 120, 2);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS);
	assert_good(f->tc);
	assert_int_equal(f->r->count[SPT_BDEV_UNMAP], 0);
	assert_memory_equal(blk(f->r, 121), f->tc->buf, T_BS);

	/* NDOB: zeros without data-out */
	ram_reset_log(f->r);
	cdb16(c, 0x93, 0x09, 140, 3);
	run(f->r, f->tc, c, 16, SPT_DIR_NONE, 0);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, 0);
	assert_int_equal(f->r->count[SPT_BDEV_UNMAP], 1);
	assert_false(f->r->mapped[142]);
}

static void test_write_same_field_checks(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	memset(f->tc->buf, 0, T_BS);
	cdb10(c, 0x41, 0x10, 0, 1);	/* ANCHOR=1, UNMAP=0 */
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS);
	assert_invalid_field(f->tc, 1, 4);
	cdb16(c, 0x93, 0x18, 0, 1);	/* ANCHOR=1, UNMAP=1, ANC_SUP=0 */
	run(f->r, f->tc, c, 16, SPT_DIR_OUT, T_BS);
	assert_invalid_field(f->tc, 1, 4);
	cdb10(c, 0x41, 0x04, 0, 1);	/* PBDATA not supported */
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS);
	assert_invalid_field(f->tc, 1, 2);
	if (SPC_WRITE_SAME_NO_ZERO) {	/* WSNZ */
		cdb10(c, 0x41, 0, 0, 0);
		run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS);
		assert_invalid_field(f->tc, 7, -1);
	}
	cdb16(c, 0x93, 0, 0, SPC_MAX_WRITE_SAME_BLOCKS + 1);
	run(f->r, f->tc, c, 16, SPT_DIR_OUT, T_BS);
	assert_invalid_field(f->tc, 10, -1);
	cdb16(c, 0x93, 0, T_BLOCKS - 1, 2);
	run(f->r, f->tc, c, 16, SPT_DIR_OUT, T_BS);
	assert_lba_oob(f->tc);
	cdb16(c, 0x93, 0, UINT64_MAX, 1);
	run(f->r, f->tc, c, 16, SPT_DIR_OUT, T_BS);
	assert_lba_oob(f->tc);
	/* libiscsi WriteSame*.InvalidDataOutSize: half a block, two blocks */
	cdb10(c, 0x41, 0x08, 0, 1);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS / 2);
	assert_int_equal(sense_of(&f->tc->last).key, SPT_KEY_ILLEGAL_REQUEST);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, 2 * T_BS);
	assert_int_equal(sense_of(&f->tc->last).key, SPT_KEY_ILLEGAL_REQUEST);
	assert_int_equal(f->r->nios, 0);
}

static void test_write_same_unmap_on_full_lu_is_invalid_field(void **state)
{
	struct fx *f = *state;
	uint8_t c[10];

	memset(f->tc->buf, 0, T_BS);
	cdb10(c, 0x41, 0x08, 0, 1);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS);
	assert_invalid_field(f->tc, 1, 3);
}

/* ------------------------------------------------------------------ */
/* UNMAP                                                                */
/* ------------------------------------------------------------------ */

/* Builds an UNMAP parameter list in buf; returns its length. */
static uint32_t unmap_list(uint8_t *buf, const uint64_t (*d)[2], unsigned n)
{
	uint32_t len = 8 + 16 * n;

	memset(buf, 0, len);
	spt_put_be16(buf, (uint16_t)(len - 2));
	spt_put_be16(buf + 2, (uint16_t)(16 * n));
	for (unsigned i = 0; i < n; i++) {
		spt_put_be64(buf + 8 + 16 * i, d[i][0]);
		spt_put_be32(buf + 8 + 16 * i + 8, (uint32_t)d[i][1]);
	}
	return len;
}

static void test_unmap_deallocates_each_descriptor(void **state)
{
	struct fx *f = *state;
	const uint64_t d[3][2] = { { 10, 2 }, { 50, 0 }, { T_BLOCKS - 1, 1 } };
	uint8_t c[10];
	uint32_t len = unmap_list(f->tc->buf, d, 3);

	cdb10(c, 0x42, 0, 0, (uint16_t)len);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, len);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, len);
	assert_int_equal(f->r->count[SPT_BDEV_UNMAP], 2);
	assert_false(f->r->mapped[10]);
	assert_false(f->r->mapped[11]);
	assert_true(f->r->mapped[12]);
	assert_false(f->r->mapped[T_BLOCKS - 1]);
	assert_int_equal(blk(f->r, 11)[7], 0);
}

static void test_unmap_list_checks(void **state)
{
	struct fx *f = *state;
	uint64_t d[SPC_MAX_UNMAP_DESCRIPTORS + 1][2];
	uint8_t c[10];
	uint32_t len;

	/* one descriptor past the end: nothing is deallocated */
	d[0][0] = 0;
	d[0][1] = 1;
	d[1][0] = T_BLOCKS;
	d[1][1] = 1;
	len = unmap_list(f->tc->buf, (const uint64_t (*)[2])d, 2);
	cdb10(c, 0x42, 0, 0, (uint16_t)len);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, len);
	assert_lba_oob(f->tc);
	assert_int_equal(f->r->nios, 0);

	/* 0 blocks at the end of the LU, and no descriptors at all, are fine */
	d[0][0] = T_BLOCKS;
	d[0][1] = 0;
	len = unmap_list(f->tc->buf, (const uint64_t (*)[2])d, 1);
	cdb10(c, 0x42, 0, 0, (uint16_t)len);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, len);
	assert_good(f->tc);
	len = unmap_list(f->tc->buf, (const uint64_t (*)[2])d, 0);
	cdb10(c, 0x42, 0, 0, (uint16_t)len);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, len);
	assert_good(f->tc);
	cdb10(c, 0x42, 0, 0, 0);	/* PARAMETER LIST LENGTH 0 */
	run(f->r, f->tc, c, 10, SPT_DIR_NONE, 0);
	assert_good(f->tc);

	/* shorter than the header */
	cdb10(c, 0x42, 0, 0, 4);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, 4);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);

	/* more descriptors than MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT */
	for (unsigned i = 0; i <= SPC_MAX_UNMAP_DESCRIPTORS; i++) {
		d[i][0] = i;
		d[i][1] = 1;
	}
	len = unmap_list(f->tc->buf, (const uint64_t (*)[2])d, SPC_MAX_UNMAP_DESCRIPTORS + 1);
	cdb10(c, 0x42, 0, 0, (uint16_t)len);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, len);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x00);
	assert_int_equal(sense_of(&f->tc->last).field, 2);
	assert_false(sense_of(&f->tc->last).cd);

	/* exactly the maximum works */
	len = unmap_list(f->tc->buf, (const uint64_t (*)[2])d, SPC_MAX_UNMAP_DESCRIPTORS);
	cdb10(c, 0x42, 0, 0, (uint16_t)len);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, len);
	assert_good(f->tc);
	assert_int_equal(f->r->count[SPT_BDEV_UNMAP], SPC_MAX_UNMAP_DESCRIPTORS);

	/* ANCHOR without ANC_SUP */
	cdb10(c, 0x42, 0x01, 0, (uint16_t)len);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, len);
	assert_invalid_field(f->tc, 1, 0);
}

static void test_unmap_list_over_two_sequences(void **state)
{
	struct fx *f = *state;
	const uint64_t d[2][2] = { { 1, 1 }, { 3, 1 } };
	uint8_t c[10];
	uint32_t len = unmap_list(f->tc->buf, d, 2);

	cdb10(c, 0x42, 0, 0, (uint16_t)len);
	tcmd_start(f->tc, c, 10, SPT_DIR_OUT, len);
	tcmd_request(f->r, f->tc, 0, 20, false);
	assert_good(f->tc);
	assert_int_equal(f->r->nios, 0);
	f->tc->completions = 0;
	tcmd_request(f->r, f->tc, 20, len - 20, true);
	assert_good(f->tc);
	assert_int_equal(f->r->count[SPT_BDEV_UNMAP], 2);
}

static void test_inline_completions_do_not_recurse(void **state)
{
	struct fx *f = *state;
	uint64_t d[SPC_MAX_UNMAP_DESCRIPTORS][2];
	uint8_t c[10];
	uint32_t len;

	for (unsigned i = 0; i < SPC_MAX_UNMAP_DESCRIPTORS; i++) {
		d[i][0] = 2 * i;
		d[i][1] = 1;
	}
	len = unmap_list(f->tc->buf, (const uint64_t (*)[2])d, SPC_MAX_UNMAP_DESCRIPTORS);
	cdb10(c, 0x42, 0, 0, (uint16_t)len);
	f->r->sp_min = f->r->sp_max = 0;
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, len);
	assert_good(f->tc);
	assert_int_equal(f->r->count[SPT_BDEV_UNMAP], SPC_MAX_UNMAP_DESCRIPTORS);
	/* 256 operations completing inside submit() leave the stack where it was */
	assert_true(f->r->sp_max - f->r->sp_min < 1024);
}

static void test_unmap_on_full_lu_is_invalid_opcode(void **state)
{
	struct fx *f = *state;
	const uint64_t d[1][2] = { { 0, 1 } };
	uint8_t c[10];
	uint32_t len = unmap_list(f->tc->buf, d, 1);

	cdb10(c, 0x42, 0, 0, (uint16_t)len);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, len);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x20, 0x00);
}

static void test_unmap_without_write_cache_flushes(void **state)
{
	struct ram *r = ram_new((struct ram_opts){ .thin = true });
	struct tcmd *tc = tcmd_new();
	const uint64_t d[1][2] = { { 0, 4 } };
	uint8_t c[10];
	uint32_t len = unmap_list(tc->buf, d, 1);

	cdb10(c, 0x42, 0, 0, (uint16_t)len);
	run(r, tc, c, 10, SPT_DIR_OUT, len);
	assert_good(tc);
	assert_int_equal(r->ios[0].op, SPT_BDEV_UNMAP);
	assert_int_equal(r->ios[1].op, SPT_BDEV_FLUSH);
	tcmd_free(tc);
	ram_free(r);
	(void)state;
}

static void test_unmap_chain_stops_when_aborted(void **state)
{
	struct fx *f = *state;
	const uint64_t d[3][2] = { { 0, 1 }, { 2, 1 }, { 4, 1 } };
	uint8_t c[10];
	uint32_t len = unmap_list(f->tc->buf, d, 3);

	f->r->deferred = true;
	cdb10(c, 0x42, 0, 0, (uint16_t)len);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, len);
	assert_int_equal(f->r->npending, 1);
	f->tc->cmd.aborted = true;
	ram_complete_one(f->r);
	assert_int_equal(f->tc->completions, 1);
	assert_int_equal(f->r->npending, 0);
	assert_int_equal(f->r->count[SPT_BDEV_UNMAP], 1);
}

/* ------------------------------------------------------------------ */
/* GET LBA STATUS, READ CAPACITY                                        */
/* ------------------------------------------------------------------ */

static void get_lba_status(struct fx *f, uint64_t lba, uint32_t alloc)
{
	uint8_t c[16];

	cdb16(c, 0x9e, 0x12, lba, alloc);
	run(f->r, f->tc, c, 16, SPT_DIR_IN, alloc);
}

static void test_get_lba_status_reports_extents(void **state)
{
	struct fx *f = *state;
	const uint8_t *p = f->tc->buf;

	for (unsigned b = 10; b < 20; b++)
		f->r->mapped[b] = false;
	get_lba_status(f, 5, 1024);
	assert_good(f->tc);
	assert_int_equal(spt_get_be32(p), 4 + 3 * 16);
	assert_int_equal(f->tc->last.transfer_length, 8 + 3 * 16);
	assert_int_equal(f->tc->last.data_in_length, 8 + 3 * 16);
	assert_int_equal(spt_get_be64(p + 8), 5);
	assert_int_equal(spt_get_be32(p + 16), 5);
	assert_int_equal(p[20] & 0x0f, 0);
	assert_int_equal(spt_get_be64(p + 24), 10);
	assert_int_equal(spt_get_be32(p + 32), 10);
	assert_int_equal(p[36] & 0x0f, 1);
	assert_int_equal(spt_get_be64(p + 40), 20);
	assert_int_equal(spt_get_be32(p + 48), T_BLOCKS - 20);
	assert_int_equal(p[52] & 0x0f, 0);

	/* allocation length 24: the first descriptor only */
	get_lba_status(f, 12, 24);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.data_in_length, 24);
	assert_int_equal(spt_get_be64(p + 8), 12);
	assert_int_equal(spt_get_be32(p + 16), 8);
	assert_int_equal(p[20] & 0x0f, 1);

	/* the last block, then past it */
	get_lba_status(f, T_BLOCKS - 1, 24);
	assert_good(f->tc);
	assert_int_equal(spt_get_be32(p + 16), 1);
	get_lba_status(f, T_BLOCKS, 24);
	assert_lba_oob(f->tc);
	get_lba_status(f, UINT64_MAX, 24);
	assert_lba_oob(f->tc);
}

static void test_get_lba_status_without_map_status_is_all_mapped(void **state)
{
	struct fx *f = *state;
	const uint8_t *p = f->tc->buf;

	f->r->bdev.ops = &ram_ops_no_map;
	get_lba_status(f, 100, 4096);
	assert_good(f->tc);
	assert_int_equal(spt_get_be32(p), 4 + 16);
	assert_int_equal(spt_get_be64(p + 8), 100);
	assert_int_equal(spt_get_be32(p + 16), T_BLOCKS - 100);
	assert_int_equal(p[20], 0);
}

static void test_read_capacity(void **state)
{
	struct fx *f = *state;
	const uint8_t *p = f->tc->buf;
	uint8_t c[16];

	cdb10(c, 0x25, 0, 0, 0);
	run(f->r, f->tc, c, 10, SPT_DIR_IN, 8);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.data_in_length, 8);
	assert_int_equal(spt_get_be32(p), T_BLOCKS - 1);
	assert_int_equal(spt_get_be32(p + 4), T_BS);

	cdb10(c, 0x25, 0, 10, 0);	/* PMI=0 with an LBA */
	run(f->r, f->tc, c, 10, SPT_DIR_IN, 8);
	assert_invalid_field(f->tc, 2, -1);
	cdb10(c, 0x25, 0, 10, 0);
	c[8] = 0x01;			/* PMI=1 */
	run(f->r, f->tc, c, 10, SPT_DIR_IN, 8);
	assert_good(f->tc);

	memset(c, 0, 16);
	c[0] = 0x9e;
	c[1] = 0x10;
	spt_put_be32(c + 10, 32);
	run(f->r, f->tc, c, 16, SPT_DIR_IN, 32);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, 32);
	assert_int_equal(spt_get_be64(p), T_BLOCKS - 1);
	assert_int_equal(spt_get_be32(p + 8), T_BS);
	assert_int_equal(p[12], 0);	/* no protection */
	assert_int_equal(p[13], 0);	/* one logical block per physical block */
	assert_int_equal(p[14], f->r->bdev.thin ? 0xc0 : 0x00);

	/* libiscsi ReadCapacity16.Alloclen: 0-15 is not an error */
	for (uint32_t a = 0; a < 16; a++) {
		spt_put_be32(c + 10, a);
		run(f->r, f->tc, c, 16, SPT_DIR_IN, a);
		assert_good(f->tc);
		assert_int_equal(f->tc->last.data_in_length, a);
	}

	/* beyond 2^32 blocks READ CAPACITY(10) says FFFFFFFFh */
	f->r->bdev.num_blocks = 0x200000000ull;
	cdb10(c, 0x25, 0, 0, 0);
	run(f->r, f->tc, c, 10, SPT_DIR_IN, 8);
	assert_good(f->tc);
	assert_int_equal(spt_get_be32(p), 0xffffffffu);
	f->r->bdev.num_blocks = T_BLOCKS;
}

static void test_read_capacity16_thin_bits(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	memset(c, 0, 16);
	c[0] = 0x9e;
	c[1] = 0x10;
	spt_put_be32(c + 10, 32);
	run(f->r, f->tc, c, 16, SPT_DIR_IN, 32);
	assert_good(f->tc);
	assert_int_equal(f->tc->buf[14], 0xc0);	/* LBPME, LBPRZ */
}

/* ------------------------------------------------------------------ */
/* Dispatch: unknown commands, SPC commands, unit attentions            */
/* ------------------------------------------------------------------ */

static void test_unsupported_commands(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	memset(c, 0, 16);
	c[0] = 0xc0;			/* vendor specific */
	run(f->r, f->tc, c, 16, SPT_DIR_NONE, 0);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x20, 0x00);

	memset(c, 0, 16);
	c[0] = 0x9e;			/* SERVICE ACTION IN(16) with an unknown action */
	c[1] = 0x11;
	run(f->r, f->tc, c, 16, SPT_DIR_IN, 32);
	assert_invalid_field(f->tc, 1, 4);
	assert_int_equal(f->r->nios, 0);
}

static void test_spc_commands_go_to_spc(void **state)
{
	struct fx *f = *state;
	uint8_t c[6] = { 0x00, 0, 0, 0, 0, 0 };	/* TEST UNIT READY */

	run(f->r, f->tc, c, 6, SPT_DIR_NONE, 0);
	assert_good(f->tc);
	c[0] = 0x12;			/* INQUIRY */
	c[4] = 36;
	run(f->r, f->tc, c, 6, SPT_DIR_IN, 36);
	assert_good(f->tc);
	assert_int_equal(f->tc->buf[0] & 0x1f, 0x00);	/* direct access block device */
}

/*
 * Reads mode page `page` with MODE SENSE(6) and prepares a MODE SELECT(6)
 * parameter list in tc->buf with byte `byte` of the page changed by
 * (old & ~mask) | set. Returns the list length.
 */
static uint32_t mode_select_list(struct fx *f, uint8_t page, unsigned byte, uint8_t mask,
				 uint8_t set)
{
	uint8_t sense[6] = { 0x1a, 0x08, page, 0, 255, 0 };	/* DBD=1 */
	uint32_t len;

	run(f->r, f->tc, sense, 6, SPT_DIR_IN, 255);
	assert_good(f->tc);
	len = f->tc->buf[0] + 1u;
	assert_true(len > 4 + byte);
	f->tc->buf[0] = 0;	/* MODE DATA LENGTH is reserved in MODE SELECT */
	f->tc->buf[2] = 0;
	f->tc->buf[4] &= 0x7f;	/* PS is reserved too */
	f->tc->buf[4 + byte] = (uint8_t)((f->tc->buf[4 + byte] & ~mask) | set);
	return len;
}

static void test_spc_data_out_command_acts_on_final_request(void **state)
{
	struct fx *f = *state;
	uint8_t c[6] = { 0x15, 0x10, 0, 0, 0, 0 };	/* MODE SELECT(6), PF=1 */
	uint8_t w[10];
	uint32_t len = mode_select_list(f, 0x08, 2, 0x04, 0x00);	/* Caching: WCE=0 */

	c[4] = (uint8_t)len;
	tcmd_start(f->tc, c, 6, SPT_DIR_OUT, len);
	tcmd_request(f->r, f->tc, 0, 10, false);	/* part of the list: spc waits */
	assert_good(f->tc);
	assert_true(spc_write_cache_enabled(&f->r->bdev));
	f->tc->completions = 0;
	tcmd_request(f->r, f->tc, 10, len - 10, true);
	assert_good(f->tc);
	assert_false(spc_write_cache_enabled(&f->r->bdev));

	/* and WRITE now goes to the medium with FUA */
	cdb10(w, 0x2a, 0, 0, 1);
	run(f->r, f->tc, w, 10, SPT_DIR_OUT, T_BS);
	assert_good(f->tc);
	assert_int_equal(f->r->ios[0].flags, SPT_BDEV_FUA);
}

static void test_stop_unit_flushes_then_stops(void **state)
{
	struct fx *f = *state;
	uint8_t ssu[6] = { 0x1b, 0, 0, 0, 0x00, 0 };	/* START=0, NO_FLUSH=0 */
	uint8_t c[10];

	f->r->deferred = true;
	run(f->r, f->tc, ssu, 6, SPT_DIR_NONE, 0);
	assert_int_equal(f->tc->completions, 0);
	assert_int_equal(f->r->count[SPT_BDEV_FLUSH], 1);
	ram_complete_one(f->r);
	assert_good(f->tc);
	f->r->deferred = false;

	cdb10(c, 0x28, 0, 0, 1);
	run(f->r, f->tc, c, 10, SPT_DIR_IN, T_BS);
	assert_sense(f->tc, SPT_KEY_NOT_READY, 0x04, 0x02);

	ssu[4] = 0x01;					/* START=1 */
	run(f->r, f->tc, ssu, 6, SPT_DIR_NONE, 0);
	assert_good(f->tc);
	run(f->r, f->tc, c, 10, SPT_DIR_IN, T_BS);
	assert_good(f->tc);
}

static void test_unit_attention_ends_the_first_request(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	spt_bdev_set_capacity(&f->r->bdev, T_BLOCKS / 2);
	cdb10(c, 0x28, 0, 0, 1);
	run(f->r, f->tc, c, 10, SPT_DIR_IN, T_BS);
	assert_sense(f->tc, SPT_KEY_UNIT_ATTENTION, 0x2a, 0x09);
	assert_int_equal(f->r->nios, 0);

	memset(c, 0, 16);
	c[0] = 0x9e;
	c[1] = 0x10;
	spt_put_be32(c + 10, 32);
	run(f->r, f->tc, c, 16, SPT_DIR_IN, 32);
	assert_good(f->tc);
	assert_int_equal(spt_get_be64(f->tc->buf), T_BLOCKS / 2 - 1);
	cdb10(c, 0x28, 0, T_BLOCKS / 2, 1);
	run(f->r, f->tc, c, 10, SPT_DIR_IN, T_BS);
	assert_lba_oob(f->tc);
}

static void test_descriptor_sense_when_d_sense_is_set(void **state)
{
	struct fx *f = *state;
	uint8_t ms[6] = { 0x15, 0x10, 0, 0, 0, 0 };
	uint8_t c[10];
	struct tsense s;
	uint32_t len = mode_select_list(f, 0x0a, 2, 0x04, 0x04);	/* Control: D_SENSE=1 */

	ms[4] = (uint8_t)len;
	run(f->r, f->tc, ms, 6, SPT_DIR_OUT, len);
	assert_good(f->tc);
	assert_true(spc_sense_descriptor(&f->r->bdev));

	cdb10(c, 0x28, 0x20, 0, 1);
	run(f->r, f->tc, c, 10, SPT_DIR_IN, T_BS);
	assert_int_equal(f->tc->last.sense[0], 0x72);
	assert_invalid_field(f->tc, 1, 7);

	/* a 64-bit INFORMATION field fits the descriptor format */
	memcpy(f->tc->buf, blk(f->r, 0), T_BS);
	f->tc->buf[9] ^= 1;
	cdb10(c, 0x2f, 0x02, 0, 1);
	run(f->r, f->tc, c, 10, SPT_DIR_OUT, T_BS);
	s = sense_of(&f->tc->last);
	assert_int_equal(s.key, SPT_KEY_MISCOMPARE);
	assert_true(s.info_valid);
	assert_int_equal(s.info, 9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read10_returns_the_blocks, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_read_6_12_16_decode_lba_and_length, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_read_short_edtl_reads_only_edtl, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_read_beyond_end_is_lba_out_of_range, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_rdprotect_is_invalid_field, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_reserved_bits_and_control_byte, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_transfer_above_maximum_is_invalid_field, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_read_flagged_as_write_reads_on_final_request,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_read_error_is_unrecovered_read_error, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_write10_writes_and_fua_follows_cdb, fx_setup,
						fx_teardown),
		cmocka_unit_test(test_write_without_write_cache_is_always_fua),
		cmocka_unit_test_setup_teardown(
			test_write_multi_sequence_writes_whole_blocks_as_they_arrive, fx_setup,
			fx_teardown),
		cmocka_unit_test_setup_teardown(test_write_sequence_without_whole_block_asks_for_more,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_write_residuals_follow_libiscsi, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_write_ended_early_is_not_enough_data, fx_setup,
						fx_teardown),
		cmocka_unit_test(test_write_to_read_only_lu_is_write_protected),
		cmocka_unit_test_setup_teardown(test_write_completes_from_deferred_io, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_backend_errors_map_to_sense, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_aborted_command_still_completes_once, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_verify_bytchk0_checks_range_only, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_verify_bytchk1_compares_and_reports_offset,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_verify_bytchk1_waits_for_all_data, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_verify_bytchk3_compares_one_block_with_each,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_write_and_verify_writes_durably_then_compares,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_orwrite_ors_data_into_medium, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_prefetch_is_good_and_range_checked, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_synchronize_cache_flushes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_write_same_replicates_the_block, fx_setup,
						fx_teardown),
		cmocka_unit_test(test_write_same_large_pattern_is_chunked),
		cmocka_unit_test_setup_teardown(test_write_same_zero_block_unmaps_on_thin_lu,
						fx_setup_thin, fx_teardown),
		cmocka_unit_test_setup_teardown(test_write_same_field_checks, fx_setup_thin,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_write_same_unmap_on_full_lu_is_invalid_field,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_unmap_deallocates_each_descriptor, fx_setup_thin,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_unmap_list_checks, fx_setup_thin, fx_teardown),
		cmocka_unit_test_setup_teardown(test_unmap_list_over_two_sequences, fx_setup_thin,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_inline_completions_do_not_recurse, fx_setup_thin,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_unmap_on_full_lu_is_invalid_opcode, fx_setup,
						fx_teardown),
		cmocka_unit_test(test_unmap_without_write_cache_flushes),
		cmocka_unit_test_setup_teardown(test_unmap_chain_stops_when_aborted, fx_setup_thin,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_get_lba_status_reports_extents, fx_setup_thin,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_get_lba_status_without_map_status_is_all_mapped,
						fx_setup_thin, fx_teardown),
		cmocka_unit_test_setup_teardown(test_read_capacity, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_read_capacity16_thin_bits, fx_setup_thin,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_unsupported_commands, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_spc_commands_go_to_spc, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_spc_data_out_command_acts_on_final_request,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stop_unit_flushes_then_stops, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_unit_attention_ends_the_first_request, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_descriptor_sense_when_d_sense_is_set, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
