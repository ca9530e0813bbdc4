#!/bin/bash
# Runs inside the clean Debian 12 root that deploy/package-test.sh prepares, with the two
# packages, this script and verify.sh in /tmp/lb. Fails at the first check that does not hold.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
cd /tmp/lb

step() { printf -- '--- %s\n' "$*"; }
fail() { echo "package-test: $*" >&2; exit 1; }

# systemctl stand-in: records what the maintainer scripts ask of systemd, and says "inactive".
# /usr/local/sbin comes first in PATH, also in apt's own PATH for dpkg (DPkg::Path, which
# leaves /usr/local out by default); the real systemctl stays untouched.
cat >/usr/local/sbin/systemctl <<'STUB'
#!/bin/sh
echo "$*" >>/tmp/lb/systemctl.log
case "$1" in is-active) exit 3 ;; esac
exit 0
STUB
chmod 755 /usr/local/sbin/systemctl
calls() { cat /tmp/lb/systemctl.log 2>/dev/null || true; }
apt_get() { apt-get -o DPkg::Path=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

step "apt-get install both packages (Depends from the mirror)"
apt-get update -qq
apt_get install -y -qq --no-install-recommends ./lb-director_*.deb ./lb-agent_*.deb >install.log 2>&1 ||
  { cat install.log; fail "apt-get install failed"; }
grep -q "lb-director is installed but not enabled" install.log || fail "no first-steps message for lb-director"
grep -q "lb-agent is installed but not enabled" install.log || fail "no first-steps message for lb-agent"
dpkg -s iptables >/dev/null || fail "lb-agent's Depends did not bring iptables"
[ -z "$(calls)" ] || fail "systemctl called without systemd running: $(calls)"

step "files where an operator looks for them"
for path in \
  /usr/sbin/lb-director /usr/bin/lbctl /usr/sbin/lb-agent \
  /usr/lib/systemd/system/lb-director.service /usr/lib/systemd/system/lb-agent.service \
  /usr/share/doc/lb-director/examples/director.toml /usr/share/doc/lb-agent/examples/agent.toml \
  /usr/share/doc/lb-director/copyright /usr/share/doc/lb-agent/copyright \
  /usr/share/man/man8/lb-director.8.gz /usr/share/man/man8/lb-agent.8.gz \
  /usr/share/man/man1/lbctl.1.gz /usr/share/man/man1/lbctl-drain.1.gz \
  /usr/share/man/man1/lbctl-status.1.gz /usr/share/man/man1/lbctl-certs-issue.1.gz \
  /usr/share/bash-completion/completions/lbctl /usr/share/bash-completion/completions/lb-director \
  /usr/share/bash-completion/completions/lb-agent \
  /usr/share/zsh/vendor-completions/_lbctl /usr/share/zsh/vendor-completions/_lb-director \
  /usr/share/zsh/vendor-completions/_lb-agent \
  /usr/share/fish/vendor_completions.d/lbctl.fish \
  /usr/share/fish/vendor_completions.d/lb-director.fish \
  /usr/share/fish/vendor_completions.d/lb-agent.fish; do
  [ -f "$path" ] || fail "missing $path"
done
[ ! -e /etc/lb/director.toml ] && [ ! -e /etc/lb/agent.toml ] || fail "a package shipped a config in /etc/lb"
grep -qx 'ExecStart=/usr/sbin/lb-director --config /etc/lb/director.toml' \
  /usr/lib/systemd/system/lb-director.service || fail "lb-director.service: ExecStart is not /usr/sbin/lb-director"
grep -qx 'ExecStart=/usr/sbin/lb-agent --config /etc/lb/agent.toml' \
  /usr/lib/systemd/system/lb-agent.service || fail "lb-agent.service: ExecStart is not /usr/sbin/lb-agent"
for page in lb-director lb-agent lbctl lbctl-drain lbctl-status; do
  man -w "$page" >/dev/null || fail "man -w $page finds nothing"
done
man lbctl-drain 2>/dev/null | grep -q -- "--wait" || fail "man lbctl-drain does not show --wait"
[ -z "$(ls /etc/systemd/system/multi-user.target.wants/lb-* 2>/dev/null)" ] ||
  fail "a package enabled its unit"

step "the binaries run"
lb-agent --help | grep -q -- "--config" || fail "lb-agent --help"
lb-director --version | grep -q "^lb-director " || fail "lb-director --version"
lbctl --help | grep -q "drain" || fail "lbctl --help"
lbctl status --help | grep -q -- "--watch" || fail "lbctl status --help has no --watch"
bash -c 'source /usr/share/bash-completion/completions/lbctl && complete -p lbctl' >/dev/null ||
  fail "the bash completion of lbctl does not load"

step "the README's first steps: certificates, the example config, --check"
lbctl certs init /etc/lb/tls >/dev/null
lbctl certs issue /etc/lb/tls llclb1 --ip 129.129.190.53 >/dev/null
cp /usr/share/doc/lb-director/examples/director.toml /etc/lb/director.toml
lb-director --check --config /etc/lb/director.toml || fail "lb-director --check on the example config"
cp /usr/share/doc/lb-agent/examples/agent.toml /etc/lb/agent.toml
set +e
printf 'listen = \n' >/tmp/lb/bad.toml
lb-director --check --config /tmp/lb/bad.toml >/dev/null 2>&1
code=$?
set -e
[ "$code" -eq 64 ] || fail "lb-director --check on a bad config exited $code, not 64"

step "systemd-analyze verify on the installed units"
bash /tmp/lb/verify.sh /usr/lib/systemd/system

step "maintainer scripts under systemd: an upgrade reloads, restarts the director only"
mkdir -p /run/systemd/system
dpkg -i ./lb-director_*.deb ./lb-agent_*.deb >upgrade.log 2>&1 || { cat upgrade.log; fail "dpkg -i again"; }
calls | grep -qx "daemon-reload" || fail "no daemon-reload after the upgrade: $(calls)"
calls | grep -qx "try-restart lb-director.service" || fail "the director was not restarted: $(calls)"
! calls | grep -E "(start|restart|enable).*lb-agent" || fail "the upgrade restarted or enabled lb-agent"
! calls | grep -E "^(start|enable)" || fail "the upgrade started or enabled a unit"
rm -f /tmp/lb/systemctl.log

step "purge removes what the packages made, and only that"
# What a running director would have made: its state and runtime directories.
mkdir -p /var/lib/lb-director /run/lb-director
echo '{}' >/var/lib/lb-director/state.json
mkdir -p /etc/systemd/system/multi-user.target.wants
ln -s /usr/lib/systemd/system/lb-director.service /etc/systemd/system/multi-user.target.wants/
dpkg -L lb-director lb-agent | sort -u >owned.list
apt_get purge -y -qq lb-director lb-agent >purge.log 2>&1 || { cat purge.log; fail "apt-get purge"; }
calls | grep -qx "stop lb-director.service" || fail "removal did not stop the director: $(calls)"
calls | grep -qx "stop lb-agent.service" || fail "removal did not stop the agent: $(calls)"
left=()
while read -r path; do
  # Shared directories (/usr/sbin, /usr/share/man/man1) stay; every file and every directory
  # of ours must be gone.
  if [ -f "$path" ] || [ -L "$path" ]; then left+=("$path"); fi
  case "$path" in
    */lb-director | */lb-agent | */lb-director/* | */lb-agent/*) [ -e "$path" ] && left+=("$path") ;;
  esac
done <owned.list
[ ${#left[@]} -eq 0 ] || fail "left after purge: ${left[*]}"
for path in /var/lib/lb-director /run/lb-director /etc/systemd/system/multi-user.target.wants/lb-director.service; do
  [ ! -e "$path" ] && [ ! -L "$path" ] || fail "purge left $path"
done
for pkg in lb-director lb-agent; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [ -z "$status" ] || [ "$status" = not-installed ] || fail "$pkg is still $status"
done
# The operator's own files are theirs: purge leaves them.
[ -f /etc/lb/director.toml ] && [ -f /etc/lb/tls/ca.key ] || fail "purge removed the operator's /etc/lb files"
echo "package-test: all checks passed inside the root"
