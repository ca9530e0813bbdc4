# The two-director topology of issue 12 for a scenario (busybox sh, sourced after
# e2e/lib.sh): llclb2 added, deploy/ha's own configs (at /opt/lb/deploy-ha in the VM) with
# the lab's addresses put in, and the helpers on either director. e2e-ha tests with it,
# demo-ha narrates with it. Sourcing it builds the topology and writes the configs;
# ha_bring_up starts both directors, keepalived (llclb1 first) and both agents.

add_second_director || { fail topology "no llclb2"; exit 1; }
[ -f "$LAB_PKI/llclb2.pem" ] || lbctl certs issue "$LAB_PKI" llclb2 --ip "$DIP2" >/dev/null

HA_CONF=$LAB_RUN/ha
mkdir -p "$HA_CONF"
HA_DEPLOY=/opt/lb/deploy-ha

# lab_addresses: deploy/ha's addresses (the seed's network) replaced by the lab's.
lab_addresses() {
  sed -e 's/129\.129\.190\.54/10.0.0.100/g' -e 's/129\.129\.190\.53/10.0.0.2/g' \
    -e 's/129\.129\.190\.52/10.0.0.3/g' -e 's/129\.129\.190\.175/10.0.0.11/g' \
    -e 's/129\.129\.190\.176/10.0.0.12/g' "$@"
}

for lb in llclb1 llclb2; do
  # Both directors share the VM's files: each its own state and admin socket.
  # The emulated CPU, shared with other VMs, takes seconds for an SSH banner now and then:
  # probes that allow for it, so that the health of both tables changes only when sshd does.
  lab_addresses "$HA_DEPLOY/director-$lb.toml" |
    sed -e "s|\"/var/lib/lb-director\"|\"/var/lib/lb-director-$lb\"|" \
      -e "s|\"/run/lb-director/admin.sock\"|\"/run/lb-director-$lb/admin.sock\"|" \
      -e 's|^interval = "3s"|interval = "4s"|' -e 's|^timeout = "2s"|timeout = "3500ms"|' \
      -e 's|^fall = 2|fall = 3|' \
      >"$HA_CONF/director-$lb.toml"
  mkdir -p "/run/lb-director-$lb"
  # No systemd in the lab: the track script (lb-director's health) is a director-is-alive
  # check on this director's PID file instead of systemctl's.
  lab_addresses "$HA_DEPLOY/keepalived-$lb.conf" |
    sed -e "s|\"/bin/systemctl is-active --quiet lb-director.service\"|\"/opt/lb/scenarios/e2e-ha/director-alive $lb\"|" \
      >"$HA_CONF/keepalived-$lb.conf"
done
for rs in llc5 llc6; do
  lab_addresses "$HA_DEPLOY/agent.toml" |
    sed -e "s/\"llc5\"/\"$rs\"/" -e "s/10\.0\.0\.11/$(rip_of "$rs")/" -e "s/llc5\./$rs./g" \
      >"$HA_CONF/agent-$rs.toml"
done
check configs-valid lb-director --check --config "$HA_CONF/director-llclb1.toml"

# --- helpers on either director -----------------------------------------------------------------

# save_of LB: `ipvsadm -S -n` on LB, sorted.
save_of() {
  in_ns "$1" ipvsadm -S -n | sort
}

tables_agree() {
  [ "$(save_of llclb1)" = "$(save_of llclb2)" ]
}

# lbctl_on LB ARGS...: lbctl through LB's admin socket.
lbctl_on() {
  _ha_lb=$1
  shift
  in_ns "$_ha_lb" lbctl --socket "/run/lb-director-$_ha_lb/admin.sock" "$@"
}

# role_of LB: ACTIVE or STANDBY from the first line of LB's `lbctl status`.
role_of() {
  lbctl_on "$1" status 2>/dev/null | awk 'NR == 1 && $1 == "Director" { print $2 }'
}

roles_are() {
  [ "$(role_of llclb1)" = "$1" ] && [ "$(role_of llclb2)" = "$2" ]
}

vip_on() {
  in_ns "$1" ip -o addr show dev eth0 | grep -q "inet $VIP/32"
}

no_vip_on() {
  ! vip_on "$1"
}

# established_on LB N: at least N ESTABLISHED connections in LB's table (synced ones count).
established_on() {
  [ "$(in_ns "$1" ipvsadm -L -n -c | grep -c ESTABLISHED)" -ge "$2" ]
}

