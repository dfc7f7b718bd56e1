#!/bin/sh
# Case 25: open descriptors until the kernel refuses (RLIMIT_NOFILE).
echo Content-Type: text/plain
echo
echo "ulimit=$(ulimit -n)"
last=$( ( i=3; while [ $i -lt 2000 ]; do eval "exec $i</dev/null" || exit 7; echo $i; i=$((i+1)); done ) 2>/tmp/err | tail -n 1)
echo "last=$last"
echo "err=$(cat /tmp/err)"
