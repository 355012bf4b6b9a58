#!/usr/bin/env bash
# rmsg over real kernel packet loss: two network namespaces joined by a veth
# pair, nftables dropping a random share of datagrams in both directions, tc
# shaping the link when asked.  Loopback with UDP_FAULTS tests the library's
# own fault injection; this tests rmsg against a kernel that drops, queues and
# paces packets the way a real network stack does.
#
#   tests/netns.sh [test]   the cases `make test` runs: 10% and 1% drop, the
#                           examples for 200 exchanges and (once it is built)
#                           a 64 MiB rperf transfer; exit 1 if any failed
#   tests/netns.sh bench    rperf goodput, retransmissions and 64-byte RTT
#                           at 0/1/5/10% drop and at 100mbit + 1% drop, rmsg
#                           and, when rperf has it, TCP; prints a table
#   tests/netns.sh run PCT RATE -- SERVER... -- CLIENT...
#                           one setup: SERVER runs in namespace A, and once it
#                           prints "listening on port N", CLIENT runs in
#                           namespace B with @ADDR@ and @PORT@ replaced by A's
#                           address and N; RATE is a tc rate ("100mbit") or 0;
#                           exits with CLIENT's status
#
# Topology: namespace A (server, 10.77.X.1) -- veth -- namespace B (client,
# 10.77.X.2).  Loss: each namespace's nftables input hook drops PCT% of the
# datagrams arriving there, so data (B to A) and acknowledgments and replies
# (A to B) are each lost with probability PCT%, independently.  Rate: a tbf
# qdisc on B's veth, the sending side of a bulk transfer.
#
# Needs root, iproute2 and nftables (installed with apt-get when missing;
# bench also installs ethtool, see setup_pair); prints "netns: skipped:
# REASON" and exits 0 when not root or where namespaces cannot be made.
# Environment: RMSG_BUILD (default build), NETNS_VERBOSE=1 (commands, nft
# counters and tc statistics), NETNS_PROTO (what the loss rule matches:
# "udp", the default, or "tcp, udp"), NETNS_BENCH_BYTES (bench transfer size),
# NETNS_GSO=1 (leave GSO on; see setup_pair), NETNS_TIMEOUT (seconds any one
# program may run, default 120).  Sourced (bench/run.sh), it defines its
# functions and runs nothing.
set -u
PATH=$PATH:/usr/sbin:/sbin
build=${RMSG_BUILD:-build}
examples=$build/examples
rperf=$build/tools/rperf
verbose=${NETNS_VERBOSE:-0}
limit=${NETNS_TIMEOUT:-120} # seconds any one program may run
MiB=1048576

tmp=$(mktemp -d)
seq_no=0    # setups made by this run: each gets namespaces of its own
ns_a="" ns_b="" server_pid="" client_pid=""

# ---------------------------------------------------------------------------
# Small helpers

skip() {
    echo "netns: skipped: $*"
    exit 0
}

say() { # printed only with NETNS_VERBOSE=1, to stderr
    [ "$verbose" = 1 ] && echo "netns: $*" >&2
    return 0
}

now() { date +%s.%N; }

since() { # since T0: seconds from T0 (a now) until now, two decimals
    awk -v t0="$1" -v t1="$(now)" 'BEGIN { printf "%.2f", t1 - t0 }'
}

# json_field FILE NAME: the value of the first "NAME": in FILE (a number or a
# string without its quotes); empty when absent.  rperf prints flat objects.
json_field() {
    sed -n 's/.*"'"$2"'"[[:space:]]*:[[:space:]]*"\{0,1\}\([^", }]*\).*/\1/p' \
        "$1" | head -1 | sed 's/^null$//'
}

# ---------------------------------------------------------------------------
# Requirements: root, namespaces, the tools

