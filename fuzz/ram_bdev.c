/* The fuzz harnesses' RAM provider (see ram_bdev.h). */
#include "ram_bdev.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GET LBA STATUS: blocks looked at per map_status() call at most */
#define FUZZ_RAM_MAP_SCAN 4096u

static void fuzz_ram_io_run(void *arg)
{
	struct spt_bdev_io *io = arg;
	struct fuzz_ram *r = io->bdev->ctx;
	uint64_t disk = r->bdev.num_blocks * r->bdev.block_size;
	uint64_t end = io->offset + io->length;
	int rc = 0;

	if (r->loop)
		r->pending--;
	/* the helpers must never ask for bytes outside the medium */
	if (io->offset > disk || io->length > disk - io->offset) {
		fprintf(stderr, "fuzz_ram: I/O op %u at %llu+%llu beyond the %llu-byte medium\n",
			io->op, (unsigned long long)io->offset, (unsigned long long)io->length,
			(unsigned long long)disk);
		abort();
	}
	/* the backed part of [offset, end) */
	uint64_t b_end = end < r->mem_len ? end : r->mem_len;
	uint64_t b_len = io->offset < b_end ? b_end - io->offset : 0;

	if (r->fail_errno &&
	    ((io->op == SPT_BDEV_FLUSH && r->fail_flush) ||
	     (io->op != SPT_BDEV_FLUSH && io->offset <= r->fail_offset && r->fail_offset < end))) {
		io->done(io, -r->fail_errno);
		return;
	}
	switch (io->op) {
	case SPT_BDEV_READ:
		if (b_len)
			memcpy(io->buf, r->mem + io->offset, b_len);
		memset(io->buf + b_len, 0, io->length - b_len);
		break;
	case SPT_BDEV_WRITE:
		if (r->bdev.read_only) {
			fprintf(stderr, "fuzz_ram: WRITE reached a read-only LUN\n");
			abort();
		}
		if (b_len)
			memcpy(r->mem + io->offset, io->buf, b_len);
		break;
	case SPT_BDEV_UNMAP:
	case SPT_BDEV_WRITE_ZEROES:
		if (r->bdev.read_only) {
			fprintf(stderr, "fuzz_ram: op %u reached a read-only LUN\n", io->op);
			abort();
		}
		if (b_len)
			memset(r->mem + io->offset, 0, b_len);
		break;
	case SPT_BDEV_FLUSH:
		break;
	default:
		rc = -EINVAL;
		break;
	}
	io->done(io, rc);
}

static void fuzz_ram_submit(struct spt_bdev *bdev, struct spt_bdev_io *io)
{
	struct fuzz_ram *r = bdev->ctx;

	if (r->loop) {
		r->pending++;
		ev_defer(r->loop, fuzz_ram_io_run, io);
	} else {
		fuzz_ram_io_run(io);
	}
}

/* A block is mapped when it holds a non-zero byte; unbacked blocks are not. */
static bool fuzz_ram_block_mapped(const struct fuzz_ram *r, uint64_t lba)
{
	uint64_t off = lba * r->bdev.block_size;

	if (off >= r->mem_len)
		return false;
	for (uint32_t i = 0; i < r->bdev.block_size; i++)
		if (r->mem[off + i])
			return true;
	return false;
}

static int fuzz_ram_map_status(struct spt_bdev *bdev, uint64_t offset, bool *mapped, uint64_t *length)
{
	struct fuzz_ram *r = bdev->ctx;
	uint64_t lba = offset / bdev->block_size;
	uint64_t n = 1;

	if (lba >= bdev->num_blocks)
		return -EINVAL;
	if (offset >= r->mem_len) {
		/* the unbacked rest of the medium is one unmapped extent, as a
		 * sparse file's hole is to SEEK_DATA */
		*mapped = false;
		*length = (bdev->num_blocks - lba) * bdev->block_size;
		return 0;
	}
	*mapped = fuzz_ram_block_mapped(r, lba);
	while (lba + n < bdev->num_blocks && n < FUZZ_RAM_MAP_SCAN &&
	       fuzz_ram_block_mapped(r, lba + n) == *mapped)
		n++;
	*length = n * bdev->block_size;
	return 0;
}

