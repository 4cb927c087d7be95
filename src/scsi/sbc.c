/*
 * SBC-3 half of the block-device emulation: spt_bdev_execute() decodes the
 * CDB of every request, checks it, runs the backing-store operations through
 * bdev->ops->submit and completes the request with status, sense and data-in.
 *
 * Request model (include/spt/spt.h): a command with data-out reaches us once
 * per data sequence; the first request has sequence_byte_offset 0, cmd->buf
 * holds everything received so far and a non-final request completed with
 * GOOD asks the engine for more. WRITE-family data is written as it arrives;
 * commands that need all their data (UNMAP, WRITE SAME, VERIFY with BYTCHK,
 * ORWRITE, COMPARE AND WRITE) acknowledge non-final requests and act on the
 * final one.
 *
 * Per-command state lives in cmd->scratch (struct sbc_task). Only one backing
 * store operation is in flight per command; chained operations (UNMAP
 * descriptors, WRITE SAME chunks, compare chunks) run one after the other
 * through sbc_drive(), which also copes with operations that complete before
 * submit() returns.
 *
 * COMPARE AND WRITE is atomic against every other writer of the LU through
 * LBA range locks: it holds its range exclusively from its read to the end
 * of its write, every medium write holds its blocks shared while in flight
 * (a lock-free counter while no COMPARE AND WRITE is around), and a command
 * that conflicts waits, in arrival order, without blocking the thread.
 * EXTENDED COPY / RECEIVE COPY RESULTS are passed on to xcopy.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "scsi/spc.h"
#include "scsi/alua.h"
#include "scsi/pr.h"
#include "scsi/xcopy.h"

/* SBC-3 operation codes handled here. */
enum {
	SBC_OP_READ6 = 0x08,
	SBC_OP_WRITE6 = 0x0a,
	SBC_OP_READ_CAPACITY10 = 0x25,
	SBC_OP_READ10 = 0x28,
	SBC_OP_WRITE10 = 0x2a,
	SBC_OP_WRITE_VERIFY10 = 0x2e,
	SBC_OP_VERIFY10 = 0x2f,
	SBC_OP_PREFETCH10 = 0x34,
	SBC_OP_SYNC_CACHE10 = 0x35,
	SBC_OP_WRITE_SAME10 = 0x41,
	SBC_OP_UNMAP = 0x42,
	SBC_OP_READ16 = 0x88,
	SBC_OP_COMPARE_AND_WRITE = 0x89,
	SBC_OP_WRITE16 = 0x8a,
	SBC_OP_ORWRITE16 = 0x8b,
	SBC_OP_WRITE_VERIFY16 = 0x8e,
	SBC_OP_VERIFY16 = 0x8f,
	SBC_OP_PREFETCH16 = 0x90,
	SBC_OP_SYNC_CACHE16 = 0x91,
	SBC_OP_WRITE_SAME16 = 0x93,
	SBC_OP_SERVICE_ACTION_IN16 = 0x9e,
	SBC_OP_READ12 = 0xa8,
	SBC_OP_WRITE12 = 0xaa,
	SBC_OP_WRITE_VERIFY12 = 0xae,
	SBC_OP_VERIFY12 = 0xaf,
};

/* SERVICE ACTION IN(16) service actions (SBC-3 READ CAPACITY(16), GET LBA STATUS). */
#define SBC_SA_READ_CAPACITY16 0x10
#define SBC_SA_GET_LBA_STATUS 0x12

/* Sense codes used here (SPC-4 annex D). */
#define ASC_WRITE_ERROR 0x0c		/* 0C/00 WRITE ERROR */
#define ASCQ_NOT_ENOUGH_UNSOLICITED 0x0d	/* 0C/0D NOT ENOUGH UNSOLICITED DATA */
#define ASC_INVALID_FIELD_IN_CMD_IU 0x0e	/* 0E/03 INVALID FIELD IN COMMAND INFORMATION UNIT */
#define ASCQ_INVALID_FIELD_IN_CMD_IU 0x03
#define ASC_UNRECOVERED_READ_ERROR 0x11
#define ASC_PARAMETER_LIST_LENGTH_ERROR 0x1a
#define ASC_MISCOMPARE_DURING_VERIFY 0x1d
#define ASC_INVALID_COMMAND_OPCODE 0x20
#define ASC_LBA_OUT_OF_RANGE 0x21
#define ASC_WRITE_PROTECTED 0x27
#define ASCQ_SPACE_ALLOCATION_FAILED 0x07	/* 27/07 SPACE ALLOCATION FAILED WRITE PROTECT */
#define ASC_INTERNAL_TARGET_FAILURE 0x44

/* Bytes moved per backing-store operation by the rare commands that need a
 * bounce buffer (compare, WRITE SAME with a non-zero pattern). */
#define SBC_CHUNK_BYTES (1u << 20)
/* GET LBA STATUS: descriptors returned, and map_status() calls made, at most
 * per command (a backend reporting tiny extents must not stall the reactor). */
#define SBC_LBA_STATUS_MAX_DESCRIPTORS 64
#define SBC_LBA_STATUS_MAX_LOOKUPS 4096
/* SBC-3 UNMAP parameter list header and block descriptor sizes. */
#define SBC_UNMAP_HEADER_LEN 8
#define SBC_UNMAP_DESCRIPTOR_LEN 16
/* SBC-3 GET LBA STATUS parameter data: header and descriptor sizes. */
#define SBC_LBA_STATUS_HEADER_LEN 8
#define SBC_LBA_STATUS_DESCRIPTOR_LEN 16
/* SBC-3 READ CAPACITY(10)/(16) parameter data sizes. */
#define SBC_READ_CAPACITY10_LEN 8
#define SBC_READ_CAPACITY16_LEN 32

enum sbc_kind {
	SBC_READ = 1,
	SBC_WRITE,
	SBC_VERIFY,
	SBC_WRITE_VERIFY,
	SBC_ORWRITE,
	SBC_PREFETCH,
	SBC_SYNC_CACHE,
	SBC_WRITE_SAME,
	SBC_UNMAP,
	SBC_READ_CAPACITY10,
	SBC_SERVICE_ACTION_IN,
	SBC_COMPARE_AND_WRITE,
};

/* Where the fields of one CDB layout are and which bits are reserved. */
struct sbc_cdb_desc {
	uint8_t opcode;
	uint8_t kind;		/* enum sbc_kind */
	uint8_t len;		/* CDB length; CONTROL is the last byte */
	uint8_t lba_off, lba_len;	/* LOGICAL BLOCK ADDRESS, 0 if none */
	uint8_t count_off, count_len;	/* TRANSFER/VERIFICATION/NUMBER OF BLOCKS */
	bool protect;		/* byte 1 bits 7-5: RDPROTECT/WRPROTECT/VRPROTECT/ORPROTECT */
	uint8_t reserved[16];	/* reserved bits per byte, CONTROL excluded */
};

/* Bit masks of byte 1 for the common layouts (SBC-3 command tables). */
#define RSV_B1_RW10 0x04	/* bit 2 reserved, bit 1 FUA_NV, bit 0 obsolete */
#define RSV_B1_RW16 0x05	/* bit 2 and bit 0 reserved */
#define RSV_B1_VERIFY10 0x08	/* bit 3 reserved, bits 2-1 BYTCHK, bit 0 obsolete */
#define RSV_B1_VERIFY16 0x09
#define RSV_GROUP 0xe0		/* bits 7-5 of the GROUP NUMBER byte */

