#!/usr/bin/env bash
# bench/path.sh [TREE] - instructions (or time) on a round trip's path.
#
# A round trip waits for what each side does between a receive returning
# and its next send; what it does after the send overlaps the wire.  This
# counts those instructions exactly, where a wall clock on a noisy machine
# cannot tell a few per cent: it copies TREE (default: this checkout),
# wraps the udp layer's system calls so that callgrind collects only from
# a receive's return to the next send, builds rperf, and runs client and
# server under valgrind for N round trips (rperf --lat) of each transport.
# It prints instructions per round trip, client, server and both.  rperf's
# own work on the path is included, the same for every transport.
#
# With TIME=1 the same stretches are timed instead, natively (no
# valgrind): the wrapper reads the clock (the TSC on x86-64) where
# callgrind would start and stop, and each side prints the nanoseconds it
# spent on the path per round trip.  That is what instruction counts
# cannot show (cache misses, a cold path after the kernel ran), and it is
# as noisy as the machine.
#
#   bench/path.sh                  # this tree
#   N=3000 TRS="rmsg rpc" bench/path.sh /tmp/other-checkout
#   TIME=1 N=20000 bench/path.sh
#
# Needs valgrind and its headers (valgrind/callgrind.h) unless TIME=1.
# Under valgrind the processor has no AVX-512, so CRC-32C takes its SSE 4.2
# path.
# Environment: N (round trips, default 3000), TRS (transports, default
# "udp rmsg rpc"), PORT (default 5395), KEEP (a directory: the callgrind
# profiles are kept there as TRANSPORT-client.out and TRANSPORT-server.out,
# for callgrind_annotate), TIME (1: time, do not count).
set -u
tree=$(cd "${1:-$(dirname "$0")/..}" && pwd)
n=${N:-3000} port=${PORT:-5395} timed=${TIME:-0}
if [ "$timed" != 1 ]; then
    command -v valgrind > /dev/null || { echo "path: valgrind missing" >&2; exit 1; }
    [ -f /usr/include/valgrind/callgrind.h ] ||
        { echo "path: valgrind/callgrind.h missing" >&2; exit 1; }
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$tree" "$work/src"
rm -rf "$work/src/.git" "$work/src/build"

# The wrapping: collection on when a receive returns, off before a send or
# a receive.  Every one of the four calls must be found, or the count
# would be wrong without saying so.
u=$work/src/udp.c
if [ "$timed" = 1 ]; then
    # The clock: the TSC where there is one (a read costs a few
    # nanoseconds), converted with the monotonic clock over the whole run.
    cat > "$work/probe.h" << 'EOF_PROBE'
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__)
#include <x86intrin.h>
static unsigned long long path_ticks(void) { return __rdtsc(); }
#else
static unsigned long long path_ticks(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000u + (unsigned long long)ts.tv_nsec;
}
#endif
static int path_on;
static unsigned long long path_t0, path_sum, path_first;
static struct timespec path_mono0;
static double path_mono(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) * 1e9 + (double)(b.tv_nsec - a->tv_nsec);
}
static void path_report(void)
{
    double ns_per_tick = path_mono(&path_mono0) / (double)(path_ticks() - path_first);
    fprintf(stderr, "path-ns %.0f\n", (double)path_sum * ns_per_tick);
}
static void path_off(void) { if (path_on) { path_sum += path_ticks() - path_t0; path_on = 0; } }
static void path_start(void)
{
    if (path_first == 0) {
        clock_gettime(CLOCK_MONOTONIC, &path_mono0);
        path_first = path_ticks();
        atexit(path_report);
    }
    if (!path_on) { path_t0 = path_ticks(); path_on = 1; }
}
EOF_PROBE
else
    cat > "$work/probe.h" << 'EOF_PROBE'
#include <valgrind/callgrind.h>
static int path_on;
static void path_off(void) { if (path_on) { CALLGRIND_TOGGLE_COLLECT; path_on = 0; } }
static void path_start(void) { if (!path_on) { CALLGRIND_TOGGLE_COLLECT; path_on = 1; } }
EOF_PROBE
fi
sed -i "1r $work/probe.h" "$u" # after udp.c's first line, _GNU_SOURCE
sed -i 's/^\( *\)if (sendmsg(fd, &h, 0) >= 0)$/\1path_off();\n&/' "$u"
sed -i 's/^\( *\)ssize_t r = recvmsg(fd, &mh->msg_hdr, flags & MSG_DONTWAIT);$/\1path_off();\n&\n\1path_start();/' "$u"
sed -i 's/^\( *\)ssize_t r = recvfrom(fd, buf, cap, 0, (struct sockaddr \*)ss, len);$/\1path_off();\n&\n\1path_start();/' "$u"
sed -i 's/^\( *\)ssize_t r = sendto(fd, buf, n, 0, to, tolen);$/\1path_off();\n&/' "$u"
found=$(grep -c 'path_off();' "$u")
[ "$found" = 4 ] && grep -q 'static int path_on' "$u" ||
    { echo "path: udp.c has changed: $found of 4 calls found" >&2; exit 1; }

make -s -C "$work/src" -j2 BUILD="$work/b" "$work/b/tools/rperf" > "$work/make.log" 2>&1 ||
    { cat "$work/make.log" >&2; exit 1; }
rperf=$work/b/tools/rperf
for tr in ${TRS:-udp rmsg rpc}; do
    if [ "$timed" = 1 ]; then
        "$rperf" -s -p "$port" --once > /dev/null 2> "$work/srv.err" &
        srv=$!
        sleep 0.5
        "$rperf" -c 127.0.0.1 -p "$port" -T "$tr" --lat -N "$n" \
            --no-baseline -q > /dev/null 2> "$work/cli.err" ||
            { echo "path: $tr: the client failed" >&2; kill "$srv"; exit 1; }
        wait "$srv"
        c=$(sed -n 's/^path-ns //p' "$work/cli.err")
        s=$(sed -n 's/^path-ns //p' "$work/srv.err")
        echo "$tr: client $((c / n)) server $((s / n)) both $(((c + s) / n)) ns per round trip on its path"
        continue
    fi
    valgrind --tool=callgrind --collect-atstart=no \
        --callgrind-out-file="$work/srv.out" "$rperf" -s -p "$port" --once \
        > /dev/null 2>&1 &
    srv=$!
    sleep 2
    valgrind --tool=callgrind --collect-atstart=no \
        --callgrind-out-file="$work/cli.out" "$rperf" -c 127.0.0.1 -p "$port" \
        -T "$tr" --lat -N "$n" --no-baseline -q > /dev/null 2>&1 ||
        { echo "path: $tr: the client failed" >&2; kill "$srv"; exit 1; }
    wait "$srv"
    c=$(sed -n 's/^summary: //p' "$work/cli.out")
    s=$(sed -n 's/^summary: //p' "$work/srv.out")
    if [ -n "${KEEP:-}" ]; then
        mkdir -p "$KEEP"
        cp "$work/cli.out" "$KEEP/$tr-client.out"
        cp "$work/srv.out" "$KEEP/$tr-server.out"
    fi
    echo "$tr: client $((c / n)) server $((s / n)) both $(((c + s) / n)) instructions per round trip on its path"
done