# Installs iproute2 and nftables when ip, nft or tc is missing; skips if that
# fails.  An install is tried first without refreshing the package lists,
# which is quick when they are recent.
need_tools() {
    local missing="" t
    for t in ip nft tc timeout; do
        command -v "$t" > /dev/null 2>&1 || missing="$missing $t"
    done
    [ -z "$missing" ] && return 0
    command -v apt-get > /dev/null 2>&1 ||
        skip "missing:$missing and no apt-get to install iproute2 nftables"
    echo "netns: missing:$missing; installing iproute2 nftables" >&2
    export DEBIAN_FRONTEND=noninteractive
    local install="apt-get install -y --no-install-recommends iproute2 nftables"
    if ! $install > "$tmp/apt.log" 2>&1; then
        apt-get update >> "$tmp/apt.log" 2>&1
        $install >> "$tmp/apt.log" 2>&1 ||
            skip "cannot install iproute2 nftables: $(tail -1 "$tmp/apt.log")"
    fi
    for t in ip nft tc timeout; do
        command -v "$t" > /dev/null 2>&1 || skip "$t still missing after install"
    done
}

need_root_and_netns() {
    [ "$(id -u)" = 0 ] || skip "not root"
    need_tools
    # A throwaway namespace shows whether this kernel and container allow
    # namespaces and nftables in them at all; a failure here is the
    # environment's, not rmsg's.
    local probe="rmsg-probe-$$" err
    err=$(ip netns add "$probe" 2>&1) || skip "ip netns add failed: $err"
    err=$(ip netns exec "$probe" nft add table inet rmsgprobe 2>&1)
    local rc=$?
    ip netns del "$probe" 2>/dev/null
    [ "$rc" = 0 ] || skip "nftables unusable in a namespace: $err"
    reap_stale
}