static const struct sbc_cdb_desc sbc_cdbs[] = {
	{ SBC_OP_READ6, SBC_READ, 6, 1, 3, 4, 1, false, { [1] = 0xe0 } },
	{ SBC_OP_WRITE6, SBC_WRITE, 6, 1, 3, 4, 1, false, { [1] = 0xe0 } },
	{ SBC_OP_READ10, SBC_READ, 10, 2, 4, 7, 2, true, { [1] = RSV_B1_RW10, [6] = RSV_GROUP } },
	{ SBC_OP_WRITE10, SBC_WRITE, 10, 2, 4, 7, 2, true, { [1] = RSV_B1_RW10, [6] = RSV_GROUP } },
	{ SBC_OP_READ12, SBC_READ, 12, 2, 4, 6, 4, true, { [1] = RSV_B1_RW10, [10] = RSV_GROUP } },
	{ SBC_OP_WRITE12, SBC_WRITE, 12, 2, 4, 6, 4, true, { [1] = RSV_B1_RW10, [10] = RSV_GROUP } },
	{ SBC_OP_READ16, SBC_READ, 16, 2, 8, 10, 4, true, { [1] = RSV_B1_RW16, [14] = RSV_GROUP } },
	{ SBC_OP_WRITE16, SBC_WRITE, 16, 2, 8, 10, 4, true, { [1] = RSV_B1_RW16, [14] = RSV_GROUP } },
	{ SBC_OP_VERIFY10, SBC_VERIFY, 10, 2, 4, 7, 2, true,
	  { [1] = RSV_B1_VERIFY10, [6] = RSV_GROUP } },
	{ SBC_OP_VERIFY12, SBC_VERIFY, 12, 2, 4, 6, 4, true,
	  { [1] = RSV_B1_VERIFY10, [10] = RSV_GROUP } },
	{ SBC_OP_VERIFY16, SBC_VERIFY, 16, 2, 8, 10, 4, true,
	  { [1] = RSV_B1_VERIFY16, [14] = RSV_GROUP } },
	{ SBC_OP_WRITE_VERIFY10, SBC_WRITE_VERIFY, 10, 2, 4, 7, 2, true,
	  { [1] = RSV_B1_VERIFY10, [6] = RSV_GROUP } },
	{ SBC_OP_WRITE_VERIFY12, SBC_WRITE_VERIFY, 12, 2, 4, 6, 4, true,
	  { [1] = RSV_B1_VERIFY10, [10] = RSV_GROUP } },
	{ SBC_OP_WRITE_VERIFY16, SBC_WRITE_VERIFY, 16, 2, 8, 10, 4, true,
	  { [1] = RSV_B1_VERIFY16, [14] = RSV_GROUP } },
	{ SBC_OP_ORWRITE16, SBC_ORWRITE, 16, 2, 8, 10, 4, true, { [1] = RSV_B1_RW16, [14] = RSV_GROUP } },
	/* PRE-FETCH: bits 7-2 reserved, bit 1 IMMED, bit 0 obsolete (10) / reserved (16) */
	{ SBC_OP_PREFETCH10, SBC_PREFETCH, 10, 2, 4, 7, 2, false, { [1] = 0xfc, [6] = RSV_GROUP } },
	{ SBC_OP_PREFETCH16, SBC_PREFETCH, 16, 2, 8, 10, 4, false, { [1] = 0xfd, [14] = RSV_GROUP } },
	/* SYNCHRONIZE CACHE: bits 7-3 reserved, bit 2 SYNC_NV, bit 1 IMMED, bit 0 obsolete/reserved */
	{ SBC_OP_SYNC_CACHE10, SBC_SYNC_CACHE, 10, 2, 4, 7, 2, false, { [1] = 0xf8, [6] = RSV_GROUP } },
	{ SBC_OP_SYNC_CACHE16, SBC_SYNC_CACHE, 16, 2, 8, 10, 4, false, { [1] = 0xf9, [14] = RSV_GROUP } },
	/* WRITE SAME: bit 4 ANCHOR, bit 3 UNMAP; PBDATA/LBDATA/RELADR (10) are not supported, bit 0
	 * of (16) is NDOB */
	{ SBC_OP_WRITE_SAME10, SBC_WRITE_SAME, 10, 2, 4, 7, 2, true, { [1] = 0x07, [6] = RSV_GROUP } },
	{ SBC_OP_WRITE_SAME16, SBC_WRITE_SAME, 16, 2, 8, 10, 4, true, { [1] = 0x06, [14] = RSV_GROUP } },
	/* UNMAP: byte 1 bit 0 ANCHOR, bytes 2-5 reserved, bytes 7-8 PARAMETER LIST LENGTH */
	{ SBC_OP_UNMAP, SBC_UNMAP, 10, 0, 0, 7, 2, false,
	  { [1] = 0xfe, [2] = 0xff, [3] = 0xff, [4] = 0xff, [5] = 0xff, [6] = RSV_GROUP } },
	/* READ CAPACITY(10): byte 1 bit 0 obsolete, bytes 6-7 reserved, byte 8 bit 0 PMI */
	{ SBC_OP_READ_CAPACITY10, SBC_READ_CAPACITY10, 10, 2, 4, 0, 0, false,
	  { [1] = 0xfe, [6] = 0xff, [7] = 0xff, [8] = 0xfe } },
	/* SERVICE ACTION IN(16): byte 1 bits 4-0 SERVICE ACTION, the rest per action */
	{ SBC_OP_SERVICE_ACTION_IN16, SBC_SERVICE_ACTION_IN, 16, 2, 8, 10, 4, false, { [1] = 0xe0 } },
	/* COMPARE AND WRITE: byte 1 bit 2 and bit 0 reserved, bytes 10-12 reserved, byte 13
	 * NUMBER OF LOGICAL BLOCKS */
	{ SBC_OP_COMPARE_AND_WRITE, SBC_COMPARE_AND_WRITE, 16, 2, 8, 13, 1, true,
	  { [1] = RSV_B1_RW16, [10] = 0xff, [11] = 0xff, [12] = 0xff, [14] = RSV_GROUP } },
};

enum sbc_phase {
	SBC_PH_DONE = 0,
	SBC_PH_READ,		/* one READ into cmd->buf */
	SBC_PH_STREAM,		/* WRITE family: write the whole blocks received so far */
	SBC_PH_COMPARE,		/* read chunks into aux and compare with data-out */
	SBC_PH_OR_READ,		/* ORWRITE: read the range into aux */
	SBC_PH_OR_WRITE,	/* ORWRITE: write aux back */
	SBC_PH_WS_RANGE,	/* WRITE SAME of zeros: one UNMAP or WRITE_ZEROES */
	SBC_PH_WS_PATTERN,	/* WRITE SAME of a pattern: chunked writes from aux */
	SBC_PH_UNMAP,		/* one UNMAP per block descriptor */
	SBC_PH_FLUSH,		/* FLUSH, then done */
	SBC_PH_CAW_READ,	/* COMPARE AND WRITE: read the range into aux (range held) */
	SBC_PH_CAW_WRITE,	/* COMPARE AND WRITE: equal, write the second half */
};

/* Per-command state, in cmd->scratch. */
struct sbc_task {
	struct spt_bdev_io io;		/* the one backing-store operation in flight */
	struct spt_bdev *bdev;
	struct spt_cmd *cmd;
	uint64_t lba;
	uint64_t nblocks;		/* blocks the CDB addresses */
	uint64_t pos;			/* progress of a chained phase, in bytes */
	uint64_t total;			/* bytes a chained phase covers */
	uint8_t *aux;			/* bounce buffer of the rare commands */
	uint32_t aux_len;
	uint32_t transfer_length;	/* bytes the CDB asks to move (cpl.transfer_length) */
	uint32_t data_end;		/* data-out bytes the command consumes, whole blocks */
	uint32_t written;		/* streaming writes: data-out bytes already written */
	uint32_t read_len;		/* READ: bytes of data-in */
	uint16_t unmap_idx, unmap_count;
	uint8_t kind;			/* enum sbc_kind */
	uint8_t phase;			/* enum sbc_phase */
	uint8_t bytchk;
	bool fua;
	bool unmap;			/* WRITE SAME UNMAP bit */
	bool ndob;			/* WRITE SAME(16) NDOB bit */
	bool pattern;			/* compare: one block against every block (BYTCHK 11b) */
	bool flush_after;		/* WCE=0: make zeroing/unmapping durable before GOOD */
	bool spc_after_flush;		/* START STOP UNIT: spc_execute() once flushed */
	bool in_submit;			/* submit() has not returned yet */
	bool inline_done;		/* the operation completed inside submit() */
	bool excl;			/* COMPARE AND WRITE, ORWRITE: hold the range throughout */
	int inline_result;
	/* the LBA range this command holds: exclusively from the first I/O of a
	 * read-modify-write to its end, or shared while a write is in flight */
	struct sbc_range range;
};
_Static_assert(sizeof(struct sbc_task) <= SPT_PROVIDER_SCRATCH,
	       "sbc_task must fit in cmd->scratch");
_Static_assert(_Alignof(struct sbc_task) <= 16, "cmd->scratch is 16-byte aligned");

static struct sbc_task *sbc_task_of(struct spt_cmd *cmd)
{
	return (struct sbc_task *)(void *)cmd->scratch;
}

static uint64_t sbc_get_be(const uint8_t *p, unsigned len)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < len; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t sbc_clamp32(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static const struct sbc_cdb_desc *sbc_lookup(uint8_t opcode)
{
	for (size_t i = 0; i < sizeof(sbc_cdbs) / sizeof(sbc_cdbs[0]); i++)
		if (sbc_cdbs[i].opcode == opcode)
			return &sbc_cdbs[i];
	return NULL;
}

/* Highest set bit of v & mask, or -1. */
static int sbc_high_bit(uint8_t v, uint8_t mask)
{
	v &= mask;
	for (int bit = 7; bit >= 0; bit--)
		if (v & (1u << bit))
			return bit;
	return -1;
}

static bool sbc_lba_out_of_range(const struct spt_bdev *bdev, uint64_t lba, uint64_t n)
{
	return lba > bdev->num_blocks || n > bdev->num_blocks - lba;
}

static void sbc_invalid_opcode(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, ASC_INVALID_COMMAND_OPCODE, 0);
}

static void sbc_busy(struct spt_cmd *cmd)
{
	cmd->cpl.scsi_status = SPT_STATUS_BUSY;
	cmd->cpl.sense_length = 0;
}

/* Maps a backing-store error to status and sense (SBC-3 error reporting, SPC-4
 * sense keys). */
static void sbc_io_error(struct sbc_task *t, int result, bool reading)
{
	struct spt_bdev *bdev = t->bdev;
	struct spt_cmd *cmd = t->cmd;

	switch (result) {
	case -ENOMEM:
	case -EAGAIN:
	case -EBUSY:
		/* SAM-5 status BUSY: transient lack of resources, the initiator retries */
		sbc_busy(cmd);
		break;
	case -ENOSPC:
		/* SBC-3 thin provisioning: a thin LU out of backing space */
		if (bdev->thin)
			spc_check_condition(bdev, cmd, SPT_KEY_DATA_PROTECT, ASC_WRITE_PROTECTED,
					    ASCQ_SPACE_ALLOCATION_FAILED);
		else
			spc_check_condition(bdev, cmd, SPT_KEY_MEDIUM_ERROR, ASC_WRITE_ERROR, 0);
		break;
	case -EROFS:
	case -EPERM:
	case -EACCES:
		spc_check_condition(bdev, cmd, SPT_KEY_DATA_PROTECT, ASC_WRITE_PROTECTED, 0);
		break;
	case -EIO:
	case -ENODATA:
	case -EBADMSG:
	case -EILSEQ:
		if (reading)
			spc_check_condition(bdev, cmd, SPT_KEY_MEDIUM_ERROR,
					    ASC_UNRECOVERED_READ_ERROR, 0);
		else
			spc_check_condition(bdev, cmd, SPT_KEY_MEDIUM_ERROR, ASC_WRITE_ERROR, 0);
		break;
	default:
		spc_check_condition(bdev, cmd, SPT_KEY_HARDWARE_ERROR, ASC_INTERNAL_TARGET_FAILURE, 0);
		break;
	}
}

