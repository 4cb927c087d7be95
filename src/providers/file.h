/*
 * The built-in file / block-device provider: a regular file or a block
 * device served as a SCSI block device through the scsi/ helpers, with the
 * backing-store I/O going through io_uring (one ring per event loop).
 */
#ifndef PROVIDERS_FILE_H
#define PROVIDERS_FILE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <spt/scsi.h>

#include "spt/lun.h"
#include "util/evloop.h"

/* Largest READ/WRITE the engine hands us in one operation (VPD B0). */
#define FILE_MAX_TRANSFER (8u * 1024 * 1024)

struct file_lun_config {
	char path[PATH_MAX];
	uint64_t size;		/* bytes; 0 = use the existing file / device size */
	uint32_t block_size;	/* 512 or 4096; 0 = default (512, or the device's) */
	bool read_only;
};

/*
 * Parses "PATH[,size=SIZE][,block_size=512|4096][,ro]". SIZE is plain bytes
 * or a number with a K/M/G/T suffix (binary: 1K = 1024). The path ends at the
 * first comma. Returns 0, or -1 with a readable reason in err.
 */
int file_lun_parse(const char *spec, struct file_lun_config *cfg, char *err, size_t errlen);

/*
 * Opens the backing store and sets up the LUN; fills *out (number, ops, ctx,
 * desc). A missing regular file is created sparse when cfg->size is given
 * (never with read_only). An existing file smaller than cfg->size is grown
 * sparse; a larger one is refused (we never shrink, that would drop data).
 * Block devices: the size comes from BLKGETSIZE64 (cfg->size, if given, must
 * match), the logical block size from BLKSSZGET unless cfg->block_size is set.
 * A regular file is locked with flock (shared when read-only, exclusive
 * otherwise), a writable block device opened O_EXCL, so two LUNs or two
 * daemons cannot write one store at once (nor a mounted device be exported).
 * Returns 0, or -1 with a readable reason in err.
 *
 * The LUN's I/O runs on `loop`'s thread. out->ops->close(out->ctx) waits for
 * the LUN's in-flight I/O, fdatasyncs, releases the spt_bdev and frees it;
 * call it on the loop's thread (or with the loop stopped), never from an I/O
 * completion callback.
 */
int file_lun_open(struct ev_loop *loop, const struct file_lun_config *cfg, uint64_t lun_no,
		  const char *target_name, struct spt_lun *out, char *err, size_t errlen);

/* The block device behind a LUN that file_lun_open filled (geometry and
 * identity, for tests and the control plane); NULL for another provider's. */
struct spt_bdev *file_lun_bdev(const struct spt_lun *lun);

#endif
