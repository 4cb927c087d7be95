/*
 * Control-socket frames: struct spt_io_header + payload, little-endian on
 * the wire (include/spt/spt.h). Structs are copied byte for byte and each
 * integer converted with htole/letoh, never read through a cast pointer.
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/frame.h"

void ctl_header_init(struct spt_io_header *h, uint32_t control_code, uint32_t return_code,
		     uint32_t timeout, uint32_t length)
{
	memset(h, 0, sizeof(*h));
	h->header_length = CTL_HEADER_LEN;
	memcpy(h->signature, SPT_SIGNATURE, SPT_SIGNATURE_LEN);
	h->timeout = timeout;
	h->control_code = control_code;
	h->return_code = return_code;
	h->length = length;
}

void ctl_header_encode(uint8_t out[CTL_HEADER_LEN], const struct spt_io_header *h)
{
	struct spt_io_header w = *h;

	w.header_length = htole32(h->header_length);
	w.timeout = htole32(h->timeout);
	w.control_code = htole32(h->control_code);
	w.return_code = htole32(h->return_code);
	w.length = htole32(h->length);
	memcpy(out, &w, CTL_HEADER_LEN);
}

void ctl_header_decode(const uint8_t in[CTL_HEADER_LEN], struct spt_io_header *h)
{
	memcpy(h, in, CTL_HEADER_LEN);
	h->header_length = le32toh(h->header_length);
	h->timeout = le32toh(h->timeout);
	h->control_code = le32toh(h->control_code);
	h->return_code = le32toh(h->return_code);
	h->length = le32toh(h->length);
}

uint32_t ctl_header_check(const struct spt_io_header *h, uint32_t max_payload, char *why,
			  size_t whylen)
{
	/* the signature names the interface and its version: anything else
	 * speaks another protocol and its lengths mean nothing */
	if (memcmp(h->signature, SPT_SIGNATURE, SPT_SIGNATURE_LEN) != 0) {
		snprintf(why, whylen, "bad signature (expected %s)", SPT_SIGNATURE);
		return SPT_CTL_RC_BAD_FRAME;
	}
	/* one header layout exists: HeaderLength is its size */
	if (h->header_length != CTL_HEADER_LEN) {
		snprintf(why, whylen, "HeaderLength %u, expected %u", h->header_length, CTL_HEADER_LEN);
		return SPT_CTL_RC_BAD_FRAME;
	}
	if (h->length > max_payload) {
		snprintf(why, whylen, "Length %u exceeds the limit of %u bytes", h->length, max_payload);
		return SPT_CTL_RC_BAD_FRAME;
	}
	return SPT_CTL_RC_SUCCESS;
}

uint8_t *ctl_frame_new(uint32_t control_code, uint32_t return_code, uint32_t timeout,
		       const void *payload, uint32_t length, size_t *frame_len)
{
	struct spt_io_header h;
	uint8_t *f = malloc((size_t)CTL_HEADER_LEN + length);

	if (!f)
		return NULL;
	ctl_header_init(&h, control_code, return_code, timeout, length);
	ctl_header_encode(f, &h);
	if (length)
		memcpy(f + CTL_HEADER_LEN, payload, length);
	*frame_len = (size_t)CTL_HEADER_LEN + length;
	return f;
}

void ctl_rx_init(struct ctl_rx *rx, uint32_t max_payload)
{
	memset(rx, 0, sizeof(*rx));
	rx->max_payload = max_payload;
}

void ctl_rx_reset(struct ctl_rx *rx)
{
	free(rx->payload);
	ctl_rx_init(rx, rx->max_payload);
}

enum ctl_rx_status ctl_rx_feed(struct ctl_rx *rx, const uint8_t *data, size_t len, size_t *used)
{
	size_t pos = 0;

	*used = 0;
	if (!rx->have_header) {
		size_t n = CTL_HEADER_LEN - rx->hdr_have;

		if (n > len)
			n = len;
		memcpy(rx->hdr + rx->hdr_have, data, n);
		rx->hdr_have += (uint32_t)n;
		pos += n;
		*used = pos;
		if (rx->hdr_have < CTL_HEADER_LEN)
			return CTL_RX_MORE;
		ctl_header_decode(rx->hdr, &rx->h);
		/* checked before a byte of payload is awaited or allocated */
		if (ctl_header_check(&rx->h, rx->max_payload, rx->why, sizeof(rx->why)) != 0)
			return CTL_RX_BAD;
		rx->have_header = true;
		if (rx->h.length) {
			rx->payload = malloc(rx->h.length);
			if (!rx->payload) {
				snprintf(rx->why, sizeof(rx->why), "out of memory for %u bytes",
					 rx->h.length);
				return CTL_RX_NOMEM;
			}
		}
	}
	size_t want = rx->h.length - rx->payload_have;
	size_t n = len - pos < want ? len - pos : want;

