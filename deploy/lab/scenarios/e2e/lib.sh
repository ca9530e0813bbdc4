# Helpers shared by the end-to-end scenarios (e2e-*.sh) and the demo: the product's daemons
# started from e2e/*.toml, and what an operator looks at (ipvsadm, iptables, lbctl, ssh).
# Sourced after /lab/lib.sh, from $LAB_SCENARIO_DIR (busybox sh).
# shellcheck shell=sh disable=SC2034 # the variables set here are for the scenarios

E2E_CONF=$LAB_SCENARIO_DIR/e2e
DIRECTOR_URL=https://$DIP:7700
# The cluster CA and certificates the configs name (mutual TLS is the lab's default).
. "$LAB_SCENARIO_DIR/director/pki.sh"
SERVICE=llc-ssh

# --- daemons -------------------------------------------------------------------------------
# start_bg is called in this shell (never inside $(...)), so that the daemon is a child of this
# shell and `wait` can tell its exit status.

# start_director LOG: lb-director in llclb1 (config $DIRECTOR_CONFIG, e2e/director.toml unless
# set); its PID in $director_pid, output in LOG's log ($director_log names it).
start_director() {
  start_bg llclb1 "$1" lb-director --config "${DIRECTOR_CONFIG:-$E2E_CONF/director.toml}" >/dev/null
  director_pid=$(cat "$LAB_RUN/$1.pid")
  director_log=$1
}

# steady_health_config FILE: e2e/director-health.toml into FILE with a tcp check (a connection
# to RIP:22) every 4 s instead of reading sshd's banner every 3 s: on a loaded machine sshd
# under emulation has taken over 4 s for its banner, and a flap spoils a scenario that counts on
# every realserver taking sessions (the demo, the runbook). A dead sshd is down either way.
steady_health_config() {
  sed -e 's/^type = "ssh"/type = "tcp"/' -e 's/^interval = "3s"/interval = "4s"/' \
    -e 's/^timeout = "2s"/timeout = "3s"/' "$LAB_SCENARIO_DIR/e2e/director-health.toml" >"$1"
}

# start_agent HOST [CONFIG]: lb-agent in HOST (agent-HOST.toml unless CONFIG is given); PID in
# $agent_pid and in $LAB_RUN/agent-HOST.pid, output in the log agent-HOST.
start_agent() {
  start_bg "$1" "agent-$1" lb-agent --config "$E2E_CONF/${2:-agent-$1.toml}" >/dev/null
  agent_pid=$(cat "$LAB_RUN/agent-$1.pid")
}

# agent_pid_of HOST: the PID of the agent last started in HOST.
agent_pid_of() {
  cat "$LAB_RUN/agent-$1.pid"
}

# wait_exit PID SECS: waits for the daemon PID (a child of this shell) to exit and sets
# $exit_status; a daemon still running after SECS is killed and exit_status is "hung".
wait_exit() {
  rm -f "$LAB_RUN/hung-$1"
  (
    # Its sleep outlives a kill of this subshell: it must not hold a session's fifo open.
    exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
    sleep "$2"
    if kill -0 "$1" 2>/dev/null; then
      : >"$LAB_RUN/hung-$1"
      kill -KILL "$1"
    fi
  ) &
  _e2e_guard=$!
  wait "$1"
  exit_status=$?
  kill "$_e2e_guard" 2>/dev/null
  if [ -e "$LAB_RUN/hung-$1" ]; then
    exit_status=hung
  fi
}

# stop_daemon PID SECS: SIGTERM, then wait_exit.
stop_daemon() {
  kill -TERM "$1"
  wait_exit "$1" "$2"
}

# --- the kernel's IPVS table on llclb1 -------------------------------------------------------

# dest RIP: "FORWARD WEIGHT ACTIVECONN INACTCONN" of RIP:22 under VIP:22 in `ipvsadm -L -n`,
# or nothing when RIP is not a destination.
dest() {
  in_ns llclb1 ipvsadm -L -n -t "$VIP:22" 2>/dev/null |
    awk -v d="$1:22" '$1 == "->" && $2 == d { print $3, $4, $5, $6 }'
}

# has_service: VIP:22 is a TCP service with the rr scheduler.
has_service() {
  in_ns llclb1 ipvsadm -L -n | grep -q "^TCP  $VIP:22 rr"
}

# vip_on_eth0: the director's eth0 holds the VIP as /32.
vip_on_eth0() {
  in_ns llclb1 ip -o addr show dev eth0 | grep -q "inet $VIP/32"
}

