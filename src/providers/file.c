/*
 * The file / block-device provider.
 *
 * SCSI semantics live in scsi/ (spt_bdev_execute); this file only moves
 * bytes: every struct spt_bdev_io becomes one or more io_uring SQEs on the
 * ring of the LUN's event loop. All file LUNs of one loop share that ring;
 * its completions arrive through an eventfd registered with the loop, and
 * the SQEs queued during one loop iteration go to the kernel in one
 * io_uring_submit from a deferred call.
 *
 * No allocation per I/O: the progress of an operation (bytes done, the
 * fallback step it is on, retries) is kept in the backend fields of the
 * caller's struct spt_bdev_io.
 */
#include "providers/file.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <spt/scsi.h>

#include "util/log.h"

#define FILE_RING_ENTRIES 256
/* The CQ ring holds twice the SQ entries: keeping at most that many
 * operations in the kernel means completions never overflow it. */
#define FILE_MAX_INFLIGHT (2 * FILE_RING_ENTRIES)
/* One SQE moves at most this much; the rest goes as a "short transfer". The
 * kernel caps a single read/write near 2 GiB anyway (MAX_RW_COUNT). */
#define FILE_SQE_MAX_BYTES (1u << 30)
/* Zeros written per SQE when the filesystem cannot zero a range itself. */
#define FILE_ZERO_CHUNK (1u << 20)
/* -EINTR / -EAGAIN retries of one step before giving up with the error. */
#define FILE_MAX_RETRIES 16
#define FILE_OPT_MAX 64

/* Steps of an operation, kept in the low byte of io->backend_state. UNMAP
 * and WRITE_ZEROES fall through the steps the backing store cannot do. */
enum file_step {
	FILE_STEP_RW = 0,		/* READ, WRITE, FLUSH: the op itself */
	FILE_STEP_PUNCH = 1,		/* fallocate PUNCH_HOLE: deallocate */
	FILE_STEP_ZERO_RANGE = 2,	/* fallocate ZERO_RANGE: zero, keep allocated */
	FILE_STEP_WRITE_ZEROS = 3,	/* plain writes of zeros */
	FILE_STEP_SYNC = 4,		/* fdatasync after a zeroing op with FUA */
};

#define FILE_STATE_STEP(s) ((s) & 0xffu)
#define FILE_STATE_RETRIES(s) (((s) >> 8) & 0xffu)
#define FILE_STATE(step, retries) ((uint32_t)(step) | (uint32_t)(retries) << 8)

/* One io_uring per event loop, shared by the file LUNs of that loop. */
struct file_ring {
	struct ev_loop *loop;
	struct io_uring ring;
	struct ev_handler evh;		/* the completion eventfd */
	unsigned refs;			/* LUNs using it */
	unsigned inflight;		/* SQEs prepared and not yet reaped */
	unsigned reaping;		/* depth of file_ring_reap on the stack */
	unsigned draining;		/* depth of file_lun_drain on the stack */
	bool flush_pending;		/* a deferred file_ring_flush is queued */
	bool dead;			/* last LUN gone: free once nothing refers to it */
	struct spt_bdev_io *wait_head;	/* operations waiting for a slot, FIFO */
	struct spt_bdev_io *wait_tail;
	uint8_t *zeros;			/* FILE_ZERO_CHUNK bytes of zeros (read-only map) */
	struct file_ring *next;
};

struct file_lun {
	struct spt_bdev bdev;
	struct file_ring *ring;
	int fd;
	bool is_blockdev;
	bool no_punch;			/* PUNCH_HOLE answered EOPNOTSUPP */
	bool no_zero_range;		/* ZERO_RANGE answered EOPNOTSUPP */
	uint64_t size;			/* bytes exposed: num_blocks * block_size */
	unsigned inflight;		/* operations accepted and not yet done */
	char path[PATH_MAX];
};

static pthread_mutex_t file_rings_lock = PTHREAD_MUTEX_INITIALIZER;
static struct file_ring *file_rings;

static bool file_io_prep(struct file_ring *r, struct spt_bdev_io *io);
static void file_ring_flush(void *arg);

static const char *file_op_name(uint8_t op)
{
	switch (op) {
	case SPT_BDEV_READ: return "read";
	case SPT_BDEV_WRITE: return "write";
	case SPT_BDEV_FLUSH: return "flush";
	case SPT_BDEV_UNMAP: return "unmap";
	case SPT_BDEV_WRITE_ZEROES: return "write zeroes";
	}
	return "unknown op";
}

static void file_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void file_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Spec parsing                                                         */
/* ------------------------------------------------------------------ */

/* "123", "64K", "10G": binary suffixes, the result must fit in 64 bits. */
static int file_parse_size(const char *s, uint64_t *out, char *err, size_t errlen)
{
	unsigned shift = 0;
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)s[0])) {
		file_seterr(err, errlen, "size '%s' is not a number (use bytes or K/M/G/T)", s);
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE) {
		file_seterr(err, errlen, "size '%s' is too large", s);
		return -1;
	}
	switch (*end) {
	case '\0': shift = 0; break;
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	default:
		file_seterr(err, errlen, "size '%s' has an unknown suffix (use K, M, G or T)", s);
		return -1;
	}
	if (*end != '\0' && end[1] != '\0') {
		file_seterr(err, errlen, "size '%s' has trailing characters after the suffix", s);
		return -1;
	}
	if (v > (UINT64_MAX >> shift)) {
		file_seterr(err, errlen, "size '%s' is too large", s);
		return -1;
	}
	if (v == 0) {
		file_seterr(err, errlen, "size must be greater than zero");
		return -1;
	}
	*out = (uint64_t)v << shift;
	return 0;
}

