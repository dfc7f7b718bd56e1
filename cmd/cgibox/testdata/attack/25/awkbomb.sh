#!/bin/sh
# Case 25: a fork bomb from an interpreter (busybox awk).
echo Content-Type: text/plain
echo
echo started
exec awk 'BEGIN { while (1) system("sleep 60 &") }'
