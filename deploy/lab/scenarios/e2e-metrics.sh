# End to end, issue 11: the daemons' Prometheus metrics against the real kernel. Both daemons
# are scraped inside the VM (busybox wget on their loopback ports) after a drain, a health
# failure (a dead sshd behind a live agent) and an agent crash; the director's weights,
# ActiveConn, InActConn and the service's counters equal `ipvsadm -L -n --stats --exact`, and
# `promtool check metrics` accepts every scrape.

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
# shellcheck source=e2e/metrics.sh
. ./e2e/metrics.sh
trap logs_if_failed EXIT

DIRECTOR_CONFIG=$E2E_CONF/director-health.toml
M=$LAB_RUN/metrics
mkdir -p "$M"

bring_up

# --- at start: every endpoint answers, promtool accepts it --------------------------------------
check director-scraped scrape llclb1 "$DIRECTOR_METRICS_PORT" "$M/director-start"
promtool_ok director-promtool-at-start "$M/director-start"
for host in llc5 llc6; do
  check "agent-$host-registered" wait_until 10 \
    scraped_metric_is "$host" "$AGENT_METRICS_PORT" "$M/agent-$host" lb_agent_registered 1
  check "agent-$host-rule-present" metric_is "$M/agent-$host" lb_agent_rule_present 1 \
    service=llc-ssh vip="$VIP" port=22 protocol=tcp
  promtool_ok "agent-$host-promtool" "$M/agent-$host"
done
check lease-alive-at-start metric_is "$M/director-start" lb_realserver_lease_alive 1 realserver=llc5
check healthy-at-start wait_until 15 \
  scraped_metric_is llclb1 "$DIRECTOR_METRICS_PORT" "$M/director-start" lb_destination_healthy 1 realserver=llc6

# --- a drain with a session open ----------------------------------------------------------------
busy_has_the_session() {
  test "$(active_conn "$busy_rip")" = 1
}
open_busy_session
check session-is-active-conn wait_until 10 busy_has_the_session
expect_lbctl drain-busy drain "$busy"
expect_dest drained-weight-0 10 "$busy_rip" "Route 0"
expect_matches_ipvsadm drain-matches-ipvsadm "$M/director-drain"
check drain-shown-drained metric_is "$M/director-drain" lb_destination_drained 1 realserver="$busy"
check drain-desired-0 metric_is "$M/director-drain" lb_destination_desired_weight 0 realserver="$busy"
check drain-session-active metric_is "$M/director-drain" lb_destination_connections_active 1 realserver="$busy"
check drain-idle-not-drained metric_is "$M/director-drain" lb_destination_drained 0 realserver="$idle"
promtool_ok director-promtool-after-drain "$M/director-drain"

# --- a health failure: the idle realserver's sshd dies, its agent lives --------------------------
victim=$idle
kill -TERM "$(cat "$LAB_RUN/sshd-$victim.pid")"
# fall (2) x interval (3 s) plus a pass, with room for a loaded host.
expect_dest dead-sshd-weight-0 30 "$(rip_of "$victim")" "Route 0"
check dead-sshd-unhealthy wait_until 10 \
  scraped_metric_is llclb1 "$DIRECTOR_METRICS_PORT" "$M/director-health" lb_destination_healthy 0 realserver="$victim"
expect_matches_ipvsadm health-matches-ipvsadm "$M/director-health"
check dead-sshd-desired-0 metric_is "$M/director-health" lb_destination_desired_weight 0 realserver="$victim"
check dead-sshd-lease-alive metric_is "$M/director-health" lb_realserver_lease_alive 1 realserver="$victim"
# The director's probe or the agent's self-check, whichever saw it first (both, soon after).
downs() {
  probe=$(metric "$M/director-health" lb_health_transitions_total direction=down source=probe)
  agent=$(metric "$M/director-health" lb_health_transitions_total direction=down source=agent)
  echo $((${probe:-0} + ${agent:-0}))
}
check down-transition-counted test "$(downs)" -ge 1
promtool_ok director-promtool-after-health "$M/director-health"

# --- an agent crash: the drained realserver's agent is killed -----------------------------------
crash_pid=$(agent_pid_of "$busy")
kill -KILL "$crash_pid"
wait_exit "$crash_pid" 10
check agent-crash-lease-dead wait_until 25 \
  scraped_metric_is llclb1 "$DIRECTOR_METRICS_PORT" "$M/director-crash" lb_realserver_lease_alive 0 realserver="$busy"
expect_matches_ipvsadm crash-matches-ipvsadm "$M/director-crash"
# Its metrics went with it; the other agent still answers and is still registered.
if scrape "$busy" "$AGENT_METRICS_PORT" "$M/agent-dead" 2>/dev/null; then
  fail crashed-agent-not-served "the killed agent's port still answers"
else
  pass crashed-agent-not-served
fi
check other-agent-registered scraped_metric_is "$victim" "$AGENT_METRICS_PORT" "$M/agent-$victim" \
  lb_agent_registered 1
check other-agent-heartbeats test -n "$(metric "$M/agent-$victim" lb_agent_last_heartbeat_timestamp_seconds)"
ops=$(metric "$M/director-crash" lb_ipvs_ops_total op=edit_destination result=ok)
check ipvs-edits-counted test "${ops%.*}" -ge 2
promtool_ok director-promtool-after-crash "$M/director-crash"
promtool_ok agent-promtool-after-crash "$M/agent-$victim"
expect_session_answers open-session-survives still-there
