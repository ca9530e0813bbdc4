# Never ends: the host must kill the VM at its timeout and count a failure.
pass reported-before-hanging
while :; do sleep 60; done
