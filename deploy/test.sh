#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian 12 machine of this kind, as root:
# formatting, lints, unit / component / loopback gRPC tests (health and reflection through
# Python's grpcio, installed here in a venv), network-namespace tests (iptables,
# rtnetlink), a longer fuzz run, the systemd unit check, the Debian packages on a clean Debian 12
# root (deploy/package-test.sh), and the real-kernel VM lab (IPVS
# contract suite, director, end-to-end LVS-DR with real OpenSSH, the demo, the lab's self-test). Installs what it lacks with apt-get. Exit 0 only if all
# of it passed.
#
#   deploy/test.sh            everything
#   deploy/test.sh --no-lab   everything but the VM lab (quicker, for iteration)
set -euo pipefail
cd "$(dirname "$0")/.."

lab=1
for arg in "$@"; do
  case "$arg" in
    --no-lab) lab=0 ;;
    *) echo "usage: deploy/test.sh [--no-lab]" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "deploy/test.sh: run as root: the namespace tests and the VM lab need it" >&2
  exit 1
fi

step() { printf '\n=== %s\n' "$*"; }

step "host packages"
missing=()
for pair in ip:iproute2 iptables:iptables systemd-analyze:systemd nsenter:util-linux sysctl:procps man:man-db; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

step "Python gRPC client for the standard-services tests (grpcio from PyPI, in a venv)"
# An independent client (director/tests/grpc_standard_clients.rs): the tests find this venv
# in the target directory, and LB_REQUIRE_PYTHON_GRPC=1 makes its absence a failure.
pyvenv=${CARGO_TARGET_DIR:-target}/python-grpc
requirements=director/tests/python/requirements.txt
if ! cmp -s "$requirements" "$pyvenv/requirements.txt"; then
  rm -rf "$pyvenv"
  if ! python3 -m venv "$pyvenv"; then
    # Debian's own python3 needs its venv module as a package; the image's python has it.
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
    python3 -m venv "$pyvenv"
  fi
  "$pyvenv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$pyvenv/requirements.txt"
fi
LB_PYTHON="$(cd "$pyvenv" && pwd)/bin/python"
export LB_PYTHON LB_REQUIRE_PYTHON_GRPC=1

step "promtool (Debian's prometheus package; its daemon is not started)"
# The metrics tests pipe real scrapes through `promtool check metrics`; here a missing promtool
# fails them instead of skipping the check.
if ! command -v promtool >/dev/null 2>&1; then
  # shellcheck source=lab/host/prepare.sh
  source deploy/lab/host/prepare.sh
  apt_update
  install_packages prometheus
fi
export LB_REQUIRE_PROMTOOL=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --workspace --all-targets --locked --all-features -- -D warnings

step "cargo test (unit, component, loopback gRPC, network namespaces as root)"
cargo test --workspace --locked --all-features

step "fuzzing (proptest properties with many cases)"
deploy/fuzz.sh

step "systemd units"
deploy/systemd/verify.sh

step "Debian packages: build, install, check and purge on a clean Debian 12 root"
deploy/package-test.sh

if [ "$lab" -eq 1 ]; then
  step "release binaries for the lab"
  cargo build --release --locked --workspace --bins
  cargo build --release --locked -p lb-ipvs --features testing --bin ipvs-contract --bin ipvs-bench
  cargo build --release --locked -p lb-director --features testing --example agent_load
  target=${CARGO_TARGET_DIR:-target}/release
  step "VM lab (real kernel): $(ls deploy/lab/scenarios/*.sh | xargs -n1 basename | sed 's/\.sh$//' | tr '\n' ' ')"
  # 600 s per VM: e2e-ha keeps a director away for a minute, and a shared CI machine runs
  # the emulated CPU slowly; a VM that hangs is still stopped.
  deploy/lab/lab.sh run --timeout 600 \
    --bin "$target/lb-director" --bin "$target/lb-agent" --bin "$target/lbctl" \
    --bin "$target/ipvs-contract" --bin "$target/ipvs-bench" --bin "$target/examples/agent_load" \
    $(ls deploy/lab/scenarios/*.sh | xargs -n1 basename | sed 's/\.sh$//')
  step "the lab's own verdicts (a failing, silent or hung scenario must fail the run)"
  deploy/lab/selftest.sh
fi

step "all tests passed"
