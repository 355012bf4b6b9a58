/*
 * emit_server.c - writes BASE_svc.c, the server skeleton.
 *
 * BASE_register installs one rpc handler, dispatch, for the whole
 * service.  It checks the call header (version, then procedure number,
 * then shape) and hands the rest to the procedure's serve_P, which
 * decodes the arguments into a struct args_P, calls BASE_P_impl (the
 * server program's), frees the arguments and encodes the result after
 * the outcome byte.
 */
#include "emit.h"

/* The arguments as the implementation takes them, from `args`. */
static int impl_args(struct emitter *em, const struct decl *d, const char **out)
{
    const char *x = arena_printf(em->a, "args.%s", d->name);
    if (d->dim == D_VAR || (d->dim == D_ONE && d->type.base == T_BYTES)) {
        out[0] = arena_printf(em->a, "%s.val", x);
        out[1] = arena_printf(em->a, "%s.len", x);
        return 2;
    }
    if (d->dim == D_ONE && d->type.base == T_STRUCT)
        x = arena_printf(em->a, "&%s", x);
    out[0] = x;
    return 1;
}

static bool checked_result(const struct type *t)
{
    return t->base == T_STRING || t->base == T_BYTES || t->base == T_STRUCT;
}

static void emit_arguments(struct emitter *em, struct text *t)
{
    const struct proc *procs = em->ifc->svc.procs;
    bool any = false;
    for (const struct proc *pr = procs; pr != NULL; pr = pr->next)
        any = any || pr->params != NULL;
    if (!any)
        return;
    emit_banner(t, "Arguments");
    for (const struct proc *pr = procs; pr != NULL; pr = pr->next) {
        if (pr->params == NULL)
            continue;
        const char *name = arena_printf(em->a, "args_%s", pr->name);
        text_printf(t, "\n/* The arguments of %s, decoded. */\nstruct %s {\n",
                    pr->name, name);
        emit_fields(em, t, pr->params);
        text_printf(t, "};\n");
        emit_codec(em, t, name, arena_printf(em->a, "struct %s", name),
                   pr->params, false, true);
        if (decls_free(em, pr->params))
            emit_args_freer(em, t, name, pr->params);
    }
}

static void emit_replies(struct emitter *em, struct text *t)
{
    bool checked = false;
    for (const struct proc *pr = em->ifc->svc.procs; pr; pr = pr->next)
        checked = checked || checked_result(&pr->result);
    text_printf(
        t,
        "\n"
        "/* Answers a call that does not run: the outcome alone (and, for "
        "a\n"
        " * mismatch, the version this server serves). */\n"
        "static int refuse(struct rpc_enc *reply, uint8_t outcome)\n"
        "{\n"
        "    rpc_put_u8(reply, outcome);\n"
        "    if (outcome == OUTCOME_MISMATCH)\n"
        "        rpc_put_u32(reply, %s_VERSION);\n"
        "    return 0;\n"
        "}\n"
        "\n"
        "/* The outcome for arguments that did not decode (err says why). "
        "*/\n"
        "static uint8_t arg_outcome(int err)\n"
        "{\n"
        "    if (err == -EMSGSIZE)\n"
        "        return OUTCOME_TOO_LARGE;\n"
        "    return err == -ENOMEM ? OUTCOME_NOMEM : OUTCOME_BADARGS;\n"
        "}\n"
        "\n"
        "/* The rpc status for an implementation's return value: 0, its "
        "own\n"
        " * positive code, or x for a negative -x. */\n"
        "static int code_of(int rc)\n"
        "{\n"
        "    if (rc >= 0)\n"
        "        return rc;\n"
        "    return rc == INT_MIN ? INT_MAX : -rc;\n"
        "}\n",
        em->upper);
    if (checked)
        text_printf(
            t, "\n"
               "/* Marks a reply whose result could not be encoded (err: a "
               "string or\n"
               " * array over its bound, a NULL string, ...): the outcome byte "
               "at `at`\n"
               " * says so, and the client reads no further.  (An encoder "
               "error of\n"
               " * the reply itself makes rpc send -EMSGSIZE instead.) */\n"
               "static void bad_result(struct rpc_enc *reply, size_t at, int "
               "err)\n"
               "{\n"
               "    if (err != 0 && reply->err == 0)\n"
               "        reply->buf[at] =\n"
               "            err == -EMSGSIZE ? OUTCOME_TOO_LARGE : "
               "OUTCOME_BADRESULT;\n"
               "}\n");
}

