/*
 * roundtrip.c - generated client stubs call a generated server over
 * loopback, and every value comes back as it went (tests/rpcgen/ref.x).
 *
 * Three servers run in threads on ephemeral ports:
 *   ref    the generated skeleton, with the ref_*_impl functions below
 *   bare   an rpc server with nothing registered: a different service
 *   fake   one rpc handler at REF_SERVICE that records the request and
 *          answers with whatever reply the test sets, to feed the
 *          generated client malformed replies
 * The tests check every type at its extremes (empty strings and arrays,
 * the largest integers, NaN and -0.0, arrays at their bounds, structs
 * inside structs), the bounds on both sides, the procedures' own codes,
 * the versioning outcomes, and malformed requests and replies at every cut
 * point.  No sleeps: each call waits for its reply.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "ref.h"
#include "skew.h"
#include "v2.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static char *dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

static void *dup_memory(const void *p, size_t n)
{
    if (n == 0)
        return NULL;
    void *q = malloc(n);
    if (q != NULL)
        memcpy(q, p, n);
    return q;
}

/* A string of n copies of c, malloc'd. */
static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    if (s != NULL) {
        memset(s, c, n);
        s[n] = '\0';
    }
    return s;
}

static uint64_t bits_of(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof(b));
    return b;
}

/* The shape the generator documents: FNV-1a of the types written out. */
static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* ------------------------------------------------------------------------ */
/* The server's procedures (ref_*_impl)                                      */
/* ------------------------------------------------------------------------ */

/* What the implementations saw, read by the tests. */
struct world {
    pthread_mutex_t lock;
    uint64_t counter;  /* add increments it, reset clears it */
    unsigned runs[17]; /* per procedure number */
    char names[64];    /* centre's names, joined with ',' */
};

static struct world world = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void ran(int proc)
{
    pthread_mutex_lock(&world.lock);
    world.runs[proc]++;
    pthread_mutex_unlock(&world.lock);
}

static unsigned runs(int proc)
{
    pthread_mutex_lock(&world.lock);
    unsigned n = world.runs[proc];
    pthread_mutex_unlock(&world.lock);
    return n;
}

int ref_add_impl(void *ctx, int32_t a, int32_t b, int32_t *result)
{
    CU_ASSERT_PTR_EQUAL(ctx, &world);
    ran(1);
    pthread_mutex_lock(&world.lock);
    world.counter++;
    pthread_mutex_unlock(&world.lock);
    *result = (int32_t)(uint32_t)((uint32_t)a + (uint32_t)b);
    return 0;
}

int ref_mirror_impl(void *ctx, int8_t i8, int16_t i16, int32_t i32, int64_t i64,
                    uint8_t u8, uint16_t u16, uint32_t u32, uint64_t u64,
                    bool flag, double real, struct ref_scalars *result)
{
    (void)ctx;
    ran(2);
    *result =
        (struct ref_scalars){i8, i16, i32, i64, u8, u16, u32, u64, flag, real};
    return 0;
}

int ref_greet_impl(void *ctx, const char *name, char **result)
{
    (void)ctx;
    ran(3);
    size_t n = strlen(name) + 8;
    if ((*result = malloc(n)) == NULL)
        return ENOMEM;
    snprintf(*result, n, "hello, %s", name);
    return 0;
}

int ref_reverse_impl(void *ctx, const uint8_t *data, size_t data_len,
                     struct ref_bytes *result)
{
    (void)ctx;
    ran(4);
    CU_ASSERT(data_len == 0 || data != NULL);
    result->len = data_len;
    result->val = data_len ? malloc(data_len) : NULL;
    if (data_len > 0 && result->val == NULL)
        return ENOMEM;
    for (size_t i = 0; i < data_len; i++)
        result->val[i] = data[data_len - 1 - i];
    return 0;
}

/* A deep copy: the result must not point into the arguments. */
static void copy_blob(struct ref_blob *to, const struct ref_blob *from)
{
    to->name = dup_string(from->name);
    to->data.len = from->data.len;
    to->data.val = dup_memory(from->data.val, from->data.len);
    to->text = dup_string(from->text);
}

static void copy_figure(struct ref_figure *to, const struct ref_figure *from)
{
    *to = *from; /* the numbers and fixed arrays; pointers replaced below */
    to->label = dup_string(from->label);
    to->path.val =
        dup_memory(from->path.val, from->path.len * sizeof(*from->path.val));
    to->blobs.val = from->blobs.len
                        ? calloc(from->blobs.len, sizeof(*to->blobs.val))
                        : NULL;
    for (size_t i = 0; i < from->blobs.len; i++)
        copy_blob(&to->blobs.val[i], &from->blobs.val[i]);
    to->stamps.val =
        dup_memory(from->stamps.val, from->stamps.len * sizeof(int64_t));
    for (size_t i = 0; i < 2; i++)
        to->tags[i] = dup_string(from->tags[i]);
    to->keys.val =
        from->keys.len ? calloc(from->keys.len, sizeof(*to->keys.val)) : NULL;
    for (size_t i = 0; i < from->keys.len; i++) {
        to->keys.val[i].len = from->keys.val[i].len;
        to->keys.val[i].val =
            dup_memory(from->keys.val[i].val, from->keys.val[i].len);
    }
    to->flags.val = dup_memory(from->flags.val, from->flags.len);
}

int ref_echo_impl(void *ctx, const struct ref_figure *f,
                  struct ref_figure *result)
{
    (void)ctx;
    ran(5);
    copy_figure(result, f);
    return 0;
}

