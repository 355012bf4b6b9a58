/*
 * util.c - the generator's arena, growing text and error messages.
 *
 * The arena is a list of blocks, each at least 64 KB; a request larger
 * than a block gets a block of its own.  Nothing is freed before the end
 * of the run, which is what a compiler's tree needs.
 */
#include "rpcgen.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_BYTES (64u * 1024)

struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[]; /* cap bytes */
};

/* Ends the program: there is no sensible way on without memory, and no
 * output has been written yet. */
static void out_of_memory(void)
{
    fputs("rpcgen: out of memory\n", stderr);
    exit(1);
}

/* ------------------------------------------------------------------------ */
/* Arena                                                                     */
/* ------------------------------------------------------------------------ */

void *arena_alloc(struct arena *a, size_t n)
{
    size_t align = sizeof(max_align_t);
    n = (n + align - 1) / align * align;
    struct arena_block *b = a->blocks;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > BLOCK_BYTES ? n : BLOCK_BYTES;
        b = malloc(sizeof(*b) + cap);
        if (b == NULL)
            out_of_memory();
        b->used = 0;
        b->cap = cap;
        b->next = a->blocks;
        a->blocks = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        out_of_memory();
    char *p = arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void arena_free(struct arena *a)
{
    while (a->blocks != NULL) {
        struct arena_block *b = a->blocks;
        a->blocks = b->next;
        free(b);
    }
}

/* ------------------------------------------------------------------------ */
/* Text                                                                      */
/* ------------------------------------------------------------------------ */

/* Makes room for n more bytes and the NUL after them. */
static void text_reserve(struct text *t, size_t n)
{
    if (t->cap - t->len > n)
        return;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap - t->len <= n)
        cap *= 2;
    char *s = realloc(t->s, cap);
    if (s == NULL)
        out_of_memory();
    t->s = s;
    t->cap = cap;
}

void text_printf(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        out_of_memory();
    text_reserve(t, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

void text_free(struct text *t)
{
    free(t->s);
    *t = (struct text){0};
}

/* ------------------------------------------------------------------------ */
/* Diagnostics                                                               */
/* ------------------------------------------------------------------------ */

void diag_error(struct diag *dg, struct pos at, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d:%d: ", dg->file, at.line, at.col);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    dg->errors++;
}
