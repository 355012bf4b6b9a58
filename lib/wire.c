/*
 * wire.c - encoding and decoding of rmsg datagrams (format in wire.h).
 *
 * The encoder checks the whole datagram's size against the buffer before
 * it writes the first field.  The decoder walks the buffer with a cursor
 * that hands out each block of fields (the header, the SACK blocks, the
 * token, the body) only once its length is checked, so a short or lying
 * datagram is refused before anything past its end is touched.
 */
#include "wire.h"

#include <string.h>

#include "crc32c.h"

/* ------------------------------------------------------------------------ */
/* Cursor                                                                    */
/* ------------------------------------------------------------------------ */

/* Writing: encode checks the datagram's whole size against the buffer
 * once, before the first byte, so each field is then simply stored. */
static uint8_t *put_u8(uint8_t *w, uint8_t v)
{
    *w = v;
    return w + 1;
}

static uint8_t *put_u16(uint8_t *w, uint16_t v)
{
    w[0] = (uint8_t)(v >> 8);
    w[1] = (uint8_t)v;
    return w + 2;
}

static uint8_t *put_u32(uint8_t *w, uint32_t v)
{
    w[0] = (uint8_t)(v >> 24);
    w[1] = (uint8_t)(v >> 16);
    w[2] = (uint8_t)(v >> 8);
    w[3] = (uint8_t)v;
    return w + 4;
}

static uint8_t *put_u64(uint8_t *w, uint64_t v)
{
    return put_u32(put_u32(w, (uint32_t)(v >> 32)), (uint32_t)v);
}

/* Reading: a block of fields is taken from the cursor whole, its length
 * checked once, and the fields are then read from it one by one.  A block
 * that is not all there is never read. */
struct cursor {
    const uint8_t *r; /* next byte */
    size_t left;      /* bytes left */
};

/* The next n bytes, or NULL when fewer are left. */
static const uint8_t *take(struct cursor *c, size_t n)
{
    if (c->left < n)
        return NULL;
    const uint8_t *b = c->r;
    c->r += n;
    c->left -= n;
    return b;
}

static uint16_t get_u16(const uint8_t *b)
{
    return (uint16_t)(b[0] << 8 | b[1]);
}

static uint32_t get_u32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
           (uint32_t)b[2] << 8 | b[3];
}

static uint64_t get_u64(const uint8_t *b)
{
    return (uint64_t)get_u32(b) << 32 | get_u32(b + 4);
}

/* ------------------------------------------------------------------------ */
/* Datagrams                                                                 */
/* ------------------------------------------------------------------------ */

/* Size of the body that follows the header and SACK blocks. */
static size_t body_size(const struct wire_packet *p)
{
    switch (p->type) {
    case WIRE_DATA:
        return WIRE_DATA_BYTES + (size_t)p->payload_len;
    case WIRE_CHALLENGE:
    case WIRE_ECHO:
    case WIRE_RETRY:
        return WIRE_COOKIE_BYTES;
    default:
        return 0;
    }
}

size_t wire_size(const struct wire_packet *p)
{
    return WIRE_HEADER_BYTES + (size_t)p->nsack * WIRE_SACK_BYTES +
           (p->flags & WIRE_FLAG_TOKEN ? WIRE_COOKIE_BYTES : 0) +
           body_size(p);
}

/* Encodes *p into buf, the payload of DATA too when with_payload, and
 * fills in the CRC (over the payload in any case).  Returns the bytes
 * written, or 0. */
