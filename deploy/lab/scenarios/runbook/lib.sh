# The runbook's runner (scenario runbook.sh): reads docs/operations.md and executes it in the
# lab, in document order, as its preface describes:
# - a fenced block whose info string is `sh lab=HOST` is an operator's commands on HOST: they
#   run there in `sh -e -o pipefail` (the lab's addresses in place of the seed's, from the
#   preface's table; the shims of runbook/shims first on PATH), and the step passes when they
#   exit 0. The first step that fails stops the runbook.
# - `<!-- lab-setup ... -->` is hidden scenario code that stages what the next steps meet (an
#   open session, a dead sshd, a new host); `<!-- lab-check ... -->` is hidden scenario code
#   that asserts what the text claims, and must report at least one result. Both run in this
#   shell, with the lab's helpers, $RUNBOOK_OUT naming the last step's output.
# - any other shell block (sh, bash, console, shell) is an error: nothing in the runbook may
#   escape the lab; and every command the prose quotes (`lbctl ...`, `systemctl ...`) must be
#   in some step.
# Sourced after /lab/lib.sh and e2e/lib.sh (busybox sh).
# shellcheck shell=sh

RUNBOOK_DIR=$LAB_RUN/runbook
RUNBOOK_SHIMS=$LAB_SCENARIO_DIR/runbook/shims
# An operator's login PATH, with the lab's systemctl, journalctl, reboot and apt-get first.
RUNBOOK_PATH=$RUNBOOK_SHIMS:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The longest a step may take (a drain waits for a session to end).
RUNBOOK_STEP_TIMEOUT=180
RUNBOOK_OUT=$RUNBOOK_DIR/last.out

# The prose's commands that must appear in a step: inline code starting with one of these.
RUNBOOK_COMMANDS="lbctl systemctl journalctl curl ipvsadm ssh scp iptables apt-get reboot openssl lb-director lb-agent"

