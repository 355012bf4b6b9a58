#!/bin/sh
# Every error rpcgen reports in an interface file, checked exactly: the
# message ("bad.x:LINE:COLUMN: ..."), exit status 1, and no output written.
# Each case is a here-document: lines starting with "> " are the expected
# messages, the rest is the interface file.
# Usage: tests/rpcgen/errors.sh RPCGEN
set -u
rpcgen=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

# Runs rpcgen in $tmp on the file $2 and compares stderr with $tmp/want.
run() {
    want_rc=$1 file=$2
    rm -rf "$tmp/out"
    mkdir "$tmp/out"
    (cd "$tmp" && "$rpcgen" -o out "$file") > "$tmp/stdout" 2> "$tmp/stderr"
    rc=$?
    if [ "$rc" -eq "$want_rc" ] && cmp -s "$tmp/want" "$tmp/stderr" &&
       [ -z "$(ls -A "$tmp/out")" ] && [ ! -s "$tmp/stdout" ]; then
        pass=$((pass + 1))
        return
    fi
    fail=$((fail + 1))
    echo "rpcgen errors: FAILED for:"
    sed 's/^/    /' "$tmp/$file" 2>/dev/null
    echo "  expected (status $want_rc):"
    sed 's/^/    /' "$tmp/want"
    echo "  got (status $rc, output: $(ls "$tmp/out" | tr '\n' ' ')):"
    sed 's/^/    /' "$tmp/stderr"
}

check() {
    cat > "$tmp/case"
    sed -n 's/^> //p' "$tmp/case" > "$tmp/want"
    grep -v '^> ' "$tmp/case" > "$tmp/bad.x"
    run 1 bad.x
}

# --- Unknown types -------------------------------------------------------
check <<'EOF'
> bad.x:2:5: unknown type 'int33'
service s = 1 version 1 {
    int33 f(int32 a) = 1;
};
EOF
check <<'EOF'
> bad.x:1:12: unknown type 'pointt'
struct a { pointt p; };
service s = 1 version 1 { void f() = 1; };
EOF
check <<'EOF'
> bad.x:1:12: struct 'b' is used before its definition (at 2:8)
struct a { b inner; };
struct b { int32 x; };
service s = 1 version 1 { void f() = 1; };
EOF
check <<'EOF'
> bad.x:1:24: struct 'node' cannot contain itself
struct node { int32 v; node next; };
service s = 1 version 1 { void f() = 1; };
EOF

# --- Duplicate names and numbers -----------------------------------------
check <<'EOF'
> bad.x:2:8: duplicate struct 'a' (first at 1:8)
struct a { int32 x; };
struct a { int32 y; };
service s = 1 version 1 { void f() = 1; };
EOF
check <<'EOF'
> bad.x:1:26: duplicate field 'x' in struct 'a' (first at 1:18)
struct a { int32 x; bool x; };
service s = 1 version 1 { void f() = 1; };
EOF
check <<'EOF'
> bad.x:3:11: duplicate procedure 'f' (first at 2:10)
service s = 1 version 1 {
    void f() = 1;
    int32 f() = 2;
};
EOF
check <<'EOF'
> bad.x:3:16: duplicate procedure number 0x1 (first used by 'f' at 2:10)
service s = 1 version 1 {
    void f() = 1;
    void g() = 0x1;
};
EOF
check <<'EOF'
> bad.x:1:48: duplicate parameter 'a' in 'f' (first at 1:40)
service s = 1 version 1 { void f(int32 a, bool a) = 1; };
EOF
check <<'EOF'
> bad.x:1:51: parameter 'v_len' clashes with the length of 'v' (at 1:40)
service s = 1 version 1 { void f(int32 v<>, int32 v_len) = 1; };
EOF
check <<'EOF'
> bad.x:1:56: the length of 'data' would be 'data_len', the name of the parameter at 1:40
service s = 1 version 1 { void f(int32 data_len, bytes data) = 1; };
EOF
check <<'EOF'
> bad.x:1:46: procedure 'f_impl' clashes with s_f_impl, the implementation of 'f'
service s = 1 version 1 { void f() = 1; void f_impl() = 2; };
EOF
check <<'EOF'
> bad.x:2:32: procedure 'point_free' clashes with s_point_free, which frees struct 'point'
struct point { int32 x; };
service s = 1 version 1 { void point_free() = 1; };
EOF

