# Helpers for lab scenarios (busybox sh), sourced before each scenario and in --shell.
#
# Result protocol: a scenario reports each test as one console line,
#   LAB-RESULT PASS <test-name>
#   LAB-RESULT FAIL <test-name>: <why>
# and the host counts only those lines. Test names are single words.

# The seed's addresses, on one /24.
VIP=10.0.0.100
DIP=10.0.0.2
RIP5=10.0.0.11
RIP6=10.0.0.12
CLIENT=10.0.0.10
LAB_HOSTS="client llclb1 llc5 llc6"
LAB_SCENARIO_DIR=/opt/lb/scenarios
export VIP DIP RIP5 RIP6 CLIENT LAB_HOSTS LAB_SCENARIO_DIR
# The emulated CPU of a loaded machine is many times slower than a director host: lbctl's
# request timeout (10 s by default) allows for it here. A director that hangs still fails.
LBCTL_REQUEST_TIMEOUT=30s
export LBCTL_REQUEST_TIMEOUT

LAB_RUN=/run/lab
mkdir -p "$LAB_RUN" /var/log/lab

# busybox sh runs its own applet for any name it has one for, whatever PATH says; its ip
# has no netns. These names reach the real tools (commands started through in_ns find them
# on their own).
ip() { /usr/sbin/ip "$@"; }
modprobe() { /usr/sbin/modprobe "$@"; }
rmmod() { /usr/sbin/rmmod "$@"; }

# The host counts the console lines; the file lets /init tell a scenario that reported its
# failure from one that died without saying why.
_lab_report() {
  printf 'LAB-RESULT %s\n' "$*"
  printf '%s\n' "$*" >>"$LAB_RUN/results"
}

# Narration for people watching a run (the demo): the host prints `LAB-SAY ` lines as they
# come. In --shell the console is the person's terminal already, so no token there.
if grep -q 'lab\.shell=1' /proc/cmdline 2>/dev/null; then
  LAB_SAY_PREFIX=
else
  LAB_SAY_PREFIX='LAB-SAY '
fi

# say TEXT...: one line of narration; without TEXT, each line of stdin. Defused like check's
# output, so narration can never count as a result.
say() {
  if [ "$#" -eq 0 ]; then
    sed -e 's/LAB-RESULT/LAB_RESULT/g' -e "s/^/$LAB_SAY_PREFIX/"
  else
    printf '%s\n' "$*" | sed -e 's/LAB-RESULT/LAB_RESULT/g' -e "s/^/$LAB_SAY_PREFIX/"
  fi
}

# pass NAME
pass() {
  _lab_report "PASS $1"
}

# fail NAME WHY...
fail() {
  _lab_name=$1
  shift
  _lab_report "FAIL $_lab_name: ${*:-no reason given}"
}

# check NAME CMD...: PASS if CMD succeeds, else FAIL with its output. Returns CMD's status,
# so that steps depending on it can be skipped.
check() {
  _lab_name=$1
  shift
  _lab_out=$("$@" 2>&1)
  _lab_status=$?
  if [ "$_lab_status" -eq 0 ]; then
    pass "$_lab_name"
  else
    # The token is defused so that a command's output can never count as a result.
    printf '%s\n' "$_lab_out" | sed -e 's/LAB-RESULT/LAB_RESULT/g' -e 's/^/    | /'
    fail "$_lab_name" "exit status $_lab_status from: $*"
  fi
  return "$_lab_status"
}

# in_ns HOST CMD...: runs CMD in HOST's network and UTS namespaces (so `hostname` names the
# host). CMD is executed, not a shell function.
in_ns() {
  _lab_ns=$1
  shift
  nsenter --uts="$LAB_RUN/uts/$_lab_ns" /sbin/ip netns exec "$_lab_ns" "$@"
}

# wait_until SECS CMD...: retries CMD (quietly) until it succeeds; status 1 after SECS.
wait_until() {
  _lab_deadline=$(($(date +%s) + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$_lab_deadline" ]; then
      return 1
    fi
    sleep 0.2
  done
}

# listening HOST PORT: succeeds once something listens on TCP PORT in HOST.
listening() {
  in_ns "$1" ss -Hltn "sport = :$2" | grep -q .
}

# ssh_to_vip: one new ssh session from the client to VIP:22; prints the serving host's name.
ssh_to_vip() {
  in_ns client ssh -n "root@$VIP" hostname
}

# seed_redirect HOST: the seed's realserver rule, for smoke tests (the agent adds its own).
seed_redirect() {
  in_ns "$1" iptables -t nat -A PREROUTING -d "$VIP" -j REDIRECT
}

# start_bg HOST NAME CMD...: starts CMD in HOST in the background, output in
# /var/log/lab/NAME.log (kept off the console); prints its PID.
start_bg() {
  _lab_ns=$1
  _lab_name=$2
  shift 2
  # Not through in_ns: a backgrounded function would leave $! naming a subshell, while this
  # way nsenter and ip netns exec exec into CMD and $! is CMD's own PID.
  # Descriptors 3 to 9 are closed for CMD: a daemon must not hold a scenario's session fifo
  # open (the session would never see its end of input).
  nsenter --uts="$LAB_RUN/uts/$_lab_ns" /sbin/ip netns exec "$_lab_ns" "$@" \
    >"/var/log/lab/$_lab_name.log" 2>&1 </dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
  echo "$!" >"$LAB_RUN/$_lab_name.pid"
  echo "$!"
}

# show_log NAME: a background command's log, indented, for a failure's context.
show_log() {
  sed -e 's/LAB-RESULT/LAB_RESULT/g' -e "s/^/    $1| /" "/var/log/lab/$1.log"
}

# A scenario run before --shell may leave definitions for the person at the console (the
# demo's lbctl shortcut, for one) in $LAB_RUN/shell.rc; only the interactive shell reads them.
case $- in
  *i*) if [ -r "$LAB_RUN/shell.rc" ]; then . "$LAB_RUN/shell.rc"; fi ;;
esac
