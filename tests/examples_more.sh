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
# rtrace on real traces.  Faults are on the client's socket only, so
# fault_preview says exactly what became of each of its datagrams; the
# server has none.  The trace lines pair a datagram's sending with its
# arrival (bytes=, crc=) and name the endpoint that wrote them (local=), so
# the checks are per datagram.

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
    arrivals=$(awk '$2 != "dropped" { n += $3 == "duplicated" || $2 == "duplicated" ? 2 : 1 }
                    END { print n + 0 }' "$tmp/want")
    n=0
    while [ "$(grep -c '^rmsg .* in ' "$tmp/s.tr")" -lt "$arrivals" ] &&
          [ "$n" -lt 50 ]; do n=$((n + 1)); sleep 0.1; done
    stop "$spid"
    cport=$(sed -n 's/.* open port=\([0-9]*\) .*/\1/p' "$tmp/c.tr")
    sport=$(sed -n 's/.* open port=\([0-9]*\) .*/\1/p' "$tmp/s.tr")
    "$rtrace" --list "$tmp/c.tr" "$tmp/s.tr" > "$tmp/list"
}

# client_fates: the client's datagrams in $tmp/list against $tmp/want, per
# datagram: a dropped one lost, a duplicated one arrived twice, a corrupted
# one arrived damaged (twice if duplicated too), the rest arrived once, and
# nothing arrived from the client that it did not send.  Identical copies
# (a fragment sent again unchanged: the same bytes and crc) are taken
# together: which copy was lost or duplicated, no trace can tell when the
# receiver read them late.  Prints what differs; fails if anything does, or
# if there is nothing to check.  When all agree, prints how many datagrams
# went more than once unchanged.
client_fates() {
    awk -v c="$cport" '
        BEGIN { good["sent"] = 1; good["duplicated"] = 2
                damaged["corrupted"] = 1; damaged["corrupted duplicated"] = 2 }
        FILENAME == ARGV[1] { f = $2; for (i = 3; i <= NF; i++) f = f " " $i
                              want[$1] = f; next }
        $2 != c { next }
        $3 == 0 { print "  arrived, never seen leaving: " $0; bad = 1; next }
        { n++; id = $11 " " $12; k = substr($13, 8)
          if (!($3 in want) || $11 == "bytes=?") bad = 1
          copies[id]++; who[id] = who[id] " " $3
          wg[id] += good[want[$3]]; wd[id] += damaged[want[$3]]
          gg[id] += $6 == "corrupt" ? 0 : k; gd[id] += $6 == "corrupt" ? k : 0 }
        END { for (id in copies) {
                  shared += copies[id] > 1
                  if (wg[id] != gg[id] || wd[id] != gd[id]) {
                      print "  datagram" who[id] ": fault_preview says " \
                            wg[id] " intact, " wd[id] " damaged arrived; rtrace " \
                            gg[id] ", " gd[id]; bad = 1 } }
              if (!bad) print shared + 0
              exit bad || n == 0 }' "$tmp/want" "$tmp/list"
}

