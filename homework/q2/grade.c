/*
 * grade.c - the grader of question 2: a communication library and the
 * client and server rewritten on it.
 *
 *     grade CLIENT SERVER CLIENT.O SERVER.O
 *
 * The library is linked into this program and called directly: ports,
 * messages of every size up to COMM_MSG_MAX with their sender, refusal of
 * larger ones, a receive that times out while sleeping, name resolution.
 * Then the programs run as in question 1; the grader plays the other side
 * through the student's own library, since the bytes on the wire are now
 * the student's choice.  Last, the programs' object files must not call
 * the udp layer or the socket API themselves.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm.h"
#include "harness.h"

static char *client_bin, *server_bin, *client_obj, *server_obj;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static struct comm *open_or_fail(int port)
{
    struct comm *c = NULL;
    int rc = comm_open(port, &c);
    if (rc < 0 || c == NULL)
        hw_fail("comm_open(%d) returned %d (%s)", port, rc,
                rc < 0 ? strerror(-rc) : "and no endpoint");
    return c;
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a;
    int rc = comm_address("127.0.0.1", port, &a);
    if (rc < 0)
        hw_fail("comm_address(\"127.0.0.1\", %d) returned %d", port, rc);
    return a;
}

/* Receives on c and checks the message against (seed, index) and, when
 * want_port > 0, that its sender is that port. */
static void expect_msg(struct comm *c, size_t want_len, uint32_t seed,
                       uint32_t index, int want_port)
{
    struct sockaddr_in from;
    void *msg = NULL;
    size_t len = 0;
    int rc = comm_recv(c, &from, &msg, &len, 2000);
    if (rc < 0)
        hw_fail("comm_recv of the %zu-byte message returned %d (%s)", want_len,
                rc, strerror(-rc));
    if (len != want_len)
        hw_fail("a %zu-byte message arrived as %zu bytes", want_len, len);
    size_t at = hw_differs(msg, len, seed, index);
    if (at != len)
        hw_fail("the %zu-byte message differs at byte %zu", want_len, at);
    if (want_port > 0 && ntohs(from.sin_port) != want_port)
        hw_fail("the sender of the message was reported as port %d, not %d",
                ntohs(from.sin_port), want_port);
    free(msg);
}

/* Sends text with c to port and expects "ack <text>" back. */
static void ask(struct comm *c, int port, const char *text)
{
    struct sockaddr_in server = loopback(port);
    int rc = comm_send(c, &server, text, strlen(text));
    if (rc < 0)
        hw_fail("comm_send returned %d", rc);
    void *reply;
    size_t len;
    rc = comm_recv(c, NULL, &reply, &len, 2000);
    if (rc < 0)
        hw_fail("no reply to \"%s\" within 2 s (comm_recv returned %d)", text,
                rc);
    char want[1100], shown[400];
    int wlen = snprintf(want, sizeof(want), "ack %s", text);
    if (len != (size_t)wlen || memcmp(reply, want, len) != 0) {
        hw_printable(shown, sizeof(shown), reply, len);
        hw_fail("the reply to \"%s\" was \"%s\", not \"%s\"", text, shown,
                want);
    }
    free(reply);
}

/* ------------------------------------------------------------------------ */
/* The library, called directly                                              */
/* ------------------------------------------------------------------------ */

static void check_open(void)
{
    struct comm *a = open_or_fail(0), *b = open_or_fail(0);
    int pa = comm_port(a), pb = comm_port(b);
    if (pa <= 0 || pa > 65535 || pb <= 0 || pb > 65535 || pa == pb)
        hw_fail("comm_port gave %d and %d for two endpoints on port 0", pa, pb);
    struct comm *again = NULL;
    int rc = comm_open(pa, &again);
    if (rc >= 0)
        hw_fail("comm_open(%d) succeeded although that port is taken", pa);
    comm_close(a);
    comm_close(b);
    comm_close(NULL);
    hw_detail("ports %d and %d; a taken port gives %d", pa, pb, rc);
}

