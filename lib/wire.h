/*
 * wire.h - rmsg's datagram format: encoding and decoding, field by field.
 *
 * This is the one authoritative description of the format; README.md links
 * here.  Every field is in network byte order (big-endian) and is written and
 * read one at a time by the helpers in wire.c, after a check of the
 * datagram's size before writing and of each field's bytes before reading:
 * no struct is ever cast over a buffer.
 *
 * Every datagram starts with the common header (32 bytes):
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +---------------+---------------+---------------+---------------+
 *  0 |    version    |     type      |     flags     |     nsack     |
 *    +---------------+---------------+---------------+---------------+
 *  4 |                    source connection id                       |
 *    +---------------------------------------------------------------+
 *  8 |                 destination connection id                     |
 *    +---------------------------------------------------------------+
 * 12 |                           CRC-32C                             |
 *    +---------------------------------------------------------------+
 * 16 |                    cumulative acknowledgment                  |
 *    +---------------------------------------------------------------+
 * 20 |                    receive window (fragments)                 |
 *    +---------------------------------------------------------------+
 * 24 |                    acknowledgment delay (us)                  |
 *    +---------------------------------------------------------------+
 * 28 |                  largest message accepted (bytes)             |
 *    +---------------------------------------------------------------+
 * 32 |  nsack selective-acknowledgment blocks, 8 bytes each:         |
 *    |  first sequence (4), one past the last sequence (4)           |
 *    +---------------------------------------------------------------+
 *    |  address token (8), only when flag TOKEN is set               |
 *    +---------------------------------------------------------------+
 *    |  the body of the type (below)                                 |
 *
 * | field     | meaning                                                    |
 * |-----------|------------------------------------------------------------|
 * | version   | 1.  Anything else is counted as malformed and dropped.     |
 * | type      | 1 DATA, 2 ACK, 3 CHALLENGE, 4 ECHO, 5 RESET, 6 RETRY.      |
 * | flags     | bit 0 ACK: the four acknowledgment fields are valid.       |
 * |           | bit 1 TOKEN: an address token follows the SACK blocks.     |
 * |           | The other bits must be zero.                               |
 * | nsack     | number of SACK blocks, at most WIRE_MAX_SACK.              |
 * | src cid   | the sender's random id for this peer relation, chosen when |
 * |           | the relation is created (never 0).  It is also the first   |
 * |           | sequence number the sender uses toward this peer.          |
 * | dst cid   | the receiver's id as the sender knows it, 0 if not known.  |
 * | CRC-32C   | over the whole datagram, computed with this field zero.    |
 * | ack       | every fragment with a sequence number below this one has   |
 * |           | arrived (sequence comparisons are modulo 2^32).            |
 * | window    | how many fragments from `ack` on the receiver can buffer.  |
 * | ack delay | microseconds between the arrival of the newest fragment   |
 * |           | this acknowledgment reports and its sending; the peer      |
 * |           | subtracts it from its round-trip sample and allows for it  |
 * |           | in its retransmission timer.                               |
 * | max msg   | the largest message, in bytes, the sender will accept.     |
 * | SACK      | ranges [first, end) of fragments received above `ack`.     |
 * |           | The first holds the most recently received fragment (RFC   |
 * |           | 2018); the rest follow from the lowest up and may overlap  |
 * |           | it.  A receiver never takes back what a block reported.    |
 * | token     | the token of the last RETRY from this peer, echoed until   |
 * |           | the peer's cid is known: proof that the sender receives    |
 * |           | at its address.                                            |
 *
 * DATA body (14 bytes, then the payload):
 *
 * | field       | size | meaning                                          |
 * |-------------|------|--------------------------------------------------|
 * | seq         | 4    | this fragment's sequence number                  |
 * | msg len     | 4    | length of the whole message in bytes             |
 * | frag off    | 4    | offset of this payload within the message        |
 * | payload len | 2    | bytes of payload that follow; must equal the     |
 * |             |      | rest of the datagram exactly                     |
 *
 * A message's fragments have consecutive sequence numbers, the first has
 * offset 0, and offset + payload len never exceeds msg len; a zero-length
 * message is one fragment with msg len 0.  The receiver checks all of this.
 *
 * ACK and RESET bodies: empty.  A RESET says "I have no relation with the
 * id in dst cid": the receiver drops that relation and starts afresh.
 * CHALLENGE and ECHO bodies: an 8-byte cookie.  A CHALLENGE asks the
 * relation named by dst cid to prove it is alive at this address by echoing
 * the cookie in an ECHO; see "Relations" in rmsg.c.
 *
 * RETRY body: an 8-byte token.  An endpoint that validates addresses sends
 * it, keeping no state, in answer to the first datagram of a new relation
 * (dst cid 0) from an address it does not know: "send that again with
 * this token".  dst cid names the relation it answers; src cid is 1 (the
 * answering side has no relation).  It is never larger than the datagram
 * it answers, so a forged source address cannot make an amplifier of the
 * endpoint; see "Address validation" in rmsg.c.
 */
#ifndef RMSG_WIRE_H
#define RMSG_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "crc32c.h"

#define WIRE_VERSION      1
#define WIRE_HEADER_BYTES 32
#define WIRE_SACK_BYTES   8
#define WIRE_DATA_BYTES   14
#define WIRE_COOKIE_BYTES 8
#define WIRE_MAX_SACK     32
#define WIRE_MAX_DATAGRAM 65507 /* largest UDP payload over IPv4 */

