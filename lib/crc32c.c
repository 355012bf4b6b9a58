/*
 * crc32c.c - CRC-32C in software (slicing by 8) and in hardware.
 *
 * The software path processes eight bytes per step with eight 256-entry
 * tables (Kounavis and Berry's "slicing-by-8"): table[0] is the classic
 * byte-at-a-time table, and table[k][b] is the CRC of byte b followed by k
 * zero bytes, so eight lookups XORed together advance the CRC by eight bytes.
 * On x86-64 with SSE 4.2 the crc32 instruction does the same work many
 * times faster, in three streams at once for long buffers; which path runs
 * is decided once, at first use.
 */
#include "crc32c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define CRC32C_POLY 0x82F63B78u /* reflected 0x1EDC6F41 */

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

/* Fills the eight slicing tables. */
static void table_init(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1)));
        table[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++)
        for (int k = 1; k < 8; k++)
            table[k][b] = (table[k - 1][b] >> 8) ^
                          table[0][table[k - 1][b] & 0xff];
}

/* Software CRC over the raw (pre-inverted) register value. */
static uint32_t crc_soft(uint32_t c, const unsigned char *p, size_t n)
{
    while (n >= 8) {
        uint32_t lo = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                      (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        lo ^= c;
        c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^
            table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
            table[3][p[4]] ^ table[2][p[5]] ^ table[1][p[6]] ^
            table[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
    return c;
}

/* ------------------------------------------------------------------------ */
/* Shifting a CRC past zero bytes                                            */
/* ------------------------------------------------------------------------ */

/* The CRC register is linear in its input: the register after a block A
 * then a block B is the register after A moved on past len(B) zero bytes,
 * XORed with the register of B alone (started at zero).  Moving a
 * register past n zero bytes is a 32x32 matrix over GF(2); for the one
 * block length the hardware path needs it is tabulated, a byte of the
 * register at a time (shift_table[k][b]: byte b in position k). */
#define STREAM_BLOCK 2048 /* bytes per stream in the three-stream loop */

static uint32_t shift_table[4][256];

/* Multiplies a GF(2) matrix (mat[i]: the image of bit i) by a vector. */
static uint32_t gf2_apply(const uint32_t mat[32], uint32_t v)
{
    uint32_t r = 0;
    for (int i = 0; v; i++, v >>= 1)
        if (v & 1)
            r ^= mat[i];
    return r;
}

/* out = a * a: the shift past twice as many zero bytes. */
static void gf2_square(uint32_t out[32], const uint32_t a[32])
{
    for (int i = 0; i < 32; i++)
        out[i] = gf2_apply(a, a[i]);
}

/* out = a * b: the shift of b, then that of a. */
static void gf2_multiply(uint32_t out[32], const uint32_t a[32],
                         const uint32_t b[32])
{
    for (int i = 0; i < 32; i++)
        out[i] = gf2_apply(a, b[i]);
}

/* The matrix of the shift past n zero bytes: one zero byte's matrix raised
 * to the n-th power, by squaring (log2(n) squarings and as many products
 * at most). */
static void shift_matrix(uint32_t out[32], size_t n)
{
    uint32_t base[32], tmp[32];
    for (int i = 0; i < 32; i++) {
        uint32_t bit = 1u << i;
        base[i] = (bit >> 8) ^ table[0][bit & 0xff]; /* one zero byte */
        out[i] = bit;                                  /* the identity */
    }
    for (; n > 0; n >>= 1) {
        if (n & 1) {
            gf2_multiply(tmp, base, out);
            memcpy(out, tmp, sizeof(tmp));
        }
        if (n > 1) {
            gf2_square(tmp, base);
            memcpy(base, tmp, sizeof(tmp));
        }
    }
}

/* Tabulates a shift matrix a byte of the register at a time. */
static void tabulate(uint32_t t[4][256], const uint32_t m[32])
{
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++)
            t[k][b] = gf2_apply(m, b << (8 * k));
}

/* Tabulates the shift past STREAM_BLOCK zero bytes. */
static void shift_init(void)
{
    uint32_t m[32];
    shift_matrix(m, STREAM_BLOCK);
    tabulate(shift_table, m);
}

/* The register c moved on past STREAM_BLOCK zero bytes. */
static uint32_t shift_block(uint32_t c)
{
    return shift_table[0][c & 0xff] ^ shift_table[1][(c >> 8) & 0xff] ^
           shift_table[2][(c >> 16) & 0xff] ^ shift_table[3][c >> 24];
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC32C_HW 1

/* Hardware CRC with the SSE 4.2 crc32 instruction, eight bytes at a time.
 * The instruction takes three cycles but can start one each cycle, so a
 * long buffer is done as three interleaved streams over consecutive
 * blocks, joined with shift_block: about three times the speed of one. */
__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t c, const unsigned char *p, size_t n)
{
    uint64_t c0 = c;
    while (n >= 3 * STREAM_BLOCK) {
        uint64_t c1 = 0, c2 = 0;
        for (size_t i = 0; i < STREAM_BLOCK; i += 8) {
            uint64_t w0, w1, w2;
            memcpy(&w0, p + i, 8); /* unaligned-safe; x86 is little-endian */
            memcpy(&w1, p + STREAM_BLOCK + i, 8);
            memcpy(&w2, p + 2 * STREAM_BLOCK + i, 8);
            c0 = __builtin_ia32_crc32di(c0, w0);
            c1 = __builtin_ia32_crc32di(c1, w1);
            c2 = __builtin_ia32_crc32di(c2, w2);
        }
        uint32_t ab = shift_block((uint32_t)c0) ^ (uint32_t)c1;
        c0 = shift_block(ab) ^ (uint32_t)c2;
        p += 3 * STREAM_BLOCK;
        n -= 3 * STREAM_BLOCK;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c0 = __builtin_ia32_crc32di(c0, w);
        p += 8;
        n -= 8;
    }
    /* The last seven bytes at most: four, two, one. */
    c = (uint32_t)c0;
    if (n & 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        c = __builtin_ia32_crc32si(c, w);
        p += 4;
    }
    if (n & 2) {
        uint16_t w;
        memcpy(&w, p, 2);
        c = __builtin_ia32_crc32hi(c, w);
        p += 2;
    }
    if (n & 1)
        c = __builtin_ia32_crc32qi(c, *p);
    return c;
}
#endif

/* Which path runs: 0 until crc_init has run, then PATH_SOFT or PATH_HW.
 * Every datagram is checksummed at least once, several times over short
 * pieces, so the common case is one load rather than a pthread_once. */
enum { PATH_UNKNOWN, PATH_SOFT, PATH_HW };
static _Atomic int path;

/* Chooses the implementation and builds the tables, once. */
static void crc_init(void)
{
    table_init();
    shift_init();
    int chosen = PATH_SOFT;
#ifdef CRC32C_HW
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))
        chosen = PATH_HW;
#endif
    atomic_store_explicit(&path, chosen, memory_order_release);
}

uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
    int which = atomic_load_explicit(&path, memory_order_acquire);
    if (which == PATH_UNKNOWN) {
        pthread_once(&table_once, crc_init);
        which = atomic_load_explicit(&path, memory_order_acquire);
    }
    uint32_t c = ~crc;
#ifdef CRC32C_HW
    if (which == PATH_HW)
        return ~crc_hw(c, p, n);
#endif
    (void)which;
    return ~crc_soft(c, p, n);
}

uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&table_once, crc_init);
    return ~crc_soft(~crc, p, n);
}

/* Pieces small enough to stay in the first-level cache between the copy
 * and the checksum, and a whole number of the three-stream loop's blocks. */
#define COPY_PIECE (3 * STREAM_BLOCK)

uint32_t crc32c_copy(uint32_t crc, void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n > 0) {
        size_t k = n < COPY_PIECE ? n : COPY_PIECE;
        memcpy(d, s, k);
        crc = crc32c(crc, d, k);
        d += k;
        s += k;
        n -= k;
    }
    return crc;
}

void crc32c_shift_init(struct crc32c_shift *s, size_t n)
{
    pthread_once(&table_once, crc_init);
    uint32_t m[32];
    shift_matrix(m, n);
    tabulate(s->t, m);
    s->n = n;
}

/* A finished CRC is the register inverted.  With S the shift past n zero
 * bytes and R(B) B's register started from zero, ~crc(AB) is
 * S(~crc_a) ^ R(B) and ~crc_b is S(~0) ^ R(B); S is linear, so
 * crc(AB) = S(crc_a) ^ crc_b. */
uint32_t crc32c_combine(const struct crc32c_shift *s, uint32_t crc_a,
                        uint32_t crc_b)
{
    return s->t[0][crc_a & 0xff] ^ s->t[1][(crc_a >> 8) & 0xff] ^
           s->t[2][(crc_a >> 16) & 0xff] ^ s->t[3][crc_a >> 24] ^ crc_b;
}