# server_fates: the server's datagrams (it has no faults) arrived once and
# intact, but those sent in the last millisecond of the client's trace or
# after it (the client was gone), identical copies taken together as
# above.  Prints what differs.
server_fates() {
    end_ms=$(awk '$1 != "rmsg" { next }
                  $3 != "-" { split($2, t, "."); us = t[1] * 1000000 + t[2]
                  if (first == "" || us < first) first = us }
                  FILENAME ~ /c.tr$/ { split($2, t, "."); last = t[1] * 1000000 + t[2] }
                  END { printf "%.3f", (last - first) / 1000 - 1 }' \
             "$tmp/s.tr" "$tmp/c.tr")
    awk -v s="$sport" -v e="$end_ms" '
        $2 != s { next }
        $3 == 0 || $6 == "corrupt" { print "  " $0; bad = 1; next }
        { id = $11 " " $12; copies[id]++; early[id] += $1 < e
          got[id] += substr($13, 8) }
        END { for (id in copies)
                  if (got[id] < early[id] || got[id] > copies[id]) {
                      print "  " id ": " copies[id] " sent, " early[id] \
                            " while the client ran, " got[id] " arrived"; bad = 1 }
              exit bad }' "$tmp/list"
}

# retx_marks: the retransmissions in $tmp/list are the trace's: a sender's
# n-th datagram is marked retx exactly when its n-th "out" line says retx.
retx_marks() {
    for f in c s; do
        p=$(sed -n 's/.* open port=\([0-9]*\) .*/\1/p' "$tmp/$f.tr")
        grep '^rmsg .* out ' "$tmp/$f.tr" |
            awk '{ print NR, / retx local=[0-9]*$/ ? "retx" : "-" }' > "$tmp/rx.trace"
        awk -v p="$p" '$2 == p && $3 > 0 { print $3, $NF == "retx" ? "retx" : "-" }' \
            "$tmp/list" > "$tmp/rx.list"
        cmp -s "$tmp/rx.trace" "$tmp/rx.list" || return 1
    done
}

# old_format FILE: the trace as the library wrote it before its lines
# carried bytes=, crc=, local= and retx, and when "out DATA" said +sack.
old_format() {
    sed -e 's/ local=[0-9]*$//' -e 's/ bytes=[0-9]* crc=[0-9a-f]*//' \
        -e 's/ retx$//' -e '/ out DATA /s/ sack=0//' \
        -e '/ out DATA /s/ sack=[1-9][0-9]*/ +sack/' "$1"
}

# pictures_agree: the text picture and the SVG of $tmp/c.tr and $tmp/s.tr
# draw what $tmp/list says: an X per lost datagram, an arrow per copy that
# arrived (damaged ones too), a note per damaged datagram and per one that
# arrived more than once, and a summary with the same counts.  Prints what
# differs.
pictures_agree() {
    "$rtrace" "$tmp/c.tr" "$tmp/s.tr" > "$tmp/picture"
    "$rtrace" --svg "$tmp/p.svg" "$tmp/c.tr" "$tmp/s.tr" > /dev/null
    set -- $(awk '$1 != "rtrace:" { n++; k = substr($13, 8); lost += $6 == "lost"
                                    bad += $6 == "corrupt"; two += k > 1; copies += k
                                    good += $6 == "arrived" || $6 == "dup" }
                  END { print n + 0, lost + 0, bad + 0, two + 0, copies + 0, good + 0 }' \
             "$tmp/list")
    n=$1 lost=$2 corrupt=$3 two=$4 copies=$5 good=$6
    xs=$(grep -c 'X' "$tmp/picture")
    arrows=$(grep -c -e '->|' -e '|<-' "$tmp/picture")
    notes_bad=$(grep -c 'corrupt: dropped' "$tmp/picture")
    notes_two=$(grep -c ', [0-9]* copies' "$tmp/picture")
    svg_x=$(grep -c 'class="x"' "$tmp/p.svg")
    svg_arrows=$(grep -c 'marker-end' "$tmp/p.svg")
    sum="rtrace: 2 endpoints, $n datagrams: $good arrived, $lost lost, $two duplicated, $corrupt corrupt;"
    if [ "$xs" -ne "$lost" ] || [ "$svg_x" -ne "$lost" ] ||
       [ "$arrows" -ne $((n - lost)) ] || [ "$svg_arrows" -ne "$copies" ] ||
       [ "$notes_bad" -ne "$corrupt" ] || [ "$notes_two" -ne "$two" ] ||
       ! tail -1 "$tmp/picture" | grep -qF "$sum"; then
        echo "  picture: X $xs/$svg_x of $lost, arrows $arrows of $((n - lost)), SVG arrows $svg_arrows of $copies, corrupt notes $notes_bad of $corrupt, copies notes $notes_two of $two"
        return 1
    fi
}

# rtrace_case NAME SPEC CHECK: a traced exchange under SPEC, checked with
# all of the above; CHECK (a shell test on $dropped, $dup, $corrupt and
# $both, fault_preview's counts) says which faults the run must have had.
rtrace_case() {
    name=$1
    trace_pair "$2" || { bad "$name" "the traced exchange failed"; return; }
    shared=$(client_fates)
    cf=$?
    why=$(server_fates)
    sf=$?
    retx_marks
    rx=$?
    pic=$(pictures_agree)
    pa=$?
    count() { grep -c "$1" "$tmp/want"; }
    dropped=$(count '^[0-9]* dropped$') dup=$(count '^[0-9]* duplicated$')
    corrupt=$(count '^[0-9]* corrupted') both=$(count '^[0-9]* corrupted duplicated$')
    nretx=$(grep -c ' retx$' "$tmp/list")
    if [ "$cf" -eq 0 ] && [ "$sf" -eq 0 ] && [ "$rx" -eq 0 ] && [ "$pa" -eq 0 ] &&
       [ "$nretx" -gt 0 ] && eval "$3"; then
        ok "$name" "$(grep -vc '^rtrace:' "$tmp/list") datagrams as fault_preview says ($dropped dropped, $dup duplicated, $corrupt corrupted, $both of them twice; $shared sent more than once unchanged, their copies taken together), $nretx retransmissions"
    else
        bad "$name" "client $cf, server $sf, retx marks $rx ($nretx), picture $pa, faults wanted: $3"
        echo "$shared"
        echo "$why"
        echo "$pic"
        cat "$tmp/want" "$tmp/list"
    fi
}

# Drops only: each client datagram fault_preview dropped is lost, every
# other one arrived once; the server's all arrived while the client ran;
# the retransmissions are the ones the trace marks; the pictures agree.
rtrace_case "rtrace, drops" "drop=0.3,seed=11" '[ "$dropped" -gt 0 ]'

# The same traces as older lines, without bytes, crc, local and retx:
# matched by description, and every line bytes=?.  Of each distinct
# description of a client datagram, as many copies arrived as fault_preview
# let through: lost as many as it dropped, or, where a copy of that
# description was taken for a duplicate, one more lost for each such copy.
# Those lines cannot tell which of identical copies was lost, nor "the
# first was lost and the second duplicated" from "both arrived, the first
# late" (rtrace.c says so); a receiver slow to read makes the second
# reading the likelier (seen under load).
old_format "$tmp/c.tr" > "$tmp/c.old"
old_format "$tmp/s.tr" > "$tmp/s.old"
"$rtrace" --list "$tmp/c.old" "$tmp/s.old" > "$tmp/list.old"
awk -v c="$cport" '
    FILENAME == ARGV[1] { fate[$1] = $2; next }
    $2 == c { key = $5 " " $7 " " $8 " " $9 " " $10; n++
              want[key] += fate[$3] == "dropped"; got[key] += $6 == "lost"
              k = substr($13, 8) + 0; extra[key] += k > 1 ? k - 1 : 0
              if ($11 != "bytes=?") bad = 1 }
    END { for (k in want) if (got[k] - want[k] != extra[k]) bad = 1
          exit bad || n == 0 }' \
    "$tmp/want" "$tmp/list.old"
per_description=$?
dropped=$(grep -c dropped "$tmp/want")
old_lost=$(awk -v c="$cport" '$2 == c && $6 == "lost"' "$tmp/list.old" | wc -l)
old_extra=$(awk -v c="$cport" '$2 == c { k = substr($13, 8) + 0; x += k > 1 ? k - 1 : 0 }
                               END { print x + 0 }' "$tmp/list.old")
if [ "$per_description" -eq 0 ] && [ $((old_lost - old_extra)) -eq "$dropped" ] &&
   [ -s "$tmp/c.old" ] && ! grep -q -e "local=" -e "bytes=[0-9]" "$tmp/c.old"; then
    ok "rtrace, older trace lines" "$old_lost of $dropped lost ($old_extra taken for duplicates), matched by description"
else
    bad "rtrace, older trace lines" "per description $per_description, lost $old_lost of $dropped, $old_extra taken for duplicates"
    cat "$tmp/want" "$tmp/list.old"
fi

# Drops, duplicates and corruption: each datagram as fault_preview says,
# corrupt ones matched by their crc (a corrupted duplicated one: two
# damaged copies).  A seed whose first 30 datagrams have each fate.
seed=1
while ! "$ex/fault_preview" "drop=0.1,dup=0.15,corrupt=0.1,seed=$seed" 30 |
        awk '{ f[$2 " " $3] = 1 }
             END { exit !(f["dropped "] && f["duplicated "] && f["corrupted "] &&
                          f["corrupted duplicated"]) }' &&
      [ "$seed" -lt 1000 ]; do
    seed=$((seed + 1))
done
rtrace_case "rtrace, drops, duplicates, corruption (seed $seed)" \
    "drop=0.1,dup=0.15,corrupt=0.1,seed=$seed" \
    '[ "$dropped" -gt 0 ] && [ "$dup" -gt 0 ] && [ "$both" -gt 0 ] && [ "$corrupt" -gt "$both" ]'

# A datagram damaged in its crc field arrives with a crc its sending does
# not have: one bit of the first damaged arrival's crc flipped in the
# server's trace must change nothing rtrace makes of the client's
# datagrams.
awk '!done && / in drop corrupt .* crc=[0-9a-f]* / {
         i = index($0, " crc=") + 12; d = index("0123456789abcdef", substr($0, i, 1)) - 1
         $0 = substr($0, 1, i - 1) substr("0123456789abcdef", xor_1(d) + 1, 1) substr($0, i + 1)
         done = 1 }
     { print }
     function xor_1(d) { return d % 2 ? d - 1 : d + 1 }' "$tmp/s.tr" > "$tmp/s.hit"
"$rtrace" --list "$tmp/c.tr" "$tmp/s.hit" > "$tmp/list"
hit=$(client_fates)
hrc=$?
if [ "$hrc" -eq 0 ] && ! cmp -s "$tmp/s.tr" "$tmp/s.hit"; then
    ok "rtrace, a corrupt datagram hit in its crc field" "matched all the same"
else
    bad "rtrace, a corrupt datagram hit in its crc field" "$hit"
    diff "$tmp/s.tr" "$tmp/s.hit"
fi

# Several endpoints in one process, writing one stderr: echo_service serves
# on one endpoint and registers with the discovery service through
# another; lb_client looks the service up through one and calls the server
# through another.  rtrace must give every line to the endpoint that wrote
# it (local=): a column per endpoint, and for each datagram identity
# (sender, receiver, crc, size) as many datagrams as the senders' traces
# have "out" lines, with as many copies arrived as the receivers' traces
# have "in" lines.  Then without the discovery service's trace: its column
# is "not traced", what it sent arrives unseen leaving, and the lines about
# it stay with the endpoints that wrote them (lb_client's latest endpoint
# is not the one that talks to it).  The servers run on ephemeral ports, so
# they send no stateless RETRY (the one "out" line without a crc).

# idents FILE...: per datagram identity in the traces, "FROM TO CRC BYTES
# OUTS INS"; an arrival whose identity no "out" line has counts as
# "FROM TO orphans N".
idents() {
    awk '$1 == "rmsg" && ($4 == "out" || $4 == "in") {
             peer = $3; sub(/.*:/, "", peer); l = $NF; sub(/^local=/, "", l)
             b = c = "?"
             for (i = 5; i <= NF; i++) {
                 if ($i ~ /^bytes=/) b = substr($i, 7)
                 if ($i ~ /^crc=/) c = substr($i, 5) }
             if ($4 == "out") outs[l " " peer " " c " " b]++
             else ins[peer " " l " " c " " b]++ }
         END { for (k in outs) print k, outs[k], ins[k] + 0
               for (k in ins) if (!(k in outs)) { split(k, f, " "); o[f[1] " " f[2]] += ins[k] }
               for (k in o) print k, "orphans", o[k] }' "$@" | sort
}

