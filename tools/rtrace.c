/*
 * rtrace.c - draws RMSG_TRACE logs as a message sequence diagram: time
 * flows down, one column per endpoint, one arrow per datagram, the lost
 * ones ending in an X.  Text for a terminal, or SVG.
 *
 *   RMSG_TRACE=1 build/examples/rmsg_server 0 2> server.trace
 *   RMSG_TRACE=1 build/examples/rmsg_client 127.0.0.1 PORT 3 2> client.trace
 *   build/tools/rtrace server.trace client.trace
 *   build/tools/rtrace --svg exchange.svg server.trace client.trace
 *
 * How it works.  Each endpoint's trace starts with "rmsg T - open port=N
 * pid=P"; every later line is "rmsg T PEER EVENT ... local=PORT" with T in
 * seconds on CLOCK_MONOTONIC, which all processes on one host share, so
 * lines of different files can be put in one order.  A column is an
 * endpoint (named by its port, which is how its peers see it); local= says
 * which endpoint wrote a line, so several endpoints may share one file (an
 * rpc server and the rpc client it also runs, one stderr).  A peer that
 * left no trace gets a column of its own marked "not traced".
 *
 * A datagram appears twice: an "out" line at the sender and, unless it
 * was lost, an "in" line at the receiver.  Both end in bytes=N crc=X, the
 * datagram's size and its CRC-32C field, so an "in" is paired exactly with
 * the "out" on its path (sender, receiver) with the same two.  Only
 * identical copies share them (a fragment sent again with the same
 * acknowledgment and window): their arrivals are paired with them in
 * order of sending and arrival, choosing which copies were lost or
 * duplicated by what is likelier, given each transit time against the
 * path's typical one (learned from the datagrams sent once).  A datagram
 * that failed its checksum arrives as "in drop corrupt ... bytes=N crc=X",
 * with the CRC field as it arrived: the same as its "out" unless the
 * flipped bit was in that field, so it is matched by crc and size, then by
 * a crc one bit away, then by size alone.  Whatever "out" is left
 * unmatched was never received: lost (dropped by the network, or sent
 * after its receiver stopped reading).  An "out DATA" line says "retx"
 * when its fragment went before.  Sequence numbers are shown relative to
 * the first one of their relation (#0, #1, ...); "ACK #5" means
 * "everything before #5 arrived".
 *
 * Older traces.  Lines written before the library traced bytes, crc and
 * local= (and a server's stateless "out RESET dst=N", which still lacks
 * them) are matched as rtrace always did: by type, sequence number,
 * acknowledgment, window and length, and by transit time among several
 * candidates; a line is given to the endpoint of its file that the peer's
 * trace shows talking to that peer; a DATA sequence number sent before on
 * the same path is a retransmission; a corrupt datagram is an unmatched
 * "out" of its length.  In those, identical copies cannot be told apart
 * when more than one is in flight ("the first was lost and the second
 * duplicated" and "both arrived, the first late" read the same) and the
 * picture shows the likelier one.  With bytes and crc the same holds only
 * for identical copies, which the network cannot tell apart either.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* The model: endpoints and events                                           */
/* ------------------------------------------------------------------------ */

enum { T_NONE, T_DATA, T_ACK, T_CHALLENGE, T_ECHO, T_RESET, T_RETRY };
static const char *type_names[] = {"?",    "DATA",  "ACK",  "CHALLENGE",
                                   "ECHO", "RESET", "RETRY"};

enum kind { EV_OPEN, EV_OUT, EV_IN, EV_IN_BAD, EV_NOTE };
enum fate { F_LOST, F_ARRIVED, F_CORRUPT, F_UNKNOWN };

/* Sizes of lib/wire.h, to tell which datagram a corrupt one was in a
 * trace without bytes= (see length_fits). */
#define WIRE_HEADER    32
#define WIRE_DATA_BODY 14
#define WIRE_SACK      8
#define WIRE_COOKIE    8

struct endpoint {
    int port; /* as its peers see it; 0 when unknown */
    long pid;
    int file;         /* the trace it came from; -1: not traced */
    long long opened; /* time of its open line (us) */
    char addr[48];    /* not traced: the address its peers used */
    int sent;         /* datagrams it sent, so far (for --list) */
};

struct event {
    long long t;     /* microseconds */
    int file, order; /* where the line was, to keep ties in order */
    int kind, type;
    int ep, peer; /* endpoint it happened at, the other side (-1) */
    int peer_port;
    char peer_addr[48];
    uint32_t seq, ack, win, len, sack, fi, fn, dlen;
    int local;      /* the local= port of the line; 0: none (older) */
    int has_crc;    /* OUT, IN, IN_BAD: bytes= and crc= were there */
    uint32_t bytes; /* the datagram's size */
    uint32_t crc;   /* its CRC-32C field (as it arrived, for IN_BAD) */
    int retx_flag;  /* OUT DATA: the line said retx */
    char *text;     /* EV_NOTE, IN_BAD: what happened */
    /* Filled in by the matching: */
    int match;            /* IN: its OUT; OUT: its first IN; -1 */
    int exact;            /* IN, IN_BAD: matched by bytes and crc */
    int copies, bad;      /* OUT: good and damaged copies received */
    int fate;             /* OUT */
    int retx, late;       /* OUT: sent before; arrived after a later one */
    int index;            /* OUT: the sender's n-th datagram, from 1 */
    int prev_out;         /* IN_BAD: the OUT matched by the arrival before */
    long long rseq, rack; /* relative numbers, -1 when unknown */
};

struct trace {
    struct endpoint *ep;
    int nep;
    struct event *ev;
    int nev, cap;
    char **files;
    int nfiles;
    int **ports; /* per file: sorted peer ports it mentions */
    int *nports;
    long long t0;
};

struct options {
    const char *svg;
    int list, brief, width, limit;
    double from_ms, to_ms;
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        fprintf(stderr, "rtrace: out of memory\n");
        exit(1);
    }
    return q;
}

/* ------------------------------------------------------------------------ */
/* Reading trace lines                                                       */
/* ------------------------------------------------------------------------ */

/* Finds " key=" (or key= at the start) in s and reads the number after it
 * in base `base` into *v.  Returns 1 if found. */
static int field_base(const char *s, const char *key, uint32_t *v, int base)
{
    size_t k = strlen(key);
    for (const char *p = strstr(s, key); p; p = strstr(p + 1, key)) {
        if ((p == s || p[-1] == ' ') && p[k] == '=') {
            *v = (uint32_t)strtoul(p + k + 1, NULL, base);
            return 1;
        }
    }
    return 0;
}

static int field(const char *s, const char *key, uint32_t *v)
{
    return field_base(s, key, v, 10);
}

/* Reads "bytes=N crc=X" (crc in hex), which identify a datagram. */
static void parse_identity(struct event *e, const char *rest)
{
    e->has_crc =
        field(rest, "bytes", &e->bytes) && field_base(rest, "crc", &e->crc, 16);
}

/* Cuts the " local=PORT" every line of a newer trace ends in off the line
 * and returns the port; 0 if there is none. */
static int cut_local(char *line)
{
    char *p = strstr(line, " local=");
    for (char *q = p; q; q = strstr(q + 1, " local="))
        p = q; /* the last one */
    if (p == NULL || p[7] == '\0' ||
        strspn(p + 7, "0123456789") != strlen(p + 7))
        return 0;
    int port = atoi(p + 7);
    *p = '\0';
    return port;
}

static int type_of(const char *word)
{
    for (int i = T_DATA; i <= T_RESET; i++)
        if (strncmp(word, type_names[i], strlen(type_names[i])) == 0 &&
            (word[strlen(type_names[i])] == ' ' ||
             word[strlen(type_names[i])] == '\0'))
            return i;
    return T_NONE;
}

/* Fills the datagram fields of an "out ..." or "in ..." line. */
static void parse_datagram(struct event *e, const char *rest)
{
    e->type = type_of(rest);
    field(rest, "seq", &e->seq);
    field(rest, "ack", &e->ack);
    field(rest, "win", &e->win);
    field(rest, "len", &e->len);
    if (!field(rest, "sack", &e->sack))
        e->sack = strstr(rest, "+sack") != NULL;
    const char *f = strstr(rest, "frag=");
    if (f == NULL || sscanf(f, "frag=%u/%u", &e->fi, &e->fn) != 2)
        e->fi = e->fn = 1;
    if (e->type == T_RESET || e->type == T_RETRY) /* "out RESET dst=N" */
        e->ack = e->win = e->sack = 0;            /* says nothing more */
    if (e->type == T_DATA)
        e->sack = e->sack != 0; /* an older "out" said only "+sack" */
    parse_identity(e, rest);
    size_t n = strlen(rest);
    e->retx_flag = n >= 5 && strcmp(rest + n - 5, " retx") == 0;
}

