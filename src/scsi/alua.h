/*
 * Target port groups and asymmetric logical unit access (SPC-4 5.16) for
 * the block emulation. Internal to src/scsi/; the public part is the
 * "Target port groups and ALUA" block of include/spt/scsi.h.
 */
#ifndef SCSI_ALUA_H
#define SCSI_ALUA_H

#include <spt/scsi.h>

/* spt_bdev_init()/spt_bdev_fini(): a bdev joins the process's list, so a
 * state change reaches its I_T nexuses. 0 or -ENOMEM. */
int alua_lu_register(struct spt_bdev *bdev);
void alua_lu_unregister(struct spt_bdev *bdev);

/* The relative target port (= target port group, = TPGT) an I_T nexus came
 * through: from its SESSION_START, else bdev->relative_port, else 1. */
uint16_t alua_nexus_port(const struct spt_bdev *bdev, uint64_t itnexus_handle);

/*
 * SPC-4 5.16.2.4: if the command's target port group is in a state that
 * does not allow the command (standby, unavailable), sets CHECK CONDITION,
 * NOT READY, LOGICAL UNIT NOT ACCESSIBLE ... (04/0B, 04/0C) and returns
 * true; the caller completes the command. Lock-free while every group is
 * active.
 */
bool alua_check(struct spt_bdev *bdev, struct spt_cmd *cmd);

/* REPORT TARGET PORT GROUPS (SPC-4 6.36), MAINTENANCE IN service action 0Ah. */
void alua_report_target_port_groups(struct spt_bdev *bdev, struct spt_cmd *cmd);

#endif