static int file_parse_option(const char *opt, struct file_lun_config *cfg, bool *seen_size,
			     bool *seen_bs, char *err, size_t errlen)
{
	if (strcmp(opt, "ro") == 0) {
		if (cfg->read_only) {
			file_seterr(err, errlen, "option 'ro' given twice");
			return -1;
		}
		cfg->read_only = true;
		return 0;
	}
	if (strncmp(opt, "size=", 5) == 0) {
		if (*seen_size) {
			file_seterr(err, errlen, "option 'size=' given twice");
			return -1;
		}
		*seen_size = true;
		return file_parse_size(opt + 5, &cfg->size, err, errlen);
	}
	if (strncmp(opt, "block_size=", 11) == 0) {
		if (*seen_bs) {
			file_seterr(err, errlen, "option 'block_size=' given twice");
			return -1;
		}
		*seen_bs = true;
		/* struct spt_bdev: the emulation serves 512- and 4096-byte blocks */
		if (strcmp(opt + 11, "512") == 0) {
			cfg->block_size = 512;
		} else if (strcmp(opt + 11, "4096") == 0) {
			cfg->block_size = 4096;
		} else {
			file_seterr(err, errlen, "block_size '%s' is not supported (use 512 or 4096)",
				    opt + 11);
			return -1;
		}
		return 0;
	}
	file_seterr(err, errlen, "unknown option '%s' (expected size=, block_size= or ro)", opt);
	return -1;
}

