/*
 * spt dispatch: the one place where the iSCSI engine meets providers.
 * A target's LUN map routes each SCSI request, TMF and session event to the
 * provider of the LUN; REPORT LUNS and requests for absent LUNs are answered
 * here because no single provider knows the whole map.
 */
#ifndef SPT_DISPATCH_H
#define SPT_DISPATCH_H

#include "spt/lun.h"

#define SPT_MAX_LUNS 256

struct spt_lun_map {
	struct spt_lun luns[SPT_MAX_LUNS];
	size_t count;
};

const struct spt_lun *spt_lun_find(const struct spt_lun_map *map, uint64_t lun);

/* Routes a request; always ends in spt_cmd_complete() (maybe later). */
void spt_dispatch_scsi(const struct spt_lun_map *map, struct spt_cmd *cmd);
void spt_dispatch_session_start(const struct spt_lun_map *map, const struct spt_session_start *ss);
void spt_dispatch_session_end(const struct spt_lun_map *map, uint64_t itnexus_handle);
/* Hands a TMF to the provider of tmf->w.lun; false if there is no such LUN
 * (the TMF is then not completed by anyone: the caller answers it). */
bool spt_dispatch_tmf(const struct spt_lun_map *map, struct spt_tmf *tmf);
/* A task whose earlier data sequences the provider accepted ended before
 * its final one reached it (connection lost, data sequence error, aborted
 * between sequences): the provider gets ABORT TASK for it, so it can drop
 * what it kept (the response is not used). */
void spt_dispatch_task_abandoned(const struct spt_lun_map *map, const struct spt_cmd *cmd);
/* Closes every provider LUN (flushes backing stores). */
void spt_lun_map_close(struct spt_lun_map *map);

#endif