static void sbc_prepare_io(struct sbc_task *t, uint8_t op, uint64_t offset, uint64_t length,
			   uint8_t *buf, uint32_t flags);
static void sbc_io_done(struct spt_bdev_io *io, int result);

/* ------------------------------------------------------------------ */
/* LBA range locks: COMPARE AND WRITE atomicity (SBC-3 5.2)             */
/* ------------------------------------------------------------------ */

enum sbc_range_state {
	SBC_RANGE_IDLE = 0,
	SBC_RANGE_UNLOCKED,	/* held without state (bdev not initialised) */
	SBC_RANGE_FAST,		/* shared, counted in fast, range not recorded */
	SBC_RANGE_HELD,		/* in the holders list */
	SBC_RANGE_WAITING,	/* in the wait queue */
};

struct sbc_ranges {
	pthread_mutex_t lock;		/* holders list, wait queue */
	atomic_uint fast;		/* shared holders on the lock-free path */
	atomic_uint exclusive;		/* exclusive holders and waiters */
	struct sbc_range *held;		/* holders recorded under the lock */
	struct sbc_range *wait_head;	/* waiters, oldest first */
	struct sbc_range *wait_tail;
};

/*
 * Grants are run by the outermost release on a thread: a granted command
 * that completes at once and releases in turn appends to this queue instead
 * of nesting, so a chain of waiters costs no stack.
 */
static _Thread_local struct sbc_range *sbc_grant_head;
static _Thread_local struct sbc_range *sbc_grant_tail;
static _Thread_local bool sbc_granting;

struct sbc_ranges *sbc_ranges_new(void)
{
	struct sbc_ranges *rs = calloc(1, sizeof(*rs));

	if (!rs)
		return NULL;
	if (pthread_mutex_init(&rs->lock, NULL) != 0) {
		free(rs);
		return NULL;
	}
	atomic_init(&rs->fast, 0);
	atomic_init(&rs->exclusive, 0);
	return rs;
}

void sbc_ranges_free(struct sbc_ranges *rs)
{
	if (!rs)
		return;
	pthread_mutex_destroy(&rs->lock);
	free(rs);
}

static bool sbc_range_overlap(const struct sbc_range *a, const struct sbc_range *b)
{
	return a->lba < b->lba + b->count && b->lba < a->lba + a->count;
}

/* Two ranges conflict when they overlap and one of them is exclusive. */
static bool sbc_range_conflict(const struct sbc_range *a, const struct sbc_range *b)
{
	return (a->exclusive || b->exclusive) && sbc_range_overlap(a, b);
}

/*
 * Caller holds rs->lock. Can r be granted now? Not if it conflicts with a
 * holder, or (first come, first served) with a waiter queued before it;
 * `before` is where r's turn is (NULL: behind every waiter). An exclusive
 * request also waits for the lock-free shared holders, whose ranges are
 * unknown.
 */
static bool sbc_range_grantable(struct sbc_ranges *rs, const struct sbc_range *r,
				const struct sbc_range *before)
{
	if (r->exclusive && atomic_load(&rs->fast) != 0)
		return false;
	for (const struct sbc_range *h = rs->held; h; h = h->next)
		if (sbc_range_conflict(r, h))
			return false;
	for (const struct sbc_range *w = rs->wait_head; w && w != before; w = w->next)
		if (sbc_range_conflict(r, w))
			return false;
	return true;
}

/* Caller holds rs->lock. */
static void sbc_range_hold(struct sbc_ranges *rs, struct sbc_range *r)
{
	r->state = SBC_RANGE_HELD;
	r->prev = NULL;
	r->next = rs->held;
	if (rs->held)
		rs->held->prev = r;
	rs->held = r;
}

/* Caller holds rs->lock. */
static void sbc_range_unhold(struct sbc_ranges *rs, struct sbc_range *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		rs->held = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
}

/* Caller holds rs->lock. */
static void sbc_range_enqueue(struct sbc_ranges *rs, struct sbc_range *r)
{
	r->state = SBC_RANGE_WAITING;
	r->next = NULL;
	r->prev = rs->wait_tail;
	if (rs->wait_tail)
		rs->wait_tail->next = r;
	else
		rs->wait_head = r;
	rs->wait_tail = r;
}

/* Caller holds rs->lock. */
static void sbc_range_dequeue(struct sbc_ranges *rs, struct sbc_range *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		rs->wait_head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		rs->wait_tail = r->prev;
	r->next = r->prev = NULL;
}

/*
 * Moves every waiter that can go now into the holders, oldest first, and
 * returns them as a list linked through grant_next. Caller holds rs->lock.
 */
static struct sbc_range *sbc_range_collect(struct sbc_ranges *rs)
{
	struct sbc_range *head = NULL, **tail = &head, *w = rs->wait_head;

	while (w) {
		struct sbc_range *next = w->next;

		if (sbc_range_grantable(rs, w, w)) {
			sbc_range_dequeue(rs, w);
			sbc_range_hold(rs, w);
			w->grant_next = NULL;
			*tail = w;
			tail = &w->grant_next;
		}
		w = next;
	}
	return head;
}

/* Resumes granted waiters, outside the lock, without nesting. */
static void sbc_range_run_grants(struct sbc_range *list)
{
	while (list) {
		struct sbc_range *next = list->grant_next;

		list->grant_next = NULL;
		if (sbc_grant_tail)
			sbc_grant_tail->grant_next = list;
		else
			sbc_grant_head = list;
		sbc_grant_tail = list;
		list = next;
	}
	if (sbc_granting)
		return;
	sbc_granting = true;
	while (sbc_grant_head) {
		struct sbc_range *r = sbc_grant_head;

		sbc_grant_head = r->grant_next;
		if (!sbc_grant_head)
			sbc_grant_tail = NULL;
		r->grant_next = NULL;
		/* r may be reused once its owner runs: nothing touches it after */
		r->granted(r);
	}
	sbc_granting = false;
}

/* Grants what the caller's release made possible. */
static void sbc_range_wake(struct sbc_ranges *rs)
{
	struct sbc_range *granted;

	pthread_mutex_lock(&rs->lock);
	granted = sbc_range_collect(rs);
	pthread_mutex_unlock(&rs->lock);
	sbc_range_run_grants(granted);
}

/* A lock-free shared holder leaves; the last one lets exclusive waiters in. */
static void sbc_range_fast_put(struct sbc_ranges *rs)
{
	if (atomic_fetch_sub(&rs->fast, 1) == 1 && atomic_load(&rs->exclusive) != 0)
		sbc_range_wake(rs);
}

bool sbc_range_acquire(struct spt_bdev *bdev, struct sbc_range *r, uint64_t lba, uint64_t count,
		       bool exclusive, void (*granted)(struct sbc_range *r))
{
	struct sbc_ranges *rs = spc_ranges(bdev);
	bool held;

	r->lba = lba;
	r->count = count ? count : 1;
	r->exclusive = exclusive;
	r->granted = granted;
	r->next = r->prev = r->grant_next = NULL;
	if (!rs) {
		r->state = SBC_RANGE_UNLOCKED;
		return true;
	}
	if (!exclusive) {
		/*
		 * The common case: no COMPARE AND WRITE anywhere on the LU. The
		 * counter goes up before `exclusive` is read and an exclusive
		 * request does the opposite (both sequentially consistent), so
		 * at least one of the two sees the other.
		 */
		atomic_fetch_add(&rs->fast, 1);
		if (atomic_load(&rs->exclusive) == 0) {
			r->state = SBC_RANGE_FAST;
			return true;
		}
		sbc_range_fast_put(rs);
	}
	pthread_mutex_lock(&rs->lock);
	if (exclusive)
		atomic_fetch_add(&rs->exclusive, 1);
	held = sbc_range_grantable(rs, r, NULL);
	if (held)
		sbc_range_hold(rs, r);
	else
		sbc_range_enqueue(rs, r);
	pthread_mutex_unlock(&rs->lock);
	return held;
}

void sbc_range_release(struct spt_bdev *bdev, struct sbc_range *r)
{
	struct sbc_ranges *rs = spc_ranges(bdev);
	struct sbc_range *granted;

	switch (r->state) {
	case SBC_RANGE_FAST:
		r->state = SBC_RANGE_IDLE;
		sbc_range_fast_put(rs);
		return;
	case SBC_RANGE_HELD:
	case SBC_RANGE_WAITING:
		break;
	default:
		/* idle, or held without state: nothing to give back */
		r->state = SBC_RANGE_IDLE;
		return;
	}
	pthread_mutex_lock(&rs->lock);
	/* a waiter that gives up leaves the queue (and may unblock those
	 * queued behind it) */
	if (r->state == SBC_RANGE_HELD)
		sbc_range_unhold(rs, r);
	else
		sbc_range_dequeue(rs, r);
	r->state = SBC_RANGE_IDLE;
	if (r->exclusive)
		atomic_fetch_sub(&rs->exclusive, 1);
	granted = sbc_range_collect(rs);
	pthread_mutex_unlock(&rs->lock);
	sbc_range_run_grants(granted);
}

/* ------------------------------------------------------------------ */
/* Completion and the operation loop                                    */
/* ------------------------------------------------------------------ */

/* Completes the current request; frees the bounce buffer when the command ends. */
static void sbc_finish(struct sbc_task *t)
{
	struct spt_cmd *cmd = t->cmd;

	cmd->cpl.transfer_length = t->transfer_length;
	if (cmd->cpl.scsi_status != SPT_STATUS_GOOD || cmd->req.is_final) {
		free(t->aux);
		t->aux = NULL;
		t->aux_len = 0;
	}
	/* SBC-3 5.2: the range of a COMPARE AND WRITE is free again only once its
	 * write (or its miscompare) is final; waiters may run from here */
	sbc_range_release(t->bdev, &t->range);
	/* the engine may reuse cmd (and t) from here on */
	spt_cmd_complete(cmd);
}

