/*
 * drive.h - transfers through the student's library, for the graders of
 * questions 3 to 6.
 *
 * A receiver process and one or more sender processes each open an
 * endpoint of the student's comm.h (over injected faults when asked).
 * Every sender sends a stream of test messages whose sizes and contents
 * both sides can compute; the receiver checks each message it gets against
 * the next one expected from that stream, so a message lost, delivered
 * twice, delivered out of order or damaged is named as such.  After the
 * last message the receiver keeps calling comm_recv (a sender whose
 * acknowledgment was lost needs it again), and anything delivered then is
 * a duplicate.
 *
 * drive.c is compiled with the question's own comm.h and HW_Q set to the
 * question's number: comm_set_window exists from question 5, and
 * comm_send_async and comm_wait_all from question 6.
 */
#ifndef HW_DRIVE_H
#define HW_DRIVE_H

#include <stddef.h>
#include <stdint.h>

#include "harness.h"

/* ------------------------------------------------------------------------ */
/* Streams of test messages                                                  */
/* ------------------------------------------------------------------------ */

/* What one sender sends, in order.  The first nfixed messages have the
 * sizes in fixed[]; the others a size drawn from [min, max].  With
 * several senders, each stream's tag (0, 1, ...) is the first byte of all
 * its messages, so sizes are then at least 1. */
struct hw_stream {
    uint32_t seed;
    int count;
    size_t min, max;
    const size_t *fixed;
    int nfixed;
    int tag; /* -1: a single untagged stream */
};

/* The size of message i. */
size_t hw_stream_len(const struct hw_stream *s, int i);

/* Message i, malloc'd (the caller frees it); its size in *len. */
unsigned char *hw_stream_msg(const struct hw_stream *s, int i, size_t *len);

/* The total bytes of the stream. */
size_t hw_stream_bytes(const struct hw_stream *s);

/* ------------------------------------------------------------------------ */
/* Receiver and senders                                                      */
/* ------------------------------------------------------------------------ */

struct hw_rx_plan {
    const char *faults; /* UDP_FAULTS for the receiver, NULL: none */
    int port;           /* 0: any free port */
    const struct hw_stream *streams;
    int nstreams; /* > 1: told apart by their tags */
};

/* Starts the receiver and returns the port its endpoint got. */
int hw_receiver_start(struct hw_proc *p, const struct hw_rx_plan *plan);

enum hw_mode {
    HW_BLOCKING, /* comm_send each message */
    HW_ASYNC     /* comm_send_async each, then comm_wait_all (question 6) */
};

struct hw_tx_plan {
    const char *faults; /* UDP_FAULTS for the sender, NULL: none */
    int port;           /* the receiver's */
    const struct hw_stream *stream;
    enum hw_mode mode;
    int window; /* > 0: comm_set_window first (questions 5 and 6) */
};

/* Starts a sender.  It reports "sent SECONDS" (from its first send to the
 * return of its last, or of comm_wait_all) and exits at once. */
void hw_sender_start(struct hw_proc *p, const struct hw_tx_plan *plan);

/* Runs a whole transfer: the receiver, then the senders; waits at most
 * limit_ms for every message to arrive and every sender to finish, then
 * 300 ms more in which nothing more may be delivered.  Fails the check
 * with what went wrong.  Returns the slowest sender's time in seconds. */
double hw_transfer(const struct hw_rx_plan *rx, const struct hw_tx_plan *tx,
                   int ntx, int limit_ms);

/* The parts of hw_transfer, for checks that do more in between: waits at
 * most limit_ms until the receiver has everything and each of the ntx
 * senders (started by the caller) has reported; returns the slowest
 * sender's time. */
double hw_transfer_wait(struct hw_proc *rx, const struct hw_rx_plan *plan,
                        struct hw_proc *tx, int ntx, int limit_ms);

/* Fails the check if the receiver delivers anything more within ms. */
void hw_receiver_quiet(struct hw_proc *rx, int ms);

#endif /* HW_DRIVE_H */
