#!/bin/sh
# test.sh: the one command that runs every test on a fresh Debian 12 machine:
# installs dependencies, builds with warnings as errors, runs the Check unit
# tests and the pytest integration tests (real httpd + real pebble), then
# the sanitizer build and the fuzz targets (build/fuzz.sh).
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
# Three processes (pytest-xdist): the tests mostly wait on servers, so
# three share the 2 cores well; a module's fixtures are made in each
# process that runs one of its tests.
/usr/bin/python3 -m pytest -ra -n 3 --dist load --durations=15 "$@" || int_rc=$?

# ---- sanitizers and fuzzing: ASan+UBSan unit tests in their own build, the
# module's end-to-end test with that mod_acme.so in apache2 (libasan
# preloaded: apache2 itself is not instrumented), and every fuzz target for
# a short time as a regression check (build/fuzz.sh).
san_rc=0
sdir="$bdir-san"
mkdir -p "$sdir" && cd "$sdir" || exit 1
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$top/build/lsan.supp"
if ! "$top/configure" --enable-werror --enable-sanitizers >configure.out 2>&1; then
    cat configure.out; san_rc=1
elif ! make -j2 >make.out 2>&1; then
    cat make.out; san_rc=1
elif ! make -j2 check >check.out 2>&1; then
    grep -hE ":[0-9]+:[EF]:|ERROR: |runtime error" test/unit/*.log
    echo "unit tests under ASan+UBSan FAILED; logs in $sdir/test/unit/*.log"; san_rc=1
else
    echo "unit tests under ASan+UBSan: $(grep -E '^# PASS' check.out)"
    libasan=$(readlink -f "$(gcc -print-file-name=libasan.so)")
    cd "$top/test/integration" || exit 1
    # detect_leaks=0: httpd exits without freeing its pools; UB is reported,
    # and any report in the error log fails the test (harness/httpd.py).
    MOD_ACME_BUILD_DIR="$sdir" \
    MOD_ACME_HTTPD_ENV="LD_PRELOAD=$libasan ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1" \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider \
        test_module.py::test_http01_issuance_without_manual_restart || san_rc=1
fi
unset UBSAN_OPTIONS LSAN_OPTIONS
FUZZ_JOBS=2 "$top/build/fuzz.sh" "${MOD_ACME_FUZZ_SECONDS:-5}" || san_rc=1

if [ "$unit_rc" != 0 ] || [ "$int_rc" != 0 ] || [ "$san_rc" != 0 ]; then
    exit 1
fi
exit 0
