# How the costs grow with the table (issue 13, benchmark 7): 100, 1,000 and 10,000 services of
# 10 destinations each (1,100 to 110,000 entries), one round per size in this one boot: the
# table's write and read (lb-ipvs against ipvsadm), the director's config check, cold start,
# restart (zero writes) and RSS. Run by `deploy/bench.sh --growth`; not part of CI (the
# 10,000-service round alone takes many minutes under emulation).
# lab-timeout: 3600
BENCH_DESTS=10
BENCH_ROUNDS=1
# shellcheck source=bench/lib.sh
source bench/lib.sh
for BENCH_SERVICES in ${BENCH_GROWTH:-100 1000 10000}; do
  # A start over 110,000 entries reads and checks 100,000 realserver tables first.
  BENCH_START_SECS=$((60 + BENCH_SERVICES / 10))
  echo "bench: growth: $BENCH_SERVICES services x $BENCH_DESTS destinations"
  bench_table || break
  bench_director || break
done
