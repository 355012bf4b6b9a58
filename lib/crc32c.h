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

/* The portable software path alone, whatever the processor offers: the tests
 * check it against the hardware path. */
uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n);

#endif
