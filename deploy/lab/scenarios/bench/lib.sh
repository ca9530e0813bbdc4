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

# bench_rss_line WHO ROUND KIB: one memory result line (benchmark 5).
bench_rss_line() {
  echo "BENCH rss $1 round=$2 entries=$BENCH_ENTRIES kib=$3"
}

# bench_rss_kib PID: VmRSS of PID in kB (resident now, not the peak).
bench_rss_kib() {
  awk '$1 == "VmRSS:" { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# bench_ipvsadm NS ROUND WRITE READ TEST: ipvsadm -R of the rules into the fresh namespace NS,
# then ipvsadm -S -n of it, reported as the peer rows WRITE and READ; a failure fails TEST.
bench_ipvsadm() {
  local t
  bench_netns "$1" || { fail bench::netns "cannot make a namespace"; return 1; }
  t=$(bench_time bench_in "$1" ipvsadm -R </tmp/bench-rules) || { fail "$5" "ipvsadm -R failed"; return 1; }
  bench_line "$3" peer=ipvsadm-R "$2" "$t"
  t=$(bench_time bench_in "$1" ipvsadm -S -n) || { fail "$5" "ipvsadm -S -n failed"; return 1; }
  bench_line "$4" peer=ipvsadm-S "$2" "$t"
}

# bench_table: writing and reading the table, lb-ipvs against ipvsadm.
bench_table() {
  local rules=/tmp/bench-rules round t line mode
  BENCH_ENTRIES=$((BENCH_SERVICES * (BENCH_DESTS + 1)))
  ipvs-bench rules "$BENCH_SERVICES" "$BENCH_DESTS" >"$rules"
  for round in $(seq 1 "$BENCH_ROUNDS"); do
    bench_ipvsadm "bench-ipvsadm-$round" "$round" table-write table-read bench::table || return 1
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

# bench_director_config DIR: a director config with BENCH_SERVICES services of BENCH_DESTS
# configured realservers each (the table bench_table writes), no health checks.
bench_director_config() {
  awk -v dir="$1" -v n="$BENCH_SERVICES" -v d="$BENCH_DESTS" 'BEGIN {
    printf "listen = \"127.0.0.1:7700\"\nstate_dir = \"%s/state\"\nadmin_socket = \"\"\n", dir
    for (i = 0; i < n; i++) {
      printf "\n[[service]]\nname = \"s%d\"\nvip = \"10.0.0.100\"\nport = %d\nscheduler = \"wlc\"\ninterface = \"b0\"\n[service.check]\ntype = \"none\"\n", i, 10000 + i
      for (j = 0; j < d; j++) printf "[[service.realserver]]\naddress = \"10.0.0.%d\"\n", 11 + j
    }
  }'
}

# bench_director_start NS DIR: starts lb-director in NS and writes the seconds until its first
# pass is done to DIR/seconds (the table is complete then; its log says how many operations it
# applied); gives up after BENCH_START_SECS (60 unless set). Not to be called inside $(...): the
# director would hold that pipe open.
bench_director_start() {
  local ns=$1 dir=$2 start end i
  : >"$dir/log"
  start=$(/usr/sbin/date +%s%N)
  # Its output to the log, not to the $(...) that called this, which would wait for it.
  ip netns exec "$ns" lb-director --config "$dir/director.toml" >>"$dir/log" 2>&1 &
  for i in $(seq 1 $((${BENCH_START_SECS:-60} * 20))); do
    grep -q "first reconcile done" "$dir/log" && break
    [ -n "$(ip netns pids "$ns")" ] || break
    sleep 0.05
  done
  end=$(/usr/sbin/date +%s%N)
  grep -q "first reconcile done" "$dir/log" || return 1
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f\n", (e - s) / 1e9 }' >"$dir/seconds"
}

# bench_director_stop NS DIR: stops the director of NS (every process in that namespace, which
# holds nothing else) and waits until it has exited.
bench_director_stop() {
  local pids i
  pids=$(ip netns pids "$1")
  [ -n "$pids" ] || return 1
  # shellcheck disable=SC2086 # one PID per word
  kill -TERM $pids
  for i in $(seq 1 600); do
    [ -z "$(ip netns pids "$1")" ] && { echo "stopped" >>"$2/log"; return 0; }
    sleep 0.05
  done
  return 1
}

# bench_director: lb-director's cold start over an empty table against ipvsadm -R of the same
# table, then its restart over that table (zero writes) against ipvsadm -S -n.
bench_director() {
  local rules=/tmp/bench-rules round dir t entries applied
  BENCH_ENTRIES=$((BENCH_SERVICES * (BENCH_DESTS + 1)))
  ipvs-bench rules "$BENCH_SERVICES" "$BENCH_DESTS" >"$rules"
  for round in $(seq 1 "$BENCH_ROUNDS"); do
    dir=/tmp/bench-director-$round
    mkdir -p "$dir"
    bench_director_config "$dir" >"$dir/director.toml"
    bench_ipvsadm "bench-restore-$round" "$round" cold-start restart bench::director || return 1
    ip netns del "bench-restore-$round"

    # Reading and checking the config alone, which a start does first (a part of both times).
    t=$(bench_time lb-director --check --config "$dir/director.toml") ||
      { fail bench::director "lb-director --check refused the generated config"; return 1; }
    bench_line config-check lb=lb-director "$round" "$t"
    bench_netns "bench-director-$round" || { fail bench::netns "cannot make a namespace"; return 1; }
    bench_director_start "bench-director-$round" "$dir" ||
      { fail bench::director "lb-director did not finish its first pass: $(tail -3 "$dir/log")"; return 1; }
    bench_line cold-start lb=lb-director "$round" "$(cat "$dir/seconds")"
    # Its RSS holding the table after its first pass (one process: all that runs in the
    # namespace), against keepalived's (bench/keepalived.sh).
    bench_rss_line lb=lb-director "$round" "$(bench_rss_kib "$(ip netns pids "bench-director-$round")")"
    entries=$(bench_in "bench-director-$round" env LB_LAB_VM=1 ipvs-bench read | sed 's/.*entries=\([0-9]*\).*/\1/')
    if [ "$entries" != "$BENCH_ENTRIES" ]; then
      fail bench::director "after the first pass the kernel holds $entries entries, not $BENCH_ENTRIES"
      return 1
    fi
    bench_director_stop "bench-director-$round" "$dir" ||
      { fail bench::director "lb-director did not stop: $(tail -5 "$dir/log" | tr '\n' ' ')"; return 1; }
    bench_director_start "bench-director-$round" "$dir" ||
      { fail bench::director "lb-director did not restart: $(tail -3 "$dir/log")"; return 1; }
    applied=$(grep "first reconcile done" "$dir/log" | tail -1 | sed 's/.*applied=\([0-9]*\).*/\1/')
    if [ "$applied" != 0 ]; then
      fail bench::director "the restart over an unchanged table applied $applied operations"
      return 1
    fi
    bench_line restart lb=lb-director "$round" "$(cat "$dir/seconds")"
    bench_director_stop "bench-director-$round" "$dir" ||
      { fail bench::director "lb-director did not stop"; return 1; }
    ip netns del "bench-director-$round"
  done
  pass bench::director
}
