# bench/lib.sh - what bench/run.sh and bench/netns.sh share: time, sizes
# for a quick trial, and recording a run.  Sourced; expects $runs (the
# file of recorded runs, one JSON object a line) and $quick (1: a trial).

now() { date +%s.%N; }

since() { awk -v t0="$1" -v t1="$(now)" 'BEGIN { printf "%.1f", t1 - t0 }'; }

# scale N: N, or a hundredth of it (at least 1000) for a quick trial.
scale() {
    if [ "$quick" = 1 ]; then
        awk -v n="$1" 'BEGIN { n = int(n / 100); print n < 1000 ? 1000 : n }'
    else
        echo "$1"
    fi
}

# record FILE CASE GROUP LABEL NETWORK LOSS RC [EXTRA]: appends the JSON
# object in FILE (rperf's output, perhaps mixed with messages) to the runs,
# on one line, with the case's own keys in front; EXTRA is more "key":
# value pairs.  A run that printed no object is recorded as failed, with
# its first line of output.
record() {
    local file=$1 name=$2 group=$3 label=$4 net=$5 loss=$6 rc=$7 extra=${8:-}
    local head obj why
    head="\"case\": \"$name\", \"group\": \"$group\", \"label\": \"$label\","
    head="$head \"network\": \"$net\", \"loss_pct\": $loss, \"exit\": $rc,"
    [ -n "$extra" ] && head="$head $extra,"
    obj=$(sed -n '/^{$/,/^}$/p' "$file" | tr '\n' ' ' |
        sed 's/^{ *//; s/ *} *$//; s/   */ /g')
    if [ -z "$obj" ]; then
        why=$(grep -v '^[[:space:]]*$' "$file" | head -1 | tr -d '"\\' | cut -c1-200)
        obj="\"ok\": false, \"error\": \"rperf printed no result: ${why:-nothing}\""
    fi
    echo "{$head $obj}" >> "$runs"
}

# progress LABEL SECONDS FILE [NOTE]: one line per case.  (Not "say":
# bench/netns.sh sources tests/netns.sh, which has one.)
progress() {
    local status="" err
    err=$(sed -n 's/^  "error": "\(.*\)",$/\1/p' "$3" | head -1)
    [ -n "$err" ] && status="  FAILED: $err"
    grep -q '^{$' "$3" || status="  FAILED: $(head -1 "$3")"
    printf 'bench: %-44s %6s s%s%s\n' "$1" "$2" "$status" "${4:+  ($4)}"
}

# The servers are started with long options: on a shared machine other
# people's cleanup that ends "rperf -s -p 0" then leaves them alone (a
# server ended anyway is handled by the retry).

# The note a retried case carries: why the first attempt does not count.
retry_note() {
    echo "\"retried\": \"the first attempt failed because the rperf server" \
        "was gone (killed from outside, or it crashed: exit status $1)\""
}