static size_t encode(const struct wire_packet *p, uint8_t *buf, size_t cap,
                     int with_payload)
{
    size_t skip = p->type == WIRE_DATA && !with_payload ? p->payload_len : 0;
    if (p->nsack > WIRE_MAX_SACK || p->type < WIRE_DATA ||
        p->type > WIRE_RETRY || (p->flags & ~WIRE_FLAGS) != 0 ||
        wire_size(p) - skip > cap)
        return 0;
    uint8_t *w = buf;
    w = put_u8(w, WIRE_VERSION);
    w = put_u8(w, p->type);
    w = put_u8(w, p->flags);
    w = put_u8(w, p->nsack);
    w = put_u32(w, p->src_cid);
    w = put_u32(w, p->dst_cid);
    w = put_u32(w, 0); /* CRC, filled in last */
    w = put_u32(w, p->ack);
    w = put_u32(w, p->window);
    w = put_u32(w, p->ack_delay_us);
    w = put_u32(w, p->max_msg);
    for (int i = 0; i < p->nsack; i++) {
        w = put_u32(w, p->sack[i].first);
        w = put_u32(w, p->sack[i].end);
    }
    if (p->flags & WIRE_FLAG_TOKEN)
        w = put_u64(w, p->token);
    if (p->type == WIRE_DATA) {
        w = put_u32(w, p->seq);
        w = put_u32(w, p->msg_len);
        w = put_u32(w, p->frag_off);
        w = put_u16(w, p->payload_len);
        if (with_payload && p->payload_len > 0) {
            memcpy(w, p->payload, p->payload_len);
            w += p->payload_len;
        }
    } else if (body_size(p) == WIRE_COOKIE_BYTES) {
        w = put_u64(w, p->cookie);
    }
    size_t len = (size_t)(w - buf);
    uint32_t crc = crc32c(0, buf, len);
    if (skip > 0 && p->payload_shift && p->payload_shift->n == skip)
        crc = crc32c_combine(p->payload_shift, crc, p->payload_crc);
    else if (skip > 0)
        crc = crc32c(crc, p->payload, skip);
    put_u32(buf + 12, crc);
    return len;
}

size_t wire_encode(const struct wire_packet *p, uint8_t *buf, size_t cap)
{
    return encode(p, buf, cap, 1);
}

size_t wire_encode_head(const struct wire_packet *p, uint8_t *buf, size_t cap)
{
    return encode(p, buf, cap, 0);
}

/* The CRC register over the first n bytes of a datagram, its CRC field
 * taken as zero (n at least 16). */
static uint32_t crc_prefix(const uint8_t *buf, size_t n)
{
    uint8_t head[16];
    memcpy(head, buf, 16);
    memset(head + 12, 0, 4);
    return crc32c(crc32c(0, head, 16), buf + 16, n - 16);
}

static uint32_t crc_field(const uint8_t *buf)
{
    return (uint32_t)buf[12] << 24 | (uint32_t)buf[13] << 16 |
           (uint32_t)buf[14] << 8 | buf[15];
}

/* Checks the CRC: computed over the datagram with the CRC field zeroed
 * (in a copy of the first 16 bytes; the caller has checked they are
 * there). */
static int checksum_ok(const uint8_t *buf, size_t len)
{
    return crc_prefix(buf, len) == crc_field(buf);
}

/* Decodes the type-specific body; the cursor must end exactly at the end. */
static int decode_body(struct cursor *c, struct wire_packet *p)
{
    if (p->type == WIRE_DATA) {
        const uint8_t *b = take(c, WIRE_DATA_BYTES);
        if (b == NULL)
            return WIRE_ERR_FORMAT;
        p->seq = get_u32(b);
        p->msg_len = get_u32(b + 4);
        p->frag_off = get_u32(b + 8);
        p->payload_len = get_u16(b + 12);
        if (c->left != p->payload_len)
            return WIRE_ERR_FORMAT;
        if (p->frag_off > p->msg_len ||
            p->payload_len > p->msg_len - p->frag_off)
            return WIRE_ERR_FORMAT;
        p->payload = c->r;
        p->payload_shift = NULL;
        return WIRE_OK;
    }
    if (body_size(p) == WIRE_COOKIE_BYTES) {
        const uint8_t *b = take(c, WIRE_COOKIE_BYTES);
        if (b == NULL)
            return WIRE_ERR_FORMAT;
        p->cookie = get_u64(b);
    }
    return c->left == 0 ? WIRE_OK : WIRE_ERR_FORMAT;
}

