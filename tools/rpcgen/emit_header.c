/*
 * emit_header.c - writes BASE.h: the documentation of the generated code
 * (calling, serving, the versioning rule, the wire format), the C types of
 * the interface's structs with their free functions, and the prototypes of
 * the stubs and of the implementations the server program defines.
 */
#include "emit.h"

static bool uses_bytes_decl(const struct decl *d)
{
    for (; d != NULL; d = d->next)
        if (d->type.base == T_BYTES)
            return true;
    return false;
}

/* True when a byte array appears anywhere: the header then defines
 * struct SVC_bytes. */
static bool uses_bytes(const struct interface *ifc)
{
    for (const struct structdef *s = ifc->structs; s != NULL; s = s->next)
        if (uses_bytes_decl(s->fields))
            return true;
    for (const struct proc *p = ifc->svc.procs; p != NULL; p = p->next)
        if (p->result.base == T_BYTES || uses_bytes_decl(p->params))
            return true;
    return false;
}

/* The interface's structs in C, and a free function for each. */
static void emit_types(struct emitter *em, struct text *t)
{
    emit_banner(t, "Types");
    if (uses_bytes(em->ifc))
        text_printf(t,
                    "\n/* A byte array: len bytes at val (NULL when len "
                    "is 0). */\nstruct %s_bytes {\n    uint8_t *val;\n"
                    "    size_t len;\n};\n",
                    em->svc);
    for (const struct structdef *s = em->ifc->structs; s != NULL; s = s->next) {
        text_printf(t, "\nstruct %s_%s {\n", em->svc, s->name);
        emit_fields(em, t, s->fields);
        text_printf(t, "};\n");
    }
    if (em->ifc->structs == NULL)
        return;
    text_printf(t, "\n");
    emit_comment(t, 0,
                 arena_printf(em->a,
                              "Each %s_NAME_free frees what a struct "
                              "%s_NAME points to (strings, byte arrays, "
                              "arrays, the same in the structs inside), not "
                              "the struct itself.  NULL is a no-op.",
                              em->svc, em->svc));
    for (const struct structdef *s = em->ifc->structs; s != NULL; s = s->next) {
        const char *head = arena_printf(
            em->a, "static inline void %s_%s_free(struct %s_%s *v)", em->svc,
            s->name, em->svc, s->name);
        emit_freer(em, t, head, s->fields);
        if (s->next != NULL)
            text_printf(t, "\n");
    }
}

/* The header's opening comment: calling, serving, the versioning rule
 * and the wire format, in the interface's names. */