/* Appends one event for a trace line; ignores lines that are not ours. */
static void parse_line(struct trace *tr, int file, int order, char *line)
{
    long long sec, usec;
    char addr[48];
    int n = 0;
    line[strcspn(line, "\r\n")] = '\0';
    int local = cut_local(line);
    if (sscanf(line, "rmsg %lld.%lld %47s %n", &sec, &usec, addr, &n) < 3 ||
        n == 0)
        return;
    const char *rest = line + n;
    if (tr->nev == tr->cap) {
        tr->cap = tr->cap ? tr->cap * 2 : 1024;
        tr->ev = xrealloc(tr->ev, (size_t)tr->cap * sizeof(*tr->ev));
    }
    struct event *e = &tr->ev[tr->nev];
    memset(e, 0, sizeof(*e));
    *e = (struct event){.t = sec * 1000000 + usec,
                        .file = file,
                        .order = order,
                        .ep = -1,
                        .peer = -1,
                        .local = local,
                        .match = -1,
                        .prev_out = -1,
                        .rseq = -1,
                        .rack = -1};
    snprintf(e->peer_addr, sizeof(e->peer_addr), "%s", addr);
    const char *colon = strrchr(addr, ':');
    e->peer_port = colon ? atoi(colon + 1) : 0;
    long pid = 0;
    int port = 0;
    if (strcmp(addr, "-") == 0 &&
        sscanf(rest, "open port=%d pid=%ld", &port, &pid) == 2) {
        e->kind = EV_OPEN;
        tr->ep = xrealloc(tr->ep, (size_t)(tr->nep + 1) * sizeof(*tr->ep));
        tr->ep[tr->nep] = (struct endpoint){
            .port = port, .pid = pid, .file = file, .opened = e->t};
        e->ep = tr->nep++;
    } else if (strncmp(rest, "out ", 4) == 0) {
        e->kind = EV_OUT;
        parse_datagram(e, rest + 4);
    } else if (strncmp(rest, "in drop ", 8) == 0) {
        e->kind = EV_IN_BAD;
        field(rest, "len", &e->dlen);
        parse_identity(e, rest);
        e->text = strdup(rest + 8);
    } else if (strncmp(rest, "in ", 3) == 0) {
        e->kind = EV_IN;
        parse_datagram(e, rest + 3);
    } else {
        e->kind = EV_NOTE;
        e->text = strdup(rest);
    }
    if ((e->kind == EV_NOTE || e->kind == EV_IN_BAD) && e->text == NULL)
        return; /* out of memory for the text: drop the line */
    tr->nev++;
}

