/*
 * INQUIRY (SPC-4 6.6): standard data and the vital product data pages a
 * block LU reports: Supported VPD Pages, Unit Serial Number, Device
 * Identification, Third-party Copy (SPC-4 7.8), Block Limits, Block Device
 * Characteristics and Logical Block Provisioning (SBC-3 6.5).
 */
#include "scsi/spc.h"

#include <string.h>

#include "scsi/alua.h"
#include "scsi/xcopy.h"

#define INQ_STD_LEN 96			/* through the reserved bytes 74..95 */
#define INQ_VPD_HEADER 4
#define INQ_VPD_BUF_MAX 512		/* largest page built here: Device Identification */
#define INQ_CMDDT 0x02
#define INQ_EVPD 0x01

/* Standard data fields (SPC-4 Table 142). */
#define INQ_PDT_DISK 0x00		/* direct access block device, qualifier 000b */
#define INQ_VERSION_SPC4 0x06
#define INQ_HISUP 0x10
#define INQ_RESPONSE_FORMAT 0x02
#define INQ_CMDQUE 0x02
#define INQ_3PC 0x08			/* byte 5: third-party copy (EXTENDED COPY) */
#define INQ_TPGS_IMPLICIT 0x10		/* byte 5: TPGS 01b, implicit ALUA (alua.c) */
#define INQ_VERSION_DESC_OFF 58

/* SPC-4 Table 146 version descriptors. */
#define VD_SAM5 0x00a0
#define VD_ISCSI 0x0960
#define VD_SPC4 0x0460
#define VD_SBC3 0x04c0

/* VPD page codes. */
enum {
	VPD_SUPPORTED = 0x00,
	VPD_SERIAL = 0x80,
	VPD_DEVICE_ID = 0x83,
	VPD_THIRD_PARTY_COPY = 0x8f,
	VPD_BLOCK_LIMITS = 0xb0,
	VPD_BLOCK_CHARACTERISTICS = 0xb1,
	VPD_LB_PROVISIONING = 0xb2,
};
static const uint8_t inq_vpd_pages[] = {
	VPD_SUPPORTED, VPD_SERIAL, VPD_DEVICE_ID, VPD_THIRD_PARTY_COPY,
	VPD_BLOCK_LIMITS, VPD_BLOCK_CHARACTERISTICS, VPD_LB_PROVISIONING,
};

/* SPC-4 7.8.6 designation descriptor fields. */
#define DESIG_HEADER 4
#define DESIG_CODE_BINARY 0x1
#define DESIG_CODE_ASCII 0x2
#define DESIG_CODE_UTF8 0x3
#define DESIG_PIV 0x80
#define DESIG_ASSOC_LU 0x00
#define DESIG_ASSOC_PORT 0x10
#define DESIG_TYPE_T10 0x1
#define DESIG_TYPE_NAA 0x3
#define DESIG_TYPE_REL_PORT 0x4
#define DESIG_TYPE_PORT_GROUP 0x5
#define DESIG_TYPE_SCSI_NAME 0x8
#define DESIG_PROTO_ISCSI 0x50		/* protocol identifier 5h, upper nibble */
#define DESIG_SCSI_NAME_MAX 256		/* SPC-4 7.8.6.11 */
#define T10_VENDOR_ID "SPT     "
/* The target name field (224 bytes with its NUL) fits the designator. */
_Static_assert(sizeof(((struct spt_bdev *)0)->target_name) <= DESIG_SCSI_NAME_MAX,
	       "SCSI name string too long");

/* SBC-3 6.5.3 Block Limits, 6.5.2 Block Device Characteristics. */
#define VPD_B0_LEN 0x3c
#define VPD_B1_LEN 0x3c
#define VPD_B2_LEN 0x04
#define B0_WSNZ 0x01
#define B0_UGAVALID 0x80000000u
#define B1_NON_ROTATING 0x0001
#define B2_LBPU 0x80
#define B2_LBPWS 0x40
#define B2_LBPWS10 0x20
#define B2_LBPRZ 0x04
#define B2_TYPE_THIN 0x02
#define INQ_PAGE_BYTES 4096u		/* host page: the unit the backing store
					 * caches and punches holes in */
#define INQ_OPTIMAL_TRANSFER_BYTES (1024u * 1024u)

/* SPC-4 4.4.1: ASCII data fields hold 20h..7Eh, left-aligned, space padded. */
static void inq_ascii(uint8_t *out, const char *s, size_t field)
{
	size_t n = strnlen(s, field);

	for (size_t i = 0; i < field; i++) {
		uint8_t c = i < n ? (uint8_t)s[i] : ' ';

		out[i] = (c >= 0x20 && c <= 0x7e) ? c : ' ';
	}
}

