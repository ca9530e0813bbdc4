# Active-active directors behind a gateway for a scenario (busybox sh, sourced after
# e2e/lib.sh): e2e/pair.sh's llclb2 and helpers, deploy/ha/ecmp's configs (at
# /opt/lb/deploy-ha/ecmp in the VM) with the lab's addresses put in, and a gateway namespace
# whose multipath route spreads the flows to the VIP over both directors. Sourcing it builds
# the topology and writes the configs; ecmp_bring_up starts both directors and both agents.
#
#   client 10.0.1.10 --- gateway 10.0.1.1 | 10.0.0.1 --- br0 --- llclb1 10.0.0.2  (VIP on lo)
#                        VIP/32 nexthop via 10.0.0.2          +- llclb2 10.0.0.3  (VIP on lo)
#                               nexthop via 10.0.0.3          +- llc5, llc6 (replies to
#                                                                10.0.1.0/24 via 10.0.0.1)

# shellcheck source=e2e/pair.sh
. ./e2e/pair.sh

GATEWAY=10.0.0.1
CLIENT_GW=10.0.1.1
CLIENT_NET=10.0.1.0/24
# The client's address on its own subnet behind the gateway (the flows' source in IPVS).
CLIENT=10.0.1.10

# sysctl_in HOST NAME VALUE: NAME (dotted) set to VALUE in HOST's network namespace.
sysctl_in() {
  in_ns "$1" sh -c "echo $3 >/proc/sys/$(echo "$2" | tr . /)"
}

# sysctl_of HOST NAME
sysctl_of() {
  in_ns "$1" cat "/proc/sys/$(echo "$2" | tr . /)"
}

# route_via_both / route_via DIP: the gateway's route to the VIP over both directors, or over
# one (what a routing daemon leaves when a director's BGP session drops).
route_via_both() {
  ip -n gateway route replace "$VIP/32" nexthop via "$DIP" nexthop via "$DIP2"
}
route_via() {
  ip -n gateway route replace "$VIP/32" via "$1"
}

# route_to_client HOST: HOST reaches the client's subnet through the gateway (the realservers'
# replies in LVS-DR, a director's own packets). Again after a link comes up: the kernel drops
# a route through a link that goes down.
route_to_client() {
  ip -n "$1" route replace "$CLIENT_NET" via "$GATEWAY"
}

ecmp_topology() {
  add_host gateway "$GATEWAY" || return 1
  LAB_HOSTS="$LAB_HOSTS gateway"
  # The client leaves br0: the outer end of its veth moves into the gateway, so the gateway is
  # its only way to anything, the VIP included (it cannot ARP for the VIP on br0).
  ip link set veth-client nomaster || return 1
  ip link set veth-client netns gateway || return 1
  printf 'addr add %s/24 dev veth-client\nlink set veth-client up\n' "$CLIENT_GW" |
    ip -n gateway -batch - || return 1
  printf 'addr flush dev eth0\naddr add %s/24 dev eth0\nroute add default via %s\n' \
    "$CLIENT" "$CLIENT_GW" | ip -n client -batch - || return 1
  # A router: forwarding on, and the multipath route hashed per flow (L4: addresses, ports,
  # protocol), so one client's sessions spread over the directors.
  sysctl_in gateway net.ipv4.ip_forward 1 || return 1
  sysctl_in gateway net.ipv4.fib_multipath_hash_policy 1 || return 1
  route_via_both || return 1
  for _ecmp_h in llclb1 llclb2 llc5 llc6; do
    route_to_client "$_ecmp_h" || return 1
  done
  # The VIP is on each director's lo, and Linux answers ARP for any of its addresses on any
  # interface (arp_ignore=0): a director would answer ARP for the VIP on br0, and anyone there
  # who asked (a host on the directors' segment sending to the VIP) would bypass the
  # gateway's route and pin every flow to one director. arp_ignore=1 answers only for
  # addresses of the interface asked on; arp_announce=2 never puts the VIP in a director's
  # own ARP requests. The product does not set these (the operator does, as for realservers
  # with the VIP on lo): deploy/ha/ecmp says so.
  for _ecmp_lb in llclb1 llclb2; do
    sysctl_in "$_ecmp_lb" net.ipv4.conf.all.arp_ignore 1 || return 1
    sysctl_in "$_ecmp_lb" net.ipv4.conf.all.arp_announce 2 || return 1
  done
  # rp_filter is left as the kernel has it (0 in this VM; printed below): even strict (1) would
  # pass every packet here, since each one arrives on the interface its source is routed back
  # through (the client's on the gateway's veth-client, the directors' forwarded ones with the
  # client's source on the realservers' eth0 where the route to 10.0.1.0/24 points, the
  # replies from the VIP on the gateway's eth0 where the VIP's route points).
  for _ecmp_h in gateway llclb1 llclb2 llc5 llc6; do
    echo "$_ecmp_h: rp_filter all=$(sysctl_of "$_ecmp_h" net.ipv4.conf.all.rp_filter)" \
      "eth0=$(sysctl_of "$_ecmp_h" net.ipv4.conf.eth0.rp_filter)"
  done
}