static bool sbc_alloc_aux(struct sbc_task *t, uint64_t len)
{
	if (t->aux != NULL && t->aux_len >= len)
		return true;
	free(t->aux);
	t->aux_len = 0;
	t->aux = malloc(len ? len : 1);
	if (t->aux == NULL) {
		sbc_busy(t->cmd);
		return false;
	}
	t->aux_len = (uint32_t)len;
	return true;
}

static uint64_t sbc_byte_offset(const struct sbc_task *t, uint64_t lba)
{
	return lba * t->bdev->block_size;
}

/* After the last data-out of the command was written. */
static void sbc_stream_finished(struct sbc_task *t)
{
	struct spt_cmd *cmd = t->cmd;

	if (t->written < t->data_end) {
		/* the engine ended the data-out early: blocks are missing */
		spc_check_condition(t->bdev, cmd, SPT_KEY_ABORTED_COMMAND, ASC_WRITE_ERROR,
				    ASCQ_NOT_ENOUGH_UNSOLICITED);
		t->phase = SBC_PH_DONE;
		return;
	}
	if (t->kind == SBC_WRITE_VERIFY && t->bytchk == 1 && t->data_end > 0) {
		/* SBC-3 WRITE AND VERIFY: BYTCHK=1 compares the medium with the data-out */
		t->phase = SBC_PH_COMPARE;
		t->pos = 0;
		t->total = t->data_end;
		t->pattern = false;
		return;
	}
	t->phase = SBC_PH_DONE;
}

/*
 * Prepares the next backing-store operation of the current request in t->io.
 * Returns false when the request is finished (status set, GOOD by default).
 */
static bool sbc_next_io(struct sbc_task *t)
{
	struct spt_cmd *cmd = t->cmd;
	uint32_t bs = t->bdev->block_size;

	for (;;) {
		if (cmd->aborted && t->phase != SBC_PH_DONE) {
			/* the engine discards the response; stop issuing I/O */
			t->phase = SBC_PH_DONE;
			return false;
		}
		switch (t->phase) {
		case SBC_PH_DONE:
			return false;

		case SBC_PH_READ:
			if (t->read_len == 0) {
				t->phase = SBC_PH_DONE;
				continue;
			}
			sbc_prepare_io(t, SPT_BDEV_READ, sbc_byte_offset(t, t->lba), t->read_len,
				       cmd->buf, 0);
			return true;

		case SBC_PH_STREAM: {
			uint64_t received = (uint64_t)cmd->req.sequence_byte_offset + cmd->req.data_length;
			uint64_t avail = received < t->data_end ? received : t->data_end;

			if (avail > cmd->buf_len)
				avail = cmd->buf_len;
			avail -= avail % bs;
			if (avail > t->written) {
				sbc_prepare_io(t, SPT_BDEV_WRITE,
					       sbc_byte_offset(t, t->lba) + t->written,
					       avail - t->written, cmd->buf + t->written,
					       t->fua ? SPT_BDEV_FUA : 0);
				return true;
			}
			if (!cmd->req.is_final)
				return false;	/* GOOD: send the next sequence */
			sbc_stream_finished(t);
			continue;
		}

		case SBC_PH_COMPARE: {
			uint64_t len = t->total - t->pos;

			if (len == 0) {
				t->phase = SBC_PH_DONE;
				continue;
			}
			if (len > SBC_CHUNK_BYTES)
				len = SBC_CHUNK_BYTES - SBC_CHUNK_BYTES % bs;
			if (!sbc_alloc_aux(t, len)) {
				t->phase = SBC_PH_DONE;
				continue;
			}
			sbc_prepare_io(t, SPT_BDEV_READ, sbc_byte_offset(t, t->lba) + t->pos, len,
				       t->aux, 0);
			return true;
		}

		case SBC_PH_OR_READ:
			if (t->data_end == 0) {
				t->phase = SBC_PH_DONE;
				continue;
			}
			if (!sbc_alloc_aux(t, t->data_end)) {
				t->phase = SBC_PH_DONE;
				continue;
			}
			sbc_prepare_io(t, SPT_BDEV_READ, sbc_byte_offset(t, t->lba), t->data_end,
				       t->aux, 0);
			return true;

		case SBC_PH_OR_WRITE:
			sbc_prepare_io(t, SPT_BDEV_WRITE, sbc_byte_offset(t, t->lba), t->data_end,
				       t->aux, t->fua ? SPT_BDEV_FUA : 0);
			return true;

		case SBC_PH_WS_RANGE:
			if (t->nblocks == 0) {
				t->phase = SBC_PH_DONE;
				continue;
			}
			sbc_prepare_io(t, t->unmap ? SPT_BDEV_UNMAP : SPT_BDEV_WRITE_ZEROES,
				       sbc_byte_offset(t, t->lba), t->nblocks * bs, NULL, 0);
			return true;

		case SBC_PH_WS_PATTERN: {
			uint64_t len = t->total - t->pos;

			if (len == 0) {
				t->phase = SBC_PH_DONE;
				continue;
			}
			if (len > t->aux_len)
				len = t->aux_len;
			sbc_prepare_io(t, SPT_BDEV_WRITE, sbc_byte_offset(t, t->lba) + t->pos, len,
				       t->aux, t->fua ? SPT_BDEV_FUA : 0);
			return true;
		}

		case SBC_PH_UNMAP: {
			const uint8_t *d;
			uint64_t lba;
			uint32_t n;

			if (t->unmap_idx >= t->unmap_count) {
				t->phase = t->flush_after ? SBC_PH_FLUSH : SBC_PH_DONE;
				continue;
			}
			d = cmd->buf + SBC_UNMAP_HEADER_LEN + (size_t)t->unmap_idx * SBC_UNMAP_DESCRIPTOR_LEN;
			lba = spt_get_be64(d);
			n = spt_get_be32(d + 8);
			if (n == 0) {
				t->unmap_idx++;
				continue;
			}
			sbc_prepare_io(t, SPT_BDEV_UNMAP, sbc_byte_offset(t, lba), (uint64_t)n * bs,
				       NULL, 0);
			return true;
		}

		case SBC_PH_FLUSH:
			sbc_prepare_io(t, SPT_BDEV_FLUSH, 0, 0, NULL, 0);
			return true;

		case SBC_PH_CAW_READ:
			if (!sbc_alloc_aux(t, t->nblocks * bs)) {
				t->phase = SBC_PH_DONE;
				continue;
			}
			sbc_prepare_io(t, SPT_BDEV_READ, sbc_byte_offset(t, t->lba), t->nblocks * bs,
				       t->aux, 0);
			return true;

		case SBC_PH_CAW_WRITE:
			/* SBC-3 5.2: the second half of the data-out is the write data */
			sbc_prepare_io(t, SPT_BDEV_WRITE, sbc_byte_offset(t, t->lba), t->nblocks * bs,
				       cmd->buf + t->nblocks * bs, t->fua ? SPT_BDEV_FUA : 0);
			return true;
		}
		t->phase = SBC_PH_DONE;
	}
}

/* SBC-3 VERIFY, WRITE AND VERIFY: MISCOMPARE reports the first byte of the
 * data-out that differs. */
static void sbc_miscompare(struct sbc_task *t, uint64_t offset)
{
	struct spt_sense_info info = { .info_valid = true, .information = offset };

	spt_cmd_check_condition(t->cmd, spc_sense_descriptor(t->bdev), SPT_KEY_MISCOMPARE,
				ASC_MISCOMPARE_DURING_VERIFY, 0, &info);
	t->phase = SBC_PH_DONE;
}

/* Compares the chunk just read (aux, len bytes at t->pos) with the data-out. */
static void sbc_compare_chunk(struct sbc_task *t, uint64_t len)
{
	const uint8_t *data = t->cmd->buf;
	uint32_t bs = t->bdev->block_size;

	if (!t->pattern) {
		if (memcmp(t->aux, data + t->pos, len) != 0) {
			uint64_t i = 0;

			while (t->aux[i] == data[t->pos + i])
				i++;
			sbc_miscompare(t, t->pos + i);
			return;
		}
	} else {
		/* SBC-4 VERIFY: BYTCHK 11b compares one block against every block */
		for (uint64_t off = 0; off < len; off += bs) {
			if (memcmp(t->aux + off, data, bs) != 0) {
				uint64_t i = 0;

				while (t->aux[off + i] == data[i])
					i++;
				sbc_miscompare(t, t->pos + off + i);
				return;
			}
		}
	}
	t->pos += len;
}

/*
 * SBC-3 5.2 COMPARE AND WRITE: the blocks just read (aux) against the verify
 * half of the data-out. Equal: the write half goes next. Otherwise
 * MISCOMPARE with the offset, from the start of the data-out, of the first
 * byte that differs, and nothing is written.
 */
static void sbc_caw_compare(struct sbc_task *t)
{
	const uint8_t *verify = t->cmd->buf;
	uint64_t len = t->nblocks * t->bdev->block_size;
	uint64_t i = 0;

	if (memcmp(t->aux, verify, len) == 0) {
		t->phase = SBC_PH_CAW_WRITE;
		return;
	}
	while (t->aux[i] == verify[i])
		i++;
	sbc_miscompare(t, i);
}

