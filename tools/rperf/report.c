/*
 * report.c - what rperf prints: every figure by name, medians and spread
 * over repeats, the ratio to raw UDP and the verdict on the library's
 * promise, the human summary, and the flat JSON object.
 */
#include "rperf.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================== */
/* Figures by name                                                          */
/* ======================================================================== */

const struct figdef figdefs[] = {
    {"messages", offsetof(struct figures, msgs)},
    {"bytes", offsetof(struct figures, bytes)},
    {"seconds", offsetof(struct figures, seconds)},
    {"rate_bytes_per_s", offsetof(struct figures, rate)},
    {"msgs_per_s", offsetof(struct figures, msg_rate)},
    {"p50_us", offsetof(struct figures, p50)},
    {"p90_us", offsetof(struct figures, p90)},
    {"p99_us", offsetof(struct figures, p99)},
    {"p999_us", offsetof(struct figures, p999)},
    {"max_us", offsetof(struct figures, max)},
    {"min_us", offsetof(struct figures, min)},
    {"mean_us", offsetof(struct figures, mean)},
    {"lost", offsetof(struct figures, lost)},
    {"datagrams_sent", offsetof(struct figures, dgrams_sent)},
    {"datagrams_received", offsetof(struct figures, dgrams_recv)},
    {"datagrams_bad", offsetof(struct figures, dgrams_bad)},
    {"datagrams_duplicated", offsetof(struct figures, dgrams_dup)},
    {"datagrams_reordered", offsetof(struct figures, dgrams_late)},
    {"datagrams_unchecked", offsetof(struct figures, dgrams_unchecked)},
    {"send_errors", offsetof(struct figures, send_errors)},
    {"sent_rate_bytes_per_s", offsetof(struct figures, sent_rate)},
    {"retransmissions", offsetof(struct figures, retrans)},
    {"retransmissions_server", offsetof(struct figures, retrans_server)},
    {"rto_timeouts", offsetof(struct figures, rto_timeouts)},
    {"datagrams_per_msg", offsetof(struct figures, dgrams_per_msg)},
    {"cpu_client_s", offsetof(struct figures, cpu_client)},
    {"cpu_server_s", offsetof(struct figures, cpu_server)},
    {"cpu_s_per_gb", offsetof(struct figures, cpu_per_gb)},
    {"cpu_us_per_round_trip", offsetof(struct figures, cpu_us_per_rtt)},
    {"rpc_cached_replies", offsetof(struct figures, cached)},
};
const size_t nfigs = sizeof(figdefs) / sizeof(figdefs[0]);

static double *fig(struct figures *f, size_t i)
{
    return (double *)((char *)f + figdefs[i].off);
}

static double fig_get(const struct figures *f, size_t i)
{
    return *(const double *)((const char *)f + figdefs[i].off);
}

void figures_clear(struct figures *f)
{
    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < nfigs; i++)
        *fig(f, i) = NAN;
}

/* ======================================================================== */
/* Client: repeats, the summary, JSON                                       */
/* ======================================================================== */

static int is_rmsg(enum transport_id tr)
{
    return tr == T_RMSG || tr == T_RMSG_ASYNC;
}

/* The ratio to raw UDP: goodput over raw UDP's delivered rate (bw), or
 * median round trip over raw UDP's (lat). */
double ratio_of(enum mode mode, const struct figures *test,
                const struct figures *base)
{
    return mode == M_BW ? test->rate / base->rate : test->p50 / base->p50;
}

/* True for the test the rpc layer makes a promise about: one client's
 * calls, one after another, measured against raw UDP round trips. */
static int rpc_promised(const struct plan *pl)
{
    return pl->tr == T_RPC && pl->mode == M_LAT && pl->clients == 1;
}

/* The library's promises: rmsg RTT <= 1.10x raw UDP and pipelined bulk
 * goodput >= 1.0x the raw one-sendto rate (stop and wait is bound by its
 * round trips, and promised nothing); an rpc call (one client) <= 1.10x
 * a raw UDP round trip.  Returns 1 kept, -1 missed, 0 n/a. */
