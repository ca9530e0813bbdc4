# Demo chapters: the seed's network, lb-director and lb-agent taking over from the seed's
# scripts, and round robin over the two realservers (sourced by demo.sh).
# shellcheck shell=sh

chapter "The seed's network, in one VM"
say "Network namespaces on one bridge, like the seed's LAN:"
say "  client $CLIENT   llclb1 $DIP (the director)   llc5 $RIP5   llc6 $RIP6 (realservers)"
say "llc5 and llc6 run OpenSSH's sshd. Like the seed's director after a reboot, llclb1 has no"
say "VIP and no IPVS rules yet:"
show llclb1 ipvsadm -L -n
show llclb1 ip -4 -brief addr show dev eth0
verdict starts-empty test -z "$(in_ns llclb1 ipvsadm -S -n)"

chapter "lb-director replaces /etc/setup-LVS-DR-director.conf"
show_file "$E2E_CONF/director.toml"
say "Starting lb-director on llclb1. It adds the VIP, the service and the timeouts by itself."
start_director director
wait_until 60 listening llclb1 7700
wait_until 20 has_service
show llclb1 ip -4 -brief addr show dev eth0
show llclb1 ipvsadm -L -n
show llclb1 ipvsadm -L --timeout
say "The service is there, with no realserver yet: none has registered."
verdict director-sets-up-vip-and-service has_service

chapter "lb-agent replaces /etc/init.d/lvs on llc5 and llc6"
show_file "$E2E_CONF/agent-llc5.toml"
say "Starting lb-agent on llc5 and llc6. Each one registers, installs its REDIRECT rule, and only"
say "then does the director send it traffic."
t0=$(now)
start_agent llc5
start_agent llc6
registered=no
wait_until 60 both_registered && registered=yes
say "Both registered after $(elapsed_since "$t0") s."
show llc5 iptables -t nat -S PREROUTING
show llclb1 ipvsadm -L -n
show llclb1 lbctl status
verdict agents-register test "$registered" = yes

chapter "ssh to the VIP: round robin over llc5 and llc6"
ssh_sessions 4
# shellcheck disable=SC2086 # one word per session
verdict sessions-alternate both_seen $served
