/*
 * Reservations of a block LU: SPC-4 persistent reservations (5.13,
 * PERSISTENT RESERVE IN 6.15, PERSISTENT RESERVE OUT 6.16) and the SPC-2
 * RESERVE/RELEASE commands (SPC-2 7.21/7.22, with SPC-4 5.13.3's
 * exceptions). Internal to src/scsi/; the state hangs off struct
 * spt_bdev_state (spc.c), which calls the life-cycle hooks below.
 *
 * Identities: a registration belongs to an I_T nexus named by its initiator
 * port ("<initiator name>,i,0x<ISID>") and target port ("<target name>,t,
 * 0x<TPGT>"), both taken from SESSION_START's ITNexus string, so a new
 * session of the same initiator port finds its registration again. The
 * SPC-2 reservation belongs to one session (ITNexusHandle) and ends with it.
 *
 * Locking: one mutex per LU, taken before the spc.c state lock (unit
 * attentions are queued while it is held), never after it.
 */
#ifndef SCSI_PR_H
#define SCSI_PR_H

#include <spt/scsi.h>

struct pr_state;

/*
 * Allocates the LU's reservation state. With bdev->pr_state_path set and the
 * file present, the APTPL state saved there is loaded. 0, -ENOMEM, -errno of
 * reading the file, or -EBADMSG for a file that is not a valid state (the
 * reason is printed on stderr: a daemon must not drop registrations a
 * cluster relies on without saying so).
 */
int pr_state_create(const struct spt_bdev *bdev, struct pr_state **out);
void pr_state_destroy(struct pr_state *pr);

/* SESSION_START / SESSION_END of an I_T nexus (spc.c calls these). */
void pr_session_start(struct spt_bdev *bdev, const struct spt_session_start *ss);
void pr_session_end(struct spt_bdev *bdev, uint64_t handle);
/* Logical unit reset, target warm or cold reset: SPC-2 reservations end;
 * persistent reservations survive (SPC-4 5.13.1). */
void pr_reset(struct spt_bdev *bdev);

/*
 * SPC-4 5.13.1 and its command table, SBC-3 4.17's, SPC-2 5.5.1: if the
 * command may not run on its I_T nexus because of a reservation, completes
 * nothing but sets status RESERVATION CONFLICT (no sense) and returns true.
 * Lock-free when the LU has neither registrations nor reservations.
 */
bool pr_conflict(struct spt_bdev *bdev, struct spt_cmd *cmd);

/* The commands; each fills cmd->cpl, the caller completes the command. */
void pr_persistent_reserve_in(struct spt_bdev *bdev, struct spt_cmd *cmd);
void pr_persistent_reserve_out(struct spt_bdev *bdev, struct spt_cmd *cmd);
void pr_reserve(struct spt_bdev *bdev, struct spt_cmd *cmd);	/* RESERVE(6), RESERVE(10) */
void pr_release(struct spt_bdev *bdev, struct spt_cmd *cmd);	/* RELEASE(6), RELEASE(10) */

#endif
