#!/bin/sh
# make demo: the examples over an injected bad network, on loopback.
# Exits 0 only if every exchange completed.
set -u
build=${1:-build}
ex=$build/examples
faults="drop=0.2,dup=0.1,reorder=0.2,corrupt=0.05,seed=42"
tmp=$(mktemp -d)
pids=""
trap 'kill $pids 2>/dev/null; rm -rf "$tmp"' EXIT

start() { # start NAME CMD... ; sets $port
    name=$1
    shift
    "$@" > "$tmp/$name.srv" 2>&1 &
    pids="$pids $!"
    for _ in $(seq 100); do
        port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$tmp/$name.srv")
        [ -n "$port" ] && return 0
        sleep 0.05
    done
    echo "demo: server did not start"; exit 1
}

echo "== The network: UDP_FAULTS=$faults"
echo "   (each datagram may be dropped, duplicated, reordered or corrupted)"
echo
echo "== 1. The textbook's UDP client and server: no reliability of their own"
env UDP_FAULTS="$faults" "$ex/udp_server" 0 0 > "$tmp/udp.srv" 2>&1 &
pids="$pids $!"
sleep 0.2
port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$tmp/udp.srv")
env UDP_FAULTS="$faults" "$ex/udp_client" 127.0.0.1 "$port" 5 || exit 1
echo
echo "== 2. The same exchange over rmsg: acknowledgments, retries, checksums"
start rmsg env UDP_FAULTS="$faults" "$ex/rmsg_server" 0 0
env UDP_FAULTS="$faults" "$ex/rmsg_client" 127.0.0.1 "$port" 200 > "$tmp/rmsg.out" || {
    cat "$tmp/rmsg.out"; exit 1; }
head -3 "$tmp/rmsg.out"
echo "   ... ($(grep -c 'got reply' "$tmp/rmsg.out") replies in all, every one checked)"
tail -1 "$tmp/rmsg.out"
echo
echo "== 3. A few lines of protocol trace (RMSG_TRACE=1) for one exchange"
env UDP_FAULTS="$faults" RMSG_TRACE=1 "$ex/rmsg_client" 127.0.0.1 "$port" 1 \
    2>&1 >/dev/null | head -12
echo
echo "demo: every exchange completed"
