/*
 * Reservations of a block LU served by the emulation helpers:
 *
 *  - SPC-4 persistent reservations: registrations (a reservation key per
 *    I_T nexus), one persistent reservation of any of the six types,
 *    PRGENERATION, PERSISTENT RESERVE IN (READ KEYS, READ RESERVATION,
 *    REPORT CAPABILITIES, READ FULL STATUS) and OUT (REGISTER, REGISTER AND
 *    IGNORE EXISTING KEY, RESERVE, RELEASE, CLEAR, PREEMPT, PREEMPT AND
 *    ABORT, REGISTER AND MOVE), the unit attentions they cause, APTPL (the
 *    state saved next to the backing store and loaded at start);
 *  - SPC-2 RESERVE/RELEASE (6) and (10): one LU reservation held by one
 *    session, ended by RELEASE, the session's end and resets;
 *  - the conflict check every command passes before it runs.
 *
 * Not supported, and said so in REPORT CAPABILITIES: SPEC_I_PT (SIP_C=0;
 * refused with INVALID FIELD IN PARAMETER LIST); element and third-party
 * SPC-2 reservations (INVALID FIELD IN CDB). APTPL needs
 * bdev->pr_state_path (PTPL_C follows it). REGISTER AND MOVE takes iSCSI
 * TransportIDs of format 01b (initiator port) only: the move needs one
 * I_T nexus, which a name-only TransportID does not give.
 *
 * PREEMPT AND ABORT: SPC-4 5.13.11 also wants the preempted I_T
 * nexuses' tasks aborted. The helpers do not own the engine's task set and
 * cannot abort commands already in flight; what they do is what PREEMPT
 * does (registrations removed, REGISTRATIONS PREEMPTED unit attention, every
 * later command of those nexuses checked against the new reservation and
 * refused with RESERVATION CONFLICT where the table says so). Commands
 * already past their conflict check complete normally.
 *
 * An APTPL save runs synchronously (write, fsync, rename, fsync of the
 * directory) on the calling thread: PERSISTENT RESERVE OUT is rare and its
 * GOOD status promises the state is durable.
 */
#include "scsi/pr.h"
#include "scsi/spc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Named limits. */
#define PR_REG_MAX 256			/* registrations per LU; more: 55/04 */
#define PR_NEXUS_MAX 4096		/* I_T nexuses per LU, as spc.c's table */
#define PR_NEXUS_INITIAL 8
#define PR_ISCSI_NAME_MAX 223		/* RFC 7143 4.2.7.1: iSCSI names, bytes */
#define PR_ISID_HEX 12			/* 6-byte ISID in hex */
#define PR_TPGT_HEX 4			/* 2-byte TPGT in hex */
#define PR_PORT_SEP_LEN 5		/* ",i,0x" or ",t,0x" */
#define PR_PORT_MAX 256			/* a port name with its NUL */
#define PR_PARAM_BASIC_LEN 24		/* SPC-4 6.16.3: the basic parameter list */
#define PR_MOVE_HEADER_LEN 24		/* SPC-4 6.16.4: REGISTER AND MOVE list before the TransportID */
#define PR_TRANSPORT_ID_MIN 24		/* SPC-4 7.6.4.6: ADDITIONAL LENGTH at least 20 */
#define PR_TRANSPORT_ID_MAX 256		/* header, the longest initiator port, padding */
#define PR_IN_HEADER_LEN 8		/* PRGENERATION, ADDITIONAL LENGTH */
#define PR_RESERVATION_DESC_LEN 16	/* SPC-4 6.15.3 */
#define PR_CAPABILITIES_LEN 8		/* SPC-4 6.15.4 */
#define PR_FULL_STATUS_DESC_LEN 24	/* SPC-4 6.15.5, before the TransportID */
#define PR_FILE_VERSION 1
#define PR_FILE_LINE_MAX 640		/* one registration line and then some */
#define PR_FILE_MAX (PR_FILE_LINE_MAX * (PR_REG_MAX + 8))
#define PR_PATH_MAX 4096		/* sizeof(spt_bdev.pr_state_path) */

_Static_assert(PR_PORT_MAX > PR_ISCSI_NAME_MAX + PR_PORT_SEP_LEN + PR_ISID_HEX, "port buffer");
_Static_assert(PR_TRANSPORT_ID_MAX >=
		       ((4 + PR_ISCSI_NAME_MAX + PR_PORT_SEP_LEN + PR_ISID_HEX + 1 + 3) & ~3),
	       "TransportID buffer");
_Static_assert(sizeof(((struct spt_bdev *)0)->pr_state_path) == PR_PATH_MAX, "state path");

/* Operation codes the conflict table names (SPC-4 annex D, SBC-3 5). */
enum {
	PR_OP_TEST_UNIT_READY = 0x00,
	PR_OP_REQUEST_SENSE = 0x03,
	PR_OP_FORMAT_UNIT = 0x04,
	PR_OP_READ6 = 0x08,
	PR_OP_WRITE6 = 0x0a,
	PR_OP_INQUIRY = 0x12,
	PR_OP_MODE_SELECT6 = 0x15,
	PR_OP_RESERVE6 = 0x16,
	PR_OP_RELEASE6 = 0x17,
	PR_OP_MODE_SENSE6 = 0x1a,
	PR_OP_START_STOP_UNIT = 0x1b,
	PR_OP_SEND_DIAGNOSTIC = 0x1d,
	PR_OP_PREVENT_ALLOW = 0x1e,
	PR_OP_READ_CAPACITY10 = 0x25,
	PR_OP_READ10 = 0x28,
	PR_OP_WRITE10 = 0x2a,
	PR_OP_WRITE_VERIFY10 = 0x2e,
	PR_OP_VERIFY10 = 0x2f,
	PR_OP_PREFETCH10 = 0x34,
	PR_OP_SYNC_CACHE10 = 0x35,
	PR_OP_WRITE_BUFFER = 0x3b,
	PR_OP_READ_BUFFER = 0x3c,
	PR_OP_WRITE_SAME10 = 0x41,
	PR_OP_UNMAP = 0x42,
	PR_OP_LOG_SELECT = 0x4c,
	PR_OP_LOG_SENSE = 0x4d,
	PR_OP_MODE_SELECT10 = 0x55,
	PR_OP_RESERVE10 = 0x56,
	PR_OP_RELEASE10 = 0x57,
	PR_OP_MODE_SENSE10 = 0x5a,
	PR_OP_PERSISTENT_RESERVE_IN = 0x5e,
	PR_OP_PERSISTENT_RESERVE_OUT = 0x5f,
	PR_OP_EXTENDED_COPY = 0x83,
	PR_OP_RECEIVE_COPY_RESULTS = 0x84,
	PR_OP_READ16 = 0x88,
	PR_OP_COMPARE_AND_WRITE = 0x89,
	PR_OP_WRITE16 = 0x8a,
	PR_OP_ORWRITE16 = 0x8b,
	PR_OP_WRITE_VERIFY16 = 0x8e,
	PR_OP_VERIFY16 = 0x8f,
	PR_OP_PREFETCH16 = 0x90,
	PR_OP_SYNC_CACHE16 = 0x91,
	PR_OP_WRITE_SAME16 = 0x93,
	PR_OP_SERVICE_ACTION_IN16 = 0x9e,
	PR_OP_REPORT_LUNS = 0xa0,
	PR_OP_MAINTENANCE_IN = 0xa3,
	PR_OP_READ12 = 0xa8,
	PR_OP_WRITE12 = 0xaa,
	PR_OP_WRITE_VERIFY12 = 0xae,
	PR_OP_VERIFY12 = 0xaf,
};
#define PR_SA_READ_CAPACITY16 0x10	/* SERVICE ACTION IN(16) */
#define PR_SA_GET_LBA_STATUS 0x12
#define PR_SA_REPORT_SUPPORTED_OPCODES 0x0c	/* MAINTENANCE IN */
#define PR_SA_REPORT_SUPPORTED_TMFS 0x0d
#define PR_SA_MASK 0x1f

/* PERSISTENT RESERVE IN service actions (SPC-4 6.15.1). */
enum {
	PR_IN_READ_KEYS = 0x00,
	PR_IN_READ_RESERVATION = 0x01,
	PR_IN_REPORT_CAPABILITIES = 0x02,
	PR_IN_READ_FULL_STATUS = 0x03,
};

/* PERSISTENT RESERVE OUT service actions (SPC-4 6.16.2). */
enum {
	PR_OUT_REGISTER = 0x00,
	PR_OUT_RESERVE = 0x01,
	PR_OUT_RELEASE = 0x02,
	PR_OUT_CLEAR = 0x03,
	PR_OUT_PREEMPT = 0x04,
	PR_OUT_PREEMPT_AND_ABORT = 0x05,
	PR_OUT_REGISTER_AND_IGNORE = 0x06,
	PR_OUT_REGISTER_AND_MOVE = 0x07,
};

