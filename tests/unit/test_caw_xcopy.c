/*
 * Unit tests for COMPARE AND WRITE with its LBA range locks (src/scsi/sbc.c)
 * and for EXTENDED COPY / RECEIVE COPY RESULTS (src/scsi/xcopy.c), through
 * spt_bdev_execute() on RAM LUs. The backend can hold its operations in a
 * queue the test drains one by one, which is how the atomicity of COMPARE
 * AND WRITE against other writers is shown: what is in flight, and what
 * waits, at each step.
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
#include "scsi/xcopy.h"

#define T_BLOCKS 8192u
#define T_SESSION 0x1234u
#define T_SESSION_B 0x5678u
#define T_PENDING 64
#define T_BUF (4u << 20)
#define T_TARGET "iqn.2026-11.org.spt:unit,t,0x0001"
#define T_NAA_A 0x6001405aaaaaaaa1ull
#define T_NAA_B 0x6001405bbbbbbbb2ull

enum { OP_CAW = 0x89, OP_WRITE16 = 0x8a, OP_READ16 = 0x88, OP_XCOPY = 0x83, OP_RCR = 0x84 };

/* ------------------------------------------------------------------ */
/* RAM LUs; operations complete at once or wait in a queue              */
/* ------------------------------------------------------------------ */

struct ram {
	struct spt_bdev bdev;
	uint8_t *mem;
	bool deferred;			/* queue operations instead of completing them */
	int fail_op;			/* -1: none; else enum spt_bdev_op to fail */
	int fail_err;
	unsigned count[5];		/* operations submitted, per enum spt_bdev_op */
	uint32_t last_flags[5];
};

/* One queue for every LU, in submission order: a copy between two LUs shows
 * its reads and writes in the order they happen. */
static struct spt_bdev_io *pending[T_PENDING];
static unsigned npending;

static uint64_t ram_size(const struct ram *r)
{
	return r->bdev.num_blocks * r->bdev.block_size;
}

static int ram_perform(struct ram *r, struct spt_bdev_io *io)
{
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
		break;
	case SPT_BDEV_UNMAP:
	case SPT_BDEV_WRITE_ZEROES:
		memset(r->mem + io->offset, 0, io->length);
		break;
	default:
		break;
	}
	return 0;
}

static void ram_submit(struct spt_bdev *bdev, struct spt_bdev_io *io)
{
	struct ram *r = bdev->ctx;

	assert_ptr_equal(io->bdev, bdev);
	assert_true(io->op <= SPT_BDEV_WRITE_ZEROES);
	r->count[io->op]++;
	r->last_flags[io->op] = io->flags;
	if (r->deferred) {
		assert_true(npending < T_PENDING);
		pending[npending++] = io;
		return;
	}
	io->done(io, ram_perform(r, io));
}

/* Completes the oldest queued operation. */
static void complete_one(void)
{
	struct spt_bdev_io *io;

	assert_true(npending > 0);
	io = pending[0];
	memmove(&pending[0], &pending[1], --npending * sizeof(pending[0]));
	io->done(io, ram_perform(io->bdev->ctx, io));
}

static void complete_all(void)
{
	while (npending > 0)
		complete_one();
}

static const struct spt_bdev_ops ram_ops = { .submit = ram_submit };

static struct ram *ram_new(uint32_t bs, uint64_t naa, const char *target)
{
	struct ram *r = calloc(1, sizeof(*r));
	struct spt_session_start ss = { .itnexus_handle = T_SESSION };

	assert_non_null(r);
	r->bdev.ops = &ram_ops;
	r->bdev.ctx = r;
	r->bdev.block_size = bs;
	r->bdev.num_blocks = T_BLOCKS * 512u / bs;
	r->bdev.thin = true;
	r->bdev.write_cache = true;
	r->bdev.max_transfer_bytes = T_BUF;
	r->bdev.naa = naa;
	strcpy(r->bdev.vendor, "SPT");
	strcpy(r->bdev.product, "unit");
	strcpy(r->bdev.serial, "caw");
	strcpy(r->bdev.target_name, target);
	r->mem = malloc(ram_size(r));
	assert_non_null(r->mem);
	for (uint64_t i = 0; i < ram_size(r); i++)
		r->mem[i] = (uint8_t)(i * 13 + i / 509 + naa);
	r->fail_op = -1;
	assert_int_equal(spt_bdev_init(&r->bdev), 0);
	spt_bdev_session_start(&r->bdev, &ss);
	ss.itnexus_handle = T_SESSION_B;
	spt_bdev_session_start(&r->bdev, &ss);
	return r;
}

static void ram_free(struct ram *r)
{
	spt_bdev_fini(&r->bdev);
	free(r->mem);
	free(r);
}

