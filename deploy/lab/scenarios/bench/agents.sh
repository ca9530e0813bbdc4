# Benchmark 4 on the real kernel: AGENTS simulated agents (agent_load --external, the project's
# load generator, not a shipped daemon) register, confirm and heartbeat every 2 s (a third of
# the 6 s lease) against lb-director in a namespace of its own, whose every registration is a
# destination in the kernel's table; the director's own CPU (% of one core, /proc/PID/stat) and
# RSS over SECONDS once all have joined. The generator shares the VM's two emulated CPUs with
# the director. Sourced by bench.sh and bench/full.sh after bench/lib.sh.

# bench_agents_config DIR: one service, no health checks (the simulated agents' addresses are
# nowhere), the default lease and resync.
bench_agents_config() {
  cat <<TOML
listen = "127.0.0.1:7700"
state_dir = "$1/state"
admin_socket = ""

[[service]]
name = "llc-ssh"
vip = "10.0.0.100"
port = 22
scheduler = "wlc"
interface = "b0"

[service.check]
type = "none"
TOML
}

# bench_agents AGENTS SECONDS
bench_agents() {
  local ns=bench-agents dir=/tmp/bench-agents line pid dests
  if ! command -v agent_load >/dev/null 2>&1; then
    fail bench::agents "agent_load is not in /opt/lb/bin: build it with cargo build --release -p lb-director --features testing --example agent_load and pass --bin target/release/examples/agent_load"
    return 1
  fi
  mkdir -p "$dir"
  bench_agents_config "$dir" >"$dir/director.toml"
  bench_netns "$ns" || { fail bench::netns "cannot make a namespace"; return 1; }
  bench_director_start "$ns" "$dir" ||
    { fail bench::agents "lb-director did not start: $(tail -3 "$dir/log")"; return 1; }
  pid=$(ip netns pids "$ns")
  line=$(bench_in "$ns" agent_load --external http://127.0.0.1:7700 "$pid" "$1" "$2" 2>&1) ||
    { fail bench::agents "agent_load failed: $(echo "$line" | tail -3)"; return 1; }
  echo "bench: agents: $line"
  dests=$(bench_in "$ns" ipvsadm -L -n -t 10.0.0.100:22 | grep -c '^  -> 10\.1\.')
  BENCH_ENTRIES=$1
  echo "BENCH agents-cpu lb=lb-director round=1 entries=$1 percent=$(echo "$line" | sed 's/.*cpu_percent=\([0-9.]*\).*/\1/')"
  echo "BENCH agents-rss lb=lb-director round=1 entries=$1 kib=$(echo "$line" | sed 's/.*rss_kib=\([0-9]*\).*/\1/')"
  bench_director_stop "$ns" "$dir" || { fail bench::agents "lb-director did not stop"; return 1; }
  ip netns del "$ns"
  if [ "$dests" = "$1" ]; then
    pass bench::agents
  else
    fail bench::agents "the kernel held $dests of the $1 agents' destinations"
  fi
}