int ref_sum_impl(void *ctx, const int64_t *v, size_t v_len, const int32_t w[3],
                 int64_t *result)
{
    (void)ctx;
    ran(6);
    uint64_t s = 0;
    for (size_t i = 0; i < v_len; i++)
        s += (uint64_t)v[i];
    for (size_t i = 0; i < 3; i++)
        s += (uint64_t)(int64_t)w[i];
    *result = (int64_t)s;
    return 0;
}

int ref_reset_impl(void *ctx)
{
    (void)ctx;
    ran(7);
    pthread_mutex_lock(&world.lock);
    world.counter = 0;
    pthread_mutex_unlock(&world.lock);
    return 0;
}

int ref_centre_impl(void *ctx, const struct ref_point corners[4],
                    char *const *names, size_t names_len,
                    struct ref_point *result)
{
    (void)ctx;
    ran(8);
    int64_t x = 0, y = 0;
    for (int i = 0; i < 4; i++) {
        x += corners[i].x;
        y += corners[i].y;
    }
    result->x = (int32_t)(x / 4);
    result->y = (int32_t)(y / 4);
    pthread_mutex_lock(&world.lock);
    world.names[0] = '\0';
    for (size_t i = 0; i < names_len; i++) {
        if (i > 0)
            strcat(world.names, ",");
        strcat(world.names, names[i]);
    }
    pthread_mutex_unlock(&world.lock);
    return 0;
}

/* code 0: result 123; below 1000: that code; from 1000: -(code - 1000),
 * which the skeleton sends as the positive code - 1000. */
int ref_fail_impl(void *ctx, uint32_t code, uint32_t *result)
{
    (void)ctx;
    ran(9);
    *result = 123;
    return code < 1000 ? (int)code : -(int)(code - 1000);
}

/* n 'x's: over the result's bound of 4 when n > 4. */
int ref_overflow_impl(void *ctx, uint32_t n, char **result)
{
    (void)ctx;
    ran(10);
    *result = repeat('x', n);
    return 0;
}

/* Returns no string at all: a broken implementation. */
int ref_broken_impl(void *ctx, char **result)
{
    (void)ctx;
    (void)result;
    ran(11);
    return 0;
}