# runbook_extract DOC [only|except TITLE]: DOC's steps and hidden blocks as
# $RUNBOOK_DIR/NNN.{step,setup,check} with NNN.meta ("HOST NAME LINE" for a step, "- NAME LINE"
# for the others), the address map as a sed script, the prose's commands; problems in
# $RUNBOOK_DIR/errors. With `only TITLE` the blocks and quoted commands of the section headed
# `## TITLE` alone are taken, with `except TITLE` those of every other section (a scenario of
# its own runs a section that needs another topology); every section is checked for problems.
runbook_extract() {
  rm -rf "$RUNBOOK_DIR"
  mkdir -p "$RUNBOOK_DIR"
  awk -v dir="$RUNBOOK_DIR" -v commands="$RUNBOOK_COMMANDS" -v filter="${2:-}" -v title="${3:-}" '
    function problem(msg) { print "docs/operations.md line " NR ": " msg > (dir "/errors") }
    function open_chunk(kind, host) {
      # A block of a section left out is read (for its problems) but not kept.
      if (!taken) return
      n++
      file = sprintf("%s/%03d.%s", dir, n, kind)
      printf "" > file
      if (kind == "step") { step++; print host, slug "-" step, NR > (file ".meta") }
      else print "-", slug "-" kind, NR > (file ".meta")
      close(file ".meta")
    }
    BEGIN {
      split(commands, c, " "); for (i in c) known[c[i]] = 1; slug = "preface"
      taken = (filter != "only")
    }
    mode == "" && /^## / {
      heading = substr($0, 4)
      if (filter == "only") taken = (heading == title)
      else if (filter == "except") taken = (heading != title)
      if (heading == title) titled = 1
      # The first three words name the steps of a section: rolling-update-of-2.
      split(tolower(heading), words, /[^a-z0-9]+/)
      slug = words[1]; for (i = 2; i <= 3 && words[i] != ""; i++) slug = slug "-" words[i]
      step = 0
      next
    }
    mode == "" && /^```/ {
      info = substr($0, 4)
      if (info ~ /^(sh|bash|shell|console)([ \t]|$)/) {
        if (match(info, /[ \t]lab=[a-z0-9]+[ \t]*$/)) {
          host = substr(info, RSTART + 5); sub(/[ \t]+$/, "", host)
          open_chunk("step", host); mode = "step"
        } else { problem("a shell block without lab=HOST: the lab runs every command of the runbook"); mode = "skip" }
      } else {
        if (info ~ /lab=/) problem("lab=HOST on a block that is not sh")
        mode = "skip"
      }
      next
    }
    (mode == "step" || mode == "skip") && /^```[ \t]*$/ { if (mode == "step" && taken) close(file); mode = ""; next }
    mode == "step" { if (taken) print > file; next }
    mode == "skip" { next }
    mode == "" && /^<!-- lab-(setup|check)[ \t]*$/ {
      kind = $0; sub(/^<!-- lab-/, "", kind); sub(/[ \t]*$/, "", kind)
      open_chunk(kind, ""); mode = "hidden"; next
    }
    mode == "hidden" && /^-->[ \t]*$/ { if (taken) close(file); mode = ""; next }
    mode == "hidden" { if (taken) print > file; next }
    mode == "" && /^<!-- *lab/ { problem("a lab comment must be <!-- lab-setup or <!-- lab-check alone on its line") }
    # A row of the preface table: the seed address, then the lab address, each in backticks.
    mode == "" && /^\|/ {
      line = $0; found = 0
      while (match(line, /`[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+`/)) {
        addr[++found] = substr(line, RSTART + 1, RLENGTH - 2); line = substr(line, RSTART + RLENGTH)
      }
      if (found == 2) {
        seed = addr[1]; gsub(/\./, "\\.", seed)
        print "s/(^|[^0-9.])" seed "([^0-9]|$)/\\1" addr[2] "\\2/g" > (dir "/addresses.sed")
      }
    }
    mode == "" && taken {
      line = $0
      while (match(line, /`[^`]+`/)) {
        span = substr(line, RSTART + 1, RLENGTH - 2); line = substr(line, RSTART + RLENGTH)
        split(span, w, " ")
        if (w[1] in known) print span > (dir "/prose")
      }
    }
    END {
      if (mode != "") problem("a block or lab comment is not closed at the end of the file")
      if (filter != "" && !titled) problem("no section headed ## " title)
    }
  ' "$1"
  touch "$RUNBOOK_DIR/addresses.sed" "$RUNBOOK_DIR/prose"
}

# runbook_prose_commands: every command quoted in the prose is in some step (verbatim).
runbook_prose_commands() {
  cat "$RUNBOOK_DIR"/*.step >"$RUNBOOK_DIR/all-steps" 2>/dev/null
  _rb_missing=
  while IFS= read -r _rb_span; do
    grep -qF -- "$_rb_span" "$RUNBOOK_DIR/all-steps" || _rb_missing="$_rb_missing '$_rb_span'"
  done <"$RUNBOOK_DIR/prose"
  if [ -z "$_rb_missing" ]; then
    pass runbook-prose-commands-are-run
  else
    fail runbook-prose-commands-are-run "quoted in the text but in no lab=HOST block:$_rb_missing"
  fi
}

# runbook_script CHUNK: the step as the shell in its host runs it.
runbook_script() {
  cat <<EOF
export HOME=/root PATH=$RUNBOOK_PATH
set -o pipefail
cd "\$HOME"
# busybox sh runs its own applet for these names whatever PATH says.
ip() { /usr/sbin/ip "\$@"; }
reboot() { $RUNBOOK_SHIMS/reboot "\$@"; }
poweroff() { echo "lab: no poweroff of a lab host" >&2; return 1; }
halt() { poweroff; }
EOF
  sed -E -f "$RUNBOOK_DIR/addresses.sed" "$1"
}

# runbook_step CHUNK: runs one step; PASS/FAIL under its name; status 1 when it failed.
runbook_step() {
  read -r _rb_host _rb_name _rb_line <"$1.meta"
  runbook_script "$1" >"$1.sh"
  echo "runbook: $_rb_name on $_rb_host (docs/operations.md line $_rb_line):"
  sed -e 's/LAB-RESULT/LAB_RESULT/g' -e "s/^/    $_rb_host# /" "$1"
  # Not through in_ns, so that $! is the step's own shell (wait_exit waits for it).
  nsenter --uts="$LAB_RUN/uts/$_rb_host" /sbin/ip netns exec "$_rb_host" sh -e "$1.sh" \
    >"$RUNBOOK_DIR/running.out" 2>&1 </dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
  wait_exit "$!" "$RUNBOOK_STEP_TIMEOUT"
  mv "$RUNBOOK_DIR/running.out" "$1.out"
  cp "$1.out" "$RUNBOOK_OUT"
  sed -e 's/LAB-RESULT/LAB_RESULT/g' -e 's/^/    | /' "$1.out"
  if [ "$exit_status" = 0 ]; then
    pass "$_rb_name"
    return 0
  fi
  fail "$_rb_name" "the commands of docs/operations.md line $_rb_line on $_rb_host: exit status $exit_status: $(tail -n 3 "$1.out" | tr '\n' ' ')"
  return 1
}

# runbook_check CHUNK: a hidden check; it must report something.
runbook_check() {
  read -r _ _rb_name _rb_line <"$1.meta"
  _rb_before=$(grep -c . "$LAB_RUN/results" 2>/dev/null)
  # shellcheck disable=SC1090 # a block of the runbook
  . "$1"
  if [ "$(grep -c . "$LAB_RUN/results" 2>/dev/null)" = "${_rb_before:-0}" ]; then
    fail "$_rb_name" "the lab-check at docs/operations.md line $_rb_line reported no result"
  fi
}

# runbook_run DOC [only|except TITLE]: extracts and runs DOC (or the sections runbook_extract
# takes); PASS/FAIL for the whole in runbook-complete.
runbook_run() {
  runbook_extract "$@"
  if [ -s "$RUNBOOK_DIR/errors" ]; then
    fail runbook-parses "$(tr '\n' ';' <"$RUNBOOK_DIR/errors")"
    return 1
  fi
  check runbook-has-steps ls "$RUNBOOK_DIR"/001.*
  check runbook-has-addresses test -s "$RUNBOOK_DIR/addresses.sed"
  runbook_prose_commands
  _rb_left=
  for _rb_chunk in "$RUNBOOK_DIR"/[0-9][0-9][0-9].*; do
    case $_rb_chunk in
      *.meta | *.sh | *.out) continue ;;
    esac
    if [ -n "$_rb_left" ]; then
      _rb_left="$_rb_left ${_rb_chunk##*/}"
      continue
    fi
    # shellcheck disable=SC1090 # a block of the runbook
    case $_rb_chunk in
      *.step) runbook_step "$_rb_chunk" || _rb_left=after ;;
      *.setup) . "$_rb_chunk" ;;
      *.check) runbook_check "$_rb_chunk" ;;
    esac
  done
  if [ -n "$_rb_left" ]; then
    fail runbook-complete "stopped at a failed step; not run:${_rb_left#after}"
    return 1
  fi
  pass runbook-complete
}

# --- the lab installed as a site runs lb (runbook.sh, runbook-ha.sh) --------------------------

# runbook_install_paths: the binaries at the packages' paths (deploy/package.sh), which the
# units and the runbook name; sshd's SFTP; the admin host's ~/lb-ca.
runbook_install_paths() {
  ln -s /opt/lb/bin/lb-director /usr/sbin/lb-director
  ln -s /opt/lb/bin/lb-agent /usr/sbin/lb-agent
  ln -s /opt/lb/bin/lbctl /usr/bin/lbctl
  # scp runs ssh by its Debian path.
  ln -s /usr/sbin/ssh /usr/bin/ssh
  # scp speaks SFTP (OpenSSH 9), which the lab's sshd_config leaves out; Debian's has it.
  # Every sshd must start again (as a unit) to read it.
  echo "Subsystem sftp /usr/lib/openssh/sftp-server" >>/etc/ssh/sshd_config
  # The admin host (the lab's client) keeps the CA and every certificate it issued, in ~/lb-ca.
  cp -a "$LAB_PKI" /root/lb-ca
}

# install_host HOST CONFIG NAME: HOST's own /etc/lb (the CA certificate, its own certificate
# and key, CONFIG as NAME), the lb package that host has.
install_host() {
  _etc=$(etc_of "$1")
  mkdir -p "$_etc/tls" "$LAB_RUN/units/$1"
  chmod 700 "$_etc/tls"
  cp "$LAB_PKI/ca.pem" "$LAB_PKI/$1.pem" "$LAB_PKI/$1.key" "$_etc/tls/"
  cp "$2" "$_etc/$3"
  case $3 in
    director.toml) echo lb-director ;;
    agent.toml) echo lb-agent ;;
  esac >"$LAB_RUN/units/$1/packages"
}

# --- for the hidden blocks ---------------------------------------------------------------------

# on HOST CMD...: CMD in HOST with the runbook's PATH (the shims), as a step would run it.
on() {
  _rb_on=$1
  shift
  in_ns "$_rb_on" env "PATH=$RUNBOOK_PATH" "$@"
}

# output_has ERE: the last step's output has a line matching ERE.
output_has() {
  grep -qE -- "$1" "$RUNBOOK_OUT"
}

# reloads_before LOG: remembers how many reload outcomes ("reloaded", "reload refused") the
# daemon log LOG holds; reload_answered LOG waits (30 s) for one more.
reloads_before() {
  reload_mark=$(log_count "$1" 'reloaded|reload refused')
}
reload_answered() {
  wait_until 30 log_count_above "$1" 'reloaded|reload refused' "$reload_mark"
}

# etc_of HOST: what HOST sees as /etc/lb (ip netns exec binds /etc/netns/HOST/* over /etc/*).
etc_of() {
  echo "/etc/netns/$1/lb"
}

# new_host NAME ADDRESS: a fresh realserver on the lab's bridge, as the site's installation
# leaves it: named in /etc/hosts, sshd running (enabled), an empty /etc/lb, nothing of lb.
new_host() {
  mkdir -p "$(etc_of "$1")"
  add_host "$1" "$2" || return 1
  echo "$2	$1" >>/etc/hosts
  on "$1" systemctl enable --now ssh
}

# end_session_when CMD...: the long-lived session (open_session, descriptor 3) ends, as its user
# logs out, once CMD succeeds (polled up to $RUNBOOK_STEP_TIMEOUT s) in the background; the
# next steps run meanwhile.
end_session_when() {
  # The subshell keeps the session's input open; its exit is the session's end of input.
  (
    wait_until "$RUNBOOK_STEP_TIMEOUT" "$@"
  ) &
  exec 3>&-
}

# first_pass_applied_nothing: the last "first reconcile done" line of the last step's output
# says the start wrote nothing to the kernel.
first_pass_applied_nothing() {
  grep 'first reconcile done' "$RUNBOOK_OUT" | tail -n 1 | grep -q 'applied=0 failed=0'
}
