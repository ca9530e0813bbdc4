# The benchmark suite (deploy/bench.sh, BENCHMARKS.md), at the size the calling scenario sets:
# BENCH_SERVICES services x BENCH_DESTS destinations, BENCH_ROUNDS rounds, each measured beside
# its peer in this same boot. Results are `BENCH ...` lines on the console (deploy/bench.sh
# tabulates them). A benchmark that cannot run fails the scenario; a missed goal does not
# (BENCHMARKS.md reports it).
#
# Every write starts in a network namespace of its own: IPVS tables are per namespace, and a
# table just emptied is not a cold one (the kernel keeps deleted destinations in a trash list
# for two minutes and searches it on every add, which made writes after `ipvsadm -C` ten times
# slower in the lab).

# bench_time CMD...: runs CMD, prints its wall time in seconds (3 decimals). Coreutils date by
# path: busybox sh runs its own date applet first, which has no %N.
bench_time() {
  local start end
  start=$(/usr/sbin/date +%s%N)
  "$@" >/dev/null || return 1
  end=$(/usr/sbin/date +%s%N)
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f\n", (e - s) / 1e9 }'
}

# bench_netns NAME: a fresh namespace with the lab's subnet on a veth, for one measurement.
bench_netns() {
  ip netns add "$1" &&
    ip -n "$1" link set lo up &&
    ip -n "$1" link add b0 type veth peer name b1 &&
    ip -n "$1" addr add 10.0.0.2/24 dev b0 &&
    ip -n "$1" link set b0 up &&
    ip -n "$1" link set b1 up
}

# bench_in NAME CMD...
bench_in() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

# bench_line KIND WHO ROUND SECONDS: one result line.
bench_line() {
  echo "BENCH $1 $2 round=$3 entries=$BENCH_ENTRIES seconds=$4"
}

# bench_table: writing and reading the table, lb-ipvs against ipvsadm.
bench_table() {
  local rules=/tmp/bench-rules round t line mode
  BENCH_ENTRIES=$((BENCH_SERVICES * (BENCH_DESTS + 1)))
  ipvs-bench rules "$BENCH_SERVICES" "$BENCH_DESTS" >"$rules"
  for round in $(seq 1 "$BENCH_ROUNDS"); do
    bench_netns "bench-ipvsadm-$round" || { fail bench::netns "cannot make a namespace"; return 1; }
    t=$(bench_time bench_in "bench-ipvsadm-$round" ipvsadm -R <"$rules") ||
      { fail bench::table "ipvsadm -R failed"; return 1; }
    bench_line table-write peer=ipvsadm-R "$round" "$t"
    t=$(bench_time bench_in "bench-ipvsadm-$round" ipvsadm -S -n) ||
      { fail bench::table "ipvsadm -S -n failed"; return 1; }
    bench_line table-read peer=ipvsadm-S "$round" "$t"
    for mode in read read-serial; do
      line=$(bench_in "bench-ipvsadm-$round" env LB_LAB_VM=1 ipvs-bench "$mode") ||
        { fail bench::table "ipvs-bench $mode failed"; return 1; }
      bench_line table-read "lb=$mode" "$round" "$(echo "$line" | sed 's/.*seconds=//')"
    done
    ip netns del "bench-ipvsadm-$round"
    bench_netns "bench-lb-$round" || { fail bench::netns "cannot make a namespace"; return 1; }
    line=$(bench_in "bench-lb-$round" env LB_LAB_VM=1 ipvs-bench apply "$BENCH_SERVICES" "$BENCH_DESTS") ||
      { fail bench::table "ipvs-bench apply failed"; return 1; }
    bench_line table-write lb=ipvs-bench "$round" "$(echo "$line" | sed 's/.*seconds=//')"
    ip netns del "bench-lb-$round"
  done
  pass bench::table
}
