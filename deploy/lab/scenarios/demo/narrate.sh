# Narration helpers of the demo (busybox sh, sourced after /lab/lib.sh and e2e/lib.sh): what a
# step does and what it saw, shown live on the host through `say`.

# lbctl on llclb1 finds the director by itself: as root it uses the director's admin socket,
# so commands read as an operator would type them there.

# chapter TITLE...: a numbered heading (chapters are numbered as they are told, whichever
# files tell them).
demo_chapter=0
chapter() {
  demo_chapter=$((demo_chapter + 1))
  say ""
  say "=== $demo_chapter. $*"
}

# finale TITLE...: the closing heading, not numbered.
finale() {
  say ""
  say "=== $*"
}

# demo_configs: the director's and the agents' configs copied into the run ($E2E_CONF from
# now on), where a chapter may edit them as an operator edits /etc/lb: the seed's service with
# its health check (steady_health_config), both agents.
demo_configs() {
  mkdir -p "$LAB_RUN/demo-conf"
  steady_health_config "$LAB_RUN/demo-conf/director.toml"
  cp "$E2E_CONF/agent-llc5.toml" "$E2E_CONF/agent-llc6.toml" "$LAB_RUN/demo-conf/"
  E2E_CONF=$LAB_RUN/demo-conf
  # shellcheck disable=SC2034 # start_director reads it
  DIRECTOR_CONFIG=$E2E_CONF/director.toml
}

# append_config FILE: stdin added to the end of FILE in one rename, so that a reload never
# reads half of it.
append_config() {
  cat "$1" - >"$1.new" && mv "$1.new" "$1"
}

# show HOST CMD...: says "HOST# CMD" and CMD's output, indented; returns CMD's status.
show() {
  _demo_host=$1
  shift
  say "[$_demo_host]# $*"
  shown "$_demo_host" "$@"
}

# show_sh HOST SCRIPT: like show, for a pipeline: says "HOST# SCRIPT", runs it in HOST's shell.
show_sh() {
  say "[$1]# $2"
  shown "$1" sh -c "$2"
}

# shown HOST CMD...: CMD's output, indented; returns CMD's status.
shown() {
  in_ns "$@" >"$LAB_RUN/show.out" 2>&1
  _demo_status=$?
  sed 's/^/      /' "$LAB_RUN/show.out" | say
  return "$_demo_status"
}

# show_file FILE: a config file without its comments, indented.
show_file() {
  say "  $1:"
  grep -v -e '^#' -e '^$' "$1" | sed 's/^/      /' | say
}

# ssh_sessions N [ADDR]: N new sessions from the client to ADDR (the VIP), one line each; the
# hosts in $served.
ssh_sessions() {
  served=
  _demo_n=0
  _demo_to=${2:-$VIP}
  while [ "$_demo_n" -lt "$1" ]; do
    if ! _demo_host=$(in_ns client ssh -n "root@$_demo_to" hostname 2>&1); then
      say "[client]\$ ssh root@$_demo_to hostname   ->  failed: $_demo_host"
      _demo_host=failed
    else
      say "[client]\$ ssh root@$_demo_to hostname   ->  $_demo_host"
    fi
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
    # For the console log: the state the step saw.
    lbctl_op status
    in_ns llclb1 ipvsadm -L -n --stats --exact
    return 1
  fi
}
