# The seed's LVS-DR topology (busybox sh, sourced by /init after lib.sh).
#
# One bridge br0 in the VM's root namespace; each host is a network namespace (with its own
# UTS namespace, so its hostname is its name) joined to br0 by a veth pair whose inner end is
# eth0:
#   client 10.0.0.10   llclb1 10.0.0.2 (director; the VIP is NOT added here)
#   llc5   10.0.0.11   llc6   10.0.0.12 (realservers: OpenSSH sshd on port 22, no iptables rule)
# Root logs in from the client with a key made at boot.

# add_host NAME ADDRESS
add_host() {
  /sbin/ip netns add "$1" || return 1
  mkdir -p "$LAB_RUN/uts"
  : >"$LAB_RUN/uts/$1"
  unshare --uts="$LAB_RUN/uts/$1" hostname "$1" || return 1
  /sbin/ip link add "veth-$1" type veth peer name eth0 netns "$1" || return 1
  /sbin/ip link set "veth-$1" master br0 up || return 1
  # One ip process for the three steps: every process start is slow under emulation.
  printf 'link set lo up\naddr add %s/24 dev eth0\nlink set eth0 up\n' "$2" |
    /sbin/ip -n "$1" -batch -
}

write_ssh_config() {
  cat >/etc/ssh/sshd_config <<'EOF'
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
# tests open many sessions at once
MaxStartups 100
MaxSessions 100
EOF
  # Plain `ssh root@10.0.0.100 cmd` works from any namespace: the host key changes with
  # every boot and differs per realserver behind one VIP, so it is never checked.
  cat >/root/.ssh/config <<'EOF'
Host *
  User root
  IdentityFile /root/.ssh/id_ed25519
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
  ConnectTimeout 10
  # OpenSSH's own curve25519 code takes seconds on the emulated CPU; OpenSSL's P-256 does not.
  KexAlgorithms ecdh-sha2-nistp256,curve25519-sha256
EOF
}

setup_ssh() {
  # sshd's privilege separation needs an empty root-owned directory and the sshd user.
  mkdir -p /run/sshd /etc/ssh /root/.ssh
  chmod 755 /run/sshd
  chmod 700 /root/.ssh
  ssh-keygen -q -t ed25519 -N '' -C "lab host key" -f /etc/ssh/ssh_host_ed25519_key || return 1
  ssh-keygen -q -t ed25519 -N '' -C "root@client" -f /root/.ssh/id_ed25519 || return 1
  cp /root/.ssh/id_ed25519.pub /root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
  write_ssh_config
}

# start_sshd HOST: an sshd on port 22 inside HOST, logging to /var/log/lab/sshd-HOST.log.
start_sshd() {
  in_ns "$1" /usr/sbin/sshd -E "/var/log/lab/sshd-$1.log" -o "PidFile=$LAB_RUN/sshd-$1.pid"
}

# topology_up: builds everything; on failure says what failed and returns 1.
topology_up() {
  /sbin/ip link set lo up || return 1
  /sbin/ip link add br0 type bridge || return 1
  /sbin/ip link set br0 up || return 1
  add_host client "$CLIENT" || { echo "lab: cannot set up client"; return 1; }
  add_host llclb1 "$DIP" || { echo "lab: cannot set up llclb1"; return 1; }
  add_host llc5 "$RIP5" || { echo "lab: cannot set up llc5"; return 1; }
  add_host llc6 "$RIP6" || { echo "lab: cannot set up llc6"; return 1; }
  setup_ssh || { echo "lab: cannot make ssh keys"; return 1; }
  for _lab_rs in llc5 llc6; do
    start_sshd "$_lab_rs" || { echo "lab: sshd does not start in $_lab_rs"; return 1; }
  done
  for _lab_rs in llc5 llc6; do
    if ! wait_until 20 listening "$_lab_rs" 22; then
      echo "lab: sshd in $_lab_rs does not listen on port 22"
      show_log "sshd-$_lab_rs"
      return 1
    fi
  done
  # The sessions scenarios rely on: the client reaches each realserver, which names itself.
  # Both at once: a session takes seconds under emulation.
  for _lab_rs in "llc5 $RIP5" "llc6 $RIP6"; do
    # shellcheck disable=SC2086 # split "name address"
    set -- $_lab_rs
    in_ns client ssh -n "root@$2" hostname >"$LAB_RUN/ssh-check-$1" 2>&1 &
  done
  wait
  for _lab_rs in llc5 llc6; do
    _lab_name=$(cat "$LAB_RUN/ssh-check-$_lab_rs")
    [ "$_lab_name" = "$_lab_rs" ] || { echo "lab: ssh from client to $_lab_rs printed: $_lab_name"; return 1; }
  done
}

# add_second_director: llclb2 10.0.0.3 beside llclb1 on the bridge, for the scenarios that
# need two directors (e2e-ha); the others do not pay for it.
DIP2=10.0.0.3
add_second_director() {
  add_host llclb2 "$DIP2" || { echo "lab: cannot set up llclb2"; return 1; }
  LAB_HOSTS="$LAB_HOSTS llclb2"
}