	if (n)
		memcpy(rx->payload + rx->payload_have, data + pos, n);
	rx->payload_have += (uint32_t)n;
	pos += n;
	*used = pos;
	return rx->payload_have == rx->h.length ? CTL_RX_FRAME : CTL_RX_MORE;
}

uint32_t ctl_session_list_request_decode(const uint8_t *p, uint32_t len,
					 struct spt_ctl_session_list_request *out, char *why,
					 size_t whylen)
{
	memset(out, 0, sizeof(*out));
	if (len == 0)
		return SPT_CTL_RC_SUCCESS;
	if (len != sizeof(*out)) {
		snprintf(why, whylen, "SESSION_LIST payload of %u bytes, expected 0 or %zu", len,
			 sizeof(*out));
		return SPT_CTL_RC_BAD_REQUEST;
	}
	memcpy(out, p, sizeof(*out));
	out->after_handle = le64toh(out->after_handle);
	out->max_entries = le32toh(out->max_entries);
	out->reserved = le32toh(out->reserved);
	/* reserved fields are 0 so that a later version can give them meaning */
	if (out->reserved != 0) {
		snprintf(why, whylen, "SESSION_LIST reserved field is not 0");
		return SPT_CTL_RC_BAD_REQUEST;
	}
	return SPT_CTL_RC_SUCCESS;
}

void ctl_session_list_request_encode(uint8_t out[sizeof(struct spt_ctl_session_list_request)],
				     const struct spt_ctl_session_list_request *r)
{
	struct spt_ctl_session_list_request w = *r;

	w.after_handle = htole64(r->after_handle);
	w.max_entries = htole32(r->max_entries);
	w.reserved = htole32(r->reserved);
	memcpy(out, &w, sizeof(w));
}

uint32_t ctl_session_stop_decode(const uint8_t *p, uint32_t len, struct spt_ctl_session_stop *out,
				 bool *has_grace, char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	*has_grace = false;
	if (len == sizeof(struct spt_session_end)) {
		struct spt_session_end se;

		memcpy(&se, p, sizeof(se));
		out->itnexus_handle = le64toh(se.itnexus_handle);
		return SPT_CTL_RC_SUCCESS;
	}
	if (len != sizeof(*out)) {
		snprintf(why, whylen, "SESSION_END payload of %u bytes, expected %zu or %zu", len,
			 sizeof(struct spt_session_end), sizeof(*out));
		return SPT_CTL_RC_BAD_REQUEST;
	}
	memcpy(out, p, sizeof(*out));
	out->itnexus_handle = le64toh(out->itnexus_handle);
	out->grace_seconds = le32toh(out->grace_seconds);
	out->reserved = le32toh(out->reserved);
	if (out->grace_seconds > SPT_CTL_GRACE_MAX) {
		snprintf(why, whylen, "grace of %u s exceeds the limit of %u s", out->grace_seconds,
			 SPT_CTL_GRACE_MAX);
		return SPT_CTL_RC_BAD_REQUEST;
	}
	if (out->reserved != 0) {
		snprintf(why, whylen, "SESSION_END reserved field is not 0");
		return SPT_CTL_RC_BAD_REQUEST;
	}
	*has_grace = true;
	return SPT_CTL_RC_SUCCESS;
}

void ctl_session_stop_encode(uint8_t out[sizeof(struct spt_ctl_session_stop)],
			     const struct spt_ctl_session_stop *s)
{
	struct spt_ctl_session_stop w = *s;

	w.itnexus_handle = htole64(s->itnexus_handle);
	w.grace_seconds = htole32(s->grace_seconds);
	w.reserved = htole32(s->reserved);
	memcpy(out, &w, sizeof(w));
}

void ctl_session_list_encode(uint8_t out[sizeof(struct spt_ctl_session_list)],
			     const struct spt_ctl_session_list *l)
{
	struct spt_ctl_session_list w = *l;

	w.count = htole32(l->count);
	w.entry_length = htole32(l->entry_length);
	w.total = htole32(l->total);
	memcpy(out, &w, sizeof(w));
}

