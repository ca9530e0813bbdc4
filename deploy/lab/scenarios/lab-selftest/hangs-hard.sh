# Never ends and ignores the watchdog's SIGTERM: the host must kill the VM at its timeout and
# count a failure.
trap '' TERM
pass reported-before-hanging-hard
while :; do sleep 60; done
