/*
 * The control socket of sptd (--control PATH): a Unix stream socket, mode
 * 0600, served on the event loop. Peers must be root or the daemon's own
 * user (SO_PEERCRED). Each client sends pass-through frames (struct
 * spt_io_header + payload, include/spt/spt.h) and gets one response frame
 * per request: SESSION_LIST, SESSION_END, TARGET_LIST, LUN_LIST and STATS.
 */
#ifndef CTL_CTL_H
#define CTL_CTL_H

#include <stddef.h>

struct ev_loop;
struct iscsi_server;
struct ctl_server;

#define CTL_MAX_CLIENTS 16	/* control clients connected at once */
#define CTL_IDLE_TIMEOUT_S 30	/* a client that neither completes a request nor reads
				 * its response for this long is disconnected */
#define CTL_LISTEN_BACKLOG 16
#define CTL_READ_BUDGET 65536	/* bytes read from one client per readiness event */

/*
 * Opens PATH (replacing a stale socket left by a dead daemon, refusing a
 * live one or anything that is not a socket) and serves it on loop (the
 * loop of srv).
 * NULL with err on failure.
 */
struct ctl_server *ctl_server_open(struct ev_loop *loop, struct iscsi_server *srv, const char *path,
				   char *err, size_t errlen);
/* CONFIG_SAVE: writes the running configuration to path ("" : the daemon's
 * --config file); 0, or -1 with a one-line reason in err. */
typedef int (*ctl_config_save_fn)(void *arg, const char *path, char *err, size_t errlen);
void ctl_server_set_config_save(struct ctl_server *cs, ctl_config_save_fn fn, void *arg);
/* CONFIG_CHANGE: fields in host order; 0, or -1 with the reason in err. */
struct spt_ctl_config_change;
typedef int (*ctl_config_change_fn)(void *arg, const struct spt_ctl_config_change *ch, char *err,
				    size_t errlen);
void ctl_server_set_config_change(struct ctl_server *cs, ctl_config_change_fn fn, void *arg);

/* Answers requests still waiting with SPT_CTL_RC_SHUTTING_DOWN (best
 * effort), disconnects every client and removes the socket. Call it once
 * the loop has stopped, before the iSCSI server and the loop are freed. */
void ctl_server_close(struct ctl_server *cs);

#endif
