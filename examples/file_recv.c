/*
 * file_recv.c - receives one file sent by file_send, writes it to disk,
 * reads it back from the disk and compares its checksum with the sender's.
 *
 * Usage: file_recv [-x] port output_file
 *   port  0 picks a free port and prints "listening on port N"
 *   -x    simulate a bug between the network and the disk: flip one bit
 *         of the first chunk after rmsg has delivered it, checked and
 *         intact.  No per-datagram checksum can see this; the end-to-end
 *         comparison does, and both programs then report the mismatch.
 *
 * See file_send.c for the conversation and the end-to-end argument.
 * Exit status: 0 when the copy on disk matches the sender's checksum.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rmsg.h"
#include "rpc_marshal.h"

#define IDLE_MS 30000 /* give up when the sender goes quiet this long */

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}
#define FNV_START 0xcbf29ce484222325ULL

/* What we know about the transfer in progress. */
struct transfer {
    FILE *out;
    uint64_t size, written, sender_sum;
    int damage; /* -x: still to flip a bit */
    int ended;
};

/* Reads the file back from disk (not from our buffers: the point is to
 * check what the disk holds) and returns its checksum and length. */
static uint64_t read_back(const char *path, uint64_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t buf[65536];
    uint64_t h = FNV_START;
    size_t n;
    *len = 0;
    if (f == NULL)
        return 0;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        h = fnv1a(h, buf, n);
        *len += n;
    }
    fclose(f);
    return h;
}

/* Handles one message of the conversation.  Returns 0, or -1 when the
 * message makes no sense here. */
static int on_message(struct transfer *t, uint8_t *msg, size_t len)
{
    struct rpc_dec d;
    uint8_t type = len ? msg[0] : 0;
    char name[256];
    rpc_dec_init(&d, msg + 1, len ? len - 1 : 0);
    if (type == 'H' && t->written == 0) {
        rpc_get_u64(&d, &t->size);
        rpc_get_string_buf(&d, name, sizeof(name));
        if (rpc_dec_end(&d) != 0)
            return -1;
        printf("receiving %s: %llu bytes\n", name, (unsigned long long)t->size);
        return 0;
    }
    if (type == 'D') {
        if (t->damage && len > 1) { /* the "bug": after every check */
            msg[1 + (len - 1) / 2] ^= 0x10;
            t->damage = 0;
        }
        if (fwrite(msg + 1, 1, len - 1, t->out) != len - 1)
            return -1;
        t->written += len - 1;
        return 0;
    }
    if (type == 'E') {
        rpc_get_u64(&d, &t->sender_sum);
        t->ended = 1;
        return rpc_dec_end(&d) == 0 ? 0 : -1;
    }
    return -1;
}

/* Receives until the 'E' message from the peer that sent the first one. */
static int receive_file(struct rmsg_endpoint *ep, struct transfer *t,
                        struct udp_addr *peer)
{
    int first = 1;
    while (!t->ended) {
        struct udp_addr from;
        void *msg;
        size_t len;
        int rc = rmsg_recv(ep, &from, &msg, &len, first ? -1 : IDLE_MS);
        if (rc < 0)
            return rc;
        if (first)
            *peer = from;
        /* Another client's messages are not part of this file. */
        if (!first && (from.len != peer->len ||
                       memcmp(&from.ss, &peer->ss, from.len) != 0)) {
            free(msg);
            continue;
        }
        first = 0;
        rc = on_message(t, msg, len);
        free(msg);
        if (rc < 0)
            return -EPROTO;
    }
    return 0;
}

int main(int argc, char *argv[])
{
    int damage = argc > 1 && strcmp(argv[1], "-x") == 0;
    if (argc - damage < 3) {
        fprintf(stderr, "usage: file_recv [-x] port output_file\n");
        return 2;
    }
    const char *path = argv[2 + damage];
    struct transfer t = {.damage = damage};
    struct rmsg_endpoint *ep;
    int rc = rmsg_open(atoi(argv[1 + damage]), NULL, &ep);
    if (rc < 0 || (t.out = fopen(path, "wb")) == NULL) {
        fprintf(stderr, "file_recv: cannot start: %s\n",
                rc < 0 ? strerror(-rc) : path);
        return 1;
    }
    printf("listening on port %d\n", rmsg_port(ep));
    fflush(stdout);
    struct udp_addr peer;
    rc = receive_file(ep, &t, &peer);
    /* Make sure the bytes are on the disk before reading them back. */
    if (fflush(t.out) != 0 || fsync(fileno(t.out)) != 0)
        rc = rc ? rc : -EIO;
    fclose(t.out);
    if (rc < 0) {
        fprintf(stderr, "file_recv: transfer failed: %s\n", strerror(-rc));
        rmsg_close(ep);
        return 1;
    }
    uint64_t disk_len;
    uint64_t disk_sum = read_back(path, &disk_len);
    int same = disk_sum == t.sender_sum && disk_len == t.size;
    printf("wrote %llu bytes to %s; sender's checksum %016llx, read back "
           "%016llx: %s\n",
           (unsigned long long)disk_len, path, (unsigned long long)t.sender_sum,
           (unsigned long long)disk_sum,
           same ? "checksum matches" : "CHECKSUM MISMATCH");
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    rpc_put_u8(&e, 'R');
    rpc_put_u64(&e, disk_len);
    rpc_put_u64(&e, disk_sum);
    rpc_put_bool(&e, same);
    rc = e.err ? e.err : rmsg_send(ep, &peer, e.buf, e.len, 10000);
    if (rc < 0)
        fprintf(stderr, "file_recv: report not acknowledged: %s\n",
                strerror(-rc));
    rpc_enc_free(&e);
    rmsg_close(ep);
    return same ? 0 : 1;
}
