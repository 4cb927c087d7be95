/*
 * spt: SPC-4 / SBC-3 emulation helpers for providers.
 *
 * A block provider fills a struct spt_bdev (geometry, identity, four async
 * operations) and hands every SCSI request to spt_bdev_execute(); the helpers
 * decode the CDB, check it, run the I/O and build status, sense and data-in.
 */
#ifndef SPT_SCSI_H
#define SPT_SCSI_H

#include <spt/spt.h>

/* Sense keys (SPC-4 4.5.6). */
enum spt_sense_key {
	SPT_KEY_NO_SENSE = 0x0,
	SPT_KEY_RECOVERED_ERROR = 0x1,
	SPT_KEY_NOT_READY = 0x2,
	SPT_KEY_MEDIUM_ERROR = 0x3,
	SPT_KEY_HARDWARE_ERROR = 0x4,
	SPT_KEY_ILLEGAL_REQUEST = 0x5,
	SPT_KEY_UNIT_ATTENTION = 0x6,
	SPT_KEY_DATA_PROTECT = 0x7,
	SPT_KEY_ABORTED_COMMAND = 0xb,
	SPT_KEY_MISCOMPARE = 0xe,
};

/* Optional parts of a sense buffer. */
struct spt_sense_info {
	bool info_valid;	/* INFORMATION field (e.g. miscompare offset) */
	uint64_t information;
	bool sksv;		/* sense-key specific bytes valid */
	uint8_t sks[3];		/* as in SPC-4 4.5.2.4, SKSV bit included by the builder */
};

/* Builds fixed (0x70) or descriptor (0x72) sense data; returns its length. */
size_t spt_sense_build(uint8_t *out, size_t cap, bool descriptor, uint8_t key,
		       uint8_t asc, uint8_t ascq, const struct spt_sense_info *extra);

/* Sets CHECK CONDITION with the given sense on a command. */
void spt_cmd_check_condition(struct spt_cmd *cmd, bool descriptor, uint8_t key,
			     uint8_t asc, uint8_t ascq, const struct spt_sense_info *extra);
/* ILLEGAL REQUEST, INVALID FIELD IN CDB (24/00) with a field pointer at
 * CDB byte `byte`, bit `bit` (bit < 0: no bit pointer). */
void spt_cmd_invalid_field_in_cdb(struct spt_cmd *cmd, bool descriptor, uint16_t byte, int bit);
/* ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST (26/00), field pointer
 * into the data-out buffer. */
void spt_cmd_invalid_field_in_param(struct spt_cmd *cmd, bool descriptor, uint16_t byte, int bit);

/* Answers for a LUN the target does not have (SPC-4 / SAM-5): INQUIRY gets
 * peripheral qualifier 011b, REQUEST SENSE and others 05/25/00. */
void spt_scsi_no_such_lun(struct spt_cmd *cmd);
/* Answers for a LUN the target has but cannot serve now (its external
 * provider is absent): INQUIRY peripheral qualifier 001b, REQUEST SENSE
 * and others NOT READY, LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE (04/00). */
void spt_scsi_lun_not_connected(struct spt_cmd *cmd);
/* REPORT LUNS (SPC-4 6.33) from the list of LUN numbers the I_T nexus sees. */
void spt_scsi_report_luns(struct spt_cmd *cmd, const uint64_t *luns, size_t nluns);

/* Big-endian helpers for CDB and parameter data. */
static inline uint16_t spt_get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t spt_get_be24(const uint8_t *p) { return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]; }
static inline uint32_t spt_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t spt_get_be64(const uint8_t *p)
{
	return (uint64_t)spt_get_be32(p) << 32 | spt_get_be32(p + 4);
}
static inline void spt_put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void spt_put_be24(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 16); p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)v;
}
static inline void spt_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void spt_put_be64(uint8_t *p, uint64_t v)
{
	spt_put_be32(p, (uint32_t)(v >> 32)); spt_put_be32(p + 4, (uint32_t)v);
}

/* ------------------------------------------------------------------ */
/* Block device emulation                                               */
/* ------------------------------------------------------------------ */

enum spt_bdev_op {
	SPT_BDEV_READ,
	SPT_BDEV_WRITE,
	SPT_BDEV_FLUSH,		/* make everything written so far durable */
	SPT_BDEV_UNMAP,		/* deallocate [offset, offset+length): reads as zeros after */
	SPT_BDEV_WRITE_ZEROES,	/* zero [offset, offset+length), may deallocate */
};

#define SPT_BDEV_FUA 0x1	/* WRITE: durable before completion */

struct spt_bdev;

/* One backing-store operation. Offsets and lengths in bytes. */
struct spt_bdev_io {
	struct spt_bdev *bdev;
	uint8_t op;		/* enum spt_bdev_op */
	uint32_t flags;		/* SPT_BDEV_FUA */
	uint64_t offset;
	uint64_t length;
	uint8_t *buf;		/* READ / WRITE data */
	void (*done)(struct spt_bdev_io *io, int result);	/* 0 or -errno */
	void *priv;

	/* ---- for the backend: state the backend (e.g. providers/file.c) keeps
	 * per I/O so it needs no allocation; callers neither read nor set these ---- */
	uint64_t backend_progress;		/* bytes done so far (short transfers) */
	uint32_t backend_state;			/* the backend's step and retry counters */
	struct spt_bdev_io *backend_next;	/* the backend's queue link */
};