static void check_messages(void)
{
    struct comm *a = open_or_fail(0), *b = open_or_fail(0);
    struct sockaddr_in to_b = loopback(comm_port(b));
    const size_t sizes[] = {0,    1,    2,     100,         1000,
                            1472, 8192, 30000, COMM_MSG_MAX};
    const int n = (int)(sizeof(sizes) / sizeof(sizes[0]));
    static unsigned char buf[COMM_MSG_MAX];
    /* One at a time, then all at once: they must come out in order. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < n; i++) {
            hw_fill(buf, sizes[i], 2, (uint32_t)(round * n + i));
            int rc = comm_send(a, &to_b, buf, sizes[i]);
            if (rc < 0)
                hw_fail("comm_send of %zu bytes returned %d (%s)", sizes[i], rc,
                        strerror(-rc));
            if (round == 0)
                expect_msg(b, sizes[i], 2, (uint32_t)i, comm_port(a));
        }
    }
    for (int i = 0; i < n; i++)
        expect_msg(b, sizes[i], 2, (uint32_t)(n + i), comm_port(a));
    /* The reply goes to the sender's address as comm_recv reported it. */
    struct sockaddr_in from;
    void *msg;
    size_t len;
    hw_fill(buf, 10, 3, 0);
    comm_send(a, &to_b, buf, 10);
    if (comm_recv(b, &from, &msg, &len, 2000) < 0)
        hw_fail("comm_recv timed out");
    free(msg);
    hw_fill(buf, 20, 3, 1);
    if (comm_send(b, &from, buf, 20) < 0)
        hw_fail("comm_send to the reported sender failed");
    expect_msg(a, 20, 3, 1, comm_port(b));
    comm_close(a);
    comm_close(b);
    hw_detail("0 to %d bytes, in order, replies reach the sender",
              COMM_MSG_MAX);
}

static void check_too_large(void)
{
    struct comm *a = open_or_fail(0);
    struct sockaddr_in self = loopback(comm_port(a));
    static unsigned char buf[COMM_MSG_MAX + 2];
    int rc = comm_send(a, &self, buf, COMM_MSG_MAX + 1);
    if (rc != -EMSGSIZE)
        hw_fail("comm_send of COMM_MSG_MAX + 1 bytes returned %d, not "
                "-EMSGSIZE",
                rc);
    comm_close(a);
}

/* A helper that waits in comm_recv on a silent endpoint. */
static void silent_recv(struct hw_proc *self, void *arg)
{
    (void)arg;
    struct comm *c = open_or_fail(0);
    void *msg;
    size_t len;
    double t0 = hw_now();
    int rc0 = comm_recv(c, NULL, &msg, &len, 0);
    double t1 = hw_now();
    int rc1 = comm_recv(c, NULL, &msg, &len, 1000);
    double t2 = hw_now();
    hw_say(self, "%d %.3f %d %.3f", rc0, t1 - t0, rc1, t2 - t1);
}

static void check_timeout(void)
{
    struct hw_proc p;
    hw_spawn(&p, silent_recv, NULL);
    char line[200];
    hw_report(&p, line, sizeof(line), 8000, "comm_recv(..., 1000)");
    int rc0, rc1;
    double w0, w1, cpu;
    if (sscanf(line, "%d %lf %d %lf", &rc0, &w0, &rc1, &w1) != 4)
        hw_fail("the helper said: %s", line);
    hw_reap(&p, 2000, &cpu, NULL);
    if (rc0 != -ETIMEDOUT || w0 > 0.2)
        hw_fail("comm_recv(..., 0) on a silent endpoint returned %d after "
                "%.3f s: want -ETIMEDOUT at once",
                rc0, w0);
    if (rc1 != -ETIMEDOUT || w1 < 0.9 || w1 > 3)
        hw_fail("comm_recv(..., 1000) returned %d after %.3f s: want "
                "-ETIMEDOUT after about 1 s",
                rc1, w1);
    if (cpu > 0.05 * w1 + 0.02)
        hw_fail("waiting %.2f s took %.0f ms of CPU: the wait spins", w1,
                cpu * 1000);
    hw_detail("-ETIMEDOUT after %.2f s using %.0f ms of CPU", w1, cpu * 1000);
}

static void check_address(void)
{
    struct sockaddr_in a;
    int rc = comm_address("127.0.0.1", 4242, &a);
    if (rc != 0 || a.sin_family != AF_INET || ntohs(a.sin_port) != 4242 ||
        ntohl(a.sin_addr.s_addr) != 0x7f000001)
        hw_fail("comm_address(\"127.0.0.1\", 4242) gave %d and a wrong "
                "address",
                rc);
    rc = comm_address("localhost", 4243, &a);
    if (rc != 0 || ntohs(a.sin_port) != 4243)
        hw_fail("comm_address(\"localhost\", 4243) returned %d", rc);
    rc = comm_address("no-such-host.invalid", 1, &a);
    if (rc >= 0)
        hw_fail("comm_address(\"no-such-host.invalid\") succeeded");
}

/* ------------------------------------------------------------------------ */
/* The programs                                                              */
/* ------------------------------------------------------------------------ */

static int start_server(struct hw_proc *p)
{
    char *argv[] = {server_bin, "0", NULL};
    hw_run_program(p, argv);
    return hw_wait_port(p, "server");
}

static void check_pair(void)
{
    struct hw_proc server, client;
    int port = start_server(&server);
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    char *argv[] = {client_bin,         "127.0.0.1", portstr, "hello",
                    "a second message", "3",         NULL};
    hw_run_program(&client, argv);
    const char *want[] = {"client: ack hello", "client: ack a second message",
                          "client: ack 3"};
    hw_expect_output(&client, "client", want, 3, 5000);
}