int file_lun_parse(const char *spec, struct file_lun_config *cfg, char *err, size_t errlen)
{
	bool seen_size = false, seen_bs = false;
	const char *p, *comma;
	size_t len;

	memset(cfg, 0, sizeof(*cfg));
	if (!spec || spec[0] == '\0') {
		file_seterr(err, errlen, "empty LUN spec (expected PATH[,size=SIZE][,block_size=512|4096][,ro])");
		return -1;
	}
	comma = strchr(spec, ',');
	len = comma ? (size_t)(comma - spec) : strlen(spec);
	if (len == 0) {
		file_seterr(err, errlen, "LUN spec '%s' has no path before the options", spec);
		return -1;
	}
	if (len >= sizeof(cfg->path)) {
		file_seterr(err, errlen, "path is %zu bytes, longer than the limit of %zu", len,
			    sizeof(cfg->path) - 1);
		return -1;
	}
	memcpy(cfg->path, spec, len);
	cfg->path[len] = '\0';

	for (p = comma; p; p = comma) {
		char opt[FILE_OPT_MAX];

		p++;
		comma = strchr(p, ',');
		len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == 0) {
			file_seterr(err, errlen, "empty option in '%s' (doubled or trailing comma)", spec);
			return -1;
		}
		if (len >= sizeof(opt)) {
			file_seterr(err, errlen, "option '%.*s...' is longer than %zu bytes", 16, p,
				    sizeof(opt) - 1);
			return -1;
		}
		memcpy(opt, p, len);
		opt[len] = '\0';
		if (file_parse_option(opt, cfg, &seen_size, &seen_bs, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The shared ring                                                      */
/* ------------------------------------------------------------------ */

static void file_ring_free(struct file_ring *r)
{
	io_uring_queue_exit(&r->ring);
	close(r->evh.fd);
	if (r->zeros)
		munmap(r->zeros, FILE_ZERO_CHUNK);
	free(r);
}

/* Frees a ring whose last LUN is gone, unless a deferred flush or a reap
 * further up the stack still holds it: they free it when they finish. */
static void file_ring_maybe_free(struct file_ring *r)
{
	if (r->dead && !r->flush_pending && r->reaping == 0)
		file_ring_free(r);
}

/* Hands the queued SQEs to the kernel. */
static void file_ring_submit(struct file_ring *r)
{
	while (io_uring_sq_ready(&r->ring) > 0) {
		int ret = io_uring_submit(&r->ring);

		if (ret > 0 || ret == -EINTR)
			continue;
		/* -EAGAIN / -EBUSY: the kernel is short of resources or has
		 * completions to post first. The SQEs stay queued and go with
		 * the submit after the next reap; with nothing in the kernel to
		 * complete, the next loop iteration tries again. */
		if (ret == -EAGAIN || ret == -EBUSY) {
			log_debug("file: io_uring_submit: %s, retrying later", strerror(-ret));
			if (!r->draining && !r->flush_pending && !ev_loop_stopping(r->loop) &&
			    r->inflight == io_uring_sq_ready(&r->ring) &&
			    ev_defer(r->loop, file_ring_flush, r) == 0)
				r->flush_pending = true;
			break;
		}
		log_err("file: io_uring_submit: %s", ret < 0 ? strerror(-ret) : "submitted nothing");
		break;
	}
}

static void file_ring_flush(void *arg)
{
	struct file_ring *r = arg;

	r->flush_pending = false;
	if (r->dead) {
		file_ring_maybe_free(r);
		return;
	}
	file_ring_submit(r);
}

/* One io_uring_submit per loop iteration, however many SQEs it gathered. */
static void file_ring_schedule_flush(struct file_ring *r)
{
	/* draining at close, or the loop is done: no later iteration to wait for */
	if (r->draining || ev_loop_stopping(r->loop)) {
		file_ring_submit(r);
		return;
	}
	if (r->flush_pending)
		return;
	if (ev_defer(r->loop, file_ring_flush, r) == 0)
		r->flush_pending = true;
	else
		file_ring_submit(r);
}

static void file_ring_wait_push(struct file_ring *r, struct spt_bdev_io *io)
{
	io->backend_next = NULL;
	if (r->wait_tail)
		r->wait_tail->backend_next = io;
	else
		r->wait_head = io;
	r->wait_tail = io;
}

/* Starts waiting operations while there are slots, oldest first. */
static void file_ring_start_waiters(struct file_ring *r)
{
	while (r->wait_head && r->inflight < FILE_MAX_INFLIGHT) {
		struct spt_bdev_io *io = r->wait_head;

		if (!file_io_prep(r, io))
			break;	/* SQ still full: it stays first in line */
		r->wait_head = io->backend_next;
		if (!r->wait_head)
			r->wait_tail = NULL;
		io->backend_next = NULL;
	}
}

/* Queues the next step of io: an SQE now, or a place in the wait list when
 * FILE_MAX_INFLIGHT operations are already in the kernel. */
static void file_io_queue(struct file_ring *r, struct spt_bdev_io *io)
{
	if (r->wait_head || r->inflight >= FILE_MAX_INFLIGHT) {
		file_ring_wait_push(r, io);
		return;
	}
	if (!file_io_prep(r, io))
		file_ring_wait_push(r, io);
}

static void file_io_finish(struct spt_bdev_io *io, int result)
{
	struct file_lun *lun = io->bdev->ctx;

	if (result < 0)
		log_err("file %s: %s of %" PRIu64 " bytes at offset %" PRIu64 " failed: %s",
			lun->path, file_op_name(io->op), io->length, io->offset, strerror(-result));
	lun->inflight--;
	io->done(io, result);
}

/* Prepares the SQE of io's current step; false if the SQ has no room. */
static bool file_io_prep(struct file_ring *r, struct spt_bdev_io *io)
{
	struct file_lun *lun = io->bdev->ctx;
	uint64_t remaining = io->length - io->backend_progress;
	uint64_t pos = io->offset + io->backend_progress;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	unsigned chunk;

	if (!sqe) {
		/* SQ full: hand what is queued to the kernel, then there is room */
		file_ring_submit(r);
		sqe = io_uring_get_sqe(&r->ring);
		if (!sqe) {
			file_ring_schedule_flush(r);
			return false;
		}
	}
	switch (FILE_STATE_STEP(io->backend_state)) {
	case FILE_STEP_RW:
		chunk = remaining > FILE_SQE_MAX_BYTES ? FILE_SQE_MAX_BYTES : (unsigned)remaining;
		if (io->op == SPT_BDEV_READ) {
			io_uring_prep_read(sqe, lun->fd, io->buf + io->backend_progress, chunk, pos);
		} else if (io->op == SPT_BDEV_WRITE) {
			io_uring_prep_write(sqe, lun->fd, io->buf + io->backend_progress, chunk, pos);
			/* FUA: durable before completion, per write (O_DSYNC semantics) */
			if (io->flags & SPT_BDEV_FUA)
				sqe->rw_flags = RWF_DSYNC;
		} else {
			io_uring_prep_fsync(sqe, lun->fd, IORING_FSYNC_DATASYNC);
		}
		break;
	case FILE_STEP_PUNCH:
		io_uring_prep_fallocate(sqe, lun->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)io->offset, (off_t)io->length);
		break;
	case FILE_STEP_ZERO_RANGE:
		io_uring_prep_fallocate(sqe, lun->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					(off_t)io->offset, (off_t)io->length);
		break;
	case FILE_STEP_WRITE_ZEROS:
		chunk = remaining > FILE_ZERO_CHUNK ? FILE_ZERO_CHUNK : (unsigned)remaining;
		io_uring_prep_write(sqe, lun->fd, r->zeros, chunk, pos);
		break;
	case FILE_STEP_SYNC:
		io_uring_prep_fsync(sqe, lun->fd, IORING_FSYNC_DATASYNC);
		break;
	}
	io_uring_sqe_set_data(sqe, io);
	r->inflight++;
	file_ring_schedule_flush(r);
	return true;
}

/* The first zeroing step, from `from` on, that the backing store supports. */
static enum file_step file_zero_step(const struct file_lun *lun, enum file_step from)
{
	if (from <= FILE_STEP_PUNCH && !lun->no_punch)
		return FILE_STEP_PUNCH;
	if (from <= FILE_STEP_ZERO_RANGE && !lun->no_zero_range)
		return FILE_STEP_ZERO_RANGE;
	return FILE_STEP_WRITE_ZEROS;
}

/* After a zeroing step succeeded: make it durable when FUA asks for it. */
static void file_io_zeroed(struct file_ring *r, struct spt_bdev_io *io, enum file_step step)
{
	if ((io->flags & SPT_BDEV_FUA) && step != FILE_STEP_SYNC) {
		io->backend_state = FILE_STATE(FILE_STEP_SYNC, 0);
		file_io_queue(r, io);
		return;
	}
	file_io_finish(io, 0);
}

/* One CQE of io: finish it, or queue its next step. */
static void file_io_complete(struct file_ring *r, struct spt_bdev_io *io, int res)
{
	struct file_lun *lun = io->bdev->ctx;
	enum file_step step = FILE_STATE_STEP(io->backend_state);
	unsigned retries = FILE_STATE_RETRIES(io->backend_state);

	if ((res == -EINTR || res == -EAGAIN) && retries < FILE_MAX_RETRIES) {
		io->backend_state = FILE_STATE(step, retries + 1);
		file_io_queue(r, io);
		return;
	}
	if ((step == FILE_STEP_PUNCH || step == FILE_STEP_ZERO_RANGE) && res == -EOPNOTSUPP) {
		/* the filesystem or device cannot: remember, take the next way */
		if (step == FILE_STEP_PUNCH)
			lun->no_punch = true;
		else
			lun->no_zero_range = true;
		log_info("file %s: fallocate %s not supported, falling back", lun->path,
			 step == FILE_STEP_PUNCH ? "PUNCH_HOLE" : "ZERO_RANGE");
		step = file_zero_step(lun, step + 1);
		io->backend_state = FILE_STATE(step, 0);
		io->backend_progress = 0;
		file_io_queue(r, io);
		return;
	}
	if (res < 0) {
		file_io_finish(io, res);
		return;
	}
	switch (step) {
	case FILE_STEP_RW:
		if (io->op == SPT_BDEV_FLUSH)
			break;
		if (res == 0) {
			/* the backing file shrank under us, or the device went away */
			log_err("file %s: %s at offset %" PRIu64 " hit end of file", lun->path,
				file_op_name(io->op), io->offset + io->backend_progress);
			file_io_finish(io, -EIO);
			return;
		}
		io->backend_progress += (uint64_t)res;
		if (io->backend_progress < io->length) {
			/* short transfer: resubmit the remainder */
			io->backend_state = FILE_STATE(step, 0);
			file_io_queue(r, io);
			return;
		}
		break;
	case FILE_STEP_WRITE_ZEROS:
		if (res == 0) {
			file_io_finish(io, -EIO);
			return;
		}
		io->backend_progress += (uint64_t)res;
		if (io->backend_progress < io->length) {
			io->backend_state = FILE_STATE(step, 0);
			file_io_queue(r, io);
			return;
		}
		file_io_zeroed(r, io, step);
		return;
	case FILE_STEP_PUNCH:
	case FILE_STEP_ZERO_RANGE:
	case FILE_STEP_SYNC:
		file_io_zeroed(r, io, step);
		return;
	}
	file_io_finish(io, 0);
}

/* Reaps every CQE there is, then starts operations that waited for a slot. */
static void file_ring_reap(struct file_ring *r)
{
	struct io_uring_cqe *cqe;

	r->reaping++;
	while (io_uring_peek_cqe(&r->ring, &cqe) == 0) {
		struct spt_bdev_io *io = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		/* consume it before the callback, which may queue new SQEs */
		io_uring_cqe_seen(&r->ring, cqe);
		r->inflight--;
		file_io_complete(r, io, res);
		file_ring_start_waiters(r);
	}
	r->reaping--;
	file_ring_maybe_free(r);
}

static void file_ring_event(struct ev_handler *h, uint32_t events)
{
	struct file_ring *r = h->arg;
	uint64_t count;

	/* the counter only says "something completed": drain it, reap all */
	if (read(h->fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_err("file: reading the io_uring eventfd: %s", strerror(errno));
	file_ring_reap(r);
}

static struct file_ring *file_ring_create(struct ev_loop *loop, char *err, size_t errlen)
{
	struct file_ring *r = calloc(1, sizeof(*r));
	int ret;

	if (!r) {
		file_seterr(err, errlen, "out of memory");
		return NULL;
	}
	r->loop = loop;
	r->evh.fd = -1;
	ret = io_uring_queue_init(FILE_RING_ENTRIES, &r->ring, 0);
	if (ret < 0) {
		file_seterr(err, errlen, "io_uring_queue_init: %s", strerror(-ret));
		free(r);
		return NULL;
	}
	r->evh.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->evh.fd < 0) {
		file_seterr(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	ret = io_uring_register_eventfd(&r->ring, r->evh.fd);
	if (ret < 0) {
		file_seterr(err, errlen, "io_uring_register_eventfd: %s", strerror(-ret));
		goto fail;
	}
	/* a private read-only map of zeros costs no memory: every page is the zero page */
	r->zeros = mmap(NULL, FILE_ZERO_CHUNK, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->zeros == MAP_FAILED) {
		r->zeros = NULL;
		file_seterr(err, errlen, "mmap: %s", strerror(errno));
		goto fail;
	}
	r->evh.cb = file_ring_event;
	r->evh.arg = r;
	ret = ev_add(loop, &r->evh, EPOLLIN);
	if (ret < 0) {
		file_seterr(err, errlen, "ev_add: %s", strerror(-ret));
		goto fail;
	}
	return r;
fail:
	io_uring_queue_exit(&r->ring);
	if (r->evh.fd >= 0)
		close(r->evh.fd);
	if (r->zeros)
		munmap(r->zeros, FILE_ZERO_CHUNK);
	free(r);
	return NULL;
}

/* The ring of `loop`, created on first use. */
static struct file_ring *file_ring_get(struct ev_loop *loop, char *err, size_t errlen)
{
	struct file_ring *r;

	pthread_mutex_lock(&file_rings_lock);
	for (r = file_rings; r; r = r->next)
		if (r->loop == loop)
			break;
	if (!r) {
		r = file_ring_create(loop, err, errlen);
		if (r) {
			r->next = file_rings;
			file_rings = r;
		}
	}
	if (r)
		r->refs++;
	pthread_mutex_unlock(&file_rings_lock);
	return r;
}

static void file_ring_put(struct file_ring *r)
{
	struct file_ring **pp;

	pthread_mutex_lock(&file_rings_lock);
	if (--r->refs > 0) {
		pthread_mutex_unlock(&file_rings_lock);
		return;
	}
	for (pp = &file_rings; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	pthread_mutex_unlock(&file_rings_lock);
	ev_del(r->loop, &r->evh);
	r->dead = true;
	/* A running loop may still hold an event of this batch naming the
	 * ring: free it after the batch, as a deferred call. A stopped loop
	 * dispatches nothing more, so the ring goes now. */
	if (!r->flush_pending && r->reaping == 0 && !ev_loop_stopping(r->loop) &&
	    ev_defer(r->loop, file_ring_flush, r) == 0)
		r->flush_pending = true;
	file_ring_maybe_free(r);
}

/* ------------------------------------------------------------------ */
/* struct spt_bdev_ops                                                  */
/* ------------------------------------------------------------------ */

static void file_bdev_submit(struct spt_bdev *bdev, struct spt_bdev_io *io)
{
	struct file_lun *lun = bdev->ctx;
	int result = 0;

	io->backend_progress = 0;
	io->backend_state = FILE_STATE(FILE_STEP_RW, 0);
	io->backend_next = NULL;
	lun->inflight++;

	switch (io->op) {
	case SPT_BDEV_READ:
	case SPT_BDEV_WRITE:
		if (io->length > 0 && !io->buf) {
			result = -EINVAL;
			goto out;
		}
		break;
	case SPT_BDEV_FLUSH:
		/* SYNCHRONIZE CACHE of any range: fdatasync makes all of it durable */
		file_io_queue(lun->ring, io);
		return;
	case SPT_BDEV_UNMAP:
		io->backend_state = FILE_STATE(file_zero_step(lun, FILE_STEP_PUNCH), 0);
		break;
	case SPT_BDEV_WRITE_ZEROES:
		/* zero and keep allocated: SBC-3 WRITE SAME with UNMAP=0 writes the blocks */
		io->backend_state = FILE_STATE(file_zero_step(lun, FILE_STEP_ZERO_RANGE), 0);
		break;
	default:
		result = -EINVAL;
		goto out;
	}
	if (io->op != SPT_BDEV_READ && lun->bdev.read_only) {
		result = -EROFS;
		goto out;
	}
	/* The SCSI layer checks the LBA range first (SBC-3 LBA OUT OF RANGE);
	 * this keeps a bug there from touching bytes past the LUN. */
	if (io->offset > lun->size || io->length > lun->size - io->offset) {
		result = -EINVAL;
		goto out;
	}
	if (io->length == 0)
		goto out;
	file_io_queue(lun->ring, io);
	return;
out:
	file_io_finish(io, result);
}

/* GET LBA STATUS: holes of a sparse file are deallocated extents. */
static int file_bdev_map_status(struct spt_bdev *bdev, uint64_t offset, bool *mapped,
				uint64_t *length)
{
	struct file_lun *lun = bdev->ctx;
	uint64_t bs = lun->bdev.block_size, end;
	off_t data, hole;

	if (offset >= lun->size)
		return -EINVAL;
	if (lun->is_blockdev) {
		*mapped = true;
		*length = lun->size - offset;
		return 0;
	}
	data = lseek(lun->fd, (off_t)offset, SEEK_DATA);
	if (data < 0 && errno != ENXIO) {
		int e = errno;

		log_err("file %s: lseek SEEK_DATA: %s", lun->path, strerror(e));
		return -e;
	}
	if (data < 0 || (uint64_t)data >= lun->size) {
		/* no data from here to the end */
		*mapped = false;
		*length = lun->size - offset;
		return 0;
	}
	if ((uint64_t)data > offset) {
		/* a hole up to the next data, whole blocks only: a partly
		 * allocated block is mapped */
		end = (uint64_t)data / bs * bs;
		if (end > offset) {
			*mapped = false;
			*length = end - offset;
			return 0;
		}
	}
	hole = lseek(lun->fd, (off_t)offset, SEEK_HOLE);
	if (hole < 0) {
		int e = errno;

		log_err("file %s: lseek SEEK_HOLE: %s", lun->path, strerror(e));
		return -e;
	}
	end = ((uint64_t)hole + bs - 1) / bs * bs;
	if (end > lun->size)
		end = lun->size;
	if (end <= offset)
		end = offset + bs;
	*mapped = true;
	*length = end - offset;
	return 0;
}

static const struct spt_bdev_ops file_bdev_ops = {
	.submit = file_bdev_submit,
	.map_status = file_bdev_map_status,
};

/* ------------------------------------------------------------------ */
/* struct spt_provider_ops                                              */
/* ------------------------------------------------------------------ */

static void file_session_start(void *ctx, const struct spt_session_start *ss)
{
	struct file_lun *lun = ctx;

	spt_bdev_session_start(&lun->bdev, ss);
}

static void file_session_end(void *ctx, const struct spt_session_end *se)
{
	struct file_lun *lun = ctx;

	spt_bdev_session_end(&lun->bdev, se);
}

static void file_tmf(void *ctx, struct spt_tmf *tmf)
{
	struct file_lun *lun = ctx;

	spt_bdev_tmf(&lun->bdev, tmf);
}

static void file_scsi(void *ctx, struct spt_cmd *cmd)
{
	struct file_lun *lun = ctx;

	spt_bdev_execute(&lun->bdev, cmd);
}

/* Waits until every operation of the LUN has completed. Completions of the
 * other LUNs of the ring are delivered on the way. */
static void file_lun_drain(struct file_lun *lun)
{
	struct file_ring *r = lun->ring;

	/* the ring outlives this loop whatever the callbacks do */
	r->reaping++;
	r->draining++;
	while (lun->inflight > 0) {
		struct io_uring_cqe *cqe;
		int ret;

		file_ring_start_waiters(r);
		file_ring_submit(r);
		if (r->inflight == 0) {
			log_err("file %s: %u operations cannot complete", lun->path, lun->inflight);
			break;
		}
		if (io_uring_sq_ready(&r->ring) == r->inflight) {
			/* the kernel refused the submit (-EAGAIN): nothing to wait for yet */
			usleep(1000);
			continue;
		}
		ret = io_uring_wait_cqe(&r->ring, &cqe);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN) {
			log_err("file %s: waiting for I/O: %s", lun->path, strerror(-ret));
			break;
		}
		file_ring_reap(r);
	}
	r->draining--;
	r->reaping--;
}

static void file_lun_free(struct file_lun *lun)
{
	if (lun->fd >= 0)
		close(lun->fd);
	if (lun->ring)
		file_ring_put(lun->ring);
	free(lun);
}

/* Daemon shutdown: in-flight I/O done, data durable, everything released.
 * Call it on the loop's thread (or with the loop stopped), not from an I/O
 * completion callback. */
static void file_close(void *ctx)
{
	struct file_lun *lun = ctx;

	file_lun_drain(lun);
	if (!lun->bdev.read_only && fdatasync(lun->fd) < 0)
		log_err("file %s: fdatasync at close: %s", lun->path, strerror(errno));
	spt_bdev_fini(&lun->bdev);
	log_info("file %s: closed", lun->path);
	file_lun_free(lun);
}

static const struct spt_provider_ops file_provider_ops = {
	.name = "file",
	.session_start = file_session_start,
	.session_end = file_session_end,
	.tmf = file_tmf,
	.scsi = file_scsi,
	.close = file_close,
};

struct spt_bdev *file_lun_bdev(const struct spt_lun *lun)
{
	struct file_lun *fl = lun->ctx;

	return lun->ops == &file_provider_ops ? &fl->bdev : NULL;
}

/* For `sptctl lun list`: the geometry as served now (a resize changes it). */
/* A regular file grows (sparse); shrinking would drop data that initiators
 * wrote, and a block device's size is the device's. */
static int file_resize(void *ctx, uint64_t bytes, char *err, size_t errlen)
{
	struct file_lun *lun = ctx;

	if (lun->is_blockdev) {
		snprintf(err, errlen, "%s is a block device: resize the device itself", lun->path);
		return -1;
	}
	if (lun->bdev.read_only) {
		snprintf(err, errlen, "%s is read-only", lun->path);
		return -1;
	}
	if (bytes % lun->bdev.block_size || bytes == 0) {
		snprintf(err, errlen, "%" PRIu64 " is not a non-zero multiple of the block size %u", bytes,
			 lun->bdev.block_size);
		return -1;
	}
	if (bytes < lun->size) {
		snprintf(err, errlen, "%s: shrinking from %" PRIu64 " to %" PRIu64 " bytes would drop data; "
			 "only growing is allowed", lun->path, lun->size, bytes);
		return -1;
	}
	if (ftruncate(lun->fd, (off_t)bytes) < 0) {
		snprintf(err, errlen, "%s: %s", lun->path, strerror(errno));
		return -1;
	}
	lun->size = bytes;
	spt_bdev_set_capacity(&lun->bdev, bytes / lun->bdev.block_size);
	log_info("file %s: resized to %" PRIu64 " bytes", lun->path, bytes);
	return 0;
}

static void file_status(void *ctx, struct spt_lun_status *st)
{
	const struct file_lun *lun = ctx;
	int n = snprintf(st->backend, sizeof(st->backend), "%s:%s",
			 lun->is_blockdev ? "blockdev" : "file", lun->path);

	/* a path longer than the field still shows it was cut */
	if (n >= (int)sizeof(st->backend))
		memcpy(st->backend + sizeof(st->backend) - 4, "...", 4);
	st->state = "online";
	st->size_bytes = lun->bdev.num_blocks * lun->bdev.block_size;
	st->block_size = lun->bdev.block_size;
	st->read_only = lun->bdev.read_only;
}

/* ------------------------------------------------------------------ */
/* Opening                                                              */
/* ------------------------------------------------------------------ */

/* VPD 0x80 / 0x83 identity from a name that survives restarts. */
/* Whether the filesystem can deallocate: a hole punched past the end of the
 * file (KEEP_SIZE) touches no data, and fails with EOPNOTSUPP where punching
 * is unsupported. */
static bool file_probe_punch(int fd, uint64_t size)
{
	uint64_t at = (size + 4095) / 4096 * 4096;

	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)at, 4096) == 0)
		return true;
	return false;
}

/* A block device can deallocate if its queue accepts discards. */
static bool file_blockdev_discards(dev_t rdev)
{
	static const char *const fmts[] = {
		"/sys/dev/block/%u:%u/queue/discard_max_bytes",
		"/sys/dev/block/%u:%u/../queue/discard_max_bytes",	/* a partition */
	};
	bool ok = false;

	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]) && !ok; i++) {
		char p[128];
		unsigned long long v = 0;
		FILE *f;

		snprintf(p, sizeof(p), fmts[i], major(rdev), minor(rdev));
		f = fopen(p, "re");
		if (!f)
			continue;
		if (fscanf(f, "%llu", &v) == 1 && v > 0)
			ok = true;
		fclose(f);
	}
	return ok;
}

