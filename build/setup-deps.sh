#!/bin/sh
# setup-deps.sh: installs the Debian packages mod_acme needs to build, run and
# test. Idempotent: apt-get runs only when a package is missing.
set -eu

PACKAGES="apache2 apache2-dev libssl-dev libjansson-dev libcurl4-openssl-dev
pkg-config autoconf automake libtool make gcc check pebble python3 python3-pytest
python3-cryptography python3-pytest-xdist python3-requests curl openssl ca-certificates prometheus
build-essential dpkg-dev fakeroot debhelper lintian
etcd-server etcd-client
libldns-dev ldnsutils knot knot-dnsutils bind9 bind9-utils bind9-dnsutils faketime
clang libclang-rt-14-dev"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "setup-deps: all packages present"
    exit 0
fi

echo "setup-deps: missing:$missing"
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "setup-deps: run as root (or install sudo), or install these yourself:" >&2
        echo "  apt-get install$missing" >&2
        exit 1
    fi
else
    SUDO=""
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
# Debian starts apache2 from the package's postinst on some systems; the
# project never needs the system instance, and it would hold ports 80/443.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet apache2 2>/dev/null; then
    $SUDO systemctl stop apache2 || true
fi
# Likewise etcd-server's own member: the tests start their own clusters.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
    $SUDO systemctl stop etcd || true
fi
echo "setup-deps: done"
