#include "spt/dispatch.h"

#include <stdlib.h>

#include <spt/scsi.h>

#define SCSI_OP_REPORT_LUNS 0xa0

const struct spt_lun *spt_lun_find(const struct spt_lun_map *map, uint64_t lun)
{
	for (size_t i = 0; i < map->count; i++)
		if (map->luns[i].lun == lun)
			return &map->luns[i];
	return NULL;
}

void spt_dispatch_scsi(const struct spt_lun_map *map, struct spt_cmd *cmd)
{
	/* SPC-4 6.33: REPORT LUNS is answered for the whole target, whichever
	 * LUN it is addressed to */
	if (cmd->req.cdb[0] == SCSI_OP_REPORT_LUNS) {
		uint64_t luns[SPT_MAX_LUNS];

		for (size_t i = 0; i < map->count; i++)
			luns[i] = map->luns[i].lun;
		spt_scsi_report_luns(cmd, luns, map->count);
		spt_cmd_complete(cmd);
		return;
	}
	const struct spt_lun *l = spt_lun_find(map, cmd->req.lun);

	if (!l) {
		spt_scsi_no_such_lun(cmd);
		spt_cmd_complete(cmd);
		return;
	}
	l->ops->scsi(l->ctx, cmd);
}

void spt_dispatch_session_start(const struct spt_lun_map *map, const struct spt_session_start *ss)
{
	for (size_t i = 0; i < map->count; i++)
		if (map->luns[i].ops->session_start)
			map->luns[i].ops->session_start(map->luns[i].ctx, ss);
}

void spt_dispatch_session_end(const struct spt_lun_map *map, uint64_t itnexus_handle)
{
	struct spt_session_end se = { .itnexus_handle = itnexus_handle };

	for (size_t i = 0; i < map->count; i++)
		if (map->luns[i].ops->session_end)
			map->luns[i].ops->session_end(map->luns[i].ctx, &se);
}

bool spt_dispatch_tmf(const struct spt_lun_map *map, struct spt_tmf *tmf)
{
	const struct spt_lun *l = spt_lun_find(map, tmf->w.lun);

	if (!l)
		return false;
	l->ops->tmf(l->ctx, tmf);
	return true;
}

static void spt_dispatch_free_tmf(struct spt_tmf *tmf)
{
	free(tmf);
}

void spt_dispatch_task_abandoned(const struct spt_lun_map *map, const struct spt_cmd *cmd)
{
	const struct spt_lun *l = spt_lun_find(map, cmd->req.lun);
	struct spt_tmf *tmf;

	if (!l)
		return;
	tmf = calloc(1, sizeof(*tmf));
	if (!tmf)
		return;	/* the provider keeps its state until the session ends */
	tmf->w.itnexus_handle = cmd->req.session_cookie;
	tmf->w.lun = cmd->req.lun;
	tmf->w.function = SPT_TMF_ABORT_TASK;
	tmf->w.response = SPT_TMF_RSP_COMPLETE;
	tmf->w.reference_task_cookie = cmd->req.task_cookie;
	tmf->done = spt_dispatch_free_tmf;
	l->ops->tmf(l->ctx, tmf);
}

void spt_lun_map_close(struct spt_lun_map *map)
{
	for (size_t i = 0; i < map->count; i++)
		if (map->luns[i].ops->close)
			map->luns[i].ops->close(map->luns[i].ctx);
	map->count = 0;
}
