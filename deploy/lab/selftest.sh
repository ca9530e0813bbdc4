#!/usr/bin/env bash
# Checks the lab's own verdicts with the scenarios in scenarios/lab-selftest: a reported
# failure, a scenario that dies, one that reports nothing, a hung scenario (the VM's watchdog
# stops it and shows the daemons' logs) and a hung VM must all make `lab.sh run` fail, each
# with a line that says why. Takes five VM boots.
set -euo pipefail

LAB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lab.sh
passed=0
failed=0

# expect NAME CONDITION...: one verdict of this self-test.
expect() {
  local name=$1
  shift
  if "$@"; then
    echo "  PASS $name"
    passed=$((passed + 1))
  else
    echo "  FAIL $name"
    failed=$((failed + 1))
  fi
}

# run_lab OUTPUT_FILE ARGS...: lab.sh run ARGS, its output in OUTPUT_FILE; prints its status.
run_lab() {
  local out=$1 status=0
  shift
  "$LAB" run "$@" >"$out" 2>&1 || status=$?
  sed 's/^/    > /' "$out" >&2
  echo "$status"
}

has_line() { grep -qxF -- "$2" "$1"; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT

status=$(run_lab "$out" --timeout 180 lab-selftest/fails lab-selftest/dies lab-selftest/silent)
expect failing-run-exits-1 test "$status" = 1
expect pass-before-failure-counted has_line "$out" "  PASS reported-before-failing"
expect reported-failure-shown has_line "$out" "  FAIL deliberate-failure: this scenario fails on purpose"
expect dying-scenario-fails has_line "$out" "  FAIL lab-selftest/dies: scenario exited with status 3"
expect silent-scenario-fails grep -q "^  FAIL lab-selftest/silent: scenario reported no result" "$out"
expect summary-counts has_line "$out" "lab: 2 passed, 3 failed"

# 100 s: the watchdog acts 30 s before the timeout, and a loaded machine takes up to 40 s to
# reach the scenario.
status=$(run_lab "$out" --timeout 100 lab-selftest/hangs lab-selftest/hangs-hard)
expect hung-run-exits-1 test "$status" = 1
expect watchdog-reports-hang grep -q "^  FAIL watchdog: scenario lab-selftest/hangs still running" "$out"
expect watchdog-shows-logs has_line "$out" "watchdog| ticker-started"
expect hung-scenario-ended grep -q "^lab: lab-selftest/hangs: scenario lab-selftest/hangs ended" "$out"
expect hard-hung-vm-killed grep -q "^  FAIL lab-selftest/hangs-hard: VM did not finish within 100 s and was killed" "$out"

status=$(run_lab "$out" no-such-scenario)
expect unknown-scenario-is-usage-error test "$status" = 2

echo "lab-selftest: $passed passed, $failed failed"
((failed == 0))
