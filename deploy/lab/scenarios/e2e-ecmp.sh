# End to end, issue 12 part 2: two directors active at once behind a gateway's multipath route
# (`[ha] mode = "ecmp"`), from deploy/ha/ecmp's configs (at /opt/lb/deploy-ha/ecmp in the VM)
# with the lab's addresses put in; agents registered with both, real OpenSSH; one boot. The
# client reaches the VIP only through the gateway, which hashes each flow (L4) to llclb1 or
# llclb2; each has the VIP on lo, scheduler mh with mh-port, sloppy_tcp, no sync daemon.
# (1) both say ECMP, sloppy_tcp is 1, no sync daemon, no ARP answer for the VIP; (2) the same
# `ipvsadm -S -n` and the same destination order on both after the registrations, a drain
# (through llclb1) and an undrain (through llclb2); (3) new sessions go through both directors
# to both realservers; (4) llclb1 dies (director killed, link down, its next hop withdrawn on
# the gateway) with a session through it: the session answers from the same realserver through
# llclb2 (largest gap measured), new sessions are balanced by llclb2; (5) a drain on llclb2
# while llclb1 is down holds, and llclb1 back converges to llclb2's table, drain included.
# The topology, the configs and the helpers are e2e/ecmp.sh's (on e2e/pair.sh, as e2e-ha's).
# With other VMs and builds on the two cores (load 9 to 10), runs have gone past 10 minutes
# before a failure: hence the timeout. Its length on an idle machine is not measured yet.
# lab-timeout: 900

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
trap logs_if_failed EXIT

# shellcheck source=e2e/ecmp.sh
. ./e2e/ecmp.sh
ecmp_bring_up || exit 1

# --- 1. both directors active, nothing synced ----------------------------------------------------
expect_roles roles-ecmp ECMP ECMP
for lb in llclb1 llclb2; do
  check "sloppy-tcp-$lb" sloppy_on "$lb"
  check "no-sync-daemon-$lb" no_sync_daemon "$lb"
done
# The directors answer ARP for their own address, not for the VIP on their lo.
check arp-answers-for-dip wait_until 20 arp_answers "$DIP"
check no-arp-reply-for-vip no_arp_for_vip

# --- 2. the same table, in the same order, on both ------------------------------------------------
expect_same_tables tables-same-registered
# A drain through llclb1 reaches llclb2 by [[peer]]; an undrain through llclb2 reaches llclb1.
check drain-through-llclb1 lbctl_on llclb1 drain llc5
check drain-on-both wait_until 30 weights_on_both "Route 0" "Route 1"
expect_same_tables tables-same-drained
check undrain-through-llclb2 lbctl_on llclb2 undrain llc5
check undrain-on-both wait_until 30 weights_on_both "Route 1" "Route 1"
expect_same_tables tables-same-undrained

# --- 3. new sessions spread over both directors and both realservers -----------------------------
spread s "llclb1 llclb2"
echo "flows through llclb1: $(count_flows s llclb1), through llclb2: $(count_flows s llclb2)"
check flows-through-both-directors flows_cover s 4 llclb1 llclb2
check sessions-on-both-realservers flows_cover s 3 llc5 llc6
check each-flow-on-one-director flows_all s 4 '^llclb[12]$'
victim=$(first_flow s llclb1)
control=$(first_flow s llclb2)
if [ -z "$victim" ] || [ -z "$control" ]; then
  fail streams-chosen "no stream through llclb1 ('$victim') or none through llclb2 ('$control')"
  exit 1
fi
stop_streams s "$victim" "$control"
victim_host=$(stream_host "$victim")
victim_port=$(stream_port "$victim")
control_host=$(stream_host "$control")
echo "stream $victim (port $victim_port) goes through llclb1 to $victim_host;" \
  "stream $control through llclb2 to $control_host"

# --- 4. llclb1 dies with a session through it -----------------------------------------------------
wait_until 10 stream_moves "$victim" 20
before=$(stream_count "$victim")
control_before=$(stream_count "$control")
t0=$(now)
kill -KILL "$(cat "$LAB_RUN/director-llclb1.pid")"
link llclb1 down
# What the routing daemon does once llclb1's BGP session drops: only llclb2 is left.
route_via "$DIP2"
expect_stream session-survives-loss "$victim" "$victim_host"
gap=$(stream_gap "$victim" "$before")
echo "the stream answered again $(elapsed_since "$t0") s after the kill"
say "ECMP: llclb1 killed (director, link, next hop) under an open ssh session: its largest gap was $gap ms (a line every 100 ms), same realserver $victim_host, through llclb2"
if wait_until 10 flow_on llclb2 "$victim"; then
  pass flow-moved-to-llclb2
  echo "llclb2's entry for the moved flow: $(conn_on llclb2 "$victim_port")"
else
  fail flow-moved-to-llclb2 "llclb2 has no connection entry for the client's port $victim_port"
fi
check same-realserver-on-llclb2 flow_to llclb2 "$victim" "$victim_host"
expect_stream other-session-unaffected "$control" "$control_host"
echo "the session through llclb2 saw a largest gap of $(stream_gap "$control" "$control_before") ms meanwhile"
spread n llclb2
check new-sessions-through-llclb2 flows_all n 4 '^llclb2$'
check new-sessions-balanced-after-loss flows_cover n 3 llc5 llc6
stop_streams n

# --- 5. a drain while llclb1 is down, then llclb1 back ---------------------------------------------
check drain-on-llclb2-while-llclb1-down lbctl_on llclb2 drain llc6
check drained-on-llclb2 wait_until 20 has_dest_on llclb2 "$RIP6" "Route 0"
link llclb1 up
route_to_client llclb1
start_director_on llclb1 director-llclb1-back
if ! wait_until 60 listening llclb1 7700; then
  fail llclb1-back "lb-director on llclb1 does not listen after 60 s"
  show_log director-llclb1-back
  exit 1
fi
route_via_both
check drain-reaches-returned-llclb1 wait_until 60 has_dest_on llclb1 "$RIP6" "Route 0"
expect_same_tables tables-same-after-return
check drain-holds-on-llclb2 has_dest_on llclb2 "$RIP6" "Route 0"
expect_roles roles-after-return ECMP ECMP
expect_stream session-answers-after-return "$victim" "$victim_host"
stop_stream "$victim"
stop_stream "$control"
