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

struct spt_lun {
	uint64_t lun;				/* flat LUN number */
	const struct spt_provider_ops *ops;
	void *ctx;				/* the provider's per-LUN context */
	char desc[SPT_LUN_DESC_MAX];		/* for logs: "file:/path (2097152 x 512)" */
	/* fills *st for the control plane; NULL: only desc is known */
	void (*status)(void *ctx, struct spt_lun_status *st);
};

#endif
