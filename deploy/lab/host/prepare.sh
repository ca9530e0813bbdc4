# shellcheck shell=bash
# Host preparation: the Debian packages the lab needs and a cached Debian cloud kernel.
# Sourced by lab.sh (bash, set -euo pipefail); uses LAB_CACHE.

# Host tools; their binaries are also what the VM image is made of.
# prometheus is for its promtool, which checks the scraped metrics in the VM (e2e-metrics) and
# in the host's tests; its daemon is never started (policy-rc.d below). curl and openssl are
# commands of the runbook that the runbook scenario executes. socat is the UDP responder and
# client of e2e-families (busybox's nc has no UDP).
LAB_PACKAGES=(
  qemu-system-x86 cpio busybox-static kmod iproute2 iptables ipvsadm nftables tcpdump
  openssh-server openssh-client netbase prometheus curl openssl socat
  # keepalived: VRRP for the two directors of e2e-ha (its daemon is never started here either).
  keepalived
  # binutils: objcopy strips the debug info of the binaries copied into the image.
  binutils
)

# How long apt waits for a dpkg lock held by someone else on this shared machine.
APT_LOCK_WAIT=600

# Two lab runs sharing one cache (LAB_CACHE) must not write into each other.
cache_lock() {
  exec {cache_lock_fd}>"$LAB_CACHE/.lock"
  flock "$cache_lock_fd"
}

cache_unlock() {
  exec {cache_lock_fd}>&-
}

missing_packages() {
  local pkg
  for pkg in "${LAB_PACKAGES[@]}"; do
    if [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) != installed ]]; then
      echo "$pkg"
    fi
  done
}

# The kernel version the cache holds, or nothing.
cached_kernel_version() {
  local version_file=$LAB_CACHE/kernel/VERSION kver
  [[ -f $version_file ]] || return 0
  kver=$(<"$version_file")
  if [[ -f $LAB_CACHE/kernel/$kver/boot/vmlinuz-$kver ]]; then
    echo "$kver"
  fi
}

lab_is_prepared() {
  [[ -z $(missing_packages) && -n $(cached_kernel_version) ]]
}

apt_update() {
  echo "lab: apt-get update"
  apt-get -o DPkg::Lock::Timeout=$APT_LOCK_WAIT update -qq
}

install_packages() {
  local missing=("$@")
  echo "lab: installing ${missing[*]}"
  # openssh-server's (and prometheus', keepalived's) postinst would start a daemon on the host;
  # the lab only wants their binaries.
  # policy-rc.d is Debian's switch for that. Leave an existing one alone.
  local own_policy=no
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=yes
  fi
  local status=0
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=$APT_LOCK_WAIT \
    install -y -qq --no-install-recommends "${missing[@]}" || status=$?
  if [[ $own_policy == yes ]]; then
    rm -f /usr/sbin/policy-rc.d
  fi
  return "$status"
}

# The ABI number moves with Debian point releases and old ones leave the archive,
# so ask the metapackage which kernel is current instead of naming one.
resolve_kernel_package() {
  local pkg
  pkg=$(apt-cache depends linux-image-cloud-amd64 |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
  if [[ -z $pkg ]]; then
    echo "lab: apt-cache depends linux-image-cloud-amd64 names no kernel package" >&2
    return 1
  fi
  echo "${pkg%-unsigned}"
}

# Downloads and unpacks the kernel package; the cache is switched over only once complete,
# so an interrupted download never leaves a half kernel behind.
fetch_kernel() {
  local pkg kver tmp download
  pkg=$(resolve_kernel_package)
  kver=${pkg#linux-image-}
  if [[ $kver == "$(cached_kernel_version)" ]]; then
    echo "lab: kernel $kver is current and cached"
    return 0
  fi
  echo "lab: downloading $pkg"
  mkdir -p "$LAB_CACHE/kernel"
  rm -rf "$LAB_CACHE"/kernel/.fetch.* # left by an interrupted download; we hold the lock
  tmp=$(mktemp -d "$LAB_CACHE/kernel/.fetch.XXXXXX")
  # apt downloads as the user _apt, who may not reach into the cache: use a directory of its own.
  download=$(mktemp -d)
  chmod 777 "$download"
  (cd "$download" && apt-get download -qq "$pkg")
  dpkg -x "$download"/"$pkg"_*.deb "$tmp/tree"
  rm -rf "$download"
  # The image builder asks modprobe for dependencies, which needs modules.dep.
  depmod -b "$tmp/tree" "$kver"
  rm -rf "${LAB_CACHE:?}/kernel/$kver"
  mv "$tmp/tree" "$LAB_CACHE/kernel/$kver"
  rm -rf "$tmp"
  echo "$kver" >"$LAB_CACHE/kernel/VERSION.new"
  mv "$LAB_CACHE/kernel/VERSION.new" "$LAB_CACHE/kernel/VERSION"
  # Older ABIs are no longer current; only the one in VERSION is ever booted.
  find "$LAB_CACHE/kernel" -mindepth 1 -maxdepth 1 -type d ! -name "$kver" -exec rm -rf {} +
  echo "lab: kernel $kver cached in $LAB_CACHE/kernel/$kver"
}

# prepare [--refresh]: install what is missing and cache the kernel. With --refresh the
# kernel is resolved again even when one is cached (to follow a Debian point release).
lab_prepare() {
  local refresh=no
  case ${1:-} in
    "") ;;
    --refresh) refresh=yes ;;
    *) echo "lab: prepare takes only --refresh, not $1" >&2; return 2 ;;
  esac
  cache_lock

  if [[ $refresh == no ]] && lab_is_prepared; then
    echo "lab: prepared (kernel $(cached_kernel_version), cache $LAB_CACHE)"
    cache_unlock
    return 0
  fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "lab: prepare installs packages and must run as root" >&2
    cache_unlock
    return 1
  fi
  apt_update
  local missing
  mapfile -t missing < <(missing_packages)
  if ((${#missing[@]})); then
    install_packages "${missing[@]}"
  fi
  if [[ $refresh == yes || -z $(cached_kernel_version) ]]; then
    fetch_kernel
  fi
  cache_unlock
}
