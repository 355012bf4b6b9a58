/*
 * simlink.c - the simulated network (see simlink.h).
 *
 * Datagrams in flight sit in a binary heap ordered by arrival time, ties
 * broken by the order they were sent, so equal seeds give equal runs.
 */
#include "simlink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct flight {
    rmsg_time at;
    uint64_t order;
    int to, from;
    size_t len;
    uint8_t *data;
};

struct sim {
    int n;
    struct rmsg_config cfg;
    struct sim_faults f;
    struct rmsg_core *core[16];
    struct udp_addr addr[16];
    int silent[16];
    int64_t link_free_ns[16]; /* when each node's bottleneck is next idle */
    rmsg_time now;
    uint64_t rng, order;
    struct flight *heap;
    size_t nheap, capheap;
    struct sim_counts counts;
    uint8_t *buf;
    sim_hook hook;
    void *hook_arg;
};

uint64_t sim_rand(struct sim *s)
{
    uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double unit(struct sim *s)
{
    return (double)(sim_rand(s) >> 11) / 9007199254740992.0;
}

static int before(const struct flight *a, const struct flight *b)
{
    return a->at < b->at || (a->at == b->at && a->order < b->order);
}

static void heap_push(struct sim *s, struct flight f)
{
    if (s->nheap == s->capheap) {
        s->capheap = s->capheap ? s->capheap * 2 : 256;
        s->heap = realloc(s->heap, s->capheap * sizeof(*s->heap));
        if (s->heap == NULL)
            abort();
    }
    size_t i = s->nheap++;
    while (i > 0 && before(&f, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = f;
}

static struct flight heap_pop(struct sim *s)
{
    struct flight top = s->heap[0], last = s->heap[--s->nheap];
    size_t i = 0;
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= s->nheap)
            break;
        if (k + 1 < s->nheap && before(&s->heap[k + 1], &s->heap[k]))
            k++;
        if (!before(&s->heap[k], &last))
            break;
        s->heap[i] = s->heap[k];
        i = k;
    }
    if (s->nheap > 0)
        s->heap[i] = last;
    return top;
}

/* RMSG_TRACE=1 prints every core's protocol trace, in virtual time. */
static void trace_line(void *arg, const char *line)
{
    fprintf(stderr, "[node %d] %s\n", (int)(intptr_t)arg, line);
}

struct sim *sim_new(int n, const struct rmsg_config *cfg,
                    const struct sim_faults *f, uint64_t seed)
{
    struct sim *s = calloc(1, sizeof(*s));
    if (s == NULL || n < 1 || n > 16)
        abort();
    s->n = n;
    s->cfg = *cfg;
    s->f = *f;
    s->rng = seed;
    s->now = 1000000; /* start at t = 1 s: time 0 is not special */
    s->buf = malloc(cfg->datagram_max);
    for (int i = 0; i < n; i++) {
        struct rmsg_config k = *cfg;
        if (getenv("RMSG_TRACE")) {
            k.trace = trace_line;
            k.trace_arg = (void *)(intptr_t)i;
        }
        if (rmsg_core_new(&k, sim_rand(s), &s->core[i]) != 0)
            abort();
        struct sockaddr_in *a = (struct sockaddr_in *)&s->addr[i].ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)(10000 + i));
        a->sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)i);
        s->addr[i].len = sizeof(*a);
    }
    return s;
}

void sim_free(struct sim *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->n; i++)
        rmsg_core_free(s->core[i]);
    for (size_t i = 0; i < s->nheap; i++)
        free(s->heap[i].data);
    free(s->heap);
    free(s->buf);
    free(s);
}

struct rmsg_core *sim_core(struct sim *s, int node)
{
    return s->core[node];
}

const struct udp_addr *sim_addr(struct sim *s, int node)
{
    return &s->addr[node];
}

int sim_node_of(struct sim *s, const struct udp_addr *a)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;
    for (int i = 0; i < s->n; i++) {
        const struct sockaddr_in *b = (const struct sockaddr_in *)&s->addr[i].ss;
        if (in->sin_port == b->sin_port &&
            in->sin_addr.s_addr == b->sin_addr.s_addr)
            return i;
    }
    return -1;
}

rmsg_time sim_now(const struct sim *s)
{
    return s->now;
}

void sim_restart(struct sim *s, int node, uint64_t seed)
{
    rmsg_core_free(s->core[node]);
    if (rmsg_core_new(&s->cfg, seed, &s->core[node]) != 0)
        abort();
}

void sim_silence(struct sim *s, int node, int silent)
{
    s->silent[node] = silent;
}

void sim_set_hook(struct sim *s, sim_hook fn, void *arg)
{
    s->hook = fn;
    s->hook_arg = arg;
}

/* Passes a datagram through the sender's bottleneck: returns when it has
 * left it, or -1 when the queue is full and it is dropped. */
