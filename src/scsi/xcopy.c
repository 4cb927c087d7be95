/*
 * EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 5.16, 6.4, 6.18):
 * the copy manager of a block LU. A copy names its source and destination
 * LUs by identification descriptor CSCDs carrying the NAA designator of
 * their Device Identification VPD page; every bdev of the process registers
 * here (spt_bdev_init) so that a copy reaches any LU of the same iSCSI
 * target, the one the command came to included. The data moves as chunked
 * reads and writes through the LUs' own submit() operations, one chunk in
 * flight per command, and the destination writes take the LBA range locks
 * of sbc.c like any other write (COMPARE AND WRITE stays atomic).
 *
 * A copy only reaches LUs of the target that received the command: the
 * initiator could reach those anyway (the target's ACL admits it to all its
 * LUs), while a designator of another target's LU must not be a way around
 * that target's ACL.
 *
 * Copy results are kept per LU and I_T nexus (SPC-4 6.4.3.2, LIST ID
 * USAGE): in progress for every identified copy, held after completion for
 * LIST ID USAGE 00b until RECEIVE COPY RESULTS reports them, the nexus goes
 * or the table needs the room.
 *
 * Threads: a copy calls the submit() of the LUs it names from the thread
 * that runs the command, and their completions continue it. In sptd all
 * LUs share one event loop; a process that serves LUs from several threads
 * needs backends whose submit() any thread may call.
 */
#include "scsi/xcopy.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "scsi/spc.h"

/* SPC-4 6.4.1 EXTENDED COPY(LID1) CDB and 6.4.3 parameter list. */
#define XCOPY_CDB_LEN 16
#define XCOPY_HEADER_LEN 16		/* parameter list header */
#define XCOPY_CSCD_LEN 32		/* every CSCD descriptor type E0h..E9h */
#define XCOPY_SEG_HEADER_LEN 4		/* type, flags, DESCRIPTOR LENGTH */
#define XCOPY_B2B_LEN 28		/* block to block: DESCRIPTOR LENGTH 0018h + 4 */
#define XCOPY_USAGE_HOLD 0x0		/* LIST ID USAGE 00b: hold results */
#define XCOPY_USAGE_RESERVED 0x1
#define XCOPY_USAGE_NO_HOLD 0x2		/* 10b: identified, nothing held */
#define XCOPY_USAGE_NO_LIST_ID 0x3	/* 11b: LIST IDENTIFIER 0, not identified */
/* SPC-4 6.4.5.5 identification descriptor CSCD fields. */
#define XCOPY_PDT_MASK 0x1f
#define XCOPY_PDT_BLOCK 0x00
#define XCOPY_DESIGNATOR_OFF 8
#define XCOPY_DESIGNATOR_MAX 20		/* bytes 8..27 */
#define XCOPY_DESIG_CODE_BINARY 0x1
#define XCOPY_DESIG_TYPE_NAA 0x3
#define XCOPY_DESIG_ASSOC_LU 0x0
#define XCOPY_NAA_LEN 8
/* SPC-4 6.4.6.5 block device to block device segment descriptor fields. */
#define XCOPY_B2B_DC 0x02

/* SPC-4 6.18 RECEIVE COPY RESULTS CDB and parameter data. */
#define XCOPY_RCR_CDB_LEN 16
#define XCOPY_COPY_STATUS_LEN 12
#define XCOPY_CM_IN_PROGRESS 0x00	/* COPY MANAGER STATUS */
#define XCOPY_CM_GOOD 0x01
#define XCOPY_CM_ERROR 0x02
#define XCOPY_UNITS_BYTES 0x00		/* TRANSFER COUNT UNITS */
#define XCOPY_UNITS_KIB 0x01
#define XCOPY_OP_PARAMS_FIXED 44	/* OPERATING PARAMETERS up to the type list */
#define XCOPY_OP_PARAMS_LEN (XCOPY_OP_PARAMS_FIXED + 2)
#define XCOPY_SNLID 0x01		/* supports LIST ID USAGE 11b */

/* SPC-4 7.8.17 third-party copy descriptors of the VPD page. */
#define XCOPY_TPC_SUPPORTED_COMMANDS 0x0001
#define XCOPY_TPC_PARAMETER_DATA 0x0004
#define XCOPY_TPC_SUPPORTED_DESCRIPTORS 0x0008
#define XCOPY_TPC_SUPPORTED_CSCD_IDS 0x000c
#define XCOPY_TPC_GENERAL_COPY_OPS 0x8001
#define XCOPY_TPC_PARAMETER_DATA_LEN 0x1c
#define XCOPY_TPC_GENERAL_COPY_OPS_LEN 0x20
#define XCOPY_VPD_DESCRIPTORS_LEN 96	/* all of the above, padded */

/* Sense (SPC-4 4.5.6 and annex D). */
#define XCOPY_KEY_COPY_ABORTED 0x0a
#define ASC_NO_ADDITIONAL_SENSE 0x00
#define ASCQ_OPERATION_IN_PROGRESS 0x16
#define ASC_UNREACHABLE_COPY_TARGET 0x08	/* 08/04 */
#define ASCQ_UNREACHABLE_COPY_TARGET 0x04
#define ASC_WRITE_ERROR 0x0c
#define ASC_COPY_TARGET 0x0d
#define ASCQ_INCORRECT_COPY_TARGET_TYPE 0x03	/* 0D/03 */
#define ASC_UNRECOVERED_READ_ERROR 0x11
#define ASC_PARAMETER_LIST_LENGTH_ERROR 0x1a
#define ASC_INVALID_FIELD_IN_PARAMETER_LIST 0x26
#define ASCQ_TOO_MANY_CSCD 0x06
#define ASCQ_UNSUPPORTED_CSCD_TYPE 0x07
#define ASCQ_TOO_MANY_SEGMENTS 0x08
#define ASCQ_UNSUPPORTED_SEGMENT_TYPE 0x09
#define ASC_WRITE_PROTECTED 0x27
#define ASCQ_SPACE_ALLOCATION_FAILED 0x07
#define ASC_INSUFFICIENT_RESOURCES 0x55
#define ASCQ_INSUFFICIENT_RESOURCES 0x03
#define XCOPY_SKS_SD 0x20		/* segment pointer: SEGMENT DESCRIPTOR bit */
#define XCOPY_SENSE_FIXED_CSI 8		/* fixed sense COMMAND-SPECIFIC INFORMATION */
#define XCOPY_SENSE_DESC_CSI 0x01	/* command-specific information descriptor */
#define XCOPY_SENSE_DESC_CSI_LEN 12

