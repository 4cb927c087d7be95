/*
 * libspt: the provider side of sptd's --provider-socket.
 *
 * A provider process serves a LUN with the same struct spt_provider_ops an
 * in-process provider implements; this library speaks the wire protocol of
 * include/spt/spt.h (PROVIDER_REGISTER, SESSION_START/END, TMF, SCSI
 * request/completion, shared-memory data) for it. A block provider usually
 * hands every request to spt_bdev_execute() (include/spt/scsi.h) and only
 * implements read, write, flush and unmap.
 *
 * Threading: one connection is driven by one thread. The ops are called from
 * spt_provider_dispatch() / spt_provider_run(); spt_cmd_complete() and
 * spt_tmf_complete() must be called on that thread too (during the op or
 * later, e.g. from the same poll loop).
 */
#ifndef SPT_PROVIDER_H
#define SPT_PROVIDER_H

#include <spt/spt.h>

struct spt_provider;

/* What sptd said when the provider registered. */
struct spt_provider_info {
	uint64_t lun;
	uint64_t shm_size;
	uint32_t max_transfer_bytes;
	uint32_t command_timeout;	/* seconds */
	uint16_t relative_port;
	uint16_t tpgt;
	char target_name[224];
};

/*
 * Connects to sptd's provider socket and registers as `name` (blocking).
 * ops->scsi and ops->tmf are required; session_start, session_end and close
 * may be NULL. lun_ctx is passed to every op. On failure returns -errno
 * (-ECONNREFUSED, -ENOENT: no daemon; -EEXIST: name in use; -ENODEV: no
 * LUN has this name; -EPROTO: the daemon answered wrongly) with err filled.
 */
int spt_provider_connect(const char *socket_path, const char *name,
			 const struct spt_provider_ops *ops, void *lun_ctx,
			 struct spt_provider **out, char *err, size_t errlen);

const struct spt_provider_info *spt_provider_get_info(const struct spt_provider *p);

/* The socket, to poll for POLLIN in the provider's own loop. */
int spt_provider_fd(const struct spt_provider *p);

/*
 * Reads what has arrived (without blocking) and calls the ops; sends what
 * completions produced. Returns 0, or -errno once the connection is over
 * (-EPIPE: sptd closed it). After an error only spt_provider_close() is
 * allowed.
 */
int spt_provider_dispatch(struct spt_provider *p);

/* Polls and dispatches until the connection ends; returns its -errno. */
int spt_provider_run(struct spt_provider *p);

/*
 * Asks sptd to stop a session (SESSION_END): Async logout request, grace_s
 * seconds (0: sptd's default), then closed. The answer comes later and is
 * logged to stderr if it is an error.
 */
int spt_provider_stop_session(struct spt_provider *p, uint64_t itnexus_handle, uint32_t grace_s);

/* Closes the connection and unmaps the shared memory; commands still held
 * by the provider are forgotten (sptd fails them). Calls ops->close. */
void spt_provider_close(struct spt_provider *p);

#endif
