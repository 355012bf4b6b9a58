/*
 * fuzz_marshal.c - libFuzzer target for the marshalling decoder
 * (rpc_marshal.c): rpc_get_* on arbitrary bytes.
 *
 * The input is a program and the data it decodes:
 *
 *   input = n, then n program bytes, then the data (the rest)
 *
 * Each program byte chooses a getter (low 4 bits) and its argument (high 4
 * bits: a NULL out-parameter, the max of a string or count, the size of a
 * raw read, the capacity of a buffer).  The data sits in a buffer of
 * exactly its size, so that any read past it is caught.
 *
 * Properties:
 *   - a get that succeeds consumes exactly the bytes its type takes (the
 *     prefix and the bytes of a string or byte array), and what it returns
 *     is within the data (views) or bounded as promised (strings: no NUL,
 *     at most max bytes; counts: at most max, and count * elem_min bytes
 *     remain);
 *   - a get that fails consumes nothing, leaves its out-parameter untouched
 *     and makes the error sticky: every later get returns it;
 *   - rpc_dec_left and rpc_dec_end agree with the offset;
 *   - encoding what was decoded, with the matching rpc_put_*, gives back
 *     the bytes consumed (one encoding per value), including a double's
 *     bit pattern.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "rpc_marshal.h"


#define POISON 0x5A /* what an out-parameter holds before a get */

/* Encodes the value a get returned, or, when it was skipped (NULL out),
 * the bytes it consumed as they are. */
struct replay {
    struct rpc_enc e;
    const uint8_t *base;
};

static void raw_copy(struct replay *r, size_t from, size_t to)
{
    rpc_put_raw(&r->e, r->base + from, to - from);
}

/* Integers and their friends: one get, one put. */
static int fixed(struct rpc_dec *d, struct replay *r, int kind, int skip)
{
    union {
        uint8_t u8;
        uint16_t u16;
        uint32_t u32;
        uint64_t u64;
        int8_t i8;
        int16_t i16;
        int32_t i32;
        int64_t i64;
        bool b;
        double f;
        unsigned char bytes[8];
    } v, before;
    static const size_t size[] = {1, 2, 4, 8, 1, 2, 4, 8, 1, 8};
    memset(&v, POISON, sizeof(v));
    before = v;
    size_t off = d->off;
    int err;
    switch (kind) {
    case 0: err = rpc_get_u8(d, skip ? NULL : &v.u8); break;
    case 1: err = rpc_get_u16(d, skip ? NULL : &v.u16); break;
    case 2: err = rpc_get_u32(d, skip ? NULL : &v.u32); break;
    case 3: err = rpc_get_u64(d, skip ? NULL : &v.u64); break;
    case 4: err = rpc_get_i8(d, skip ? NULL : &v.i8); break;
    case 5: err = rpc_get_i16(d, skip ? NULL : &v.i16); break;
    case 6: err = rpc_get_i32(d, skip ? NULL : &v.i32); break;
    case 7: err = rpc_get_i64(d, skip ? NULL : &v.i64); break;
    case 8: {
        /* bool is read through a byte so that UBSan does not object to
         * the poison, which is not a valid bool. */
        bool b = false;
        err = rpc_get_bool(d, skip ? NULL : &b);
        if (err == 0 && !skip)
            v.b = b;
        break;
    }
    default: err = rpc_get_double(d, skip ? NULL : &v.f); break;
    }
    if (err != 0) {
        CHECK(memcmp(&v, &before, sizeof(v)) == 0);
        return err;
    }
    CHECK(d->off == off + size[kind]);
    if (skip) {
        raw_copy(r, off, d->off);
        return 0;
    }
    switch (kind) {
    case 0: rpc_put_u8(&r->e, v.u8); break;
    case 1: rpc_put_u16(&r->e, v.u16); break;
    case 2: rpc_put_u32(&r->e, v.u32); break;
    case 3: rpc_put_u64(&r->e, v.u64); break;
    case 4: rpc_put_i8(&r->e, v.i8); break;
    case 5: rpc_put_i16(&r->e, v.i16); break;
    case 6: rpc_put_i32(&r->e, v.i32); break;
    case 7: rpc_put_i64(&r->e, v.i64); break;
    case 8: rpc_put_bool(&r->e, v.b); break;
    default: rpc_put_double(&r->e, v.f); break;
    }
    return 0;
}

static int bytes(struct rpc_dec *d, struct replay *r, int skip)
{
    const void *p = (const void *)1;
    size_t n = 12345, off = d->off;
    int err = rpc_get_bytes(d, skip ? NULL : &p, skip ? NULL : &n);
    if (err != 0) {
        CHECK(p == (const void *)1 && n == 12345);
        return err;
    }
    CHECK(d->off >= off + 4);
    if (skip) {
        raw_copy(r, off, d->off);
        return 0;
    }
    CHECK(d->off == off + 4 + n);
    CHECK((const uint8_t *)p == r->base + off + 4);
    rpc_put_bytes(&r->e, p, n);
    return 0;
}

