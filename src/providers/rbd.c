/*
 * The Ceph RBD provider (issue 8): one RBD image per LUN, served through the
 * scsi/ helpers with librbd's asynchronous API.
 *
 * librbd calls its completion callbacks on its own threads. They only queue
 * the finished spt_bdev_io (under a mutex) and poke an eventfd that the
 * LUN's event loop watches; the loop's callback takes the queue and runs
 * the next step or io->done. So the helpers, the engine and io->done only
 * ever run on the reactor thread, and the reactor never waits on the
 * cluster for I/O.
 *
 * Mapping of the operations:
 *  - READ / WRITE: rbd_aio_read / rbd_aio_write; WRITE with FUA is a write
 *    then an rbd_aio_flush (librbd's write-back cache, when enabled, holds
 *    acknowledged writes until a flush: FUA must not complete before it);
 *  - FLUSH: rbd_aio_flush (SYNCHRONIZE CACHE, and FUA's second step);
 *  - UNMAP and WRITE_ZEROES: rbd_aio_write_zeroes, which deallocates whole
 *    objects and writes zeros into partial ones, so unmapped blocks read as
 *    zeros (we report LBPRZ=1). rbd_aio_discard would skip partial objects
 *    (rbd_skip_partial_discard) and leave old data there.
 */
#include "providers/rbd.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <rados/librados.h>
#include <rbd/librbd.h>
#include <spt/scsi.h>

#include "util/log.h"

#define RBD_BLOCK_SIZE 512u
#define RBD_FSID_MAX 64			/* a UUID in text, NUL included, with room */
#define RBD_IMAGE_ID_MAX 64		/* RBD image ids are short hex strings */
#define RBD_DRAIN_LOG_INTERVAL_MS 10000u

enum rbd_step {
	RBD_STEP_IO = 0,	/* the operation itself */
	RBD_STEP_FUA_FLUSH = 1,	/* the flush that makes a FUA write durable */
};

struct rbd_lun {
	struct spt_bdev bdev;
	struct ev_loop *loop;
	struct ev_handler evh;		/* the completion eventfd */
	rados_t cluster;
	rados_ioctx_t ioctx;
	rbd_image_t image;
	bool watching;
	uint64_t watch_handle;
	atomic_bool header_changed;	/* set by librbd's update watcher: check the size */
	unsigned inflight;		/* operations accepted and not yet done (loop thread) */
	uint64_t size;			/* bytes served: num_blocks * block_size */

	pthread_mutex_t lock;		/* guards the queue below and the eventfd write */
	struct spt_bdev_io *done_head;	/* finished by librbd, not yet handled on the loop */
	struct spt_bdev_io *done_tail;

	struct rbd_lun_config cfg;
};

static void rbd_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void rbd_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Parsing                                                              */
/* ------------------------------------------------------------------ */

