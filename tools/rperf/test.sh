#!/bin/sh
# tools/rperf/test.sh BUILD - rperf's quick test (make test-rperf): every
# transport briefly on loopback, in both tests, checked by exit status and
# by the fields of its JSON; injected loss; bad arguments; and a server
# that is not there.  About ten seconds.
set -u
build=${1:-build}
rperf=$build/tools/rperf
tmp=$(mktemp -d)
server_pid=""
passed=0 failed=0

cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2> /dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ok() {
    echo "rperf test: $1: passed"
    passed=$((passed + 1))
}

bad() { # bad CASE WHY [FILE]: the case failed; FILE's text follows
    echo "rperf test: $1: FAILED: $2"
    [ $# -gt 2 ] && sed 's/^/  /' "$3"
    failed=$((failed + 1))
}

# missing_fields FILE KEY...: the keys missing from rperf's JSON in FILE
# (empty when it has all of them).
missing_fields() {
    f=$1
    shift
    for k in "$@"; do
        grep -q "^  \"$k\": " "$f" || printf ' %s' "$k"
    done
}

# A field's value: a number, true/false/null, or a string without quotes.
field() {
    sed -n 's/^  "'"$2"'": "\{0,1\}\([^",]*\)"\{0,1\},\{0,1\}$/\1/p' "$1" | head -1
}

[ -x "$rperf" ] || { echo "rperf test: $rperf missing: run make"; exit 1; }

# ---------------------------------------------------------------------------
# A server on an ephemeral port

"$rperf" -s -p 0 -q > "$tmp/server.out" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$tmp/server.out")
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { echo "rperf test: the server did not start:"; cat "$tmp/server.out"; exit 1; }

# Every run's JSON has these; a test's own figures must not be null.
common="tool transport test size clients bytes seconds rate_bytes_per_s
msgs_per_s retransmissions datagrams_per_msg cpu_client_s cpu_server_s ok
intact error"
lat_fields="p50_us p90_us p99_us p999_us max_us"
base_fields="baseline_transport baseline_p50_us baseline_rate_bytes_per_s ratio
ratio_basis"

# run NAME KIND ARGS...: one client run with --json; KIND is lat or bw.
run() {
    name=$1 kind=$2
    shift 2
    out=$tmp/out.json
    # shellcheck disable=SC2086 # the field lists are words
    if ! timeout 60 "$rperf" -c 127.0.0.1 -p "$port" --json "$@" \
        > "$out" 2> "$tmp/err"; then
        cat "$tmp/err" >> "$out"
        bad "$name" "exit status $?" "$out"
        return
    fi
    fields="$common"
    [ "$kind" = lat ] && fields="$fields $lat_fields"
    case " $* " in *" --no-baseline "* | *" -T udp "*) ;; *) fields="$fields $base_fields" ;; esac
    # shellcheck disable=SC2086
    miss=$(missing_fields "$out" $fields)
    [ -z "$miss" ] || { bad "$name" "JSON lacks:$miss" "$out"; return; }
    [ "$(field "$out" ok)" = true ] && [ "$(field "$out" intact)" = true ] ||
        { bad "$name" "not ok and intact" "$out"; return; }
    figure=rate_bytes_per_s
    [ "$kind" = lat ] && figure=p50_us
    v=$(field "$out" "$figure")
    [ -n "$v" ] && [ "$v" != null ] || { bad "$name" "$figure is null" "$out"; return; }
    ok "$name ($figure $v)"
}

# ---------------------------------------------------------------------------
# Each transport, both tests

for tr in udp rmsg rmsg-async tcp rpc; do
    run "$tr lat" lat -T "$tr" --lat -N 2000
    run "$tr bw" bw -T "$tr" --bw -n 4M -l 256K
done
run "rpc lat, 3 clients, 1 KiB echoed" lat -T rpc --lat -N 3000 -P 3 -l 1K \
    --no-baseline
run "rpc bw, 4 clients" bw -T rpc --bw -n 4M -l 64K -P 4 --no-baseline
run "rmsg-async bw, 2 repeats" bw -T rmsg-async -n 2M -r 2 --no-baseline
out=$tmp/out.json
miss=$(missing_fields "$out" rate_bytes_per_s_min rate_bytes_per_s_max ratio_min)
[ -z "$miss" ] && ok "repeats: spread figures" || bad "repeats" "JSON lacks:$miss" "$out"
UDP_FAULTS=drop=0.05,seed=7 run "rpc lat over 5% injected loss" lat -T rpc \
    --lat -N 1000 --no-baseline
r=$(field "$out" retransmissions)
[ -n "$r" ] && [ "$r" != 0 ] && ok "UDP_FAULTS honoured ($r retransmissions)" ||
    bad "UDP_FAULTS" "no retransmissions under 5% loss" "$out"
# The rpc figures of a null call: about two datagrams per call.
run "rpc null calls" lat -T rpc --lat -N 2000 --no-baseline
d=$(field "$out" datagrams_per_msg)
awk -v d="$d" 'BEGIN { exit !(d >= 1.9 && d <= 3) }' &&
    ok "rpc datagrams per null call ($d)" ||
    bad "rpc datagrams per call" "$d, not about 2" "$out"

# ---------------------------------------------------------------------------
# Bad arguments: status 2 and a message that names the problem

# usage_case NAME PATTERN ARGS...
usage_case() {
    name=$1 pattern=$2
    shift 2
    "$rperf" "$@" > "$tmp/out" 2>&1
    rc=$?
    if [ "$rc" = 2 ] && grep -q -- "$pattern" "$tmp/out"; then
        ok "bad arguments: $name"
    else
        bad "bad arguments: $name" "status $rc, expected 2 and '$pattern'" "$tmp/out"
    fi
}
usage_case "none" "say -s"
usage_case "unknown transport" "unknown transport 'nope'" -c 127.0.0.1 -T nope
usage_case "bad size" "is not a size" -c 127.0.0.1 -l 12Q
usage_case "-P without rpc" "-P applies to -T rpc" -c 127.0.0.1 -T rmsg -P 4
usage_case "empty non-rpc message" "only an rpc round trip" -c 127.0.0.1 -l 0
usage_case "client option on the server" "is a client option" -s -T rpc
"$rperf" --help > "$tmp/out" 2>&1 && grep -q "^Examples:" "$tmp/out" &&
    grep -q " rpc " "$tmp/out" && ok "--help" || bad "--help" "no examples" "$tmp/out"

# ---------------------------------------------------------------------------
# No server: a clear error, status 1, at once (the connection is refused;
# the connect deadline is for a silent peer)

kill "$server_pid" 2> /dev/null
wait "$server_pid" 2> /dev/null
server_pid=""
start=$(date +%s)
timeout 20 "$rperf" -c 127.0.0.1 -p "$port" -T rpc --lat > "$tmp/out" 2>&1
rc=$?
took=$(($(date +%s) - start))
if [ "$rc" = 1 ] && [ "$took" -le 5 ] && grep -q "cannot connect" "$tmp/out"; then
    ok "no server ($(head -1 "$tmp/out"), ${took} s)"
else
    bad "no server" "status $rc after $took s" "$tmp/out"
fi

echo "rperf test: $passed passed, $failed failed"
[ "$failed" = 0 ]
