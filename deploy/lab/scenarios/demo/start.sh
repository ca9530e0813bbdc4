# For `deploy/demo.sh --shell`: the director and both agents running and registered, then the
# lab's console shell (lab.sh run --shell demo/start). Leaves the shortcuts of the cheat-sheet
# for that shell in $LAB_RUN/shell.rc.

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh

bring_up

cat >"$LAB_RUN/shell.rc" <<RC
. $LAB_SCENARIO_DIR/e2e/lib.sh
# lbctl runs where an operator runs it: on the director, llclb1, as root, through the admin
# socket.
lbctl() { in_ns llclb1 /opt/lb/bin/lbctl "\$@"; }
PS1='lab# '
RC

cat <<CHEAT

The product is running: lb-director on llclb1 ($DIP, VIP $VIP), lb-agent on llc5 and llc6.
Every host is a network namespace; in_ns HOST CMD runs CMD there. Try:
  lbctl status                              names, weights, leases, drains (runs on llclb1)
  in_ns llclb1 ipvsadm -L -n                the kernel's IPVS table
  in_ns client ssh root@$VIP hostname    a new session through the VIP: llc5 or llc6
  in_ns client ssh root@$VIP             an interactive one ('exit' leaves it)
  lbctl drain llc5; lbctl undrain llc5      new sessions avoid llc5, open ones stay
  lbctl weight llc6 3                       llc6 takes three new sessions for llc5's one
  in_ns llc5 iptables -t nat -S PREROUTING  the agent's REDIRECT rule
  kill -KILL \$(agent_pid_of llc5)           crash an agent; 'start_agent llc5' restarts it
  kill -TERM \$(cat /run/lab/director.pid)   stop the director; 'start_director director'
  tail /var/log/lab/director.log            logs: director, agent-llc5, agent-llc6
'exit' powers the VM off.
CHEAT
