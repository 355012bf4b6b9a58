# shellcheck shell=bash disable=SC2154 # $tmp and builds are the caller's
# bench/servers.sh - what bench/alternate.sh and bench/pinned.sh share:
# one rperf server per build under comparison.  Sourced; expects $tmp (a
# scratch directory) and the array builds (build directories); fills
# pids and ports, which the caller's exit trap uses to end the servers.

# serve_builds NAME [COMMAND...]: starts BUILD/tools/rperf -s for each
# build, after COMMAND (taskset -c 0, say) if given, and waits for each to
# print its port.  NAME prefixes the messages; any failure exits.
serve_builds() {
    local name=$1 i b p _
    shift
    pids=() ports=()
    for i in "${!builds[@]}"; do
        b=${builds[$i]}
        [ -x "$b/tools/rperf" ] || { echo "$name: no $b/tools/rperf" >&2; exit 1; }
        "$@" "$b/tools/rperf" -s -p 0 > "$tmp/server$i" 2>&1 &
        pids+=($!)
    done
    for i in "${!builds[@]}"; do # each server prints its port when ready
        p=""
        for _ in $(seq 50); do
            p=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$tmp/server$i")
            [ -n "$p" ] && break
            sleep 0.1
        done
        [ -n "$p" ] || { echo "$name: ${builds[$i]}: no server" >&2; exit 1; }
        ports+=("$p")
    done
}
