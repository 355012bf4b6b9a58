/*
 * rpcgen.c - the stub generator: an interface file in, a header, client
 * stubs and a server skeleton for the rpc layer out.
 *
 *   rpcgen [-o DIR] FILE.x     writes DIR/FILE.h, DIR/FILE_clnt.c and
 *                              DIR/FILE_svc.c (DIR: the current one)
 *
 * The textbook's RPC system has two halves, a run-time library and a stub
 * generator; rpc.c is the first and this is the second.  The interface
 * language, its grammar and what the generated code does are described in
 * README.md ("The stub generator") and at the top of every generated
 * header.  The pieces (lexer, parser, checker, emitters) are in
 * tools/rpcgen/.
 *
 * Errors in the interface are reported as "FILE:LINE:COLUMN: message" and
 * the exit status is 1; nothing is written then, and the outputs are
 * written to temporary names and renamed only once all three are
 * complete, so a failed run never leaves a half-written file behind for
 * make to take as up to date.  Exit status 2: bad usage.
 */
#include "rpcgen/rpcgen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUT (16u << 20) /* an interface file larger is refused */

/* The library's headers: an output named like one would hide it. */
static const char *const library_headers[] = {"rpc", "rpc_marshal", "rmsg",
                                              "udp", "udp_faults",  NULL};

static int usage(FILE *f)
{
    fputs("usage: rpcgen [-o DIR] FILE.x\n"
          "  writes DIR/FILE.h, DIR/FILE_clnt.c (client stubs) and\n"
          "  DIR/FILE_svc.c (server skeleton); DIR defaults to '.'\n",
          f);
    return f == stdout ? 0 : 2;
}

/* Reads the whole file into a malloc'd buffer; NULL after a message. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "rpcgen: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MAX_INPUT + 1);
    size_t n = buf ? fread(buf, 1, MAX_INPUT + 1, f) : 0;
    int bad = buf == NULL || ferror(f) || n > MAX_INPUT;
    if (bad)
        fprintf(stderr, "rpcgen: cannot read %s: %s\n", path,
                buf == NULL     ? "out of memory"
                : n > MAX_INPUT ? "larger than 16 MiB"
                                : strerror(errno));
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* The outputs' base name: the file's name without directory and ".x". */
static char *base_of(struct arena *a, const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    size_t n = strlen(name);
    if (n > 2 && strcmp(name + n - 2, ".x") == 0)
        n -= 2;
    return arena_strndup(a, name, n);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */
/* ------------------------------------------------------------------------ */

struct file_out {
    const char *path, *tmp;
    const struct text *text;
};

static int write_one(const struct file_out *f)
{
    FILE *fp = fopen(f->tmp, "w");
    if (fp == NULL) {
        fprintf(stderr, "rpcgen: cannot create %s: %s\n", f->tmp,
                strerror(errno));
        return -1;
    }
    size_t n = fwrite(f->text->s, 1, f->text->len, fp);
    int err = n != f->text->len || ferror(fp);
    if (fclose(fp) != 0 || err) {
        fprintf(stderr, "rpcgen: cannot write %s: %s\n", f->tmp,
                strerror(errno));
        return -1;
    }
    return 0;
}

/* Writes every file under a temporary name, then renames them all. */
static int write_outputs(struct file_out *files, int n)
{
    int ok = 1;
    for (int i = 0; i < n && ok; i++)
        ok = write_one(&files[i]) == 0;
    for (int i = 0; i < n && ok; i++) {
        if (rename(files[i].tmp, files[i].path) != 0) {
            fprintf(stderr, "rpcgen: cannot rename %s to %s: %s\n",
                    files[i].tmp, files[i].path, strerror(errno));
            ok = 0;
        }
    }
    if (!ok)
        for (int i = 0; i < n; i++)
            remove(files[i].tmp);
    return ok ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Main                                                                      */
/* ------------------------------------------------------------------------ */

/* Reads, checks and generates; 0 when the outputs were written. */
static int generate(struct arena *a, const char *path, const char *dir)
{
    const char *base = base_of(a, path);
    for (int i = 0; library_headers[i] != NULL; i++) {
        if (base[0] == '\0' || strcmp(base, library_headers[i]) == 0) {
            fprintf(stderr,
                    "rpcgen: %s: output %s.h would hide the "
                    "library's header\n",
                    path, base);
            return 1;
        }
    }
    size_t len;
    char *src = read_file(path, &len);
    if (src == NULL)
        return 1;
    struct diag dg = {.file = path};
    struct interface ifc;
    struct output out = {{0}, {0}, {0}};
    int rc = 1;
    if (parse_interface(src, len, &dg, a, &ifc) == 0 &&
        check_interface(&ifc, &dg, a) == 0) {
        const char *slash = strrchr(path, '/');
        emit_interface(&ifc, base, slash ? slash + 1 : path, a, &out);
        const char *b = arena_printf(a, "%s/%s", dir, base);
        struct file_out files[] = {
            {arena_printf(a, "%s.h", b), arena_printf(a, "%s.h.tmp", b),
             &out.header},
            {arena_printf(a, "%s_clnt.c", b),
             arena_printf(a, "%s_clnt.c.tmp", b), &out.client},
            {arena_printf(a, "%s_svc.c", b), arena_printf(a, "%s_svc.c.tmp", b),
             &out.server}};
        rc = write_outputs(files, 3) == 0 ? 0 : 1;
    }
    text_free(&out.header);
    text_free(&out.client);
    text_free(&out.server);
    free(src);
    return rc;
}

int main(int argc, char **argv)
{
    const char *dir = ".", *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return usage(stdout);
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (argv[i][0] == '-' || path != NULL)
            return usage(stderr);
        else
            path = argv[i];
    }
    if (path == NULL)
        return usage(stderr);
    struct arena a = {0};
    int rc = generate(&a, path, dir);
    arena_free(&a);
    return rc;
}
