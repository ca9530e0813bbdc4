# shellcheck shell=bash
# Builds the VM's initramfs in two uncompressed cpio archives that the kernel unpacks one after
# the other (uncompressed: the emulated CPU would gunzip slowly):
# - the base, cached in LAB_CACHE/image: busybox, the kernel modules of modules.list, the
#   network and OpenSSH tools with the libraries ldd lists, /etc;
# - the overlay, built per run: /init and the in-VM scripts, the scenarios, the --bin files.
# Sourced by lab.sh; uses LAB_DIR, LAB_CACHE, LAB_OUT and cache_lock/cache_unlock.

# Real tools; they take the place of busybox applets of the same name (busybox's ip has no netns).
# promtool (package prometheus) checks the daemons' scraped metrics in e2e-metrics.
# curl and openssl are what the runbook (docs/operations.md, scenario runbook) has an operator
# type: a metrics scrape, the certificate a daemon serves. socat answers and sends UDP in
# e2e-families.
IMAGE_TOOLS=(ip ss bridge ipvsadm xtables-nft-multi xtables-legacy-multi nft tcpdump
  sshd ssh ssh-keygen scp kmod date promtool curl openssl socat)
# keepalived moves the VIP between the two directors of e2e-ha (VRRP only).
IMAGE_TOOLS+=(keepalived)
IMAGE_XTABLES_NFT_LINKS=(
  iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore
  iptables-nft iptables-nft-save iptables-nft-restore ip6tables-nft ip6tables-nft-save ip6tables-nft-restore
)
IMAGE_XTABLES_LEGACY_LINKS=(
  iptables-legacy iptables-legacy-save iptables-legacy-restore
  ip6tables-legacy ip6tables-legacy-save ip6tables-legacy-restore
)
IMAGE_KMOD_LINKS=(modprobe insmod rmmod lsmod depmod modinfo)
# iptables loads its matches and targets (REDIRECT, comment, ...) from here at run time.
XTABLES_EXTENSIONS=/usr/lib/x86_64-linux-gnu/xtables
# sshd execs these by absolute path when present (sshd-session from OpenSSH 9.8 on).
OPENSSH_HELPERS=(/usr/lib/openssh/sshd-session /usr/lib/openssh/sftp-server)

log() { echo "lab: $*" >&2; }