/* The call of the implementation: "rc = BASE_P_impl(ctx, ...);". */
static void emit_impl_call(struct emitter *em, struct text *t,
                           const struct proc *pr)
{
    int n = 2;
    for (const struct decl *d = pr->params; d != NULL; d = d->next)
        n += 2;
    const char **args = arena_alloc(em->a, sizeof(*args) * (size_t)n);
    n = 0;
    args[n++] = "ctx";
    for (const struct decl *d = pr->params; d != NULL; d = d->next)
        n += impl_args(em, d, args + n);
    if (pr->result.base != T_VOID)
        args[n++] = "&result";
    emit_proto(t,
               arena_printf(em->a, "    rc = %s_%s_impl(", em->svc, pr->name),
               args, n, ");");
    text_printf(t, "\n");
}

/* serve_P, up to the implementation's call: decoding the arguments. */
static void emit_serve_args(struct emitter *em, struct text *t,
                            const struct proc *pr)
{
    bool frees = decls_free(em, pr->params);
    if (pr->params == NULL) {
        text_printf(t, "    int rc = rpc_dec_end(d);\n"
                       "    if (rc != 0)\n"
                       "        return refuse(reply, arg_outcome(rc));\n");
        return;
    }
    text_printf(t,
                "    int rc = dec_args_%s(d, &args);\n"
                "    if (rc == 0)\n"
                "        rc = rpc_dec_end(d);\n",
                pr->name);
    if (frees)
        text_printf(t,
                    "    if (rc != 0) {\n"
                    "        free_args_%s(&args);\n"
                    "        return refuse(reply, arg_outcome(rc));\n"
                    "    }\n",
                    pr->name);
    else
        text_printf(t, "    if (rc != 0)\n"
                       "        return refuse(reply, arg_outcome(rc));\n");
}

static void emit_serve(struct emitter *em, struct text *t,
                       const struct proc *pr)
{
    const struct type *res = &pr->result;
    bool checked = checked_result(res);
    text_printf(t, "\n");
    emit_proc_comment(em, t, pr);
    text_printf(t,
                "static int serve_%s(void *ctx, struct rpc_dec *d, "
                "struct rpc_enc *reply)\n{\n",
                pr->name);
    if (pr->params != NULL)
        text_printf(t, "    struct args_%s args = {0};\n", pr->name);
    if (res->base != T_VOID)
        text_printf(t, "    %s = %s;\n", join(em, ctype(em, res), "result"),
                    zero_of(res));
    emit_serve_args(em, t, pr);
    emit_impl_call(em, t, pr);
    if (decls_free(em, pr->params))
        text_printf(t, "    free_args_%s(&args);\n", pr->name);
    if (checked)
        text_printf(t, "    size_t at = reply->len;\n");
    text_printf(t, "    rpc_put_u8(reply, OUTCOME_RAN);\n");
    if (checked) {
        bool own;
        text_printf(t, "    if (rc == 0)\n        bad_result(reply, at, %s);\n",
                    put_call(em, "reply", res, value_elem(em, "result"), &own));
    } else if (res->base != T_VOID) {
        text_printf(t, "    if (rc == 0)\n");
        emit_put_value(em, t, 8, "reply", res, value_elem(em, "result"), true);
    }
    if (type_frees(em, res))
        emit_free_value(em, t, 4, res, "result");
    text_printf(t, "    return code_of(rc);\n}\n");
}