/* Persistent reservation types (SPC-4 6.15.3.3). */
enum {
	PR_TYPE_WRITE_EXCLUSIVE = 0x1,
	PR_TYPE_EXCLUSIVE_ACCESS = 0x3,
	PR_TYPE_WRITE_EXCLUSIVE_RO = 0x5,
	PR_TYPE_EXCLUSIVE_ACCESS_RO = 0x6,
	PR_TYPE_WRITE_EXCLUSIVE_AR = 0x7,
	PR_TYPE_EXCLUSIVE_ACCESS_AR = 0x8,
};
#define PR_SCOPE_LU 0x0

/* Parameter list flags (SPC-4 6.16.3, 6.16.4). */
#define PR_PARAM_FLAGS 20		/* basic list: SPEC_I_PT, ALL_TG_PT, APTPL */
#define PR_FLAG_SPEC_I_PT 0x08
#define PR_FLAG_ALL_TG_PT 0x04
#define PR_FLAG_APTPL 0x01
#define PR_MOVE_FLAGS 17		/* REGISTER AND MOVE: UNREG, APTPL */
#define PR_MOVE_UNREG 0x02
#define PR_MOVE_RTPI 18
#define PR_MOVE_TID_LEN 20

/* REPORT CAPABILITIES bits (SPC-4 6.15.4). */
#define PR_CAP_CRH 0x10
#define PR_CAP_SIP_C 0x08
#define PR_CAP_ATP_C 0x04
#define PR_CAP_PTPL_C 0x01
#define PR_CAP_TMV 0x80
/* ALLOW COMMANDS 011b: TEST UNIT READY passes Write Exclusive and Exclusive
 * Access reservations, and MODE SENSE, REPORT SUPPORTED OPERATION CODES,
 * RECEIVE COPY RESULTS ... pass Write Exclusive ones like reads do. */
#define PR_CAP_ALLOW_COMMANDS (0x3 << 4)
#define PR_CAP_PTPL_A 0x01
#define PR_MASK_WR_EX_AR 0x80		/* type mask byte 4 */
#define PR_MASK_EX_AC_RO 0x40
#define PR_MASK_WR_EX_RO 0x20
#define PR_MASK_EX_AC 0x08
#define PR_MASK_WR_EX 0x02
#define PR_MASK_EX_AC_AR 0x01		/* type mask byte 5 */

/* READ FULL STATUS descriptor byte 12. */
#define PR_FS_ALL_TG_PT 0x02
#define PR_FS_R_HOLDER 0x01

/* iSCSI TransportID (SPC-4 7.6.4.6). */
#define PR_TID_PROTOCOL_ISCSI 0x5
#define PR_TID_FORMAT_PORT 0x1		/* name, ",i,0x", ISID */

/* Sense codes (SPC-4 annex D). */
#define ASC_PARAM_LIST_LENGTH 0x1a
#define ASC_INVALID_FIELD_IN_PARAM 0x26
#define ASCQ_INVALID_RELEASE 0x04	/* INVALID RELEASE OF PERSISTENT RESERVATION */
#define ASC_RESERVATIONS_CHANGED 0x2a
#define ASCQ_RESERVATIONS_PREEMPTED 0x03
#define ASCQ_RESERVATIONS_RELEASED 0x04
#define ASCQ_REGISTRATIONS_PREEMPTED 0x05
#define ASC_INTERNAL_TARGET_FAILURE 0x44
#define ASC_INSUFFICIENT_RESOURCES 0x55
#define ASCQ_INSUFFICIENT_REGISTRATION 0x04

/* One registration (SPC-4 5.13.7): an I_T nexus and its reservation key. */
struct pr_reg {
	uint64_t key;			/* never zero */
	bool all_tg_pt;			/* registered through every target port */
	bool holder;			/* holds the reservation (not the all-registrants types) */
	char iport[PR_PORT_MAX];	/* "<initiator name>,i,0x<isid>" */
	char tport[PR_PORT_MAX];	/* "<target name>,t,0x<tpgt>" */
};

/* What APTPL keeps across a restart; copied whole for each change. */
struct pr_data {
	uint32_t generation;		/* PRGENERATION */
	bool aptpl;
	bool reserved;			/* a persistent reservation exists */
	uint8_t type;			/* its type; the scope is always LU_SCOPE */
	size_t nregs;
	struct pr_reg *regs;
};

/* One I_T nexus the LU heard SESSION_START of. */
struct pr_nexus {
	uint64_t handle;
	bool named;			/* the ITNexus string was understood */
	uint8_t ua_ascq;		/* 2Ah unit attention waiting for the commit, 0: none */
	char iport[PR_PORT_MAX];
	char tport[PR_PORT_MAX];
};

