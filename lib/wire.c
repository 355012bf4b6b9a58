/*
 * wire.c - encoding and decoding of rmsg datagrams (format in wire.h).
 *
 * A cursor walks the buffer; every read first checks that the bytes are
 * there, so a short or lying datagram is refused before anything past its
 * end is touched.
 */
#include "wire.h"

#include <string.h>

#include "crc32c.h"

/* ------------------------------------------------------------------------ */
/* Cursor                                                                    */
/* ------------------------------------------------------------------------ */

struct cursor {
    uint8_t *w;       /* writing: next byte (NULL when reading) */
    const uint8_t *r; /* reading: next byte */
    size_t left;      /* bytes left */
    int bad;          /* a read or write ran past the end */
};

static void put_u8(struct cursor *c, uint8_t v)
{
    if (c->left < 1) {
        c->bad = 1;
        return;
    }
    *c->w++ = v;
    c->left--;
}

static void put_u16(struct cursor *c, uint16_t v)
{
    put_u8(c, (uint8_t)(v >> 8));
    put_u8(c, (uint8_t)v);
}

static void put_u32(struct cursor *c, uint32_t v)
{
    if (c->left < 4) {
        c->bad = 1;
        return;
    }
    c->w[0] = (uint8_t)(v >> 24);
    c->w[1] = (uint8_t)(v >> 16);
    c->w[2] = (uint8_t)(v >> 8);
    c->w[3] = (uint8_t)v;
    c->w += 4;
    c->left -= 4;
}

static void put_u64(struct cursor *c, uint64_t v)
{
    put_u32(c, (uint32_t)(v >> 32));
    put_u32(c, (uint32_t)v);
}

static void put_bytes(struct cursor *c, const void *p, size_t n)
{
    if (c->left < n) {
        c->bad = 1;
        return;
    }
    if (n > 0)
        memcpy(c->w, p, n);
    c->w += n;
    c->left -= n;
}

static uint8_t get_u8(struct cursor *c)
{
    if (c->left < 1) {
        c->bad = 1;
        return 0;
    }
    c->left--;
    return *c->r++;
}

static uint16_t get_u16(struct cursor *c)
{
    uint16_t hi = get_u8(c);
    return (uint16_t)(hi << 8 | get_u8(c));
}

static uint32_t get_u32(struct cursor *c)
{
    if (c->left < 4) {
        c->bad = 1;
        return 0;
    }
    uint32_t v = (uint32_t)c->r[0] << 24 | (uint32_t)c->r[1] << 16 |
                 (uint32_t)c->r[2] << 8 | c->r[3];
    c->r += 4;
    c->left -= 4;
    return v;
}

static uint64_t get_u64(struct cursor *c)
{
    uint64_t hi = get_u32(c);
    return hi << 32 | get_u32(c);
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
    struct cursor c = {.w = buf, .left = cap};
    put_u8(&c, WIRE_VERSION);
    put_u8(&c, p->type);
    put_u8(&c, p->flags);
    put_u8(&c, p->nsack);
    put_u32(&c, p->src_cid);
    put_u32(&c, p->dst_cid);
    put_u32(&c, 0); /* CRC, filled in last */
    put_u32(&c, p->ack);
    put_u32(&c, p->window);
    put_u32(&c, p->ack_delay_us);
    put_u32(&c, p->max_msg);
    for (int i = 0; i < p->nsack; i++) {
        put_u32(&c, p->sack[i].first);
        put_u32(&c, p->sack[i].end);
    }
    if (p->flags & WIRE_FLAG_TOKEN)
        put_u64(&c, p->token);
    if (p->type == WIRE_DATA) {
        put_u32(&c, p->seq);
        put_u32(&c, p->msg_len);
        put_u32(&c, p->frag_off);
        put_u16(&c, p->payload_len);
        if (with_payload)
            put_bytes(&c, p->payload, p->payload_len);
    } else if (body_size(p) == WIRE_COOKIE_BYTES) {
        put_u64(&c, p->cookie);
    }
    if (c.bad)
        return 0;
    size_t len = (size_t)(c.w - buf);
    uint32_t crc = crc32c(0, buf, len);
    if (skip > 0 && p->payload_shift && p->payload_shift->n == skip)
        crc = crc32c_combine(p->payload_shift, crc, p->payload_crc);
    else if (skip > 0)
        crc = crc32c(crc, p->payload, skip);
    struct cursor at_crc = {.w = buf + 12, .left = 4};
    put_u32(&at_crc, crc);
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

/* Checks the CRC: computed over the datagram with the CRC field zeroed. */
static int checksum_ok(const uint8_t *buf, size_t len)
{
    static const uint8_t zero[4];
    uint32_t want = (uint32_t)buf[12] << 24 | (uint32_t)buf[13] << 16 |
                    (uint32_t)buf[14] << 8 | buf[15];
    uint32_t c = crc32c(0, buf, 12);
    c = crc32c(c, zero, 4);
    c = crc32c(c, buf + 16, len - 16);
    return c == want;
}

/* Decodes the type-specific body; the cursor must end exactly at the end. */
static int decode_body(struct cursor *c, struct wire_packet *p)
{
    if (p->type == WIRE_DATA) {
        p->seq = get_u32(c);
        p->msg_len = get_u32(c);
        p->frag_off = get_u32(c);
        p->payload_len = get_u16(c);
        if (c->bad || c->left != p->payload_len)
            return WIRE_ERR_FORMAT;
        if (p->frag_off > p->msg_len ||
            p->payload_len > p->msg_len - p->frag_off)
            return WIRE_ERR_FORMAT;
        p->payload = c->r;
        p->payload_shift = NULL;
        return WIRE_OK;
    }
    if (body_size(p) == WIRE_COOKIE_BYTES)
        p->cookie = get_u64(c);
    if (c->bad || c->left != 0)
        return WIRE_ERR_FORMAT;
    return WIRE_OK;
}

int wire_decode(const uint8_t *buf, size_t len, struct wire_packet *p)
{
    if (len < WIRE_HEADER_BYTES)
        return WIRE_ERR_SHORT;
    struct cursor c = {.r = buf, .left = len};
    if (get_u8(&c) != WIRE_VERSION)
        return WIRE_ERR_VERSION;
    if (!checksum_ok(buf, len))
        return WIRE_ERR_CHECKSUM;
    p->type = get_u8(&c);
    p->flags = get_u8(&c);
    p->nsack = get_u8(&c);
    p->src_cid = get_u32(&c);
    p->dst_cid = get_u32(&c);
    (void)get_u32(&c); /* CRC, already checked */
    p->ack = get_u32(&c);
    p->window = get_u32(&c);
    p->ack_delay_us = get_u32(&c);
    p->max_msg = get_u32(&c);
    if (p->type < WIRE_DATA || p->type > WIRE_RETRY ||
        (p->flags & ~WIRE_FLAGS) != 0 || p->nsack > WIRE_MAX_SACK ||
        p->src_cid == 0)
        return WIRE_ERR_FORMAT;
    if (c.left < (size_t)p->nsack * WIRE_SACK_BYTES)
        return WIRE_ERR_SHORT;
    for (int i = 0; i < p->nsack; i++) {
        p->sack[i].first = get_u32(&c);
        p->sack[i].end = get_u32(&c);
        if (!seq_lt(p->sack[i].first, p->sack[i].end))
            return WIRE_ERR_FORMAT;
    }
    p->token = p->flags & WIRE_FLAG_TOKEN ? get_u64(&c) : 0;
    if (c.bad)
        return WIRE_ERR_SHORT;
    return decode_body(&c, p);
}
