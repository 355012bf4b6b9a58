/*
 * test_crc32c.c - the checksum against known values, and the two paths
 * (software and hardware) against each other.
 */
#include <stdint.h>
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
        !CU_add_test(s, "long buffers, three streams", test_long_buffers))
        return -1;
    return 0;
}
