/*
 * fuzz_wire.c - libFuzzer target for the datagram decoder (lib/wire.c).
 *
 * Every input is decoded twice: as it is, and with its CRC-32C fixed up
 * (when it is long enough to have one), so that the fuzzer does not have to
 * guess checksums to reach the field checks behind them.
 *
 * Properties checked on every datagram that decodes:
 *   - its fields are within the ranges wire.h promises (type, flags, SACK
 *     count and ranges, a DATA payload inside its message and inside the
 *     buffer);
 *   - wire_size gives its length back, and wire_encode of the decoded
 *     fields gives the very same bytes (the format has one encoding per
 *     datagram), which decode to the same fields again;
 *   - wire_encode_head gives the same bytes without a DATA payload.
 * And on every input, decoded or not: wire_decode_split, with its payload
 * check finished (wire_payload_ok, and wire_payload_copy into a buffer of
 * the payload's size), gives the verdict wire_decode gives.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "crc32c.h"
#include "wire.h"


/* Writes the CRC-32C the decoder expects into a copy of a datagram. */
static void fix_crc(uint8_t *b, size_t len)
{
    memset(b + 12, 0, 4);
    uint32_t c = crc32c(0, b, len);
    b[12] = (uint8_t)(c >> 24);
    b[13] = (uint8_t)(c >> 16);
    b[14] = (uint8_t)(c >> 8);
    b[15] = (uint8_t)c;
}

/* The fields a decoded datagram must have, whatever the input. */
static void check_fields(const struct wire_packet *p, const uint8_t *buf,
                         size_t len)
{
    CHECK(p->type >= WIRE_DATA && p->type <= WIRE_RETRY);
    CHECK((p->flags & ~WIRE_FLAGS) == 0);
    CHECK(p->nsack <= WIRE_MAX_SACK);
    CHECK(p->src_cid != 0);
    for (int i = 0; i < p->nsack; i++)
        CHECK(seq_lt(p->sack[i].first, p->sack[i].end));
    if (p->type == WIRE_DATA) {
        CHECK(p->frag_off <= p->msg_len);
        CHECK(p->payload_len <= p->msg_len - p->frag_off);
        CHECK(p->payload >= buf && p->payload + p->payload_len == buf + len);
    }
}

/* The same fields, compared one by one (the struct has padding). */
static int same(const struct wire_packet *a, const struct wire_packet *b)
{
    if (a->type != b->type || a->flags != b->flags || a->nsack != b->nsack ||
        a->src_cid != b->src_cid || a->dst_cid != b->dst_cid ||
        a->ack != b->ack || a->window != b->window ||
        a->ack_delay_us != b->ack_delay_us || a->max_msg != b->max_msg)
        return 0;
    for (int i = 0; i < a->nsack; i++)
        if (a->sack[i].first != b->sack[i].first ||
            a->sack[i].end != b->sack[i].end)
            return 0;
    if ((a->flags & WIRE_FLAG_TOKEN) && a->token != b->token)
        return 0;
    if (a->type == WIRE_DATA)
        return a->seq == b->seq && a->msg_len == b->msg_len &&
               a->frag_off == b->frag_off &&
               a->payload_len == b->payload_len &&
               memcmp(a->payload, b->payload, a->payload_len) == 0;
    if (a->type == WIRE_CHALLENGE || a->type == WIRE_ECHO ||
        a->type == WIRE_RETRY)
        return a->cookie == b->cookie;
    return 1;
}

/* wire_decode_split and its payload check agree with wire_decode. */
static void split_agrees(const uint8_t *buf, size_t len, int whole)
{
    struct wire_packet s;
    int r = wire_decode_split(buf, len, &s);
    if (r == WIRE_OK && s.type == WIRE_DATA) {
        uint8_t *dst = malloc(s.payload_len ? s.payload_len : 1);
        CHECK(dst != NULL);
        int ok = wire_payload_ok(&s);
        CHECK(wire_payload_copy(&s, dst) == ok);
        CHECK(memcmp(dst, s.payload, s.payload_len) == 0);
        free(dst);
        if (!ok)
            r = WIRE_ERR_CHECKSUM;
    }
    CHECK(r == whole);
}

/* Decodes buf; when it decodes, checks the properties at the top. */
static void one(const uint8_t *buf, size_t len)
{
    struct wire_packet p, q;
    int whole = wire_decode(buf, len, &p);
    split_agrees(buf, len, whole);
    if (whole != WIRE_OK)
        return;
    check_fields(&p, buf, len);
    CHECK(wire_size(&p) == len);
    uint8_t *out = malloc(len);
    CHECK(out != NULL);
    CHECK(wire_encode(&p, out, len) == len);
    CHECK(memcmp(out, buf, len) == 0);
    CHECK(len == 0 || wire_encode(&p, out, len - 1) == 0);
    CHECK(wire_decode(out, len, &q) == WIRE_OK);
    CHECK(same(&p, &q));
    /* The head alone, as a sender that does not copy payloads writes it:
     * everything but a DATA payload, checksum included. */
    uint8_t head[WIRE_HEAD_MAX];
    size_t body = p.type == WIRE_DATA ? p.payload_len : 0;
    CHECK(wire_encode_head(&p, head, sizeof(head)) == len - body);
    CHECK(memcmp(head, buf, len - body) == 0);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly the input's size, so that any read past the end
     * is caught. */
    uint8_t *b = malloc(size ? size : 1);
    if (b == NULL)
        return 0;
    memcpy(b, data, size);
    one(b, size);
    if (size >= WIRE_HEADER_BYTES) {
        fix_crc(b, size);
        one(b, size);
    }
    free(b);
    return 0;
}