# --- Missing semicolons (reported just after what they should follow) -----
check <<'EOF'
> bad.x:2:12: expected ';' after 'x'
struct a {
    int32 x
    int32 y;
};
service s = 1 version 1 { void f() = 1; };
EOF
check <<'EOF'
> bad.x:1:22: expected ';' after '}'
struct a { int32 x; }
service s = 1 version 1 { void f() = 1; };
EOF
check <<'EOF'
> bad.x:2:17: expected ';' after '1'
service s = 1 version 1 {
    void f() = 1
};
EOF
check <<'EOF'
> bad.x:3:2: expected ';' after '}'
service s = 1 version 1 {
    void f() = 1;
}
EOF

# --- Numbers out of range ------------------------------------------------
check <<'EOF'
> bad.x:1:13: service number 4294967296 out of range (0 to 4294967295)
service s = 4294967296 version 1 { void f() = 1; };
EOF
check <<'EOF'
> bad.x:1:23: version 0x100000000 out of range (0 to 4294967295)
service s = 1 version 0x100000000 { void f() = 1; };
EOF
check <<'EOF'
> bad.x:1:38: procedure number 99999999999999999999999 out of range (0 to 4294967295)
service s = 1 version 1 { void f() = 99999999999999999999999; };
EOF
check <<'EOF'
> bad.x:1:42: array size 0 out of range (1 to 65536)
service s = 1 version 1 { void f(int32 v[0]) = 1; };
EOF
check <<'EOF'
> bad.x:1:42: array size 65537 out of range (1 to 65536)
service s = 1 version 1 { void f(int32 v[65537]) = 1; };
EOF
check <<'EOF'
> bad.x:1:42: array bound 0 out of range (1 to 4294967295)
service s = 1 version 1 { void f(int32 v<0>) = 1; };
EOF
check <<'EOF'
> bad.x:1:41: length bound 0 out of range (1 to 4294967295)
service s = 1 version 1 { void f(string<0> v) = 1; };
EOF
check <<'EOF'
> bad.x:1:40: length bound 4294967296 out of range (1 to 4294967295)
service s = 1 version 1 { void f(bytes<4294967296> v) = 1; };
EOF

# --- Names the generated C could not use ---------------------------------
check <<'EOF'
> bad.x:1:18: 'int' is reserved in C
struct a { int32 int; };
service s = 1 version 1 { void f() = 1; };
EOF
check <<'EOF'
> bad.x:1:40: 'return' is reserved in C
service s = 1 version 1 { void f(int32 return) = 1; };
EOF
check <<'EOF'
> bad.x:1:18: '_x': names may not begin with '_'
struct a { int32 _x; };
service s = 1 version 1 { void f() = 1; };
EOF
check <<'EOF'
> bad.x:1:32: 'rpc_call': names beginning with 'rpc_' are the library's
service s = 1 version 1 { void rpc_call() = 1; };
EOF
check <<'EOF'
> bad.x:1:18: 'S_VERSION' is a macro of the generated header
struct a { int32 S_VERSION; };
service s = 1 version 1 { void f() = 1; };
EOF
check <<'EOF'
> bad.x:1:40: parameter name 'c' is used by the generated code
service s = 1 version 1 { void f(int32 c) = 1; };
EOF
check <<'EOF'
> bad.x:1:40: parameter name 'result' is used by the generated code
service s = 1 version 1 { void f(int32 result) = 1; };
EOF
check <<'EOF'
> bad.x:2:40: parameter name 'enc_point' is used by the generated code
struct point { int32 x; };
service s = 1 version 1 { void f(point enc_point) = 1; };
EOF
check <<'EOF'
> bad.x:1:8: 'int32' is a built-in type
struct int32 { int32 x; };
service s = 1 version 1 { void f() = 1; };
EOF
check <<'EOF'
> bad.x:1:9: service name 'rpc' would clash with the library's names
service rpc = 1 version 1 { void f() = 1; };
EOF

