/*
 * emit.c - C spellings of interface types, the statements that encode,
 * decode and free values, and the helpers, encoders and decoders the
 * generated C files share (emit_header.c, emit_client.c and emit_server.c
 * write the files themselves).
 *
 * Generated encoders and decoders follow one pattern.  rpc_marshal's puts
 * and gets keep their first error (sticky), so a run of them needs no
 * checks; the calls that can fail on their own (a bound broken, memory
 * short, a nested struct) put their error in rc, and each such call runs
 * only while rc is 0 ("if (rc == 0) rc = ...").  The function returns rc,
 * or else the coder's sticky error.
 */
#include "emit.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* What a file needs                                                         */
/* ------------------------------------------------------------------------ */

void need_reset(struct emitter *em)
{
    size_t n = (size_t)em->ifc->nstructs;
    memset(em->need[ENC], 0, n * sizeof(bool));
    memset(em->need[DEC], 0, n * sizeof(bool));
    em->put_string = em->put_bytes = em->put_count = em->get_bytes = false;
}

void need_type(struct emitter *em, const struct type *t, enum dir dir)
{
    if (t->base == T_STRING && dir == ENC)
        em->put_string = true;
    if (t->base == T_BYTES)
        *(dir == ENC ? &em->put_bytes : &em->get_bytes) = true;
    if (t->base != T_STRUCT || em->need[dir][t->st->index])
        return;
    em->need[dir][t->st->index] = true;
    for (const struct decl *f = t->st->fields; f != NULL; f = f->next)
        need_decl(em, f, dir);
}

void need_decl(struct emitter *em, const struct decl *d, enum dir dir)
{
    if (d->dim == D_VAR && dir == ENC)
        em->put_count = true;
    need_type(em, &d->type, dir);
}

/* ------------------------------------------------------------------------ */
/* C spellings                                                               */
/* ------------------------------------------------------------------------ */

/* The C type of one value. */
const char *ctype(const struct emitter *em, const struct type *t)
{
    static const char *const c[] = {
        [T_INT8] = "int8_t",     [T_INT16] = "int16_t",
        [T_INT32] = "int32_t",   [T_INT64] = "int64_t",
        [T_UINT8] = "uint8_t",   [T_UINT16] = "uint16_t",
        [T_UINT32] = "uint32_t", [T_UINT64] = "uint64_t",
        [T_BOOL] = "bool",       [T_DOUBLE] = "double",
        [T_STRING] = "char *"};
    if (t->base == T_BYTES)
        return arena_printf(em->a, "struct %s_bytes", em->svc);
    if (t->base == T_STRUCT)
        return arena_printf(em->a, "struct %s_%s", em->svc, t->st->name);
    return c[t->base];
}

/* "TYPE NAME", or "TYPE *NAME" without the space after a '*'. */
const char *join(struct emitter *em, const char *type, const char *name)
{
    size_t n = strlen(type);
    return arena_printf(em->a, "%s%s%s", type,
                        n > 0 && type[n - 1] == '*' ? "" : " ", name);
}

/* The same type, read-only: "const int32_t", "char *const". */
static const char *constify(struct emitter *em, const char *type)
{
    size_t n = strlen(type);
    if (n > 0 && type[n - 1] == '*')
        return arena_printf(em->a, "%sconst", type);
    return arena_printf(em->a, "const %s", type);
}

/* An initialiser for a zeroed value of the type. */
const char *zero_of(const struct type *t)
{
    switch (t->base) {
    case T_STRING:
        return "NULL";
    case T_BOOL:
        return "false";
    case T_BYTES:
    case T_STRUCT:
        return "{0}";
    default:
        return "0";
    }
}

/* The type as the interface wrote it, with its effective bound. */
static const char *type_spec(struct emitter *em, const struct type *t)
{
    if (t->base == T_STRING || t->base == T_BYTES)
        return arena_printf(em->a, "%s<%u>", base_name(t->base),
                            (unsigned)t->max);
    return t->base == T_STRUCT ? t->st->name : base_name(t->base);
}

/* A declaration as the interface wrote it: "string<16> tags<4>". */
const char *decl_spec(struct emitter *em, const struct decl *d)
{
    const char *ty = type_spec(em, &d->type);
    if (d->dim == D_ONE)
        return arena_printf(em->a, "%s %s", ty, d->name);
    return arena_printf(em->a, "%s %s%c%u%c", ty, d->name,
                        d->dim == D_FIXED ? '[' : '<', (unsigned)d->count,
                        d->dim == D_FIXED ? ']' : '>');
}

