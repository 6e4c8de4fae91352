#!/bin/sh
# fuzz.sh [SECONDS]: builds the core with clang, libFuzzer, ASan and UBSan in
# its own build dir and runs every test/fuzz/fuzz_*.c for SECONDS (default 20)
# on a copy of its seed corpus. Fails on any crash, leak, timeout or UB.
# SECONDS 0 only builds (the binaries are _build-fuzz/fuzz/fuzz_NAME).
#   FUZZ_BUILD_DIR  build dir (default _build-fuzz)
#   FUZZ_TARGETS    names to run (default: all, e.g. "json_doc link")
#   FUZZ_JOBS       targets run at once (default 1)
#   FUZZ_RUNS       stop a target after this many inputs (long runs: -runs=)
#   FUZZ_RESUME=1   go on from the corpus a target's last run left in
#                   BUILD/fuzz/run-NAME/corpus (long runs over several
#                   sessions) instead of starting again from the seeds; the
#                   log of each part is kept as log.N
# test/fuzz/fuzz_NAME.options, if present, holds more libFuzzer flags for
# that target (e.g. a smaller -max_len). LeakSanitizer reads the
# suppressions of test/fuzz/lsan.supp (leaks inside libraries).
set -u
secs="${1:-20}"
top=$(cd "$(dirname "$0")/.." && pwd)
bdir="${FUZZ_BUILD_DIR:-$top/_build-fuzz}"
jobs="${FUZZ_JOBS:-1}"
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cflags="-g -O1 $san"

command -v clang >/dev/null 2>&1 || { echo "fuzz: clang missing (build/setup-deps.sh)"; exit 1; }
cd "$top" || exit 1
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
    autoreconf -fi || exit 1
fi
mkdir -p "$bdir/fuzz" && cd "$bdir" || exit 1
if [ ! -f Makefile ] || [ "$top/configure" -nt Makefile ]; then
    "$top/configure" CC=clang CFLAGS="$cflags -fsanitize=fuzzer-no-link" \
        >configure.out 2>&1 || { cat configure.out; exit 1; }
fi
make -j2 libacmecore.la >make.out 2>&1 || { cat make.out; exit 1; }
# The core's compile and link flags come from the configured Makefile, so a
# library added to CORE_LIBS needs no change here.
eval "$(make -s print-core-flags | sed -e 's/^\([A-Z_]*\)=\(.*\)$/\1="\2"/')"

rc=0
built=""
for src in "$top"/test/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c); name=${name#fuzz_}
    if [ -n "${FUZZ_TARGETS:-}" ] && ! echo " $FUZZ_TARGETS " | grep -q " $name "; then
        continue
    fi
    bin="$bdir/fuzz/fuzz_$name"
    if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ .libs/libacmecore.a -nt "$bin" ] \
       || [ -n "$(find "$top/test/fuzz" -name '*.h' -newer "$bin")" ]; then
        # shellcheck disable=SC2086
        clang $cflags -Wall -Wextra -Werror=implicit-function-declaration -fsanitize=fuzzer $CORE_CPPFLAGS -I"$top/test/fuzz" -I. "$src" \
            .libs/libacmecore.a $CORE_LIBS -o "$bin" >"$bin.build.out" 2>&1 \
            || { cat "$bin.build.out"; echo "fuzz: $name does not build"; rc=1; continue; }
    fi
    built="$built $name"
done

LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$top/test/fuzz/lsan.supp}"
export LSAN_OPTIONS

run_one() {
    name=$1
    extra=""
    [ -n "${FUZZ_RUNS:-}" ] && extra="-runs=$FUZZ_RUNS"
    opts="$top/test/fuzz/fuzz_$name.options"
    [ -f "$opts" ] && extra="$extra $(cat "$opts")"
    work="$bdir/fuzz/run-$name"
    if [ "${FUZZ_RESUME:-}" = 1 ] && [ -f "$work/log" ]; then
        n=1; while [ -f "$work/log.$n" ]; do n=$((n + 1)); done
        mv "$work/log" "$work/log.$n"
    else
        rm -rf "$work"
    fi
    mkdir -p "$work/corpus" "$work/crashes"
    if [ -d "$top/test/fuzz/corpus/$name" ]; then
        cp -r "$top/test/fuzz/corpus/$name/." "$work/corpus/"
    fi
    # shellcheck disable=SC2086
    if "$bdir/fuzz/fuzz_$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
           -max_len=16384 -print_final_stats=1 -artifact_prefix="$work/crashes/" \
           $extra "$work/corpus" >"$work/log" 2>&1; then
        echo "fuzz: $name ok: $(grep -E '^#[0-9]+.*DONE' "$work/log" | tail -1)"
    else
        echo "fuzz: $name FAILED (log $work/log, inputs in $work/crashes):"
        grep -E "ERROR|SUMMARY|runtime error|^==" "$work/log" | head -20
        return 1
    fi
}

if [ "$secs" = 0 ]; then
    echo "fuzz: built$built"
    exit "$rc"
fi
running=0
pids=""
for name in $built; do
    run_one "$name" >"$bdir/fuzz/status-$name" 2>&1 &
    pids="$pids $!"
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        for pid in $pids; do wait "$pid" || rc=1; done
        pids=""; running=0
        cat "$bdir"/fuzz/status-* 2>/dev/null; rm -f "$bdir"/fuzz/status-*
    fi
done
for pid in $pids; do wait "$pid" || rc=1; done
cat "$bdir"/fuzz/status-* 2>/dev/null; rm -f "$bdir"/fuzz/status-*
[ "$rc" = 0 ] && echo "fuzz: all targets passed ($secs s each)"
exit "$rc"
