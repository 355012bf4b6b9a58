/*
 * udp_faults.h - the fault specification parser, internal to the library.
 *
 * udp.c uses it for UDP_SetFaults and the UDP_FAULTS environment variable;
 * it is a separate declaration so that tests (and a future fuzz target) can
 * call the parser without opening a socket.  Not installed.
 *
 * Grammar (whitespace around items, keys and values is ignored):
 *
 *     spec     = "" | item { "," item }
 *     item     = key "=" value
 *     drop, dup, reorder, corrupt = probability
 *     delay, jitter               = duration
 *     seed                        = unsigned 64-bit decimal (default 1)
 *     probability = decimal in [0,1]  |  decimal "%" in [0,100]
 *     duration    = decimal [ "us" | "ms" | "s" ]   (no unit: ms; at most 1 h)
 *
 * A decimal is digits with an optional fraction ("0.25", "10", ".5" is not
 * one).  Every key may appear at most once.
 */
#ifndef UDP_FAULTS_H
#define UDP_FAULTS_H

#include <stddef.h>
#include <stdint.h>

/* The longest delay or jitter a specification may ask for. */
#define UDP_FAULT_MAX_DELAY_US (3600ull * 1000 * 1000)

/* A parsed specification.  All zero (seed 1) means no faults. */
struct udp_fault_spec {
    double drop;        /* probability a datagram is never sent */
    double dup;         /* probability it is sent twice */
    double reorder;     /* probability it is held until after the next one */
    double corrupt;     /* probability one bit of it is flipped */
    uint64_t delay_us;  /* every datagram is held this long... */
    uint64_t jitter_us; /* ...plus a uniform random 0..jitter_us */
    uint64_t seed;      /* seeds the socket's generator */
};

/* Parses spec (NULL or blank means no faults) into *out.  Returns 0, or -1
 * with errno EINVAL when spec is malformed: *out is then left untouched and,
 * when err is not NULL and cap > 0, a message naming the bad part (without a
 * trailing newline) is written into err, NUL-terminated.  out must not be
 * NULL. */
int udp_fault_parse(const char *spec, struct udp_fault_spec *out, char *err,
                    size_t cap);

/* Returns 1 when the specification injects any fault, 0 when it is inert. */
int udp_fault_active(const struct udp_fault_spec *spec);

#endif /* UDP_FAULTS_H */
