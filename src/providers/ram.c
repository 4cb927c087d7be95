#include "providers/ram.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void ram_submit(struct spt_bdev *bdev, struct spt_bdev_io *io)
{
	struct ram_disk *rd = bdev->ctx;
	int rc = 0;

	/* the helpers check ranges against num_blocks; this is the last line */
	if (io->offset > rd->size || io->length > rd->size - io->offset) {
		io->done(io, -EINVAL);
		return;
	}
	switch (io->op) {
	case SPT_BDEV_READ:
		memcpy(io->buf, rd->mem + io->offset, io->length);
		break;
	case SPT_BDEV_WRITE:
		memcpy(rd->mem + io->offset, io->buf, io->length);
		break;
	case SPT_BDEV_FLUSH:
		break;	/* nothing is more durable than the memory itself */
	case SPT_BDEV_UNMAP:
	case SPT_BDEV_WRITE_ZEROES: {
		uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
		uint64_t a = (io->offset + page - 1) / page * page;
		uint64_t b = (io->offset + io->length) / page * page;

		/* whole pages go back to the kernel and read as zeros */
		if (a < b) {
			memset(rd->mem + io->offset, 0, a - io->offset);
			madvise(rd->mem + a, b - a, MADV_DONTNEED);
			memset(rd->mem + b, 0, io->offset + io->length - b);
		} else {
			memset(rd->mem + io->offset, 0, io->length);
		}
		break;
	}
	default:
		rc = -EOPNOTSUPP;
		break;
	}
	io->done(io, rc);
}

static const struct spt_bdev_ops ram_bdev_ops = {
	.submit = ram_submit,
};

