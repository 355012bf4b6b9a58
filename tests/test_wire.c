/*
 * test_wire.c - the datagram format: round trips, and every way a datagram
 * can be refused.  Also SipHash against its published test vectors.
 */
#include <string.h>

#include <CUnit/CUnit.h>

#include "crc32c.h"
#include "siphash.h"
#include "tests.h"
#include "wire.h"

/* The SipHash paper's appendix: key 00..0f, messages 00, 00 01, ... */
static void test_siphash_vectors(void)
{
    uint64_t k[2] = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
    uint8_t m[16];
    for (int i = 0; i < 16; i++)
        m[i] = (uint8_t)i;
    CU_ASSERT_EQUAL(siphash24(k, m, 0), 0x726fdb47dd0e0e31ull);
    CU_ASSERT_EQUAL(siphash24(k, m, 1), 0x74f839c593dc67fdull);
    CU_ASSERT_EQUAL(siphash24(k, m, 15), 0xa129ca6149be45e5ull);
}

static struct wire_packet sample(void)
{
    static const uint8_t payload[5] = {1, 2, 3, 4, 5};
    struct wire_packet p = {.type = WIRE_DATA, .flags = WIRE_FLAG_ACK,
                            .nsack = 2, .src_cid = 0xdeadbeef,
                            .dst_cid = 7, .ack = 0xfffffff0, .window = 99,
                            .ack_delay_us = 1234, .max_msg = 1u << 30,
                            .seq = 0xffffffff, .msg_len = 10,
                            .frag_off = 5, .payload_len = 5,
                            .payload = payload};
    p.sack[0] = (struct wire_sack){0xfffffff2, 0xfffffff5};
    p.sack[1] = (struct wire_sack){0xfffffffe, 3}; /* wraps */
    return p;
}

static void test_round_trip(void)
{
    struct wire_packet p = sample(), q;
    uint8_t buf[256];
    size_t n = wire_encode(&p, buf, sizeof(buf));
    CU_ASSERT_EQUAL(n, WIRE_HEADER_BYTES + 2 * WIRE_SACK_BYTES +
                           WIRE_DATA_BYTES + 5);
    CU_ASSERT_EQUAL(n, wire_size(&p));
    CU_ASSERT_EQUAL(buf[0], WIRE_VERSION);
    CU_ASSERT_EQUAL(buf[4], 0xde); /* network byte order */
    CU_ASSERT_EQUAL_FATAL(wire_decode(buf, n, &q), WIRE_OK);
    CU_ASSERT_EQUAL(q.src_cid, p.src_cid);
    CU_ASSERT_EQUAL(q.ack, p.ack);
    CU_ASSERT_EQUAL(q.sack[1].end, 3u);
    CU_ASSERT_EQUAL(q.seq, p.seq);
    CU_ASSERT_EQUAL(q.payload_len, 5);
    CU_ASSERT(memcmp(q.payload, p.payload, 5) == 0);
    CU_ASSERT_EQUAL(wire_encode(&p, buf, n - 1), 0); /* too small */
    struct wire_packet c = {.type = WIRE_CHALLENGE, .src_cid = 1,
                            .cookie = 0x0102030405060708ull};
    n = wire_encode(&c, buf, sizeof(buf));
    CU_ASSERT_EQUAL_FATAL(wire_decode(buf, n, &q), WIRE_OK);
    CU_ASSERT_EQUAL(q.cookie, c.cookie);
}

/* A header written without its payload, with the payload's CRC given
 * (computed apart, as rmsg does while copying a message in) or not, is
 * the same header: a datagram that decodes.  A CRC given for another
 * length is not used. */
static void test_head_with_payload_crc(void)
{
    static uint8_t payload[1400];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 13 + 1);
    struct wire_packet p = sample();
    p.msg_len = 2 * sizeof(payload);
    p.frag_off = 0;
    p.payload_len = sizeof(payload);
    p.payload = payload;
    uint8_t plain[WIRE_HEAD_MAX], given[WIRE_HEAD_MAX], whole[2048];
    size_t n = wire_encode_head(&p, plain, sizeof(plain));
    CU_ASSERT_FATAL(n > 0);
    static struct crc32c_shift sh, other;
    crc32c_shift_init(&sh, sizeof(payload));
    crc32c_shift_init(&other, sizeof(payload) - 1);
    p.payload_shift = &sh;
    p.payload_crc = crc32c(0, payload, sizeof(payload));
    CU_ASSERT_EQUAL(wire_encode_head(&p, given, sizeof(given)), n);
    CU_ASSERT(memcmp(plain, given, n) == 0);
    memcpy(whole, given, n);
    memcpy(whole + n, payload, sizeof(payload));
    struct wire_packet q;
    CU_ASSERT_EQUAL(wire_decode(whole, n + sizeof(payload), &q), WIRE_OK);
    CU_ASSERT(q.payload_shift == NULL);
    p.payload_shift = &other; /* made for another length: ignored */
    p.payload_crc = 0;
    CU_ASSERT_EQUAL(wire_encode_head(&p, given, sizeof(given)), n);
    CU_ASSERT(memcmp(plain, given, n) == 0);
}

/* Re-encodes the CRC after a deliberate change, so that the change itself
 * (not the checksum) is what the decoder must catch. */
static void reseal(uint8_t *b, size_t n)
{
    memset(b + 12, 0, 4);
    uint32_t c = crc32c(0, b, n);
    b[12] = (uint8_t)(c >> 24);
    b[13] = (uint8_t)(c >> 16);
    b[14] = (uint8_t)(c >> 8);
    b[15] = (uint8_t)c;
}