/* Bytes one read/write pair moves: the bounce buffer of a command. */
#define XCOPY_CHUNK_BYTES (1u << 20)
/* Copy results kept per LU (in progress and held), all nexuses together. */
#define XCOPY_RESULTS_MAX 64
_Static_assert(XCOPY_RESULTS_MAX > XCOPY_MAX_CONCURRENT, "room for a held result");
_Static_assert(XCOPY_CHUNK_BYTES % 4096 == 0, "chunks are whole blocks of any size");

struct xcopy_result {
	bool used;
	uint8_t list_id;
	uint8_t usage;			/* LIST ID USAGE */
	uint8_t status;			/* COPY MANAGER STATUS */
	uint16_t segments;		/* segments processed */
	uint64_t session;		/* I_T nexus */
	uint64_t bytes;			/* transferred */
	uint64_t age;			/* when it completed: the oldest goes first */
};

/* One registered bdev: its copy results and registry bookkeeping. */
struct xcopy_lu {
	struct xcopy_lu *next;		/* registry list */
	struct spt_bdev *bdev;
	unsigned users;			/* copies with I/O on it, from other LUs (registry lock) */
	pthread_mutex_t lock;		/* results, active */
	unsigned active;		/* EXTENDED COPY commands in progress */
	uint64_t clock;
	struct xcopy_result results[XCOPY_RESULTS_MAX];
};

static pthread_mutex_t xcopy_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t xcopy_registry_idle = PTHREAD_COND_INITIALIZER;
static struct xcopy_lu *xcopy_registry;

enum xcopy_phase {
	XCOPY_PH_DONE = 0,
	XCOPY_PH_SEGMENT,	/* check the next segment descriptor */
	XCOPY_PH_READ,		/* read a chunk of the source */
	XCOPY_PH_WRITE,		/* write it to the destination */
};

/* Per-command state, in cmd->scratch. */
struct xcopy_task {
	struct spt_bdev_io io;		/* the one operation in flight */
	struct sbc_range range;		/* destination blocks of the write in flight */
	struct spt_bdev *bdev;		/* the LU the command came to */
	struct spt_cmd *cmd;
	struct xcopy_lu *peer;		/* registry reference for the I/O in flight */
	uint8_t *buf;			/* XCOPY_CHUNK_BYTES of bounce buffer */
	uint64_t src_naa, dst_naa;	/* the segment's CSCDs */
	uint64_t src_lba, dst_lba;
	uint64_t seg_bytes;		/* bytes the segment copies */
	uint64_t seg_pos;		/* bytes of it done */
	uint64_t transferred;		/* bytes of all segments done */
	uint32_t transfer_length;	/* PARAMETER LIST LENGTH */
	uint32_t cscd_off;		/* CSCD descriptor list in cmd->buf */
	uint32_t seg_start, seg_end;	/* segment descriptor list in cmd->buf */
	uint32_t seg_off;		/* the segment being processed */
	uint32_t chunk;			/* bytes of the chunk in flight */
	uint32_t src_bs, dst_bs;
	uint16_t ncscd;
	uint16_t segs_done;
	uint8_t phase;			/* enum xcopy_phase */
	uint8_t list_id;
	uint8_t usage;
	bool counted;			/* holds one of the LU's XCOPY_MAX_CONCURRENT */
	bool backward;			/* overlapping copy towards higher LBAs */
	bool dst_fua;			/* destination without write cache */
	bool in_submit;
	bool inline_done;
	int inline_result;
};
_Static_assert(sizeof(struct xcopy_task) <= SPT_PROVIDER_SCRATCH, "xcopy_task fits in scratch");
_Static_assert(_Alignof(struct xcopy_task) <= 16, "cmd->scratch is 16-byte aligned");

static struct xcopy_task *xcopy_task_of(struct spt_cmd *cmd)
{
	return (struct xcopy_task *)(void *)cmd->scratch;
}

/* ------------------------------------------------------------------ */
/* Registry                                                             */
/* ------------------------------------------------------------------ */

struct xcopy_lu *xcopy_lu_register(struct spt_bdev *bdev)
{
	struct xcopy_lu *lu = calloc(1, sizeof(*lu));

	if (!lu)
		return NULL;
	if (pthread_mutex_init(&lu->lock, NULL) != 0) {
		free(lu);
		return NULL;
	}
	lu->bdev = bdev;
	pthread_mutex_lock(&xcopy_registry_lock);
	lu->next = xcopy_registry;
	xcopy_registry = lu;
	pthread_mutex_unlock(&xcopy_registry_lock);
	return lu;
}

/*
 * Leaves the registry. Copies of other LUs hold a reference only while one
 * of their operations is in flight on this LU (or waits for its range),
 * which the provider has drained before closing it; a copy running on
 * another thread is waited for.
 */
void xcopy_lu_unregister(struct xcopy_lu *lu)
{
	struct xcopy_lu **pp;

	if (!lu)
		return;
	pthread_mutex_lock(&xcopy_registry_lock);
	for (pp = &xcopy_registry; *pp; pp = &(*pp)->next) {
		if (*pp == lu) {
			*pp = lu->next;
			break;
		}
	}
	while (lu->users > 0)
		pthread_cond_wait(&xcopy_registry_idle, &xcopy_registry_lock);
	pthread_mutex_unlock(&xcopy_registry_lock);
	pthread_mutex_destroy(&lu->lock);
	free(lu);
}

/* The LU with this NAA designator in the target of `self`, referenced. */
static struct xcopy_lu *xcopy_lookup(const struct spt_bdev *self, uint64_t naa)
{
	struct xcopy_lu *lu;

	if (naa == 0)
		return NULL;
	pthread_mutex_lock(&xcopy_registry_lock);
	for (lu = xcopy_registry; lu; lu = lu->next) {
		if (lu->bdev->naa == naa &&
		    strncmp(lu->bdev->target_name, self->target_name, sizeof(self->target_name)) == 0) {
			lu->users++;
			break;
		}
	}
	pthread_mutex_unlock(&xcopy_registry_lock);
	return lu;
}

static void xcopy_put(struct xcopy_lu *lu)
{
	pthread_mutex_lock(&xcopy_registry_lock);
	if (--lu->users == 0)
		pthread_cond_broadcast(&xcopy_registry_idle);
	pthread_mutex_unlock(&xcopy_registry_lock);
}

/* ------------------------------------------------------------------ */
/* Copy results                                                         */
/* ------------------------------------------------------------------ */

/* Caller holds lu->lock. */
static struct xcopy_result *xcopy_result_find(struct xcopy_lu *lu, uint64_t session, uint8_t list_id)
{
	for (unsigned i = 0; i < XCOPY_RESULTS_MAX; i++) {
		struct xcopy_result *r = &lu->results[i];

		if (r->used && r->session == session && r->list_id == list_id)
			return r;
	}
	return NULL;
}