/* A procedure as the interface wrote it, for a comment. */
const char *proc_spec(struct emitter *em, const struct proc *pr)
{
    const char *s = arena_printf(
        em->a, "%s %s(",
        pr->result.base == T_VOID ? "void" : type_spec(em, &pr->result),
        pr->name);
    for (const struct decl *d = pr->params; d != NULL; d = d->next)
        s = arena_printf(em->a, "%s%s%s", s, d == pr->params ? "" : ", ",
                         decl_spec(em, d));
    return arena_printf(em->a, "%s) = %u;", s, (unsigned)pr->number.value);
}

/* A struct field: "int32_t x", "char *tags[2]", or for a variable-length
 * array "struct { int32_t *val; size_t len; } v". */
const char *field_text(struct emitter *em, const struct decl *d)
{
    const char *ty = ctype(em, &d->type);
    if (d->dim == D_ONE)
        return join(em, ty, d->name);
    if (d->dim == D_FIXED)
        return join(em, ty,
                    arena_printf(em->a, "%s[%u]", d->name, (unsigned)d->count));
    return arena_printf(em->a, "struct { %s; size_t len; } %s",
                        join(em, ty, "*val"), d->name);
}

/* A parameter as a function takes it (one or two C parameters, into out):
 * numbers by value, a string as const char *, a byte array and a variable
 * array as a pointer and NAME_len, a struct by const pointer. */
int param_texts(struct emitter *em, const struct decl *d, const char **out)
{
    const char *ty = ctype(em, &d->type);
    const char *len = arena_printf(em->a, "size_t %s_len", d->name);
    if (d->dim == D_FIXED) {
        out[0] =
            join(em, constify(em, ty),
                 arena_printf(em->a, "%s[%u]", d->name, (unsigned)d->count));
        return 1;
    }
    if (d->dim == D_VAR) {
        out[0] =
            join(em, constify(em, ty), arena_printf(em->a, "*%s", d->name));
        out[1] = len;
        return 2;
    }
    if (d->type.base == T_BYTES) {
        out[0] = join(em, "const uint8_t *", d->name);
        out[1] = len;
        return 2;
    }
    if (d->type.base == T_STRING)
        out[0] = join(em, "const char *", d->name);
    else if (d->type.base == T_STRUCT)
        out[0] =
            join(em, constify(em, ty), arena_printf(em->a, "*%s", d->name));
    else
        out[0] = join(em, ty, d->name);
    return 1;
}

/* "TYPE *result", where a stub or an implementation stores the result. */
const char *result_param(struct emitter *em, const struct type *t)
{
    return join(em, ctype(em, t), "*result");
}

bool type_frees(const struct emitter *em, const struct type *t)
{
    if (t->base == T_STRUCT)
        return em->frees[t->st->index];
    return t->base == T_STRING || t->base == T_BYTES;
}

bool decl_frees(const struct emitter *em, const struct decl *d)
{
    return d->dim == D_VAR || type_frees(em, &d->type);
}

bool decls_free(const struct emitter *em, const struct decl *list)
{
    for (; list != NULL; list = list->next)
        if (decl_frees(em, list))
            return true;
    return false;
}

struct elem value_elem(struct emitter *em, const char *x)
{
    return (struct elem){x, arena_printf(em->a, "&%s", x),
                         arena_printf(em->a, "%s.val", x),
                         arena_printf(em->a, "%s.len", x)};
}

/* Element i (or the value) of a declaration: a struct's field (prefix
 * "v->" or "args.") or a stub's parameter (param). */
static struct elem decl_elem(struct emitter *em, const struct decl *d,
                             const char *prefix, bool param)
{
    if (param && d->dim == D_ONE)
        return (struct elem){d->name, d->name, d->name,
                             arena_printf(em->a, "%s_len", d->name)};
    const char *x = arena_printf(em->a, "%s%s", prefix, d->name);
    if (d->dim == D_FIXED || (param && d->dim == D_VAR))
        x = arena_printf(em->a, "%s[i]", x);
    else if (d->dim == D_VAR)
        x = arena_printf(em->a, "%s.val[i]", x);
    return value_elem(em, x);
}

