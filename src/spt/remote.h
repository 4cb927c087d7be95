/*
 * The out-of-process transport: sptd's --provider-socket. External
 * providers register by name and serve the LUNs declared as
 * `--lun provider:NAME`; every SCSI request, TMF and session event of such a
 * LUN travels as the frames of include/spt/spt.h, its data through a memfd
 * shared with the provider. To the engine a remote LUN is a provider like
 * any other (struct spt_provider_ops); what a dead or stuck provider would
 * hold is completed here, so sessions and TMFs never wait on it.
 */
#ifndef SPT_REMOTE_H
#define SPT_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "spt/lun.h"

struct ev_loop;
struct spt_remote;

#define SPT_REMOTE_MAX_CONNS 64			/* provider connections at once */
#define SPT_REMOTE_REGISTER_TIMEOUT_S 5		/* to send PROVIDER_REGISTER after connecting */
#define SPT_REMOTE_DEFAULT_TIMEOUT_S 30		/* command timeout (--provider-timeout) */
#define SPT_REMOTE_DEFAULT_TMF_TIMEOUT_S 5	/* TMF / aborted-command wait (--provider-tmf-timeout) */
#define SPT_REMOTE_TIMEOUT_MAX_S 3600
#define SPT_REMOTE_DEFAULT_SHM (64ull << 20)	/* shared data area per connection (--provider-shm) */
#define SPT_REMOTE_SHM_MAX (4ull << 30)
#define SPT_REMOTE_OUT_MAX (16u << 20)		/* frames queued to a provider that does not read */
#define SPT_REMOTE_READ_BUDGET 65536		/* bytes read from one provider per readiness event */

struct spt_remote_config {
	const char *path;		/* the socket */
	uint32_t command_timeout_s;
	uint32_t tmf_timeout_s;
	uint64_t shm_size;		/* >= max_transfer_bytes */
	uint32_t max_transfer_bytes;	/* the engine's largest command buffer */
};

/* A provider asked to stop a session (SESSION_END): returns an
 * SPT_CTL_RC_* code (SUCCESS once the stop has begun). */
typedef uint32_t (*spt_remote_stop_fn)(void *arg, uint64_t itnexus_handle, uint32_t grace_s);

/* Listens on cfg->path (mode 0600). NULL with err. */
struct spt_remote *spt_remote_open(struct ev_loop *loop, const struct spt_remote_config *cfg,
				   char *err, size_t errlen);
void spt_remote_set_stop(struct spt_remote *r, spt_remote_stop_fn fn, void *arg);

/* sptd is stopping: registrations are refused (SHUTTING_DOWN) from now on;
 * connected providers keep serving until the sessions are gone. */
void spt_remote_shutdown(struct spt_remote *r);

/*
 * Declares LUN lun_no of target_name as served by the provider that
 * registers as name (one LUN per name); fills *out. Until a provider
 * registers, the LUN answers NOT READY. 0, or -1 with err.
 */
int spt_remote_lun_open(struct spt_remote *r, const char *name, uint64_t lun_no,
			const char *target_name, uint16_t tpgt, uint16_t relative_port,
			struct spt_lun *out, char *err, size_t errlen);

/* Disconnects every provider and removes the socket; call after the LUN
 * maps are closed, before the loop is freed. */
void spt_remote_close(struct spt_remote *r);

#endif