# has_dest RIP "FORWARD WEIGHT": RIP is a destination with that forward method and weight.
has_dest() {
  case "$(dest "$1")" in
    "$2 "*) return 0 ;;
  esac
  return 1
}

no_dest() {
  [ -z "$(dest "$1")" ]
}

# active_conn RIP: ActiveConn of RIP:22.
active_conn() {
  dest "$1" | awk '{ print $3 }'
}

# expect_dest NAME SECS RIP "FORWARD WEIGHT": PASS once the kernel shows RIP so, within SECS.
expect_dest() {
  _e2e_t0=$(now)
  if wait_until "$2" has_dest "$3" "$4"; then
    echo "$1: $3 is '$4' after $(elapsed_since "$_e2e_t0") s"
    pass "$1"
  else
    fail "$1" "after $2 s ipvsadm -L -n shows $3:22 as '$(dest "$3")', not '$4'"
    return 1
  fi
}

# ipvs_save: `ipvsadm -S -n`, sorted, for before/after comparisons.
ipvs_save() {
  in_ns llclb1 ipvsadm -S -n | sort
}

# rip_of HOST / other_host HOST
rip_of() {
  case $1 in
    llc5) echo "$RIP5" ;;
    llc6) echo "$RIP6" ;;
  esac
}
other_host() {
  case $1 in
    llc5) echo llc6 ;;
    llc6) echo llc5 ;;
  esac
}

# --- the agent's REDIRECT rule ----------------------------------------------------------------

# agent_rules HOST: the lb-agent:llc-ssh lines of `iptables -t nat -S PREROUTING` in HOST.
agent_rules() {
  in_ns "$1" iptables -t nat -S PREROUTING | grep -F "lb-agent:$SERVICE"
}

# agent_rule_count HOST
agent_rule_count() {
  agent_rules "$1" | grep -c .
}

# one_agent_rule HOST: exactly one lb-agent:llc-ssh rule, and it redirects VIP:22.
one_agent_rule() {
  _e2e_rules=$(agent_rules "$1")
  [ "$(printf '%s\n' "$_e2e_rules" | grep -c .)" = 1 ] || return 1
  case $_e2e_rules in
    *"-d $VIP/32 "*"--dport 22 "*"-j REDIRECT"*) return 0 ;;
  esac
  return 1
}

no_agent_rule() {
  [ "$(agent_rule_count "$1")" = 0 ]
}

# --- lbctl -----------------------------------------------------------------------------------

# lbctl_op ARGS...: lbctl on the director host, as an operator runs it: as root, through the
# director's admin socket (lbctl's default there).
lbctl_op() {
  in_ns llclb1 lbctl "$@"
}

# expect_lbctl NAME ARGS...: PASS when `lbctl ARGS` exits 0; its output goes to the console.
expect_lbctl() {
  _e2e_name=$1
  shift
  if _e2e_out=$(lbctl_op "$@" 2>&1); then
    echo "lbctl $*: $_e2e_out"
    pass "$_e2e_name"
  else
    fail "$_e2e_name" "lbctl $*: $_e2e_out"
    return 1
  fi
}

# realserver_status NAME: "FORWARD WEIGHT ACTIVECONN INACTCONN LEASE ADMIN" of NAME's line in
# `lbctl status`, or nothing.
realserver_status() {
  lbctl_op status 2>/dev/null |
    awk -v n="$1" '$1 == "->" && $3 == n { print $4, $5, $6, $7, $8, $9; exit }'
}

# lease_of NAME: NAME's lease word in `lbctl status` (alive, expired, deregistered, ...).
lease_of() {
  realserver_status "$1" | awk '{ print $5 }'
}

# lease_is NAME WORD
lease_is() {
  [ "$(lease_of "$1")" = "$2" ]
}

# health_of NAME: NAME's Health column in `lbctl status` ("up", "down (refused, 4s)", "-").
health_of() {
  lbctl_op status 2>/dev/null |
    awk -v n="$1" '$1 == "->" && $3 == n { h = $10; for (i = 11; i <= NF; i++) h = h " " $i; print h; exit }'
}

# health_is NAME WORD: the first word of NAME's Health column is WORD.
health_is() {
  case "$(health_of "$1")" in "$2"*) return 0 ;; *) return 1 ;; esac
}

