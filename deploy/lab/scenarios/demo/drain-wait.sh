# Demo chapter: `lbctl drain llc5 --wait` follows the open session until its user logs out,
# with its progress as it goes; new sessions go to llc6 meanwhile (sourced by demo.sh after
# demo/metrics.sh, which opened the session).
# shellcheck shell=sh

# new_drain_lines: says the lines of the drain's output not said yet.
drain_said=0
new_drain_lines() {
  _demo_lines=$(grep -c . /var/log/lab/drain-wait.log)
  if [ "$_demo_lines" -gt "$drain_said" ]; then
    sed -n "$((drain_said + 1)),${_demo_lines}p" /var/log/lab/drain-wait.log | sed 's/^/      /' | say
    drain_said=$_demo_lines
  fi
}

chapter "lbctl drain llc5 --wait: maintenance waits for the last session"
say "[llclb1]# lbctl drain llc5 --wait --timeout 2m"
start_bg llclb1 drain-wait lbctl drain llc5 --wait --timeout 2m >/dev/null
drain_pid=$(cat "$LAB_RUN/drain-wait.pid")
wait_until 30 grep -q 'llc5: ActiveConn 1' /var/log/lab/drain-wait.log
new_drain_lines
ssh_sessions 2
# shellcheck disable=SC2086 # one word per session
verdict drain-wait-new-sessions-to-llc6 all_are llc6 $served
verdict drain-wait-waits-for-the-session kill -0 "$drain_pid"
answer=$(session_echo still-here)
say "The session on llc5 still answers (${answer:-nothing}); now its user logs out."
close_session 20
wait_exit "$drain_pid" 60
new_drain_lines
say "lbctl exited with status $exit_status: llc5 can be updated and rebooted (docs/operations.md)."
verdict drain-wait-returns-when-idle test "$exit_status" = 0
verdict drain-wait-says-drained grep -q 'llc5 is drained' /var/log/lab/drain-wait.log
show llclb1 lbctl undrain llc5
