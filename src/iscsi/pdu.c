#include "iscsi/pdu.h"

#include <isa-l.h>

uint64_t pdu_lun_to_flat(const uint8_t lun[8])
{
	uint8_t method = lun[0] >> 6;

	/* SAM-5 4.7.3: single level; only the first two bytes may be set */
	for (int i = 2; i < 8; i++)
		if (lun[i])
			return UINT64_MAX;
	switch (method) {
	case 0:	/* peripheral device addressing: bus 0 only */
		if (lun[0] & 0x3f)
			return UINT64_MAX;
		return lun[1];
	case 1:	/* flat space addressing */
		return (uint64_t)(lun[0] & 0x3f) << 8 | lun[1];
	default:
		return UINT64_MAX;
	}
}

void pdu_flat_to_lun(uint64_t flat, uint8_t lun[8])
{
	for (int i = 0; i < 8; i++)
		lun[i] = 0;
	if (flat < 256) {
		lun[1] = (uint8_t)flat;
	} else {
		lun[0] = (uint8_t)(0x40 | ((flat >> 8) & 0x3f));
		lun[1] = (uint8_t)flat;
	}
}

const char *pdu_opcode_name(uint8_t opcode)
{
	switch (opcode & ISCSI_OPCODE_MASK) {
	case ISCSI_OP_NOP_OUT: return "NOP-Out";
	case ISCSI_OP_SCSI_CMD: return "SCSI Command";
	case ISCSI_OP_TMF_REQ: return "Task Management Request";
	case ISCSI_OP_LOGIN_REQ: return "Login Request";
	case ISCSI_OP_TEXT_REQ: return "Text Request";
	case ISCSI_OP_DATA_OUT: return "Data-Out";
	case ISCSI_OP_LOGOUT_REQ: return "Logout Request";
	case ISCSI_OP_SNACK: return "SNACK";
	case ISCSI_OP_NOP_IN: return "NOP-In";
	case ISCSI_OP_SCSI_RSP: return "SCSI Response";
	case ISCSI_OP_TMF_RSP: return "Task Management Response";
	case ISCSI_OP_LOGIN_RSP: return "Login Response";
	case ISCSI_OP_TEXT_RSP: return "Text Response";
	case ISCSI_OP_DATA_IN: return "Data-In";
	case ISCSI_OP_LOGOUT_RSP: return "Logout Response";
	case ISCSI_OP_R2T: return "R2T";
	case ISCSI_OP_ASYNC: return "Async Message";
	case ISCSI_OP_REJECT: return "Reject";
	default: return "unknown";
	}
}

uint32_t pdu_crc32c(const void *buf, size_t len, uint32_t crc)
{
	/* ISA-L works on the un-inverted register: RFC 7143 B.4 pre- and
	 * post-inverts, which the caller does with PDU_CRC32C_INIT and ~ */
	return crc32_iscsi((unsigned char *)buf, (int)len, crc);
}
