# Demo chapter: the director's Prometheus metrics, the few lines that matter, with a session
# open on llc5 (the next chapter drains it); they agree with ipvsadm (sourced by demo.sh).
# shellcheck shell=sh

chapter "Metrics: what Prometheus scrapes from the director"
# Both in the table at weight 1 first: on a starved VM a lease has expired and come back.
wait_until 60 both_registered
say "A user logs in and stays (a long-lived session, on llc5):"
open_session_on llc5
say "  the session is on: ${session_host:-nothing}"
llc5_has_the_session() {
  [ "$(active_conn "$RIP5")" = 1 ]
}
wait_until 10 llc5_has_the_session
show_sh llclb1 "curl -s 127.0.0.1:$DIRECTOR_METRICS_PORT/metrics | grep -E '^lb_destination_(weight|connections_active|healthy)\\{service=\"llc-ssh\"'"
say "Weight and ActiveConn are the kernel's (ipvsadm -L -n), healthy the checks' verdict;"
say "lb_destination_desired_weight, _drained, lb_realserver_lease_alive and the reconcile"
say "series tell why a weight is what it is (README, Metrics; docs/operations.md)."
verdict metrics-match-ipvsadm wait_until 15 director_matches_ipvsadm "$LAB_RUN/demo-metrics"
verdict metrics-show-the-session metric_is "$LAB_RUN/demo-metrics" lb_destination_connections_active 1 \
  service=llc-ssh realserver=llc5
verdict metrics-both-healthy metric_is "$LAB_RUN/demo-metrics" lb_destination_healthy 1 \
  service=llc-ssh realserver=llc6
