# End to end, issue 10: reloads by SIGHUP, on one boot. (1) The director adds a second service
# (llc-alt, a second VIP) and the agents join it after their own reload, while the first
# service's weights never change. (2) The director retires llc-alt while an ssh session on it is
# open: weight 0 at once, the service and its VIP stay while the session lives, then go.
# (3) Refused reloads (bad files) leave everything running; a good one after them works.
# (4) Certificate rotation by reload: new connections see the new certificate, leases live on.
# (5) SIGHUP to an agent: a weight change reaches the kernel with no 0 in between; a bad
# agent.toml is refused and the lease stays alive.

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
trap logs_if_failed EXIT

VIP2=10.0.0.101
# The configs live where this scenario can rewrite them; bring_up and start_agent read them.
E2E_CONF=$LAB_RUN/conf
mkdir -p "$E2E_CONF"

# write_director ALT CERT [TOPLINE]: the lab director's config, written atomically (a reload
# never reads half a file): llc-ssh, plus llc-alt on VIP2 when ALT is "alt"; the director's
# certificate CERT; TOPLINE added among the top-level keys. [timeouts] tcp_fin is $TCP_FIN
# (2 s, so that a closed session leaves InActConn quickly).
write_director() {
  {
    cat <<EOF
listen = "$DIP:7700"
state_dir = "/var/lib/lb-director"
lease_ttl = "6s"
resync_interval = "1s"
admins = ["ops"]
${3:-}

[timeouts]
tcp = 259200
tcp_fin = ${TCP_FIN:-2}
udp = 0

[[service]]
name = "llc-ssh"
vip = "$VIP"
port = ${PORT:-22}
protocol = "tcp"
scheduler = "rr"
forward = "dr"
interface = "eth0"
EOF
    if [ "$1" = alt ]; then
      alt_service_toml
    fi
    cat <<EOF

[tls]
ca = "$LAB_PKI/ca.pem"
cert = "$LAB_PKI/$2.pem"
key = "$LAB_PKI/$2.key"

[[realserver]]
name = "llc5"
address = "$RIP5"

[[realserver]]
name = "llc6"
address = "$RIP6"
EOF
  } >"$E2E_CONF/director.toml.new"
  mv "$E2E_CONF/director.toml.new" "$E2E_CONF/director.toml"
}

# write_agent HOST WEIGHT [ALT] [TOPLINE]: HOST's agent.toml: llc-ssh at WEIGHT, llc-alt (weight
# 1) too when ALT is "alt".
write_agent() {
  {
    cat <<EOF
director = "https://$DIP:7700"
address = "$(rip_of "$1")"
${4:-}

[[service]]
name = "llc-ssh"
weight = $2
EOF
    if [ "${3:-}" = alt ]; then
      printf '\n[[service]]\nname = "llc-alt"\nweight = 1\n'
    fi
    cat <<EOF

[tls]
ca = "$LAB_PKI/ca.pem"
cert = "$LAB_PKI/$1.pem"
key = "$LAB_PKI/$1.key"
EOF
  } >"$E2E_CONF/agent-$1.toml.new"
  mv "$E2E_CONF/agent-$1.toml.new" "$E2E_CONF/agent-$1.toml"
}

# reload_director NAME: SIGHUP, then waits until the director logs the outcome; PASS NAME when
# it says "reloaded" (or, with EXPECT=refused, "reload refused").
reload_director() {
  _r_ok=$(log_count director 'reloaded')
  _r_no=$(log_count director 'reload refused')
  _r_t0=$(now)
  kill -HUP "$director_pid"
  if ! wait_until 30 reload_answered director "$_r_ok" "$_r_no"; then
    fail "$1" "no reload outcome in the director's log 30 s after SIGHUP"
    return 1
  fi
  echo "$1: the director answered the reload after $(elapsed_since "$_r_t0") s"
  if [ "${EXPECT:-reloaded}" = refused ]; then
    check "$1" log_count_above director 'reload refused' "$_r_no"
  else
    check "$1" log_count_above director 'reloaded' "$_r_ok"
  fi
}