void xcopy_lu_forget(struct xcopy_lu *lu, uint64_t itnexus_handle, bool all)
{
	if (!lu)
		return;
	pthread_mutex_lock(&lu->lock);
	for (unsigned i = 0; i < XCOPY_RESULTS_MAX; i++)
		if (all || lu->results[i].session == itnexus_handle)
			lu->results[i].used = false;
	pthread_mutex_unlock(&lu->lock);
}

/*
 * Starts a copy: one of the LU's concurrent copies and, for an identified
 * copy, its in-progress entry. Returns false with CHECK CONDITION set.
 */
static bool xcopy_begin(struct xcopy_task *t)
{
	struct xcopy_lu *lu = spc_xcopy_lu(t->bdev);
	struct spt_cmd *cmd = t->cmd;
	struct xcopy_result *slot = NULL;
	bool ok = false;

	pthread_mutex_lock(&lu->lock);
	if (lu->active >= XCOPY_MAX_CONCURRENT) {
		/* SPC-4 6.4.1: more copies than TOTAL CONCURRENT COPIES */
		spc_check_condition(t->bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, ASC_INSUFFICIENT_RESOURCES,
				    ASCQ_INSUFFICIENT_RESOURCES);
		goto out;
	}
	if (t->usage != XCOPY_USAGE_NO_LIST_ID) {
		slot = xcopy_result_find(lu, cmd->req.session_cookie, t->list_id);
		if (slot && slot->status == XCOPY_CM_IN_PROGRESS) {
			/* SPC-4 6.4.3.2: a LIST IDENTIFIER of a copy still in
			 * progress on the same I_T nexus */
			spc_check_condition(t->bdev, cmd, SPT_KEY_ILLEGAL_REQUEST,
					    ASC_NO_ADDITIONAL_SENSE, ASCQ_OPERATION_IN_PROGRESS);
			goto out;
		}
		for (unsigned i = 0; !slot && i < XCOPY_RESULTS_MAX; i++)
			if (!lu->results[i].used)
				slot = &lu->results[i];
		for (unsigned i = 0; !slot && i < XCOPY_RESULTS_MAX; i++) {
			/* full: the oldest held result makes room; in-progress
			 * entries are fewer than the table (active is below
			 * XCOPY_MAX_CONCURRENT), so one is always found */
			struct xcopy_result *r = &lu->results[i];

			if (r->status == XCOPY_CM_IN_PROGRESS)
				continue;
			for (unsigned j = i + 1; j < XCOPY_RESULTS_MAX; j++)
				if (lu->results[j].status != XCOPY_CM_IN_PROGRESS &&
				    lu->results[j].age < r->age)
					r = &lu->results[j];
			slot = r;
		}
		if (!slot) {
			spc_check_condition(t->bdev, cmd, SPT_KEY_ILLEGAL_REQUEST,
					    ASC_INSUFFICIENT_RESOURCES, ASCQ_INSUFFICIENT_RESOURCES);
			goto out;
		}
		memset(slot, 0, sizeof(*slot));
		slot->used = true;
		slot->session = cmd->req.session_cookie;
		slot->list_id = t->list_id;
		slot->usage = t->usage;
		slot->status = XCOPY_CM_IN_PROGRESS;
	}
	lu->active++;
	t->counted = true;
	ok = true;
out:
	pthread_mutex_unlock(&lu->lock);
	return ok;
}

/* Records how the copy ended, for RECEIVE COPY RESULTS (LIST ID USAGE 00b). */
static void xcopy_end(struct xcopy_task *t)
{
	struct xcopy_lu *lu = spc_xcopy_lu(t->bdev);
	struct xcopy_result *r;

	if (!t->counted)
		return;
	pthread_mutex_lock(&lu->lock);
	lu->active--;
	t->counted = false;
	r = t->usage == XCOPY_USAGE_NO_LIST_ID
		    ? NULL
		    : xcopy_result_find(lu, t->cmd->req.session_cookie, t->list_id);
	if (r && r->status == XCOPY_CM_IN_PROGRESS) {
		if (r->usage == XCOPY_USAGE_HOLD) {
			r->status = t->cmd->cpl.scsi_status == SPT_STATUS_GOOD ? XCOPY_CM_GOOD
										: XCOPY_CM_ERROR;
			r->segments = t->segs_done;
			r->bytes = t->transferred;
			r->age = ++lu->clock;
		} else {
			r->used = false;
		}
	}
	pthread_mutex_unlock(&lu->lock);
}

/* ------------------------------------------------------------------ */
/* Sense                                                                */
/* ------------------------------------------------------------------ */

/*
 * SPC-4 6.4.3.7: a copy that fails while processing segments ends with
 * COPY ABORTED; the COMMAND-SPECIFIC INFORMATION field is the number of the
 * segment being processed, the sense-key specific segment pointer the
 * offset of its descriptor in the parameter list.
 */
static void xcopy_copy_aborted(struct xcopy_task *t, uint8_t asc, uint8_t ascq)
{
	struct spt_cmd *cmd = t->cmd;
	bool desc = spc_sense_descriptor(t->bdev);
	struct spt_sense_info info = { .sksv = true };
	uint32_t seg = t->seg_off < UINT16_MAX ? t->seg_off : UINT16_MAX;

	info.sks[0] = XCOPY_SKS_SD;
	info.sks[1] = (uint8_t)(seg >> 8);
	info.sks[2] = (uint8_t)seg;
	spt_cmd_check_condition(cmd, desc, XCOPY_KEY_COPY_ABORTED, asc, ascq, &info);
	if (!desc) {
		spt_put_be32(&cmd->cpl.sense[XCOPY_SENSE_FIXED_CSI], t->segs_done);
	} else if (cmd->cpl.sense_length + XCOPY_SENSE_DESC_CSI_LEN <= SPT_SENSE_MAX) {
		uint8_t *d = &cmd->cpl.sense[cmd->cpl.sense_length];

		memset(d, 0, XCOPY_SENSE_DESC_CSI_LEN);
		d[0] = XCOPY_SENSE_DESC_CSI;
		d[1] = XCOPY_SENSE_DESC_CSI_LEN - 2;
		spt_put_be64(&d[4], t->segs_done);
		cmd->cpl.sense_length += XCOPY_SENSE_DESC_CSI_LEN;
		cmd->cpl.sense[7] += XCOPY_SENSE_DESC_CSI_LEN;
	}
	t->phase = XCOPY_PH_DONE;
}

