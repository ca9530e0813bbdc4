# The runbook, docs/operations.md, executed (issue 14): the lab is installed the way a site runs
# lb (binaries at the packages' paths, /etc/lb of each host its own, the CA on an admin host,
# the daemons as "units" of the lab's systemctl), then every command of the runbook runs on the
# host it names, in order, with the hidden checks the runbook carries (runbook/lib.sh). A
# renamed flag, a changed output or a procedure that no longer works fails here. The section
# on an HA pair needs two directors and keepalived: runbook-ha runs it.
# About 2 minutes beside a build, 4.5 with four VMs and builds sharing two cores.
# lab-timeout: 600

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
# shellcheck source=e2e/metrics.sh
. ./e2e/metrics.sh
# shellcheck source=runbook/lib.sh
. ./runbook/lib.sh
trap logs_if_failed EXIT

runbook_install_paths
# The seed's service with a health check.
steady_health_config "$LAB_RUN/director.toml"
install_host llclb1 "$LAB_RUN/director.toml" director.toml
install_host llc5 "$E2E_CONF/agent-llc5.toml" agent.toml
install_host llc6 "$E2E_CONF/agent-llc6.toml" agent.toml

# Started as units, so that the runbook's systemctl finds them; every sshd again, so that it
# sees its host's /etc/lb (an scp to /etc/lb/tls/ lands there).
if on llclb1 systemctl enable --now ssh lb-director &&
  on llc5 systemctl restart ssh && on llc5 systemctl enable ssh lb-agent &&
  on llc6 systemctl restart ssh && on llc6 systemctl enable ssh lb-agent &&
  on llc5 systemctl start lb-agent && on llc6 systemctl start lb-agent &&
  wait_until 60 both_registered; then
  pass runbook-lab-installed
else
  fail runbook-lab-installed "the director and both agents did not come up as units"
  lbctl_op status
  exit 1
fi

runbook_run /opt/lb/docs/operations.md except "Update of an HA pair"
