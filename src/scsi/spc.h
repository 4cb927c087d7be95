/*
 * SPC-4 part of the emulation helpers, used by the SBC dispatcher (sbc.c).
 * Internal to src/scsi/.
 */
#ifndef SCSI_SPC_H
#define SCSI_SPC_H

#include <spt/scsi.h>

/* Control mode page D_SENSE: sense in descriptor format. */
bool spc_sense_descriptor(const struct spt_bdev *bdev);
/* Caching mode page WCE: false means every write must be durable (FUA). */
bool spc_write_cache_enabled(const struct spt_bdev *bdev);

/*
 * If the command's I_T nexus has a pending unit attention and the opcode is
 * not one that SPC-4 5.14 lets through (INQUIRY, REPORT LUNS, REQUEST
 * SENSE), reports the oldest one as CHECK CONDITION / UNIT ATTENTION, clears
 * it and returns true. The caller then completes the command.
 */
bool spc_report_unit_attention(struct spt_bdev *bdev, struct spt_cmd *cmd);

/* Queues a unit attention for every I_T nexus except `except` (0 = all). */
void spc_unit_attention_all(struct spt_bdev *bdev, uint64_t except, uint8_t asc, uint8_t ascq);
/* Queues a unit attention for one I_T nexus (ITNexusHandle), if known. */
void spc_unit_attention_nexus(struct spt_bdev *bdev, uint64_t handle, uint8_t asc, uint8_t ascq);
/* The TPGT in the SESSION_START of an I_T nexus (its target port, alua.c),
 * 0 if unknown. */
uint16_t spc_nexus_tpgt(const struct spt_bdev *bdev, uint64_t handle);
/* The LU's reservation state (pr.c), NULL before spt_bdev_init(). */
struct pr_state *spc_pr_state(const struct spt_bdev *bdev);

/*
 * Executes an SPC command synchronously (INQUIRY, MODE SENSE/SELECT(6/10),
 * REQUEST SENSE, TEST UNIT READY, REPORT SUPPORTED OPERATION CODES, START
 * STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL ...). Returns true if the opcode
 * was one of them (cmd->cpl is then filled and the caller completes it),
 * false if it is not an SPC command this module handles.
 */
bool spc_execute(struct spt_bdev *bdev, struct spt_cmd *cmd);

/* Copies up to cmd->buf_len bytes of data-in; transfer_length = len. */
void spc_data_in(struct spt_cmd *cmd, const void *data, uint32_t len);

/* Shorthands with the bdev's sense format. */
void spc_invalid_field_in_cdb(struct spt_bdev *bdev, struct spt_cmd *cmd, uint16_t byte, int bit);
void spc_check_condition(struct spt_bdev *bdev, struct spt_cmd *cmd, uint8_t key, uint8_t asc,
			 uint8_t ascq);

/* ------------------------------------------------------------------ */
/* Added by the SPC half (spc.c) for sbc.c; not in the original split.  */
/* ------------------------------------------------------------------ */

/*
 * Limits spc.c advertises in the Block Limits VPD page (SBC-3 6.5.3); sbc.c
 * enforces the same numbers. SPC_WRITE_SAME_NO_ZERO is the WSNZ bit: a WRITE
 * SAME with NUMBER OF LOGICAL BLOCKS zero gets INVALID FIELD IN CDB.
 */
#define SPC_MAX_UNMAP_LBA_COUNT 0xFFFFFFFFu	/* thin LUs only, else 0 */
#define SPC_MAX_UNMAP_DESCRIPTORS 256u		/* thin LUs only, else 0 */
/* WRITE SAME(10)'s limit: bounds the time one command can take, and keeps
 * libiscsi's 65536-block WRITE SAME(16) probe (which first WRITEs that many
 * blocks, beyond MAXIMUM TRANSFER LENGTH) on its expect-an-error path. */
#define SPC_MAX_WRITE_SAME_BLOCKS 65535u
#define SPC_WRITE_SAME_NO_ZERO 1

/*
 * SBC-3 4.20: after START STOP UNIT with START=0 the LU is stopped and media
 * access commands (READ, WRITE, VERIFY, SYNCHRONIZE CACHE, UNMAP, READ
 * CAPACITY, ...) get NOT READY, LOGICAL UNIT NOT READY, INITIALIZING COMMAND
 * REQUIRED (02/04/02). Returns true if the LU is ready; otherwise sets that
 * CHECK CONDITION on cmd and returns false.
 */
bool spc_unit_ready(const struct spt_bdev *bdev, struct spt_cmd *cmd);

/*
 * SBC-3 4.11: writes to a write-protected LU (bdev->read_only, or the SWP bit
 * of the Control mode page set by MODE SELECT) fail with DATA PROTECT, WRITE
 * PROTECTED (07/27/00) or SOFTWARE WRITE PROTECTED (07/27/02). Returns true
 * and sets that CHECK CONDITION if protected; false if writes are allowed.
 */
