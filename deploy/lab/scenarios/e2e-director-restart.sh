# End to end, issue 5 scenario 5: restart the director (SIGTERM, start again) under load. A
# sampler reads `ipvsadm -S -n` every 0.2 s throughout: no sample may lack the service or a
# destination, or show a weight other than the one in force. A drain set before the restart is
# still in force after it, the agents are registered again within seconds, and an open ssh
# session keeps working.

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
trap logs_if_failed EXIT

bring_up
open_busy_session
echo "draining $idle before the restart"
check drain-before-restart lbctl_op drain "$idle"
expect_dest drained-weight-0 5 "$idle_rip" "Route 0"

start_sampler
sleep 1
stop_daemon "$director_pid" 15
check director-exits-0 test "$exit_status" = 0
# Down for a moment, as a package upgrade would do.
sleep 1
t0=$(now)
start_director director-again
if wait_until 30 listening llclb1 7700; then
  pass director-starts-again
else
  fail director-starts-again "no gRPC port 30 s after the new start"
fi
if wait_until 10 both_alive; then
  pass agents-registered-again
  echo "both leases alive again $(elapsed_since "$t0") s after the new start"
else
  fail agents-registered-again "llc5 '$(lease_of llc5)', llc6 '$(lease_of llc6)' 10 s after the new start"
fi
# One more second of samples with the new director in charge.
sleep 1
stop_sampler "-A -t $VIP:22 -s rr" "-a -t $VIP:22 -r $busy_rip:22 -g -w 1" \
  "-a -t $VIP:22 -r $idle_rip:22 -g -w 0"
echo "$sample_count samples of ipvsadm -S -n during the restart"
if [ "$sample_count" -lt 5 ]; then
  fail table-never-emptied "only $sample_count samples taken"
elif [ -n "$samples_lacking" ]; then
  fail table-never-emptied "samples without the service, $busy at weight 1 or $idle at 0:$samples_lacking"
  # shellcheck disable=SC2086 # the first number
  set -- $samples_lacking
  sed 's/^/    sample| /' "$LAB_RUN/samples/$1"
else
  pass table-never-emptied
fi

check drain-survives-restart test "$(admin_of "$idle")" = drained
check drained-still-weight-0 has_dest "$idle_rip" "Route 0"
expect_session_answers open-session-survives-restart after-restart
expect_sessions new-sessions-respect-drain 3 "$busy"
close_session 20