int ctl_session_list_decode(const uint8_t *p, uint32_t len, struct spt_ctl_session_list *out,
			    char *why, size_t whylen)
{
	if (len < sizeof(*out)) {
		snprintf(why, whylen, "SESSION_LIST response of %u bytes, shorter than its header", len);
		return -1;
	}
	memcpy(out, p, sizeof(*out));
	out->count = le32toh(out->count);
	out->entry_length = le32toh(out->entry_length);
	out->total = le32toh(out->total);
	/* entries only ever grow: one shorter than the first version lacks
	 * fields we print (the byte counters came later; a reader checks
	 * CTL_SESSION_HAS_BYTES) */
	if (out->entry_length < CTL_SESSION_V1_LEN || out->entry_length > SPT_CTL_RESPONSE_MAX) {
		snprintf(why, whylen, "SESSION_LIST entry length %u, expected at least %u",
			 out->entry_length, CTL_SESSION_V1_LEN);
		return -1;
	}
	/* count * entry_length computed in 64 bits: both are 32-bit */
	if ((uint64_t)out->count * out->entry_length != len - sizeof(*out)) {
		snprintf(why, whylen, "SESSION_LIST says %u entries of %u bytes, payload has %zu",
			 out->count, out->entry_length, len - sizeof(*out));
		return -1;
	}
	return 0;
}

static void ctl_conn_to_wire(struct spt_ctl_connection *c)
{
	c->cid = htole16(c->cid);
}

static void ctl_conn_from_wire(struct spt_ctl_connection *c)
{
	c->cid = le16toh(c->cid);
	c->peer_address[sizeof(c->peer_address) - 1] = '\0';
}

void ctl_session_encode(uint8_t out[sizeof(struct spt_ctl_session)], const struct spt_ctl_session *s)
{
	struct spt_ctl_session w = *s;

	w.itnexus_handle = htole64(s->itnexus_handle);
	w.tsih = htole16(s->tsih);
	w.tpgt = htole16(s->tpgt);
	w.commands_in_flight = htole32(s->commands_in_flight);
	w.connection_count = htole32(s->connection_count);
	w.reserved = htole32(s->reserved);
	for (size_t i = 0; i < SPT_CTL_CONNS_MAX; i++)
		ctl_conn_to_wire(&w.conns[i]);
	w.bytes_read = htole64(s->bytes_read);
	w.bytes_written = htole64(s->bytes_written);
	memcpy(out, &w, sizeof(w));
}

void ctl_session_decode(const uint8_t *p, uint32_t entry_length, struct spt_ctl_session *out)
{
	size_t n = entry_length < sizeof(*out) ? entry_length : sizeof(*out);

	memset(out, 0, sizeof(*out));
	memcpy(out, p, n);
	out->itnexus_handle = le64toh(out->itnexus_handle);
	out->tsih = le16toh(out->tsih);
	out->tpgt = le16toh(out->tpgt);
	out->commands_in_flight = le32toh(out->commands_in_flight);
	out->connection_count = le32toh(out->connection_count);
	out->reserved = le32toh(out->reserved);
	out->initiator_name[sizeof(out->initiator_name) - 1] = '\0';
	out->target_name[sizeof(out->target_name) - 1] = '\0';
	out->chap_user_name[sizeof(out->chap_user_name) - 1] = '\0';
	for (size_t i = 0; i < SPT_CTL_CONNS_MAX; i++)
		ctl_conn_from_wire(&out->conns[i]);
	out->bytes_read = le64toh(out->bytes_read);
	out->bytes_written = le64toh(out->bytes_written);
}

/* A cursor name from outside: it must end within its field. */
static bool ctl_field_terminated(const char *f, size_t len)
{
	return memchr(f, '\0', len) != NULL;
}

uint32_t ctl_target_list_request_decode(const uint8_t *p, uint32_t len,
					struct spt_ctl_target_list_request *out, char *why,
					size_t whylen)
{
	memset(out, 0, sizeof(*out));
	if (len == 0)
		return SPT_CTL_RC_SUCCESS;
	if (len != sizeof(*out)) {
		snprintf(why, whylen, "TARGET_LIST payload of %u bytes, expected 0 or %zu", len,
			 sizeof(*out));
		return SPT_CTL_RC_BAD_REQUEST;
	}
	memcpy(out, p, sizeof(*out));
	out->max_entries = le32toh(out->max_entries);
	out->reserved = le32toh(out->reserved);
	if (!ctl_field_terminated(out->after_name, sizeof(out->after_name))) {
		snprintf(why, whylen, "TARGET_LIST after_name has no NUL within %zu bytes",
			 sizeof(out->after_name));
		return SPT_CTL_RC_BAD_REQUEST;
	}
	/* reserved fields are 0 so that a later version can give them meaning */
	if (out->reserved != 0) {
		snprintf(why, whylen, "TARGET_LIST reserved field is not 0");
		return SPT_CTL_RC_BAD_REQUEST;
	}
	return SPT_CTL_RC_SUCCESS;
}

