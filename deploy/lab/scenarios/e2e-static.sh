# End to end, issue 13: realservers configured in the director ([[service.realserver]]), with
# no agent, on real OpenSSH. Both are in the table at the director's first pass with their
# configured weights, sessions reach both, a drain by name moves new sessions to the other, a
# dead sshd takes its realserver to weight 0 and back, and an agent naming a configured
# address is refused.

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
trap logs_if_failed EXIT

DIRECTOR_CONFIG=$E2E_CONF/director-static.toml

# The seed's realserver rule (the agent's job when there is one).
seed_redirect llc5
seed_redirect llc6
start_director director
if ! wait_until 60 listening llclb1 7700; then
  fail static-bring-up "lb-director does not listen on $DIP:7700 after 60 s"
  show_log director
  exit 1
fi
check static-in-table-at-start wait_until 10 has_dest "$RIP5" "Route 1"
check static-configured-weight has_dest "$RIP6" "Route 2"
check static-lease-column lease_is llc5 static
expect_sessions static-sessions-reach-both 6 both

expect_lbctl static-drain drain llc5
expect_dest static-drained-weight-0 10 "$RIP5" "Route 0"
expect_sessions static-drained-sessions-elsewhere 3 llc6
expect_lbctl static-undrain undrain llc5
expect_dest static-undrained-weight-1 10 "$RIP5" "Route 1"

llc6_sshd=$(cat "$LAB_RUN/sshd-llc6.pid")
kill -TERM "$llc6_sshd"
expect_dest static-dead-sshd-weight-0 30 "$RIP6" "Route 0"
check static-dead-sshd-shown-down wait_until 10 health_is llc6 down
start_sshd llc6
expect_dest static-sshd-back-weight-2 30 "$RIP6" "Route 2"

# An agent for a configured address: refused with the reason, and the table is unchanged.
lbctl certs issue "$LAB_PKI" llc7 >/dev/null
start_agent llc6 agent-static-claim.toml
if wait_until 30 grep -q "remove it from the director's config" /var/log/lab/agent-llc6.log; then
  pass static-agent-refused
else
  fail static-agent-refused "the agent's log does not show the refusal"
  show_log agent-llc6
fi
check static-table-unchanged has_dest "$RIP6" "Route 2"
stop_daemon "$agent_pid" 10
stop_daemon "$director_pid" 20