bool spc_write_protected(const struct spt_bdev *bdev, struct spt_cmd *cmd);
/* The WP bit as MODE SENSE reports it, without touching a command. */
bool spc_write_protect_active(const struct spt_bdev *bdev);

/*
 * SBC-3 5.25: START STOP UNIT that stops the LU with NO_FLUSH=0 must first
 * write cached data to the medium. spc_execute() cannot wait for I/O, so the
 * dispatcher checks this before calling spc_execute(): if true, it submits
 * SPT_BDEV_FLUSH and calls spc_execute() from the flush completion (or fails
 * the command with the flush error).
 */
bool spc_stop_needs_flush(const struct spt_bdev *bdev, const struct spt_cmd *cmd);

/* INVALID FIELD IN PARAMETER LIST (26/00) in the bdev's sense format. */
void spc_invalid_field_in_param(struct spt_bdev *bdev, struct spt_cmd *cmd, uint16_t byte, int bit);

/* Between spc*.c files only: INQUIRY (spc_inquiry.c) and REPORT SUPPORTED
 * OPERATION CODES (spc_rsoc.c), called from spc_execute(). */
void spc_inquiry(struct spt_bdev *bdev, struct spt_cmd *cmd);
void spc_report_supported_opcodes(struct spt_bdev *bdev, struct spt_cmd *cmd);

/* ------------------------------------------------------------------ */
/* COMPARE AND WRITE (sbc.c) and EXTENDED COPY (xcopy.c)                */
/* ------------------------------------------------------------------ */

/*
 * SBC-3 5.2 COMPARE AND WRITE: the MAXIMUM COMPARE AND WRITE LENGTH of the
 * Block Limits VPD page, in blocks (its field is one byte). A LU whose
 * engine buffer cannot hold the 2 x n blocks of data-out advertises less:
 * sbc_caw_max_blocks() is what both the VPD page and the check use.
 */
#define SBC_CAW_MAX_BLOCKS 255u

static inline uint32_t sbc_caw_max_blocks(const struct spt_bdev *bdev)
{
	uint32_t by_buffer = bdev->max_transfer_bytes / 2 / bdev->block_size;

	if (bdev->max_transfer_bytes == 0 || by_buffer > SBC_CAW_MAX_BLOCKS)
		return SBC_CAW_MAX_BLOCKS;
	return by_buffer;
}

/*
 * LBA range locks of one bdev (sbc.c). A COMPARE AND WRITE holds its range
 * exclusively from before its read until its write completed; every write
 * to the medium (WRITE family, WRITE SAME, UNMAP, the destination writes of
 * EXTENDED COPY) holds its range shared while the backing-store operation
 * is in flight. Shared holders take a lock-free path (two atomic counters)
 * as long as no exclusive holder or waiter exists; a conflicting request
 * waits in a FIFO and is resumed, in order, by the release that frees it.
 */
struct sbc_range {
	uint64_t lba;
	uint64_t count;
	bool exclusive;
	uint8_t state;				/* enum sbc_range_state (sbc.c) */
	struct sbc_range *next, *prev;		/* holders list or wait queue */
	struct sbc_range *grant_next;		/* the granting thread's resume queue */
	/* a waiter that now holds its range; called outside any lock, on the
	 * thread of the release that freed it */
	void (*granted)(struct sbc_range *r);
};

/* A range neither held nor waited for (state 0, as memset leaves it). */
static inline bool sbc_range_idle(const struct sbc_range *r)
{
	return r->state == 0;
}

struct sbc_ranges;
struct sbc_ranges *sbc_ranges_new(void);
void sbc_ranges_free(struct sbc_ranges *rs);
/* Per-LU range lock state, NULL before spt_bdev_init() (no locking then). */
struct sbc_ranges *spc_ranges(const struct spt_bdev *bdev);

/* Takes [lba, lba + count) of bdev. true: held now. false: queued, and
 * r->granted(r) runs once it is held. */
bool sbc_range_acquire(struct spt_bdev *bdev, struct sbc_range *r, uint64_t lba, uint64_t count,
		       bool exclusive, void (*granted)(struct sbc_range *r));
/* Gives back a range that is held (or stops waiting for it); resumes the
 * waiters it was blocking. An idle range is left alone. */
void sbc_range_release(struct spt_bdev *bdev, struct sbc_range *r);

/* EXTENDED COPY / RECEIVE COPY RESULTS per-LU state and the registry of the
 * process's bdevs (xcopy.c), kept by spt_bdev_init()/spt_bdev_fini(). */
struct xcopy_lu;
struct xcopy_lu *xcopy_lu_register(struct spt_bdev *bdev);
void xcopy_lu_unregister(struct xcopy_lu *lu);
struct xcopy_lu *spc_xcopy_lu(const struct spt_bdev *bdev);
/* SPC-4: copy results held for an I_T nexus go with it (I_T nexus loss,
 * and the logical unit reset that discards every nexus's state). */
void xcopy_lu_forget(struct xcopy_lu *lu, uint64_t itnexus_handle, bool all);

#endif
