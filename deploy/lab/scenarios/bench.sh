# The benchmark suite at a small size, so that it runs in every CI lab and cannot rot; the
# numbers that count come from deploy/bench.sh at full size (BENCHMARKS.md).
if ! command -v ipvs-bench >/dev/null 2>&1; then
  fail bench::binary "ipvs-bench is not in /opt/lb/bin: build it with cargo build --release -p lb-ipvs --features testing --bin ipvs-bench and pass --bin"
  return 0
fi
BENCH_SERVICES=${BENCH_SERVICES:-100}
BENCH_DESTS=${BENCH_DESTS:-10}
BENCH_ROUNDS=${BENCH_ROUNDS:-1}
BENCH_AGENT_RUNS=${BENCH_AGENT_RUNS:-3}
# shellcheck source=bench/lib.sh
source bench/lib.sh
# shellcheck source=bench/keepalived.sh
source bench/keepalived.sh
# shellcheck source=bench/agent.sh
source bench/agent.sh
# shellcheck source=bench/agents.sh
source bench/agents.sh
bench_table
bench_director
bench_keepalived
bench_agent
bench_agents "${BENCH_AGENTS:-50}" "${BENCH_AGENTS_SECONDS:-10}"
