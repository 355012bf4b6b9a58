/*
 * benchplot.c - the pictures and the table of `make bench`.
 *
 *   benchplot [-o OUT.svg] [-t TABLE.md] RESULTS.json
 *
 * Reads what bench/run.sh wrote (an object with the machine, the date and
 * "runs": one flat rperf JSON object per case, with the case's "case",
 * "group", "label", "network" and "loss_pct" in front) and writes
 *
 *   - OUT.svg, one self-contained SVG file of six charts: goodput against
 *     message size, round-trip percentiles per transport, goodput and
 *     round trips against loss, and every ratio to raw UDP next to the
 *     library's goals;
 *   - TABLE.md, one Markdown table with a row per case: the median, its
 *     spread, the raw UDP baseline of the same run, the ratio and the goal.
 *
 * It depends on nothing but libc and libm: a small JSON parser (the whole
 * grammar of RFC 8259, values kept as a tree) and SVG written as text.
 * Groups it knows: latency, rate, bulk, loss-bulk, loss-rtt; a case of
 * another group is listed in the table and left out of the charts.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* JSON: a tree of values                                                    */
/* ------------------------------------------------------------------------ */

enum jtype { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
    enum jtype type;
    double num;
    char *str;          /* J_STR */
    size_t n;           /* J_ARR, J_OBJ: members */
    struct jval *items; /* the members' values */
    char **keys;        /* J_OBJ: the members' names */
};

struct jparser {
    const char *start, *p, *end;
    char err[160];
};

#define JSON_DEPTH_MAX 32

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        fprintf(stderr, "benchplot: out of memory\n");
        exit(1);
    }
    return q;
}

static int jfail(struct jparser *ps, const char *what)
{
    if (ps->err[0] == '\0')
        snprintf(ps->err, sizeof(ps->err), "%s at byte %td", what,
                 ps->p - ps->start);
    return -1;
}

static void skip_ws(struct jparser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
                               *ps->p == '\r' || *ps->p == '\n'))
        ps->p++;
}