/* Reads one trace file ("-": standard input). */
static int read_file(struct trace *tr, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "rtrace: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int file = tr->nfiles++;
    tr->files = xrealloc(tr->files, (size_t)tr->nfiles * sizeof(char *));
    tr->files[file] = (char *)path;
    char line[1024];
    for (int order = 0; fgets(line, sizeof(line), f); order++)
        parse_line(tr, file, order, line);
    if (f != stdin)
        fclose(f);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Whose line is it: the endpoint of each line and its peer                  */
/* ------------------------------------------------------------------------ */

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Per file, the sorted peer ports its lines mention. */
static void collect_ports(struct trace *tr)
{
    tr->ports = xrealloc(NULL, (size_t)tr->nfiles * sizeof(int *));
    tr->nports = xrealloc(NULL, (size_t)tr->nfiles * sizeof(int));
    for (int f = 0; f < tr->nfiles; f++) {
        int n = 0;
        int *p = xrealloc(NULL, (size_t)tr->nev * sizeof(int));
        for (int i = 0; i < tr->nev; i++)
            if (tr->ev[i].file == f && tr->ev[i].kind != EV_OPEN)
                p[n++] = tr->ev[i].peer_port;
        qsort(p, (size_t)n, sizeof(int), cmp_int);
        int u = 0;
        for (int i = 0; i < n; i++)
            if (u == 0 || p[u - 1] != p[i])
                p[u++] = p[i];
        tr->ports[f] = p;
        tr->nports[f] = u;
    }
}

static int file_mentions(const struct trace *tr, int file, int port)
{
    return bsearch(&port, tr->ports[file], (size_t)tr->nports[file],
                   sizeof(int), cmp_int) != NULL;
}

/* The traced endpoint that had `port` at time t (the latest opened by
 * then, else any), other than `not`; -1 if none. */
static int traced_with_port(const struct trace *tr, int port, long long t,
                            int not )
{
    int best = -1;
    for (int i = 0; i < tr->nep; i++) {
        const struct endpoint *p = &tr->ep[i];
        if (p->file < 0 || p->port != port || i == not )
            continue;
        if (best < 0 || (p->opened <= t && p->opened > tr->ep[best].opened))
            best = i;
    }
    return best;
}

/* The endpoint of file `file` whose port is `local` (a line's local=) at
 * time t: the latest opened by then, else the first; a new one if the
 * file has none (its open line is missing). */
static int owner_local(struct trace *tr, int file, int local, long long t)
{
    int best = -1;
    for (int i = 0; i < tr->nep; i++) {
        const struct endpoint *p = &tr->ep[i];
        if (p->file != file || p->port != local)
            continue;
        if (best < 0 || (p->opened <= t && p->opened > tr->ep[best].opened))
            best = i;
    }
    if (best >= 0)
        return best;
    tr->ep = xrealloc(tr->ep, (size_t)(tr->nep + 1) * sizeof(*tr->ep));
    tr->ep[tr->nep] =
        (struct endpoint){.port = local, .file = file, .opened = t};
    return tr->nep++;
}

/* The endpoint of file `file` that wrote a line about peer `port` at time
 * t, for a line without local= (an older trace).  With one endpoint in the
 * file that is it.  Otherwise, the peer's own trace names the ports it
 * talks to: the one endpoint of this file among them.  Failing that, the
 * latest opened by then. */
static int owner(struct trace *tr, int file, int port, long long t)
{
    int cand[64], n = 0, any = -1;
    int peer = traced_with_port(tr, port, t, -1);
    for (int i = 0; i < tr->nep && n < 64; i++) {
        if (tr->ep[i].file != file)
            continue;
        if (any < 0 || tr->ep[i].opened <= t)
            any = i;
        if (peer >= 0 && tr->ep[i].port != port &&
            file_mentions(tr, tr->ep[peer].file, tr->ep[i].port))
            cand[n++] = i;
    }
    if (n == 1)
        return cand[0];
    for (int k = 0; k < n; k++) /* several: the latest opened by then */
        if (k == 0 || tr->ep[cand[k]].opened <= t)
            any = cand[k];
    if (any >= 0)
        return any;
    /* A file without an open line: one endpoint for all of it. */
    tr->ep = xrealloc(tr->ep, (size_t)(tr->nep + 1) * sizeof(*tr->ep));
    tr->ep[tr->nep] = (struct endpoint){.file = file, .opened = t};
    return tr->nep++;
}

/* The endpoint at the other end: a traced one with the port, or a column
 * of its own for an address no trace claims. */
static int peer_of(struct trace *tr, const struct event *e)
{
    int p = traced_with_port(tr, e->peer_port, e->t, e->ep);
    if (p >= 0)
        return p;
    for (int i = 0; i < tr->nep; i++)
        if (tr->ep[i].file < 0 && strcmp(tr->ep[i].addr, e->peer_addr) == 0)
            return i;
    tr->ep = xrealloc(tr->ep, (size_t)(tr->nep + 1) * sizeof(*tr->ep));
    tr->ep[tr->nep] =
        (struct endpoint){.port = e->peer_port, .file = -1, .opened = e->t};
    snprintf(tr->ep[tr->nep].addr, sizeof(tr->ep[0].addr), "%s", e->peer_addr);
    return tr->nep++;
}

static int cmp_event(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    int xin = x->kind == EV_IN || x->kind == EV_IN_BAD;
    int yin = y->kind == EV_IN || y->kind == EV_IN_BAD;
    if (xin != yin) /* in the same microsecond, arrivals after the rest */
        return xin - yin;
    if (x->file != y->file)
        return x->file - y->file;
    return x->order - y->order;
}

/* Gives every event its endpoint and peer, then puts all in time order. */
static void resolve(struct trace *tr)
{
    collect_ports(tr);
    for (int i = 0; i < tr->nev; i++) {
        struct event *e = &tr->ev[i];
        if (e->kind == EV_OPEN)
            continue;
        e->ep = e->local ? owner_local(tr, e->file, e->local, e->t)
                         : owner(tr, e->file, e->peer_port, e->t);
        if (strcmp(e->peer_addr, "-") != 0)
            e->peer = peer_of(tr, e);
    }
    qsort(tr->ev, (size_t)tr->nev, sizeof(*tr->ev), cmp_event);
    tr->t0 = 0;
    for (int i = 0; i < tr->nev && tr->t0 == 0; i++)
        if (tr->ev[i].kind != EV_OPEN) /* time 0: the first event */
            tr->t0 = tr->ev[i].t;
}

/* ------------------------------------------------------------------------ */
/* Matching each "in" with its "out"                                         */
/* ------------------------------------------------------------------------ */

/* An arrival this much later than the path's typical transit time was
 * read late (the receiving program was not calling into its endpoint). */
#define LATE_FACTOR 10
#define LATE_US     1000

/* How much earlier than its "out" line the "in" line of one datagram may
 * be stamped.  An endpoint stamps its lines with the clock reading of when
 * its call started or its sleep ended, so a receiver busy with a batch of
 * arrivals stamps the later ones early. */
#define SKEW_US 5000

/* How well out o explains arrival `in`: the distance of its transit time
 * from the path's typical one (0 before that is known: then the latest
 * unmatched wins, else the latest matched).  Lower is better. */
static long long cost(const struct event *o, const struct event *in,
                      long long typical)
{
    long long d = (in->t - o->t) - typical;
    d = d < 0 ? -d : d;
    /* Doubled, plus one for a copy already matched: an unmatched "out"
     * wins a tie, and a later one wins among equals (see pick). */
    int taken = o->copies > 0 || o->bad > 0;
    return typical < 0 ? taken : 2 * d + taken;
}

/* Of the candidate "out"s c[0..n) for arrival `in`, in time order, the one
 * that explains it best (see cost); -1 if there are none.  An arrival far
 * later than any candidate could have taken was read late: the receiver
 * was not reading, and copies waited in its socket in the order they came,
 * so it takes the oldest one not matched yet. */
static int pick(const struct trace *tr, const int *c, int n,
                const struct event *in, long long typical)
{
    int best = -1, oldest_unmatched = -1;
    long long best_cost = 0, nearest = 0;
    for (int j = 0; j < n; j++) {
        const struct event *o = &tr->ev[c[j]];
        long long k = cost(o, in, typical);
        if (best < 0 || k <= best_cost) /* later ones win ties */
            best = c[j], best_cost = k;
        if (oldest_unmatched < 0 && o->copies == 0 && o->bad == 0)
            oldest_unmatched = c[j];
        if (j == 0 || in->t - o->t < nearest)
            nearest = in->t - o->t;
    }
    if (n > 0 && typical >= 0 && nearest > LATE_FACTOR * typical + LATE_US)
        return oldest_unmatched >= 0 ? oldest_unmatched : c[n - 1];
    return best;
}

/* --- Exactly: by path, crc and size --- */

/* What identifies a datagram on an "out" or "in" line. */
struct ident {
    int from, to;
    uint32_t crc, bytes;
    int idx; /* the event; the index is sorted by it last (time order) */
};

/* Orders identities, ignoring the event. */
static int cmp_key(const struct ident *x, const struct ident *y)
{
    if (x->from != y->from)
        return x->from - y->from;
    if (x->to != y->to)
        return x->to - y->to;
    if (x->crc != y->crc)
        return x->crc < y->crc ? -1 : 1;
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? -1 : 1;
    return 0;
}

static int cmp_ident(const void *a, const void *b)
{
    const struct ident *x = a, *y = b;
    int c = cmp_key(x, y);
    return c ? c : x->idx - y->idx;
}

static int same_ident(const struct ident *x, const struct ident *y)
{
    return cmp_key(x, y) == 0;
}

/* The "out"s with the identity of arrival `in` but the crc `crc`, in time
 * order, appended to c[n...]; returns the new count.  x[0..nx) is sorted. */
static int outs_like(const struct ident *x, int nx, const struct event *in,
                     uint32_t crc, int *c, int n)
{
    struct ident want = {in->peer, in->ep, crc, in->bytes, -1};
    int lo = 0, hi = nx;
    while (lo < hi) { /* the first entry not below want */
        int mid = (lo + hi) / 2;
        if (cmp_ident(&x[mid], &want) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < nx && same_ident(&x[lo], &want); lo++)
        c[n++] = x[lo].idx;
    return n;
}

/* Records that arrival i came from out o. */
static void take(struct trace *tr, int i, int o, int exact)
{
    struct event *e = &tr->ev[i], *out = &tr->ev[o];
    e->match = o;
    e->exact = exact;
    if (out->copies == 0 && out->bad == 0)
        out->match = i;
    if (e->kind == EV_IN)
        out->copies++;
    else
        out->bad++;
}

/* Identical copies of a datagram (sent again unchanged) share one identity.
 * Its arrivals are paired with its copies in order of sending and arrival,
 * in the likeliest way.  Costs are minus the natural logarithm of how
 * likely each thing is, taken as: one copy in ten lost, one in ten
 * damaged, one in a hundred duplicated, and a transit time x typical ones
 * above the path's typical one 1/(1 + x) as likely as a typical one
 * (transit times have a long tail: a receiver busy elsewhere reads late).
 * An arrival stamped more than SKEW_US before its copy was sent is
 * impossible, and so, nearly, is a copy with both intact and damaged
 * arrivals: the network damages a datagram before it duplicates it.  The
 * pairing then prefers "both arrived, the first late" to "the first was
 * lost and the second duplicated" unless the first copy's transit would
 * be a thousand typical ones. */
#define COST_LOST    2.3  /* ln 10: one in ten lost */
#define COST_CORRUPT 2.3  /* one in ten damaged */
#define COST_DUP     4.6  /* ln 100: one in a hundred duplicated */
#define COST_MIXED   20.0 /* intact and damaged copies of one datagram */
#define COST_NEVER   1e30
#define MAX_COPIES   16      /* arrivals one copy may take */
#define MAX_ALIGN    4000000 /* table cells; beyond, copies go one by one */

/* What it costs that arrival `in` came from out o. */
static double transit_cost(const struct event *o, const struct event *in,
                           long long typical)
{
    long long d = in->t - o->t;
    if (d < -SKEW_US)
        return COST_NEVER;
    double excess = (double)(d - (typical > 0 ? typical : 0));
    double scale = typical > 20 ? (double)typical : 20.0;
    return excess > 0 ? log1p(excess / scale) : 0.0;
}

/* What it costs that the k arrivals a[i-k..i) came from out o. */
static double copies_cost(const struct trace *tr, int o, const int *a, int i,
                          int k, long long typical)
{
    if (k == 0)
        return COST_LOST;
    double sum = (k - 1) * COST_DUP;
    int bad = 0;
    for (int j = i - k; j < i; j++) {
        sum += transit_cost(&tr->ev[o], &tr->ev[a[j]], typical);
        bad += tr->ev[a[j]].kind == EV_IN_BAD;
    }
    return sum + (bad == k ? COST_CORRUPT : bad > 0 ? COST_MIXED : 0.0);
}

/* Pairs the arrivals a[0..n) of one identity with its copies o[0..m), both
 * in time order, as cheaply as possible (see COST_LOST): f[j][i] is the
 * least cost of explaining the first i arrivals by the first j copies,
 * each copy taking the next k of them.  Returns 0, or -1 (nothing taken)
 * when the table would be too large or no pairing is possible. */
static int align(struct trace *tr, const int *o, int m, const int *a, int n,
                 long long typical)
{
    size_t w = (size_t)n + 1, cells = ((size_t)m + 1) * w;
    if (cells > MAX_ALIGN)
        return -1;
    double *f = xrealloc(NULL, cells * sizeof(double));
    int *took = xrealloc(NULL, cells * sizeof(int));
    for (size_t i = 0; i < w; i++)
        f[i] = i == 0 ? 0.0 : COST_NEVER;
    for (int j = 1; j <= m; j++) {
        for (int i = 0; i <= n; i++) {
            double best = COST_NEVER;
            int bk = 0;
            for (int k = 0; k <= i && k <= MAX_COPIES; k++) {
                double prev = f[(size_t)(j - 1) * w + (size_t)(i - k)];
                if (prev >= COST_NEVER)
                    continue;
                double c = prev + copies_cost(tr, o[j - 1], a, i, k, typical);
                if (c < best)
                    best = c, bk = k;
            }
            f[(size_t)j * w + (size_t)i] = best;
            took[(size_t)j * w + (size_t)i] = bk;
        }
    }
    int ok = f[(size_t)m * w + (size_t)n] < COST_NEVER;
    int *from = xrealloc(NULL, w * sizeof(int));
    for (int j = m, i = n; ok && j > 0; j--) { /* each arrival's copy */
        int k = took[(size_t)j * w + (size_t)i];
        for (int q = i - k; q < i; q++)
            from[q] = o[j - 1];
        i -= k;
    }
    for (int q = 0; ok && q < n; q++) /* in time order: first arrivals */
        take(tr, a[q], from[q], 1);
    free(from);
    free(took);
    free(f);
    return ok ? 0 : -1;
}

/* Every arrival (intact or damaged) whose identity some "out" has: x and
 * y are the sorted identities of the "out"s and the arrivals.  The first
 * pass (typ NULL) takes the identities sent once, which need no choice;
 * their transit times give each path its typical one, which the second
 * pass uses to pair the copies of the identities sent more than once. */
static void exact_pass(struct trace *tr, const struct ident *x, int nx,
                       const struct ident *y, int ny, const long long *typ,
                       int *c)
{
    int *a = c + nx; /* room for both: c holds nev + 1 */
    for (int i = 0, j = 0; i < nx;) {
        int m = 0, n = 0, i0 = i;
        for (; i < nx && same_ident(&x[i], &x[i0]); i++)
            c[m++] = x[i].idx;
        while (j < ny && cmp_key(&y[j], &x[i0]) < 0)
            j++; /* an arrival may be stamped before its sending */
        for (; j < ny && same_ident(&y[j], &x[i0]); j++)
            a[n++] = y[j].idx;
        if (n == 0 || (typ == NULL) != (m == 1))
            continue;
        if (m == 1) {
            for (int q = 0; q < n; q++)
                take(tr, a[q], c[0], 1);
            continue;
        }
        long long t = typ[x[i0].from * tr->nep + x[i0].to];
        if (align(tr, c, m, a, n, t) < 0) /* too many: one by one */
            for (int q = 0; q < n; q++)
                take(tr, a[q], pick(tr, c, m, &tr->ev[a[q]], t), 1);
    }
}

/* The crc a damaged arrival was sent with: its own if an "out" on its path
 * of its size has it, else one a single bit away if one has that (the
 * flipped bit was in the crc field), so that the alignment sees it with
 * the other copies of its datagram; else its own. */
static uint32_t sent_crc(const struct ident *x, int nx, const struct event *in,
                         int *c)
{
    if (outs_like(x, nx, in, in->crc, c, 0) > 0)
        return in->crc;
    for (int b = 0; b < 32; b++)
        if (outs_like(x, nx, in, in->crc ^ (1u << b), c, 0) > 0)
            return in->crc ^ (1u << b);
    return in->crc;
}

/* --- By description, for lines without bytes and crc --- */

/* A hash of what an "in" and its "out" share (from the sender's side). */
static uint64_t key_of(const struct event *e, int sender, int receiver)
{
    uint64_t v[] = {(uint64_t)sender,
                    (uint64_t)receiver,
                    e->type,
                    e->ack,
                    e->win,
                    e->sack,
                    e->type == T_DATA ? e->seq : 0,
                    e->type == T_DATA ? e->len : 0};
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        h = (h ^ v[i]) * 1099511628211ULL;
    return h;
}

struct keyed {
    uint64_t h;
    int idx;
};

static int cmp_keyed(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return x->idx - y->idx; /* events are in time order already */
}

static int same_datagram(const struct event *o, const struct event *in)
{
    return o->ep == in->peer && o->peer == in->ep && o->type == in->type &&
           o->ack == in->ack && o->win == in->win && o->sack == in->sack &&
           (o->type != T_DATA || (o->seq == in->seq && o->len == in->len));
}

/* The "out"s without a crc that arrival i may be: of its description and
 * sent before it, into c; returns how many.  k[0..nk) is sorted. */
static int outs_described(const struct trace *tr, const struct keyed *k, int nk,
                          int i, int *c)
{
    const struct event *in = &tr->ev[i];
    struct keyed want = {key_of(in, in->peer, in->ep), 0};
    int lo = 0, hi = nk, n = 0;
    while (lo < hi) { /* the first key >= want */
        int mid = (lo + hi) / 2;
        if (cmp_keyed(&k[mid], &want) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (int j = lo; j < nk && k[j].h == want.h && k[j].idx < i; j++)
        if (same_datagram(&tr->ev[k[j].idx], in))
            c[n++] = k[j].idx;
    return n;
}

/* The datagram length an "out" had, or whether len fits it (with SACK
 * blocks the "out" line of a DATA said only that there were some). */
static int length_fits(const struct event *o, uint32_t len)
{
    if (o->has_crc)
        return o->bytes == len;
    uint32_t base = WIRE_HEADER;
    if (o->type == T_DATA) {
        base += WIRE_DATA_BODY + o->len;
        return o->sack ? len > base && (len - base) % WIRE_SACK == 0
                       : len == base;
    }
    if (o->type == T_CHALLENGE || o->type == T_ECHO || o->type == T_RETRY)
        base += WIRE_COOKIE;
    return len == base + WIRE_SACK * o->sack;
}

/* A datagram that arrived damaged, when its crc did not tell: an "out" of
 * its length on its path that no copy reached, sent before it and (if one
 * is) after the one that arrived before it, whose transit time is closest
 * to the path's typical one. */
static int find_damaged(const struct trace *tr, int i, long long typical)
{
    const struct event *in = &tr->ev[i];
    long long after = in->prev_out >= 0 ? tr->ev[in->prev_out].t : -1;
    int best = -1, best_in_order = 0;
    long long best_cost = 0;
    for (int j = i - 1; j >= 0; j--) {
        const struct event *o = &tr->ev[j];
        if (o->kind != EV_OUT || o->ep != in->peer || o->peer != in->ep ||
            o->copies > 0 || o->bad > 0 || !length_fits(o, in->dlen))
            continue;
        int in_order = o->t >= after && j != in->prev_out;
        long long c = cost(o, in, typical < 0 ? 0 : typical);
        if (best < 0 || in_order > best_in_order ||
            (in_order == best_in_order && c < best_cost))
            best = j, best_in_order = in_order, best_cost = c;
    }
    return best;
}

/* One pass over the intact arrivals the exact passes left (no crc, or no
 * "out" with theirs), matched with the "out"s without a crc of their
 * description.  Undoes the previous such pass first. */
static void described_pass(struct trace *tr, const struct keyed *k, int nk,
                           const long long *typ, int *c)
{
    for (int i = 0; i < tr->nev; i++) {
        struct event *e = &tr->ev[i];
        if (e->kind == EV_OUT && !e->has_crc)
            e->copies = 0, e->match = -1;
        if (e->kind == EV_IN && !e->exact)
            e->match = -1;
    }
    for (int i = 0; i < tr->nev; i++) {
        struct event *e = &tr->ev[i];
        if (e->kind != EV_IN || e->exact || e->peer < 0)
            continue;
        int o = pick(tr, c, outs_described(tr, k, nk, i, c), e,
                     typ[e->peer * tr->nep + e->ep]);
        if (o >= 0)
            take(tr, i, o, 0);
    }
}

/* --- All of it --- */

/* A matched arrival's path and transit time. */
struct transit {
    int path;
    long long us;
};

static int cmp_transit(const void *a, const void *b)
{
    const struct transit *x = a, *y = b;
    if (x->path != y->path)
        return x->path - y->path;
    return (x->us > y->us) - (x->us < y->us);
}

/* Per path, the typical transit time of the intact arrivals matched so
 * far: the 20th percentile, since arrivals read late (a program not
 * calling into its endpoint) only ever make it look longer.  -1 where
 * there is none. */
static void typical_delays(const struct trace *tr, long long *typ)
{
    struct transit *d = xrealloc(NULL, (size_t)(tr->nev + 1) * sizeof(*d));
    int n = 0;
    for (int i = 0; i < tr->nev; i++) {
        const struct event *e = &tr->ev[i];
        if (e->kind == EV_IN && e->match >= 0)
            d[n++] = (struct transit){e->peer * tr->nep + e->ep,
                                      e->t - tr->ev[e->match].t};
    }
    qsort(d, (size_t)n, sizeof(*d), cmp_transit);
    for (int p = 0; p < tr->nep * tr->nep; p++)
        typ[p] = -1;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && d[j].path == d[i].path)
            j++;
        typ[d[i].path] = d[i + (j - i) / 5].us;
        i = j;
    }
    free(d);
}

/* Each damaged arrival the exact passes left (its crc damaged beyond one
 * bit, or an older trace): by length and order. */
static void match_damaged(struct trace *tr, const long long *typ)
{
    int np = tr->nep * tr->nep;
    int *last = xrealloc(NULL, (size_t)(np + 1) * sizeof(int));
    for (int p = 0; p < np; p++)
        last[p] = -1; /* per path: the "out" of the latest intact arrival */
    for (int i = 0; i < tr->nev; i++) {
        struct event *e = &tr->ev[i];
        if ((e->kind != EV_IN && e->kind != EV_IN_BAD) || e->peer < 0)
            continue;
        int p = e->peer * tr->nep + e->ep;
        if (e->kind == EV_IN) {
            if (e->match >= 0)
                last[p] = e->match;
            continue;
        }
        e->prev_out = last[p];
        int o;
        if (e->match < 0 && (o = find_damaged(tr, i, typ[p])) >= 0)
            take(tr, i, o, 0);
    }
    free(last);
}

/* Matches every arrival with the "out" it came from (by identity where
 * the lines carry one, sent once first, to learn each path's typical
 * transit time; else by description, twice for the same reason), then the
 * damaged ones left, and sets each datagram's fate. */
static void match(struct trace *tr)
{
    size_t cap = (size_t)tr->nev + 1;
    struct ident *x = xrealloc(NULL, cap * sizeof(*x));
    struct ident *y = xrealloc(NULL, cap * sizeof(*y));
    struct keyed *k = xrealloc(NULL, cap * sizeof(*k));
    int *c = xrealloc(NULL, cap * sizeof(int));
    long long *typ =
        xrealloc(NULL, (size_t)(tr->nep * tr->nep + 1) * sizeof(*typ));
    int nx = 0, ny = 0, nk = 0;
    for (int i = 0; i < tr->nev; i++) {
        const struct event *e = &tr->ev[i];
        if (e->kind == EV_OUT && e->peer >= 0 && e->has_crc)
            x[nx++] = (struct ident){e->ep, e->peer, e->crc, e->bytes, i};
        else if (e->kind == EV_OUT && e->peer >= 0)
            k[nk++] = (struct keyed){key_of(e, e->ep, e->peer), i};
    }
    qsort(x, (size_t)nx, sizeof(*x), cmp_ident);
    for (int i = 0; i < tr->nev; i++) { /* arrivals: from the peer */
        const struct event *e = &tr->ev[i];
        if ((e->kind != EV_IN && e->kind != EV_IN_BAD) || e->peer < 0 ||
            !e->has_crc)
            continue;
        uint32_t crc = e->kind == EV_IN ? e->crc : sent_crc(x, nx, e, c);
        y[ny++] = (struct ident){e->peer, e->ep, crc, e->bytes, i};
    }
    qsort(y, (size_t)ny, sizeof(*y), cmp_ident);
    qsort(k, (size_t)nk, sizeof(*k), cmp_keyed);
    exact_pass(tr, x, nx, y, ny, NULL, c);
    typical_delays(tr, typ);
    exact_pass(tr, x, nx, y, ny, typ, c);
    described_pass(tr, k, nk, typ, c);
    typical_delays(tr, typ);
    described_pass(tr, k, nk, typ, c);
    match_damaged(tr, typ);
    for (int i = 0; i < tr->nev; i++) {
        struct event *e = &tr->ev[i];
        if (e->kind == EV_OUT)
            e->fate = e->copies                                 ? F_ARRIVED
                      : e->bad                                  ? F_CORRUPT
                      : e->peer < 0 || tr->ep[e->peer].file < 0 ? F_UNKNOWN
                                                                : F_LOST;
    }
    free(typ);
    free(c);
    free(k);
    free(y);
    free(x);
}

/* ------------------------------------------------------------------------ */
/* What the matching tells: retransmissions, overtaking, relative numbers    */
/* ------------------------------------------------------------------------ */

#define FAR (1u << 24) /* a sequence number this far off: a new relation */

/* Walks the events in time order: numbers each sender's datagrams, marks
 * the retransmissions (an "out DATA" line says "retx"; in an older trace,
 * a DATA whose sequence number went out before on its path) and works out
 * relative sequence and ack numbers. */
static void annotate(struct trace *tr)
{
    int np = tr->nep * tr->nep;
    uint32_t *base = xrealloc(NULL, (size_t)np * sizeof(uint32_t));
    uint32_t *high = xrealloc(NULL, (size_t)np * sizeof(uint32_t));
    char *known = xrealloc(NULL, (size_t)np);
    memset(known, 0, (size_t)np);
    for (int i = 0; i < tr->nev; i++) {
        struct event *e = &tr->ev[i];
        int from = e->kind == EV_OUT ? e->ep : e->peer;
        int to = e->kind == EV_OUT ? e->peer : e->ep;
        if ((e->kind != EV_OUT && e->kind != EV_IN) || from < 0 || to < 0)
            continue;
        if (e->kind == EV_OUT)
            e->index = ++tr->ep[e->ep].sent;
        if (e->kind == EV_IN && e->match >= 0) { /* the sender's view */
            e->rseq = tr->ev[e->match].rseq;
            e->rack = tr->ev[e->match].rack;
            continue;
        }
        int p = from * tr->nep + to, back = to * tr->nep + from;
        if (e->type == T_DATA) {
            int fresh = !known[p] || e->seq - base[p] >= FAR;
            if (fresh) { /* the first DATA of a relation */
                known[p] = 1;
                base[p] = high[p] = e->seq;
            } else if (e->kind == EV_OUT && e->seq - high[p] < FAR &&
                       e->seq != high[p]) {
                high[p] = e->seq; /* new data: beyond the highest sent */
            } else if (e->kind == EV_OUT) {
                e->retx = 1; /* at or below the highest sent: again */
            }
            if (e->kind == EV_OUT && e->has_crc) /* the line says */
                e->retx = e->retx_flag;
            e->rseq = e->seq - base[p];
        }
        if (known[back] && e->ack - base[back] < FAR)
            e->rack = e->ack - base[back];
    }
    free(base);
    free(high);
    free(known);
}

/* A datagram that arrived after one sent later on its path was
 * overtaken (reordered): walking each path backwards, it arrived later
 * than the earliest arrival among those sent after it. */
static void mark_late(struct trace *tr)
{
    long long *first =
        xrealloc(NULL, (size_t)tr->nep * tr->nep * sizeof(long long));
    for (int i = 0; i < tr->nep * tr->nep; i++)
        first[i] = -1;
    for (int i = tr->nev - 1; i >= 0; i--) {
        struct event *e = &tr->ev[i];
        if (e->kind != EV_OUT || e->fate != F_ARRIVED)
            continue;
        long long *f = &first[e->ep * tr->nep + e->peer];
        long long at = tr->ev[e->match].t;
        if (*f >= 0 && at > *f)
            e->late = 1;
        if (*f < 0 || at < *f)
            *f = at;
    }
    free(first);
}

/* ------------------------------------------------------------------------ */
/* Labels                                                                    */
/* ------------------------------------------------------------------------ */

/* What an arrow says: "DATA #3 2/5 1386B", "ACK #4 +sack". */
static void datagram_label(const struct event *e, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s", type_names[e->type]);
    if (e->type == T_DATA && e->rseq >= 0)
        n += snprintf(buf + n, cap - (size_t)n, " #%lld", e->rseq);
    if (e->type == T_DATA && e->fn > 1 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, " %u/%u", e->fi, e->fn);
    if (e->type == T_DATA && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, " %uB", e->len);
    if (e->type == T_ACK && e->rack >= 0 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, " #%lld", e->rack);
    if (e->type == T_ACK && e->sack && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, " +sack");
    if (e->retx && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, " retx");
}

/* What a note says, in words where the raw line is terse. */
static void note_label(const struct event *e, char *buf, size_t cap)
{
    unsigned rto, probe;
    int backoff;
    if (sscanf(e->text, "timeout rto=%uus backoff=%d", &rto, &backoff) == 2)
        snprintf(buf, cap, "TIMEOUT (rto now %.0f ms)", rto / 1000.0);
    else if (sscanf(e->text, "tail loss probe seq=%u", &probe) == 1)
        snprintf(buf, cap, "tail loss probe");
    else
        snprintf(buf, cap, "%s", e->text);
}

/* Notes --brief leaves out: the routine life of every message. */
static int routine(const struct event *e)
{
    const char *t = e->text;
    return strncmp(t, "queue ", 6) == 0 || strncmp(t, "deliver ", 8) == 0 ||
           strncmp(t, "cc ", 3) == 0 ||
           (strncmp(t, "msg=", 4) == 0 && strstr(t, " acked") != NULL);
}

static const char *fate_word(const struct event *o)
{
    static const char *w[] = {"lost", "arrived", "corrupt", "unknown"};
    return o->fate == F_ARRIVED && o->copies > 1 ? "dup" : w[o->fate];
}

/* Whether an event is drawn: in the time window, and a kind we show. */
static int shown(const struct trace *tr, const struct options *o,
                 const struct event *e)
{
    double ms = (e->t - tr->t0) / 1000.0;
    if (ms < o->from_ms || ms > o->to_ms)
        return 0;
    if (e->kind == EV_NOTE)
        return !(o->brief && routine(e));
    if (e->kind == EV_IN) /* drawn with its "out", unless it has none */
        return e->match < 0;
    return e->kind != EV_OPEN && !(e->kind == EV_IN_BAD && e->match >= 0);
}

static void endpoint_title(const struct trace *tr, int i, char *buf, size_t cap)
{
    const struct endpoint *p = &tr->ep[i];
    if (p->file < 0) {
        snprintf(buf, cap, "%s (not traced)", p->addr);
        return;
    }
    const char *f = strrchr(tr->files[p->file], '/');
    f = f ? f + 1 : tr->files[p->file];
    if (p->port)
        snprintf(buf, cap, ":%d %s", p->port, f);
    else
        snprintf(buf, cap, "%s", f);
}

/* ------------------------------------------------------------------------ */
/* Text                                                                      */
/* ------------------------------------------------------------------------ */

struct canvas {
    char line[1024];
    int width, lane, left, notes; /* columns: lane spacing, margins */
};

static int lane_x(const struct canvas *c, int i)
{
    return c->left + c->lane / 2 + i * c->lane;
}

/* Clears the row to blanks with a lifeline for every endpoint. */
static void row_start(struct canvas *c, const struct trace *tr, double ms)
{
    memset(c->line, ' ', sizeof(c->line) - 1);
    c->line[sizeof(c->line) - 1] = '\0';
    char t[16];
    int n = snprintf(t, sizeof(t), "%9.3f", ms);
    memcpy(c->line, t, (size_t)n);
    for (int i = 0; i < tr->nep; i++)
        c->line[lane_x(c, i)] = '|';
}

static void put(struct canvas *c, int x, const char *s)
{
    for (; *s && x < (int)sizeof(c->line) - 1; s++, x++)
        if (x >= 0)
            c->line[x] = *s;
}

static void row_print(struct canvas *c)
{
    int end = (int)sizeof(c->line) - 1;
    while (end > 0 && c->line[end - 1] == ' ')
        end--;
    printf("%.*s\n", end, c->line);
}

/* An arrow from lane a to lane b on this row, with its label in the
 * middle; a lost one stops two thirds of the way in an X; `from_unknown`
 * starts it with a '?' (an arrival whose sending is not in the trace). */
static void arrow(struct canvas *c, int a, int b, const char *label, int lost,
                  int from_unknown)
{
    int xa = lane_x(c, a), xb = lane_x(c, b), dir = xb > xa ? 1 : -1;
    int end = lost ? xa + (xb - xa) * 2 / 3 : xb - dir;
    for (int x = xa + dir; x != end + dir; x += dir)
        c->line[x] = '-';
    c->line[end] = lost ? 'X' : dir > 0 ? '>' : '<';
    if (from_unknown)
        c->line[xa + dir] = '?';
    int span = (end - xa) * dir - 3, len = (int)strlen(label);
    if (span < 4)
        return;
    if (len > span - 2)
        len = span - 2;
    int lo = xa < end ? xa : end;
    int at = lo + ((xa < end ? end - xa : xa - end) - len) / 2;
    c->line[at - 1] = ' ';
    for (int k = 0; k < len; k++)
        c->line[at + k] = label[k];
    c->line[at + len] = ' ';
}

/* The right-hand note of a datagram: how long it took, or its fate. */
static void fate_note(const struct trace *tr, const struct event *o, char *buf,
                      size_t cap)
{
    if (o->fate == F_LOST) {
        snprintf(buf, cap, "lost");
    } else if (o->fate == F_CORRUPT) {
        const struct event *in = &tr->ev[o->match];
        int n = snprintf(buf, cap, "corrupt: dropped %s",
                         strncmp(in->text, "malformed", 9) == 0
                             ? "as malformed"
                             : "by the checksum");
        if (o->bad > 1)
            snprintf(buf + n, cap - (size_t)n, ", %d copies", o->bad);
    } else if (o->fate == F_UNKNOWN) {
        snprintf(buf, cap, "?");
    } else {
        int n = snprintf(buf, cap, "%+.3f ms",
                         (tr->ev[o->match].t - o->t) / 1000.0);
        if (o->copies > 1)
            n += snprintf(buf + n, cap - (size_t)n, ", %d copies", o->copies);
        if (o->late)
            snprintf(buf + n, cap - (size_t)n, ", overtaken");
    }
}

static void text_row(struct canvas *c, const struct trace *tr,
                     const struct event *e)
{
    char label[96], note[96];
    row_start(c, tr, (e->t - tr->t0) / 1000.0);
    if (e->kind == EV_OUT) {
        datagram_label(e, label, sizeof(label));
        fate_note(tr, e, note, sizeof(note));
        arrow(c, e->ep, e->peer, label, e->fate == F_LOST, 0);
        put(c, c->notes, note);
    } else if (e->kind == EV_IN && e->peer >= 0) {
        datagram_label(e, label, sizeof(label));
        arrow(c, e->peer, e->ep, label, 0, 1);
        put(c, c->notes, "arrived; its sending is not in the trace");
    } else if (e->kind == EV_IN_BAD && e->peer >= 0) {
        arrow(c, e->peer, e->ep, "?", 0, 1);
        snprintf(note, sizeof(note), "arrived %s", e->text);
        put(c, c->notes, note);
    } else {
        note_label(e, label, sizeof(label));
        c->line[lane_x(c, e->ep)] = '*';
        put(c, lane_x(c, e->ep) + 2, label);
    }
    row_print(c);
}

static void render_text(const struct trace *tr, const struct options *o)
{
    struct canvas c = {.left = 10};
    int n = tr->nep > 0 ? tr->nep : 1;
    c.lane = (o->width - c.left - 24) / n;
    c.lane = c.lane < 14 ? 14 : c.lane > 48 ? 48 : c.lane;
    int most = ((int)sizeof(c.line) - 1 - c.left - 48) / n; /* room */
    if (c.lane > most)
        c.lane = most;
    if (c.lane < 4) {
        fprintf(stderr, "rtrace: too many endpoints for text; try --svg\n");
        return;
    }
    c.notes = c.left + n * c.lane;
    char title[96];
    row_start(&c, tr, 0);
    memcpy(c.line, "  time ms", 9);
    for (int i = 0; i < tr->nep; i++) {
        endpoint_title(tr, i, title, sizeof(title));
        title[c.lane - 2 > 0 ? c.lane - 2 : 0] = '\0';
        put(&c, lane_x(&c, i) - (int)strlen(title) / 2, title);
    }
    row_print(&c);
    int rows = 0, total = 0;
    for (int i = 0; i < tr->nev; i++) {
        if (!shown(tr, o, &tr->ev[i]))
            continue;
        if (o->limit == 0 || rows < o->limit) {
            text_row(&c, tr, &tr->ev[i]);
            rows++;
        }
        total++;
    }
    if (total > rows)
        printf("... %d more rows (--limit)\n", total - rows);
}

/* ------------------------------------------------------------------------ */
/* SVG                                                                       */
/* ------------------------------------------------------------------------ */

#define SVG_LEFT 90
#define SVG_TOP  64
#define SVG_LANE 250
#define SVG_ROW  18

struct svg {
    FILE *f;
    int *row; /* per event: its row, or -1 when not drawn */
};

static int svg_x(int lane)
{
    return SVG_LEFT + SVG_LANE / 2 + lane * SVG_LANE;
}

static int svg_y(const struct svg *g, int i)
{
    return SVG_TOP + g->row[i] * SVG_ROW;
}

/* Writes s with the characters XML reserves escaped. */
static void svg_text(FILE *f, int x, int y, const char *cls, const char *s)
{
    fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"%s\">", x, y, cls);
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else
            fputc(*s, f);
    }
    fputs("</text>\n", f);
}

