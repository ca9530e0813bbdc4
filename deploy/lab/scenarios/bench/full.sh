# The benchmark suite at the size BENCHMARKS.md reports: 1,000 services x 10 destinations,
# three rounds of each table benchmark, 50 agent starts and drains.
BENCH_SERVICES=1000
BENCH_DESTS=10
BENCH_ROUNDS=3
BENCH_AGENT_RUNS=50
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
bench_agents 1000 30