static uint8_t *blk(struct ram *r, uint64_t lba)
{
	return r->mem + lba * r->bdev.block_size;
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

static void tcmd_start(struct tcmd *tc, const uint8_t *cdb, uint8_t dir, uint32_t edtl,
		       uint64_t session)
{
	memset(&tc->cmd.req, 0, sizeof(tc->cmd.req));
	tc->cmd.req.session_cookie = session;
	tc->cmd.req.task_cookie = (uint64_t)(uintptr_t)tc;
	tc->cmd.req.direction = dir;
	tc->cmd.req.expected_length = edtl;
	tc->cmd.req.cdb_length = 16;
	memcpy(tc->cmd.req.cdb, cdb, 16);
	tc->cmd.buf_len = edtl < T_BUF ? edtl : T_BUF;
	tc->cmd.aborted = false;
	tc->completions = 0;
}

static void tcmd_request(struct ram *r, struct tcmd *tc, uint32_t offset, uint32_t len, bool final)
{
	tc->cmd.req.sequence_byte_offset = offset;
	tc->cmd.req.data_length = len;
	tc->cmd.req.is_final = final;
	memset(&tc->cmd.cpl, 0, sizeof(tc->cmd.cpl));
	spt_bdev_execute(&r->bdev, &tc->cmd);
}

/* A whole command in one request on the first session; data-out in tc->buf. */
static void run(struct ram *r, struct tcmd *tc, const uint8_t *cdb, uint8_t dir, uint32_t edtl)
{
	tcmd_start(tc, cdb, dir, edtl, T_SESSION);
	tcmd_request(r, tc, 0, dir == SPT_DIR_OUT ? edtl : 0, true);
}

struct tsense {
	uint8_t key, asc, ascq;
	bool info_valid;
	uint64_t info;
	bool sksv;
	uint8_t sks0;
	uint16_t field;
	uint32_t csi;		/* command-specific information */
};

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
		s.csi = spt_get_be32(p + 8);
		s.sksv = p[15] & 0x80;
		s.sks0 = p[15];
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
			} else if (d[0] == 0x01) {
				s.csi = (uint32_t)spt_get_be64(d + 4);
			} else if (d[0] == 0x02) {
				s.sksv = d[4] & 0x80;
				s.sks0 = d[4];
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

static void assert_invalid_cdb(const struct tcmd *tc, uint16_t byte)
{
	assert_sense(tc, SPT_KEY_ILLEGAL_REQUEST, 0x24, 0x00);
	assert_int_equal(sense_of(&tc->last).field, byte);
}

static void cdb_caw(uint8_t *c, uint8_t b1, uint64_t lba, uint8_t n)
{
	memset(c, 0, 16);
	c[0] = OP_CAW;
	c[1] = b1;
	spt_put_be64(c + 2, lba);
	c[13] = n;
}

static void cdb_rw16(uint8_t *c, uint8_t op, uint64_t lba, uint32_t n)
{
	memset(c, 0, 16);
	c[0] = op;
	spt_put_be64(c + 2, lba);
	spt_put_be32(c + 10, n);
}

/* Prepares a COMPARE AND WRITE of n blocks at lba: verify data = what the
 * medium holds now (or `old`), write data filled with `fill`. */
static void caw_data(struct ram *r, struct tcmd *tc, uint64_t lba, uint8_t n, const uint8_t *old,
		     uint8_t fill)
{
	uint32_t len = n * r->bdev.block_size;

	memcpy(tc->buf, old ? old : blk(r, lba), len);
	memset(tc->buf + len, fill, len);
}

/* ------------------------------------------------------------------ */
/* Fixture                                                              */
/* ------------------------------------------------------------------ */

struct fx {
	struct ram *a, *b;
	struct tcmd *tc, *tc2, *tc3;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	npending = 0;
	f->a = ram_new(512, T_NAA_A, T_TARGET);
	f->b = ram_new(4096, T_NAA_B, T_TARGET);
	f->tc = tcmd_new();
	f->tc2 = tcmd_new();
	f->tc3 = tcmd_new();
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	assert_int_equal(npending, 0);
	tcmd_free(f->tc);
	tcmd_free(f->tc2);
	tcmd_free(f->tc3);
	ram_free(f->a);
	ram_free(f->b);
	free(f);
	return 0;
}

/* ------------------------------------------------------------------ */
/* COMPARE AND WRITE                                                    */
/* ------------------------------------------------------------------ */

static void test_caw_equal_writes_second_half(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];
	uint8_t want[3 * 512];

	caw_data(f->a, f->tc, 10, 3, NULL, 0x5a);
	memset(want, 0x5a, sizeof(want));
	cdb_caw(c, 0, 10, 3);
	run(f->a, f->tc, c, SPT_DIR_OUT, 6 * 512);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, 6 * 512);
	assert_memory_equal(blk(f->a, 10), want, sizeof(want));
	assert_int_equal(f->a->count[SPT_BDEV_READ], 1);
	assert_int_equal(f->a->count[SPT_BDEV_WRITE], 1);
	assert_int_equal(f->a->last_flags[SPT_BDEV_WRITE], 0);

	/* FUA (and DPO) accepted; FUA makes the write durable */
	caw_data(f->a, f->tc, 10, 3, NULL, 0x6b);
	cdb_caw(c, 0x18, 10, 3);
	run(f->a, f->tc, c, SPT_DIR_OUT, 6 * 512);
	assert_good(f->tc);
	assert_int_equal(f->a->last_flags[SPT_BDEV_WRITE], SPT_BDEV_FUA);
	assert_int_equal(blk(f->a, 12)[511], 0x6b);
}

static void test_caw_miscompare_reports_first_differing_byte(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], before[4 * 512];
	struct tsense s;

	memcpy(before, blk(f->a, 100), sizeof(before));
	caw_data(f->a, f->tc, 100, 4, NULL, 0x11);
	f->tc->buf[3 * 512 + 485] ^= 0xa5;	/* 27 bytes before the end of block 4 */
	f->tc->buf[3 * 512 + 500] ^= 0x01;
	cdb_caw(c, 0, 100, 4);
	run(f->a, f->tc, c, SPT_DIR_OUT, 8 * 512);
	assert_sense(f->tc, SPT_KEY_MISCOMPARE, 0x1d, 0x00);
	s = sense_of(&f->tc->last);
	assert_true(s.info_valid);
	assert_int_equal(s.info, 3 * 512 + 485);
	assert_memory_equal(blk(f->a, 100), before, sizeof(before));
	assert_int_equal(f->a->count[SPT_BDEV_WRITE], 0);

	/* 4096-byte blocks: the offset counts bytes of the data-out too */
	caw_data(f->b, f->tc, 7, 2, NULL, 0x22);
	f->tc->buf[4096 + 9] ^= 0xff;
	cdb_caw(c, 0, 7, 2);
	run(f->b, f->tc, c, SPT_DIR_OUT, 4 * 4096);
	assert_sense(f->tc, SPT_KEY_MISCOMPARE, 0x1d, 0x00);
	assert_int_equal(sense_of(&f->tc->last).info, 4096 + 9);
}

static void test_caw_zero_blocks_does_nothing(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	cdb_caw(c, 0, 5, 0);
	run(f->a, f->tc, c, SPT_DIR_NONE, 0);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, 0);
	/* with some data-out: still GOOD, the engine reports the residual
	 * (libiscsi CompareAndWrite.DpoFua sends one block with the count 0) */
	run(f->a, f->tc, c, SPT_DIR_OUT, 512);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, 0);
	assert_int_equal(f->a->count[SPT_BDEV_READ] + f->a->count[SPT_BDEV_WRITE], 0);
	/* data-out of 256 blocks (a count the one-byte field wrapped to 0):
	 * above MAXIMUM COMPARE AND WRITE LENGTH (CompareAndWrite.Simple) */
	run(f->a, f->tc, c, SPT_DIR_OUT, 2 * 256 * 512);
	assert_invalid_cdb(f->tc, 13);
	/* LBA beyond the end even with 0 blocks */
	cdb_caw(c, 0, T_BLOCKS + 1, 0);
	run(f->a, f->tc, c, SPT_DIR_NONE, 0);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x21, 0x00);
}

