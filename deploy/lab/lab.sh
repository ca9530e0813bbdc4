#!/usr/bin/env bash
# The real-kernel VM lab: boots a Debian kernel with IPVS under qemu, builds the seed's
# LVS-DR topology in network namespaces and runs scenarios in it. See README.md.
set -euo pipefail
# Without this, a failing step inside $(...) would not stop the function it is in.
shopt -s inherit_errexit

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$LAB_DIR/../.." && pwd)
LAB_CACHE=$(mkdir -p "${LAB_CACHE:-$LAB_DIR/.cache}" && cd "${LAB_CACHE:-$LAB_DIR/.cache}" && pwd)
LAB_OUT=$(mkdir -p "${LAB_OUT:-$LAB_DIR/out}" && cd "${LAB_OUT:-$LAB_DIR/out}" && pwd)
DEFAULT_TIMEOUT=300

# shellcheck source=host/prepare.sh
source "$LAB_DIR/host/prepare.sh"
# shellcheck source=host/image.sh
source "$LAB_DIR/host/image.sh"
# shellcheck source=host/boot.sh
source "$LAB_DIR/host/boot.sh"

usage() {
  cat <<EOF
usage: lab.sh prepare [--refresh]
       lab.sh run [--bin FILE]... [--timeout SECS] [--shell] SCENARIO...

prepare   install the host packages and cache the Debian kernel (in \$LAB_CACHE,
          default deploy/lab/.cache); --refresh resolves the current kernel again
run       boot one fresh VM per SCENARIO (deploy/lab/scenarios/NAME.sh) and report
          its LAB-RESULT lines; exit 0 only if every scenario passed
  --bin FILE     copy FILE (with its libraries) to /opt/lb/bin in the VM; without any
                 --bin, lb-director, lb-agent and lbctl from the release target dir are used
  --timeout SECS kill a VM that has not finished after SECS (default $DEFAULT_TIMEOUT)
  --shell        boot the topology (after running SCENARIO, if one is given) and open an
                 interactive shell on the console; leave it with 'exit' or Ctrl-A x
EOF
}

available_scenarios() {
  local f
  for f in "$LAB_DIR"/scenarios/*.sh; do
    [[ -e $f ]] && basename "$f" .sh
  done
}

# Release binaries of the project, when built, so that scenarios can run the product.
default_bins() {
  local dir=${CARGO_TARGET_DIR:-$REPO_DIR/target}/release name
  for name in lb-director lb-agent lbctl; do
    if [[ -x $dir/$name ]]; then
      echo "$dir/$name"
    fi
  done
}

lab_run() {
  local bins=() scenarios=() timeout=$DEFAULT_TIMEOUT shell=no
  while (($#)); do
    case $1 in
      --bin)
        [[ $# -ge 2 ]] || { usage >&2; return 2; }
        [[ -f $2 ]] || { echo "lab: --bin $2: no such file" >&2; return 2; }
        bins+=("$(cd "$(dirname "$2")" && pwd)/$(basename "$2")")
        shift 2
        ;;
      --timeout)
        [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || { echo "lab: --timeout needs whole seconds" >&2; return 2; }
        timeout=$2
        shift 2
        ;;
      --shell) shell=yes; shift ;;
      -h | --help) usage; return 0 ;;
      -*) echo "lab: unknown option $1" >&2; usage >&2; return 2 ;;
      *) scenarios+=("$1"); shift ;;
    esac
  done
  if [[ $shell == no && ${#scenarios[@]} -eq 0 ]]; then
    echo "lab: name at least one scenario: $(available_scenarios | tr '\n' ' ')" >&2
    return 2
  fi
  if [[ $shell == yes && ${#scenarios[@]} -gt 1 ]]; then
    echo "lab: --shell takes at most one scenario" >&2
    return 2
  fi
  local name
  for name in "${scenarios[@]}"; do
    # The name travels on the kernel command line: no spaces, no way out of scenarios/.
    if [[ ! $name =~ ^[A-Za-z0-9_][A-Za-z0-9_./-]*$ || $name == *..* ]]; then
      echo "lab: bad scenario name $name" >&2
      return 2
    fi
    if [[ ! -f $LAB_DIR/scenarios/$name.sh ]]; then
      echo "lab: no scenario $name (deploy/lab/scenarios/$name.sh); have: $(available_scenarios | tr '\n' ' ')" >&2
      return 2
    fi
  done
  if ((${#bins[@]} == 0)); then
    mapfile -t bins < <(default_bins)
  fi

  lab_prepare
  local kver image
  kver=$(cached_kernel_version)
  # Per run, so that two runs from one checkout do not share an image.
  run_dir=$(mktemp -d "$LAB_OUT/.run.XXXXXX")
  trap 'rm -rf "$run_dir"' EXIT
  image=$(build_image "$run_dir" "$kver" "${bins[@]}")

  if [[ $shell == yes ]]; then
    boot_shell "$kver" "$image" "${scenarios[@]}"
  else
    run_scenarios "$kver" "$image" "$timeout" "${scenarios[@]}"
  fi
}

main() {
  case ${1:-} in
    prepare) shift; lab_prepare "$@" ;;
    run) shift; lab_run "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; return 2 ;;
  esac
}

main "$@"
