# End to end, issue 5 scenario 2: drain the realserver that serves a long-lived ssh session.
# Its weight goes to 0 in the kernel, every new session goes to the other host, the open
# session keeps answering, `lbctl drain --wait` waits while it is open and returns 0 once it is
# closed; `lbctl undrain` gives the weight back and new sessions reach both hosts again.

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
trap logs_if_failed EXIT

bring_up
open_busy_session
# A function, so that wait_until reads the kernel's count again on every try.
busy_has_one_conn() { test "$(active_conn "$busy_rip")" = 1; }
if wait_until 10 busy_has_one_conn; then
  pass session-is-active-conn
else
  fail session-is-active-conn "ActiveConn of $busy is '$(active_conn "$busy_rip")', not 1"
fi

expect_lbctl lbctl-drain-exits-0 drain "$busy"
expect_dest drained-weight-0-in-kernel 5 "$busy_rip" "Route 0"
check lbctl-shows-drained test "$(admin_of "$busy")" = drained
expect_sessions new-sessions-avoid-drained 4 "$idle"
expect_session_answers open-session-survives-drain still-there

# --wait must still be waiting while the session is open, and return once it is closed.
start_bg llclb1 drain-wait lbctl drain "$busy" --wait --timeout 90s \
  >/dev/null
drain_wait_pid=$(cat "$LAB_RUN/drain-wait.pid")
sleep 3
if kill -0 "$drain_wait_pid" 2>/dev/null; then
  pass drain-wait-waits-while-open
else
  fail drain-wait-waits-while-open "lbctl drain --wait returned with the session still open"
  show_log drain-wait
fi
close_session 20
wait_exit "$drain_wait_pid" 30
if [ "$exit_status" = 0 ] && grep -q "$busy is drained" /var/log/lab/drain-wait.log; then
  pass drain-wait-returns-when-closed
else
  fail drain-wait-returns-when-closed "lbctl drain --wait: exit status $exit_status"
fi
show_log drain-wait

expect_lbctl lbctl-undrain-exits-0 undrain "$busy"
expect_dest undrained-weight-back 5 "$busy_rip" "Route 1"
check lbctl-shows-undrained test "$(admin_of "$busy")" = -
expect_sessions undrained-sessions-reach-both 4 both