static void test_caw_checks(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	/* LBA range */
	cdb_caw(c, 0, T_BLOCKS - 1, 2);
	run(f->a, f->tc, c, SPT_DIR_OUT, 4 * 512);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x21, 0x00);
	cdb_caw(c, 0, T_BLOCKS - 2, 2);
	caw_data(f->a, f->tc, T_BLOCKS - 2, 2, NULL, 1);
	run(f->a, f->tc, c, SPT_DIR_OUT, 4 * 512);
	assert_good(f->tc);
	/* WRPROTECT: no protection information here */
	cdb_caw(c, 0x20, 0, 1);
	run(f->a, f->tc, c, SPT_DIR_OUT, 2 * 512);
	assert_invalid_cdb(f->tc, 1);
	/* reserved bytes 10-12 */
	cdb_caw(c, 0, 0, 1);
	c[11] = 1;
	run(f->a, f->tc, c, SPT_DIR_OUT, 2 * 512);
	assert_invalid_cdb(f->tc, 11);
	/* data-out that is not 2 x n blocks (CompareAndWrite.InvalidDataOutSize) */
	cdb_caw(c, 0, 0, 1);
	run(f->a, f->tc, c, SPT_DIR_OUT, 4 * 512);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x0e, 0x03);
	cdb_caw(c, 0, 0, 3);
	run(f->a, f->tc, c, SPT_DIR_OUT, 4 * 512);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x0e, 0x03);
	assert_int_equal(f->a->count[SPT_BDEV_WRITE], 1);
	/* the limit follows the engine buffer: 2 x n blocks must fit */
	f->a->bdev.max_transfer_bytes = 8 * 512;
	assert_int_equal(sbc_caw_max_blocks(&f->a->bdev), 4);
	cdb_caw(c, 0, 0, 5);
	run(f->a, f->tc, c, SPT_DIR_OUT, 10 * 512);
	assert_invalid_cdb(f->tc, 13);
	f->a->bdev.max_transfer_bytes = T_BUF;
	assert_int_equal(sbc_caw_max_blocks(&f->a->bdev), 255);
	/* write protected LU */
	f->a->bdev.read_only = true;
	cdb_caw(c, 0, 0, 1);
	run(f->a, f->tc, c, SPT_DIR_OUT, 2 * 512);
	assert_sense(f->tc, SPT_KEY_DATA_PROTECT, 0x27, 0x00);
	f->a->bdev.read_only = false;
	/* a read error: nothing written */
	f->a->fail_op = SPT_BDEV_READ;
	f->a->fail_err = -EIO;
	caw_data(f->a, f->tc, 0, 1, NULL, 9);
	run(f->a, f->tc, c, SPT_DIR_OUT, 2 * 512);
	assert_sense(f->tc, SPT_KEY_MEDIUM_ERROR, 0x11, 0x00);
	assert_int_equal(f->a->count[SPT_BDEV_WRITE], 1);
}

static void test_caw_acts_on_the_final_sequence(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	caw_data(f->a, f->tc, 40, 2, NULL, 0x77);
	cdb_caw(c, 0, 40, 2);
	tcmd_start(f->tc, c, SPT_DIR_OUT, 4 * 512, T_SESSION);
	tcmd_request(f->a, f->tc, 0, 512, false);
	assert_good(f->tc);		/* GOOD: send the rest */
	assert_int_equal(f->a->count[SPT_BDEV_READ], 0);
	tcmd_request(f->a, f->tc, 512, 3 * 512, true);
	assert_int_equal(f->tc->completions, 2);
	assert_int_equal(f->tc->last.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(blk(f->a, 41)[0], 0x77);
}

/* A WRITE to the blocks of a COMPARE AND WRITE between its read and its
 * write waits until the COMPARE AND WRITE is done; one elsewhere does not. */
static void test_write_waits_for_caw_in_progress(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	f->a->deferred = true;
	caw_data(f->a, f->tc, 50, 2, NULL, 0xcc);
	cdb_caw(c, 0, 50, 2);
	run(f->a, f->tc, c, SPT_DIR_OUT, 4 * 512);
	assert_int_equal(npending, 1);		/* the CAW's read */
	assert_int_equal(f->a->count[SPT_BDEV_READ], 1);

	memset(f->tc2->buf, 0xdd, 512);
	cdb_rw16(c, OP_WRITE16, 51, 1);
	run(f->a, f->tc2, c, SPT_DIR_OUT, 512);
	assert_int_equal(npending, 1);		/* the WRITE waits: nothing submitted */
	assert_int_equal(f->a->count[SPT_BDEV_WRITE], 0);

	memset(f->tc3->buf, 0xee, 512);
	cdb_rw16(c, OP_WRITE16, 52, 1);		/* not overlapping: goes ahead */
	run(f->a, f->tc3, c, SPT_DIR_OUT, 512);
	assert_int_equal(npending, 2);
	assert_int_equal(f->a->count[SPT_BDEV_WRITE], 1);

	complete_one();				/* CAW read: equal, CAW write goes */
	assert_int_equal(f->tc->completions, 0);
	assert_int_equal(f->a->count[SPT_BDEV_WRITE], 2);
	assert_int_equal(f->tc2->completions, 0);
	complete_one();				/* the other WRITE */
	assert_good(f->tc3);
	assert_int_equal(f->tc2->completions, 0);
	assert_int_equal(npending, 1);
	complete_one();				/* CAW write: done, WRITE released */
	assert_good(f->tc);
	assert_int_equal(npending, 1);
	assert_int_equal(f->a->count[SPT_BDEV_WRITE], 3);
	complete_one();
	assert_good(f->tc2);
	/* the last writer's data is what the medium holds */
	assert_int_equal(blk(f->a, 50)[0], 0xcc);
	assert_int_equal(blk(f->a, 51)[0], 0xdd);
	assert_int_equal(blk(f->a, 52)[0], 0xee);
}

/* A COMPARE AND WRITE waits for a write in flight on its blocks before
 * reading them. */
static void test_caw_waits_for_write_in_flight(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], old[512];

	f->a->deferred = true;
	memset(f->tc2->buf, 0x31, 512);
	cdb_rw16(c, OP_WRITE16, 60, 1);
	run(f->a, f->tc2, c, SPT_DIR_OUT, 512);
	assert_int_equal(npending, 1);

	memset(old, 0x31, sizeof(old));		/* what the WRITE will have left */
	caw_data(f->a, f->tc, 60, 1, old, 0x42);
	cdb_caw(c, 0, 60, 1);
	run(f->a, f->tc, c, SPT_DIR_OUT, 2 * 512);
	assert_int_equal(f->a->count[SPT_BDEV_READ], 0);	/* not read yet */
	complete_one();
	assert_good(f->tc2);
	assert_int_equal(f->a->count[SPT_BDEV_READ], 1);	/* now it is */
	complete_all();
	assert_good(f->tc);
	assert_int_equal(blk(f->a, 60)[0], 0x42);
}

/* Two COMPARE AND WRITEs of the same block against the same old data: the
 * second reads after the first wrote, so exactly one succeeds. */
static void test_racing_caws_one_wins(void **state)
{
	struct fx *f = *state;
	uint8_t c[16], old[512];
	unsigned first = 0;

	memcpy(old, blk(f->a, 70), sizeof(old));
	while (old[first] == 0xa1)
		first++;
	f->a->deferred = true;
	caw_data(f->a, f->tc, 70, 1, old, 0xa1);
	caw_data(f->a, f->tc2, 70, 1, old, 0xb2);
	cdb_caw(c, 0, 70, 1);
	tcmd_start(f->tc, c, SPT_DIR_OUT, 1024, T_SESSION);
	tcmd_start(f->tc2, c, SPT_DIR_OUT, 1024, T_SESSION_B);
	tcmd_request(f->a, f->tc, 0, 1024, true);
	tcmd_request(f->a, f->tc2, 0, 1024, true);
	assert_int_equal(npending, 1);		/* only the first one's read */
	complete_all();
	assert_good(f->tc);
	assert_sense(f->tc2, SPT_KEY_MISCOMPARE, 0x1d, 0x00);
	assert_int_equal(sense_of(&f->tc2->last).info, first);
	assert_int_equal(blk(f->a, 70)[0], 0xa1);
	assert_int_equal(f->a->count[SPT_BDEV_WRITE], 1);
}