static void check_server(void)
{
    struct hw_proc server;
    int port = start_server(&server);
    struct comm *a = open_or_fail(0), *b = open_or_fail(0);
    ask(a, port, "from A, 1");
    ask(b, port, "from B, 1");
    ask(a, port, "from A, 2");
    for (int i = 0; i < 100; i++) {
        char text[64];
        snprintf(text, sizeof(text), "%s number %d", i % 2 ? "B" : "A", i);
        ask(i % 2 ? b : a, port, text);
    }
    hw_detail("two senders, 103 messages");
}

static void check_client(void)
{
    struct comm *s = open_or_fail(0);
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", comm_port(s));
    const char *msgs[] = {"one", "and two"};
    char *argv[] = {client_bin,      "127.0.0.1",     portstr,
                    (char *)msgs[0], (char *)msgs[1], NULL};
    struct hw_proc client;
    hw_run_program(&client, argv);
    char want[2][128];
    const char *wantp[2];
    for (int i = 0; i < 2; i++) {
        struct sockaddr_in from;
        void *got, *extra;
        size_t len;
        char shown[400];
        if (comm_recv(s, &from, &got, &len, 3000) < 0)
            hw_fail("message %d (\"%s\") did not arrive within 3 s", i + 1,
                    msgs[i]);
        if (len != strlen(msgs[i]) || memcmp(got, msgs[i], len) != 0) {
            hw_printable(shown, sizeof(shown), got, len);
            hw_fail("message %d arrived as \"%s\", not \"%s\"", i + 1, shown,
                    msgs[i]);
        }
        free(got);
        if (comm_recv(s, NULL, &extra, &len, 300) == 0)
            hw_fail("the client sent another message before message %d was "
                    "answered",
                    i + 1);
        char reply[64];
        snprintf(reply, sizeof(reply), "ack %s %u", msgs[i],
                 hw_rand((uint32_t)getpid(), (uint32_t)i, 100000));
        if (comm_send(s, &from, reply, strlen(reply)) < 0)
            hw_fail("comm_send of the reply failed");
        snprintf(want[i], sizeof(want[i]), "client: %s", reply);
        wantp[i] = want[i];
    }
    hw_expect_output(&client, "client", wantp, 2, 3000);
}

/* The programs' own object files may not reach below the library. */
static void check_layering(void)
{
    static const char *below[] = {"UDP_", "socket",  "sendto",  "recvfrom",
                                  "bind", "sendmsg", "recvmsg", NULL};
    char *objs[] = {client_obj, server_obj};
    for (int i = 0; i < 2; i++) {
        char cmd[4200], sym[256];
        snprintf(cmd, sizeof(cmd), "nm -u '%s' 2>/dev/null", objs[i]);
        FILE *f = popen(cmd, "r");
        if (f == NULL)
            hw_fail("cannot run nm");
        int sends = 0, recvs = 0;
        while (fscanf(f, " U %255s", sym) == 1) {
            sends += strcmp(sym, "comm_send") == 0;
            recvs += strcmp(sym, "comm_recv") == 0;
            for (int k = 0; below[k] != NULL; k++)
                if (strncmp(sym, below[k], strlen(below[k])) == 0)
                    hw_fail("%s calls %s itself: it should use comm.h only",
                            i == 0 ? "client.c" : "server.c", sym);
        }
        pclose(f);
        if (sends == 0 || recvs == 0)
            hw_fail("%s does not call comm_send and comm_recv",
                    i == 0 ? "client.c" : "server.c");
    }
}

int main(int argc, char *argv[])
{
    if (argc != 5) {
        fprintf(stderr, "usage: grade CLIENT SERVER CLIENT.O SERVER.O\n");
        return 2;
    }
    client_bin = argv[1];
    server_bin = argv[2];
    client_obj = argv[3];
    server_obj = argv[4];
    unsetenv("UDP_FAULTS");
    hw_begin("q2: a communication library");
    hw_check("comm_open and comm_port: free ports, a taken one refused", 10,
             check_open);
    hw_check("messages of every size arrive whole, with their sender", 10,
             check_messages);
    hw_check("a message larger than COMM_MSG_MAX is refused", 5,
             check_too_large);
    hw_check("comm_recv times out, sleeping", 10, check_timeout);
    hw_check("comm_address resolves numbers and names", 10, check_address);
    hw_check("client and server exchange three messages", 10, check_pair);
    hw_check("the server answers every sender at its own address", 10,
             check_server);
    hw_check("the client sends each message, waits, prints the reply", 10,
             check_client);
    hw_check("client.c and server.c use comm.h, not the udp layer", 10,
             check_layering);
    return hw_end();
}