/* Processes the completion of the operation in t->io and advances the phase. */
static void sbc_io_result(struct sbc_task *t, int result)
{
	struct spt_bdev_io *io = &t->io;

	/* a write's shared range ends with its operation; an exclusive one
	 * stays until sbc_finish() */
	if (!t->excl)
		sbc_range_release(t->bdev, &t->range);
	if (result < 0) {
		sbc_io_error(t, result, io->op == SPT_BDEV_READ);
		t->phase = SBC_PH_DONE;
		return;
	}
	switch (t->phase) {
	case SBC_PH_READ:
		t->cmd->cpl.data_in_length = t->read_len;
		t->phase = SBC_PH_DONE;
		break;
	case SBC_PH_STREAM:
		t->written += (uint32_t)io->length;
		break;
	case SBC_PH_COMPARE:
		sbc_compare_chunk(t, io->length);
		break;
	case SBC_PH_OR_READ:
		/* SBC-3 ORWRITE: the medium is ORed with the data-out */
		for (uint32_t i = 0; i < t->data_end; i++)
			t->aux[i] |= t->cmd->buf[i];
		t->phase = SBC_PH_OR_WRITE;
		break;
	case SBC_PH_OR_WRITE:
		t->phase = SBC_PH_DONE;
		break;
	case SBC_PH_WS_RANGE:
		t->phase = t->flush_after ? SBC_PH_FLUSH : SBC_PH_DONE;
		break;
	case SBC_PH_WS_PATTERN:
		t->pos += io->length;
		break;
	case SBC_PH_UNMAP:
		t->unmap_idx++;
		break;
	case SBC_PH_FLUSH:
		if (t->spc_after_flush) {
			spc_execute(t->bdev, t->cmd);
			t->transfer_length = t->cmd->cpl.transfer_length;
		}
		t->phase = SBC_PH_DONE;
		break;
	case SBC_PH_CAW_READ:
		sbc_caw_compare(t);
		break;
	case SBC_PH_CAW_WRITE:
		t->phase = SBC_PH_DONE;
		break;
	default:
		t->phase = SBC_PH_DONE;
		break;
	}
}

static void sbc_range_granted(struct sbc_range *r);

/*
 * Takes the LBA range the prepared operation needs. Returns false when the
 * command has to wait: sbc_range_granted() drives it again once it holds
 * the range (sbc_next_io() prepares the same operation again then).
 */
static bool sbc_io_range(struct sbc_task *t)
{
	const struct spt_bdev_io *io = &t->io;
	uint32_t bs = t->bdev->block_size;

	if (!sbc_range_idle(&t->range))
		return true;	/* held since an earlier operation of this command */
	/* SBC-3 5.2: no other command may change the blocks of a COMPARE AND
	 * WRITE between its read and its write */
	if (t->excl)
		return sbc_range_acquire(t->bdev, &t->range, t->lba, t->nblocks, true,
					 sbc_range_granted);
	if (io->op == SPT_BDEV_WRITE || io->op == SPT_BDEV_UNMAP || io->op == SPT_BDEV_WRITE_ZEROES)
		return sbc_range_acquire(t->bdev, &t->range, io->offset / bs,
					 (io->length + bs - 1) / bs, false, sbc_range_granted);
	return true;
}

/*
 * Runs the operations of the current request until one is pending or the
 * request is finished. An operation that completes inside submit() is
 * processed here rather than recursively, so long chains use no stack.
 */
static void sbc_drive(struct sbc_task *t)
{
	for (;;) {
		if (!sbc_next_io(t)) {
			sbc_finish(t);
			return;
		}
		if (!sbc_io_range(t))
			return;	/* waits behind a conflicting range */
		t->in_submit = true;
		t->inline_done = false;
		t->bdev->ops->submit(t->bdev, &t->io);
		t->in_submit = false;
		if (!t->inline_done)
			return;	/* sbc_io_done() continues */
		sbc_io_result(t, t->inline_result);
	}
}

static void sbc_io_done(struct spt_bdev_io *io, int result)
{
	struct sbc_task *t = io->priv;

	if (t->in_submit) {
		t->inline_done = true;
		t->inline_result = result;
		return;
	}
	sbc_io_result(t, result);
	sbc_drive(t);
}

/* The range a command waited for is its own now: carry on with its I/O. */
static void sbc_range_granted(struct sbc_range *r)
{
	struct sbc_task *t = (struct sbc_task *)(void *)((uint8_t *)r - offsetof(struct sbc_task, range));

	sbc_drive(t);
}

static void sbc_prepare_io(struct sbc_task *t, uint8_t op, uint64_t offset, uint64_t length,
			   uint8_t *buf, uint32_t flags)
{
	struct spt_bdev_io *io = &t->io;

	memset(io, 0, sizeof(*io));
	io->bdev = t->bdev;
	io->op = op;
	io->flags = flags;
	io->offset = offset;
	io->length = length;
	io->buf = buf;
	io->done = sbc_io_done;
	io->priv = t;
}

/* ------------------------------------------------------------------ */
/* CDB checks common to the block commands                              */
/* ------------------------------------------------------------------ */

/*
 * Reserved bits, protection fields and the CONTROL byte. Returns false with
 * CHECK CONDITION set if the CDB is not acceptable.
 */
static bool sbc_check_fields(struct spt_bdev *bdev, struct spt_cmd *cmd,
			     const struct sbc_cdb_desc *d)
{
	const uint8_t *cdb = cmd->req.cdb;
	uint8_t control = cdb[d->len - 1];
	int bit;

	if (d->protect && (cdb[1] & 0xe0)) {
		/* SBC-3 protection information model: none here, so RD/WR/VR/ORPROTECT
		 * must be zero (INVALID FIELD IN CDB) */
		spc_invalid_field_in_cdb(bdev, cmd, 1, 7);
		return false;
	}
	for (uint8_t byte = 1; byte + 1 < d->len; byte++) {
		bit = sbc_high_bit(cdb[byte], d->reserved[byte]);
		if (bit >= 0) {
			/* SPC-4 reserved fields: a reserved field that is not zero is an invalid field */
			spc_invalid_field_in_cdb(bdev, cmd, byte, bit);
			return false;
		}
	}
	/* SAM-5 CONTROL byte: NACA=1 asks for ACA, which we do not support; LINK is obsolete */
	bit = sbc_high_bit(control, 0x05);
	if (bit >= 0) {
		spc_invalid_field_in_cdb(bdev, cmd, d->len - 1, bit);
		return false;
	}
	return true;
}

/* SBC-3 Block Limits VPD page: MAXIMUM TRANSFER LENGTH of the Block Limits VPD page. */
static bool sbc_check_transfer(struct spt_bdev *bdev, struct spt_cmd *cmd,
			       const struct sbc_cdb_desc *d, uint64_t bytes)
{
	if (bdev->max_transfer_bytes != 0 && bytes > bdev->max_transfer_bytes) {
		spc_invalid_field_in_cdb(bdev, cmd, d->count_off, -1);
		return false;
	}
	return true;
}

/* SBC-3 logical blocks model: LBA + count beyond the capacity is LBA OUT OF RANGE. */
static bool sbc_check_range(struct spt_bdev *bdev, struct spt_cmd *cmd, uint64_t lba, uint64_t n)
{
	if (sbc_lba_out_of_range(bdev, lba, n)) {
		spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE, 0);
		return false;
	}
	return true;
}

/*
 * How much data-out the command consumes: min(CDB transfer, EDTL), which must
 * be whole blocks. A shorter EDTL than the CDB asks for is honoured (only that
 * much is written, the engine reports the overflow residual) as libiscsi's
 * iSCSIResiduals tests expect; a partial block cannot be written and gets
 * INVALID FIELD IN COMMAND INFORMATION UNIT, which they also accept.
 */
static bool sbc_data_out_extent(struct spt_bdev *bdev, struct spt_cmd *cmd,
				const struct sbc_cdb_desc *d, uint64_t bytes, uint32_t *data_end)
{
	uint64_t n = bytes < cmd->req.expected_length ? bytes : cmd->req.expected_length;

	if (n % bdev->block_size != 0) {
		spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CMD_IU,
				    ASCQ_INVALID_FIELD_IN_CMD_IU);
		return false;
	}
	if (n > cmd->buf_len) {
		/* the engine cannot hold the transfer: as if above MAXIMUM TRANSFER LENGTH */
		spc_invalid_field_in_cdb(bdev, cmd, d->count_off, -1);
		return false;
	}
	*data_end = (uint32_t)n;
	return true;
}

/* ------------------------------------------------------------------ */
/* Decoding: one function per command family, on the first request      */
/* ------------------------------------------------------------------ */

/* Reads LBA and count; READ(6)/WRITE(6) pack a 21-bit LBA (SBC-3 READ(6), WRITE(6)). */
static void sbc_decode_lba_count(struct sbc_task *t, const struct sbc_cdb_desc *d)
{
	const uint8_t *cdb = t->cmd->req.cdb;

	if (d->len == 6) {
		t->lba = (uint64_t)(cdb[1] & 0x1f) << 16 | spt_get_be16(cdb + 2);
		/* SBC-3 READ(6)/WRITE(6): TRANSFER LENGTH 0 means 256 blocks */
		t->nblocks = cdb[4] ? cdb[4] : 256;
		return;
	}
	t->lba = d->lba_len ? sbc_get_be(cdb + d->lba_off, d->lba_len) : 0;
	t->nblocks = d->count_len ? sbc_get_be(cdb + d->count_off, d->count_len) : 0;
}

static bool sbc_setup_read(struct sbc_task *t, const struct sbc_cdb_desc *d)
{
	struct spt_bdev *bdev = t->bdev;
	struct spt_cmd *cmd = t->cmd;
	uint64_t bytes = t->nblocks * bdev->block_size;
	uint64_t len = bytes;

	t->transfer_length = sbc_clamp32(bytes);
	if (!sbc_check_transfer(bdev, cmd, d, bytes) || !sbc_check_range(bdev, cmd, t->lba, t->nblocks))
		return false;
	/* a smaller EDTL gets what fits; the engine reports the overflow
	 * residual (RFC 7143 SCSI Response residuals, libiscsi Read10Residuals) */
	if (len > cmd->req.expected_length)
		len = cmd->req.expected_length;
	if (len > cmd->buf_len) {
		/* the engine cannot hold the transfer: as if above MAXIMUM TRANSFER LENGTH */
		spc_invalid_field_in_cdb(bdev, cmd, d->count_off, -1);
		return false;
	}
	t->read_len = (uint32_t)len;
	t->phase = SBC_PH_READ;
	return true;
}

