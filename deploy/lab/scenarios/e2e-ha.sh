# End to end, issue 12: two directors behind keepalived (VRRP only), lb-director in [ha] mode
# on both, agents registered with both, real OpenSSH; all on one boot. The configs are
# deploy/ha's own (at /opt/lb/deploy-ha in the VM) with the lab's addresses put in.
# (1) both tables identical after the registrations and after a health change; (2) failover:
# llclb1's link goes down, the VIP moves to llclb2, an open session (a line every 100 ms)
# answers, and the largest gap it saw is measured; new sessions are balanced by llclb2;
# (3) llclb1 away for 60 s: llclb2's table never changes; then a drain of llc6 on llclb2;
# (4) llclb1 back: the drain reaches it, an undrain made on llclb1 reaches llclb2; (5) the VIP
# stays on llclb2 (nopreempt), the tables agree again; then llclb2's link goes down and the VIP
# goes back: the first session and one opened through llclb2 both answer (sync both ways).
# The topology, the configs and the helpers are e2e/ha.sh's (demo-ha uses them too).
# `lbctl status` says ACTIVE and STANDBY on the right side at each step.

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
trap logs_if_failed EXIT

# shellcheck source=e2e/ha.sh
. ./e2e/ha.sh
ha_bring_up || exit 1

# --- 1. a health change reaches both tables alike -----------------------------------------------
kill -TERM "$(cat "$LAB_RUN/sshd-llc5.pid")"
if wait_until 40 both_weights llclb1 "Route 0" "Route 1" &&
  wait_until 20 both_weights llclb2 "Route 0" "Route 1"; then
  pass dead-sshd-weight-0-on-both
else
  fail dead-sshd-weight-0-on-both "llc5 is '$(dest_on llclb1 "$RIP5")' on llclb1, '$(dest_on llclb2 "$RIP5")' on llclb2"
fi
check tables-agree-health-down wait_until 20 tables_agree
start_sshd llc5
check sshd-back-on-both wait_until 40 all_registered
check tables-agree-health-up wait_until 20 tables_agree

# --- 2. failover ----------------------------------------------------------------------------------
start_stream first
if wait_until 30 stream_moves first 10; then
  busy=$(stream_host first)
  pass stream-opens
  echo "the stream goes through llclb1 to $busy"
else
  fail stream-opens "no echo through the VIP"
  cat "$LAB_RUN/stream-first.out"
  exit 1
fi
# Some lines, so llclb1's master daemon has synced the connection (and its updates) to llclb2.
wait_until 10 stream_moves first 40
check connection-synced-to-llclb2 wait_until 20 established_on llclb2 1
before=$(stream_count first)
sample_table llclb2
away=$(now)
expect_vip_moves vip-moves-to-llclb2 llclb1 llclb2
expect_stream session-survives-failover first "$busy"
gap=$(stream_gap first "$before")
say "failover: the open ssh session's largest gap was $gap ms (a line every 100 ms; VRRP advert_int 1 s)"
expect_sessions new-sessions-balanced-by-llclb2 4 both
expect_roles roles-after-failover STANDBY ACTIVE

# --- 3. llclb1 away for 60 s: nothing changes on llclb2 -----------------------------------------
baseline=$(save_of llclb2)
wait_until 90 away_for 60
: >"$LAB_RUN/samples-llclb2/stop"
sleep 1
changed=0
count=0
for f in "$LAB_RUN"/samples-llclb2/[0-9]*; do
  count=$((count + 1))
  [ "$(cat "$f")" = "$baseline" ] || changed=$((changed + 1))
done
echo "llclb2's table sampled $count times over llclb1's $(elapsed_since "$away") s away"
if [ "$changed" = 0 ] && [ "$count" -gt 20 ]; then
  pass llclb2-steady-while-llclb1-away
else
  fail llclb2-steady-while-llclb1-away "$changed of $count samples differ from the table at the failover"
  echo "$baseline" | sed 's/^/    baseline| /'
  for f in "$LAB_RUN"/samples-llclb2/[0-9]*; do
    [ "$(cat "$f")" = "$baseline" ] || { sed 's/^/    differs| /' "$f"; break; }
  done
fi
check leases-alive-on-llclb2 alive_on llclb2

# --- 4. admin state across the pair: a drain on llclb2 while llclb1 is away holds when it
# returns (llclb1's older "not drained" never wins), and an undrain on llclb1 reaches llclb2 ---
check drain-on-llclb2-while-llclb1-away lbctl_on llclb2 drain llc6
check drained-on-llclb2 wait_until 20 has_dest_on llclb2 "$RIP6" "Route 0"

# --- 5. llclb1 back, then the VIP goes back to it -------------------------------------------------
link llclb1 up
check drain-reaches-returned-llclb1 wait_until 60 has_dest_on llclb1 "$RIP6" "Route 0"
check tables-agree-after-return wait_until 60 tables_agree
check drain-holds-on-llclb2 has_dest_on llclb2 "$RIP6" "Route 0"
check undrain-on-llclb1 lbctl_on llclb1 undrain llc6
check undrain-reaches-llclb2 wait_until 30 has_dest_on llclb2 "$RIP6" "Route 1"
check tables-agree-after-undrain wait_until 30 tables_agree
sleep 3
check vip-stays-on-llclb2 vip_on llclb2
expect_roles roles-after-return STANDBY ACTIVE
expect_stream session-answers-after-return first "$busy"
# A second stream opened through llclb2, to check llclb2 -> llclb1 sync too.
start_stream second
check second-stream-opens wait_until 30 stream_moves second 40
second=$(stream_host second)
check second-synced-to-llclb1 wait_until 20 established_on llclb1 2
before=$(stream_count first)
expect_vip_moves vip-back-on-llclb1 llclb2 llclb1
expect_stream first-session-survives-failback first "$busy"
expect_stream second-session-survives-failback second "$second"
say "failback: the first session's largest gap was $(stream_gap first "$before") ms"
expect_roles roles-after-failback ACTIVE STANDBY
link llclb2 up
: >"$LAB_RUN/stream-first.stop"
: >"$LAB_RUN/stream-second.stop"
