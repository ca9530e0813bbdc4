# Checks that the VM has what the project's scenarios rely on: every IPVS scheduler, the
# service kinds and settings ipvsadm offers, the agent's REDIRECT rule with a comment in both
# iptables backends, nft and tcpdump. A FAIL here is a gap in the lab, not in the product.

ipvs() { in_ns llclb1 ipvsadm "$@"; }

schedulers_ok=yes
for sched in rr wrr lc wlc fo ovf lblc lblcr dh sh mh sed nq; do
  if ! ipvs -A -t 10.0.0.200:80 -s "$sched" || ! ipvs -D -t 10.0.0.200:80; then
    schedulers_ok="no ($sched)"
  fi
done
if [ "$schedulers_ok" = yes ]; then
  pass ipvs-every-scheduler
else
  fail ipvs-every-scheduler "$schedulers_ok"
fi

check ipvs-udp-service ipvs -A -u "$VIP:53" -s wrr
check ipvs-sctp-service ipvs -A --sctp-service "$VIP:3868" -s rr
check ipvs-fwmark-service ipvs -A -f 7 -s rr
check ipvs-ipv6-service ipvs -A -t "[fd00::100]:22" -s rr
check ipvs-persistence ipvs -A -t "$VIP:443" -s sh -p 300 -M 255.255.255.0
check ipvs-dest-route ipvs -a -t "$VIP:443" -r "$RIP5" -g -w 2 -x 100 -y 10
check ipvs-dest-tunnel ipvs -a -t "$VIP:443" -r "$RIP6" -i -w 1
check ipvs-dest-masq ipvs -a -u "$VIP:53" -r "$RIP5:5353" -m -w 1
check ipvs-set-timeouts ipvs --set 259200 0 0
check ipvs-timeouts-shown in_ns llclb1 sh -c "ipvsadm -L --timeout | grep 'Timeout (tcp tcpfin udp): 259200 '"
check ipvs-sync-daemon ipvs --start-daemon master --mcast-interface eth0 --syncid 1
check ipvs-sync-daemon-listed in_ns llclb1 sh -c "ipvsadm -L --daemon | grep 'master sync daemon'"
check ipvs-names-like-seed in_ns llclb1 sh -c "ipvsadm -L | grep 'llc5:https'"
check ipvs-save ipvs -S -n

rule="-d $VIP/32 -p tcp --dport 22 -m comment --comment lb-agent:llc-ssh -j REDIRECT"
for backend in iptables iptables-legacy; do
  # shellcheck disable=SC2086 # the rule is a list of words
  check "$backend-agent-rule" in_ns llc5 "$backend" -w -t nat -A PREROUTING $rule
  # shellcheck disable=SC2086
  check "$backend-rule-check" in_ns llc5 "$backend" -w -t nat -C PREROUTING $rule
  check "$backend-rule-listed" in_ns llc5 sh -c "$backend -t nat -S PREROUTING | grep lb-agent:llc-ssh"
  # shellcheck disable=SC2086
  check "$backend-rule-delete" in_ns llc5 "$backend" -w -t nat -D PREROUTING $rule
done

check nft-lists-ruleset in_ns llc5 nft list ruleset
check tcpdump-runs in_ns llc5 tcpdump --version
case ":$PATH:" in
  *:/opt/lb/bin:*) pass lb-bin-dir-on-path ;;
  *) fail lb-bin-dir-on-path "PATH is $PATH" ;;
esac
