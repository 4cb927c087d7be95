/*
 * A RAM block device for the fuzz harnesses: struct spt_bdev served through
 * the scsi/ helpers (spt_bdev_execute), as an in-process provider. Only the
 * first backed_bytes (at most FUZZ_RAM_MAX_BYTES) of the medium are backed
 * by memory: beyond them reads return zeros and writes are dropped, so a
 * harness can give the LUN any capacity (2^32 blocks and more) without
 * allocating it.
 */
#ifndef FUZZ_RAM_BDEV_H
#define FUZZ_RAM_BDEV_H

#include <stdbool.h>
#include <stdint.h>

#include <spt/scsi.h>

#include "util/evloop.h"

#define FUZZ_RAM_MAX_BYTES (1u << 20)

struct fuzz_ram {
	struct spt_bdev bdev;
	uint8_t *mem;
	uint64_t mem_len;
	struct ev_loop *loop;	/* non-NULL: backing-store I/O completes from ev_defer */
	bool closed;		/* the provider's close() ran (spt_bdev_fini done) */
	unsigned pending;	/* deferred I/Os not completed yet */
	uint64_t fail_offset;	/* see struct fuzz_ram_geometry */
	int fail_errno;
	bool fail_flush;
};

struct fuzz_ram_geometry {
	uint32_t block_size;
	uint64_t num_blocks;
	bool read_only;
	bool thin;
	bool write_cache;
	uint32_t max_transfer_bytes;
	uint32_t backed_bytes;	/* 0: FUZZ_RAM_MAX_BYTES */
	/* a bad spot: an operation covering this byte fails with -fail_errno
	 * (FLUSH too, with fail_flush); no failure when fail_errno is 0 */
	uint64_t fail_offset;
	int fail_errno;
	bool fail_flush;
};

/* 0 or -1. loop may be NULL (every I/O completes inside submit). */
int fuzz_ram_init(struct fuzz_ram *r, const struct fuzz_ram_geometry *g, struct ev_loop *loop);
/* Releases what close() did not (memory; the helper state if never closed). */
void fuzz_ram_free(struct fuzz_ram *r);

extern const struct spt_provider_ops fuzz_ram_ops;

#endif
