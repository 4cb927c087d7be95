/*
 * Target port groups and asymmetric logical unit access (SPC-4 5.16).
 *
 * sptd's iSCSI target portal groups are the SCSI target ports: a portal
 * group with tag N is target port group N, whose one target port has
 * relative target port identifier N in every target (so the identifiers
 * need no table of their own, and 0, reserved by SPC-4 7.8.6.7, never
 * occurs). The access state of each group is set by the daemon for the
 * whole process (spt_scsi_set_port_groups): transitions are implicit
 * (TPGS = 01b), there is no SET TARGET PORT GROUPS.
 *
 * Locking: alua_lock guards the group table and the list of bdevs and is
 * taken before a bdev's own lock (spc.c), never after it. The per-command
 * check reads one atomic flag while every group is active.
 */
#include "scsi/alua.h"
#include "scsi/spc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Operation codes and service actions (SPC-4 Annex D). */
enum {
	ALUA_OP_REQUEST_SENSE = 0x03,
	ALUA_OP_INQUIRY = 0x12,
	ALUA_OP_MODE_SELECT_6 = 0x15,
	ALUA_OP_MODE_SENSE_6 = 0x1a,
	ALUA_OP_RECEIVE_DIAGNOSTIC = 0x1c,
	ALUA_OP_SEND_DIAGNOSTIC = 0x1d,
	ALUA_OP_WRITE_BUFFER = 0x3b,
	ALUA_OP_READ_BUFFER = 0x3c,
	ALUA_OP_LOG_SELECT = 0x4c,
	ALUA_OP_LOG_SENSE = 0x4d,
	ALUA_OP_MODE_SELECT_10 = 0x55,
	ALUA_OP_MODE_SENSE_10 = 0x5a,
	ALUA_OP_PR_IN = 0x5e,
	ALUA_OP_PR_OUT = 0x5f,
	ALUA_OP_REPORT_LUNS = 0xa0,
	ALUA_OP_MAINTENANCE_IN = 0xa3,
	ALUA_OP_MAINTENANCE_OUT = 0xa4,
};
#define ALUA_SA_MASK 0x1f
#define ALUA_SA_TARGET_PORT_GROUPS 0x0a	/* REPORT (IN) / SET (OUT) TARGET PORT GROUPS */

/* Sense codes (SPC-4 Annex D). */
#define ASC_LU_NOT_ACCESSIBLE 0x04
#define ASCQ_TARGET_PORT_STANDBY 0x0b
#define ASCQ_TARGET_PORT_UNAVAILABLE 0x0c
#define ASC_PARAMETERS_CHANGED 0x2a
#define ASCQ_ASYMMETRIC_ACCESS_CHANGED 0x06

/* REPORT TARGET PORT GROUPS parameter data (SPC-4 6.36.2). */
#define RTPG_FORMAT_SHIFT 5
#define RTPG_FORMAT_LENGTH 0x0		/* RETURN DATA LENGTH, then descriptors */
#define RTPG_FORMAT_EXTENDED 0x1	/* ... with format type and transition time */
#define RTPG_HEADER 4
#define RTPG_EXT_HEADER 8
#define RTPG_GROUP_DESC 8
#define RTPG_PORT_DESC 4
/* U_SUP, S_SUP, AN_SUP, AO_SUP: the four states a group can be put in */
#define RTPG_SUPPORTED_STATES 0x0f
#define RTPG_STATUS_NONE 0x00
#define RTPG_STATUS_IMPLICIT 0x02	/* altered by implicit asymmetric access behavior */
/* A transition takes effect at once; one second bounds it. */
#define RTPG_IMPLICIT_TRANSITION_S 1
#define RTPG_BUF_MAX (RTPG_EXT_HEADER + SPT_PORT_GROUPS_MAX * (RTPG_GROUP_DESC + RTPG_PORT_DESC))
#define ALUA_LUS_INITIAL 16

struct alua_group {
	uint16_t id;
	uint8_t state;
	bool changed;			/* its state has changed since the process started */
};

static pthread_mutex_t alua_lock = PTHREAD_MUTEX_INITIALIZER;
static struct alua_group alua_groups[SPT_PORT_GROUPS_MAX];
static size_t alua_ngroups;
static atomic_bool alua_restricted;	/* some group is in standby or unavailable */
static struct spt_bdev **alua_lus;	/* every bdev past spt_bdev_init() */
static size_t alua_nlus, alua_lus_cap;

static const char *const alua_state_names[] = {
	[SPT_ALUA_ACTIVE_OPTIMIZED] = "active-optimized",
	[SPT_ALUA_ACTIVE_NON_OPTIMIZED] = "active-non-optimized",
	[SPT_ALUA_STANDBY] = "standby",
	[SPT_ALUA_UNAVAILABLE] = "unavailable",
};

const char *spt_alua_state_name(uint8_t state)
{
	return state <= SPT_ALUA_UNAVAILABLE ? alua_state_names[state] : "unknown";
}

