#!/bin/sh
# Case 25: the classic shell fork bomb; the pids limit must stop it. The
# script's own process then waits without forking.
echo Content-Type: text/plain
echo
echo started
b() { b | b & }
b
exec sleep 100000