void ctl_target_list_request_encode(uint8_t out[sizeof(struct spt_ctl_target_list_request)],
				    const struct spt_ctl_target_list_request *r)
{
	struct spt_ctl_target_list_request w = *r;

	w.max_entries = htole32(r->max_entries);
	w.reserved = htole32(r->reserved);
	memcpy(out, &w, sizeof(w));
}

uint32_t ctl_lun_list_request_decode(const uint8_t *p, uint32_t len,
				     struct spt_ctl_lun_list_request *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	if (len == 0)
		return SPT_CTL_RC_SUCCESS;
	if (len != sizeof(*out)) {
		snprintf(why, whylen, "LUN_LIST payload of %u bytes, expected 0 or %zu", len,
			 sizeof(*out));
		return SPT_CTL_RC_BAD_REQUEST;
	}
	memcpy(out, p, sizeof(*out));
	out->after_lun = le64toh(out->after_lun);
	out->max_entries = le32toh(out->max_entries);
	out->reserved = le32toh(out->reserved);
	if (!ctl_field_terminated(out->after_target, sizeof(out->after_target))) {
		snprintf(why, whylen, "LUN_LIST after_target has no NUL within %zu bytes",
			 sizeof(out->after_target));
		return SPT_CTL_RC_BAD_REQUEST;
	}
	if (out->reserved != 0) {
		snprintf(why, whylen, "LUN_LIST reserved field is not 0");
		return SPT_CTL_RC_BAD_REQUEST;
	}
	return SPT_CTL_RC_SUCCESS;
}

void ctl_lun_list_request_encode(uint8_t out[sizeof(struct spt_ctl_lun_list_request)],
				 const struct spt_ctl_lun_list_request *r)
{
	struct spt_ctl_lun_list_request w = *r;

	w.after_lun = htole64(r->after_lun);
	w.max_entries = htole32(r->max_entries);
	w.reserved = htole32(r->reserved);
	memcpy(out, &w, sizeof(w));
}

void ctl_target_list_encode(uint8_t out[sizeof(struct spt_ctl_target_list)],
			    const struct spt_ctl_target_list *l)
{
	struct spt_ctl_target_list w = *l;

	w.count = htole32(l->count);
	w.target_entry_length = htole32(l->target_entry_length);
	w.portal_entry_length = htole32(l->portal_entry_length);
	w.initiator_entry_length = htole32(l->initiator_entry_length);
	w.total = htole32(l->total);
	memcpy(out, &w, sizeof(w));
}

/* One part length of a list header: at least the first version's size
 * (shorter lacks fields we print), at most a response. */
static int ctl_part_length_check(const char *what, uint32_t have, size_t min, char *why,
				 size_t whylen)
{
	if (have < min || have > SPT_CTL_RESPONSE_MAX) {
		snprintf(why, whylen, "%s length %u, expected at least %zu", what, have, min);
		return -1;
	}
	return 0;
}

int ctl_target_list_decode(const uint8_t *p, uint32_t len, struct spt_ctl_target_list *out,
			   char *why, size_t whylen)
{
	if (len < sizeof(*out)) {
		snprintf(why, whylen, "TARGET_LIST response of %u bytes, shorter than its header", len);
		return -1;
	}
	memcpy(out, p, sizeof(*out));
	out->count = le32toh(out->count);
	out->target_entry_length = le32toh(out->target_entry_length);
	out->portal_entry_length = le32toh(out->portal_entry_length);
	out->initiator_entry_length = le32toh(out->initiator_entry_length);
	out->total = le32toh(out->total);
	if (ctl_part_length_check("TARGET_LIST target entry", out->target_entry_length,
				  sizeof(struct spt_ctl_target), why, whylen) < 0 ||
	    ctl_part_length_check("TARGET_LIST portal entry", out->portal_entry_length,
				  sizeof(struct spt_ctl_portal), why, whylen) < 0 ||
	    ctl_part_length_check("TARGET_LIST initiator entry", out->initiator_entry_length,
				  sizeof(struct spt_ctl_initiator), why, whylen) < 0)
		return -1;
	/* every record holds at least its entry: a count the payload cannot
	 * hold is refused before anything is walked or allocated for it */
	if ((uint64_t)out->count * out->target_entry_length > len - sizeof(*out)) {
		snprintf(why, whylen, "TARGET_LIST says %u targets, payload has %zu bytes", out->count,
			 len - sizeof(*out));
		return -1;
	}
	return 0;
}

