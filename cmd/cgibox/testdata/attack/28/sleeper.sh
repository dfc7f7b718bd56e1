#!/bin/sh
# Case 28: sleep forever, ignoring SIGTERM, with children that do too.
trap '' TERM
echo Content-Type: text/plain
echo
for i in 1 2 3; do (trap '' TERM; while :; do sleep 1; done) & done
echo started
while :; do sleep 1; done
