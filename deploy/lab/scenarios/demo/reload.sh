# Demo chapter: a reload. A second service is added to director.toml and the director is told
# by SIGHUP (systemctl reload lb-director); the agents join it by their own reload; a sampler
# shows that the first service's weights never moved (sourced by demo.sh).
# shellcheck shell=sh

VIP2=10.0.0.101

alt_both_weight_1() {
  has_dest_at "$VIP2" "$RIP5" "Route 1" && has_dest_at "$VIP2" "$RIP6" "Route 1"
}

chapter "systemctl reload lb-director: a second service, the first one untouched"
say "A second ssh service on a second VIP, added at the end of director.toml:"
alt_service_toml | append_config "$DIRECTOR_CONFIG"
sed -n '/name = "llc-alt"/,$p' "$DIRECTOR_CONFIG" | sed 's/^/      /' | say
say "A sampler reads 'ipvsadm -S -n' every 0.2 s from now on."
start_sampler
reloads=$(log_count "$director_log" 'reloaded')
say "[llclb1]# systemctl reload lb-director   (its ExecReload: kill -HUP $director_pid)"
kill -HUP "$director_pid"
wait_until 30 log_count_above "$director_log" 'reloaded' "$reloads"
grep 'reloaded' "/var/log/lab/$director_log.log" | tail -n 1 | sed 's/^.*INFO /      /' | say
wait_until 20 has_service_at "$VIP2"
say "Each agent joins it: llc-alt in its agent.toml, then systemctl reload lb-agent (SIGHUP)."
for host in llc5 llc6; do
  printf '\n[[service]]\nname = "llc-alt"\nweight = 1\n' | append_config "$E2E_CONF/agent-$host.toml"
  say "[$host]# systemctl reload lb-agent   (kill -HUP $(agent_pid_of "$host"))"
  kill -HUP "$(agent_pid_of "$host")"
done
joined=no
wait_until 30 alt_both_weight_1 && joined=yes
show llclb1 ipvsadm -L -n
verdict reload-adds-service test "$joined" = yes
# At least five samples, however slowly a loaded VM takes them.
wait_until 60 samples_at_least 5
stop_sampler "-a -t $VIP:22 -r $RIP5:22 -g -w 1" "-a -t $VIP:22 -r $RIP6:22 -g -w 1"
# shellcheck disable=SC2086 # one word per sample
lacking=$(printf '%s\n' $samples_lacking | grep -c .)
say "$sample_count samples during the reloads, $lacking of them without llc-ssh's two realservers at weight 1."
verdict reload-first-service-untouched test "$sample_count" -ge 5 -a -z "$samples_lacking"
ssh_sessions 2 "$VIP2"
# shellcheck disable=SC2086 # one word per session
verdict reload-new-service-answers both_seen $served