# --- Other syntax --------------------------------------------------------
check <<'EOF'
> bad.x:1:8: struct 'a' has no fields
struct a { };
service s = 1 version 1 { void f() = 1; };
EOF
check <<'EOF'
> bad.x:1:9: service 's' has no procedures
service s = 1 version 1 { };
EOF
check <<'EOF'
> bad.x:1:15: expected 'version', found '{'
service s = 1 { void f() = 1; };
EOF
check <<'EOF'
> bad.x:2:1: expected end of file after the service, found 'struct'
service s = 1 version 1 { void f() = 1; };
struct a { int32 x; };
EOF
check <<'EOF'
> bad.x:1:1: expected 'struct' or 'service', found end of file
EOF
check <<'EOF'
> bad.x:1:38: expected ')', found ','
service s = 1 version 1 { void f(void, int32 a) = 1; };
EOF
check <<'EOF'
> bad.x:1:41: expected ')', found ';'
service s = 1 version 1 { void f(int32 a; int32 b) = 1; };
EOF
check <<'EOF'
> bad.x:1:46: expected a number, found ';'
service s = 1 version 1 { int32 f(int32 a) = ; };
EOF
check <<'EOF'
> bad.x:1:32: expected a name, found '<'
service s = 1 version 1 { int32<4> g() = 2; };
EOF
check <<'EOF'
> bad.x:1:13: invalid number '12ab'
service s = 12ab version 1 { void f() = 1; };
EOF
check <<'EOF'
> bad.x:1:13: invalid number '007'
service s = 007 version 1 { void f() = 1; };
EOF
check <<'EOF'
> bad.x:1:13: invalid number '0x'
service s = 0x version 1 { void f() = 1; };
EOF
check <<'EOF'
> bad.x:2:1: unexpected character '@'
service s = 1 version 1 { void f() = 1; };
@
EOF
check <<'EOF'
> bad.x:1:44: unexpected byte 0xc3
service s = 1 version 1 { void f() = 1; }; é
EOF
check <<'EOF'
> bad.x:2:1: unterminated comment
service s = 1 version 1 { void f() = 1; };
/* void g() = 2; };
EOF

# --- The checker reports every error, in order ---------------------------
check <<'EOF'
> bad.x:1:18: 'int' is reserved in C
> bad.x:1:30: array size 0 out of range (1 to 65536)
> bad.x:2:34: unknown type 'pt'
> bad.x:2:50: duplicate procedure 'f' (first at 2:32)
> bad.x:2:56: duplicate procedure number 1 (first used by 'f' at 2:32)
struct a { int32 int; bool x[0]; };
service s = 1 version 1 { void f(pt p) = 1; void f() = 1; };
EOF

# --- The command line ----------------------------------------------------
printf 'rpcgen: cannot open nosuch.x: No such file or directory\n' > "$tmp/want"
run 1 nosuch.x
printf 'service s = 1 version 1 { void f() = 1; };\n' > "$tmp/rpc.x"
printf "rpcgen: rpc.x: output rpc.h would hide the library's header\n" \
    > "$tmp/want"
run 1 rpc.x
"$rpcgen" > /dev/null 2>&1
[ $? -eq 2 ] && pass=$((pass + 1)) ||
    { fail=$((fail + 1)); echo "rpcgen errors: FAILED: no file is not status 2"; }
# And a correct file does produce the three files (so the cases above
# could have failed).
printf 'service s = 1 version 1 { void f() = 1; };\n' > "$tmp/good.x"
(cd "$tmp" && "$rpcgen" -o . good.x) 2> "$tmp/stderr"
if [ $? -eq 0 ] && [ ! -s "$tmp/stderr" ] && [ -s "$tmp/good.h" ] &&
   [ -s "$tmp/good_clnt.c" ] && [ -s "$tmp/good_svc.c" ]; then
    pass=$((pass + 1))
else
    fail=$((fail + 1)); echo "rpcgen errors: FAILED: good.x was refused"
fi

echo "rpcgen errors: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
