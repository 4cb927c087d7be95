/*
 * The control-socket frame codec, shared by sptd's control server and
 * sptctl: struct spt_io_header and the control payloads of include/spt/spt.h
 * to and from their little-endian wire form, with every field that frames
 * the stream checked where it arrives.
 */
#ifndef CTL_FRAME_H
#define CTL_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <spt/spt.h>

#define CTL_HEADER_LEN ((uint32_t)sizeof(struct spt_io_header))
#define CTL_WHY_MAX 128

/* Fills a header for a message of `length` payload bytes. */
void ctl_header_init(struct spt_io_header *h, uint32_t control_code, uint32_t return_code,
		     uint32_t timeout, uint32_t length);
void ctl_header_encode(uint8_t out[CTL_HEADER_LEN], const struct spt_io_header *h);
void ctl_header_decode(const uint8_t in[CTL_HEADER_LEN], struct spt_io_header *h);
/* The fields that frame the stream: HeaderLength, Signature and Length
 * (<= max_payload). SPT_CTL_RC_SUCCESS or SPT_CTL_RC_BAD_FRAME with why. */
uint32_t ctl_header_check(const struct spt_io_header *h, uint32_t max_payload, char *why,
			  size_t whylen);

/* Header + payload in one allocation; NULL without memory. */
uint8_t *ctl_frame_new(uint32_t control_code, uint32_t return_code, uint32_t timeout,
		       const void *payload, uint32_t length, size_t *frame_len);

/* Receiving frames from a stream, resumable after any partial read. */
enum ctl_rx_status {
	CTL_RX_MORE,	/* all input consumed, no complete frame yet */
	CTL_RX_FRAME,	/* rx->h and rx->payload hold a frame: use, then ctl_rx_reset */
	CTL_RX_BAD,	/* the header cannot frame the stream (rx->why): close */
	CTL_RX_NOMEM,
};

struct ctl_rx {
	uint32_t max_payload;
	uint8_t hdr[CTL_HEADER_LEN];
	uint32_t hdr_have;
	bool have_header;
	struct spt_io_header h;	/* decoded, host order */
	uint8_t *payload;	/* h.length bytes (NULL if 0) */
	uint32_t payload_have;
	char why[CTL_WHY_MAX];
};

void ctl_rx_init(struct ctl_rx *rx, uint32_t max_payload);
/* Takes bytes up to the end of one frame; *used says how many. */
enum ctl_rx_status ctl_rx_feed(struct ctl_rx *rx, const uint8_t *data, size_t len, size_t *used);
/* Drops the frame just returned (or a partial one), ready for the next. */
void ctl_rx_reset(struct ctl_rx *rx);

/* Request payloads. Each returns SPT_CTL_RC_SUCCESS or SPT_CTL_RC_BAD_REQUEST
 * with why. */
uint32_t ctl_session_list_request_decode(const uint8_t *p, uint32_t len,
					 struct spt_ctl_session_list_request *out, char *why,
					 size_t whylen);
void ctl_session_list_request_encode(uint8_t out[sizeof(struct spt_ctl_session_list_request)],
				     const struct spt_ctl_session_list_request *r);
/* SESSION_END: struct spt_session_end (has_grace false) or struct
 * spt_ctl_session_stop. */
uint32_t ctl_session_stop_decode(const uint8_t *p, uint32_t len, struct spt_ctl_session_stop *out,
				 bool *has_grace, char *why, size_t whylen);
void ctl_session_stop_encode(uint8_t out[sizeof(struct spt_ctl_session_stop)],
			     const struct spt_ctl_session_stop *s);

/* Response payloads. */
void ctl_session_list_encode(uint8_t out[sizeof(struct spt_ctl_session_list)],
			     const struct spt_ctl_session_list *l);
/* Checks the list header against the payload length: 0 or -1 with why. */
int ctl_session_list_decode(const uint8_t *p, uint32_t len, struct spt_ctl_session_list *out,
			    char *why, size_t whylen);
void ctl_session_encode(uint8_t out[sizeof(struct spt_ctl_session)], const struct spt_ctl_session *s);
/* One entry of entry_length bytes; fields beyond it read as zero, every
 * string ends within its field. */
void ctl_session_decode(const uint8_t *p, uint32_t entry_length, struct spt_ctl_session *out);

/* Entries of the first SESSION_LIST version end where the byte counters
 * begin: a reader accepts them and knows the counters are absent. */
#define CTL_SESSION_V1_LEN ((uint32_t)offsetof(struct spt_ctl_session, bytes_read))
#define CTL_SESSION_HAS_BYTES(entry_length) \
	((entry_length) >= offsetof(struct spt_ctl_session, bytes_written) + sizeof(uint64_t))

/* TARGET_LIST and LUN_LIST requests: SPT_CTL_RC_SUCCESS or
 * SPT_CTL_RC_BAD_REQUEST with why (wrong length, reserved field set, a
 * cursor name without its NUL). */
uint32_t ctl_target_list_request_decode(const uint8_t *p, uint32_t len,
					struct spt_ctl_target_list_request *out, char *why,
					size_t whylen);
void ctl_target_list_request_encode(uint8_t out[sizeof(struct spt_ctl_target_list_request)],
				    const struct spt_ctl_target_list_request *r);
uint32_t ctl_lun_list_request_decode(const uint8_t *p, uint32_t len,
				     struct spt_ctl_lun_list_request *out, char *why, size_t whylen);