static int string(struct rpc_dec *d, struct replay *r, int arg)
{
    int skip = arg & 1;
    size_t max = arg >> 1 == 7 ? SIZE_MAX : (size_t)(arg >> 1) * 5;
    char *s = (char *)1;
    size_t off = d->off;
    int err = rpc_get_string(d, skip ? NULL : &s, max);
    if (err != 0) {
        CHECK(s == (char *)1);
        CHECK(err == -EBADMSG || err == -EMSGSIZE || err == -ENOMEM ||
              err == -EINVAL);
        return err;
    }
    size_t n = d->off - off - 4;
    CHECK(d->off >= off + 4 && n <= max);
    if (skip) {
        raw_copy(r, off, d->off);
        return 0;
    }
    CHECK(strlen(s) == n && memcmp(s, r->base + off + 4, n) == 0);
    rpc_put_string(&r->e, s);
    free(s);
    return 0;
}

static int string_buf(struct rpc_dec *d, struct replay *r, int arg)
{
    char buf[16];
    size_t cap = (size_t)arg; /* 0..15: 0 always fails */
    memset(buf, POISON, sizeof(buf));
    size_t off = d->off;
    int err = rpc_get_string_buf(d, buf, cap);
    if (err != 0) {
        for (size_t i = 0; i < sizeof(buf); i++)
            CHECK(buf[i] == POISON);
        return err;
    }
    size_t n = d->off - off - 4;
    CHECK(cap > 0 && n < cap && strlen(buf) == n);
    CHECK(memcmp(buf, r->base + off + 4, n) == 0);
    rpc_put_string(&r->e, buf);
    return 0;
}

static int raw(struct rpc_dec *d, struct replay *r, int arg)
{
    uint8_t buf[16];
    size_t n = (size_t)arg, off = d->off;
    memset(buf, POISON, sizeof(buf));
    int err = rpc_get_raw(d, arg & 1 ? NULL : buf, n);
    if (err != 0) {
        for (size_t i = 0; i < sizeof(buf); i++)
            CHECK(buf[i] == POISON);
        return err;
    }
    CHECK(d->off == off + n);
    if (arg & 1)
        raw_copy(r, off, d->off);
    else
        rpc_put_raw(&r->e, buf, n);
    return 0;
}

static int count(struct rpc_dec *d, struct replay *r, int arg)
{
    static const size_t elem[] = {0, 1, 4, 8};
    size_t elem_min = elem[arg & 3];
    size_t max = arg >> 2 == 3 ? SIZE_MAX : (size_t)(arg >> 2) * 100;
    size_t c = 777, off = d->off;
    int err = rpc_get_count(d, &c, max, elem_min);
    if (err != 0) {
        CHECK(c == 777);
        CHECK(elem_min != 0 || err == -EINVAL || d->err != 0);
        return err;
    }
    CHECK(elem_min != 0 && d->off == off + 4 && c <= max);
    CHECK(c <= rpc_dec_left(d) / elem_min);
    rpc_put_count(&r->e, c);
    return 0;
}

/* Runs one getter; returns its result. */
static int step(struct rpc_dec *d, struct replay *r, uint8_t op)
{
    int kind = op & 15, arg = op >> 4;
    if (kind < 10)
        return fixed(d, r, kind, arg & 1);
    switch (kind) {
    case 10: return bytes(d, r, arg & 1);
    case 11: return string(d, r, arg);
    case 12: return string_buf(d, r, arg);
    case 13: return raw(d, r, arg);
    case 14: return count(d, r, arg);
    default: {
        size_t left = rpc_dec_left(d);
        CHECK(left == d->len - d->off);
        int end = rpc_dec_end(d);
        CHECK(end == (d->err ? d->err : left ? -EBADMSG : 0));
        return d->err;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t n = data[0];
    if (n > size - 1)
        n = size - 1;
    const uint8_t *prog = data + 1;
    size_t len = size - 1 - n;
    uint8_t *buf = malloc(len ? len : 1);
    CHECK(buf != NULL);
    memcpy(buf, data + 1 + n, len);

    struct rpc_dec d;
    rpc_dec_init(&d, len ? buf : NULL, len);
    struct replay r = {.base = buf};
    rpc_enc_init(&r.e, 0);
    int sticky = 0;
    for (size_t i = 0; i < n; i++) {
        size_t off = d.off;
        int err = step(&d, &r, prog[i]);
        CHECK(d.off <= d.len);
        CHECK(err == 0 || err == d.err); /* every error is kept */
        if (err != 0 || sticky) { /* an error stays, nothing moves */
            CHECK(d.off == off && (sticky == 0 || err == sticky));
            sticky = err;
        }
    }
    /* What was decoded encodes back to the bytes it came from. */
    CHECK(r.e.err == 0 && r.e.len == d.off);
    CHECK(d.off == 0 || memcmp(r.e.buf, buf, d.off) == 0);
    rpc_enc_free(&r.e);
    free(buf);
    return 0;
}
