/*
 * rpc_marshal.h - encoding and decoding the arguments and results of remote
 * procedure calls.
 *
 * A small relative of XDR (RFC 4506): values are written one after another,
 * each in network byte order (big-endian), with nothing between them.  An
 * encoder (struct rpc_enc) appends values to a buffer it grows; a decoder
 * (struct rpc_dec) reads them back, in the same order, from bytes the caller
 * owns.  Neither knows the schema: both sides must agree on the order and
 * types of the values, as with XDR.  The rpc layer uses these helpers for its
 * own headers, handlers use them for their arguments and results, and a stub
 * generator can emit calls to them.
 *
 * The encoding of each type:
 *
 * | type            | bytes | encoding                                       |
 * |-----------------|-------|------------------------------------------------|
 * | u8, i8          | 1     | the byte; signed values in two's complement    |
 * | u16, i16        | 2     | big-endian, two's complement                   |
 * | u32, i32        | 4     | big-endian, two's complement                   |
 * | u64, i64        | 8     | big-endian, two's complement                   |
 * | bool            | 1     | 0 false, 1 true; any other byte is refused     |
 * | double          | 8     | the IEEE 754 binary64 bit pattern as a u64     |
 * |                 |       | (NaN payloads and the sign of zero survive)    |
 * | bytes           | 4 + n | a u32 length n, then the n bytes               |
 * | string          | 4 + n | a u32 length n, then the n bytes of the        |
 * |                 |       | string without its terminating NUL; a string   |
 * |                 |       | may not contain a NUL byte.  No check of the   |
 * |                 |       | character encoding: UTF-8 passes through.      |
 * | raw             | n     | n bytes, length agreed in advance (XDR's       |
 * |                 |       | fixed-length opaque)                           |
 *
 * Composite values, by convention (the stub generator will follow it):
 *   - a variable-length array is a u32 count (rpc_put_count) followed by the
 *     elements; a fixed-length array is just its elements;
 *   - a structure is its fields in declaration order;
 *   - an optional value is a bool, followed by the value when it is true.
 *
 * Where this differs from XDR: there is no padding to a multiple of four
 * bytes after bytes, strings and raw data; 8- and 16-bit integers and
 * booleans take one, two and one byte instead of four.  Messages are smaller
 * and a student can read them in a hex dump; nothing is aligned, which the
 * byte-by-byte decoder does not need.
 *
 * Errors follow the library's convention (0 success, negative errno) and are
 * sticky in both directions: the first error is kept in the struct's err
 * field and every later call returns it without doing anything.  A sequence
 * of puts or gets can therefore be written without a check after each one,
 * and checked once at the end (rpc_enc_take or e->err, rpc_dec_end).  A put
 * writes all of its bytes or none; a get that fails consumes nothing and
 * leaves its out-parameters untouched.
 *
 * Decoding is safe on hostile input: every length is checked as an integer
 * against the bytes that remain before any byte it covers is read, and the
 * only allocation (rpc_get_string) is at most one byte larger than the
 * input itself.
 */
#ifndef RPC_MARSHAL_H
#define RPC_MARSHAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* Types                                                                     */
/* ------------------------------------------------------------------------ */

/* An encoder: a buffer that grows as values are appended.  The fields are
 * public so that an encoder can live on the stack and so that the caller can
 * read what was encoded (buf[0..len)) and whether it failed (err); change
 * them only through the functions below (patching bytes already written in
 * buf[0..len) is fine). */
struct rpc_enc {
    uint8_t *buf; /* the bytes encoded so far; NULL before the first put */
    size_t len;   /* bytes encoded */
    size_t cap;   /* bytes allocated */
    size_t limit; /* most bytes len may reach */
    int err;      /* 0, or the first error (sticky) */
    int fixed;    /* buf is the caller's: 1 for good (rpc_enc_init_fixed),
                     2 until the encoding outgrows it (rpc_enc_init_buffer) */
};

/* A decoder: a cursor over bytes the caller owns and keeps valid and
 * unchanged while the decoder (and any view it returned) is in use. */
struct rpc_dec {
    const uint8_t *p; /* the bytes */
    size_t len;       /* how many */
    size_t off;       /* the next byte to read; after an error, the start of
                         the value that failed */
    int err;          /* 0, or the first error (sticky) */
};

/* Bytes an encoder may grow to when its limit is 0. */
#define RPC_ENC_LIMIT_MAX (SIZE_MAX / 2)

/* ------------------------------------------------------------------------ */
/* Encoder life cycle                                                        */
/* ------------------------------------------------------------------------ */

