/*
 * lex.c - splits an interface file into tokens.
 *
 * Tokens are names (letters, digits and '_', not starting with a digit),
 * numbers (decimal without leading zeros, or 0x and hexadecimal digits),
 * and the punctuation { } ( ) [ ] < > ; , =.  Space, tabs, newlines and
 * comments (C's two kinds) separate tokens.  Words of the language
 * (struct, service, int32, ...) are names here; the parser decides what
 * they mean where they stand, so a field may be called `version`.
 *
 * Positions count lines from 1 and columns in bytes from 1.
 */
#include "rpcgen.h"

#include <ctype.h>
#include <string.h>

void lex_init(struct lexer *lx, const char *src, size_t len, struct diag *dg)
{
    *lx = (struct lexer){.src = src, .len = len, .at = {1, 1}, .dg = dg};
}

/* The byte k places ahead, or 0 past the end. */
static int peek(const struct lexer *lx, size_t k)
{
    return lx->off + k < lx->len ? (unsigned char)lx->src[lx->off + k] : 0;
}

static void advance(struct lexer *lx)
{
    if (lx->src[lx->off] == '\n') {
        lx->at.line++;
        lx->at.col = 1;
    } else {
        lx->at.col++;
    }
    lx->off++;
}

/* Skips space and comments; -1 after reporting an unterminated comment. */
static int skip_space(struct lexer *lx)
{
    for (;;) {
        int c = peek(lx, 0);
        if (lx->off < lx->len && (c == ' ' || c == '\t' || c == '\n' ||
                                  c == '\r' || c == '\f' || c == '\v')) {
            advance(lx);
        } else if (c == '/' && peek(lx, 1) == '/') {
            while (lx->off < lx->len && lx->src[lx->off] != '\n')
                advance(lx);
        } else if (c == '/' && peek(lx, 1) == '*') {
            struct pos start = lx->at;
            advance(lx);
            advance(lx);
            while (lx->off < lx->len &&
                   !(peek(lx, 0) == '*' && peek(lx, 1) == '/'))
                advance(lx);
            if (lx->off >= lx->len) {
                diag_error(lx->dg, start, "unterminated comment");
                return -1;
            }
            advance(lx);
            advance(lx);
        } else {
            return 0;
        }
    }
}

static bool is_name_char(int c)
{
    return isalnum(c) || c == '_';
}

/* The value of the digits of t in base 10 or 16, or overflow. */
static void number_value(struct token *t, size_t skip, unsigned base)
{
    for (size_t i = skip; i < t->len; i++) {
        int c = (unsigned char)t->text[i];
        unsigned d = isdigit(c) ? (unsigned)(c - '0')
                                : (unsigned)(tolower(c) - 'a' + 10);
        if (t->value > (UINT64_MAX - d) / base)
            t->overflow = true;
        t->value = t->value * base + d;
    }
}

/* A number: decimal ("0", "42") or hexadecimal ("0x2a").  Anything else
 * made of name characters ("012", "0x", "12ab") is refused. */
static int lex_number(struct lexer *lx, struct token *t)
{
    while (is_name_char(peek(lx, 0)))
        advance(lx);
    t->len = lx->off - (size_t)(t->text - lx->src);
    bool hex = t->len > 2 && t->text[0] == '0' &&
               (t->text[1] == 'x' || t->text[1] == 'X');
    bool ok = hex || t->len == 1 || t->text[0] != '0';
    for (size_t i = hex ? 2 : 0; ok && i < t->len; i++)
        ok = hex ? isxdigit((unsigned char)t->text[i])
                 : isdigit((unsigned char)t->text[i]);
    if (!ok) {
        diag_error(lx->dg, t->at, "invalid number '%.*s'", (int)t->len,
                   t->text);
        return -1;
    }
    t->kind = TK_NUMBER;
    number_value(t, hex ? 2 : 0, hex ? 16 : 10);
    return 0;
}

int lex_next(struct lexer *lx, struct token *t)
{
    if (skip_space(lx) != 0)
        return -1;
    *t = (struct token){.text = lx->src + lx->off, .at = lx->at};
    int c = peek(lx, 0);
    if (lx->off >= lx->len) {
        t->kind = TK_EOF;
    } else if (isdigit(c)) {
        if (lex_number(lx, t) != 0)
            return -1;
    } else if (isalpha(c) || c == '_') {
        while (is_name_char(peek(lx, 0)))
            advance(lx);
        t->kind = TK_NAME;
        t->len = lx->off - (size_t)(t->text - lx->src);
    } else if (c != 0 && strchr("{}()[]<>;,=", c) != NULL) {
        advance(lx);
        t->kind = TK_PUNCT;
        t->len = 1;
    } else if (isprint(c)) {
        diag_error(lx->dg, lx->at, "unexpected character '%c'", c);
        return -1;
    } else {
        diag_error(lx->dg, lx->at, "unexpected byte 0x%02x", c);
        return -1;
    }
    t->end = lx->at;
    return 0;
}
