/*
 * check.c - the rules a parsed interface must follow before code is made
 * from it.
 *
 * Names: no duplicates (structs, fields of a struct, procedures,
 * parameters of a procedure, including the NAME_len a byte array or
 * variable-length array parameter adds), nothing the generated C would
 * trip over (C keywords, names starting with '_' or "rpc_", the macros
 * of the generated header, the names a generated stub's body uses), and
 * no procedure whose generated function would be another generated
 * function.  Numbers: service, version and procedure numbers fit in 32
 * bits, procedure numbers are unique, array sizes and bounds are in range.
 * Types: every struct named exists and is defined before it is used (so
 * structs cannot contain themselves and C can define them in file order).
 *
 * Every error is reported, not just the first.  The checker also computes
 * what the emitter needs: each struct's smallest encoding (the element
 * size rpc_get_count checks counts against) and each procedure's shape,
 * a 32-bit FNV-1a hash of its argument and result types written out
 * (for example "(int32,int32)int32"), which a call carries so that a
 * server refuses a call whose types differ from its own.
 */
#include "rpcgen.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Built-in types                                                            */
/* ------------------------------------------------------------------------ */

static const char *const base_names[] = {
    [T_INT8] = "int8",     [T_INT16] = "int16",   [T_INT32] = "int32",
    [T_INT64] = "int64",   [T_UINT8] = "uint8",   [T_UINT16] = "uint16",
    [T_UINT32] = "uint32", [T_UINT64] = "uint64", [T_BOOL] = "bool",
    [T_DOUBLE] = "double", [T_STRING] = "string", [T_BYTES] = "bytes",
};

bool base_by_name(const char *name, enum base *b)
{
    for (int i = T_INT8; i <= T_BYTES; i++) {
        if (strcmp(name, base_names[i]) == 0) {
            *b = (enum base)i;
            return true;
        }
    }
    return false;
}

const char *base_name(enum base b)
{
    return b <= T_BYTES ? base_names[b] : b == T_VOID ? "void" : "struct";
}

/* ------------------------------------------------------------------------ */
/* Names                                                                     */
/* ------------------------------------------------------------------------ */

/* C11's keywords and the names its headers define that generated code
 * uses: a field or parameter with one of these names would not compile. */
static const char *const c_reserved[] = {
    "auto",     "break",    "case",     "char",     "const",    "continue",
    "default",  "do",       "double",   "else",     "enum",     "extern",
    "float",    "for",      "goto",     "if",       "inline",   "int",
    "long",     "register", "restrict", "return",   "short",    "signed",
    "sizeof",   "static",   "struct",   "switch",   "typedef",  "union",
    "unsigned", "void",     "volatile", "while",    "bool",     "true",
    "false",    "NULL",     "size_t",   "int8_t",   "int16_t",  "int32_t",
    "int64_t",  "uint8_t",  "uint16_t", "uint32_t", "uint64_t", "free",
    NULL};

/* The names a client stub's body uses besides its parameters (see
 * emit_client.c): a parameter with one of them would hide it. */
static const char *const stub_names[] = {
    "c",          "ctx",       "result",    "req",        "rep",     "buf",
    "rc",         "i",         "out",       "start_call", "do_call", "end_call",
    "put_string", "put_bytes", "put_count", "get_bytes",  NULL};

static bool in_list(const char *const *list, const char *name)
{
    for (; *list != NULL; list++)
        if (strcmp(*list, name) == 0)
            return true;
    return false;
}

struct checker {
    struct interface *ifc;
    struct diag *dg;
    struct arena *a;
    const char *macros[4]; /* SVC_H, SVC_SERVICE, SVC_VERSION, ... */
};

/* The rules every name follows; reports and returns false if broken. */
static bool check_name(struct checker *ck, const char *name, struct pos at)
{
    if (name[0] == '_') {
        diag_error(ck->dg, at, "'%s': names may not begin with '_'", name);
        return false;
    }
    if (strncmp(name, "rpc_", 4) == 0) {
        diag_error(ck->dg, at,
                   "'%s': names beginning with 'rpc_' are the library's", name);
        return false;
    }
    if (in_list(c_reserved, name)) {
        diag_error(ck->dg, at, "'%s' is reserved in C", name);
        return false;
    }
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, ck->macros[i]) == 0) {
            diag_error(ck->dg, at, "'%s' is a macro of the generated header",
                       name);
            return false;
        }
    }
    return true;
}

/* A name seen in one scope, for finding duplicates. */
struct seen {
    struct seen *next;
    const char *name;
    struct pos at;
    const char *owner; /* a NAME_len: the parameter it belongs to; a
                          procedure number: the procedure */
};

