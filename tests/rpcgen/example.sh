#!/bin/sh
# Runs the calc example as a user would: the server on an ephemeral port,
# the client against it, and checks every line the client prints.  The
# server's first line is read through a FIFO, so nothing waits on a timer.
# Usage: tests/rpcgen/example.sh BUILD_DIR
set -u
ex=${1:-build}/examples
tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
mkfifo "$tmp/fifo"
"$ex/calc_server" 0 > "$tmp/fifo" 2>&1 &
pid=$!
exec 3< "$tmp/fifo"
read -r line <&3
port=${line#listening on port }
case "$port" in
    ''|*[!0-9]*) echo "rpcgen example: FAILED (server said: $line)"; exit 1 ;;
esac
cat > "$tmp/want" <<'OUT'
add(40, 2) = 42
divide(1, 4) = 0.25
divide(1, 0): refused, division by zero
summarize: count 8, mean 3.875, min 1, max 9
greet: hello, world
OUT
timeout 30 "$ex/calc_client" 127.0.0.1 "$port" > "$tmp/got" 2>&1
rc=$?
if [ "$rc" -eq 0 ] && cmp -s "$tmp/want" "$tmp/got"; then
    echo "rpcgen example: passed"
    exit 0
fi
echo "rpcgen example: FAILED (status $rc)"
diff "$tmp/want" "$tmp/got"
exit 1