/* A backing-store error of a CSCD, as COPY ABORTED (or BUSY). */
static void xcopy_io_error(struct xcopy_task *t, int result, bool reading)
{
	switch (result) {
	case -ENOMEM:
	case -EAGAIN:
	case -EBUSY:
		/* SAM-5 BUSY: transient lack of resources, the initiator retries */
		t->cmd->cpl.scsi_status = SPT_STATUS_BUSY;
		t->cmd->cpl.sense_length = 0;
		t->phase = XCOPY_PH_DONE;
		break;
	case -ENOSPC:
		xcopy_copy_aborted(t, ASC_WRITE_PROTECTED, ASCQ_SPACE_ALLOCATION_FAILED);
		break;
	case -EROFS:
	case -EPERM:
	case -EACCES:
		xcopy_copy_aborted(t, ASC_WRITE_PROTECTED, 0);
		break;
	default:
		xcopy_copy_aborted(t, reading ? ASC_UNRECOVERED_READ_ERROR : ASC_WRITE_ERROR, 0);
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Parameter list                                                       */
/* ------------------------------------------------------------------ */

static uint32_t xcopy_received(const struct spt_cmd *cmd)
{
	uint64_t r = (uint64_t)cmd->req.sequence_byte_offset + cmd->req.data_length;

	return r > cmd->buf_len ? cmd->buf_len : (uint32_t)r;
}

/*
 * SPC-4 6.4.3: checks the whole parameter list before anything is copied
 * (errors here are ILLEGAL REQUEST). Returns false with CHECK CONDITION set.
 */
static bool xcopy_parse(struct xcopy_task *t)
{
	struct spt_bdev *bdev = t->bdev;
	struct spt_cmd *cmd = t->cmd;
	const uint8_t *p = cmd->buf;
	uint32_t avail = t->transfer_length;
	uint32_t cscd_len, seg_len, inline_len, pos, nseg = 0;

	if (xcopy_received(cmd) < avail)
		avail = xcopy_received(cmd);
	if (avail < XCOPY_HEADER_LEN) {
		spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, ASC_PARAMETER_LIST_LENGTH_ERROR, 0);
		return false;
	}
	t->list_id = p[0];
	t->usage = (p[1] >> 3) & 0x3;
	if (t->usage == XCOPY_USAGE_RESERVED) {
		/* SPC-4 6.4.3.2: LIST ID USAGE 01b is reserved */
		spc_invalid_field_in_param(bdev, cmd, 1, 4);
		return false;
	}
	if (t->usage == XCOPY_USAGE_NO_LIST_ID && t->list_id != 0) {
		/* SPC-4 6.4.3.2: with LIST ID USAGE 11b the LIST IDENTIFIER is 0 */
		spc_invalid_field_in_param(bdev, cmd, 0, -1);
		return false;
	}
	cscd_len = spt_get_be16(&p[2]);
	seg_len = spt_get_be32(&p[8]);
	inline_len = spt_get_be32(&p[12]);
	if ((uint64_t)cscd_len + seg_len > XCOPY_MAX_DESC_LIST_LEN) {
		/* SPC-4 6.4.3.1: the descriptor lists exceed MAXIMUM DESCRIPTOR
		 * LIST LENGTH */
		spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, ASC_PARAMETER_LIST_LENGTH_ERROR, 0);
		return false;
	}
	if (inline_len > XCOPY_MAX_INLINE_DATA) {
		/* SPC-4 6.4.3.1: more inline data than MAXIMUM INLINE DATA LENGTH */
		spc_invalid_field_in_param(bdev, cmd, 12, -1);
		return false;
	}
	if ((uint64_t)XCOPY_HEADER_LEN + cscd_len + seg_len + inline_len > avail) {
		/* SPC-4 6.4.3.1: descriptors cut off by the PARAMETER LIST LENGTH */
		spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, ASC_PARAMETER_LIST_LENGTH_ERROR, 0);
		return false;
	}
	if ((cscd_len + XCOPY_CSCD_LEN - 1) / XCOPY_CSCD_LEN > XCOPY_MAX_CSCD_DESCRIPTORS) {
		/* SPC-4 6.4.3.4: more than MAXIMUM CSCD DESCRIPTOR COUNT */
		spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_PARAMETER_LIST,
				    ASCQ_TOO_MANY_CSCD);
		return false;
	}
	t->cscd_off = XCOPY_HEADER_LEN;
	for (pos = 0; pos < cscd_len; pos += XCOPY_CSCD_LEN) {
		const uint8_t *d = &p[t->cscd_off + pos];
		uint16_t at = (uint16_t)(t->cscd_off + pos);

		if (d[0] != XCOPY_CSCD_IDENTIFICATION) {
			/* SPC-4 6.4.5: a CSCD descriptor type the copy manager lacks */
			spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST,
					    ASC_INVALID_FIELD_IN_PARAMETER_LIST, ASCQ_UNSUPPORTED_CSCD_TYPE);
			return false;
		}
		if (cscd_len - pos < XCOPY_CSCD_LEN) {
			/* a partial descriptor at the end of the list */
			spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST,
					    ASC_PARAMETER_LIST_LENGTH_ERROR, 0);
			return false;
		}
		/* SPC-4 6.4.5.1: byte 1 bits 7-5 (SPC-3's LU ID TYPE and NUL) are
		 * obsolete and ignored (libiscsi ExtendedCopy.ValidTgtDescr on an
		 * SPC-4 device) */
		if ((d[1] & XCOPY_PDT_MASK) != XCOPY_PDT_BLOCK) {
			/* only block devices can be copied to or from */
			spc_invalid_field_in_param(bdev, cmd, at + 1, 4);
			return false;
		}
		if (d[7] > XCOPY_DESIGNATOR_MAX) {
			/* SPC-4 6.4.5.5: the designator fits in bytes 8 to 27 */
			spc_invalid_field_in_param(bdev, cmd, at + 7, -1);
			return false;
		}
	}
	t->ncscd = (uint16_t)(cscd_len / XCOPY_CSCD_LEN);
	t->seg_start = XCOPY_HEADER_LEN + cscd_len;
	t->seg_end = t->seg_start + seg_len;
	for (pos = t->seg_start; pos < t->seg_end; nseg++) {
		const uint8_t *d = &p[pos];
		uint32_t len;

		if (t->seg_end - pos < XCOPY_SEG_HEADER_LEN) {
			spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST,
					    ASC_PARAMETER_LIST_LENGTH_ERROR, 0);
			return false;
		}
		len = XCOPY_SEG_HEADER_LEN + spt_get_be16(&d[2]);
		if (nseg + 1 > XCOPY_MAX_SEGMENT_DESCRIPTORS) {
			/* SPC-4 6.4.3.5: more than MAXIMUM SEGMENT DESCRIPTOR COUNT */
			spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST,
					    ASC_INVALID_FIELD_IN_PARAMETER_LIST, ASCQ_TOO_MANY_SEGMENTS);
			return false;
		}
		if (d[0] != XCOPY_SEG_BLOCK_TO_BLOCK) {
			/* SPC-4 6.4.6: a segment descriptor type the copy manager lacks */
			spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST,
					    ASC_INVALID_FIELD_IN_PARAMETER_LIST,
					    ASCQ_UNSUPPORTED_SEGMENT_TYPE);
			return false;
		}
		if (len != XCOPY_B2B_LEN) {
			/* SPC-4 6.4.6.5: DESCRIPTOR LENGTH is 0018h */
			spc_invalid_field_in_param(bdev, cmd, (uint16_t)(pos + 2), -1);
			return false;
		}
		if (t->seg_end - pos < len) {
			spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST,
					    ASC_PARAMETER_LIST_LENGTH_ERROR, 0);
			return false;
		}
		pos += len;
	}
	return true;
}

