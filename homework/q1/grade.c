/*
 * grade.c - the grader of question 1: a UDP client and server.
 *
 *     grade CLIENT SERVER
 *
 * runs the student's programs the way the task describes and talks to each
 * of them from sockets of its own, so that it checks what goes over the
 * network, not just what is printed:
 *   1. the student's client and server exchange three messages;
 *   2. the server answers several senders, each at its own address, and
 *      keeps serving (100 messages in a row);
 *   3. the client sends each message as one datagram with exactly its text,
 *      waits for the acknowledgment before the next one, and prints the
 *      reply it received (a reply the grader makes up, so the client cannot
 *      print one of its own).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "udp.h"

static const char *client_bin, *server_bin;

/* ------------------------------------------------------------------------ */
/* Running the student's programs                                            */
/* ------------------------------------------------------------------------ */

/* Starts the student's server on port 0 and returns the port it prints. */
static int start_server(struct hw_proc *p)
{
    char *argv[] = {(char *)server_bin, "0", NULL};
    hw_run_program(p, argv);
    return hw_wait_port(p, "server");
}

/* ------------------------------------------------------------------------ */
/* The grader's own sockets                                                  */
/* ------------------------------------------------------------------------ */

/* Waits up to ms for a datagram on sd; stores it NUL-terminated, without
 * trailing NULs (a sender may count the terminator).  Returns its length or
 * -1 on timeout. */
static int recv_text(int sd, struct sockaddr_in *from, char *buf, int cap,
                     int ms)
{
    int n = UDP_ReadTimeout(sd, from, buf, cap - 1, ms);
    if (n < 0)
        return -1;
    while (n > 0 && buf[n - 1] == '\0')
        n--;
    buf[n] = '\0';
    return n;
}

/* Sends text from sd to the server on port and checks the reply. */
static void ask(int sd, int port, const char *text)
{
    struct sockaddr_in server;
    if (UDP_FillSockAddr(&server, "127.0.0.1", port) < 0)
        hw_fail("UDP_FillSockAddr: %s", strerror(errno));
    if (UDP_Write(sd, &server, (char *)text, (int)strlen(text)) < 0)
        hw_fail("UDP_Write: %s", strerror(errno));
    char reply[1200], want[1100], shown[400];
    snprintf(want, sizeof(want), "ack %s", text);
    if (recv_text(sd, NULL, reply, sizeof(reply), 2000) < 0)
        hw_fail("no reply to \"%s\" within 2 s", text);
    if (strcmp(reply, want) != 0) {
        hw_printable(shown, sizeof(shown), reply, strlen(reply));
        hw_fail("the reply to \"%s\" was \"%s\", not \"%s\"", text, shown,
                want);
    }
}

/* ------------------------------------------------------------------------ */
/* Checks                                                                    */
/* ------------------------------------------------------------------------ */

/* 1: the pair as a student runs it. */
static void check_pair(void)
{
    struct hw_proc server, client;
    int port = start_server(&server);
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    char *argv[] = {(char *)client_bin, "127.0.0.1", portstr, "hello",
                    "a second message", "3",         NULL};
    hw_run_program(&client, argv);
    const char *want[] = {"client: ack hello", "client: ack a second message",
                          "client: ack 3"};
    hw_expect_output(&client, "client", want, 3, 5000);
    hw_reap(&server, 0, NULL, NULL);
}

/* 2: the server replies to each sender at its own address. */
static void check_server(void)
{
    struct hw_proc server;
    int port = start_server(&server);
    int a = UDP_Open(0), b = UDP_Open(0);
    if (a < 0 || b < 0)
        hw_fail("UDP_Open: %s", strerror(errno));
    ask(a, port, "from A, 1");
    ask(b, port, "from B, 1");
    ask(a, port, "from A, 2");
    for (int i = 0; i < 100; i++) {
        char text[64];
        snprintf(text, sizeof(text), "%s number %d", i % 2 ? "B" : "A", i);
        ask(i % 2 ? b : a, port, text);
    }
    char longer[1001];
    memset(longer, 'x', 1000);
    longer[1000] = '\0';
    ask(b, port, longer);
    hw_detail("two senders, 104 messages");
    hw_reap(&server, 0, NULL, NULL);
}

/* 3: the client, against a server the grader plays. */
static void check_client(void)
{
    int sd = UDP_Open(0);
    if (sd < 0)
        hw_fail("UDP_Open: %s", strerror(errno));
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", UDP_Port(sd));
    const char *msgs[] = {"one", "and two"};
    char *argv[] = {(char *)client_bin, "127.0.0.1",     portstr,
                    (char *)msgs[0],    (char *)msgs[1], NULL};
    struct hw_proc client;
    hw_run_program(&client, argv);

    char want[2][128];
    const char *wantp[2];
    for (int i = 0; i < 2; i++) {
        struct sockaddr_in from;
        char got[1200], shown[400];
        if (recv_text(sd, &from, got, sizeof(got), 3000) < 0)
            hw_fail("message %d (\"%s\") did not arrive within 3 s", i + 1,
                    msgs[i]);
        if (strcmp(got, msgs[i]) != 0) {
            hw_printable(shown, sizeof(shown), got, strlen(got));
            hw_fail("message %d arrived as \"%s\", not \"%s\"", i + 1, shown,
                    msgs[i]);
        }
        /* Hold the acknowledgment back: nothing else may come meanwhile. */
        if (recv_text(sd, NULL, got, sizeof(got), 300) >= 0)
            hw_fail("the client sent another datagram before message %d "
                    "was acknowledged",
                    i + 1);
        /* A reply of our own making: the client must print what came. */
        char reply[64];
        snprintf(reply, sizeof(reply), "ack %s %u", msgs[i],
                 hw_rand((uint32_t)getpid(), (uint32_t)i, 100000));
        if (UDP_Write(sd, &from, reply, (int)strlen(reply)) < 0)
            hw_fail("UDP_Write: %s", strerror(errno));
        snprintf(want[i], sizeof(want[i]), "client: %s", reply);
        wantp[i] = want[i];
    }
    hw_expect_output(&client, "client", wantp, 2, 3000);
    hw_detail("waited for each acknowledgment, printed the replies");
}

int main(int argc, char *argv[])
{
    if (argc != 3) {
        fprintf(stderr, "usage: grade CLIENT SERVER\n");
        return 2;
    }
    client_bin = argv[1];
    server_bin = argv[2];
    unsetenv("UDP_FAULTS"); /* question 1 assumes a perfect network */
    hw_begin("q1: a UDP client and server");
    hw_check("the client and the server exchange three messages", 10,
             check_pair);
    hw_check("the server acknowledges every sender at its own address", 10,
             check_server);
    hw_check("the client sends each message, waits, prints the reply", 10,
             check_client);
    return hw_end();
}
