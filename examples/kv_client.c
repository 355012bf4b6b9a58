/*
 * kv_client.c - talks to kv_server: each command is one remote call.
 *
 * Usage: kv_client host port [command...]
 *   put KEY VALUE   store VALUE under KEY
 *   get KEY         print the value, or "not found"
 *   del KEY         remove KEY
 *   size            how many keys, how many bytes
 * With no command on the command line it reads commands from standard
 * input, one per line, so you can type them:
 *
 *   $ build/examples/kv_client 127.0.0.1 10002
 *   put colour blue
 *   put colour: stored (new key)
 *   get colour
 *   get colour: blue
 *
 * Every call is marshalled with rpc_marshal.h; the comment at the top of
 * kv_server.c lists the procedures and their arguments.  Exit status 1 if
 * any call failed (not "not found": that is an answer).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"

#define KV_PUT          1
#define KV_GET          2
#define KV_DELETE       3
#define KV_SIZE         4
#define CALL_TIMEOUT_MS 10000

/* Makes one call with the encoded arguments and decodes the reply into
 * *d (the caller frees *reply).  Returns rpc_call's outcome. */
static int call(struct rpc_client *c, uint32_t proc, struct rpc_enc *args,
                void **reply, struct rpc_dec *d)
{
    size_t len = 0;
    int rc = args->err;
    if (rc == 0)
        rc = rpc_call(c, proc, args->buf, args->len, reply, &len,
                      CALL_TIMEOUT_MS);
    rpc_enc_free(args);
    rpc_dec_init(d, rc == 0 ? *reply : NULL, rc == 0 ? len : 0);
    return rc;
}

/* Runs one command (argv[0] is its name) and returns how many words it
 * used, or -1 when a call failed or the command is unknown. */
static int command(struct rpc_client *c, int argc, char **argv)
{
    struct rpc_enc e;
    struct rpc_dec d;
    void *reply = NULL;
    bool yes = false;
    const void *value;
    size_t n;
    int rc = -EINVAL, used = 0;
    rpc_enc_init(&e, 0);
    if (strcmp(argv[0], "put") == 0 && argc >= 3) {
        rpc_put_string(&e, argv[1]);
        rpc_put_bytes(&e, argv[2], strlen(argv[2]));
        if ((rc = call(c, KV_PUT, &e, &reply, &d)) == 0 &&
            rpc_get_bool(&d, &yes) == 0 && rpc_dec_end(&d) == 0)
            printf("put %s: stored (%s)\n", argv[1],
                   yes ? "replaced the old value" : "new key");
        used = 3;
    } else if (strcmp(argv[0], "get") == 0 && argc >= 2) {
        rpc_put_string(&e, argv[1]);
        if ((rc = call(c, KV_GET, &e, &reply, &d)) == 0 &&
            rpc_get_bool(&d, &yes) == 0 && !yes && rpc_dec_end(&d) == 0)
            printf("get %s: not found\n", argv[1]);
        else if (rc == 0 && yes && rpc_get_bytes(&d, &value, &n) == 0 &&
                 rpc_dec_end(&d) == 0)
            printf("get %s: %.*s\n", argv[1], (int)n, (const char *)value);
        used = 2;
    } else if (strcmp(argv[0], "del") == 0 && argc >= 2) {
        rpc_put_string(&e, argv[1]);
        if ((rc = call(c, KV_DELETE, &e, &reply, &d)) == 0 &&
            rpc_get_bool(&d, &yes) == 0 && rpc_dec_end(&d) == 0)
            printf("del %s: %s\n", argv[1], yes ? "deleted" : "not found");
        used = 2;
    } else if (strcmp(argv[0], "size") == 0) {
        uint32_t keys = 0;
        uint64_t bytes = 0;
        if ((rc = call(c, KV_SIZE, &e, &reply, &d)) == 0 &&
            rpc_get_u32(&d, &keys) == 0 && rpc_get_u64(&d, &bytes) == 0 &&
            rpc_dec_end(&d) == 0)
            printf("size: %u keys, %llu bytes\n", keys,
                   (unsigned long long)bytes);
        used = 1;
    }
    rpc_enc_free(&e);
    free(reply);
    if (used == 0) {
        fprintf(stderr,
                "kv_client: unknown command or missing argument: "
                "%s\n",
                argv[0]);
        return -1;
    }
    if (rc != 0 || d.err != 0 || rpc_dec_left(&d) != 0) {
        fprintf(stderr, "kv_client: %s: %s\n", argv[0],
                rc ? rpc_strerror(rc) : "malformed reply");
        return -1;
    }
    return used;
}

/* Reads commands from stdin: splits each line into at most three words
 * (the value of a put is the rest of the line). */
static int interactive(struct rpc_client *c)
{
    char line[4096];
    int failed = 0;
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\n")] = '\0';
        char *w[3] = {NULL, NULL, NULL};
        int n = 0;
        char *p = line;
        while (n < 3 && *(p += strspn(p, " \t"))) {
            w[n++] = p;
            p += n == 3 ? strlen(p) : strcspn(p, " \t");
            if (*p)
                *p++ = '\0';
        }
        if (n > 0 && command(c, n, w) < 0)
            failed = 1;
        fflush(stdout);
    }
    return failed;
}

int main(int argc, char *argv[])
{
    if (argc < 3) {
        fprintf(stderr, "usage: kv_client host port [put KEY VALUE | get KEY "
                        "| del KEY | size]...\n");
        return 2;
    }
    struct rpc_client *c;
    int rc = rpc_client_open(argv[1], atoi(argv[2]), NULL, &c);
    if (rc < 0) {
        fprintf(stderr, "kv_client: %s\n", rpc_strerror(rc));
        return 1;
    }
    int failed = 0;
    if (argc == 3)
        failed = interactive(c);
    for (int i = 3; i < argc;) {
        int used = command(c, argc - i, argv + i);
        if (used < 0) {
            failed = 1;
            used = 1; /* skip the word and go on */
        }
        i += used;
    }
    rpc_client_close(c);
    return failed;
}