/* ------------------------------------------------------------------------ */
/* Statements                                                                */
/* ------------------------------------------------------------------------ */

/* rpc_marshal's name for a number type: i32, u8, bool, ... */
static const char *suffix(enum base b)
{
    static const char *const s[] = {
        [T_INT8] = "i8",      [T_INT16] = "i16",  [T_INT32] = "i32",
        [T_INT64] = "i64",    [T_UINT8] = "u8",   [T_UINT16] = "u16",
        [T_UINT32] = "u32",   [T_UINT64] = "u64", [T_BOOL] = "bool",
        [T_DOUBLE] = "double"};
    return s[b];
}

const char *put_call(struct emitter *em, const char *coder,
                     const struct type *t, struct elem el, bool *checked)
{
    *checked = true;
    switch (t->base) {
    case T_STRING:
        return arena_printf(em->a, "put_string(%s, %s, %u)", coder, el.lv,
                            (unsigned)t->max);
    case T_BYTES:
        return arena_printf(em->a, "put_bytes(%s, %s, %s, %u)", coder, el.val,
                            el.len, (unsigned)t->max);
    case T_STRUCT:
        return arena_printf(em->a, "enc_%s(%s, %s)", t->st->name, coder,
                            el.ptr);
    default:
        *checked = false;
        return arena_printf(em->a, "rpc_put_%s(%s, %s)", suffix(t->base), coder,
                            el.lv);
    }
}

static const char *get_call(struct emitter *em, const char *coder,
                            const struct type *t, struct elem el, bool *checked)
{
    *checked = true;
    switch (t->base) {
    case T_BYTES:
        return arena_printf(em->a, "get_bytes(%s, %s, %u)", coder, el.ptr,
                            (unsigned)t->max);
    case T_STRUCT:
        return arena_printf(em->a, "dec_%s(%s, %s)", t->st->name, coder,
                            el.ptr);
    case T_STRING:
        *checked = false;
        return arena_printf(em->a, "rpc_get_string(%s, %s, %u)", coder, el.ptr,
                            (unsigned)t->max);
    default:
        *checked = false;
        return arena_printf(em->a, "rpc_get_%s(%s, %s)", suffix(t->base), coder,
                            el.ptr);
    }
}

/* One statement for a call: a checked one keeps its error in rc, and runs
 * only while rc is 0, unless that is known already: `guarded` (a loop
 * tests it), or nothing could have set rc since it was declared. */
static void statement(struct emitter *em, struct text *t, int ind,
                      const char *call, bool checked, bool guarded)
{
    if (!checked)
        text_printf(t, "%*s%s;\n", ind, "", call);
    else if (guarded || em->rc_zero)
        text_printf(t, "%*src = %s;\n", ind, "", call);
    else
        text_printf(t, "%*sif (rc == 0)\n%*src = %s;\n", ind, "", ind + 4, "",
                    call);
    if (checked)
        em->rc_zero = false;
}

void emit_put_value(struct emitter *em, struct text *t, int ind,
                    const char *coder, const struct type *ty, struct elem el,
                    bool guarded)
{
    bool checked;
    const char *call = put_call(em, coder, ty, el, &checked);
    statement(em, t, ind, call, checked, guarded);
}

void emit_get_value(struct emitter *em, struct text *t, int ind,
                    const char *coder, const struct type *ty, struct elem el,
                    bool guarded)
{
    bool checked;
    const char *call = get_call(em, coder, ty, el, &checked);
    statement(em, t, ind, call, checked, guarded);
}

/* "for (size_t i = 0; i < N[ && rc == 0]; i++)" */
static void loop(struct text *t, const char *n, bool stop)
{
    text_printf(t, "    for (size_t i = 0; i < %s%s; i++)\n", n,
                stop ? " && rc == 0" : "");
}