/* Makes *e an empty encoder that will hold at most limit bytes (0, or
 * anything larger than RPC_ENC_LIMIT_MAX, means RPC_ENC_LIMIT_MAX).  Nothing
 * is allocated until the first put.  It does not free an earlier buffer:
 * call rpc_enc_free or rpc_enc_take on an encoder in use first.  Cannot
 * fail. */
void rpc_enc_init(struct rpc_enc *e, size_t limit);

/* Makes *e an empty encoder that writes into the caller's buffer of cap
 * bytes and never allocates: a put that does not fit fails with -EMSGSIZE
 * (sticky, as always).  The caller keeps buf; rpc_enc_free only empties
 * the encoder, and rpc_enc_take returns a malloc'd copy.  For small,
 * bounded encodings (a header) on a path where an allocation costs more
 * than the encoding. */
void rpc_enc_init_fixed(struct rpc_enc *e, void *buf, size_t cap);

/* Makes *e an empty encoder of at most limit bytes (0 or too large: as for
 * rpc_enc_init) that starts in the caller's buffer of cap bytes and moves
 * to a malloc'd one, copying what it holds, only when it outgrows it: a
 * short encoding allocates nothing, a long one is not cut short.  The
 * caller keeps buf; rpc_enc_free and rpc_enc_take behave as for
 * rpc_enc_init_fixed while the bytes are still there, as for rpc_enc_init
 * once they have moved. */
void rpc_enc_init_buffer(struct rpc_enc *e, void *buf, size_t cap,
                         size_t limit);

/* Frees the buffer and empties *e (len 0, err 0, same limit), so it can be
 * used again.  e == NULL is a no-op. */
void rpc_enc_free(struct rpc_enc *e);

/* Hands the encoded bytes to the caller, who must free() them, and stores
 * their number in *len (len may be NULL).  The result is never NULL on
 * success, even when no byte was encoded.  *e is left empty (len 0, err 0,
 * same limit) and can be used again.
 * Returns NULL, with *len = 0, when e->err is set (the buffer is freed and
 * e->err keeps saying why) or when an empty result cannot be allocated
 * (e->err becomes -ENOMEM). */
void *rpc_enc_take(struct rpc_enc *e, size_t *len);

/* ------------------------------------------------------------------------ */
/* Encoding                                                                  */
/* ------------------------------------------------------------------------ */

/* Each put appends one value in the encoding described at the top, growing
 * the buffer as needed, and returns 0, or the encoder's error, which is
 * then sticky (nothing is written by this or any later put):
 *   -EMSGSIZE  the value would take the encoder past its limit (for bytes
 *              and strings, also: longer than UINT32_MAX bytes; for
 *              counts, larger than UINT32_MAX)
 *   -ENOMEM    the buffer could not grow
 *   -EINVAL    a NULL pointer where data was required (see each function)
 *   or the error an earlier put left in e->err.
 * e must be an initialised encoder. */
int rpc_put_u8(struct rpc_enc *e, uint8_t v);
int rpc_put_u16(struct rpc_enc *e, uint16_t v);
int rpc_put_u32(struct rpc_enc *e, uint32_t v);
int rpc_put_u64(struct rpc_enc *e, uint64_t v);
int rpc_put_i8(struct rpc_enc *e, int8_t v);
int rpc_put_i16(struct rpc_enc *e, int16_t v);
int rpc_put_i32(struct rpc_enc *e, int32_t v);
int rpc_put_i64(struct rpc_enc *e, int64_t v);
int rpc_put_bool(struct rpc_enc *e, bool v);
int rpc_put_double(struct rpc_enc *e, double v);

/* Appends a u32 length n and the n bytes at p (copied; the caller keeps p).
 * p may be NULL only when n is 0 (-EINVAL otherwise).  n > UINT32_MAX gives
 * -EMSGSIZE without reading p. */
int rpc_put_bytes(struct rpc_enc *e, const void *p, size_t n);

/* Appends the NUL-terminated string s as a u32 length and its bytes (not
 * the NUL).  s == NULL gives -EINVAL: there is no "absent string" on the
 * wire (encode an optional string as a bool and a string), and encoding
 * NULL as "" would hide a bug.  Longer than UINT32_MAX: -EMSGSIZE. */
int rpc_put_string(struct rpc_enc *e, const char *s);

/* Appends the n bytes at p with no length: fixed-length data whose size both
 * sides know.  p may be NULL only when n is 0 (-EINVAL otherwise). */
int rpc_put_raw(struct rpc_enc *e, const void *p, size_t n);

/* Appends the element count of a variable-length array as a u32; the caller
 * then puts the n elements.  n > UINT32_MAX gives -EMSGSIZE. */
int rpc_put_count(struct rpc_enc *e, size_t n);

/* ------------------------------------------------------------------------ */
/* Decoding                                                                  */
/* ------------------------------------------------------------------------ */

