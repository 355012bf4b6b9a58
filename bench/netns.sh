#!/usr/bin/env bash
# bench/netns.sh BUILD RUNS WHY - the network-namespace part of `make bench`
# (bench/run.sh runs it): two namespaces with 0, 1, 5 and 10% kernel drop
# each way, set up by tests/netns.sh's functions.  Per loss rate, one setup
# whose rule drops UDP (rmsg-async bulk of 1 MiB messages, 64-byte rmsg
# round trips) and one whose rule drops TCP and UDP (TCP bulk), as
# tests/netns.sh bench does.  Appends one JSON line per case to RUNS, with
# the drop the kernel measured over its setup; writes "measured", or the
# reason it could not run, to WHY.
#
# A script of its own, and named so, because tests/netns.sh deletes
# namespaces whose creator's command line does not mention netns.sh (left
# over by a killed run): another run of it at the same time then leaves
# these alone.  Environment as bench/run.sh's.
set -u
build=${1:?usage: bench/netns.sh BUILD RUNS WHY}
runs=${2:?usage: bench/netns.sh BUILD RUNS WHY}
why_file=${3:?usage: bench/netns.sh BUILD RUNS WHY}
quick=${BENCH_QUICK:-0}
netns_repeats=${BENCH_NETNS_REPEATS:-5}
[ "$quick" = 1 ] && netns_repeats=2

echo "not started" > "$why_file"
# shellcheck source=../tests/netns.sh
RMSG_BUILD=$build . tests/netns.sh
# shellcheck source=lib.sh
. bench/lib.sh
# Exits with "netns: skipped: REASON" where namespaces cannot be had.
need_root_and_netns > "$why_file" 2>&1
echo "measured" > "$why_file"

# TCP is fast per segment only with ethtool (see tests/netns.sh setup_pair).
command -v ethtool > /dev/null 2>&1 ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ethtool > "$tmp/apt.log" 2>&1 ||
    echo "bench: no ethtool: TCP runs without segmentation offload"

cases=$tmp/bench-cases
: > "$cases"

# ns CASE GROUP LABEL PCT RPERF-ARGS...: one case in the current setup.  A
# server that is gone after a failed attempt is started again and the case
# retried once, with a note saying so.
ns() {
    local name=$1 group=$2 label=$3 pct=$4 rc=0 t0 extra="" note=""
    shift 4
    t0=$(now)
    client "$rperf" -c "$addr_a" -p "$port" --json -r "$netns_repeats" "$@" ||
        rc=$?
    if [ "$rc" != 0 ] && ! kill -0 "$server_pid" 2> /dev/null; then
        wait "$server_pid" 2> /dev/null
        extra=$(retry_note "$?")
        note="retried: the server was gone"
        rc=0
        start_server "$rperf" --server --port 0 --quiet &&
            client "$rperf" -c "$addr_a" -p "$port" --json \
                -r "$netns_repeats" "$@" || rc=$?
    fi
    cp "$tmp/client.out" "$tmp/bench-$name.out"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$group" "$pct" "$rc" "$label" \
        "$extra" >> "$cases"
    progress "$label" "$(since "$t0")" "$tmp/client.out" "$note"
}

# The cases of the setup just torn down, with the share of datagrams the
# kernel dropped over the whole setup.
flush_cases() {
    local share name group pct rc label extra
    share=$(awk -v a="$drop_a" -v b="$drop_b" -v pa="$pass_a" -v pb="$pass_b" \
        'BEGIN { n = a + b + pa + pb; printf "%.2f", n ? 100 * (a + b) / n : 0 }')
    while IFS=$'\t' read -r name group pct rc label extra; do
        record "$tmp/bench-$name.out" "$name" "$group" "$label" netns "$pct" \
            "$rc" "\"drop_measured_pct\": $share${extra:+, $extra}"
    done < "$cases"
    : > "$cases"
}

# 256 MiB a run, as the bulk goal asks: runs of 64 MiB end within a few
# round trips of slow start and spread 2:1 under 5% drop.
bytes=$((256 * 1048576)) n=2000
[ "$quick" = 1 ] && bytes=$((8 * 1048576)) n=500
for pct in 0 1 5 10; do
    if ns_up "$pct" 0 && start_server "$rperf" --server --port 0 --quiet; then
        ns "loss-rmsg-async-$pct" loss-bulk "rmsg-async bulk, $pct% drop" \
            "$pct" -T rmsg-async -l 1M -n "$bytes" -t 20
        ns "loss-rtt-$pct" loss-rtt "rmsg 64 B round trip, $pct% drop" \
            "$pct" -T rmsg --lat -l 64 -N "$n" -t 10
    else
        echo "bench: netns setup at $pct% failed: $(cat "$tmp/client.out")"
    fi
    read_counters
    ns_down
    flush_cases
    if NETNS_PROTO="tcp, udp" ns_up "$pct" 0 &&
        start_server "$rperf" --server --port 0 --quiet; then
        ns "loss-tcp-$pct" loss-bulk "TCP bulk, $pct% drop" "$pct" \
            -T tcp -l 1M -n "$bytes" -t 10
    else
        echo "bench: netns setup at $pct% (tcp) failed: $(cat "$tmp/client.out")"
    fi
    read_counters
    ns_down
    flush_cases
done