static bool sbc_setup_write(struct sbc_task *t, const struct sbc_cdb_desc *d)
{
	struct spt_bdev *bdev = t->bdev;
	struct spt_cmd *cmd = t->cmd;
	const uint8_t *cdb = cmd->req.cdb;
	uint64_t bytes = t->nblocks * bdev->block_size;

	t->transfer_length = sbc_clamp32(bytes);
	if (t->kind == SBC_WRITE_VERIFY) {
		t->bytchk = (cdb[1] >> 1) & 0x3;
		if (t->bytchk > 1) {
			/* SBC-3 WRITE AND VERIFY: BYTCHK is 0 or 1 for WRITE AND VERIFY */
			spc_invalid_field_in_cdb(bdev, cmd, 1, 2);
			return false;
		}
	}
	if (!sbc_check_transfer(bdev, cmd, d, bytes) ||
	    !sbc_check_range(bdev, cmd, t->lba, t->nblocks) ||
	    /* SBC-3 write protection: no medium writes on a write-protected LU (or SWP=1) */
	    spc_write_protected(bdev, cmd) ||
	    !sbc_data_out_extent(bdev, cmd, d, bytes, &t->data_end))
		return false;
	/* SBC-3 WRITE(10): FUA=1 makes the write durable before status; so does WCE=0
	 * (Caching mode page); WRITE AND VERIFY writes to the medium before verifying */
	t->fua = (d->len > 6 && (cdb[1] & 0x08)) || !spc_write_cache_enabled(bdev) ||
		 t->kind == SBC_WRITE_VERIFY;
	t->phase = t->kind == SBC_ORWRITE ? SBC_PH_OR_READ : SBC_PH_STREAM;
	/* SBC-3 ORWRITE reads and writes back the range: like COMPARE AND
	 * WRITE, no other write may slip in between */
	t->excl = t->kind == SBC_ORWRITE;
	return true;
}

static bool sbc_setup_verify(struct sbc_task *t, const struct sbc_cdb_desc *d)
{
	struct spt_bdev *bdev = t->bdev;
	struct spt_cmd *cmd = t->cmd;
	uint64_t bytes = t->nblocks * bdev->block_size;

	t->bytchk = (cmd->req.cdb[1] >> 1) & 0x3;
	if (t->bytchk == 2) {
		/* SBC-4 VERIFY: BYTCHK 10b is reserved */
		spc_invalid_field_in_cdb(bdev, cmd, 1, 2);
		return false;
	}
	/* SBC-4 VERIFY: BYTCHK 0 transfers nothing, 01b the range, 11b one block */
	t->transfer_length = t->bytchk == 0 || t->nblocks == 0 ? 0
			     : t->bytchk == 1		      ? sbc_clamp32(bytes)
							      : bdev->block_size;
	if (t->bytchk != 0 && !sbc_check_transfer(bdev, cmd, d, bytes))
		return false;
	if (!sbc_check_range(bdev, cmd, t->lba, t->nblocks))
		return false;
	t->phase = SBC_PH_DONE;
	if (t->bytchk == 0 || t->nblocks == 0)
		return true;
	if (t->bytchk == 1) {
		if (!sbc_data_out_extent(bdev, cmd, d, bytes, &t->data_end))
			return false;
		t->total = t->data_end;
		t->pattern = false;
	} else {
		if (!sbc_data_out_extent(bdev, cmd, d, bdev->block_size, &t->data_end))
			return false;
		if (t->data_end < bdev->block_size) {
			spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST,
					    ASC_INVALID_FIELD_IN_CMD_IU, ASCQ_INVALID_FIELD_IN_CMD_IU);
			return false;
		}
		t->total = bytes;
		t->pattern = true;
	}
	t->pos = 0;
	t->phase = SBC_PH_COMPARE;
	return true;
}

static bool sbc_setup_prefetch_sync(struct sbc_task *t, const struct sbc_cdb_desc *d)
{
	struct spt_bdev *bdev = t->bdev;
	struct spt_cmd *cmd = t->cmd;
	uint64_t n = t->nblocks;

	/* SBC-3 PRE-FETCH / SYNCHRONIZE CACHE: a count of 0 means up to the last LBA */
	if (!sbc_check_range(bdev, cmd, t->lba, n))
		return false;
	t->transfer_length = 0;
	if (t->kind == SBC_PREFETCH) {
		/*
		 * SBC-3 PRE-FETCH: nothing is guaranteed to be held in a cache here (the
		 * page cache is the host's), which is the "cache too small" case:
		 * GOOD, not CONDITION MET. libiscsi Prefetch10/16 expect GOOD.
		 */
		t->phase = SBC_PH_DONE;
		return true;
	}
	/*
	 * SBC-3 SYNCHRONIZE CACHE: IMMED=1 allows status before the flush ends. We still wait:
	 * a flush nobody waits for would consume the backing store's write-back
	 * error (fsync reports it once), and the next SYNCHRONIZE CACHE would
	 * then claim durability for lost data (DESIGN.md, durability contract).
	 */
	t->phase = SBC_PH_FLUSH;
	return true;
}

/* SBC-3 WRITE SAME: beyond MAXIMUM WRITE SAME LENGTH (Block Limits VPD page). */
static bool sbc_check_write_same_length(struct spt_bdev *bdev, struct spt_cmd *cmd,
					const struct sbc_cdb_desc *d, uint64_t nblocks)
{
	if (nblocks > SPC_MAX_WRITE_SAME_BLOCKS) {
		spc_invalid_field_in_cdb(bdev, cmd, d->count_off, -1);
		return false;
	}
	return true;
}

static bool sbc_setup_write_same(struct sbc_task *t, const struct sbc_cdb_desc *d)
{
	struct spt_bdev *bdev = t->bdev;
	struct spt_cmd *cmd = t->cmd;
	const uint8_t *cdb = cmd->req.cdb;
	bool anchor = cdb[1] & 0x10;

	t->unmap = cdb[1] & 0x08;
	t->ndob = d->len == 16 && (cdb[1] & 0x01);
	t->transfer_length = t->ndob ? 0 : bdev->block_size;
	if (anchor) {
		/* SBC-3 WRITE SAME, ANCHOR/UNMAP table: ANCHOR=1 without UNMAP, or
		 * without ANC_SUP (we report 0), is INVALID FIELD IN CDB */
		spc_invalid_field_in_cdb(bdev, cmd, 1, 4);
		return false;
	}
	if (t->nblocks == 0 && SPC_WRITE_SAME_NO_ZERO) {
		/* SBC-3 WRITE SAME, Block Limits VPD: with WSNZ=1 NUMBER OF
		 * LOGICAL BLOCKS must not be 0 */
		spc_invalid_field_in_cdb(bdev, cmd, d->count_off, -1);
		return false;
	}
	if (!sbc_check_write_same_length(bdev, cmd, d, t->nblocks) ||
	    !sbc_check_range(bdev, cmd, t->lba, t->nblocks))
		return false;
	/* SBC-3 WRITE SAME: NUMBER OF BLOCKS 0 writes up to the last LBA (when WSNZ=0) */
	if (t->nblocks == 0)
		t->nblocks = bdev->num_blocks - t->lba;
	if (!sbc_check_write_same_length(bdev, cmd, d, t->nblocks))
		return false;
	if (spc_write_protected(bdev, cmd))
		return false;
	if (t->unmap && !bdev->thin) {
		/* SBC-3 Logical Block Provisioning VPD: LBPWS/LBPWS10 are 0 on a
		 * fully provisioned LU */
		spc_invalid_field_in_cdb(bdev, cmd, 1, 3);
		return false;
	}
	if (!t->ndob && cmd->req.expected_length != bdev->block_size) {
		/* one logical block of data-out, no more and no less (libiscsi
		 * WriteSame*.InvalidDataOutSize) */
		spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CMD_IU,
				    ASCQ_INVALID_FIELD_IN_CMD_IU);
		return false;
	}
	if (!t->ndob && cmd->buf_len < bdev->block_size) {
		spc_invalid_field_in_cdb(bdev, cmd, d->count_off, -1);
		return false;
	}
	t->data_end = t->ndob ? 0 : bdev->block_size;
	t->fua = !spc_write_cache_enabled(bdev);
	t->flush_after = t->fua;
	t->phase = SBC_PH_WS_RANGE;	/* refined on the final request */
	return true;
}

/*
 * SBC-3 5.2 COMPARE AND WRITE: n blocks are read and compared with the first
 * half of 2 x n blocks of data-out; if equal, the second half is written.
 */
