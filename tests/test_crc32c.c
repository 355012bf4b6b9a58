/*
 * test_crc32c.c - the checksum against known values, and the two paths
 * (software and hardware) against each other.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "crc32c.h"
#include "tests.h"

/* Published check values (RFC 3720 appendix B.4 and the common "123456789"). */
static void test_known_values(void)
{
    CU_ASSERT_EQUAL(crc32c(0, "123456789", 9), 0xE3069283u);
    CU_ASSERT_EQUAL(crc32c_sw(0, "123456789", 9), 0xE3069283u);
    unsigned char zeros[32] = {0}, ones[32];
    memset(ones, 0xff, sizeof(ones));
    CU_ASSERT_EQUAL(crc32c(0, zeros, 32), 0x8A9136AAu);
    CU_ASSERT_EQUAL(crc32c(0, ones, 32), 0x62A8AB43u);
    unsigned char inc[32];
    for (int i = 0; i < 32; i++)
        inc[i] = (unsigned char)i;
    CU_ASSERT_EQUAL(crc32c(0, inc, 32), 0x46DD794Eu);
    CU_ASSERT_EQUAL(crc32c(0, NULL, 0), 0u);
}

/* Any split of a buffer gives the same CRC, on both paths, at every
 * alignment and length around the eight-byte step. */
