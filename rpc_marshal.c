/*
 * rpc_marshal.c - encoding and decoding RPC arguments and results (format
 * in rpc_marshal.h).
 *
 * The encoder reserves room for a whole value before writing any of it, so
 * a put either writes every byte or none; the buffer doubles when it grows
 * (amortised O(1) per byte) but never past the encoder's limit.  The decoder
 * checks that a value's bytes are all there before it reads the first one;
 * for a length prefix it compares the announced length with the remaining
 * byte count as integers, so a lying prefix is refused before any byte it
 * covers is touched.  Both keep their first error and do nothing afterwards,
 * which lets callers check once at the end.
 *
 * Integers are written and read one byte at a time with shifts, never by
 * casting or byte-swapping memory, so the code is the same on every host.
 */
#include "rpc_marshal.h"

#include <errno.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>

/* A double is sent as its bit pattern: that pattern must be IEEE 754
 * binary64 and fit a uint64_t (true of every platform rmsg builds on). */
_Static_assert(sizeof(double) == sizeof(uint64_t), "double must be 64 bits");
_Static_assert(DBL_MANT_DIG == 53 && DBL_MAX_EXP == 1024,
               "double must be IEEE 754 binary64");

#define FIRST_CAP   64 /* bytes allocated by the first put */
#define PREFIX_SIZE 4  /* the u32 before bytes, strings and arrays */

/* ------------------------------------------------------------------------ */
/* Encoder: life cycle                                                       */
/* ------------------------------------------------------------------------ */

void rpc_enc_init(struct rpc_enc *e, size_t limit)
{
    if (limit == 0 || limit > RPC_ENC_LIMIT_MAX)
        limit = RPC_ENC_LIMIT_MAX;
    *e = (struct rpc_enc){.limit = limit};
}

void rpc_enc_init_fixed(struct rpc_enc *e, void *buf, size_t cap)
{
    *e = (struct rpc_enc){.buf = buf, .cap = cap, .limit = cap, .fixed = 1};
}

void rpc_enc_init_buffer(struct rpc_enc *e, void *buf, size_t cap,
                         size_t limit)
{
    rpc_enc_init(e, limit);
    if (buf == NULL || cap == 0)
        return; /* no buffer: the heap from the first put */
    e->buf = buf;
    e->cap = cap < e->limit ? cap : e->limit;
    e->fixed = 2;
}

void rpc_enc_free(struct rpc_enc *e)
{
    if (e == NULL)
        return;
    if (e->fixed) {
        e->len = 0;
        e->err = 0;
        return;
    }
    free(e->buf);
    rpc_enc_init(e, e->limit);
}

void *rpc_enc_take(struct rpc_enc *e, size_t *len)
{
    if (len != NULL)
        *len = 0;
    if (e->err != 0) {
        int err = e->err;
        rpc_enc_free(e);
        e->err = err; /* still says why */
        return NULL;
    }
    uint8_t *buf = e->buf;
    if (e->fixed) { /* the caller's buffer stays the caller's */
        buf = malloc(e->len ? e->len : 1);
        if (buf == NULL) {
            e->err = -ENOMEM;
            return NULL;
        }
        if (e->len)
            memcpy(buf, e->buf, e->len);
        if (len != NULL)
            *len = e->len;
        rpc_enc_free(e);
        return buf;
    }
    if (buf == NULL && (buf = malloc(1)) == NULL) { /* nothing encoded */
        e->err = -ENOMEM;
        return NULL;
    }
    if (len != NULL)
        *len = e->len;
    rpc_enc_init(e, e->limit);
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Encoder: putting values                                                   */
/* ------------------------------------------------------------------------ */

/* Records err as the encoder's (sticky) error and returns it. */
static int enc_fail(struct rpc_enc *e, int err)
{
    e->err = err;
    return err;
}

/* Makes room for n more bytes, or returns the (sticky) error.  len never
 * exceeds limit, and limit <= SIZE_MAX / 2, so neither the subtraction nor
 * the doubling can overflow. */
static inline int reserve(struct rpc_enc *e, size_t n)
{
    if (e->err != 0)
        return e->err;
    if (n > e->limit - e->len)
        return enc_fail(e, -EMSGSIZE);
    if (n <= e->cap - e->len)
        return 0;
    size_t want = e->len + n;
    size_t cap = e->cap > 0 ? e->cap : FIRST_CAP;
    while (cap < want)
        cap *= 2;
    if (cap > e->limit)
        cap = e->limit;
    uint8_t *buf;
    if (e->fixed) { /* the caller's buffer (rpc_enc_init_buffer) is left */
        if ((buf = malloc(cap)) == NULL)
            return enc_fail(e, -ENOMEM);
        if (e->len > 0)
            memcpy(buf, e->buf, e->len);
        e->fixed = 0;
    } else if ((buf = realloc(e->buf, cap)) == NULL) {
        return enc_fail(e, -ENOMEM); /* the old buffer is still ours */
    }
    e->buf = buf;
    e->cap = cap;
    return 0;
}

/* Appends the low n bytes of v, most significant first (n <= 8). */
static inline int put_uint(struct rpc_enc *e, uint64_t v, size_t n)
{
    int err = reserve(e, n);
    if (err != 0)
        return err;
    uint8_t *p = e->buf + e->len; /* once: stores through it may alias e */
    switch (n) { /* n is a constant wherever this is inlined */
    case 8:
        p[0] = (uint8_t)(v >> 56), p[1] = (uint8_t)(v >> 48);
        p[2] = (uint8_t)(v >> 40), p[3] = (uint8_t)(v >> 32);
        p += 4;
        /* fall through */
    case 4:
        p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16);
        p += 2;
        /* fall through */
    case 2:
        p[0] = (uint8_t)(v >> 8);
        p += 1;
        /* fall through */
    default:
        p[0] = (uint8_t)v;
    }
    e->len += n;
    return 0;
}

