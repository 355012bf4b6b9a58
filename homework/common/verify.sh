#!/bin/sh
# verify.sh - checks the graders in both directions.
#
#     sh common/verify.sh [Q...]      (default: every question there is)
#
# For each question, the grader runs against the reference solution in
# solutions/qQ, which must pass every check (built with -Werror too), and
# against the starter code in qQ as handed out, which must build and then
# fail.  A grader that passes everything, or nothing, would be caught here.
# Run it on an untouched tree: a student's finished qQ is no starter.
#
# The environment is common/grade.sh's (the Makefile sets it).
set -u
hw=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/homework-verify.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 2' INT TERM

questions=${*:-$(for q in 1 2 3 4 5 6 7; do
    [ -f "$hw/q$q/grade.sh" ] && echo "$q"; done)}
begin=$(date +%s)
bad=0

# summary FILE: "P of N" from a grader's last line, or "no summary".
summary() {
    s=$(sed -n 's/.*: \([0-9]* of [0-9]*\) checks passed.*/\1/p' "$1" | tail -1)
    echo "${s:-no summary}"
}

# show FILE: the grader's output, indented, after a failed verdict.
show() {
    sed 's/^/      | /' "$1"
}

for q in $questions; do
    t0=$(date +%s)
    HW_STRICT=1 sh "$hw/common/grade.sh" "$q" "$hw/solutions/q$q" \
        > "$tmp/solution" 2>&1
    sol=$?
    t1=$(date +%s)
    sh "$hw/common/grade.sh" "$q" "$hw/q$q" > "$tmp/starter" 2>&1
    sta=$?
    t2=$(date +%s)

    verdict=ok
    if [ "$sol" -ne 0 ]; then
        verdict="FAILED: the grader does not pass the reference solution"
    elif [ "$sta" -ne 1 ]; then
        if [ "$sta" -eq 0 ]; then
            verdict="FAILED: the grader passes the untouched starter code"
        else
            verdict="FAILED: the grader could not run on the starter code"
        fi
    elif [ "$q" != 7 ] && ! grep -q '^  PASS  builds' "$tmp/starter"; then
        verdict="FAILED: the starter code does not build"
    fi
    printf 'q%s: solution %s (%s checks, %ss), starter %s (%s checks, %ss): %s\n' \
        "$q" "$([ "$sol" -eq 0 ] && echo passed || echo failed)" \
        "$(summary "$tmp/solution")" $((t1 - t0)) \
        "$([ "$sta" -eq 0 ] && echo passed || echo failed)" \
        "$(summary "$tmp/starter")" $((t2 - t1)) "$verdict"
    if [ "$verdict" != ok ]; then
        bad=$((bad + 1))
        echo "    reference solution:"
        show "$tmp/solution"
        echo "    starter code:"
        show "$tmp/starter"
    fi
done

echo "homework verify: $bad problem(s), $(( $(date +%s) - begin )) s"
[ "$bad" -eq 0 ]
