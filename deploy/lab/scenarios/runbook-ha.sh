# The runbook's "Update of an HA pair" (docs/operations.md), executed (issue 14) on the pair of
# issue 12, installed the way a site runs it: deploy/ha's files with the lab's addresses in
# each director's /etc/lb and /etc/keepalived, both directors' lb-director and keepalived and
# both agents as units of the lab's systemctl (keepalived's track script calls it too), each
# director with its own /var/lib/lb-director and /run/lb-director. Then the section's commands
# run on the hosts it names, in order, with its hidden checks (runbook/lib.sh), while an ssh
# session through the VIP sends a line every 100 ms (e2e/pair.sh's stream).
# About 1 minute on a quiet machine, 2 beside two other VMs and a build (load 6 to 8).
# lab-timeout: 600

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
# shellcheck source=runbook/lib.sh
. ./runbook/lib.sh
# llclb2, the pair's helpers (tables, roles, streams) and keepalived's (vip_on, daemons_on).
# shellcheck source=e2e/ha.sh
. ./e2e/ha.sh
trap logs_if_failed EXIT

runbook_install_paths
# keepalived's track script runs systemctl by the path in deploy/ha's keepalived.conf.
ln -s "$RUNBOOK_SHIMS/systemctl" /bin/systemctl
# deploy/ha's directors keep their state in /var/lib/lb-director and their admin socket in
# /run/lb-director. Both directors share the VM's files and `ip netns exec` binds only
# /etc/netns/HOST/* over /etc/*, so both paths link into /etc/lab-dirs, which each director's
# namespace sees as its own /etc/netns/HOST/lab-dirs.
mkdir -p /etc/lab-dirs /etc/keepalived /var/lib
ln -s /etc/lab-dirs/run /run/lb-director
ln -s /etc/lab-dirs/lib /var/lib/lb-director
for lb in llclb1 llclb2; do
  dirs=/etc/netns/$lb/lab-dirs
  mkdir -p "$dirs/run" "$dirs/lib" "/etc/netns/$lb/keepalived"
  # pair.sh's helpers (lbctl_on) reach the director's socket by this name.
  ln -s "$dirs/run" "/run/lb-director-$lb"
  pair_director_config "$HA_DEPLOY" "$lb" >"$LAB_RUN/director-$lb.toml"
  # The whole section checks that the two views agree.
  pair_steady "$LAB_RUN/director-$lb.toml"
  install_host "$lb" "$LAB_RUN/director-$lb.toml" director.toml
  echo keepalived >>"$LAB_RUN/units/$lb/packages"
  lab_addresses "$HA_DEPLOY/keepalived-$lb.conf" >"/etc/netns/$lb/keepalived/keepalived.conf"
done
for rs in llc5 llc6; do
  pair_agent_config "$HA_DEPLOY" "$rs" >"$LAB_RUN/agent-$rs.toml"
  install_host "$rs" "$LAB_RUN/agent-$rs.toml" agent.toml
done
check configs-valid on llclb1 lb-director --check --config /etc/lb/director.toml

# As a boot orders them (deploy/ha/keepalived.service.d: keepalived after lb-director), with
# llclb1's keepalived first so that it is the first MASTER (both are BACKUP with nopreempt).
if on llclb1 systemctl enable --now lb-director && on llclb2 systemctl enable --now lb-director &&
  on llc5 systemctl enable --now lb-agent && on llc6 systemctl enable --now lb-agent &&
  wait_until 120 all_registered &&
  on llclb1 systemctl enable --now keepalived && wait_until 30 vip_on llclb1 &&
  on llclb2 systemctl enable --now keepalived &&
  wait_until 20 daemons_on llclb1 && wait_until 20 daemons_on llclb2 &&
  wait_until 30 tables_agree && wait_until 20 roles_are ACTIVE STANDBY; then
  pass runbook-ha-lab-installed
else
  fail runbook-ha-lab-installed "the pair did not come up as units: VIP on llclb1 $(vip_on llclb1 && echo yes || echo no), roles '$(role_of llclb1)' '$(role_of llclb2)'"
  show_log keepalived-llclb1
  exit 1
fi

# --- for the section's hidden blocks -------------------------------------------------------------

# vip_only_on LB OTHER: keepalived has the VIP on LB and not on OTHER.
vip_only_on() {
  vip_on "$1" && no_vip_on "$2"
}

# output_has_sync_daemons: the last step's `ipvsadm -L --daemon` lists both sync daemons.
output_has_sync_daemons() {
  output_has 'master sync daemon' && output_has 'backup sync daemon'
}

runbook_run /opt/lb/docs/operations.md only "Update of an HA pair"
# keepalived's log says whether the track script ran (and was not refused by its script security).
grep -E 'lb_director|SECURITY' /var/log/lab/keepalived-llclb1.log | tail -n 5 | sed 's/^/    keepalived-llclb1| /'