static const char *svg_class(const struct event *o)
{
    if (o->retx)
        return "retx";
    return o->type == T_DATA ? "data" : o->type == T_ACK ? "ack" : "ctl";
}

/* One datagram: an arrow to every copy that arrived, an X if none did. */
static void svg_datagram(const struct svg *g, const struct trace *tr, int i)
{
    const struct event *o = &tr->ev[i];
    char label[96];
    datagram_label(o, label, sizeof(label));
    int x1 = svg_x(o->ep), y1 = svg_y(g, i), x2 = svg_x(o->peer);
    if (o->fate == F_LOST || o->fate == F_UNKNOWN ||
        (o->match >= 0 && g->row[o->match] < 0)) {
        int xe = x1 + (x2 - x1) * 55 / 100, ye = y1 + SVG_ROW / 2;
        fprintf(g->f,
                "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
                "class=\"%s\"/>\n",
                x1, y1, xe, ye, svg_class(o));
        if (o->fate == F_LOST)
            fprintf(g->f,
                    "<path d=\"M%d %dl10 10m0 -10l-10 10\" "
                    "class=\"x\"/>\n",
                    xe - 5, ye - 5);
        svg_text(g->f, (x1 + xe) / 2, (y1 + ye) / 2 - 4, "label", label);
        return;
    }
    for (int j = i + 1; j < tr->nev; j++) {
        const struct event *in = &tr->ev[j];
        if ((in->kind != EV_IN && in->kind != EV_IN_BAD) || in->match != i ||
            g->row[j] < 0)
            continue;
        int y2 = svg_y(g, j);
        fprintf(g->f,
                "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
                "class=\"%s%s\" marker-end=\"url(#head)\"/>\n",
                x1, y1, x2, y2, svg_class(o),
                in->kind == EV_IN_BAD ? " bad" : "");
        svg_text(g->f, (x1 + x2) / 2, (y1 + y2) / 2 - 4, "label",
                 in->kind == EV_IN_BAD ? "corrupt" : label);
    }
}