int spt_alua_state_parse(const char *name, uint8_t *state)
{
	for (uint8_t s = 0; s <= SPT_ALUA_UNAVAILABLE; s++) {
		if (strcmp(name, alua_state_names[s]) == 0) {
			*state = s;
			return 0;
		}
	}
	return -1;
}

int alua_lu_register(struct spt_bdev *bdev)
{
	int ret = 0;

	pthread_mutex_lock(&alua_lock);
	if (alua_nlus == alua_lus_cap) {
		size_t cap = alua_lus_cap ? alua_lus_cap * 2 : ALUA_LUS_INITIAL;
		struct spt_bdev **grown = realloc(alua_lus, cap * sizeof(*grown));

		if (!grown) {
			ret = -ENOMEM;
			goto out;
		}
		alua_lus = grown;
		alua_lus_cap = cap;
	}
	alua_lus[alua_nlus++] = bdev;
out:
	pthread_mutex_unlock(&alua_lock);
	return ret;
}

void alua_lu_unregister(struct spt_bdev *bdev)
{
	pthread_mutex_lock(&alua_lock);
	for (size_t i = 0; i < alua_nlus; i++) {
		if (alua_lus[i] == bdev) {
			alua_lus[i] = alua_lus[--alua_nlus];
			break;
		}
	}
	if (alua_nlus == 0) {
		/* the last one gone: nothing left to leak at exit */
		free(alua_lus);
		alua_lus = NULL;
		alua_lus_cap = 0;
	}
	pthread_mutex_unlock(&alua_lock);
}

/* Caller holds alua_lock. */
static const struct alua_group *alua_group_find(uint16_t id)
{
	for (size_t i = 0; i < alua_ngroups; i++)
		if (alua_groups[i].id == id)
			return &alua_groups[i];
	return NULL;
}

void spt_scsi_set_port_groups(const struct spt_port_group *groups, size_t n)
{
	struct alua_group next[SPT_PORT_GROUPS_MAX];
	size_t count = 0;
	bool changed = false, restricted = false;

	pthread_mutex_lock(&alua_lock);
	for (size_t i = 0; i < n && count < SPT_PORT_GROUPS_MAX; i++) {
		const struct alua_group *old;
		bool dup = false;

		/* SPC-4 7.8.6.7: relative port 0 is reserved; 5.16.2.4: four states */
		if (groups[i].id == 0 || groups[i].state > SPT_ALUA_UNAVAILABLE)
			continue;
		for (size_t k = 0; k < count; k++)
			dup |= next[k].id == groups[i].id;
		if (dup)
			continue;
		old = alua_group_find(groups[i].id);
		next[count].id = groups[i].id;
		next[count].state = groups[i].state;
		/* a group new to the table had the default, active/optimized */
		if ((old ? old->state : SPT_ALUA_ACTIVE_OPTIMIZED) != groups[i].state) {
			changed = true;
			next[count].changed = true;
		} else {
			next[count].changed = old && old->changed;
		}
		restricted |= groups[i].state >= SPT_ALUA_STANDBY;
		count++;
	}
	memcpy(alua_groups, next, count * sizeof(next[0]));
	alua_ngroups = count;
	atomic_store(&alua_restricted, restricted);
	/* SPC-4 5.16.2.3: after an implicit transition every I_T nexus gets
	 * a unit attention, ASYMMETRIC ACCESS STATE CHANGED */
	if (changed)
		for (size_t i = 0; i < alua_nlus; i++)
			spc_unit_attention_all(alua_lus[i], 0, ASC_PARAMETERS_CHANGED,
					       ASCQ_ASYMMETRIC_ACCESS_CHANGED);
	pthread_mutex_unlock(&alua_lock);
}

uint16_t alua_nexus_port(const struct spt_bdev *bdev, uint64_t itnexus_handle)
{
	uint16_t port = spc_nexus_tpgt(bdev, itnexus_handle);

	if (port)
		return port;
	/* SPC-4 7.8.6.7: 0 is reserved, port A is 1 */
	return bdev->relative_port ? bdev->relative_port : 1;
}

static uint8_t alua_port_state(uint16_t port)
{
	const struct alua_group *g;
	uint8_t state;

	pthread_mutex_lock(&alua_lock);
	g = alua_group_find(port);
	state = g ? g->state : SPT_ALUA_ACTIVE_OPTIMIZED;
	pthread_mutex_unlock(&alua_lock);
	return state;
}

/* SPC-4 5.16.2.4.4: what a target port in standby still serves. */
static bool alua_standby_allows(const uint8_t *cdb)
{
	switch (cdb[0]) {
	case ALUA_OP_INQUIRY:
	case ALUA_OP_LOG_SELECT:
	case ALUA_OP_LOG_SENSE:
	case ALUA_OP_MODE_SELECT_6:
	case ALUA_OP_MODE_SELECT_10:
	case ALUA_OP_MODE_SENSE_6:
	case ALUA_OP_MODE_SENSE_10:
	case ALUA_OP_REPORT_LUNS:
	case ALUA_OP_RECEIVE_DIAGNOSTIC:
	case ALUA_OP_SEND_DIAGNOSTIC:
	case ALUA_OP_REQUEST_SENSE:
	case ALUA_OP_PR_IN:
	case ALUA_OP_PR_OUT:
	case ALUA_OP_READ_BUFFER:
	case ALUA_OP_WRITE_BUFFER:
	/* REPORT/SET TARGET PORT GROUPS, and (SPC-4 "may support other
	 * commands") REPORT SUPPORTED OPERATION CODES */
	case ALUA_OP_MAINTENANCE_IN:
	case ALUA_OP_MAINTENANCE_OUT:
		return true;
	default:
		return false;
	}
}

