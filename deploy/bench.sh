#!/usr/bin/env bash
# The benchmark suite (BENCHMARKS.md), in the VM lab: lb beside its peer in the same boot,
# several rounds, each write in a fresh network namespace. Prints a Markdown table of medians
# and spreads. Not part of deploy/test.sh's verdict (CI runs the suite once at a small size,
# scenario `bench`, so that it cannot rot).
#
#   deploy/bench.sh            1,000 services x 10 destinations, 3 rounds (scenario bench/full)
#   deploy/bench.sh --small    100 x 10, 1 round (scenario bench)
#   deploy/bench.sh --growth   100, 1,000 and 10,000 services x 10, 1 round each (bench/growth)
#   deploy/bench.sh --agents   100 and 1,000 simulated agents against the director (bench/many-agents)
set -euo pipefail
cd "$(dirname "$0")/.."

scenario=bench/full
case ${1:-} in
  "") ;;
  --small) scenario=bench ;;
  --growth) scenario=bench/growth ;;
  --agents) scenario=bench/many-agents ;;
  *) echo "usage: deploy/bench.sh [--small | --growth | --agents]" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "deploy/bench.sh: run as root (the VM lab needs it)" >&2
  exit 1
fi

cargo build --release --locked --workspace --bins
cargo build --release --locked -p lb-ipvs --features testing --bin ipvs-bench
cargo build --release --locked -p lb-director --features testing --example agent_load
target=${CARGO_TARGET_DIR:-target}/release
out=${LAB_OUT:-deploy/lab/out}
deploy/lab/lab.sh run --timeout 1800 \
  --bin "$target/lb-director" --bin "$target/lb-agent" --bin "$target/lbctl" \
  --bin "$target/ipvs-bench" --bin "$target/examples/agent_load" "$scenario"

# BENCH <kind> <who>=<name> round=N entries=N seconds=S|kib=K -> one row per kind and who:
# median, spread, p99 (the value at rank ceil(0.99 n): the largest below 100 runs).
grep -a '^BENCH ' "$out/${scenario//\//-}.log" | tr -d '\r' | awk '
  {
    split($3, w, "="); who = w[2]; side = w[1]
    split($6, s, "="); key = $2 SUBSEP side SUBSEP who SUBSEP $5
    n[key]++; v[key, n[key]] = (s[1] == "kib") ? s[2] / 1024 : s[2]; unit[key] = (s[1] == "kib") ? "MiB" : (s[1] == "percent") ? "%" : "s"
    if (!(key in seen)) { seen[key] = 1; order[++keys] = key }
  }
  function sort_values(key,   i, j, t, m) {
    m = n[key]
    for (i = 1; i <= m; i++) a[i] = v[key, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return m
  }
  END {
    print "| benchmark | entries | who | median | spread | p99 | runs |"
    print "|---|---|---|---|---|---|---|"
    for (k = 1; k <= keys; k++) {
      key = order[k]; split(key, p, SUBSEP)
      m = sort_values(key)
      med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
      r = int(0.99 * m); if (r < 0.99 * m) r++
      f = (unit[key] == "s" && a[m] < 1) ? "%.4f" : "%.3f"
      printf "| %s | %s | %s%s | " f " %s | " f " to " f " | " f " | %d |\n", p[1], substr(p[4], 9), (p[2] == "peer" ? "" : "lb: "), p[3], med, unit[key], a[1], a[m], a[r], m
    }
  }'