/* Appends code point cp to buf as UTF-8. */
static void put_utf8(char *buf, size_t *len, uint32_t cp)
{
    if (cp < 0x80) {
        buf[(*len)++] = (char)cp;
    } else if (cp < 0x800) {
        buf[(*len)++] = (char)(0xc0 | cp >> 6);
        buf[(*len)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        buf[(*len)++] = (char)(0xe0 | cp >> 12);
        buf[(*len)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        buf[(*len)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        buf[(*len)++] = (char)(0xf0 | cp >> 18);
        buf[(*len)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        buf[(*len)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        buf[(*len)++] = (char)(0x80 | (cp & 0x3f));
    }
}

static int hex4(struct jparser *ps, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++, ps->p++) {
        char c = ps->p < ps->end ? *ps->p : 0;
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return jfail(ps, "bad \\u escape");
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 0;
}

/* One escape after the backslash, into buf. */
static int parse_escape(struct jparser *ps, char *buf, size_t *len)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    char c = *ps->p++;
    const char *k = strchr(from, c);
    if (c != 'u') {
        if (k == NULL || c == '\0')
            return jfail(ps, "bad escape");
        buf[(*len)++] = to[k - from];
        return 0;
    }
    uint32_t cp, lo;
    if (hex4(ps, &cp) < 0)
        return -1;
    if (cp >= 0xd800 && cp < 0xdc00 && ps->end - ps->p >= 6 &&
        ps->p[0] == '\\' && ps->p[1] == 'u') {
        ps->p += 2;
        if (hex4(ps, &lo) < 0)
            return -1;
        if (lo >= 0xdc00 && lo < 0xe000)
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    put_utf8(buf, len, cp);
    return 0;
}

/* A string, the opening quote already seen; *out is malloc'd. */
static int parse_string(struct jparser *ps, char **out)
{
    size_t cap = 16, len = 0;
    char *buf = xrealloc(NULL, cap);
    ps->p++;
    for (;;) {
        if (len + 8 > cap)
            buf = xrealloc(buf, cap *= 2);
        if (ps->p >= ps->end) {
            free(buf);
            return jfail(ps, "unterminated string");
        }
        char c = *ps->p++;
        if (c == '"')
            break;
        if ((unsigned char)c < 0x20) {
            free(buf);
            return jfail(ps, "control character in a string");
        }
        if (c == '\\' && parse_escape(ps, buf, &len) < 0) {
            free(buf);
            return -1;
        }
        if (c != '\\')
            buf[len++] = c;
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

static int parse_number(struct jparser *ps, struct jval *v)
{
    const char *s = ps->p;
    if (*s == '-')
        s++;
    if (!(*s >= '0' && *s <= '9'))
        return jfail(ps, "unexpected character");
    char *end;
    errno = 0;
    v->num = strtod(ps->p, &end);
    if (end == ps->p || end > ps->end)
        return jfail(ps, "bad number");
    v->type = J_NUM;
    ps->p = end;
    return 0;
}

static int parse_value(struct jparser *ps, struct jval *v, int depth);

/* The members of an array or object, the opening bracket already seen. */
static int parse_members(struct jparser *ps, struct jval *v, int obj, int depth)
{
    char close = obj ? '}' : ']';
    size_t cap = 0;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return 0;
    }
    for (;;) {
        if (v->n == cap) {
            cap = cap ? 2 * cap : 8;
            v->items = xrealloc(v->items, cap * sizeof(*v->items));
            if (obj)
                v->keys = xrealloc(v->keys, cap * sizeof(*v->keys));
        }
        skip_ws(ps);
        if (obj) {
            if (ps->p >= ps->end || *ps->p != '"')
                return jfail(ps, "expected a member name");
            if (parse_string(ps, &v->keys[v->n]) < 0)
                return -1;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p++ != ':') {
                free(v->keys[v->n]);
                return jfail(ps, "expected ':'");
            }
        }
        memset(&v->items[v->n], 0, sizeof(v->items[0]));
        int rc = parse_value(ps, &v->items[v->n], depth + 1);
        v->n++; /* counted even on failure, so that it is freed */
        if (rc < 0)
            return -1;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return 0;
        }
        return jfail(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int parse_value(struct jparser *ps, struct jval *v, int depth)
{
    static const struct {
        const char *word;
        enum jtype type;
    } words[] = {{"null", J_NULL}, {"false", J_FALSE}, {"true", J_TRUE}};
    if (depth > JSON_DEPTH_MAX)
        return jfail(ps, "nested too deeply");
    skip_ws(ps);
    if (ps->p >= ps->end)
        return jfail(ps, "unexpected end");
    switch (*ps->p) {
    case '{':
        v->type = J_OBJ;
        return parse_members(ps, v, 1, depth);
    case '[':
        v->type = J_ARR;
        return parse_members(ps, v, 0, depth);
    case '"':
        v->type = J_STR;
        return parse_string(ps, &v->str);
    default:
        break;
    }
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(words[i].word);
        if ((size_t)(ps->end - ps->p) >= n &&
            strncmp(ps->p, words[i].word, n) == 0) {
            v->type = words[i].type;
            ps->p += n;
            return 0;
        }
    }
    return parse_number(ps, v);
}

static void jfree(struct jval *v)
{
    for (size_t i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        if (v->type == J_OBJ)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
}

/* Parses the whole of text (NUL-terminated).  Returns 0, or -1 with the
 * reason in err. */
static int json_parse(const char *text, struct jval *out, char *err, size_t cap)
{
    struct jparser ps = {.start = text, .p = text, .end = text + strlen(text)};
    memset(out, 0, sizeof(*out));
    int rc = parse_value(&ps, out, 0);
    skip_ws(&ps);
    if (rc == 0 && ps.p != ps.end)
        rc = jfail(&ps, "text after the value");
    if (rc < 0) {
        snprintf(err, cap, "%s", ps.err);
        jfree(out);
    }
    return rc;
}

static const struct jval *jget(const struct jval *obj, const char *key)
{
    if (obj == NULL || obj->type != J_OBJ)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

/* A member as a number, NAN when it is absent, null or not a number. */
static double jnum(const struct jval *obj, const char *key)
{
    const struct jval *v = jget(obj, key);
    return v && v->type == J_NUM ? v->num : NAN;
}

/* A member as a string, or "" (never NULL). */
static const char *jstr(const struct jval *obj, const char *key)
{
    const struct jval *v = jget(obj, key);
    return v && v->type == J_STR ? v->str : "";
}

/* A member as a truth: 1 true, 0 false, -1 null or absent. */
static int jbool(const struct jval *obj, const char *key)
{
    const struct jval *v = jget(obj, key);
    return v && v->type == J_TRUE ? 1 : v && v->type == J_FALSE ? 0 : -1;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 65536, len = 0, n;
    char *buf = xrealloc(NULL, cap);
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2)
            buf = xrealloc(buf, cap *= 2);
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* ------------------------------------------------------------------------ */
/* The runs                                                                  */
/* ------------------------------------------------------------------------ */

struct bench {
    const struct jval *doc;
    const struct jval **runs;
    size_t nruns;
};

static int is_group(const struct jval *r, const char *group)
{
    return strcmp(jstr(r, "group"), group) == 0;
}

static int ran_ok(const struct jval *r)
{
    return jbool(r, "ok") == 1;
}

/* The first run of a group with this transport, size and loss (size or
 * loss < 0: any); NULL if none. */
static const struct jval *find_run(const struct bench *b, const char *group,
                                   const char *transport, double size,
                                   double loss)
{
    for (size_t i = 0; i < b->nruns; i++) {
        const struct jval *r = b->runs[i];
        if (is_group(r, group) &&
            strcmp(jstr(r, "transport"), transport) == 0 &&
            (size < 0 || jnum(r, "size") == size) &&
            (loss < 0 || jnum(r, "loss_pct") == loss))
            return r;
    }
    return NULL;
}

/* The distinct values of a member over the runs of a group, ascending,
 * into v (at most cap).  Returns how many. */
static int distinct(const struct bench *b, const char *group, const char *key,
                    double *v, int cap)
{
    int n = 0;
    for (size_t i = 0; i < b->nruns; i++) {
        double x = jnum(b->runs[i], key);
        if (!is_group(b->runs[i], group) || isnan(x))
            continue;
        int k = 0;
        while (k < n && v[k] < x)
            k++;
        if (k < n && v[k] == x)
            continue;
        if (n == cap)
            break;
        memmove(v + k + 1, v + k, (size_t)(n - k) * sizeof(*v));
        v[k] = x;
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Figures as text                                                           */
/* ------------------------------------------------------------------------ */

struct text {
    char s[64];
};

static struct text tfmt(const char *fmt, ...)
{
    struct text t;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t.s, sizeof(t.s), fmt, ap);
    va_end(ap);
    return t;
}

/* Microseconds: "26.4 µs", "1.23 ms", "2.50 s". */
static struct text fmt_us(double us)
{
    if (!isfinite(us))
        return tfmt("-");
    if (us < 100)
        return tfmt("%.1f µs", us);
    if (us < 1000)
        return tfmt("%.0f µs", us);
    if (us < 1e6)
        return tfmt("%.*f ms", us < 1e4 ? 2 : 1, us / 1e3);
    return tfmt("%.2f s", us / 1e6);
}

/* Bytes per second, decimal: "199 MB/s", "1.42 GB/s", "812 KB/s". */
static struct text fmt_rate(double bps)
{
    if (!isfinite(bps))
        return tfmt("-");
    if (bps >= 1e9)
        return tfmt("%.2f GB/s", bps / 1e9);
    if (bps >= 1e6)
        return tfmt("%.*f MB/s", bps < 1e7 ? 2 : bps < 1e8 ? 1 : 0, bps / 1e6);
    return tfmt("%.0f KB/s", bps / 1e3);
}

/* A count per second: "29.4 k/s", "1.21 M/s". */
static struct text fmt_per_s(double n)
{
    if (!isfinite(n))
        return tfmt("-");
    if (n >= 1e6)
        return tfmt("%.2f M/s", n / 1e6);
    if (n >= 1e3)
        return tfmt("%.1f k/s", n / 1e3);
    return tfmt("%.0f /s", n);
}

/* A message size in binary units: "64 B", "1 KiB", "64 MiB". */
static struct text fmt_size(double b)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB"};
    int u = 0;
    while (b >= 1024 && u < 3 && fmod(b, 1024) == 0) {
        b /= 1024;
        u++;
    }
    return tfmt("%.0f %s", b, unit[u]);
}

static struct text fmt_ratio(double r)
{
    return isfinite(r) ? tfmt("%.2fx", r) : tfmt("-");
}

/* ------------------------------------------------------------------------ */
/* The table                                                                 */
/* ------------------------------------------------------------------------ */

struct row {
    struct text median, spread, raw, ratio, goal;
    char notes[200];
};

static void note(struct row *w, const char *fmt, ...)
{
    size_t n = strlen(w->notes);
    if (n > 0 && n + 2 < sizeof(w->notes)) {
        strcat(w->notes, "; ");
        n += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->notes + n, sizeof(w->notes) - n, fmt, ap);
    va_end(ap);
}

/* "met"/"missed" for a goal "<= 1.10x" or ">= 1.00x", from rperf's own
 * verdict. */
static struct text goal_text(const struct jval *r, int lower_is_better)
{
    double promise = jnum(r, "promise");
    int met = jbool(r, "meets_promise");
    if (!isfinite(promise) || met < 0)
        return tfmt("-");
    return tfmt("%s %.2fx: %s", lower_is_better ? "≤" : "≥", promise,
                met ? "met" : "**missed**");
}

static void row_latency(const struct bench *b, const struct jval *r,
                        struct row *w)
{
    (void)b;
    w->median = tfmt("p50 %s, p99 %s", fmt_us(jnum(r, "p50_us")).s,
                     fmt_us(jnum(r, "p99_us")).s);
    w->spread = tfmt("p50 %s .. %s", fmt_us(jnum(r, "p50_us_min")).s,
                     fmt_us(jnum(r, "p50_us_max")).s);
    w->raw = tfmt("p50 %s", fmt_us(jnum(r, "baseline_p50_us")).s);
    w->goal = goal_text(r, 1);
    int rpc = strcmp(jstr(r, "transport"), "rpc") == 0;
    note(w, "%s %s", fmt_per_s(jnum(r, "msgs_per_s")).s,
         rpc ? "calls" : "round trips");
    if (rpc) {
        note(w, "%.2f datagrams/call", jnum(r, "datagrams_per_msg"));
        double base = jnum(r, "baseline_msgs_per_s");
        if (jnum(r, "clients") > 1 && isfinite(base))
            note(w, "%.2fx raw UDP's round trips/s",
                 jnum(r, "msgs_per_s") / base);
    }
    if (isfinite(jnum(r, "retransmissions")))
        note(w, "%.0f retransmitted", jnum(r, "retransmissions"));
}

static void row_rate(const struct bench *b, const struct jval *r, struct row *w)
{
    (void)b;
    w->median = tfmt("%s datagrams (%s)", fmt_per_s(jnum(r, "msgs_per_s")).s,
                     fmt_rate(jnum(r, "rate_bytes_per_s")).s);
    w->spread = tfmt("%s .. %s", fmt_per_s(jnum(r, "msgs_per_s_min")).s,
                     fmt_per_s(jnum(r, "msgs_per_s_max")).s);
    w->raw = tfmt("(is the baseline)");
    double sent = jnum(r, "datagrams_sent"), lost = jnum(r, "lost");
    if (sent > 0)
        note(w, "one sendto each; %.2f%% lost", 100 * lost / sent);
}

static void row_bulk(const struct bench *b, const struct jval *r, struct row *w)
{
    w->median = fmt_rate(jnum(r, "rate_bytes_per_s"));
    w->spread = tfmt("%s .. %s", fmt_rate(jnum(r, "rate_bytes_per_s_min")).s,
                     fmt_rate(jnum(r, "rate_bytes_per_s_max")).s);
    w->raw = fmt_rate(jnum(r, "baseline_rate_bytes_per_s"));
    w->goal = goal_text(r, 0);
    const char *tr = jstr(r, "transport");
    int lossy = is_group(r, "loss-bulk");
    double loss = lossy ? jnum(r, "loss_pct") : -1;
    const struct jval *tcp = find_run(b, jstr(r, "group"), "tcp",
                                      lossy ? -1 : jnum(r, "size"), loss);
    if (strcmp(tr, "tcp") != 0 && tcp && ran_ok(tcp))
        note(w, "%.2fx TCP",
             jnum(r, "rate_bytes_per_s") / jnum(tcp, "rate_bytes_per_s"));
    if (lossy) {
        const struct jval *free0 = find_run(b, "loss-bulk", tr, -1, 0);
        if (free0 && ran_ok(free0) && jnum(r, "loss_pct") > 0)
            note(w, "**%.2fx loss-free**",
                 jnum(r, "rate_bytes_per_s") / jnum(free0, "rate_bytes_per_s"));
        if (isfinite(jnum(r, "drop_measured_pct")))
            note(w, "kernel dropped %.2f%%", jnum(r, "drop_measured_pct"));
    }
    double sent = jnum(r, "datagrams_sent"), retx = jnum(r, "retransmissions");
    if (strcmp(tr, "tcp") != 0 && sent > 0 && isfinite(retx))
        note(w, "%.*f datagrams/msg, %.2f%% retransmitted",
             jnum(r, "datagrams_per_msg") < 10 ? 1 : 0,
             jnum(r, "datagrams_per_msg"), 100 * retx / sent);
}

static void row_loss_rtt(const struct bench *b, const struct jval *r,
                         struct row *w)
{
    w->median = tfmt("p99 %s, p50 %s", fmt_us(jnum(r, "p99_us")).s,
                     fmt_us(jnum(r, "p50_us")).s);
    w->spread = tfmt("p99 %s .. %s", fmt_us(jnum(r, "p99_us_min")).s,
                     fmt_us(jnum(r, "p99_us_max")).s);
    w->raw = tfmt("p50 %s, p99 %s", fmt_us(jnum(r, "baseline_p50_us")).s,
                  fmt_us(jnum(r, "baseline_p99_us")).s);
    w->goal = goal_text(r, 1);
    const struct jval *free0 =
        find_run(b, "loss-rtt", jstr(r, "transport"), -1, 0);
    if (free0 && ran_ok(free0) && jnum(r, "loss_pct") > 0)
        note(w, "p99 %.1fx loss-free",
             jnum(r, "p99_us") / jnum(free0, "p99_us"));
    if (isfinite(jnum(r, "drop_measured_pct")))
        note(w, "kernel dropped %.2f%%", jnum(r, "drop_measured_pct"));
    note(w, "%.0f retransmitted", jnum(r, "retransmissions"));
}

static void make_row(const struct bench *b, const struct jval *r, struct row *w)
{
    memset(w, 0, sizeof(*w));
    w->spread = w->raw = w->ratio = w->goal = tfmt("-");
    if (!ran_ok(r)) {
        w->median = tfmt("**FAILED**");
        snprintf(w->notes, sizeof(w->notes), "%s", jstr(r, "error"));
        return;
    }
    w->ratio = fmt_ratio(jnum(r, "ratio"));
    if (is_group(r, "latency"))
        row_latency(b, r, w);
    else if (is_group(r, "rate"))
        row_rate(b, r, w);
    else if (is_group(r, "bulk") || is_group(r, "loss-bulk"))
        row_bulk(b, r, w);
    else if (is_group(r, "loss-rtt"))
        row_loss_rtt(b, r, w);
    else
        w->median = tfmt("see results.json");
    if (jstr(r, "retried")[0])
        note(w, "retried once: the server was gone after the first attempt");
    if (!isfinite(jnum(r, "baseline_p50_us")) &&
        !isfinite(jnum(r, "baseline_rate_bytes_per_s")) && !is_group(r, "rate"))
        w->raw = tfmt("-");
}

/* Markdown cells may not hold '|' or a newline. */
static void cell(FILE *f, const char *s)
{
    fputc(' ', f);
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
    fputs(" |", f);
}

static void write_table(FILE *f, const struct bench *b)
{
    fprintf(f, "| case | median | spread [min .. max] | raw UDP, same run | "
               "ratio | goal | notes |\n");
    fprintf(f, "|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < b->nruns; i++) {
        struct row w;
        make_row(b, b->runs[i], &w);
        fputs("|", f);
        cell(f, jstr(b->runs[i], "label"));
        cell(f, w.median.s);
        cell(f, w.spread.s);
        cell(f, w.raw.s);
        cell(f, w.ratio.s);
        cell(f, w.goal.s);
        cell(f, w.notes[0] ? w.notes : "-");
        fputs("\n", f);
    }
}

/* ------------------------------------------------------------------------ */
/* SVG: primitives                                                           */
/* ------------------------------------------------------------------------ */

/* Colours per series, chosen to stay apart for colour-blind readers
 * (Okabe and Ito's palette). */
#define C_UDP   "#555555"
#define C_RMSG  "#0072b2"
#define C_ASYNC "#009e73"
#define C_TCP   "#d55e00"
#define C_RPC   "#cc79a7"
#define C_RPC8  "#e69f00"
#define C_GOOD  "#009e73"
#define C_BAD   "#d55e00"
#define C_NONE  "#999999"

static const char *transport_colour(const char *tr, double clients)
{
    if (strcmp(tr, "udp") == 0)
        return C_UDP;
    if (strcmp(tr, "rmsg") == 0)
        return C_RMSG;
    if (strcmp(tr, "rmsg-async") == 0)
        return C_ASYNC;
    if (strcmp(tr, "tcp") == 0)
        return C_TCP;
    return clients > 1 ? C_RPC8 : C_RPC;
}

/* Text for an SVG document: &, < and > escaped. */
static void svg_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else
            fputc(*s, f);
    }
}

/* A text at (x, y); anchor "start", "middle" or "end"; cls a class of the
 * style sheet (or NULL). */
static void svg_text(FILE *f, double x, double y, const char *anchor,
                     const char *cls, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"%s%s%s>", x, y,
            anchor, cls ? " class=\"" : "", cls ? cls : "", cls ? "\"" : "");
    svg_escaped(f, buf);
    fputs("</text>\n", f);
}

static void svg_line(FILE *f, double x1, double y1, double x2, double y2,
                     const char *colour, double width, const char *dash)
{
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
            "stroke=\"%s\" stroke-width=\"%.1f\"%s%s%s/>\n",
            x1, y1, x2, y2, colour, width, dash ? " stroke-dasharray=\"" : "",
            dash ? dash : "", dash ? "\"" : "");
}

static void svg_rect(FILE *f, double x, double y, double w, double h,
                     const char *fill, const char *extra)
{
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
            "fill=\"%s\"%s/>\n",
            x, y, w, h, fill, extra ? extra : "");
}

enum marker {
    MK_CIRCLE,
    MK_SQUARE,
    MK_DIAMOND,
    MK_TRIANGLE,
    MK_CROSS,
    MK_RING
};

/* A point marker of radius r centred on (x, y). */
static void svg_marker(FILE *f, enum marker m, double x, double y, double r,
                       const char *colour)
{
    switch (m) {
    case MK_CIRCLE:
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\"/>\n",
                x, y, r, colour);
        break;
    case MK_RING:
        fprintf(f,
                "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"white\" "
                "stroke=\"%s\" stroke-width=\"1.5\"/>\n",
                x, y, r, colour);
        break;
    case MK_SQUARE:
        svg_rect(f, x - r, y - r, 2 * r, 2 * r, colour, NULL);
        break;
    case MK_DIAMOND:
        fprintf(f,
                "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f\" "
                "fill=\"%s\"/>\n",
                x, y - r * 1.3, x + r * 1.3, y, x, y + r * 1.3, x - r * 1.3, y,
                colour);
        break;
    case MK_TRIANGLE:
        fprintf(f,
                "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\" "
                "fill=\"%s\"/>\n",
                x, y - r * 1.3, x + r * 1.2, y + r, x - r * 1.2, y + r, colour);
        break;
    case MK_CROSS:
        svg_line(f, x - r, y - r, x + r, y + r, colour, 1.5, NULL);
        svg_line(f, x - r, y + r, x + r, y - r, colour, 1.5, NULL);
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* SVG: panels and axes                                                      */
/* ------------------------------------------------------------------------ */

/* A chart's place: the whole panel and, inside it, the plot area. */
struct panel {
    FILE *f;
    double x, y, w, h;  /* the panel */
    double left, right; /* the plot area, x */
    double top, bottom; /* the plot area, y (top < bottom) */
    double legend_x;    /* where the next legend entry goes */
};

/* An axis: the values at both ends, and whether it is logarithmic. */
struct axis {
    double lo, hi;
    int log;
};

static struct panel panel_open(FILE *f, double x, double y, double w, double h,
                               const char *title, const char *subtitle)
{
    struct panel p = {f, x, y, w, h, x + 76, x + w - 16, y + 64, y + h - 44, 0};
    svg_rect(f, x + 0.5, y + 0.5, w - 1, h - 1, "white", " stroke=\"#cccccc\"");
    svg_text(f, x + 12, y + 20, "start", "title", "%s", title);
    if (subtitle && subtitle[0])
        svg_text(f, x + 12, y + 35, "start", "sub", "%s", subtitle);
    return p;
}

/* Where value v falls between a and b (pixels) on axis ax. */
static double scale(const struct axis *ax, double v, double a, double b)
{
    double lo = ax->lo, hi = ax->hi;
    if (ax->log) {
        v = log10(v > 0 ? v : lo);
        lo = log10(lo);
        hi = log10(hi);
    }
    if (hi == lo)
        return (a + b) / 2;
    return a + (v - lo) / (hi - lo) * (b - a);
}

static double px_y(const struct panel *p, const struct axis *ax, double v)
{
    return scale(ax, v, p->bottom, p->top);
}

static double px_x(const struct panel *p, const struct axis *ax, double v)
{
    return scale(ax, v, p->left, p->right);
}

/* A round step (1, 2 or 5 times a power of ten) cutting range into about
 * five. */
static double nice_step(double range)
{
    double raw = range / 5, mag = pow(10, floor(log10(raw)));
    return raw / mag > 5   ? 10 * mag
           : raw / mag > 2 ? 5 * mag
           : raw / mag > 1 ? 2 * mag
                           : mag;
}

/* Widens [lo, hi] to whole decades (log) or to a round step from 0
 * (linear), so that ticks fall on its ends. */
static void axis_fit(struct axis *ax, double lo, double hi, int log)
{
    ax->log = log;
    if (!(lo > 0) && log)
        lo = hi > 0 ? hi / 10 : 1;
    if (!(hi > lo))
        hi = log ? lo * 10 : lo + 1;
    if (log) {
        ax->lo = pow(10, floor(log10(lo)));
        ax->hi = pow(10, ceil(log10(hi)));
        return;
    }
    double step = nice_step(hi);
    ax->lo = 0;
    ax->hi = ceil(hi / step) * step;
}

typedef struct text (*tick_fmt)(double);

/* The tick values of an axis into v (at most cap): decades (with 2 and 5
 * between when there are few) for log, about five round steps for linear. */
static int axis_ticks(const struct axis *ax, double *v, int cap)
{
    int n = 0;
    if (ax->log) {
        double decades = log10(ax->hi / ax->lo);
        for (double d = ax->lo; d <= ax->hi * 1.0001 && n < cap; d *= 10) {
            v[n++] = d;
            if (decades <= 3 && d * 2 < ax->hi && n + 2 < cap) {
                v[n++] = 2 * d;
                v[n++] = 5 * d;
            }
        }
        return n;
    }
    double step = nice_step(ax->hi - ax->lo);
    for (double t = ax->lo; t <= ax->hi * 1.0001 && n < cap; t += step)
        v[n++] = t;
    return n;
}

/* Grid lines and labels of the y axis, and its title. */
static void y_axis(const struct panel *p, const struct axis *ax, tick_fmt fmt,
                   const char *title)
{
    double t[40];
    int n = axis_ticks(ax, t, 40);
    for (int i = 0; i < n; i++) {
        double y = px_y(p, ax, t[i]);
        svg_line(p->f, p->left, y, p->right, y, "#e4e4e4", 1, NULL);
        svg_text(p->f, p->left - 5, y + 3.5, "end", "tick", "%s", fmt(t[i]).s);
    }
    svg_line(p->f, p->left, p->top, p->left, p->bottom, "#444444", 1, NULL);
    svg_line(p->f, p->left, p->bottom, p->right, p->bottom, "#444444", 1, NULL);
    fprintf(p->f,
            "<text transform=\"translate(%.1f,%.1f) rotate(-90)\" "
            "text-anchor=\"middle\" class=\"axis\">",
            p->x + 14, (p->top + p->bottom) / 2);
    svg_escaped(p->f, title);
    fputs("</text>\n", p->f);
}

/* The same for a horizontal value axis (the ratio charts). */
static void x_axis(const struct panel *p, const struct axis *ax, tick_fmt fmt,
                   const char *title)
{
    double t[40];
    int n = axis_ticks(ax, t, 40);
    for (int i = 0; i < n; i++) {
        double x = px_x(p, ax, t[i]);
        svg_line(p->f, x, p->top, x, p->bottom, "#e4e4e4", 1, NULL);
        svg_text(p->f, x, p->bottom + 14, "middle", "tick", "%s", fmt(t[i]).s);
    }
    svg_line(p->f, p->left, p->bottom, p->right, p->bottom, "#444444", 1, NULL);
    svg_text(p->f, (p->left + p->right) / 2, p->bottom + 32, "middle", "axis",
             "%s", title);
}

/* x positions of n categories, evenly spaced inside the plot area. */
static double cat_x(const struct panel *p, int i, int n)
{
    double w = (p->right - p->left) / n;
    return p->left + w * (i + 0.5);
}

static void x_categories(const struct panel *p, const char *const *labels,
                         int n, const char *title)
{
    for (int i = 0; i < n; i++)
        svg_text(p->f, cat_x(p, i, n), p->bottom + 15, "middle", "tick", "%s",
                 labels[i]);
    svg_text(p->f, (p->left + p->right) / 2, p->bottom + 33, "middle", "axis",
             "%s", title);
}

/* One legend entry, in a row between the subtitle and the plot area, so
 * that it never hides a point. */
static void legend(struct panel *p, enum marker m, const char *colour,
                   const char *label)
{
    double x = p->x + 16 + p->legend_x, y = p->y + 52;
    svg_marker(p->f, m, x, y - 3.5, 3.5, colour);
    svg_text(p->f, x + 8, y, "start", "legend", "%s", label);
    p->legend_x += 24 + 5.6 * (double)strlen(label);
}

static void no_data(const struct panel *p, const char *why)
{
    svg_text(p->f, (p->left + p->right) / 2, (p->top + p->bottom) / 2, "middle",
             "sub", "%s", why);
}

static struct text tick_rate(double bps)
{
    if (bps == 0)
        return tfmt("0");
    if (bps >= 1e9)
        return tfmt("%g GB/s", bps / 1e9);
    if (bps >= 1e6)
        return tfmt("%g MB/s", bps / 1e6);
    return tfmt("%g KB/s", bps / 1e3);
}

static struct text tick_us(double us)
{
    if (us >= 1e6)
        return tfmt("%g s", us / 1e6);
    if (us >= 1e3)
        return tfmt("%g ms", us / 1e3);
    return tfmt("%g µs", us);
}

static struct text tick_ratio(double r)
{
    return tfmt("%gx", r);
}

/* ------------------------------------------------------------------------ */
/* Charts                                                                    */
/* ------------------------------------------------------------------------ */

/* A series of points with whiskers (lo .. hi; NAN: none), joined. */
struct series {
    const char *label, *colour;
    enum marker mk;
    int n;
    double x[16], y[16], lo[16], hi[16];
};

/* Draws a series over ncat categories of the x axis. */
static void draw_series(const struct panel *p, const struct axis *ya,
                        const struct series *s, int ncat)
{
    if (s->n > 1) {
        fprintf(p->f,
                "<polyline fill=\"none\" stroke=\"%s\" "
                "stroke-width=\"1.8\" points=\"",
                s->colour);
        for (int i = 0; i < s->n; i++)
            if (isfinite(s->y[i]))
                fprintf(p->f, "%.1f,%.1f ", cat_x(p, (int)s->x[i], ncat),
                        px_y(p, ya, s->y[i]));
        fputs("\"/>\n", p->f);
    }
    for (int i = 0; i < s->n; i++) {
        if (!isfinite(s->y[i]))
            continue;
        double x = cat_x(p, (int)s->x[i], ncat);
        if (isfinite(s->lo[i]) && isfinite(s->hi[i]))
            svg_line(p->f, x, px_y(p, ya, s->lo[i]), x, px_y(p, ya, s->hi[i]),
                     s->colour, 1.2, NULL);
        svg_marker(p->f, s->mk, x, px_y(p, ya, s->y[i]), 3.8, s->colour);
    }
}

/* The range of every finite value of the series. */
static void series_range(const struct series *s, int n, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < s[k].n; i++) {
            double v[3] = {s[k].y[i], s[k].lo[i], s[k].hi[i]};
            for (int j = 0; j < 3; j++)
                if (isfinite(v[j]) && v[j] > 0) {
                    *lo = v[j] < *lo ? v[j] : *lo;
                    *hi = v[j] > *hi ? v[j] : *hi;
                }
        }
}

/* Adds the point of run r (figure key, with its _min/_max) at category i. */
static void series_add(struct series *s, int i, const struct jval *r,
                       const char *key)
{
    char k[64];
    if (r == NULL || !ran_ok(r) || s->n >= 16)
        return;
    s->x[s->n] = i;
    s->y[s->n] = jnum(r, key);
    snprintf(k, sizeof(k), "%s_min", key);
    s->lo[s->n] = jnum(r, k);
    snprintf(k, sizeof(k), "%s_max", key);
    s->hi[s->n] = jnum(r, k);
    s->n++;
}

/* Goodput against message size, loopback: each transport, and raw UDP
 * with one sendto per datagram (the baselines of the rmsg-async runs). */
static void chart_size(FILE *f, const struct bench *b, double x, double y,
                       double w, double h)
{
    struct panel p = panel_open(
        f, x, y, w, h, "Goodput against message size",
        "loopback, medians of the runs, bars: min .. max; log scales");
    double sizes[16];
    int n = distinct(b, "bulk", "size", sizes, 16);
    if (n == 0) {
        no_data(&p, "no bulk runs");
        return;
    }
    struct series s[4] = {
        {"rmsg-async", C_ASYNC, MK_CIRCLE, 0, {0}, {0}, {0}, {0}},
        {"rmsg (stop and wait)", C_RMSG, MK_SQUARE, 0, {0}, {0}, {0}, {0}},
        {"TCP", C_TCP, MK_DIAMOND, 0, {0}, {0}, {0}, {0}},
        {"raw UDP, 1 sendto/datagram",
         C_UDP,
         MK_TRIANGLE,
         0,
         {0},
         {0},
         {0},
         {0}},
    };
    static const char *const trs[3] = {"rmsg-async", "rmsg", "tcp"};
    const char *labels[16];
    struct text lt[16];
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 3; k++)
            series_add(&s[k], i, find_run(b, "bulk", trs[k], sizes[i], -1),
                       "rate_bytes_per_s");
        const struct jval *a = find_run(b, "bulk", "rmsg-async", sizes[i], -1);
        if (a && ran_ok(a) && s[3].n < 16) {
            s[3].x[s[3].n] = i;
            s[3].y[s[3].n] = jnum(a, "baseline_rate_bytes_per_s");
            s[3].lo[s[3].n] = s[3].hi[s[3].n] = NAN;
            s[3].n++;
        }
        lt[i] = fmt_size(sizes[i]);
        labels[i] = lt[i].s;
    }
    double lo, hi;
    series_range(s, 4, &lo, &hi);
    struct axis ya;
    axis_fit(&ya, lo, hi, 1);
    y_axis(&p, &ya, tick_rate, "goodput");
    x_categories(&p, labels, n, "message size");
    for (int k = 3; k >= 0; k--)
        draw_series(&p, &ya, &s[k], n);
    for (int k = 0; k < 4; k++)
        legend(&p, s[k].mk, s[k].colour, s[k].label);
}

/* A short name of a latency run for an axis. */
static struct text short_name(const struct jval *r)
{
    const char *tr = jstr(r, "transport");
    if (strcmp(tr, "udp") == 0)
        return tfmt("raw UDP");
    if (strcmp(tr, "rpc") == 0)
        return tfmt("rpc, %.0f client%s", jnum(r, "clients"),
                    jnum(r, "clients") > 1 ? "s" : "");
    if (strcmp(tr, "tcp") == 0)
        return tfmt("TCP");
    return tfmt("%s", tr);
}

/* Round-trip percentiles per transport, loopback: p50 to p99.9 and the
 * worst, with each run's raw UDP p50 beside it. */
static void chart_latency(FILE *f, const struct bench *b, double x, double y,
                          double w, double h)
{
    struct panel p =
        panel_open(f, x, y, w, h, "Round-trip latency percentiles",
                   "loopback, 64 B (rpc: null calls), p50 to max; log scale");
    const struct jval *rs[12];
    int n = 0;
    for (size_t i = 0; i < b->nruns && n < 12; i++)
        if (is_group(b->runs[i], "latency") && ran_ok(b->runs[i]))
            rs[n++] = b->runs[i];
    if (n == 0) {
        no_data(&p, "no latency runs");
        return;
    }
    static const char *const keys[5] = {"p50_us", "p90_us", "p99_us", "p999_us",
                                        "max_us"};
    static const char *const names[5] = {"p50", "p90", "p99", "p99.9", "max"};
    static const enum marker mks[5] = {MK_CIRCLE, MK_DIAMOND, MK_SQUARE,
                                       MK_TRIANGLE, MK_CROSS};
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 5; k++) {
            double v = jnum(rs[i], keys[k]);
            if (isfinite(v) && v > 0) {
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
        }
    struct axis ya;
    axis_fit(&ya, lo, hi, 1);
    y_axis(&p, &ya, tick_us, "round trip");
    const char *labels[12];
    struct text lt[12];
    for (int i = 0; i < n; i++) {
        lt[i] = short_name(rs[i]);
        labels[i] = lt[i].s;
        const char *c =
            transport_colour(jstr(rs[i], "transport"), jnum(rs[i], "clients"));
        double cx = cat_x(&p, i, n);
        double y50 = px_y(&p, &ya, jnum(rs[i], "p50_us"));
        double ymax = px_y(&p, &ya, jnum(rs[i], "max_us"));
        svg_line(f, cx, y50, cx, ymax, c, 1.2, "3,2");
        for (int k = 0; k < 5; k++)
            if (isfinite(jnum(rs[i], keys[k])))
                svg_marker(f, mks[k], cx, px_y(&p, &ya, jnum(rs[i], keys[k])),
                           4, c);
        double base = jnum(rs[i], "baseline_p50_us");
        if (isfinite(base))
            svg_marker(f, MK_RING, cx - 12, px_y(&p, &ya, base), 3.5, C_UDP);
        svg_text(f, cx + 7, y50 + 3.5, "start", "value", "%s",
                 fmt_us(jnum(rs[i], "p50_us")).s);
    }
    x_categories(&p, labels, n, "transport (clients)");
    for (int k = 0; k < 5; k++)
        legend(&p, mks[k], "#333333", names[k]);
    legend(&p, MK_RING, C_UDP, "raw UDP p50, same run");
}

/* Goodput against the kernel's drop rate: rmsg-async, TCP, and what raw
 * UDP delivered in the same runs. */
static void chart_loss_bulk(FILE *f, const struct bench *b, const char *netns,
                            double x, double y, double w, double h)
{
    struct panel p =
        panel_open(f, x, y, w, h, "Goodput against loss",
                   "namespaces, kernel drop each way, 1 MiB messages; "
                   "labels: share of the loss-free goodput");
    double loss[8];
    int n = distinct(b, "loss-bulk", "loss_pct", loss, 8);
    if (n == 0) {
        no_data(&p, netns[0] ? netns : "not measured");
        return;
    }
    struct series s[3] = {
        {"rmsg-async", C_ASYNC, MK_CIRCLE, 0, {0}, {0}, {0}, {0}},
        {"TCP", C_TCP, MK_DIAMOND, 0, {0}, {0}, {0}, {0}},
        {"raw UDP delivered, same runs",
         C_UDP,
         MK_TRIANGLE,
         0,
         {0},
         {0},
         {0},
         {0}},
    };
    const char *labels[8];
    struct text lt[8];
    for (int i = 0; i < n; i++) {
        series_add(&s[0], i,
                   find_run(b, "loss-bulk", "rmsg-async", -1, loss[i]),
                   "rate_bytes_per_s");
        series_add(&s[1], i, find_run(b, "loss-bulk", "tcp", -1, loss[i]),
                   "rate_bytes_per_s");
        const struct jval *a =
            find_run(b, "loss-bulk", "rmsg-async", -1, loss[i]);
        if (a && ran_ok(a)) {
            s[2].x[s[2].n] = i;
            s[2].y[s[2].n] = jnum(a, "baseline_rate_bytes_per_s");
            s[2].lo[s[2].n] = s[2].hi[s[2].n] = NAN;
            s[2].n++;
        }
        lt[i] = tfmt("%g%%", loss[i]);
        labels[i] = lt[i].s;
    }
    double lo, hi;
    series_range(s, 3, &lo, &hi);
    struct axis ya;
    axis_fit(&ya, 0, hi * 1.1, 0);
    y_axis(&p, &ya, tick_rate, "goodput");
    x_categories(&p, labels, n, "datagrams dropped by the kernel, each way");
    for (int k = 2; k >= 0; k--)
        draw_series(&p, &ya, &s[k], n);
    for (int k = 0; k < 2; k++) /* the share of the loss-free goodput */
        for (int i = 0; i < s[k].n; i++)
            if (s[k].n > 0 && s[k].x[0] == 0 && s[k].y[0] > 0 && s[k].x[i] > 0)
                svg_text(f, cat_x(&p, (int)s[k].x[i], n) + 7,
                         px_y(&p, &ya, s[k].y[i]) + (k ? 12 : -6), "start",
                         k ? "value tcp" : "value async", "%.2fx",
                         s[k].y[i] / s[k].y[0]);
    for (int k = 0; k < 3; k++)
        legend(&p, s[k].mk, s[k].colour, s[k].label);
}

/* 64-byte round trips against loss: rmsg's p50 and p99 and raw UDP's. */
static void chart_loss_rtt(FILE *f, const struct bench *b, const char *netns,
                           double x, double y, double w, double h)
{
    struct panel p = panel_open(
        f, x, y, w, h, "Round trips against loss",
        "two network namespaces, 64 B; raw UDP's lost pings are not in its "
        "percentiles");
    double loss[8];
    int n = distinct(b, "loss-rtt", "loss_pct", loss, 8);
    if (n == 0) {
        no_data(&p, netns[0] ? netns : "not measured");
        return;
    }
    struct series s[4] = {
        {"rmsg p99", C_RMSG, MK_SQUARE, 0, {0}, {0}, {0}, {0}},
        {"rmsg p50", C_RMSG, MK_CIRCLE, 0, {0}, {0}, {0}, {0}},
        {"raw UDP p99", C_UDP, MK_SQUARE, 0, {0}, {0}, {0}, {0}},
        {"raw UDP p50", C_UDP, MK_CIRCLE, 0, {0}, {0}, {0}, {0}},
    };
    static const char *const keys[4] = {"p99_us", "p50_us", "baseline_p99_us",
                                        "baseline_p50_us"};
    const char *labels[8];
    struct text lt[8];
    for (int i = 0; i < n; i++) {
        const struct jval *r = find_run(b, "loss-rtt", "rmsg", -1, loss[i]);
        for (int k = 0; k < 4; k++)
            series_add(&s[k], i, r, keys[k]);
        lt[i] = tfmt("%g%%", loss[i]);
        labels[i] = lt[i].s;
    }
    double lo, hi;
    series_range(s, 4, &lo, &hi);
    struct axis ya;
    axis_fit(&ya, lo, hi, 1);
    y_axis(&p, &ya, tick_us, "round trip");
    x_categories(&p, labels, n, "datagrams dropped by the kernel, each way");
    for (int k = 3; k >= 0; k--)
        draw_series(&p, &ya, &s[k], n);
    for (int k = 0; k < 4; k++)
        legend(&p, s[k].mk, s[k].colour, s[k].label);
}

/* Horizontal bars of every ratio of one kind (latency: lower is better;
 * bulk: higher), on a log axis with the goal drawn in. */
static void chart_ratios(FILE *f, const struct bench *b, int latency, double x,
                         double y, double w, double h)
{
    struct panel p = panel_open(
        f, x, y, w, h,
        latency ? "Round trips: ratio to raw UDP (lower is better)"
                : "Bulk: goodput over raw UDP's (higher is better)",
        latency ? "p50 / raw UDP p50 of the same run; line: the 1.10x promise"
                : "raw UDP: one sendto per datagram, same run; line: 1.0x");
    p.left = x + w * 0.42;
    const struct jval *rs[32];
    int n = 0;
    double lo = 1, hi = 1;
    for (size_t i = 0; i < b->nruns && n < 32; i++) {
        const struct jval *r = b->runs[i];
        int lat = is_group(r, "latency") || is_group(r, "loss-rtt");
        int bulk = is_group(r, "bulk") || is_group(r, "loss-bulk");
        double v = jnum(r, "ratio");
        if (!ran_ok(r) || !isfinite(v) || v <= 0 || (latency ? !lat : !bulk))
            continue;
        rs[n++] = r;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    if (n == 0) {
        no_data(&p, "no ratios");
        return;
    }
    struct axis xa;
    axis_fit(&xa, lo * 0.9, hi * 1.1, 1);
    x_axis(&p, &xa, tick_ratio, "ratio to raw UDP (log scale)");
    double band = (p.bottom - p.top) / n;
    for (int i = 0; i < n; i++) {
        const struct jval *r = rs[i];
        double v = jnum(r, "ratio"), cy = p.top + band * (i + 0.5);
        int met = jbool(r, "meets_promise");
        const char *c = met == 1 ? C_GOOD : met == 0 ? C_BAD : C_NONE;
        double x0 = px_x(&p, &xa, 1), x1 = px_x(&p, &xa, v);
        svg_rect(f, x0 < x1 ? x0 : x1, cy - band * 0.35, fabs(x1 - x0),
                 band * 0.7, c, NULL);
        svg_text(f, p.left - 6, cy + 3.5, "end", "tick", "%s",
                 jstr(r, "label"));
        /* The value goes beyond a bar to the right, and on the right of
         * the 1x line for a bar to the left, clear of the row labels. */
        svg_text(f, (x1 >= x0 ? x1 : x0) + 4, cy + 3.5, "start", "value",
                 "%.2fx", v);
    }
    svg_line(f, px_x(&p, &xa, 1), p.top, px_x(&p, &xa, 1), p.bottom, "#444444",
             1, NULL);
    if (latency)
        svg_line(f, px_x(&p, &xa, 1.10), p.top, px_x(&p, &xa, 1.10), p.bottom,
                 C_BAD, 1.2, "4,3");
    legend(&p, MK_SQUARE, C_GOOD, "goal met");
    legend(&p, MK_SQUARE, C_BAD, "goal missed");
    legend(&p, MK_SQUARE, C_NONE, "no goal stated");
}

/* Bars a ratio chart needs: one per run of its kind. */
static int ratio_rows(const struct bench *b, int latency)
{
    int n = 0;
    for (size_t i = 0; i < b->nruns; i++) {
        const struct jval *r = b->runs[i];
        int lat = is_group(r, "latency") || is_group(r, "loss-rtt");
        int bulk = is_group(r, "bulk") || is_group(r, "loss-bulk");
        n += ran_ok(r) && isfinite(jnum(r, "ratio")) && (latency ? lat : bulk);
    }
    return n;
}

#define SVG_W   1000
#define PANEL_W 490
#define PANEL_H 330
#define GAP     10

static void write_svg(FILE *f, const struct bench *b)
{
    const char *netns = jstr(b->doc, "netns");
    double hl = 110 + 16 * ratio_rows(b, 1), hb = 110 + 16 * ratio_rows(b, 0);
    double top = 70, rows = top + 2 * (PANEL_H + GAP);
    double height = rows + hl + GAP + hb + GAP;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%.0f\" viewBox=\"0 0 %d %.0f\" "
            "font-family=\"Helvetica, Arial, sans-serif\">\n",
            SVG_W, height, SVG_W, height);
    fputs("<style>\n"
          "text { font-size: 11px; fill: #222222; }\n"
          ".head { font-size: 18px; font-weight: bold; }\n"
          ".title { font-size: 14px; font-weight: bold; }\n"
          ".sub { font-size: 10.5px; fill: #555555; }\n"
          ".axis { font-size: 11px; fill: #333333; }\n"
          ".tick { font-size: 10px; fill: #444444; }\n"
          ".legend { font-size: 10.5px; }\n"
          ".value { font-size: 9.5px; fill: #333333; }\n"
          ".async { fill: " C_ASYNC "; }\n"
          ".tcp { fill: " C_TCP "; }\n"
          "</style>\n",
          f);
    svg_rect(f, 0, 0, SVG_W, height, "#f7f7f7", NULL);
    svg_text(f, GAP, 28, "start", "head", "rmsg: make bench, %s%s",
             jstr(b->doc, "date"),
             jbool(b->doc, "quick") == 1 ? " (quick trial, not results)" : "");
    svg_text(f, GAP, 46, "start", "sub", "%s", jstr(b->doc, "machine"));
    svg_text(f, GAP, 60, "start", "sub",
             "%s, %.0f cores; medians of %.0f runs (namespaces: %.0f); "
             "namespaces: %s",
             jstr(b->doc, "cpu"), jnum(b->doc, "cores"),
             jnum(b->doc, "repeats"), jnum(b->doc, "netns_repeats"), netns);
    double x2 = GAP + PANEL_W + GAP;
    chart_size(f, b, GAP, top, PANEL_W, PANEL_H);
    chart_latency(f, b, x2, top, PANEL_W, PANEL_H);
    chart_loss_bulk(f, b, netns, GAP, top + PANEL_H + GAP, PANEL_W, PANEL_H);
    chart_loss_rtt(f, b, netns, x2, top + PANEL_H + GAP, PANEL_W, PANEL_H);
    chart_ratios(f, b, 1, GAP, rows, SVG_W - 2 * GAP, hl);
    chart_ratios(f, b, 0, GAP, rows + hl + GAP, SVG_W - 2 * GAP, hb);
    fputs("</svg>\n", f);
}

/* ------------------------------------------------------------------------ */
/* main                                                                      */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fputs("usage: benchplot [-o OUT.svg] [-t TABLE.md] RESULTS.json\n"
          "Draws bench/run.sh's results as one SVG file (OUT.svg, default\n"
          "stdout) and writes their Markdown table to TABLE.md.\n",
          f);
}