/* An aborted COMPARE AND WRITE that waits still completes once and frees
 * its range for the next. */
static void test_aborted_waiter_completes_and_releases(void **state)
{
	struct fx *f = *state;
	uint8_t c[16];

	f->a->deferred = true;
	caw_data(f->a, f->tc, 80, 1, NULL, 1);
	cdb_caw(c, 0, 80, 1);
	run(f->a, f->tc, c, SPT_DIR_OUT, 1024);
	caw_data(f->a, f->tc2, 80, 1, NULL, 2);
	run(f->a, f->tc2, c, SPT_DIR_OUT, 1024);
	f->tc2->cmd.aborted = true;
	complete_all();
	assert_good(f->tc);
	assert_int_equal(f->tc2->completions, 1);
	/* nothing left locked: a third one runs at once */
	f->a->deferred = false;
	caw_data(f->a, f->tc3, 80, 1, NULL, 3);
	run(f->a, f->tc3, c, SPT_DIR_OUT, 1024);
	assert_good(f->tc3);
	assert_int_equal(blk(f->a, 80)[0], 3);
}

/* The range lock itself: shared holders do not wait for one another, an
 * exclusive one waits for overlapping holders (lock-free ones included),
 * and waiters go in arrival order. */
static unsigned granted_calls;
static struct sbc_range *granted_last;

static void on_granted(struct sbc_range *r)
{
	granted_calls++;
	granted_last = r;
}

static void test_range_lock_rules(void **state)
{
	struct fx *f = *state;
	struct spt_bdev *b = &f->a->bdev;
	struct sbc_range s1, s2, x1, s3, x2, s4;

	granted_calls = 0;
	/* no exclusive holder: shared holders go the lock-free way */
	assert_true(sbc_range_acquire(b, &s1, 0, 10, false, on_granted));
	assert_true(sbc_range_acquire(b, &s2, 5, 10, false, on_granted));
	/* an exclusive request cannot know where those are: it waits, even
	 * for blocks nobody holds */
	assert_false(sbc_range_acquire(b, &x1, 8, 1, true, on_granted));
	/* behind the waiting exclusive one, an overlapping shared request waits */
	assert_false(sbc_range_acquire(b, &s3, 8, 4, false, on_granted));
	assert_false(sbc_range_acquire(b, &x2, 100, 1, true, on_granted));
	sbc_range_release(b, &s1);
	assert_int_equal(granted_calls, 0);
	/* the last lock-free holder leaves: both exclusive ones, in order */
	sbc_range_release(b, &s2);
	assert_int_equal(granted_calls, 2);
	assert_ptr_equal(granted_last, &x2);
	/* a shared request away from every exclusive range goes ahead */
	assert_true(sbc_range_acquire(b, &s4, 200, 1, false, on_granted));
	sbc_range_release(b, &x1);
	assert_int_equal(granted_calls, 3);
	assert_ptr_equal(granted_last, &s3);
	sbc_range_release(b, &s3);
	sbc_range_release(b, &s4);
	sbc_range_release(b, &x2);
	/* a waiter that gives up leaves the queue, and those it held up go */
	assert_true(sbc_range_acquire(b, &s1, 0, 1, false, on_granted));
	assert_false(sbc_range_acquire(b, &x1, 0, 1, true, on_granted));
	assert_false(sbc_range_acquire(b, &s3, 0, 1, false, on_granted));
	sbc_range_release(b, &x1);
	assert_int_equal(granted_calls, 4);
	assert_ptr_equal(granted_last, &s3);
	sbc_range_release(b, &s3);
	sbc_range_release(b, &s1);
	/* releasing what is not held changes nothing */
	sbc_range_release(b, &s1);
	/* all free: the lock-free path again */
	assert_true(sbc_range_acquire(b, &s1, 0, 1, false, on_granted));
	sbc_range_release(b, &s1);
}

/* ------------------------------------------------------------------ */
/* EXTENDED COPY                                                        */
/* ------------------------------------------------------------------ */

/* Builds a parameter list: header, CSCDs (naa[i], block size bs[i]), then
 * block-to-block segments. Returns its length. */
struct seg {
	uint16_t src, dst;
	uint16_t nblocks;
	uint64_t src_lba, dst_lba;
	bool dc;
};

static uint32_t xcopy_list(uint8_t *p, uint8_t list_id, uint8_t usage, const uint64_t *naa,
			   const uint32_t *bs, unsigned ncscd, const struct seg *segs, unsigned nseg)
{
	uint32_t pos = 16;

	memset(p, 0, 16 + 32 * ncscd + 28 * nseg);
	p[0] = list_id;
	p[1] = (uint8_t)(usage << 3);
	spt_put_be16(&p[2], (uint16_t)(32 * ncscd));
	spt_put_be32(&p[8], 28 * nseg);
	for (unsigned i = 0; i < ncscd; i++, pos += 32) {
		p[pos] = 0xe4;
		p[pos + 4] = 0x01;	/* binary */
		p[pos + 5] = 0x03;	/* LU, NAA */
		p[pos + 7] = 8;
		spt_put_be64(&p[pos + 8], naa[i]);
		spt_put_be24(&p[pos + 29], bs[i]);
	}
	for (unsigned i = 0; i < nseg; i++, pos += 28) {
		p[pos] = 0x02;
		p[pos + 1] = segs[i].dc ? 0x02 : 0x00;
		spt_put_be16(&p[pos + 2], 0x18);
		spt_put_be16(&p[pos + 4], segs[i].src);
		spt_put_be16(&p[pos + 6], segs[i].dst);
		spt_put_be16(&p[pos + 10], segs[i].nblocks);
		spt_put_be64(&p[pos + 12], segs[i].src_lba);
		spt_put_be64(&p[pos + 20], segs[i].dst_lba);
	}
	return pos;
}

static void cdb_xcopy(uint8_t *c, uint32_t len)
{
	memset(c, 0, 16);
	c[0] = OP_XCOPY;
	spt_put_be32(c + 10, len);
}

static void run_xcopy(struct ram *r, struct tcmd *tc, uint32_t len)
{
	uint8_t c[16];

	cdb_xcopy(c, len);
	run(r, tc, c, len ? SPT_DIR_OUT : SPT_DIR_NONE, len);
}

static void rcr(struct ram *r, struct tcmd *tc, uint8_t sa, uint8_t list_id, uint64_t session)
{
	uint8_t c[16];

	memset(c, 0, 16);
	c[0] = OP_RCR;
	c[1] = sa;
	c[2] = list_id;
	spt_put_be32(c + 10, 1024);
	tcmd_start(tc, c, SPT_DIR_IN, 1024, session);
	tcmd_request(r, tc, 0, 0, true);
}