# Deletes namespaces left by runs that were killed outright (SIGKILL skips
# the trap): rmsg-PID-N-a/b whose PID no longer runs this script, and what
# still runs inside them.
reap_stale() {
    local ns pid pids
    for ns in $(ip netns list 2>/dev/null | sed -n 's/^\(rmsg-[0-9]*-[0-9]*-[ab]\).*/\1/p'); do
        pid=${ns#rmsg-}
        pid=${pid%%-*}
        grep -qs netns.sh "/proc/$pid/cmdline" && continue
        pids=$(ip netns pids "$ns" 2>/dev/null)
        # shellcheck disable=SC2086 # one argument per process id
        [ -n "$pids" ] && kill $pids 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
}

# ---------------------------------------------------------------------------
# Setting up and tearing down

# The nftables ruleset for one namespace: PCT% (a decimal, two places kept)
# of arriving datagrams of the matched protocols dropped, every one counted.
# Named counters: "dropped" and "passed" on input, "sent" on output.
ruleset() {
    local pct=$1 proto=$2 per10k
    per10k=$(awk -v p="$pct" 'BEGIN { printf "%d", p * 100 + 0.5 }')
    cat << EOF
table inet rmsgtest {
    counter dropped { }
    counter passed { }
    counter sent { }
    chain input {
        type filter hook input priority 0; policy accept;
        meta l4proto { $proto } numgen random mod 10000 < $per10k counter name "dropped" drop
        meta l4proto { $proto } counter name "passed"
    }
    chain output {
        type filter hook output priority 0; policy accept;
        meta l4proto { $proto } counter name "sent"
    }
}
EOF
}

# ns_up PCT RATE: two fresh namespaces joined by a veth pair, loss rules in
# both, a tbf on B's veth unless RATE is 0.  Sets ns_a, ns_b, addr_a, addr_b.
ns_up() {
    local pct=$1 rate=$2 proto=${NETNS_PROTO:-udp} x
    seq_no=$((seq_no + 1))
    ns_a="rmsg-$$-$seq_no-a" ns_b="rmsg-$$-$seq_no-b"
    # The address only has to be unique inside the pair, but taking X from
    # the process id keeps two runs apart in traces and captures too.
    x=$(($$ % 250 + 1))
    addr_a=10.77.$x.1 addr_b=10.77.$x.2
    say "setup $ns_a ($addr_a) <-> $ns_b ($addr_b), drop $pct% of" \
        "{ $proto } each way, rate $rate"
    if setup_pair "$pct" "$rate" "$proto" > "$tmp/setup.log" 2>&1; then
        [ "$verbose" = 1 ] && ip netns exec "$ns_a" nft list chain inet \
            rmsgtest input | sed 's/^/netns: nft in A and B: /' >&2
        return 0
    fi
    echo "netns: setup failed: $(cat "$tmp/setup.log")" > "$tmp/client.out"
    cat "$tmp/client.out" >&2
    return 1
}

setup_pair() {
    local pct=$1 rate=$2 proto=$3 ns
    ip netns add "$ns_a" || return 1
    ip netns add "$ns_b" || return 1
    ip -n "$ns_a" link add va type veth peer name vb netns "$ns_b" || return 1
    ip -n "$ns_a" addr add "$addr_a/24" dev va || return 1
    ip -n "$ns_b" addr add "$addr_b/24" dev vb || return 1
    for ns in "$ns_a" "$ns_b"; do
        ip -n "$ns" link set lo up || return 1
        ruleset "$pct" "$proto" | ip netns exec "$ns" nft -f - || return 1
    done
    # One packet per segment: otherwise TCP (and rmsg, which sends runs of
    # equal datagrams with UDP_SEGMENT) hands the veth 64 KiB GSO packets
    # that reach A whole, and one "1%" drop loses 45 segments at once.  ethtool turns segmentation offload off and TCP stays
    # fast; without it, gso_max_segs 1 makes TCP itself send one segment per
    # packet, which is correct but slows it several times.  NETNS_GSO=1 keeps
    # the offloads.
    if [ "${NETNS_GSO:-0}" != 1 ]; then
        no_offloads va "$ns_a"
        no_offloads vb "$ns_b"
    fi
    ip -n "$ns_a" link set va up || return 1
    ip -n "$ns_b" link set vb up || return 1
    [ "$rate" = 0 ] && return 0
    tc -n "$ns_b" qdisc add dev vb root tbf rate "$rate" burst 32kb \
        latency 20ms
}

no_offloads() { # no_offloads DEV NS
    command -v ethtool > /dev/null 2>&1 &&
        ip netns exec "$2" ethtool -K "$1" tso off gso off gro off \
            tx-udp-segmentation off > /dev/null 2>&1 &&
        return 0
    ip -n "$2" link set "$1" gso_max_segs 1 && return 0
    say "$2: cannot turn segmentation offload off on $1: TCP loses in bursts"
    return 0
}

# Ends whatever still runs in our namespaces (only ours: the names carry this
# run's process id) and deletes them, which deletes the veth pair with them.
ns_down() {
    local ns pids
    # shellcheck disable=SC2086 # one argument per process id
    [ -n "$server_pid$client_pid" ] && kill $server_pid $client_pid 2>/dev/null
    server_pid="" client_pid=""
    for ns in $ns_a $ns_b; do
        pids=$(ip netns pids "$ns" 2>/dev/null)
        # shellcheck disable=SC2086
        [ -n "$pids" ] && kill $pids 2>/dev/null
    done
    for ns in $ns_a $ns_b; do
        ip netns del "$ns" 2>/dev/null
    done
    ns_a="" ns_b=""
}

cleanup() {
    ns_down
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# counter NS NAME: packets the named nftables counter has seen in NS.
counter() {
    ip netns exec "$1" nft list counter inet rmsgtest "$2" 2>/dev/null |
        sed -n 's/.*packets \([0-9]*\).*/\1/p'
}

# snmp NS PROTO FIELD: a /proc/net/snmp counter of NS ("Udp" "RcvbufErrors").
snmp() {
    ip netns exec "$1" awk -v p="$2:" -v f="$3" '
        $1 == p && !h { for (i = 2; i <= NF; i++) col[$i] = i; h = 1; next }
        $1 == p { print $col[f] + 0; exit }' /proc/net/snmp 2>/dev/null
}

# The kernel's own figures.  nftables: datagrams dropped and passed on
# arrival in each namespace, drop_a/pass_a (B to A: data) and drop_b/pass_b
# (A to B: acknowledgments, replies), and sent_b (what left B).  Losses the
# kernel made on its own: rcvbuf_a/rcvbuf_b (UDP receive buffers full) and
# qdisc_b (the tbf on B's veth).
read_counters() {
    drop_a=$(counter "$ns_a" dropped) pass_a=$(counter "$ns_a" passed)
    drop_b=$(counter "$ns_b" dropped) pass_b=$(counter "$ns_b" passed)
    sent_b=$(counter "$ns_b" sent)
    rcvbuf_a=$(snmp "$ns_a" Udp RcvbufErrors) rcvbuf_b=$(snmp "$ns_b" Udp RcvbufErrors)
    qdisc_b=$(tc -n "$ns_b" -s qdisc show dev vb 2>/dev/null |
        sed -n 's/.*(dropped \([0-9]*\),.*/\1/p' | head -1)
    : "${drop_a:=0}" "${pass_a:=0}" "${drop_b:=0}" "${pass_b:=0}" "${sent_b:=0}"
    : "${rcvbuf_a:=0}" "${rcvbuf_b:=0}" "${qdisc_b:=0}"
    if [ "$verbose" = 1 ]; then
        echo "netns: nftables counters (packets): $ns_a dropped $drop_a" \
            "passed $pass_a; $ns_b dropped $drop_b passed $pass_b sent $sent_b" >&2
        echo "netns: UDP receive buffer overflows: $rcvbuf_a in A, $rcvbuf_b" \
            "in B; tbf drops $qdisc_b" >&2
        tc -n "$ns_b" -s qdisc show dev vb 2>/dev/null | grep -A2 '^qdisc tbf' |
            sed 's/^/netns: tc on vb: /' >&2
    fi
}

# "kernel dropped 61/602 (10.1%) B->A, 57/590 (9.7%) A->B" and any losses
# the kernel made on its own.
drop_figures() {
    awk -v da="$drop_a" -v pa="$pass_a" -v db="$drop_b" -v pb="$pass_b" '
        function share(d, p) { return (d + p) ? 100 * d / (d + p) : 0 }
        BEGIN { printf "kernel dropped %d/%d (%.1f%%) B->A, %d/%d (%.1f%%) A->B",
                da, da + pa, share(da, pa), db, db + pb, share(db, pb) }'
    # Losses nobody asked for are worth a mention: they are not nftables'.
    [ "$rcvbuf_a$rcvbuf_b" = 00 ] ||
        printf ", receive buffers overflowed %d in A, %d in B" "$rcvbuf_a" "$rcvbuf_b"
    [ "$qdisc_b" = 0 ] || printf ", tbf dropped %d" "$qdisc_b"
}

# ---------------------------------------------------------------------------
# Running programs in the namespaces

# start_server CMD...: runs CMD in namespace A with a $limit s limit and waits
# for it to print "listening on port N".  Sets port and server_pid.
start_server() {
    port=""
    ip netns exec "$ns_a" timeout "$limit" "$@" > "$tmp/server.out" 2>&1 &
    server_pid=$!
    local _
    for _ in $(seq 200); do
        port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$tmp/server.out")
        [ -n "$port" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.025
    done
    echo "server did not start: $(cat "$tmp/server.out")" > "$tmp/client.out"
    return 1
}

# wait_server SECONDS: waits that long for the server to exit on its own,
# then ends it.  Returns the server's status (143 if it had to be ended).
wait_server() {
    local _ rc
    for _ in $(seq $(($1 * 20))); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    rc=$?
    server_pid=""
    return "$rc"
}

# client CMD...: runs CMD in namespace B with a $limit s limit; output in
# $tmp/client.out, elapsed seconds in $elapsed.
client() {
    local t0
    say "client: $*"
    t0=$(now)
    # In the background, because bash runs a trap only once a foreground
    # command has finished, while `wait` returns at once on a signal.
    ip netns exec "$ns_b" timeout "$limit" "$@" > "$tmp/client.out" 2>&1 &
    client_pid=$!
    wait "$client_pid"
    local rc=$?
    client_pid=""
    elapsed=$(since "$t0")
    return "$rc"
}

# ---------------------------------------------------------------------------
# The cases `make test` runs

passed=0 failed=0 skipped=0

report() { # report CASE RC FIGURES
    local figures=$3
    [ "$2" = 124 ] && figures="timed out after $limit s; $figures"
    if [ "$2" = 0 ]; then
        echo "netns: $1: passed ($figures)"
        passed=$((passed + 1))
    else
        echo "netns: $1: FAILED ($figures)"
        sed 's/^/  client: /' "$tmp/client.out"
        sed 's/^/  server: /' "$tmp/server.out" 2>/dev/null
        failed=$((failed + 1))
    fi
}

# The examples: COUNT request/reply exchanges, every one answered.
case_exchanges() {
    local pct=$1 count=200 rc=0 got name
    name="$pct% drop, rmsg_client $count exchanges"
    if start_server "$examples/rmsg_server" 0 "$count"; then
        client "$examples/rmsg_client" "$addr_a" "$port" "$count" || rc=$?
        # The server exits after the last reply is acknowledged (or 2 s).
        wait_server 10 || { [ "$rc" = 0 ] && rc=99; }
    else
        rc=98
    fi
    read_counters
    got=$(grep -c "goodbye world" "$tmp/client.out")
    [ "$got" = "$count" ] || { [ "$rc" = 0 ] && rc=97; }
    check_drops "$pct" || { [ "$rc" = 0 ] && rc=96; }
    local figures="$got/$count in ${elapsed:-?} s, " stats
    stats=$(sed -n 's/^datagrams sent \([0-9]*\), retransmissions \([0-9]*\).*/client retransmitted \2 of \1 datagrams, /p' \
        "$tmp/client.out")
    report "$name" "$rc" "$figures$stats$(drop_figures)"
}

# The loss has to be real and as asked: in each direction the share of
# datagrams the kernel dropped must lie within five standard deviations of
# PCT% (binomial), plus one datagram of slack; with PCT 0 it must be zero.
check_drops() {
    awk -v p="$1" -v da="$drop_a" -v pa="$pass_a" -v db="$drop_b" \
        -v pb="$pass_b" '
        function ok(d, n,   mu, sd) {
            mu = n * p; sd = sqrt(n * p * (1 - p))
            return d >= mu - 5 * sd - 1 && d <= mu + 5 * sd + 1
        }
        BEGIN { p /= 100; exit !(ok(da, da + pa) && ok(db, db + pb)) }' &&
        return 0
    echo "nftables did not drop $1%: $(drop_figures)" >> "$tmp/client.out"
    return 1
}

# rperf: BYTES in 1 MiB asynchronous messages, verified end to end.
case_rperf() {
    local pct=$1 bytes=$((64 * MiB)) rc=0 name
    name="$pct% drop, rperf rmsg-async $((bytes / MiB)) MiB"
    if start_server "$rperf" -s -p 0 --once; then
        client "$rperf" -c "$addr_a" -p "$port" -T rmsg-async --bw -l "$MiB" \
            -n "$bytes" --no-baseline --json || rc=$?
        wait_server 5 || { [ "$rc" = 0 ] && rc=99; }
    else
        rc=98
    fi
    read_counters
    check_drops "$pct" || { [ "$rc" = 0 ] && rc=96; }
    local f="$tmp/client.out" figures=""
    # rperf's own figures when it printed them, then the kernel's.
    [ -n "$(json_field "$f" rate_bytes_per_s)" ] &&
        figures=$(awk -v r="$(json_field "$f" rate_bytes_per_s)" \
            -v t="$(json_field "$f" seconds)" \
            -v x="$(json_field "$f" retransmissions)" \
            -v d="$(json_field "$f" datagrams_sent)" 'BEGIN {
            printf "%.1f MB/s, %.2f s, %d retransmissions of %d datagrams, ",
                r / 1e6, t, x, d }')
    report "$name" "$rc" "$figures$(drop_figures)"
}

run_tests() {
    local pct t0 case
    t0=$(now)
    [ -x "$examples/rmsg_server" ] && [ -x "$examples/rmsg_client" ] || {
        echo "netns: $examples/rmsg_server or rmsg_client missing: run make first"
        exit 1
    }
    # Each case in namespaces of its own, so that its counters are its own.
    for pct in 10 1; do
        for case in case_exchanges case_rperf; do
            if [ "$case" = case_rperf ] && [ ! -x "$rperf" ]; then
                echo "netns: $pct% drop, rperf: skipped ($rperf not built)"
                skipped=$((skipped + 1))
                continue
            fi
            if ns_up "$pct" 0; then
                "$case" "$pct"
            else
                report "$pct% drop, $case: setup" 1 "see above"
            fi
            ns_down
        done
    done
    # The count alone on its line, the form test summaries take.
    echo "netns: cases took $(since "$t0") s"
    echo "netns: $passed passed, $failed failed, $skipped skipped"
    [ "$failed" = 0 ]
}

# ---------------------------------------------------------------------------
# bench: a table of rperf figures under loss and a rate limit

# The table: goodput, its share of the tbf rate, datagrams (TCP: segments)
# B sent and how many were retransmissions, what the kernel lost from B to
# A (nftables, tbf, receive buffer), retransmissions per loss (above 1:
# spurious ones), and 64-byte round trips.
bench_format="%-17s %-10s %8s %5s %8s %7s %6s %6s %6s %8s %8s\n"

bench_header() {
    # shellcheck disable=SC2059 # the one format for header and rows
    printf "$bench_format" network transport "MB/s" link sent retx "retx%" \
        lost "retx/l" "p50 us" "p99 us"
}

# bench_row LABEL PCT RATE TRANSPORT: one bulk transfer and one latency run
# in a fresh setup, printed as a table row.  Failures print "FAILED" in the
# row and the output to stderr.
bench_row() {
    local label=$1 pct=$2 rate=$3 tr=$4 bytes=${NETNS_BENCH_BYTES:-$((64 * MiB))}
    local rc=0 rate_b="" retx="" sent="" p50="" p99="" f=$tmp/client.out
    ns_up "$pct" "$rate" || { echo "$label: setup failed"; return; }
    if start_server "$rperf" -s -p 0 --once; then
        # -t: whichever of BYTES and 20 s comes first, so that a transport
        # that collapses under loss cannot hold the bench up.
        client "$rperf" -c "$addr_a" -p "$port" -T "$tr" --bw -l "$MiB" \
            -n "$bytes" -t 20 --no-baseline --json || rc=$?
        wait_server 5
    else
        rc=98
    fi
    read_counters
    if [ "$rc" = 0 ]; then
        rate_b=$(json_field "$f" rate_bytes_per_s)
        retx=$(json_field "$f" retransmissions)
        sent=$(json_field "$f" datagrams_sent)
        # rperf cannot see TCP's retransmissions; B's kernel counts them.
        if [ "$tr" = tcp ]; then
            # OutSegs leaves retransmitted segments out.
            retx=$(snmp "$ns_b" Tcp RetransSegs)
            sent=$(($(snmp "$ns_b" Tcp OutSegs) + retx))
        fi
    else
        rate_b="FAILED"
        echo "$label, $tr: transfer failed ($rc)" >&2
        sed 's/^/  client: /' "$f" >&2
        sed 's/^/  server: /' "$tmp/server.out" >&2
    fi
    local lost=$((drop_a + qdisc_b + rcvbuf_a)) lat=rmsg
    [ "$tr" = tcp ] && lat=tcp
    rc=0
    if start_server "$rperf" -s -p 0 --once; then
        # TCP's 200 ms minimum RTO makes 2000 round trips at 10% loss take
        # over a minute: 10 s at most.
        client "$rperf" -c "$addr_a" -p "$port" -T "$lat" --lat -N 2000 -l 64 \
            -t 10 --json || rc=$?
        wait_server 5
        p50=$(json_field "$f" p50_us) p99=$(json_field "$f" p99_us)
        if [ "$rc" != 0 ]; then
            p99="FAILED"
            echo "$label, $lat: latency failed ($rc)" >&2
            sed 's/^/  client: /' "$f" >&2
        fi
    fi
    ns_down
    awk -v fmt="$bench_format" -v label="$label" -v tr="$tr" -v r="$rate_b" \
        -v link="$rate" -v sent="$sent" -v retx="$retx" -v lost="$lost" \
        -v p50="$p50" -v p99="$p99" 'BEGIN {
        # a tbf rate such as 100mbit, in bits per second
        v = link + 0; u = link; sub(/^[0-9.]+/, "", u)
        m = u == "gbit" ? 1e9 : u == "mbit" ? 1e6 : u == "kbit" ? 1e3 : 1
        good = show(r, "%.1f", 1e-6)
        use = (v && good + 0) ? sprintf("%.0f%%", 100 * r * 8 / (v * m)) : "-"
        share = sent ? sprintf("%.2f", 100 * retx / sent) : "-"
        per = lost ? sprintf("%.2f", retx / lost) : "-"
        printf fmt, label, tr, good, use, show(sent, "%d", 1),
            show(retx, "%d", 1), share, lost, per, show(p50, "%.0f", 1),
            show(p99, "%.0f", 1)
    }
    # a number formatted and scaled, "-" for nothing, words as they are
    function show(x, f, k) {
        return x == "" ? "-" : x ~ /^[0-9.e+-]+$/ ? sprintf(f, x * k) : x
    }'
}

run_bench() {
    [ -x "$rperf" ] || { echo "netns: bench needs $rperf: run make"; exit 1; }
    local transports="rmsg-async" tr pct
    # TCP rows only where rperf has a TCP transport; the loss rule then
    # matches TCP too (the control channel included), so both transports
    # cross the same network.
    "$rperf" --help 2>&1 | grep -qw tcp && transports="$transports tcp"
    # TCP is fast per segment only with ethtool (see setup_pair).
    if [ "$transports" != rmsg-async ] && ! command -v ethtool > /dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y \
            --no-install-recommends ethtool > "$tmp/apt.log" 2>&1 ||
            echo "netns: no ethtool: TCP runs without segmentation offload"
    fi
    echo "netns bench: $(( ${NETNS_BENCH_BYTES:-$((64 * MiB))} / MiB )) MiB (or 20 s)" \
        "in 1 MiB messages B->A; 2000 64-byte round trips (or 10 s); drop each way"
    bench_header
    for tr in $transports; do
        [ "$tr" = tcp ] && export NETNS_PROTO="tcp, udp"
        for pct in 0 1 5 10; do
            bench_row "$pct% drop" "$pct" 0 "$tr"
        done
        bench_row "100mbit, 1% drop" 1 100mbit "$tr"
        unset NETNS_PROTO
    done
}

# ---------------------------------------------------------------------------
# run: one setup around a caller's server and client

run_one() {
    local pct=$1 rate=$2 a
    shift 2
    [ "${1:-}" = "--" ] || usage
    shift
    local server=() client_cmd=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do server+=("$1"); shift; done
    [ "${1:-}" = "--" ] || usage
    shift
    [ ${#server[@]} -gt 0 ] && [ $# -gt 0 ] || usage
    ns_up "$pct" "$rate" || exit 1
    start_server "${server[@]}" || { cat "$tmp/client.out" >&2; exit 1; }
    for a in "$@"; do
        a=${a//@ADDR@/$addr_a}
        client_cmd+=("${a//@PORT@/$port}")
    done
    local rc=0
    client "${client_cmd[@]}" || rc=$?
    cat "$tmp/client.out"
    wait_server 5
    sed 's/^/server: /' "$tmp/server.out" >&2
    read_counters
    echo "netns: $(drop_figures), client exit $rc, ${elapsed} s" >&2
    exit "$rc"
}

usage() {
    sed -n '8,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# Sourced (bench/run.sh does, for the setup and run functions above): define
# everything, run nothing.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

mode=${1:-test}
[ $# -gt 0 ] && shift
case "$mode" in
test | bench | run) ;;
*) usage ;;
esac
need_root_and_netns
case "$mode" in
test) run_tests ;;
bench) run_bench ;;
run) [ $# -ge 2 ] || usage; run_one "$@" ;;
esac
