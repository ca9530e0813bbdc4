# Never ends: the VM's watchdog must report it before the host's timeout, with the end of each
# daemon's log, and stop it.
pass reported-before-hanging
start_bg llc5 ticker sh -c 'echo ticker-started; while :; do sleep 60; done' >/dev/null
while :; do sleep 60; done
