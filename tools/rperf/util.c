/*
 * util.c - rperf's small parts: time, CPU, memory, the data pattern that
 * verifies every byte end to end, the latency histogram, figures formatted
 * for people, and the progress line.
 */
#define _GNU_SOURCE /* getrusage with -std=c11 */
#include "rperf.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Time, CPU, memory, messages                                               */
/* ------------------------------------------------------------------------ */

int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Milliseconds from now until deadline (ns), rounded up; 0 once past. */
int ms_left(int64_t deadline)
{
    int64_t left = deadline - now_ns();
    if (left <= 0)
        return 0;
    left = (left + 999999) / 1000000;
    return left > 1000000000 ? 1000000000 : (int)left;
}

/* User plus system CPU seconds this process has used. */
double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return NAN;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* malloc that ends the program when memory runs out: a measurement tool
 * has nothing better to do then. */
void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "rperf: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* 64 random bits: /dev/urandom, or the clock and pid without it. */
uint64_t random64(void)
{
    uint64_t v = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 40);
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        uint64_t r;
        if (fread(&r, sizeof(r), 1, f) == 1)
            v = r;
        fclose(f);
    }
    return v;
}

/* Writes the first problem of a test into why (cap bytes); later problems
 * keep the first one's text. */
void set_why(char *why, size_t cap, const char *fmt, ...)
{
    if (why[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    for (char *p = why; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

/* ------------------------------------------------------------------------ */
/* The data pattern (see "Verification" at the top)                          */
/* ------------------------------------------------------------------------ */

#define STAMP_EVERY      64 /* words: one stamp per 512 bytes */
#define STAMP_CHECK_BITS 24

/* splitmix64's finaliser: a cheap, well-mixing bijection. */
uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void pattern_init(struct pattern *p, uint64_t seed)
{
    p->base = mix64(seed + 0x9e3779b97f4a7c15ull);
    p->step = mix64(seed + 0x3c6ef372fe94f82aull) | 1;
    p->key = mix64(seed + 0xdaa66d2c7ddf743full);
}

/* The wire is little-endian whatever the host is. */
static uint64_t le64(uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return __builtin_bswap64(v);
#else
    return v;
#endif
}

static uint64_t load64(const uint8_t *b)
{
    uint64_t v;
    memcpy(&v, b, 8);
    return le64(v);
}

/* The first n (<= 8) bytes at b as the low bytes of a little-endian word. */
static uint64_t load_part(const uint8_t *b, size_t n)
{
    if (n >= 8)
        return load64(b);
    uint64_t v = 0;
    for (size_t k = 0; k < n; k++)
        v |= (uint64_t)b[k] << (8 * k);
    return v;
}

static void store_part(uint8_t *b, uint64_t v, size_t n)
{
    if (n >= 8) {
        v = le64(v);
        memcpy(b, &v, 8);
        return;
    }
    for (size_t k = 0; k < n; k++)
        b[k] = (uint8_t)(v >> (8 * k));
}

/* The stamp of message idx: the index above a 24-bit check of it. */
static uint64_t stamp_of(const struct pattern *p, uint64_t idx)
{
    uint64_t check = mix64(idx ^ p->key) >> (64 - STAMP_CHECK_BITS);
    return ((idx << STAMP_CHECK_BITS) | check) ^ p->key;
}

/* The index a stamp carries, or -1 when it is no stamp of this test. */
static int64_t stamp_index(const struct pattern *p, uint64_t stamp)
{
    uint64_t idx = (stamp ^ p->key) >> STAMP_CHECK_BITS;
    return stamp_of(p, idx) == stamp ? (int64_t)idx : -1;
}

/* The index stamped into a message of at least 8 bytes, or -1. */
int64_t message_index(const struct pattern *p, const uint8_t *m)
{
    return stamp_index(p, load64(m) ^ p->base);
}

/* Writes the unstamped template of a len-byte message. */
void pattern_fill(const struct pattern *p, uint8_t *buf, size_t len)
{
    uint64_t v = p->base;
    for (size_t off = 0; off < len; off += 8, v += p->step)
        store_part(buf + off, v, len - off);
}

/* Turns a template (or a message stamped before) into message idx. */
void pattern_stamp(const struct pattern *p, uint8_t *buf, size_t len,
                   uint64_t idx)
{
    uint64_t s = stamp_of(p, idx);
    uint64_t v = p->base, stride = p->step * STAMP_EVERY;
    for (size_t off = 0; off < len; off += 8 * STAMP_EVERY, v += stride)
        store_part(buf + off, v ^ s, len - off);
}

/* The slow path: the offset of the first wrong byte from word j on. */
static size_t first_wrong(const struct pattern *p, const uint8_t *buf,
                          size_t len, uint64_t s, size_t j)
{
    for (; j * 8 < len; j++) {
        uint64_t want = p->base + j * p->step;
        if (j % STAMP_EVERY == 0)
            want ^= s;
        size_t n = len - j * 8 < 8 ? len - j * 8 : 8;
        for (size_t k = 0; k < n; k++)
            if (buf[j * 8 + k] != (uint8_t)(want >> (8 * k)))
                return j * 8 + k;
    }
    return len;
}

/* Compares a received message with what message idx must hold.  Returns
 * the offset of the first wrong byte, or len when every byte is right.
 * The inner loop is branch-free so that the compiler can vectorise it. */
size_t pattern_check(const struct pattern *p, const uint8_t *buf, size_t len,
                     uint64_t idx)
{
    uint64_t s = stamp_of(p, idx);
    size_t nw = len / 8;
    uint64_t v = p->base;
    for (size_t j0 = 0; j0 < nw; j0 += STAMP_EVERY) {
        size_t end = j0 + STAMP_EVERY < nw ? j0 + STAMP_EVERY : nw;
        uint64_t diff = load64(buf + 8 * j0) ^ v ^ s;
        uint64_t w = v;
        for (size_t j = j0 + 1; j < end; j++) {
            w += p->step;
            diff |= load64(buf + 8 * j) ^ w;
        }
        if (diff != 0)
            return first_wrong(p, buf, len, s, j0);
        v += p->step * STAMP_EVERY;
    }
    return first_wrong(p, buf, len, s, nw); /* the tail, if any */
}

/* Folds one message into a running checksum: its first word and length. */
uint64_t sum_fold(uint64_t sum, const uint8_t *msg, size_t len)
{
    return mix64(sum + load_part(msg, len < 8 ? len : 8)) ^ (uint64_t)len;
}

/* Adds one message to a sum that, unlike sum_fold's, does not depend on
 * the order the messages came in: for parallel rpc calls. */
uint64_t sum_add(uint64_t sum, const uint8_t *msg, size_t len)
{
    return sum +
           mix64(load_part(msg, len < 8 ? len : 8) ^ ((uint64_t)len << 40));
}

/* Length of message i of a bulk test: size, except that the last message
 * of a byte total that size does not divide is shorter. */
size_t msg_len(uint64_t size, uint64_t total, uint64_t i)
{
    if (total == 0)
        return (size_t)size;
    if (i >= total / size + 1 || i * size >= total)
        return 0;
    uint64_t left = total - i * size;
    return (size_t)(left < size ? left : size);
}

/* Raw UDP cuts each message of size bytes into datagrams of at most dgram
 * bytes; this is the length of the datagram with global index g. */
size_t raw_len(uint64_t size, uint32_t dgram, uint64_t g)
{
    uint64_t nfrag = (size + dgram - 1) / dgram;
    uint64_t k = g % nfrag;
    return (size_t)(k + 1 < nfrag ? dgram : size - (nfrag - 1) * dgram);
}

/* ------------------------------------------------------------------------ */
/* Latency histogram: log-linear buckets, fixed memory                       */
/* ------------------------------------------------------------------------ */

static int msb64(uint64_t v)
{
    int b = 0;
    while (v >>= 1)
        b++;
    return b;
}

void hist_record(struct hist *h, int64_t ns)
{
    uint64_t v = ns < 0 ? 0 : (uint64_t)ns;
    if (v >= (1ull << HIST_TOP_BITS))
        v = (1ull << HIST_TOP_BITS) - 1;
    size_t idx = v;
    if (v >= 2 * HIST_SUB) {
        int shift = msb64(v) - HIST_SUB_BITS;
        idx = (size_t)shift * HIST_SUB + (size_t)(v >> shift);
    }
    h->count[idx]++;
    if (h->n == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->n++;
    h->sum += (double)v;
}

/* Adds every value recorded in from to into (parallel clients record
 * into histograms of their own). */
void hist_merge(struct hist *into, const struct hist *from)
{
    if (from->n == 0)
        return;
    for (size_t i = 0; i < HIST_BUCKETS; i++)
        into->count[i] += from->count[i];
    if (into->n == 0 || from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
    into->n += from->n;
    into->sum += from->sum;
}

/* The middle of bucket idx, in nanoseconds. */
static double hist_value(size_t idx)
{
    if (idx < 2 * HIST_SUB)
        return (double)idx;
    int shift = (int)(idx / HIST_SUB) - 1;
    uint64_t lo = (uint64_t)(idx - (size_t)shift * HIST_SUB) << shift;
    return (double)lo + (double)((1ull << shift) - 1) / 2;
}

/* The q-quantile (0 < q <= 1) in nanoseconds, within the recorded range. */
double hist_quantile(const struct hist *h, double q)
{
    if (h->n == 0)
        return NAN;
    uint64_t rank = (uint64_t)ceil(q * (double)h->n), seen = 0;
    if (rank < 1)
        rank = 1;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= rank) {
            double v = hist_value(i);
            v = v < (double)h->min ? (double)h->min : v;
            return v > (double)h->max ? (double)h->max : v;
        }
    }
    return (double)h->max;
}

/* ------------------------------------------------------------------------ */
/* Formatting figures                                                        */
/* ------------------------------------------------------------------------ */

struct text fmt_bytes(double b)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    struct text t;
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(t.s, sizeof(t.s), "%.0f B", b);
    else
        snprintf(t.s, sizeof(t.s), "%.*f %s", b < 10 ? 2 : 1, b, unit[u]);
    return t;
}

/* Bytes per second as "176.6 MB/s (1.41 Gbit/s)": decimal units. */
struct text fmt_rate(double bps)
{
    static const char *const unit[] = {"B/s", "KB/s", "MB/s", "GB/s"};
    struct text t;
    double v = bps, bits = bps * 8;
    int u = 0;
    while (v >= 1000 && u < 3) {
        v /= 1000;
        u++;
    }
    if (!isfinite(bps))
        snprintf(t.s, sizeof(t.s), "-");
    else if (bits >= 1e9)
        snprintf(t.s, sizeof(t.s), "%.1f %s (%.2f Gbit/s)", v, unit[u],
                 bits / 1e9);
    else
        snprintf(t.s, sizeof(t.s), "%.1f %s (%.1f Mbit/s)", v, unit[u],
                 bits / 1e6);
    return t;
}

/* Microseconds as "41.2 µs", "1.23 ms" or "2.50 s". */
struct text fmt_us(double us)
{
    struct text t;
    if (!isfinite(us))
        snprintf(t.s, sizeof(t.s), "-");
    else if (us < 1000)
        snprintf(t.s, sizeof(t.s), "%.*f µs", us < 100 ? 1 : 0, us);
    else if (us < 1e6)
        snprintf(t.s, sizeof(t.s), "%.2f ms", us / 1e3);
    else
        snprintf(t.s, sizeof(t.s), "%.2f s", us / 1e6);
    return t;
}

/* A count per second as "22.2 k/s". */
struct text fmt_per_s(double n)
{
    struct text t;
    if (!isfinite(n))
        snprintf(t.s, sizeof(t.s), "-");
    else if (n >= 1e6)
        snprintf(t.s, sizeof(t.s), "%.2f M/s", n / 1e6);
    else if (n >= 1e3)
        snprintf(t.s, sizeof(t.s), "%.1f k/s", n / 1e3);
    else
        snprintf(t.s, sizeof(t.s), "%.1f /s", n);
    return t;
}

/* ------------------------------------------------------------------------ */
/* The live progress line (stderr, only when it is a terminal)               */
/* ------------------------------------------------------------------------ */

void progress_start(struct progress *p, int on, const char *label,
                    double limit_s, uint64_t limit)
{
    p->on = on;
    p->shown = 0;
    p->start = now_ns();
    p->next = p->start + 1000000000;
    p->label = label;
    p->limit_s = limit_s;
    p->limit = limit;
}

/* Once a second: what is done so far, the rate, what is left, and (when
 * not NAN) how many datagrams the transport has sent again. */
void progress_tick(struct progress *p, int64_t now, uint64_t done, int bytes,
                   double retransmitted)
{
    if (!p->on || now < p->next)
        return;
    p->next = now + 1000000000;
    double el = (double)(now - p->start) / NS_PER_S;
    char left[48] = "";
    if (p->limit_s > 0)
        snprintf(left, sizeof(left), " of %.0f s", p->limit_s);
    if (p->limit > 0)
        snprintf(left + strlen(left), sizeof(left) - strlen(left), ", %.0f%%",
                 100.0 * (double)done / (double)p->limit);
    char retx[40] = "";
    if (!isnan(retransmitted))
        snprintf(retx, sizeof(retx), ", %.0f retransmitted", retransmitted);
    if (bytes)
        fprintf(stderr, "\r%s: %.0f s%s: %s, %s%s\033[K", p->label, el, left,
                fmt_bytes((double)done).s, fmt_rate((double)done / el).s, retx);
    else
        fprintf(stderr, "\r%s: %.0f s%s: %" PRIu64 " round trips, %s%s\033[K",
                p->label, el, left, done, fmt_per_s((double)done / el).s, retx);
    p->shown = 1;
}

void progress_end(struct progress *p)
{
    if (p->shown)
        fprintf(stderr, "\r\033[K");
    p->shown = 0;
}