static const struct spt_bdev_ops fuzz_ram_bdev_ops = {
	.submit = fuzz_ram_submit,
	.map_status = fuzz_ram_map_status,
};

int fuzz_ram_init(struct fuzz_ram *r, const struct fuzz_ram_geometry *g, struct ev_loop *loop)
{
	struct spt_bdev *b = &r->bdev;
	uint64_t disk = g->num_blocks * g->block_size;
	uint64_t backed = g->backed_bytes && g->backed_bytes < FUZZ_RAM_MAX_BYTES ? g->backed_bytes :
			  FUZZ_RAM_MAX_BYTES;

	memset(r, 0, sizeof(*r));
	r->mem_len = disk < backed ? disk : backed;
	r->mem = calloc(1, r->mem_len ? r->mem_len : 1);
	if (!r->mem)
		return -1;
	r->loop = loop;
	r->fail_offset = g->fail_offset;
	r->fail_errno = g->fail_errno;
	r->fail_flush = g->fail_flush;
	b->ops = &fuzz_ram_bdev_ops;
	b->ctx = r;
	b->block_size = g->block_size;
	b->num_blocks = g->num_blocks;
	b->read_only = g->read_only;
	b->thin = g->thin;
	b->write_cache = g->write_cache;
	b->max_transfer_bytes = g->max_transfer_bytes;
	snprintf(b->vendor, sizeof(b->vendor), "SPT");
	snprintf(b->product, sizeof(b->product), "FUZZ RAM");
	snprintf(b->revision, sizeof(b->revision), "0001");
	snprintf(b->serial, sizeof(b->serial), "fuzz0");
	b->naa = 0x3000000000000f00ull;
	b->relative_port = 1;
	snprintf(b->target_name, sizeof(b->target_name), "iqn.2026-11.org.spt:fuzz");
	if (spt_bdev_init(b) != 0) {
		free(r->mem);
		r->mem = NULL;
		return -1;
	}
	return 0;
}

void fuzz_ram_free(struct fuzz_ram *r)
{
	if (r->pending) {
		fprintf(stderr, "fuzz_ram: freed with %u I/O(s) still pending\n", r->pending);
		abort();
	}
	if (!r->closed && r->bdev.state)
		spt_bdev_fini(&r->bdev);
	r->closed = true;
	free(r->mem);
	r->mem = NULL;
}

static void fuzz_ram_scsi(void *ctx, struct spt_cmd *cmd)
{
	struct fuzz_ram *r = ctx;

	spt_bdev_execute(&r->bdev, cmd);
}

static void fuzz_ram_session_start(void *ctx, const struct spt_session_start *ss)
{
	struct fuzz_ram *r = ctx;

	spt_bdev_session_start(&r->bdev, ss);
}

static void fuzz_ram_session_end(void *ctx, const struct spt_session_end *se)
{
	struct fuzz_ram *r = ctx;

	spt_bdev_session_end(&r->bdev, se);
}

static void fuzz_ram_tmf(void *ctx, struct spt_tmf *tmf)
{
	struct fuzz_ram *r = ctx;

	spt_bdev_tmf(&r->bdev, tmf);
}

static void fuzz_ram_close(void *ctx)
{
	struct fuzz_ram *r = ctx;

	if (!r->closed)
		spt_bdev_fini(&r->bdev);
	r->closed = true;
}

const struct spt_provider_ops fuzz_ram_ops = {
	.name = "fuzz-ram",
	.session_start = fuzz_ram_session_start,
	.session_end = fuzz_ram_session_end,
	.tmf = fuzz_ram_tmf,
	.scsi = fuzz_ram_scsi,
	.close = fuzz_ram_close,
};