static void emit_doc(struct emitter *em, struct text *t)
{
    const struct service *sv = &em->ifc->svc;
    const char *s = em->svc, *u = em->upper;
    emit_opening(
        em, t, arena_printf(em->a, "%s.h", em->base),
        arena_printf(
            em->a,
            "Service %s, number %llu, version %llu: client stubs (%s_clnt.c) "
            "and a\n"
            "server skeleton (%s_svc.c) for the rpc layer (rpc.h).\n"
            "\n"
            "Client.  The stub of procedure P, %s_P(c, arguments..., result),\n"
            "encodes the arguments, calls the server c is open to (deadline\n"
            "%s_TIMEOUT_MS) and decodes the result into *result (result may "
            "be\n"
            "NULL).  It returns what rpc_call does (0; the procedure's own "
            "positive\n"
            "code; -ETIMEDOUT, -ESTALE, -ECONNABORTED, -EBUSY, ...: see rpc.h) "
            "and\n"
            "  -EPROTONOSUPPORT  the server does not serve this version of %s, "
            "or\n"
            "                    has this procedure with other types: it did "
            "not run\n"
            "  -ENOSYS           the server serves this version but has no "
            "such\n"
            "                    procedure: it did not run\n"
            "  -EMSGSIZE         an argument over its bound (nothing sent), or "
            "the\n"
            "                    arguments or the result over the server's "
            "bounds\n"
            "  -EINVAL           a NULL string, or a NULL array with a length\n"
            "  -EBADMSG          the server could not decode the arguments\n"
            "  -ENOMEM           no memory here, or at the server to decode "
            "the\n"
            "                    arguments (then it did not run)\n"
            "  -EPROTO           a reply that does not decode (a broken "
            "server)\n"
            "*result is written only when the stub returns 0; what it points "
            "to is\n"
            "the caller's: free() a string and a byte array's val, "
            "%s_NAME_free() a\n"
            "struct.  Arguments are only read.\n"
            "\n"
            "Server.  The program defines %s_P_impl for every procedure P and "
            "calls\n"
            "%s_register(s, ctx, flags) before rpc_serve; ctx reaches every\n"
            "implementation.  One reads its arguments (valid during the call "
            "only),\n"
            "stores the result in *result, which starts zeroed (strings, byte\n"
            "arrays and arrays in it must come from malloc: they are freed "
            "once the\n"
            "reply is encoded) and returns 0, or a positive code of its own "
            "that the\n"
            "caller's stub returns instead of a result (a negative -x is sent "
            "as x).\n"
            "\n"
            "Versions.  Every call is rpc procedure %s_SERVICE, and its "
            "arguments\n"
            "begin with three u32: %s_VERSION, the procedure's number, and "
            "its\n"
            "shape, a 32-bit FNV-1a hash of its types written out (for "
            "example\n"
            "\"(int32,string)int32\"; names and bounds left out).  A server "
            "runs a\n"
            "call only when the version matches its own and the shape that of "
            "its\n"
            "procedure of that number; otherwise the stub gets "
            "-EPROTONOSUPPORT (or\n"
            "-ENOSYS: right version, no such procedure).  A client built from "
            "another\n"
            "version of %s therefore gets an error, never misread values.\n"
            "\n"
            "Wire format (rpc_marshal.h's encoding).  Arguments: that header, "
            "then\n"
            "each argument in order.  Results: an outcome byte, then, when it "
            "is 0\n"
            "and the procedure returned 0, the result.  Outcomes: 0 ran, 1 "
            "other\n"
            "version or types (the server's u32 version follows), 2 no such\n"
            "procedure, 3 arguments malformed, 4 a value over its bound, 5 no "
            "memory\n"
            "to decode, 6 result not encodable.  A variable-length array is a "
            "u32\n"
            "count and its elements, a fixed one its elements, a struct its "
            "fields.",
            s, (unsigned long long)sv->number.value,
            (unsigned long long)sv->version.value, em->base, em->base, s, u, s,
            s, s, s, u, u, em->source));
}

/* The whole header: the comment, macros, types and prototypes. */
void emit_header(struct emitter *em, struct text *t)
{
    const struct service *sv = &em->ifc->svc;
    const char *u = em->upper;
    emit_doc(em, t);
    text_printf(
        t,
        "#ifndef %s_H\n#define %s_H\n\n"
        "#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n"
        "#include <stdlib.h>\n\n#include \"rpc.h\"\n\n"
        "#define %s_SERVICE %su /* the rpc procedure of every call */\n"
        "#define %s_VERSION %su\n\n"
        "/* How long a stub waits for the outcome, in milliseconds "
        "(negative:\n * without end).  Define it when compiling "
        "%s_clnt.c to change it. */\n"
        "#ifndef %s_TIMEOUT_MS\n#define %s_TIMEOUT_MS %d\n#endif\n",
        u, u, u, sv->number.text, u, sv->version.text, em->base, u, u,
        RPCGEN_TIMEOUT_MS);
    emit_types(em, t);
    emit_banner(t, arena_printf(em->a, "Client stubs (%s_clnt.c)", em->base));
    for (const struct proc *pr = sv->procs; pr != NULL; pr = pr->next) {
        text_printf(t, "\n");
        emit_proc_comment(em, t, pr);
        emit_stub_head(em, t, pr, ");");
        text_printf(t, "\n");
    }
    emit_banner(t, arena_printf(em->a, "Server (%s_svc.c)", em->base));
    text_printf(t,
                "\n/* Registers the service with s (flags: rpc_register's); "
                "ctx reaches\n * every implementation.  Returns 0, -EINVAL "
                "or -ENOMEM. */\n"
                "int %s_register(struct rpc_server *s, void *ctx, "
                "int flags);\n\n"
                "/* The implementations, one per procedure: the server "
                "program defines\n * them. */\n",
                em->svc);
    for (const struct proc *pr = sv->procs; pr != NULL; pr = pr->next) {
        emit_impl_head(em, t, pr, ");");
        text_printf(t, "\n");
    }
    text_printf(t, "\n#endif /* %s_H */\n", u);
}
