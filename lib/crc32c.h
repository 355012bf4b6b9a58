/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum on every rmsg datagram.
 *
 * CRC-32C is the polynomial 0x1EDC6F41 (reflected 0x82F63B78) used by iSCSI,
 * SCTP (RFC 4960 appendix B) and ext4.  It detects every burst error up to 32
 * bits, and x86-64 computes it in hardware (SSE 4.2), so checking every byte
 * of a multi-gigabyte transfer costs little.
 */
#ifndef RMSG_CRC32C_H
#define RMSG_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over n bytes of p and returns the new value:
 * crc32c(crc32c(0, a, x), b, y) equals the CRC of a followed by b.
 * The check value of the nine ASCII bytes "123456789" is 0xE3069283. */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);

/* Which implementation crc32c runs on this processor, for reports. */
const char *crc32c_path(void);

/* The portable software path alone, whatever the processor offers: the tests
 * check it against the hardware path. */
uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n);

/* Copies n bytes from src to dst (which must not overlap) and returns crc
 * extended over them, like memcpy then crc32c(crc, dst, n) but reading
 * each piece again while it is still in the cache: the checksum of data
 * copied from a buffer the caller has just written costs little more than
 * the copy. */
uint32_t crc32c_copy(uint32_t crc, void *dst, const void *src, size_t n);

/* Combining CRCs computed apart.  The CRC register is linear, so the CRC
 * of A followed by B follows from crc32c(0, A) and crc32c(0, B) alone by
 * moving the first past len(B) zero bytes: a fixed linear map for a fixed
 * length, tabulated here a byte of the register at a time (4 KiB). */
struct crc32c_shift {
    size_t n; /* the length of B it was made for */
    uint32_t t[4][256];
};

/* Fills *s for blocks B of n bytes (by repeated squaring: microseconds). */
void crc32c_shift_init(struct crc32c_shift *s, size_t n);

/* The CRC of A followed by B, given crc_a = crc32c(0, A, len A) and
 * crc_b = crc32c(0, B, s->n). */
uint32_t crc32c_combine(const struct crc32c_shift *s, uint32_t crc_a,
                        uint32_t crc_b);

#endif