ecmp_topology || { fail topology "no gateway between the client and the directors"; exit 1; }
pair_configs "$HA_DEPLOY/ecmp"
# Here a flap would change both tables (and the realserver new flows get) in the middle of a
# check.
pair_steady "$HA_CONF/director-llclb1.toml" "$HA_CONF/director-llclb2.toml"
check configs-valid lb-director --check --config "$HA_CONF/director-llclb1.toml"

# --- helpers --------------------------------------------------------------------------------------

# vip_on_lo LB: the director has put the VIP on its lo (a /32).
vip_on_lo() {
  in_ns "$1" ip -o addr show dev lo | grep -q "inet $VIP/32"
}

# no_sync_daemon LB: `ipvsadm -L --daemon` on LB prints nothing.
no_sync_daemon() {
  _ecmp_d=$(in_ns "$1" ipvsadm -L --daemon 2>&1) || return 1
  [ -z "$_ecmp_d" ] || { echo "$_ecmp_d"; return 1; }
}

# sloppy_on LB: net.ipv4.vs.sloppy_tcp is 1 on LB.
sloppy_on() {
  [ "$(sysctl_of "$1" net.ipv4.vs.sloppy_tcp)" = 1 ]
}

# order_of LB: VIP:22's destinations in the order LB's `ipvsadm -L -n` lists them (the kernel's
# list, which mh fills its table from), one line.
order_of() {
  in_ns "$1" ipvsadm -L -n -t "$VIP:22" 2>/dev/null |
    awk '$1 == "->" && $2 ~ /^[0-9]/ { printf "%s%s", sep, $2; sep = " " } END { print "" }'
}

# same_tables: `ipvsadm -S -n` the same on both directors, and the destinations in the same
# order: then both Maglev tables are the same and both send a flow to the same realserver.
same_tables() {
  tables_agree && [ -n "$(order_of llclb1)" ] && [ "$(order_of llclb1)" = "$(order_of llclb2)" ]
}

# expect_same_tables NAME: PASS once same_tables holds (within 90 s: a health probe or a peer
# exchange on a loaded machine takes seconds); says the order.
expect_same_tables() {
  if wait_until 90 same_tables; then
    pass "$1"
    echo "$1: both directors list $(order_of llclb1)"
  else
    fail "$1" "llclb1 lists '$(order_of llclb1)', llclb2 '$(order_of llclb2)'"
    for _ecmp_lb in llclb1 llclb2; do
      in_ns "$_ecmp_lb" ipvsadm -S -n | sed "s/^/    $_ecmp_lb| /"
    done
  fi
}

# arp_answers ADDR: some host on br0 answers the gateway's ARP request for ADDR (3 requests,
# 4 s at most).
arp_answers() {
  in_ns gateway busybox arping -q -f -c 3 -w 4 -I eth0 "$1"
}

# no_arp_for_vip: nobody answers ARP for the VIP, though both directors hold it (on lo).
no_arp_for_vip() {
  ! arp_answers "$VIP"
}

# conn_on LB PORT: "STATE REALSERVER" of the client's flow from PORT in LB's IPVS connection
# table, or nothing.
conn_on() {
  in_ns "$1" ipvsadm -L -n -c 2>/dev/null | awk -v s="$CLIENT:$2" '$4 == s { print $3, $6 }'
}

# flow_on LB ID: stream ID's flow has an entry in LB's connection table.
flow_on() {
  [ -n "$(conn_on "$1" "$(stream_port "$2")")" ]
}

# flow_to LB ID HOST: LB's entry for stream ID's flow sends it to realserver HOST.
flow_to() {
  conn_on "$1" "$(stream_port "$2")" |
    awk -v d="$(rip_of "$3"):22" '$2 == d { found = 1 } END { exit !found }'
}

# directors_of ID: the directors whose connection table has stream ID's flow.
directors_of() {
  _ecmp_of=
  for _ecmp_lb in llclb1 llclb2; do
    flow_on "$_ecmp_lb" "$1" && _ecmp_of="$_ecmp_of${_ecmp_of:+,}$_ecmp_lb"
  done
  echo "${_ecmp_of:-none}"
}

# stream_connected ID: the stream's last line came from a realserver (ssh's own complaint,
# such as a connection timeout, is a line of the stream too).
stream_connected() {
  case "$(stream_host "$1")" in
    llc5 | llc6) return 0 ;;
  esac
  return 1
}