static void emit_dispatch(struct emitter *em, struct text *t)
{
    text_printf(
        t, "\n"
           "/* Every procedure: its number, its shape, and what serves it. */\n"
           "static const struct procedure {\n"
           "    uint32_t number;\n"
           "    uint32_t shape;\n"
           "    int (*serve)(void *ctx, struct rpc_dec *d, "
           "struct rpc_enc *reply);\n"
           "} procedures[] = {\n");
    for (const struct proc *pr = em->ifc->svc.procs; pr; pr = pr->next)
        text_printf(t, "    {%llu, 0x%08xu, serve_%s},\n",
                    (unsigned long long)pr->number.value, (unsigned)pr->shape,
                    pr->name);
    text_printf(
        t,
        "};\n"
        "\n"
        "/* The rpc handler of the service: checks the call header, then "
        "runs\n"
        " * the procedure it names. */\n"
        "static int dispatch(void *ctx, const void *req, size_t len,\n"
        "                    struct rpc_enc *reply)\n"
        "{\n"
        "    struct rpc_dec d;\n"
        "    uint32_t version = 0, number = 0, shape = 0;\n"
        "    rpc_dec_init(&d, req, len);\n"
        "    rpc_get_u32(&d, &version);\n"
        "    rpc_get_u32(&d, &number);\n"
        "    rpc_get_u32(&d, &shape);\n"
        "    if (d.err != 0)\n"
        "        return refuse(reply, OUTCOME_BADARGS);\n"
        "    if (version != %s_VERSION)\n"
        "        return refuse(reply, OUTCOME_MISMATCH);\n"
        "    size_t n = sizeof(procedures) / sizeof(procedures[0]);\n"
        "    for (size_t i = 0; i < n; i++) {\n"
        "        if (procedures[i].number != number)\n"
        "            continue;\n"
        "        if (procedures[i].shape != shape)\n"
        "            return refuse(reply, OUTCOME_MISMATCH);\n"
        "        return procedures[i].serve(ctx, &d, reply);\n"
        "    }\n"
        "    return refuse(reply, OUTCOME_NOPROC);\n"
        "}\n"
        "\n"
        "int %s_register(struct rpc_server *s, void *ctx, int flags)\n"
        "{\n"
        "    return rpc_register(s, %s_SERVICE, dispatch, ctx, flags);\n"
        "}\n",
        em->upper, em->svc, em->upper);
}

void emit_server(struct emitter *em, struct text *t)
{
    const struct proc *procs = em->ifc->svc.procs;
    need_reset(em);
    for (const struct proc *pr = procs; pr != NULL; pr = pr->next) {
        for (const struct decl *d = pr->params; d != NULL; d = d->next)
            need_decl(em, d, DEC);
        need_type(em, &pr->result, ENC);
    }
    emit_opening(em, t, arena_printf(em->a, "%s_svc.c", em->base),
                 arena_printf(em->a,
                              "The server skeleton of service %s: "
                              "%s_register installs a handler\n"
                              "that checks each call's header, decodes "
                              "the arguments, runs the\n"
                              "%s_*_impl function the server program "
                              "defines and encodes its result\n"
                              "(see %s.h).",
                              em->svc, em->svc, em->svc, em->base));
    text_printf(t,
                "#include \"%s.h\"\n\n#include <errno.h>\n"
                "#include <limits.h>\n#include <stdlib.h>\n"
                "#include <string.h>\n",
                em->base);
    emit_outcomes(t);
    emit_codecs(em, t);
    emit_arguments(em, t);
    emit_banner(t, "Serving");
    emit_replies(em, t);
    for (const struct proc *pr = procs; pr != NULL; pr = pr->next)
        emit_serve(em, t, pr);
    emit_dispatch(em, t);
}