enum wire_type {
    WIRE_DATA = 1,
    WIRE_ACK = 2,
    WIRE_CHALLENGE = 3,
    WIRE_ECHO = 4,
    WIRE_RESET = 5,
    WIRE_RETRY = 6,
};

#define WIRE_FLAG_ACK 0x01u
#define WIRE_FLAG_TOKEN 0x02u
#define WIRE_FLAGS (WIRE_FLAG_ACK | WIRE_FLAG_TOKEN)

/* One selective-acknowledgment block: fragments [first, end) arrived. */
struct wire_sack {
    uint32_t first;
    uint32_t end;
};

/* A datagram, decoded.  For DATA, payload points into the decoded buffer. */
struct wire_packet {
    uint8_t type;
    uint8_t flags;
    uint8_t nsack;
    uint32_t src_cid;
    uint32_t dst_cid;
    uint32_t ack;
    uint32_t window;
    uint32_t ack_delay_us;
    uint32_t max_msg;
    uint64_t token; /* with WIRE_FLAG_TOKEN */
    /* DATA */
    uint32_t seq;
    uint32_t msg_len;
    uint32_t frag_off;
    uint16_t payload_len;
    const uint8_t *payload;
    /* For wire_encode_head only, optional: the payload's CRC computed
     * before (crc32c(0, payload, payload_len)), with the shift made for
     * payload_len bytes, so that the payload need not be read again. */
    const struct crc32c_shift *payload_shift;
    uint32_t payload_crc;
    /* Set by wire_decode_split for DATA: the CRC of the datagram up to the
     * payload, and the CRC the datagram must have; or payload_checked,
     * when the whole datagram has been checked already (a short one). */
    uint32_t head_crc, want_crc;
    int payload_checked;
    /* CHALLENGE, ECHO, RETRY */
    uint64_t cookie;
    /* Last, so that wire_packet_clear can leave the blocks out: only the
     * first nsack are ever read. */
    struct wire_sack sack[WIRE_MAX_SACK];
};

/* Zeroes every field of *p but the SACK blocks, and sets its type: what a
 * sender starts from, at an eighth of the cost of clearing it whole. */
static inline void wire_packet_clear(struct wire_packet *p, uint8_t type)
{
    memset(p, 0, offsetof(struct wire_packet, sack));
    p->type = type;
}

/* Why a datagram was refused. */
enum wire_error {
    WIRE_OK = 0,
    WIRE_ERR_SHORT = -1,    /* shorter than its header says */
    WIRE_ERR_VERSION = -2,  /* unknown version */
    WIRE_ERR_CHECKSUM = -3, /* CRC mismatch: corrupted in transit */
    WIRE_ERR_FORMAT = -4,   /* bad type, flags, counts or lengths */
};

/* Bytes a datagram of this type with nsack blocks and payload takes. */
size_t wire_size(const struct wire_packet *p);

/* Encodes *p (with p->payload_len bytes of p->payload for DATA) into buf and
 * fills in the CRC.  Returns the datagram's length, or 0 when cap is too
 * small or a count is out of range (nothing useful is left in buf). */
size_t wire_encode(const struct wire_packet *p, uint8_t *buf, size_t cap);

/* Like wire_encode, but for DATA writes everything except the payload,
 * which must follow the returned bytes on the wire unchanged (the CRC
 * covers it): a sender can then send header and payload without copying
 * the payload.  For other types the same as wire_encode. */
size_t wire_encode_head(const struct wire_packet *p, uint8_t *buf, size_t cap);

/* The most bytes wire_encode_head writes. */
#define WIRE_HEAD_MAX                                                         \
    (WIRE_HEADER_BYTES + WIRE_MAX_SACK * WIRE_SACK_BYTES +                   \
     WIRE_COOKIE_BYTES + WIRE_DATA_BYTES)

/* Checks and decodes a datagram of len bytes.  Every length is checked before
 * the bytes it covers are read; nothing is allocated.  Returns WIRE_OK or a
 * wire_error; on error *p is unspecified. */
int wire_decode(const uint8_t *buf, size_t len, struct wire_packet *p);

/* Like wire_decode, but for DATA the payload is not checked: the CRC of
 * everything before it is left in p->head_crc and the CRC the datagram
 * must have in p->want_crc, and the caller finishes the check with
 * wire_payload_ok or wire_payload_copy, before it acts on any field.  A
 * receiver can then check the payload while copying it where it belongs,
 * reading it once.  Other types, and DATA with a payload of under 512
 * bytes, are checked whole (and the two calls then say yes).  Returns as
 * wire_decode (a datagram refused for its format is checked whole first,
 * so that corruption is still reported as WIRE_ERR_CHECKSUM). */
int wire_decode_split(const uint8_t *buf, size_t len, struct wire_packet *p);

/* Finishes wire_decode_split's check of a DATA datagram: 1 when the CRC
 * over the payload is right, else 0. */
int wire_payload_ok(const struct wire_packet *p);

/* The same, copying the payload to dst (payload_len bytes, not
 * overlapping it) in the same pass.  On 0, dst holds the bytes that came,
 * which must not be used. */
int wire_payload_copy(const struct wire_packet *p, void *dst);

/* True when a comes before b in sequence space (modulo 2^32, RFC 1982). */
static inline int seq_lt(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}
static inline int seq_le(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) <= 0;
}

#endif