static struct seen *seen_find(struct seen *list, const char *name)
{
    for (; list != NULL; list = list->next)
        if (strcmp(list->name, name) == 0)
            return list;
    return NULL;
}

static void seen_add(struct checker *ck, struct seen **list, const char *name,
                     struct pos at, const char *owner)
{
    struct seen *s = arena_alloc(ck->a, sizeof(*s));
    *s = (struct seen){*list, name, at, owner};
    *list = s;
}

/* ------------------------------------------------------------------------ */
/* Numbers                                                                   */
/* ------------------------------------------------------------------------ */

/* True when n is within [lo, hi]; otherwise reports "WHAT N out of range
 * (LO to HI)" and returns false. */
static bool check_range(struct checker *ck, const struct num *n,
                        const char *what, uint64_t lo, uint64_t hi)
{
    if (!n->overflow && n->value >= lo && n->value <= hi)
        return true;
    diag_error(ck->dg, n->at, "%s %s out of range (%llu to %llu)", what,
               n->text, (unsigned long long)lo, (unsigned long long)hi);
    return false;
}

/* The most a <N> or <> allows: N when written, else the default. */
static uint32_t check_bound(struct checker *ck, const struct num *n,
                            const char *what)
{
    if (n->text == NULL)
        return RPCGEN_DEFAULT_MAX;
    if (!check_range(ck, n, what, 1, UINT32_MAX))
        return RPCGEN_DEFAULT_MAX;
    return (uint32_t)n->value;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    return b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* ------------------------------------------------------------------------ */
/* Types                                                                     */
/* ------------------------------------------------------------------------ */

static struct structdef *struct_find(struct interface *ifc, const char *name)
{
    for (struct structdef *s = ifc->structs; s != NULL; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

/* Resolves a struct reference and the bound of a string or byte array.
 * `inside` is the struct being checked (NULL in the service): a struct
 * may use only structs defined before it. */
static bool check_type(struct checker *ck, struct type *t,
                       const struct structdef *inside)
{
    if (t->base == T_STRING || t->base == T_BYTES) {
        t->max = check_bound(ck, &t->bound, "length bound");
        return true;
    }
    if (t->base != T_STRUCT)
        return true;
    struct structdef *s = struct_find(ck->ifc, t->name);
    if (s == NULL) {
        diag_error(ck->dg, t->at, "unknown type '%s'", t->name);
        return false;
    }
    if (s == inside) {
        diag_error(ck->dg, t->at, "struct '%s' cannot contain itself", t->name);
        return false;
    }
    if (!s->checked) {
        diag_error(ck->dg, t->at,
                   "struct '%s' is used before its definition (at %d:%d)",
                   t->name, s->at.line, s->at.col);
        return false;
    }
    t->st = s;
    return true;
}

uint64_t type_wire_min(const struct type *t)
{
    static const uint8_t size[] = {
        [T_INT8] = 1,  [T_INT16] = 2,  [T_INT32] = 4,  [T_INT64] = 8,
        [T_UINT8] = 1, [T_UINT16] = 2, [T_UINT32] = 4, [T_UINT64] = 8,
        [T_BOOL] = 1,  [T_DOUBLE] = 8, [T_STRING] = 4, [T_BYTES] = 4};
    if (t->base == T_STRUCT)
        return t->st ? t->st->wire_min : 1;
    return t->base <= T_BYTES ? size[t->base] : 0;
}

static uint64_t decl_wire_min(const struct decl *d)
{
    if (d->dim == D_VAR)
        return 4; /* the count */
    uint64_t one = type_wire_min(&d->type);
    return d->dim == D_FIXED ? mul_sat(one, d->count) : one;
}

/* A field's or parameter's type and array part. */
static void check_decl(struct checker *ck, struct decl *d,
                       const struct structdef *inside)
{
    check_type(ck, &d->type, inside);
    if (d->dim == D_FIXED &&
        check_range(ck, &d->size, "array size", 1, RPCGEN_FIXED_MAX))
        d->count = (uint32_t)d->size.value;
    if (d->dim == D_VAR)
        d->count = check_bound(ck, &d->size, "array bound");
}

/* ------------------------------------------------------------------------ */
/* Structs                                                                   */
/* ------------------------------------------------------------------------ */

static void check_struct(struct checker *ck, struct structdef *s,
                         struct seen **structs)
{
    enum base b;
    if (check_name(ck, s->name, s->at) && base_by_name(s->name, &b))
        diag_error(ck->dg, s->at, "'%s' is a built-in type", s->name);
    struct seen *dup = seen_find(*structs, s->name);
    if (dup != NULL)
        diag_error(ck->dg, s->at, "duplicate struct '%s' (first at %d:%d)",
                   s->name, dup->at.line, dup->at.col);
    else
        seen_add(ck, structs, s->name, s->at, NULL);
    struct seen *fields = NULL;
    for (struct decl *f = s->fields; f != NULL; f = f->next) {
        check_name(ck, f->name, f->at);
        if ((dup = seen_find(fields, f->name)) != NULL)
            diag_error(ck->dg, f->at,
                       "duplicate field '%s' in struct '%s' (first at "
                       "%d:%d)",
                       f->name, s->name, dup->at.line, dup->at.col);
        else
            seen_add(ck, &fields, f->name, f->at, NULL);
        check_decl(ck, f, s);
        s->wire_min = add_sat(s->wire_min, decl_wire_min(f));
    }
    s->checked = true;
}

/* ------------------------------------------------------------------------ */
/* Procedures                                                                */
/* ------------------------------------------------------------------------ */

/* True for parameters passed as a pointer and a NAME_len. */
static bool has_length(const struct decl *d)
{
    return d->dim == D_VAR || (d->dim == D_ONE && d->type.base == T_BYTES);
}

/* Records a parameter's name, or reports that it is taken. */
static void param_name(struct checker *ck, struct proc *pr, struct seen **names,
                       const char *name, struct pos at, const char *length_of)
{
    struct seen *dup = seen_find(*names, name);
    if (dup == NULL) {
        seen_add(ck, names, name, at, length_of);
    } else if (length_of != NULL) {
        diag_error(ck->dg, at,
                   "the length of '%s' would be '%s', the name of the "
                   "parameter at %d:%d",
                   length_of, name, dup->at.line, dup->at.col);
    } else if (dup->owner != NULL) {
        diag_error(ck->dg, at,
                   "parameter '%s' clashes with the length of '%s' (at "
                   "%d:%d)",
                   name, dup->owner, dup->at.line, dup->at.col);
    } else {
        diag_error(ck->dg, at,
                   "duplicate parameter '%s' in '%s' (first at %d:%d)", name,
                   pr->name, dup->at.line, dup->at.col);
    }
}

/* A parameter name the stub's own code uses, or a struct's encoder. */
static bool stub_name(struct checker *ck, const char *name)
{
    if (in_list(stub_names, name))
        return true;
    return strncmp(name, "enc_", 4) == 0 &&
           struct_find(ck->ifc, name + 4) != NULL;
}

static void check_params(struct checker *ck, struct proc *pr)
{
    struct seen *names = NULL;
    for (struct decl *d = pr->params; d != NULL; d = d->next) {
        if (check_name(ck, d->name, d->at) && stub_name(ck, d->name))
            diag_error(ck->dg, d->at,
                       "parameter name '%s' is used by the generated code",
                       d->name);
        param_name(ck, pr, &names, d->name, d->at, NULL);
        if (has_length(d))
            param_name(ck, pr, &names, arena_printf(ck->a, "%s_len", d->name),
                       d->at, d->name);
        check_decl(ck, d, NULL);
    }
}

/* ------------------------------------------------------------------------ */
/* Shapes                                                                    */
/* ------------------------------------------------------------------------ */

static uint32_t fnv(uint32_t h, const char *s)
{
    for (; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static uint32_t shape_decl(uint32_t h, const struct decl *d);

/* A type written out: its name, or a struct's fields in braces.  Names of
 * structs and fields and the bounds are left out: they do not change
 * the encoding. */
static uint32_t shape_type(uint32_t h, const struct type *t)
{
    if (t->base != T_STRUCT)
        return fnv(h, base_name(t->base));
    h = fnv(h, "{");
    for (const struct decl *f = t->st->fields; f != NULL; f = f->next)
        h = shape_decl(f != t->st->fields ? fnv(h, ",") : h, f);
    return fnv(h, "}");
}

static uint32_t shape_decl(uint32_t h, const struct decl *d)
{
    char n[16];
    h = shape_type(h, &d->type);
    if (d->dim == D_FIXED) {
        snprintf(n, sizeof(n), "[%u]", (unsigned)d->count);
        h = fnv(h, n);
    }
    return d->dim == D_VAR ? fnv(h, "<>") : h;
}

/* "(" the parameters ")" the result, hashed. */
static uint32_t shape_proc(const struct proc *pr)
{
    uint32_t h = fnv(2166136261u, "(");
    for (const struct decl *d = pr->params; d != NULL; d = d->next)
        h = shape_decl(d != pr->params ? fnv(h, ",") : h, d);
    return shape_type(fnv(h, ")"), &pr->result);
}

/* ------------------------------------------------------------------------ */
/* The service                                                               */
/* ------------------------------------------------------------------------ */

/* Procedure names that would generate a function already generated. */
static void check_generated(struct checker *ck, const struct proc *pr)
{
    const char *svc = ck->ifc->svc.name;
    size_t n = strlen(pr->name);
    for (const struct proc *q = ck->ifc->svc.procs; q != NULL; q = q->next)
        if (strncmp(pr->name, q->name, strlen(q->name)) == 0 &&
            strcmp(pr->name + strlen(q->name), "_impl") == 0)
            diag_error(ck->dg, pr->at,
                       "procedure '%s' clashes with %s_%s, the "
                       "implementation of '%s'",
                       pr->name, svc, pr->name, q->name);
    if (n > 5 && strcmp(pr->name + n - 5, "_free") == 0) {
        const char *sname = arena_strndup(ck->a, pr->name, n - 5);
        if (struct_find(ck->ifc, sname) != NULL)
            diag_error(ck->dg, pr->at,
                       "procedure '%s' clashes with %s_%s, which frees "
                       "struct '%s'",
                       pr->name, svc, pr->name, sname);
    }
}

static void check_proc(struct checker *ck, struct proc *pr, struct seen **names,
                       struct seen **numbers)
{
    check_name(ck, pr->name, pr->at);
    struct seen *dup = seen_find(*names, pr->name);
    if (dup != NULL)
        diag_error(ck->dg, pr->at, "duplicate procedure '%s' (first at %d:%d)",
                   pr->name, dup->at.line, dup->at.col);
    else
        seen_add(ck, names, pr->name, pr->at, NULL);
    check_generated(ck, pr);
    if (check_range(ck, &pr->number, "procedure number", 0, UINT32_MAX)) {
        const char *key =
            arena_printf(ck->a, "%llu", (unsigned long long)pr->number.value);
        if ((dup = seen_find(*numbers, key)) != NULL)
            diag_error(ck->dg, pr->number.at,
                       "duplicate procedure number %s (first used by '%s' "
                       "at %d:%d)",
                       pr->number.text, dup->owner, dup->at.line, dup->at.col);
        else
            seen_add(ck, numbers, key, pr->at, pr->name);
    }
    check_params(ck, pr);
    if (pr->result.base != T_VOID)
        check_type(ck, &pr->result, NULL);
}

/* The service's own name must not make generated names the library's. */
static void check_service_name(struct checker *ck, const struct service *sv)
{
    static const char *const library[] = {"rpc", "rmsg", "udp", "UDP", NULL};
    if (check_name(ck, sv->name, sv->at) && in_list(library, sv->name))
        diag_error(ck->dg, sv->at,
                   "service name '%s' would clash with the library's names",
                   sv->name);
}

/* The macros the header will define, which no name may be. */
static void set_macros(struct checker *ck)
{
    static const char *const suffix[] = {"H", "SERVICE", "VERSION",
                                         "TIMEOUT_MS"};
    char *up =
        arena_strndup(ck->a, ck->ifc->svc.name, strlen(ck->ifc->svc.name));
    for (char *p = up; *p != '\0'; p++)
        *p = (char)toupper((unsigned char)*p);
    for (int i = 0; i < 4; i++)
        ck->macros[i] = arena_printf(ck->a, "%s_%s", up, suffix[i]);
}

int check_interface(struct interface *ifc, struct diag *dg, struct arena *a)
{
    struct checker ck = {.ifc = ifc, .dg = dg, .a = a};
    int before = dg->errors;
    set_macros(&ck);
    struct seen *structs = NULL, *names = NULL, *numbers = NULL;
    for (struct structdef *s = ifc->structs; s != NULL; s = s->next)
        check_struct(&ck, s, &structs);
    struct service *sv = &ifc->svc;
    check_service_name(&ck, sv);
    check_range(&ck, &sv->number, "service number", 0, UINT32_MAX);
    check_range(&ck, &sv->version, "version", 0, UINT32_MAX);
    for (struct proc *pr = sv->procs; pr != NULL; pr = pr->next)
        check_proc(&ck, pr, &names, &numbers);
    if (dg->errors == before)
        for (struct proc *pr = sv->procs; pr != NULL; pr = pr->next)
            pr->shape = shape_proc(pr);
    return dg->errors - before;
}
