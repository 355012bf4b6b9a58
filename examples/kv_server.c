/*
 * kv_server.c - a small key-value store as an rpc server: state that lives
 * on the server between calls, arguments and results marshalled with
 * rpc_marshal.h.
 *
 * Usage: kv_server [port]   (0: any free port; prints "listening on port N")
 * Then:  kv_client 127.0.0.1 N put colour blue get colour del colour
 *
 * Procedures (every key is a string of at most KEY_MAX bytes, every value
 * a byte array of any size up to the rpc message limit):
 *   1 PUT(string key, bytes value)  -> bool replaced (the key existed)
 *   2 GET(string key)               -> bool found [, bytes value]
 *   3 DELETE(string key)            -> bool deleted (the key existed)
 *   4 SIZE()                        -> u32 keys, u64 bytes of values
 * A handler returns KV_BAD_REQUEST (our own error code, which reaches the
 * caller as rpc_call's return value) for arguments it cannot decode.
 *
 * Why at-most-once matters here: PUT is harmless to repeat, but DELETE is
 * not.  Run twice, the second run finds nothing and answers "not found",
 * and the client would be told its delete failed although it worked.
 * The rpc layer's reply cache answers a repeated request with the first
 * run's reply, so that cannot happen; nothing here has to care.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"

#define KV_PUT         1
#define KV_GET         2
#define KV_DELETE      3
#define KV_SIZE        4
#define KV_BAD_REQUEST 1
#define KEY_MAX        1024
#define BUCKETS        1024 /* a fixed table: chains grow, it never rehashes */

struct item {
    struct item *next;
    char *key;
    void *value;
    size_t len;
};

struct store {
    struct item *bucket[BUCKETS];
    uint32_t keys;
    uint64_t bytes;
};

static struct rpc_server *server; /* for the signal handler */

/* FNV-1a over the key's bytes picks its bucket. */
static struct item **slot(struct store *s, const char *key)
{
    uint32_t h = 2166136261u;
    for (const char *p = key; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    struct item **pp = &s->bucket[h % BUCKETS];
    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    return pp; /* points at the item, or at the NULL ending the chain */
}

static int put(void *arg, const void *req, size_t len, struct rpc_enc *reply)
{
    struct store *s = arg;
    struct rpc_dec d;
    char key[KEY_MAX + 1];
    const void *value;
    size_t n;
    rpc_dec_init(&d, req, len);
    rpc_get_string_buf(&d, key, sizeof(key));
    rpc_get_bytes(&d, &value, &n);
    if (rpc_dec_end(&d) != 0)
        return KV_BAD_REQUEST;
    void *copy = malloc(n ? n : 1);
    if (copy == NULL)
        return KV_BAD_REQUEST;
    memcpy(copy, value, n);
    struct item **pp = slot(s, key), *it = *pp;
    rpc_put_bool(reply, it != NULL);
    if (it == NULL) {
        if ((it = calloc(1, sizeof(*it))) == NULL ||
            (it->key = strdup(key)) == NULL) {
            free(it);
            free(copy);
            return KV_BAD_REQUEST;
        }
        *pp = it;
        s->keys++;
    } else {
        s->bytes -= it->len;
        free(it->value);
    }
    it->value = copy;
    it->len = n;
    s->bytes += n;
    return 0;
}

static int get(void *arg, const void *req, size_t len, struct rpc_enc *reply)
{
    struct rpc_dec d;
    char key[KEY_MAX + 1];
    rpc_dec_init(&d, req, len);
    rpc_get_string_buf(&d, key, sizeof(key));
    if (rpc_dec_end(&d) != 0)
        return KV_BAD_REQUEST;
    struct item *it = *slot(arg, key);
    rpc_put_bool(reply, it != NULL);
    if (it)
        rpc_put_bytes(reply, it->value, it->len);
    return 0;
}

static int delete (void *arg, const void *req, size_t len,
                   struct rpc_enc *reply)
{
    struct store *s = arg;
    struct rpc_dec d;
    char key[KEY_MAX + 1];
    rpc_dec_init(&d, req, len);
    rpc_get_string_buf(&d, key, sizeof(key));
    if (rpc_dec_end(&d) != 0)
        return KV_BAD_REQUEST;
    struct item **pp = slot(s, key), *it = *pp;
    rpc_put_bool(reply, it != NULL);
    if (it) {
        *pp = it->next;
        s->keys--;
        s->bytes -= it->len;
        free(it->key);
        free(it->value);
        free(it);
    }
    return 0;
}

static int size(void *arg, const void *req, size_t len, struct rpc_enc *reply)
{
    struct store *s = arg;
    (void)req;
    if (len != 0)
        return KV_BAD_REQUEST;
    rpc_put_u32(reply, s->keys);
    rpc_put_u64(reply, s->bytes);
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    rpc_stop(server);
}

int main(int argc, char *argv[])
{
    static struct store store; /* zeroed: every bucket empty */
    int rc = rpc_server_open(argc > 1 ? atoi(argv[1]) : 10002, NULL, &server);
    if (rc < 0) {
        fprintf(stderr, "kv_server: %s\n", rpc_strerror(rc));
        return 1;
    }
    rpc_register(server, KV_PUT, put, &store, 0);
    rpc_register(server, KV_GET, get, &store, 0);
    rpc_register(server, KV_DELETE, delete, &store, 0);
    rpc_register(server, KV_SIZE, size, &store, 0);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("listening on port %d\n", rpc_server_port(server));
    fflush(stdout);
    rpc_serve(server, 0); /* one handler at a time: the store needs no lock */
    struct rpc_server_stats st;
    rpc_server_stats(server, &st);
    printf("%u keys; handler runs %llu, duplicates answered from the cache "
           "%llu\n",
           store.keys, (unsigned long long)st.calls,
           (unsigned long long)st.cached_replies);
    rpc_server_close(server);
    return 0;
}