/*
 * The CSCD descriptor `id` of the list as a LU of this process: its NAA
 * designator and the registry entry (referenced). NULL with COPY ABORTED
 * set when it cannot be reached.
 */
static struct xcopy_lu *xcopy_resolve(struct xcopy_task *t, uint16_t id, uint64_t *naa)
{
	const uint8_t *d;
	struct xcopy_lu *lu;

	/* SPC-4 6.4.6.1: a CSCD DESCRIPTOR ID that is no index into the list
	 * (and none of the special IDs, which the VPD page lists as none) */
	if (id >= t->ncscd)
		goto unreachable;
	d = &t->cmd->buf[t->cscd_off + (uint32_t)id * XCOPY_CSCD_LEN];
	/* SPC-4 6.4.5.5: a LU is found by its 8-byte NAA designator only */
	if ((d[4] & 0x0f) != XCOPY_DESIG_CODE_BINARY ||
	    (d[5] & 0x0f) != XCOPY_DESIG_TYPE_NAA || ((d[5] >> 4) & 0x3) != XCOPY_DESIG_ASSOC_LU ||
	    d[7] != XCOPY_NAA_LEN)
		goto unreachable;
	*naa = spt_get_be64(&d[XCOPY_DESIGNATOR_OFF]);
	lu = xcopy_lookup(t->bdev, *naa);
	if (!lu)
		goto unreachable;
	if (spt_get_be24(&d[29]) != lu->bdev->block_size) {
		/* SPC-4 6.4.5.4: DISK BLOCK LENGTH must be the LU's */
		xcopy_put(lu);
		xcopy_copy_aborted(t, ASC_COPY_TARGET, ASCQ_INCORRECT_COPY_TARGET_TYPE);
		return NULL;
	}
	return lu;
unreachable:
	/* SPC-4 6.4.3.7: a CSCD the copy manager cannot reach */
	xcopy_copy_aborted(t, ASC_UNREACHABLE_COPY_TARGET, ASCQ_UNREACHABLE_COPY_TARGET);
	return NULL;
}