static void test_xcopy_within_one_lu(void **state)
{
	struct fx *f = *state;
	uint64_t naa[] = { T_NAA_A };
	uint32_t bs[] = { 512 };
	struct seg s[] = { { 0, 0, 3000, 10, 5000, false }, { 0, 0, 1, 7000, 8000, false } };
	uint8_t *want = malloc(3000 * 512);
	uint32_t len = xcopy_list(f->tc->buf, 1, 2, naa, bs, 1, s, 2);

	assert_non_null(want);
	memcpy(want, blk(f->a, 10), 3000 * 512);
	run_xcopy(f->a, f->tc, len);
	assert_good(f->tc);
	assert_int_equal(f->tc->last.transfer_length, len);
	assert_memory_equal(blk(f->a, 5000), want, 3000 * 512);
	free(want);
	assert_memory_equal(blk(f->a, 8000), blk(f->a, 7000), 512);
	/* 1.5 MiB in 1 MiB chunks, plus the one-block segment */
	assert_int_equal(f->a->count[SPT_BDEV_READ], 3);
	assert_int_equal(f->a->count[SPT_BDEV_WRITE], 3);
}

static void test_xcopy_overlapping_copies_like_memmove(void **state)
{
	struct fx *f = *state;
	uint64_t naa[] = { T_NAA_A };
	uint32_t bs[] = { 512 };
	struct seg up[] = { { 0, 0, 4000, 100, 300, false } };
	struct seg down[] = { { 0, 0, 4000, 300, 100, false } };
	uint8_t *want = malloc(4000 * 512);

	assert_non_null(want);
	memcpy(want, blk(f->a, 100), 4000 * 512);
	run_xcopy(f->a, f->tc, xcopy_list(f->tc->buf, 1, 2, naa, bs, 1, up, 1));
	assert_good(f->tc);
	assert_memory_equal(blk(f->a, 300), want, 4000 * 512);
	run_xcopy(f->a, f->tc, xcopy_list(f->tc->buf, 1, 2, naa, bs, 1, down, 1));
	assert_good(f->tc);
	assert_memory_equal(blk(f->a, 100), want, 4000 * 512);
	free(want);
}

static void test_xcopy_between_two_lus(void **state)
{
	struct fx *f = *state;
	uint64_t naa[] = { T_NAA_A, T_NAA_B };
	uint32_t bs[] = { 512, 4096 };
	/* 16 blocks of 512 to 2 blocks of 4096 (DC=0: source blocks), then
	 * 3 blocks of 4096 back (DC=1: destination blocks) */
	struct seg s[] = { { 0, 1, 16, 24, 5, false }, { 1, 0, 24, 100, 800, true } };
	uint8_t want1[8192], want2[3 * 4096];
	uint32_t len;

	memcpy(want1, blk(f->a, 24), sizeof(want1));
	memcpy(want2, blk(f->b, 100), sizeof(want2));
	len = xcopy_list(f->tc->buf, 9, 0, naa, bs, 2, s, 1);
	run_xcopy(f->b, f->tc, len);		/* the command may go to either LU */
	assert_good(f->tc);
	assert_memory_equal(blk(f->b, 5), want1, sizeof(want1));

	s[0] = s[1];
	len = xcopy_list(f->tc->buf, 10, 0, naa, bs, 2, s, 1);
	run_xcopy(f->a, f->tc, len);
	assert_good(f->tc);
	assert_memory_equal(blk(f->a, 800), want2, sizeof(want2));
}

static void test_xcopy_unreachable_targets(void **state)
{
	struct fx *f = *state;
	uint64_t naa[] = { T_NAA_A, 0x6001405ccccccccc };
	uint32_t bs[] = { 512, 512 };
	struct seg s[] = { { 0, 1, 8, 0, 0, false } };
	struct ram *other = ram_new(512, 0x6001405dddddddd4ull, "iqn.2026-11.org.spt:other,t,0x0001");
	struct tsense ts;
	uint32_t len;

	/* a designator no LU of the process has */
	len = xcopy_list(f->tc->buf, 1, 0, naa, bs, 2, s, 1);
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, 0x0a, 0x08, 0x04);
	ts = sense_of(&f->tc->last);
	assert_int_equal(ts.csi, 0);		/* segment 0 */
	assert_true(ts.sksv);
	assert_int_equal(ts.sks0 & 0x20, 0x20);	/* SD: points at a segment descriptor */
	assert_int_equal(ts.field, 16 + 64);	/* where it is in the list */
	/* a LU of another target: not reachable through this one */
	naa[1] = 0x6001405dddddddd4ull;
	len = xcopy_list(f->tc->buf, 1, 0, naa, bs, 2, s, 1);
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, 0x0a, 0x08, 0x04);
	/* a CSCD index past the list */
	s[0].dst = 2;
	len = xcopy_list(f->tc->buf, 1, 0, naa, bs, 2, s, 1);
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, 0x0a, 0x08, 0x04);
	/* a LU that is gone (unregistered by spt_bdev_fini) */
	ram_free(other);
	naa[1] = 0x6001405dddddddd4ull;
	s[0].dst = 1;
	len = xcopy_list(f->tc->buf, 1, 0, naa, bs, 2, s, 1);
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, 0x0a, 0x08, 0x04);
	assert_int_equal(f->a->count[SPT_BDEV_READ] + f->a->count[SPT_BDEV_WRITE], 0);
}

static void test_xcopy_segment_errors_are_copy_aborted(void **state)
{
	struct fx *f = *state;
	uint64_t naa[] = { T_NAA_A, T_NAA_B };
	uint32_t bs[] = { 512, 4096 };
	struct seg s[] = { { 0, 0, 1, 0, 1, false }, { 0, 0, 2048, 0, T_BLOCKS - 1, false } };
	struct tsense ts;
	uint32_t len;

	/* the second segment runs past the end: the first one is done */
	len = xcopy_list(f->tc->buf, 1, 0, naa, bs, 2, s, 2);
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, 0x0a, 0x00, 0x00);
	ts = sense_of(&f->tc->last);
	assert_int_equal(ts.csi, 1);
	assert_int_equal(ts.field, 16 + 64 + 28);
	assert_int_equal(f->a->count[SPT_BDEV_WRITE], 1);
	/* DISK BLOCK LENGTH that is not the LU's */
	bs[1] = 512;
	s[0].dst = 1;
	len = xcopy_list(f->tc->buf, 1, 0, naa, bs, 2, s, 1);
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, 0x0a, 0x0d, 0x03);
	bs[1] = 4096;
	/* 3 source blocks are not whole destination blocks */
	s[0].nblocks = 3;
	len = xcopy_list(f->tc->buf, 1, 0, naa, bs, 2, s, 1);
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, 0x0a, 0x00, 0x00);
	/* a write-protected destination */
	s[0].nblocks = 8;
	f->b->bdev.read_only = true;
	len = xcopy_list(f->tc->buf, 1, 0, naa, bs, 2, s, 1);
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, 0x0a, 0x27, 0x00);
	f->b->bdev.read_only = false;
	/* backend errors */
	f->b->fail_op = SPT_BDEV_WRITE;
	f->b->fail_err = -EIO;
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, 0x0a, 0x0c, 0x00);
	f->b->fail_op = -1;
	f->a->fail_op = SPT_BDEV_READ;
	f->a->fail_err = -EIO;
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, 0x0a, 0x11, 0x00);
	f->a->fail_err = -ENOMEM;
	run_xcopy(f->a, f->tc, len);
	assert_int_equal(f->tc->last.scsi_status, SPT_STATUS_BUSY);
}

