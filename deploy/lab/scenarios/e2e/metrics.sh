# Helpers for reading the daemons' Prometheus metrics in the lab (issue 11): a scrape with
# busybox nc inside a host's namespace, one sample's value, and promtool's verdict.
# Sourced after e2e/lib.sh (busybox sh).
# shellcheck shell=sh

DIRECTOR_METRICS_PORT=9770
AGENT_METRICS_PORT=9771

# scrape HOST PORT FILE: GET http://127.0.0.1:PORT/metrics inside HOST, the body into FILE;
# fails unless the answer is 200. Not busybox wget: the static busybox crashes in its lookup
# of the "http" service name (glibc's NSS cannot load into a static program).
scrape() {
  printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' |
    in_ns "$1" nc -w 10 127.0.0.1 "$2" >"$3.http" 2>/dev/null || return 1
  head -n 1 "$3.http" | grep -q '^HTTP/1\.[01] 200 ' || return 1
  awk 'body { print; next } { sub(/\r$/, "") } $0 == "" { body = 1 }' "$3.http" >"$3"
}

# metric FILE NAME [LABEL=VALUE]...: the value of the first sample of NAME whose labels include
# every LABEL="VALUE" (values without spaces); nothing when there is none.
metric() {
  _m_file=$1
  _m_name=$2
  shift 2
  awk -v name="$_m_name" -v want="$*" '
    BEGIN { n = split(want, w, " ") }
    /^#/ { next }
    {
      series = $1
      base = series
      sub(/\{.*/, "", base)
      if (base != name) next
      for (i = 1; i <= n; i++) {
        eq = index(w[i], "=")
        if (index(series, substr(w[i], 1, eq - 1) "=\"" substr(w[i], eq + 1) "\"") == 0) next
      }
      print $NF
      exit
    }' "$_m_file"
}

# promtool_ok NAME FILE: PASS when `promtool check metrics` accepts FILE.
promtool_ok() {
  if _m_out=$(promtool check metrics <"$2" 2>&1); then
    pass "$1"
  else
    fail "$1" "promtool check metrics: $_m_out"
    sed -e 's/LAB-RESULT/LAB_RESULT/g' -e 's/^/    metrics| /' "$2"
  fi
}

# service_stats: "Conns InPkts OutPkts InBytes OutBytes" of VIP:22, exact, from the kernel.
service_stats() {
  in_ns llclb1 ipvsadm -L -n --stats --exact -t "$VIP:22" |
    awk -v s="$VIP:22" '$1 == "TCP" && $2 == s { print $3, $4, $5, $6, $7 }'
}

# director_matches_ipvsadm FILE: scrapes the director into FILE; true when every destination's
# weight, ActiveConn and InActConn and the service's counters are what ipvsadm shows.
director_matches_ipvsadm() {
  _m_at=$1
  scrape llclb1 "$DIRECTOR_METRICS_PORT" "$_m_at" || return 1
  for _m_rip in "$RIP5" "$RIP6"; do
    _m_dest=$(dest "$_m_rip")
    [ -n "$_m_dest" ] || continue
    # shellcheck disable=SC2086 # FORWARD WEIGHT ACTIVECONN INACTCONN
    set -- $_m_dest
    metric_is "$_m_at" lb_destination_weight "$2" address="$_m_rip" || return 1
    metric_is "$_m_at" lb_destination_connections_active "$3" address="$_m_rip" || return 1
    metric_is "$_m_at" lb_destination_connections_inactive "$4" address="$_m_rip" || return 1
  done
  _m_stats=$(service_stats)
  [ -n "$_m_stats" ] || return 1
  # shellcheck disable=SC2086 # Conns InPkts OutPkts InBytes OutBytes
  set -- $_m_stats
  metric_is "$_m_at" lb_service_connections_total "$1" service=llc-ssh &&
    metric_is "$_m_at" lb_service_packets_total "$2" service=llc-ssh direction=in &&
    metric_is "$_m_at" lb_service_packets_total "$3" service=llc-ssh direction=out &&
    metric_is "$_m_at" lb_service_bytes_total "$4" service=llc-ssh direction=in &&
    metric_is "$_m_at" lb_service_bytes_total "$5" service=llc-ssh direction=out
}

# expect_matches_ipvsadm NAME FILE: PASS once the director's metrics agree with ipvsadm (the
# metrics are the last pass's read, at most a resync old), within 15 s.
expect_matches_ipvsadm() {
  if wait_until 15 director_matches_ipvsadm "$2"; then
    pass "$1"
  else
    fail "$1" "the director's metrics do not match ipvsadm -L -n --stats"
    in_ns llclb1 ipvsadm -L -n
    in_ns llclb1 ipvsadm -L -n --stats --exact
    grep -E '^lb_(destination|service)_' "$2" | sed 's/^/    metrics| /'
  fi
}

# metric_is FILE NAME VALUE [LABEL=VALUE]...: the sample has exactly VALUE.
metric_is() {
  _m_f=$1
  _m_n=$2
  _m_v=$3
  shift 3
  [ "$(metric "$_m_f" "$_m_n" "$@")" = "$_m_v" ]
}

# scraped_metric_is HOST PORT FILE NAME VALUE [LABEL=VALUE]...: scrapes, then metric_is.
scraped_metric_is() {
  _m_h=$1
  _m_p=$2
  _m_f=$3
  shift 3
  scrape "$_m_h" "$_m_p" "$_m_f" && metric_is "$_m_f" "$@"
}
