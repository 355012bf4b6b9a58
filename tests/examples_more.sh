#!/bin/sh
# Runs the examples beyond the textbook pair the way a student would, on
# loopback with ephemeral ports, with and without UDP_FAULTS, and checks
# what they print; then checks rtrace's pictures of real two-process traces
# against fault_preview, which lists the datagrams a fault seed drops.
# Usage: tests/examples_more.sh BUILD_DIR
set -u
build=${1:-build}
ex=$build/examples
rtrace=$build/tools/rtrace
tmp=$(mktemp -d)
pids=""
fail=0
FAULTS="drop=0.1,dup=0.05,reorder=0.1,corrupt=0.02,seed=21"

cleanup() {
    for p in $pids; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok() { echo "examples_more: $1: passed${2:+: $2}"; }
bad() {
    echo "examples_more: $1: FAILED: $2"
    fail=$((fail + 1))
}

# wait_for FILE PATTERN [TENTHS]: polls until FILE has a line matching
# PATTERN, at most TENTHS tenths of a second (default 100).
wait_for() {
    n=0
    while ! grep -q -- "$2" "$1" 2>/dev/null; do
        n=$((n + 1))
        [ "$n" -gt "${3:-100}" ] && return 1
        sleep 0.1
    done
}

# start NAME CMD...: runs CMD in the background (output in $tmp/NAME.out)
# and waits for its "listening on port N"; sets $port and $pid.
start() {
    what=$1
    shift
    # Removed first: the job's own redirection truncates the file only once
    # it runs, and until then an earlier run's port would still be there.
    rm -f "$tmp/$what.out"
    "$@" > "$tmp/$what.out" 2>&1 &
    pid=$!
    pids="$pids $pid"
    port=""
    if wait_for "$tmp/$what.out" "^listening on port [0-9]*$" 100; then
        port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$tmp/$what.out")
        return 0
    fi
    echo "examples_more: $what did not start: $(cat "$tmp/$what.out")"
    return 1
}

stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

# server_env ENV...: the same settings with another fault seed, so that the
# two sides of an exchange do not drop their datagrams in lockstep.
server_env() { for a in "$@"; do echo "$a" | sed 's/seed=/seed=100/'; done; }

# wait_exit PID: the exit status of a server that should end by itself,
# waiting at most 40 s (then it is killed and the status is 124).
wait_exit() {
    n=0
    while kill -0 "$1" 2>/dev/null && [ "$n" -lt 400 ]; do
        n=$((n + 1))
        sleep 0.1
    done
    if kill -0 "$1" 2>/dev/null; then
        stop "$1"
        return 124
    fi
    wait "$1"
}

# ---------------------------------------------------------------------------
# File transfer: the checksum matches and the copy is byte-identical; with
# file_recv -x the end-to-end check catches the damage rmsg cannot see.

file_case() { # NAME SIZE RECV_FLAGS EXPECT(match|mismatch) [env...]
    name=$1 size=$2 flags=$3 expect=$4
    shift 4
    head -c "$size" /dev/urandom > "$tmp/orig.bin"
    rm -f "$tmp/copy.bin"
    start recv env $(server_env "$@") "$ex/file_recv" $flags 0 "$tmp/copy.bin" || {
        bad "$name" "receiver"; return; }
    rpid=$pid
    env "$@" timeout 60 "$ex/file_send" 127.0.0.1 "$port" "$tmp/orig.bin" 64 \
        > "$tmp/send.out" 2>&1
    src=$?
    wait_exit "$rpid"
    rrc=$?
    if [ "$expect" = match ] && [ "$src" -eq 0 ] && [ "$rrc" -eq 0 ] &&
       grep -q "read back checksum.*: checksum matches" "$tmp/send.out" &&
       grep -q "checksum matches" "$tmp/recv.out" &&
       cmp -s "$tmp/orig.bin" "$tmp/copy.bin"; then
        ok "$name" "$(grep goodput "$tmp/send.out")"
    elif [ "$expect" = mismatch ] && [ "$src" -eq 1 ] && [ "$rrc" -eq 1 ] &&
         grep -q "CHECKSUM MISMATCH" "$tmp/send.out" &&
         grep -q "CHECKSUM MISMATCH" "$tmp/recv.out" &&
         ! cmp -s "$tmp/orig.bin" "$tmp/copy.bin"; then
        ok "$name" "the end-to-end check caught the damage"
    else
        bad "$name" "send rc $src, recv rc $rrc"
        cat "$tmp/send.out" "$tmp/recv.out"
    fi
}

file_case "file transfer" 3145745 "" match
file_case "file transfer, empty file" 0 "" match
file_case "file transfer over faults" 3145745 "" match UDP_FAULTS="$FAULTS"
file_case "file transfer, damage after rmsg (-x)" 1000000 -x mismatch \
    UDP_FAULTS="$FAULTS"

# ---------------------------------------------------------------------------
# Key-value store: get returns what was put, delete removes, the state
# outlives each client.

kv_case() { # NAME [env...]
    name=$1
    shift
    start kv env $(server_env "$@") "$ex/kv_server" 0 ||
        { bad "$name" "server"; return; }
    kpid=$pid
    kv="env $* timeout 60 $ex/kv_client 127.0.0.1 $port"
    $kv put colour blue get colour put colour "light green" get colour \
        size del colour get colour del colour size > "$tmp/kv1.out" 2>&1
    rc1=$?
    $kv put kept "from the first client" > /dev/null 2>&1
    $kv get kept > "$tmp/kv2.out" 2>&1
    printf 'put typed hello there\nget typed\ndel typed\nget typed\n' |
        $kv > "$tmp/kv3.out" 2>&1
    $kv get kept frobnicate > /dev/null 2>&1
    rc4=$?
    cat > "$tmp/kv1.want" <<'EOF'
put colour: stored (new key)
get colour: blue
put colour: stored (replaced the old value)
get colour: light green
size: 1 keys, 11 bytes
del colour: deleted
get colour: not found
del colour: not found
size: 0 keys, 0 bytes
EOF
    printf 'put typed: stored (new key)\nget typed: hello there\ndel typed: deleted\nget typed: not found\n' \
        > "$tmp/kv3.want"
    if [ "$rc1" -eq 0 ] && cmp -s "$tmp/kv1.out" "$tmp/kv1.want" &&
       [ "$(cat "$tmp/kv2.out")" = "get kept: from the first client" ] &&
       cmp -s "$tmp/kv3.out" "$tmp/kv3.want" && [ "$rc4" -eq 1 ]; then
        ok "$name"
    else
        bad "$name" "unexpected output (rc $rc1, bad command rc $rc4)"
        cat "$tmp/kv1.out" "$tmp/kv2.out" "$tmp/kv3.out"
    fi
    stop "$kpid"
}

kv_case "key-value store"
kv_case "key-value store over faults" UDP_FAULTS="$FAULTS"

# ---------------------------------------------------------------------------
# Pipelined sending: every message arrives once, in order, intact.

pipe_case() { # NAME COUNT BYTES MODE [env...]
    name=$1 count=$2 bytes=$3 mode=$4
    shift 4
    start pipe env $(server_env "$@") "$ex/pipeline_recv" 0 ||
        { bad "$name" "receiver"; return; }
    ppid_=$pid
    env "$@" timeout 60 "$ex/pipeline_send" 127.0.0.1 "$port" "$count" \
        "$bytes" "$mode" > "$tmp/psend.out" 2>&1
    src=$?
    wait_exit "$ppid_"
    rrc=$?
    if [ "$src" -eq 0 ] && [ "$rrc" -eq 0 ] &&
       grep -q "^receiver: $count messages, in order and intact$" "$tmp/psend.out" &&
       grep -q "^received $count messages in order" "$tmp/pipe.out"; then
        ok "$name" "$(head -1 "$tmp/psend.out" | sed 's/.*(\(.*\))/\1/')"
    else
        bad "$name" "send rc $src, recv rc $rrc"
        cat "$tmp/psend.out" "$tmp/pipe.out"
    fi
}

pipe_case "pipeline" 3000 500 async
pipe_case "pipeline over faults" 3000 500 async UDP_FAULTS="$FAULTS"
pipe_case "pipeline of large messages over faults" 40 100000 async \
    UDP_FAULTS="$FAULTS"
pipe_case "stop and wait over faults" 100 500 sync UDP_FAULTS="$FAULTS"

# ---------------------------------------------------------------------------
# Discovery and routing.

# served PORT FILE: how many calls lb_client's report says PORT served.
served() { sed -n "s/^  127.0.0.1:$1 served \([0-9]*\) calls$/\1/p" "$2"; }

# listed PORT: whether the discovery service lists PORT now.
listed() {
    timeout 20 "$ex/lb_client" -l 127.0.0.1 "$dport" echo 2>/dev/null |
        grep -q "^  127.0.0.1:$1$"
}

discovery_case() { # NAME [env...]
    name=$1
    shift
    start disc env "$@" "$ex/discovery" 0 1500 || { bad "$name" "discovery"; return; }
    dpid=$pid dport=$port
    eports="" epids=""
    for i in 1 2 3; do
        delay=2
        [ "$i" -eq 3 ] && delay=15 # one slow server
        start "echo$i" env "$@" "$ex/echo_service" -d "$delay" 0 127.0.0.1 \
            "$dport" echo || { bad "$name" "echo_service"; return; }
        eports="$eports $port" epids="$epids $pid"
        wait_for "$tmp/echo$i.out" "^registered as echo" 100 ||
            { bad "$name" "echo_service $i did not register"; return; }
    done
    set -- $eports
    p1=$1 p2=$2 p3=$3
    set -- $epids
    e1=$1 e2=$2 e3=$3
    if listed "$p1" && listed "$p2" && listed "$p3"; then
        ok "$name: three servers registered"
    else
        bad "$name" "lookup does not list all three servers"
    fi
    # Generous deadlines: a loaded machine may stall a process for a while.
    lb="timeout 120 $ex/lb_client -t 1000 -r 8"
    # Round robin spreads evenly; least outstanding calls spares the slow one.
    env "$FAULT_ENV" $lb -p rr -n 600 127.0.0.1 "$dport" echo > "$tmp/rr.out" 2>&1
    rc=$?
    a=$(served "$p1" "$tmp/rr.out") b=$(served "$p2" "$tmp/rr.out") \
        c=$(served "$p3" "$tmp/rr.out")
    if [ "$rc" -eq 0 ] && grep -q "^600 calls: 600 succeeded, 0 failed" "$tmp/rr.out" &&
       [ -n "$a$b$c" ] && [ $((a + b + c)) -eq 600 ] &&
       [ "$a" -ge 150 ] && [ "$b" -ge 150 ] && [ "$c" -ge 150 ]; then
        ok "$name: round robin" "$a/$b/$c calls"
    else
        bad "$name: round robin" "rc $rc"; cat "$tmp/rr.out"
    fi
    env "$FAULT_ENV" $lb -p loc -n 600 127.0.0.1 "$dport" echo > "$tmp/loc.out" 2>&1
    rc=$?
    a=$(served "$p1" "$tmp/loc.out") b=$(served "$p2" "$tmp/loc.out") \
        c=$(served "$p3" "$tmp/loc.out")
    if [ "$rc" -eq 0 ] && grep -q "^600 calls: 600 succeeded, 0 failed" "$tmp/loc.out" &&
       [ -n "$a$b$c" ] && [ "$c" -lt "$a" ] && [ "$c" -lt "$b" ]; then
        ok "$name: least outstanding calls" "$a/$b/$c calls, slow server last"
    else
        bad "$name: least outstanding calls" "rc $rc"; cat "$tmp/loc.out"
    fi
    # Failover: kill a server mid-run; every call must still succeed.
    env "$FAULT_ENV" $lb -p rr -n 3000 127.0.0.1 "$dport" echo > "$tmp/fo.out" 2>&1 &
    lbpid=$!
    pids="$pids $lbpid"
    wait_for "$tmp/fo.out" "^progress: " 200 || bad "$name: failover" "no progress"
    kill -9 "$e1"
    wait "$lbpid"
    rc=$?
    a=$(served "$p1" "$tmp/fo.out")
    if [ "$rc" -eq 0 ] && grep -q "^3000 calls: 3000 succeeded, 0 failed" "$tmp/fo.out" &&
       grep -q "127.0.0.1:$p1 failed .*; failing over" "$tmp/fo.out" &&
       [ -n "$a" ] && [ "$a" -lt 1000 ]; then
        ok "$name: failover" "$(grep '^3000 calls' "$tmp/fo.out")"
    else
        bad "$name: failover" "rc $rc"; grep -v progress "$tmp/fo.out"
    fi
    # The dead server's lease expires; the live ones stay.
    n=0
    while listed "$p1" && [ "$n" -lt 100 ]; do n=$((n + 1)); sleep 0.1; done
    if ! listed "$p1" && listed "$p2" && listed "$p3" &&
       grep -q "^expired echo 127.0.0.1:$p1 " "$tmp/disc.out"; then
        ok "$name: stale registration expired"
    else
        bad "$name: stale registration" "still listed or others gone"
        cat "$tmp/disc.out"
    fi
    # A server that stops cleanly unregisters at once.
    kill "$e2"
    if wait_for "$tmp/disc.out" "^unregistered echo 127.0.0.1:$p2$" 100 &&
       ! listed "$p2" && listed "$p3"; then
        ok "$name: clean exit unregisters"
    else
        bad "$name: clean exit" "not unregistered"; cat "$tmp/disc.out"
    fi
    wait "$e2" 2>/dev/null
    stop "$e3"
    stop "$dpid"
}

FAULT_ENV=UDP_FAULTS=
discovery_case "discovery"
FAULT_ENV=UDP_FAULTS="drop=0.05,dup=0.05,reorder=0.05,seed=4"
discovery_case "discovery over faults" "$FAULT_ENV"

# Registration while the discovery service does not answer (stopped):
# attempts back off exponentially with jitter, then succeed once it runs.
if start disc2 "$ex/discovery" 0 600; then
    dpid=$pid dport=$port
    kill -STOP "$dpid"
    start late "$ex/echo_service" 0 127.0.0.1 "$dport" echo
    lpid=$pid lport=$port
    wait_for "$tmp/late.out" "attempt 4," 150
    kill -CONT "$dpid"
    waits=$(sed -n 's/.*retry in \([0-9]*\) ms (backoff \([0-9]*\) ms)$/\1 \2/p' \
        "$tmp/late.out" | head -4)
    if echo "$waits" | awk 'NR > 1 && $1 < w { bad = 1 }
                            { w = $1; b = $2; if (w * 2 < b || w > b) bad = 1 }
                            NR == 1 { first = b }
                            END { exit bad || NR < 4 || b < 8 * first }' &&
       wait_for "$tmp/late.out" "^registered as echo" 100 && listed "$lport"; then
        ok "registration backoff" "waits $(echo "$waits" | awk '{printf "%s ", $1}')ms, then registered"
    else
        bad "registration backoff" "waits: $waits"; cat "$tmp/late.out"
    fi
    stop "$lpid"
    stop "$dpid"
else
    bad "registration backoff" "discovery did not start"
fi

# ---------------------------------------------------------------------------
# rtrace on real two-process traces.  Faults are on the client's socket
# only, so fault_preview says exactly which of its datagrams were dropped;
# the server has none.

# trace_pair SPEC: a traced rmsg_server and a traced rmsg_client under
# SPEC; leaves $tmp/c.tr, $tmp/s.tr, $tmp/list and $tmp/want (the fate of
# each client datagram, from fault_preview).  Returns 1 if the run failed.
trace_pair() {
    spec=$1
    start srv env RMSG_TRACE=1 "$ex/rmsg_server" 0 0 || return 1
    spid=$pid
    mv "$tmp/srv.out" "$tmp/s.tr"
    env RMSG_TRACE=1 UDP_FAULTS="$spec" timeout 60 "$ex/rmsg_client" \
        127.0.0.1 "$port" 20 > /dev/null 2> "$tmp/c.tr" || { stop "$spid"; return 1; }
    outs=$(grep -c '^rmsg .* out ' "$tmp/c.tr")
    "$ex/fault_preview" "$spec" "$outs" | grep -v '^total' > "$tmp/want"
    # Every datagram the client sent that was not dropped must have reached
    # the server before we stop it: wait until its trace shows them all.
    arrivals=$(awk '$2 != "dropped" { n += $2 == "duplicated" ? 2 : 1 }
                    END { print n + 0 }' "$tmp/want")
    n=0
    while [ "$(grep -c '^rmsg .* in ' "$tmp/s.tr")" -lt "$arrivals" ] &&
          [ "$n" -lt 50 ]; do n=$((n + 1)); sleep 0.1; done
    stop "$spid"
    cport=$(sed -n 's/.* open port=\([0-9]*\) .*/\1/p' "$tmp/c.tr")
    "$rtrace" --list "$tmp/c.tr" "$tmp/s.tr" > "$tmp/list"
}

# Drops only: each distinct client datagram must have lost as many copies
# as fault_preview dropped (which copy of identical retransmissions was
# the lost one cannot always be told), the server none while the client
# ran, and the picture as many X's as losses and arrows as arrivals.
if trace_pair "drop=0.3,seed=11"; then
    awk -v c="$cport" '
        FILENAME == ARGV[1] { fate[$1] = $2; next }
        $2 == c { key = $5 " " $7 " " $8 " " $9 " " $10
                  want[key] += fate[$3] == "dropped"; got[key] += $6 == "lost" }
        END { for (k in want) if (want[k] != got[k]) bad = 1; exit bad }' \
        "$tmp/want" "$tmp/list"
    per_datagram=$?
    dropped=$(grep -c dropped "$tmp/want")
    lost_c=$(awk -v c="$cport" '$2 == c && $6 == "lost"' "$tmp/list" | wc -l)
    # The client's last line, in rtrace's milliseconds: after it the
    # client is gone, and the server's datagrams to it are lost for real.
    end_ms=$(awk '$1 != "rmsg" { next }
                  $3 != "-" { split($2, t, "."); us = t[1] * 1000000 + t[2]
                  if (first == "" || us < first) first = us }
                  FILENAME ~ /c.tr$/ { split($2, t, "."); last = t[1] * 1000000 + t[2] }
                  END { printf "%.3f", (last - first) / 1000 - 1 }' \
             "$tmp/s.tr" "$tmp/c.tr")
    early=$(awk -v c="$cport" -v e="$end_ms" '$2 != c && $6 == "lost" && $1 < e' \
            "$tmp/list" | wc -l)
    lost=$(awk '$6 == "lost"' "$tmp/list" | wc -l)
    dgrams=$(grep -vc "^rtrace:" "$tmp/list")
    "$rtrace" "$tmp/c.tr" "$tmp/s.tr" > "$tmp/picture"
    xs=$(grep -c 'X' "$tmp/picture")
    arrows=$(grep -c -e '->|' -e '|<-' "$tmp/picture")
    "$rtrace" --svg "$tmp/p.svg" "$tmp/c.tr" "$tmp/s.tr" > /dev/null
    svg_x=$(grep -c 'class="x"' "$tmp/p.svg")
    svg_arrows=$(grep -c 'marker-end' "$tmp/p.svg")
    if [ "$per_datagram" -eq 0 ] && [ "$dropped" -gt 0 ] &&
       [ "$lost_c" -eq "$dropped" ] && [ "$early" -eq 0 ] &&
       [ "$xs" -eq "$lost" ] && [ "$arrows" -eq $((dgrams - lost)) ] &&
       [ "$svg_x" -eq "$lost" ] && [ "$svg_arrows" -eq $((dgrams - lost)) ] &&
       tail -1 "$tmp/picture" | grep -q "datagrams: $((dgrams - lost)) arrived, $lost lost"; then
        ok "rtrace, drops" "$dgrams datagrams, $dropped dropped as fault_preview says, $xs X's"
    else
        bad "rtrace, drops" "per datagram $per_datagram, dropped $dropped, lost $lost_c, early $early, X $xs/$svg_x of $lost, arrows $arrows/$svg_arrows"
        cat "$tmp/want" "$tmp/list" "$tmp/picture"
    fi
else
    bad "rtrace, drops" "the traced exchange failed"
fi

# Drops, duplicates and corruption: the totals must be fault_preview's.
# What the lines cannot tell apart is left out: "the first copy was lost
# and the second duplicated" reads like "both arrived, the first late", so
# the check is on the copies that arrived intact, on losses minus
# duplicates, and on the corrupt ones.  A seed none of whose first
# datagrams is both duplicated and corrupted (two damaged copies of one
# datagram cannot be told from two damaged datagrams).
seed=1
while "$ex/fault_preview" "drop=0.1,dup=0.15,corrupt=0.1,seed=$seed" 200 |
      grep -q "corrupted duplicated" && [ "$seed" -lt 1000 ]; do
    seed=$((seed + 1))
done
if trace_pair "drop=0.1,dup=0.15,corrupt=0.1,seed=$seed"; then
    mine=$(awk -v c="$cport" '$2 == c' "$tmp/list")
    want=$(awk '{ d += $2 == "dropped"; u += $2 == "duplicated";
                  k += $2 == "corrupted"; g += $2 == "sent" }
                  END { print g + 2 * u, d - u, k, d, u }' "$tmp/want")
    got=$(echo "$mine" | awk '{ d += $6 == "lost"; u += $6 == "dup";
                  k += $6 == "corrupt"; g += $6 == "arrived" }
                  END { print g + 2 * u, d - u, k }')
    if [ "${want% * *}" = "$got" ] && [ "${want#* * * }" != "0 0" ] &&
       ! grep -q orphan "$tmp/list"; then
        ok "rtrace, drops, duplicates, corruption" "intact copies, lost minus duplicated, corrupt: $got, as fault_preview says"
    else
        bad "rtrace, drops, duplicates, corruption" "want $want, got $got"
        cat "$tmp/want" "$tmp/list"
    fi
else
    bad "rtrace, drops, duplicates, corruption" "the traced exchange failed"
fi

"$rtrace" --help | grep -q "^usage: rtrace" && ok "rtrace --help" ||
    bad "rtrace --help" "no usage"

[ "$fail" -eq 0 ] || { echo "examples_more: $fail check(s) failed"; exit 1; }
echo "examples_more: all passed"
