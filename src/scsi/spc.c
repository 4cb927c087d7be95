/*
 * SPC-4 emulation for block LUs: per-I_T-nexus unit attentions, task
 * management effects, mode pages (Caching, Control, Informational
 * Exceptions Control), and the SPC commands a disk answers without I/O:
 * TEST UNIT READY, REQUEST SENSE, MODE SENSE/SELECT, START STOP UNIT,
 * PREVENT ALLOW MEDIUM REMOVAL. INQUIRY is in spc_inquiry.c, REPORT
 * SUPPORTED OPERATION CODES in spc_rsoc.c.
 *
 * Sessions of one LU may live on different reactor threads, so the state
 * shared between I_T nexuses is guarded: a mutex for the nexus table and
 * MODE SELECT, atomics for the flags every command reads.
 */
#include "scsi/spc.h"
#include "scsi/alua.h"
#include "scsi/pr.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Named limits. */
#define SPC_NEXUS_MAX 4096		/* I_T nexuses per LU */
#define SPC_NEXUS_INITIAL 8
#define SPC_UA_QUEUE_MAX 8		/* pending unit attentions per I_T nexus */
#define SPC_MODE_BUF_MAX 256		/* MODE SENSE(6) data can't exceed it */
#define SPC_MODE_PAGE_MAX 20		/* largest page we have: Caching */
#define SPC_SENSE_DATA_MAX 32		/* REQUEST SENSE parameter data */

/* Operation codes (SPC-4 Annex D, SBC-3 5). */
enum {
	OP_TEST_UNIT_READY = 0x00,
	OP_REQUEST_SENSE = 0x03,
	OP_INQUIRY = 0x12,
	OP_MODE_SELECT_6 = 0x15,
	OP_MODE_SENSE_6 = 0x1a,
	OP_START_STOP_UNIT = 0x1b,
	OP_PREVENT_ALLOW = 0x1e,
	OP_MODE_SELECT_10 = 0x55,
	OP_MODE_SENSE_10 = 0x5a,
	OP_RESERVE_6 = 0x16,		/* SPC-2 7.21; pr.c */
	OP_RELEASE_6 = 0x17,		/* SPC-2 7.19 */
	OP_RESERVE_10 = 0x56,		/* SPC-2 7.22 */
	OP_RELEASE_10 = 0x57,		/* SPC-2 7.20 */
	OP_PERSISTENT_RESERVE_IN = 0x5e,	/* SPC-4 6.15 */
	OP_PERSISTENT_RESERVE_OUT = 0x5f,	/* SPC-4 6.16 */
	OP_REPORT_LUNS = 0xa0,
	OP_MAINTENANCE_IN = 0xa3,
};
#define SA_REPORT_SUPPORTED_OPCODES 0x0c
#define SA_REPORT_TARGET_PORT_GROUPS 0x0a

/* Additional sense codes (SPC-4 Annex D). */
#define ASC_NO_ADDITIONAL 0x00
#define ASC_LU_NOT_READY 0x04
#define ASCQ_INIT_CMD_REQUIRED 0x02
#define ASC_PARAM_LIST_LENGTH 0x1a
#define ASC_WRITE_PROTECTED 0x27
#define ASCQ_SOFTWARE_WRITE_PROTECTED 0x02
#define ASC_RESET_OCCURRED 0x29
#define ASCQ_POWER_ON 0x01
#define ASCQ_BUS_DEVICE_RESET 0x03
#define ASCQ_IT_NEXUS_LOSS 0x07
#define ASC_PARAMETERS_CHANGED 0x2a
#define ASCQ_MODE_PARAMETERS_CHANGED 0x01
#define ASCQ_CAPACITY_CHANGED 0x09
#define ASC_COMMANDS_CLEARED 0x2f
#define ASC_SAVING_NOT_SUPPORTED 0x39

/* Mode pages (SPC-4 7.5, SBC-3 6.4). */
enum {
	MP_CACHING = 0x08,
	MP_CONTROL = 0x0a,
	MP_IEC = 0x1c,
	MP_ALL = 0x3f,
};
#define MP_SUBPAGE_ALL 0xff
#define MP_CACHING_LEN 20	/* page length 12h + 2 */
#define MP_CONTROL_LEN 12	/* page length 0Ah + 2 */
#define MP_IEC_LEN 12		/* page length 0Ah + 2 */
#define MP_BIT_WCE 0x04		/* Caching byte 2 */
#define MP_BIT_D_SENSE 0x04	/* Control byte 2 */
#define MP_BIT_GLTSD 0x02	/* Control byte 2 */
#define MP_BIT_SWP 0x08		/* Control byte 4 */
#define MP_QAM_UNRESTRICTED 0x10	/* Control byte 3: tasks may be reordered */
#define MP_BIT_DEXCPT 0x08	/* IEC byte 2 */
#define MP_SPF 0x40
#define MP_PAGE_CODE_MASK 0x3f

/* Mode parameter header and block descriptors (SPC-4 7.5.4/7.5.5). */
#define MODE_HDR6_LEN 4
#define MODE_HDR10_LEN 8
#define MODE_BD_SHORT_LEN 8
#define MODE_BD_LONG_LEN 16
#define MODE_DSP_WP 0x80	/* SBC-3 6.4.1 device-specific parameter */
#define MODE_DSP_DPOFUA 0x10

enum { PC_CURRENT = 0, PC_CHANGEABLE = 1, PC_DEFAULT = 2, PC_SAVED = 3 };

/* The largest MODE SENSE answer: header, long descriptor, every page. */
_Static_assert(MODE_HDR10_LEN + MODE_BD_LONG_LEN + MP_CACHING_LEN + MP_CONTROL_LEN + MP_IEC_LEN
	       <= SPC_MODE_BUF_MAX, "mode sense buffer");
