#!/bin/sh
# Case 32: a slow script, requested by a burst.
echo Content-Type: text/plain
echo
sleep 3
echo done