void emit_put_decl(struct emitter *em, struct text *t, const char *coder,
                   const struct decl *d, const char *prefix, bool param)
{
    struct elem el = decl_elem(em, d, prefix, param);
    bool checked;
    const char *call = put_call(em, coder, &d->type, el, &checked);
    if (d->dim == D_ONE) {
        statement(em, t, 4, call, checked, false);
        return;
    }
    const char *count = arena_printf(em->a, "%u", (unsigned)d->count);
    if (d->dim == D_VAR) {
        const char *p =
            arena_printf(em->a, "%s%s%s", prefix, d->name, param ? "" : ".val");
        count = arena_printf(em->a, "%s%s%s", prefix, d->name,
                             param ? "_len" : ".len");
        statement(em, t, 4,
                  arena_printf(em->a, "put_count(%s, %s, %s, %u)", coder, p,
                               count, (unsigned)d->count),
                  true, false);
    }
    loop(t, count, checked || d->dim == D_VAR);
    statement(em, t, 8, call, checked, checked);
}

/* Decodes a field of *v: a variable-length array's count is checked
 * against its bound and the bytes left before room is allocated. */
static void emit_get_decl(struct emitter *em, struct text *t,
                          const struct decl *d)
{
    struct elem el = decl_elem(em, d, "v->", false);
    bool checked;
    const char *call = get_call(em, "d", &d->type, el, &checked);
    if (d->dim == D_ONE) {
        statement(em, t, 4, call, checked, false);
        return;
    }
    const char *count = arena_printf(em->a, "%u", (unsigned)d->count);
    if (d->dim == D_VAR) {
        const char *x = arena_printf(em->a, "v->%s", d->name);
        uint64_t min = type_wire_min(&d->type);
        if (min > UINT32_MAX) /* a lower bound is still a safe one */
            min = UINT32_MAX;
        statement(em, t, 4,
                  arena_printf(em->a, "rpc_get_count(d, &n, %u, %llu)",
                               (unsigned)d->count, (unsigned long long)min),
                  true, false);
        text_printf(t,
                    "    if (rc == 0 && n > 0 &&\n"
                    "        (%s.val = calloc(n, sizeof(*%s.val))) == NULL)\n"
                    "        rc = -ENOMEM;\n"
                    "    if (rc == 0)\n"
                    "        %s.len = n;\n",
                    x, x, x);
        count = arena_printf(em->a, "%s.len", x);
    }
    loop(t, count, checked || d->dim == D_VAR);
    statement(em, t, 8, call, checked, checked);
}

void emit_free_value(struct emitter *em, struct text *t, int ind,
                     const struct type *ty, const char *x)
{
    if (ty->base == T_STRING)
        text_printf(t, "%*sfree(%s);\n", ind, "", x);
    else if (ty->base == T_BYTES)
        text_printf(t, "%*sfree(%s.val);\n", ind, "", x);
    else if (ty->base == T_STRUCT && em->frees[ty->st->index])
        text_printf(t, "%*s%s_%s_free(&%s);\n", ind, "", em->svc, ty->st->name,
                    x);
}

/* Frees what field d of *v (prefix "v->") points to. */
static void emit_free_decl(struct emitter *em, struct text *t,
                           const struct decl *d)
{
    const char *x = arena_printf(em->a, "v->%s", d->name);
    bool elems = type_frees(em, &d->type);
    if (d->dim == D_ONE) {
        emit_free_value(em, t, 4, &d->type, x);
    } else if (d->dim == D_FIXED && elems) {
        text_printf(t, "    for (size_t i = 0; i < %u; i++)\n",
                    (unsigned)d->count);
        emit_free_value(em, t, 8, &d->type, arena_printf(em->a, "%s[i]", x));
    } else if (d->dim == D_VAR) {
        if (elems) {
            text_printf(t, "    for (size_t i = 0; i < %s.len; i++)\n", x);
            emit_free_value(em, t, 8, &d->type,
                            arena_printf(em->a, "%s.val[i]", x));
        }
        text_printf(t, "    free(%s.val);\n", x);
    }
}

/* ------------------------------------------------------------------------ */
/* Layout                                                                    */
/* ------------------------------------------------------------------------ */

void emit_proto(struct text *t, const char *head, const char *const *params,
                int n, const char *tail)
{
    size_t indent = strlen(head), col = indent;
    text_printf(t, "%s", head);
    if (n == 0)
        text_printf(t, "void%s", tail);
    for (int i = 0; i < n; i++) {
        const char *sep = i + 1 < n ? "," : tail;
        size_t w = strlen(params[i]) + strlen(sep);
        if (i > 0 && col + 1 + w > 80) {
            text_printf(t, "\n%*s", (int)indent, "");
            col = indent;
        } else if (i > 0) {
            text_printf(t, " ");
            col++;
        }
        text_printf(t, "%s%s", params[i], sep);
        col += w;
    }
}