static int promise_kept(const struct plan *pl, double ratio)
{
    if (!(is_rmsg(pl->tr) || rpc_promised(pl)) || !isfinite(ratio))
        return 0;
    if (pl->mode == M_BW && pl->tr != T_RMSG_ASYNC)
        return 0;
    return (pl->mode == M_BW ? ratio >= 1.0 : ratio <= 1.10) ? 1 : -1;
}

/* The rpc layer's aim of about two datagrams per call (request and reply,
 * the acknowledgments riding on them) holds when a call and its reply each
 * fit in a datagram; 2.5 leaves room for the acknowledgment a pause makes
 * rmsg send alone.  Returns 1 kept, -1 missed, 0 n/a. */
#define RPC_HEADROOM 96 /* rmsg and rpc headers, generously */
static int dgrams_kept(const struct plan *pl, const struct figures *f)
{
    if (pl->tr != T_RPC || pl->mode != M_LAT || !isfinite(f->dgrams_per_msg) ||
        pl->size + RPC_HEADROOM > pl->datagram)
        return 0;
    return f->dgrams_per_msg <= 2.5 ? 1 : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v[0..n) and returns its median. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Median, min and max of every figure over n runs (of the baselines when
 * base), skipping what does not apply. */
static void summarize(const struct run *runs, int n, int base,
                      struct figures *med, struct figures *lo,
                      struct figures *hi)
{
    double *v = xmalloc((size_t)n * sizeof(double));
    figures_clear(med);
    figures_clear(lo);
    figures_clear(hi);
    med->intact = 1;
    for (int r = 0; r < n; r++) {
        const struct figures *f = base ? &runs[r].base : &runs[r].test;
        med->intact &= f->intact;
        med->capped |= f->capped;
        if (f->why[0] && !med->why[0])
            snprintf(med->why, sizeof(med->why), "%s", f->why);
    }
    for (size_t i = 0; i < nfigs; i++) {
        int k = 0;
        for (int r = 0; r < n; r++) {
            double x = fig_get(base ? &runs[r].base : &runs[r].test, i);
            if (!isnan(x))
                v[k++] = x;
        }
        if (k > 0) {
            *fig(med, i) = median(v, k);
            *fig(lo, i) = v[0];
            *fig(hi, i) = v[k - 1];
        }
    }
    free(v);
}

/* Median, min and max of the ratio over n runs, into r[0..2]. */
static void ratio_stats(const struct run *runs, int n, double r[3])
{
    double *v = xmalloc((size_t)n * sizeof(double));
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(runs[i].ratio))
            v[k++] = runs[i].ratio;
    r[0] = k ? median(v, k) : NAN;
    r[1] = k ? v[0] : NAN;
    r[2] = k ? v[k - 1] : NAN;
    free(v);
}

/* ------------------------------------------------------------------------ */
/* The human summary                                                         */
/* ------------------------------------------------------------------------ */

/* A rate without the bit rate, for spreads: "176.6 MB/s". */
static struct text fmt_mbs(double bps)
{
    struct text t;
    snprintf(t.s, sizeof(t.s), "%.1f MB/s", bps / 1e6);
    return t;
}

/* " [min .. max]" when there were repeats, else "". */
static struct text spread(int on, struct text (*fmt)(double), double lo,
                          double hi)
{
    struct text t, a = fmt(lo), b = fmt(hi);
    t.s[0] = '\0';
    if (on && isfinite(lo))
        snprintf(t.s, sizeof(t.s), " [%.20s .. %.20s]", a.s, b.s);
    return t;
}