static void test_xcopy_parameter_list_checks(void **state)
{
	struct fx *f = *state;
	uint64_t naa[XCOPY_MAX_CSCD_DESCRIPTORS + 1];
	uint32_t bs[XCOPY_MAX_CSCD_DESCRIPTORS + 1];
	struct seg s[XCOPY_MAX_SEGMENT_DESCRIPTORS + 1];
	uint8_t c[16];
	uint32_t len;

	for (unsigned i = 0; i <= XCOPY_MAX_CSCD_DESCRIPTORS; i++) {
		naa[i] = T_NAA_A;
		bs[i] = 512;
	}
	for (unsigned i = 0; i <= XCOPY_MAX_SEGMENT_DESCRIPTORS; i++)
		s[i] = (struct seg){ 0, 0, 1, i, i + 1000, false };
	/* PARAMETER LIST LENGTH 0: nothing to do */
	run_xcopy(f->a, f->tc, 0);
	assert_good(f->tc);
	/* shorter than the header */
	run_xcopy(f->a, f->tc, 8);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);
	/* descriptors cut off (ExtendedCopy.ParamHdr) */
	len = xcopy_list(f->tc->buf, 1, 0, naa, bs, 1, s, 1);
	run_xcopy(f->a, f->tc, len - 1);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);
	run_xcopy(f->a, f->tc, 16 + 31);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);
	/* too many CSCDs, too many segments (ExtendedCopy.DescrLimits) */
	len = xcopy_list(f->tc->buf, 1, 0, naa, bs, XCOPY_MAX_CSCD_DESCRIPTORS + 1, s, 1);
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x06);
	len = xcopy_list(f->tc->buf, 1, 0, naa, bs, 1, s, XCOPY_MAX_SEGMENT_DESCRIPTORS + 1);
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x08);
	/* both: the lists exceed MAXIMUM DESCRIPTOR LIST LENGTH */
	len = xcopy_list(f->tc->buf, 1, 0, naa, bs, XCOPY_MAX_CSCD_DESCRIPTORS + 1, s,
			 XCOPY_MAX_SEGMENT_DESCRIPTORS + 1);
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);
	/* unsupported descriptor types (ExtendedCopy.DescrType) */
	len = xcopy_list(f->tc->buf, 1, 0, naa, bs, 1, s, 1);
	f->tc->buf[16] = 0xe0;
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x07);
	len = xcopy_list(f->tc->buf, 1, 0, naa, bs, 1, s, 1);
	f->tc->buf[16 + 32] = 0x03;		/* stream to stream, 20 bytes */
	spt_put_be16(&f->tc->buf[16 + 32 + 2], 0x10);
	spt_put_be32(&f->tc->buf[8], 20);
	run_xcopy(f->a, f->tc, len - 8);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x09);
	/* LIST ID USAGE 01b is reserved; 11b needs LIST IDENTIFIER 0 */
	len = xcopy_list(f->tc->buf, 1, 1, naa, bs, 1, s, 1);
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x00);
	len = xcopy_list(f->tc->buf, 1, 3, naa, bs, 1, s, 1);
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x00);
	len = xcopy_list(f->tc->buf, 0, 3, naa, bs, 1, s, 1);
	run_xcopy(f->a, f->tc, len);
	assert_good(f->tc);
	/* the obsolete LU ID TYPE and NUL bits are ignored (SPC-4) */
	len = xcopy_list(f->tc->buf, 0, 3, naa, bs, 1, s, 1);
	f->tc->buf[17] = 0xe0;
	run_xcopy(f->a, f->tc, len);
	assert_good(f->tc);
	/* a peripheral device type other than block */
	f->tc->buf[17] = 0x01;
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x00);
	/* CDB: LID4 service action, reserved bytes */
	cdb_xcopy(c, len);
	c[1] = 0x01;
	run(f->a, f->tc, c, SPT_DIR_OUT, len);
	assert_invalid_cdb(f->tc, 1);
	cdb_xcopy(c, len);
	c[5] = 0x01;
	run(f->a, f->tc, c, SPT_DIR_OUT, len);
	assert_invalid_cdb(f->tc, 5);
	/* a list longer than any the limits allow is refused up front */
	cdb_xcopy(c, 16 + XCOPY_MAX_DESC_LIST_LEN + 1);
	tcmd_start(f->tc, c, SPT_DIR_OUT, 16 + XCOPY_MAX_DESC_LIST_LEN + 1, T_SESSION);
	tcmd_request(f->a, f->tc, 0, 16, false);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);
}

static void test_xcopy_list_in_several_sequences(void **state)
{
	struct fx *f = *state;
	uint64_t naa[] = { T_NAA_A };
	uint32_t bs[] = { 512 };
	struct seg s[] = { { 0, 0, 4, 1, 3001, false } };
	uint32_t len = xcopy_list(f->tc->buf, 1, 2, naa, bs, 1, s, 1);
	uint8_t c[16];

	cdb_xcopy(c, len);
	tcmd_start(f->tc, c, SPT_DIR_OUT, len, T_SESSION);
	tcmd_request(f->a, f->tc, 0, 20, false);
	assert_good(f->tc);
	assert_int_equal(f->a->count[SPT_BDEV_READ], 0);
	tcmd_request(f->a, f->tc, 20, len - 20, true);
	assert_int_equal(f->tc->completions, 2);
	assert_int_equal(f->tc->last.scsi_status, SPT_STATUS_GOOD);
	assert_memory_equal(blk(f->a, 3001), blk(f->a, 1), 4 * 512);
}

/* The destination writes of a copy wait for a COMPARE AND WRITE on their
 * blocks like any other write. */
static void test_xcopy_write_waits_for_caw(void **state)
{
	struct fx *f = *state;
	uint64_t naa[] = { T_NAA_A, T_NAA_B };
	uint32_t bs[] = { 512, 4096 };
	struct seg s[] = { { 0, 1, 8, 0, 20, false } };
	uint8_t c[16];
	uint32_t len;

	f->a->deferred = true;
	f->b->deferred = true;
	caw_data(f->b, f->tc, 20, 1, NULL, 0x99);
	cdb_caw(c, 0, 20, 1);
	run(f->b, f->tc, c, SPT_DIR_OUT, 2 * 4096);
	assert_int_equal(npending, 1);			/* CAW read on b */
	len = xcopy_list(f->tc2->buf, 3, 0, naa, bs, 2, s, 1);
	run_xcopy(f->a, f->tc2, len);
	assert_int_equal(npending, 2);			/* copy read on a */
	complete_one();					/* CAW read: equal, CAW write */
	assert_int_equal(npending, 2);
	complete_one();					/* copy read: its write waits */
	assert_int_equal(npending, 1);
	assert_int_equal(f->b->count[SPT_BDEV_WRITE], 1);
	complete_one();					/* CAW write: copy write goes */
	assert_good(f->tc);
	assert_int_equal(f->b->count[SPT_BDEV_WRITE], 2);
	complete_all();
	assert_good(f->tc2);
	assert_memory_equal(blk(f->b, 20), blk(f->a, 0), 4096);
}