void emit_comment(struct text *t, int ind, const char *s)
{
    size_t col = (size_t)ind + 2;
    bool words = false;
    text_printf(t, "%*s/*", ind, "");
    for (;;) {
        size_t gap = strspn(s, " ");
        s += gap;
        if (*s == '\0')
            break;
        size_t w = strcspn(s, " ");
        size_t sep = words && gap >= 2 ? 2 : 1;
        bool last = s[w + strspn(s + w, " ")] == '\0';
        if (words && col + sep + w + (last ? 3 : 0) > 80) {
            text_printf(t, "\n%*s *", ind, "");
            col = (size_t)ind + 2;
            sep = 1;
        }
        text_printf(t, "%*s%.*s", (int)sep, "", (int)w, s);
        col += sep + w;
        words = true;
        s += w;
    }
    text_printf(t, " */\n");
}

void emit_proc_comment(struct emitter *em, struct text *t,
                       const struct proc *pr)
{
    emit_comment(t, 0, proc_spec(em, pr));
}

void emit_banner(struct text *t, const char *title)
{
    static const char dashes[] = "------------------------------------"
                                 "------------------------------------";
    text_printf(t, "\n/* %s */\n/* %-73s */\n/* %s */\n", dashes, title,
                dashes);
}

void emit_opening(struct emitter *em, struct text *t, const char *file,
                  const char *what)
{
    text_printf(t,
                "/*\n"
                " * %s - generated by rpcgen from %s: do not edit.\n"
                " * Change %s and run rpcgen again.\n"
                " *\n",
                file, em->source, em->source);
    while (*what != '\0') {
        const char *nl = strchr(what, '\n');
        size_t n = nl ? (size_t)(nl - what) : strlen(what);
        text_printf(t, " *%s%.*s\n", n ? " " : "", (int)n, what);
        what += n + (nl ? 1 : 0);
    }
    text_printf(t, " */\n");
}

void emit_outcomes(struct text *t)
{
    text_printf(
        t,
        "\n"
        "/* The first byte of every reply: what became of the call. */\n"
        "enum outcome {\n"
        "    OUTCOME_RAN = 0,       /* it ran; the result follows */\n"
        "    OUTCOME_MISMATCH = 1,  /* another version or other types */\n"
        "    OUTCOME_NOPROC = 2,    /* no procedure of that number */\n"
        "    OUTCOME_BADARGS = 3,   /* the arguments did not decode */\n"
        "    OUTCOME_TOO_LARGE = 4, /* a value over its bound */\n"
        "    OUTCOME_NOMEM = 5,     /* no memory to decode the arguments */\n"
        "    OUTCOME_BADRESULT = 6  /* the result could not be encoded */\n"
        "};\n");
}

/* ------------------------------------------------------------------------ */
/* Encoders and decoders                                                     */
/* ------------------------------------------------------------------------ */

static void emit_helpers(struct emitter *em, struct text *t)
{
    if (em->put_string)
        text_printf(
            t, "\n"
               "/* Appends the string s, refusing NULL and one over max bytes "
               "(without\n"
               " * an error in e: a server still reports the outcome). */\n"
               "static int put_string(struct rpc_enc *e, const char *s, "
               "size_t max)\n"
               "{\n"
               "    if (s == NULL)\n"
               "        return -EINVAL;\n"
               "    if (strlen(s) > max)\n"
               "        return -EMSGSIZE;\n"
               "    return rpc_put_string(e, s);\n"
               "}\n");
    if (em->put_bytes)
        text_printf(
            t, "\n"
               "/* Appends the n bytes at p, refusing more than max, and NULL "
               "with n > 0. */\n"
               "static int put_bytes(struct rpc_enc *e, const uint8_t *p, "
               "size_t n,\n"
               "                     size_t max)\n"
               "{\n"
               "    if (n > max)\n"
               "        return -EMSGSIZE;\n"
               "    if (p == NULL && n > 0)\n"
               "        return -EINVAL;\n"
               "    return rpc_put_bytes(e, p, n);\n"
               "}\n");
    if (em->put_count)
        text_printf(
            t, "\n"
               "/* Appends the count of an array of n elements at p, refusing\n"
               " * more than max, and a NULL array that claims elements. */\n"
               "static int put_count(struct rpc_enc *e, const void *p, "
               "size_t n,\n"
               "                     size_t max)\n"
               "{\n"
               "    if (n > max)\n"
               "        return -EMSGSIZE;\n"
               "    if (p == NULL && n > 0)\n"
               "        return -EINVAL;\n"
               "    return rpc_put_count(e, n);\n"
               "}\n");
    if (em->get_bytes)
        text_printf(
            t,
            "\n"
            "/* Reads a byte array of at most max bytes into a copy in "
            "*out. */\n"
            "static int get_bytes(struct rpc_dec *d, struct %s_bytes *out, "
            "size_t max)\n"
            "{\n"
            "    const void *p;\n"
            "    size_t n;\n"
            "    int rc = rpc_get_bytes(d, &p, &n);\n"
            "    if (rc != 0)\n"
            "        return rc;\n"
            "    if (n > max)\n"
            "        return -EMSGSIZE;\n"
            "    if (n > 0 && (out->val = malloc(n)) == NULL)\n"
            "        return -ENOMEM;\n"
            "    if (n > 0)\n"
            "        memcpy(out->val, p, n);\n"
            "    out->len = n;\n"
            "    return 0;\n"
            "}\n",
            em->svc);
}

