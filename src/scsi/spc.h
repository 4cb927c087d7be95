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

#endif
