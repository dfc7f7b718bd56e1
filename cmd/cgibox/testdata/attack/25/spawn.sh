#!/bin/sh
# Case 25: count how many processes can be started before fork fails.
# The report uses builtins only: no fork is left once the limit is hit.
echo Content-Type: text/plain
echo
( i=0; while [ $i -lt 500 ]; do sleep 60 & i=$((i+1)); echo $i >/tmp/n; done ) 2>/tmp/err
read n </tmp/n
set -- /proc/[0-9]*
echo "spawned=$n procs=$#"
read e </tmp/err
echo "err=$e"
