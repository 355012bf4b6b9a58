/*
 * fuzz_rpcgen.c - libFuzzer target for the stub generator's front end
 * (tools/rpcgen/: lexer, parser, checker) and, for interfaces that pass,
 * its emitters.
 *
 * The input is an interface file.  Properties:
 *   - parse_interface returns 0, or -1 after reporting exactly one error
 *     (it stops at the first syntax error);
 *   - check_interface returns the number of errors it reported;
 *   - an interface that passes both gives three non-empty texts whose
 *     lengths are those of their strings;
 *   - nothing is read out of bounds, nothing leaks (the arena and the
 *     texts are freed), no undefined behaviour.
 *
 * The generator reports errors on stderr; the target points stderr at
 * /dev/null while it runs the passes (glibc lets a program assign stderr),
 * which leaves the sanitizers' reports, written to descriptor 2, intact.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tools/rpcgen/rpcgen.h"


static FILE *quiet;

static void check_text(const struct text *t)
{
    CHECK(t->s != NULL && t->len > 0 && strlen(t->s) == t->len);
}

static void run(const char *src, size_t len)
{
    struct arena a = {0};
    struct diag dg = {.file = "fuzz.x"};
    struct interface ifc;
    memset(&ifc, 0, sizeof(ifc));
    int r = parse_interface(src, len, &dg, &a, &ifc);
    CHECK(r == 0 || r == -1);
    CHECK(r == 0 ? dg.errors == 0 : dg.errors == 1);
    if (r == 0) {
        int errors = check_interface(&ifc, &dg, &a);
        CHECK(errors >= 0 && errors == dg.errors);
        if (errors == 0) {
            struct output out = {{0}, {0}, {0}};
            emit_interface(&ifc, "fuzz", "fuzz.x", &a, &out);
            check_text(&out.header);
            check_text(&out.client);
            check_text(&out.server);
            text_free(&out.header);
            text_free(&out.client);
            text_free(&out.server);
        }
    }
    arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (quiet == NULL && (quiet = fopen("/dev/null", "w")) == NULL)
        return 0;
    /* An exact-size copy: a read past the end is caught. */
    char *src = malloc(size ? size : 1);
    CHECK(src != NULL);
    memcpy(src, data, size);
    FILE *saved = stderr;
    stderr = quiet;
    run(src, size);
    stderr = saved;
    free(src);
    return 0;
}
