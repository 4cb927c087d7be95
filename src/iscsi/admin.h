/*
 * Session administration for the control plane: snapshots of the sessions
 * (struct spt_ctl_session), the targets (struct spt_ctl_target with their
 * portals and ACLs) and the LUNs (struct spt_ctl_lun), their statistics
 * (struct spt_ctl_stats_*), and stopping one
 * session by ITNexusHandle (SESSION_END sent to the target: Async logout
 * request, bounded grace, then every connection closed). Keeps callers
 * (src/ctl/) away from the engine's internals.
 */
#ifndef ISCSI_ADMIN_H
#define ISCSI_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <spt/spt.h>

struct iscsi_server;
struct iscsi_admin;

/* stops in progress at once (each waiting request is one) */
#define ISCSI_ADMIN_MAX_STOPS 4096
/* how often a stop in progress checks whether its session is gone */
#define ISCSI_ADMIN_POLL_MS 100

/* rc: SPT_CTL_RC_SUCCESS once the session is gone, SPT_CTL_RC_TIMEOUT if it
 * outlived the wait. Never called from inside iscsi_admin_session_stop. */
typedef void (*iscsi_admin_stop_done)(void *arg, uint64_t handle, uint32_t rc);

struct iscsi_admin *iscsi_admin_new(struct iscsi_server *srv);
/* Forgets every stop in progress without calling its done. */
void iscsi_admin_free(struct iscsi_admin *a);

/* The daemon's --logout-grace. */
uint32_t iscsi_admin_default_grace(const struct iscsi_admin *a);

/*
 * Up to max sessions with a handle greater than after, by ascending handle.
 * *total: sessions in the daemon; *more: some beyond the last one returned.
 */
size_t iscsi_admin_session_list(struct iscsi_admin *a, uint64_t after, struct spt_ctl_session *out,
				size_t max, uint32_t *total, bool *more);

/* One target as the control plane shows it. */
struct iscsi_admin_target {
	struct spt_ctl_target info;	/* host order; portal_count: iscsi_admin_portals() */
	/* info.initiator_count ACL names; the daemon's, valid until the
	 * loop runs again */
	const char *const *initiators;
};

/*
 * The portals every target is reached on (the daemon's --listen), as
 * given. Fills up to max of out (may be NULL with max 0) with strings
 * valid until the loop runs again; returns how many there are.
 */
size_t iscsi_admin_portals(struct iscsi_admin *a, const char **out, size_t max);

/* the most target portal groups iscsi_admin_alua_list returns (one per portal at most) */
#define ISCSI_ADMIN_ALUA_GROUPS_MAX 32
/* ALUA (issue 5): every target portal group with a portal, ascending by
 * tag, host order; returns how many (at most max). */
size_t iscsi_admin_alua_list(struct iscsi_admin *a, struct spt_ctl_alua_group *out, size_t max);
/* Sets a group's asymmetric access state (0..3). 0 or -1 with err. */
int iscsi_admin_alua_set(struct iscsi_admin *a, uint16_t tpgt, uint8_t state, char *err,
			 size_t errlen);

/*
 * Up to max targets whose name sorts (bytewise) after `after` ("": from the
 * first), by ascending name. *total: targets in the daemon; *more: some
 * beyond the last one returned.
 */
size_t iscsi_admin_target_list(struct iscsi_admin *a, const char *after,
			       struct iscsi_admin_target *out, size_t max, uint32_t *total,
			       bool *more);

/*
 * Up to max LUNs after (after_target, after_lun) by ascending target name,
 * then LUN number; after_target "" starts at the first. The state, backend
 * and geometry come from the LUN's provider (struct spt_lun_status); one
 * that tells nothing shows its description as backend and "online".
 */
size_t iscsi_admin_lun_list(struct iscsi_admin *a, const char *after_target, uint64_t after_lun,
			    struct spt_ctl_lun *out, size_t max, uint32_t *total, bool *more);

/*
 * SESSION_END for the session with this handle: asks its initiator to log
 * out within grace_s seconds (<= SPT_CTL_GRACE_MAX; 0 closes at once), then
 * closes whatever is left. done(arg, ...) (may be NULL) runs once the
 * session is gone or wait_s seconds have passed. Returns SPT_CTL_RC_SUCCESS
 * (stop under way), SPT_CTL_RC_NO_SUCH_SESSION, SPT_CTL_RC_BUSY or
 * SPT_CTL_RC_NO_MEMORY.
 */
uint32_t iscsi_admin_session_stop(struct iscsi_admin *a, uint64_t handle, uint32_t grace_s,
				  uint32_t wait_s, iscsi_admin_stop_done done, void *arg);

/* The requester behind arg went away: its done will not be called (the
 * stop itself goes on). */
void iscsi_admin_cancel(struct iscsi_admin *a, void *arg);

/*
 * Statistics (STATS, the metrics endpoint), host order, paged like the
 * lists above: targets by name (their counters the sums of their LUNs'),
 * LUNs by target name and number, sessions by handle with their first
 * SPT_CTL_CONNS_MAX connections.
 */
void iscsi_admin_stats_server(struct iscsi_admin *a, struct spt_ctl_stats_server *out);
size_t iscsi_admin_stats_targets(struct iscsi_admin *a, const char *after,
				 struct spt_ctl_stats_target *out, size_t max, uint32_t *total,
				 bool *more);
size_t iscsi_admin_stats_luns(struct iscsi_admin *a, const char *after_target, uint64_t after_lun,
			      struct spt_ctl_stats_lun *out, size_t max, uint32_t *total, bool *more);
size_t iscsi_admin_stats_sessions(struct iscsi_admin *a, uint64_t after_handle,
				  struct spt_ctl_stats_session *out, size_t max, uint32_t *total,
				  bool *more);

#endif