/* Opens path for writing, "-" or NULL for stdout. */
static FILE *open_out(const char *path)
{
    if (path == NULL || strcmp(path, "-") == 0)
        return stdout;
    FILE *f = fopen(path, "w");
    if (f == NULL)
        fprintf(stderr, "benchplot: %s: %s\n", path, strerror(errno));
    return f;
}

static int close_out(FILE *f, const char *path)
{
    int bad = ferror(f);
    if (f != stdout)
        bad |= fclose(f) != 0;
    else
        bad |= fflush(f) != 0;
    if (bad)
        fprintf(stderr, "benchplot: writing %s failed\n", path ? path : "-");
    return bad ? -1 : 0;
}

/* Collects the objects of "runs". Returns 0, or -1 with a message. */
static int load_runs(const struct jval *doc, struct bench *b)
{
    const struct jval *runs = jget(doc, "runs");
    b->doc = doc;
    if (runs == NULL || runs->type != J_ARR) {
        fprintf(stderr, "benchplot: no \"runs\" array\n");
        return -1;
    }
    b->runs = xrealloc(NULL, runs->n * sizeof(*b->runs));
    b->nruns = 0;
    for (size_t i = 0; i < runs->n; i++)
        if (runs->items[i].type == J_OBJ)
            b->runs[b->nruns++] = &runs->items[i];
    return 0;
}

int main(int argc, char **argv)
{
    const char *svg_path = NULL, *table_path = NULL, *in = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            svg_path = argv[++i];
        } else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
            table_path = argv[++i];
        } else if (argv[i][0] != '-' && in == NULL) {
            in = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (in == NULL) {
        usage(stderr);
        return 2;
    }
    char *text = read_file(in), err[200];
    if (text == NULL) {
        fprintf(stderr, "benchplot: %s: %s\n", in, strerror(errno));
        return 1;
    }
    struct jval doc;
    struct bench b = {0};
    int rc = 1;
    if (json_parse(text, &doc, err, sizeof(err)) < 0) {
        fprintf(stderr, "benchplot: %s: %s\n", in, err);
        free(text);
        return 1;
    }
    if (load_runs(&doc, &b) == 0) {
        FILE *svg = open_out(svg_path);
        FILE *table = table_path ? open_out(table_path) : NULL;
        if (svg && (table || !table_path)) {
            write_svg(svg, &b);
            if (table)
                write_table(table, &b);
            rc = close_out(svg, svg_path) < 0 ||
                 (table && close_out(table, table_path) < 0);
        }
    }
    free(b.runs);
    jfree(&doc);
    free(text);
    return rc;
}
