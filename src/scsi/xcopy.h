/*
 * Third-party copy (SPC-4 5.16, 6.4, 6.18): EXTENDED COPY (LID1) between
 * block LUs of this process and RECEIVE COPY RESULTS. Internal to
 * src/scsi/: sbc.c hands the two operation codes to xcopy_execute(), the
 * INQUIRY code builds the Third-party Copy VPD page from the limits here.
 */
#ifndef SCSI_XCOPY_H
#define SCSI_XCOPY_H

#include <spt/scsi.h>

#define XCOPY_OP_EXTENDED_COPY 0x83
#define XCOPY_OP_RECEIVE_COPY_RESULTS 0x84
#define XCOPY_SA_LID1 0x00		/* EXTENDED COPY(LID1) */
#define XCOPY_RCR_COPY_STATUS 0x00	/* RECEIVE COPY RESULTS service actions */
#define XCOPY_RCR_OPERATING_PARAMETERS 0x03

/*
 * Limits, advertised in the Third-party Copy VPD page (SPC-4 7.8.17) and in
 * RECEIVE COPY RESULTS OPERATING PARAMETERS, and enforced on every
 * parameter list. The descriptor list limit is below what the counts allow
 * (8 x 32 + 64 x 28), so each limit can be hit on its own.
 */
#define XCOPY_MAX_CSCD_DESCRIPTORS 8
#define XCOPY_MAX_SEGMENT_DESCRIPTORS 64
#define XCOPY_MAX_DESC_LIST_LEN 2048	/* CSCD + segment descriptor lists, bytes */
#define XCOPY_MAX_INLINE_DATA 0		/* no inline or embedded data */
#define XCOPY_MAX_CONCURRENT 32		/* EXTENDED COPY commands in progress per LU */
#define XCOPY_SEGMENT_MAX_BLOCKS 65535u	/* block device NUMBER OF BLOCKS is 16 bits */

/* Descriptor type codes handled (SPC-4 6.4.5, 6.4.6). */
#define XCOPY_SEG_BLOCK_TO_BLOCK 0x02	/* block device to block device */
#define XCOPY_CSCD_IDENTIFICATION 0xe4	/* identification descriptor CSCD */

static inline bool xcopy_opcode(uint8_t opcode)
{
	return opcode == XCOPY_OP_EXTENDED_COPY || opcode == XCOPY_OP_RECEIVE_COPY_RESULTS;
}

/* One request of EXTENDED COPY or RECEIVE COPY RESULTS; completes it (maybe
 * later, from backing-store completions). */
void xcopy_execute(struct spt_bdev *bdev, struct spt_cmd *cmd);

/* SPC-4 7.8.17: the third-party copy descriptors of the VPD page, written at
 * p (cap bytes there); returns their length. */
uint32_t xcopy_vpd_descriptors(const struct spt_bdev *bdev, uint8_t *p, uint32_t cap);

#endif
