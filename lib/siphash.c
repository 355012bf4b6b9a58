/*
 * siphash.c - SipHash-2-4: two compression rounds per 8-byte word, four
 * finalisation rounds, over a 256-bit state initialised from the key.
 */
#include "siphash.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

/* One SipRound over the four state words. */
static void sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = ROTL(v[1], 13) ^ v[0];
    v[0] = ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = ROTL(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = ROTL(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = ROTL(v[1], 17) ^ v[2];
    v[2] = ROTL(v[2], 32);
}

/* Reads up to 8 bytes as a little-endian word. */
static uint64_t load_le(const unsigned char *p, size_t n)
{
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)p[i] << (8 * i);
    return w;
}

uint64_t siphash24(const uint64_t k[2], const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t v[4] = {
        k[0] ^ 0x736f6d6570736575ull, /* "somepseu" */
        k[1] ^ 0x646f72616e646f6dull, /* "dorandom" */
        k[0] ^ 0x6c7967656e657261ull, /* "lygenera" */
        k[1] ^ 0x7465646279746573ull, /* "tedbytes" */
    };
    size_t whole = n - n % 8;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le(p + i, 8);
        v[3] ^= m;
        sip_round(v);
        sip_round(v);
        v[0] ^= m;
    }
    uint64_t last = load_le(p + whole, n % 8) | (uint64_t)(n & 0xff) << 56;
    v[3] ^= last;
    sip_round(v);
    sip_round(v);
    v[0] ^= last;
    v[2] ^= 0xff;
    for (int i = 0; i < 4; i++)
        sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}
