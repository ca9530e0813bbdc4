# Narration helpers of the demo (busybox sh, sourced after /lab/lib.sh and e2e/lib.sh): what a
# step does and what it saw, shown live on the host through `say`.

# lbctl on llclb1 finds the director by itself: as root it uses the director's admin socket,
# so commands read as an operator would type them there.

# chapter TITLE...: a heading.
chapter() {
  say ""
  say "=== $*"
}

# show HOST CMD...: says "HOST# CMD" and CMD's output, indented; returns CMD's status.
show() {
  _demo_host=$1
  shift
  say "[$_demo_host]# $*"
  in_ns "$_demo_host" "$@" >"$LAB_RUN/show.out" 2>&1
  _demo_status=$?
  sed 's/^/      /' "$LAB_RUN/show.out" | say
  return "$_demo_status"
}

# show_file FILE: a config file without its comments, indented.
show_file() {
  say "  $1:"
  grep -v -e '^#' -e '^$' "$1" | sed 's/^/      /' | say
}

# ssh_sessions N: N new sessions from the client, one line each; the hosts in $served.
ssh_sessions() {
  served=
  _demo_n=0
  while [ "$_demo_n" -lt "$1" ]; do
    _demo_host=$(ssh_to_vip 2>&1) || _demo_host=failed
    say "[client]\$ ssh root@$VIP hostname   ->  $_demo_host"
    served="$served${served:+ }$_demo_host"
    _demo_n=$((_demo_n + 1))
  done
}

# verdict NAME CMD...: a result line for the test run, and a plain word for the watcher.
verdict() {
  _demo_name=$1
  shift
  if "$@"; then
    pass "$_demo_name"
  else
    fail "$_demo_name" "demo step did not show what it should: $*"
    return 1
  fi
}
