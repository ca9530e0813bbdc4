# shellcheck shell=bash
# Boots the lab VM under qemu, one fresh boot per scenario, and turns its console into
# results. Sourced by lab.sh; uses LAB_CACHE, LAB_OUT.

# KVM does not work on this machine kind (see the lab notes): software emulation only.
# -nic none: the VM has no network device, so nothing in it can reach beyond the VM.
QEMU_ARGS=(-accel tcg -cpu max -m 1024 -smp 2 -nographic -no-reboot -nic none)
# quiet/loglevel=0 keep kernel messages from splitting result lines; panic=-1 with
# -no-reboot turns a kernel panic into qemu exiting.
KERNEL_CMDLINE="console=ttyS0 quiet loglevel=0 panic=-1"
# LAB_DEBUG=1 shows the kernel's messages, for a VM that dies during boot.
if [[ ${LAB_DEBUG:-0} == 1 ]]; then
  KERNEL_CMDLINE="console=ttyS0 loglevel=7 panic=-1"
fi
# Seconds a VM gets to stop after SIGTERM before it is killed.
VM_STOP_GRACE=5

vm_pid=
results_seen=0

# qemu_command KVER IMAGE CMDLINE_EXTRA: sets the array qemu_cmd.
qemu_command() {
  local kver=$1 image=$2 extra=$3
  qemu_cmd=(
    qemu-system-x86_64 "${QEMU_ARGS[@]}"
    -kernel "$LAB_CACHE/kernel/$kver/boot/vmlinuz-$kver" -initrd "$image"
    -append "$KERNEL_CMDLINE $extra"
  )
}

stop_vm() {
  [[ -n $vm_pid ]] || return 0
  kill -TERM "$vm_pid" 2>/dev/null || true
  local waited=0
  while kill -0 "$vm_pid" 2>/dev/null && ((waited < VM_STOP_GRACE * 10)); do
    sleep 0.1
    waited=$((waited + 1))
  done
  kill -KILL "$vm_pid" 2>/dev/null || true
  wait "$vm_pid" 2>/dev/null || true
  vm_pid=
}

# Result, narration and progress lines of a console log. Serial output ends lines with \r\n
# and kernel messages may precede the token on a line, so match from the token on.
console_lines() {
  tr -d '\r' <"$1" | grep -a -o 'LAB-\(RESULT \(PASS\|FAIL\) \|INFO \|SAY \|DONE\).*' || true
}

# The end of a console log without carriage returns and the firmware's terminal escapes.
console_tail() {
  tr -d '\r' <"$1" | sed -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' | tail -n 15 |
    sed 's/^/    | /'
}

# Prints the lines of LOG not shown yet: results indented, progress as lab: lines, a
# scenario's narration (`say`) as it is.
show_new_lines() {
  local log=$1 line count=0
  while IFS= read -r line; do
    count=$((count + 1))
    ((count > results_seen)) || continue
    case $line in
      LAB-RESULT\ *) echo "  ${line#LAB-RESULT }" ;;
      LAB-INFO\ *) echo "lab: $scenario_name: ${line#LAB-INFO }" ;;
      LAB-SAY\ *) echo "${line#LAB-SAY }" ;;
    esac
  done < <(console_lines "$log")
  results_seen=$count
}

# scenario_timeout NAME TIMEOUT: TIMEOUT, or more when the scenario asks for more with a line
# "# lab-timeout: SECS" (a long narrated one, such as the demo, on a loaded machine).
scenario_timeout() {
  local wanted
  wanted=$(sed -n 's/^# lab-timeout: \([0-9][0-9]*\)$/\1/p' "$LAB_DIR/scenarios/$1.sh" | head -n 1)
  if [[ -n $wanted ]] && ((wanted > $2)); then
    echo "$wanted"
  else
    echo "$2"
  fi
}

# boot_scenario KVER IMAGE TIMEOUT NAME: boots, waits, and adds to passed/failed.
boot_scenario() {
  local kver=$1 image=$2 timeout
  scenario_name=$4
  timeout=$(scenario_timeout "$scenario_name" "$3")
  local log=$LAB_OUT/${scenario_name//\//-}.log started=$SECONDS timed_out=no
  results_seen=0
  # The VM's watchdog reports a hung scenario, with its logs, before this timeout kills it.
  qemu_command "$kver" "$image" "lab.scenario=$scenario_name lab.timeout=$timeout"
  echo "lab: $scenario_name: booting a fresh VM (timeout $timeout s, console in $log)"
  # Made here, not by the redirection below: that one happens in the background, and the
  # first look at the log may come before it.
  : >"$log"
  "${qemu_cmd[@]}" </dev/null >"$log" 2>&1 &
  vm_pid=$!
  while kill -0 "$vm_pid" 2>/dev/null; do
    if ((SECONDS - started >= timeout)); then
      timed_out=yes
      stop_vm
      break
    fi
    show_new_lines "$log"
    sleep 0.5
  done
  wait "$vm_pid" 2>/dev/null || true
  vm_pid=
  show_new_lines "$log"

  local lines pass fail
  lines=$(console_lines "$log")
  pass=$(grep -c '^LAB-RESULT PASS ' <<<"$lines" || true)
  fail=$(grep -c '^LAB-RESULT FAIL ' <<<"$lines" || true)
  local why=
  if [[ $timed_out == yes ]]; then
    why="VM did not finish within $timeout s and was killed"
  elif ! grep -q '^LAB-DONE' <<<"$lines"; then
    why="VM stopped before the scenario finished"
  elif ((pass + fail == 0)); then
    why="scenario reported no result"
  fi
  if [[ -n $why ]]; then
    echo "  FAIL $scenario_name: $why; last console lines:"
    console_tail "$log"
    fail=$((fail + 1))
  fi
  passed=$((passed + pass))
  failed=$((failed + fail))
  if ((fail == 0)); then
    scenario_summary+=("$scenario_name ok ($((SECONDS - started)) s)")
  else
    scenario_summary+=("$scenario_name FAILED ($((SECONDS - started)) s, console in $log)")
  fi
}

# run_scenarios KVER IMAGE TIMEOUT NAME...: exit status 0 only if all passed.
run_scenarios() {
  local kver=$1 image=$2 timeout=$3 name
  shift 3
  passed=0
  failed=0
  scenario_summary=()
  trap 'stop_vm; exit 130' INT TERM
  for name in "$@"; do
    boot_scenario "$kver" "$image" "$timeout" "$name"
  done
  trap - INT TERM
  printf 'lab: %s\n' "${scenario_summary[@]}"
  echo "lab: $passed passed, $failed failed"
  ((failed == 0))
}

# boot_shell KVER IMAGE [SCENARIO]: the topology (after the scenario, if given) and a shell
# on this terminal.
boot_shell() {
  local kver=$1 image=$2 extra=lab.shell=1
  if [[ -n ${3:-} ]]; then
    extra+=" lab.scenario=$3"
  fi
  qemu_command "$kver" "$image" "$extra"
  echo "lab: booting the lab with a shell on this console (Ctrl-A x quits qemu)"
  "${qemu_cmd[@]}"
}
