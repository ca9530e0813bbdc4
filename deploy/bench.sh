#!/usr/bin/env bash
# The benchmark suite (BENCHMARKS.md), in the VM lab: lb beside its peer in the same boot,
# several rounds, each write in a fresh network namespace. Prints a Markdown table of medians
# and spreads. Not part of deploy/test.sh's verdict (CI runs the suite once at a small size,
# scenario `bench`, so that it cannot rot).
#
#   deploy/bench.sh            1,000 services x 10 destinations, 3 rounds (scenario bench/full)
#   deploy/bench.sh --small    100 x 10, 1 round (scenario bench)
set -euo pipefail
cd "$(dirname "$0")/.."

scenario=bench/full
case ${1:-} in
  "") ;;
  --small) scenario=bench ;;
  *) echo "usage: deploy/bench.sh [--small]" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "deploy/bench.sh: run as root (the VM lab needs it)" >&2
  exit 1
fi

cargo build --release --locked --workspace --bins
cargo build --release --locked -p lb-ipvs --features testing --bin ipvs-bench
target=${CARGO_TARGET_DIR:-target}/release
out=${LAB_OUT:-deploy/lab/out}
deploy/lab/lab.sh run --timeout 1800 \
  --bin "$target/lb-director" --bin "$target/lbctl" --bin "$target/ipvs-bench" "$scenario"

# BENCH <kind> <who>=<name> round=N entries=N seconds=S -> one row per kind and who.
grep -a '^BENCH ' "$out/${scenario//\//-}.log" | tr -d '\r' | awk '
  {
    split($3, w, "="); who = w[2]; side = w[1]
    split($6, s, "="); key = $2 SUBSEP side SUBSEP who
    n[key]++; v[key, n[key]] = s[2]; entries[$2] = substr($5, 9)
    if (!(key in seen)) { seen[key] = 1; order[++keys] = key }
  }
  function median(key,   i, j, t, a, m) {
    m = n[key]
    for (i = 1; i <= m; i++) a[i] = v[key, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    lo[key] = a[1]; hi[key] = a[m]
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  END {
    print "| benchmark | entries | who | median s | spread s | runs |"
    print "|---|---|---|---|---|---|"
    for (k = 1; k <= keys; k++) {
      key = order[k]; split(key, p, SUBSEP)
      med[key] = median(key)
      printf "| %s | %s | %s%s | %.3f | %.3f to %.3f | %d |\n", p[1], entries[p[1]], (p[2] == "peer" ? "" : "lb: "), p[3], med[key], lo[key], hi[key], n[key]
    }
  }'