void ctl_target_encode(uint8_t out[sizeof(struct spt_ctl_target)], const struct spt_ctl_target *t)
{
	struct spt_ctl_target w = *t;

	w.tpgt = htole16(t->tpgt);
	w.flags = htole16(t->flags);
	w.lun_count = htole32(t->lun_count);
	w.session_count = htole32(t->session_count);
	w.portal_count = htole32(t->portal_count);
	w.initiator_count = htole32(t->initiator_count);
	w.reserved = htole32(t->reserved);
	memcpy(out, &w, sizeof(w));
}

int ctl_target_decode(const uint8_t *p, size_t avail, const struct spt_ctl_target_list *l,
		      struct spt_ctl_target *out, size_t *record_len, char *why, size_t whylen)
{
	size_t n = l->target_entry_length < sizeof(*out) ? l->target_entry_length : sizeof(*out);
	uint64_t need;

	if (avail < l->target_entry_length) {
		snprintf(why, whylen, "TARGET_LIST target entry cut short (%zu of %u bytes)", avail,
			 l->target_entry_length);
		return -1;
	}
	memset(out, 0, sizeof(*out));
	memcpy(out, p, n);
	out->name[sizeof(out->name) - 1] = '\0';
	out->tpgt = le16toh(out->tpgt);
	out->flags = le16toh(out->flags);
	out->lun_count = le32toh(out->lun_count);
	out->session_count = le32toh(out->session_count);
	out->portal_count = le32toh(out->portal_count);
	out->initiator_count = le32toh(out->initiator_count);
	out->reserved = le32toh(out->reserved);
	/* 32-bit counts times lengths bounded by the response size: no
	 * overflow in 64 bits */
	need = (uint64_t)l->target_entry_length +
	       (uint64_t)out->portal_count * l->portal_entry_length +
	       (uint64_t)out->initiator_count * l->initiator_entry_length;
	if (need > avail) {
		snprintf(why, whylen, "TARGET_LIST target with %u portals and %u initiators needs %llu "
			 "bytes, %zu left", out->portal_count, out->initiator_count,
			 (unsigned long long)need, avail);
		return -1;
	}
	*record_len = (size_t)need;
	return 0;
}

const uint8_t *ctl_target_portal_at(const uint8_t *p, const struct spt_ctl_target_list *l,
				    uint32_t i)
{
	return p + l->target_entry_length + (size_t)i * l->portal_entry_length;
}

const uint8_t *ctl_target_initiator_at(const uint8_t *p, const struct spt_ctl_target_list *l,
				       const struct spt_ctl_target *t, uint32_t i)
{
	return p + l->target_entry_length + (size_t)t->portal_count * l->portal_entry_length +
	       (size_t)i * l->initiator_entry_length;
}

void ctl_string_encode(uint8_t *out, size_t field_len, const char *s)
{
	size_t n = strnlen(s, field_len - 1);

	memset(out, 0, field_len);
	memcpy(out, s, n);
}

void ctl_string_decode(const uint8_t *p, uint32_t part_length, size_t field_len, char *out)
{
	size_t n = part_length < field_len ? part_length : field_len;

	memset(out, 0, field_len);
	memcpy(out, p, n);
	out[field_len - 1] = '\0';
}

void ctl_lun_list_encode(uint8_t out[sizeof(struct spt_ctl_lun_list)], const struct spt_ctl_lun_list *l)
{
	struct spt_ctl_lun_list w = *l;

	w.count = htole32(l->count);
	w.entry_length = htole32(l->entry_length);
	w.total = htole32(l->total);
	memcpy(out, &w, sizeof(w));
}

int ctl_lun_list_decode(const uint8_t *p, uint32_t len, struct spt_ctl_lun_list *out, char *why,
			size_t whylen)
{
	if (len < sizeof(*out)) {
		snprintf(why, whylen, "LUN_LIST response of %u bytes, shorter than its header", len);
		return -1;
	}
	memcpy(out, p, sizeof(*out));
	out->count = le32toh(out->count);
	out->entry_length = le32toh(out->entry_length);
	out->total = le32toh(out->total);
	if (ctl_part_length_check("LUN_LIST entry", out->entry_length, sizeof(struct spt_ctl_lun), why,
				  whylen) < 0)
		return -1;
	if ((uint64_t)out->count * out->entry_length != len - sizeof(*out)) {
		snprintf(why, whylen, "LUN_LIST says %u entries of %u bytes, payload has %zu",
			 out->count, out->entry_length, len - sizeof(*out));
		return -1;
	}
	return 0;
}

