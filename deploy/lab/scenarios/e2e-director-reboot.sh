# End to end, issue 5 scenario 6: the director boots with an empty table and no VIP (the seed's
# "after rebooting no lvs rules are set"). The agents are up first and wait for it; starting
# the director restores the VIP, the table and the timeouts from its config, the agents
# register, and ssh to the VIP works.

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
trap logs_if_failed EXIT

empty_table() {
  ! in_ns llclb1 ipvsadm -S -n | grep -q .
}
timeouts() {
  in_ns llclb1 ipvsadm -L --timeout | sed -n 's/^Timeout (tcp tcpfin udp): //p'
}

if empty_table && ! vip_on_eth0; then
  pass starts-empty
  echo "before the director: no VIP, empty table, timeouts $(timeouts)"
else
  fail starts-empty "the lab should start with no VIP and an empty IPVS table"
  in_ns llclb1 ipvsadm -L -n
fi

# The realservers boot first: their agents keep trying until the director is there.
start_agent llc5
start_agent llc6
sleep 2
check agents-wait-for-director kill -0 "$(agent_pid_of llc5)" "$(agent_pid_of llc6)"

start_director director
t0=$(now)
if wait_until 30 vip_on_eth0; then
  pass vip-restored
else
  fail vip-restored "no $VIP/32 on eth0 30 s after the director started"
fi
if wait_until 30 has_service; then
  pass service-restored
else
  fail service-restored "no 'TCP  $VIP:22 rr' in ipvsadm -L -n"
fi
check timeouts-restored test "$(timeouts)" = "259200 120 300"
if wait_until 40 both_registered; then
  pass agents-register
  echo "both realservers Route 1 and alive $(elapsed_since "$t0") s after the director started"
else
  fail agents-register "llc5 '$(dest "$RIP5")' $(lease_of llc5), llc6 '$(dest "$RIP6")' $(lease_of llc6)"
fi
check llc5-one-redirect-rule one_agent_rule llc5
check llc6-one-redirect-rule one_agent_rule llc6
expect_sessions ssh-through-vip-works 2 both