/* Appends n bytes from p with no prefix; room must already be reserved. */
static void append(struct rpc_enc *e, const void *p, size_t n)
{
    if (n > 0) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(e->buf + e->len, p, n);
    e->len += n;
}

int rpc_put_u8(struct rpc_enc *e, uint8_t v)
{
    return put_uint(e, v, 1);
}

int rpc_put_u16(struct rpc_enc *e, uint16_t v)
{
    return put_uint(e, v, 2);
}

int rpc_put_u32(struct rpc_enc *e, uint32_t v)
{
    return put_uint(e, v, 4);
}

int rpc_put_u64(struct rpc_enc *e, uint64_t v)
{
    return put_uint(e, v, 8);
}

/* Signed values: converting to uint64_t is defined as reduction modulo
 * 2^64, which yields the two's-complement pattern; put_uint keeps the low
 * bytes. */
int rpc_put_i8(struct rpc_enc *e, int8_t v)
{
    return put_uint(e, (uint64_t)v, 1);
}

int rpc_put_i16(struct rpc_enc *e, int16_t v)
{
    return put_uint(e, (uint64_t)v, 2);
}

int rpc_put_i32(struct rpc_enc *e, int32_t v)
{
    return put_uint(e, (uint64_t)v, 4);
}

int rpc_put_i64(struct rpc_enc *e, int64_t v)
{
    return put_uint(e, (uint64_t)v, 8);
}

int rpc_put_bool(struct rpc_enc *e, bool v)
{
    return put_uint(e, v ? 1 : 0, 1);
}

int rpc_put_double(struct rpc_enc *e, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    return put_uint(e, bits, 8);
}

int rpc_put_bytes(struct rpc_enc *e, const void *p, size_t n)
{
    if (e->err != 0)
        return e->err;
    if (n > UINT32_MAX)
        return enc_fail(e, -EMSGSIZE);
    if (p == NULL && n > 0)
        return enc_fail(e, -EINVAL);
    int err = reserve(e, PREFIX_SIZE + n); /* both parts, or neither */
    if (err != 0)
        return err;
    put_uint(e, n, PREFIX_SIZE);
    append(e, p, n);
    return 0;
}

int rpc_put_string(struct rpc_enc *e, const char *s)
{
    if (e->err != 0)
        return e->err;
    if (s == NULL)
        return enc_fail(e, -EINVAL);
    return rpc_put_bytes(e, s, strlen(s));
}

int rpc_put_raw(struct rpc_enc *e, const void *p, size_t n)
{
    if (e->err != 0)
        return e->err;
    if (p == NULL && n > 0)
        return enc_fail(e, -EINVAL);
    int err = reserve(e, n);
    if (err != 0)
        return err;
    append(e, p, n);
    return 0;
}

int rpc_put_count(struct rpc_enc *e, size_t n)
{
    if (e->err != 0)
        return e->err;
    if (n > UINT32_MAX)
        return enc_fail(e, -EMSGSIZE);
    return put_uint(e, n, PREFIX_SIZE);
}

/* ------------------------------------------------------------------------ */
/* Decoder: the cursor                                                       */
/* ------------------------------------------------------------------------ */

void rpc_dec_init(struct rpc_dec *d, const void *buf, size_t len)
{
    *d = (struct rpc_dec){.p = buf, .len = len};
    if (buf == NULL && len > 0)
        d->err = -EINVAL;
}