/* Size and block size of a block device. */
static int file_open_blockdev(struct file_lun *lun, const struct file_lun_config *cfg,
			      const struct stat *st, char *err, size_t errlen)
{
	uint64_t bytes = 0;
	int lbs = 0;

	if (ioctl(lun->fd, BLKGETSIZE64, &bytes) < 0) {
		file_seterr(err, errlen, "%s: BLKGETSIZE64: %s", cfg->path, strerror(errno));
		return -1;
	}
	if (cfg->size && cfg->size != bytes) {
		file_seterr(err, errlen, "%s is a block device of %" PRIu64 " bytes; size=%" PRIu64
			    " cannot change it (leave size= out)", cfg->path, bytes, cfg->size);
		return -1;
	}
	if (cfg->block_size) {
		lun->bdev.block_size = cfg->block_size;
	} else {
		if (ioctl(lun->fd, BLKSSZGET, &lbs) < 0) {
			file_seterr(err, errlen, "%s: BLKSSZGET: %s", cfg->path, strerror(errno));
			return -1;
		}
		if (lbs != 512 && lbs != 4096) {
			file_seterr(err, errlen, "%s has %d-byte logical blocks; give block_size=512 or 4096",
				    cfg->path, lbs);
			return -1;
		}
		lun->bdev.block_size = (uint32_t)lbs;
	}
	lun->is_blockdev = true;
	lun->size = bytes;
	lun->bdev.thin = !cfg->read_only && file_blockdev_discards(st->st_rdev);
	return 0;
}

