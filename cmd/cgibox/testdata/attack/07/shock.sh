#!/bin/sh
# Echoes the Shellshock-carrying variables back and starts child shells,
# which is where a vulnerable shell would import (and run) the payload.
echo Content-Type: text/plain
echo
printf 'UA=%s\n' "$HTTP_USER_AGENT"
printf 'COOKIE=%s\n' "$HTTP_COOKIE"
printf 'REFERER=%s\n' "$HTTP_REFERER"
sh -c 'echo child-ok'
/bin/sh -c 'env' | grep -c '^BASH_FUNC' | sed 's/^/bashfunc=/'
