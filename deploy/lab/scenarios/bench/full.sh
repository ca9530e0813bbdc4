# The benchmark suite at the size BENCHMARKS.md reports: 1,000 services x 10 destinations.
BENCH_SERVICES=1000
BENCH_DESTS=10
BENCH_ROUNDS=3
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_table
bench_director