# Where PATH-like host paths live in the image's merged /usr (/lib is a link to usr/lib, ...).
image_path() {
  case $1 in
    /lib/* | /lib64/* | /bin/* | /sbin/*) echo "/usr$1" ;;
    *) echo "$1" ;;
  esac
}

# copy_into ROOT DEST SRC...: files (symlinks followed) at their own paths under ROOT, or at
# DEST when one file is given and DEST is not "-".
copy_into() {
  local root=$1 dest=$2
  shift 2
  if [[ $dest == - ]]; then
    # One cp per directory (cp -L --parents fails on coreutils 9.1).
    local dir file
    declare -A by_dir=()
    for file in "$@"; do
      by_dir[${file%/*}]+="$file"$'\n'
    done
    for dir in "${!by_dir[@]}"; do
      mkdir -p "$root$dir"
      mapfile -t files <<<"${by_dir[$dir]%$'\n'}"
      cp -L --preserve=mode "${files[@]}" "$root$dir/"
    done
  else
    mkdir -p "$root$(dirname "$dest")"
    rm -f "$root$dest"
    cp -L --preserve=mode "$1" "$root$dest"
  fi
}

# libraries_of FILE...: the shared libraries the files need, one path a line; fails naming
# any library the host lacks. Static programs and scripts need none.
libraries_of() {
  local listing
  listing=$(ldd "$@" 2>/dev/null || true)
  if grep -q 'not found' <<<"$listing"; then
    log "libraries missing on this host for $*:"
    grep 'not found' <<<"$listing" >&2
    return 1
  fi
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $2 ~ /^\(/ { print $1 }' <<<"$listing" |
    sort -u
}

host_path_of() {
  PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$1"
}

# Debian-like merged /usr, so that paths in ldd output and in scripts hold in the VM.
make_skeleton() {
  local root=$1 dir
  for dir in usr/bin usr/sbin usr/lib usr/lib64 etc proc sys dev run tmp root var/log var/empty \
    lab opt/lb/bin opt/lb/scenarios; do
    mkdir -p "$root/$dir"
  done
  ln -s usr/bin "$root/bin"
  ln -s usr/sbin "$root/sbin"
  ln -s usr/lib "$root/lib"
  ln -s usr/lib64 "$root/lib64"
  chmod 700 "$root/root"
  chmod 1777 "$root/tmp"
  # The kernel opens the console for /init before /init can mount devtmpfs.
  mknod -m 600 "$root/dev/console" c 5 1
}

install_tools() {
  local root=$1 tool src programs=()
  for tool in "${IMAGE_TOOLS[@]}"; do
    src=$(host_path_of "$tool") || { log "host has no $tool: run lab.sh prepare"; return 1; }
    copy_into "$root" "/usr/sbin/$tool" "$src"
    programs+=("$src")
  done
  for tool in "${IMAGE_XTABLES_NFT_LINKS[@]}"; do ln -s xtables-nft-multi "$root/usr/sbin/$tool"; done
  for tool in "${IMAGE_XTABLES_LEGACY_LINKS[@]}"; do ln -s xtables-legacy-multi "$root/usr/sbin/$tool"; done
  for tool in "${IMAGE_KMOD_LINKS[@]}"; do ln -s kmod "$root/usr/sbin/$tool"; done
  programs+=("$XTABLES_EXTENSIONS"/*.so)
  for src in "${OPENSSH_HELPERS[@]}"; do
    [[ -e $src ]] && programs+=("$src")
  done
  copy_into "$root" - "$XTABLES_EXTENSIONS"/*.so
  for src in "${OPENSSH_HELPERS[@]}"; do
    [[ -e $src ]] && copy_into "$root" - "$src"
  done
  # busybox-static needs none, but a dynamic busybox would otherwise break /init silently.
  programs+=(/bin/busybox)
  local libs
  libs=$(libraries_of "${programs[@]}")
  mapfile -t libs <<<"$libs"
  copy_into "$root" - "${libs[@]}"
  # Busybox provides the rest; /init links its applets at boot without replacing these tools.
  copy_into "$root" /usr/bin/busybox /bin/busybox
  ln -s busybox "$root/usr/bin/sh"
}

# The modules of modules.list, everything they depend on, and a fresh depmod.
install_modules() {
  local root=$1 kver=$2
  local tree=$LAB_CACHE/kernel/$kver wanted listing missing warnings
  wanted=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$LAB_DIR/host/modules.list")
  warnings=$(mktemp)
  # shellcheck disable=SC2086 # one module name per word
  listing=$(modprobe -d "$tree" -S "$kver" --show-depends -a $wanted 2>"$warnings" || true)
  missing=$(sed -n 's/.*Module \([^ ]*\) not found.*/\1/p' "$warnings")
  rm -f "$warnings"
  if [[ -n $missing ]]; then
    log "warning: kernel $kver lacks module(s) $(tr '\n' ' ' <<<"$missing")- skipped"
  fi
  local paths
  mapfile -t paths < <(awk '$1 == "insmod" { print $2 }' <<<"$listing" | sort -u)
  (cd "$tree" && cp --parents "${paths[@]#"$tree"/}" "$root/")
  cp "$tree/lib/modules/$kver/modules.order" "$tree/lib/modules/$kver/modules.builtin"* \
    "$root/lib/modules/$kver/"
  depmod -b "$root" "$kver"
  grep -vxF -f <(printf '%s\n' "$missing") <<<"$wanted" >"$root/lab/modules"
}

install_etc() {
  local root=$1
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
sshd:x:100:65534:sshd privilege separation:/run/sshd:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
  cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
  # "*" is no password at all but, unlike "!", not a locked account for sshd.
  cat >"$root/etc/shadow" <<'EOF'
root:*:19000:0:99999:7:::
sshd:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
EOF
  chmod 600 "$root/etc/shadow"
  printf '%s: files\n' passwd group shadow hosts services protocols >"$root/etc/nsswitch.conf"
  # So that `ipvsadm -L` without -n names hosts the way the seed's output shows them.
  cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
10.0.0.10	client
10.0.0.2	llclb1
10.0.0.100	llc
10.0.0.11	llc5
10.0.0.12	llc6
EOF
  # Loading dummy is for scenarios that make their own; no stray dummy0 in the root namespace.
  mkdir -p "$root/etc/modprobe.d"
  echo "options dummy numdummies=0" >"$root/etc/modprobe.d/lab.conf"
  # iptables -p tcp and ipvsadm ...:ssh resolve names through these.
  cp /etc/protocols /etc/services "$root/etc/"
}

# The inputs of the base image: this script, the module list, the kernel and every installed
# package version (the tools and libraries come from them).
base_image_key() {
  {
    echo "$1"
    cat "$LAB_DIR/host/image.sh" "$LAB_DIR/host/modules.list"
    dpkg-query -W
  } | sha256sum | cut -c1-16
}