void ctl_lun_list_request_encode(uint8_t out[sizeof(struct spt_ctl_lun_list_request)],
				 const struct spt_ctl_lun_list_request *r);

/*
 * TARGET_LIST response: the header, then per target its entry, its portals
 * and its ACL names (include/spt/spt.h). The decoder checks the header
 * against the payload; ctl_target_decode checks one record against the
 * bytes left (avail) and says how long it is, so a reader walks the
 * records and finds where every part lies without trusting a count.
 */
void ctl_target_list_encode(uint8_t out[sizeof(struct spt_ctl_target_list)],
			    const struct spt_ctl_target_list *l);
int ctl_target_list_decode(const uint8_t *p, uint32_t len, struct spt_ctl_target_list *out,
			   char *why, size_t whylen);
void ctl_target_encode(uint8_t out[sizeof(struct spt_ctl_target)], const struct spt_ctl_target *t);
/* 0 with *record_len (entry + portals + ACL names, <= avail), or -1 with why. */
int ctl_target_decode(const uint8_t *p, size_t avail, const struct spt_ctl_target_list *l,
		      struct spt_ctl_target *out, size_t *record_len, char *why, size_t whylen);
/* Where portal i / ACL name i of a record starting at p lies (checked by
 * ctl_target_decode: i < the entry's count). */
const uint8_t *ctl_target_portal_at(const uint8_t *p, const struct spt_ctl_target_list *l,
				    uint32_t i);
const uint8_t *ctl_target_initiator_at(const uint8_t *p, const struct spt_ctl_target_list *l,
				       const struct spt_ctl_target *t, uint32_t i);
/* A NUL-terminated string in a zero-filled field of `field_len` bytes
 * (cut, still terminated, if longer). */
void ctl_string_encode(uint8_t *out, size_t field_len, const char *s);
/* The string of a part of part_length bytes whose field is field_len
 * bytes: it ends within both. */
void ctl_string_decode(const uint8_t *p, uint32_t part_length, size_t field_len, char *out);

/* LUN_LIST response, like SESSION_LIST. */
void ctl_lun_list_encode(uint8_t out[sizeof(struct spt_ctl_lun_list)], const struct spt_ctl_lun_list *l);
int ctl_lun_list_decode(const uint8_t *p, uint32_t len, struct spt_ctl_lun_list *out, char *why,
			size_t whylen);
void ctl_lun_encode(uint8_t out[sizeof(struct spt_ctl_lun)], const struct spt_ctl_lun *e);
void ctl_lun_decode(const uint8_t *p, uint32_t entry_length, struct spt_ctl_lun *out);

/*
 * STATS (include/spt/spt.h, "statistics"): the request names a kind and a
 * cursor; the response is struct spt_ctl_stats and entries of that kind.
 * The request decoder refuses an unknown kind, a cursor name without its
 * NUL and reserved bits; the response decoder checks the header against
 * the payload (entry length at least the kind's first version, the count
 * the payload holds, the histogram's bucket count).
 */
uint32_t ctl_stats_request_decode(const uint8_t *p, uint32_t len, struct spt_ctl_stats_request *out,
				  char *why, size_t whylen);
void ctl_stats_request_encode(uint8_t out[sizeof(struct spt_ctl_stats_request)],
			      const struct spt_ctl_stats_request *r);
/* Bytes of one entry of this kind in this version; 0 for an unknown kind. */
size_t ctl_stats_entry_size(uint32_t kind);
void ctl_stats_encode(uint8_t out[sizeof(struct spt_ctl_stats)], const struct spt_ctl_stats *l);
int ctl_stats_decode(const uint8_t *p, uint32_t len, struct spt_ctl_stats *out, char *why,
		     size_t whylen);
void ctl_stats_server_encode(uint8_t out[sizeof(struct spt_ctl_stats_server)],
			     const struct spt_ctl_stats_server *e);
void ctl_stats_server_decode(const uint8_t *p, uint32_t entry_length, struct spt_ctl_stats_server *out);
void ctl_stats_target_encode(uint8_t out[sizeof(struct spt_ctl_stats_target)],
			     const struct spt_ctl_stats_target *e);
void ctl_stats_target_decode(const uint8_t *p, uint32_t entry_length, struct spt_ctl_stats_target *out);
void ctl_stats_lun_encode(uint8_t out[sizeof(struct spt_ctl_stats_lun)], const struct spt_ctl_stats_lun *e);
void ctl_stats_lun_decode(const uint8_t *p, uint32_t entry_length, struct spt_ctl_stats_lun *out);
void ctl_stats_session_encode(uint8_t out[sizeof(struct spt_ctl_stats_session)],
			      const struct spt_ctl_stats_session *e);
void ctl_stats_session_decode(const uint8_t *p, uint32_t entry_length,
			      struct spt_ctl_stats_session *out);

/* The text of an error response: printable ASCII up to the first NUL (or
 * the end), anything else shown as '?'. Empty if len is 0. */
void ctl_message_decode(const uint8_t *p, uint32_t len, char *out, size_t outlen);

/* A name for a return code ("no such session"). */
const char *ctl_return_code_name(uint32_t rc);

/* Length of the valid UTF-8 sequence at p (1..4), or 0 (RFC 3629): what
 * sptctl's JSON and the metrics labels pass through unchanged. */
size_t ctl_utf8_len(const unsigned char *p);

#endif