static void svg_event(const struct svg *g, const struct trace *tr, int i)
{
    const struct event *e = &tr->ev[i];
    char label[128];
    if (e->kind == EV_OUT && e->peer >= 0) {
        svg_datagram(g, tr, i);
    } else if ((e->kind == EV_IN || e->kind == EV_IN_BAD) && e->match < 0 &&
               e->peer >= 0) { /* arrived, never seen leaving */
        int x1 = svg_x(e->peer), x2 = svg_x(e->ep), y = svg_y(g, i);
        fprintf(g->f,
                "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
                "class=\"ctl bad\" marker-end=\"url(#head)\"/>\n",
                x1, y - SVG_ROW, x2, y);
        if (e->kind == EV_IN)
            datagram_label(e, label, sizeof(label));
        else
            snprintf(label, sizeof(label), "? %s", e->text);
        svg_text(g->f, (x1 + x2) / 2, y - SVG_ROW / 2 - 4, "label", label);
    } else if (e->kind == EV_NOTE) {
        int x = svg_x(e->ep), y = svg_y(g, i);
        int loud = strncmp(e->text, "timeout", 7) == 0 ||
                   strncmp(e->text, "tail loss", 9) == 0 ||
                   strncmp(e->text, "reset", 5) == 0 ||
                   (strncmp(e->text, "msg=", 4) == 0 &&
                    strstr(e->text, " acked") == NULL);
        note_label(e, label, sizeof(label));
        fprintf(g->f, "<circle cx=\"%d\" cy=\"%d\" r=\"3\" class=\"%s\"/>\n", x,
                y, loud ? "loud" : "dot");
        svg_text(g->f, x + 6, y + 4, loud ? "loudnote" : "note", label);
    }
}

