/*
 * The RAM provider: a block device in anonymous memory, served through the
 * scsi/ helpers. In sptd as `--lun ram:SIZE[,block_size=512|4096]` (contents
 * lost at exit: for tests, benchmarks and scratch space), and the disk of
 * build/spt-memprovider. Memory is reserved lazily: an unwritten block costs
 * nothing, and UNMAP gives pages back.
 */
#ifndef PROVIDERS_RAM_H
#define PROVIDERS_RAM_H

#include <stddef.h>
#include <stdint.h>

#include <spt/scsi.h>

#include "spt/lun.h"

#define RAM_MAX_TRANSFER (8u * 1024 * 1024)
#define RAM_SIZE_MAX (1ull << 40)	/* address space only; pages come on first write */

struct ram_disk {
	struct spt_bdev bdev;
	uint8_t *mem;
	uint64_t size;
};

struct ram_disk_config {
	const char *name;	/* identity seed: serial and NAA derive from it */
	uint64_t size;		/* bytes, a multiple of block_size */
	uint32_t block_size;	/* 512 or 4096 */
	const char *target_name;	/* VPD 0x83 target port name, may be NULL */
	uint16_t relative_port;
	uint32_t max_transfer_bytes;
};

/* Maps the memory and sets up bdev (spt_bdev_init included). 0, or -1 with err. */
int ram_disk_init(struct ram_disk *rd, const struct ram_disk_config *cfg, char *err, size_t errlen);
void ram_disk_fini(struct ram_disk *rd);
/* For a provider that reconnects: the same memory (and identity) under a new
 * target port; mode pages and unit attentions start afresh, as after a power
 * cycle. 0, or -1 with err. */
int ram_disk_rebind(struct ram_disk *rd, const char *target_name, uint16_t relative_port,
		    uint32_t max_transfer_bytes, char *err, size_t errlen);

/* "SIZE[,block_size=512|4096]" after "ram:"; SIZE with K/M/G/T suffixes. */
int ram_lun_parse(const char *spec, uint64_t *size, uint32_t *block_size, char *err, size_t errlen);

/* An in-process LUN on a new RAM disk; fills *out. 0, or -1 with err. */
int ram_lun_open(uint64_t size, uint32_t block_size, uint64_t lun_no, const char *target_name,
		 struct spt_lun *out, char *err, size_t errlen);

#endif
