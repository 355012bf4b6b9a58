/*
 * main.c - rperf's entry point and the client session: connect the
 * control channel, run the raw UDP baseline and the user's test as many
 * times as asked, and print the summary or the JSON.  See rperf.h for the
 * whole program.
 */
#include "rperf.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ======================================================================== */
/* Client: the session                                                      */
/* ======================================================================== */

/* Connects the control channel and waits for the server's greeting. */
static int client_connect(struct client *cl, const struct opts *o, char *why,
                          size_t cap)
{
    memset(cl, 0, sizeof(*cl));
    cl->o = o;
    int64_t start = now_ns();
    int fd = tcp_connect(o->host, o->port, CONNECT_MS, why, cap);
    if (fd < 0)
        return -1;
    set_nodelay(fd);
    cl->ctl.fd = fd;
    cl->peer_len = sizeof(cl->peer);
    getpeername(fd, (struct sockaddr *)&cl->peer, &cl->peer_len);
    udp_addr_of(&cl->udp_peer, &cl->peer, cl->peer_len, o->port);
    UDP_AddrString(&cl->udp_peer, cl->peer_name, sizeof(cl->peer_name));
    /* Connecting and the greeting share one budget (at least 1 s for
     * the greeting), so that a silent peer costs about CONNECT_MS. */
    char line[LINE_BYTES];
    int left = CONNECT_MS - (int)((now_ns() - start) / 1000000);
    int r = ctl_read(&cl->ctl, line, sizeof(line), left < 1000 ? 1000 : left);
    if (r > 0 && strcmp(line, "RPERF/1 ready") == 0)
        return 0;
    if (r > 0 && strcmp(line, "RPERF/1 busy") == 0)
        snprintf(why, cap, "%s is busy with another client", o->host);
    else if (r > 0 && strncmp(line, "RPERF/", 6) == 0)
        snprintf(why, cap, "%s speaks another rperf protocol (%.40s)", o->host,
                 line);
    else
        snprintf(why, cap, "%s port %d is no rperf server%s", o->host, o->port,
                 r < 0 && errno == ETIMEDOUT
                     ? " (no greeting in time; or it is busy)"
                     : "");
    close(fd);
    return -1;
}

/* The user's test, and the raw UDP baseline on the same path. */
static void make_plans(const struct opts *o, struct plan *pl, struct plan *bp)
{
    memset(pl, 0, sizeof(*pl));
    pl->tr = o->tr;
    pl->mode = o->mode;
    pl->size = o->size;
    pl->datagram = o->datagram;
    pl->batch = o->batch;
    pl->progress = !o->quiet && isatty(STDERR_FILENO);
    pl->clients = o->clients;
    pl->label = transport_names[o->tr];
    int limited = o->mode == M_BW ? o->total_set : o->count_set;
    if (o->mode == M_BW)
        pl->total = limited ? o->total : o->seconds_set ? 0 : BW_TOTAL_DEFAULT;
    else
        pl->count = limited ? o->count : o->seconds_set ? 0 : LAT_COUNT_DEFAULT;
    pl->seconds = o->seconds_set ? o->seconds : limited ? 0 : TIME_CAP_S;
    pl->time_is_cap = !o->seconds_set && !limited;
    *bp = *pl;
    bp->tr = T_UDP;
    bp->batch = 0;
    bp->clients = 1;
    /* A null call's baseline is the smallest datagram that carries data. */
    if (bp->size == 0)
        bp->size = 1;
    bp->label = "udp baseline";
    bp->time_is_cap = 0;
    if (bp->seconds == 0 || bp->seconds > BASELINE_CAP_S)
        bp->seconds = BASELINE_CAP_S;
}

static int client_main(const struct opts *o)
{
    struct client cl;
    struct plan pl, bp;
    char why[300] = "";
    int has_base = o->baseline && o->tr != T_UDP, n = 0, ok = 1;
    struct run *runs = xmalloc((size_t)o->repeats * sizeof(*runs));
    make_plans(o, &pl, &bp);
    if (client_connect(&cl, o, why, sizeof(why)) == 0) {
        if (!o->json && !o->quiet)
            print_header(o, &cl, &pl);
        for (; n < o->repeats; n++) {
            struct run *r = &runs[n];
            figures_clear(&r->base);
            if ((has_base && run_test(&cl, &bp, &r->base) < 0) ||
                run_test(&cl, &pl, &r->test) < 0) {
                snprintf(why, sizeof(why), "%s",
                         r->base.why[0] ? r->base.why : r->test.why);
                break;
            }
            r->ratio = has_base ? ratio_of(o->mode, &r->test, &r->base) : NAN;
            ok &= r->test.why[0] == '\0';
            if (o->repeats > 1 && !o->json && !o->quiet)
                print_run_line(n, o->repeats, &pl, r, has_base);
        }
        close(cl.ctl.fd);
    }
    if (why[0])
        fprintf(stderr, "rperf: %s\n", why);
    if (o->json)
        print_json(o, &pl, &bp, runs, n, has_base, why);
    else if (n > 0)
        print_summary(o, &pl, &bp, runs, n, has_base);
    fflush(stdout);
    free(runs);
    return ok && !why[0] ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct opts o;
    signal(SIGPIPE, SIG_IGN); /* a peer that vanishes is an error, not death */
    parse_args(argc, argv, &o);
    return o.server ? server_main(&o) : client_main(&o);
}