static int decode_fields(const uint8_t *buf, size_t len, struct wire_packet *p);

/* Payloads shorter than this are checked with their header at once by
 * wire_decode_split. */
#define SPLIT_MIN 512

/* Decodes every field; with `whole` the CRC is checked first, else only
 * in the error case and for types other than DATA. */
static int decode(const uint8_t *buf, size_t len, struct wire_packet *p,
                  int whole)
{
    if (len < WIRE_HEADER_BYTES)
        return WIRE_ERR_SHORT;
    if (buf[0] != WIRE_VERSION)
        return WIRE_ERR_VERSION;
    if (whole && !checksum_ok(buf, len))
        return WIRE_ERR_CHECKSUM;
    int r = decode_fields(buf, len, p);
    if (whole)
        return r;
    /* A short payload is checked with the rest at once: one pass over the
     * datagram costs less than two, and its copy is no burden. */
    p->payload_checked = r != WIRE_OK || p->type != WIRE_DATA ||
                         p->payload_len < SPLIT_MIN;
    if (p->payload_checked)
        return checksum_ok(buf, len) ? r : WIRE_ERR_CHECKSUM;
    p->head_crc = crc_prefix(buf, (size_t)(p->payload - buf));
    p->want_crc = crc_field(buf);
    return WIRE_OK;
}

int wire_decode(const uint8_t *buf, size_t len, struct wire_packet *p)
{
    return decode(buf, len, p, 1);
}

int wire_decode_split(const uint8_t *buf, size_t len, struct wire_packet *p)
{
    return decode(buf, len, p, 0);
}

int wire_payload_ok(const struct wire_packet *p)
{
    return p->payload_checked ||
           crc32c(p->head_crc, p->payload, p->payload_len) == p->want_crc;
}

int wire_payload_copy(const struct wire_packet *p, void *dst)
{
    if (p->payload_checked) {
        memcpy(dst, p->payload, p->payload_len);
        return 1;
    }
    return crc32c_copy(p->head_crc, dst, p->payload, p->payload_len) ==
           p->want_crc;
}

/* The fields of a datagram of len bytes (at least a header, whose version
 * is checked), checked for range and length. */
static int decode_fields(const uint8_t *buf, size_t len, struct wire_packet *p)
{
    struct cursor c = {.r = buf, .left = len};
    const uint8_t *h = take(&c, WIRE_HEADER_BYTES);
    p->type = h[1];
    p->flags = h[2];
    p->nsack = h[3];
    p->src_cid = get_u32(h + 4);
    p->dst_cid = get_u32(h + 8);
    /* h + 12: the CRC, checked by the caller */
    p->ack = get_u32(h + 16);
    p->window = get_u32(h + 20);
    p->ack_delay_us = get_u32(h + 24);
    p->max_msg = get_u32(h + 28);
    if (p->type < WIRE_DATA || p->type > WIRE_RETRY ||
        (p->flags & ~WIRE_FLAGS) != 0 || p->nsack > WIRE_MAX_SACK ||
        p->src_cid == 0)
        return WIRE_ERR_FORMAT;
    const uint8_t *s = take(&c, (size_t)p->nsack * WIRE_SACK_BYTES);
    if (s == NULL)
        return WIRE_ERR_SHORT;
    for (int i = 0; i < p->nsack; i++) {
        p->sack[i].first = get_u32(s + WIRE_SACK_BYTES * i);
        p->sack[i].end = get_u32(s + WIRE_SACK_BYTES * i + 4);
        if (!seq_lt(p->sack[i].first, p->sack[i].end))
            return WIRE_ERR_FORMAT;
    }
    p->token = 0;
    if (p->flags & WIRE_FLAG_TOKEN) {
        const uint8_t *t = take(&c, WIRE_COOKIE_BYTES);
        if (t == NULL)
            return WIRE_ERR_SHORT;
        p->token = get_u64(t);
    }
    return decode_body(&c, p);
}