static void svg_head(FILE *f, int w, int h)
{
    fprintf(
        f,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
        "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"monospace\">\n"
        "<defs><marker id=\"head\" markerWidth=\"8\" markerHeight=\"8\" "
        "refX=\"7\" refY=\"4\" orient=\"auto\"><path d=\"M0 0L8 4L0 8z\" "
        "fill=\"context-stroke\"/></marker></defs>\n<style>\n"
        "line{stroke-width:1.3}\n.life{stroke:#999;stroke-dasharray:2 3}\n"
        ".data{stroke:#1f6feb}.ack{stroke:#2da44e}.ctl{stroke:#8250df}\n"
        ".retx{stroke:#d4761c}.bad{stroke-dasharray:4 3}\n"
        ".x{stroke:#cf222e;stroke-width:2.5;fill:none}\n"
        "text{font-size:10px}.label{text-anchor:middle;paint-order:"
        "stroke;stroke:#fff;stroke-width:3px}\n.time{fill:#777;"
        "text-anchor:end}.title{font-size:12px;font-weight:bold;"
        "text-anchor:middle}\n.note{fill:#555}.loudnote{fill:#cf222e;"
        "font-weight:bold}.dot{fill:#999}.loud{fill:#cf222e}\n"
        "</style>\n<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n",
        w, h, w, h);
}