void ctl_lun_encode(uint8_t out[sizeof(struct spt_ctl_lun)], const struct spt_ctl_lun *e)
{
	struct spt_ctl_lun w = *e;

	w.lun = htole64(e->lun);
	w.size_bytes = htole64(e->size_bytes);
	w.block_size = htole32(e->block_size);
	memcpy(out, &w, sizeof(w));
}

void ctl_lun_decode(const uint8_t *p, uint32_t entry_length, struct spt_ctl_lun *out)
{
	size_t n = entry_length < sizeof(*out) ? entry_length : sizeof(*out);

	memset(out, 0, sizeof(*out));
	memcpy(out, p, n);
	out->lun = le64toh(out->lun);
	out->size_bytes = le64toh(out->size_bytes);
	out->block_size = le32toh(out->block_size);
	out->target_name[sizeof(out->target_name) - 1] = '\0';
	out->state[sizeof(out->state) - 1] = '\0';
	out->backend[sizeof(out->backend) - 1] = '\0';
}

uint32_t ctl_stats_request_decode(const uint8_t *p, uint32_t len, struct spt_ctl_stats_request *out,
				  char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	if (len == 0)
		return SPT_CTL_RC_SUCCESS;	/* kind SERVER */
	if (len != sizeof(*out)) {
		snprintf(why, whylen, "STATS payload of %u bytes, expected 0 or %zu", len, sizeof(*out));
		return SPT_CTL_RC_BAD_REQUEST;
	}
	memcpy(out, p, sizeof(*out));
	out->kind = le32toh(out->kind);
	out->max_entries = le32toh(out->max_entries);
	out->after_number = le64toh(out->after_number);
	out->reserved = le64toh(out->reserved);
	if (ctl_stats_entry_size(out->kind) == 0) {
		snprintf(why, whylen, "STATS kind %u is not one of 0 (server), 1 (targets), 2 (LUNs), "
			 "3 (sessions)", out->kind);
		return SPT_CTL_RC_BAD_REQUEST;
	}
	if (!ctl_field_terminated(out->after_name, sizeof(out->after_name))) {
		snprintf(why, whylen, "STATS after_name has no NUL within %zu bytes",
			 sizeof(out->after_name));
		return SPT_CTL_RC_BAD_REQUEST;
	}
	/* reserved fields are 0 so that a later version can give them meaning */
	if (out->reserved != 0) {
		snprintf(why, whylen, "STATS reserved field is not 0");
		return SPT_CTL_RC_BAD_REQUEST;
	}
	return SPT_CTL_RC_SUCCESS;
}

void ctl_stats_request_encode(uint8_t out[sizeof(struct spt_ctl_stats_request)],
			      const struct spt_ctl_stats_request *r)
{
	struct spt_ctl_stats_request w = *r;

	w.kind = htole32(r->kind);
	w.max_entries = htole32(r->max_entries);
	w.after_number = htole64(r->after_number);
	w.reserved = htole64(r->reserved);
	memcpy(out, &w, sizeof(w));
}

size_t ctl_stats_entry_size(uint32_t kind)
{
	switch (kind) {
	case SPT_CTL_STATS_SERVER:
		return sizeof(struct spt_ctl_stats_server);
	case SPT_CTL_STATS_TARGETS:
		return sizeof(struct spt_ctl_stats_target);
	case SPT_CTL_STATS_LUNS:
		return sizeof(struct spt_ctl_stats_lun);
	case SPT_CTL_STATS_SESSIONS:
		return sizeof(struct spt_ctl_stats_session);
	default:
		return 0;
	}
}

void ctl_stats_encode(uint8_t out[sizeof(struct spt_ctl_stats)], const struct spt_ctl_stats *l)
{
	struct spt_ctl_stats w = *l;

	w.kind = htole32(l->kind);
	w.count = htole32(l->count);
	w.entry_length = htole32(l->entry_length);
	w.total = htole32(l->total);
	w.latency_buckets = htole32(l->latency_buckets);
	memcpy(out, &w, sizeof(w));
}

