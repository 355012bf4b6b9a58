#!/bin/sh
# Runs the examples the way a student would, on loopback with ephemeral
# ports, and checks what they print.  Usage: tests/examples.sh BUILD_DIR
set -u
build=${1:-build}
ex=$build/examples
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Starts a server on port 0 and prints the port it chose.
start_server() {
    "$@" > "$tmp/server.out" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$tmp/server.out")
        [ -n "$port" ] && return 0
        sleep 0.05
    done
    echo "server did not start: $(cat "$tmp/server.out")"
    return 1
}

# run NAME SERVER CLIENT EXPECT [env...]
run_pair() {
    name=$1 server=$2 client=$3 expect=$4 count=$5
    shift 5
    # Over faults a server counts duplicates too: let it run until killed.
    scount=$count
    case "$*" in *UDP_FAULTS*) scount=0 ;; esac
    if ! start_server env "$@" "$ex/$server" 0 "$scount"; then
        fail=$((fail + 1)); return
    fi
    if env "$@" timeout 60 "$ex/$client" 127.0.0.1 "$port" "$count" > "$tmp/client.out" 2>&1 &&
       [ "$(grep -c "$expect" "$tmp/client.out")" -eq "$count" ]; then
        echo "example $name: passed"
    else
        echo "example $name: FAILED"; cat "$tmp/client.out"; fail=$((fail + 1))
    fi
    [ "$scount" -eq 0 ] && kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

run_pair "udp (textbook)" udp_server udp_client "got reply.*ack: hello" 5
run_pair "udp over faults" udp_server udp_client "got reply.*ack: hello" 5 \
    UDP_FAULTS=drop=0.2,dup=0.1,seed=3
run_pair "rmsg" rmsg_server rmsg_client "goodbye world" 20
run_pair "rmsg over faults" rmsg_server rmsg_client "goodbye world" 20 \
    UDP_FAULTS=drop=0.2,dup=0.1,reorder=0.2,corrupt=0.05,seed=5
# The counter over rpc: at-most-once must end with the counter equal to the
# successful calls (none timed out at this loss); at-least-once may run ahead.
if start_server env UDP_FAULTS=drop=0.2,dup=0.1,reorder=0.1,seed=9 \
        "$ex/counter_server" 0; then
    for mode in amo alo; do
        env UDP_FAULTS=drop=0.2,dup=0.1,reorder=0.1,seed=9 timeout 60 \
            "$ex/counter_client" 127.0.0.1 "$port" 200 "$mode" \
            > "$tmp/client.out" 2>&1
        rc=$?
        line=$(head -1 "$tmp/client.out")
        case "$mode:$rc:$line" in
        amo:0:*"200 calls succeeded, 0 timed out, 0 failed otherwise; counter = 200 (0 more"*|\
        alo:0:*"200 calls succeeded, 0 timed out"*)
            echo "example counter ($mode): passed: $line" ;;
        *)
            echo "example counter ($mode): FAILED"; cat "$tmp/client.out"
            fail=$((fail + 1)) ;;
        esac
    done
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
else
    fail=$((fail + 1))
fi
[ "$fail" -eq 0 ] || { echo "$fail example(s) failed"; exit 1; }