static int rbd_copy_field(char *dst, size_t cap, const char *s, size_t n)
{
	if (n == 0 || n >= cap)
		return -1;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

int rbd_lun_parse(const char *spec, struct rbd_lun_config *cfg, char *err, size_t errlen)
{
	const char *p = spec, *slash, *end;

	memset(cfg, 0, sizeof(*cfg));
	end = strchr(p, ',');
	if (!end)
		end = p + strlen(p);
	slash = memchr(p, '/', (size_t)(end - p));
	if (!slash || rbd_copy_field(cfg->pool, sizeof(cfg->pool), p, (size_t)(slash - p)) < 0 ||
	    rbd_copy_field(cfg->image, sizeof(cfg->image), slash + 1, (size_t)(end - slash - 1)) < 0 ||
	    memchr(slash + 1, '/', (size_t)(end - slash - 1)) || memchr(p, '@', (size_t)(end - p))) {
		rbd_seterr(err, errlen, "rbd:%s: expected rbd:POOL/IMAGE[,conf=FILE][,id=CLIENT] "
			   "(names of 1 to %d bytes, no snapshot)", spec, RBD_NAME_MAX - 1);
		return -1;
	}
	while (*end == ',') {
		const char *opt = end + 1;
		size_t n;

		end = strchr(opt, ',');
		if (!end)
			end = opt + strlen(opt);
		n = (size_t)(end - opt);
		if (n > 5 && !strncmp(opt, "conf=", 5)) {
			if (rbd_copy_field(cfg->conf, sizeof(cfg->conf), opt + 5, n - 5) < 0) {
				rbd_seterr(err, errlen, "rbd:%s: conf= needs a path of at most %d bytes", spec,
					   RBD_CONF_PATH_MAX - 1);
				return -1;
			}
		} else if (n > 3 && !strncmp(opt, "id=", 3)) {
			if (rbd_copy_field(cfg->id, sizeof(cfg->id), opt + 3, n - 3) < 0) {
				rbd_seterr(err, errlen, "rbd:%s: id= needs a client name of at most %d bytes",
					   spec, RBD_NAME_MAX - 1);
				return -1;
			}
		} else {
			rbd_seterr(err, errlen, "rbd:%s: unknown option '%.*s' (conf=FILE, id=CLIENT)", spec,
				   (int)n, opt);
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Completions: librbd's threads -> the loop                            */
/* ------------------------------------------------------------------ */

/* On a librbd thread. The eventfd is written under the lock: once the loop
 * has seen inflight reach 0 and taken the lock, no callback touches the
 * LUN any more, so close may free it. */
static void rbd_aio_done(rbd_completion_t c, void *arg)
{
	struct spt_bdev_io *io = arg;
	struct rbd_lun *lun = io->bdev->ctx;
	ssize_t ret = rbd_aio_get_return_value(c);
	uint64_t one = 1;

	rbd_aio_release(c);
	/* backend_progress carries the errno to the loop (0: success) */
	if (ret < 0)
		io->backend_progress = (uint64_t)-ret;
	else if (io->op == SPT_BDEV_READ && io->backend_state == RBD_STEP_IO && (uint64_t)ret != io->length)
		io->backend_progress = EIO;	/* librbd zero-fills holes: short means broken */
	else
		io->backend_progress = 0;
	io->backend_next = NULL;
	pthread_mutex_lock(&lun->lock);
	if (lun->done_tail)
		lun->done_tail->backend_next = io;
	else
		lun->done_head = io;
	lun->done_tail = io;
	if (write(lun->evh.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_err("rbd %s/%s: writing the completion eventfd: %s", lun->cfg.pool, lun->cfg.image,
			strerror(errno));
	pthread_mutex_unlock(&lun->lock);
}

/* On a librbd thread: the image header changed (a resize, a feature ...). */
static void rbd_header_update(void *arg)
{
	struct rbd_lun *lun = arg;
	uint64_t one = 1;

	atomic_store(&lun->header_changed, true);
	pthread_mutex_lock(&lun->lock);
	if (write(lun->evh.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_err("rbd %s/%s: writing the completion eventfd: %s", lun->cfg.pool, lun->cfg.image,
			strerror(errno));
	pthread_mutex_unlock(&lun->lock);
}

/* Starts the current step of io. 0, or -errno if librbd refused it. */
static int rbd_io_start(struct rbd_lun *lun, struct spt_bdev_io *io)
{
	rbd_completion_t c;
	int rc;

	rc = rbd_aio_create_completion(io, rbd_aio_done, &c);
	if (rc < 0)
		return rc;
	if (io->backend_state == RBD_STEP_FUA_FLUSH) {
		rc = rbd_aio_flush(lun->image, c);
		goto out;
	}
	switch (io->op) {
	case SPT_BDEV_READ:
		rc = rbd_aio_read(lun->image, io->offset, io->length, (char *)io->buf, c);
		break;
	case SPT_BDEV_WRITE:
		rc = rbd_aio_write(lun->image, io->offset, io->length, (const char *)io->buf, c);
		break;
	case SPT_BDEV_FLUSH:
		rc = rbd_aio_flush(lun->image, c);
		break;
	case SPT_BDEV_UNMAP:
	case SPT_BDEV_WRITE_ZEROES:
		rc = rbd_aio_write_zeroes(lun->image, io->offset, io->length, c, 0, 0);
		break;
	default:
		rc = -EINVAL;
		break;
	}
out:
	if (rc < 0)
		rbd_aio_release(c);
	return rc;
}

static void rbd_io_finish(struct rbd_lun *lun, struct spt_bdev_io *io, int result)
{
	lun->inflight--;
	io->done(io, result);
}

/* On the loop: a step of io finished with `result`. */
static void rbd_io_complete(struct rbd_lun *lun, struct spt_bdev_io *io, int result)
{
	if (result == 0 && io->op == SPT_BDEV_WRITE && (io->flags & SPT_BDEV_FUA) &&
	    io->backend_state == RBD_STEP_IO) {
		io->backend_state = RBD_STEP_FUA_FLUSH;
		result = rbd_io_start(lun, io);
		if (result == 0)
			return;
	}
	if (result < 0)
		log_debug("rbd %s/%s: op %u at %" PRIu64 "+%" PRIu64 ": %s", lun->cfg.pool,
			  lun->cfg.image, io->op, io->offset, io->length, strerror(-result));
	/* the cluster did not answer in time (rados_osd_op_timeout) or the
	 * client lost it: the helpers answer -EAGAIN with BUSY, which
	 * initiators retry, rather than a HARDWARE ERROR that fails the I/O */
	if (result == -ETIMEDOUT || result == -ENOTCONN || result == -ESHUTDOWN)
		result = -EAGAIN;
	rbd_io_finish(lun, io, result);
}

static void rbd_check_size(struct rbd_lun *lun)
{
	uint64_t bytes;
	int rc;

	/* librbd refreshes the header it was told changed: one small read */
	rc = rbd_get_size(lun->image, &bytes);
	if (rc < 0) {
		log_warn("rbd %s/%s: size after a header change: %s", lun->cfg.pool, lun->cfg.image,
			 strerror(-rc));
		return;
	}
	bytes -= bytes % lun->bdev.block_size;
	if (bytes == lun->size || bytes == 0)
		return;
	log_info("rbd %s/%s: image resized from %" PRIu64 " to %" PRIu64 " bytes", lun->cfg.pool,
		 lun->cfg.image, lun->size, bytes);
	lun->size = bytes;
	spt_bdev_set_capacity(&lun->bdev, bytes / lun->bdev.block_size);
}

/* On the loop: handles everything librbd finished so far. */
static void rbd_reap(struct rbd_lun *lun)
{
	struct spt_bdev_io *io;
	uint64_t count;

	pthread_mutex_lock(&lun->lock);
	/* the counter only says "something finished": drain it, take the queue */
	if (read(lun->evh.fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_err("rbd %s/%s: reading the completion eventfd: %s", lun->cfg.pool, lun->cfg.image,
			strerror(errno));
	io = lun->done_head;
	lun->done_head = lun->done_tail = NULL;
	pthread_mutex_unlock(&lun->lock);

	if (atomic_exchange(&lun->header_changed, false))
		rbd_check_size(lun);
	while (io) {
		struct spt_bdev_io *next = io->backend_next;

		rbd_io_complete(lun, io, -(int)io->backend_progress);
		io = next;
	}
}

static void rbd_event(struct ev_handler *h, uint32_t events)
{
	rbd_reap(h->arg);
}

/* ------------------------------------------------------------------ */
/* struct spt_bdev_ops                                                  */
/* ------------------------------------------------------------------ */

static void rbd_bdev_submit(struct spt_bdev *bdev, struct spt_bdev_io *io)
{
	struct rbd_lun *lun = bdev->ctx;
	int result = 0;

	io->backend_progress = 0;
	io->backend_state = RBD_STEP_IO;
	io->backend_next = NULL;
	lun->inflight++;

	if (io->op > SPT_BDEV_WRITE_ZEROES || ((io->op == SPT_BDEV_READ || io->op == SPT_BDEV_WRITE) &&
					       io->length > 0 && !io->buf)) {
		result = -EINVAL;
		goto out;
	}
	/* the helpers check the LBA range first (SBC-3 LBA OUT OF RANGE); this
	 * keeps a bug there from reaching past the image, and a size_t length
	 * (librbd's) from being truncated */
	if (io->op != SPT_BDEV_FLUSH &&
	    (io->offset > lun->size || io->length > lun->size - io->offset || io->length > SIZE_MAX)) {
		result = -EINVAL;
		goto out;
	}
	if (io->op != SPT_BDEV_FLUSH && io->length == 0)
		goto out;
	result = rbd_io_start(lun, io);
	if (result == 0)
		return;
out:
	rbd_io_finish(lun, io, result);
}

static const struct spt_bdev_ops rbd_bdev_ops = {
	.submit = rbd_bdev_submit,
};

/* ------------------------------------------------------------------ */
/* struct spt_provider_ops                                              */
/* ------------------------------------------------------------------ */

static void rbd_session_start(void *ctx, const struct spt_session_start *ss)
{
	spt_bdev_session_start(&((struct rbd_lun *)ctx)->bdev, ss);
}

static void rbd_session_end(void *ctx, const struct spt_session_end *se)
{
	spt_bdev_session_end(&((struct rbd_lun *)ctx)->bdev, se);
}

static void rbd_tmf(void *ctx, struct spt_tmf *tmf)
{
	spt_bdev_tmf(&((struct rbd_lun *)ctx)->bdev, tmf);
}

static void rbd_scsi(void *ctx, struct spt_cmd *cmd)
{
	spt_bdev_execute(&((struct rbd_lun *)ctx)->bdev, cmd);
}

/* Waits, on the loop's thread, until every accepted operation is done.
 * librbd answers each one within RBD_OSD_OP_TIMEOUT_S. */
static void rbd_drain(struct rbd_lun *lun)
{
	uint64_t start = ev_now_ms(), logged = start;

	while (lun->inflight > 0) {
		struct pollfd pfd = { .fd = lun->evh.fd, .events = POLLIN };

		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR) {
			log_err("rbd %s/%s: waiting for I/O: %s", lun->cfg.pool, lun->cfg.image,
				strerror(errno));
			break;
		}
		rbd_reap(lun);
		if (lun->inflight > 0 && ev_now_ms() - logged >= RBD_DRAIN_LOG_INTERVAL_MS) {
			logged = ev_now_ms();
			log_warn("rbd %s/%s: waiting %" PRIu64 " s for %u operations", lun->cfg.pool,
				 lun->cfg.image, (logged - start) / 1000, lun->inflight);
		}
	}
}

/* Releases what rbd_lun_connect set up; the LUN has no I/O in flight. */
static void rbd_lun_free(struct rbd_lun *lun)
{
	if (lun->watching) {
		int rc = rbd_update_unwatch(lun->image, lun->watch_handle);

		if (rc < 0)
			log_warn("rbd %s/%s: update_unwatch: %s", lun->cfg.pool, lun->cfg.image,
				 strerror(-rc));
	}
	if (lun->image) {
		int rc = rbd_close(lun->image);

		if (rc < 0)
			log_err("rbd %s/%s: close: %s", lun->cfg.pool, lun->cfg.image, strerror(-rc));
	}
	if (lun->ioctx)
		rados_ioctx_destroy(lun->ioctx);
	if (lun->cluster)
		rados_shutdown(lun->cluster);
	if (lun->evh.fd >= 0) {
		if (lun->loop)
			ev_del(lun->loop, &lun->evh);
		close(lun->evh.fd);
	}
	/* a librbd thread that queued a completion or a header event has left
	 * the lock by now: take it once before the mutex goes */
	pthread_mutex_lock(&lun->lock);
	pthread_mutex_unlock(&lun->lock);
	pthread_mutex_destroy(&lun->lock);
	free(lun);
}

static void rbd_close_lun(void *ctx)
{
	struct rbd_lun *lun = ctx;
	int rc;

	rbd_drain(lun);
	/* librbd's write-back cache may hold acknowledged writes */
	rc = rbd_flush(lun->image);
	if (rc < 0)
		log_err("rbd %s/%s: flush at close: %s", lun->cfg.pool, lun->cfg.image, strerror(-rc));
	spt_bdev_fini(&lun->bdev);
	log_info("rbd %s/%s: closed", lun->cfg.pool, lun->cfg.image);
	rbd_lun_free(lun);
}

static void rbd_status(void *ctx, struct spt_lun_status *st)
{
	const struct rbd_lun *lun = ctx;

	/* the field holds both names at their longest (SPT_LUN_DESC_MAX) */
	snprintf(st->backend, sizeof(st->backend), "rbd:%.120s/%.120s", lun->cfg.pool, lun->cfg.image);
	st->state = "online";
	st->size_bytes = lun->size;
	st->block_size = lun->bdev.block_size;
	st->read_only = lun->bdev.read_only;
}

static const struct spt_provider_ops rbd_provider_ops = {
	.name = "rbd",
	.session_start = rbd_session_start,
	.session_end = rbd_session_end,
	.tmf = rbd_tmf,
	.scsi = rbd_scsi,
	.close = rbd_close_lun,
};

/* ------------------------------------------------------------------ */
/* Opening                                                              */
/* ------------------------------------------------------------------ */

static int rbd_conf_set(struct rbd_lun *lun, const char *key, const char *value, char *err,
			size_t errlen)
{
	int rc = rados_conf_set(lun->cluster, key, value);

	if (rc < 0)
		rbd_seterr(err, errlen, "setting %s=%s: %s", key, value, strerror(-rc));
	return rc;
}

/* Connects and opens the image. 0, or -1 with err. */
static int rbd_lun_connect(struct rbd_lun *lun, char *err, size_t errlen)
{
	const struct rbd_lun_config *cfg = &lun->cfg;
	char t_connect[16], t_op[16], buf[16];
	int rc;

	rc = rados_create(&lun->cluster, cfg->id[0] ? cfg->id : NULL);
	if (rc < 0) {
		lun->cluster = NULL;
		rbd_seterr(err, errlen, "rados_create(client.%s): %s", cfg->id[0] ? cfg->id : "admin",
			   strerror(-rc));
		return -1;
	}
	rc = rados_conf_read_file(lun->cluster, cfg->conf[0] ? cfg->conf : NULL);
	if (rc < 0) {
		rbd_seterr(err, errlen, "reading Ceph configuration %s: %s",
			   cfg->conf[0] ? cfg->conf : "(default search path)", strerror(-rc));
		return -1;
	}
	snprintf(t_connect, sizeof(t_connect), "%d", RBD_CONNECT_TIMEOUT_S);
	snprintf(t_op, sizeof(t_op), "%d", RBD_OSD_OP_TIMEOUT_S);
	if (rbd_conf_set(lun, "client_mount_timeout", t_connect, err, errlen) < 0 ||
	    rbd_conf_set(lun, "rados_mon_op_timeout", t_op, err, errlen) < 0 ||
	    rbd_conf_set(lun, "rados_osd_op_timeout", t_op, err, errlen) < 0)
		return -1;
	rc = rados_connect(lun->cluster);
	if (rc < 0) {
		rbd_seterr(err, errlen, "cannot connect to the Ceph cluster (%s, client.%s) within %d s: %s",
			   cfg->conf[0] ? cfg->conf : "default configuration",
			   cfg->id[0] ? cfg->id : "admin", RBD_CONNECT_TIMEOUT_S, strerror(-rc));
		return -1;
	}
	rc = rados_ioctx_create(lun->cluster, cfg->pool, &lun->ioctx);
	if (rc < 0) {
		lun->ioctx = NULL;
		rbd_seterr(err, errlen, "pool %s: %s", cfg->pool, strerror(-rc));
		return -1;
	}
	rc = rbd_open(lun->ioctx, cfg->image, &lun->image, NULL);
	if (rc < 0) {
		lun->image = NULL;
		rbd_seterr(err, errlen, "image %s/%s: %s", cfg->pool, cfg->image, strerror(-rc));
		return -1;
	}
	/* WCE as librbd behaves: with its cache on, a write completes before it
	 * is on the OSDs, and only a flush makes it durable */
	lun->bdev.write_cache = rados_conf_get(lun->cluster, "rbd_cache", buf, sizeof(buf)) == 0 &&
				!strcmp(buf, "true");
	return 0;
}

/* VPD 0x80 / 0x83 from the cluster, the pool and the image, never the host:
 * every gateway exporting the image shows the same designators. */
static int rbd_lun_identity(struct rbd_lun *lun, char *err, size_t errlen)
{
	char fsid[RBD_FSID_MAX], id[RBD_IMAGE_ID_MAX], name[RBD_FSID_MAX + RBD_IMAGE_ID_MAX + 64];
	int rc;

	rc = rados_cluster_fsid(lun->cluster, fsid, sizeof(fsid));
	if (rc < 0) {
		rbd_seterr(err, errlen, "cluster fsid: %s", strerror(-rc));
		return -1;
	}
	rc = rbd_get_id(lun->image, id, sizeof(id));
	if (rc < 0) {
		rbd_seterr(err, errlen, "image %s/%s: id: %s (format 1 images are not supported)",
			   lun->cfg.pool, lun->cfg.image, strerror(-rc));
		return -1;
	}
	snprintf(name, sizeof(name), "rbd:%s:%" PRId64 ":%s", fsid, rados_ioctx_get_id(lun->ioctx), id);
	if (spt_bdev_identity_from_name(&lun->bdev, name) < 0) {
		rbd_seterr(err, errlen, "SHA-256 of the name failed");
		return -1;
	}
	return 0;
}

int rbd_lun_open(struct ev_loop *loop, const struct rbd_lun_config *cfg, uint64_t lun_no,
		 const char *target_name, struct spt_lun *out, char *err, size_t errlen)
{
	struct rbd_lun *lun = calloc(1, sizeof(*lun));
	sigset_t all, old;
	uint64_t bytes;
	int rc;

	if (!lun) {
		rbd_seterr(err, errlen, "out of memory");
		return -1;
	}
	/* librados starts its threads here; they inherit our mask, and must not
	 * take SIGTERM / SIGHUP meant for sptd's signalfd (at startup the daemon
	 * blocks those only after its LUNs are open) */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	lun->cfg = *cfg;
	lun->evh.fd = -1;
	pthread_mutex_init(&lun->lock, NULL);
	atomic_init(&lun->header_changed, false);
	lun->evh.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (lun->evh.fd < 0) {
		rbd_seterr(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	lun->evh.cb = rbd_event;
	lun->evh.arg = lun;
	if (rbd_lun_connect(lun, err, errlen) < 0)
		goto fail;
	rc = rbd_get_size(lun->image, &bytes);
	if (rc < 0) {
		rbd_seterr(err, errlen, "image %s/%s: size: %s", cfg->pool, cfg->image, strerror(-rc));
		goto fail;
	}
	if (bytes < RBD_BLOCK_SIZE) {
		rbd_seterr(err, errlen, "image %s/%s: %" PRIu64 " bytes is less than one %u-byte block",
			   cfg->pool, cfg->image, bytes, RBD_BLOCK_SIZE);
		goto fail;
	}
	lun->size = bytes - bytes % RBD_BLOCK_SIZE;
	lun->bdev.ops = &rbd_bdev_ops;
	lun->bdev.ctx = lun;
	lun->bdev.block_size = RBD_BLOCK_SIZE;
	lun->bdev.num_blocks = lun->size / RBD_BLOCK_SIZE;
	lun->bdev.thin = true;
	lun->bdev.max_transfer_bytes = RBD_MAX_TRANSFER;
	lun->bdev.relative_port = 1;
	snprintf(lun->bdev.vendor, sizeof(lun->bdev.vendor), "SPT");
	snprintf(lun->bdev.product, sizeof(lun->bdev.product), "spt rbd");
	snprintf(lun->bdev.revision, sizeof(lun->bdev.revision), "0001");
	snprintf(lun->bdev.target_name, sizeof(lun->bdev.target_name), "%s",
		 target_name ? target_name : "");
	if (rbd_lun_identity(lun, err, errlen) < 0)
		goto fail;
	rc = ev_add(loop, &lun->evh, EPOLLIN);
	if (rc < 0) {
		rbd_seterr(err, errlen, "ev_add: %s", strerror(-rc));
		goto fail;
	}
	lun->loop = loop;
	/* an `rbd resize` anywhere reaches initiators as a capacity change */
	rc = rbd_update_watch(lun->image, &lun->watch_handle, rbd_header_update, lun);
	if (rc < 0) {
		rbd_seterr(err, errlen, "image %s/%s: update_watch: %s", cfg->pool, cfg->image,
			   strerror(-rc));
		goto fail;
	}
	lun->watching = true;
	rc = spt_bdev_init(&lun->bdev);
	if (rc < 0) {
		rbd_seterr(err, errlen, "spt_bdev_init: %s", strerror(-rc));
		goto fail;
	}
	memset(out, 0, sizeof(*out));
	out->lun = lun_no;
	out->ops = &rbd_provider_ops;
	out->ctx = lun;
	out->status = rbd_status;
	snprintf(out->desc, sizeof(out->desc), "rbd:%.64s/%.64s (%" PRIu64 " x %u%s)", cfg->pool,
		 cfg->image, lun->bdev.num_blocks, RBD_BLOCK_SIZE,
		 lun->bdev.write_cache ? ", librbd cache" : "");
	log_info("rbd %s/%s: %" PRIu64 " bytes, serial %s", cfg->pool, cfg->image, lun->size,
		 lun->bdev.serial);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
fail:
	rbd_lun_free(lun);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -1;
}
