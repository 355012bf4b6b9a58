/*
 * crc32c.c - CRC-32C in software (slicing by 8) and in hardware.
 *
 * The software path processes eight bytes per step with eight 256-entry
 * tables (Kounavis and Berry's "slicing-by-8"): table[0] is the classic
 * byte-at-a-time table, and table[k][b] is the CRC of byte b followed by k
 * zero bytes, so eight lookups XORed together advance the CRC by eight bytes.
 * On x86-64 with SSE 4.2 the crc32 instruction does the same work many
 * times faster, in three streams at once for long buffers.  Where the
 * processor also multiplies polynomials 512 bits at a time (AVX-512 with
 * VPCLMULQDQ), long buffers are folded instead, 256 bytes a step: more than
 * twice the speed again.  Which path runs is decided once, at first use.
 */
#include "crc32c.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif
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

/* ------------------------------------------------------------------------ */
/* Folding with carry-less multiplication                                    */
/* ------------------------------------------------------------------------ */

/* A CRC is the remainder of the message, as a polynomial over GF(2), times
 * x^32, modulo the generator P.  Only the remainder matters, so a 128-bit
 * piece A of the message that has D more bytes behind it before piece B
 * can be replaced by A * x^(8D) mod P, XORed into B: the message has
 * become 16 bytes shorter and its CRC is unchanged.  Split A into its
 * first eight bytes H (the higher powers) and its last eight L:
 *
 *   A * x^(8D) = H * x^(8D + 64) + L * x^(8D)
 *             == H * k1 + L * k2 (mod P),  k1 = x^(8D+64) mod P, k2 = x^(8D) mod P
 *
 * Each product of a 64-bit and a 32-bit polynomial has fewer than 96 bits,
 * so the sum fits in the 128 bits of B.  One VPCLMULQDQ multiplies four
 * such pairs; four registers of four pieces fold 256 bytes onto the next
 * 256.  At the end the pieces are folded onto the last one, whose 16 bytes
 * have the CRC of everything folded into them: two crc32 instructions
 * finish it, and the few bytes left over follow as usual.
 *
 * The bits are reflected (bit 0 of byte 0 is the highest power), and a
 * carry-less product of two reflected 64-bit numbers comes out one bit
 * short of its 128-bit reflected place: each constant is x^(n-1) mod P,
 * not x^n, to make up for it.  The CRC register itself enters by being
 * XORed into the first four bytes, exactly as the byte-at-a-time
 * algorithm does. */

#ifdef CRC32C_HW
#define CRC32C_FOLD 1
#define FOLD_MIN 1024 /* shorter buffers: the three streams are as fast */

/* x^n mod P as a reflected 64-bit multiplier: the coefficient of x^e in
 * bit 63 - e.  Found by multiplying the register that holds 1 by x, n
 * times. */
static uint64_t xpow_mod(unsigned n)
{
    uint32_t r = 0x80000000u; /* x^0, reflected */
    for (unsigned i = 0; i < n; i++)
        r = (r >> 1) ^ (CRC32C_POLY & (0u - (r & 1)));
    return (uint64_t)r << 32;
}

/* The multipliers that fold a piece d bytes onto a later one: k1 for its
 * first half (low lane), k2 for its second (high lane). */
struct fold_k {
    uint64_t k1, k2;
};
enum { K16, K32, K48, K64, K128, K192, K256, NFOLD_K };
static struct fold_k fold_k[NFOLD_K];

static struct fold_k fold_for(unsigned d)
{
    return (struct fold_k){xpow_mod(8 * d + 64 - 1), xpow_mod(8 * d - 1)};
}

static void fold_init(void)
{
    static const unsigned d[NFOLD_K] = {16, 32, 48, 64, 128, 192, 256};
    for (int i = 0; i < NFOLD_K; i++)
        fold_k[i] = fold_for(d[i]);
}

#define FOLD_TARGET \
    __attribute__((target("avx512f,avx512vl,vpclmulqdq,pclmul,sse4.2")))

/* The multipliers for distance fold_k[i], in one lane and in all four. */
FOLD_TARGET static __m128i fold_k128(int i)
{
    return _mm_set_epi64x((long long)fold_k[i].k2, (long long)fold_k[i].k1);
}

FOLD_TARGET static __m512i fold_k512(int i)
{
    return _mm512_broadcast_i32x4(fold_k128(i));
}

/* x folded d bytes forward: H * k1 ^ L * k2, in each 128-bit lane. */
FOLD_TARGET static __m128i fold128(__m128i x, __m128i k)
{
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00),
                         _mm_clmulepi64_si128(x, k, 0x11));
}

