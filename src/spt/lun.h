/*
 * The provider registry: which provider serves which LUN of a target.
 * The iSCSI engine hands every SCSI command, TMF and session event to
 * spt_dispatch_*, which finds the LUN's provider.
 */
#ifndef SPT_LUN_H
#define SPT_LUN_H

#include <spt/spt.h>

#define SPT_LUN_DESC_MAX 256

struct spt_lun {
	uint64_t lun;				/* flat LUN number */
	const struct spt_provider_ops *ops;
	void *ctx;				/* the provider's per-LUN context */
	char desc[SPT_LUN_DESC_MAX];		/* for logs: "file:/path (2097152 x 512)" */
};

#endif