static void test_receive_copy_results(void **state)
{
	struct fx *f = *state;
	uint64_t naa[] = { T_NAA_A };
	uint32_t bs[] = { 512 };
	struct seg s[] = { { 0, 0, 3000, 0, 4000, false }, { 0, 0, 2, 0, 10, false } };
	uint32_t len;
	const uint8_t *d = f->tc2->buf;

	/* nothing for this LIST IDENTIFIER yet (ReceiveCopyResults.CopyStatus) */
	rcr(f->a, f->tc2, 0x00, 7, T_SESSION);
	assert_invalid_cdb(f->tc2, 2);
	/* in progress: status 00h, then a second copy with the same ID is refused */
	f->a->deferred = true;
	len = xcopy_list(f->tc->buf, 7, 0, naa, bs, 1, s, 2);
	run_xcopy(f->a, f->tc, len);
	assert_int_equal(f->tc->completions, 0);
	rcr(f->a, f->tc2, 0x00, 7, T_SESSION);
	assert_good(f->tc2);
	assert_int_equal(f->tc2->last.data_in_length, 12);
	assert_int_equal(spt_get_be32(d), 8);
	assert_int_equal(d[4], 0x00);
	memcpy(f->tc3->buf, f->tc->buf, len);
	run_xcopy(f->a, f->tc3, len);
	assert_sense(f->tc3, SPT_KEY_ILLEGAL_REQUEST, 0x00, 0x16);
	/* another I_T nexus has its own list identifiers */
	rcr(f->a, f->tc2, 0x00, 7, T_SESSION_B);
	assert_invalid_cdb(f->tc2, 2);
	complete_all();
	assert_good(f->tc);
	/* done: status 01h, both segments, the bytes moved; reported once */
	rcr(f->a, f->tc2, 0x00, 7, T_SESSION);
	assert_good(f->tc2);
	assert_int_equal(d[4], 0x01);
	assert_int_equal(spt_get_be16(&d[5]), 2);
	assert_int_equal(d[7], 0x00);
	assert_int_equal(spt_get_be32(&d[8]), 3002 * 512);
	rcr(f->a, f->tc2, 0x00, 7, T_SESSION);
	assert_invalid_cdb(f->tc2, 2);
	/* a failed copy: status 02h with the segments done before */
	f->a->deferred = false;
	s[1].dst_lba = T_BLOCKS;
	len = xcopy_list(f->tc->buf, 8, 0, naa, bs, 1, s, 2);
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, 0x0a, 0x00, 0x00);
	rcr(f->a, f->tc2, 0x00, 8, T_SESSION);
	assert_good(f->tc2);
	assert_int_equal(d[4], 0x02);
	assert_int_equal(spt_get_be16(&d[5]), 1);
	/* LIST ID USAGE 10b holds nothing */
	s[1].dst_lba = 10;
	len = xcopy_list(f->tc->buf, 9, 2, naa, bs, 1, s, 2);
	run_xcopy(f->a, f->tc, len);
	assert_good(f->tc);
	rcr(f->a, f->tc2, 0x00, 9, T_SESSION);
	assert_invalid_cdb(f->tc2, 2);
	/* held results go with the I_T nexus */
	len = xcopy_list(f->tc->buf, 11, 0, naa, bs, 1, s, 1);
	run_xcopy(f->a, f->tc, len);
	assert_good(f->tc);
	spt_bdev_session_end(&f->a->bdev, &(struct spt_session_end){ .itnexus_handle = T_SESSION });
	rcr(f->a, f->tc2, 0x00, 11, T_SESSION);
	assert_invalid_cdb(f->tc2, 2);
	/* unsupported service actions */
	rcr(f->a, f->tc2, 0x01, 0, T_SESSION);
	assert_invalid_cdb(f->tc2, 1);
	rcr(f->a, f->tc2, 0x04, 0, T_SESSION);
	assert_invalid_cdb(f->tc2, 1);
}

static void test_receive_copy_results_operating_parameters(void **state)
{
	struct fx *f = *state;
	const uint8_t *d = f->tc2->buf;

	rcr(f->b, f->tc2, 0x03, 0, T_SESSION);
	assert_good(f->tc2);
	assert_int_equal(spt_get_be32(d) + 4, f->tc2->last.data_in_length);
	assert_true(spt_get_be32(d) >= 40);
	assert_int_equal(spt_get_be16(&d[8]), XCOPY_MAX_CSCD_DESCRIPTORS);
	assert_int_equal(spt_get_be16(&d[10]), XCOPY_MAX_SEGMENT_DESCRIPTORS);
	assert_int_equal(spt_get_be32(&d[12]), XCOPY_MAX_DESC_LIST_LEN);
	assert_int_equal(spt_get_be32(&d[16]), 65535u * 4096);
	assert_int_equal(spt_get_be32(&d[20]), 0);
	assert_int_equal(spt_get_be16(&d[34]), XCOPY_MAX_CONCURRENT);
	assert_int_equal(d[37], 12);		/* 4096-byte blocks */
	assert_int_equal(d[43], 2);
	assert_int_equal(d[44], 0x02);
	assert_int_equal(d[45], 0xe4);
}

/* At most XCOPY_MAX_CONCURRENT copies in progress per LU. */
static void test_xcopy_concurrency_limit(void **state)
{
	struct fx *f = *state;
	uint64_t naa[] = { T_NAA_A };
	uint32_t bs[] = { 512 };
	struct seg s[] = { { 0, 0, 1, 0, 10, false } };
	struct tcmd *tcs[XCOPY_MAX_CONCURRENT];
	uint32_t len;

	_Static_assert(XCOPY_MAX_CONCURRENT <= T_PENDING, "every copy can have its read queued");
	f->a->deferred = true;
	for (unsigned i = 0; i < XCOPY_MAX_CONCURRENT; i++) {
		tcs[i] = tcmd_new();
		len = xcopy_list(tcs[i]->buf, 0, 3, naa, bs, 1, s, 1);
		run_xcopy(f->a, tcs[i], len);
		assert_int_equal(tcs[i]->completions, 0);
	}
	len = xcopy_list(f->tc->buf, 0, 3, naa, bs, 1, s, 1);
	run_xcopy(f->a, f->tc, len);
	assert_sense(f->tc, SPT_KEY_ILLEGAL_REQUEST, 0x55, 0x03);
	complete_all();
	for (unsigned i = 0; i < XCOPY_MAX_CONCURRENT; i++) {
		assert_good(tcs[i]);
		tcmd_free(tcs[i]);
	}
	/* all done: room again */
	run_xcopy(f->a, f->tc, len);
	complete_all();
	assert_good(f->tc);
}