# streams_echoed PREFIX FROM TO: streams PREFIXFROM .. PREFIXTO have each echoed a line.
streams_echoed() {
  _ecmp_i=$2
  while [ "$_ecmp_i" -le "$3" ]; do
    stream_moves "$1$_ecmp_i" 0 || return 1
    _ecmp_i=$((_ecmp_i + 1))
  done
}

# open_streams PREFIX FROM TO: new streams PREFIXFROM .. PREFIXTO at once (each its own
# client port, so its own flow); when they have echoed, appends a line "ID PORT REALSERVER
# DIRECTORS" for each to $LAB_RUN/flows-PREFIX. A stream that never echoed is listed with
# realserver "none".
open_streams() {
  _ecmp_i=$2
  while [ "$_ecmp_i" -le "$3" ]; do
    start_stream "$1$_ecmp_i"
    _ecmp_i=$((_ecmp_i + 1))
  done
  wait_until 60 streams_echoed "$1" "$2" "$3"
  _ecmp_i=$2
  while [ "$_ecmp_i" -le "$3" ]; do
    # A session that never got through (its ssh timed out on a loaded machine, or met a
    # moment without a destination) has no flow to follow: said, and left out of the flows.
    if stream_connected "$1$_ecmp_i"; then
      echo "$1$_ecmp_i $(stream_port "$1$_ecmp_i") $(stream_host "$1$_ecmp_i")" \
        "$(directors_of "$1$_ecmp_i")" >>"$LAB_RUN/flows-$1"
    else
      echo "stream $1$_ecmp_i did not connect: $(tail -n 1 "$LAB_RUN/stream-$1$_ecmp_i.out")"
      stop_stream "$1$_ecmp_i"
    fi
    _ecmp_i=$((_ecmp_i + 1))
  done
}

# flows_cover PREFIX COLUMN WORD...: every WORD is in COLUMN (3 realserver, 4 directors) of
# some line of flows-PREFIX.
flows_cover() {
  _ecmp_f=$LAB_RUN/flows-$1
  _ecmp_c=$2
  shift 2
  for _ecmp_w in "$@"; do
    awk -v c="$_ecmp_c" -v w="$_ecmp_w" '$c == w { found = 1 } END { exit !found }' \
      "$_ecmp_f" || return 1
  done
}

# flows_all PREFIX COLUMN PATTERN: COLUMN of every line of flows-PREFIX matches PATTERN (awk).
flows_all() {
  awk -v c="$2" -v p="$3" '$c !~ p { bad = 1 } END { exit bad }' "$LAB_RUN/flows-$1"
}

# spread PREFIX DIRECTORS: opens streams 4 at a time until they cover both realservers and each
# director of DIRECTORS, 12 at most (the gateway hashes each flow, mh each connection: 12
# flows miss one of two only once in about 2000 runs); the flows are in flows-PREFIX.
spread() {
  rm -f "$LAB_RUN/flows-$1"
  for _ecmp_from in 1 5 9; do
    open_streams "$1" "$_ecmp_from" $((_ecmp_from + 3))
    # shellcheck disable=SC2086 # DIRECTORS is a list of words
    flows_cover "$1" 3 llc5 llc6 && flows_cover "$1" 4 $2 && break
  done
  sed 's/^/    flow| /' "$LAB_RUN/flows-$1"
}

# stop_streams PREFIX KEEP...: stops the streams of flows-PREFIX but the ones named in KEEP.
stop_streams() {
  _ecmp_p=$1
  shift
  while read -r _ecmp_id _ecmp_rest; do
    case " $* " in *" $_ecmp_id "*) ;; *) stop_stream "$_ecmp_id" ;; esac
  done <"$LAB_RUN/flows-$_ecmp_p"
}

# first_flow PREFIX DIRECTORS: the first stream of flows-PREFIX whose flow is on exactly
# DIRECTORS, or nothing.
first_flow() {
  awk -v d="$2" '$3 != "none" && $4 == d { print $1; exit }' "$LAB_RUN/flows-$1"
}

# count_flows PREFIX DIRECTORS: how many streams of flows-PREFIX went through DIRECTORS.
count_flows() {
  awk -v d="$2" '$4 == d { n++ } END { print n + 0 }' "$LAB_RUN/flows-$1"
}

# start_director_on LB LOG: lb-director on LB again (after a kill), output in LOG's log.
start_director_on() {
  start_bg "$1" "$2" lb-director --config "$HA_CONF/director-$1.toml" >/dev/null
}

# --- bring-up -------------------------------------------------------------------------------------

# ecmp_bring_up: both directors (each puts the VIP on its lo), then both agents; a result line
# for each step; returns non-zero when the topology did not come up.
ecmp_bring_up() {
  start_directors || return 1
  check vip-on-lo-llclb1 wait_until 30 vip_on_lo llclb1 || return 1
  check vip-on-lo-llclb2 wait_until 30 vip_on_lo llclb2 || return 1
  start_agents
}