size_t rpc_dec_left(const struct rpc_dec *d)
{
    return d->len - d->off;
}

int rpc_dec_end(const struct rpc_dec *d)
{
    if (d->err != 0)
        return d->err;
    return d->off == d->len ? 0 : -EBADMSG;
}

/* Records err as the decoder's (sticky) error and returns it. */
static int dec_fail(struct rpc_dec *d, int err)
{
    d->err = err;
    return err;
}

/* Checks that n more bytes are there, or returns the (sticky) error.  off
 * never exceeds len, so the subtraction cannot wrap. */
static inline int need(struct rpc_dec *d, size_t n)
{
    if (d->err != 0)
        return d->err;
    if (n > d->len - d->off)
        return dec_fail(d, -EBADMSG);
    return 0;
}

/* The n bytes at the cursor (n <= 8, already checked), big-endian. */
static inline uint64_t peek_uint(const struct rpc_dec *d, size_t n)
{
    const uint8_t *p = d->p + d->off;
    switch (n) { /* n is a constant wherever this is inlined */
    case 8:
        return (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 |
               (uint64_t)p[2] << 40 | (uint64_t)p[3] << 32 |
               (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 |
               (uint64_t)p[6] << 8 | p[7];
    case 4:
        return (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 |
               (uint64_t)p[2] << 8 | p[3];
    case 2:
        return (uint64_t)p[0] << 8 | p[1];
    default:
        return p[0];
    }
}

/* Reads an n-byte unsigned integer (n <= 8) into *v. */
static inline int get_uint(struct rpc_dec *d, size_t n, uint64_t *v)
{
    int err = need(d, n);
    if (err != 0)
        return err;
    *v = peek_uint(d, n);
    d->off += n;
    return 0;
}

/* Reads a u32 prefix and checks, before anything else is read, that the
 * `unit * prefix` bytes it announces are there after it.  Consumes nothing:
 * the caller commits with `d->off += PREFIX_SIZE + ...` once its own checks
 * pass.  *n gets the prefix's value. */
static int peek_prefix(struct rpc_dec *d, size_t unit, size_t *n)
{
    int err = need(d, PREFIX_SIZE);
    if (err != 0)
        return err;
    size_t v = (size_t)peek_uint(d, PREFIX_SIZE);
    if (v > (d->len - d->off - PREFIX_SIZE) / unit)
        return dec_fail(d, -EBADMSG);
    *n = v;
    return 0;
}

/* Two's complement: the signed value whose low `bits` bits are u (u is
 * below 2^bits).  Computed by arithmetic because converting an
 * out-of-range unsigned value to a signed type is implementation-defined. */
static int64_t to_signed(uint64_t u, unsigned bits)
{
    uint64_t sign = (uint64_t)1 << (bits - 1);
    if (u < sign)
        return (int64_t)u;
    uint64_t below_top = (sign - 1) * 2 + 1 - u; /* 2^bits - 1 - u < sign */
    return -(int64_t)below_top - 1;
}

/* ------------------------------------------------------------------------ */
/* Decoder: getting values                                                   */
/* ------------------------------------------------------------------------ */

/* Each fixed-size get reads into a local first, so *out is written only on
 * success (and only when out is not NULL). */

int rpc_get_u8(struct rpc_dec *d, uint8_t *out)
{
    uint64_t v;
    int err = get_uint(d, 1, &v);
    if (err == 0 && out != NULL)
        *out = (uint8_t)v;
    return err;
}

int rpc_get_u16(struct rpc_dec *d, uint16_t *out)
{
    uint64_t v;
    int err = get_uint(d, 2, &v);
    if (err == 0 && out != NULL)
        *out = (uint16_t)v;
    return err;
}

int rpc_get_u32(struct rpc_dec *d, uint32_t *out)
{
    uint64_t v;
    int err = get_uint(d, 4, &v);
    if (err == 0 && out != NULL)
        *out = (uint32_t)v;
    return err;
}

int rpc_get_u64(struct rpc_dec *d, uint64_t *out)
{
    uint64_t v;
    int err = get_uint(d, 8, &v);
    if (err == 0 && out != NULL)
        *out = v;
    return err;
}

int rpc_get_i8(struct rpc_dec *d, int8_t *out)
{
    uint64_t v;
    int err = get_uint(d, 1, &v);
    if (err == 0 && out != NULL)
        *out = (int8_t)to_signed(v, 8);
    return err;
}

int rpc_get_i16(struct rpc_dec *d, int16_t *out)
{
    uint64_t v;
    int err = get_uint(d, 2, &v);
    if (err == 0 && out != NULL)
        *out = (int16_t)to_signed(v, 16);
    return err;
}

int rpc_get_i32(struct rpc_dec *d, int32_t *out)
{
    uint64_t v;
    int err = get_uint(d, 4, &v);
    if (err == 0 && out != NULL)
        *out = (int32_t)to_signed(v, 32);
    return err;
}

int rpc_get_i64(struct rpc_dec *d, int64_t *out)
{
    uint64_t v;
    int err = get_uint(d, 8, &v);
    if (err == 0 && out != NULL)
        *out = to_signed(v, 64);
    return err;
}

/* Only 0 and 1 are booleans: accepting any non-zero byte would give one
 * value several encodings, and a decoder that re-encodes would then
 * disagree with its input. */
int rpc_get_bool(struct rpc_dec *d, bool *out)
{
    int err = need(d, 1);
    if (err != 0)
        return err;
    uint8_t b = d->p[d->off];
    if (b > 1)
        return dec_fail(d, -EBADMSG);
    d->off++;
    if (out != NULL)
        *out = b == 1;
    return 0;
}

int rpc_get_double(struct rpc_dec *d, double *out)
{
    uint64_t bits;
    int err = get_uint(d, 8, &bits);
    if (err == 0 && out != NULL)
        memcpy(out, &bits, sizeof(*out));
    return err;
}

int rpc_get_bytes(struct rpc_dec *d, const void **p, size_t *n)
{
    size_t len;
    int err = peek_prefix(d, 1, &len);
    if (err != 0)
        return err;
    const uint8_t *at = d->p + d->off + PREFIX_SIZE;
    d->off += PREFIX_SIZE + len;
    if (p != NULL)
        *p = at;
    if (n != NULL)
        *n = len;
    return 0;
}

/* Checks a string's prefix, its length against max and its bytes for NUL;
 * on success *at and *n describe the bytes, and nothing is consumed. */
static int peek_string(struct rpc_dec *d, size_t max, const uint8_t **at,
                       size_t *n)
{
    size_t len;
    int err = peek_prefix(d, 1, &len);
    if (err != 0)
        return err;
    if (len > max)
        return dec_fail(d, -EMSGSIZE);
    const uint8_t *s = d->p + d->off + PREFIX_SIZE;
    if (memchr(s, 0, len) != NULL)
        return dec_fail(d, -EBADMSG);
    *at = s;
    *n = len;
    return 0;
}

int rpc_get_string(struct rpc_dec *d, char **out, size_t max)
{
    const uint8_t *at;
    size_t len;
    int err = peek_string(d, max, &at, &len);
    if (err != 0)
        return err;
    if (out != NULL) {
        char *s = malloc(len + 1); /* len < d->len, so this cannot wrap */
        if (s == NULL)
            return dec_fail(d, -ENOMEM);
        memcpy(s, at, len);
        s[len] = '\0';
        *out = s;
    }
    d->off += PREFIX_SIZE + len;
    return 0;
}

int rpc_get_string_buf(struct rpc_dec *d, char *out, size_t cap)
{
    const uint8_t *at;
    size_t len;
    /* cap - 1 wraps to SIZE_MAX when cap is 0: check that case apart. */
    if (d->err == 0 && cap == 0)
        return dec_fail(d, -EMSGSIZE);
    int err = peek_string(d, cap - 1, &at, &len);
    if (err != 0)
        return err;
    memcpy(out, at, len);
    out[len] = '\0';
    d->off += PREFIX_SIZE + len;
    return 0;
}

int rpc_get_raw(struct rpc_dec *d, void *out, size_t n)
{
    int err = need(d, n);
    if (err != 0)
        return err;
    if (out != NULL && n > 0)
        memcpy(out, d->p + d->off, n);
    d->off += n;
    return 0;
}

int rpc_get_count(struct rpc_dec *d, size_t *count, size_t max, size_t elem_min)
{
    if (d->err != 0)
        return d->err;
    if (elem_min == 0)
        return dec_fail(d, -EINVAL);
    size_t n;
    int err = peek_prefix(d, elem_min, &n);
    if (err != 0)
        return err;
    if (n > max)
        return dec_fail(d, -EMSGSIZE);
    d->off += PREFIX_SIZE;
    if (count != NULL)
        *count = n;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Debugging                                                                 */
/* ------------------------------------------------------------------------ */

const char *rpc_marshal_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case -EBADMSG:
        return "malformed or truncated input";
    case -EMSGSIZE:
        return "value or message over its size limit";
    case -ENOMEM:
        return "out of memory";
    case -EINVAL:
        return "invalid argument";
    default:
        return "unknown error";
    }
}
