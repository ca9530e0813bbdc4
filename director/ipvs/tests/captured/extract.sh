#!/bin/sh
# extract.sh CONSOLE_LOG: writes one STEP.hex file here per capture step of a lab run of
# deploy/lab/scenarios/ipvs-contract.sh (console log: deploy/lab/out/ipvs-contract.log).
# Each line of a file is one netlink message, "send HEX" (ours) or "recv HEX" (the kernel's).
set -eu
log=$1
here=$(dirname "$0")
rm -f "$here"/*.hex
tr -d '\r' <"$log" | awk -v dir="$here" '
  /^IPVS-HEX .*netlink (send|receive) / {
    step = "resolve_family"
    if (match($0, /capture\{step="[a-z0-9_]+"\}/)) {
      step = substr($0, RSTART + 14, RLENGTH - 16)
      seen_step = 1
    } else if (seen_step) {
      next   # the family lookups of the later runs repeat the first
    }
    direction = ($0 ~ /netlink send /) ? "send" : "recv"
    hex = $0
    sub(/.*hex=/, "", hex)
    print direction, hex >> (dir "/" step ".hex")
  }'
ls "$here"/*.hex | wc -l