# reload_agent NAME HOST: the same for HOST's agent.
reload_agent() {
  _r_log=agent-$2
  _r_ok=$(log_count "$_r_log" 'reloaded')
  _r_no=$(log_count "$_r_log" 'reload refused')
  kill -HUP "$(agent_pid_of "$2")"
  if ! wait_until 30 reload_answered "$_r_log" "$_r_ok" "$_r_no"; then
    fail "$1" "no reload outcome in $2's agent log 30 s after SIGHUP"
    return 1
  fi
  if [ "${EXPECT:-reloaded}" = refused ]; then
    check "$1" log_count_above "$_r_log" 'reload refused' "$_r_no"
  else
    check "$1" log_count_above "$_r_log" 'reloaded' "$_r_ok"
  fi
}

# reload_answered LOG OK NO: LOG has more "reloaded" than OK or more "reload refused" than NO.
reload_answered() {
  log_count_above "$1" 'reloaded' "$2" || log_count_above "$1" 'reload refused' "$3"
}

# tcp_fin_is SECS: the kernel's FIN_WAIT timeout (ipvsadm --set's second value).
tcp_fin_is() {
  in_ns llclb1 ipvsadm -L -n --timeout | grep -q " 259200 $1 "
}

not() {
  ! "$@"
}

# expect_samples NAME WHAT LINE...: stops the sampler; PASS when every sample (at least 5) holds
# every LINE.
# five_samples: the sampler has taken at least 5, however slowly a loaded VM takes them (a
# fixed second gave 4 once).
five_samples() {
  [ "$(ls "$LAB_RUN"/samples/ | grep -c '^[0-9]')" -ge 5 ]
}

expect_samples() {
  _s_name=$1
  _s_what=$2
  shift 2
  wait_until 30 five_samples
  stop_sampler "$@"
  echo "$_s_name: $sample_count samples of ipvsadm -S -n"
  if [ "$sample_count" -lt 5 ]; then
    fail "$_s_name" "only $sample_count samples taken"
  elif [ -n "$samples_lacking" ]; then
    fail "$_s_name" "samples without $_s_what:$samples_lacking"
    # shellcheck disable=SC2086 # the first number
    set -- $samples_lacking
    sed 's/^/    sample| /' "$LAB_RUN/samples/$1"
  else
    pass "$_s_name"
  fi
}

# sessions_to ADDR N: like sessions, to ADDR.
sessions_to() {
  _n=0
  _served=
  while [ "$_n" -lt "$2" ]; do
    _h=$(in_ns client ssh -n "root@$1" hostname 2>/dev/null) || _h=failed
    _served="$_served${_served:+ }${_h:-nothing}"
    _n=$((_n + 1))
  done
  echo "$_served"
}

alt_both_weight() {
  has_dest_at "$VIP2" "$RIP5" "Route $1" && has_dest_at "$VIP2" "$RIP6" "Route $1"
}
alt_gone() {
  ! has_service_at "$VIP2" && ! vip_at_eth0 "$VIP2"
}
director_alive() {
  kill -0 "$director_pid" 2>/dev/null
}

write_director "" llclb1
write_agent llc5 1
write_agent llc6 1
bring_up

# --- 1. a reload adds a service ------------------------------------------------------------------
start_sampler
write_director alt llclb1
reload_director reload-adds-service
if wait_until 20 has_service_at "$VIP2"; then
  pass new-service-in-kernel
else
  fail new-service-in-kernel "no $VIP2:22 in ipvsadm -L -n 20 s after the reload"
  in_ns llclb1 ipvsadm -L -n
fi
check new-vip-on-eth0 wait_until 20 vip_at_eth0 "$VIP2"
write_agent llc5 1 alt
write_agent llc6 1 alt
reload_agent agent-llc5-joins llc5
reload_agent agent-llc6-joins llc6
t0=$(now)
if wait_until 30 alt_both_weight 1; then
  pass agents-serve-new-service
  echo "both realservers in llc-alt $(elapsed_since "$t0") s after the agents' reloads"
