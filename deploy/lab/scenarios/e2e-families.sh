# End to end, issue 13: an IPv6 VIP, a UDP service and a firewall-mark service in one boot,
# each with real traffic from the client: ssh sessions through [fd00::100]:22 (IPVS inet6,
# direct routing, the agents' ip6tables REDIRECT), datagrams to 10.0.0.101:7 answered by a
# realserver's socat, ssh to 10.0.0.102 marked 7 by llclb1's mangle rule (IPVS FWM 7). Then a
# drain of llc5 (both its agents) moves new sessions and datagrams of all three to llc6.

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh

FAM=$E2E_CONF/families
VIP6=fd00::100
UDP_VIP=10.0.0.101
FWM_VIP=10.0.0.102

# --- the network: IPv6 on every host, the mark on the director --------------------------------
# nodad: a tentative address drops what it receives while duplicate address detection runs.
n=2
for host in llclb1 llc5 llc6 client; do
  case $host in
    llclb1) n=2 ;; llc5) n=11 ;; llc6) n=12 ;; client) n=10 ;;
  esac
  ip -n "$host" addr add "fd00::$n/64" dev eth0 nodad
done
# The bridge forwards neighbour solicitations to everyone, querier or not.
ip link set br0 type bridge mcast_snooping 0 2>/dev/null || true
# The operator's part of a fwmark service: mark what it should take.
check mangle-rule in_ns llclb1 iptables -t mangle -A PREROUTING -d "$FWM_VIP/32" -p tcp \
  --dport 22 -j MARK --set-mark 7

# The IPv6 agents' certificates (pki.sh mints the lab's usual ones).
for who in llc5-v6 llc6-v6; do
  [ -f "$LAB_PKI/$who.pem" ] || lbctl certs issue "$LAB_PKI" "$who" >/dev/null
done

# A UDP responder on each realserver: one datagram in, the host's name back.
for rs in llc5 llc6; do
  start_bg "$rs" "udp-$rs" socat UDP4-RECVFROM:7,fork SYSTEM:hostname >/dev/null
done

# --- daemons -----------------------------------------------------------------------------------
DIRECTOR_CONFIG=$FAM/director.toml start_director director
for rs in llc5 llc6; do
  start_bg "$rs" "agent-$rs" lb-agent --config "$FAM/agent-$rs.toml" >/dev/null
  start_bg "$rs" "agent-$rs-v6" lb-agent --config "$FAM/agent-$rs-v6.toml" >/dev/null
done

# weight_in SERVICE-ARGS DEST: DEST's weight under the service `ipvsadm -L -n SERVICE-ARGS`.
weight_in() {
  in_ns llclb1 ipvsadm -L -n $1 2>/dev/null | awk -v d="$2" '$1 == "->" && $2 == d { print $4 }'
}
# weights_are WANT5 WANT6: every service's weights of llc5 and llc6 in the kernel.
weights_are() {
  [ "$(weight_in "-t [$VIP6]:22" "[fd00::11]:22")" = "$1" ] &&
    [ "$(weight_in "-t [$VIP6]:22" "[fd00::12]:22")" = "$2" ] &&
    [ "$(weight_in "-u $UDP_VIP:7" "10.0.0.11:7")" = "$1" ] &&
    [ "$(weight_in "-u $UDP_VIP:7" "10.0.0.12:7")" = "$2" ] &&
    [ "$(weight_in "-f 7" "10.0.0.11:0")" = "$1" ] &&
    [ "$(weight_in "-f 7" "10.0.0.12:0")" = "$2" ]
}
if wait_until 90 weights_are 1 1; then
  pass all-three-services-in-the-kernel
else
  fail all-three-services-in-the-kernel "$(in_ns llclb1 ipvsadm -L -n 2>&1)"
  for log in director agent-llc5 agent-llc5-v6 agent-llc6 agent-llc6-v6; do show_log "$log"; done
fi
in_ns llclb1 ipvsadm -L -n

# contains TEXT PATTERN: a line of TEXT holds the fixed string PATTERN.
contains() { printf '%s\n' "$1" | grep -q -F -- "$2"; }
addrs() { in_ns llclb1 /sbin/ip -o addr show dev eth0; }
check ipv6-vip-on-eth0 contains "$(addrs)" "inet6 $VIP6/128"
check fwmark-vip-on-eth0 contains "$(addrs)" "inet $FWM_VIP/32"

# --- the agents' rules (exactly as iptables -S prints the agent's rules) ------------------------
rules4() { in_ns llc5 iptables -t nat -S PREROUTING; }
rules6() { in_ns llc5 ip6tables -t nat -S PREROUTING; }
rules4
rules6
check ip6tables-rule contains "$(rules6)" \
  "-A PREROUTING -d $VIP6/128 -p tcp -m tcp --dport 22 -m comment --comment \"lb-agent:ssh6\" -j REDIRECT"
