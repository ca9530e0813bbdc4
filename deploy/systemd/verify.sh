#!/usr/bin/env bash
# Checks deploy/systemd/*.service with `systemd-analyze verify` and fails on any complaint
# about them (verify exits 0 on mere warnings, such as an unknown key, so its output is read).
#
# The units name /usr/sbin/lb-agent and lb-director (where the packages put them), which verify
# requires to exist. When they are not installed, the check runs in a private mount namespace
# (root only) where an overlay on /usr/sbin adds stand-ins; nothing on the host changes.
# deploy/package-test.sh verifies the units again as the packages install them.
set -euo pipefail

# verify.sh [DIR]: the units in DIR (default: this directory, the repository's units).
here=${1:-$(cd "$(dirname "$0")" && pwd)}
units=(lb-agent.service lb-director.service)

if ! command -v systemd-analyze >/dev/null; then
    echo "verify.sh: installing systemd for systemd-analyze"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

run_verify() {
    local paths=()
    for unit in "${units[@]}"; do
        paths+=("$here/$unit")
    done
    # --man=no: the units name no man pages. Output is collected whatever the exit status.
    systemd-analyze verify --man=no "${paths[@]}" 2>&1 || true
}

if [[ -x /usr/sbin/lb-agent && -x /usr/sbin/lb-director ]]; then
    output=$(run_verify)
elif [[ $(id -u) -eq 0 ]] && command -v unshare >/dev/null; then
    export -f run_verify
    export here
    export units_list="${units[*]}"
    output=$(unshare --mount --propagation private bash -c '
        set -euo pipefail
        read -r -a units <<<"$units_list"
        # The overlay keeps the rest of /usr/sbin visible; its layers live in a tmpfs.
        scratch=$(mktemp -d)
        mount -t tmpfs lb-verify "$scratch"
        mkdir "$scratch/upper" "$scratch/work"
        for binary in lb-agent lb-director; do
            printf "#!/bin/sh\nexit 0\n" >"$scratch/upper/$binary"
            chmod 755 "$scratch/upper/$binary"
        done
        mount -t overlay lb-verify -o "lowerdir=/usr/sbin,upperdir=$scratch/upper,workdir=$scratch/work" /usr/sbin
        run_verify
    ')
else
    echo "verify.sh: /usr/sbin/lb-agent and lb-director are not installed, and only root" >&2
    echo "can stand them in; run as root or install the binaries first" >&2
    exit 2
fi

# Only complaints about our units count; the host's own units are not ours to judge.
complaints=$(grep -E "lb-(agent|director)\.service" <<<"$output" || true)
if [[ -n $complaints ]]; then
    echo "systemd-analyze verify complains about the units:" >&2
    echo "$complaints" >&2
    exit 1
fi
if [[ -n $output ]]; then
    echo "systemd-analyze verify said (about other units, not ours):"
    echo "$output"
fi
echo "systemd units verified: ${units[*]}"

# deploy/ha's drop-in for keepalived.service, read as systemd reads it beside the unit (from
# the keepalived package when installed, else a stand-in: only the drop-in is ours to judge).
ha=$here/../ha
if [[ -d $ha/keepalived.service.d ]]; then
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    if [[ -f /lib/systemd/system/keepalived.service ]]; then
        cp /lib/systemd/system/keepalived.service "$scratch/"
    else
        printf '[Unit]\nDescription=keepalived stand-in\n[Service]\nExecStart=/bin/true\n' >"$scratch/keepalived.service"
    fi
    cp "$here/lb-director.service" "$scratch/"
    cp -R "$ha/keepalived.service.d" "$scratch/"
    output=$(SYSTEMD_UNIT_PATH="$scratch:" systemd-analyze verify --man=no "$scratch/keepalived.service" 2>&1 || true)
    complaints=$(grep -F "keepalived.service.d" <<<"$output" || true)
    if [[ -n $complaints ]]; then
        echo "systemd-analyze verify complains about deploy/ha's drop-in:" >&2
        echo "$complaints" >&2
        exit 1
    fi
    echo "systemd drop-in verified: deploy/ha/keepalived.service.d"
fi