# admin_of NAME: NAME's admin column in `lbctl status` ("-", "drained", "weight=N", ...).
admin_of() {
  realserver_status "$1" | awk '{ print $6 }'
}

# --- ssh through the VIP -----------------------------------------------------------------------

# sessions N: the names of the hosts that served N successive new ssh sessions to the VIP,
# space-separated; a session that failed counts as "failed".
sessions() {
  _e2e_n=0
  _e2e_served=
  while [ "$_e2e_n" -lt "$1" ]; do
    _e2e_host=$(ssh_to_vip 2>/dev/null) || _e2e_host=failed
    _e2e_served="$_e2e_served${_e2e_served:+ }${_e2e_host:-nothing}"
    _e2e_n=$((_e2e_n + 1))
  done
  echo "$_e2e_served"
}

# all_are HOST WORDS...: every word is HOST (and there is at least one).
all_are() {
  _e2e_want=$1
  shift
  [ $# -gt 0 ] || return 1
  for _e2e_w in "$@"; do
    [ "$_e2e_w" = "$_e2e_want" ] || return 1
  done
}

# both_seen WORDS...: llc5 and llc6 are both among the words, and nothing else.
both_seen() {
  case " $* " in *" llc5 "*) ;; *) return 1 ;; esac
  case " $* " in *" llc6 "*) ;; *) return 1 ;; esac
  for _e2e_w in "$@"; do
    case $_e2e_w in llc5 | llc6) ;; *) return 1 ;; esac
  done
}

# expect_sessions NAME N WHO: N new sessions; PASS when WHO served them: "both" (llc5 and llc6,
# nothing else) or one host's name (every one of them).
expect_sessions() {
  _e2e_list=$(sessions "$2")
  echo "$1: $2 new sessions served by: $_e2e_list"
  # shellcheck disable=SC2086 # one word per session
  if [ "$3" = both ]; then
    both_seen $_e2e_list
  else
    all_are "$3" $_e2e_list
  fi
  _e2e_status=$?
  if [ "$_e2e_status" -eq 0 ]; then
    pass "$1"
  else
    fail "$1" "$2 new sessions were served by: $_e2e_list (expected: $3)"
  fi
  return "$_e2e_status"
}

# A long-lived ssh session from the client to the VIP, one at a time, on file descriptor 3:
# every line sent comes back prefixed with the serving host's name.

# How long a new session's first answer may take: the connection, the key exchange and the
# login. On the emulated CPU beside another VM that has taken more than 20 s (e2e-reload in
# CI), while the session then answered and closed normally.
SESSION_OPEN_SECS=60

# open_session: opens it; $session_pid is its ssh process.
open_session() {
  rm -f "$LAB_RUN/session.in" "$LAB_RUN/session.out"
  mkfifo "$LAB_RUN/session.in"
  # Not through in_ns, so that $! is ssh itself. The fifo opens once both ends are open.
  # shellcheck disable=SC2016 # expanded by the realserver's shell
  nsenter --uts="$LAB_RUN/uts/client" /sbin/ip netns exec client \
    ssh "root@$VIP" 'while read -r line; do echo "$(hostname) $line"; done' \
    <"$LAB_RUN/session.in" >"$LAB_RUN/session.out" 2>&1 &
  session_pid=$!
  exec 3>"$LAB_RUN/session.in"
}

# session_echo WORD [SECS]: sends WORD and waits for the answer; prints the host that answered.
session_echo() {
  echo "$1" >&3
  if wait_until "${2:-20}" grep -q " $1\$" "$LAB_RUN/session.out"; then
    awk -v w="$1" '$2 == w { print $1; exit }' "$LAB_RUN/session.out"
  else
    return 1
  fi
}

# close_session SECS: ends the input; the remote loop ends and ssh exits (status in
# $exit_status). An ssh still running after SECS (a broken session retransmits for minutes)
# is killed.
close_session() {
  exec 3>&-
  wait_exit "$session_pid" "$1"
}

# open_session_on HOST: the long-lived session, opened again (at most 4 times: round robin
# alternates) until HOST serves it; status 1 when it never did. $session_host names the host
# that answered last.
open_session_on() {
  _e2e_tries=0
  while [ "$_e2e_tries" -lt 4 ]; do
    [ "$_e2e_tries" = 0 ] || close_session 20
    open_session
    session_host=$(session_echo "hello-$_e2e_tries" "$SESSION_OPEN_SECS")
    [ "$session_host" = "$1" ] && return 0
    _e2e_tries=$((_e2e_tries + 1))
  done
  return 1
}