/* Size of a regular file: grown sparse to cfg->size, never shrunk. */
static int file_open_regular(struct file_lun *lun, const struct file_lun_config *cfg,
			     const struct stat *st, char *err, size_t errlen)
{
	uint64_t cur = (uint64_t)st->st_size;

	lun->bdev.block_size = cfg->block_size ? cfg->block_size : 512;
	/* before the file is grown: a refused size leaves it as it was */
	if (cfg->size % lun->bdev.block_size != 0) {
		file_seterr(err, errlen, "%s: size %" PRIu64 " is not a multiple of the block size %u",
			    cfg->path, cfg->size, lun->bdev.block_size);
		return -1;
	}
	if (cfg->size == 0) {
		if (cur == 0) {
			file_seterr(err, errlen, "%s is empty; give size= to set its size", cfg->path);
			return -1;
		}
		lun->size = cur;
	} else if (cfg->size < cur) {
		file_seterr(err, errlen, "%s is %" PRIu64 " bytes, larger than size=%" PRIu64
			    "; refusing to shrink it (that would drop data)", cfg->path, cur, cfg->size);
		return -1;
	} else {
		if (cfg->size > cur && cfg->read_only) {
			file_seterr(err, errlen, "%s is %" PRIu64 " bytes; a read-only LUN cannot grow it to %"
				    PRIu64, cfg->path, cur, cfg->size);
			return -1;
		}
		if (cfg->size > (uint64_t)INT64_MAX) {
			file_seterr(err, errlen, "size=%" PRIu64 " is larger than a file can be", cfg->size);
			return -1;
		}
		if (cfg->size > cur && ftruncate(lun->fd, (off_t)cfg->size) < 0) {
			file_seterr(err, errlen, "%s: growing to %" PRIu64 " bytes: %s", cfg->path,
				    cfg->size, strerror(errno));
			return -1;
		}
		if (cfg->size > cur && cur == 0)
			log_info("file %s: sized sparse to %" PRIu64 " bytes", cfg->path, cfg->size);
		else if (cfg->size > cur)
			log_info("file %s: grown sparse from %" PRIu64 " to %" PRIu64 " bytes",
				 cfg->path, cur, cfg->size);
		lun->size = cfg->size;
	}
	lun->bdev.thin = cfg->read_only ? false : file_probe_punch(lun->fd, lun->size);
	/* UNMAP, should it come anyway, zeroes without trying to punch */
	lun->no_punch = !lun->bdev.thin;
	return 0;
}