/* Makes *d a decoder over the len bytes at buf, which the caller owns.  buf
 * may be NULL only when len is 0; otherwise the decoder starts with the
 * error -EINVAL.  Nothing is allocated; there is nothing to free. */
void rpc_dec_init(struct rpc_dec *d, const void *buf, size_t len);

/* Each get reads the next value into *out and returns 0, or returns the
 * decoder's error, which is then sticky (*out is left untouched and no
 * byte is consumed, by this or any later get):
 *   -EBADMSG   fewer bytes remain than the value takes (truncated input),
 *              or a bool byte other than 0 and 1
 *   or the error an earlier get left in d->err.
 * out may be NULL: the value is checked and skipped.  d must be an
 * initialised decoder. */
int rpc_get_u8(struct rpc_dec *d, uint8_t *out);
int rpc_get_u16(struct rpc_dec *d, uint16_t *out);
int rpc_get_u32(struct rpc_dec *d, uint32_t *out);
int rpc_get_u64(struct rpc_dec *d, uint64_t *out);
int rpc_get_i8(struct rpc_dec *d, int8_t *out);
int rpc_get_i16(struct rpc_dec *d, int16_t *out);
int rpc_get_i32(struct rpc_dec *d, int32_t *out);
int rpc_get_i64(struct rpc_dec *d, int64_t *out);
int rpc_get_bool(struct rpc_dec *d, bool *out);
int rpc_get_double(struct rpc_dec *d, double *out);

/* Reads a length-prefixed byte array without copying it: *p points into the
 * decoder's buffer (valid as long as that buffer is) and *n is its length.
 * Either pointer may be NULL.  When n is 0, *p still points into the
 * buffer (at the end of the prefix), never NULL.
 *   -EBADMSG   the prefix is truncated, or announces more bytes than remain
 *              (checked before any of them is read)
 *   or the sticky error. */
int rpc_get_bytes(struct rpc_dec *d, const void **p, size_t *n);

/* Reads a string into a new NUL-terminated copy that the caller must
 * free(); *out is untouched on failure, when nothing is allocated.  max is
 * the longest string accepted, in bytes without the NUL (SIZE_MAX: no limit
 * beyond the input's size).  The checks, in this order:
 *   -EBADMSG   the prefix is truncated or announces more bytes than remain
 *   -EMSGSIZE  the string is longer than max
 *   -EBADMSG   the string contains a NUL byte
 *   -ENOMEM    the copy could not be allocated
 *   or the sticky error.  out may be NULL: the string is checked and
 * skipped, and nothing is allocated. */
int rpc_get_string(struct rpc_dec *d, char **out, size_t max);

/* Reads a string into the caller's buffer out of cap bytes, NUL-terminated.
 * The same checks as rpc_get_string, with "longer than cap - 1" for
 * -EMSGSIZE (so cap 0 always fails); out is untouched on failure.  out must
 * not be NULL. */
int rpc_get_string_buf(struct rpc_dec *d, char *out, size_t cap);

/* Copies the next n bytes (fixed-length data, no prefix) into out, which
 * may be NULL to skip them.
 *   -EBADMSG   fewer than n bytes remain
 *   or the sticky error. */
int rpc_get_raw(struct rpc_dec *d, void *out, size_t n);

/* Reads the element count of a variable-length array into *count (NULL:
 * skipped).  Each element must take at least elem_min bytes on the wire
 * (1 for u8 or bool, 4 for a string, 8 for u64...), so a count the
 * remaining bytes cannot hold is refused before the caller allocates room
 * for it: an array of count elements of size s then needs at most
 * s / elem_min times the input's size.  The checks, in this order:
 *   -EINVAL    elem_min is 0
 *   -EBADMSG   the count is truncated, or count * elem_min exceeds the
 *              bytes that remain after it
 *   -EMSGSIZE  the count is larger than max
 *   or the sticky error. */
int rpc_get_count(struct rpc_dec *d, size_t *count, size_t max,
                  size_t elem_min);

/* Bytes not yet read: d->len - d->off.  After an error they count from the
 * start of the value that failed.  Cannot fail. */
size_t rpc_dec_left(const struct rpc_dec *d);

/* Ends decoding.  Returns 0 when no error occurred and every byte was
 * consumed; the sticky error when one occurred; -EBADMSG when bytes are
 * left over (a message longer than its schema is malformed). */
int rpc_dec_end(const struct rpc_dec *d);

/* ------------------------------------------------------------------------ */
/* Debugging                                                                 */
/* ------------------------------------------------------------------------ */

/* A short phrase for an error these functions return (or 0), in static
 * storage; "unknown error" for anything else.  Never NULL. */
const char *rpc_marshal_strerror(int err);

#endif
