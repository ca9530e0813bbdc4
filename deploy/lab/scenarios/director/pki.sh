# The lab's cluster CA and certificates, minted with lbctl (no openssl by hand): the director
# (reached at the DIP), the two realservers, and the admin "ops". Sourced by scenarios.
# shellcheck shell=sh
LAB_PKI=/etc/lb/tls
if [ ! -f "$LAB_PKI/ca.pem" ]; then
  lbctl certs init "$LAB_PKI" >/dev/null
  lbctl certs issue "$LAB_PKI" llclb1 --ip "$DIP" >/dev/null
  for who in llc5 llc6 ops; do
    lbctl certs issue "$LAB_PKI" "$who" >/dev/null
  done
fi
