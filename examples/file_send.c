/*
 * file_send.c - sends a file of any size over rmsg, then asks the receiver
 * to prove, end to end, that the file on its disk is the file we read.
 *
 * Usage: file_send host port file [chunk_kb]
 *
 *   build/examples/file_recv 0 copy.bin          # prints: listening on port N
 *   build/examples/file_send 127.0.0.1 N big.bin
 *
 * and over a bad network (both sides, or either):
 *
 *   UDP_FAULTS=drop=0.1,dup=0.05,reorder=0.1,corrupt=0.01 build/examples/...
 *
 * The end-to-end argument.  rmsg checks every datagram with a CRC-32C and
 * sends again whatever is lost, so the bytes that leave the network are the
 * bytes that entered it.  That is not the same as "the copy is right": a
 * byte can still be damaged after the last check, in a buffer, by a bug in
 * the receiving program, on the way to its disk.  Only the two ends see
 * the whole path, so this program computes a checksum of the file as it
 * reads it, the receiver computes one of its copy as it reads it back from
 * its own disk, and the two are compared.  `file_recv -x` damages one byte
 * after rmsg has delivered it, a fault every per-datagram check misses and
 * the end-to-end check catches.
 *
 * The conversation, each line one rmsg message (rpc_marshal.h encodings):
 *   'H' u64 size, string name     header
 *   'D' bytes...                  a chunk of the file (rmsg keeps order)
 *   'E' u64 checksum              end, with the sender's checksum
 * and back from the receiver:
 *   'R' u64 bytes, u64 checksum of the copy read back from disk, bool same
 *
 * The chunks are sent with rmsg_send_async, so many are in flight at once
 * (pipelining); rmsg_flush then waits until every one is acknowledged.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rmsg.h"
#include "rpc_marshal.h"

#define CHUNK_KB_DEFAULT 256
#define TIMEOUT_MS       60000

/* FNV-1a, 64 bits: a simple checksum, continued chunk by chunk.  (A real
 * tool would use a cryptographic hash such as SHA-256; the idea is the
 * same.) */
static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}
#define FNV_START 0xcbf29ce484222325ULL

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sends one encoded message and checks the encoder did not fail. */
static int send_enc(struct rmsg_endpoint *ep, const struct udp_addr *to,
                    struct rpc_enc *e)
{
    int rc = e->err ? e->err : rmsg_send(ep, to, e->buf, e->len, TIMEOUT_MS);
    rpc_enc_free(e);
    return rc;
}

/* Queues one chunk without waiting for it to arrive.  While rmsg's queue
 * for the peer is full, rmsg_send_async itself lets the endpoint take in
 * acknowledgments until they make room: back pressure, up to TIMEOUT_MS. */
static int send_chunk(struct rmsg_endpoint *ep, const struct udp_addr *to,
                      const uint8_t *buf, size_t len)
{
    int64_t id = rmsg_send_async(ep, to, buf, len, TIMEOUT_MS);
    return id < 0 ? (int)id : 0;
}

/* Reads the file chunk by chunk and sends it; the checksum of everything
 * read goes to *sum. */
static int send_file(struct rmsg_endpoint *ep, const struct udp_addr *to,
                     FILE *f, size_t chunk, uint64_t *sum)
{
    uint8_t *buf = malloc(chunk + 1);
    if (buf == NULL)
        return -ENOMEM;
    buf[0] = 'D';
    int rc = 0;
    size_t n;
    *sum = FNV_START;
    while (rc == 0 && (n = fread(buf + 1, 1, chunk, f)) > 0) {
        *sum = fnv1a(*sum, buf + 1, n);
        rc = send_chunk(ep, to, buf, n + 1);
    }
    if (rc == 0 && ferror(f))
        rc = -EIO;
    free(buf);
    if (rc == 0) /* every chunk acknowledged, or the number that failed */
        rc = rmsg_flush(ep, TIMEOUT_MS) == 0 ? 0 : -ETIMEDOUT;
    return rc;
}