static void print_bw(const char *name, const struct plan *pl,
                     const struct figures *f, const struct figures *lo,
                     const struct figures *hi, int sp)
{
    if (pl->tr == T_UDP) {
        size_t dg = pl->size < pl->datagram ? (size_t)pl->size : pl->datagram;
        printf("  %-11s %s per %zu B datagram: sent %s, delivered %s%s, %s, "
               "%.2f%% lost\n",
               name, pl->batch ? "sendmmsg" : "one sendto", dg,
               fmt_mbs(f->sent_rate).s, fmt_rate(f->rate).s,
               spread(sp, fmt_mbs, lo->rate, hi->rate).s,
               fmt_per_s(f->msg_rate).s,
               f->dgrams_sent > 0 ? 100 * f->lost / f->dgrams_sent : 0.0);
        return;
    }
    printf("  %-11s %s in %.2f s: %s%s, %s %s", name, fmt_bytes(f->bytes).s,
           f->seconds, fmt_rate(f->rate).s,
           spread(sp, fmt_mbs, lo->rate, hi->rate).s, fmt_per_s(f->msg_rate).s,
           pl->tr == T_RPC ? "calls" : "messages");
    if (is_rmsg(pl->tr))
        printf(", %.1f datagrams/msg, %.0f retransmitted", f->dgrams_per_msg,
               f->retrans);
    if (pl->tr == T_RPC)
        printf(", %d client%s, %.1f datagrams/call both ways, %.0f "
               "retransmitted by the clients",
               pl->clients, pl->clients > 1 ? "s" : "", f->dgrams_per_msg,
               f->retrans);
    printf("\n");
}

static void print_lat(const char *name, const struct plan *pl,
                      const struct figures *f, const struct figures *lo,
                      const struct figures *hi, int sp)
{
    printf("  %-11s %.0f %s in %.2f s (%s): p50 %s%s, p90 %s, "
           "p99 %s%s, p99.9 %s, max %s",
           name, f->msgs, pl->tr == T_RPC ? "calls" : "round trips", f->seconds,
           fmt_per_s(f->msg_rate).s, fmt_us(f->p50).s,
           spread(sp, fmt_us, lo->p50, hi->p50).s, fmt_us(f->p90).s,
           fmt_us(f->p99).s, spread(sp, fmt_us, lo->p99, hi->p99).s,
           fmt_us(f->p999).s, fmt_us(f->max).s);
    if (pl->tr == T_UDP)
        printf(", %.0f lost", f->lost);
    if (is_rmsg(pl->tr))
        printf(", %.0f+%.0f retransmitted", f->retrans, f->retrans_server);
    if (pl->tr == T_RPC)
        printf(", %d client%s, %.2f datagrams/call both ways, %.0f "
               "retransmitted by the clients",
               pl->clients, pl->clients > 1 ? "s" : "", f->dgrams_per_msg,
               f->retrans);
    printf("\n");
}

static void print_ratio(const struct plan *pl, const double r[3], int sp)
{
    int bw = pl->mode == M_BW, kept = promise_kept(pl, r[0]);
    double promise = bw ? 1.0 : 1.10;
    if (!isfinite(r[0]))
        return;
    printf("  %-11s %.2fx raw udp (%s)", "ratio", r[0],
           bw ? "goodput / raw delivered rate" : "p50 / raw p50");
    if (sp)
        printf(" [%.2fx .. %.2fx]", r[1], r[2]);
    if (kept)
        printf(": %s the promise (%s %.2fx)", kept > 0 ? "within" : "misses",
               bw ? ">=" : "<=", promise);
    printf("\n");
    if (kept < 0 && bw)
        printf("  %-11s %s delivers %.2fx what raw UDP with one sendto per "
               "datagram delivers; rmsg promises at least %.2fx\n",
               "verdict", transport_names[pl->tr], r[0], promise);
    else if (kept < 0 && pl->tr == T_RPC)
        printf("  %-11s an rpc call takes %.2fx a raw UDP round trip; the rpc "
               "layer promises at most %.2fx\n",
               "verdict", r[0], promise);
    else if (kept < 0)
        printf("  %-11s %s round trips take %.2fx raw UDP's; rmsg promises "
               "at most %.2fx\n",
               "verdict", transport_names[pl->tr], r[0], promise);
}

static void print_cpu(const struct plan *pl, const struct figures *f)
{
    printf("  %-11s client %.2f s, server %.2f s: ", "cpu", f->cpu_client,
           f->cpu_server);
    if (pl->mode == M_BW)
        printf("%.2f CPU s per GB delivered, both ends\n", f->cpu_per_gb);
    else
        printf("%.1f µs CPU per round trip, both ends\n", f->cpu_us_per_rtt);
}