# base_image KVER: prints the path of the cached base cpio, building it when its inputs changed.
base_image() {
  local kver=$1 key dir=$LAB_CACHE/image started=$SECONDS
  key=$(base_image_key "$kver")
  if [[ -f $dir/base-$key.cpio ]]; then
    echo "$dir/base-$key.cpio"
    return 0
  fi
  cache_lock
  if [[ ! -f $dir/base-$key.cpio ]]; then
    local work root
    mkdir -p "$dir"
    rm -rf "$dir"/.build.* # left by an interrupted build; we hold the lock
    work=$(mktemp -d "$dir/.build.XXXXXX")
    root=$work/root
    make_skeleton "$root"
    install_tools "$root"
    install_modules "$root" "$kver"
    install_etc "$root"
    (cd "$root" && find . -print0 | cpio --null -o -H newc --quiet -R 0:0) >"$work/base.cpio"
    (cd "$root" && find . ! -type d | sed 's/^\.//') >"$work/base.files"
    rm -f "$dir"/base-*
    mv "$work/base.files" "$dir/base-$key.files"
    mv "$work/base.cpio" "$dir/base-$key.cpio"
    rm -rf "$work"
    log "base image built in $((SECONDS - started)) s ($(du -m "$dir/base-$key.cpio" | cut -f1) MB)"
  fi
  cache_unlock
  echo "$dir/base-$key.cpio"
}

# install_overlay ROOT BASE_FILES BIN...: in-VM scripts, scenarios, binaries and the libraries
# of the binaries that the base lacks.
install_overlay() {
  local root=$1 base_files=$2 bin lib lib_in_image
  shift 2
  mkdir -p "$root/lab" "$root/opt/lb/bin" "$root/opt/lb/scenarios"
  copy_into "$root" /init "$LAB_DIR/vm/init"
  chmod 755 "$root/init"
  cp "$LAB_DIR/vm/lib.sh" "$LAB_DIR/vm/topology.sh" "$root/lab/"
  cp -R "$LAB_DIR/scenarios/." "$root/opt/lb/scenarios/"
  # The runbook scenario executes docs/operations.md, and the packages' maintainer scripts where
  # it has an operator upgrade a package.
  mkdir -p "$root/opt/lb/docs" "$root/opt/lb/debian"
  cp "$REPO_DIR"/docs/*.md "$root/opt/lb/docs/"
  cp -R "$REPO_DIR/deploy/debian/." "$root/opt/lb/debian/"
  # The HA deployment files, so e2e-ha runs the very configs operators are given.
  mkdir -p "$root/opt/lb/deploy-ha"
  cp -R "$LAB_DIR/../ha/." "$root/opt/lb/deploy-ha/"
  (($#)) || return 0
  for bin in "$@"; do
    copy_into "$root" "/opt/lb/bin/$(basename "$bin")" "$bin"
    chmod 755 "$root/opt/lb/bin/$(basename "$bin")"
    # Without their debug info (the symbols stay, so a panic's backtrace still names the
    # functions): the release binaries carry over 50 MB of it each, and with five of them the
    # image no longer fitted the VM's memory ("No space left on device" at boot).
    if [[ $(head -c 4 "$bin") == $'\x7fELF' ]]; then
      objcopy --strip-debug "$root/opt/lb/bin/$(basename "$bin")"
    fi
  done
  # At their merged-/usr paths: an overlay directory /lib would replace the base's link.
  libraries_of "$@" | while read -r lib; do
    lib_in_image=$(image_path "$lib")
    if ! grep -qxF "$lib_in_image" "$base_files"; then
      copy_into "$root" "$lib_in_image" "$lib"
    fi
  done
}

# build_image WORKDIR KVER [BIN]...: prints the path of the initramfs for this run.
build_image() {
  local work=$1 kver=$2 base
  shift 2
  base=$(base_image "$kver")
  mkdir -p "$work/overlay"
  install_overlay "$work/overlay" "${base%.cpio}.files" "$@"
  (cd "$work/overlay" && find . -print0 | cpio --null -o -H newc --quiet -R 0:0) >"$work/overlay.cpio"
  cat "$base" "$work/overlay.cpio" >"$work/initrd.cpio"
  log "image: $(du -m "$work/initrd.cpio" | cut -f1) MB${*:+, with $(printf '%s ' "${@##*/}")}"
  echo "$work/initrd.cpio"
}
