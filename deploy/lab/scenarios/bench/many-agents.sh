# Benchmark 4 alone, on the real kernel: 100 and then 1,000 simulated agents against
# lb-director (bench/agents.sh), 30 s each. Run by `deploy/bench.sh --agents`; bench/full runs
# the 1,000 too, CI's bench 50 for 10 s.
# lab-timeout: 900
# shellcheck source=bench/lib.sh
source bench/lib.sh
# shellcheck source=bench/agents.sh
source bench/agents.sh
for agents in ${BENCH_AGENT_COUNTS:-100 1000}; do
  bench_agents "$agents" 30 || break
done