/* The rpc layer's datagrams per call, when it says something. */
static void print_dgrams(const struct plan *pl, const struct figures *f)
{
    int kept = dgrams_kept(pl, f);
    if (kept > 0)
        printf("  %-11s %.2f datagrams per call, both ways: within the aim "
               "(about 2)\n",
               "datagrams", f->dgrams_per_msg);
    else if (kept < 0)
        printf("  %-11s %.2f datagrams per call, both ways; the rpc layer "
               "aims at about 2 (request, reply) when nothing is lost\n",
               "verdict", f->dgrams_per_msg);
}

/* What the verification found. */
static void print_check(const char *name, const struct plan *pl,
                        const struct figures *f)
{
    if (f->why[0])
        printf("  %-11s %s: %s\n", "FAILED", name, f->why);
    else if (pl->tr == T_UDP && pl->mode == M_BW)
        printf("  %-11s %s: %.0f datagrams arrived, %.0f corrupt or foreign, "
               "%.0f duplicated, %.0f reordered, %.0f too short to check\n",
               "checked", name, f->dgrams_recv, f->dgrams_bad, f->dgrams_dup,
               f->dgrams_late, f->dgrams_unchecked);
    else if (pl->tr == T_UDP)
        printf("  %-11s %s: %.0f echoes intact, %.0f corrupt\n", "checked",
               name, f->msgs, f->dgrams_bad);
    else if (pl->tr == T_RPC && pl->mode == M_BW)
        printf("  %-11s %.0f calls, %s: each ran once, none missing or "
               "corrupt\n",
               "verified", f->msgs, fmt_bytes(f->bytes).s);
    else if (pl->tr == T_RPC)
        printf("  %-11s %.0f calls: each ran once, each reply the request "
               "echoed intact\n",
               "verified", f->msgs);
    else if (pl->mode == M_BW)
        printf("  %-11s %.0f messages, %s: none missing, duplicated, out of "
               "order or corrupt\n",
               "verified", f->msgs, fmt_bytes(f->bytes).s);
    else
        printf("  %-11s %.0f echoes: each whole, in order and intact\n",
               "verified", f->msgs);
    if (f->capped)
        printf("  %-11s %s stopped at the %.0f s cap before its total; -n, "
               "-N or -t set the length\n",
               "note", name, TIME_CAP_S);
}

static void print_figs(const char *name, const struct plan *pl,
                       const struct figures *f, const struct figures *lo,
                       const struct figures *hi, int sp)
{
    if (pl->mode == M_BW)
        print_bw(name, pl, f, lo, hi, sp);
    else
        print_lat(name, pl, f, lo, hi, sp);
}

void print_header(const struct opts *o, const struct client *cl,
                  const struct plan *pl)
{
    char limit[64] = "";
    uint64_t n = pl->mode == M_BW ? pl->total : pl->count;
    if (n && pl->mode == M_BW)
        snprintf(limit, sizeof(limit), "%s", fmt_bytes((double)n).s);
    else if (n)
        snprintf(limit, sizeof(limit), "%" PRIu64 " %s", n,
                 pl->tr == T_RPC ? "calls" : "round trips");
    if (pl->seconds > 0)
        snprintf(limit + strlen(limit), sizeof(limit) - strlen(limit), "%s%g s",
                 n ? " or " : "", pl->seconds);
    if (pl->tr == T_RPC)
        printf("rperf: rpc %s %s (%s), %d client%s: requests of %s%s",
               pl->mode == M_BW ? "calls carrying data to" : "calls to",
               o->host, cl->peer_name, pl->clients, pl->clients > 1 ? "s" : "",
               fmt_bytes((double)pl->size).s,
               pl->mode == M_BW ? ", empty replies"
               : pl->size == 0  ? " (null calls)"
                                : ", echoed");
    else
        printf("rperf: %s %s %s (%s): messages of %s", transport_names[pl->tr],
               pl->mode == M_BW ? "bulk transfer to" : "round trips with",
               o->host, cl->peer_name, fmt_bytes((double)pl->size).s);
    if (pl->tr != T_TCP)
        printf(", datagrams of %u B", (unsigned)pl->datagram);
    printf(", %s\n", limit);
}

