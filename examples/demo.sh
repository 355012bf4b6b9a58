#!/bin/sh
# make demo: the library's promises, shown over a bad network on loopback.
#
#   1. a large file sent with rmsg, written to disk, read back and verified
#      end to end;
#   2. thousands of incrementBy calls at-most-once: the counter is exact;
#   3. the same calls at-least-once: the counter runs ahead;
#   4. the statistics that explain it;
#   5. a short exchange as a message diagram (rtrace).
#
# Every process sends through injected faults (loss, duplication,
# reordering, corruption), each with its own seed.  Exits 0 only if every
# check held; every process it started is stopped on the way out.
# Usage: sh examples/demo.sh [BUILD_DIR]   (make demo builds first)
set -u
build=${1:-build}
ex=$build/examples
rtrace=$build/tools/rtrace
NET="drop=0.1,dup=0.05,reorder=0.1,corrupt=0.01"
FILE_MB=16
CALLS=2000
tmp=$(mktemp -d)
pids=""
failed=0
start_time=$(date +%s)

cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for b in file_send file_recv counter_server counter_client rmsg_server \
         rmsg_client; do
    [ -x "$ex/$b" ] || { echo "demo: $ex/$b is missing: run make demo"; exit 1; }
done

check() { # check WHAT CONDITION-STATUS
    if [ "$2" -eq 0 ]; then
        echo "   check: $1: ok"
    else
        echo "   check: $1: FAILED"
        failed=$((failed + 1))
    fi
}

# start NAME SEED CMD...: a server over the bad network; waits (bounded)
# for its "listening on port N" and sets $port and $pid.
start() {
    name=$1 seed=$2
    shift 2
    rm -f "$tmp/$name.out"
    env UDP_FAULTS="$NET,seed=$seed" "$@" > "$tmp/$name.out" 2>&1 &
    pid=$!
    pids="$pids $pid"
    for _ in $(seq 100); do
        port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$tmp/$name.out")
        [ -n "$port" ] && return 0
        sleep 0.05
    done
    echo "demo: $name did not start: $(cat "$tmp/$name.out")"
    exit 1
}

# stop PID: ends a server and waits for its last words.
stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

indent() { sed 's/^/   /'; }

echo "== The network: UDP_FAULTS=$NET (each process its own seed)"
echo "   every datagram may be lost, sent twice, held back behind the next"
echo "   one, or have a bit flipped; the programs below know nothing of it"
echo

# ---------------------------------------------------------------------------
echo "== 1. A $FILE_MB MiB file over rmsg, checked end to end"
echo "   (examples/file_send.c, file_recv.c: the receiver reads its copy back"
echo "   from disk and compares checksums with the sender's)"
head -c $((FILE_MB * 1048576)) /dev/urandom > "$tmp/original.bin"
start recv 11 "$ex/file_recv" 0 "$tmp/copy.bin"
rpid=$pid
env UDP_FAULTS="$NET,seed=12" "$ex/file_send" 127.0.0.1 "$port" \
    "$tmp/original.bin" > "$tmp/send.out" 2>&1
src=$?
wait "$rpid"
rrc=$?
indent < "$tmp/send.out"
check "sender and receiver agree on the checksum" \
    "$([ "$src" -eq 0 ] && [ "$rrc" -eq 0 ] &&
       grep -q ': checksum matches$' "$tmp/send.out" &&
       grep -q 'checksum matches$' "$tmp/recv.out"; echo $?)"
check "the copy on disk is byte for byte the original" \
    "$(cmp -s "$tmp/original.bin" "$tmp/copy.bin"; echo $?)"
echo

# ---------------------------------------------------------------------------
# Both semantics at once, each against its own server, so that each
# server's counts are its own.  The clients resend a request every 5 ms
# until its reply arrives, as a classic RPC client over UDP does.
echo "== 2. $CALLS incrementBy(1) calls, at-most-once (examples/counter_*.c)"
start srv_amo 21 "$ex/counter_server" 0
apid=$pid aport=$port
start srv_alo 22 "$ex/counter_server" 0
lpid=$pid lport=$port
env UDP_FAULTS="$NET,seed=23" "$ex/counter_client" 127.0.0.1 "$aport" \
    "$CALLS" amo 5 > "$tmp/amo.out" 2>&1 &
