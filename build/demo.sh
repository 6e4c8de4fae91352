#!/bin/sh
# demo.sh: the main job on a fresh Debian 12 machine: installs what it needs,
# builds mod_acme, and runs a local CA (pebble) and apache2 with two managed
# domains on loopback, showing issuance, the automatic restart and the result.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bdir="${MOD_ACME_BUILD_DIR:-$top/_build}"

"$top/build/setup-deps.sh"
cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
    autoreconf -fi
fi
mkdir -p "$bdir"
cd "$bdir"
[ -f Makefile ] || "$top/configure" --enable-werror >configure.out 2>&1 || { cat configure.out; exit 1; }
make -j2 >make.out 2>&1 || { cat make.out; exit 1; }
echo "== built $bdir/.libs/mod_acme.so"
MOD_ACME_BUILD_DIR="$bdir" exec /usr/bin/python3 "$top/build/demo.py"
