# End to end, issue 5 scenario 8: bad input changes nothing. `lbctl drain nosuchhost` exits 1
# naming the host, `lbctl weight llc5 -1` is a usage error (exit 2); an agent asking for a
# service the director does not have is refused with a message naming the service, adds no
# rule and no destination, and stops with 0. The IPVS table is compared before and after.

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
trap logs_if_failed EXIT

start_director director
if ! wait_until 60 listening llclb1 7700; then
  fail director-starts "no gRPC port after 60 s"
  show_log director
  exit 1
fi
start_agent llc5
# llc6 first asks for llc-web, a service the director does not have.
start_agent llc6 agent-unknown-service.toml
bad_agent_pid=$agent_pid
if wait_until 60 has_dest "$RIP5" "Route 1"; then
  pass llc5-registers
else
  fail llc5-registers "llc5 is '$(dest "$RIP5")' after 60 s"
  show_log director
fi

if wait_until 30 grep -q 'llc-web' /var/log/lab/agent-llc6.log; then
  pass unknown-service-refused-naming-it
  grep 'llc-web' /var/log/lab/agent-llc6.log | head -n 3 | sed 's/^/    agent-llc6| /'
else
  fail unknown-service-refused-naming-it "the agent's log never names llc-web"
  show_log agent-llc6
fi
check refused-agent-adds-no-rule no_agent_rule llc6
check refused-agent-not-in-table no_dest "$RIP6"
check refused-agent-not-in-lbctl test -z "$(realserver_status llc6)"
check refused-agent-still-running kill -0 "$bad_agent_pid"

before=$(ipvs_save)
status_before=$(lbctl_op status)

out=$(lbctl_op drain nosuchhost 2>&1)
status=$?
echo "lbctl drain nosuchhost -> exit $status: $out"
if [ "$status" = 1 ] && echo "$out" | grep -q "no realserver named nosuchhost"; then
  pass drain-unknown-host-exit-1
else
  fail drain-unknown-host-exit-1 "exit $status: $out"
fi

out=$(lbctl_op weight llc5 -1 2>&1)
status=$?
echo "lbctl weight llc5 -1 -> exit $status: $out"
if [ "$status" = 2 ] && echo "$out" | grep -qi "usage"; then
  pass weight-minus-one-usage-error
else
  fail weight-minus-one-usage-error "exit $status: $out"
fi

out=$(lbctl_op weight llc5 65536 2>&1)
status=$?
echo "lbctl weight llc5 65536 -> exit $status: $out"
if [ "$status" = 2 ] && echo "$out" | grep -q "65536"; then
  pass weight-out-of-range-usage-error
else
  fail weight-out-of-range-usage-error "exit $status: $out"
fi

out=$(in_ns llclb1 lbctl --director http://10.0.0.2:7799 status 2>&1)
status=$?
echo "lbctl against a port nobody listens on -> exit $status: $out"
if [ "$status" = 1 ] && echo "$out" | grep -q "10.0.0.2:7799"; then
  pass unreachable-director-named
else
  fail unreachable-director-named "exit $status: $out"
fi

# A resync or two, then compare.
sleep 2
after=$(ipvs_save)
if [ "$after" = "$before" ]; then
  pass table-unchanged
else
  fail table-unchanged "ipvsadm -S -n before: $before / after: $after"
fi
status_after=$(lbctl_op status)
# The connection counters may move; the rest may not.
strip_counts() { awk '$1 == "->" { $6 = ""; $7 = "" } { print }'; }
if [ "$(echo "$status_after" | strip_counts)" = "$(echo "$status_before" | strip_counts)" ]; then
  pass lbctl-status-unchanged
else
  fail lbctl-status-unchanged "before: $status_before / after: $status_after"
fi

# The refused agent stops cleanly, and the same host then joins with a good config.
stop_daemon "$bad_agent_pid" 15
check refused-agent-exits-0 test "$exit_status" = 0 || show_log agent-llc6
start_agent llc6
if wait_until 30 has_dest "$RIP6" "Route 1"; then
  pass llc6-joins-with-good-config
else
  fail llc6-joins-with-good-config "llc6 is '$(dest "$RIP6")' 30 s after its agent started"
fi