int file_lun_open(struct ev_loop *loop, const struct file_lun_config *cfg, uint64_t lun_no,
		  const char *target_name, struct spt_lun *out, char *err, size_t errlen)
{
	struct file_lun *lun = NULL;
	char idname[PATH_MAX];
	bool created = false, is_blk = false;
	struct stat st;
	int flags, ret;

	if (cfg->path[0] == '\0') {
		file_seterr(err, errlen, "no path given");
		return -1;
	}
	if (cfg->block_size != 0 && cfg->block_size != 512 && cfg->block_size != 4096) {
		file_seterr(err, errlen, "block_size %u is not supported (use 512 or 4096)",
			    cfg->block_size);
		return -1;
	}
	if (target_name && strlen(target_name) >= sizeof(lun->bdev.target_name)) {
		file_seterr(err, errlen, "target name longer than %zu bytes",
			    sizeof(lun->bdev.target_name) - 1);
		return -1;
	}
	lun = calloc(1, sizeof(*lun));
	if (!lun) {
		file_seterr(err, errlen, "out of memory");
		return -1;
	}
	lun->fd = -1;
	snprintf(lun->path, sizeof(lun->path), "%s", cfg->path);

	/* created only when a size says how big; read-only needs it to exist.
	 * A file we created is removed again if the LUN cannot be set up. */
	flags = (cfg->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	ret = stat(cfg->path, &st);
	if (ret == 0 && !S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
		/* before open(): opening a FIFO for reading would block */
		file_seterr(err, errlen, "%s is neither a regular file nor a block device", cfg->path);
		goto fail;
	}
	if (ret == 0 && S_ISBLK(st.st_mode)) {
		/* a writable block device is claimed exclusively (O_EXCL): not
		 * while mounted, not by two writers */
		is_blk = true;
		if (!cfg->read_only)
			flags |= O_EXCL;
	} else if (cfg->size && !cfg->read_only) {
		lun->fd = open(cfg->path, flags | O_CREAT | O_EXCL, 0600);
		created = lun->fd >= 0;
	}
	if (lun->fd < 0)
		lun->fd = open(cfg->path, flags);
	if (lun->fd < 0) {
		if (errno == EBUSY && is_blk)
			file_seterr(err, errlen, "%s is in use (mounted, or claimed by another program)",
				    cfg->path);
		else if (errno == ENOENT && cfg->read_only)
			file_seterr(err, errlen, "%s does not exist (a read-only LUN needs an existing file)",
				    cfg->path);
		else if (errno == ENOENT)
			file_seterr(err, errlen, "%s does not exist; give size= to create it", cfg->path);
		else
			file_seterr(err, errlen, "%s: %s", cfg->path, strerror(errno));
		goto fail;
	}
	/* one writer: two LUNs or two daemons on one file would corrupt it */
	if (!is_blk && flock(lun->fd, (cfg->read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		file_seterr(err, errlen, "%s is in use by another LUN or process (flock: %s)",
			    cfg->path, strerror(errno));
		goto fail;
	}
	if (fstat(lun->fd, &st) < 0) {
		file_seterr(err, errlen, "%s: fstat: %s", cfg->path, strerror(errno));
		goto fail;
	}
	lun->bdev.read_only = cfg->read_only;
	if (S_ISBLK(st.st_mode))
		ret = file_open_blockdev(lun, cfg, &st, err, errlen);
	else if (S_ISREG(st.st_mode))
		ret = file_open_regular(lun, cfg, &st, err, errlen);
	else {
		file_seterr(err, errlen, "%s is neither a regular file nor a block device", cfg->path);
		ret = -1;
	}
	if (ret < 0)
		goto fail;
	if (lun->size % lun->bdev.block_size != 0) {
		file_seterr(err, errlen, "%s: size %" PRIu64 " is not a multiple of the block size %u",
			    cfg->path, lun->size, lun->bdev.block_size);
		goto fail;
	}
	if (lun->size == 0) {
		file_seterr(err, errlen, "%s has no blocks", cfg->path);
		goto fail;
	}

	/* Regular files: the canonical path, so "./a" and "/srv/a" are one LUN.
	 * Block devices: the path as given, made absolute but not resolved,
	 * since /dev/disk/by-id/... is stable across boots and /dev/sdX is not. */
	if (lun->is_blockdev && cfg->path[0] == '/') {
		snprintf(idname, sizeof(idname), "%s", cfg->path);
	} else if (lun->is_blockdev) {
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)) ||
		    snprintf(idname, sizeof(idname), "%s/%s", cwd, cfg->path) >= (int)sizeof(idname)) {
			file_seterr(err, errlen, "%s: cannot make the path absolute", cfg->path);
			goto fail;
		}
	} else if (!realpath(cfg->path, idname)) {
		file_seterr(err, errlen, "%s: realpath: %s", cfg->path, strerror(errno));
		goto fail;
	}
	if (spt_bdev_identity_from_name(&lun->bdev, idname) < 0) {
		file_seterr(err, errlen, "SHA-256 of the path failed");
		goto fail;
	}

	lun->bdev.ops = &file_bdev_ops;
	lun->bdev.ctx = lun;
	lun->bdev.num_blocks = lun->size / lun->bdev.block_size;
	lun->bdev.write_cache = true;
	lun->bdev.max_transfer_bytes = FILE_MAX_TRANSFER;
	snprintf(lun->bdev.vendor, sizeof(lun->bdev.vendor), "SPT");
	snprintf(lun->bdev.product, sizeof(lun->bdev.product), "%s",
		 lun->is_blockdev ? "spt blockdev" : "spt file");
	snprintf(lun->bdev.revision, sizeof(lun->bdev.revision), "0001");
	lun->bdev.relative_port = 1;
	snprintf(lun->bdev.target_name, sizeof(lun->bdev.target_name), "%s",
		 target_name ? target_name : "");
	/* SPC-4 APTPL state next to a regular file (none beside /dev nodes):
	 * empty, APTPL is refused, when the name would not fit */
	if (!lun->is_blockdev &&
	    snprintf(lun->bdev.pr_state_path, sizeof(lun->bdev.pr_state_path), "%s.pr", idname) >=
		    (int)sizeof(lun->bdev.pr_state_path))
		lun->bdev.pr_state_path[0] = '\0';

	lun->ring = file_ring_get(loop, err, errlen);
	if (!lun->ring)
		goto fail;
	ret = spt_bdev_init(&lun->bdev);
	if (ret < 0) {
		file_seterr(err, errlen, "%s: spt_bdev_init: %s", cfg->path, strerror(-ret));
		goto fail;
	}

	out->lun = lun_no;
	out->ops = &file_provider_ops;
	out->ctx = lun;
	out->status = file_status;
	out->resize = file_resize;
	ret = snprintf(out->desc, sizeof(out->desc), "%s:%s (%" PRIu64 " x %u)%s",
		       lun->is_blockdev ? "blockdev" : "file", cfg->path, lun->bdev.num_blocks,
		       lun->bdev.block_size, cfg->read_only ? " ro" : "");
	if (ret >= (int)sizeof(out->desc))
		memcpy(out->desc + sizeof(out->desc) - 4, "...", 4);	/* for logs only */
	log_info("file %s: LUN %" PRIu64 " %s, serial %s%s", cfg->path, lun_no, out->desc,
		 lun->bdev.serial, lun->bdev.thin ? ", thin" : "");
	return 0;
fail:
	log_err("file LUN %" PRIu64 ": %s", lun_no, err && errlen ? err : "open failed");
	if (created && unlink(cfg->path) < 0)
		log_warn("file %s: removing the file we created: %s", cfg->path, strerror(errno));
	file_lun_free(lun);
	return -1;
}
