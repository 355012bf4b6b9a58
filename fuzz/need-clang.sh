#!/bin/sh
# Makes sure a clang with libFuzzer and the address and undefined-behaviour
# sanitizers is there before the fuzz targets build.  As root it installs
# Debian's clang (and the runtime libraries libFuzzer needs, packaged apart
# on some releases) with apt-get; otherwise it stops and prints the command.
cc=${1:-clang}
probe='#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }'
have_fuzzer() {
    printf '%s\n' "$probe" |
        "$cc" -x c - -o /dev/null -fsanitize=fuzzer,address,undefined \
            2>/dev/null
}
have_fuzzer && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "libFuzzer is missing: installing clang with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq clang >/dev/null
    have_fuzzer && exit 0
    # Debian 12 and later ship the sanitizer and fuzzer runtimes apart:
    # libclang-rt-dev (or, older, libclang-rt-N-dev for clang N).
    v=$(clang --version 2>/dev/null |
        sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n 1)
    apt-get install -y -qq libclang-rt-dev >/dev/null 2>&1 ||
        apt-get install -y -qq "libclang-rt-$v-dev" >/dev/null 2>&1
    have_fuzzer && exit 0
    echo "error: clang was installed but cannot build a libFuzzer target" >&2
    exit 1
fi
echo "error: the fuzz targets need clang with libFuzzer. Install it with:" >&2
echo "    sudo apt-get install clang libclang-rt-dev" >&2
echo "(on Debian 11, plain 'clang' is enough; elsewhere set FUZZ_CC)" >&2
exit 1
