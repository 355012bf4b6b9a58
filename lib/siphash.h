/*
 * siphash.h - SipHash-2-4, a keyed hash (Aumasson and Bernstein, 2012).
 *
 * rmsg uses it where an outsider must not be able to predict a value: the
 * cookies that prove a peer is alive at its address, and the bucket of a
 * peer in the address table (so chosen addresses cannot pile into one).
 */
#ifndef RMSG_SIPHASH_H
#define RMSG_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* The 64-bit SipHash-2-4 of n bytes at p under the 128-bit key k. */
uint64_t siphash24(const uint64_t k[2], const void *p, size_t n);

#endif