/* Waits for the receiver's report and says whether it confirms the copy. */
static int check_report(struct rmsg_endpoint *ep, uint64_t size, uint64_t sum)
{
    void *msg;
    size_t len;
    int rc = rmsg_recv(ep, NULL, &msg, &len, TIMEOUT_MS);
    if (rc < 0) {
        fprintf(stderr, "file_send: no report: %s\n", strerror(-rc));
        return 1;
    }
    struct rpc_dec d;
    uint8_t type = 0;
    uint64_t got_size = 0, got_sum = 0;
    bool same = false;
    rpc_dec_init(&d, msg, len);
    rpc_get_u8(&d, &type);
    rpc_get_u64(&d, &got_size);
    rpc_get_u64(&d, &got_sum);
    rpc_get_bool(&d, &same);
    rc = rpc_dec_end(&d);
    free(msg);
    if (rc != 0 || type != 'R') {
        fprintf(stderr, "file_send: malformed report\n");
        return 1;
    }
    int ok = same && got_size == size && got_sum == sum;
    printf("receiver: wrote %llu bytes, read back checksum %016llx: %s\n",
           (unsigned long long)got_size, (unsigned long long)got_sum,
           ok ? "checksum matches" : "CHECKSUM MISMATCH");
    return ok ? 0 : 1;
}

static void print_stats(struct rmsg_endpoint *ep, uint64_t size, double t)
{
    struct rmsg_stats st;
    rmsg_stats(ep, NULL, &st);
    printf("sent %llu bytes in %.2f s: goodput %.1f MB/s\n",
           (unsigned long long)size, t, t > 0 ? size / t / 1e6 : 0.0);
    printf("datagrams sent %llu, retransmissions %llu, timeouts %llu, "
           "duplicates received %llu, corrupt received %llu\n",
           (unsigned long long)st.datagrams_sent,
           (unsigned long long)st.retransmissions,
           (unsigned long long)st.timeouts, (unsigned long long)st.duplicates,
           (unsigned long long)st.corrupt);
}

int main(int argc, char *argv[])
{
    if (argc < 4) {
        fprintf(stderr, "usage: file_send host port file [chunk_kb]\n");
        return 2;
    }
    size_t chunk = (size_t)(argc > 4 ? atoi(argv[4]) : CHUNK_KB_DEFAULT) << 10;
    FILE *f = fopen(argv[3], "rb");
    struct udp_addr to;
    struct rmsg_endpoint *ep = NULL;
    if (f == NULL || chunk == 0 || fseek(f, 0, SEEK_END) != 0) {
        fprintf(stderr, "file_send: cannot read %s\n", argv[3]);
        return 1;
    }
    uint64_t size = (uint64_t)ftell(f);
    rewind(f);
    if (UDP_Resolve(argv[1], atoi(argv[2]), AF_UNSPEC, &to) != 0 ||
        rmsg_open(0, NULL, &ep) < 0) {
        fprintf(stderr, "file_send: cannot reach %s\n", argv[1]);
        return 1;
    }
    const char *name =
        strrchr(argv[3], '/') ? strrchr(argv[3], '/') + 1 : argv[3];
    double t0 = seconds();
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    rpc_put_u8(&e, 'H');
    rpc_put_u64(&e, size);
    rpc_put_string(&e, name);
    uint64_t sum = 0;
    int rc = send_enc(ep, &to, &e);
    if (rc == 0)
        rc = send_file(ep, &to, f, chunk, &sum);
    rpc_enc_init(&e, 0);
    rpc_put_u8(&e, 'E');
    rpc_put_u64(&e, sum);
    if (rc == 0)
        rc = send_enc(ep, &to, &e);
    rpc_enc_free(&e);
    fclose(f);
    if (rc < 0) {
        fprintf(stderr, "file_send: transfer failed: %s\n", strerror(-rc));
        rmsg_close(ep);
        return 1;
    }
    double t = seconds() - t0;
    printf("sent %s: %llu bytes, checksum %016llx\n", name,
           (unsigned long long)size, (unsigned long long)sum);
    int bad = check_report(ep, size, sum);
    print_stats(ep, size, t);
    /* Like TCP's TIME_WAIT: stay a moment, so that if our acknowledgment of
     * the report was lost, the receiver's next copy of it still gets one. */
    rmsg_poll(ep, 300);
    rmsg_close(ep);
    return bad;
}
