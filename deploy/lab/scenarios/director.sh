# lb-director from a config file on the real kernel (issue 3): the service with its scheduler,
# forward method and timeouts, the VIP on eth0, the seed's sysctls; agents join; drift by hand
# is repaired within resync_interval; a service on a VIP the director does not own is left
# alone; a second start over the same table writes nothing.

conf=$LAB_SCENARIO_DIR/director
foreign=10.0.0.200
. "$conf/pki.sh"

# A service nobody configured, on another VIP, made by hand before the director starts.
in_ns llclb1 ipvsadm -A -t "$foreign:80" -s wlc
in_ns llclb1 ipvsadm -a -t "$foreign:80" -r 10.0.0.50:80 -m -w 9
foreign_before=$(in_ns llclb1 ipvsadm -S -n | grep "$foreign")

director_pid=$(start_bg llclb1 director lb-director --config "$conf/director.toml")
if ! wait_until 60 listening llclb1 7700; then
  fail director-starts "no gRPC port after 60 s"
  show_log director
  exit 1
fi
pass director-starts

# dest_line RIP: the `ipvsadm -L -n` line of RIP:22 under VIP:22 ("-> ADDR:PORT FWD W A I").
dest_line() {
  in_ns llclb1 ipvsadm -L -n -t "$VIP:22" | awk -v d="$1:22" '$1 == "->" && $2 == d { print $3, $4 }'
}
has_dest() { [ "$(dest_line "$1")" = "$2" ]; }

check service-rr in_ns llclb1 sh -c "ipvsadm -L -n | grep -q '^TCP  $VIP:22 rr'"
check timeouts in_ns llclb1 sh -c "ipvsadm -L --timeout | grep -q 'Timeout (tcp tcpfin udp): 259200 120 300'"
check vip-on-eth0 in_ns llclb1 sh -c "ip -o addr show dev eth0 | grep -q 'inet $VIP/32'"
check ip-forward-off in_ns llclb1 sh -c 'test "$(cat /proc/sys/net/ipv4/ip_forward)" = 0'
check send-redirects-on in_ns llclb1 sh -c 'for i in all default eth0; do
  test "$(cat /proc/sys/net/ipv4/conf/$i/send_redirects)" = 1 || exit 1; done'

start_bg llc5 agent-llc5 lb-agent --config "$conf/agent-llc5.toml" >/dev/null
start_bg llc6 agent-llc6 lb-agent --config "$conf/agent-llc6.toml" >/dev/null
if wait_until 60 has_dest "$RIP5" "Route 1" && wait_until 30 has_dest "$RIP6" "Route 1"; then
  pass agents-join-as-route-weight-1
else
  fail agents-join-as-route-weight-1 "llc5: '$(dest_line "$RIP5")', llc6: '$(dest_line "$RIP6")'"
  show_log director; show_log agent-llc5
fi

# Mutual TLS: lbctl as root on the director host goes through the admin socket; over TLS the
# admin certificate may drain, an agent's certificate may not.
tls_lbctl() { in_ns "$1" lbctl --director "https://$DIP:7700" --ca "$LAB_PKI/ca.pem" --cert "$LAB_PKI/$2.pem" --key "$LAB_PKI/$2.key" "$3" "$4"; }
check lbctl-admin-socket in_ns llclb1 sh -c 'lbctl status | grep -q llc5'
if out=$(tls_lbctl client llc6 drain llc5 2>&1); then
  fail agent-cert-cannot-drain "an agent's certificate drained llc5: $out"
else
  case "$out" in
    *"is not an admin"*) pass agent-cert-cannot-drain ;;
    *) fail agent-cert-cannot-drain "unexpected refusal: $out" ;;
  esac
fi
check admin-cert-drains tls_lbctl client ops drain llc5
if wait_until 5 has_dest "$RIP5" "Route 0"; then pass drain-over-tls-weight-0; else fail drain-over-tls-weight-0 "llc5 is '$(dest_line "$RIP5")'"; fi
check admin-cert-undrains tls_lbctl client ops undrain llc5
wait_until 5 has_dest "$RIP5" "Route 1" || fail undrain-over-tls "llc5 is '$(dest_line "$RIP5")'"
check audit-log grep -q 'audit: admin action caller=cert:ops action="drain" target="llc5" result="ok"' /var/log/lab/director.log

# Drift by hand: resync_interval is 1s, allow a few.
in_ns llclb1 ipvsadm -d -t "$VIP:22" -r "$RIP5:22"
if wait_until 5 has_dest "$RIP5" "Route 1"; then
  pass deleted-destination-repaired
else
  fail deleted-destination-repaired "llc5 is '$(dest_line "$RIP5")' 5 s after ipvsadm -d"
fi
in_ns llclb1 ipvsadm -e -t "$VIP:22" -r "$RIP6:22" -g -w 7
if wait_until 5 has_dest "$RIP6" "Route 1"; then
  pass edited-weight-repaired
else
  fail edited-weight-repaired "llc6 is '$(dest_line "$RIP6")' 5 s after ipvsadm -e -w 7"
fi

# A second start over the same table: nothing is written, nothing disappears meanwhile.
table_before=$(in_ns llclb1 ipvsadm -S -n | sort)
kill -TERM "$director_pid"
wait_until 10 sh -c "! kill -0 $director_pid 2>/dev/null" || fail director-stops "still running 10 s after SIGTERM"
table_stopped=$(in_ns llclb1 ipvsadm -S -n | sort)
if [ "$table_stopped" = "$table_before" ]; then
  pass stop-leaves-table
else
  fail stop-leaves-table "table changed when the director stopped"
fi
check stop-leaves-vip in_ns llclb1 sh -c "ip -o addr show dev eth0 | grep -q 'inet $VIP/32'"
start_bg llclb1 director-again lb-director --config "$conf/director.toml" >/dev/null
if wait_until 60 grep -q "first reconcile done" /var/log/lab/director-again.log; then
  if grep -q "first reconcile done applied=0 failed=0" /var/log/lab/director-again.log; then
    pass second-start-writes-nothing
  else
    fail second-start-writes-nothing "$(grep 'first reconcile done' /var/log/lab/director-again.log)"
  fi
else
  fail second-start-writes-nothing "no first reconcile in 60 s"
  show_log director-again
fi
sleep 3
table_after=$(in_ns llclb1 ipvsadm -S -n | sort)
if [ "$table_after" = "$table_before" ]; then
  pass restart-keeps-table
else
  fail restart-keeps-table "before: $table_before / after: $table_after"
fi

foreign_after=$(in_ns llclb1 ipvsadm -S -n | grep "$foreign")
if [ "$foreign_after" = "$foreign_before" ]; then
  pass foreign-service-untouched
else
  fail foreign-service-untouched "before: $foreign_before / after: $foreign_after"
fi