static bool sbc_setup_compare_and_write(struct sbc_task *t, const struct sbc_cdb_desc *d)
{
	struct spt_bdev *bdev = t->bdev;
	struct spt_cmd *cmd = t->cmd;
	uint32_t bs = bdev->block_size;
	uint32_t max = sbc_caw_max_blocks(bdev);
	uint64_t bytes = 2 * t->nblocks * bs;

	t->transfer_length = sbc_clamp32(bytes);
	/* SBC-3 5.2: NUMBER OF LOGICAL BLOCKS above MAXIMUM COMPARE AND WRITE
	 * LENGTH (Block Limits VPD page) is INVALID FIELD IN CDB */
	if (t->nblocks > max) {
		spc_invalid_field_in_cdb(bdev, cmd, d->count_off, -1);
		return false;
	}
	/* Data-out for more blocks than that is a count above the limit that the
	 * one-byte field could not carry (libiscsi CompareAndWrite.Simple sends
	 * 256 blocks, which the field wraps to 0): the same error */
	if (cmd->req.expected_length / (2ull * bs) > max) {
		spc_invalid_field_in_cdb(bdev, cmd, d->count_off, -1);
		return false;
	}
	if (!sbc_check_range(bdev, cmd, t->lba, t->nblocks) ||
	    /* SBC-3 write protection: no medium writes on a write-protected LU */
	    spc_write_protected(bdev, cmd))
		return false;
	if (t->nblocks == 0) {
		/* SBC-3 5.2: NUMBER OF LOGICAL BLOCKS 0 is not an error; nothing is
		 * read, compared or written (data-out, if any, is a residual) */
		t->phase = SBC_PH_DONE;
		return true;
	}
	if (cmd->req.expected_length != bytes) {
		/* SBC-3 5.2: the data-out is exactly 2 x n blocks; with more or less
		 * the halves cannot be told apart (libiscsi
		 * CompareAndWrite.InvalidDataOutSize) */
		spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CMD_IU,
				    ASCQ_INVALID_FIELD_IN_CMD_IU);
		return false;
	}
	if (bytes > cmd->buf_len) {
		/* the engine cannot hold the transfer: as if above the maximum */
		spc_invalid_field_in_cdb(bdev, cmd, d->count_off, -1);
		return false;
	}
	t->data_end = (uint32_t)bytes;
	/* SBC-3 5.2: FUA=1 makes the write durable before status; so does WCE=0 */
	t->fua = (cmd->req.cdb[1] & 0x08) || !spc_write_cache_enabled(bdev);
	t->excl = true;
	t->phase = SBC_PH_CAW_READ;	/* on the final request, all data in */
	return true;
}

static bool sbc_setup_unmap(struct sbc_task *t, const struct sbc_cdb_desc *d)
{
	struct spt_bdev *bdev = t->bdev;
	struct spt_cmd *cmd = t->cmd;
	uint32_t pll = spt_get_be16(cmd->req.cdb + 7);

	t->transfer_length = pll;
	if (cmd->req.cdb[1] & 0x01) {
		/* SBC-3 UNMAP: ANCHOR=1 with ANC_SUP=0 is INVALID FIELD IN CDB */
		spc_invalid_field_in_cdb(bdev, cmd, 1, 0);
		return false;
	}
	if (pll > 0 && pll < SBC_UNMAP_HEADER_LEN) {
		/* SBC-3 UNMAP: a list shorter than its header */
		spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, ASC_PARAMETER_LIST_LENGTH_ERROR, 0);
		return false;
	}
	if (spc_write_protected(bdev, cmd))
		return false;
	t->flush_after = !spc_write_cache_enabled(bdev);
	t->phase = SBC_PH_UNMAP;	/* the list is parsed on the final request */
	return true;
}

/* SBC-3 READ CAPACITY(10). */
static void sbc_read_capacity10(struct sbc_task *t)
{
	struct spt_bdev *bdev = t->bdev;
	struct spt_cmd *cmd = t->cmd;
	uint8_t data[SBC_READ_CAPACITY10_LEN];
	uint64_t last = bdev->num_blocks ? bdev->num_blocks - 1 : 0;

	if (!(cmd->req.cdb[8] & 0x01) && spt_get_be32(cmd->req.cdb + 2) != 0) {
		/* SBC-3 READ CAPACITY(10): LBA must be 0 when PMI is 0 */
		spc_invalid_field_in_cdb(bdev, cmd, 2, -1);
		return;
	}
	/* SBC-3 READ CAPACITY(10) data: FFFFFFFFh tells the client to use READ CAPACITY(16) */
	spt_put_be32(data, last > 0xfffffffeull ? 0xffffffffu : (uint32_t)last);
	spt_put_be32(data + 4, bdev->block_size);
	spc_data_in(cmd, data, sizeof(data));
	t->transfer_length = cmd->cpl.transfer_length;
}

/* SBC-3 READ CAPACITY(16). */
static void sbc_read_capacity16(struct sbc_task *t)
{
	struct spt_bdev *bdev = t->bdev;
	struct spt_cmd *cmd = t->cmd;
	const uint8_t *cdb = cmd->req.cdb;
	uint8_t data[SBC_READ_CAPACITY16_LEN];
	uint32_t alloc = spt_get_be32(cdb + 10);
	/* bytes 2-9 (LBA) and byte 14 bit 0 (PMI) are obsolete in SBC-3 */
	int bit = sbc_high_bit(cdb[14], 0xfe);

	if (bit >= 0) {
		spc_invalid_field_in_cdb(bdev, cmd, 14, bit);
		return;
	}
	memset(data, 0, sizeof(data));
	spt_put_be64(data, bdev->num_blocks ? bdev->num_blocks - 1 : 0);
	spt_put_be32(data + 8, bdev->block_size);
	/* byte 12: P_TYPE 0, PROT_EN 0; byte 13: P_I_EXPONENT 0, one logical
	 * block per physical block; bytes 14-15: LOWEST ALIGNED LBA 0 */
	if (bdev->thin)
		data[14] = 0x80 | 0x40;	/* LBPME: provisioning management; LBPRZ: unmapped reads 0 */
	/* SPC-4 allocation length: an allocation length of 0 is not an error */
	spc_data_in(cmd, data, alloc < sizeof(data) ? alloc : (uint32_t)sizeof(data));
	t->transfer_length = cmd->cpl.transfer_length;
}

/* SBC-3 GET LBA STATUS, from bdev->ops->map_status. */
static void sbc_get_lba_status(struct sbc_task *t)
{
	struct spt_bdev *bdev = t->bdev;
	struct spt_cmd *cmd = t->cmd;
	const uint8_t *cdb = cmd->req.cdb;
	uint8_t data[SBC_LBA_STATUS_HEADER_LEN +
		     SBC_LBA_STATUS_MAX_DESCRIPTORS * SBC_LBA_STATUS_DESCRIPTOR_LEN];
	uint64_t start = spt_get_be64(cdb + 2), cur;
	uint32_t alloc = spt_get_be32(cdb + 10);
	uint32_t want, nd = 0, len;
	uint8_t *prev = NULL;
	int bit = sbc_high_bit(cdb[14], 0xff);

	if (bit >= 0) {
		spc_invalid_field_in_cdb(bdev, cmd, 14, bit);
		return;
	}
	if (start >= bdev->num_blocks) {
		/* SBC-3 GET LBA STATUS: the starting LBA must be on the medium */
		spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE, 0);
		return;
	}
	want = alloc >= SBC_LBA_STATUS_HEADER_LEN + SBC_LBA_STATUS_DESCRIPTOR_LEN
		       ? (alloc - SBC_LBA_STATUS_HEADER_LEN) / SBC_LBA_STATUS_DESCRIPTOR_LEN
		       : 1;
	if (want > SBC_LBA_STATUS_MAX_DESCRIPTORS)
		want = SBC_LBA_STATUS_MAX_DESCRIPTORS;
	memset(data, 0, sizeof(data));
	cur = start;
	for (unsigned lookups = 0; cur < bdev->num_blocks && lookups < SBC_LBA_STATUS_MAX_LOOKUPS;
	     lookups++) {
		bool mapped = true;
		uint64_t ext = (bdev->num_blocks - cur) * bdev->block_size, n;
		uint8_t status;

		if (bdev->ops->map_status != NULL) {
			int rc = bdev->ops->map_status(bdev, cur * bdev->block_size, &mapped, &ext);

			if (rc < 0) {
				sbc_io_error(t, rc, true);
				return;
			}
		}
		n = ext / bdev->block_size;
		if (n == 0) {
			/* a partly mapped block is mapped */
			n = 1;
			mapped = true;
		}
		if (n > bdev->num_blocks - cur)
			n = bdev->num_blocks - cur;
		/* SBC-3 LBA status descriptor: 0 mapped (or unknown), 1 deallocated */
		status = mapped ? 0 : 1;
		if (prev != NULL && prev[12] == status &&
		    (uint64_t)spt_get_be32(prev + 8) + n <= UINT32_MAX) {
			/* the backend split an extent of one state: keep one descriptor */
			spt_put_be32(prev + 8, spt_get_be32(prev + 8) + (uint32_t)n);
		} else {
			uint8_t *desc;

			if (nd == want)
				break;
			if (n > UINT32_MAX)
				n = UINT32_MAX;
			desc = data + SBC_LBA_STATUS_HEADER_LEN + nd * SBC_LBA_STATUS_DESCRIPTOR_LEN;
			spt_put_be64(desc, cur);
			spt_put_be32(desc + 8, (uint32_t)n);
			desc[12] = status;
			prev = desc;
			nd++;
		}
		cur += n;
	}
	len = SBC_LBA_STATUS_HEADER_LEN + nd * SBC_LBA_STATUS_DESCRIPTOR_LEN;
	/* PARAMETER DATA LENGTH counts the bytes after itself */
	spt_put_be32(data, len - 4);
	spc_data_in(cmd, data, alloc < len ? alloc : len);
	t->transfer_length = cmd->cpl.transfer_length;
}

static void sbc_service_action_in(struct sbc_task *t)
{
	struct spt_cmd *cmd = t->cmd;

	switch (cmd->req.cdb[1] & 0x1f) {
	case SBC_SA_READ_CAPACITY16:
		sbc_read_capacity16(t);
		break;
	case SBC_SA_GET_LBA_STATUS:
		sbc_get_lba_status(t);
		break;
	default:
		/* SPC-4 operation codes: an unsupported service action is INVALID FIELD IN CDB */
		spc_invalid_field_in_cdb(t->bdev, cmd, 1, 4);
		break;
	}
}

