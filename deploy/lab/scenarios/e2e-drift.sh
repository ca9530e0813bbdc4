# End to end, issue 5 scenario 7: drift by hand is repaired. `ipvsadm -d` of one destination and
# `ipvsadm -e -w 5` of another come back within a few resync intervals (1 s), a VIP deleted from
# eth0 comes back, an agent's REDIRECT rule deleted by hand is put back by the agent; a service on
# a VIP the director does not own, made by hand before it started, is untouched throughout.

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
trap logs_if_failed EXIT

foreign=10.0.0.200
in_ns llclb1 ipvsadm -A -t "$foreign:80" -s wlc
in_ns llclb1 ipvsadm -a -t "$foreign:80" -r 10.0.0.50:80 -m -w 9
foreign_table() {
  in_ns llclb1 ipvsadm -S -n | grep -F "$foreign:80"
}
foreign_before=$(foreign_table)
foreign_intact() {
  [ "$(foreign_table)" = "$foreign_before" ]
}
foreign_checks=0
foreign_changed=
# check_foreign WHEN: records whether the foreign service is still as it was.
check_foreign() {
  foreign_checks=$((foreign_checks + 1))
  foreign_intact || foreign_changed="$foreign_changed $1"
}

bring_up
check_foreign after-start

in_ns llclb1 ipvsadm -d -t "$VIP:22" -r "$RIP5:22"
expect_dest deleted-destination-repaired 5 "$RIP5" "Route 1"
check_foreign after-delete
in_ns llclb1 ipvsadm -e -t "$VIP:22" -r "$RIP6:22" -g -w 5
expect_dest edited-weight-repaired 5 "$RIP6" "Route 1"
check_foreign after-edit

in_ns llclb1 ip addr del "$VIP/32" dev eth0
if wait_until 5 vip_on_eth0; then
  pass deleted-vip-repaired
else
  fail deleted-vip-repaired "no $VIP/32 on eth0 5 s after ip addr del"
fi

# The rule by its number in the chain, as an operator cleaning up by hand would do.
rule_number=$(in_ns llc5 iptables -t nat -L PREROUTING -n --line-numbers |
  awk -v s="lb-agent:$SERVICE" 'index($0, s) { print $1; exit }')
if [ -n "$rule_number" ] && in_ns llc5 iptables -t nat -D PREROUTING "$rule_number" &&
  no_agent_rule llc5; then
  t0=$(now)
  # The agent checks its rule every rule_check_interval (5 s by default).
  if wait_until 15 one_agent_rule llc5; then
    pass deleted-rule-put-back
    echo "llc5's REDIRECT rule back $(elapsed_since "$t0") s after iptables -D"
  else
    fail deleted-rule-put-back "llc5 has $(agent_rule_count llc5) agent rules 15 s after iptables -D"
    show_log agent-llc5
  fi
else
  fail deleted-rule-put-back "could not delete llc5's rule by hand (number '$rule_number')"
fi
check agent-warns-rule-put-back grep -q "put back" /var/log/lab/agent-llc5.log
check_foreign after-rule

# A few resyncs more, then the last look.
sleep 3
check_foreign at-end
if [ -z "$foreign_changed" ]; then
  pass foreign-service-untouched
else
  fail foreign-service-untouched "$foreign:80 changed (checked $foreign_checks times), at:$foreign_changed"
  in_ns llclb1 ipvsadm -S -n
fi
expect_sessions ssh-reaches-both-after-repairs 2 both