# list_idents LIST: the same from rtrace --list.
list_idents() {
    awk '$6 == "orphan" { o[$2 " " $4]++; next }
         $1 != "rtrace:" { k = $2 " " $4 " " substr($12, 5) " " substr($11, 7)
                           outs[k]++; ins[k] += substr($13, 8) }
         END { for (k in outs) print k, outs[k], ins[k]
               for (k in o) print k, "orphans", o[k] }' "$1" | sort
}

# columns PICTURE: the ports of the picture's columns, sorted.
columns() { head -1 "$1" | grep -o ':[0-9]*' | tr -d : | sort; }

if start disc3 env RMSG_TRACE=1 "$ex/discovery" 0 1500; then
    dpid=$pid dport=$port
    if start echo3 env RMSG_TRACE=1 "$ex/echo_service" 0 127.0.0.1 "$dport" echo &&
       wait_for "$tmp/echo3.out" "^registered as echo" 100; then
        epid=$pid
        env RMSG_TRACE=1 timeout 60 "$ex/lb_client" -n 20 127.0.0.1 "$dport" echo \
            > "$tmp/lb3.out" 2> "$tmp/l.tr"
        lrc=$?
        stop "$epid"
    else
        lrc=1
        stop "$pid"
    fi
    stop "$dpid"
    for f in disc3 echo3; do grep '^rmsg ' "$tmp/$f.out" > "$tmp/$f.tr"; done
    d=$tmp/disc3.tr e=$tmp/echo3.tr l=$tmp/l.tr
    opens=$(cat "$d" "$e" "$l" | sed -n 's/.* open port=\([0-9]*\) .*/\1/p' | sort)
    eopens=$(sed -n 's/.* open port=\([0-9]*\) .*/\1/p' "$e" | wc -l)
    lopens=$(sed -n 's/.* open port=\([0-9]*\) .*/\1/p' "$l" | wc -l)
    # All three traced.
    "$rtrace" --list "$d" "$e" "$l" > "$tmp/list"
    "$rtrace" --width 200 "$d" "$e" "$l" > "$tmp/picture"
    idents "$d" "$e" "$l" > "$tmp/id.trace"
    list_idents "$tmp/list" > "$tmp/id.list"
    if [ "$lrc" -eq 0 ] && [ "$eopens" -eq 2 ] && [ "$lopens" -ge 2 ] &&
       [ "$(columns "$tmp/picture")" = "$opens" ] &&
       ! grep -q "not traced" "$tmp/picture" &&
       cmp -s "$tmp/id.trace" "$tmp/id.list" &&
       ! grep -q orphan "$tmp/list" &&
       tail -1 "$tmp/picture" | grep -q "^rtrace: $(echo "$opens" | wc -l) endpoints,"; then
        ok "rtrace, two endpoints in one process" "$(echo $opens | wc -w) columns, $(wc -l < "$tmp/id.trace") datagram identities as the traces say"
    else
        bad "rtrace, two endpoints in one process" "lb_client rc $lrc, endpoints $eopens+$lopens, columns $(columns "$tmp/picture" | tr '\n' ' ')of $(echo $opens)"
        diff "$tmp/id.trace" "$tmp/id.list"
        head -1 "$tmp/picture"
    fi
    # Without the discovery service's trace.
    dport_open=$(sed -n 's/.* open port=\([0-9]*\) .*/\1/p' "$d")
    "$rtrace" --list "$e" "$l" > "$tmp/list"
    "$rtrace" --width 200 "$e" "$l" > "$tmp/picture"
    idents "$e" "$l" > "$tmp/id.trace"
    list_idents "$tmp/list" > "$tmp/id.list"
    if [ "$(columns "$tmp/picture")" = "$opens" ] &&
       [ "$(grep -o "127.0.0.1:$dport_open (not traced)" "$tmp/picture" | wc -l)" -eq 1 ] &&
       grep -q "^$dport_open [0-9]* orphans [1-9]" "$tmp/id.trace" &&
       cmp -s "$tmp/id.trace" "$tmp/id.list"; then
        ok "rtrace, two endpoints in one process, a peer not traced" "lines about it stay with their endpoints"
    else
        bad "rtrace, two endpoints in one process, a peer not traced" "columns $(columns "$tmp/picture" | tr '\n' ' ')of $(echo $opens)"
        diff "$tmp/id.trace" "$tmp/id.list"
        head -1 "$tmp/picture"
    fi
else
    bad "rtrace, two endpoints in one process" "discovery did not start"
fi

"$rtrace" --help | grep -q "^usage: rtrace" && ok "rtrace --help" ||
    bad "rtrace --help" "no usage"

[ "$fail" -eq 0 ] || { echo "examples_more: $fail check(s) failed"; exit 1; }
echo "examples_more: all passed"