static void inq_standard(struct spt_bdev *bdev, struct spt_cmd *cmd, uint32_t alloc)
{
	uint8_t d[INQ_STD_LEN];
	static const uint16_t versions[] = { VD_SAM5, VD_ISCSI, VD_SPC4, VD_SBC3 };

	memset(d, 0, sizeof(d));
	d[0] = INQ_PDT_DISK;
	d[1] = 0x00;			/* RMB=0: the medium is not removable */
	d[2] = INQ_VERSION_SPC4;
	d[3] = INQ_HISUP | INQ_RESPONSE_FORMAT;
	d[4] = INQ_STD_LEN - 5;
	/* SPC-4 6.6.2: 3PC, the LU has a copy manager (EXTENDED COPY, xcopy.c);
	 * SPC-4 5.16.2.1: TPGS 01b, only implicit asymmetric access state
	 * transitions (no SET TARGET PORT GROUPS); no PROTECT */
	d[5] = INQ_3PC | INQ_TPGS_IMPLICIT;
	d[7] = INQ_CMDQUE;
	inq_ascii(&d[8], bdev->vendor, SPT_VENDOR_LEN);
	inq_ascii(&d[16], bdev->product, SPT_PRODUCT_LEN);
	inq_ascii(&d[32], bdev->revision, SPT_REVISION_LEN);
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
		spt_put_be16(&d[INQ_VERSION_DESC_OFF + 2 * i], versions[i]);
	spc_data_in(cmd, d, alloc < INQ_STD_LEN ? alloc : INQ_STD_LEN);
}

/* Appends one designation descriptor; returns its length. */
static uint32_t inq_designator(uint8_t *out, uint8_t code_set, uint8_t assoc_type,
			       const void *id, uint32_t len)
{
	out[0] = code_set;
	out[1] = assoc_type;
	out[2] = 0;
	out[3] = (uint8_t)len;
	memcpy(&out[DESIG_HEADER], id, len);
	return DESIG_HEADER + len;
}

/*
 * SPC-4 7.8.6: Device Identification, as seen through the I_T nexus
 * `handle`: the LU designators are the same on every path, the port ones
 * (relative target port, target port group) those of the nexus's port.
 * Returns the page length.
 */
static uint32_t inq_device_id(const struct spt_bdev *bdev, uint64_t handle, uint8_t *p)
{
	uint8_t id[DESIG_SCSI_NAME_MAX];
	uint32_t pos = INQ_VPD_HEADER;
	size_t serial_len = strnlen(bdev->serial, SPT_SERIAL_MAX);
	size_t name_len = strnlen(bdev->target_name, sizeof(bdev->target_name) - 1);
	/* alua.c: the TPGT is both the relative port and the group identifier */
	uint16_t port = alua_nexus_port(bdev, handle);

	/* SPC-4 7.8.6.6 NAA: the LU's world-wide name. */
	spt_put_be64(id, bdev->naa);
	pos += inq_designator(&p[pos], DESIG_CODE_BINARY, DESIG_ASSOC_LU | DESIG_TYPE_NAA, id, 8);

	/* SPC-4 7.8.6.4 T10 vendor ID based: vendor, then the serial. */
	memcpy(id, T10_VENDOR_ID, 8);
	inq_ascii(&id[8], bdev->serial, serial_len);
	pos += inq_designator(&p[pos], DESIG_CODE_ASCII, DESIG_ASSOC_LU | DESIG_TYPE_T10, id,
			      (uint32_t)(8 + serial_len));

	/* SPC-4 7.8.6.7: relative target port; 0 is reserved, port A is 1. */
	memset(id, 0, 4);
	spt_put_be16(&id[2], port);
	pos += inq_designator(&p[pos], DESIG_PROTO_ISCSI | DESIG_CODE_BINARY,
			      DESIG_PIV | DESIG_ASSOC_PORT | DESIG_TYPE_REL_PORT, id, 4);

	/* SPC-4 7.8.6.8: target port group of that port (REPORT TARGET PORT
	 * GROUPS names it so) */
	memset(id, 0, 4);
	spt_put_be16(&id[2], port);
	pos += inq_designator(&p[pos], DESIG_CODE_BINARY, DESIG_ASSOC_PORT | DESIG_TYPE_PORT_GROUP,
			      id, 4);

	/* SPC-4 7.8.6.11: SCSI name string, null-terminated, padded with
	 * nulls to a multiple of four bytes. */
	if (name_len) {
		uint32_t padded = (uint32_t)((name_len + 1 + 3) & ~(size_t)3);

		memset(id, 0, padded);
		memcpy(id, bdev->target_name, name_len);
		pos += inq_designator(&p[pos], DESIG_PROTO_ISCSI | DESIG_CODE_UTF8,
				      DESIG_PIV | DESIG_ASSOC_PORT | DESIG_TYPE_SCSI_NAME, id, padded);
	}
	return pos - INQ_VPD_HEADER;
}

