# Two directors for a scenario (busybox sh, sourced after e2e/lib.sh): llclb2 added beside
# llclb1, the configs of a deploy/ha folder (at /opt/lb/deploy-ha in the VM) with the lab's
# addresses put in, and the helpers on either director: tables, lbctl, roles, streams of
# echoes. e2e/ha.sh (keepalived, active/standby) and e2e/ecmp.sh (active-active behind a
# gateway) build on it.
# shellcheck shell=sh disable=SC2034 # HA_DEPLOY is for the files that source this one

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

# pair_director_config DIR LB: DIR's director-LB.toml for the lab, on stdout. The emulated
# CPU, shared with other VMs, takes seconds for an SSH banner now and then: probes that allow
# for it, so that the health of both tables changes only when sshd does.
pair_director_config() {
  lab_addresses "$1/director-$2.toml" |
    sed -e 's|^interval = "3s"|interval = "4s"|' -e 's|^timeout = "2s"|timeout = "3500ms"|' \
      -e 's|^fall = 2|fall = 3|'
}

# pair_steady FILE...: director configs with a tcp check (a connection to RIP:22) instead of
# sshd's banner, as steady_health_config does, and leases of 20 s instead of 6, for scenarios
# that need every realserver in both tables throughout: on a loaded machine sshd under
# emulation has taken over 3.5 s for its banner, and an agent's heartbeat (every third of the
# lease) has come over 10 s late; either is a weight 0 on one director, whose view then differs.
pair_steady() {
  sed -i -e 's/^type = "ssh"/type = "tcp"/' -e 's/^lease_ttl = "6s"/lease_ttl = "20s"/' "$@"
}

# pair_agent_config DIR RS: DIR's agent.toml (written for llc5) for realserver RS, on stdout.
pair_agent_config() {
  lab_addresses "$1/agent.toml" |
    sed -e "s/\"llc5\"/\"$2\"/" -e "s/10\.0\.0\.11/$(rip_of "$2")/" -e "s/llc5\./$2./g"
}

# pair_configs DIR: DIR's director-llclb1.toml, director-llclb2.toml and agent.toml into
# $HA_CONF (director-LB.toml, agent-llc5.toml, agent-llc6.toml) for the lab.
pair_configs() {
  for _pair_lb in llclb1 llclb2; do
    # Both directors share the VM's files: each its own state and admin socket.
    pair_director_config "$1" "$_pair_lb" |
      sed -e "s|\"/var/lib/lb-director\"|\"/var/lib/lb-director-$_pair_lb\"|" \
        -e "s|\"/run/lb-director/admin.sock\"|\"/run/lb-director-$_pair_lb/admin.sock\"|" \
        >"$HA_CONF/director-$_pair_lb.toml"
    mkdir -p "/run/lb-director-$_pair_lb"
  done
  for _pair_rs in llc5 llc6; do
    pair_agent_config "$1" "$_pair_rs" >"$HA_CONF/agent-$_pair_rs.toml"
  done
}

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

# role_of LB: ACTIVE, STANDBY or ECMP from the first line of LB's `lbctl status`.
role_of() {
  lbctl_on "$1" status 2>/dev/null | awk 'NR == 1 && $1 == "Director" { print $2 }'
}

roles_are() {
  [ "$(role_of llclb1)" = "$1" ] && [ "$(role_of llclb2)" = "$2" ]
}

# established_on LB N: at least N ESTABLISHED connections in LB's table (synced ones count).
established_on() {
  [ "$(in_ns "$1" ipvsadm -L -n -c | grep -c ESTABLISHED)" -ge "$2" ]
}

# alive_on LB: both leases alive in LB's lbctl status.
alive_on() {
  [ "$(lbctl_on "$1" status | grep -c ' alive ')" = 2 ]
}

# away_for SECS: SECS have passed since $away (the caller's).
# shellcheck disable=SC2154
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

# weights_on_both "FORWARD WEIGHT" "FORWARD WEIGHT": llc5 and llc6 so on both directors.
weights_on_both() {
  both_weights llclb1 "$1" "$2" && both_weights llclb2 "$1" "$2"
}

all_registered() {
  weights_on_both "Route 1" "Route 1"
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
# echoes each with its name (and the client's port, which names the flow in the directors'
# connection tables), and the client timestamps each echo as it arrives: lines
# "UPTIME HOST N PORT".
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
    ssh "root@$VIP" 'h=$(hostname); set -- $SSH_CLIENT; while read -r l; do echo "$h $l $2"; done' 2>&1 |
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

# stream_port ID: the client's TCP port of stream ID's connection.
stream_port() {
  head -n 1 "$LAB_RUN/stream-$1.out" 2>/dev/null | awk '{ print $4 }'
}

# stop_stream ID: the client stops sending; the session ends.
stop_stream() {
  : >"$LAB_RUN/stream-$1.stop"
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

# --- bring-up -------------------------------------------------------------------------------------

# start_directors: lb-director on llclb1 and llclb2 from $HA_CONF; a FAIL bring-up and status 1
# when one does not listen within 60 s.
start_directors() {
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
}

# start_agents: lb-agent on llc5 and llc6 from $HA_CONF; PASS bring-up once both are weight 1
# in both tables (FAIL and status 1 after 120 s: with other VMs and builds on the two cores,
# registering with both directors has taken 84 s, iptables in the agents over 3 s a call).
start_agents() {
  t0=$(now)
  for rs in llc5 llc6; do
    start_bg "$rs" "agent-$rs" lb-agent --config "$HA_CONF/agent-$rs.toml" >/dev/null
  done
  if wait_until 120 all_registered; then
    echo "llc5 and llc6 in both tables $(elapsed_since "$t0") s after their agents started"
    pass bring-up
  else
    fail bring-up "after 120 s: llclb1 '$(dest_on llclb1 "$RIP5")' '$(dest_on llclb1 "$RIP6")', llclb2 '$(dest_on llclb2 "$RIP5")' '$(dest_on llclb2 "$RIP6")'"
    return 1
  fi
}