static int render_svg(const struct trace *tr, const struct options *o)
{
    struct svg g = {fopen(o->svg, "w"), NULL};
    if (g.f == NULL) {
        fprintf(stderr, "rtrace: %s: %s\n", o->svg, strerror(errno));
        return -1;
    }
    g.row = xrealloc(NULL, (size_t)(tr->nev ? tr->nev : 1) * sizeof(int));
    int rows = 0;
    for (int i = 0; i < tr->nev; i++) {
        const struct event *e = &tr->ev[i];
        double ms = (e->t - tr->t0) / 1000.0;
        int in = e->kind != EV_OPEN && ms >= o->from_ms && ms <= o->to_ms &&
                 !(e->kind == EV_NOTE && o->brief && routine(e)) &&
                 (o->limit == 0 || rows < o->limit);
        g.row[i] = in ? rows++ : -1;
    }
    int w = SVG_LEFT + tr->nep * SVG_LANE + 140; /* room for notes */
    int h = SVG_TOP + rows * SVG_ROW + 40;
    svg_head(g.f, w, h);
    char title[96];
    for (int i = 0; i < tr->nep; i++) {
        endpoint_title(tr, i, title, sizeof(title));
        svg_text(g.f, svg_x(i), 24, "title", title);
        fprintf(g.f,
                "<line x1=\"%d\" y1=\"34\" x2=\"%d\" y2=\"%d\" "
                "class=\"life\"/>\n",
                svg_x(i), svg_x(i), h - 30);
    }
    svg_text(g.f, SVG_LEFT - 10, 48, "time", "time (ms)");
    for (int i = 0; i < tr->nev; i++) {
        if (g.row[i] < 0)
            continue;
        char t[32];
        snprintf(t, sizeof(t), "%.3f", (tr->ev[i].t - tr->t0) / 1000.0);
        svg_text(g.f, SVG_LEFT - 10, svg_y(&g, i) + 4, "time", t);
        svg_event(&g, tr, i);
    }
    fputs("</svg>\n", g.f);
    free(g.row);
    return fclose(g.f) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* The list and the summary                                                  */
/* ------------------------------------------------------------------------ */

/* --list: one line per datagram, for scripts:
 *   TIME_MS FROM_PORT N TO_PORT TYPE FATE seq=S ack=A win=W len=L bytes=B
 *   crc=C copies=K [retx]
 * N counts the sender's datagrams from 1; FATE is arrived, dup (two or
 * more copies arrived), lost, corrupt or unknown; K is how many copies
 * arrived, intact or damaged; bytes and crc (? in an older trace) say
 * which datagrams were identical.  An arrival never seen leaving is
 *   TIME_MS FROM_PORT 0 TO_PORT TYPE orphan */
static void render_list(const struct trace *tr)
{
    for (int i = 0; i < tr->nev; i++) {
        const struct event *e = &tr->ev[i];
        double ms = (e->t - tr->t0) / 1000.0;
        char id[48] = "bytes=? crc=?";
        if (e->has_crc)
            snprintf(id, sizeof(id), "bytes=%u crc=%08x", e->bytes, e->crc);
        if (e->kind == EV_OUT && e->peer >= 0)
            printf("%.3f %d %d %d %s %s seq=%u ack=%u win=%u len=%u %s "
                   "copies=%d%s\n",
                   ms, tr->ep[e->ep].port, e->index, tr->ep[e->peer].port,
                   type_names[e->type], fate_word(e), e->seq, e->ack, e->win,
                   e->len, id, e->copies + e->bad, e->retx ? " retx" : "");
        else if ((e->kind == EV_IN || e->kind == EV_IN_BAD) && e->match < 0 &&
                 e->peer >= 0)
            printf("%.3f %d 0 %d %s orphan\n", ms, tr->ep[e->peer].port,
                   tr->ep[e->ep].port,
                   e->kind == EV_IN ? type_names[e->type] : "?");
    }
}

static void summary(const struct trace *tr)
{
    int dgrams = 0, arrived = 0, lost = 0, dup = 0, bad = 0, unknown = 0;
    int orphans = 0, retx = 0, timeouts = 0, probes = 0;
    for (int i = 0; i < tr->nev; i++) {
        const struct event *e = &tr->ev[i];
        if (e->kind == EV_OUT && e->peer >= 0) {
            dgrams++;
            arrived += e->fate == F_ARRIVED;
            lost += e->fate == F_LOST;
            bad += e->fate == F_CORRUPT;
            unknown += e->fate == F_UNKNOWN;
            dup += e->copies + e->bad > 1; /* intact or not */
            retx += e->retx;
        }
        orphans += (e->kind == EV_IN || e->kind == EV_IN_BAD) && e->match < 0;
        if (e->kind == EV_NOTE) {
            timeouts += strncmp(e->text, "timeout ", 8) == 0;
            probes += strncmp(e->text, "tail loss probe", 15) == 0;
        }
    }
    printf("rtrace: %d endpoints, %d datagrams: %d arrived, %d lost, %d "
           "duplicated, %d corrupt",
           tr->nep, dgrams, arrived, lost, dup, bad);
    if (unknown)
        printf(", %d to a peer not traced", unknown);
    if (orphans)
        printf(", %d arrivals never seen leaving", orphans);
    printf("; %d retransmissions, %d timeouts, %d tail loss probes\n", retx,
           timeouts, probes);
}

/* ------------------------------------------------------------------------ */
/* Main                                                                      */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fputs(
        "usage: rtrace [options] TRACE...\n"
        "\n"
        "Draws RMSG_TRACE logs (one or more files, '-' for standard input) as "
        "a\n"
        "message sequence diagram: time flows down, one column per endpoint, "
        "one\n"
        "arrow per datagram from its sending to its arrival.\n"
        "\n"
        "  RMSG_TRACE=1 build/examples/rmsg_server 0 2> server.trace\n"
        "  RMSG_TRACE=1 UDP_FAULTS=drop=0.3 build/examples/rmsg_client \\\n"
        "      127.0.0.1 PORT 5 2> client.trace\n"
        "  rtrace server.trace client.trace\n"
        "\n"
        "In the picture:\n"
        "  ---- DATA #3 1386B --->|   a datagram and where it arrived; the "
        "note on\n"
        "                             the right says after how long (\"2 "
        "copies\":\n"
        "                             duplicated, \"overtaken\": reordered)\n"
        "  ---- DATA #3 ---X          lost: sent, never received\n"
        "  retx                       a retransmission: the fragment went "
        "before\n"
        "  ACK #4                     \"everything before #4 arrived\"; +sack: "
        "and\n"
        "                             some after it\n"
        "  * TIMEOUT (rto now 10 ms)  the retransmission timer fired at that "
        "end\n"
        "  ?--- ... --->              arrived, but its sending is not in the "
        "trace\n"
        "Sequence numbers count from the first of each relation (#0).\n"
        "\n"
        "Each line's local=PORT says which endpoint wrote it (several may "
        "share one\n"
        "file), and each datagram's arrival is paired with its sending by "
        "path, size\n"
        "and CRC (bytes=, crc=), so a datagram is lost, duplicated or "
        "corrupt exactly\n"
        "as the network treated it; only identical copies (a fragment sent "
        "again\n"
        "unchanged) are paired by order and transit time.  Older traces "
        "without these\n"
        "fields are matched by type, numbers, length and time, and their "
        "lines given\n"
        "to endpoints by the peers they talk to, as before.\n"
        "\n"
        "options:\n"
        "  --svg FILE   write the diagram as SVG to FILE (and the summary to "
        "stdout)\n"
        "  --list       one line per datagram, for scripts:\n"
        "               TIME_MS FROM N TO TYPE FATE seq=S ack=A win=W len=L\n"
        "               bytes=B crc=C copies=K [retx]\n"
        "               (N: the sender's n-th datagram; FATE: arrived, dup, "
        "lost,\n"
        "               corrupt, unknown; K: copies that arrived, intact or "
        "not;\n"
        "               bytes and crc are ? in an older trace)\n"
        "  --brief      leave out the routine events (queue, deliver, acked, "
        "cc)\n"
        "  --from MS, --to MS   only this window (milliseconds from the "
        "start)\n"
        "  --limit N    at most N rows\n"
        "  --width N    text width in columns (default 100)\n"
        "  -h, --help   this text\n"
        "The last line is always a summary: datagrams, how many arrived, were\n"
        "lost, duplicated or corrupted, retransmissions and timeouts.\n",
        f);
}

