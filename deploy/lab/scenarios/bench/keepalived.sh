# Benchmarks 1 and 5, keepalived's column: keepalived 2.2.7 (Debian's, in the lab image) loads
# the same BENCH_SERVICES x BENCH_DESTS table from `virtual_server` blocks into a fresh
# namespace; timed from its start until the kernel holds every entry (ipvs-bench wait-table
# reads the table every 10 ms), then the RSS of its processes holding it. Sourced by bench.sh
# and bench/full.sh after bench/lib.sh.

# bench_keepalived_config: keepalived.conf for the benchmark table, as an operator writes it
# for static realservers: lb_kind DR, real_server blocks without checkers (keepalived counts
# such a realserver up, as lb-director counts a `[[service.realserver]]` with check "none").
bench_keepalived_config() {
  awk -v n="$BENCH_SERVICES" -v d="$BENCH_DESTS" 'BEGIN {
    printf "global_defs {\n    router_id bench\n}\n"
    for (i = 0; i < n; i++) {
      printf "\nvirtual_server 10.0.0.100 %d {\n    lb_algo wlc\n    lb_kind DR\n    protocol TCP\n", 10000 + i
      for (j = 0; j < d; j++) printf "    real_server 10.0.0.%d 22 {\n        weight 1\n    }\n", 11 + j
      printf "}\n"
    }
  }'
}

# bench_keepalived_stop NS: keepalived of NS stopped (every process there), waited for.
bench_keepalived_stop() {
  local pids i
  pids=$(ip netns pids "$1")
  [ -n "$pids" ] || return 1
  # shellcheck disable=SC2086 # one PID per word
  kill -TERM $pids
  for i in $(seq 1 1200); do
    [ -z "$(ip netns pids "$1")" ] && return 0
    sleep 0.05
  done
  return 1
}

# bench_keepalived: keepalived's cold start onto the table, BENCH_ROUNDS rounds, each in a
# namespace of its own, and the RSS of its parent and checker processes once it holds it.
bench_keepalived() {
  local round ns dir line pids pid kib total
  BENCH_ENTRIES=$((BENCH_SERVICES * (BENCH_DESTS + 1)))
  if ! command -v keepalived >/dev/null 2>&1; then
    fail bench::keepalived "keepalived is not in the lab image (deploy/lab/host/image.sh)"
    return 1
  fi
  for round in $(seq 1 "$BENCH_ROUNDS"); do
    ns=bench-keepalived-$round
    dir=/tmp/$ns
    mkdir -p "$dir"
    bench_keepalived_config >"$dir/keepalived.conf"
    bench_netns "$ns" || { fail bench::netns "cannot make a namespace"; return 1; }
    # The checker subsystem only (-C: IPVS without VRRP), in the foreground (-n), logging to
    # its log and not syslog (-l -G), pid files of its own (another keepalived may run in the
    # VM). -I leaves the table in place at stop: the namespace goes with it, and removing
    # 11,000 entries one by one would only lengthen the run.
    line=$(bench_in "$ns" env LB_LAB_VM=1 ipvs-bench wait-table "$BENCH_SERVICES" "$BENCH_DESTS" \
      --background "$dir/log" -- keepalived -n -l -G -C -I -f "$dir/keepalived.conf" \
      -p "$dir/keepalived.pid" -c "$dir/checkers.pid" -r "$dir/vrrp.pid" 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-) || {
      fail bench::keepalived "keepalived did not load the table: $(tail -5 "$dir/log" | tr '\n' ' ')"
      return 1
    }
    bench_line cold-start peer=keepalived "$round" "$(echo "$line" | sed 's/.*seconds=//')"
    # Parent and checker child (sum), each also on its own line.
    pids=$(ip netns pids "$ns")
    total=0
    for pid in $pids; do
      kib=$(bench_rss_kib "$pid")
      echo "bench: keepalived pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-40)) VmRSS $kib kB"
      total=$((total + kib))
    done
    [ "$total" -gt 0 ] || { fail bench::keepalived "no keepalived process left in $ns"; return 1; }
    bench_rss_line peer=keepalived "$round" "$total"
    bench_keepalived_stop "$ns" || { fail bench::keepalived "keepalived did not stop"; return 1; }
    ip netns del "$ns"
  done
  pass bench::keepalived
}
