#!/usr/bin/env bash
# Tests the Debian packages the way an operator meets them: builds them (deploy/package.sh),
# then on a clean Debian 12 root (debootstrap minbase, plus systemd and man-db) installs both
# with apt (Depends from deb.debian.org), follows the install steps the README gives, verifies
# the installed units with systemd-analyze, checks what the maintainer scripts do, and purges
# both, checking nothing of theirs is left. The checks themselves are
# deploy/package-test-chroot.sh, run inside the root.
#
#   deploy/package-test.sh              build the packages, then test them
#   deploy/package-test.sh --no-build   test the packages already in target/debian
#
# As root. The pristine root is made once and kept as a tarball in $PACKAGE_TEST_CACHE
# (default target/package-test); later runs unpack it (seconds). Everything is mounted in a
# private mount namespace, so a killed run leaves no mount behind.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    *) echo "usage: deploy/package-test.sh [--no-build]" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then
  echo "deploy/package-test.sh: run as root (debootstrap, chroot)" >&2
  exit 1
fi

target=${CARGO_TARGET_DIR:-target}
cache=${PACKAGE_TEST_CACHE:-$target/package-test}
mirror=http://deb.debian.org/debian
mkdir -p "$cache"

if [ "$build" -eq 1 ]; then
  deploy/package.sh
fi
version=$(cargo metadata --no-deps --format-version 1 --locked |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "lb-director"))')
debs=("$target/debian/lb-director_${version}-1_amd64.deb" "$target/debian/lb-agent_${version}-1_amd64.deb")
for deb in "${debs[@]}"; do
  [ -f "$deb" ] || { echo "package-test: no $deb: run deploy/package.sh" >&2; exit 1; }
done

pristine=$cache/bookworm-minbase.tar
if [ ! -s "$pristine" ]; then
  if ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
  fi
  echo "package-test: making a clean Debian 12 root (once; kept in $pristine)"
  building=$(mktemp -d "$cache/building.XXXXXX")
  # systemd for systemd-analyze verify, man-db for man -w: both are on any real host.
  debootstrap --variant=minbase --include=systemd,man-db bookworm "$building" "$mirror"
  tar --numeric-owner -C "$building" -cf "$pristine.part" .
  mv "$pristine.part" "$pristine"
  rm -rf --one-file-system "$building"
fi

root=$(mktemp -d "$cache/root.XXXXXX")
trap 'rm -rf --one-file-system "$root"' EXIT
tar --numeric-owner -C "$root" -xf "$pristine"
mkdir -p "$root/tmp/lb"
cp "${debs[@]}" deploy/package-test-chroot.sh deploy/systemd/verify.sh "$root/tmp/lb/"
cp /etc/resolv.conf "$root/etc/resolv.conf"

echo "package-test: installing ${debs[*]##*/} on a clean Debian 12 root"
unshare --mount --propagation private -- bash -euo pipefail -c '
  root=$1
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --rbind /dev "$root/dev"
  # A tmpfs /run as on a real host: the maintainer scripts look for /run/systemd/system there.
  mount -t tmpfs run "$root/run"
  chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LC_ALL=C.UTF-8 /bin/bash /tmp/lb/package-test-chroot.sh
' package-test "$root"
echo "package-test: both packages installed, checked and purged cleanly"
