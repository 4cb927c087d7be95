/*
 * The Ceph RBD provider: an RBD image served as a SCSI block device through
 * the scsi/ helpers, with librbd's asynchronous API (rbd_aio_*). librbd
 * completes on its own threads; the completions travel to the LUN's event
 * loop through a locked queue and an eventfd, so io->done always runs on
 * the loop's thread and no reactor ever waits on the cluster.
 */
#ifndef PROVIDERS_RBD_H
#define PROVIDERS_RBD_H

#include <stddef.h>
#include <stdint.h>

#include "spt/lun.h"
#include "util/evloop.h"

#define RBD_LUN_PREFIX "rbd:"
#define RBD_MAX_TRANSFER (8u * 1024 * 1024)
#define RBD_NAME_MAX 256		/* pool, image and client id, NUL included */
#define RBD_CONF_PATH_MAX 4096
/* rados_connect gives up after this; a LUN of an unreachable cluster is
 * refused at startup rather than hanging the daemon */
#define RBD_CONNECT_TIMEOUT_S 10
/* an OSD op unanswered this long fails (ETIMEDOUT, answered BUSY, which
 * initiators retry) instead of holding the initiator's command for ever;
 * below Linux's 30 s SCSI command timeout so the answer comes first */
#define RBD_OSD_OP_TIMEOUT_S 20

struct rbd_lun_config {
	char pool[RBD_NAME_MAX];
	char image[RBD_NAME_MAX];
	char conf[RBD_CONF_PATH_MAX];	/* empty: librados' default search */
	char id[RBD_NAME_MAX];		/* client name without "client."; empty: admin */
};

/*
 * Parses "POOL/IMAGE[,conf=FILE][,id=CLIENT]" (what follows "rbd:").
 * 0, or -1 with a readable reason in err.
 */
int rbd_lun_parse(const char *spec, struct rbd_lun_config *cfg, char *err, size_t errlen);

/*
 * Connects to the cluster (at most RBD_CONNECT_TIMEOUT_S), opens the image
 * and fills *out. The LUN's I/O completes on `loop`'s thread.
 * out->ops->close(out->ctx) waits for the in-flight I/O, flushes librbd's
 * cache, closes the image and disconnects; call it on the loop's thread (or
 * with the loop stopped). 0, or -1 with a readable reason in err.
 */
int rbd_lun_open(struct ev_loop *loop, const struct rbd_lun_config *cfg, uint64_t lun_no,
		 const char *target_name, struct spt_lun *out, char *err, size_t errlen);

#endif
