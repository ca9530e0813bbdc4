#!/usr/bin/env bash
# The one-command demo (README, first command). On a fresh Debian 12 machine of this kind, as
# root: installs what the lab lacks, builds the release binaries, boots the VM lab with the
# seed's topology and narrates the product at work (deploy/lab/scenarios/demo.sh).
#
#   deploy/demo.sh           the narrated demo, about five minutes; exit 0 when every step
#                            showed what it should
#   deploy/demo.sh --shell   the lab with lb-director and both lb-agents running, and a shell
#                            in it to try lbctl and ssh by hand
#   deploy/demo.sh --ha      two directors (keepalived + lb-director on llclb1 and llclb2): a
#                            failover and a failback with a live ssh session, about three
#                            minutes; --ha --shell opens the shell on that topology
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n 's/^#   //p' "$0"
}

# The topology to show. Each one is a pair of lab scenarios, the narrated demo and the set-up
# that --shell opens a shell on (both under deploy/lab/scenarios/); another topology (two
# directors) is another flag that picks its own pair below.
topology=single
shell=no
for arg in "$@"; do
  case $arg in
    --shell) shell=yes ;;
    --ha) topology=ha ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

case $topology in
  # One director (llclb1), two realservers: the seed's.
  single) demo_scenario=demo shell_scenario=demo/start ;;
  # Two directors behind keepalived (issue 12), deploy/ha's files with the lab's addresses.
  ha) demo_scenario=demo-ha shell_scenario=demo/start-ha ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  echo "deploy/demo.sh: run as root: the lab installs packages and builds a VM image" >&2
  exit 1
fi

step() { printf '\n=== %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "deploy/demo.sh: cargo is missing: install Rust with rustup (https://rustup.rs)" >&2
  exit 1
fi
# Some crates compile a little C (ring, for TLS).
if ! command -v cc >/dev/null 2>&1; then
  step "a C compiler for the build"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev
fi

step "lab packages and the Debian kernel (deploy/lab/lab.sh prepare)"
deploy/lab/lab.sh prepare

step "release binaries (cargo build --release)"
cargo build --release --locked --workspace --bins
target=${CARGO_TARGET_DIR:-target}/release
bins=(--bin "$target/lb-director" --bin "$target/lb-agent" --bin "$target/lbctl")

if [ "$shell" = yes ]; then
  step "the lab, with the directors and both agents running, and a shell"
  # The two-director shell prints its own cheat-sheet (demo/start-ha).
  [ "$topology" = ha ] || cat <<'EOF'
In the shell (the same list is printed again above the prompt):
  lbctl status                              the director's table, leases, drains
  in_ns llclb1 ipvsadm -L -n                the kernel's IPVS table on the director
  in_ns client ssh root@10.0.0.100 hostname a new session through the VIP
  lbctl drain llc5 / lbctl undrain llc5     take llc5 out of rotation and back
  'exit' powers the VM off; Ctrl-A x quits qemu at once.
EOF
  exec deploy/lab/lab.sh run --shell "${bins[@]}" "$shell_scenario"
fi

step "the narrated demo in the lab VM (console log in deploy/lab/out/$demo_scenario.log)"
# Generous: on a loaded machine the emulated VM runs several times slower than idle.
exec deploy/lab/lab.sh run --timeout 900 "${bins[@]}" "$demo_scenario"
