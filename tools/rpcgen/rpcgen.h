/*
 * rpcgen.h - the stub generator's pieces and the interface they share.
 *
 * rpcgen reads an interface file (a service, its procedures and the structs
 * they pass; the grammar is in README.md) and writes a header, client stubs
 * and a server skeleton for the rpc layer.  It works in four passes over one
 * tree, each in its own file:
 *
 *   lex.c     characters -> tokens, with line and column
 *   parse.c   tokens -> the tree below (syntax errors stop it)
 *   check.c   names, numbers and types: resolves struct references,
 *             reports every error it finds, computes sizes and shapes
 *   emit*.c   the tree -> C text, in memory
 *
 * Nothing is written to disk until all four succeed (rpcgen.c does that),
 * so an interface with an error leaves no output behind.
 *
 * Memory: every node, name and piece of text comes from one arena freed at
 * the end; allocation failure ends the program (a compiler has nothing
 * better to do, and nothing has been written yet).
 */
#ifndef RPCGEN_H
#define RPCGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* Memory and text                                                           */
/* ------------------------------------------------------------------------ */

struct arena_block;

/* All the memory of one run. */
struct arena {
    struct arena_block *blocks;
};

/* n zeroed bytes that live until arena_free; never NULL (exits instead). */
void *arena_alloc(struct arena *a, size_t n);
/* A NUL-terminated copy of the n bytes at s. */
char *arena_strndup(struct arena *a, const char *s, size_t n);
/* printf into a new arena string. */
char *arena_printf(struct arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void arena_free(struct arena *a);

/* A growing piece of text (malloc'd; text_free releases it). */
struct text {
    char *s;
    size_t len, cap;
};

void text_printf(struct text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void text_free(struct text *t);

/* ------------------------------------------------------------------------ */
/* Diagnostics                                                               */
/* ------------------------------------------------------------------------ */

/* A place in the interface file: line and column (bytes), both from 1. */
struct pos {
    int line, col;
};

/* Where errors go: "file:line:column: message" on stderr, counted. */
struct diag {
    const char *file; /* the name to print */
    int errors;
};

void diag_error(struct diag *dg, struct pos at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------------ */
/* The interface tree                                                        */
/* ------------------------------------------------------------------------ */

/* A number as written: its value, or overflow when it does not fit. */
struct num {
    uint64_t value;
    bool overflow;
    const char *text; /* as written, for messages */
    struct pos at;
};

enum base {
    T_INT8,
    T_INT16,
    T_INT32,
    T_INT64,
    T_UINT8,
    T_UINT16,
    T_UINT32,
    T_UINT64,
    T_BOOL,
    T_DOUBLE,
    T_STRING,
    T_BYTES,
    T_STRUCT, /* a struct named by the interface */
    T_VOID    /* a procedure's result only: no result */
};

struct structdef;

/* A type as written where a value goes (one element, never an array). */
struct type {
    enum base base;
    struct num bound;     /* string, bytes: <N> (value 0 and no text: <>) */
    uint32_t max;         /* string, bytes: most bytes (after checking) */
    const char *name;     /* T_STRUCT: the name as written */
    struct structdef *st; /* T_STRUCT: the struct (after checking) */
    struct pos at;
};

enum dim {
    D_ONE,   /* one value */
    D_FIXED, /* name[N]: exactly N values */
    D_VAR    /* name<N> or name<>: up to N values, a count first */
};

/* A struct field or a procedure parameter. */
struct decl {
    struct decl *next;
    const char *name;
    struct pos at; /* of the name */
    struct type type;
    enum dim dim;
    struct num size; /* D_FIXED: [N]; D_VAR: <N> (no text: <>) */
    uint32_t count;  /* D_FIXED: elements; D_VAR: most elements */
};

struct structdef {
    struct structdef *next;
    const char *name;
    struct pos at;
    struct decl *fields;
    int index;         /* 0, 1, ... in the order of the file */
    bool checked;      /* its fields have been checked */
    uint64_t wire_min; /* fewest bytes any value of it encodes to */
};

struct proc {
    struct proc *next;
    const char *name;
    struct pos at;
    struct type result; /* T_VOID: none */
    struct decl *params;
    struct num number;
    uint32_t shape; /* FNV-1a of the types written out (check.c) */
};

struct service {
    const char *name;
    struct pos at;
    struct num number;
    struct num version;
    struct proc *procs;
};

struct interface {
    struct structdef *structs; /* in the order of the file */
    int nstructs;
    struct service svc;
};

/* ------------------------------------------------------------------------ */
/* Limits and defaults (documented in README.md)                             */
/* ------------------------------------------------------------------------ */

#define RPCGEN_DEFAULT_MAX 65536u /* string, bytes and arrays without N */
#define RPCGEN_FIXED_MAX   65536u /* most elements of name[N] */
#define RPCGEN_TIMEOUT_MS  10000  /* default deadline of a generated stub */

/* ------------------------------------------------------------------------ */
/* Passes                                                                    */
/* ------------------------------------------------------------------------ */

enum tok {
    TK_EOF,
    TK_NAME,   /* identifier or word of the language */
    TK_NUMBER, /* decimal or 0x hexadecimal */
    TK_PUNCT   /* one of { } ( ) [ ] < > ; , = */
};

struct token {
    enum tok kind;
    const char *text; /* into the source; len bytes */
    size_t len;
    struct pos at;  /* first character */
    struct pos end; /* just after the last one */
    uint64_t value; /* TK_NUMBER */
    bool overflow;  /* TK_NUMBER larger than UINT64_MAX */
};

struct lexer {
    const char *src;
    size_t len, off;
    struct pos at;
    struct diag *dg;
};

void lex_init(struct lexer *lx, const char *src, size_t len, struct diag *dg);
/* The next token into *t; returns 0, or -1 after reporting an error. */
int lex_next(struct lexer *lx, struct token *t);

/* Parses a whole file into *ifc.  Returns 0, or -1 after reporting the
 * first syntax error. */
int parse_interface(const char *src, size_t len, struct diag *dg,
                    struct arena *a, struct interface *ifc);

/* Checks a parsed interface; returns the number of errors reported. */
int check_interface(struct interface *ifc, struct diag *dg, struct arena *a);

/* The generated files of one interface. */
struct output {
    struct text header; /* BASE.h */
    struct text client; /* BASE_clnt.c */
    struct text server; /* BASE_svc.c */
};

/* Writes the three files' text for a checked interface read from the file
 * called `source` (its name only, for the comments) into *out. */
void emit_interface(const struct interface *ifc, const char *base,
                    const char *source, struct arena *a, struct output *out);

/* True for the built-in type names (int32, string, ...); *b says which. */
bool base_by_name(const char *name, enum base *b);
const char *base_name(enum base b);
/* The fewest bytes one value of a checked type encodes to. */
uint64_t type_wire_min(const struct type *t);

#endif
