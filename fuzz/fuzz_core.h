/*
 * fuzz_core.h - the input format of the rmsg core fuzz target, shared by
 * the target (fuzz_core.c) and the seed generator (seeds.c).
 *
 * An input is a configuration byte followed by operations.  Two cores, A
 * and B, exchange messages over two channels (A to B and B to A) that the
 * input drives; three other addresses (the attackers) inject datagrams of
 * their own.
 *
 * Both cores validate addresses (RETRY and tokens, the default of a core)
 * until a restart says otherwise.
 *
 *   input  = config { op }
 *   config = bits 0-1 datagram_max (110, 200, 1400, 4000)
 *            bits 2-3 window (16, 32, 128, 1024)
 *            bit  4   A accepts messages of at most 3000 bytes
 *            bit  5   A holds at most 2 peers (else 8)
 *            bit  6   tracing on (lines are formatted and dropped)
 *            bit  7   A's receive memory is 64 KiB in all
 *   op     = one byte: kind in the low 4 bits, argument in the high 4,
 *            then the bytes the kind takes.
 *
 * | kind         | arg bits               | then                          |
 * |--------------|------------------------|-------------------------------|
 * | OP_SEND      | 0: B sends (else A)    | size byte: 8 + b, or for b    |
 * |              | 1: 50 ms deadline      | >= 64 8 + (b - 63)^2 bytes    |
 * | OP_PUMP      | 0: as head and payload | both cores' output to the     |
 * |              | (output_parts)         | channels                      |
 * | OP_DELIVER   | 0: channel B to A      | action byte: 0-3 deliver, 4   |
 * |              |                        | drop, 5 deliver a copy, 6 to  |
 * |              |                        | the back, 7 flip bits (then a |
 * |              |                        | position byte and a mask byte)|
 * | OP_FLUSH     |                        | delivers both channels whole  |
 * | OP_TIME      | 3: 64 times longer     | b: now += (b * b + 1) * 20 us |
 * | OP_RECV      |                        | takes messages and events     |
 * | OP_INJECT    | 0: into B (else A)     | u16 length, then the datagram |
 * |              | 1-2: source 0-2 an     |                               |
 * |              | attacker, 3 the peer   |                               |
 * |              | 3: fix the CRC-32C     |                               |
 * | OP_MUTATE    | as OP_INJECT; the      | index byte (which datagram),  |
 * |              | datagram is a copy of  | count byte (0-3 edits), then  |
 * |              | one in the channel into| per edit a position byte and  |
 * |              | that core, edited, CRC | a value byte                  |
 * |              | fixed                  |                               |
 * | OP_RESTART   | 0: B (else A)          |                               |
 * |              | 1: the new core does   |                               |
 * |              | not validate addresses |                               |
 * | OP_ACK_NOW   |                        |                               |
 * | OP_STATS     |                        |                               |
 * | 11-15        | (as OP_DELIVER of both channels' first datagram)       |
 *
 * Multi-byte values are big-endian.  An input that ends in the middle of
 * an operation ends there.  After the last operation the channels carry
 * everything faithfully for a while, so that what the input set going
 * finishes.
 */
#ifndef RMSG_FUZZ_CORE_H
#define RMSG_FUZZ_CORE_H

enum fuzz_core_op {
    OP_SEND = 0,
    OP_PUMP = 1,
    OP_DELIVER = 2,
    OP_FLUSH = 3,
    OP_TIME = 4,
    OP_RECV = 5,
    OP_INJECT = 6,
    OP_MUTATE = 7,
    OP_RESTART = 8,
    OP_ACK_NOW = 9,
    OP_STATS = 10,
};

#define FUZZ_OP(kind, arg) ((unsigned char)((kind) | (arg) << 4))

#define ARG_B 1          /* OP_SEND, OP_DELIVER, OP_INJECT, OP_RESTART */
#define ARG_SHORT 2      /* OP_SEND: a 50 ms deadline */
#define ARG_FROM(s) ((s) << 1) /* OP_INJECT, OP_MUTATE: source 0-3 */
#define ARG_PEER ARG_FROM(3)
#define ARG_FIXCRC 8     /* OP_INJECT */
#define ARG_LONG 8       /* OP_TIME */
#define ARG_PARTS 1      /* OP_PUMP */
#define ARG_NOVALIDATE 2 /* OP_RESTART */

#endif