/* True when encoding (or decoding) the fields needs rc: some call that
 * fails on its own. */
static bool needs_rc(const struct decl *f, enum dir dir)
{
    for (; f != NULL; f = f->next) {
        enum base b = f->type.base;
        if (f->dim == D_VAR || b == T_BYTES || b == T_STRUCT ||
            (b == T_STRING && dir == ENC))
            return true;
    }
    return false;
}

static bool has_var(const struct decl *f)
{
    for (; f != NULL; f = f->next)
        if (f->dim == D_VAR)
            return true;
    return false;
}

static void emit_encoder(struct emitter *em, struct text *t, const char *name,
                         const char *type, const struct decl *fields)
{
    bool rc = needs_rc(fields, ENC);
    text_printf(t, "\n");
    emit_comment(
        t, 0, arena_printf(em->a, "Encodes a %s: its fields in order.", type));
    text_printf(t, "static int enc_%s(struct rpc_enc *e, const %s *v)\n{\n",
                name, type);
    if (rc)
        text_printf(t, "    int rc = 0;\n");
    em->rc_zero = true;
    for (const struct decl *f = fields; f != NULL; f = f->next)
        emit_put_decl(em, t, "e", f, "v->", false);
    text_printf(t, "    return %s;\n}\n",
                rc ? "rc != 0 ? rc : e->err" : "e->err");
    em->rc_zero = false;
}

static void emit_decoder(struct emitter *em, struct text *t, const char *name,
                         const char *type, const struct decl *fields)
{
    bool rc = needs_rc(fields, DEC);
    text_printf(t, "\n");
    emit_comment(t, 0,
                 arena_printf(em->a,
                              "Decodes a %s into *v, which starts zeroed.  "
                              "On failure *v may hold part of a value, to "
                              "be freed all the same.",
                              type));
    text_printf(t, "static int dec_%s(struct rpc_dec *d, %s *v)\n{\n", name,
                type);
    if (rc)
        text_printf(t, "    int rc = 0;\n");
    if (has_var(fields))
        text_printf(t, "    size_t n = 0;\n");
    em->rc_zero = true;
    for (const struct decl *f = fields; f != NULL; f = f->next)
        emit_get_decl(em, t, f);
    text_printf(t, "    return %s;\n}\n",
                rc ? "rc != 0 ? rc : d->err" : "d->err");
    em->rc_zero = false;
}

void emit_codec(struct emitter *em, struct text *t, const char *name,
                const char *type, const struct decl *fields, bool enc, bool dec)
{
    if (enc)
        emit_encoder(em, t, name, type, fields);
    if (dec)
        emit_decoder(em, t, name, type, fields);
}

void emit_codecs(struct emitter *em, struct text *t)
{
    bool any =
        em->put_string || em->put_bytes || em->put_count || em->get_bytes;
    for (int i = 0; i < em->ifc->nstructs; i++)
        any = any || em->need[ENC][i] || em->need[DEC][i];
    if (!any)
        return;
    emit_banner(t, "Encoding and decoding");
    emit_helpers(em, t);
    for (const struct structdef *s = em->ifc->structs; s != NULL; s = s->next)
        emit_codec(em, t, s->name,
                   arena_printf(em->a, "struct %s_%s", em->svc, s->name),
                   s->fields, em->need[ENC][s->index], em->need[DEC][s->index]);
}

