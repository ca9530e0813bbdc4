# Demo chapters: a drain with a session open, undrain, an agent crash, a director restart
# (sourced by demo.sh after demo/seed.sh).
# shellcheck shell=sh

chapter "lbctl drain llc5: new sessions go to llc6, open ones stay"
say "Opening a long-lived ssh session on llc5 (it answers each line with its host's name)."
open_session_on llc5
say "  the session is on: ${session_host:-nothing}"
show llclb1 lbctl drain llc5
wait_until 5 has_dest "$RIP5" "Route 0"
show llclb1 ipvsadm -L -n
say "llc5's weight is 0; its ActiveConn is the open session."
ssh_sessions 4
# shellcheck disable=SC2086 # one word per session
verdict drained-llc5-gets-no-new-session all_are llc6 $served
answer=$(session_echo still-on-llc5)
say "The open session, asked again, answers from: ${answer:-nothing}"
verdict open-session-stays-on-llc5 test "$answer" = llc5

chapter "lbctl undrain llc5"
show llclb1 lbctl undrain llc5
wait_until 5 has_dest "$RIP5" "Route 1"
show llclb1 lbctl status
ssh_sessions 2
# shellcheck disable=SC2086 # one word per session
verdict undrained-sessions-alternate both_seen $served

chapter "An agent crashes (kill -KILL on llc6) and comes back"
crash_pid=$(agent_pid_of llc6)
say "[llc6]# kill -KILL $crash_pid   (lb-agent)"
kill -KILL "$crash_pid"
t0=$(now)
wait_exit "$crash_pid" 10
quiesced() { has_dest "$RIP6" "Route 0" || no_dest "$RIP6"; }
wait_until 20 quiesced
say "Its lease ran out; $(elapsed_since "$t0") s later the director quiesced llc6 (weight 0):"
show llclb1 lbctl status
ssh_sessions 2
# shellcheck disable=SC2086 # one word per session
verdict crashed-llc6-gets-no-new-session all_are llc5 $served
say "Restarting lb-agent on llc6 (systemd's Restart=on-failure would do this):"
start_agent llc6
back=no
wait_until 30 both_registered && back=yes
show llclb1 lbctl status
verdict restarted-agent-back test "$back" = yes

chapter "The director restarts and drops nothing"
say "A sampler reads 'ipvsadm -S -n' every 0.2 s; the session on llc5 is still open."
start_sampler
say "[llclb1]# kill -TERM $director_pid   (lb-director)"
stop_daemon "$director_pid" 15
say "lb-director exited with status $exit_status. The kernel keeps forwarding without it:"
show llclb1 ipvsadm -L -n
answer=$(session_echo while-director-down)
say "The open session answers from: ${answer:-nothing}"
verdict session-works-while-director-down test "$answer" = llc5
say "Starting lb-director again: it adopts the table instead of rebuilding it."
t0=$(now)
start_director director-again
alive=no
wait_until 30 both_alive && alive=yes
say "Both agents registered again $(elapsed_since "$t0") s after the start."
stop_sampler "-a -t $VIP:22 -r $RIP5:22 -g -w 1" "-a -t $VIP:22 -r $RIP6:22 -g -w 1"
# shellcheck disable=SC2086 # one word per sample
lacking=$(printf '%s\n' $samples_lacking | grep -c .)
say "$sample_count samples, $lacking of them without both realservers at weight 1."
show llclb1 lbctl status
verdict restart-drops-nothing test "$sample_count" -gt 0 -a -z "$samples_lacking" -a "$alive" = yes
answer=$(session_echo after-restart)
say "The open session answers from: ${answer:-nothing}"
verdict session-survives-restart test "$answer" = llc5
close_session 20
