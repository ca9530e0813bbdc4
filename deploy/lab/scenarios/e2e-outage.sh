# End to end, issue 10: a director outage. The director stops for 60 s while two ssh sessions
# are open, then starts again. A sampler reads `ipvsadm -S -n` every 0.2 s from the stop until
# 10 s after the new start: no sample may lack the service or show a weight other than 1 (the
# new director adopts what it finds and keeps it until the agents are back). The sessions keep
# answering throughout, and the agents, retrying meanwhile, are registered again soon after.

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
trap logs_if_failed EXIT

# The agents log each failed retry at debug level ("still failing"): counted below.
LB_LOG=info,lb_realserver=debug
export LB_LOG

OUTAGE=60

# retries HOST: failed attempts HOST's agent has logged so far.
retries() {
  log_count "agent-$1" 'still failing|director unreachable'
}

bring_up
open_busy_session
open_session_to second "$VIP" 4
second=$(echo_to second hello "$SESSION_OPEN_SECS")
if [ "$second" = llc5 ] || [ "$second" = llc6 ]; then
  pass second-session-opens
  echo "the second session is served by $second"
else
  fail second-session-opens "no answer from a second session through the VIP"
  output_of_session second
fi

start_sampler
stop_daemon "$director_pid" 15
check director-stops test "$exit_status" = 0
t_stop=$(now)
# Half way through the outage the sessions still answer (the table is the kernel's).
sleep $((OUTAGE / 2))
expect_session_answers session-answers-during-outage mid-outage
check second-answers-during-outage test "$(echo_to second mid-outage)" = "$second"
r5=$(retries llc5)
r6=$(retries llc6)
until awk -v t0="$t_stop" -v t1="$(now)" -v d="$OUTAGE" 'BEGIN { exit !(t1 - t0 >= d) }'; do
  sleep 0.2
done
late5=$(($(retries llc5) - r5))
late6=$(($(retries llc6) - r6))
echo "failed director attempts in the outage's second half ($((OUTAGE / 2)) s): llc5 $late5, llc6 $late6;" \
  "in all: llc5 $(retries llc5), llc6 $(retries llc6)"
# A 10 s ceiling with up to half of it taken off as jitter: at most one attempt every 5 s.
if [ "$late5" -le $((OUTAGE / 2 / 5 + 1)) ] && [ "$late6" -le $((OUTAGE / 2 / 5 + 1)) ]; then
  pass agents-back-off
else
  fail agents-back-off "in the last $((OUTAGE / 2)) s of the outage llc5 tried $late5 times, llc6 $late6 (a 10 s ceiling allows $((OUTAGE / 2 / 5 + 1)))"
fi

t0=$(now)
start_director director-again
if wait_until 30 listening llclb1 7700; then
  pass director-starts-again
else
  fail director-starts-again "no gRPC port 30 s after the new start"
fi
if wait_until 30 both_alive; then
  pass agents-back-after-outage
  echo "both leases alive again $(elapsed_since "$t0") s after the new start"
else
  fail agents-back-after-outage "llc5 '$(lease_of llc5)', llc6 '$(lease_of llc6)' 30 s after the new start"
fi
# Samples until 10 s after the new start.
until awk -v t0="$t0" -v t1="$(now)" 'BEGIN { exit !(t1 - t0 >= 10) }'; do
  sleep 0.2
done
stop_sampler "-A -t $VIP:22 -s rr" "-a -t $VIP:22 -r $RIP5:22 -g -w 1" \
  "-a -t $VIP:22 -r $RIP6:22 -g -w 1"
echo "$sample_count samples of ipvsadm -S -n from the stop to 10 s after the new start"
# The outage alone lasts 60 s: even a slow sampler takes more than one sample a second.
if [ "$sample_count" -lt "$OUTAGE" ]; then
  fail weights-never-change "only $sample_count samples taken"
elif [ -n "$samples_lacking" ]; then
  fail weights-never-change "samples without the service or both realservers at weight 1:$samples_lacking"
  # shellcheck disable=SC2086 # the first number
  set -- $samples_lacking
  sed 's/^/    sample| /' "$LAB_RUN/samples/$1"
else
  pass weights-never-change
fi
check no-lease-expired-after-return test "$(grep -c 'lease expired' /var/log/lab/director-again.log)" = 0
expect_session_answers session-survives-outage after-outage
check second-survives-outage test "$(echo_to second after-outage)" = "$second"
expect_sessions new-sessions-after-outage 4 both
close_session 20
check session-closes test "$exit_status" = 0
close_session_to second 20
check second-session-closes test "$exit_status" = 0
