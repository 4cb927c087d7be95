/* The iSCSI server as the daemon sees it: build, listen, run, stop. */
#ifndef ISCSI_SERVER_H
#define ISCSI_SERVER_H

#include "iscsi/iscsi.h"

struct iscsi_server *iscsi_server_new(struct ev_loop *loop);
void iscsi_server_free(struct iscsi_server *srv);
struct iscsi_target *iscsi_server_add_target(struct iscsi_server *srv, const char *name);
/* "ADDR:PORT", "[V6ADDR]:PORT". 0 or -1 with err. */
int iscsi_server_listen(struct iscsi_server *srv, const char *spec, char *err, size_t errlen);
/* Asks every session to log out, then closes what is left after the
 * grace time; calls done(arg) once no session remains. */
void iscsi_server_shutdown(struct iscsi_server *srv, void (*done)(void *), void *arg);
/* CHAP: which sessions must authenticate and with what (checked with
 * chap_config_check). 0 or -1 with err. */
int iscsi_server_set_chap(struct iscsi_server *srv, const struct chap_config *cfg, char *err,
			  size_t errlen);
/* ACL: adds an initiator name allowed to log in to t. 0 or -1 with err. */
int iscsi_target_allow(struct iscsi_target *t, const char *initiator, char *err, size_t errlen);

/* ---- runtime reconfiguration (SIGHUP, sptctl), on the loop's thread ---- */
struct iscsi_target *iscsi_server_find_target(const struct iscsi_server *srv, const char *name);
size_t iscsi_target_session_count(const struct iscsi_server *srv, const struct iscsi_target *t);
/* Replaces the ACL (empty: any initiator); sessions of initiators no longer
 * allowed are stopped (Async logout request, grace, close). */
int iscsi_target_set_allow(struct iscsi_server *srv, struct iscsi_target *t,
			   const char *const *names, size_t n, char *err, size_t errlen);
/* Adds a LUN (copied into the map): live sessions of the target get
 * SESSION_START for it and REPORTED LUNS DATA HAS CHANGED on their next
 * command. */
int iscsi_target_add_lun(struct iscsi_server *srv, struct iscsi_target *t, const struct spt_lun *l,
			 char *err, size_t errlen);
/* Closes and removes a LUN; refused while the target has sessions, unless
 * force (then only while commands are in flight); the sessions get
 * REPORTED LUNS DATA HAS CHANGED. */
int iscsi_target_remove_lun(struct iscsi_server *srv, struct iscsi_target *t, uint64_t lun,
			    bool force, char *err, size_t errlen);
/* Closes and frees a target; refused while it has sessions or logins. */
int iscsi_server_remove_target(struct iscsi_server *srv, struct iscsi_target *t, char *err,
			       size_t errlen);
/* Stops listening on a portal given as to iscsi_server_listen; -1 if none. */
int iscsi_server_unlisten(struct iscsi_server *srv, const char *spec);

#endif