static void test_refusals(void)
{
    struct wire_packet p = sample(), q;
    uint8_t good[256], b[256];
    size_t n = wire_encode(&p, good, sizeof(good));
    for (size_t len = 0; len < n; len++) /* every truncation */
        CU_ASSERT_NOT_EQUAL(wire_decode(good, len, &q), WIRE_OK);
    memcpy(b, good, n);
    b[n - 1] ^= 1;
    CU_ASSERT_EQUAL(wire_decode(b, n, &q), WIRE_ERR_CHECKSUM);
    memcpy(b, good, n);
    b[0] = 2;
    CU_ASSERT_EQUAL(wire_decode(b, n, &q), WIRE_ERR_VERSION);
    struct {
        size_t at;
        uint8_t v;
    } forge[] = {
        {1, 9},                /* unknown type */
        {2, 0x80},             /* unknown flag */
        {3, 40},               /* too many SACK blocks */
        {3, 3},                /* SACK count past the end */
        {4, 0},                /* src cid 0 (all four bytes) */
    };
    for (size_t i = 0; i < sizeof(forge) / sizeof(forge[0]); i++) {
        memcpy(b, good, n);
        if (forge[i].at == 4) { /* all four bytes of the cid */
            memset(b + 4, 0, 4);
        } else {
            b[forge[i].at] = forge[i].v;
        }
        reseal(b, n);
        CU_ASSERT_NOT_EQUAL(wire_decode(b, n, &q), WIRE_OK);
    }
    /* payload length that disagrees with the datagram */
    size_t body = WIRE_HEADER_BYTES + 2 * WIRE_SACK_BYTES;
    memcpy(b, good, n);
    b[body + 13] = 6;
    reseal(b, n);
    CU_ASSERT_EQUAL(wire_decode(b, n, &q), WIRE_ERR_FORMAT);
    /* fragment that would end past its message */
    memcpy(b, good, n);
    b[body + 11] = 6; /* offset 6 + 5 bytes > 10 */
    reseal(b, n);
    CU_ASSERT_EQUAL(wire_decode(b, n, &q), WIRE_ERR_FORMAT);
    /* an empty SACK range */
    memcpy(b, good, n);
    memcpy(b + WIRE_HEADER_BYTES + 4, b + WIRE_HEADER_BYTES, 4);
    reseal(b, n);
    CU_ASSERT_EQUAL(wire_decode(b, n, &q), WIRE_ERR_FORMAT);
}

/* wire_decode_split leaves a DATA payload's check to the caller (a long
 * one; a short one it checks at once): for every single-bit change
 * anywhere in a datagram (header, SACK blocks, payload), either the split
 * decode refuses it or neither wire_payload_ok nor wire_payload_copy
 * accepts it.  The datagram as sent is accepted by all three, the copy is
 * exact, and the refusals of wire_decode (its error codes included) are
 * the same. */
static void split_check(size_t plen)
{
    static uint8_t payload[3000], dg[4096], b[4096], dst[3000];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    struct wire_packet p = sample(), q, r;
    p.msg_len = 9000;
    p.frag_off = 3000;
    p.payload_len = (uint16_t)plen;
    p.payload = payload;
    size_t n = wire_encode(&p, dg, sizeof(dg));
    CU_ASSERT_FATAL(n > plen);
    CU_ASSERT_EQUAL_FATAL(wire_decode_split(dg, n, &q), WIRE_OK);
    CU_ASSERT(wire_payload_ok(&q));
    CU_ASSERT(wire_payload_copy(&q, dst));
    CU_ASSERT(memcmp(dst, payload, plen) == 0);
    CU_ASSERT_EQUAL(q.ack, p.ack);
    int accepted = 0, differ = 0;
    for (size_t bit = 0; bit < 8 * n; bit++) {
        memcpy(b, dg, n);
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int whole = wire_decode(b, n, &r);
        int split = wire_decode_split(b, n, &q);
        if (split == WIRE_OK &&
            (wire_payload_ok(&q) || wire_payload_copy(&q, dst)))
            accepted++;
        /* the same verdict as wire_decode, once the payload is checked */
        if (split == WIRE_OK && !wire_payload_ok(&q))
            split = WIRE_ERR_CHECKSUM;
        differ += split != whole;
    }
    CU_ASSERT_EQUAL(accepted, 0);
    CU_ASSERT_EQUAL(differ, 0);
}

static void test_split_check(void)
{
    split_check(3000); /* checked apart, with the folding CRC */
    split_check(511);  /* just short enough to be checked whole */
    split_check(512);
    split_check(0);
    uint8_t dg[64];
    struct wire_packet q;
    /* Other types are checked whole. */
    struct wire_packet a = {.type = WIRE_ACK, .src_cid = 5, .ack = 9};
    size_t n = wire_encode(&a, dg, sizeof(dg));
    CU_ASSERT_EQUAL(wire_decode_split(dg, n, &q), WIRE_OK);
    dg[n - 1] ^= 4;
    CU_ASSERT_EQUAL(wire_decode_split(dg, n, &q), WIRE_ERR_CHECKSUM);
}

int test_wire_register(void)
{
    CU_pSuite s = CU_add_suite("wire", NULL, NULL);
    if (s == NULL || !CU_add_test(s, "siphash vectors", test_siphash_vectors) ||
        !CU_add_test(s, "encode and decode", test_round_trip) ||
        !CU_add_test(s, "a header with its payload's CRC given",
                     test_head_with_payload_crc) ||
        !CU_add_test(s, "refusals", test_refusals) ||
        !CU_add_test(s, "the payload checked apart, in one pass with its copy",
                     test_split_check))
        return -1;
    return 0;
}