/*
 * First request of a block command: decode and check the CDB into t. Returns
 * false with CHECK CONDITION set if the command ends here.
 */
static bool sbc_setup(struct sbc_task *t, const struct sbc_cdb_desc *d)
{
	struct spt_bdev *bdev = t->bdev;
	struct spt_cmd *cmd = t->cmd;

	if (d->kind == SBC_UNMAP && !bdev->thin) {
		/* SBC-3 Logical Block Provisioning VPD: LBPU=0, UNMAP is not supported on this LU */
		sbc_invalid_opcode(bdev, cmd);
		return false;
	}
	if (!sbc_check_fields(bdev, cmd, d))
		return false;
	/* SBC-3 START STOP UNIT model: a stopped LU answers media access commands NOT READY */
	if (!spc_unit_ready(bdev, cmd))
		return false;
	t->kind = d->kind;
	sbc_decode_lba_count(t, d);
	switch (d->kind) {
	case SBC_READ:
		return sbc_setup_read(t, d);
	case SBC_WRITE:
	case SBC_WRITE_VERIFY:
	case SBC_ORWRITE:
		return sbc_setup_write(t, d);
	case SBC_VERIFY:
		return sbc_setup_verify(t, d);
	case SBC_PREFETCH:
	case SBC_SYNC_CACHE:
		return sbc_setup_prefetch_sync(t, d);
	case SBC_WRITE_SAME:
		return sbc_setup_write_same(t, d);
	case SBC_UNMAP:
		return sbc_setup_unmap(t, d);
	case SBC_COMPARE_AND_WRITE:
		return sbc_setup_compare_and_write(t, d);
	case SBC_READ_CAPACITY10:
	case SBC_SERVICE_ACTION_IN:
		t->phase = SBC_PH_DONE;
		return true;
	}
	sbc_invalid_opcode(bdev, cmd);
	return false;
}

/* ------------------------------------------------------------------ */
/* Final request of the commands that need all their data-out           */
/* ------------------------------------------------------------------ */

static uint32_t sbc_received(const struct spt_cmd *cmd)
{
	uint64_t r = (uint64_t)cmd->req.sequence_byte_offset + cmd->req.data_length;

	return r > cmd->buf_len ? cmd->buf_len : (uint32_t)r;
}

/* Checks that all the data-out the command needs has arrived. */
static bool sbc_have_data(struct sbc_task *t)
{
	if (sbc_received(t->cmd) < t->data_end) {
		spc_check_condition(t->bdev, t->cmd, SPT_KEY_ABORTED_COMMAND, ASC_WRITE_ERROR,
				    ASCQ_NOT_ENOUGH_UNSOLICITED);
		t->phase = SBC_PH_DONE;
		return false;
	}
	return true;
}

static bool sbc_all_zero(const uint8_t *p, size_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

static void sbc_final_write_same(struct sbc_task *t)
{
	uint32_t bs = t->bdev->block_size;
	uint64_t chunk;

	if (!t->ndob && !sbc_have_data(t))
		return;
	if (t->ndob || sbc_all_zero(t->cmd->buf, bs)) {
		/* SBC-3 WRITE SAME, ANCHOR/UNMAP table: UNMAP=1 on a thin LU deallocates; LBPRZ=1
		 * makes the result read as the zeros that were asked for */
		t->phase = SBC_PH_WS_RANGE;
		return;
	}
	/*
	 * SBC-4 WRITE SAME(10): reads must return the block that was sent, so a non-zero
	 * pattern is written even when UNMAP=1 (unmapped blocks read as zeros).
	 */
	chunk = t->nblocks * bs;
	if (chunk > SBC_CHUNK_BYTES)
		chunk = SBC_CHUNK_BYTES - SBC_CHUNK_BYTES % bs;
	if (!sbc_alloc_aux(t, chunk)) {
		t->phase = SBC_PH_DONE;
		return;
	}
	for (uint64_t off = 0; off < chunk; off += bs)
		memcpy(t->aux + off, t->cmd->buf, bs);
	t->aux_len = (uint32_t)chunk;
	t->pos = 0;
	t->total = t->nblocks * bs;
	t->flush_after = false;	/* the pattern writes carry FUA themselves */
	t->phase = SBC_PH_WS_PATTERN;
}

/* SBC-3 UNMAP: checks the parameter list before deallocating anything. */
static void sbc_final_unmap(struct sbc_task *t)
{
	struct spt_bdev *bdev = t->bdev;
	struct spt_cmd *cmd = t->cmd;
	uint32_t avail = t->transfer_length, bd_len, count;

	if (avail == 0) {
		t->phase = SBC_PH_DONE;	/* SBC-3 UNMAP: no list, nothing to do */
		return;
	}
	if (sbc_received(cmd) < avail)
		avail = sbc_received(cmd);
	if (avail < SBC_UNMAP_HEADER_LEN) {
		spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, ASC_PARAMETER_LIST_LENGTH_ERROR, 0);
		t->phase = SBC_PH_DONE;
		return;
	}
	/* SBC-3 UNMAP parameter list: descriptors beyond the list, or a partial last one, are ignored */
	bd_len = spt_get_be16(cmd->buf + 2);
	if (bd_len > avail - SBC_UNMAP_HEADER_LEN)
		bd_len = avail - SBC_UNMAP_HEADER_LEN;
	count = bd_len / SBC_UNMAP_DESCRIPTOR_LEN;
	if (count > SPC_MAX_UNMAP_DESCRIPTORS) {
		/* SBC-3 UNMAP parameter list: more than MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT */
		spc_invalid_field_in_param(bdev, cmd, 2, -1);
		t->phase = SBC_PH_DONE;
		return;
	}
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *d = cmd->buf + SBC_UNMAP_HEADER_LEN + i * SBC_UNMAP_DESCRIPTOR_LEN;

		if (sbc_lba_out_of_range(bdev, spt_get_be64(d), spt_get_be32(d + 8))) {
			spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE, 0);
			t->phase = SBC_PH_DONE;
			return;
		}
	}
	t->unmap_idx = 0;
	t->unmap_count = (uint16_t)count;
	t->phase = SBC_PH_UNMAP;
}

/* Sets up the phase that acts on the final request's complete data-out. */
static void sbc_final(struct sbc_task *t)
{
	switch (t->kind) {
	case SBC_WRITE_SAME:
		sbc_final_write_same(t);
		break;
	case SBC_UNMAP:
		sbc_final_unmap(t);
		break;
	case SBC_ORWRITE:
	case SBC_VERIFY:
	case SBC_COMPARE_AND_WRITE:
		if (t->phase != SBC_PH_DONE)
			sbc_have_data(t);
		break;
	case SBC_READ_CAPACITY10:
		sbc_read_capacity10(t);
		break;
	case SBC_SERVICE_ACTION_IN:
		sbc_service_action_in(t);
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Entry point                                                          */
/* ------------------------------------------------------------------ */

void spt_bdev_execute(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	const struct sbc_cdb_desc *d;
	struct sbc_task *t = sbc_task_of(cmd);
	bool first = cmd->req.sequence_byte_offset == 0;
	uint8_t opcode = cmd->req.cdb[0];

	if (first) {
		/* SAM-5 unit attention condition: a pending one ends the command */
		if (spc_report_unit_attention(bdev, cmd)) {
			spt_cmd_complete(cmd);
			return;
		}
		/* SPC-4 5.16.2.4: a target port group in standby or unavailable
		 * serves only some commands (alua.c) */
		if (alua_check(bdev, cmd)) {
			spt_cmd_complete(cmd);
			return;
		}
		/* SPC-4 5.13.1, SBC-3 4.17: a reservation this I_T nexus may not
		 * pass ends the command with RESERVATION CONFLICT (pr.c) */
		if (pr_conflict(bdev, cmd)) {
			spt_cmd_complete(cmd);
			return;
		}
	}
	d = sbc_lookup(opcode);
	if (d == NULL && cmd->req.is_final && spc_stop_needs_flush(bdev, cmd)) {
		/* SBC-3 START STOP UNIT: stopping with NO_FLUSH=0 first writes
		 * the cache to the medium; spc_execute() runs once that is done */
		memset(t, 0, sizeof(*t));
		t->bdev = bdev;
		t->cmd = cmd;
		t->spc_after_flush = true;
		t->phase = SBC_PH_FLUSH;
		sbc_drive(t);
		return;
	}
	if (d == NULL && xcopy_opcode(opcode)) {
		/* SPC-4 6.4 EXTENDED COPY / 6.18 RECEIVE COPY RESULTS: third-party
		 * copy, asynchronous like the block commands */
		xcopy_execute(bdev, cmd);
		return;
	}
	if (d == NULL) {
		if (!cmd->req.is_final) {
			/* SPC data-out commands (MODE SELECT ...) act on all their data */
		} else if (!spc_execute(bdev, cmd)) {
			/* SPC-4 INVALID COMMAND OPERATION CODE: neither an SBC nor an SPC command we know */
			sbc_invalid_opcode(bdev, cmd);
		}
		spt_cmd_complete(cmd);
		return;
	}

	if (first) {
		memset(t, 0, sizeof(*t));
		t->bdev = bdev;
		t->cmd = cmd;
		if (!sbc_setup(t, d)) {
			cmd->cpl.transfer_length = t->transfer_length;
			spt_cmd_complete(cmd);
			return;
		}
	}
	t->cmd = cmd;
	t->bdev = bdev;
	if (t->phase == SBC_PH_STREAM) {
		/* WRITE family: write what arrived, whether final or not */
		sbc_drive(t);
		return;
	}
	if (!cmd->req.is_final) {
		/* GOOD: the command acts once all its data-out is in */
		cmd->cpl.transfer_length = t->transfer_length;
		spt_cmd_complete(cmd);
		return;
	}
	sbc_final(t);
	sbc_drive(t);
}
