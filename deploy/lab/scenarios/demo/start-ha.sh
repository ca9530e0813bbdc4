# For `deploy/demo.sh --ha --shell`: both directors with keepalived and both agents running and
# registered (e2e/ha.sh), then the lab's console shell. Leaves the shortcuts of the cheat-sheet
# for that shell in $LAB_RUN/shell.rc.

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
# shellcheck source=e2e/ha.sh
. ./e2e/ha.sh
ha_bring_up || exit 1

cat >"$LAB_RUN/shell.rc" <<RC
. $LAB_SCENARIO_DIR/e2e/lib.sh
# lbctl where an operator runs it: on a director, as root, through its admin socket.
lbctl1() { in_ns llclb1 /opt/lb/bin/lbctl --socket /run/lb-director-llclb1/admin.sock "\$@"; }
lbctl2() { in_ns llclb2 /opt/lb/bin/lbctl --socket /run/lb-director-llclb2/admin.sock "\$@"; }
PS1='lab# '
RC

cat <<CHEAT

Two directors: llclb1 ($DIP, keepalived MASTER now) and llclb2 ($DIP2), the VIP $VIP moved
by keepalived; lb-agent on llc5 and llc6 registered with both. Try:
  lbctl1 status; lbctl2 status              each director's view (ACTIVE / STANDBY)
  in_ns llclb2 ipvsadm -L -n -c             connections synced from the active director
  in_ns client ssh root@$VIP       a session through the VIP
  ip -n llclb1 link set eth0 down           llclb1 "dies": the VIP moves to llclb2
  ip -n llclb1 link set eth0 up             it returns (nopreempt: the VIP stays)
  lbctl2 drain llc5; lbctl1 status          a drain made on one holds on both
CHEAT