static void test_xcopy_abort_stops_the_copy(void **state)
{
	struct fx *f = *state;
	uint64_t naa[] = { T_NAA_A };
	uint32_t bs[] = { 512 };
	struct seg s[] = { { 0, 0, 6000, 0, 1, false } };
	uint32_t len = xcopy_list(f->tc->buf, 4, 0, naa, bs, 1, s, 1);

	f->a->deferred = true;
	run_xcopy(f->a, f->tc, len);
	assert_int_equal(npending, 1);
	f->tc->cmd.aborted = true;
	complete_all();
	assert_int_equal(f->tc->completions, 1);
	assert_int_equal(f->a->count[SPT_BDEV_READ], 1);
	assert_int_equal(f->a->count[SPT_BDEV_WRITE], 0);
}

/* ------------------------------------------------------------------ */
/* What the LU advertises                                               */
/* ------------------------------------------------------------------ */

static void inquiry(struct ram *r, struct tcmd *tc, bool evpd, uint8_t page)
{
	uint8_t c[16] = { 0x12, evpd ? 0x01 : 0x00, page, 0x04, 0x00, 0 };

	tcmd_start(tc, c, SPT_DIR_IN, 1024, T_SESSION);
	tcmd_request(r, tc, 0, 0, true);
	assert_good(tc);
}

static void test_inquiry_advertises_caw_and_copy(void **state)
{
	struct fx *f = *state;
	const uint8_t *d = f->tc->buf;
	uint32_t len, pos;
	bool seen_0001 = false, seen_0004 = false, seen_0008 = false, seen_000c = false,
	     seen_8001 = false;

	inquiry(f->a, f->tc, false, 0);
	assert_int_equal(d[5] & 0x08, 0x08);		/* 3PC */
	inquiry(f->a, f->tc, true, 0xb0);
	assert_int_equal(d[5], 255);			/* MAXIMUM COMPARE AND WRITE LENGTH */
	inquiry(f->a, f->tc, true, 0x00);
	assert_memory_equal(&d[4], ((const uint8_t[]){ 0x00, 0x80, 0x83, 0x8f, 0xb0 }), 5);
	inquiry(f->a, f->tc, true, 0x8f);
	len = spt_get_be16(&d[2]);
	assert_int_equal(f->tc->last.data_in_length, len + 4);
	for (pos = 4; pos < len + 4; pos += 4 + spt_get_be16(&d[pos + 2])) {
		const uint8_t *t = &d[pos];
		uint16_t dl = spt_get_be16(&t[2]);

		assert_int_equal(dl % 4, 0);
		switch (spt_get_be16(t)) {
		case 0x0001:
			seen_0001 = true;
			assert_int_equal(t[4], 7);
			assert_memory_equal(&t[5],
					    ((const uint8_t[]){ 0x83, 1, 0x00, 0x84, 2, 0x00, 0x03 }), 7);
			break;
		case 0x0004:
			seen_0004 = true;
			assert_int_equal(dl, 0x1c);
			assert_int_equal(spt_get_be16(&t[8]), XCOPY_MAX_CSCD_DESCRIPTORS);
			assert_int_equal(spt_get_be16(&t[10]), XCOPY_MAX_SEGMENT_DESCRIPTORS);
			assert_int_equal(spt_get_be32(&t[12]), XCOPY_MAX_DESC_LIST_LEN);
			break;
		case 0x0008:
			seen_0008 = true;
			assert_int_equal(t[4], 2);
			break;
		case 0x000c:
			seen_000c = true;
			assert_int_equal(spt_get_be16(&t[4]), 0);
			break;
		case 0x8001:
			seen_8001 = true;
			assert_int_equal(dl, 0x20);
			assert_int_equal(spt_get_be32(&t[4]), XCOPY_MAX_CONCURRENT);
			assert_int_equal(spt_get_be32(&t[12]), 65535u * 512);
			assert_int_equal(t[16], 9);
			break;
		default:
			fail();
		}
	}
	assert_int_equal(pos, len + 4);
	assert_true(seen_0001 && seen_0004 && seen_0008 && seen_000c && seen_8001);
}

static void rsoc_one(struct ram *r, struct tcmd *tc, uint8_t options, uint8_t op, uint16_t sa)
{
	uint8_t c[16] = { 0xa3, 0x0c, options, op };

	spt_put_be16(&c[4], sa);
	spt_put_be32(&c[6], 512);
	tcmd_start(tc, c, SPT_DIR_IN, 512, T_SESSION);
	tcmd_request(r, tc, 0, 0, true);
	assert_good(tc);
}

static void test_report_supported_opcodes_lists_them(void **state)
{
	struct fx *f = *state;
	const uint8_t *d = f->tc->buf;

	rsoc_one(f->a, f->tc, 0x01, 0x89, 0);
	assert_int_equal(d[1] & 0x07, 0x03);
	assert_int_equal(spt_get_be16(&d[2]), 16);
	assert_int_equal(d[4], 0x89);
	assert_int_equal(d[5] & 0x18, 0x18);		/* DPO, FUA */
	assert_int_equal(d[4 + 13], 0xff);		/* NUMBER OF LOGICAL BLOCKS */
	rsoc_one(f->a, f->tc, 0x02, 0x83, 0x00);
	assert_int_equal(d[1] & 0x07, 0x03);
	assert_int_equal(d[4], 0x83);
	rsoc_one(f->a, f->tc, 0x02, 0x84, 0x00);
	assert_int_equal(d[1] & 0x07, 0x03);
	assert_int_equal(d[4 + 2], 0xff);		/* LIST IDENTIFIER */
	rsoc_one(f->a, f->tc, 0x02, 0x84, 0x03);
	assert_int_equal(d[1] & 0x07, 0x03);
	rsoc_one(f->a, f->tc, 0x02, 0x84, 0x01);	/* RECEIVE DATA: not supported */
	assert_int_equal(d[1] & 0x07, 0x01);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
		T(test_caw_equal_writes_second_half),
		T(test_caw_miscompare_reports_first_differing_byte),
		T(test_caw_zero_blocks_does_nothing),
		T(test_caw_checks),
		T(test_caw_acts_on_the_final_sequence),
		T(test_write_waits_for_caw_in_progress),
		T(test_caw_waits_for_write_in_flight),
		T(test_racing_caws_one_wins),
		T(test_aborted_waiter_completes_and_releases),
		T(test_range_lock_rules),
		T(test_xcopy_within_one_lu),
		T(test_xcopy_overlapping_copies_like_memmove),
		T(test_xcopy_between_two_lus),
		T(test_xcopy_unreachable_targets),
		T(test_xcopy_segment_errors_are_copy_aborted),
		T(test_xcopy_parameter_list_checks),
		T(test_xcopy_list_in_several_sequences),
		T(test_xcopy_write_waits_for_caw),
		T(test_receive_copy_results),
		T(test_receive_copy_results_operating_parameters),
		T(test_xcopy_concurrency_limit),
		T(test_xcopy_abort_stops_the_copy),
		T(test_inquiry_advertises_caw_and_copy),
		T(test_report_supported_opcodes_lists_them),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
