# End to end, issue 9: health checks with real OpenSSH. The director probes each realserver's
# sshd (type ssh: the banner) and each agent checks its own; a dead or hung sshd behind a live
# agent goes to weight 0, new sessions go to the other realserver, a session already open on it
# is untouched, and the weight comes back after `rise` good probes. A drained realserver whose
# sshd dies and recovers stays drained.

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
trap logs_if_failed EXIT

DIRECTOR_CONFIG=$E2E_CONF/director-health.toml

both_up() {
  health_is llc5 up && health_is llc6 up
}

# shows_no_banner NAME: lbctl status says NAME is down for want of an SSH banner (the director's
# probe: "no banner"; the agent's own check: "agent: no SSH banner within 2s").
shows_no_banner() {
  lbctl_op status | grep -q " $1 .*down (.*banner"
}

bring_up
check both-up-at-start wait_until 10 both_up
open_busy_session
# The realserver without the session is the one whose sshd fails: the session on the other one
# must not notice.
victim=$idle
victim_rip=$idle_rip
victim_sshd=$(cat "$LAB_RUN/sshd-$victim.pid")
echo "the session is on $busy; $victim's sshd (PID $victim_sshd) is the one that fails"

# --- 1. a dead sshd (the agent lives) ------------------------------------------------------------
t0=$(now)
kill -TERM "$victim_sshd"
# fall (2) x interval (3 s) plus a pass, with room for a loaded host.
if wait_until 30 has_dest "$victim_rip" "Route 0"; then
  pass dead-sshd-weight-0
  echo "weight 0 $(elapsed_since "$t0") s after $victim's sshd died; Health: $(health_of "$victim")"
else
  fail dead-sshd-weight-0 "$victim after 30 s: '$(dest "$victim_rip")', Health '$(health_of "$victim")'"
fi
check dead-sshd-shown-down health_is "$victim" down
check dead-sshd-lease-alive lease_is "$victim" alive
expect_sessions dead-sshd-sessions-elsewhere 4 "$busy"
expect_session_answers open-session-untouched-by-dead-sshd after-death

# --- 2. sshd back ------------------------------------------------------------------------------
t0=$(now)
start_sshd "$victim"
if wait_until 30 has_dest "$victim_rip" "Route 1"; then
  pass sshd-back-weight-1
  echo "weight 1 again $(elapsed_since "$t0") s after $victim's sshd started"
else
  fail sshd-back-weight-1 "$victim after 30 s: '$(dest "$victim_rip")', Health '$(health_of "$victim")'"
fi
check sshd-back-shown-up wait_until 10 health_is "$victim" up
expect_sessions sshd-back-sessions-reach-both 4 both

# --- 3. a hung sshd: it accepts (the kernel completes the handshake) but never speaks -----------
victim_sshd=$(cat "$LAB_RUN/sshd-$victim.pid")
kill -STOP "$victim_sshd"
if wait_until 30 has_dest "$victim_rip" "Route 0"; then
  pass hung-sshd-weight-0
  echo "hung $victim: Health '$(health_of "$victim")'"
else
  fail hung-sshd-weight-0 "$victim after 30 s: '$(dest "$victim_rip")', Health '$(health_of "$victim")'"
fi
check hung-sshd-no-banner wait_until 10 shows_no_banner "$victim"
expect_sessions hung-sshd-sessions-elsewhere 2 "$busy"
kill -CONT "$victim_sshd"
check hung-sshd-recovers wait_until 30 has_dest "$victim_rip" "Route 1"

# --- 4. a drain outlives a health failure and its recovery --------------------------------------
expect_lbctl drain-victim drain "$victim"
expect_dest drained-weight-0 10 "$victim_rip" "Route 0"
kill -TERM "$victim_sshd"
check drained-shown-down wait_until 30 health_is "$victim" down
start_sshd "$victim"
check drained-shown-up-again wait_until 30 health_is "$victim" up
# Two more probe rounds with it up: still drained.
sleep 6
check drained-stays-drained has_dest "$victim_rip" "Route 0"
check drained-admin-column test "$(admin_of "$victim")" = drained
expect_lbctl undrain-victim undrain "$victim"
expect_dest undrained-weight-1 10 "$victim_rip" "Route 1"

check open-session-survives-all session_echo the-end
close_session 20
