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

#endif
