/*
 * crc32c.c - CRC-32C in software (slicing by 8) and in hardware.
 *
 * The software path processes eight bytes per step with eight 256-entry
 * tables (Kounavis and Berry's "slicing-by-8"): table[0] is the classic
 * byte-at-a-time table, and table[k][b] is the CRC of byte b followed by k
 * zero bytes, so eight lookups XORed together advance the CRC by eight bytes.
 * On x86-64 with SSE 4.2 the crc32 instruction does the same work about ten
 * times faster; which path runs is decided once, at first use.
 */
#include "crc32c.h"

#include <pthread.h>
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

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC32C_HW 1

/* Hardware CRC with the SSE 4.2 crc32 instruction, eight bytes at a time. */
__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t c, const unsigned char *p, size_t n)
{
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8); /* unaligned-safe load; x86 is little-endian */
        c64 = __builtin_ia32_crc32di(c64, w);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--)
        c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}
#endif

static int use_hw;

/* Chooses the implementation and builds the tables, once. */
static void crc_init(void)
{
    table_init();
#ifdef CRC32C_HW
    __builtin_cpu_init();
    use_hw = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&table_once, crc_init);
    uint32_t c = ~crc;
#ifdef CRC32C_HW
    if (use_hw)
        return ~crc_hw(c, p, n);
#endif
    return ~crc_soft(c, p, n);
}

uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&table_once, crc_init);
    return ~crc_soft(~crc, p, n);
}
