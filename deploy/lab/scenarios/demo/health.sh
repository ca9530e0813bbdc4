# Demo chapter: health checks. sshd dies on llc5 while its agent lives: the director's probe
# and the agent's self-check see it, llc5 goes to weight 0 and new sessions go to llc6; sshd
# comes back and so does llc5 (sourced by demo.sh).
# shellcheck shell=sh

chapter "Health checks: sshd dies on llc5, its agent lives"
say "The director probes each realserver's sshd, as keepalived's TCP_CHECK does (type ssh"
say "would also read its banner), and each agent checks its own (director.toml's check):"
grep -A5 '^\[service.check\]' "$DIRECTOR_CONFIG" | sed 's/^/      /' | say
sshd5=$(cat "$LAB_RUN/sshd-llc5.pid")
say "[llc5]# kill $sshd5   (sshd; lb-agent keeps running, and so do sessions already open)"
kill -TERM "$sshd5"
t0=$(now)
down=no
wait_until 40 has_dest "$RIP5" "Route 0" && down=yes
say "$(elapsed_since "$t0") s later llc5 is down: weight 0, its lease still alive."
show llclb1 lbctl status
verdict dead-sshd-shown-down test "$down" = yes -a "$(lease_of llc5)" = alive
verdict dead-sshd-health-column health_is llc5 down
ssh_sessions 3
# shellcheck disable=SC2086 # one word per session
verdict dead-sshd-sessions-go-to-llc6 all_are llc6 $served
say "[llc5]# sshd   (back)"
start_sshd llc5
t0=$(now)
up=no
wait_until 40 has_dest "$RIP5" "Route 1" && up=yes
say "$(elapsed_since "$t0") s later llc5 is up again (rise: 2 good probes in a row), weight 1:"
show llclb1 lbctl status
verdict sshd-back-llc5-up test "$up" = yes
ssh_sessions 2
# shellcheck disable=SC2086 # one word per session
verdict sshd-back-sessions-alternate both_seen $served