static void test_incremental_and_paths_agree(void)
{
    enum { N = 1000 };
    unsigned char *buf = malloc(N + 8);
    CU_ASSERT_FATAL(buf != NULL);
    uint32_t x = 12345;
    for (int i = 0; i < N + 8; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
    for (int off = 0; off < 8; off++) {
        for (int len = 0; len < 70; len++) {
            uint32_t whole = crc32c(0, buf + off, (size_t)len);
            CU_ASSERT_EQUAL(whole, crc32c_sw(0, buf + off, (size_t)len));
            for (int cut = 0; cut <= len; cut += 7) {
                uint32_t a = crc32c(0, buf + off, (size_t)cut);
                CU_ASSERT_EQUAL(crc32c(a, buf + off + cut, (size_t)(len - cut)),
                                whole);
            }
        }
    }
    CU_ASSERT_EQUAL(crc32c(0, buf, N), crc32c_sw(0, buf, N));
    free(buf);
}

/* Long buffers take the three-stream path: it must agree with the plain
 * software CRC at every length around its block boundaries, from any
 * starting value, and when split anywhere. */
static void test_long_buffers(void)
{
    enum { N = 70000 };
    unsigned char *buf = malloc(N);
    CU_ASSERT_FATAL(buf != NULL);
    uint32_t x = 777;
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
    size_t lens[] = {6143, 6144, 6145, 6151, 12288, 12289, 18431, 65000,
                     65507, N};
    int bad = 0;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (uint32_t start = 0; start < 3; start++) {
            uint32_t seed = start * 0x9E3779B9u;
            bad += crc32c(seed, buf, lens[i]) != crc32c_sw(seed, buf, lens[i]);
            size_t cut = lens[i] / 3 + start;
            uint32_t a = crc32c(seed, buf, cut);
            bad += crc32c(a, buf + cut, lens[i] - cut) !=
                   crc32c_sw(seed, buf, lens[i]);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(buf);
}

/* Fills buf with n pseudo-random bytes from seed. */
static void fill_random(unsigned char *buf, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (unsigned char)(seed >> 16);
    }
}

/* crc32c_copy is memcpy plus crc32c, at every length around its pieces,
 * from unaligned addresses and any starting value; it copies exactly n
 * bytes and no more. */
static void test_copy(void)
{
    enum { N = 20000 };
    unsigned char *src = malloc(N + 8), *dst = malloc(N + 8);
    CU_ASSERT_FATAL(src != NULL && dst != NULL);
    fill_random(src, N + 8, 4242);
    size_t lens[] = {0, 1, 7, 8, 9, 6143, 6144, 6145, 12289, 18432, N};
    int bad = 0;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (size_t shift = 0; shift < 3; shift++) {
            memset(dst, 0xA5, N + 8);
            uint32_t seed = (uint32_t)(i * 31 + shift);
            uint32_t got = crc32c_copy(seed, dst + shift, src + 2 - shift,
                                       lens[i]);
            bad += got != crc32c(seed, src + 2 - shift, lens[i]);
            bad += memcmp(dst + shift, src + 2 - shift, lens[i]) != 0;
            for (size_t k = 0; k < shift; k++)
                bad += dst[k] != 0xA5;
            bad += dst[shift + lens[i]] != 0xA5;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(src);
    free(dst);
}

/* The folding path (where the processor has it) takes buffers of 1024
 * bytes and more in steps of 256 and leaves the rest to the crc32
 * instruction: every length from just under its threshold to several
 * steps past it, and lengths around multiples of 256 up to a large
 * datagram, from every alignment of a cache line and any starting value,
 * must give the software CRC; crc32c_copy, which copies as it folds, must
 * give the same and copy exactly its n bytes. */
static void test_fold_lengths(void)
{
    enum { N = 70000 };
    unsigned char *src = malloc(N + 128), *dst = malloc(N + 128);
    CU_ASSERT_FATAL(src != NULL && dst != NULL);
    fill_random(src, N + 128, 2718);
    printf("\n    crc32c path: %s ", crc32c_path());
    int bad = 0, runs = 0;
    for (size_t len = 1000; len < N; len = len < 1800 ? len + 1 : len * 5 / 4) {
        for (size_t near = 0; near < 3; near++) {
            /* len itself, then the multiple of 256 below it and one past */
            size_t l = near == 0 ? len : (len & ~(size_t)255) + near - 1;
            size_t off = (len + near * 17) % 64, doff = (len * 3 + near) % 64;
            uint32_t seed = (uint32_t)(len * 2654435761u + near);
            uint32_t want = crc32c_sw(seed, src + off, l);
            bad += crc32c(seed, src + off, l) != want;
            memset(dst, 0x3C, N + 128);
            bad += crc32c_copy(seed, dst + doff, src + off, l) != want;
            bad += memcmp(dst + doff, src + off, l) != 0;
            bad += dst[doff + l] != 0x3C || (doff > 0 && dst[doff - 1] != 0x3C);
            runs++;
        }
    }
    CU_ASSERT(runs > 1000);
    CU_ASSERT_EQUAL(bad, 0);
    free(src);
    free(dst);
}

/* crc32c_combine gives the CRC of A followed by B from the CRCs of A and
 * of B, for B of many lengths (one byte, around powers of two, rmsg's
 * fragment sizes, the largest) and A of any length, empty included. */
static void test_combine(void)
{
    enum { N = 70000 };
    unsigned char *buf = malloc(N);
    CU_ASSERT_FATAL(buf != NULL);
    fill_random(buf, N, 99);
    size_t blens[] = {1, 2, 3, 255, 256, 1024, 1343, 2048, 4095, 64947,
                      65535};
    size_t alens[] = {0, 1, 52, 60, 4096};
    int bad = 0;
    struct crc32c_shift *sh = malloc(sizeof(*sh));
    CU_ASSERT_FATAL(sh != NULL);
    for (size_t i = 0; i < sizeof(blens) / sizeof(blens[0]); i++) {
        crc32c_shift_init(sh, blens[i]);
        bad += sh->n != blens[i];
        for (size_t j = 0; j < sizeof(alens) / sizeof(alens[0]); j++) {
            const unsigned char *b = buf + alens[j];
            uint32_t whole = crc32c(0, buf, alens[j] + blens[i]);
            uint32_t a = crc32c(0, buf, alens[j]);
            bad += crc32c_combine(sh, a, crc32c(0, b, blens[i])) != whole;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(sh);
    free(buf);
}

/* A single flipped bit anywhere changes the CRC. */
static void test_detects_bit_flips(void)
{
    unsigned char buf[256];
    for (int i = 0; i < 256; i++)
        buf[i] = (unsigned char)(i * 7);
    uint32_t good = crc32c(0, buf, sizeof(buf));
    int missed = 0;
    for (int bit = 0; bit < 256 * 8; bit++) {
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        missed += crc32c(0, buf, sizeof(buf)) == good;
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    CU_ASSERT_EQUAL(missed, 0);
}

int test_crc32c_register(void)
{
    CU_pSuite s = CU_add_suite("crc32c", NULL, NULL);
    if (s == NULL ||
        !CU_add_test(s, "known values", test_known_values) ||
        !CU_add_test(s, "incremental, both paths agree",
                     test_incremental_and_paths_agree) ||
        !CU_add_test(s, "detects bit flips", test_detects_bit_flips) ||
        !CU_add_test(s, "long buffers, three streams", test_long_buffers) ||
        !CU_add_test(s, "copy and checksum in one pass", test_copy) ||
        !CU_add_test(s, "folding path at every length and alignment",
                     test_fold_lengths) ||
        !CU_add_test(s, "combining CRCs computed apart", test_combine))
        return -1;
    return 0;
}