/* MAXIMUM SEGMENT LENGTH: the 16-bit block count of a segment in bytes. */
static uint32_t xcopy_max_segment_bytes(uint32_t block_size)
{
	uint64_t n = (uint64_t)XCOPY_SEGMENT_MAX_BLOCKS * block_size;

	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

static bool xcopy_out_of_range(const struct spt_bdev *bdev, uint64_t lba, uint64_t bytes)
{
	uint64_t n = bytes / bdev->block_size;

	return lba > bdev->num_blocks || n > bdev->num_blocks - lba;
}

/*
 * Checks the segment at t->seg_off and sets up its copy. Returns false with
 * COPY ABORTED set (SPC-4 6.4.3.7: errors found while processing segments).
 */
static bool xcopy_segment_start(struct xcopy_task *t)
{
	const uint8_t *d = &t->cmd->buf[t->seg_off];
	struct xcopy_lu *src, *dst;
	uint64_t nblocks = spt_get_be16(&d[10]);
	bool ok = false;

	src = xcopy_resolve(t, spt_get_be16(&d[4]), &t->src_naa);
	if (!src)
		return false;
	dst = xcopy_resolve(t, spt_get_be16(&d[6]), &t->dst_naa);
	if (!dst) {
		xcopy_put(src);
		return false;
	}
	t->src_bs = src->bdev->block_size;
	t->dst_bs = dst->bdev->block_size;
	/* SPC-4 6.4.6.5: NUMBER OF BLOCKS counts destination blocks when DC=1,
	 * source blocks otherwise */
	t->seg_bytes = nblocks * ((d[1] & XCOPY_B2B_DC) ? t->dst_bs : t->src_bs);
	t->src_lba = spt_get_be64(&d[12]);
	t->dst_lba = spt_get_be64(&d[20]);
	t->seg_pos = 0;
	if (t->seg_bytes % t->src_bs || t->seg_bytes % t->dst_bs) {
		/* not whole blocks on both sides: no residue handling here */
		xcopy_copy_aborted(t, ASC_NO_ADDITIONAL_SENSE, 0);
		goto out;
	}
	if (xcopy_out_of_range(src->bdev, t->src_lba, t->seg_bytes) ||
	    xcopy_out_of_range(dst->bdev, t->dst_lba, t->seg_bytes)) {
		/* SPC-4 6.4.3.7: the copy target would fail the transfer (LBA out of
		 * range), which ends the copy before any data moves */
		xcopy_copy_aborted(t, ASC_NO_ADDITIONAL_SENSE, 0);
		goto out;
	}
	if (t->seg_bytes && spc_write_protect_active(dst->bdev)) {
		/* SBC-3 4.11: the destination is write protected */
		xcopy_copy_aborted(t, ASC_WRITE_PROTECTED, 0);
		goto out;
	}
	/* SBC-3 Caching mode page WCE=0: the destination's writes are durable */
	t->dst_fua = !spc_write_cache_enabled(dst->bdev);
	/* within one LU towards higher LBAs, overlapping: copy from the end so
	 * no block is overwritten before it is read */
	t->backward = src == dst && t->dst_lba > t->src_lba &&
		      (t->dst_lba - t->src_lba) * t->dst_bs < t->seg_bytes;
	ok = true;
out:
	xcopy_put(src);
	xcopy_put(dst);
	return ok;
}

/* ------------------------------------------------------------------ */
/* The copy loop                                                        */
/* ------------------------------------------------------------------ */

static void xcopy_io_done(struct spt_bdev_io *io, int result);
static void xcopy_range_granted(struct sbc_range *r);

/* Byte offset, within the segment, of the chunk at seg_pos. */
static uint64_t xcopy_chunk_offset(const struct xcopy_task *t)
{
	return t->backward ? t->seg_bytes - t->seg_pos - t->chunk : t->seg_pos;
}

static void xcopy_prepare_io(struct xcopy_task *t, uint8_t op, uint64_t offset, uint32_t flags)
{
	struct spt_bdev_io *io = &t->io;

	memset(io, 0, sizeof(*io));
	io->bdev = t->peer->bdev;
	io->op = op;
	io->flags = flags;
	io->offset = offset;
	io->length = t->chunk;
	io->buf = t->buf;
	io->done = xcopy_io_done;
	io->priv = t;
}

/*
 * Prepares the next operation in t->io (t->peer referencing its LU).
 * Returns false when the command is finished (status set, GOOD by default).
 * Calling it again before the operation is submitted prepares the same one.
 */
static bool xcopy_next_io(struct xcopy_task *t)
{
	const uint8_t *seg;
	uint64_t left;

	for (;;) {
		if (t->cmd->aborted && t->phase != XCOPY_PH_DONE) {
			/* the engine discards the response; stop copying */
			t->phase = XCOPY_PH_DONE;
			return false;
		}
		switch (t->phase) {
		case XCOPY_PH_DONE:
			return false;
		case XCOPY_PH_SEGMENT:
			if (t->seg_off >= t->seg_end) {
				t->phase = XCOPY_PH_DONE;
				return false;
			}
			if (!xcopy_segment_start(t))
				return false;
			t->phase = XCOPY_PH_READ;
			continue;
		case XCOPY_PH_READ:
			if (t->seg_pos >= t->seg_bytes) {
				seg = &t->cmd->buf[t->seg_off];
				t->seg_off += XCOPY_SEG_HEADER_LEN + spt_get_be16(&seg[2]);
				t->segs_done++;
				t->phase = XCOPY_PH_SEGMENT;
				continue;
			}
			left = t->seg_bytes - t->seg_pos;
			t->chunk = left < XCOPY_CHUNK_BYTES ? (uint32_t)left : XCOPY_CHUNK_BYTES;
			if (!t->peer) {
				t->peer = xcopy_lookup(t->bdev, t->src_naa);
				/* the LU went away, or shrank, since the segment started */
				if (!t->peer || xcopy_out_of_range(t->peer->bdev, t->src_lba,
								   t->seg_bytes)) {
					xcopy_copy_aborted(t, ASC_UNREACHABLE_COPY_TARGET,
							   ASCQ_UNREACHABLE_COPY_TARGET);
					return false;
				}
			}
			xcopy_prepare_io(t, SPT_BDEV_READ,
					 t->src_lba * t->src_bs + xcopy_chunk_offset(t), 0);
			return true;
		case XCOPY_PH_WRITE:
			if (!t->peer) {
				t->peer = xcopy_lookup(t->bdev, t->dst_naa);
				if (!t->peer || xcopy_out_of_range(t->peer->bdev, t->dst_lba,
								   t->seg_bytes)) {
					xcopy_copy_aborted(t, ASC_UNREACHABLE_COPY_TARGET,
							   ASCQ_UNREACHABLE_COPY_TARGET);
					return false;
				}
			}
			xcopy_prepare_io(t, SPT_BDEV_WRITE,
					 t->dst_lba * t->dst_bs + xcopy_chunk_offset(t),
					 t->dst_fua ? SPT_BDEV_FUA : 0);
			return true;
		}
		t->phase = XCOPY_PH_DONE;
	}
}

/* Ends the command: resources back, results recorded, status out. */
static void xcopy_finish(struct xcopy_task *t)
{
	struct spt_cmd *cmd = t->cmd;

	if (t->peer) {
		sbc_range_release(t->peer->bdev, &t->range);
		xcopy_put(t->peer);
		t->peer = NULL;
	}
	free(t->buf);
	t->buf = NULL;
	xcopy_end(t);
	cmd->cpl.transfer_length = t->transfer_length;
	/* the engine may reuse cmd (and t) from here on */
	spt_cmd_complete(cmd);
}

/* The completion of the operation in t->io. */
static void xcopy_io_result(struct xcopy_task *t, int result)
{
	bool reading = t->io.op == SPT_BDEV_READ;

	sbc_range_release(t->peer->bdev, &t->range);
	xcopy_put(t->peer);
	t->peer = NULL;
	if (result < 0) {
		xcopy_io_error(t, result, reading);
		return;
	}
	if (reading) {
		t->phase = XCOPY_PH_WRITE;
		return;
	}
	t->seg_pos += t->chunk;
	t->transferred += t->chunk;
	t->phase = XCOPY_PH_READ;
}

/*
 * Runs operations until one is pending or the command is finished; an
 * operation that completes inside submit() is handled here, not by
 * recursion. A destination write first takes its blocks' range (shared):
 * behind a COMPARE AND WRITE of the destination it waits, and
 * xcopy_range_granted() resumes it.
 */
static void xcopy_drive(struct xcopy_task *t)
{
	for (;;) {
		struct spt_bdev *peer;

		if (!xcopy_next_io(t)) {
			xcopy_finish(t);
			return;
		}
		peer = t->peer->bdev;
		if (t->phase == XCOPY_PH_WRITE && sbc_range_idle(&t->range) &&
		    !sbc_range_acquire(peer, &t->range, t->io.offset / peer->block_size,
				       t->chunk / peer->block_size, false, xcopy_range_granted))
			return;
		t->in_submit = true;
		t->inline_done = false;
		peer->ops->submit(peer, &t->io);
		t->in_submit = false;
		if (!t->inline_done)
			return;	/* xcopy_io_done() continues */
		xcopy_io_result(t, t->inline_result);
	}
}

static void xcopy_io_done(struct spt_bdev_io *io, int result)
{
	struct xcopy_task *t = io->priv;

	if (t->in_submit) {
		t->inline_done = true;
		t->inline_result = result;
		return;
	}
	xcopy_io_result(t, result);
	xcopy_drive(t);
}

static void xcopy_range_granted(struct sbc_range *r)
{
	struct xcopy_task *t =
		(struct xcopy_task *)(void *)((uint8_t *)r - offsetof(struct xcopy_task, range));

	xcopy_drive(t);
}

/* ------------------------------------------------------------------ */
/* EXTENDED COPY                                                        */
/* ------------------------------------------------------------------ */

/* SPC-4 6.4.1 CDB checks, on the first request. false: CHECK CONDITION set. */
static bool xcopy_check_cdb(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	const uint8_t *cdb = cmd->req.cdb;

	if ((cdb[1] & 0x1f) != XCOPY_SA_LID1) {
		/* SPC-4 6.4.1: only EXTENDED COPY(LID1); LID4 is not supported */
		spc_invalid_field_in_cdb(bdev, cmd, 1, 4);
		return false;
	}
	for (uint16_t byte = 1; byte < XCOPY_CDB_LEN - 1; byte++) {
		uint8_t rsv = byte == 1 ? 0xe0 : (byte >= 10 && byte <= 13) ? 0x00 : 0xff;
		int bit;

		for (bit = 7; bit >= 0 && !(cdb[byte] & rsv & (1u << bit)); bit--)
			;
		if (bit >= 0) {
			/* SPC-4 reserved fields: non-zero is an invalid field */
			spc_invalid_field_in_cdb(bdev, cmd, byte, bit);
			return false;
		}
	}
	if (cdb[XCOPY_CDB_LEN - 1] & 0x05) {
		/* SAM-5 CONTROL byte: NACA (no ACA here) and the obsolete LINK */
		spc_invalid_field_in_cdb(bdev, cmd, XCOPY_CDB_LEN - 1, cdb[XCOPY_CDB_LEN - 1] & 0x04 ? 2 : 0);
		return false;
	}
	return true;
}

static void xcopy_extended_copy(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	struct xcopy_task *t = xcopy_task_of(cmd);

	if (cmd->req.sequence_byte_offset == 0) {
		memset(t, 0, sizeof(*t));
		t->bdev = bdev;
		t->cmd = cmd;
		t->transfer_length = spt_get_be32(&cmd->req.cdb[10]);
		if (!xcopy_check_cdb(bdev, cmd))
			goto complete;
		if (t->transfer_length > 0 && t->transfer_length < XCOPY_HEADER_LEN) {
			/* SPC-4 6.4.1: a list shorter than its header */
			spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST,
					    ASC_PARAMETER_LIST_LENGTH_ERROR, 0);
			goto complete;
		}
		if (t->transfer_length > XCOPY_HEADER_LEN + XCOPY_MAX_DESC_LIST_LEN +
						 XCOPY_MAX_INLINE_DATA) {
			/* SPC-4 6.4.1: longer than any list the limits allow */
			spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST,
					    ASC_PARAMETER_LIST_LENGTH_ERROR, 0);
			goto complete;
		}
	}
	t->cmd = cmd;
	t->bdev = bdev;
	/* GOOD on a non-final request asks for the rest of the list; a
	 * PARAMETER LIST LENGTH of 0 is no error and copies nothing */
	if (!cmd->req.is_final || t->transfer_length == 0)
		goto complete;
	if (!xcopy_parse(t) || !xcopy_begin(t))
		goto complete;
	t->buf = malloc(XCOPY_CHUNK_BYTES);
	if (!t->buf) {
		cmd->cpl.scsi_status = SPT_STATUS_BUSY;	/* SAM-5: retry later */
		xcopy_end(t);
		goto complete;
	}
	t->seg_off = t->seg_start;
	t->phase = XCOPY_PH_SEGMENT;
	xcopy_drive(t);
	return;
