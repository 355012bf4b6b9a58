/*
 * parse.c - builds the interface tree from tokens, by recursive descent.
 *
 * One function per rule of the grammar in README.md, each looking at the
 * current token only.  The first syntax error is reported and parsing
 * stops: what follows a syntax error is rarely worth a message of its own.
 * Names are not looked up here (check.c does that), so a struct may be
 * named before it is defined and the checker says so precisely.
 */
#include "rpcgen.h"

#include <string.h>

struct parser {
    struct lexer lx;
    struct token tok;  /* the current token */
    struct token prev; /* the token before it */
    struct diag *dg;
    struct arena *a;
};

/* ------------------------------------------------------------------------ */
/* Tokens                                                                    */
/* ------------------------------------------------------------------------ */

static int next(struct parser *p)
{
    p->prev = p->tok;
    return lex_next(&p->lx, &p->tok);
}

static bool at_punct(const struct parser *p, char c)
{
    return p->tok.kind == TK_PUNCT && p->tok.text[0] == c;
}

static bool at_word(const struct parser *p, const char *w)
{
    return p->tok.kind == TK_NAME && p->tok.len == strlen(w) &&
           memcmp(p->tok.text, w, p->tok.len) == 0;
}

/* The token as a message names it: 'text', or "end of file". */
static const char *describe(struct parser *p, const struct token *t)
{
    if (t->kind == TK_EOF)
        return "end of file";
    return arena_printf(p->a, "'%.*s'", (int)t->len, t->text);
}

/* Reports "expected WHAT, found TOKEN" at the current token; returns -1. */
static int expected(struct parser *p, const char *what)
{
    diag_error(p->dg, p->tok.at, "expected %s, found %s", what,
               describe(p, &p->tok));
    return -1;
}

/* Consumes the punctuation c.  A missing ';' is reported just after the
 * token it should follow, where the writer forgot it. */
static int expect(struct parser *p, char c)
{
    if (at_punct(p, c))
        return next(p);
    if (c == ';') {
        diag_error(p->dg, p->prev.end, "expected ';' after %s",
                   describe(p, &p->prev));
        return -1;
    }
    return expected(p, arena_printf(p->a, "'%c'", c));
}

/* Consumes a name into *name and *at. */
static int expect_name(struct parser *p, const char **name, struct pos *at)
{
    if (p->tok.kind != TK_NAME)
        return expected(p, "a name");
    *name = arena_strndup(p->a, p->tok.text, p->tok.len);
    *at = p->tok.at;
    return next(p);
}

static int expect_number(struct parser *p, struct num *n)
{
    if (p->tok.kind != TK_NUMBER)
        return expected(p, "a number");
    *n = (struct num){.value = p->tok.value,
                      .overflow = p->tok.overflow,
                      .text = arena_strndup(p->a, p->tok.text, p->tok.len),
                      .at = p->tok.at};
    return next(p);
}

/* ------------------------------------------------------------------------ */
/* Types and declarations                                                    */
/* ------------------------------------------------------------------------ */

/* type = builtin | ( "string" | "bytes" ) [ "<" [ number ] ">" ] | name */
static int parse_type(struct parser *p, struct type *t)
{
    if (p->tok.kind != TK_NAME)
        return expected(p, "a type");
    *t = (struct type){.at = p->tok.at};
    const char *name = arena_strndup(p->a, p->tok.text, p->tok.len);
    if (!base_by_name(name, &t->base)) {
        t->base = T_STRUCT;
        t->name = name;
    }
    if (next(p) != 0)
        return -1;
    if ((t->base != T_STRING && t->base != T_BYTES) || !at_punct(p, '<'))
        return 0;
    t->bound.at = p->tok.at;
    if (next(p) != 0)
        return -1;
    if (!at_punct(p, '>') && expect_number(p, &t->bound) != 0)
        return -1;
    return expect(p, '>');
}

/* array = "[" number "]" | "<" [ number ] ">" */
static int parse_array(struct parser *p, struct decl *d)
{
    if (at_punct(p, '[')) {
        d->dim = D_FIXED;
        if (next(p) != 0 || expect_number(p, &d->size) != 0)
            return -1;
        return expect(p, ']');
    }
    if (at_punct(p, '<')) {
        d->dim = D_VAR;
        d->size.at = p->tok.at;
        if (next(p) != 0)
            return -1;
        if (!at_punct(p, '>') && expect_number(p, &d->size) != 0)
            return -1;
        return expect(p, '>');
    }
    return 0;
}