# open_busy_session: opens the long-lived session and reports "long-session-opens"; sets
# busy/busy_rip (the host serving it) and idle/idle_rip (the other). Stops the scenario when no
# session opens, since every later step relies on it.
open_busy_session() {
  open_session
  busy=$(session_echo hello "$SESSION_OPEN_SECS")
  if [ "$busy" != llc5 ] && [ "$busy" != llc6 ]; then
    fail long-session-opens "no answer from a session through the VIP"
    session_output
    exit 1
  fi
  pass long-session-opens
  idle=$(other_host "$busy")
  busy_rip=$(rip_of "$busy")
  idle_rip=$(rip_of "$idle")
  echo "the long-lived session is served by $busy; $idle has none"
}

# expect_session_answers NAME WORD: PASS when the open session still answers from $busy.
expect_session_answers() {
  if [ "$(session_echo "$2")" = "$busy" ]; then
    pass "$1"
  else
    fail "$1" "the session on $busy no longer answers"
    session_output
    return 1
  fi
}

# session_output: what the session printed so far, for a failure's context.
session_output() {
  sed -e 's/LAB-RESULT/LAB_RESULT/g' -e 's/^/    session| /' "$LAB_RUN/session.out"
}

# --- the table during a director restart ------------------------------------------------------

# start_sampler: `ipvsadm -S -n` into $LAB_RUN/samples/N about every 0.2 s until stop_sampler.
start_sampler() {
  rm -rf "$LAB_RUN/samples"
  mkdir -p "$LAB_RUN/samples"
  (
    # Not holding a session's fifo open (see open_session).
    exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
    _e2e_i=0
    while [ ! -e "$LAB_RUN/samples/stop" ]; do
      in_ns llclb1 ipvsadm -S -n >"$LAB_RUN/samples/$_e2e_i" 2>&1
      _e2e_i=$((_e2e_i + 1))
      sleep 0.2
    done
  ) &
  sampler_pid=$!
}

# samples_at_least N: the sampler has taken N samples or more.
samples_at_least() {
  set -- "$1" "$LAB_RUN"/samples/[0-9]*
  [ -e "$2" ] && [ "$(($# - 1))" -ge "$1" ]
}

# stop_sampler LINE...: stops it; sets sample_count and samples_lacking (the numbers of the
# samples without one of the exact LINEs).
stop_sampler() {
  : >"$LAB_RUN/samples/stop"
  wait "$sampler_pid"
  sample_count=0
  samples_lacking=
  for _e2e_f in "$LAB_RUN"/samples/[0-9]*; do
    sample_count=$((sample_count + 1))
    for _e2e_line in "$@"; do
      if ! grep -qxF -- "$_e2e_line" "$_e2e_f"; then
        samples_lacking="$samples_lacking ${_e2e_f##*/}"
        break
      fi
    done
  done
}

# --- start-up shared by every scenario ----------------------------------------------------------

# both_alive: lbctl shows both leases alive.
both_alive() {
  lease_is llc5 alive && lease_is llc6 alive
}

# both_registered: both realservers are Route weight 1 in the kernel and alive in lbctl.
both_registered() {
  has_dest "$RIP5" "Route 1" && has_dest "$RIP6" "Route 1" &&
    both_alive
}

# bring_up: the director and both agents, registered; reports PASS/FAIL "bring-up" and stops
# the scenario when it fails (nothing after it could mean anything).
bring_up() {
  start_director director
  if ! wait_until 60 listening llclb1 7700; then
    fail bring-up "lb-director does not listen on $DIP:7700 after 60 s"
    show_log director
    exit 1
  fi
  _e2e_t0=$(now)
  start_agent llc5
  start_agent llc6
  if wait_until 60 both_registered; then
    registered_after=$(elapsed_since "$_e2e_t0")
    # A pending registration that expired before its Confirm shows here, and costs seconds.
    echo "both realservers registered $registered_after s after their agents started;" \
      "leases expired meanwhile: $(grep -c 'lease expired' /var/log/lab/director.log)"
    pass bring-up
  else
    fail bring-up "not both registered after 60 s: llc5 '$(dest "$RIP5")', llc6 '$(dest "$RIP6")'"
    lbctl_op status
    show_log director
    show_log agent-llc5
    show_log agent-llc6
    exit 1
  fi
}