cpid=$!
pids="$pids $cpid"
env UDP_FAULTS="$NET,seed=24" "$ex/counter_client" 127.0.0.1 "$lport" \
    "$CALLS" alo 5 > "$tmp/alo.out" 2>&1
lrc=$?
wait "$cpid"
arc=$?
stop "$apid"
stop "$lpid"
indent < "$tmp/amo.out"
sed -n 's/^handler runs \([0-9]*\), duplicates answered from the cache \([0-9]*\)$/   server: the procedure ran \1 times (get included); \2 repeated requests answered from the reply cache/p' \
    "$tmp/srv_amo.out"
check "the counter equals the $CALLS successful calls" \
    "$([ "$arc" -eq 0 ] && grep -q "^at-most-once: $CALLS calls succeeded, 0 timed out, 0 failed otherwise; counter = $CALLS (0 more" "$tmp/amo.out"; echo $?)"
echo
echo "== 3. The same calls at-least-once (incrementBy registered idempotent)"
indent < "$tmp/alo.out"
sed -n 's/^handler runs \([0-9]*\), duplicates answered from the cache \([0-9]*\)$/   server: the procedure ran \1 times (get included): every copy that arrived ran/p' \
    "$tmp/srv_alo.out"
extra=$(sed -n 's/.*counter = [0-9]* (\([0-9-]*\) more.*/\1/p' "$tmp/alo.out")
check "every call succeeded and the counter is at least the calls" \
    "$([ "$lrc" -eq 0 ] && grep -q "^at-least-once: $CALLS calls succeeded" "$tmp/alo.out" &&
       [ -n "$extra" ] && [ "$extra" -ge 0 ]; echo $?)"
if [ -n "$extra" ] && [ "$extra" -gt 0 ]; then
    echo "   the counter ran $extra ahead: resent requests ran again"
else
    echo "   (no request happened to be resent this time; run it again)"
fi
echo

# ---------------------------------------------------------------------------
echo "== 4. What explains it"
dpc=$(sed -n 's/.*per call \([0-9.]*\)$/\1/p' "$tmp/amo.out")
cached=$(sed -n 's/^handler runs [0-9]*, duplicates answered from the cache \([0-9]*\)$/\1/p' "$tmp/srv_amo.out")
retx=$(sed -n 's/.*retransmissions \([0-9]*\),.*/\1/p' "$tmp/send.out")
good=$(sed -n 's/.*goodput \(.*\)$/\1/p' "$tmp/send.out")
echo "   file transfer: ${retx:-?} fragments sent again, goodput ${good:-?} through the loss"
echo "   at-most-once: ${dpc:-?} datagrams per call (request, reply, acknowledgments,"
echo "   retransmissions); ${cached:-?} duplicate requests suppressed by the reply cache"
echo "   at-least-once: the same copies reached the procedure itself"
echo

# ---------------------------------------------------------------------------
echo "== 5. A short exchange as a message diagram (RMSG_TRACE=1, then rtrace)"
# Seeds chosen (with fault_preview) to lose a datagram each way.
start trace_srv 31 env RMSG_TRACE=1 UDP_FAULTS="drop=0.25,seed=7" \
    "$ex/rmsg_server" 0 0
tpid=$pid
env RMSG_TRACE=1 UDP_FAULTS="drop=0.25,seed=12" "$ex/rmsg_client" \
    127.0.0.1 "$port" 3 > /dev/null 2> "$tmp/client.trace"
trc=$?
stop "$tpid"
echo "   the raw trace of the client, first lines:"
grep '^rmsg' "$tmp/client.trace" | head -5 | indent
echo "   drawn (build/tools/rtrace --brief client.trace server.trace):"
mv "$tmp/trace_srv.out" "$tmp/server.trace"
"$rtrace" --brief --width 96 "$tmp/client.trace" "$tmp/server.trace" \
    > "$tmp/picture" 2>&1
prc=$?
indent < "$tmp/picture"
check "the traced exchange completed and was drawn" \
    "$([ "$trc" -eq 0 ] && [ "$prc" -eq 0 ] &&
       grep -q '^rtrace: 2 endpoints' "$tmp/picture"; echo $?)"
echo

took=$(($(date +%s) - start_time))
if [ "$failed" -eq 0 ]; then
    echo "demo: every check held (${took} s)"
    exit 0
fi
echo "demo: $failed check(s) FAILED (${took} s)"
exit 1
