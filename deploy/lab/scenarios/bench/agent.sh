# Benchmark 3: how long an agent's start takes to reach the kernel (weight > 0) and how long
# `lbctl drain` takes to reach it (weight 0), BENCH_AGENT_RUNS runs, on the lab's own topology
# with the e2e configs (mutual TLS, the director's admin socket): lb-director on llclb1, lb-agent
# on llc5. ipvs-bench wait-weight starts the command and reads llc5's weight every millisecond.
# The agent's own iptables calls (two version probes at start, then -C and -A of its rule, all
# before it confirms) are timed apart by running the same commands in llc5 after each run, so
# the total and the total without them are both reported. Then benchmark 5's agent RSS.
# Sourced by bench.sh and bench/full.sh after bench/lib.sh.

BENCH_AGENT_LOG=/var/log/lab/bench-agent.log

# bench_agent_gone PID: the agent has exited (or is a zombie nobody reaped: ipvs-bench, its
# parent, exited before it) and its destination has left the table.
bench_agent_gone() {
  case $(awk '$1 == "State:" { print $2 }' "/proc/$1/status" 2>/dev/null) in
    "" | Z) ;;
    *) return 1 ;;
  esac
  [ -z "$(dest "$RIP5")" ]
}

# bench_agent_start: starts lb-agent in llc5 and prints "PID SECONDS" once llc5 has a weight.
bench_agent_start() {
  local line
  line=$(in_ns llclb1 env LB_LAB_VM=1 ipvs-bench wait-weight "$VIP:22" "$RIP5:22" up \
    --background "$BENCH_AGENT_LOG" -- \
    nsenter --uts="$LAB_RUN/uts/llc5" /sbin/ip netns exec llc5 \
    lb-agent --config "$E2E_CONF/agent-llc5.toml" 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-) || return 1
  echo "$line" | sed 's/.*pid=\([0-9]*\) seconds=\(.*\)/\1 \2/'
}

# bench_agent_admin up|down ARGS...: lbctl ARGS on llclb1; prints the seconds until llc5's
# weight is as said.
bench_agent_admin() {
  local want=$1 line
  shift
  line=$(in_ns llclb1 env LB_LAB_VM=1 ipvs-bench wait-weight "$VIP:22" "$RIP5:22" "$want" \
    "$BENCH_AGENT_LOG" -- lbctl "$@") || return 1
  echo "$line" | sed 's/.*seconds=//'
}

# bench_agent_iptables_file FILE: the agent's iptables calls up to its confirmation, as the
# iptables crate makes them (`--wait` added), for the rule the agent installed (read back from
# `iptables -S` while it runs).
bench_agent_iptables_file() {
  local spec
  spec=$(agent_rules llc5 | head -1 | sed 's/^-A PREROUTING //')
  [ -n "$spec" ] || return 1
  {
    echo "iptables --version"
    echo "ip6tables --version"
    # Absent at that point: -C exits 1, as the agent expects.
    echo "? iptables -t nat -C PREROUTING $spec --wait"
    echo "iptables -t nat -A PREROUTING $spec --wait"
  } >"$1"
  echo "$spec" >"$1.spec"
}

# bench_agent_iptables FILE: times FILE's commands in llc5 (the agent's rule is gone by then),
# prints the seconds, removes the rule they added.
bench_agent_iptables() {
  local line
  line=$(in_ns llc5 env LB_LAB_VM=1 ipvs-bench run "$1") || return 1
  # shellcheck disable=SC2046 # the rule's words
  in_ns llc5 iptables -t nat -D PREROUTING $(cat "$1.spec") || return 1
  echo "$line" | sed 's/.*seconds=//'
}

bench_agent() {
  local runs=${BENCH_AGENT_RUNS:-3} run started pid seconds ipt t pid_rss
  local iptables_file=/tmp/bench-agent-iptables
  # shellcheck source=../e2e/lib.sh
  . "$LAB_SCENARIO_DIR/e2e/lib.sh"
  BENCH_ENTRIES=1
  start_director bench-director
  if ! wait_until 60 has_service; then
    fail bench::agent "lb-director did not put $VIP:22 in the table"
    show_log bench-director
    return 1
  fi
  for run in $(seq 1 "$runs"); do
    started=$(bench_agent_start) ||
      { fail bench::agent "llc5 got no weight: $(tail -5 "$BENCH_AGENT_LOG" | tr '\n' ' ')"; return 1; }
    pid=${started% *}
    seconds=${started#* }
    [ -n "$pid" ] && [ -n "$seconds" ] ||
      { fail bench::agent "ipvs-bench wait-weight said '$started'"; return 1; }
    if [ "$run" = 1 ]; then
      bench_agent_iptables_file "$iptables_file" ||
        { fail bench::agent "no lb-agent:llc-ssh rule in llc5 while the agent runs"; return 1; }
    fi
    t=$(bench_agent_admin down drain llc5) ||
      { fail bench::agent "lbctl drain llc5 did not reach the kernel: $(tail -3 "$BENCH_AGENT_LOG" | tr '\n' ' ')"; return 1; }
    bench_line drain lb=lbctl "$run" "$t"
    t=$(bench_agent_admin up undrain llc5) ||
      { fail bench::agent "lbctl undrain llc5 did not reach the kernel"; return 1; }
    bench_line undrain lb=lbctl "$run" "$t"
    if [ "$run" = "$runs" ]; then
      # Registered and heartbeating: the first heartbeat comes a third of the 6 s lease after
      # the registration; 5 s see two.
      sleep 5
      pid_rss=$(bench_rss_kib "$pid")
    fi
    kill -TERM "$pid"
    wait_until 60 bench_agent_gone "$pid" ||
      { fail bench::agent "lb-agent did not stop and deregister within 60 s"; return 1; }
    ipt=$(bench_agent_iptables "$iptables_file") ||
      { fail bench::agent "the agent's iptables calls failed when replayed in llc5"; return 1; }
    bench_line agent-start lb=lb-agent "$run" "$seconds"
    bench_line agent-start-iptables lb=iptables "$run" "$ipt"
    bench_line agent-start-without-iptables lb=lb-agent "$run" \
      "$(awk -v a="$seconds" -v b="$ipt" 'BEGIN { printf "%.4f", a - b }')"
  done
  bench_rss_line lb=lb-agent 1 "$pid_rss"
  stop_daemon "$director_pid" 30
  pass bench::agent
}
