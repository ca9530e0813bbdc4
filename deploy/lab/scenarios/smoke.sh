# Smoke test of the lab itself: the seed's director built by hand with ipvsadm, the seed's
# REDIRECT rule on both realservers, then real ssh sessions from the client to the VIP.

# route_dest_weight RIP: the weight ipvsadm shows for RIP:22 as a direct-routing
# destination of VIP:22, or nothing.
route_dest_weight() {
  in_ns llclb1 ipvsadm -L -n -t "$VIP:22" |
    awk -v dest="$1:22" '$1 == "->" && $2 == dest && $3 == "Route" { print $4 }'
}

# sessions N: the names of the hosts that served N successive ssh sessions to the VIP.
sessions() {
  _n=0
  while [ "$_n" -lt "$1" ]; do
    ssh_to_vip 2>&1 | tr '\n' ' '
    _n=$((_n + 1))
  done
}

# The seed's director script, by hand.
check director-vip in_ns llclb1 ip addr add "$VIP/32" dev eth0
check ipvs-service in_ns llclb1 ipvsadm -A -t "$VIP:22" -s rr
check ipvs-dest-llc5 in_ns llclb1 ipvsadm -a -t "$VIP:22" -r "$RIP5" -g -w 1
check ipvs-dest-llc6 in_ns llclb1 ipvsadm -a -t "$VIP:22" -r "$RIP6" -g -w 1
# The seed's /etc/init.d/lvs, by hand.
check redirect-llc5 seed_redirect llc5
check redirect-llc6 seed_redirect llc6

in_ns llclb1 ipvsadm -L -n
if [ "$(route_dest_weight "$RIP5")" = 1 ] && [ "$(route_dest_weight "$RIP6")" = 1 ]; then
  pass ipvsadm-lists-both
else
  fail ipvsadm-lists-both "ipvsadm -L -n does not show $RIP5:22 and $RIP6:22 as Route weight 1"
fi

served=$(sessions 4)
echo "4 sessions with both weights 1 served by: $served"
case " $served " in
  *" llc5 "*" llc6 "* | *" llc6 "*" llc5 "*) pass sessions-reach-both ;;
  *) fail sessions-reach-both "4 sessions were served by: $served" ;;
esac

# Direct routing keeps the client's address: the realserver sees 10.0.0.10, not the director.
check realserver-sees-client grep -q "Accepted publickey for root from $CLIENT " \
  /var/log/lab/sshd-llc5.log

check weight-zero in_ns llclb1 ipvsadm -e -t "$VIP:22" -r "$RIP5" -g -w 0
served=$(sessions 4)
echo "4 sessions with llc5 at weight 0 served by: $served"
if [ "$served" = "llc6 llc6 llc6 llc6 " ]; then
  pass weight-zero-sends-all-to-llc6
else
  fail weight-zero-sends-all-to-llc6 "4 sessions were served by: $served"
fi
