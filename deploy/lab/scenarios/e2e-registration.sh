# End to end, issue 5 scenario 1: the director and both agents start from their config files;
# within seconds the kernel shows VIP:22 with both realservers as direct-routing weight 1, each
# realserver has exactly one REDIRECT rule, lbctl shows both alive, and successive ssh sessions
# to the VIP are served by both hosts.

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
trap logs_if_failed EXIT

bring_up
# "Within a few seconds": a registration is one Register, one rule, one Confirm; 10 s leaves
# room for the emulated CPU.
if awk -v t="$registered_after" 'BEGIN { exit !(t <= 10) }'; then
  pass registered-within-10s
else
  fail registered-within-10s "both registered only $registered_after s after the agents started"
fi

if has_service; then
  pass service-vip-22-rr
else
  fail service-vip-22-rr "no 'TCP  $VIP:22 rr' in ipvsadm -L -n"
  in_ns llclb1 ipvsadm -L -n
fi
for host in llc5 llc6; do
  if has_dest "$(rip_of "$host")" "Route 1"; then
    pass "$host-route-weight-1"
  else
    fail "$host-route-weight-1" "ipvsadm -L -n shows '$(dest "$(rip_of "$host")")'"
  fi
  if one_agent_rule "$host"; then
    pass "$host-one-redirect-rule"
  else
    fail "$host-one-redirect-rule" "iptables -t nat -S PREROUTING in $host:"
    in_ns "$host" iptables -t nat -S PREROUTING | sed 's/^/    | /'
  fi
done

# What an operator reads: lbctl's table, and the same as JSON.
status=$(lbctl_op status)
echo "$status"
lines_ok=yes
for pair in "llc5 $RIP5" "llc6 $RIP6"; do
  # shellcheck disable=SC2086 # split "name address"
  set -- $pair
  # -> ADDRESS:22 NAME Route 1 ACTIVE INACT alive -
  echo "$status" | awk -v a="$2:22" -v n="$1" \
    '$1 == "->" && $2 == a && $3 == n && $4 == "Route" && $5 == 1 && $8 == "alive" && $9 == "-" { found = 1 }
     END { exit !found }' || lines_ok="no ($1)"
done
if [ "$lines_ok" = yes ]; then
  pass lbctl-status-both-alive
else
  fail lbctl-status-both-alive "lbctl status lacks a 'Route 1 ... alive -' line: $lines_ok"
fi

# The JSON is pretty-printed one key per line: collect name/lease/weight per realserver.
json=$(lbctl_op status --json)
json_summary=$(echo "$json" | awk -F'"' '
  /"name":/ && inrs { name = $4 }
  /"realservers":/ { inrs = 1 }
  /"weight":/ && inrs { w = $0; sub(/.*"weight": */, "", w); sub(/,.*/, "", w); weight[name] = w }
  /"lease":/ && inrs { lease[name] = $4 }
  END { for (n in lease) print n, weight[n], lease[n] }' | sort | tr '\n' ';')
if [ "$json_summary" = "llc5 1 alive;llc6 1 alive;" ]; then
  pass lbctl-json-both-alive
else
  fail lbctl-json-both-alive "lbctl status --json gives (name weight lease): $json_summary"
  echo "$json" | sed 's/^/    | /'
fi

# Real ssh through the VIP: rr alternates the two realservers.
expect_sessions ssh-sessions-reach-both 4 both