# elapsed_since T0: seconds (with hundredths) since T0, a value of `now`.
now() {
  cut -d' ' -f1 /proc/uptime
}
elapsed_since() {
  awk -v t0="$1" -v t1="$(now)" 'BEGIN { printf "%.1f", t1 - t0 }'
}

# logs_if_failed: at the end of a scenario, every daemon's log on the console when a test
# failed (the host shows only the result lines; the console log keeps the rest).
logs_if_failed() {
  grep -q '^FAIL ' "$LAB_RUN/results" 2>/dev/null || return 0
  for _e2e_log in /var/log/lab/director*.log /var/log/lab/agent-*.log; do
    [ -e "$_e2e_log" ] || continue
    _e2e_log=${_e2e_log##*/}
    show_log "${_e2e_log%.log}"
  done
}

# --- more than one long-lived session, to any address ------------------------------------------
# Like open_session, but named, to ADDR:22, on file descriptor FD (4 to 9): several can be open.

# open_session_to ID ADDR FD
open_session_to() {
  rm -f "$LAB_RUN/session-$1.in" "$LAB_RUN/session-$1.out"
  mkfifo "$LAB_RUN/session-$1.in"
  # shellcheck disable=SC2016 # expanded by the realserver's shell
  nsenter --uts="$LAB_RUN/uts/client" /sbin/ip netns exec client \
    ssh "root@$2" 'while read -r line; do echo "$(hostname) $line"; done' \
    <"$LAB_RUN/session-$1.in" >"$LAB_RUN/session-$1.out" 2>&1 &
  echo "$!" >"$LAB_RUN/session-$1.pid"
  echo "$3" >"$LAB_RUN/session-$1.fd"
  eval "exec $3>\"\$LAB_RUN/session-$1.in\""
}

# echo_to ID WORD [SECS]: sends WORD on session ID and waits for the answer; prints the host.
echo_to() {
  eval "echo \"\$2\" >&$(cat "$LAB_RUN/session-$1.fd")"
  if wait_until "${3:-20}" grep -q " $2\$" "$LAB_RUN/session-$1.out"; then
    awk -v w="$2" '$2 == w { print $1; exit }' "$LAB_RUN/session-$1.out"
  else
    return 1
  fi
}

# close_session_to ID SECS: ends its input and waits for ssh to exit ($exit_status).
close_session_to() {
  eval "exec $(cat "$LAB_RUN/session-$1.fd")>&-"
  wait_exit "$(cat "$LAB_RUN/session-$1.pid")" "$2"
}

# output_of_session ID: what session ID printed, for a failure's context.
output_of_session() {
  sed -e 's/LAB-RESULT/LAB_RESULT/g' -e "s/^/    session-$1| /" "$LAB_RUN/session-$1.out"
}

# dest_at VIPADDR RIP: like dest, for the service VIPADDR:22.
dest_at() {
  in_ns llclb1 ipvsadm -L -n -t "$1:22" 2>/dev/null |
    awk -v d="$2:22" '$1 == "->" && $2 == d { print $3, $4, $5, $6 }'
}

# has_dest_at VIPADDR RIP "FORWARD WEIGHT"
has_dest_at() {
  case "$(dest_at "$1" "$2")" in
    "$3 "*) return 0 ;;
  esac
  return 1
}

# has_service_at VIPADDR: VIPADDR:22 is a TCP service in the kernel.
has_service_at() {
  in_ns llclb1 ipvsadm -L -n | grep -q "^TCP  $1:22 "
}

# vip_at_eth0 VIPADDR: the director's eth0 holds VIPADDR as /32.
vip_at_eth0() {
  in_ns llclb1 ip -o addr show dev eth0 | grep -q "inet $1/32"
}

# log_count LOG PATTERN: how many lines of the daemon log LOG match PATTERN (grep -E).
log_count() {
  grep -cE -- "$2" "/var/log/lab/$1.log"
}

# log_count_above LOG PATTERN N: more than N lines match.
log_count_above() {
  [ "$(log_count "$1" "$2")" -gt "$3" ]
}

# alt_service_toml: the second ssh service (llc-alt on $VIP2, which the caller sets) that a
# reload adds, as a [[service]] table for the end of director.toml (e2e-reload, the demo).
alt_service_toml() {
  cat <<EOF

[[service]]
name = "llc-alt"
vip = "$VIP2"
port = 22
scheduler = "rr"
forward = "dr"
interface = "eth0"
EOF
}