/* Reads the options; returns the index of the first trace file, or -1
 * (after printing why) when the command line is wrong, 0 after --help. */
static int parse_options(int argc, char *argv[], struct options *o)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--list") == 0) {
            o->list = 1;
        } else if (strcmp(a, "--brief") == 0) {
            o->brief = 1;
        } else if (v && strcmp(a, "--svg") == 0) {
            o->svg = v, i++;
        } else if (v && strcmp(a, "--from") == 0) {
            o->from_ms = atof(v), i++;
        } else if (v && strcmp(a, "--to") == 0) {
            o->to_ms = atof(v), i++;
        } else if (v && strcmp(a, "--limit") == 0) {
            o->limit = atoi(v), i++;
        } else if (v && strcmp(a, "--width") == 0) {
            o->width = atoi(v), i++;
        } else {
            fprintf(stderr, "rtrace: unknown option or missing value: %s\n", a);
            return -1;
        }
    }
    if (i == argc) {
        usage(stderr);
        return -1;
    }
    return i;
}

int main(int argc, char *argv[])
{
    struct options o = {.width = 100, .to_ms = 1e300};
    int first = parse_options(argc, argv, &o);
    if (first <= 0)
        return first < 0 ? 2 : 0;
    struct trace tr = {0};
    for (int i = first; i < argc; i++)
        if (read_file(&tr, argv[i]) < 0)
            return 1;
    resolve(&tr);
    match(&tr);
    annotate(&tr);
    mark_late(&tr);
    int rc = 0;
    if (o.list)
        render_list(&tr);
    else if (o.svg)
        rc = render_svg(&tr, &o);
    else
        render_text(&tr, &o);
    summary(&tr);
    if (o.svg && rc == 0 && !o.list)
        printf("wrote %s\n", o.svg);
    for (int i = 0; i < tr.nev; i++)
        free(tr.ev[i].text);
    for (int f = 0; f < tr.nfiles; f++)
        free(tr.ports[f]);
    free(tr.ports);
    free(tr.nports);
    free(tr.ev);
    free(tr.ep);
    free(tr.files);
    return rc < 0 ? 1 : 0;
}