# alive_on LB: both leases alive in LB's lbctl status.
alive_on() {
  [ "$(lbctl_on "$1" status | grep -c ' alive ')" = 2 ]
}

# away_for SECS: SECS have passed since $away.
away_for() {
  awk -v t0="$away" -v t1="$(now)" -v s="$1" 'BEGIN { exit !(t1 - t0 >= s) }'
}

# dest_on LB RIP: "FORWARD WEIGHT ..." of RIP:22 on LB.
dest_on() {
  in_ns "$1" ipvsadm -L -n -t "$VIP:22" 2>/dev/null |
    awk -v d="$2:22" '$1 == "->" && $2 == d { print $3, $4 }'
}

# has_dest_on LB RIP "FORWARD WEIGHT": RIP is so on LB.
has_dest_on() {
  [ "$(dest_on "$1" "$2")" = "$3" ]
}

# both_weights LB "FORWARD WEIGHT" "FORWARD WEIGHT": llc5 and llc6 as given on LB.
both_weights() {
  [ "$(dest_on "$1" "$RIP5")" = "$2" ] && [ "$(dest_on "$1" "$RIP6")" = "$3" ]
}

all_registered() {
  both_weights llclb1 "Route 1" "Route 1" && both_weights llclb2 "Route 1" "Route 1"
}

# daemons_on LB: both sync daemons run on LB (ipvsadm -L --daemon).
daemons_on() {
  _ha_d=$(in_ns "$1" ipvsadm -L --daemon)
  case $_ha_d in *"master sync daemon"*"syncid=100"*) ;; *) return 1 ;; esac
  case $_ha_d in *"backup sync daemon"*"syncid=100"*) ;; *) return 1 ;; esac
}

# expect_roles NAME LB1 LB2
expect_roles() {
  if wait_until 20 roles_are "$2" "$3"; then
    pass "$1"
  else
    fail "$1" "lbctl status says llclb1 '$(role_of llclb1)', llclb2 '$(role_of llclb2)' (want $2, $3)"
  fi
}

# The stream: the client sends a numbered line every 100 ms through the VIP; the realserver
# echoes each with its name, and the client timestamps each echo as it arrives (uptime, s).
# start_stream ID
# shellcheck disable=SC2016 # the remote loop is expanded by the realserver's shell
start_stream() {
  rm -f "$LAB_RUN/stream-$1.out" "$LAB_RUN/stream-$1.stop"
  (
    exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
    _ha_i=0
    while [ ! -e "$LAB_RUN/stream-$1.stop" ]; do
      _ha_i=$((_ha_i + 1))
      echo "$_ha_i"
      sleep 0.1
    done
  ) | nsenter --uts="$LAB_RUN/uts/client" /sbin/ip netns exec client \
    ssh "root@$VIP" 'h=$(hostname); while read -r l; do echo "$h $l"; done' 2>&1 |
    while read -r _ha_host _ha_n; do
      # /proc/uptime by the shell's own read (10 ms steps): a process per line (date) falls
      # behind under emulation and would stamp a backlog late, hiding the gap.
      read -r _ha_up _ha_idle </proc/uptime
      echo "$_ha_up $_ha_host $_ha_n"
    done >"$LAB_RUN/stream-$1.out" &
}

# stream_host ID: the host that echoed the last line.
stream_host() {
  tail -n 1 "$LAB_RUN/stream-$1.out" 2>/dev/null | awk '{ print $2 }'
}

# stream_count ID
stream_count() {
  grep -c . "$LAB_RUN/stream-$1.out" 2>/dev/null || echo 0
}

# stream_moves ID N: more than N echoes arrived by now.
stream_moves() {
  [ "$(stream_count "$1")" -gt "$2" ]
}

# stream_gap ID FROM: the largest gap (ms) between two echoes from line FROM on.
stream_gap() {
  awk -v from="$2" 'NR > from { if (last && $1 - last > gap) gap = $1 - last; last = $1 }
    END { printf "%d\n", gap * 1000 }' "$LAB_RUN/stream-$1.out"
}

