#!/bin/sh
# deb.sh: builds the Debian package libapache2-mod-acme from this tree: installs
# the build dependencies if missing, builds in a temporary copy, prints the folder.
# Usage: build/deb.sh [OUTDIR]   (default: a new /tmp/mod_acme-deb.XXXXXX)
# DEB_BUILD_OPTIONS=nocheck skips the unit tests inside the package build.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)

# dh-apache2 is a virtual package: Debian's apache2-dev provides dh_apache2.
PACKAGES="build-essential dpkg-dev fakeroot debhelper dh-autoreconf apache2-dev
libssl-dev libjansson-dev libcurl4-openssl-dev pkg-config check autoconf automake
libtool lintian"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "deb.sh: installing:$missing"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

version=$(sed -n 's/^AC_INIT(\[mod_acme\], *\[\([^]]*\)\].*/\1/p' "$top/configure.ac")
[ -n "$version" ] || { echo "deb.sh: no version in configure.ac AC_INIT" >&2; exit 1; }
out=${1:-$(mktemp -d /tmp/mod_acme-deb.XXXXXX)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/mod_acme-debsrc.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The source tree as a clean checkout has it: no build outputs, no generated
# configure; then build/debian becomes debian/.
src="$work/libapache2-mod-acme-$version"
mkdir "$src"
tar -C "$top" --exclude=./.git --exclude=./_build --exclude='./_build*' \
    --exclude=./autom4te.cache --exclude=__pycache__ --exclude=.pytest_cache -cf - . |
    tar -C "$src" -xf -
if [ -f "$src/Makefile" ]; then
    (cd "$src" && make distclean >/dev/null 2>&1) || true
fi
cp -r "$top/build/debian" "$src/debian"

# The changelog carries configure.ac's version; its date is the last commit's
# (reproducible), or now outside git.
when=$(git -C "$top" log -1 --format=%cD 2>/dev/null || date -R)
cat >"$src/debian/changelog" <<CHANGELOG
libapache2-mod-acme ($version) unstable; urgency=medium

  * Built from the mod_acme source tree by build/deb.sh.

 -- mod_acme developers <mod-acme@example.org>  $when
CHANGELOG

(cd "$src" && dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1 || {
    tail -n 60 "$out/build.log" >&2
    echo "deb.sh: dpkg-buildpackage failed; full log in $out/build.log" >&2
    exit 1
}
mv "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$out"/
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb="$out/libapache2-mod-acme_${version}_${arch}.deb"
[ -f "$deb" ] || { echo "deb.sh: $deb was not built" >&2; exit 1; }
echo "deb.sh: built $deb"
echo "$out"
