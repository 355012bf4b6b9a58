#!/bin/sh
# Makes sure CUnit's headers and library are there before the tests build.
# As root it installs Debian's libcunit1-dev; otherwise it stops and prints
# the one command that would.
cc=${1:-cc}
probe='#include <CUnit/Basic.h>
int main(void) { return CU_initialize_registry() == CUE_SUCCESS ? 0 : 1; }'
have_cunit() {
    printf '%s\n' "$probe" | "$cc" -x c - -o /dev/null -lcunit 2>/dev/null
}
have_cunit && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "CUnit is missing: installing libcunit1-dev with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq libcunit1-dev >/dev/null
    have_cunit && exit 0
    echo "error: libcunit1-dev was installed but CUnit still does not link" >&2
    exit 1
fi
echo "error: the tests need CUnit. Install it with:" >&2
echo "    sudo apt-get install libcunit1-dev" >&2
exit 1