complete:
	cmd->cpl.transfer_length = t->transfer_length;
	spt_cmd_complete(cmd);
}

/* ------------------------------------------------------------------ */
/* RECEIVE COPY RESULTS                                                 */
/* ------------------------------------------------------------------ */

/* SPC-4 6.18.3 COPY STATUS of the copy with the CDB's LIST IDENTIFIER. */
static void xcopy_copy_status(struct spt_bdev *bdev, struct spt_cmd *cmd, uint32_t alloc)
{
	struct xcopy_lu *lu = spc_xcopy_lu(bdev);
	struct xcopy_result *r;
	uint8_t d[XCOPY_COPY_STATUS_LEN];
	bool found = false;

	memset(d, 0, sizeof(d));
	pthread_mutex_lock(&lu->lock);
	r = xcopy_result_find(lu, cmd->req.session_cookie, cmd->req.cdb[2]);
	if (r && (r->usage == XCOPY_USAGE_HOLD || r->status == XCOPY_CM_IN_PROGRESS)) {
		uint64_t count = r->bytes;

		found = true;
		spt_put_be32(d, XCOPY_COPY_STATUS_LEN - 4);
		d[4] = r->status;	/* HDD 0: no held data */
		spt_put_be16(&d[5], r->segments);
		d[7] = XCOPY_UNITS_BYTES;
		if (count > UINT32_MAX) {
			d[7] = XCOPY_UNITS_KIB;
			count >>= 10;
		}
		spt_put_be32(&d[8], (uint32_t)(count > UINT32_MAX ? UINT32_MAX : count));
		/* SPC-4 6.18.3: the status of a completed copy is reported once;
		 * the held data is discarded after it is transferred */
		if (r->status != XCOPY_CM_IN_PROGRESS)
			r->used = false;
	}
	pthread_mutex_unlock(&lu->lock);
	if (!found) {
		/* SPC-4 6.18.3: no copy with this LIST IDENTIFIER on this I_T nexus */
		spc_invalid_field_in_cdb(bdev, cmd, 2, -1);
		return;
	}
	spc_data_in(cmd, d, alloc < sizeof(d) ? alloc : (uint32_t)sizeof(d));
}

/* SPC-4 6.18.4 OPERATING PARAMETERS: the limits the copy manager enforces. */
static void xcopy_operating_parameters(struct spt_bdev *bdev, struct spt_cmd *cmd, uint32_t alloc)
{
	uint8_t d[XCOPY_OP_PARAMS_LEN];
	uint32_t bs = bdev->block_size;
	uint8_t gran = 0;

	while ((1u << gran) < bs)
		gran++;
	memset(d, 0, sizeof(d));
	spt_put_be32(&d[0], XCOPY_OP_PARAMS_LEN - 4);
	d[4] = XCOPY_SNLID;
	spt_put_be16(&d[8], XCOPY_MAX_CSCD_DESCRIPTORS);
	spt_put_be16(&d[10], XCOPY_MAX_SEGMENT_DESCRIPTORS);
	spt_put_be32(&d[12], XCOPY_MAX_DESC_LIST_LEN);
	spt_put_be32(&d[16], xcopy_max_segment_bytes(bs));	/* MAXIMUM SEGMENT LENGTH */
	spt_put_be32(&d[20], XCOPY_MAX_INLINE_DATA);
	spt_put_be32(&d[24], 0);	/* HELD DATA LIMIT: no RECEIVE DATA */
	spt_put_be32(&d[28], 0);	/* MAXIMUM STREAM DEVICE TRANSFER SIZE */
	spt_put_be16(&d[34], XCOPY_MAX_CONCURRENT);	/* TOTAL CONCURRENT COPIES */
	d[36] = XCOPY_MAX_CONCURRENT;	/* MAXIMUM CONCURRENT COPIES */
	d[37] = gran;			/* DATA SEGMENT GRANULARITY (log 2) */
	d[38] = 0;			/* INLINE DATA GRANULARITY */
	d[39] = 0;			/* HELD DATA GRANULARITY */
	d[43] = 2;			/* IMPLEMENTED DESCRIPTOR LIST LENGTH */
	d[44] = XCOPY_SEG_BLOCK_TO_BLOCK;
	d[45] = XCOPY_CSCD_IDENTIFICATION;
	spc_data_in(cmd, d, alloc < sizeof(d) ? alloc : (uint32_t)sizeof(d));
}

