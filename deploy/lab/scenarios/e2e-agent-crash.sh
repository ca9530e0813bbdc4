# End to end, issue 5 scenario 4: `kill -KILL` an agent. Its lease runs out: within lease_ttl
# (6 s) plus one resync (1 s) its weight is 0, no new session is sent to it, and restarting the
# agent brings it back with its one REDIRECT rule adopted, not duplicated.

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
trap logs_if_failed EXIT

bring_up

# Sessions to both first: their finished connections keep llc5 in the table (InActConn), so
# the quiesced weight 0 stays visible instead of the destination being removed at once.
served=$(sessions 2)
echo "2 sessions before the crash served by: $served"

crash_pid=$(agent_pid_of llc5)
kill -KILL "$crash_pid"
t0=$(now)
wait_exit "$crash_pid" 10
check agent-killed test "$exit_status" = 137
# Weight 0, or removed altogether: either way nothing new goes there.
quiesced() {
  has_dest "$RIP5" "Route 0" || no_dest "$RIP5"
}
# lease_ttl (6 s) + resync_interval (1 s), and 5 s for a loaded emulated CPU.
if wait_until 12 quiesced; then
  pass weight-0-within-lease
  echo "llc5 quiesced $(elapsed_since "$t0") s after kill -KILL (lease_ttl 6 s, resync 1 s)"
else
  fail weight-0-within-lease "12 s after kill -KILL ipvsadm -L -n shows llc5 as '$(dest "$RIP5")'"
fi
check lbctl-shows-expired lease_is llc5 expired
expect_sessions no-new-session-to-crashed 4 llc6

start_agent llc5
expect_dest restarted-agent-back 30 "$RIP5" "Route 1"
check restarted-lease-alive wait_until 10 lease_is llc5 alive
check restarted-one-redirect-rule one_agent_rule llc5
expect_sessions sessions-reach-both-again 3 both