/* One line per run when there are several. */
void print_run_line(int i, int n, const struct plan *pl, const struct run *r,
                    int has_base)
{
    const struct figures *f = &r->test, *b = &r->base;
    printf("run %d/%d: %s ", i + 1, n, transport_names[pl->tr]);
    if (pl->mode == M_BW)
        printf("%s", fmt_mbs(f->rate).s);
    else
        printf("p50 %s p99 %s", fmt_us(f->p50).s, fmt_us(f->p99).s);
    if (has_base && pl->mode == M_BW)
        printf(", udp %s, %.2fx", fmt_mbs(b->rate).s, r->ratio);
    else if (has_base)
        printf(", udp p50 %s, %.2fx", fmt_us(b->p50).s, r->ratio);
    printf("%s%s\n", f->why[0] ? ": FAILED: " : "", f->why);
}

static void print_quiet(const struct plan *pl, const struct figures *f,
                        double ratio)
{
    printf("%s %s %s: ", transport_names[pl->tr],
           pl->mode == M_BW ? "bw" : "lat", fmt_bytes((double)pl->size).s);
    if (pl->mode == M_BW)
        printf("%s", fmt_rate(f->rate).s);
    else
        printf("p50 %s p99 %s", fmt_us(f->p50).s, fmt_us(f->p99).s);
    if (isfinite(ratio))
        printf(", %.2fx raw udp", ratio);
    printf(", %s%s\n",
           f->why[0]   ? "FAILED: "
           : f->intact ? "intact"
                       : "",
           f->why);
}

void print_summary(const struct opts *o, const struct plan *pl,
                   const struct plan *bp, const struct run *runs, int n,
                   int has_base)
{
    struct figures med, lo, hi, bmed, blo, bhi;
    double r[3];
    int sp = n > 1;
    summarize(runs, n, 0, &med, &lo, &hi);
    summarize(runs, n, 1, &bmed, &blo, &bhi);
    ratio_stats(runs, n, r);
    if (o->quiet) {
        print_quiet(pl, &med, r[0]);
        return;
    }
    if (sp)
        printf("median of %d runs, [min .. max]:\n", n);
    print_figs(transport_names[pl->tr], pl, &med, &lo, &hi, sp);
    if (has_base) {
        print_figs("udp", bp, &bmed, &blo, &bhi, sp);
        print_ratio(pl, r, sp);
    }
    print_dgrams(pl, &med);
    print_cpu(pl, &med);
    print_check(transport_names[pl->tr], pl, &med);
    if (has_base && bmed.why[0])
        print_check("udp", bp, &bmed);
}

/* ------------------------------------------------------------------------ */
/* JSON: one flat object (one key per line), so that shell scripts can pick */
/* a figure with sed; the baseline's figures carry the prefix "baseline_"   */
/* ------------------------------------------------------------------------ */

struct jw {
    FILE *f;
    int n;
};

static void jw_key(struct jw *w, const char *pre, const char *key,
                   const char *post)
{
    fprintf(w->f, "%s\n  \"%s%s%s\": ", w->n++ ? "," : "{", pre, key, post);
}

static void jw_num(struct jw *w, const char *pre, const char *key,
                   const char *post, double v)
{
    jw_key(w, pre, key, post);
    if (!isfinite(v))
        fputs("null", w->f);
    else if ((v == floor(v) && fabs(v) < 1e15) || fabs(v) >= 1e6)
        fprintf(w->f, "%.0f", v); /* plain digits: kind to shell scripts */
    else
        fprintf(w->f, "%.9g", v);
}