else
  fail agents-serve-new-service "after 30 s: llc5 '$(dest_at "$VIP2" "$RIP5")', llc6 '$(dest_at "$VIP2" "$RIP6")'"
  lbctl_op status
fi
# A few more samples with everything in place.
sleep 1
expect_samples first-service-steady-on-add "llc-ssh at weight 1 on both" \
  "-A -t $VIP:22 -s rr" "-a -t $VIP:22 -r $RIP5:22 -g -w 1" "-a -t $VIP:22 -r $RIP6:22 -g -w 1"
served=$(sessions_to "$VIP2" 4)
echo "4 new sessions to $VIP2 served by: $served"
# shellcheck disable=SC2086 # one word per session
if both_seen $served; then
  pass new-service-answers
else
  fail new-service-answers "4 sessions to $VIP2 were served by: $served"
fi

# --- 2. a reload retires a service with a session open on it ----------------------------------------
open_session_to alt "$VIP2" 4
alt_busy=$(echo_to alt hello "$SESSION_OPEN_SECS")
if [ "$alt_busy" = llc5 ] || [ "$alt_busy" = llc6 ]; then
  pass alt-session-opens
  echo "the session on llc-alt is served by $alt_busy"
else
  fail alt-session-opens "no answer from a session to $VIP2 in $SESSION_OPEN_SECS s"
  output_of_session alt
  lbctl_op status
fi
write_director "" llclb1
t0=$(now)
reload_director reload-removes-service
if wait_until 10 alt_both_weight 0; then
  pass retired-weights-0
  echo "llc-alt at weight 0 $(elapsed_since "$t0") s after SIGHUP"
else
  fail retired-weights-0 "after 10 s: llc5 '$(dest_at "$VIP2" "$RIP5")', llc6 '$(dest_at "$VIP2" "$RIP6")'"
fi
check first-service-untouched-by-retire has_dest "$RIP5" "Route 1"
# Several passes (resync_interval 1 s) go by with the session open: nothing more may change.
sleep 3
check retiring-service-stays has_service_at "$VIP2"
check retiring-vip-stays vip_at_eth0 "$VIP2"
check retiring-still-weight-0 alt_both_weight 0
if [ -n "$alt_busy" ] && [ "$(echo_to alt still-there)" = "$alt_busy" ]; then
  pass retiring-session-answers
else
  fail retiring-session-answers "the session on llc-alt no longer answers"
  output_of_session alt
fi
status_out=$(lbctl_op status 2>&1)
echo "$status_out" | sed 's/^/    lbctl status| /'
if echo "$status_out" | grep -q "$VIP2:22 .*llc-alt.*retiring"; then
  pass status-shows-retiring
else
  fail status-shows-retiring "lbctl status does not show llc-alt as retiring"
fi
close_session_to alt 20
check alt-session-closes test "$exit_status" = 0
t0=$(now)
if wait_until 60 alt_gone; then
  pass retired-service-removed
  echo "llc-alt and $VIP2 gone $(elapsed_since "$t0") s after the session closed"
else
  fail retired-service-removed "60 s after the session closed: $(in_ns llclb1 ipvsadm -L -n -t "$VIP2:22" 2>&1 | tr '\n' ' ')"
fi
check first-service-after-retire has_dest "$RIP6" "Route 1"
check leases-alive-after-retire both_alive

# --- 3. refused reloads leave everything running ----------------------------------------------------
before=$(ipvs_save)
PORT=0 write_director "" llclb1
EXPECT=refused reload_director bad-port-refused
check director-survives-bad-port director_alive
check refusal-names-port grep -q "port" /var/log/lab/director.log
write_director "" llclb1 'colour = "red"'
EXPECT=refused reload_director unknown-key-refused
check director-survives-unknown-key director_alive
check refusal-names-key grep -q "colour" /var/log/lab/director.log
grep 'reload refused' /var/log/lab/director.log | sed -e 's/LAB-RESULT/LAB_RESULT/g' -e 's/^/    director| /'
check table-unchanged-by-refusals test "$(ipvs_save)" = "$before"
check session-after-refusals ssh_to_vip
TCP_FIN=3 write_director "" llclb1
reload_director good-reload-after-refusals
check good-reload-applies wait_until 20 tcp_fin_is 3