/* decl = type name [ array ] */
static struct decl *parse_decl(struct parser *p)
{
    struct decl *d = arena_alloc(p->a, sizeof(*d));
    if (parse_type(p, &d->type) != 0 || expect_name(p, &d->name, &d->at) != 0 ||
        parse_array(p, d) != 0)
        return NULL;
    return d;
}

/* ------------------------------------------------------------------------ */
/* Structs                                                                   */
/* ------------------------------------------------------------------------ */

/* struct = "struct" name "{" field { field } "}" ";"
 * field  = decl ";" */
static int parse_struct(struct parser *p, struct structdef *s)
{
    if (next(p) != 0 || expect_name(p, &s->name, &s->at) != 0 ||
        expect(p, '{') != 0)
        return -1;
    if (at_punct(p, '}')) {
        diag_error(p->dg, s->at, "struct '%s' has no fields", s->name);
        return -1;
    }
    struct decl **tail = &s->fields;
    while (!at_punct(p, '}')) {
        struct decl *d = parse_decl(p);
        if (d == NULL || expect(p, ';') != 0)
            return -1;
        *tail = d;
        tail = &d->next;
    }
    if (next(p) != 0)
        return -1;
    return expect(p, ';');
}

/* ------------------------------------------------------------------------ */
/* The service                                                               */
/* ------------------------------------------------------------------------ */

/* params = "void" | decl { "," decl }   (or nothing) */
static int parse_params(struct parser *p, struct proc *pr)
{
    if (at_word(p, "void"))
        return next(p);
    if (at_punct(p, ')'))
        return 0;
    struct decl **tail = &pr->params;
    for (;;) {
        struct decl *d = parse_decl(p);
        if (d == NULL)
            return -1;
        *tail = d;
        tail = &d->next;
        if (!at_punct(p, ','))
            return 0; /* the caller expects the ')' */
        if (next(p) != 0)
            return -1;
    }
}

/* proc = ( type | "void" ) name "(" [ params ] ")" "=" number ";" */
static struct proc *parse_proc(struct parser *p)
{
    struct proc *pr = arena_alloc(p->a, sizeof(*pr));
    if (at_word(p, "void")) {
        pr->result = (struct type){.base = T_VOID, .at = p->tok.at};
        if (next(p) != 0)
            return NULL;
    } else if (parse_type(p, &pr->result) != 0) {
        return NULL;
    }
    if (expect_name(p, &pr->name, &pr->at) != 0 || expect(p, '(') != 0 ||
        parse_params(p, pr) != 0 || expect(p, ')') != 0 ||
        expect(p, '=') != 0 || expect_number(p, &pr->number) != 0 ||
        expect(p, ';') != 0)
        return NULL;
    return pr;
}

/* service = "service" name "=" number "version" number
 *           "{" proc { proc } "}" ";" */
static int parse_service(struct parser *p, struct service *sv)
{
    if (next(p) != 0 || expect_name(p, &sv->name, &sv->at) != 0 ||
        expect(p, '=') != 0 || expect_number(p, &sv->number) != 0)
        return -1;
    if (!at_word(p, "version"))
        return expected(p, "'version'");
    if (next(p) != 0 || expect_number(p, &sv->version) != 0 ||
        expect(p, '{') != 0)
        return -1;
    if (at_punct(p, '}')) {
        diag_error(p->dg, sv->at, "service '%s' has no procedures", sv->name);
        return -1;
    }
    struct proc **tail = &sv->procs;
    while (!at_punct(p, '}')) {
        struct proc *pr = parse_proc(p);
        if (pr == NULL)
            return -1;
        *tail = pr;
        tail = &pr->next;
    }
    if (next(p) != 0)
        return -1;
    return expect(p, ';');
}

/* interface = { struct } service */
int parse_interface(const char *src, size_t len, struct diag *dg,
                    struct arena *a, struct interface *ifc)
{
    struct parser p = {.dg = dg, .a = a};
    *ifc = (struct interface){0};
    lex_init(&p.lx, src, len, dg);
    if (next(&p) != 0)
        return -1;
    struct structdef **tail = &ifc->structs;
    while (at_word(&p, "struct")) {
        struct structdef *s = arena_alloc(a, sizeof(*s));
        if (parse_struct(&p, s) != 0)
            return -1;
        s->index = ifc->nstructs++;
        *tail = s;
        tail = &s->next;
    }
    if (!at_word(&p, "service"))
        return expected(&p, "'struct' or 'service'");
    if (parse_service(&p, &ifc->svc) != 0)
        return -1;
    if (p.tok.kind != TK_EOF)
        return expected(&p, "end of file after the service");
    return 0;
}