int ram_disk_init(struct ram_disk *rd, const struct ram_disk_config *cfg, char *err, size_t errlen)
{
	int rc;

	memset(rd, 0, sizeof(*rd));
	if (cfg->block_size != 512 && cfg->block_size != 4096) {
		snprintf(err, errlen, "block size %u: 512 or 4096", cfg->block_size);
		return -1;
	}
	if (cfg->size == 0 || cfg->size % cfg->block_size || cfg->size > RAM_SIZE_MAX) {
		snprintf(err, errlen, "size %" PRIu64 ": a non-zero multiple of %u up to %llu",
			 cfg->size, cfg->block_size, (unsigned long long)RAM_SIZE_MAX);
		return -1;
	}
	rd->mem = mmap(NULL, cfg->size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (rd->mem == MAP_FAILED) {
		rd->mem = NULL;
		snprintf(err, errlen, "cannot map %" PRIu64 " bytes: %s", cfg->size, strerror(errno));
		return -1;
	}
	rd->size = cfg->size;
	rd->bdev.ops = &ram_bdev_ops;
	rd->bdev.ctx = rd;
	rd->bdev.block_size = cfg->block_size;
	rd->bdev.num_blocks = cfg->size / cfg->block_size;
	rd->bdev.thin = true;
	rd->bdev.write_cache = false;	/* a write is as done as it will ever be */
	rd->bdev.max_transfer_bytes = cfg->max_transfer_bytes ? cfg->max_transfer_bytes : RAM_MAX_TRANSFER;
	rd->bdev.relative_port = cfg->relative_port ? cfg->relative_port : 1;
	snprintf(rd->bdev.vendor, sizeof(rd->bdev.vendor), "SPT");
	snprintf(rd->bdev.product, sizeof(rd->bdev.product), "spt ramdisk");
	snprintf(rd->bdev.revision, sizeof(rd->bdev.revision), "0001");
	snprintf(rd->bdev.target_name, sizeof(rd->bdev.target_name), "%s",
		 cfg->target_name ? cfg->target_name : "");
	if (spt_bdev_identity_from_name(&rd->bdev, cfg->name) < 0) {
		snprintf(err, errlen, "SHA-256 of the name failed");
		goto fail;
	}
	rc = spt_bdev_init(&rd->bdev);
	if (rc < 0) {
		snprintf(err, errlen, "spt_bdev_init: %s", strerror(-rc));
		goto fail;
	}
	return 0;
fail:
	munmap(rd->mem, rd->size);
	rd->mem = NULL;
	return -1;
}

int ram_disk_rebind(struct ram_disk *rd, const char *target_name, uint16_t relative_port,
		    uint32_t max_transfer_bytes, char *err, size_t errlen)
{
	/* VPD B0 counts whole blocks */
	uint32_t max = max_transfer_bytes / rd->bdev.block_size * rd->bdev.block_size;
	int rc;

	if (max == 0) {
		snprintf(err, errlen, "a maximum transfer of %u bytes is less than a %u-byte block",
			 max_transfer_bytes, rd->bdev.block_size);
		return -1;
	}
	spt_bdev_fini(&rd->bdev);
	rd->bdev.max_transfer_bytes = max;
	rd->bdev.relative_port = relative_port;
	snprintf(rd->bdev.target_name, sizeof(rd->bdev.target_name), "%s",
		 target_name ? target_name : "");
	rc = spt_bdev_init(&rd->bdev);
	if (rc < 0) {
		snprintf(err, errlen, "spt_bdev_init: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

void ram_disk_fini(struct ram_disk *rd)
{
	if (!rd->mem)
		return;
	spt_bdev_fini(&rd->bdev);
	munmap(rd->mem, rd->size);
	rd->mem = NULL;
}

static int ram_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	case 'T': case 't': shift = 40; end++; break;
	default: break;
	}
	if (*end || v > (RAM_SIZE_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

int ram_lun_parse(const char *spec, uint64_t *size, uint32_t *block_size, char *err, size_t errlen)
{
	char buf[128];
	char *opt, *save = NULL;

	*block_size = 512;
	if (snprintf(buf, sizeof(buf), "%s", spec) >= (int)sizeof(buf)) {
		snprintf(err, errlen, "ram:%s: too long", spec);
		return -1;
	}
	opt = strtok_r(buf, ",", &save);
	if (!opt || ram_parse_size(opt, size) < 0) {
		snprintf(err, errlen, "ram:%s: expected ram:SIZE[,block_size=512|4096], SIZE like 256M "
			 "(at most 1T)", spec);
		return -1;
	}
	while ((opt = strtok_r(NULL, ",", &save))) {
		if (!strcmp(opt, "block_size=512")) {
			*block_size = 512;
		} else if (!strcmp(opt, "block_size=4096")) {
			*block_size = 4096;
		} else {
			snprintf(err, errlen, "ram:%s: unknown option '%s' (block_size=512|4096)", spec, opt);
			return -1;
		}
	}
	return 0;
}

/* ---- in-process LUN ---- */

static void ram_scsi(void *ctx, struct spt_cmd *cmd)
{
	spt_bdev_execute(&((struct ram_disk *)ctx)->bdev, cmd);
}

static void ram_session_start(void *ctx, const struct spt_session_start *ss)
{
	spt_bdev_session_start(&((struct ram_disk *)ctx)->bdev, ss);
}

static void ram_session_end(void *ctx, const struct spt_session_end *se)
{
	spt_bdev_session_end(&((struct ram_disk *)ctx)->bdev, se);
}

static void ram_tmf(void *ctx, struct spt_tmf *tmf)
{
	spt_bdev_tmf(&((struct ram_disk *)ctx)->bdev, tmf);
}

static void ram_close(void *ctx)
{
	ram_disk_fini(ctx);
	free(ctx);
}

static void ram_status(void *ctx, struct spt_lun_status *st)
{
	struct ram_disk *rd = ctx;

	snprintf(st->backend, sizeof(st->backend), "ram");
	st->state = "online";
	st->size_bytes = rd->size;
	st->block_size = rd->bdev.block_size;
	st->read_only = false;
}

/* Grows in place when the mapping can (mremap may move it: every access
 * goes through rd->mem, and the I/O is synchronous); never shrinks. */
static int ram_resize(void *ctx, uint64_t bytes, char *err, size_t errlen)
{
	struct ram_disk *rd = ctx;
	void *p;

	if (bytes % rd->bdev.block_size || bytes < rd->size || bytes > RAM_SIZE_MAX) {
		snprintf(err, errlen, "%" PRIu64 ": a RAM LUN only grows, by whole blocks, up to %llu bytes",
			 bytes, (unsigned long long)RAM_SIZE_MAX);
		return -1;
	}
	p = mremap(rd->mem, rd->size, bytes, MREMAP_MAYMOVE);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "mremap: %s", strerror(errno));
		return -1;
	}
	rd->mem = p;
	rd->size = bytes;
	spt_bdev_set_capacity(&rd->bdev, bytes / rd->bdev.block_size);
	return 0;
}

static const struct spt_provider_ops ram_provider_ops = {
	.name = "ram",
	.session_start = ram_session_start,
	.session_end = ram_session_end,
	.tmf = ram_tmf,
	.scsi = ram_scsi,
	.close = ram_close,
};

int ram_lun_open(uint64_t size, uint32_t block_size, uint64_t lun_no, const char *target_name,
		 struct spt_lun *out, char *err, size_t errlen)
{
	struct ram_disk *rd = malloc(sizeof(*rd));
	struct ram_disk_config cfg = {
		.size = size,
		.block_size = block_size,
		.target_name = target_name,
		.relative_port = 1,
		.max_transfer_bytes = RAM_MAX_TRANSFER,
	};
	char name[320];

	if (!rd) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(name, sizeof(name), "ram:%s:%" PRIu64, target_name ? target_name : "", lun_no);
	cfg.name = name;
	if (ram_disk_init(rd, &cfg, err, errlen) < 0) {
		free(rd);
		return -1;
	}
	memset(out, 0, sizeof(*out));
	out->lun = lun_no;
	out->ops = &ram_provider_ops;
	out->ctx = rd;
	out->status = ram_status;
	out->resize = ram_resize;
	snprintf(out->desc, sizeof(out->desc), "ram (%" PRIu64 " x %u)", rd->bdev.num_blocks, block_size);
	return 0;
}