/* SBC-3 6.5.3 Block Limits. */
static uint32_t inq_block_limits(const struct spt_bdev *bdev, uint8_t *p)
{
	uint32_t bs = bdev->block_size;
	uint32_t max_xfer = bdev->max_transfer_bytes / bs;
	uint32_t granularity = bs < INQ_PAGE_BYTES ? INQ_PAGE_BYTES / bs : 1;
	uint32_t optimal = INQ_OPTIMAL_TRANSFER_BYTES / bs;

	if (max_xfer && optimal > max_xfer)
		optimal = max_xfer;
	p[4] = SPC_WRITE_SAME_NO_ZERO ? B0_WSNZ : 0;
	/* SBC-3 6.5.3: MAXIMUM COMPARE AND WRITE LENGTH, what sbc.c accepts */
	p[5] = (uint8_t)sbc_caw_max_blocks(bdev);
	spt_put_be16(&p[6], (uint16_t)granularity);
	spt_put_be32(&p[8], max_xfer);
	spt_put_be32(&p[12], optimal);
	if (bdev->thin) {
		spt_put_be32(&p[20], SPC_MAX_UNMAP_LBA_COUNT);
		spt_put_be32(&p[24], SPC_MAX_UNMAP_DESCRIPTORS);
		spt_put_be32(&p[28], granularity);
		spt_put_be32(&p[32], B0_UGAVALID);	/* alignment 0 */
	}
	spt_put_be64(&p[36], SPC_MAX_WRITE_SAME_BLOCKS);
	return VPD_B0_LEN;
}

static void inq_vpd(struct spt_bdev *bdev, struct spt_cmd *cmd, uint8_t page, uint32_t alloc)
{
	uint8_t p[INQ_VPD_BUF_MAX];
	uint32_t len = 0;

	memset(p, 0, sizeof(p));
	p[0] = INQ_PDT_DISK;
	p[1] = page;
	switch (page) {
	case VPD_SUPPORTED:
		len = sizeof(inq_vpd_pages);
		memcpy(&p[INQ_VPD_HEADER], inq_vpd_pages, len);
		break;
	case VPD_SERIAL: {
		size_t n = strnlen(bdev->serial, SPT_SERIAL_MAX);

		/* SPC-4 7.8.15: spaces if there is no serial number. */
		len = n ? (uint32_t)n : 4;
		inq_ascii(&p[INQ_VPD_HEADER], bdev->serial, len);
		break;
	}
	case VPD_DEVICE_ID:
		len = inq_device_id(bdev, cmd->req.session_cookie, p);
		break;
	case VPD_THIRD_PARTY_COPY:
		/* SPC-4 7.8.17: the copy manager's commands, descriptors and limits */
		len = xcopy_vpd_descriptors(bdev, &p[INQ_VPD_HEADER], sizeof(p) - INQ_VPD_HEADER);
		break;
	case VPD_BLOCK_LIMITS:
		len = inq_block_limits(bdev, p);
		break;
	case VPD_BLOCK_CHARACTERISTICS:
		spt_put_be16(&p[4], B1_NON_ROTATING);
		len = VPD_B1_LEN;	/* product type and form factor 0: not reported */
		break;
	case VPD_LB_PROVISIONING:
		/* SBC-3 6.5.4: unmapped blocks read as zeros (LBPRZ); hole
		 * punching is what UNMAP and WRITE SAME(UNMAP=1) do. */
		if (bdev->thin) {
			p[5] = B2_LBPU | B2_LBPWS | B2_LBPWS10 | B2_LBPRZ;
			p[6] = B2_TYPE_THIN;
		}
		len = VPD_B2_LEN;
		break;
	default:
		/* SPC-4 6.6.1: a VPD page the LU does not have. */
		spc_invalid_field_in_cdb(bdev, cmd, 2, -1);
		return;
	}
	spt_put_be16(&p[2], (uint16_t)len);
	len += INQ_VPD_HEADER;
	spc_data_in(cmd, p, alloc < len ? alloc : len);
}

void spc_inquiry(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	const uint8_t *cdb = cmd->req.cdb;
	uint32_t alloc = spt_get_be16(&cdb[3]);

	/* SPC-4 6.6.1: CMDDT is obsolete; a device server may reject it. */
	if (cdb[1] & INQ_CMDDT) {
		spc_invalid_field_in_cdb(bdev, cmd, 1, 1);
		return;
	}
	if (cdb[1] & INQ_EVPD) {
		inq_vpd(bdev, cmd, cdb[2], alloc);
		return;
	}
	/* SPC-4 6.6.1: PAGE CODE must be zero when EVPD is zero. */
	if (cdb[2] != 0) {
		spc_invalid_field_in_cdb(bdev, cmd, 2, -1);
		return;
	}
	inq_standard(bdev, cmd, alloc);
}
