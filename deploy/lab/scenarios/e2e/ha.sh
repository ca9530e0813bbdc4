# The two-director topology of issue 12 with keepalived for a scenario (busybox sh, sourced
# after e2e/lib.sh): e2e/pair.sh's llclb2 and helpers, deploy/ha's own configs (at
# /opt/lb/deploy-ha in the VM) with the lab's addresses put in, and keepalived's parts.
# e2e-ha tests with it, demo-ha narrates with it, runbook-ha uses its keepalived helpers.
# Sourcing it builds the topology; ha_configs writes the configs, ha_bring_up starts both
# directors, keepalived (llclb1 first) and both agents.

# shellcheck source=e2e/pair.sh
. ./e2e/pair.sh

# ha_configs: deploy/ha's files for the lab into $HA_CONF, keepalived's without systemd: the
# track script (lb-director's health) is a director-is-alive check on this director's PID
# file instead of systemctl's.
ha_configs() {
  pair_configs "$HA_DEPLOY"
  for lb in llclb1 llclb2; do
    lab_addresses "$HA_DEPLOY/keepalived-$lb.conf" |
      sed -e "s|\"/bin/systemctl is-active --quiet lb-director.service\"|\"/opt/lb/scenarios/e2e-ha/director-alive $lb\"|" \
        >"$HA_CONF/keepalived-$lb.conf"
  done
  check configs-valid lb-director --check --config "$HA_CONF/director-llclb1.toml"
}

# --- keepalived's side ----------------------------------------------------------------------------

# vip_on LB: keepalived has put the VIP on LB's eth0.
vip_on() {
  in_ns "$1" ip -o addr show dev eth0 | grep -q "inet $VIP/32"
}

no_vip_on() {
  ! vip_on "$1"
}

# daemons_on LB: both sync daemons run on LB (ipvsadm -L --daemon).
daemons_on() {
  _ha_d=$(in_ns "$1" ipvsadm -L --daemon)
  case $_ha_d in *"master sync daemon"*"syncid=100"*) ;; *) return 1 ;; esac
  case $_ha_d in *"backup sync daemon"*"syncid=100"*) ;; *) return 1 ;; esac
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
  ha_configs
  start_directors || return 1
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
  start_agents || return 1
  check sync-daemons-llclb1 wait_until 20 daemons_on llclb1
  check sync-daemons-llclb2 wait_until 20 daemons_on llclb2
  check tables-agree-registered wait_until 20 tables_agree
  expect_roles roles-at-start ACTIVE STANDBY
  check vip-not-on-llclb2 no_vip_on llclb2
}
