/*
 * test_marshal.c - the RPC marshalling helpers: exact bytes of a known
 * encoding, round trips of every type at its extremes, every way a decode
 * can be refused (each cut of a truncated message, lying length prefixes,
 * bad booleans, embedded NULs, size limits, trailing bytes), the encoder's
 * limit and sticky errors, and random input decoded against a fixed schema.
 *
 * Inputs to the decoder are copied into buffers of exactly their size
 * (see exact_copy), so that under AddressSanitizer a read one byte past the
 * end is a crash, not a silent success.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "rpc_marshal.h"
#include "tests.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* A malloc'd copy of exactly n bytes (at least one byte is allocated so the
 * result is never NULL); the caller frees it. */
static uint8_t *exact_copy(const void *p, size_t n)
{
    uint8_t *c = malloc(n > 0 ? n : 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    if (n > 0)
        memcpy(c, p, n);
    return c;
}

static uint64_t bits_of(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof(b));
    return b;
}

static double double_of(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

/* A fixed-seed generator (xorshift64*) so failures reproduce. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* ------------------------------------------------------------------------ */
/* Golden bytes                                                              */
/* ------------------------------------------------------------------------ */

/* One value of every type, and the bytes the format says they must be. */
static void test_golden(void)
{
    static const uint8_t want[] = {
        0xab,                                           /* u8 */
        0x01, 0x02,                                     /* u16 */
        0x01, 0x02, 0x03, 0x04,                         /* u32 */
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* u64 */
        0xff,                                           /* i8 -1 */
        0xff, 0xfe,                                     /* i16 -2 */
        0x80, 0x00, 0x00, 0x00,                         /* i32 min */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x85, /* i64 -123 */
        0x01, 0x00,                                     /* true, false */
        0x3f, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 1.0 */
        0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* -0.0 */
        0x00, 0x00, 0x00, 0x02, 0xde, 0xad,             /* bytes */
        0x00, 0x00, 0x00, 0x02, 'h',  'i',              /* "hi" */
        0x00, 0x00, 0x00, 0x00,                         /* "" */
        0xca, 0xfe,                                     /* raw */
        0x00, 0x00, 0x01, 0x00,                         /* count 256 */
    };
    static const uint8_t dead[] = {0xde, 0xad}, cafe[] = {0xca, 0xfe};
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    CU_ASSERT_EQUAL(rpc_put_u8(&e, 0xab), 0);
    CU_ASSERT_EQUAL(rpc_put_u16(&e, 0x0102), 0);
    CU_ASSERT_EQUAL(rpc_put_u32(&e, 0x01020304), 0);
    CU_ASSERT_EQUAL(rpc_put_u64(&e, 0x0102030405060708ull), 0);
    CU_ASSERT_EQUAL(rpc_put_i8(&e, -1), 0);
    CU_ASSERT_EQUAL(rpc_put_i16(&e, -2), 0);
    CU_ASSERT_EQUAL(rpc_put_i32(&e, INT32_MIN), 0);
    CU_ASSERT_EQUAL(rpc_put_i64(&e, -123), 0);
    CU_ASSERT_EQUAL(rpc_put_bool(&e, true), 0);
    CU_ASSERT_EQUAL(rpc_put_bool(&e, false), 0);
    CU_ASSERT_EQUAL(rpc_put_double(&e, 1.0), 0);
    CU_ASSERT_EQUAL(rpc_put_double(&e, -0.0), 0);
    CU_ASSERT_EQUAL(rpc_put_bytes(&e, dead, 2), 0);
    CU_ASSERT_EQUAL(rpc_put_string(&e, "hi"), 0);
    CU_ASSERT_EQUAL(rpc_put_string(&e, ""), 0);
    CU_ASSERT_EQUAL(rpc_put_raw(&e, cafe, 2), 0);
    CU_ASSERT_EQUAL(rpc_put_count(&e, 256), 0);
    CU_ASSERT_EQUAL(e.err, 0);
    CU_ASSERT_EQUAL_FATAL(e.len, sizeof(want));
    CU_ASSERT(memcmp(e.buf, want, sizeof(want)) == 0);
    rpc_enc_free(&e);
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                               */
/* ------------------------------------------------------------------------ */

/* Every integer type at its extremes and a few values in between: encoded,
 * decoded, and the decoder must end exactly at the end. */
static void test_round_trip_integers(void)
{
    static const uint8_t u8[] = {0, 1, 0x7f, 0x80, UINT8_MAX};
    static const uint16_t u16[] = {0, 1, 0xff, 0x100, 0x8000, UINT16_MAX};
    static const uint32_t u32[] = {0, 1, 0xffff, 0x80000000, UINT32_MAX};
    static const uint64_t u64[] = {0, 1, UINT32_MAX, 1ull << 63, UINT64_MAX};
    static const int8_t s8[] = {0, 1, -1, INT8_MIN, INT8_MAX};
    static const int16_t s16[] = {0, -1, -129, INT16_MIN, INT16_MAX};
    static const int32_t s32[] = {0, -1, -32769, INT32_MIN, INT32_MAX};
    static const int64_t s64[] = {0, -1, -1000000007, INT64_MIN, INT64_MAX};
    enum { N = 5 }; /* the first five of each (u16 has a sixth) */
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    for (int i = 0; i < N; i++) {
        rpc_put_u8(&e, u8[i]);
        rpc_put_u16(&e, u16[i]);
        rpc_put_u32(&e, u32[i]);
        rpc_put_u64(&e, u64[i]);
        rpc_put_i8(&e, s8[i]);
        rpc_put_i16(&e, s16[i]);
        rpc_put_i32(&e, s32[i]);
        rpc_put_i64(&e, s64[i]);
    }
    rpc_put_u16(&e, u16[N]);
    CU_ASSERT_EQUAL_FATAL(e.err, 0);
    CU_ASSERT_EQUAL(e.len, N * 30 + 2);
    struct rpc_dec d;
    rpc_dec_init(&d, e.buf, e.len);
    for (int i = 0; i < N; i++) {
        uint8_t a = 0x11;
        uint16_t b = 0x11;
        uint32_t c = 0x11;
        uint64_t x = 0x11;
        int8_t sa = 0x11;
        int16_t sb = 0x11;
        int32_t sc = 0x11;
        int64_t sx = 0x11;
        CU_ASSERT_EQUAL(rpc_get_u8(&d, &a), 0);
        CU_ASSERT_EQUAL(rpc_get_u16(&d, &b), 0);
        CU_ASSERT_EQUAL(rpc_get_u32(&d, &c), 0);
        CU_ASSERT_EQUAL(rpc_get_u64(&d, &x), 0);
        CU_ASSERT_EQUAL(rpc_get_i8(&d, &sa), 0);
        CU_ASSERT_EQUAL(rpc_get_i16(&d, &sb), 0);
        CU_ASSERT_EQUAL(rpc_get_i32(&d, &sc), 0);
        CU_ASSERT_EQUAL(rpc_get_i64(&d, &sx), 0);
        CU_ASSERT_EQUAL(a, u8[i]);
        CU_ASSERT_EQUAL(b, u16[i]);
        CU_ASSERT_EQUAL(c, u32[i]);
        CU_ASSERT_EQUAL(x, u64[i]);
        CU_ASSERT_EQUAL(sa, s8[i]);
        CU_ASSERT_EQUAL(sb, s16[i]);
        CU_ASSERT_EQUAL(sc, s32[i]);
        CU_ASSERT_EQUAL(sx, s64[i]);
    }
    uint16_t last = 0;
    CU_ASSERT_EQUAL(rpc_get_u16(&d, &last), 0);
    CU_ASSERT_EQUAL(last, UINT16_MAX);
    CU_ASSERT_EQUAL(rpc_dec_end(&d), 0);
    rpc_enc_free(&e);
}

/* The signed minimums and -1 by their exact bytes, both ways: a decoder
 * that sign-extended wrongly would pass a plain round trip of its own
 * output only if the encoder were wrong the same way. */
static void test_signed_extremes(void)
{
    static const uint8_t in[] = {
        0x80,                                           /* i8 min */
        0x80, 0x00,                                     /* i16 min */
        0x80, 0x00, 0x00, 0x00,                         /* i32 min */
        0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* i64 min */
        0xff,                                           /* i8 -1 */
    };
    struct rpc_dec d;
    int8_t a = 0;
    int16_t b = 0;
    int32_t c = 0;
    int64_t x = 0;
    int8_t m1 = 0;
    rpc_dec_init(&d, in, sizeof(in));
    CU_ASSERT_EQUAL(rpc_get_i8(&d, &a), 0);
    CU_ASSERT_EQUAL(rpc_get_i16(&d, &b), 0);
    CU_ASSERT_EQUAL(rpc_get_i32(&d, &c), 0);
    CU_ASSERT_EQUAL(rpc_get_i64(&d, &x), 0);
    CU_ASSERT_EQUAL(rpc_get_i8(&d, &m1), 0);
    CU_ASSERT_EQUAL(rpc_dec_end(&d), 0);
    CU_ASSERT_EQUAL(a, INT8_MIN);
    CU_ASSERT_EQUAL(b, INT16_MIN);
    CU_ASSERT_EQUAL(c, INT32_MIN);
    CU_ASSERT_EQUAL(x, INT64_MIN);
    CU_ASSERT_EQUAL(m1, -1);
}

/* Doubles travel as bit patterns: every pattern, NaN payloads and the sign
 * of zero included, must come back identical. */
static void test_round_trip_doubles(void)
{
    const uint64_t patterns[] = {
        0x7ff8000000000000ull, /* the usual quiet NaN */
        0x7ff0000000000001ull, /* a signalling NaN */
        0xfff8000000000123ull, /* a negative NaN with a payload */
        0x8000000000000000ull, /* -0.0 */
        0x0000000000000001ull, /* the smallest subnormal */
        bits_of(INFINITY),     bits_of(-INFINITY),
        bits_of(0.0),          bits_of(1.0 / 3.0),
        bits_of(-1e308),       bits_of(2.2250738585072014e-308),
    };
    const size_t n = sizeof(patterns) / sizeof(patterns[0]);
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    for (size_t i = 0; i < n; i++)
        rpc_put_double(&e, double_of(patterns[i]));
    CU_ASSERT_EQUAL_FATAL(e.err, 0);
    CU_ASSERT_EQUAL_FATAL(e.len, n * 8);
    CU_ASSERT_EQUAL(e.buf[0], 0x7f); /* big-endian: sign and exponent first */
    CU_ASSERT_EQUAL(e.buf[1], 0xf8);
    struct rpc_dec d;
    rpc_dec_init(&d, e.buf, e.len);
    for (size_t i = 0; i < n; i++) {
        double v = 42.0;
        CU_ASSERT_EQUAL(rpc_get_double(&d, &v), 0);
        CU_ASSERT_EQUAL(bits_of(v), patterns[i]);
    }
    CU_ASSERT_EQUAL(rpc_dec_end(&d), 0);
    /* And by value, for the ones that compare. */
    rpc_dec_init(&d, e.buf + 3 * 8, 8);
    double z = 1.0;
    CU_ASSERT_EQUAL(rpc_get_double(&d, &z), 0);
    CU_ASSERT(z == 0.0 && signbit(z));
    rpc_dec_init(&d, e.buf + 5 * 8, 8);
    double inf = 0.0;
    CU_ASSERT_EQUAL(rpc_get_double(&d, &inf), 0);
    CU_ASSERT(isinf(inf) && inf > 0);
    rpc_dec_init(&d, e.buf, 8);
    double nan = 0.0;
    CU_ASSERT_EQUAL(rpc_get_double(&d, &nan), 0);
    CU_ASSERT(isnan(nan));
    rpc_enc_free(&e);
}

/* Booleans encode as exactly 0 and 1 and decode back. */
static void test_round_trip_bools(void)
{
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    rpc_put_bool(&e, true);
    rpc_put_bool(&e, false);
    rpc_put_bool(&e, 7); /* any true value is 1 on the wire */
    CU_ASSERT_EQUAL_FATAL(e.len, 3);
    CU_ASSERT_EQUAL(e.buf[2], 1);
    struct rpc_dec d;
    bool a = false, b = true, c = false;
    rpc_dec_init(&d, e.buf, e.len);
    CU_ASSERT_EQUAL(rpc_get_bool(&d, &a), 0);
    CU_ASSERT_EQUAL(rpc_get_bool(&d, &b), 0);
    CU_ASSERT_EQUAL(rpc_get_bool(&d, &c), 0);
    CU_ASSERT(a == true && b == false && c == true);
    CU_ASSERT_EQUAL(rpc_dec_end(&d), 0);
    rpc_enc_free(&e);
}

/* Strings: empty, ASCII, UTF-8 (bytes pass through untouched), through
 * both the allocating and the caller-buffer decoders. */
static void test_round_trip_strings(void)
{
    const char *strs[] = {
        "",
        "hello, world",
        "h\xc3\xa9llo w\xc3\xb6rld",            /* héllo wörld */
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", /* 日本語 */
        "\xf0\x9f\x8e\x89 \xe2\x9c\x93",        /* 🎉 ✓ (4- and 3-byte) */
    };
    const size_t n = sizeof(strs) / sizeof(strs[0]);
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL(rpc_put_string(&e, strs[i]), 0);
    CU_ASSERT_EQUAL_FATAL(e.err, 0);
    uint8_t *in = exact_copy(e.buf, e.len);
    struct rpc_dec d, d2, d3;
    rpc_dec_init(&d, in, e.len);
    rpc_dec_init(&d2, in, e.len);
    rpc_dec_init(&d3, in, e.len);
    for (size_t i = 0; i < n; i++) {
        char *s = NULL;
        char buf[64];
        size_t len = 0;
        /* The prefix counts bytes, not characters (日本語 is 9). */
        CU_ASSERT_EQUAL(rpc_get_bytes(&d3, NULL, &len), 0);
        CU_ASSERT_EQUAL(len, strlen(strs[i]));
        if (i == 3)
            CU_ASSERT_EQUAL(len, 9);
        CU_ASSERT_EQUAL(rpc_get_string(&d, &s, SIZE_MAX), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_STRING_EQUAL(s, strs[i]);
        CU_ASSERT_EQUAL(strlen(s), strlen(strs[i]));
        free(s);
        CU_ASSERT_EQUAL(rpc_get_string_buf(&d2, buf, sizeof(buf)), 0);
        CU_ASSERT_STRING_EQUAL(buf, strs[i]);
    }
    CU_ASSERT_EQUAL(rpc_dec_end(&d), 0);
    CU_ASSERT_EQUAL(rpc_dec_end(&d2), 0);
    free(in);
    rpc_enc_free(&e);
}

/* Byte arrays: empty, small, and a megabyte; the decoder returns a view
 * into its buffer, not a copy. */
static void test_round_trip_bytes(void)
{
    const size_t big = 1u << 20;
    uint8_t *m = malloc(big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    for (size_t i = 0; i < big; i++)
        m[i] = (uint8_t)(i * 31 + (i >> 8));
    static const uint8_t small[] = {0, 1, 0xff};
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    CU_ASSERT_EQUAL(rpc_put_bytes(&e, NULL, 0), 0); /* empty, no pointer */
    CU_ASSERT_EQUAL(rpc_put_bytes(&e, small, 3), 0);
    CU_ASSERT_EQUAL(rpc_put_bytes(&e, m, big), 0);
    CU_ASSERT_EQUAL_FATAL(e.len, 4 + 7 + 4 + big);
    struct rpc_dec d;
    const void *p = NULL;
    size_t n = 99;
    rpc_dec_init(&d, e.buf, e.len);
    CU_ASSERT_EQUAL(rpc_get_bytes(&d, &p, &n), 0);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_PTR_EQUAL(p, e.buf + 4); /* a view, never NULL */
    CU_ASSERT_EQUAL(rpc_get_bytes(&d, &p, &n), 0);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_PTR_EQUAL(p, e.buf + 8);
    CU_ASSERT(memcmp(p, small, 3) == 0);
    CU_ASSERT_EQUAL(rpc_get_bytes(&d, &p, &n), 0);
    CU_ASSERT_EQUAL_FATAL(n, big);
    CU_ASSERT(memcmp(p, m, big) == 0);
    CU_ASSERT_EQUAL(rpc_dec_end(&d), 0);
    rpc_enc_free(&e);
    free(m);
}

/* Variable-length arrays (count, then elements) and fixed data (raw). */
static void test_arrays_and_raw(void)
{
    static const uint64_t v[] = {5, UINT64_MAX, 0};
    static const uint8_t id[16] = {1, 2,  3,  4,  5,  6,  7,  8,
                                   9, 10, 11, 12, 13, 14, 15, 16};
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    rpc_put_count(&e, 3);
    for (int i = 0; i < 3; i++)
        rpc_put_u64(&e, v[i]);
    rpc_put_raw(&e, id, sizeof(id));
    rpc_put_count(&e, 0);
    CU_ASSERT_EQUAL_FATAL(e.err, 0);
    CU_ASSERT_EQUAL(e.len, 4 + 24 + 16 + 4);
    struct rpc_dec d;
    size_t count = 0;
    rpc_dec_init(&d, e.buf, e.len);
    CU_ASSERT_EQUAL(rpc_get_count(&d, &count, 10, 8), 0);
    CU_ASSERT_EQUAL_FATAL(count, 3);
    for (size_t i = 0; i < count; i++) {
        uint64_t x = 1;
        CU_ASSERT_EQUAL(rpc_get_u64(&d, &x), 0);
        CU_ASSERT_EQUAL(x, v[i]);
    }
    uint8_t back[16] = {0};
    CU_ASSERT_EQUAL(rpc_get_raw(&d, back, sizeof(back)), 0);
    CU_ASSERT(memcmp(back, id, sizeof(id)) == 0);
    CU_ASSERT_EQUAL(rpc_get_count(&d, &count, 10, 8), 0);
    CU_ASSERT_EQUAL(count, 0);
    CU_ASSERT_EQUAL(rpc_dec_end(&d), 0);
    rpc_enc_free(&e);
}

/* NULL out-parameters skip values, checked but not stored. */
static void test_skip(void)
{
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    rpc_put_u32(&e, 1);
    rpc_put_string(&e, "skip me");
    rpc_put_bool(&e, true);
    rpc_put_raw(&e, "ab", 2);
    rpc_put_u16(&e, 0xbeef);
    struct rpc_dec d;
    uint16_t last = 0;
    rpc_dec_init(&d, e.buf, e.len);
    CU_ASSERT_EQUAL(rpc_get_u32(&d, NULL), 0);
    CU_ASSERT_EQUAL(rpc_get_string(&d, NULL, 100), 0);
    CU_ASSERT_EQUAL(rpc_get_bool(&d, NULL), 0);
    CU_ASSERT_EQUAL(rpc_get_raw(&d, NULL, 2), 0);
    CU_ASSERT_EQUAL(rpc_dec_left(&d), 2);
    CU_ASSERT_EQUAL(rpc_get_u16(&d, &last), 0);
    CU_ASSERT_EQUAL(last, 0xbeef);
    CU_ASSERT_EQUAL(rpc_dec_end(&d), 0);
    rpc_enc_free(&e);
}

/* ------------------------------------------------------------------------ */
/* Refusals                                                                  */
/* ------------------------------------------------------------------------ */

/* The values of the multi-field message used by the truncation tests. */
struct sample {
    uint8_t a;
    int16_t b;
    bool c;
    uint32_t d;
    char *s;
    const void *bytes;
    size_t nbytes;
    double f;
    size_t count;
    int64_t elems[2];
    char tail[8];
};

static uint8_t *encode_sample(size_t *len)
{
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    rpc_put_u8(&e, 7);
    rpc_put_i16(&e, -300);
    rpc_put_bool(&e, true);
    rpc_put_u32(&e, 0xdeadbeef);
    rpc_put_string(&e, "caf\xc3\xa9");
    rpc_put_bytes(&e, "\x01\x02\x03", 3);
    rpc_put_double(&e, -2.5);
    rpc_put_count(&e, 2);
    rpc_put_i64(&e, INT64_MIN);
    rpc_put_i64(&e, 42);
    rpc_put_string(&e, "end");
    return rpc_enc_take(&e, len);
}

/* Decodes the sample's schema into *v, stopping at nothing (errors are
 * sticky), and returns rpc_dec_end's verdict. */
static int decode_sample(const uint8_t *in, size_t len, struct sample *v)
{
    struct rpc_dec d;
    rpc_dec_init(&d, in, len);
    rpc_get_u8(&d, &v->a);
    rpc_get_i16(&d, &v->b);
    rpc_get_bool(&d, &v->c);
    rpc_get_u32(&d, &v->d);
    rpc_get_string(&d, &v->s, 64);
    rpc_get_bytes(&d, &v->bytes, &v->nbytes);
    rpc_get_double(&d, &v->f);
    if (rpc_get_count(&d, &v->count, 2, 8) == 0)
        for (size_t i = 0; i < v->count; i++)
            rpc_get_i64(&d, &v->elems[i]);
    rpc_get_string_buf(&d, v->tail, sizeof(v->tail));
    return rpc_dec_end(&d);
}

/* Every cut of a valid message is refused with -EBADMSG, never read past
 * (the input is an exact-size copy: ASan catches an over-read), and no
 * out-parameter at or after the cut is written; the whole message decodes
 * to its values. */
static void test_truncation(void)
{
    size_t n;
    uint8_t *full = encode_sample(&n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(full);
    CU_ASSERT_EQUAL_FATAL(n, 1 + 2 + 1 + 4 + 9 + 7 + 8 + 4 + 16 + 7);
    struct sample v = {0};
    CU_ASSERT_EQUAL_FATAL(decode_sample(full, n, &v), 0);
    CU_ASSERT_EQUAL(v.a, 7);
    CU_ASSERT_EQUAL(v.b, -300);
    CU_ASSERT(v.c);
    CU_ASSERT_EQUAL(v.d, 0xdeadbeef);
    CU_ASSERT_STRING_EQUAL(v.s, "caf\xc3\xa9");
    CU_ASSERT(v.nbytes == 3 && memcmp(v.bytes, "\x01\x02\x03", 3) == 0);
    CU_ASSERT(v.f == -2.5);
    CU_ASSERT_EQUAL(v.count, 2);
    CU_ASSERT_EQUAL(v.elems[0], INT64_MIN);
    CU_ASSERT_EQUAL(v.elems[1], 42);
    CU_ASSERT_STRING_EQUAL(v.tail, "end");
    free(v.s);
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *in = exact_copy(full, cut);
        struct sample w;
        memset(&w, 0x5a, sizeof(w)); /* sentinel in every field */
        w.s = NULL;
        CU_ASSERT_EQUAL(decode_sample(in, cut, &w), -EBADMSG);
        /* The last field cannot have been reached, and the sentinel of the
         * field in which the cut falls is still there. */
        CU_ASSERT_EQUAL(w.tail[0], 0x5a);
        if (cut < 1)
            CU_ASSERT_EQUAL(w.a, 0x5a);
        if (cut < 3)
            CU_ASSERT_EQUAL(w.b, 0x5a5a);
        if (cut < 17)
            CU_ASSERT_PTR_NULL(w.s);
        if (cut < 24)
            CU_ASSERT_EQUAL(w.nbytes, (size_t)0x5a5a5a5a5a5a5a5aull);
        free(w.s); /* allocated only when the cut is past the string */
        free(in);
    }
    free(full);
}

/* A length prefix that announces more than remains is refused before any
 * byte it covers is read; offset and out-parameters are unchanged. */
static void test_lying_prefix(void)
{
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c'};
    static const uint8_t one_more[] = {0, 0, 0, 4, 'a', 'b', 'c'};
    static const uint8_t exact[] = {0, 0, 0, 3, 'a', 'b', 'c'};
    const uint8_t *cases[] = {huge, one_more};
    for (int i = 0; i < 2; i++) {
        uint8_t *in = exact_copy(cases[i], 7);
        struct rpc_dec d;
        const void *p = in;
        size_t n = 12345;
        char *s = (char *)in;
        char buf[16] = "untouched";
        size_t count = 77;
        rpc_dec_init(&d, in, 7);
        CU_ASSERT_EQUAL(rpc_get_bytes(&d, &p, &n), -EBADMSG);
        CU_ASSERT_EQUAL(d.off, 0);
        rpc_dec_init(&d, in, 7);
        CU_ASSERT_EQUAL(rpc_get_string(&d, &s, SIZE_MAX), -EBADMSG);
        rpc_dec_init(&d, in, 7);
        CU_ASSERT_EQUAL(rpc_get_string_buf(&d, buf, sizeof(buf)), -EBADMSG);
        rpc_dec_init(&d, in, 7);
        CU_ASSERT_EQUAL(rpc_get_count(&d, &count, SIZE_MAX, 1), -EBADMSG);
        CU_ASSERT_EQUAL(rpc_dec_end(&d), -EBADMSG);
        CU_ASSERT_PTR_EQUAL(p, in);
        CU_ASSERT_EQUAL(n, 12345);
        CU_ASSERT_PTR_EQUAL(s, (char *)in);
        CU_ASSERT_STRING_EQUAL(buf, "untouched");
        CU_ASSERT_EQUAL(count, 77);
        free(in);
    }
    struct rpc_dec d;
    const void *p;
    size_t n;
    rpc_dec_init(&d, exact, sizeof(exact));
    CU_ASSERT_EQUAL(rpc_get_bytes(&d, &p, &n), 0);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(rpc_dec_end(&d), 0);
    /* A count is refused when its elements cannot fit: 3 bytes remain, so
     * 3 u8 elements may follow but not 1 u64 or 4 u8. */
    size_t count = 0;
    rpc_dec_init(&d, exact, sizeof(exact));
    CU_ASSERT_EQUAL(rpc_get_count(&d, &count, SIZE_MAX, 1), 0);
    CU_ASSERT_EQUAL(count, 3);
    rpc_dec_init(&d, exact, sizeof(exact));
    CU_ASSERT_EQUAL(rpc_get_count(&d, &count, SIZE_MAX, 2), -EBADMSG);
    rpc_dec_init(&d, one_more, sizeof(one_more));
    CU_ASSERT_EQUAL(rpc_get_count(&d, &count, SIZE_MAX, 1), -EBADMSG);
    /* Within the input but above the caller's maximum. */
    rpc_dec_init(&d, exact, sizeof(exact));
    CU_ASSERT_EQUAL(rpc_get_count(&d, &count, 2, 1), -EMSGSIZE);
    rpc_dec_init(&d, exact, sizeof(exact));
    CU_ASSERT_EQUAL(rpc_get_count(&d, &count, 10, 0), -EINVAL);
    CU_ASSERT_EQUAL(count, 3);
}

/* Only 0 and 1 are booleans. */
static void test_bad_bool(void)
{
    static const uint8_t in[] = {0x02, 0xff, 0x01};
    for (int i = 0; i < 2; i++) {
        struct rpc_dec d;
        bool b = true;
        rpc_dec_init(&d, in + i, 1);
        CU_ASSERT_EQUAL(rpc_get_bool(&d, &b), -EBADMSG);
        CU_ASSERT_EQUAL(b, true);
        CU_ASSERT_EQUAL(d.off, 0);
    }
    struct rpc_dec d;
    bool b = false;
    rpc_dec_init(&d, in + 2, 1);
    CU_ASSERT_EQUAL(rpc_get_bool(&d, &b), 0);
    CU_ASSERT_EQUAL(b, true);
}

/* A string with a NUL inside would be silently cut short by C: refused. */
static void test_embedded_nul(void)
{
    static const uint8_t in[] = {0, 0, 0, 3, 'a', 0, 'b'};
    uint8_t *copy = exact_copy(in, sizeof(in));
    struct rpc_dec d;
    char *s = NULL;
    char buf[8] = "keep";
    rpc_dec_init(&d, copy, sizeof(in));
    CU_ASSERT_EQUAL(rpc_get_string(&d, &s, SIZE_MAX), -EBADMSG);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_EQUAL(d.off, 0);
    rpc_dec_init(&d, copy, sizeof(in));
    CU_ASSERT_EQUAL(rpc_get_string_buf(&d, buf, sizeof(buf)), -EBADMSG);
    CU_ASSERT_STRING_EQUAL(buf, "keep");
    /* As bytes, the same encoding is fine. */
    const void *p;
    size_t n;
    rpc_dec_init(&d, copy, sizeof(in));
    CU_ASSERT_EQUAL(rpc_get_bytes(&d, &p, &n), 0);
    CU_ASSERT_EQUAL(n, 3);
    free(copy);
}

/* A string longer than the caller allows: -EMSGSIZE, at exactly one byte
 * over (for the buffer form, the NUL must fit too). */
static void test_string_limits(void)
{
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    rpc_put_string(&e, "hello");
    struct rpc_dec d;
    char *s = NULL;
    char buf[6];
    rpc_dec_init(&d, e.buf, e.len);
    CU_ASSERT_EQUAL(rpc_get_string(&d, &s, 4), -EMSGSIZE);
    CU_ASSERT_PTR_NULL(s);
    rpc_dec_init(&d, e.buf, e.len);
    CU_ASSERT_EQUAL(rpc_get_string(&d, &s, 5), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(s, "hello");
    free(s);
    memset(buf, 'x', sizeof(buf));
    rpc_dec_init(&d, e.buf, e.len);
    CU_ASSERT_EQUAL(rpc_get_string_buf(&d, buf, 5), -EMSGSIZE);
    CU_ASSERT_EQUAL(buf[0], 'x');
    rpc_dec_init(&d, e.buf, e.len);
    CU_ASSERT_EQUAL(rpc_get_string_buf(&d, buf, 0), -EMSGSIZE);
    rpc_dec_init(&d, e.buf, e.len);
    CU_ASSERT_EQUAL(rpc_get_string_buf(&d, buf, 6), 0);
    CU_ASSERT_STRING_EQUAL(buf, "hello");
    CU_ASSERT_EQUAL(rpc_dec_end(&d), 0);
    rpc_enc_free(&e);
}

/* Bytes left over make a message malformed; an earlier error wins. */
static void test_trailing_and_end(void)
{
    static const uint8_t in[] = {0, 0, 0, 1, 9};
    struct rpc_dec d;
    uint32_t v = 0;
    rpc_dec_init(&d, in, sizeof(in));
    CU_ASSERT_EQUAL(rpc_get_u32(&d, &v), 0);
    CU_ASSERT_EQUAL(v, 1);
    CU_ASSERT_EQUAL(rpc_dec_left(&d), 1);
    CU_ASSERT_EQUAL(rpc_dec_end(&d), -EBADMSG);
    CU_ASSERT_EQUAL(d.err, 0); /* ending does not change the decoder */
    CU_ASSERT_EQUAL(rpc_get_u8(&d, NULL), 0);
    CU_ASSERT_EQUAL(rpc_dec_end(&d), 0);
    /* An error other than -EBADMSG is what rpc_dec_end reports. */
    char *s = NULL;
    rpc_dec_init(&d, in, 5);
    CU_ASSERT_EQUAL(rpc_get_string(&d, &s, 0), -EMSGSIZE);
    CU_ASSERT_EQUAL(rpc_dec_end(&d), -EMSGSIZE);
    /* An empty input is a complete empty message. */
    rpc_dec_init(&d, NULL, 0);
    CU_ASSERT_EQUAL(rpc_dec_end(&d), 0);
    CU_ASSERT_EQUAL(rpc_get_u8(&d, NULL), -EBADMSG);
    /* NULL with a length is a caller's mistake, reported from the start. */
    rpc_dec_init(&d, NULL, 4);
    CU_ASSERT_EQUAL(rpc_get_u32(&d, &v), -EINVAL);
    CU_ASSERT_EQUAL(rpc_dec_end(&d), -EINVAL);
}

/* After a decode error every get fails with the same error, consumes
 * nothing and writes nothing, even when its own bytes would be there. */
static void test_decoder_sticky(void)
{
    static const uint8_t in[] = {0x05, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
                                 0x00, 0x00, 0x00, 0x00, 0x00, 0x02};
    struct rpc_dec d;
    bool b = false;
    uint8_t u8 = 0;
    uint32_t u32 = 0;
    uint64_t u64 = 0;
    double f = 1.5;
    const void *p = NULL;
    char buf[4] = "abc";
    rpc_dec_init(&d, in, sizeof(in));
    CU_ASSERT_EQUAL(rpc_get_bool(&d, &b), -EBADMSG); /* 0x05 */
    CU_ASSERT_EQUAL(rpc_get_u8(&d, &u8), -EBADMSG);
    CU_ASSERT_EQUAL(rpc_get_u32(&d, &u32), -EBADMSG);
    CU_ASSERT_EQUAL(rpc_get_u64(&d, &u64), -EBADMSG);
    CU_ASSERT_EQUAL(rpc_get_double(&d, &f), -EBADMSG);
    CU_ASSERT_EQUAL(rpc_get_bytes(&d, &p, NULL), -EBADMSG);
    CU_ASSERT_EQUAL(rpc_get_string_buf(&d, buf, sizeof(buf)), -EBADMSG);
    CU_ASSERT_EQUAL(rpc_get_raw(&d, NULL, 1), -EBADMSG);
    CU_ASSERT_EQUAL(rpc_get_count(&d, NULL, 9, 1), -EBADMSG);
    CU_ASSERT_EQUAL(d.off, 0);
    CU_ASSERT(!b && u8 == 0 && u32 == 0 && u64 == 0 && f == 1.5);
    CU_ASSERT_PTR_NULL(p);
    CU_ASSERT_STRING_EQUAL(buf, "abc");
    CU_ASSERT_EQUAL(rpc_dec_end(&d), -EBADMSG);
    /* The same bytes read as a u8 and a u32 are fine: the refusal was the
     * bool's, not the data's. */
    rpc_dec_init(&d, in, sizeof(in));
    CU_ASSERT_EQUAL(rpc_get_u8(&d, &u8), 0);
    CU_ASSERT_EQUAL(rpc_get_u32(&d, &u32), 0);
    CU_ASSERT(u8 == 5 && u32 == 1);
}

/* ------------------------------------------------------------------------ */
/* Encoder limits, errors and ownership                                      */
/* ------------------------------------------------------------------------ */

/* The limit is exact; a put over it writes nothing; the error sticks. */
static void test_encoder_limit(void)
{
    struct rpc_enc e;
    rpc_enc_init(&e, 8);
    CU_ASSERT_EQUAL(rpc_put_u32(&e, 1), 0);
    CU_ASSERT_EQUAL(rpc_put_u16(&e, 2), 0);
    CU_ASSERT_EQUAL(rpc_put_bytes(&e, "x", 1), -EMSGSIZE); /* needs 5 */
    CU_ASSERT_EQUAL(e.len, 6);                             /* all or none */
    CU_ASSERT_EQUAL(rpc_put_u8(&e, 3), -EMSGSIZE); /* would fit: sticky */
    CU_ASSERT_EQUAL(rpc_put_string(&e, NULL), -EMSGSIZE);
    CU_ASSERT_EQUAL(e.len, 6);
    CU_ASSERT_EQUAL(e.err, -EMSGSIZE);
    size_t len = 99;
    CU_ASSERT_PTR_NULL(rpc_enc_take(&e, &len));
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT_EQUAL(e.err, -EMSGSIZE); /* still says why */
    CU_ASSERT_PTR_NULL(e.buf);
    rpc_enc_free(&e);
    CU_ASSERT_EQUAL(e.err, 0);
    CU_ASSERT_EQUAL(e.limit, 8);

    /* Exactly at the limit is fine, the buffer never exceeds it. */
    rpc_enc_init(&e, 8);
    CU_ASSERT_EQUAL(rpc_put_u64(&e, 1), 0);
    CU_ASSERT_EQUAL(e.len, 8);
    CU_ASSERT(e.cap <= 8);
    CU_ASSERT_EQUAL(rpc_put_raw(&e, NULL, 0), 0); /* nothing more: fine */
    CU_ASSERT_EQUAL(rpc_put_bool(&e, false), -EMSGSIZE);
    rpc_enc_free(&e);

    /* Lengths and counts that do not fit a u32, without touching p. */
    static const uint8_t one[1] = {1};
    rpc_enc_init(&e, 0);
    CU_ASSERT_EQUAL(e.limit, RPC_ENC_LIMIT_MAX);
    CU_ASSERT_EQUAL(rpc_put_bytes(&e, one, (size_t)UINT32_MAX + 1), -EMSGSIZE);
    CU_ASSERT_EQUAL(e.len, 0);
    rpc_enc_free(&e);
    CU_ASSERT_EQUAL(rpc_put_count(&e, (size_t)UINT32_MAX + 1), -EMSGSIZE);
    rpc_enc_free(&e);
    CU_ASSERT_EQUAL(rpc_put_count(&e, UINT32_MAX), 0);
    CU_ASSERT_EQUAL(e.len, 4);
    rpc_enc_free(&e);
}

/* Pointers the format needs: a NULL string or NULL data is -EINVAL, and
 * sticky like any other error. */
static void test_encoder_invalid(void)
{
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    CU_ASSERT_EQUAL(rpc_put_u8(&e, 1), 0);
    CU_ASSERT_EQUAL(rpc_put_string(&e, NULL), -EINVAL);
    CU_ASSERT_EQUAL(rpc_put_u8(&e, 2), -EINVAL);
    CU_ASSERT_EQUAL(e.len, 1);
    rpc_enc_free(&e);
    CU_ASSERT_EQUAL(rpc_put_bytes(&e, NULL, 1), -EINVAL);
    rpc_enc_free(&e);
    CU_ASSERT_EQUAL(rpc_put_raw(&e, NULL, 2), -EINVAL);
    CU_ASSERT_EQUAL(e.len, 0);
    rpc_enc_free(&e);
}

/* take hands over the bytes and leaves a reusable encoder; an empty take
 * is a non-NULL buffer of length 0; free(NULL) is a no-op. */
static void test_take_and_reuse(void)
{
    struct rpc_enc e;
    rpc_enc_init(&e, 100);
    for (int i = 0; i < 20; i++) /* grows past the first allocation */
        rpc_put_u32(&e, (uint32_t)i);
    size_t len = 0;
    uint8_t *m = rpc_enc_take(&e, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(len, 80);
    CU_ASSERT(m[79] == 19 && m[75] == 18 && m[0] == 0);
    CU_ASSERT_PTR_NULL(e.buf);
    CU_ASSERT(e.len == 0 && e.cap == 0 && e.err == 0 && e.limit == 100);
    free(m);
    CU_ASSERT_EQUAL(rpc_put_u16(&e, 0x1234), 0);
    m = rpc_enc_take(&e, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT(m[0] == 0x12 && m[1] == 0x34);
    free(m);
    len = 5;
    m = rpc_enc_take(&e, &len);
    CU_ASSERT_PTR_NOT_NULL(m);
    CU_ASSERT_EQUAL(len, 0);
    free(m);
    rpc_enc_free(NULL);
    rpc_enc_free(&e);
    rpc_enc_free(&e); /* twice is fine */
    CU_ASSERT_PTR_NULL(e.buf);
}

/* An encoder that starts in the caller's buffer: short encodings stay
 * there, a longer one moves to the heap with every byte, and the limit
 * still holds. */
static void test_encoder_buffer(void)
{
    uint8_t small[8];
    struct rpc_enc e;
    rpc_enc_init_buffer(&e, small, sizeof(small), 64);
    CU_ASSERT_EQUAL(rpc_put_u32(&e, 0x01020304), 0);
    CU_ASSERT_EQUAL(rpc_put_u32(&e, 0x05060708), 0);
    CU_ASSERT_PTR_EQUAL(e.buf, small); /* exactly full: not moved */
    CU_ASSERT(small[0] == 1 && small[7] == 8);
    size_t len = 0;
    uint8_t *m = rpc_enc_take(&e, &len); /* a copy: small stays ours */
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT(m != small && len == 8 && m[0] == 1 && m[7] == 8);
    free(m);
    CU_ASSERT_PTR_EQUAL(e.buf, small);
    CU_ASSERT(e.len == 0 && e.err == 0 && e.limit == 64);

    /* Outgrowing it: the bytes so far move along. */
    CU_ASSERT_EQUAL(rpc_put_u32(&e, 0x0a0b0c0d), 0);
    CU_ASSERT_EQUAL(rpc_put_u64(&e, 0x1112131415161718ull), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e.buf);
    CU_ASSERT(e.buf != small && e.len == 12 && e.cap <= 64);
    CU_ASSERT(e.buf[0] == 0x0a && e.buf[3] == 0x0d && e.buf[4] == 0x11 &&
              e.buf[11] == 0x18);
    small[0] = 0xee; /* the encoder no longer reads it */
    CU_ASSERT_EQUAL(e.buf[0], 0x0a);
    uint8_t fill[52] = {0};
    CU_ASSERT_EQUAL(rpc_put_raw(&e, fill, sizeof(fill)), 0); /* the limit */
    CU_ASSERT_EQUAL(rpc_put_u8(&e, 0), -EMSGSIZE);
    CU_ASSERT_EQUAL(e.len, 64);
    rpc_enc_free(&e); /* frees the heap buffer (ASan would see a leak) */
    CU_ASSERT_PTR_NULL(e.buf);

    /* A buffer larger than the limit: the limit wins. */
    uint8_t big[32];
    rpc_enc_init_buffer(&e, big, sizeof(big), 4);
    CU_ASSERT_EQUAL(rpc_put_u32(&e, 7), 0);
    CU_ASSERT_EQUAL(rpc_put_u8(&e, 1), -EMSGSIZE);
    CU_ASSERT_PTR_EQUAL(e.buf, big);
    rpc_enc_free(&e);
    CU_ASSERT_PTR_EQUAL(e.buf, big);
    CU_ASSERT(e.len == 0 && e.err == 0);

    /* No buffer: an ordinary encoder. */
    rpc_enc_init_buffer(&e, NULL, 16, 0);
    CU_ASSERT_EQUAL(e.limit, RPC_ENC_LIMIT_MAX);
    CU_ASSERT_EQUAL(rpc_put_u16(&e, 0x1234), 0);
    m = rpc_enc_take(&e, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT(len == 2 && m[0] == 0x12 && m[1] == 0x34);
    free(m);
}

/* Every error has its own phrase; others get a generic one. */
static void test_strerror(void)
{
    const int errs[] = {0, -EBADMSG, -EMSGSIZE, -ENOMEM, -EINVAL};
    for (int i = 0; i < 5; i++) {
        const char *s = rpc_marshal_strerror(errs[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT(strlen(s) > 0);
        for (int j = 0; j < i; j++)
            CU_ASSERT(strcmp(s, rpc_marshal_strerror(errs[j])) != 0);
    }
    CU_ASSERT_STRING_EQUAL(rpc_marshal_strerror(-ENOENT), "unknown error");
    CU_ASSERT_STRING_EQUAL(rpc_marshal_strerror(12345), "unknown error");
}

/* ------------------------------------------------------------------------ */
/* Random input                                                              */
/* ------------------------------------------------------------------------ */

/* A fixed schema with every kind of value and no size limit, so that the
 * only way to fail is malformed input.  On success the values are
 * re-encoded: the format has one encoding per value, so the result must be
 * the input byte for byte. */
static int fuzz_one(const uint8_t *in, size_t len)
{
    struct rpc_dec d;
    uint8_t a = 0;
    bool b = false;
    int32_t c = 0;
    double f = 0;
    char *s = NULL;
    const void *p = NULL;
    size_t n = 0, count = 0;
    uint16_t elems[64];
    rpc_dec_init(&d, in, len);
    rpc_get_u8(&d, &a);
    rpc_get_bool(&d, &b);
    rpc_get_i32(&d, &c);
    rpc_get_string(&d, &s, SIZE_MAX);
    rpc_get_bytes(&d, &p, &n);
    if (rpc_get_count(&d, &count, 64, 2) == 0)
        for (size_t i = 0; i < count; i++)
            rpc_get_u16(&d, &elems[i]);
    rpc_get_double(&d, &f);
    int err = rpc_dec_end(&d);
    if (err == 0) {
        struct rpc_enc e;
        rpc_enc_init(&e, 0);
        rpc_put_u8(&e, a);
        rpc_put_bool(&e, b);
        rpc_put_i32(&e, c);
        rpc_put_string(&e, s);
        rpc_put_bytes(&e, p, n);
        rpc_put_count(&e, count);
        for (size_t i = 0; i < count; i++)
            rpc_put_u16(&e, elems[i]);
        rpc_put_double(&e, f);
        CU_ASSERT_EQUAL(e.err, 0);
        CU_ASSERT(e.len == len && memcmp(e.buf, in, len) == 0);
        rpc_enc_free(&e);
    }
    free(s);
    return err;
}

/* A valid message for the fuzz schema with random values; the caller
 * frees it. */
static uint8_t *fuzz_valid(uint64_t *seed, size_t *len)
{
    char str[8];
    uint8_t bytes[8];
    size_t ns = rng_next(seed) % 8, nb = rng_next(seed) % 8;
    for (size_t i = 0; i < ns; i++)
        str[i] = (char)('a' + rng_next(seed) % 26);
    str[ns] = '\0';
    for (size_t i = 0; i < nb; i++)
        bytes[i] = (uint8_t)rng_next(seed);
    size_t count = rng_next(seed) % 4;
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    rpc_put_u8(&e, (uint8_t)rng_next(seed));
    rpc_put_bool(&e, rng_next(seed) & 1);
    rpc_put_i32(&e, (int32_t)(rng_next(seed) % 2000) - 1000);
    rpc_put_string(&e, str);
    rpc_put_bytes(&e, bytes, nb);
    rpc_put_count(&e, count);
    for (size_t i = 0; i < count; i++)
        rpc_put_u16(&e, (uint16_t)rng_next(seed));
    rpc_put_double(&e, double_of(rng_next(seed)));
    return rpc_enc_take(&e, len);
}

/* Thousands of inputs, each in an exact-size buffer: pure noise (almost
 * always refused), valid messages with a few bytes changed, and valid ones
 * cut or extended.  Every decode must succeed or say -EBADMSG, and both
 * outcomes must occur often enough for the test to mean something. */
static void test_random_inputs(void)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    int ok = 0, bad = 0, other = 0;
    for (int i = 0; i < 6000; i++) {
        size_t len;
        uint8_t *in;
        if (i % 3 == 0) {
            len = rng_next(&seed) % 64;
            in = malloc(len > 0 ? len : 1);
            CU_ASSERT_PTR_NOT_NULL_FATAL(in);
            for (size_t k = 0; k < len; k++)
                in[k] = (uint8_t)rng_next(&seed);
        } else {
            uint8_t *v = fuzz_valid(&seed, &len);
            CU_ASSERT_PTR_NOT_NULL_FATAL(v);
            size_t cut = rng_next(&seed) % (len + 2);
            if (i % 3 == 1) { /* a few bytes changed */
                int flips = (int)(rng_next(&seed) % 3);
                for (int k = 0; k < flips; k++)
                    v[rng_next(&seed) % len] = (uint8_t)rng_next(&seed);
                in = exact_copy(v, len);
            } else if (cut <= len) { /* cut short (or whole) */
                in = exact_copy(v, cut);
                len = cut;
            } else { /* one random byte too many */
                in = malloc(len + 1);
                CU_ASSERT_PTR_NOT_NULL_FATAL(in);
                memcpy(in, v, len);
                in[len++] = (uint8_t)rng_next(&seed);
            }
            free(v);
        }
        int err = fuzz_one(in, len);
        if (err == 0)
            ok++;
        else if (err == -EBADMSG)
            bad++;
        else
            other++;
        free(in);
    }
    CU_ASSERT_EQUAL(other, 0);
    CU_ASSERT(ok > 500);
    CU_ASSERT(bad > 2000);
    CU_ASSERT_EQUAL(ok + bad, 6000);
}

/* ------------------------------------------------------------------------ */

int test_marshal_register(void)
{
    CU_pSuite s = CU_add_suite("marshal", NULL, NULL);
    if (s == NULL || !CU_add_test(s, "golden bytes", test_golden) ||
        !CU_add_test(s, "integers", test_round_trip_integers) ||
        !CU_add_test(s, "signed extremes", test_signed_extremes) ||
        !CU_add_test(s, "doubles", test_round_trip_doubles) ||
        !CU_add_test(s, "bools", test_round_trip_bools) ||
        !CU_add_test(s, "strings", test_round_trip_strings) ||
        !CU_add_test(s, "bytes", test_round_trip_bytes) ||
        !CU_add_test(s, "arrays and raw", test_arrays_and_raw) ||
        !CU_add_test(s, "skipping", test_skip) ||
        !CU_add_test(s, "truncation", test_truncation) ||
        !CU_add_test(s, "lying prefix", test_lying_prefix) ||
        !CU_add_test(s, "bad bool", test_bad_bool) ||
        !CU_add_test(s, "embedded NUL", test_embedded_nul) ||
        !CU_add_test(s, "string limits", test_string_limits) ||
        !CU_add_test(s, "trailing bytes", test_trailing_and_end) ||
        !CU_add_test(s, "decoder sticky", test_decoder_sticky) ||
        !CU_add_test(s, "encoder limit", test_encoder_limit) ||
        !CU_add_test(s, "encoder invalid", test_encoder_invalid) ||
        !CU_add_test(s, "take and reuse", test_take_and_reuse) ||
        !CU_add_test(s, "encoder in a buffer", test_encoder_buffer) ||
        !CU_add_test(s, "strerror", test_strerror) ||
        !CU_add_test(s, "random inputs", test_random_inputs))
        return -1;
    return 0;
}
