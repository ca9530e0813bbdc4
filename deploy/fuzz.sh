#!/usr/bin/env bash
# Runs only the fuzz tests (issue 6, "Hostile input"), with far more cases than a plain
# `cargo test` gives them (256 per property): the IPVS netlink decoder (lb-ipvs
# tests/fuzz_netlink*.rs), the config loader and the director's and agent's config readers
# (tests/fuzz_config.rs of lb-shared, lb-director, lb-agent) and the director's state file
# (lb-director tests/fuzz_state.rs). They are proptest properties inside cargo test: libFuzzer
# (cargo fuzz) needs a nightly toolchain, which CI cannot count on.
#
#   deploy/fuzz.sh                     10000 cases per property, about 2 minutes on 2 cores
#   PROPTEST_CASES=20000 deploy/fuzz.sh  as many as you like
#
# Exits non-zero on any failure. proptest saves a failing case in the crate's
# tests/proptest-regressions/ and replays it first from then on: commit that file, and turn
# the input into a file under tests/fuzz-regressions/ beside a fix.
set -euo pipefail
cd "$(dirname "$0")/.."

cases=${PROPTEST_CASES:-10000}
printf '\n=== fuzz tests, %s cases per property\n' "$cases"
start=$SECONDS
# The same features and lock as deploy/test.sh, so the test binaries it built are reused.
PROPTEST_CASES=$cases cargo test --workspace --locked --all-features --test 'fuzz_*'
printf '\n=== fuzz tests passed in %s s\n' "$((SECONDS - start))"