/* SPC-4 5.16.2.4.5: what a target port in the unavailable state serves. */
static bool alua_unavailable_allows(const uint8_t *cdb)
{
	switch (cdb[0]) {
	case ALUA_OP_INQUIRY:
	case ALUA_OP_REPORT_LUNS:
	case ALUA_OP_REQUEST_SENSE:
	case ALUA_OP_READ_BUFFER:
	case ALUA_OP_WRITE_BUFFER:
		return true;
	case ALUA_OP_MAINTENANCE_IN:
	case ALUA_OP_MAINTENANCE_OUT:
		return (cdb[1] & ALUA_SA_MASK) == ALUA_SA_TARGET_PORT_GROUPS;
	default:
		return false;
	}
}

bool alua_check(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	const uint8_t *cdb = cmd->req.cdb;
	uint8_t state;

	if (!atomic_load(&alua_restricted))
		return false;
	state = alua_port_state(alua_nexus_port(bdev, cmd->req.session_cookie));
	if (state == SPT_ALUA_STANDBY && !alua_standby_allows(cdb)) {
		/* SPC-4 5.16.2.4.4: NOT READY, LU NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE */
		spc_check_condition(bdev, cmd, SPT_KEY_NOT_READY, ASC_LU_NOT_ACCESSIBLE,
				    ASCQ_TARGET_PORT_STANDBY);
		return true;
	}
	if (state == SPT_ALUA_UNAVAILABLE && !alua_unavailable_allows(cdb)) {
		/* SPC-4 5.16.2.4.5: NOT READY, LU NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE */
		spc_check_condition(bdev, cmd, SPT_KEY_NOT_READY, ASC_LU_NOT_ACCESSIBLE,
				    ASCQ_TARGET_PORT_UNAVAILABLE);
		return true;
	}
	return false;
}

/* One target port group descriptor with its one target port. */
static uint32_t alua_group_descriptor(uint8_t *p, uint16_t id, uint8_t state, bool changed)
{
	memset(p, 0, RTPG_GROUP_DESC + RTPG_PORT_DESC);
	p[0] = state;			/* PREF = 0: no group is preferred */
	p[1] = RTPG_SUPPORTED_STATES;
	spt_put_be16(&p[2], id);
	p[5] = changed ? RTPG_STATUS_IMPLICIT : RTPG_STATUS_NONE;
	p[7] = 1;			/* TARGET PORT COUNT */
	/* the port's RELATIVE TARGET PORT IDENTIFIER is the group's tag */
	spt_put_be16(&p[RTPG_GROUP_DESC + 2], id);
	return RTPG_GROUP_DESC + RTPG_PORT_DESC;
}

void alua_report_target_port_groups(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	const uint8_t *cdb = cmd->req.cdb;
	uint8_t format = cdb[1] >> RTPG_FORMAT_SHIFT;
	uint32_t alloc = spt_get_be32(&cdb[6]);
	uint8_t d[RTPG_BUF_MAX];
	uint32_t header = format == RTPG_FORMAT_EXTENDED ? RTPG_EXT_HEADER : RTPG_HEADER;
	uint32_t pos = header;
	uint16_t own = alua_nexus_port(bdev, cmd->req.session_cookie);

	/* SPC-4 6.36.1: PARAMETER DATA FORMAT 000b and 001b; others reserved */
	if (format != RTPG_FORMAT_LENGTH && format != RTPG_FORMAT_EXTENDED) {
		spc_invalid_field_in_cdb(bdev, cmd, 1, 7);
		return;
	}
	memset(d, 0, sizeof(d));
	pthread_mutex_lock(&alua_lock);
	if (alua_ngroups == 0) {
		/* no table: the LU has the one port the nexus came through */
		pos += alua_group_descriptor(&d[pos], own, SPT_ALUA_ACTIVE_OPTIMIZED, false);
	}
	for (size_t i = 0; i < alua_ngroups; i++)
		pos += alua_group_descriptor(&d[pos], alua_groups[i].id, alua_groups[i].state,
					     alua_groups[i].changed);
	pthread_mutex_unlock(&alua_lock);
	/* SPC-4 6.36.2: RETURN DATA LENGTH counts the bytes after itself */
	spt_put_be32(&d[0], pos - 4);
	if (format == RTPG_FORMAT_EXTENDED) {
		d[4] = RTPG_FORMAT_EXTENDED << 4;	/* FORMAT TYPE */
		d[5] = RTPG_IMPLICIT_TRANSITION_S;
	}
	spc_data_in(cmd, d, alloc < pos ? alloc : pos);
}