struct spt_bdev_ops {
	/* Starts an operation; calls io->done later (may be before return). */
	void (*submit)(struct spt_bdev *bdev, struct spt_bdev_io *io);
	/* Optional, for GET LBA STATUS: from byte `offset`, the extent of the
	 * same provisioning state: *mapped, and its *length in bytes. */
	int (*map_status)(struct spt_bdev *bdev, uint64_t offset, bool *mapped, uint64_t *length);
};

#define SPT_VENDOR_LEN 8
#define SPT_PRODUCT_LEN 16
#define SPT_REVISION_LEN 4
#define SPT_SERIAL_MAX 32

struct spt_bdev_state;	/* mode pages, per-I_T-nexus unit attentions: owned by the helpers */

struct spt_bdev {
	const struct spt_bdev_ops *ops;
	void *ctx;			/* the provider's */
	uint32_t block_size;		/* 512 or 4096 */
	uint64_t num_blocks;
	bool read_only;
	bool thin;			/* UNMAP / WRITE SAME with UNMAP supported */
	bool write_cache;		/* initial WCE: acknowledged writes may sit in page cache */
	uint32_t max_transfer_bytes;	/* largest READ/WRITE the engine accepts (VPD B0) */
	/* identity, stable across restarts */
	char vendor[SPT_VENDOR_LEN + 1];
	char product[SPT_PRODUCT_LEN + 1];
	char revision[SPT_REVISION_LEN + 1];
	char serial[SPT_SERIAL_MAX + 1];	/* VPD 0x80 */
	uint64_t naa;			/* VPD 0x83 NAA designator, all 8 bytes (NAA 3 locally assigned) */
	uint16_t relative_port;		/* VPD 0x83 relative target port identifier */
	char target_name[224];		/* VPD 0x83 SCSI name string of the target port, may be empty */
	struct spt_bdev_state *state;
	/* ---- persistent reservations (src/scsi/pr.c), set before spt_bdev_init() ---- */
	char pr_state_path[4096];	/* APTPL state file; empty: APTPL not supported (PTPL_C=0) */
};

/* Sets serial (VPD 0x80) and naa (VPD 0x83) from a name that identifies the
 * backing store (SHA-256 of it), so they survive restarts. 0 or -1. */
int spt_bdev_identity_from_name(struct spt_bdev *bdev, const char *name);

/* Allocates the helper state (mode pages from write_cache etc.). 0 or -errno. */
int spt_bdev_init(struct spt_bdev *bdev);
void spt_bdev_fini(struct spt_bdev *bdev);

/* The provider's spt_provider_ops map straight onto these. */
void spt_bdev_execute(struct spt_bdev *bdev, struct spt_cmd *cmd);
void spt_bdev_session_start(struct spt_bdev *bdev, const struct spt_session_start *ss);
void spt_bdev_session_end(struct spt_bdev *bdev, const struct spt_session_end *se);
/* Sets unit attentions for resets and completes the TMF (response COMPLETE). */
void spt_bdev_tmf(struct spt_bdev *bdev, struct spt_tmf *tmf);
/* New capacity: every I_T nexus gets CAPACITY DATA HAS CHANGED (2A/09). */
void spt_bdev_set_capacity(struct spt_bdev *bdev, uint64_t num_blocks);

/* ------------------------------------------------------------------ */
/* Target port groups and ALUA (SPC-4 5.16; issue 5: multipath)         */
/* ------------------------------------------------------------------ */
/*
 * Each iSCSI target portal group is one SCSI target port of each target;
 * its TPGT is both its target port group identifier and the relative
 * target port identifier of its one port (SPC-4 7.8.6.7, 7.8.6.8). The
 * helpers learn which port an I_T nexus uses from SESSION_START's ITNexus
 * ("...,t,0x<tpgt>") and answer INQUIRY (TPGS = 01b, implicit ALUA), the
 * Device Identification VPD page and REPORT TARGET PORT GROUPS with it.
 */
enum spt_alua_state {
	SPT_ALUA_ACTIVE_OPTIMIZED = 0x0,
	SPT_ALUA_ACTIVE_NON_OPTIMIZED = 0x1,
	SPT_ALUA_STANDBY = 0x2,		/* media commands: NOT READY 04/0B */
	SPT_ALUA_UNAVAILABLE = 0x3,	/* almost every command: NOT READY 04/0C */
};

#define SPT_PORT_GROUPS_MAX 64

struct spt_port_group {
	uint16_t id;			/* target port group = relative target port = TPGT, 1..65535 */
	uint8_t state;			/* enum spt_alua_state */
};

/*
 * Sets the target port groups of every bdev of this process, present and
 * future (the ports are the daemon's portals, shared by all its LUs). A
 * change of any group's state gives every I_T nexus of every bdev
 * ASYMMETRIC ACCESS STATE CHANGED (2A/06, SPC-4 5.16.2.3). With none set,
 * each LU has one group: the port of the nexus asking, active/optimized.
 * Groups past SPT_PORT_GROUPS_MAX are ignored. Thread-safe.
 */
void spt_scsi_set_port_groups(const struct spt_port_group *groups, size_t n);
/* "active-optimized", "active-non-optimized", "standby", "unavailable". */
const char *spt_alua_state_name(uint8_t state);
/* The reverse; 0 or -1 for an unknown name. */
int spt_alua_state_parse(const char *name, uint8_t *state);

#endif