static void xcopy_receive_copy_results(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	const uint8_t *cdb = cmd->req.cdb;
	uint32_t alloc = spt_get_be32(&cdb[10]);
	uint8_t sa = cdb[1] & 0x1f;

	for (uint16_t byte = 1; byte < XCOPY_RCR_CDB_LEN - 1; byte++) {
		uint8_t rsv = byte == 1 ? 0xe0 : (byte >= 3 && byte <= 9) || byte == 14 ? 0xff : 0x00;

		if (cdb[byte] & rsv) {
			/* SPC-4 reserved fields: non-zero is an invalid field */
			spc_invalid_field_in_cdb(bdev, cmd, byte, -1);
			return;
		}
	}
	switch (sa) {
	case XCOPY_RCR_COPY_STATUS:
		xcopy_copy_status(bdev, cmd, alloc);
		break;
	case XCOPY_RCR_OPERATING_PARAMETERS:
		xcopy_operating_parameters(bdev, cmd, alloc);
		break;
	default:
		/* SPC-4 6.18.1: RECEIVE DATA, FAILED SEGMENT DETAILS and the LID4
		 * service actions are not supported */
		spc_invalid_field_in_cdb(bdev, cmd, 1, 4);
		break;
	}
}

void xcopy_execute(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	if (!spc_xcopy_lu(bdev)) {
		/* spt_bdev_init() was not called: no copy manager state */
		spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, 0x20, 0x00);
		spt_cmd_complete(cmd);
		return;
	}
	if (cmd->req.cdb[0] == XCOPY_OP_EXTENDED_COPY) {
		xcopy_extended_copy(bdev, cmd);
		return;
	}
	xcopy_receive_copy_results(bdev, cmd);
	spt_cmd_complete(cmd);
}

/* ------------------------------------------------------------------ */
/* Third-party Copy VPD page                                            */
/* ------------------------------------------------------------------ */

/* Writes a descriptor header; returns the descriptor's total length. */
static uint32_t xcopy_vpd_header(uint8_t *p, uint16_t type, uint16_t len)
{
	spt_put_be16(&p[0], type);
	spt_put_be16(&p[2], len);
	return 4u + len;
}

uint32_t xcopy_vpd_descriptors(const struct spt_bdev *bdev, uint8_t *p, uint32_t cap)
{
	/* SPC-4 7.8.17.3: operation codes and their service actions */
	static const uint8_t commands[] = {
		XCOPY_OP_EXTENDED_COPY, 1, XCOPY_SA_LID1,
		XCOPY_OP_RECEIVE_COPY_RESULTS, 2, XCOPY_RCR_COPY_STATUS, XCOPY_RCR_OPERATING_PARAMETERS,
	};
	static const uint8_t descriptors[] = { XCOPY_SEG_BLOCK_TO_BLOCK, XCOPY_CSCD_IDENTIFICATION };
	uint32_t pos = 0, bs = bdev->block_size;
	uint8_t gran = 0;

	if (cap < XCOPY_VPD_DESCRIPTORS_LEN)
		return 0;
	while ((1u << gran) < bs)
		gran++;
	memset(p, 0, XCOPY_VPD_DESCRIPTORS_LEN);
	/* each descriptor is padded to a multiple of four bytes */
	p[pos + 4] = sizeof(commands);
	memcpy(&p[pos + 5], commands, sizeof(commands));
	pos += xcopy_vpd_header(&p[pos], XCOPY_TPC_SUPPORTED_COMMANDS,
				(uint16_t)((1 + sizeof(commands) + 3) & ~3u));
	/* SPC-4 7.8.17.5: EXTENDED COPY(LID1) parameter limits */
	spt_put_be16(&p[pos + 8], XCOPY_MAX_CSCD_DESCRIPTORS);
	spt_put_be16(&p[pos + 10], XCOPY_MAX_SEGMENT_DESCRIPTORS);
	spt_put_be32(&p[pos + 12], XCOPY_MAX_DESC_LIST_LEN);
	spt_put_be32(&p[pos + 16], XCOPY_MAX_INLINE_DATA);
	pos += xcopy_vpd_header(&p[pos], XCOPY_TPC_PARAMETER_DATA, XCOPY_TPC_PARAMETER_DATA_LEN);
	/* SPC-4 7.8.17.6: descriptor type codes */
	p[pos + 4] = sizeof(descriptors);
	memcpy(&p[pos + 5], descriptors, sizeof(descriptors));
	pos += xcopy_vpd_header(&p[pos], XCOPY_TPC_SUPPORTED_DESCRIPTORS,
				(uint16_t)((1 + sizeof(descriptors) + 3) & ~3u));
	/* SPC-4 7.8.17.7: no special CSCD descriptor IDs (an empty list) */
	pos += xcopy_vpd_header(&p[pos], XCOPY_TPC_SUPPORTED_CSCD_IDS, 4);
	/* SPC-4 7.8.17.11: general copy operations */
	spt_put_be32(&p[pos + 4], XCOPY_MAX_CONCURRENT);	/* TOTAL CONCURRENT COPIES */
	spt_put_be32(&p[pos + 8], XCOPY_MAX_CONCURRENT);	/* MAXIMUM IDENTIFIED CONCURRENT */
	spt_put_be32(&p[pos + 12], xcopy_max_segment_bytes(bs));	/* MAXIMUM SEGMENT LENGTH */
	p[pos + 16] = gran;		/* DATA SEGMENT GRANULARITY (log 2) */
	p[pos + 17] = 0;		/* INLINE DATA GRANULARITY: no inline data */
	pos += xcopy_vpd_header(&p[pos], XCOPY_TPC_GENERAL_COPY_OPS, XCOPY_TPC_GENERAL_COPY_OPS_LEN);
	return pos;
}
