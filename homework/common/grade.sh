#!/bin/sh
# grade.sh - builds one question's code and runs its grader.
#
#     sh common/grade.sh Q [DIR]
#
# DIR holds the code to grade (default qQ, the student's folder), absolute
# or relative to homework/.  Only the files the question names are taken
# from DIR; headers that fix the question's interface, and the grader
# itself, always come from this copy of homework/, so a submission cannot
# change what it is graded against.
#
# The Makefile sets the environment: HW_CC, HW_CFLAGS (for the student's
# code), HW_LDFLAGS, HW_ROOT (the repository, for udp.h), HW_LIB
# (librmsg.a), HW_RPERF, and HW_STRICT=1 to refuse warnings in the code
# graded (used for the reference solutions).
#
# Exit status: 0 when every check passed, 1 when one failed (a build that
# fails included), 2 when the grader itself could not run.
set -u

q=${1:?usage: grade.sh Q [DIR]}
hw=$(cd "$(dirname "$0")/.." && pwd)
dir=${2:-q$q}
case $dir in /*) ;; *) dir=$hw/$dir ;; esac
if [ ! -f "$hw/q$q/grade.sh" ]; then
    echo "grade: there is no question $q (1 to 7)" >&2
    exit 2
fi
if [ ! -d "$dir" ]; then
    echo "grade: $dir is not a directory" >&2
    exit 2
fi

: "${HW_CC:=cc}" "${HW_CFLAGS:=-std=c11 -Wall -Wextra -O2 -g}"
: "${HW_LDFLAGS:=}" "${HW_ROOT:=$(cd "$hw/.." && pwd)}"
: "${HW_LIB:=$HW_ROOT/build/librmsg.a}" "${HW_RPERF:=$HW_ROOT/build/tools/rperf}"
: "${HW_STRICT:=0}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/homework-q$q.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 2' INT TERM
src=$tmp/src
mkdir "$src"

# ---------------------------------------------------------------------------
# Helpers for the questions' grade.sh

# take FILE...: copies the student's files from DIR into the build folder.
take() {
    for f in "$@"; do
        if [ ! -f "$dir/$f" ]; then
            echo "  FAIL  builds: $f is missing from $dir"
            exit 1
        fi
        cp "$dir/$f" "$src/$f"
    done
}

# contract FILE...: the question's own headers, over any copy in DIR.
contract() {
    for f in "$@"; do
        cp "$hw/q$q/$f" "$src/$f" || exit 2
    done
}

# student_cc SRC: compiles one of the student's files (warnings shown).
student_cc() {
    strict=
    [ "$HW_STRICT" = 1 ] && strict=-Werror
    # shellcheck disable=SC2086
    if ! $HW_CC $HW_CFLAGS $strict -I"$src" -I"$HW_ROOT" -c "$src/$1" \
            -o "$tmp/${1%.c}.o" > "$tmp/cc.out" 2>&1; then
        echo "  FAIL  builds: $1 does not compile:"
        sed -n '1,40s/^/        /p' "$tmp/cc.out"
        exit 1
    fi
    if [ -s "$tmp/cc.out" ]; then
        echo "  note  $1 compiles with warnings:"
        sed -n '1,20s/^/        /p' "$tmp/cc.out"
    fi
}

# grader_cc SRC...: compiles the grader's own files, which must be clean.
grader_cc() {
    for f in "$@"; do
        o=$tmp/grader_$(basename "${f%.c}").o
        # shellcheck disable=SC2086
        $HW_CC $HW_CFLAGS -Werror -I"$src" -I"$hw/common" -I"$HW_ROOT" \
            -DHW_Q="$q" -c "$hw/$f" -o "$o" || exit 2
    done
}

# link OUT OBJ...: links objects from the build folder with the library.
link() {
    out=$1
    shift
    objs=
    for o in "$@"; do objs="$objs $tmp/$o"; done
    # shellcheck disable=SC2086
    if ! $HW_CC $HW_CFLAGS $HW_LDFLAGS -o "$tmp/$out" $objs "$HW_LIB" \
            -lpthread -lm > "$tmp/ld.out" 2>&1; then
        echo "  FAIL  builds: linking $out failed:"
        sed -n '1,20s/^/        /p' "$tmp/ld.out"
        exit 1
    fi
}

# built WHAT: reports the build as the first check.
built() {
    echo "  PASS  builds ($1)"
}

# ---------------------------------------------------------------------------

if [ ! -f "$HW_LIB" ]; then
    echo "grade: $HW_LIB is missing: run make -C homework (it builds it)" >&2
    exit 2
fi
echo "grading question $q: $dir"
# shellcheck source=/dev/null
. "$hw/q$q/grade.sh"
grade