int ctl_stats_decode(const uint8_t *p, uint32_t len, struct spt_ctl_stats *out, char *why,
		     size_t whylen)
{
	size_t min;

	if (len < sizeof(*out)) {
		snprintf(why, whylen, "STATS response of %u bytes, shorter than its header", len);
		return -1;
	}
	memcpy(out, p, sizeof(*out));
	out->kind = le32toh(out->kind);
	out->count = le32toh(out->count);
	out->entry_length = le32toh(out->entry_length);
	out->total = le32toh(out->total);
	out->latency_buckets = le32toh(out->latency_buckets);
	min = ctl_stats_entry_size(out->kind);
	if (min == 0) {
		snprintf(why, whylen, "STATS response of unknown kind %u", out->kind);
		return -1;
	}
	if (ctl_part_length_check("STATS entry", out->entry_length, min, why, whylen) < 0)
		return -1;
	/* the histogram's layout is fixed by its bucket count */
	if (out->latency_buckets != SPT_CTL_STATS_BUCKETS) {
		snprintf(why, whylen, "STATS histograms of %u buckets, expected %u", out->latency_buckets,
			 SPT_CTL_STATS_BUCKETS);
		return -1;
	}
	if ((uint64_t)out->count * out->entry_length != len - sizeof(*out)) {
		snprintf(why, whylen, "STATS says %u entries of %u bytes, payload has %zu", out->count,
			 out->entry_length, len - sizeof(*out));
		return -1;
	}
	return 0;
}

/* Host order <-> little-endian: the same operation both ways. */
static void ctl_stats_io_le(struct spt_ctl_stats_io *io)
{
	io->commands = htole64(io->commands);
	io->read_commands = htole64(io->read_commands);
	io->write_commands = htole64(io->write_commands);
	io->bytes_read = htole64(io->bytes_read);
	io->bytes_written = htole64(io->bytes_written);
	io->errors = htole64(io->errors);
	io->aborts = htole64(io->aborts);
	io->queue_depth = htole64(io->queue_depth);
}

static void ctl_stats_latency_le(struct spt_ctl_stats_latency *l)
{
	l->count = htole64(l->count);
	l->sum_ns = htole64(l->sum_ns);
	for (size_t i = 0; i < SPT_CTL_STATS_BUCKETS; i++)
		l->buckets[i] = htole64(l->buckets[i]);
}

static void ctl_stats_connection_le(struct spt_ctl_stats_connection *c)
{
	c->cid = htole16(c->cid);
	c->pdus_in = htole64(c->pdus_in);
	c->pdus_out = htole64(c->pdus_out);
	c->bytes_in = htole64(c->bytes_in);
	c->bytes_out = htole64(c->bytes_out);
	c->header_digest_errors = htole64(c->header_digest_errors);
	c->data_digest_errors = htole64(c->data_digest_errors);
}

static void ctl_stats_server_le(struct spt_ctl_stats_server *e)
{
	e->sessions = htole32(e->sessions);
	e->connections = htole32(e->connections);
	e->targets = htole32(e->targets);
	e->luns = htole32(e->luns);
	e->header_digest_errors = htole64(e->header_digest_errors);
	e->data_digest_errors = htole64(e->data_digest_errors);
}

static void ctl_stats_target_le(struct spt_ctl_stats_target *e)
{
	e->lun_count = htole32(e->lun_count);
	e->session_count = htole32(e->session_count);
	ctl_stats_io_le(&e->io);
	ctl_stats_latency_le(&e->latency);
}

static void ctl_stats_lun_le(struct spt_ctl_stats_lun *e)
{
	e->lun = htole64(e->lun);
	ctl_stats_io_le(&e->io);
	ctl_stats_latency_le(&e->latency);
}

static void ctl_stats_session_le(struct spt_ctl_stats_session *e)
{
	e->itnexus_handle = htole64(e->itnexus_handle);
	e->tsih = htole16(e->tsih);
	e->connection_count = htole32(e->connection_count);
	e->commands = htole64(e->commands);
	e->errors = htole64(e->errors);
	e->aborts = htole64(e->aborts);
	e->queue_depth = htole64(e->queue_depth);
	e->bytes_read = htole64(e->bytes_read);
	e->bytes_written = htole64(e->bytes_written);
	e->header_digest_errors = htole64(e->header_digest_errors);
	e->data_digest_errors = htole64(e->data_digest_errors);
	for (size_t i = 0; i < SPT_CTL_CONNS_MAX; i++)
		ctl_stats_connection_le(&e->conns[i]);
}

/* An entry of entry_length bytes into *out (sizeof_out bytes): fields
 * beyond it read as zero. */
static void ctl_stats_entry_copy(void *out, size_t sizeof_out, const uint8_t *p, uint32_t entry_length)
{
	memset(out, 0, sizeof_out);
	memcpy(out, p, entry_length < sizeof_out ? entry_length : sizeof_out);
}