check udp-rule contains "$(rules4)" \
  "-A PREROUTING -d $UDP_VIP/32 -p udp -m udp --dport 7 -m comment --comment \"lb-agent:echo-udp\" -j REDIRECT"
check fwmark-rule contains "$(rules4)" \
  "-A PREROUTING -d $FWM_VIP/32 -m comment --comment \"lb-agent:ssh-fwm\" -j REDIRECT"

# --- traffic -----------------------------------------------------------------------------------
ssh6() { in_ns client ssh -n "root@$VIP6" hostname; }
ssh_fwm() { in_ns client ssh -n "root@$FWM_VIP" hostname; }
# One datagram from a new socket (a new source port: a new IPVS connection); the answer.
# -t: wait that long for the answer after stdin's end.
udp() { echo ping | in_ns client socat -t 3 -T 3 - "UDP4:$UDP_VIP:7"; }

# served_by NAME CMD EXPECT N: N tries of CMD; PASS when the hosts that answered are EXPECT
# ("both", or one host's name).
served_by() {
  _name=$1 _cmd=$2 _expect=$3 _n=$4 _seen=""
  _i=0
  while [ "$_i" -lt "$_n" ]; do
    _host=$($_cmd 2>/dev/null | tr -d '\r')
    echo "$_name: try $_i answered by '${_host:-nobody}'"
    case " $_seen " in *" $_host "*) ;; *) _seen="$_seen $_host" ;; esac
    _i=$((_i + 1))
  done
  _seen=$(echo "$_seen" | tr ' ' '\n' | grep . | sort | tr '\n' ' ' | sed 's/ $//')
  case $_expect in
    both) _want="llc5 llc6" ;;
    *) _want=$_expect ;;
  esac
  if [ "$_seen" = "$_want" ]; then
    pass "$_name"
  else
    fail "$_name" "answered by '$_seen', expected '$_want'"
  fi
}

served_by ipv6-ssh-reaches-both ssh6 both 4
served_by udp-answered-by-both udp both 4
served_by fwmark-ssh-reaches-both ssh_fwm both 4
in_ns llclb1 ipvsadm -L -n --stats

# --- lbctl and metrics ---------------------------------------------------------------------------
status=$(lbctl_op status 2>&1)
echo "$status"
check lbctl-shows-fwmark contains "$status" "FWM  7 rr ssh-fwm  (vips $FWM_VIP)"
check lbctl-shows-ipv6 contains "$status" "TCP  [$VIP6]:22 rr ssh6"
check lbctl-shows-udp contains "$status" "UDP  $UDP_VIP:7 rr echo-udp"
# shellcheck source=e2e/metrics.sh
. ./e2e/metrics.sh
if scrape llclb1 9770 /tmp/families.metrics; then
  check metrics-label-fwmark contains "$(cat /tmp/families.metrics)" \
    'lb_destination_weight{service="ssh-fwm",fwmark="7",family="ipv4",realserver="llc5",address="10.0.0.11"} 1'
  check metrics-label-ipv6 contains "$(cat /tmp/families.metrics)" \
    'lb_destination_weight{service="ssh6",vip="fd00::100",port="22",protocol="tcp",realserver="llc5-v6",address="fd00::11"} 1'
else
  fail metrics-scrape "no answer from the director's metrics port"
fi

# --- drain llc5: new sessions and datagrams of every service go to llc6 --------------------------
expect_lbctl drain-llc5 drain llc5
expect_lbctl drain-llc5-v6 drain llc5-v6
if wait_until 20 weights_are 0 1; then
  pass drained-weights-0
else
  fail drained-weights-0 "$(in_ns llclb1 ipvsadm -L -n 2>&1)"
fi
served_by ipv6-ssh-avoids-drained ssh6 llc6 3
served_by udp-avoids-drained udp llc6 3
served_by fwmark-ssh-avoids-drained ssh_fwm llc6 3

expect_lbctl undrain-llc5 undrain llc5
expect_lbctl undrain-llc5-v6 undrain llc5-v6
check undrained-weights-back wait_until 20 weights_are 1 1

# --- the IPv6 agent's stop leaves the IPv4 agent's rules alone -----------------------------------
stop_daemon "$(cat "$LAB_RUN/agent-llc5-v6.pid")" 20
check v6-agent-stops-cleanly test "$exit_status" = 0
no_v6_rule() { ! contains "$(rules6)" "lb-agent:"; }
check v6-rule-removed no_v6_rule
check v4-rules-kept test "$(rules4 | grep -c lb-agent:)" = 2
show_log agent-llc5-v6