struct pr_state {
	pthread_mutex_t lock;
	atomic_bool active;		/* registrations or a reservation of either kind exist */
	struct pr_data cur;
	struct pr_nexus *nexus;
	size_t nexus_count;
	size_t nexus_cap;
	bool spc2_reserved;		/* RESERVE(6)/(10) in force */
	uint64_t spc2_holder;		/* the session holding it */
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */
/* ------------------------------------------------------------------ */

static struct pr_state *pr_of(const struct spt_bdev *bdev)
{
	return spc_pr_state(bdev);
}

static void pr_set_conflict(struct spt_cmd *cmd)
{
	/* SAM-5 5.3: RESERVATION CONFLICT carries no sense data. */
	cmd->cpl.scsi_status = SPT_STATUS_RESERVATION_CONFLICT;
	cmd->cpl.sense_length = 0;
	cmd->cpl.data_in_length = 0;
}

static void pr_busy(struct spt_cmd *cmd)
{
	/* SAM-5 status BUSY: short of memory for a moment, the initiator retries. */
	cmd->cpl.scsi_status = SPT_STATUS_BUSY;
	cmd->cpl.sense_length = 0;
	cmd->cpl.data_in_length = 0;
}

static void pr_internal_failure(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	spc_check_condition(bdev, cmd, SPT_KEY_HARDWARE_ERROR, ASC_INTERNAL_TARGET_FAILURE, 0x00);
}

static void pr_param_length_error(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	spc_check_condition(bdev, cmd, SPT_KEY_ILLEGAL_REQUEST, ASC_PARAM_LIST_LENGTH, 0x00);
}

static bool pr_type_valid(uint8_t type)
{
	switch (type) {
	case PR_TYPE_WRITE_EXCLUSIVE:
	case PR_TYPE_EXCLUSIVE_ACCESS:
	case PR_TYPE_WRITE_EXCLUSIVE_RO:
	case PR_TYPE_EXCLUSIVE_ACCESS_RO:
	case PR_TYPE_WRITE_EXCLUSIVE_AR:
	case PR_TYPE_EXCLUSIVE_ACCESS_AR:
		return true;
	default:
		return false;
	}
}

static bool pr_type_all_registrants(uint8_t type)
{
	return type == PR_TYPE_WRITE_EXCLUSIVE_AR || type == PR_TYPE_EXCLUSIVE_ACCESS_AR;
}

static bool pr_type_registrants_only(uint8_t type)
{
	return type == PR_TYPE_WRITE_EXCLUSIVE_RO || type == PR_TYPE_EXCLUSIVE_ACCESS_RO;
}

static bool pr_type_write_exclusive(uint8_t type)
{
	return type == PR_TYPE_WRITE_EXCLUSIVE || type == PR_TYPE_WRITE_EXCLUSIVE_RO ||
	       type == PR_TYPE_WRITE_EXCLUSIVE_AR;
}

static char pr_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool pr_is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Recomputes the lock-free flag. Caller holds pr->lock. */
static void pr_update_active(struct pr_state *pr)
{
	atomic_store(&pr->active, pr->cur.nregs > 0 || pr->cur.reserved || pr->spc2_reserved);
}

/* ------------------------------------------------------------------ */
/* Port names                                                           */
/* ------------------------------------------------------------------ */

/*
 * s[0..len) as "<iSCSI name>,<kind>,0x<hex digits>": the initiator port of
 * SPC-4 7.6.4.6 (kind 'i', ISID) or the target port (kind 't', TPGT).
 * Copies it into out[PR_PORT_MAX], the hex digits in lower case so the
 * engine's spelling and a TransportID's compare equal. false if it is not.
 */
static bool pr_port_parse(const char *s, size_t len, char kind, size_t hex, char *out)
{
	size_t name_len, i;

	if (len < 1 + PR_PORT_SEP_LEN + hex)
		return false;
	name_len = len - PR_PORT_SEP_LEN - hex;
	/* RFC 7143 4.2.7.1: iSCSI names are at most 223 bytes, no spaces;
	 * the comma is the port name separator and cannot be in a name. */
	if (name_len > PR_ISCSI_NAME_MAX)
		return false;
	for (i = 0; i < name_len; i++)
		if (s[i] <= ' ' || s[i] > '~' || s[i] == ',')
			return false;
	if (s[i] != ',' || s[i + 1] != kind || s[i + 2] != ',' || s[i + 3] != '0' ||
	    pr_lower(s[i + 4]) != 'x')
		return false;
	for (i = name_len + PR_PORT_SEP_LEN; i < len; i++)
		if (!pr_is_hex(s[i]))
			return false;
	for (i = 0; i < len; i++)
		out[i] = i < name_len ? s[i] : pr_lower(s[i]);
	out[len] = '\0';
	return true;
}

/* SESSION_START's "<initiator>,i,0x<isid>,<target>,t,0x<tpgt>" into its
 * two ports. */
static bool pr_itnexus_parse(const char *s, char *iport, char *tport)
{
	size_t len = strnlen(s, SPT_ITNEXUS_MAX);
	const char *comma = memchr(s, ',', len);
	size_t ilen;

	if (len == SPT_ITNEXUS_MAX || !comma)
		return false;
	ilen = (size_t)(comma - s) + PR_PORT_SEP_LEN + PR_ISID_HEX;
	if (ilen >= len || s[ilen] != ',')
		return false;
	return pr_port_parse(s, ilen, 'i', PR_ISID_HEX, iport) &&
	       pr_port_parse(s + ilen + 1, len - ilen - 1, 't', PR_TPGT_HEX, tport);
}

/* ------------------------------------------------------------------ */
/* Nexus table and registrations                                        */
/* ------------------------------------------------------------------ */

/* Caller holds pr->lock. */
static struct pr_nexus *pr_nexus_find(struct pr_state *pr, uint64_t handle)
{
	for (size_t i = 0; i < pr->nexus_count; i++)
		if (pr->nexus[i].handle == handle)
			return &pr->nexus[i];
	return NULL;
}

static bool pr_reg_matches(const struct pr_reg *r, const char *iport, const char *tport)
{
	return strcmp(r->iport, iport) == 0 && (r->all_tg_pt || strcmp(r->tport, tport) == 0);
}

/* The registration of the I_T nexus (iport, tport), or -1. One made through
 * this very target port wins over one made with ALL_TG_PT. */
static long pr_reg_find(const struct pr_data *d, const char *iport, const char *tport)
{
	long found = -1;

	for (size_t i = 0; i < d->nregs; i++) {
		const struct pr_reg *r = &d->regs[i];

		if (!pr_reg_matches(r, iport, tport))
			continue;
		if (!r->all_tg_pt)
			return (long)i;
		found = (long)i;
	}
	return found;
}

static long pr_reg_of_nexus(const struct pr_data *d, const struct pr_nexus *n)
{
	return n && n->named ? pr_reg_find(d, n->iport, n->tport) : -1;
}

/* SPC-4 5.13.10: every registrant holds an all-registrants reservation,
 * otherwise the one I_T nexus that made it does. */
static bool pr_is_holder(const struct pr_data *d, long reg)
{
	if (!d->reserved || reg < 0)
		return false;
	return pr_type_all_registrants(d->type) || d->regs[reg].holder;
}

static uint64_t pr_holder_key(const struct pr_data *d)
{
	for (size_t i = 0; i < d->nregs; i++)
		if (d->regs[i].holder)
			return d->regs[i].key;
	return 0;
}

/*
 * Caller holds pr->lock: every session of the I_T nexus registered as r,
 * except the one the command came on, gets unit attention 2Ah/ascq once the
 * change is committed.
 */
static void pr_ua_mark(struct pr_state *pr, const struct pr_reg *r, uint8_t ascq,
		       const struct pr_nexus *except)
{
	for (size_t i = 0; i < pr->nexus_count; i++) {
		struct pr_nexus *n = &pr->nexus[i];

		if (n != except && n->named && !n->ua_ascq && pr_reg_matches(r, n->iport, n->tport))
			n->ua_ascq = ascq;
	}
}

static void pr_ua_discard(struct pr_state *pr)
{
	for (size_t i = 0; i < pr->nexus_count; i++)
		pr->nexus[i].ua_ascq = 0;
}

/* Caller holds pr->lock (spc.c's lock is taken inside: pr before spc). */
static void pr_ua_deliver(struct spt_bdev *bdev, struct pr_state *pr)
{
	for (size_t i = 0; i < pr->nexus_count; i++) {
		struct pr_nexus *n = &pr->nexus[i];

		if (n->ua_ascq)
			spc_unit_attention_nexus(bdev, n->handle, ASC_RESERVATIONS_CHANGED, n->ua_ascq);
		n->ua_ascq = 0;
	}
}

/* A copy of src with room for `extra` more registrations. */
static int pr_data_copy(struct pr_data *dst, const struct pr_data *src, size_t extra)
{
	*dst = *src;
	dst->regs = malloc((src->nregs + extra) * sizeof(*dst->regs) + 1);
	if (!dst->regs)
		return -ENOMEM;
	if (src->nregs)
		memcpy(dst->regs, src->regs, src->nregs * sizeof(*dst->regs));
	return 0;
}

static void pr_reg_remove(struct pr_data *d, size_t i)
{
	memmove(&d->regs[i], &d->regs[i + 1], (d->nregs - i - 1) * sizeof(d->regs[0]));
	d->nregs--;
}

/* ------------------------------------------------------------------ */
/* APTPL state file                                                     */
/* ------------------------------------------------------------------ */
/*
 * Text, one item per line, written whole to "<path>.tmp", fsync'ed, renamed
 * over <path>, the directory fsync'ed (a crash leaves the old file or the
 * new one, never a mix):
 *
 *   spt-pr-state 1
 *   generation <PRGENERATION, decimal>
 *   reservation none | reservation <type, decimal>
 *   registration <key, 16 hex> <ALL_TG_PT 0|1> <holder 0|1> <iport> <tport>
 *   ...
 *   end
 */

static int pr_dir_sync(const char *path)
{
	char dir[PR_PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rc = 0;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int pr_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Appends one formatted line; false when PR_FILE_MAX would be exceeded. */
static bool pr_text_add(char *text, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static bool pr_text_add(char *text, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text + *pos, PR_FILE_MAX - *pos, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= PR_FILE_MAX - *pos)
		return false;
	*pos += (size_t)n;
	return true;
}

static int pr_file_save(const char *path, const struct pr_data *d)
{
	char tmp[PR_PATH_MAX];
	char *text = malloc(PR_FILE_MAX);
	size_t pos = 0;
	int fd = -1, rc = 0;
	bool ok;

	if (!text)
		return -ENOMEM;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	ok = pr_text_add(text, &pos, "spt-pr-state %d\ngeneration %u\n", PR_FILE_VERSION,
			 d->generation);
	if (d->reserved)
		ok = ok && pr_text_add(text, &pos, "reservation %u\n", d->type);
	else
		ok = ok && pr_text_add(text, &pos, "reservation none\n");
	for (size_t i = 0; ok && i < d->nregs; i++) {
		const struct pr_reg *r = &d->regs[i];

		ok = pr_text_add(text, &pos, "registration %016llx %d %d %s %s\n",
				 (unsigned long long)r->key, r->all_tg_pt, r->holder, r->iport,
				 r->tport);
	}
	ok = ok && pr_text_add(text, &pos, "end\n");
	if (!ok) {
		rc = -EOVERFLOW;
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	rc = pr_write_all(fd, text, pos);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	fd = -1;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc == 0)
		rc = pr_dir_sync(path);
	else
		unlink(tmp);
out:
	free(text);
	return rc;
}

/* APTPL=0: the state must not come back after a restart. */
static int pr_file_remove(const char *path)
{
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : -errno;
	return pr_dir_sync(path);
}

/* Splits a line into space-separated words; the count, or -1 for too many. */
static int pr_words(char *line, char **w, int max)
{
	int n = 0;
	char *save = NULL;

	for (char *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		if (n == max)
			return -1;
		w[n++] = t;
	}
	return n;
}

/* A decimal or hexadecimal number of exactly the digits given, no sign. */
static bool pr_parse_u64(const char *s, int base, size_t digits, uint64_t max, uint64_t *out)
{
	char *end;
	size_t len = strlen(s);

	if (len == 0 || (digits && len != digits) || len > 20)
		return false;
	for (size_t i = 0; i < len; i++)
		if (base == 16 ? !pr_is_hex(s[i]) : (s[i] < '0' || s[i] > '9'))
			return false;
	errno = 0;
	*out = strtoull(s, &end, base);
	return errno == 0 && *end == '\0' && *out <= max;
}

/* One registration line's words into r; NULL or what is wrong. */
static const char *pr_parse_reg(char **w, struct pr_reg *r)
{
	uint64_t atp, holder;

	memset(r, 0, sizeof(*r));
	if (!pr_parse_u64(w[1], 16, 16, UINT64_MAX, &r->key) || r->key == 0)
		return "bad reservation key";
	if (!pr_parse_u64(w[2], 10, 1, 1, &atp) || !pr_parse_u64(w[3], 10, 1, 1, &holder))
		return "bad ALL_TG_PT or holder flag";
	r->all_tg_pt = atp;
	r->holder = holder;
	if (!pr_port_parse(w[4], strlen(w[4]), 'i', PR_ISID_HEX, r->iport))
		return "bad initiator port";
	if (!pr_port_parse(w[5], strlen(w[5]), 't', PR_TPGT_HEX, r->tport))
		return "bad target port";
	return NULL;
}

/* The whole text of the file into d; NULL or what is wrong, *lineno set. */
static const char *pr_parse_text(char *text, struct pr_data *d, unsigned *lineno)
{
	char *save = NULL, *line;
	char *w[6];
	unsigned holders = 0;
	bool ended = false;
	uint64_t v;
	int n;

	*lineno = 0;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		(*lineno)++;
		if (ended)
			return "text after \"end\"";
		if (strlen(line) >= PR_FILE_LINE_MAX)
			return "line too long";
		n = pr_words(line, w, 6);
		if (*lineno == 1) {
			if (n != 2 || strcmp(w[0], "spt-pr-state") != 0 ||
			    !pr_parse_u64(w[1], 10, 0, UINT32_MAX, &v) || v != PR_FILE_VERSION)
				return "not a version 1 spt-pr-state file";
		} else if (*lineno == 2) {
			if (n != 2 || strcmp(w[0], "generation") != 0 ||
			    !pr_parse_u64(w[1], 10, 0, UINT32_MAX, &v))
				return "bad generation line";
			d->generation = (uint32_t)v;
		} else if (*lineno == 3) {
			if (n != 2 || strcmp(w[0], "reservation") != 0)
				return "bad reservation line";
			if (strcmp(w[1], "none") != 0) {
				if (!pr_parse_u64(w[1], 10, 0, UINT8_MAX, &v) || !pr_type_valid((uint8_t)v))
					return "bad reservation type";
				d->reserved = true;
				d->type = (uint8_t)v;
			}
		} else if (n == 1 && strcmp(w[0], "end") == 0) {
			ended = true;
		} else if (n == 6 && strcmp(w[0], "registration") == 0) {
			struct pr_reg *r = &d->regs[d->nregs];
			const char *why;

			if (d->nregs == PR_REG_MAX)
				return "more registrations than the LU keeps";
			why = pr_parse_reg(w, r);
			if (why)
				return why;
			if (pr_reg_find(d, r->iport, r->tport) >= 0)
				return "registration repeated";
			holders += r->holder;
			d->nregs++;
		} else {
			return "unknown line";
		}
	}
	if (!ended)
		return "no \"end\" line (truncated?)";
	/* SPC-4 5.13.10: one holder for the other types, none recorded for
	 * all-registrants (every registrant is one), and never a reservation
	 * without a registration. */
	if ((d->reserved && pr_type_all_registrants(d->type))
		    ? (holders != 0 || d->nregs == 0)
		    : holders != (d->reserved ? 1u : 0u))
		return "reservation holder inconsistent with the registrations";
	return NULL;
}

/* Loads an APTPL state file into d (empty when there is none). */
static int pr_file_load(const char *path, struct pr_data *d)
{
	char *text = NULL;
	const char *why = NULL;
	struct stat st;
	unsigned lineno = 0;
	size_t got = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = errno == ENOENT ? 0 : -errno;
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > PR_FILE_MAX) {
		why = "not a regular file of a sane size";
		goto out;
	}
	text = malloc((size_t)st.st_size + 1);
	d->regs = malloc(PR_REG_MAX * sizeof(*d->regs));
	if (!text || !d->regs) {
		rc = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, text + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	text[got] = '\0';
	if (strlen(text) != got) {
		why = "NUL byte in the file";
		goto out;
	}
	why = pr_parse_text(text, d, &lineno);
	d->aptpl = true;	/* the file exists only while APTPL is 1 */
out:
	if (why) {
		/* The helpers have no logger; the daemon's stderr is its log. */
		fprintf(stderr, "spt: %s: line %u: %s: persistent reservation state not loaded\n",
			path, lineno, why);
		rc = -EBADMSG;
	}
	if (rc < 0 || d->nregs == 0) {
		free(d->regs);
		d->regs = NULL;
		if (rc < 0)
			memset(d, 0, sizeof(*d));
	}
	if (fd >= 0)
		close(fd);
	free(text);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Life cycle, sessions, resets                                         */
/* ------------------------------------------------------------------ */

int pr_state_create(const struct spt_bdev *bdev, struct pr_state **out)
{
	struct pr_state *pr = calloc(1, sizeof(*pr));
	bool mutex_ready = false;
	int rc = 0;

	*out = NULL;
	if (!pr || pthread_mutex_init(&pr->lock, NULL) != 0) {
		rc = -ENOMEM;
		goto out;
	}
	mutex_ready = true;
	if (bdev->pr_state_path[0])
		rc = pr_file_load(bdev->pr_state_path, &pr->cur);
	if (rc == 0) {
		pr_update_active(pr);
		*out = pr;
	}
out:
	if (rc < 0 && pr) {
		if (mutex_ready)
			pthread_mutex_destroy(&pr->lock);
		free(pr->cur.regs);
		free(pr);
	}
	return rc;
}

void pr_state_destroy(struct pr_state *pr)
{
	if (!pr)
		return;
	pthread_mutex_destroy(&pr->lock);
	free(pr->cur.regs);
	free(pr->nexus);
	free(pr);
}

void pr_session_start(struct spt_bdev *bdev, const struct spt_session_start *ss)
{
	struct pr_state *pr = pr_of(bdev);
	struct pr_nexus *n;

	if (!pr)
		return;
	pthread_mutex_lock(&pr->lock);
	n = pr_nexus_find(pr, ss->itnexus_handle);
	if (!n && pr->nexus_count == pr->nexus_cap && pr->nexus_cap < PR_NEXUS_MAX) {
		size_t cap = pr->nexus_cap ? pr->nexus_cap * 2 : PR_NEXUS_INITIAL;
		struct pr_nexus *grown;

		if (cap > PR_NEXUS_MAX)
			cap = PR_NEXUS_MAX;
		grown = realloc(pr->nexus, cap * sizeof(*grown));
		if (grown) {
			pr->nexus = grown;
			pr->nexus_cap = cap;
		}
	}
	/* A full table leaves the nexus unnamed: it is then never registered
	 * (and its PERSISTENT RESERVE OUT commands fail), never a holder. */
	if (!n && pr->nexus_count < pr->nexus_cap) {
		n = &pr->nexus[pr->nexus_count++];
		memset(n, 0, sizeof(*n));
		n->handle = ss->itnexus_handle;
		n->named = pr_itnexus_parse(ss->itnexus, n->iport, n->tport);
	}
	pthread_mutex_unlock(&pr->lock);
}

void pr_session_end(struct spt_bdev *bdev, uint64_t handle)
{
	struct pr_state *pr = pr_of(bdev);
	struct pr_nexus *n;

	if (!pr)
		return;
	pthread_mutex_lock(&pr->lock);
	n = pr_nexus_find(pr, handle);
	if (n) {
		*n = pr->nexus[pr->nexus_count - 1];
		pr->nexus_count--;
	}
	/* SPC-2 5.5.1: I_T nexus loss releases its reservation. SPC-4 5.13.1:
	 * registrations and persistent reservations survive it. */
	if (pr->spc2_reserved && pr->spc2_holder == handle)
		pr->spc2_reserved = false;
	pr_update_active(pr);
	pthread_mutex_unlock(&pr->lock);
}

void pr_reset(struct spt_bdev *bdev)
{
	struct pr_state *pr = pr_of(bdev);

	if (!pr)
		return;
	pthread_mutex_lock(&pr->lock);
	/* SPC-2 5.5.1: a hard reset or logical unit reset releases RESERVE
	 * reservations; SPC-4 5.13.1: persistent ones survive it. */
	pr->spc2_reserved = false;
	pr_update_active(pr);
	pthread_mutex_unlock(&pr->lock);
}

/* ------------------------------------------------------------------ */
/* Conflicts                                                            */
/* ------------------------------------------------------------------ */

enum pr_class {
	PR_CLASS_OTHER,		/* not a command the LU knows: it fails on its own */
	PR_CLASS_ALLOWED,	/* allowed whatever persistent reservation exists */
	PR_CLASS_READ,		/* reads: through Write Exclusive, not Exclusive Access */
	PR_CLASS_WRITE,		/* changes the LU: holders and RO/AR registrants only */
	PR_CLASS_PR_IN,
	PR_CLASS_PR_OUT,	/* checked by PERSISTENT RESERVE OUT itself */
	PR_CLASS_SPC2,		/* RESERVE/RELEASE: checked by the commands themselves */
};

/*
 * SPC-4 table "SPC commands that are allowed in the presence of various
 * reservations" and SBC-3's for block commands. Commands whose row depends
 * on CDB fields (PREVENT ALLOW MEDIUM REMOVAL, START STOP UNIT) are decided
 * here; MODE SENSE, REPORT SUPPORTED OPERATION CODES and RECEIVE COPY
 * RESULTS pass Write Exclusive reservations as ALLOW COMMANDS 011b says.
 */
static enum pr_class pr_classify(const uint8_t *cdb)
{
	switch (cdb[0]) {
	case PR_OP_INQUIRY:
	case PR_OP_REQUEST_SENSE:
	case PR_OP_REPORT_LUNS:
	case PR_OP_TEST_UNIT_READY:
	case PR_OP_LOG_SENSE:
	case PR_OP_READ_CAPACITY10:
		return PR_CLASS_ALLOWED;
	case PR_OP_PREVENT_ALLOW:
		/* SBC-3: PREVENT=00b is allowed, anything else conflicts */
		return (cdb[4] & 0x03) == 0 ? PR_CLASS_ALLOWED : PR_CLASS_WRITE;
	case PR_OP_START_STOP_UNIT:
		/* SBC-3: START=1 with POWER CONDITION 0 is allowed */
		return (cdb[4] & 0x01) && (cdb[4] >> 4) == 0 ? PR_CLASS_ALLOWED : PR_CLASS_WRITE;
	case PR_OP_SERVICE_ACTION_IN16:
		if ((cdb[1] & PR_SA_MASK) == PR_SA_READ_CAPACITY16)
			return PR_CLASS_ALLOWED;
		return (cdb[1] & PR_SA_MASK) == PR_SA_GET_LBA_STATUS ? PR_CLASS_READ : PR_CLASS_OTHER;
	case PR_OP_MAINTENANCE_IN:
		switch (cdb[1] & PR_SA_MASK) {
		case PR_SA_REPORT_SUPPORTED_OPCODES:
		case PR_SA_REPORT_SUPPORTED_TMFS:
			return PR_CLASS_READ;
		default:
			/* REPORT TARGET PORT GROUPS, REPORT ALIASES ...: allowed */
			return PR_CLASS_ALLOWED;
		}
	case PR_OP_READ6:
	case PR_OP_READ10:
	case PR_OP_READ12:
	case PR_OP_READ16:
	case PR_OP_VERIFY10:
	case PR_OP_VERIFY12:
	case PR_OP_VERIFY16:
	case PR_OP_PREFETCH10:
	case PR_OP_PREFETCH16:
	case PR_OP_MODE_SENSE6:
	case PR_OP_MODE_SENSE10:
	case PR_OP_READ_BUFFER:
	case PR_OP_RECEIVE_COPY_RESULTS:
		return PR_CLASS_READ;
	case PR_OP_WRITE6:
	case PR_OP_WRITE10:
	case PR_OP_WRITE12:
	case PR_OP_WRITE16:
	case PR_OP_WRITE_VERIFY10:
	case PR_OP_WRITE_VERIFY12:
	case PR_OP_WRITE_VERIFY16:
	case PR_OP_WRITE_SAME10:
	case PR_OP_WRITE_SAME16:
	case PR_OP_UNMAP:
	case PR_OP_ORWRITE16:
	case PR_OP_COMPARE_AND_WRITE:
	case PR_OP_SYNC_CACHE10:
	case PR_OP_SYNC_CACHE16:
	case PR_OP_MODE_SELECT6:
	case PR_OP_MODE_SELECT10:
	case PR_OP_EXTENDED_COPY:
	case PR_OP_FORMAT_UNIT:
	case PR_OP_WRITE_BUFFER:
	case PR_OP_LOG_SELECT:
	case PR_OP_SEND_DIAGNOSTIC:
		return PR_CLASS_WRITE;
	case PR_OP_PERSISTENT_RESERVE_IN:
		return PR_CLASS_PR_IN;
	case PR_OP_PERSISTENT_RESERVE_OUT:
		return PR_CLASS_PR_OUT;
	case PR_OP_RESERVE6:
	case PR_OP_RELEASE6:
	case PR_OP_RESERVE10:
	case PR_OP_RELEASE10:
		return PR_CLASS_SPC2;
	default:
		return PR_CLASS_OTHER;
	}
}

/* SPC-2 5.5.1 and its tables: what another I_T nexus may still do while
 * the LU is reserved with RESERVE. */
static bool pr_spc2_allowed(const uint8_t *cdb)
{
	switch (cdb[0]) {
	case PR_OP_INQUIRY:
	case PR_OP_REQUEST_SENSE:
	case PR_OP_REPORT_LUNS:
	case PR_OP_LOG_SENSE:
	case PR_OP_READ_CAPACITY10:
		return true;
	case PR_OP_SERVICE_ACTION_IN16:
		return (cdb[1] & PR_SA_MASK) == PR_SA_READ_CAPACITY16;
	case PR_OP_PREVENT_ALLOW:
	case PR_OP_START_STOP_UNIT:
		return pr_classify(cdb) == PR_CLASS_ALLOWED;
	default:
		return false;
	}
}

/* Caller holds pr->lock. */
static bool pr_spc2_conflict(struct pr_state *pr, const struct spt_cmd *cmd, enum pr_class cls)
{
	/* SPC-2 5.5.1: while a RESERVE is in force every PERSISTENT RESERVE
	 * IN and OUT conflicts, whatever the I_T nexus. */
	if (cls == PR_CLASS_PR_IN || cls == PR_CLASS_PR_OUT)
		return true;
	if (pr->spc2_holder == cmd->req.session_cookie || cls == PR_CLASS_SPC2)
		return false;
	return !pr_spc2_allowed(cmd->req.cdb);
}

/* Caller holds pr->lock. SPC-4 5.13.1, 5.13.10 and the command tables. */
static bool pr_persistent_conflict(struct pr_state *pr, const struct spt_cmd *cmd,
				   enum pr_class cls)
{
	const struct pr_data *d = &pr->cur;
	long reg;

	if (cls != PR_CLASS_READ && cls != PR_CLASS_WRITE)
		return false;
	if (!d->reserved)
		return false;
	reg = pr_reg_of_nexus(d, pr_nexus_find(pr, cmd->req.session_cookie));
	/* The holder may do anything; so may every registrant of a
	 * registrants-only or all-registrants reservation. */
	if (pr_is_holder(d, reg) || (reg >= 0 && pr_type_registrants_only(d->type)))
		return false;
	/* Write Exclusive (any flavour) lets reads through; Exclusive Access
	 * lets nothing through for this I_T nexus. */
	return !(pr_type_write_exclusive(d->type) && cls == PR_CLASS_READ);
}

bool pr_conflict(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	struct pr_state *pr = pr_of(bdev);
	enum pr_class cls;
	bool conflict;

	/* The common case, no reservation and no registration: no lock. */
	if (!pr || !atomic_load(&pr->active))
		return false;
	cls = pr_classify(cmd->req.cdb);
	if (cls == PR_CLASS_OTHER)
		return false;
	pthread_mutex_lock(&pr->lock);
	if (pr->spc2_reserved)
		conflict = pr_spc2_conflict(pr, cmd, cls);
	else
		conflict = pr_persistent_conflict(pr, cmd, cls);
	pthread_mutex_unlock(&pr->lock);
	if (conflict)
		pr_set_conflict(cmd);
	return conflict;
}

/* ------------------------------------------------------------------ */
/* RESERVE(6)/(10), RELEASE(6)/(10) (SPC-2 7.21, 7.22, 7.19, 7.20)       */
/* ------------------------------------------------------------------ */

/* SPC-2: third-party (3RDPTY, LONGID) and element (extent) reservations
 * are not supported. false with INVALID FIELD IN CDB set. */
static bool pr_spc2_cdb_ok(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	const uint8_t *cdb = cmd->req.cdb;
	bool ten = cdb[0] == PR_OP_RESERVE10 || cdb[0] == PR_OP_RELEASE10;

	if (cdb[1] & 0x10) {
		spc_invalid_field_in_cdb(bdev, cmd, 1, 4);
		return false;
	}
	if (ten && (cdb[1] & 0x02)) {
		spc_invalid_field_in_cdb(bdev, cmd, 1, 1);
		return false;
	}
	if (cdb[1] & 0x01) {
		spc_invalid_field_in_cdb(bdev, cmd, 1, 0);
		return false;
	}
	return true;
}

void pr_reserve(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	struct pr_state *pr = pr_of(bdev);

	if (!pr_spc2_cdb_ok(bdev, cmd))
		return;
	pthread_mutex_lock(&pr->lock);
	/* SPC-4 5.13.3: with any registration every RESERVE conflicts. */
	if (pr->cur.nregs > 0)
		pr_set_conflict(cmd);
	/* SPC-2 7.21: reserved by another I_T nexus; the holder's own
	 * RESERVE supersedes its reservation. */
	else if (pr->spc2_reserved && pr->spc2_holder != cmd->req.session_cookie)
		pr_set_conflict(cmd);
	else {
		pr->spc2_reserved = true;
		pr->spc2_holder = cmd->req.session_cookie;
	}
	pr_update_active(pr);
	pthread_mutex_unlock(&pr->lock);
}

void pr_release(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	struct pr_state *pr = pr_of(bdev);

	if (!pr_spc2_cdb_ok(bdev, cmd))
		return;
	pthread_mutex_lock(&pr->lock);
	/* SPC-4 5.13.3: with any registration every RELEASE conflicts. */
	if (pr->cur.nregs > 0)
		pr_set_conflict(cmd);
	/* SPC-2 7.19: only the holder releases; anyone else gets GOOD and
	 * the reservation stays. */
	else if (pr->spc2_reserved && pr->spc2_holder == cmd->req.session_cookie)
		pr->spc2_reserved = false;
	pr_update_active(pr);
	pthread_mutex_unlock(&pr->lock);
}

/* ------------------------------------------------------------------ */
/* PERSISTENT RESERVE IN (SPC-4 6.15)                                   */
/* ------------------------------------------------------------------ */

/* Parameter data written straight into the command's buffer, cut at the
 * allocation length; len counts everything, as ADDITIONAL LENGTH does. */
struct pr_writer {
	uint8_t *buf;
	uint32_t cap;
	uint32_t len;
};

static void pr_put(struct pr_writer *w, const void *p, uint32_t n)
{
	if (w->len < w->cap)
		memcpy(w->buf + w->len, p, n < w->cap - w->len ? n : w->cap - w->len);
	w->len += n;
}

static void pr_put_header(struct pr_writer *w, uint32_t generation, uint32_t additional)
{
	uint8_t h[PR_IN_HEADER_LEN];

	spt_put_be32(&h[0], generation);
	spt_put_be32(&h[4], additional);
	pr_put(w, h, sizeof(h));
}

/* SPC-4 7.6.4.6: an iSCSI TransportID, format 01b (name and ISID). */
static uint32_t pr_transport_id(const char *iport, uint8_t *out)
{
	size_t n = strlen(iport) + 1;	/* with its NUL */
	uint32_t len = (uint32_t)((4 + n + 3) & ~(size_t)3);

	if (len < PR_TRANSPORT_ID_MIN)
		len = PR_TRANSPORT_ID_MIN;
	memset(out, 0, len);
	out[0] = (uint8_t)(PR_TID_FORMAT_PORT << 6 | PR_TID_PROTOCOL_ISCSI);
	spt_put_be16(&out[2], (uint16_t)(len - 4));
	memcpy(&out[4], iport, n);
	return len;
}

static void pr_in_read_keys(const struct pr_data *d, struct pr_writer *w)
{
	pr_put_header(w, d->generation, (uint32_t)(d->nregs * 8));
	for (size_t i = 0; i < d->nregs; i++) {
		uint8_t k[8];

		spt_put_be64(k, d->regs[i].key);
		pr_put(w, k, sizeof(k));
	}
}

static void pr_in_read_reservation(const struct pr_data *d, struct pr_writer *w)
{
	uint8_t desc[PR_RESERVATION_DESC_LEN];

	pr_put_header(w, d->generation, d->reserved ? PR_RESERVATION_DESC_LEN : 0);
	if (!d->reserved)
		return;
	memset(desc, 0, sizeof(desc));
	/* SPC-4 6.15.3.2: all-registrants reservations report key zero. */
	if (!pr_type_all_registrants(d->type))
		spt_put_be64(&desc[0], pr_holder_key(d));
	desc[13] = (uint8_t)(PR_SCOPE_LU << 4 | d->type);
	pr_put(w, desc, sizeof(desc));
}

static void pr_in_report_capabilities(const struct spt_bdev *bdev, const struct pr_data *d,
				      struct pr_writer *w)
{
	uint8_t c[PR_CAPABILITIES_LEN];

	memset(c, 0, sizeof(c));
	spt_put_be16(&c[0], PR_CAPABILITIES_LEN);
	/* CRH: RESERVE/RELEASE follow SPC-4 5.13.3; SIP_C 0: no SPEC_I_PT;
	 * ATP_C: ALL_TG_PT works; PTPL_C: APTPL needs somewhere to save to. */
	c[2] = PR_CAP_CRH | PR_CAP_ATP_C | (bdev->pr_state_path[0] ? PR_CAP_PTPL_C : 0);
	c[3] = PR_CAP_TMV | PR_CAP_ALLOW_COMMANDS | (d->aptpl ? PR_CAP_PTPL_A : 0);
	c[4] = PR_MASK_WR_EX_AR | PR_MASK_EX_AC_RO | PR_MASK_WR_EX_RO | PR_MASK_EX_AC | PR_MASK_WR_EX;
	c[5] = PR_MASK_EX_AC_AR;
	pr_put(w, c, sizeof(c));
}

static void pr_in_read_full_status(const struct spt_bdev *bdev, const struct pr_data *d,
				   struct pr_writer *w)
{
	uint8_t tid[PR_TRANSPORT_ID_MAX];
	uint32_t total = 0;

	for (size_t i = 0; i < d->nregs; i++)
		total += PR_FULL_STATUS_DESC_LEN + pr_transport_id(d->regs[i].iport, tid);
	pr_put_header(w, d->generation, total);
	for (size_t i = 0; i < d->nregs; i++) {
		const struct pr_reg *r = &d->regs[i];
		uint8_t desc[PR_FULL_STATUS_DESC_LEN];
		uint32_t tlen = pr_transport_id(r->iport, tid);

		memset(desc, 0, sizeof(desc));
		spt_put_be64(&desc[0], r->key);
		desc[12] = (uint8_t)((r->all_tg_pt ? PR_FS_ALL_TG_PT : 0) |
				     (pr_is_holder(d, (long)i) ? PR_FS_R_HOLDER : 0));
		if (pr_is_holder(d, (long)i))
			desc[13] = (uint8_t)(PR_SCOPE_LU << 4 | d->type);
		/* one target port per LU here: the one the helpers serve */
		spt_put_be16(&desc[18], bdev->relative_port);
		spt_put_be32(&desc[20], tlen);
		pr_put(w, desc, sizeof(desc));
		pr_put(w, tid, tlen);
	}
}

void pr_persistent_reserve_in(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	struct pr_state *pr = pr_of(bdev);
	const uint8_t *cdb = cmd->req.cdb;
	uint8_t sa = cdb[1] & PR_SA_MASK;
	uint32_t alloc = spt_get_be16(&cdb[7]);
	struct pr_writer w = { cmd->buf, 0, 0 };

	/* SPC-4 6.15.1: service actions 04h-1Fh are reserved. */
	if (sa > PR_IN_READ_FULL_STATUS) {
		spc_invalid_field_in_cdb(bdev, cmd, 1, 4);
		return;
	}
	if (cmd->buf)
		w.cap = alloc < cmd->buf_len ? alloc : cmd->buf_len;
	pthread_mutex_lock(&pr->lock);
	switch (sa) {
	case PR_IN_READ_KEYS:
		pr_in_read_keys(&pr->cur, &w);
		break;
	case PR_IN_READ_RESERVATION:
		pr_in_read_reservation(&pr->cur, &w);
		break;
	case PR_IN_REPORT_CAPABILITIES:
		pr_in_report_capabilities(bdev, &pr->cur, &w);
		break;
	default:
		pr_in_read_full_status(bdev, &pr->cur, &w);
		break;
	}
	pthread_mutex_unlock(&pr->lock);
	/* SPC-4 4.2.5.6: the allocation length cuts the data, never its
	 * ADDITIONAL LENGTH fields. */
	cmd->cpl.transfer_length = w.len < alloc ? w.len : alloc;
	cmd->cpl.data_in_length = w.len < w.cap ? w.len : w.cap;
}

/* ------------------------------------------------------------------ */
/* PERSISTENT RESERVE OUT (SPC-4 6.16, 5.13.6 - 5.13.11)                 */
/* ------------------------------------------------------------------ */

/* One PERSISTENT RESERVE OUT under way; pr->lock held. */
struct pr_op {
	struct spt_bdev *bdev;
	struct pr_state *pr;
	struct spt_cmd *cmd;
	struct pr_nexus *nexus;		/* the I_T nexus the command came on */
	long self;			/* its registration in pr->cur, or -1 */
	uint64_t rk;			/* RESERVATION KEY */
	uint64_t sark;			/* SERVICE ACTION RESERVATION KEY */
	uint8_t type;
	bool aptpl;
	bool all_tg_pt;
	struct pr_data next;		/* the state being built */
};

/*
 * Makes op->next the LU's state: saved first when APTPL is (or was) in
 * force, so GOOD means durable; then the unit attentions marked during the
 * change are queued. On a save failure nothing changes and the command
 * fails with HARDWARE ERROR, INTERNAL TARGET FAILURE.
 */
static void pr_commit(struct pr_op *op)
{
	struct pr_state *pr = op->pr;
	const char *path = op->bdev->pr_state_path;
	int rc = 0;

	if (op->next.aptpl)
		rc = pr_file_save(path, &op->next);
	else if (pr->cur.aptpl && path[0])
		rc = pr_file_remove(path);
	if (rc < 0) {
		pr_ua_discard(pr);
		free(op->next.regs);
		pr_internal_failure(op->bdev, op->cmd);
		return;
	}
	free(pr->cur.regs);
	pr->cur = op->next;
	pr_update_active(pr);
	pr_ua_deliver(op->bdev, pr);
}

static bool pr_begin(struct pr_op *op, size_t extra)
{
	if (pr_data_copy(&op->next, &op->pr->cur, extra) < 0) {
		pr_busy(op->cmd);
		return false;
	}
	return true;
}

static void pr_abort(struct pr_op *op)
{
	pr_ua_discard(op->pr);
	free(op->next.regs);
}

/* SPC-4 5.13.7: the I_T nexus must be registered and name its own key. */
static bool pr_check_key(struct pr_op *op)
{
	if (op->self < 0 || op->pr->cur.regs[op->self].key != op->rk) {
		pr_set_conflict(op->cmd);
		return false;
	}
	return true;
}

/*
 * Removes registration i of op->next; `ascq` non-zero gives its I_T nexus
 * (if not the command's) that unit attention. SPC-4 5.13.11: removing the
 * holder releases the reservation; for registrants-only types the other
 * registrants are told (RESERVATIONS RELEASED); an all-registrants
 * reservation ends with its last registrant.
 */
static void pr_unregister(struct pr_op *op, size_t i, uint8_t ascq)
{
	struct pr_data *d = &op->next;
	bool was_holder = d->regs[i].holder;

	if (ascq)
		pr_ua_mark(op->pr, &d->regs[i], ascq, op->nexus);
	pr_reg_remove(d, i);
	if (!d->reserved)
		return;
	if (pr_type_all_registrants(d->type)) {
		d->reserved = d->nregs > 0;
		return;
	}
	if (!was_holder)
		return;
	d->reserved = false;
	if (pr_type_registrants_only(d->type))
		for (size_t j = 0; j < d->nregs; j++)
			pr_ua_mark(op->pr, &d->regs[j], ASCQ_RESERVATIONS_RELEASED, op->nexus);
}

/* SPC-4 5.13.7: REGISTER and REGISTER AND IGNORE EXISTING KEY. */
static void pr_out_register(struct pr_op *op, bool ignore_key)
{
	const struct pr_nexus *n = op->nexus;

	/* SPC-4 5.13.7: an unregistered I_T nexus registers with
	 * RESERVATION KEY zero; a registered one names its key (unless told
	 * to ignore it). */
	if (!ignore_key && op->rk != (op->self < 0 ? 0 : op->pr->cur.regs[op->self].key)) {
		pr_set_conflict(op->cmd);
		return;
	}
	if (!pr_begin(op, 1))
		return;
	if (op->self < 0 && op->sark != 0) {
		struct pr_reg *r;

		if (op->next.nregs >= PR_REG_MAX) {
			pr_abort(op);
			spc_check_condition(op->bdev, op->cmd, SPT_KEY_ILLEGAL_REQUEST,
					    ASC_INSUFFICIENT_RESOURCES, ASCQ_INSUFFICIENT_REGISTRATION);
			return;
		}
		r = &op->next.regs[op->next.nregs++];
		memset(r, 0, sizeof(*r));
		r->key = op->sark;
		r->all_tg_pt = op->all_tg_pt;
		memcpy(r->iport, n->iport, sizeof(r->iport));
		memcpy(r->tport, n->tport, sizeof(r->tport));
	} else if (op->self >= 0 && op->sark != 0) {
		op->next.regs[op->self].key = op->sark;
	} else if (op->self >= 0) {
		pr_unregister(op, (size_t)op->self, 0);
	}
	/* SPC-4 6.16.3: the last REGISTER decides APTPL; 6.15.2: every
	 * successful registration change bumps PRGENERATION. */
	op->next.aptpl = op->aptpl;
	op->next.generation++;
	pr_commit(op);
}

/* SPC-4 5.13.9: RESERVE. */
static void pr_out_reserve(struct pr_op *op)
{
	const struct pr_data *d = &op->pr->cur;

	if (!pr_check_key(op))
		return;
	if (d->reserved) {
		/* the holder asking again for the same type is no error;
		 * anything else conflicts with the existing reservation */
		if (!pr_is_holder(d, op->self) || d->type != op->type)
			pr_set_conflict(op->cmd);
		return;
	}
	if (!pr_begin(op, 0))
		return;
	op->next.reserved = true;
	op->next.type = op->type;
	if (!pr_type_all_registrants(op->type))
		op->next.regs[op->self].holder = true;
	pr_commit(op);
}

/* SPC-4 5.13.11: RELEASE. */
static void pr_out_release(struct pr_op *op)
{
	const struct pr_data *d = &op->pr->cur;

	if (!pr_check_key(op))
		return;
	/* no reservation, or held by someone else: GOOD, nothing changes */
	if (!pr_is_holder(d, op->self))
		return;
	if (d->type != op->type) {
		spc_check_condition(op->bdev, op->cmd, SPT_KEY_ILLEGAL_REQUEST,
				    ASC_INVALID_FIELD_IN_PARAM, ASCQ_INVALID_RELEASE);
		return;
	}
	if (!pr_begin(op, 0))
		return;
	op->next.reserved = false;
	for (size_t i = 0; i < op->next.nregs; i++) {
		op->next.regs[i].holder = false;
		/* registrants-only and all-registrants types: the other
		 * registrants learn their access changed */
		if (pr_type_registrants_only(d->type) || pr_type_all_registrants(d->type))
			pr_ua_mark(op->pr, &op->next.regs[i], ASCQ_RESERVATIONS_RELEASED, op->nexus);
	}
	pr_commit(op);
}

/* SPC-4 5.13.11: CLEAR. */
static void pr_out_clear(struct pr_op *op)
{
	if (!pr_check_key(op) || !pr_begin(op, 0))
		return;
	for (size_t i = 0; i < op->next.nregs; i++)
		pr_ua_mark(op->pr, &op->next.regs[i], ASCQ_RESERVATIONS_PREEMPTED, op->nexus);
	op->next.nregs = 0;
	op->next.reserved = false;
	op->next.generation++;
	pr_commit(op);
}

/* Removes from op->next every registration with key `key` but the
 * command's own (SPC-4 5.13.11.4); how many went. */
static size_t pr_remove_key(struct pr_op *op, uint64_t key, bool any_key)
{
	size_t removed = 0;

	for (size_t i = 0; i < op->next.nregs;) {
		struct pr_reg *r = &op->next.regs[i];

		if ((any_key || r->key == key) &&
		    !pr_reg_matches(r, op->nexus->iport, op->nexus->tport)) {
			pr_ua_mark(op->pr, r, ASCQ_REGISTRATIONS_PREEMPTED, op->nexus);
			pr_reg_remove(&op->next, i);
			removed++;
		} else {
			i++;
		}
	}
	return removed;
}

/* The command's registration in op->next (it is never removed by PREEMPT). */
static struct pr_reg *pr_next_self(struct pr_op *op)
{
	long i = pr_reg_find(&op->next, op->nexus->iport, op->nexus->tport);

	return i < 0 ? NULL : &op->next.regs[i];
}

/* SPC-4 5.13.11.4: PREEMPT (and PREEMPT AND ABORT, see the file comment). */
static void pr_out_preempt(struct pr_op *op)
{
	const struct pr_data *d = &op->pr->cur;
	struct pr_data *next = &op->next;
	struct pr_reg *self;

	if (!pr_check_key(op) || !pr_begin(op, 0))
		return;
	if (d->reserved && pr_type_all_registrants(d->type) && op->sark == 0) {
		/* 5.13.11.4: everyone else goes, the preempting I_T nexus
		 * gets a new reservation of the type asked for */
		pr_remove_key(op, 0, true);
		next->type = op->type;
		self = pr_next_self(op);
		if (self && !pr_type_all_registrants(op->type))
			self->holder = true;
	} else if (d->reserved && !pr_type_all_registrants(d->type) &&
		   op->sark == pr_holder_key(d)) {
		/* 5.13.11.4: the holder's key: its registrations go and the
		 * reservation passes to the preempting I_T nexus */
		bool changed = next->type != op->type;

		pr_remove_key(op, op->sark, false);
		for (size_t i = 0; i < next->nregs; i++)
			next->regs[i].holder = false;
		next->type = op->type;
		self = pr_next_self(op);
		if (self && !pr_type_all_registrants(op->type))
			self->holder = true;
		/* 5.13.11.4: a new type or scope is news to the others */
		if (changed)
			for (size_t i = 0; i < next->nregs; i++)
				pr_ua_mark(op->pr, &next->regs[i], ASCQ_RESERVATIONS_RELEASED,
					   op->nexus);
	} else {
		/* 5.13.11.4: no reservation to take: only the
		 * registrations with that key are removed */
		if (op->sark == 0) {
			pr_abort(op);
			spc_invalid_field_in_param(op->bdev, op->cmd, 8, -1);
			return;
		}
		if (pr_remove_key(op, op->sark, false) == 0) {
			pr_abort(op);
			pr_set_conflict(op->cmd);
			return;
		}
	}
	next->generation++;
	pr_commit(op);
}

/* REGISTER AND MOVE's TransportID: the destination initiator port. */
static bool pr_move_destination(struct pr_op *op, const uint8_t *p, uint32_t plen, char *iport)
{
	struct spt_bdev *bdev = op->bdev;
	struct spt_cmd *cmd = op->cmd;
	uint32_t tid_len = spt_get_be32(&p[PR_MOVE_TID_LEN]);
	const uint8_t *tid = p + PR_MOVE_HEADER_LEN;
	uint16_t add;
	size_t name_len;

	/* SPC-4 6.16.4: the TransportID must fit the list it is in. */
	if (tid_len > plen - PR_MOVE_HEADER_LEN) {
		pr_param_length_error(bdev, cmd);
		return false;
	}
	if (tid_len < PR_TRANSPORT_ID_MIN || tid_len > PR_TRANSPORT_ID_MAX) {
		spc_invalid_field_in_param(bdev, cmd, PR_MOVE_TID_LEN, -1);
		return false;
	}
	/* SPC-4 7.6.4.6: iSCSI only here, and the initiator port form. */
	if ((tid[0] & 0x0f) != PR_TID_PROTOCOL_ISCSI) {
		spc_invalid_field_in_param(bdev, cmd, PR_MOVE_HEADER_LEN, 3);
		return false;
	}
	if ((tid[0] >> 6) != PR_TID_FORMAT_PORT) {
		spc_invalid_field_in_param(bdev, cmd, PR_MOVE_HEADER_LEN, 7);
		return false;
	}
	add = spt_get_be16(&tid[2]);
	if (add < PR_TRANSPORT_ID_MIN - 4 || add % 4 || add > tid_len - 4) {
		spc_invalid_field_in_param(bdev, cmd, PR_MOVE_HEADER_LEN + 2, -1);
		return false;
	}
	name_len = strnlen((const char *)&tid[4], add);
	if (name_len == add ||
	    !pr_port_parse((const char *)&tid[4], name_len, 'i', PR_ISID_HEX, iport)) {
		spc_invalid_field_in_param(bdev, cmd, PR_MOVE_HEADER_LEN + 4, -1);
		return false;
	}
	return true;
}

/* SPC-4 5.13.8: REGISTER AND MOVE. */
static void pr_out_register_and_move(struct pr_op *op, const uint8_t *p, uint32_t plen)
{
	const struct pr_data *d = &op->pr->cur;
	char iport[PR_PORT_MAX];
	bool unreg = p[PR_MOVE_FLAGS] & PR_MOVE_UNREG;
	struct pr_reg *dest, *self;
	long di;

	if (!pr_check_key(op))
		return;
	/* 5.13.8: only the holder moves, and all-registrants reservations
	 * have no single holder to move */
	if (!pr_is_holder(d, op->self) || pr_type_all_registrants(d->type)) {
		pr_set_conflict(op->cmd);
		return;
	}
	if (op->sark == 0) {
		spc_invalid_field_in_param(op->bdev, op->cmd, 8, -1);
		return;
	}
	/* one target port: a RELATIVE TARGET PORT IDENTIFIER of another
	 * port names nothing */
	if (spt_get_be16(&p[PR_MOVE_RTPI]) != op->bdev->relative_port) {
		spc_invalid_field_in_param(op->bdev, op->cmd, PR_MOVE_RTPI, -1);
		return;
	}
	if (!pr_move_destination(op, p, plen, iport))
		return;
	/* 5.13.8: moving to the I_T nexus the command came on is invalid */
	if (strcmp(iport, op->nexus->iport) == 0) {
		spc_invalid_field_in_param(op->bdev, op->cmd, PR_MOVE_HEADER_LEN + 4, -1);
		return;
	}
	if (!pr_begin(op, 1))
		return;
	di = pr_reg_find(&op->next, iport, op->nexus->tport);
	if (di < 0) {
		if (op->next.nregs >= PR_REG_MAX) {
			pr_abort(op);
			spc_check_condition(op->bdev, op->cmd, SPT_KEY_ILLEGAL_REQUEST,
					    ASC_INSUFFICIENT_RESOURCES, ASCQ_INSUFFICIENT_REGISTRATION);
			return;
		}
		di = (long)op->next.nregs++;
		dest = &op->next.regs[di];
		memset(dest, 0, sizeof(*dest));
		dest->key = op->sark;
		memcpy(dest->iport, iport, sizeof(dest->iport));
		memcpy(dest->tport, op->nexus->tport, sizeof(dest->tport));
	}
	/* the reservation moves with its type and scope */
	op->next.regs[op->self].holder = false;
	op->next.regs[di].holder = true;
	if (unreg) {
		self = &op->next.regs[op->self];
		pr_reg_remove(&op->next, (size_t)(self - op->next.regs));
	}
	op->next.aptpl = op->aptpl;
	op->next.generation++;
	pr_commit(op);
}

/*
 * Checks the CDB and the parameter list; false with the sense set.
 * SPC-4 6.16.1 - 6.16.4.
 */
static bool pr_out_parse(struct pr_op *op, uint8_t sa, uint32_t plen)
{
	struct spt_bdev *bdev = op->bdev;
	struct spt_cmd *cmd = op->cmd;
	const uint8_t *cdb = cmd->req.cdb;
	const uint8_t *p = cmd->buf;
	uint64_t received = (uint64_t)cmd->req.sequence_byte_offset + cmd->req.data_length;
	bool typed = sa == PR_OUT_RESERVE || sa == PR_OUT_RELEASE || sa == PR_OUT_PREEMPT ||
		     sa == PR_OUT_PREEMPT_AND_ABORT;
	bool registering = sa == PR_OUT_REGISTER || sa == PR_OUT_REGISTER_AND_IGNORE;

	/* SPC-4 6.16.1: service actions 08h-1Fh are reserved. */
	if (sa > PR_OUT_REGISTER_AND_MOVE) {
		spc_invalid_field_in_cdb(bdev, cmd, 1, 4);
		return false;
	}
	/* SPC-4 6.16.2: SCOPE and TYPE matter for these; LU_SCOPE only. */
	if (typed && (cdb[2] >> 4) != PR_SCOPE_LU) {
		spc_invalid_field_in_cdb(bdev, cmd, 2, 7);
		return false;
	}
	if (typed && !pr_type_valid(cdb[2] & 0x0f)) {
		spc_invalid_field_in_cdb(bdev, cmd, 2, 3);
		return false;
	}
	op->type = cdb[2] & 0x0f;
	/* SPC-4 6.16.3/6.16.4: at least the 24-byte list, all of it sent. */
	if (plen < PR_PARAM_BASIC_LEN || !p || cmd->buf_len < plen || received < plen) {
		pr_param_length_error(bdev, cmd);
		return false;
	}
	op->rk = spt_get_be64(&p[0]);
	op->sark = spt_get_be64(&p[8]);
	if (sa == PR_OUT_REGISTER_AND_MOVE) {
		op->aptpl = p[PR_MOVE_FLAGS] & PR_FLAG_APTPL;
	} else {
		/* SPC-4 6.16.3: SPEC_I_PT is not supported (SIP_C=0); with any
		 * service action but REGISTER it is invalid anyway. */
		if (p[PR_PARAM_FLAGS] & PR_FLAG_SPEC_I_PT) {
			spc_invalid_field_in_param(bdev, cmd, PR_PARAM_FLAGS, 3);
			return false;
		}
		/* SPC-4 6.16.3: without SPEC_I_PT the list is exactly 24 bytes. */
		if (plen != PR_PARAM_BASIC_LEN) {
			pr_param_length_error(bdev, cmd);
			return false;
		}
		/* ALL_TG_PT and APTPL only mean something when registering. */
		op->all_tg_pt = registering && (p[PR_PARAM_FLAGS] & PR_FLAG_ALL_TG_PT);
		op->aptpl = registering && (p[PR_PARAM_FLAGS] & PR_FLAG_APTPL);
	}
	/* SPC-4 6.16.3: APTPL=1 where PTPL_C=0. */
	if (op->aptpl && !bdev->pr_state_path[0]) {
		spc_invalid_field_in_param(bdev, cmd,
					   sa == PR_OUT_REGISTER_AND_MOVE ? PR_MOVE_FLAGS : PR_PARAM_FLAGS, 0);
		return false;
	}
	return true;
}

void pr_persistent_reserve_out(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	struct pr_state *pr = pr_of(bdev);
	const uint8_t *cdb = cmd->req.cdb;
	uint8_t sa = cdb[1] & PR_SA_MASK;
	uint32_t plen = spt_get_be32(&cdb[5]);
	struct pr_op op;

	memset(&op, 0, sizeof(op));
	op.bdev = bdev;
	op.pr = pr;
	op.cmd = cmd;
	cmd->cpl.transfer_length = plen;
	if (!pr_out_parse(&op, sa, plen))
		return;
	pthread_mutex_lock(&pr->lock);
	op.nexus = pr_nexus_find(pr, cmd->req.session_cookie);
	if (pr->spc2_reserved) {
		/* SPC-2 5.5.1 (pr_conflict checked it; a RESERVE may have
		 * come in between) */
		pr_set_conflict(cmd);
		goto out;
	}
	if (!op.nexus || !op.nexus->named) {
		/* The engine never said which initiator and target port this
		 * I_T nexus is: nothing to register it under. */
		pr_internal_failure(bdev, cmd);
		goto out;
	}
	op.self = pr_reg_of_nexus(&pr->cur, op.nexus);
	switch (sa) {
	case PR_OUT_REGISTER:
		pr_out_register(&op, false);
		break;
	case PR_OUT_REGISTER_AND_IGNORE:
		pr_out_register(&op, true);
		break;
	case PR_OUT_RESERVE:
		pr_out_reserve(&op);
		break;
	case PR_OUT_RELEASE:
		pr_out_release(&op);
		break;
	case PR_OUT_CLEAR:
		pr_out_clear(&op);
		break;
	case PR_OUT_PREEMPT:
	case PR_OUT_PREEMPT_AND_ABORT:
		pr_out_preempt(&op);
		break;
	default:
		pr_out_register_and_move(&op, cmd->buf, plen);
		break;
	}
out:
	pthread_mutex_unlock(&pr->lock);
}