static rmsg_time bottleneck(struct sim *s, int from, size_t len)
{
    if (s->f.rate_bps == 0)
        return s->now;
    int64_t now_ns = s->now * 1000;
    int64_t *free_ns = &s->link_free_ns[from];
    int64_t start = *free_ns > now_ns ? *free_ns : now_ns;
    double backlog = (double)(start - now_ns) * 1e-9 * (double)s->f.rate_bps;
    if (backlog + (double)len > (double)s->f.queue_bytes) {
        s->counts.overflowed++;
        return -1;
    }
    *free_ns = start + (int64_t)((double)(len + 28) * 1e9 /
                                 (double)s->f.rate_bps);
    return (*free_ns + 999) / 1000;
}

/* Puts one datagram on the link, applying the faults. */
static void transmit(struct sim *s, int from, int to, const uint8_t *d,
                     size_t len)
{
    s->counts.sent++;
    if (s->hook && s->hook(s->hook_arg, from, to, d, len) == 0) {
        s->counts.dropped++;
        return;
    }
    rmsg_time left = bottleneck(s, from, len);
    if (left < 0)
        return;
    if (unit(s) < s->f.drop) {
        s->counts.dropped++;
        return;
    }
    int copies = 1;
    if (unit(s) < s->f.dup) {
        copies = 2;
        s->counts.duplicated++;
    }
    for (int k = 0; k < copies; k++) {
        struct flight f = {.at = left + s->f.delay_us, .order = s->order++,
                           .to = to, .from = from, .len = len};
        if (unit(s) < s->f.reorder) {
            f.at += 1 + (rmsg_time)(unit(s) * (double)(s->f.jitter_us + 1));
            s->counts.reordered++;
        }
        f.data = malloc(len ? len : 1);
        if (f.data == NULL)
            abort();
        memcpy(f.data, d, len);
        if (len > 0 && unit(s) < s->f.corrupt) {
            size_t bit = sim_rand(s) % (len * 8);
            f.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            s->counts.corrupted++;
        }
        heap_push(s, f);
    }
}

/* Even nodes take their datagrams whole from rmsg_core_output... */
static void output_whole(struct sim *s, int i)
{
    struct udp_addr to;
    int len;
    while ((len = rmsg_core_output(s->core[i], s->now, &to, s->buf,
                                   s->cfg.datagram_max)) > 0) {
        int dst = sim_node_of(s, &to);
        if (dst >= 0)
            transmit(s, i, dst, s->buf, (size_t)len);
    }
}

/* ...odd nodes as the endpoint does: a batch of heads and bodies from
 * rmsg_core_output_parts, joined only once the whole batch is out (so a
 * body the core let go of during the batch would show, under the
 * sanitizers, as a use after free); after a first datagram, a second is
 * asked for only if rmsg_core_next says one is due. */
static void output_in_parts(struct sim *s, int i)
{
    enum { BATCH = 16 };
    static uint8_t head[BATCH][RMSG_HEAD_MAX];
    struct udp_addr to[BATCH];
    const void *body[BATCH];
    size_t body_len[BATCH], head_len[BATCH];
    for (;;) {
        int n = 0, len;
        while (n < BATCH &&
               !(n == 1 && rmsg_core_next(s->core[i]) > s->now) &&
               (len = rmsg_core_output_parts(s->core[i], s->now, &to[n],
                                             head[n], RMSG_HEAD_MAX, &body[n],
                                             &body_len[n])) > 0)
            head_len[n++] = (size_t)len;
        for (int k = 0; k < n; k++) {
            memcpy(s->buf, head[k], head_len[k]);
            if (body_len[k] > 0)
                memcpy(s->buf + head_len[k], body[k], body_len[k]);
            int dst = sim_node_of(s, &to[k]);
            if (dst >= 0)
                transmit(s, i, dst, s->buf, head_len[k] + body_len[k]);
        }
        if (n < BATCH)
            return;
    }
}

int sim_step(struct sim *s, rmsg_time until)
{
    /* Everything due now: arrivals, then each core's output. */
    while (s->nheap > 0 && s->heap[0].at <= s->now) {
        struct flight f = heap_pop(s);
        if (!s->silent[f.to]) {
            rmsg_core_input(s->core[f.to], &s->addr[f.from], f.data, f.len,
                            s->now);
            s->counts.delivered++;
        }
        free(f.data);
    }
    rmsg_time next = RMSG_NEVER;
    for (int i = 0; i < s->n; i++) {
        if (s->silent[i])
            continue;
        if (i % 2 == 0)
            output_whole(s, i);
        else
            output_in_parts(s, i);
        rmsg_time t = rmsg_core_next(s->core[i]);
        if (t < next)
            next = t;
    }
    if (s->nheap > 0 && s->heap[0].at < next)
        next = s->heap[0].at;
    if (next == RMSG_NEVER) {
        s->now = until;
        return -1;
    }
    if (next <= s->now)
        next = s->now + 1; /* a core that is due now ran above */
    s->now = next < until ? next : until;
    return 0;
}

void sim_counts(const struct sim *s, struct sim_counts *out)
{
    *out = s->counts;
}