void ctl_stats_server_encode(uint8_t out[sizeof(struct spt_ctl_stats_server)],
			     const struct spt_ctl_stats_server *e)
{
	struct spt_ctl_stats_server w = *e;

	ctl_stats_server_le(&w);
	memcpy(out, &w, sizeof(w));
}

void ctl_stats_server_decode(const uint8_t *p, uint32_t entry_length, struct spt_ctl_stats_server *out)
{
	ctl_stats_entry_copy(out, sizeof(*out), p, entry_length);
	ctl_stats_server_le(out);
}

void ctl_stats_target_encode(uint8_t out[sizeof(struct spt_ctl_stats_target)],
			     const struct spt_ctl_stats_target *e)
{
	struct spt_ctl_stats_target w = *e;

	ctl_stats_target_le(&w);
	memcpy(out, &w, sizeof(w));
}

void ctl_stats_target_decode(const uint8_t *p, uint32_t entry_length, struct spt_ctl_stats_target *out)
{
	ctl_stats_entry_copy(out, sizeof(*out), p, entry_length);
	ctl_stats_target_le(out);
	out->name[sizeof(out->name) - 1] = '\0';
}

void ctl_stats_lun_encode(uint8_t out[sizeof(struct spt_ctl_stats_lun)], const struct spt_ctl_stats_lun *e)
{
	struct spt_ctl_stats_lun w = *e;

	ctl_stats_lun_le(&w);
	memcpy(out, &w, sizeof(w));
}

void ctl_stats_lun_decode(const uint8_t *p, uint32_t entry_length, struct spt_ctl_stats_lun *out)
{
	ctl_stats_entry_copy(out, sizeof(*out), p, entry_length);
	ctl_stats_lun_le(out);
	out->target_name[sizeof(out->target_name) - 1] = '\0';
}

void ctl_stats_session_encode(uint8_t out[sizeof(struct spt_ctl_stats_session)],
			      const struct spt_ctl_stats_session *e)
{
	struct spt_ctl_stats_session w = *e;

	ctl_stats_session_le(&w);
	memcpy(out, &w, sizeof(w));
}

void ctl_stats_session_decode(const uint8_t *p, uint32_t entry_length,
			      struct spt_ctl_stats_session *out)
{
	ctl_stats_entry_copy(out, sizeof(*out), p, entry_length);
	ctl_stats_session_le(out);
	out->initiator_name[sizeof(out->initiator_name) - 1] = '\0';
	out->target_name[sizeof(out->target_name) - 1] = '\0';
	for (size_t i = 0; i < SPT_CTL_CONNS_MAX; i++)
		out->conns[i].peer_address[sizeof(out->conns[i].peer_address) - 1] = '\0';
}

void ctl_message_decode(const uint8_t *p, uint32_t len, char *out, size_t outlen)
{
	size_t o = 0;

	if (outlen == 0)
		return;
	for (uint32_t i = 0; i < len && i < SPT_CTL_MESSAGE_MAX && p[i] && o + 1 < outlen; i++)
		out[o++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	out[o] = '\0';
}

const char *ctl_return_code_name(uint32_t rc)
{
	switch (rc) {
	case SPT_CTL_RC_SUCCESS:
		return "success";
	case SPT_CTL_RC_BAD_FRAME:
		return "malformed frame";
	case SPT_CTL_RC_UNSUPPORTED:
		return "unsupported control code";
	case SPT_CTL_RC_BAD_REQUEST:
		return "bad request";
	case SPT_CTL_RC_NO_SUCH_SESSION:
		return "no such session";
	case SPT_CTL_RC_TIMEOUT:
		return "timed out";
	case SPT_CTL_RC_PERMISSION:
		return "permission denied";
	case SPT_CTL_RC_BUSY:
		return "too many control clients";
	case SPT_CTL_RC_NO_MEMORY:
		return "out of memory";
	case SPT_CTL_RC_SHUTTING_DOWN:
		return "daemon shutting down";
	case SPT_CTL_RC_UNKNOWN_PROVIDER:
		return "no LUN is served by a provider of this name";
	case SPT_CTL_RC_PROVIDER_IN_USE:
		return "another provider serves this name";
	case SPT_CTL_RC_VERSION:
		return "provider protocol version not supported";
	default:
		return "unknown error";
	}
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 (RFC 3629). */
size_t ctl_utf8_len(const unsigned char *p)
{
	size_t n;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;	/* also stops at the NUL */
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* overlong forms, surrogates and beyond U+10FFFF are not UTF-8 */
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}
