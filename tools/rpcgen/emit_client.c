/*
 * emit_client.c - writes BASE_clnt.c, the client stubs.
 *
 * A stub starts the request with the call header, encodes its arguments
 * after it, and hands it to do_call (the rpc call, the outcome byte);
 * then it decodes the result into a local and gives it to the caller only
 * when the whole reply decoded.  The helpers are the same text for every
 * interface but for its names.
 */
#include "emit.h"

static void emit_calls(struct emitter *em, struct text *t)
{
    const char *u = em->upper, *h = arena_printf(em->a, "%s.h", em->base);
    emit_banner(t, "Calls");
    text_printf(
        t,
        "\n"
        "/* Starts a request: the call header of procedure proc (%s). */\n"
        "static int start_call(struct rpc_enc *req, uint32_t proc, "
        "uint32_t shape)\n"
        "{\n"
        "    rpc_enc_init(req, 0);\n"
        "    rpc_put_u32(req, %s_VERSION);\n"
        "    rpc_put_u32(req, proc);\n"
        "    rpc_put_u32(req, shape);\n"
        "    return req->err;\n"
        "}\n"
        "\n"
        "/* What a stub returns for a reply's outcome byte. */\n"
        "static int outcome_error(uint8_t outcome)\n"
        "{\n"
        "    switch (outcome) {\n"
        "    case OUTCOME_RAN:\n"
        "        return 0;\n"
        "    case OUTCOME_MISMATCH:\n"
        "        return -EPROTONOSUPPORT;\n"
        "    case OUTCOME_NOPROC:\n"
        "        return -ENOSYS;\n"
        "    case OUTCOME_BADARGS:\n"
        "        return -EBADMSG;\n"
        "    case OUTCOME_TOO_LARGE:\n"
        "        return -EMSGSIZE;\n"
        "    case OUTCOME_NOMEM:\n"
        "        return -ENOMEM;\n"
        "    default: /* OUTCOME_BADRESULT, or no outcome at all */\n"
        "        return -EPROTO;\n"
        "    }\n"
        "}\n",
        h, u);
    text_printf(
        t,
        "\n"
        "/* Sends the request in *req unless rc (an encoding error) says "
        "not to,\n"
        " * frees it, and reads the reply's outcome.  Returns 0 with *rep "
        "at the\n"
        " * result and *buf the reply (end_call frees it), or what the "
        "stub\n"
        " * returns, with nothing left to free. */\n"
        "static int do_call(struct rpc_client *c, struct rpc_enc *req, "
        "int rc,\n"
        "                   struct rpc_dec *rep, void **buf)\n"
        "{\n"
        "    size_t len = 0;\n"
        "    uint8_t outcome = OUTCOME_BADRESULT; /* if the reply is empty "
        "*/\n"
        "    *buf = NULL;\n"
        "    if (rc == 0)\n"
        "        rc = req->err;\n"
        "    if (rc == 0)\n"
        "        rc = rpc_call(c, %s_SERVICE, req->buf, req->len, buf, "
        "&len,\n"
        "                      %s_TIMEOUT_MS);\n"
        "    rpc_enc_free(req);\n"
        "    if (rc < 0) /* rpc's -ENOSYS: no %s_SERVICE at that server */\n"
        "        return rc == -ENOSYS ? -EPROTONOSUPPORT : rc;\n"
        "    rpc_dec_init(rep, *buf, len);\n"
        "    rpc_get_u8(rep, &outcome);\n"
        "    int err = outcome_error(outcome);\n"
        "    if (err == 0 && rc > 0) /* the procedure's own code, no "
        "result */\n"
        "        err = rpc_dec_end(rep) == 0 ? rc : -EPROTO;\n"
        "    if (err != 0) {\n"
        "        free(*buf);\n"
        "        *buf = NULL;\n"
        "    }\n"
        "    return err;\n"
        "}\n"
        "\n"
        "/* Ends decoding a result whose first error is rc: every byte must "
        "have\n"
        " * been read.  Frees the reply.  A result that does not decode is\n"
        " * -EPROTO. */\n"
        "static int end_call(struct rpc_dec *rep, void *buf, int rc)\n"
        "{\n"
        "    if (rc == 0)\n"
        "        rc = rpc_dec_end(rep);\n"
        "    free(buf);\n"
        "    return rc == 0 || rc == -ENOMEM ? rc : -EPROTO;\n"
        "}\n",
        u, u, u);
}

/* After do_call: decodes the result into `out` and hands it over. */
static void emit_result(struct emitter *em, struct text *t,
                        const struct type *res)
{
    if (res->base == T_VOID) {
        text_printf(t, "    return end_call(&rep, buf, 0);\n");
        return;
    }
    text_printf(t, "    %s = %s;\n", join(em, ctype(em, res), "out"),
                zero_of(res));
    emit_get_value(em, t, 4, "&rep", res, value_elem(em, "out"), true);
    text_printf(t, "    rc = end_call(&rep, buf, rc);\n"
                   "    if (rc == 0 && result != NULL)\n"
                   "        *result = out;\n");
    if (type_frees(em, res)) {
        text_printf(t, "    else\n");
        emit_free_value(em, t, 8, res, "out");
    }
    text_printf(t, "    return rc;\n");
}

static void emit_stub(struct emitter *em, struct text *t, const struct proc *pr)
{
    text_printf(t, "\n");
    emit_proc_comment(em, t, pr);
    emit_stub_head(em, t, pr, ")");
    text_printf(t,
                "\n{\n"
                "    struct rpc_enc req;\n"
                "    struct rpc_dec rep;\n"
                "    void *buf;\n"
                "    int rc = start_call(&req, %llu, 0x%08xu);\n",
                (unsigned long long)pr->number.value, (unsigned)pr->shape);
    em->rc_zero = false; /* rc holds start_call's error */
    for (const struct decl *d = pr->params; d != NULL; d = d->next)
        emit_put_decl(em, t, "&req", d, "", true);
    text_printf(t, "    if ((rc = do_call(c, &req, rc, &rep, &buf)) != 0)\n"
                   "        return rc;\n");
    emit_result(em, t, &pr->result);
    text_printf(t, "}\n");
}

void emit_client(struct emitter *em, struct text *t)
{
    const struct proc *procs = em->ifc->svc.procs;
    need_reset(em);
    for (const struct proc *pr = procs; pr != NULL; pr = pr->next) {
        for (const struct decl *d = pr->params; d != NULL; d = d->next)
            need_decl(em, d, ENC);
        need_type(em, &pr->result, DEC);
    }
    emit_opening(em, t, arena_printf(em->a, "%s_clnt.c", em->base),
                 arena_printf(em->a,
                              "Client stubs of service %s: each encodes "
                              "its arguments after the call\n"
                              "header, calls the server and decodes the "
                              "result (see %s.h).",
                              em->svc, em->base));
    text_printf(t,
                "#include \"%s.h\"\n\n#include <errno.h>\n"
                "#include <stdlib.h>\n#include <string.h>\n",
                em->base);
    emit_outcomes(t);
    emit_codecs(em, t);
    emit_calls(em, t);
    emit_banner(t, "Stubs");
    for (const struct proc *pr = procs; pr != NULL; pr = pr->next)
        emit_stub(em, t, pr);
}