FOLD_TARGET static __m512i fold512(__m512i x, __m512i k)
{
    return _mm512_xor_si512(_mm512_clmulepi64_epi128(x, k, 0x00),
                            _mm512_clmulepi64_epi128(x, k, 0x11));
}

/* The register after the first m bytes of p (m a multiple of 256, at least
 * 256), starting from c, copying them to dst on the way when dst is not
 * NULL.  The copy is made from the registers the fold has loaded anyway:
 * one pass over the bytes instead of two. */
FOLD_TARGET static uint32_t crc_fold(uint32_t c, unsigned char *dst,
                                     const unsigned char *p, size_t m)
{
    __m512i z[4];
    for (int j = 0; j < 4; j++) {
        z[j] = _mm512_loadu_si512((const void *)(p + 64 * j));
        if (dst)
            _mm512_storeu_si512((void *)(dst + 64 * j), z[j]);
    }
    z[0] = _mm512_xor_si512(z[0],
                            _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)c)));
    __m512i k256 = fold_k512(K256);
    for (size_t i = 256; i < m; i += 256) {
        for (int j = 0; j < 4; j++) {
            __m512i v = _mm512_loadu_si512((const void *)(p + i + 64 * j));
            if (dst)
                _mm512_storeu_si512((void *)(dst + i + 64 * j), v);
            z[j] = _mm512_xor_si512(fold512(z[j], k256), v);
        }
    }
    /* The four registers onto the last, register j moving 64 * (3 - j)
     * bytes (every lane of it the same distance), then the four pieces of
     * the last 64 bytes onto the last 16. */
    __m512i y = _mm512_xor_si512(
        _mm512_xor_si512(fold512(z[0], fold_k512(K192)),
                         fold512(z[1], fold_k512(K128))),
        _mm512_xor_si512(fold512(z[2], fold_k512(K64)), z[3]));
    __m128i x = _mm_xor_si128(
        _mm_xor_si128(fold128(_mm512_extracti32x4_epi32(y, 0), fold_k128(K48)),
                      fold128(_mm512_extracti32x4_epi32(y, 1), fold_k128(K32))),
        _mm_xor_si128(fold128(_mm512_extracti32x4_epi32(y, 2), fold_k128(K16)),
                      _mm512_extracti32x4_epi32(y, 3)));
    uint64_t lo = (uint64_t)_mm_cvtsi128_si64(x);
    uint64_t hi = (uint64_t)_mm_extract_epi64(x, 1);
    return (uint32_t)_mm_crc32_u64(_mm_crc32_u64(0, lo), hi);
}
#endif

/* Which path runs: 0 until crc_init has run, then PATH_SOFT or PATH_HW.
 * Every datagram is checksummed at least once, several times over short
 * pieces, so the common case is one load rather than a pthread_once. */
enum { PATH_UNKNOWN, PATH_SOFT, PATH_HW, PATH_FOLD };
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
    /* The libgcc and compiler-rt checks include the operating system's
     * saving of the AVX-512 registers. */
    if (chosen == PATH_HW && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("vpclmulqdq") &&
        __builtin_cpu_supports("pclmul")) {
        fold_init();
        chosen = PATH_FOLD;
    }
#endif
    atomic_store_explicit(&path, chosen, memory_order_release);
}

static int path_chosen(void)
{
    int which = atomic_load_explicit(&path, memory_order_acquire);
    if (which == PATH_UNKNOWN) {
        pthread_once(&table_once, crc_init);
        which = atomic_load_explicit(&path, memory_order_acquire);
    }
    return which;
}

/* The register over n bytes of p (copied to dst on the way, if not NULL)
 * on the path chosen. */
static uint32_t crc_run(int which, uint32_t c, unsigned char *dst,
                        const unsigned char *p, size_t n)
{
#ifdef CRC32C_FOLD
    if (which == PATH_FOLD && n >= FOLD_MIN) {
        size_t m = n & ~(size_t)255;
        c = crc_fold(c, dst, p, m);
        p += m;
        n -= m;
        if (dst) {
            memcpy(dst + m, p, n);
            dst = NULL;
        }
    }
#endif
    if (dst)
        memcpy(dst, p, n);
#ifdef CRC32C_HW
    if (which >= PATH_HW)
        return crc_hw(c, p, n);
#endif
    (void)which;
    return crc_soft(c, p, n);
}

uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
    return ~crc_run(path_chosen(), ~crc, NULL, p, n);
}

const char *crc32c_path(void)
{
    static const char *const name[] = {"unknown", "software (slicing by 8)",
                                       "sse4.2 (crc32, three streams)",
                                       "avx512 (vpclmulqdq folding)"};
    return name[path_chosen()];
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
    int which = path_chosen();
    if (which == PATH_FOLD)
        return ~crc_run(which, ~crc, d, s, n); /* copied as it folds */
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
