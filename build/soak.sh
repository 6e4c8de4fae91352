#!/bin/sh
# soak.sh: the long versions of the fault tests that CI runs short:
# kill -9 at ROUNDS random moments of issuance (default 100), with a seed
# of your choice, against the build that build/test.sh made.
#   build/soak.sh [ROUNDS] [SEED]
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
export MOD_ACME_BUILD_DIR="${MOD_ACME_BUILD_DIR:-$top/_build}"
export MOD_ACME_KILL_ROUNDS="${1:-100}"
export MOD_ACME_KILL_SEED="${2:-$(date +%s)}"
export MOD_ACME_TEST_TIME_LIMIT=$((MOD_ACME_KILL_ROUNDS * 20 + 60))
echo "soak: $MOD_ACME_KILL_ROUNDS kills, seed $MOD_ACME_KILL_SEED"
cd "$top/test/integration" && exec /usr/bin/python3 -m pytest -q test_faults.py -k kill9
