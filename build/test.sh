#!/bin/sh
# test.sh: the one command that runs every test on a fresh Debian 12 machine:
# installs dependencies, builds with warnings as errors, runs the Check unit
# tests and the pytest integration tests (real httpd + real pebble).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
bdir="${MOD_ACME_BUILD_DIR:-$top/_build}"

"$top/build/setup-deps.sh" || exit 1

cd "$top" || exit 1
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
    autoreconf -fi || exit 1
fi
mkdir -p "$bdir" && cd "$bdir" || exit 1
"$top/configure" --enable-werror >configure.out 2>&1 || { cat configure.out; exit 1; }
make -j2 >make.out 2>&1 || { cat make.out; exit 1; }

unit_rc=0
make -j2 check >check.out 2>&1 || unit_rc=$?
# Show Check's own summary lines per suite, then automake's totals.
for log in test/unit/*.log; do
    [ -f "$log" ] || continue
    grep -E "^(Running suite|[0-9]+%: Checks)|:[0-9]+:[EF]:" "$log"
done
grep -E "^# (TOTAL|PASS|FAIL|ERROR)" check.out
if [ "$unit_rc" != 0 ]; then
    echo "unit tests FAILED; logs in $bdir/test/unit/*.log"
fi

export MOD_ACME_BUILD_DIR="$bdir"
cd "$top/test/integration" || exit 1
int_rc=0
/usr/bin/python3 -m pytest -ra "$@" || int_rc=$?

if [ "$unit_rc" != 0 ] || [ "$int_rc" != 0 ]; then
    exit 1
fi
exit 0