# expect_stream NAME ID HOST: the stream ID still answers, from HOST.
expect_stream() {
  _ha_n=$(stream_count "$2")
  if wait_until 30 stream_moves "$2" "$((_ha_n + 5))" && [ "$(stream_host "$2")" = "$3" ]; then
    pass "$1"
  else
    fail "$1" "stream $2: $(stream_count "$2") echoes, last from '$(stream_host "$2")' (want $3)"
    tail -n 3 "$LAB_RUN/stream-$2.out" | sed 's/^/    stream| /'
  fi
}

# link LB up|down: LB's eth0, the closest thing to a dead host (keepalived's SIGKILL would
# leave the VIP configured).
link() {
  ip -n "$1" link set eth0 "$2"
}

# expect_vip_moves NAME FROM TO: FROM's link goes down; PASS once the VIP is on TO.
expect_vip_moves() {
  link "$2" down
  _ha_t0=$(now)
  if wait_until 30 vip_on "$3"; then
    pass "$1"
    echo "the VIP is on $3 $(elapsed_since "$_ha_t0") s after $2's link went down"
  else
    fail "$1" "not on $3 30 s after $2's link went down"
    show_log "keepalived-$3"
  fi
}

# sample_table LB: `ipvsadm -S -n` on LB into $LAB_RUN/samples-LB/N every 0.5 s until
# $LAB_RUN/samples-LB/stop exists.
sample_table() {
  rm -rf "$LAB_RUN/samples-$1"
  mkdir -p "$LAB_RUN/samples-$1"
  (
    exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
    _ha_i=0
    while [ ! -e "$LAB_RUN/samples-$1/stop" ]; do
      save_of "$1" >"$LAB_RUN/samples-$1/$_ha_i"
      _ha_i=$((_ha_i + 1))
      sleep 0.5
    done
  ) &
}

# start_keepalived LB: VRRP only, in the foreground, logging to its log (-l) and not to
# syslog (-G: with no syslog daemon in the VM, syslog writes to the console, which would cut
# into result lines); pid files of its own (start_bg writes $LAB_RUN/NAME.pid, which
# keepalived would take for a running copy of itself).
start_keepalived() {
  mkdir -p "$LAB_RUN/keepalived"
  start_bg "$1" "keepalived-$1" keepalived -n -l -G -P -f "$HA_CONF/keepalived-$1.conf" \
    -p "$LAB_RUN/keepalived/$1.pid" -r "$LAB_RUN/keepalived/vrrp-$1.pid" >/dev/null
}

# --- bring-up -------------------------------------------------------------------------------------

# ha_bring_up: both directors, keepalived on llclb1 then llclb2, the agents; a result line for
# each step; returns non-zero when the topology did not come up.
ha_bring_up() {
  for lb in llclb1 llclb2; do
    start_bg "$lb" "director-$lb" lb-director --config "$HA_CONF/director-$lb.toml" >/dev/null
  done
  for lb in llclb1 llclb2; do
    if ! wait_until 60 listening "$lb" 7700; then
      fail bring-up "lb-director on $lb does not listen after 60 s"
      show_log "director-$lb"
      return 1
    fi
  done
  check standby-adds-no-vip no_vip_on llclb1
  # keepalived on llclb1 first, so it is the first MASTER (both are BACKUP with nopreempt).
  start_keepalived llclb1
  if ! wait_until 30 vip_on llclb1; then
    fail vip-on-llclb1 "keepalived on llclb1 did not take the VIP within 30 s"
    show_log keepalived-llclb1
    return 1
  fi
  pass vip-on-llclb1
  start_keepalived llclb2
  t0=$(now)
  for rs in llc5 llc6; do
    start_bg "$rs" "agent-$rs" lb-agent --config "$HA_CONF/agent-$rs.toml" >/dev/null
  done
  if wait_until 60 all_registered; then
    echo "llc5 and llc6 in both tables $(elapsed_since "$t0") s after their agents started"
    pass bring-up
  else
    fail bring-up "after 60 s: llclb1 '$(dest_on llclb1 "$RIP5")' '$(dest_on llclb1 "$RIP6")', llclb2 '$(dest_on llclb2 "$RIP5")' '$(dest_on llclb2 "$RIP6")'"
    return 1
  fi
  check sync-daemons-llclb1 wait_until 20 daemons_on llclb1
  check sync-daemons-llclb2 wait_until 20 daemons_on llclb2
  check tables-agree-registered wait_until 20 tables_agree
  expect_roles roles-at-start ACTIVE STANDBY
  check vip-not-on-llclb2 no_vip_on llclb2
}