static void jw_str(struct jw *w, const char *key, const char *s)
{
    jw_key(w, "", key, "");
    if (s == NULL) {
        fputs("null", w->f);
        return;
    }
    fputc('"', w->f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(w->f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(w->f, "\\u%04x", *p);
        else
            fputc(*p, w->f);
    }
    fputc('"', w->f);
}

static void jw_bool(struct jw *w, const char *key, int b)
{
    jw_key(w, "", key, "");
    fputs(b ? "true" : "false", w->f);
}

/* true, false or null for a promise kept (1), missed (-1) or n/a (0). */
static void jw_tri(struct jw *w, const char *key, int kept)
{
    jw_key(w, "", key, "");
    fputs(kept ? (kept > 0 ? "true" : "false") : "null", w->f);
}

static void jw_figs(struct jw *w, const char *pre, const struct figures *f,
                    const char *post)
{
    for (size_t i = 0; i < nfigs; i++)
        jw_num(w, pre, figdefs[i].key, post, fig_get(f, i));
}

/* What was asked for. */
static void json_request(struct jw *w, const struct opts *o,
                         const struct plan *pl)
{
    jw_str(w, "tool", "rperf");
    jw_num(w, "", "version", "", 1);
    jw_str(w, "host", o->host);
    jw_num(w, "", "port", "", o->port);
    jw_str(w, "transport", transport_names[pl->tr]);
    jw_str(w, "test", pl->mode == M_BW ? "bw" : "lat");
    jw_num(w, "", "size", "", (double)pl->size);
    jw_num(w, "", "clients", "", pl->clients);
    jw_num(w, "", "datagram", "", pl->tr == T_TCP ? NAN : pl->datagram);
    jw_bool(w, "batch", pl->batch);
    jw_num(w, "", "repeats", "", o->repeats);
    jw_num(w, "", "limit_bytes", "", pl->total ? (double)pl->total : NAN);
    jw_num(w, "", "limit_count", "", pl->count ? (double)pl->count : NAN);
    jw_num(w, "", "limit_seconds", "", pl->seconds > 0 ? pl->seconds : NAN);
}

void print_json(const struct opts *o, const struct plan *pl,
                const struct plan *bp, const struct run *runs, int n,
                int has_base, const char *fatal)
{
    struct jw w = {stdout, 0};
    struct figures med, lo, hi, bmed, blo, bhi;
    double r[3] = {NAN, NAN, NAN};
    json_request(&w, o, pl);
    if (n > 0) {
        summarize(runs, n, 0, &med, &lo, &hi);
        summarize(runs, n, 1, &bmed, &blo, &bhi);
        ratio_stats(runs, n, r);
    }
    const char *err = fatal[0] ? fatal : n > 0 && med.why[0] ? med.why : NULL;
    jw_bool(&w, "ok", err == NULL);
    jw_bool(&w, "intact", n > 0 && med.intact);
    jw_bool(&w, "capped", n > 0 && med.capped);
    jw_str(&w, "error", err);
    if (n > 0) {
        jw_figs(&w, "", &med, "");
        jw_str(&w, "baseline_transport", has_base ? "udp" : NULL);
        jw_num(&w, "", "baseline_size", "", has_base ? (double)bp->size : NAN);
        if (has_base) {
            jw_figs(&w, "baseline_", &bmed, "");
            jw_str(&w, "baseline_error", bmed.why[0] ? bmed.why : NULL);
        }
        jw_num(&w, "", "ratio", "", r[0]);
        jw_str(&w, "ratio_basis",
               !has_base          ? NULL
               : pl->mode == M_BW ? "rate / baseline rate"
                                  : "p50 / baseline p50");
        jw_num(&w, "", "promise", "",
               !(is_rmsg(pl->tr) || rpc_promised(pl)) ||
                       (pl->mode == M_BW && pl->tr != T_RMSG_ASYNC)
                   ? NAN
               : pl->mode == M_BW ? 1.0
                                  : 1.10);
        jw_tri(&w, "meets_promise", promise_kept(pl, r[0]));
        int aim = dgrams_kept(pl, &med);
        jw_num(&w, "", "datagrams_per_call_aim", "", aim ? 2.0 : NAN);
        jw_tri(&w, "meets_datagram_aim", aim);
    }
    if (n > 1) {
        jw_figs(&w, "", &lo, "_min");
        jw_figs(&w, "", &hi, "_max");
        jw_num(&w, "", "ratio_min", "", r[1]);
        jw_num(&w, "", "ratio_max", "", r[2]);
    }
    fputs("\n}\n", stdout);
}
