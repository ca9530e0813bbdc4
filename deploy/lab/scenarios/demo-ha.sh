# The narrated demo of two directors (deploy/demo.sh --ha): keepalived's VRRP moves the VIP,
# lb-director keeps the complete table on both and runs the kernel's connection sync, so an
# open ssh session survives the loss of the director it went through, and a failback. Every
# step reports a result, so it runs as a test with the other scenarios; the topology and the
# helpers are e2e-ha's (e2e/ha.sh), the narration the demo's (demo/narrate.sh).
# About 2 to 3 minutes with other VMs and builds sharing two cores.
# lab-timeout: 600

trap logs_if_failed EXIT

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
# shellcheck source=demo/narrate.sh
. ./demo/narrate.sh

chapter "Two directors, one VIP"
say "llclb1 ($DIP) and llclb2 ($DIP2) each run keepalived (VRRP only: it moves the VIP"
say "$VIP, nothing else) and lb-director in [ha] mode: it never adds or removes the VIP,"
say "reports ACTIVE while keepalived has put it on its interface, and starts the kernel's"
say "connection sync daemons. Each agent registers and heartbeats with both directors."
# shellcheck source=e2e/ha.sh
. ./e2e/ha.sh
ha_bring_up || exit 1
show_file "$HA_CONF/director-llclb1.toml"
for lb in llclb1 llclb2; do
  say "[$lb]# lbctl status"
  lbctl_on "$lb" status 2>&1 | sed 's/^/      /' | say
done
say "Both kernels hold the same table, built from the same registrations:"
show_sh llclb2 "ipvsadm -S -n"
verdict demo-ha-tables-agree tables_agree

chapter "An ssh session through llclb1"
say "The client opens one session and sends a line every 100 ms; the realserver echoes each."
start_stream demo
if ! wait_until 30 stream_moves demo 10; then
  fail demo-ha-stream-opens "no echo through the VIP"
  exit 1
fi
busy=$(stream_host demo)
pass demo-ha-stream-opens
say "The session went through llclb1 to $busy. llclb1's sync daemon sends it to llclb2:"
wait_until 10 stream_moves demo 40
verdict demo-ha-connection-synced wait_until 20 established_on llclb2 1
show_sh llclb2 "ipvsadm -L -n -c | grep ESTABLISHED"

chapter "llclb1 dies"
say "llclb1's link goes down: its keepalived falls silent, llclb2's takes the VIP after three"
say "missed adverts and announces it by gratuitous ARP."
before=$(stream_count demo)
expect_vip_moves demo-ha-vip-moves-to-llclb2 llclb1 llclb2
expect_stream demo-ha-session-survives-failover demo "$busy"
say "The open session kept answering, from $busy; the largest gap the client saw was"
say "$(stream_gap demo "$before") ms (one line every 100 ms)."
say "New sessions are balanced by llclb2 over both realservers:"
ssh_sessions 4
case " $served " in
  *" llc5 "*" llc6 "* | *" llc6 "*" llc5 "*) pass demo-ha-new-sessions-balanced ;;
  *) fail demo-ha-new-sessions-balanced "4 new sessions were served by: $served" ;;
esac
expect_roles demo-ha-roles-after-failover STANDBY ACTIVE
say "[llclb2]# lbctl status   (first line)"
lbctl_on llclb2 status 2>&1 | sed -n 1p | sed 's/^/      /' | say

chapter "llclb1 returns; the VIP goes back only when llclb2 fails"
link llclb1 up
say "llclb1's link is back. keepalived has nopreempt: moving the VIP back now would cut every"
say "session a second time, so it stays on llclb2; llclb1's agents register again meanwhile."
verdict demo-ha-tables-agree-again wait_until 60 tables_agree
verdict demo-ha-vip-stays-on-llclb2 vip_on llclb2
say "Now llclb2's link goes down, and the VIP goes back to llclb1, with the session:"
before=$(stream_count demo)
expect_vip_moves demo-ha-vip-back-on-llclb1 llclb2 llclb1
expect_stream demo-ha-session-survives-failback demo "$busy"
say "The session still answers from $busy; the largest gap this time was"
say "$(stream_gap demo "$before") ms: the sync runs both ways, all the time."
link llclb2 up
: >"$LAB_RUN/stream-demo.stop"

finale "Done"
say "Two directors, one table, connections synced: the loss of a director costs the open"
say "sessions a few seconds of silence, not the sessions. Files for a real pair: deploy/ha/;"
say "the README's High availability section says what happens in each failure."
