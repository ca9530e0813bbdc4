# End to end, issue 5 scenario 3: `kill -TERM` an agent. It deregisters, removes its REDIRECT
# rule and exits 0. An idle realserver leaves the table at once; one with an open session is
# quiesced (weight 0, the session keeps working) and every new session goes to the other host.

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
trap logs_if_failed EXIT

bring_up
# The long-lived session makes one realserver busy; the other one has no connection at all.
open_busy_session

# The idle one: deregistered, gone from the table, rule gone, exit 0.
stop_daemon "$(agent_pid_of "$idle")" 15
check idle-agent-exits-0 test "$exit_status" = 0
if wait_until 10 no_dest "$idle_rip"; then
  pass idle-destination-removed
else
  fail idle-destination-removed "ipvsadm -L -n still shows $idle as '$(dest "$idle_rip")'"
fi
check idle-rule-removed no_agent_rule "$idle"
check idle-agent-logs-deregistered grep -q deregistered "/var/log/lab/agent-$idle.log"

# Back again, so that new sessions have somewhere to go once the busy one stops.
start_agent "$idle"
expect_dest idle-agent-back 30 "$idle_rip" "Route 1"

# The busy one: quiesced, not removed, while its session is open.
stop_daemon "$(agent_pid_of "$busy")" 15
check busy-agent-exits-0 test "$exit_status" = 0
expect_dest busy-destination-quiesced 10 "$busy_rip" "Route 0"
check busy-still-active-conn test "$(active_conn "$busy_rip")" = 1
check lbctl-shows-deregistered lease_is "$busy" deregistered
check busy-rule-removed no_agent_rule "$busy"
# Quiescing promises that open sessions continue (README: "an agent stop sets the weight to 0
# (quiesce: open sessions continue, no new ones)"). The session's packets still reach the
# realserver with the VIP as destination; only the REDIRECT's connection tracking maps them to
# the local sshd. A packet the host cannot deliver counts in its InAddrErrors.
if ! expect_session_answers open-session-survives-agent-stop still-there; then
  # shellcheck disable=SC2016 # awk's own $6
  echo "$busy's InAddrErrors: $(in_ns "$busy" awk '/^Ip: [0-9]/ { print $6 }' /proc/net/snmp)"
fi
expect_sessions new-sessions-go-to-other 4 "$idle"
close_session 5
