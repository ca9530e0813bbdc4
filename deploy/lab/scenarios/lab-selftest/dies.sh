# Stops on an error without reporting a failure: /init must report one for it.
pass reported-before-dying
exit 3