# --- 4. certificate rotation by reload ---------------------------------------------------------------
# The new certificate has a name the old one lacks (llclb1-new): lbctl dialling that name can
# only succeed once the director serves the new certificate.
echo "$DIP llclb1-new" >>/etc/hosts
lbctl certs issue "$LAB_PKI" llclb1-new --ip "$DIP" >/dev/null
lbctl_by_name() {
  in_ns client lbctl --director https://llclb1-new:7700 --ca "$LAB_PKI/ca.pem" \
    --cert "$LAB_PKI/ops.pem" --key "$LAB_PKI/ops.key" status
}
lbctl_by_dip() {
  in_ns client lbctl --director "https://$DIP:7700" --ca "$LAB_PKI/ca.pem" \
    --cert "$LAB_PKI/ops.pem" --key "$LAB_PKI/ops.key" status
}
check old-cert-lacks-new-name not lbctl_by_name
echo "before the rotation, lbctl to llclb1-new says: $(lbctl_by_name 2>&1 | tail -n 2 | tr '\n' ' ')"
start_sampler
TCP_FIN=3 write_director "" llclb1-new
reload_director reload-rotates-cert
check new-cert-served wait_until 10 lbctl_by_name
check dip-still-verifies lbctl_by_dip
# Established agent channels keep heartbeating: three lease TTLs with the leases alive.
sleep 6
check leases-alive-after-rotation both_alive
expect_samples weights-steady-on-rotation "llc-ssh at weight 1 on both" \
  "-A -t $VIP:22 -s rr" "-a -t $VIP:22 -r $RIP5:22 -g -w 1" "-a -t $VIP:22 -r $RIP6:22 -g -w 1"

# --- 5. SIGHUP to an agent ------------------------------------------------------------------------
# llc5 goes to weight 2 (and leaves llc-alt, which the director no longer has): every sample must
# show llc5 in llc-ssh at weight 1 or 2, never 0 or missing.
start_sampler
write_agent llc5 2
reload_agent agent-weight-reload llc5
expect_dest agent-weight-in-kernel 15 "$RIP5" "Route 2"
wait_until 30 five_samples
: >"$LAB_RUN/samples/stop"
wait "$sampler_pid"
n=0
bad=
for f in "$LAB_RUN"/samples/[0-9]*; do
  n=$((n + 1))
  grep -qE -- "^-a -t $VIP:22 -r $RIP5:22 -g -w [12]\$" "$f" || bad="$bad ${f##*/}"
done
echo "$n samples of ipvsadm -S -n during llc5's reload"
if [ "$n" -ge 5 ] && [ -z "$bad" ]; then
  pass agent-weight-never-0
else
  fail agent-weight-never-0 "$n samples; without llc5 at weight 1 or 2:$bad"
fi
check other-weight-untouched has_dest "$RIP6" "Route 1"
write_agent llc6 1
reload_agent agent-llc6-leaves-alt llc6

write_agent llc5 2 "" 'colour = "red"'
EXPECT=refused reload_agent bad-agent-file-refused llc5
check agent-survives-bad-file kill -0 "$(agent_pid_of llc5)"
sleep 6
check agent-lease-alive-after-refusal lease_is llc5 alive
check agent-weight-kept has_dest "$RIP5" "Route 2"
check session-after-agent-reloads ssh_to_vip
check director-still-running director_alive
# For the record: what the agents logged beyond the routine (warnings, errors).
grep -hE 'WARN|ERROR' /var/log/lab/agent-llc5.log /var/log/lab/agent-llc6.log |
  sed -e 's/LAB-RESULT/LAB_RESULT/g' -e 's/^/    agents| /'