void emit_freer(struct emitter *em, struct text *t, const char *head,
                const struct decl *fields)
{
    text_printf(t, "%s\n{\n", head);
    if (!decls_free(em, fields)) {
        text_printf(t, "    (void)v;\n}\n");
        return;
    }
    text_printf(t, "    if (v == NULL)\n        return;\n");
    for (const struct decl *f = fields; f != NULL; f = f->next)
        emit_free_decl(em, t, f);
    text_printf(t, "}\n");
}

void emit_args_freer(struct emitter *em, struct text *t, const char *name,
                     const struct decl *fields)
{
    text_printf(t, "\n/* Frees what decoded arguments point to. */\n");
    emit_freer(
        em, t,
        arena_printf(em->a, "static void free_%s(struct %s *v)", name, name),
        fields);
}

/* ------------------------------------------------------------------------ */
/* Function heads                                                            */
/* ------------------------------------------------------------------------ */

void emit_fields(struct emitter *em, struct text *t, const struct decl *fields)
{
    for (const struct decl *f = fields; f != NULL; f = f->next) {
        bool note = f->dim == D_VAR || f->type.base == T_STRING ||
                    f->type.base == T_BYTES;
        text_printf(t, "    %s;", field_text(em, f));
        if (note)
            text_printf(t, " /* %s */", decl_spec(em, f));
        text_printf(t, "\n");
    }
}

/* The C parameters of a procedure: `first`, its parameters, result. */
static int proto_params(struct emitter *em, const struct proc *pr,
                        const char *first, const char **out)
{
    int n = 0;
    out[n++] = first;
    for (const struct decl *d = pr->params; d != NULL; d = d->next)
        n += param_texts(em, d, out + n);
    if (pr->result.base != T_VOID)
        out[n++] = result_param(em, &pr->result);
    return n;
}

static int count_params(const struct proc *pr)
{
    int n = 2;
    for (const struct decl *d = pr->params; d != NULL; d = d->next)
        n += 2;
    return n;
}

void emit_stub_head(struct emitter *em, struct text *t, const struct proc *pr,
                    const char *tail)
{
    const char **p = arena_alloc(em->a, sizeof(*p) * (size_t)count_params(pr));
    int n = proto_params(em, pr, "struct rpc_client *c", p);
    emit_proto(t, arena_printf(em->a, "int %s_%s(", em->svc, pr->name), p, n,
               tail);
}

void emit_impl_head(struct emitter *em, struct text *t, const struct proc *pr,
                    const char *tail)
{
    const char **p = arena_alloc(em->a, sizeof(*p) * (size_t)count_params(pr));
    int n = proto_params(em, pr, "void *ctx", p);
    emit_proto(t, arena_printf(em->a, "int %s_%s_impl(", em->svc, pr->name), p,
               n, tail);
}

/* ------------------------------------------------------------------------ */
/* All three files                                                           */
/* ------------------------------------------------------------------------ */

/* Which structs point to memory, in file order (inner ones first). */
static void find_frees(struct emitter *em)
{
    for (const struct structdef *s = em->ifc->structs; s != NULL; s = s->next)
        for (const struct decl *f = s->fields; f != NULL; f = f->next)
            if (decl_frees(em, f))
                em->frees[s->index] = true;
}

void emit_interface(const struct interface *ifc, const char *base,
                    const char *source, struct arena *a, struct output *out)
{
    size_t n = (size_t)ifc->nstructs + 1;
    struct emitter em = {.ifc = ifc,
                         .a = a,
                         .svc = ifc->svc.name,
                         .base = base,
                         .source = source};
    char *up = arena_strndup(a, em.svc, strlen(em.svc));
    for (char *p = up; *p != '\0'; p++)
        *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    em.upper = up;
    em.frees = arena_alloc(a, n * sizeof(bool));
    em.need[ENC] = arena_alloc(a, n * sizeof(bool));
    em.need[DEC] = arena_alloc(a, n * sizeof(bool));
    find_frees(&em);
    emit_header(&em, &out->header);
    emit_client(&em, &out->client);
    emit_server(&em, &out->server);
}
