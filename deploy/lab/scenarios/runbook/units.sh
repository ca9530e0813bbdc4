# The lab's stand-in for systemd (the VM has none), shared by the shims in shims/: the units an
# operator of lb names (and keepalived, beside lb-director on the directors of an HA pair), what
# each one runs, where its "journal" is, when it counts as started.
# Sourced by the shims (busybox sh) in the host they run in; a host is its UTS name.
# shellcheck shell=sh disable=SC2034 # the variables set here are for the shims

LAB_RUN=/run/lab
UNITS_DIR=$LAB_RUN/units/$(hostname)
mkdir -p "$UNITS_DIR"

# unit_name ARG: the unit ARG names (lb-director, lb-director.service, ssh, sshd ...), or a
# failure naming what the lab knows.
unit_name() {
  case ${1%.service} in
    lb-director) echo lb-director ;;
    lb-agent) echo lb-agent ;;
    ssh | sshd) echo ssh ;;
    keepalived) echo keepalived ;;
    *)
      echo "lab: unit $1 is not one the lab runs (lb-director, lb-agent, ssh, keepalived)" >&2
      return 1
      ;;
  esac
}

# unit_log UNIT: the file the unit's output goes to (what journalctl -u shows). The names are
# the e2e scenarios' (director.log for llclb1's director, director-HOST.log for another's,
# agent-HOST.log, sshd-HOST.log, keepalived-HOST.log), so their helpers read them.
unit_log() {
  case $1 in
    lb-director)
      if [ "$(hostname)" = llclb1 ]; then
        echo /var/log/lab/director.log
      else
        echo "/var/log/lab/director-$(hostname).log"
      fi
      ;;
    keepalived) echo "/var/log/lab/keepalived-$(hostname).log" ;;
    lb-agent) echo "/var/log/lab/agent-$(hostname).log" ;;
    ssh) echo "/var/log/lab/sshd-$(hostname).log" ;;
  esac
}

# unit_pidfile UNIT: its main PID's file; sshd's is the one the lab's topology gives it.
unit_pidfile() {
  case $1 in
    ssh) echo "$LAB_RUN/sshd-$(hostname).pid" ;;
    *) echo "$UNITS_DIR/$1.pid" ;;
  esac
}

# unit_timeout UNIT: TimeoutStopSec of its unit file (deploy/systemd), the Debian default of
# sshd's and keepalived's.
unit_timeout() {
  case $1 in
    lb-director) echo 30 ;;
    lb-agent) echo 20 ;;
    ssh | keepalived) echo 90 ;;
  esac
}

# unit_start UNIT: ExecStart of deploy/systemd/UNIT.service (and Environment=LB_LOG=info), in
# the background; the daemons' PID into the PID file. sshd forks and writes its own.
unit_start() {
  _u_unit=$1
  _u_log=$(unit_log "$1")
  case $1 in
    ssh)
      /usr/sbin/sshd -E "$_u_log" -o "PidFile=$(unit_pidfile ssh)" 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
      return
      ;;
    lb-director) set -- /usr/sbin/lb-director --config /etc/lb/director.toml ;;
    lb-agent) set -- /usr/sbin/lb-agent --config /etc/lb/agent.toml ;;
    # Debian's keepalived.service runs `keepalived --dont-fork $DAEMON_ARGS` and reads
    # /etc/keepalived/keepalived.conf (each director's own: /etc/netns/HOST/keepalived). The
    # lab's DAEMON_ARGS: VRRP only (-P, as deploy/ha uses it), its log to stderr and not to
    # syslog (-l -G: with no syslog daemon, syslog writes to the VM's console, into the result
    # lines), and pid files of this host's own (the defaults in /run are shared by every host).
    keepalived)
      set -- keepalived --dont-fork -P -l -G -p "$UNITS_DIR/keepalived-own.pid" \
        -r "$UNITS_DIR/keepalived-vrrp.pid"
      ;;
  esac
  # Descriptors 3 to 9 closed: a daemon must not hold a lab session's fifo open.
  LB_LOG=info "$@" >>"$_u_log" 2>&1 </dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
  echo "$!" >"$UNITS_DIR/$_u_unit.pid.new"
  mv "$UNITS_DIR/$_u_unit.pid.new" "$(unit_pidfile "$_u_unit")"
}

# unit_ready_marker UNIT: the log line each daemon writes where it tells systemd READY=1
# (Type=notify), so that a start returns when systemctl start would.
unit_ready_marker() {
  case $1 in
    lb-director) echo 'serving gRPC' ;;
    lb-agent) echo 'started' ;;
    # Type=notify: keepalived tells systemd once its VRRP instance has its first state.
    keepalived) echo 'Entering [A-Z]* STATE' ;;
  esac
}

# unit_pid UNIT: the main PID while it runs (a zombie does not count), else nothing.
unit_pid() {
  _u_file=$(unit_pidfile "$1")
  [ -r "$_u_file" ] || return 1
  _u_pid=$(cat "$_u_file")
  [ -n "$_u_pid" ] && [ -r "/proc/$_u_pid/stat" ] || return 1
  # The third field of stat is the state; Z is a process that has exited.
  read -r _ _ _u_state _ <"/proc/$_u_pid/stat" 2>/dev/null || return 1
  [ "$_u_state" != Z ] || return 1
  echo "$_u_pid"
}

unit_active() {
  unit_pid "$1" >/dev/null
}

unit_enabled() {
  [ -e "$UNITS_DIR/$1.enabled" ]
}

# The units a boot starts, in order (a stop goes the other way): keepalived after lb-director,
# as deploy/ha/keepalived.service.d orders it.
UNITS_BOOT_ORDER="ssh lb-director keepalived lb-agent"
UNITS_STOP_ORDER="lb-agent keepalived lb-director ssh"
