/*
 * The provider registry: which provider serves which LUN of a target.
 * The iSCSI engine hands every SCSI command, TMF and session event to
 * spt_dispatch_*, which finds the LUN's provider.
 */
#ifndef SPT_LUN_H
#define SPT_LUN_H

#include <spt/spt.h>

#define SPT_LUN_DESC_MAX 256

/* What `sptctl lun list` shows of a LUN; filled by the LUN's provider. */
struct spt_lun_status {
	char backend[SPT_LUN_DESC_MAX];	/* "file:/srv/a.img", "provider:ram0" */
	const char *state;		/* "online"; "no provider" (NOT READY) ... */
	uint64_t size_bytes;		/* 0 when the daemon does not know it */
	uint32_t block_size;		/* 0 when unknown */
	bool read_only;
};

/*
 * A LUN's statistics since the daemon started, counted by the iSCSI engine
 * (src/iscsi/stats.c) on the reactor thread with plain increments, read
 * there too by the control plane (sptctl stats, the metrics endpoint). The
 * meaning of each counter is that of struct spt_ctl_stats_io in
 * include/spt/spt.h.
 */
#define SPT_LUN_LATENCY_BUCKETS 26	/* <= 2^0 .. 2^24 microseconds, then more */

struct spt_lun_stats {
	uint64_t commands;		/* completed with a status */
	uint64_t read_commands;
	uint64_t write_commands;
	uint64_t bytes_read;
	uint64_t bytes_written;
	uint64_t errors;		/* status other than GOOD and CONDITION MET */
	uint64_t aborts;		/* ended by a TMF or a connection loss */
	uint32_t queue_depth;		/* commands in flight now */
	uint64_t latency_sum_ns;	/* of the completed commands */
	uint64_t latency_buckets[SPT_LUN_LATENCY_BUCKETS];
};

struct spt_lun {
	uint64_t lun;				/* flat LUN number */
	const struct spt_provider_ops *ops;
	void *ctx;				/* the provider's per-LUN context */
	char desc[SPT_LUN_DESC_MAX];		/* for logs: "file:/path (2097152 x 512)" */
	/* fills *st for the control plane; NULL: only desc is known */
	void (*status)(void *ctx, struct spt_lun_status *st);
	/* new size in bytes (every I_T nexus then gets CAPACITY DATA HAS
	 * CHANGED); NULL: the provider cannot resize. 0, or -1 with err */
	int (*resize)(void *ctx, uint64_t bytes, char *err, size_t errlen);
	/* ---- statistics (issue 7): kept by src/iscsi/stats.c ---- */
	struct spt_lun_stats stats;
};

#endif