int ref_count_impl(void *ctx, uint64_t *result)
{
    (void)ctx;
    ran(16);
    pthread_mutex_lock(&world.lock);
    *result = world.counter;
    pthread_mutex_unlock(&world.lock);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The fake server: records requests, sends the reply it is told to          */
/* ------------------------------------------------------------------------ */

struct fake {
    pthread_mutex_t lock;
    uint8_t reply[1024];
    size_t reply_len;
    int status;
    uint8_t *req; /* the last request, malloc'd */
    size_t req_len;
};

static struct fake fake = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int fake_handler(void *arg, const void *req, size_t len,
                        struct rpc_enc *reply)
{
    struct fake *f = arg;
    pthread_mutex_lock(&f->lock);
    free(f->req);
    f->req = dup_memory(req, len);
    f->req_len = len;
    rpc_put_raw(reply, f->reply, f->reply_len);
    int status = f->status;
    pthread_mutex_unlock(&f->lock);
    return status;
}

static void fake_set(int status, const void *reply, size_t len)
{
    pthread_mutex_lock(&fake.lock);
    fake.status = status;
    memcpy(fake.reply, reply, len);
    fake.reply_len = len;
    pthread_mutex_unlock(&fake.lock);
}

/* The last request the fake saw, malloc'd (the caller frees). */
static uint8_t *fake_request(size_t *len)
{
    pthread_mutex_lock(&fake.lock);
    uint8_t *r = fake.req;
    *len = fake.req_len;
    fake.req = NULL;
    fake.req_len = 0;
    pthread_mutex_unlock(&fake.lock);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Servers and clients                                                       */
/* ------------------------------------------------------------------------ */

struct server {
    struct rpc_server *s;
    pthread_t thread;
    struct rpc_client *c; /* a client of it */
};

static struct server ref_srv, bare_srv, fake_srv;

static void *serve(void *arg)
{
    rpc_serve(arg, 0);
    return NULL;
}

static int server_start(struct server *sv, int kind)
{
    if (rpc_server_open(0, NULL, &sv->s) != 0)
        return -1;
    int rc = 0;
    if (kind == 0)
        rc = ref_register(sv->s, &world, 0);
    else if (kind == 2)
        rc = rpc_register(sv->s, REF_SERVICE, fake_handler, &fake, 0);
    if (rc != 0 || pthread_create(&sv->thread, NULL, serve, sv->s) != 0)
        return -1;
    return rpc_client_open("127.0.0.1", rpc_server_port(sv->s), NULL, &sv->c);
}

static void server_stop(struct server *sv)
{
    rpc_client_close(sv->c);
    rpc_stop(sv->s);
    pthread_join(sv->thread, NULL);
    rpc_server_close(sv->s);
}

static int suite_init(void)
{
    if (server_start(&ref_srv, 0) != 0 || server_start(&bare_srv, 1) != 0 ||
        server_start(&fake_srv, 2) != 0)
        return -1;
    return 0;
}

static int suite_clean(void)
{
    server_stop(&ref_srv);
    server_stop(&bare_srv);
    server_stop(&fake_srv);
    free(fake.req);
    return 0;
}

/* A raw call to the ref server; returns rpc_call's outcome and the reply
 * in reply[0..*len) (at most cap bytes are kept). */
static int raw_call(const void *req, size_t len, uint8_t *reply, size_t cap,
                    size_t *reply_len)
{
    void *r = NULL;
    size_t n = 0;
    int rc = rpc_call(ref_srv.c, REF_SERVICE, req, len, &r, &n, 10000);
    memcpy(reply, r, n < cap ? n : cap);
    *reply_len = n;
    free(r);
    return rc;
}

/* The call header of a ref procedure, written into h[0..12). */
static void header(uint8_t *h, uint32_t version, uint32_t proc, uint32_t shape)
{
    uint32_t v[3] = {version, proc, shape};
    for (int i = 0; i < 12; i++)
        h[i] = (uint8_t)(v[i / 4] >> (24 - 8 * (i % 4)));
}

/* ------------------------------------------------------------------------ */
/* Numbers and strings                                                       */
/* ------------------------------------------------------------------------ */

static void test_add(void)
{
    struct rpc_client *c = ref_srv.c;
    int32_t r = 0;
    CU_ASSERT_EQUAL(ref_add(c, 2, 3, &r), 0);
    CU_ASSERT_EQUAL(r, 5);
    CU_ASSERT_EQUAL(ref_add(c, INT32_MAX, INT32_MIN, &r), 0);
    CU_ASSERT_EQUAL(r, -1);
    CU_ASSERT_EQUAL(ref_add(c, INT32_MIN, 0, &r), 0);
    CU_ASSERT_EQUAL(r, INT32_MIN);
    CU_ASSERT_EQUAL(ref_add(c, -7, 0, NULL), 0); /* result discarded */
}

/* mirror sends every number type and gets them back in a struct. */
static void check_mirror(int8_t i8, int16_t i16, int32_t i32, int64_t i64,
                         uint8_t u8, uint16_t u16, uint32_t u32, uint64_t u64,
                         bool flag, double real)
{
    struct ref_scalars s;
    memset(&s, 0xa5, sizeof(s));
    CU_ASSERT_EQUAL_FATAL(ref_mirror(ref_srv.c, i8, i16, i32, i64, u8, u16, u32,
                                     u64, flag, real, &s),
                          0);
    CU_ASSERT_EQUAL(s.i8, i8);
    CU_ASSERT_EQUAL(s.i16, i16);
    CU_ASSERT_EQUAL(s.i32, i32);
    CU_ASSERT_EQUAL(s.i64, i64);
    CU_ASSERT_EQUAL(s.u8, u8);
    CU_ASSERT_EQUAL(s.u16, u16);
    CU_ASSERT_EQUAL(s.u32, u32);
    CU_ASSERT_EQUAL(s.u64, u64);
    CU_ASSERT_EQUAL(s.flag, flag);
    CU_ASSERT_EQUAL(bits_of(s.real), bits_of(real)); /* NaN, -0.0 too */
}

static void test_numbers(void)
{
    check_mirror(INT8_MIN, INT16_MIN, INT32_MIN, INT64_MIN, 0, 0, 0, 0, false,
                 -0.0);
    check_mirror(INT8_MAX, INT16_MAX, INT32_MAX, INT64_MAX, UINT8_MAX,
                 UINT16_MAX, UINT32_MAX, UINT64_MAX, true, DBL_MAX);
    check_mirror(-1, -1, -1, -1, 1, 1, 1, 1, true, DBL_MIN);
    check_mirror(0, 0, 0, 0, 0x80, 0x8000, 0x80000000u, 0x8000000000000000u,
                 false, 4.9406564584124654e-324);
    check_mirror(1, 2, 3, 4, 5, 6, 7, 8, true, INFINITY);
    check_mirror(0, 0, 0, 0, 0, 0, 0, 0, false, -INFINITY);
    check_mirror(0, 0, 0, 0, 0, 0, 0, 0, false, NAN);
    CU_ASSERT_EQUAL(runs(2), 7);
}

static void test_strings(void)
{
    struct rpc_client *c = ref_srv.c;
    char *r = NULL;
    CU_ASSERT_EQUAL_FATAL(ref_greet(c, "", &r), 0); /* empty string */
    CU_ASSERT_STRING_EQUAL(r, "hello, ");
    free(r);
    char *at_bound = repeat('n', 16);
    CU_ASSERT_EQUAL_FATAL(ref_greet(c, at_bound, &r), 0);
    CU_ASSERT_STRING_EQUAL(r, "hello, nnnnnnnnnnnnnnnn");
    free(r);
    CU_ASSERT_EQUAL_FATAL(ref_greet(c, "h\xc3\xa9llo", &r), 0); /* UTF-8 */
    CU_ASSERT_STRING_EQUAL(r, "hello, h\xc3\xa9llo");
    free(r);
    unsigned before = runs(3);
    char *over = repeat('n', 17);
    r = (char *)"untouched";
    CU_ASSERT_EQUAL(ref_greet(c, over, &r), -EMSGSIZE); /* not sent */
    CU_ASSERT_EQUAL(ref_greet(c, NULL, &r), -EINVAL);
    CU_ASSERT_STRING_EQUAL(r, "untouched");
    CU_ASSERT_EQUAL(runs(3), before);
    free(at_bound);
    free(over);
}

static void test_bytes(void)
{
    struct rpc_client *c = ref_srv.c;
    struct ref_bytes r = {(uint8_t *)"x", 99};
    CU_ASSERT_EQUAL_FATAL(ref_reverse(c, NULL, 0, &r), 0); /* empty */
    CU_ASSERT_EQUAL(r.len, 0);
    CU_ASSERT_PTR_NULL(r.val);
    uint8_t data[33];
    for (int i = 0; i < 33; i++)
        data[i] = (uint8_t)(i == 0 ? 0 : i == 31 ? 0xff : i);
    CU_ASSERT_EQUAL_FATAL(ref_reverse(c, data, 32, &r), 0); /* at bound */
    CU_ASSERT_EQUAL_FATAL(r.len, 32);
    for (int i = 0; i < 32; i++)
        CU_ASSERT_EQUAL(r.val[i], data[31 - i]);
    free(r.val);
    CU_ASSERT_EQUAL(ref_reverse(c, data, 33, &r), -EMSGSIZE);
    CU_ASSERT_EQUAL(ref_reverse(c, NULL, 1, &r), -EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Arrays and nested structs                                                 */
/* ------------------------------------------------------------------------ */

/* Everything at its extreme: arrays full, strings at their bounds, the
 * default bound of 65536 bytes used up, empty strings and byte arrays
 * inside. */
struct full {
    struct ref_figure f;
    struct ref_point path[8];
    struct ref_blob blobs[3];
    int64_t stamps[3];
    struct ref_bytes keys[2];
    bool flags[5];
    char *label, *text, *tag;
};

static void full_init(struct full *x)
{
    static uint8_t four[4] = {0, 0x7f, 0x80, 0xff};
    memset(x, 0, sizeof(*x));
    x->label = repeat('L', 32);
    x->text = repeat('t', 65536);
    x->tag = repeat('g', 8);
    for (int i = 0; i < 8; i++)
        x->path[i] =
            (struct ref_point){i == 0 ? INT32_MIN : i, i == 7 ? INT32_MAX : -i};
    x->blobs[0] = (struct ref_blob){(char *)"", {NULL, 0}, (char *)""};
    x->blobs[1] =
        (struct ref_blob){(char *)"sixteen-chars-ok", {four, 4}, x->text};
    x->blobs[2] = (struct ref_blob){(char *)"b", {four, 1}, (char *)"t"};
    x->stamps[0] = INT64_MIN;
    x->stamps[1] = 0;
    x->stamps[2] = INT64_MAX;
    x->keys[0] = (struct ref_bytes){NULL, 0};
    x->keys[1] = (struct ref_bytes){four, 4};
    for (int i = 0; i < 5; i++)
        x->flags[i] = i % 2 == 0;
    struct ref_figure *f = &x->f;
    f->label = x->label;
    f->corners[0] = (struct ref_point){INT32_MIN, INT32_MAX};
    f->corners[3] = (struct ref_point){-1, 1};
    f->path.val = x->path;
    f->path.len = 8;
    f->blobs.val = x->blobs;
    f->blobs.len = 3;
    f->s = (struct ref_scalars){INT8_MIN,  INT16_MAX, -1,         INT64_MIN,
                                UINT8_MAX, 0,         UINT32_MAX, UINT64_MAX,
                                true,      -0.0};
    f->stamps.val = x->stamps;
    f->stamps.len = 3;
    f->tags[0] = (char *)"";
    f->tags[1] = x->tag;
    f->keys.val = x->keys;
    f->keys.len = 2;
    f->flags.val = x->flags;
    f->flags.len = 5;
    memcpy(f->digest, four, 4);
}

static void full_free(struct full *x)
{
    free(x->label);
    free(x->text);
    free(x->tag);
}

static void check_bytes(const struct ref_bytes *want,
                        const struct ref_bytes *got)
{
    CU_ASSERT_EQUAL_FATAL(got->len, want->len);
    if (want->len == 0) {
        CU_ASSERT_PTR_NULL(got->val);
    } else {
        CU_ASSERT(memcmp(got->val, want->val, want->len) == 0);
    }
}

static void check_figure(const struct ref_figure *w, const struct ref_figure *g)
{
    CU_ASSERT_STRING_EQUAL(g->label, w->label);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(g->corners[i].x, w->corners[i].x);
        CU_ASSERT_EQUAL(g->corners[i].y, w->corners[i].y);
    }
    CU_ASSERT_EQUAL_FATAL(g->path.len, w->path.len);
    for (size_t i = 0; i < w->path.len; i++) {
        CU_ASSERT_EQUAL(g->path.val[i].x, w->path.val[i].x);
        CU_ASSERT_EQUAL(g->path.val[i].y, w->path.val[i].y);
    }
    CU_ASSERT_EQUAL_FATAL(g->blobs.len, w->blobs.len);
    for (size_t i = 0; i < w->blobs.len; i++) {
        CU_ASSERT_STRING_EQUAL(g->blobs.val[i].name, w->blobs.val[i].name);
        check_bytes(&w->blobs.val[i].data, &g->blobs.val[i].data);
        CU_ASSERT_STRING_EQUAL(g->blobs.val[i].text, w->blobs.val[i].text);
    }
    CU_ASSERT_EQUAL(g->s.i8, w->s.i8);
    CU_ASSERT_EQUAL(g->s.i16, w->s.i16);
    CU_ASSERT_EQUAL(g->s.i32, w->s.i32);
    CU_ASSERT_EQUAL(g->s.i64, w->s.i64);
    CU_ASSERT_EQUAL(g->s.u8, w->s.u8);
    CU_ASSERT_EQUAL(g->s.u16, w->s.u16);
    CU_ASSERT_EQUAL(g->s.u32, w->s.u32);
    CU_ASSERT_EQUAL(g->s.u64, w->s.u64);
    CU_ASSERT_EQUAL(g->s.flag, w->s.flag);
    CU_ASSERT_EQUAL(bits_of(g->s.real), bits_of(w->s.real));
    CU_ASSERT_EQUAL_FATAL(g->stamps.len, w->stamps.len);
    for (size_t i = 0; i < w->stamps.len; i++)
        CU_ASSERT_EQUAL(g->stamps.val[i], w->stamps.val[i]);
    CU_ASSERT_STRING_EQUAL(g->tags[0], w->tags[0]);
    CU_ASSERT_STRING_EQUAL(g->tags[1], w->tags[1]);
    CU_ASSERT_EQUAL_FATAL(g->keys.len, w->keys.len);
    for (size_t i = 0; i < w->keys.len; i++)
        check_bytes(&w->keys.val[i], &g->keys.val[i]);
    CU_ASSERT_EQUAL_FATAL(g->flags.len, w->flags.len);
    for (size_t i = 0; i < w->flags.len; i++)
        CU_ASSERT_EQUAL(g->flags.val[i], w->flags.val[i]);
    CU_ASSERT(memcmp(g->digest, w->digest, 4) == 0);
}

static void test_full_figure(void)
{
    struct full x;
    full_init(&x);
    struct ref_figure got;
    CU_ASSERT_EQUAL_FATAL(ref_echo(ref_srv.c, &x.f, &got), 0);
    check_figure(&x.f, &got);
    ref_figure_free(&got);
    CU_ASSERT_EQUAL(ref_echo(ref_srv.c, &x.f, NULL), 0); /* discarded */
    full_free(&x);
}

/* Empty everything: strings "", arrays of no elements (NULL). */
static void test_empty_figure(void)
{
    struct ref_figure f = {0}, got;
    f.label = (char *)"";
    f.tags[0] = f.tags[1] = (char *)"";
    CU_ASSERT_EQUAL_FATAL(ref_echo(ref_srv.c, &f, &got), 0);
    check_figure(&f, &got);
    CU_ASSERT_PTR_NULL(got.path.val);
    CU_ASSERT_PTR_NULL(got.blobs.val);
    CU_ASSERT_PTR_NULL(got.stamps.val);
    ref_figure_free(&got);
}

/* Each bound of figure broken in turn: refused before anything is sent. */
static void test_figure_bounds(void)
{
    struct full x;
    full_init(&x);
    struct ref_figure f = x.f, got;
    unsigned before = runs(5);
    char *long_label = repeat('L', 33), *long_text = repeat('t', 65537);
    f.label = long_label;
    CU_ASSERT_EQUAL(ref_echo(ref_srv.c, &f, &got), -EMSGSIZE);
    f = x.f;
    f.label = NULL;
    CU_ASSERT_EQUAL(ref_echo(ref_srv.c, &f, &got), -EINVAL);
    f = x.f;
    f.path.len = 9;
    CU_ASSERT_EQUAL(ref_echo(ref_srv.c, &f, &got), -EMSGSIZE);
    f = x.f;
    f.path.val = NULL; /* with a length */
    CU_ASSERT_EQUAL(ref_echo(ref_srv.c, &f, &got), -EINVAL);
    f = x.f;
    x.blobs[2].text = long_text; /* default bound, two levels down */
    CU_ASSERT_EQUAL(ref_echo(ref_srv.c, &f, &got), -EMSGSIZE);
    x.blobs[2].text = (char *)"t";
    x.blobs[2].name = (char *)"seventeen-chars!!";
    CU_ASSERT_EQUAL(ref_echo(ref_srv.c, &f, &got), -EMSGSIZE);
    x.blobs[2].name = (char *)"b";
    x.keys[1].len = 5;
    CU_ASSERT_EQUAL(ref_echo(ref_srv.c, &f, &got), -EMSGSIZE);
    x.keys[1].len = 4;
    f.tags[1] = (char *)"ninechars";
    CU_ASSERT_EQUAL(ref_echo(ref_srv.c, &f, &got), -EMSGSIZE);
    f = x.f;
    f.flags.len = 6;
    CU_ASSERT_EQUAL(ref_echo(ref_srv.c, &f, &got), -EMSGSIZE);
    CU_ASSERT_EQUAL(runs(5), before);
    CU_ASSERT_EQUAL(ref_echo(ref_srv.c, &x.f, &got), 0); /* still fine */
    ref_figure_free(&got);
    free(long_label);
    free(long_text);
    full_free(&x);
}

static void test_arrays(void)
{
    struct rpc_client *c = ref_srv.c;
    int64_t v[101], r = 0;
    int32_t w[3] = {INT32_MIN, INT32_MAX, 1};
    CU_ASSERT_EQUAL(ref_sum(c, NULL, 0, w, &r), 0); /* empty array */
    CU_ASSERT_EQUAL(r, 0);
    for (int i = 0; i < 101; i++)
        v[i] = i;
    CU_ASSERT_EQUAL(ref_sum(c, v, 100, w, &r), 0); /* at its bound */
    CU_ASSERT_EQUAL(r, 4950);
    CU_ASSERT_EQUAL(ref_sum(c, v, 101, w, &r), -EMSGSIZE);
    v[0] = INT64_MAX;
    v[1] = INT64_MIN;
    CU_ASSERT_EQUAL(ref_sum(c, v, 2, w, &r), 0);
    CU_ASSERT_EQUAL(r, -1);

    struct ref_point corners[4] = {{0, 0}, {4, 0}, {4, 8}, {0, 8}}, p;
    char *names[5] = {(char *)"a", (char *)"", (char *)"eightchr", (char *)"d",
                      (char *)"e"};
    CU_ASSERT_EQUAL_FATAL(ref_centre(c, corners, names, 4, &p), 0);
    CU_ASSERT_EQUAL(p.x, 2);
    CU_ASSERT_EQUAL(p.y, 4);
    pthread_mutex_lock(&world.lock);
    CU_ASSERT_STRING_EQUAL(world.names, "a,,eightchr,d");
    pthread_mutex_unlock(&world.lock);
    CU_ASSERT_EQUAL(ref_centre(c, corners, names, 5, &p), -EMSGSIZE);
    names[0] = (char *)"ninechars";
    CU_ASSERT_EQUAL(ref_centre(c, corners, names, 1, &p), -EMSGSIZE);
    CU_ASSERT_EQUAL(ref_centre(c, corners, NULL, 0, &p), 0);
}

/* ------------------------------------------------------------------------ */
/* Outcomes                                                                  */
/* ------------------------------------------------------------------------ */

static void test_void_procedures(void)
{
    struct rpc_client *c = ref_srv.c;
    uint64_t n = 99;
    CU_ASSERT_EQUAL(ref_reset(c), 0);
    CU_ASSERT_EQUAL(ref_count(c, &n), 0);
    CU_ASSERT_EQUAL(n, 0);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(ref_add(c, i, i, NULL), 0);
    CU_ASSERT_EQUAL(ref_count(c, &n), 0);
    CU_ASSERT_EQUAL(n, 3);
}

static void test_own_codes(void)
{
    struct rpc_client *c = ref_srv.c;
    uint32_t r = 0;
    CU_ASSERT_EQUAL(ref_fail(c, 0, &r), 0);
    CU_ASSERT_EQUAL(r, 123);
    r = 99;
    CU_ASSERT_EQUAL(ref_fail(c, 7, &r), 7); /* the code, no result */
    CU_ASSERT_EQUAL(r, 99);
    CU_ASSERT_EQUAL(ref_fail(c, 999, &r), 999);
    CU_ASSERT_EQUAL(ref_fail(c, 1005, &r), 5); /* -5 is sent as 5 */
    CU_ASSERT_EQUAL(r, 99);
}

/* Results the implementation got wrong reach the caller as errors. */
static void test_bad_results(void)
{
    struct rpc_client *c = ref_srv.c;
    char *r = NULL;
    CU_ASSERT_EQUAL_FATAL(ref_overflow(c, 4, &r), 0);
    CU_ASSERT_STRING_EQUAL(r, "xxxx");
    free(r);
    r = (char *)"untouched";
    unsigned before = runs(10);
    CU_ASSERT_EQUAL(ref_overflow(c, 5, &r), -EMSGSIZE); /* it ran */
    CU_ASSERT_EQUAL(runs(10), before + 1);
    CU_ASSERT_EQUAL(ref_broken(c, &r), -EPROTO); /* a NULL string */
    CU_ASSERT_STRING_EQUAL(r, "untouched");
}

/* Clients built from other editions of the interface. */
static void test_versions(void)
{
    int32_t r = 0;
    unsigned mirror_runs = runs(2);
    CU_ASSERT_EQUAL(skew_add(ref_srv.c, 20, 22, &r), 0); /* same types */
    CU_ASSERT_EQUAL(r, 42);
    r = 0;
    CU_ASSERT_EQUAL(skew_mirror(ref_srv.c, 1, &r), -EPROTONOSUPPORT);
    CU_ASSERT_EQUAL(runs(2), mirror_runs); /* refused, not misread */
    CU_ASSERT_EQUAL(r, 0);
    CU_ASSERT_EQUAL(skew_missing(ref_srv.c), -ENOSYS);
    CU_ASSERT_EQUAL(v2_add(ref_srv.c, 1, 2, &r), -EPROTONOSUPPORT);
    CU_ASSERT_EQUAL(r, 0);
    /* A server that does not serve the service at all. */
    CU_ASSERT_EQUAL(ref_add(bare_srv.c, 1, 2, &r), -EPROTONOSUPPORT);
    CU_ASSERT_EQUAL(ref_reset(bare_srv.c), -EPROTONOSUPPORT);
}

/* ------------------------------------------------------------------------ */
/* Malformed requests to the generated server                               */
/* ------------------------------------------------------------------------ */

#define SHAPE_ADD "(int32,int32)int32"
#define SCALARS                                                                \
    "{int8,int16,int32,int64,uint8,uint16,uint32,uint64,bool,"                 \
    "double}"
#define POINT "{int32,int32}"
#define FIGURE                                                                 \
    "{string," POINT "[4]," POINT "<>,{string,bytes,string}<>," SCALARS        \
    ",int64<>,string[2],bytes<>,bool<>,uint8[4]}"

/* The shapes are the hash of the types written out, as documented. */
static void test_shapes(void)
{
    uint8_t req[12], reply[8];
    size_t n;
    header(req, 1, 1, fnv1a(SHAPE_ADD) ^ 1);
    CU_ASSERT_EQUAL(raw_call(req, 12, reply, 8, &n), 0);
    CU_ASSERT_EQUAL(n, 5); /* the shape differs: refused */
    CU_ASSERT_EQUAL(reply[0], 1);
    /* The documented hash is the one the stubs send. */
    fake_set(0, "\0\0\0\0\0", 5);
    int32_t r;
    CU_ASSERT_EQUAL(ref_add(fake_srv.c, 1, 2, &r), 0);
    uint8_t *got = fake_request(&n);
    header(req, 1, 1, fnv1a(SHAPE_ADD));
    CU_ASSERT_EQUAL_FATAL(n, 20);
    CU_ASSERT(memcmp(got, req, 12) == 0);
    free(got);
    struct ref_figure f = {0};
    f.label = f.tags[0] = f.tags[1] = (char *)"";
    fake_set(0, "", 0);
    CU_ASSERT_EQUAL(ref_echo(fake_srv.c, &f, NULL), -EPROTO);
    got = fake_request(&n);
    header(req, 1, 5, fnv1a("(" FIGURE ")" FIGURE));
    CU_ASSERT_FATAL(got != NULL && n > 12);
    CU_ASSERT(memcmp(got, req, 12) == 0);
    free(got);
}

static void test_bad_headers(void)
{
    uint8_t req[32] = {0}, reply[16];
    size_t n;
    CU_ASSERT_EQUAL(raw_call(NULL, 0, reply, 16, &n), 0); /* empty */
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(reply[0], 3);
    header(req, 1, 1, fnv1a(SHAPE_ADD));
    CU_ASSERT_EQUAL(raw_call(req, 11, reply, 16, &n), 0); /* cut header */
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(reply[0], 3);
    header(req, 2, 1, fnv1a(SHAPE_ADD)); /* another version */
    CU_ASSERT_EQUAL(raw_call(req, 20, reply, 16, &n), 0);
    CU_ASSERT_EQUAL_FATAL(n, 5);
    CU_ASSERT(memcmp(reply, "\1\0\0\0\1", 5) == 0); /* + our version */
    header(req, 1, 99, 0);                          /* no such procedure */
    CU_ASSERT_EQUAL(raw_call(req, 12, reply, 16, &n), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(reply[0], 2);
    header(req, 1, 1, fnv1a(SHAPE_ADD)); /* add(1, -2) */
    memcpy(req + 12, "\0\0\0\1\xff\xff\xff\xfe", 8);
    CU_ASSERT_EQUAL(raw_call(req, 20, reply, 16, &n), 0);
    CU_ASSERT_EQUAL_FATAL(n, 5);
    CU_ASSERT(memcmp(reply, "\0\xff\xff\xff\xff", 5) == 0);
    for (size_t len = 12; len <= 21; len++) {
        if (len == 20)
            continue;
        CU_ASSERT_EQUAL(raw_call(req, len, reply, 16, &n), 0);
        CU_ASSERT_EQUAL(n, 1); /* too short or too long */
        CU_ASSERT_EQUAL(reply[0], 3);
    }
}

/* greet's argument over the server's bound, and one with a NUL inside. */
static void test_bad_strings(void)
{
    uint8_t req[40], reply[16];
    size_t n;
    header(req, 1, 3, fnv1a("(string)string"));
    memcpy(req + 12,
           "\0\0\0\x11"
           "seventeen-chars!!",
           21);
    CU_ASSERT_EQUAL(raw_call(req, 33, reply, 16, &n), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(reply[0], 4);
    memcpy(req + 12, "\0\0\0\3a\0b", 7);
    CU_ASSERT_EQUAL(raw_call(req, 19, reply, 16, &n), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(reply[0], 3);
}

/* The request ref_echo sends for a full figure, cut at every byte: each
 * cut is refused as malformed (and nothing reads past the end: the
 * sanitizer build would stop). */
static void test_every_cut(void)
{
    struct full x;
    full_init(&x);
    x.f.blobs.val[1].text = (char *)"short"; /* keep the request small */
    fake_set(0, "", 0);
    CU_ASSERT_EQUAL(ref_echo(fake_srv.c, &x.f, NULL), -EPROTO);
    size_t len, n;
    uint8_t *req = fake_request(&len), reply[16];
    CU_ASSERT_FATAL(req != NULL && len > 100);
    unsigned before = runs(5);
    for (size_t cut = 0; cut < len; cut++) {
        CU_ASSERT_EQUAL(raw_call(req, cut, reply, 16, &n), 0);
        CU_ASSERT_EQUAL(n, 1);
        CU_ASSERT_EQUAL(reply[0], 3);
    }
    CU_ASSERT_EQUAL(runs(5), before);
    /* path claims 9 points and the bytes are there: over the bound */
    size_t at = 12 + 4 + 32 + 4 * 8; /* the header, label, corners */
    CU_ASSERT_EQUAL_FATAL(req[at + 3], 8);
    req[at + 3] = 9;
    CU_ASSERT_EQUAL(raw_call(req, len, reply, 16, &n), 0);
    CU_ASSERT_EQUAL(reply[0], 4);
    req[at] = 0xff; /* and far more than the bytes that remain */
    CU_ASSERT_EQUAL(raw_call(req, len, reply, 16, &n), 0);
    CU_ASSERT_EQUAL(reply[0], 3);
    free(req);
    full_free(&x);
}

/* Random bodies after a valid header: whatever the bytes, the server
 * answers with an outcome (ran, malformed or over a bound). */
static void test_random_requests(void)
{
    uint64_t s = 0x9e3779b97f4a7c15u;
    uint8_t req[300], reply[16];
    size_t n;
    header(req, 1, 5, fnv1a("(" FIGURE ")" FIGURE));
    for (int round = 0; round < 300; round++) {
        size_t len = 12 + (size_t)(round % 288);
        for (size_t i = 12; i < len; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            req[i] = (uint8_t)(round % 3 == 0 ? s % 3 : s);
        }
        CU_ASSERT_EQUAL(raw_call(req, len, reply, 16, &n), 0);
        CU_ASSERT(n >= 1 && (reply[0] == 0 || reply[0] == 3 || reply[0] == 4));
    }
}

/* ------------------------------------------------------------------------ */
/* Malformed replies to the generated client                                 */
/* ------------------------------------------------------------------------ */

static void test_reply_outcomes(void)
{
    struct rpc_client *c = fake_srv.c;
    int32_t r = 77;
    static const struct {
        int status;
        const char *reply;
        size_t len;
        int want;
    } cases[] = {
        {0, "", 0, -EPROTO},             /* no outcome byte */
        {0, "\0\0\0\0", 4, -EPROTO},     /* result cut short */
        {0, "\0\0\0\0\1\0", 6, -EPROTO}, /* a byte too many */
        {0, "\1\0\0\0\2", 5, -EPROTONOSUPPORT},
        {0, "\2", 1, -ENOSYS},
        {0, "\3", 1, -EBADMSG},
        {0, "\4", 1, -EMSGSIZE},
        {0, "\5", 1, -ENOMEM},
        {0, "\6", 1, -EPROTO},
        {0, "\7", 1, -EPROTO},   /* no such outcome */
        {5, "\0", 1, 5},         /* the procedure's code */
        {5, "\0\0", 2, -EPROTO}, /* a code with results */
        {5, "", 0, -EPROTO},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fake_set(cases[i].status, cases[i].reply, cases[i].len);
        CU_ASSERT_EQUAL(ref_add(c, 1, 2, &r), cases[i].want);
        CU_ASSERT_EQUAL(r, 77);
    }
    fake_set(0, "\0\0\0\0\x2a", 5);
    CU_ASSERT_EQUAL(ref_add(c, 1, 2, &r), 0);
    CU_ASSERT_EQUAL(r, 42);
    free(fake_request(&(size_t){0}));
}

/* A figure reply cut at every byte: -EPROTO each time, the result left
 * alone and what was decoded of it freed (the sanitizer build checks). */
static void test_reply_cuts(void)
{
    struct full x;
    full_init(&x);
    x.f.blobs.val[1].text = (char *)"short";
    uint8_t *reply = NULL;
    size_t len = 0;
    {
        /* The reply a real server sends for this figure. */
        void *r = NULL;
        CU_ASSERT_EQUAL(ref_echo(fake_srv.c, &x.f, NULL), -EPROTO);
        uint8_t *req = fake_request(&len);
        CU_ASSERT_FATAL(req != NULL);
        CU_ASSERT_EQUAL(
            rpc_call(ref_srv.c, REF_SERVICE, req, len, &r, &len, 10000), 0);
        reply = r;
        free(req);
    }
    CU_ASSERT_FATAL(reply != NULL && len > 100 && len <= sizeof(fake.reply));
    CU_ASSERT_EQUAL(reply[0], 0);
    struct ref_figure got;
    memset(&got, 0x5a, sizeof(got));
    for (size_t cut = 0; cut < len; cut++) {
        fake_set(0, reply, cut);
        CU_ASSERT_EQUAL(ref_echo(fake_srv.c, &x.f, &got), -EPROTO);
        CU_ASSERT_EQUAL(got.s.u64, 0x5a5a5a5a5a5a5a5au);
    }
    fake_set(0, reply, len);
    CU_ASSERT_EQUAL_FATAL(ref_echo(fake_srv.c, &x.f, &got), 0);
    check_figure(&x.f, &got);
    ref_figure_free(&got);
    free(fake_request(&len));
    free(reply);
    full_free(&x);
}

/* ------------------------------------------------------------------------ */
/* Runner                                                                    */
/* ------------------------------------------------------------------------ */

int main(void)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"add", test_add},
        {"every number type at its extremes", test_numbers},
        {"strings", test_strings},
        {"byte arrays", test_bytes},
        {"a full nested struct", test_full_figure},
        {"an empty nested struct", test_empty_figure},
        {"each bound of the struct", test_figure_bounds},
        {"fixed and variable arrays", test_arrays},
        {"void results and arguments", test_void_procedures},
        {"the procedures' own codes", test_own_codes},
        {"results over their bounds", test_bad_results},
        {"other versions of the interface", test_versions},
        {"shapes are the documented hash", test_shapes},
        {"bad call headers", test_bad_headers},
        {"bad strings in requests", test_bad_strings},
        {"a request cut at every byte", test_every_cut},
        {"random requests", test_random_requests},
        {"replies with every outcome", test_reply_outcomes},
        {"a reply cut at every byte", test_reply_cuts},
    };
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite("rpcgen", suite_init, suite_clean);
    for (size_t i = 0; s && i < sizeof(tests) / sizeof(tests[0]); i++)
        if (CU_add_test(s, tests[i].name, tests[i].fn) == NULL)
            s = NULL;
    if (s == NULL) {
        fprintf(stderr, "roundtrip: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    return failed == 0 && ran == sizeof(tests) / sizeof(tests[0]) ? 0 : 1;
}
