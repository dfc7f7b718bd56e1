#!/bin/sh
# Starts a header block, then never finishes it (and ignores SIGTERM).
trap '' TERM
echo Content-Type: text/plain
while :; do sleep 1; done