_Static_assert(MP_CACHING_LEN <= SPC_MODE_PAGE_MAX, "mode page buffer");

struct spc_ua {
	uint8_t asc;
	uint8_t ascq;
};

/* One I_T nexus that can reach the LU. */
struct spc_nexus {
	uint64_t handle;		/* the session's ITNexusHandle */
	uint16_t tpgt;			/* its target port (alua.c), 0 if not named */
	bool prevent;			/* PREVENT ALLOW MEDIUM REMOVAL state */
	unsigned ua_count;
	struct spc_ua ua[SPC_UA_QUEUE_MAX];	/* oldest first */
};

/* The values MODE SELECT can change; everything else is fixed. */
struct spc_mode_values {
	bool wce;
	bool d_sense;
	bool swp;
};

struct spt_bdev_state {
	pthread_mutex_t lock;		/* nexus table, MODE SELECT */
	struct spc_nexus *nexus;
	size_t nexus_count;
	size_t nexus_cap;
	atomic_uint ua_pending;		/* queued UAs in all nexuses: lock-free fast path */
	atomic_bool wce;
	atomic_bool d_sense;
	atomic_bool swp;
	atomic_bool stopped;		/* START STOP UNIT START=0 */
	bool wce_default;
	struct sbc_ranges *ranges;	/* COMPARE AND WRITE range locks (sbc.c) */
	struct xcopy_lu *xcopy;		/* EXTENDED COPY registry entry (xcopy.c) */
	struct pr_state *pr;		/* reservations and registrations (pr.c) */
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */
/* ------------------------------------------------------------------ */

static uint32_t spc_min32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

bool spc_sense_descriptor(const struct spt_bdev *bdev)
{
	return bdev->state && atomic_load(&bdev->state->d_sense);
}

bool spc_write_cache_enabled(const struct spt_bdev *bdev)
{
	return bdev->state ? atomic_load(&bdev->state->wce) : bdev->write_cache;
}

void spc_data_in(struct spt_cmd *cmd, const void *data, uint32_t len)
{
	uint32_t n = spc_min32(len, cmd->buf_len);

	if (n && cmd->buf)
		memcpy(cmd->buf, data, n);
	else
		n = 0;
	cmd->cpl.data_in_length = n;
	cmd->cpl.transfer_length = len;
}

void spc_invalid_field_in_cdb(struct spt_bdev *bdev, struct spt_cmd *cmd, uint16_t byte, int bit)
{
	spt_cmd_invalid_field_in_cdb(cmd, spc_sense_descriptor(bdev), byte, bit);
}

void spc_invalid_field_in_param(struct spt_bdev *bdev, struct spt_cmd *cmd, uint16_t byte, int bit)
{
	spt_cmd_invalid_field_in_param(cmd, spc_sense_descriptor(bdev), byte, bit);
}

void spc_check_condition(struct spt_bdev *bdev, struct spt_cmd *cmd, uint8_t key, uint8_t asc,
			 uint8_t ascq)
{
	spt_cmd_check_condition(cmd, spc_sense_descriptor(bdev), key, asc, ascq, NULL);
}

bool spc_unit_ready(const struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	if (!bdev->state || !atomic_load(&bdev->state->stopped))
		return true;
	/* SBC-3 4.20 / 5.25: a stopped LU needs START STOP UNIT START=1. */
	spt_cmd_check_condition(cmd, spc_sense_descriptor(bdev), SPT_KEY_NOT_READY,
				ASC_LU_NOT_READY, ASCQ_INIT_CMD_REQUIRED, NULL);
	return false;
}

bool spc_write_protect_active(const struct spt_bdev *bdev)
{
	return bdev->read_only || (bdev->state && atomic_load(&bdev->state->swp));
}

bool spc_write_protected(const struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	bool desc = spc_sense_descriptor(bdev);

	if (bdev->read_only) {
		spt_cmd_check_condition(cmd, desc, SPT_KEY_DATA_PROTECT, ASC_WRITE_PROTECTED,
					0x00, NULL);
		return true;
	}
	/* SPC-4 7.5.8: SWP=1 makes the medium write protected. */
	if (bdev->state && atomic_load(&bdev->state->swp)) {
		spt_cmd_check_condition(cmd, desc, SPT_KEY_DATA_PROTECT, ASC_WRITE_PROTECTED,
					ASCQ_SOFTWARE_WRITE_PROTECTED, NULL);
		return true;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* I_T nexus table and unit attentions (SAM-5 5.14, SPC-4 5.14)          */
/* ------------------------------------------------------------------ */

/* Caller holds st->lock. */
static struct spc_nexus *spc_nexus_find(struct spt_bdev_state *st, uint64_t handle)
{
	for (size_t i = 0; i < st->nexus_count; i++)
		if (st->nexus[i].handle == handle)
			return &st->nexus[i];
	return NULL;
}

/* Caller holds st->lock. NULL if the table is full or memory is short. */
static struct spc_nexus *spc_nexus_add(struct spt_bdev_state *st, uint64_t handle)
{
	struct spc_nexus *n = NULL;

	if (st->nexus_count == st->nexus_cap) {
		size_t cap = st->nexus_cap ? st->nexus_cap * 2 : SPC_NEXUS_INITIAL;
		struct spc_nexus *grown;

		if (cap > SPC_NEXUS_MAX)
			cap = SPC_NEXUS_MAX;
		if (cap <= st->nexus_cap)
			goto out;
		grown = realloc(st->nexus, cap * sizeof(*grown));
		if (!grown)
			goto out;
		st->nexus = grown;
		st->nexus_cap = cap;
	}
	n = &st->nexus[st->nexus_count++];
	memset(n, 0, sizeof(*n));
	n->handle = handle;
out:
	return n;
}

/* Caller holds st->lock. */
static void spc_ua_queue(struct spt_bdev_state *st, struct spc_nexus *n, uint8_t asc, uint8_t ascq)
{
	for (unsigned i = 0; i < n->ua_count; i++)
		if (n->ua[i].asc == asc && n->ua[i].ascq == ascq)
			return;
	/* SAM-5 5.14: when the device server cannot keep every condition,
	 * the newest one matters most; the oldest is dropped. */
	if (n->ua_count == SPC_UA_QUEUE_MAX) {
		memmove(&n->ua[0], &n->ua[1], (SPC_UA_QUEUE_MAX - 1) * sizeof(n->ua[0]));
		n->ua_count--;
		atomic_fetch_sub(&st->ua_pending, 1);
	}
	n->ua[n->ua_count].asc = asc;
	n->ua[n->ua_count].ascq = ascq;
	n->ua_count++;
	atomic_fetch_add(&st->ua_pending, 1);
}

/* Caller holds st->lock. Takes the oldest pending unit attention. */
static bool spc_ua_pop(struct spt_bdev_state *st, struct spc_nexus *n, struct spc_ua *ua)
{
	if (n->ua_count == 0)
		return false;
	*ua = n->ua[0];
	memmove(&n->ua[0], &n->ua[1], (n->ua_count - 1) * sizeof(n->ua[0]));
	n->ua_count--;
	atomic_fetch_sub(&st->ua_pending, 1);
	return true;
}

void spc_unit_attention_all(struct spt_bdev *bdev, uint64_t except, uint8_t asc, uint8_t ascq)
{
	struct spt_bdev_state *st = bdev->state;

	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	for (size_t i = 0; i < st->nexus_count; i++)
		if (except == 0 || st->nexus[i].handle != except)
			spc_ua_queue(st, &st->nexus[i], asc, ascq);
	pthread_mutex_unlock(&st->lock);
}

void spc_unit_attention_nexus(struct spt_bdev *bdev, uint64_t handle, uint8_t asc, uint8_t ascq)
{
	struct spt_bdev_state *st = bdev->state;
	struct spc_nexus *n;

	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	n = spc_nexus_find(st, handle);
	if (n)
		spc_ua_queue(st, n, asc, ascq);
	pthread_mutex_unlock(&st->lock);
}

/* Takes the nexus' oldest unit attention, if any. */
static bool spc_take_unit_attention(struct spt_bdev *bdev, uint64_t handle, struct spc_ua *ua)
{
	struct spt_bdev_state *st = bdev->state;
	struct spc_nexus *n;
	bool found = false;

	if (!st || atomic_load(&st->ua_pending) == 0)
		return false;
	pthread_mutex_lock(&st->lock);
	n = spc_nexus_find(st, handle);
	if (n)
		found = spc_ua_pop(st, n, ua);
	pthread_mutex_unlock(&st->lock);
	return found;
}

bool spc_report_unit_attention(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	struct spc_ua ua;

	/* SAM-5 5.14 / SPC-4: INQUIRY, REPORT LUNS and REQUEST SENSE are not
	 * terminated by a pending unit attention (REQUEST SENSE reports it). */
	switch (cmd->req.cdb[0]) {
	case OP_INQUIRY:
	case OP_REPORT_LUNS:
	case OP_REQUEST_SENSE:
		return false;
	default:
		break;
	}
	if (!spc_take_unit_attention(bdev, cmd->req.session_cookie, &ua))
		return false;
	/* UA_INTLCK_CTRL is 00b: reporting the condition clears it. */
	spc_check_condition(bdev, cmd, SPT_KEY_UNIT_ATTENTION, ua.asc, ua.ascq);
	return true;
}

/* ------------------------------------------------------------------ */
/* Life cycle, sessions, TMFs, capacity                                  */
/* ------------------------------------------------------------------ */

int spt_bdev_init(struct spt_bdev *bdev)
{
	struct spt_bdev_state *st;
	int ret = 0;

	/* SBC-3 6.4.2: LOGICAL BLOCK LENGTH; the emulation needs a power of
	 * two it can divide byte counts by. */
	if (bdev->block_size < 512 || (bdev->block_size & (bdev->block_size - 1))) {
		ret = -EINVAL;
		goto out;
	}
	st = calloc(1, sizeof(*st));
	if (!st) {
		ret = -ENOMEM;
		goto out;
	}
	if (pthread_mutex_init(&st->lock, NULL) != 0) {
		free(st);
		ret = -ENOMEM;
		goto out;
	}
	st->ranges = sbc_ranges_new();
	if (!st->ranges) {
		pthread_mutex_destroy(&st->lock);
		free(st);
		ret = -ENOMEM;
		goto out;
	}
	atomic_init(&st->ua_pending, 0);
	atomic_init(&st->wce, bdev->write_cache);
	atomic_init(&st->d_sense, false);
	atomic_init(&st->swp, false);
	atomic_init(&st->stopped, false);
	st->wce_default = bdev->write_cache;
	bdev->state = st;
	/* EXTENDED COPY finds LUs by designator: the registry entry needs the
	 * state in place */
	st->xcopy = xcopy_lu_register(bdev);
	if (!st->xcopy) {
		bdev->state = NULL;
		sbc_ranges_free(st->ranges);
		pthread_mutex_destroy(&st->lock);
		free(st);
		ret = -ENOMEM;
	}
	/* SPC-4 5.13: reservations, and the APTPL state saved for this LU */
	if (ret == 0) {
		ret = pr_state_create(bdev, &st->pr);
		if (ret < 0)
			spt_bdev_fini(bdev);
	}
	/* SPC-4 5.16: target port group state changes reach its nexuses */
	if (ret == 0) {
		ret = alua_lu_register(bdev);
		if (ret < 0)
			spt_bdev_fini(bdev);
	}
out:
	return ret;
}

struct pr_state *spc_pr_state(const struct spt_bdev *bdev)
{
	return bdev->state ? bdev->state->pr : NULL;
}

/* Spc accessors for the COMPARE AND WRITE and EXTENDED COPY state. */
struct sbc_ranges *spc_ranges(const struct spt_bdev *bdev)
{
	return bdev->state ? bdev->state->ranges : NULL;
}

struct xcopy_lu *spc_xcopy_lu(const struct spt_bdev *bdev)
{
	return bdev->state ? bdev->state->xcopy : NULL;
}

void spt_bdev_fini(struct spt_bdev *bdev)
{
	struct spt_bdev_state *st = bdev->state;

	if (!st)
		return;
	/* out of the registries first: no copy of another LU reaches it after */
	alua_lu_unregister(bdev);
	xcopy_lu_unregister(st->xcopy);
	sbc_ranges_free(st->ranges);
	pr_state_destroy(st->pr);
	pthread_mutex_destroy(&st->lock);
	free(st->nexus);
	free(st);
	bdev->state = NULL;
}

/*
 * The target port of an ITNexus "<initiator>,i,0x<isid>,<target>,t,0x<tpgt>"
 * (RFC 7143 / SPC-4 7.6.4.6 port names): its TPGT, 0 if there is none.
 */
static uint16_t spc_itnexus_tpgt(const char *itnexus)
{
	char buf[SPT_ITNEXUS_MAX + 1];
	size_t len = strnlen(itnexus, SPT_ITNEXUS_MAX);
	const char *t = NULL;
	char *end;
	unsigned long v;

	/* the field may fill its SPT_ITNEXUS_MAX bytes without a NUL */
	memcpy(buf, itnexus, len);
	buf[len] = '\0';
	for (const char *p = buf; (p = strstr(p, ",t,0x")) != NULL; p++)
		t = p;
	/* RFC 7143 13.9: a 16-bit tag in hex, ending the string */
	if (!t || !isxdigit((unsigned char)t[5]))
		return 0;
	v = strtoul(t + 5, &end, 16);
	if (*end || v > 0xffff)
		return 0;
	return (uint16_t)v;
}

uint16_t spc_nexus_tpgt(const struct spt_bdev *bdev, uint64_t handle)
{
	struct spt_bdev_state *st = bdev->state;
	struct spc_nexus *n;
	uint16_t tpgt = 0;

	if (!st)
		return 0;
	pthread_mutex_lock(&st->lock);
	n = spc_nexus_find(st, handle);
	if (n)
		tpgt = n->tpgt;
	pthread_mutex_unlock(&st->lock);
	return tpgt;
}

void spt_bdev_session_start(struct spt_bdev *bdev, const struct spt_session_start *ss)
{
	struct spt_bdev_state *st = bdev->state;
	struct spc_nexus *n;

	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	n = spc_nexus_find(st, ss->itnexus_handle);
	if (!n) {
		n = spc_nexus_add(st, ss->itnexus_handle);
		if (n)
			n->tpgt = spc_itnexus_tpgt(ss->itnexus);
		/* SAM-5 6.3.4: a reinstated session means the previous I_T
		 * nexus was lost; the initiator learns it on the new one. A
		 * brand-new nexus gets no unit attention (nothing happened
		 * that it could have missed). */
		if (n && ss->is_reinstated)
			spc_ua_queue(st, n, ASC_RESET_OCCURRED, ASCQ_IT_NEXUS_LOSS);
	}
	pthread_mutex_unlock(&st->lock);
	/* outside st->lock: pr.c takes its lock first, then ours */
	pr_session_start(bdev, ss);
}

void spt_bdev_session_end(struct spt_bdev *bdev, const struct spt_session_end *se)
{
	struct spt_bdev_state *st = bdev->state;
	struct spc_nexus *n;

	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	n = spc_nexus_find(st, se->itnexus_handle);
	if (n) {
		/* SBC-3 5.14: I_T nexus loss also ends its PREVENT state, which
		 * goes away with the entry. */
		atomic_fetch_sub(&st->ua_pending, n->ua_count);
		*n = st->nexus[st->nexus_count - 1];
		st->nexus_count--;
	}
	pthread_mutex_unlock(&st->lock);
	xcopy_lu_forget(st->xcopy, se->itnexus_handle, false);
	/* SPC-2 5.5.1: its RESERVE ends; registrations stay (SPC-4 5.13.1) */
	pr_session_end(bdev, se->itnexus_handle);
}

/*
 * SAM-5 6.3.3 logical unit reset (and the hard reset of a target reset):
 * operating mode back to its power-on conditions (mode pages to their
 * default values, no saved values exist; the LU started), medium removal
 * allowed (SBC-3 5.14), and a unit attention for every I_T nexus,
 * including the one that asked for the reset.
 */
static void spc_lu_reset(struct spt_bdev *bdev, uint8_t ascq)
{
	struct spt_bdev_state *st = bdev->state;

	pthread_mutex_lock(&st->lock);
	atomic_store(&st->wce, st->wce_default);
	atomic_store(&st->d_sense, false);
	atomic_store(&st->swp, false);
	atomic_store(&st->stopped, false);
	for (size_t i = 0; i < st->nexus_count; i++) {
		st->nexus[i].prevent = false;
		spc_ua_queue(st, &st->nexus[i], ASC_RESET_OCCURRED, ascq);
	}
	pthread_mutex_unlock(&st->lock);
	xcopy_lu_forget(st->xcopy, 0, true);
	/* SPC-2 5.5.1: resets release RESERVE; persistent reservations stay */
	pr_reset(bdev);
}

void spt_bdev_tmf(struct spt_bdev *bdev, struct spt_tmf *tmf)
{
	tmf->w.response = SPT_TMF_RSP_COMPLETE;
	if (!bdev->state)
		goto out;
	switch (tmf->w.function) {
	case SPT_TMF_ABORT_TASK:
	case SPT_TMF_ABORT_TASK_SET:
	case SPT_TMF_CLEAR_ACA:
		/* The engine aborts the tasks; no LU state changes. NACA is
		 * not supported, so there is never an ACA to clear. */
		break;
	case SPT_TMF_CLEAR_TASK_SET:
		/* SAM-5 7.4 with TST=000b (one task set) and TAS=0: the
		 * other I_T nexuses lost tasks silently and are told so. */
		spc_unit_attention_all(bdev, tmf->w.itnexus_handle, ASC_COMMANDS_CLEARED, 0x00);
		break;
	case SPT_TMF_LOGICAL_UNIT_RESET:
	case SPT_TMF_TARGET_WARM_RESET:
		/* SAM-5 6.3: BUS DEVICE RESET FUNCTION OCCURRED for a logical
		 * unit reset and for the hard reset of a target reset. */
		spc_lu_reset(bdev, ASCQ_BUS_DEVICE_RESET);
		break;
	case SPT_TMF_TARGET_COLD_RESET:
		/* RFC 7143 11.5.1: a cold reset is a power cycle as far as the
		 * LU can tell. */
		spc_lu_reset(bdev, ASCQ_POWER_ON);
		break;
	default:
		/* TASK REASSIGN belongs to the iSCSI layer. */
		tmf->w.response = SPT_TMF_RSP_NOT_SUPPORTED;
		break;
	}
out:
	spt_tmf_complete(tmf);
}

void spt_bdev_set_capacity(struct spt_bdev *bdev, uint64_t num_blocks)
{
	bdev->num_blocks = num_blocks;
	/* SBC-3 4.6: every I_T nexus is told the capacity changed. */
	spc_unit_attention_all(bdev, 0, ASC_PARAMETERS_CHANGED, ASCQ_CAPACITY_CHANGED);
}

/* ------------------------------------------------------------------ */
/* TEST UNIT READY, REQUEST SENSE                                       */
/* ------------------------------------------------------------------ */

static void spc_test_unit_ready(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	/* SPC-4 6.47: GOOD if the LU would accept a media access command. */
	spc_unit_ready(bdev, cmd);
}

static void spc_request_sense(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	const uint8_t *cdb = cmd->req.cdb;
	uint8_t data[SPC_SENSE_DATA_MAX];
	bool desc = cdb[1] & 0x01;
	uint32_t alloc = cdb[4];
	struct spc_ua ua;
	size_t len;

	/*
	 * SPC-4 6.39: the parameter data describe the pending unit attention
	 * (which is then cleared), else the LU's current state. Sense that
	 * went out with a CHECK CONDITION was delivered by autosense (SAM-5
	 * 5.13) and is not kept for a later REQUEST SENSE.
	 */
	if (spc_take_unit_attention(bdev, cmd->req.session_cookie, &ua))
		len = spt_sense_build(data, sizeof(data), desc, SPT_KEY_UNIT_ATTENTION,
				      ua.asc, ua.ascq, NULL);
	else if (bdev->state && atomic_load(&bdev->state->stopped))
		len = spt_sense_build(data, sizeof(data), desc, SPT_KEY_NOT_READY,
				      ASC_LU_NOT_READY, ASCQ_INIT_CMD_REQUIRED, NULL);
	else
		len = spt_sense_build(data, sizeof(data), desc, SPT_KEY_NO_SENSE,
				      ASC_NO_ADDITIONAL, 0x00, NULL);
	spc_data_in(cmd, data, spc_min32((uint32_t)len, alloc));
}

/* ------------------------------------------------------------------ */
/* START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL (SBC-3 5.25, 5.14)      */
/* ------------------------------------------------------------------ */

#define SSU_START 0x01
#define SSU_LOEJ 0x02
#define SSU_NO_FLUSH 0x04
#define SSU_PC_START_VALID 0x0
#define SSU_PC_ACTIVE 0x1
#define SSU_PC_IDLE 0x2
#define SSU_PC_STANDBY 0x3
#define SSU_PC_LU_CONTROL 0x7
#define SSU_PC_FORCE_IDLE_0 0xa
#define SSU_PC_FORCE_STANDBY_0 0xb

bool spc_stop_needs_flush(const struct spt_bdev *bdev, const struct spt_cmd *cmd)
{
	const uint8_t *cdb = cmd->req.cdb;

	return cdb[0] == OP_START_STOP_UNIT && (cdb[4] >> 4) == SSU_PC_START_VALID &&
	       !(cdb[4] & (SSU_START | SSU_LOEJ | SSU_NO_FLUSH)) && spc_write_cache_enabled(bdev);
}

static void spc_start_stop_unit(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	const uint8_t *cdb = cmd->req.cdb;
	uint8_t pc = cdb[4] >> 4;
	uint8_t modifier = cdb[3] & 0x0f;
	uint8_t max_modifier;

	switch (pc) {
	case SSU_PC_START_VALID:
		/* SBC-3 5.25: LOEJ=1 loads or ejects a medium; this LU's
		 * medium is not removable (RMB=0). */
		if (cdb[4] & SSU_LOEJ) {
			spc_invalid_field_in_cdb(bdev, cmd, 4, 1);
			return;
		}
		/* IMMED makes no difference: the transition is immediate. */
		atomic_store(&bdev->state->stopped, !(cdb[4] & SSU_START));
		return;
	case SSU_PC_IDLE:
		max_modifier = 2;	/* idle_a, idle_b, idle_c */
		break;
	case SSU_PC_STANDBY:
		max_modifier = 1;	/* standby_z, standby_y */
		break;
	case SSU_PC_ACTIVE:
	case SSU_PC_LU_CONTROL:
	case SSU_PC_FORCE_IDLE_0:
	case SSU_PC_FORCE_STANDBY_0:
		max_modifier = 0;
		break;
	default:
		/* SBC-3 Table 92: reserved power conditions. */
		spc_invalid_field_in_cdb(bdev, cmd, 4, 7);
		return;
	}
	/* SBC-3 5.25: POWER CONDITION MODIFIER values beyond the condition's. */
	if (modifier > max_modifier) {
		spc_invalid_field_in_cdb(bdev, cmd, 3, 3);
		return;
	}
	/* SBC-3 4.20: with POWER CONDITION non-zero START and LOEJ are ignored;
	 * every power condition but stopped allows media access, and an LU
	 * without power management is always able to serve it. */
	atomic_store(&bdev->state->stopped, false);
}

static void spc_prevent_allow(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	struct spt_bdev_state *st = bdev->state;
	uint8_t prevent = cmd->req.cdb[4] & 0x03;
	struct spc_nexus *n;

	/* SBC-3 5.14: PREVENT 10b and 11b are obsolete. */
	if (prevent > 1) {
		spc_invalid_field_in_cdb(bdev, cmd, 4, 1);
		return;
	}
	/* Nothing can be removed from this LU, but the state is kept per
	 * I_T nexus as SBC-3 5.14 describes, and reset the same way. */
	pthread_mutex_lock(&st->lock);
	n = spc_nexus_find(st, cmd->req.session_cookie);
	if (n)
		n->prevent = prevent;
	pthread_mutex_unlock(&st->lock);
}

/* ------------------------------------------------------------------ */
/* Mode pages (SPC-4 7.5, SBC-3 6.4)                                    */
/* ------------------------------------------------------------------ */

static const uint8_t spc_mode_page_codes[] = { MP_CACHING, MP_CONTROL, MP_IEC };

static uint32_t spc_mode_page_len(uint8_t page)
{
	switch (page) {
	case MP_CACHING:
		return MP_CACHING_LEN;
	case MP_CONTROL:
		return MP_CONTROL_LEN;
	case MP_IEC:
		return MP_IEC_LEN;
	default:
		return 0;
	}
}

/*
 * Builds one page into out (SPC_MODE_PAGE_MAX bytes) for a page control:
 * current and default from the values, changeable as a bit mask.
 */
static uint32_t spc_mode_page_build(uint8_t page, int pc, const struct spc_mode_values *v,
				    uint8_t *out)
{
	uint32_t len = spc_mode_page_len(page);
	bool mask = pc == PC_CHANGEABLE;

	memset(out, 0, SPC_MODE_PAGE_MAX);
	if (!len)
		return 0;
	out[0] = page;
	out[1] = (uint8_t)(len - 2);
	switch (page) {
	case MP_CACHING:
		/* SBC-3 6.4.5: WCE is the only changeable bit; RCD=0. */
		if (mask || v->wce)
			out[2] |= MP_BIT_WCE;
		break;
	case MP_CONTROL:
		/* SPC-4 7.5.8: TST=000b, QERR=00b, TAS=0, UA_INTLCK_CTRL=00b;
		 * D_SENSE and SWP changeable. */
		if (mask) {
			out[2] = MP_BIT_D_SENSE;
			out[4] = MP_BIT_SWP;
			break;
		}
		out[2] = MP_BIT_GLTSD | (v->d_sense ? MP_BIT_D_SENSE : 0);
		out[3] = MP_QAM_UNRESTRICTED;
		out[4] = v->swp ? MP_BIT_SWP : 0;
		/* BUSY TIMEOUT PERIOD FFFFh: unlimited; BUSY is never returned
		 * for an unanticipated condition. */
		spt_put_be16(&out[8], 0xffff);
		break;
	case MP_IEC:
		/* SPC-4 7.5.10: no informational exceptions are reported. */
		if (!mask)
			out[2] = MP_BIT_DEXCPT;
		break;
	default:
		break;
	}
	return len;
}

static void spc_mode_values_current(const struct spt_bdev_state *st, struct spc_mode_values *v)
{
	v->wce = atomic_load(&st->wce);
	v->d_sense = atomic_load(&st->d_sense);
	v->swp = atomic_load(&st->swp);
}

static void spc_mode_sense(struct spt_bdev *bdev, struct spt_cmd *cmd, bool ten)
{
	const uint8_t *cdb = cmd->req.cdb;
	uint8_t data[SPC_MODE_BUF_MAX];
	bool dbd = cdb[1] & 0x08;
	bool llbaa = ten && (cdb[1] & 0x10);
	int pc = cdb[2] >> 6;
	uint8_t page = cdb[2] & MP_PAGE_CODE_MASK;
	uint8_t subpage = cdb[3];
	uint32_t alloc = ten ? spt_get_be16(&cdb[7]) : cdb[4];
	uint32_t hdr = ten ? MODE_HDR10_LEN : MODE_HDR6_LEN;
	uint32_t bd_len = 0;
	uint32_t pos;
	struct spc_mode_values v;

	/* SPC-4 6.13: saved values are not implemented. */
	if (pc == PC_SAVED) {
		spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, ASC_SAVING_NOT_SUPPORTED,
				    0x00);
		return;
	}
	/* SPC-4 6.13: a page this LU does not have. */
	if (page != MP_ALL && !spc_mode_page_len(page)) {
		spc_invalid_field_in_cdb(bdev, cmd, 2, 5);
		return;
	}
	/* No page here has subpages: only 00h and FFh (all subpages) work. */
	if (subpage != 0x00 && subpage != MP_SUBPAGE_ALL) {
		spc_invalid_field_in_cdb(bdev, cmd, 3, -1);
		return;
	}

	if (pc == PC_DEFAULT) {
		v.wce = bdev->state->wce_default;
		v.d_sense = false;
		v.swp = false;
	} else {
		spc_mode_values_current(bdev->state, &v);
	}

	memset(data, 0, sizeof(data));
	pos = hdr;
	if (!dbd) {
		bd_len = llbaa ? MODE_BD_LONG_LEN : MODE_BD_SHORT_LEN;
		/* SPC-4 7.5.5: the changeable block descriptor is a mask; the
		 * capacity and block length cannot be changed. */
		if (pc != PC_CHANGEABLE) {
			if (llbaa) {
				spt_put_be64(&data[pos], bdev->num_blocks);
				spt_put_be32(&data[pos + 12], bdev->block_size);
			} else {
				/* SBC-3 6.4.2: FFFFFFFFh when it does not fit. */
				uint64_t n = bdev->num_blocks;

				spt_put_be32(&data[pos], n > UINT32_MAX ? UINT32_MAX : (uint32_t)n);
				spt_put_be24(&data[pos + 5], bdev->block_size);
			}
		}
		pos += bd_len;
	}
	for (size_t i = 0; i < sizeof(spc_mode_page_codes); i++) {
		uint8_t code = spc_mode_page_codes[i];

		if (page != MP_ALL && page != code)
			continue;
		pos += spc_mode_page_build(code, pc, &v, &data[pos]);
	}

	/* SBC-3 6.4.1: WP and DPOFUA (DPO and FUA are accepted). */
	if (ten) {
		spt_put_be16(&data[0], (uint16_t)(pos - 2));
		data[3] = (spc_write_protect_active(bdev) ? MODE_DSP_WP : 0) | MODE_DSP_DPOFUA;
		data[4] = (llbaa && bd_len) ? 0x01 : 0x00;	/* LONGLBA */
		spt_put_be16(&data[6], (uint16_t)bd_len);
	} else {
		data[0] = (uint8_t)(pos - 1);
		data[2] = (spc_write_protect_active(bdev) ? MODE_DSP_WP : 0) | MODE_DSP_DPOFUA;
		data[3] = (uint8_t)bd_len;
	}
	spc_data_in(cmd, data, spc_min32(pos, alloc));
}

static void spc_param_list_length_error(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH, 0x00);
}

/* Highest bit set in a non-zero byte, for the sense bit pointer. */
static int spc_high_bit(uint8_t b)
{
	int bit = 7;

	while (bit > 0 && !(b & (1u << bit)))
		bit--;
	return bit;
}

/*
 * SBC-3 6.4.2: a block descriptor in MODE SELECT may only restate the
 * current geometry (NUMBER OF LOGICAL BLOCKS zero means no change).
 * Returns false with the sense set if it does not.
 */
static bool spc_mode_select_bd(struct spt_bdev *bdev, struct spt_cmd *cmd, const uint8_t *p,
			       uint32_t off, bool longlba)
{
	uint64_t blocks;
	uint64_t current = bdev->num_blocks;
	uint32_t block_len;
	uint32_t len_off;

	if (longlba) {
		blocks = spt_get_be64(&p[off]);
		len_off = off + 12;
		block_len = spt_get_be32(&p[len_off]);
	} else {
		blocks = spt_get_be32(&p[off]);
		if (current > UINT32_MAX)
			current = UINT32_MAX;
		len_off = off + 5;
		block_len = spt_get_be24(&p[len_off]);
	}
	if (blocks != 0 && blocks != current) {
		spc_invalid_field_in_param(bdev, cmd, (uint16_t)off, -1);
		return false;
	}
	if (block_len != bdev->block_size) {
		spc_invalid_field_in_param(bdev, cmd, (uint16_t)len_off, -1);
		return false;
	}
	return true;
}

static void spc_mode_select(struct spt_bdev *bdev, struct spt_cmd *cmd, bool ten)
{
	struct spt_bdev_state *st = bdev->state;
	const uint8_t *cdb = cmd->req.cdb;
	const uint8_t *p = cmd->buf;
	bool pf = cdb[1] & 0x10;
	bool sp = cdb[1] & 0x01;
	uint32_t plen = ten ? spt_get_be16(&cdb[7]) : cdb[4];
	uint32_t hdr = ten ? MODE_HDR10_LEN : MODE_HDR6_LEN;
	uint64_t received;
	uint32_t bd_len, off;
	bool longlba, locked = false, changed = false;
	struct spc_mode_values cur, next;

	cmd->cpl.transfer_length = plen;
	/* SPC-4 6.11: SP=1 without saved pages is an invalid CDB field. */
	if (sp) {
		spc_invalid_field_in_cdb(bdev, cmd, 1, 0);
		goto out;
	}
	/* SPC-4 6.11: a zero PARAMETER LIST LENGTH transfers nothing and is
	 * not an error. */
	if (plen == 0)
		goto out;
	/* SPC-4 6.11: a list too short for the mode parameter header. */
	if (plen < hdr) {
		spc_param_list_length_error(bdev, cmd);
		goto out;
	}
	/* Earlier data sequences only fill the buffer (spt.h). */
	if (!cmd->req.is_final)
		goto out;
	received = (uint64_t)cmd->req.sequence_byte_offset + cmd->req.data_length;
	/* SPC-4 6.11: the initiator sent less than the list length says. */
	if (!p || received < plen || cmd->buf_len < plen) {
		spc_param_list_length_error(bdev, cmd);
		goto out;
	}

	longlba = ten && (p[4] & 0x01);
	bd_len = ten ? spt_get_be16(&p[6]) : p[3];
	/* SBC-3 6.4.2: one short (8 bytes) or one long (16 bytes, LONGLBA)
	 * block descriptor at most. */
	if (bd_len != 0 && bd_len != (longlba ? MODE_BD_LONG_LEN : MODE_BD_SHORT_LEN)) {
		spc_invalid_field_in_param(bdev, cmd, ten ? 6 : 3, -1);
		goto out;
	}
	/* SPC-4 6.11: truncated block descriptor. */
	if (hdr + bd_len > plen) {
		spc_param_list_length_error(bdev, cmd);
		goto out;
	}
	if (bd_len && !spc_mode_select_bd(bdev, cmd, p, hdr, longlba))
		goto out;
	off = hdr + bd_len;
	/* SPC-4 6.11: PF=0 means vendor-specific pages; we have none. */
	if (off < plen && !pf) {
		spc_invalid_field_in_cdb(bdev, cmd, 1, 4);
		goto out;
	}

	/* Validate every page against one snapshot, then apply them all. */
	pthread_mutex_lock(&st->lock);
	locked = true;
	spc_mode_values_current(st, &cur);
	next = cur;
	while (off < plen) {
		uint8_t page = p[off] & MP_PAGE_CODE_MASK;
		uint8_t current[SPC_MODE_PAGE_MAX];
		uint8_t changeable[SPC_MODE_PAGE_MAX];
		uint32_t len, want;

		/* SPC-4 6.11: a page header cut by the list length. */
		if (plen - off < 2) {
			spc_param_list_length_error(bdev, cmd);
			goto out;
		}
		/* No page here has subpages (SPC-4 7.5.7: SPF=1 is sub_page
		 * format). */
		if (p[off] & MP_SPF) {
			spc_invalid_field_in_param(bdev, cmd, (uint16_t)off, 6);
			goto out;
		}
		want = spc_mode_page_len(page);
		if (!want) {
			spc_invalid_field_in_param(bdev, cmd, (uint16_t)off, 5);
			goto out;
		}
		len = (uint32_t)p[off + 1] + 2;
		/* SPC-4 7.5.7: PAGE LENGTH must be the one MODE SENSE returns. */
		if (len != want) {
			spc_invalid_field_in_param(bdev, cmd, (uint16_t)(off + 1), -1);
			goto out;
		}
		if (len > plen - off) {
			spc_param_list_length_error(bdev, cmd);
			goto out;
		}
		spc_mode_page_build(page, PC_CURRENT, &cur, current);
		spc_mode_page_build(page, PC_CHANGEABLE, &cur, changeable);
		/* SPC-4 6.11: a non-changeable field set to anything but its
		 * current value. The PS bit (byte 0) is reserved here. */
		for (uint32_t i = 2; i < len; i++) {
			uint8_t diff = (uint8_t)((p[off + i] ^ current[i]) & ~changeable[i]);

			if (diff) {
				spc_invalid_field_in_param(bdev, cmd, (uint16_t)(off + i),
							   spc_high_bit(diff));
				goto out;
			}
		}
		switch (page) {
		case MP_CACHING:
			next.wce = p[off + 2] & MP_BIT_WCE;
			break;
		case MP_CONTROL:
			next.d_sense = p[off + 2] & MP_BIT_D_SENSE;
			next.swp = p[off + 4] & MP_BIT_SWP;
			break;
		default:
			break;
		}
		off += len;
	}
	changed = next.wce != cur.wce || next.d_sense != cur.d_sense || next.swp != cur.swp;
	atomic_store(&st->wce, next.wce);
	atomic_store(&st->d_sense, next.d_sense);
	atomic_store(&st->swp, next.swp);
out:
	if (locked)
		pthread_mutex_unlock(&st->lock);
	/* SPC-4 6.11: the other I_T nexuses learn the parameters changed. */
	if (changed)
		spc_unit_attention_all(bdev, cmd->req.session_cookie, ASC_PARAMETERS_CHANGED,
				       ASCQ_MODE_PARAMETERS_CHANGED);
}

/* ------------------------------------------------------------------ */
/* Dispatcher                                                           */
/* ------------------------------------------------------------------ */

bool spc_execute(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	const uint8_t *cdb = cmd->req.cdb;

	if (!bdev->state)
		return false;
	switch (cdb[0]) {
	case OP_TEST_UNIT_READY:
		spc_test_unit_ready(bdev, cmd);
		break;
	case OP_REQUEST_SENSE:
		spc_request_sense(bdev, cmd);
		break;
	case OP_INQUIRY:
		spc_inquiry(bdev, cmd);
		break;
	case OP_MODE_SELECT_6:
		spc_mode_select(bdev, cmd, false);
		break;
	case OP_MODE_SENSE_6:
		spc_mode_sense(bdev, cmd, false);
		break;
	case OP_START_STOP_UNIT:
		spc_start_stop_unit(bdev, cmd);
		break;
	case OP_PREVENT_ALLOW:
		spc_prevent_allow(bdev, cmd);
		break;
	case OP_MODE_SELECT_10:
		spc_mode_select(bdev, cmd, true);
		break;
	case OP_MODE_SENSE_10:
		spc_mode_sense(bdev, cmd, true);
		break;
	case OP_RESERVE_6:
	case OP_RESERVE_10:
		pr_reserve(bdev, cmd);
		break;
	case OP_RELEASE_6:
	case OP_RELEASE_10:
		pr_release(bdev, cmd);
		break;
	case OP_PERSISTENT_RESERVE_IN:
		pr_persistent_reserve_in(bdev, cmd);
		break;
	case OP_PERSISTENT_RESERVE_OUT:
		pr_persistent_reserve_out(bdev, cmd);
		break;
	case OP_MAINTENANCE_IN:
		/* SPC-4 6.36: REPORT TARGET PORT GROUPS (alua.c) */
		if ((cdb[1] & 0x1f) == SA_REPORT_TARGET_PORT_GROUPS) {
			alua_report_target_port_groups(bdev, cmd);
			break;
		}
		/* SPC-4 6.35: REPORT SUPPORTED OPERATION CODES */
		if ((cdb[1] & 0x1f) != SA_REPORT_SUPPORTED_OPCODES) {
			spc_invalid_field_in_cdb(bdev, cmd, 1, 4);
			break;
		}
		spc_report_supported_opcodes(bdev, cmd);
		break;
	default:
		return false;
	}
	return true;
}
