# The IpvsBackend contract suite of lb-ipvs against this VM's kernel, in the director's
# namespace: the same cases `cargo test` runs against the in-memory fake. Then one of each
# netlink request kind with hex dumps (lines marked IPVS-HEX), for the byte-level tests.
# Run: deploy/lab/lab.sh run --bin $CARGO_TARGET_DIR/release/ipvs-contract ipvs-contract

if ! command -v ipvs-contract >/dev/null 2>&1; then
  fail contract::binary "ipvs-contract is not in /opt/lb/bin: build it with cargo build --release -p lb-ipvs --features testing --bin ipvs-contract and pass --bin"
  return 0
fi

# ipvs-contract prints one LAB-RESULT line per case itself. LB_LAB_VM=1 lets it flush the
# table: this VM is thrown away after the scenario.
in_ns llclb1 env LB_LAB_VM=1 ipvs-contract
echo "LAB-INFO ipvs-contract exited with status $?"

# capture STEP: one capture step with every netlink message logged in hex.
capture() {
  in_ns llclb1 env LB_LAB_VM=1 LB_IPVS_HEXDUMP=1 LB_LOG=lb_ipvs=debug NO_COLOR=1 \
    ipvs-contract capture "$1" 2>&1 | sed -e 's/LAB-RESULT/LAB_RESULT/g' -e 's/^/IPVS-HEX /'
}

# Real traffic through the seed's service between setup and list, so that the dumped
# counters and connection counts are not all zero.
ip_ok=yes
in_ns llclb1 ip addr add "$VIP/32" dev eth0 || ip_ok=no
seed_redirect llc5 || ip_ok=no
seed_redirect llc6 || ip_ok=no
capture setup
served=""
for _ in 1 2 3 4; do
  served="$served $(ssh_to_vip 2>&1 | tr '\n' ' ')"
done
echo "LAB-INFO capture traffic served by:$served"
capture list
in_ns llclb1 ipvsadm -L -n --stats
capture teardown
if [ "$ip_ok" = yes ] && in_ns llclb1 ipvsadm -L -n | grep -q "^TCP"; then
  fail contract::capture "the table is not empty after capture teardown"
elif [ "$ip_ok" = yes ]; then
  pass contract::capture
else
  fail contract::capture "could not add the VIP or the REDIRECT rules"
fi
