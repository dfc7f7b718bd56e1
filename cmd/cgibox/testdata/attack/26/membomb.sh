#!/bin/sh
# Case 26: one 256 MiB buffer, touched at once (dd reads /dev/zero into it).
echo Content-Type: text/plain
echo
echo started
exec dd if=/dev/zero of=/dev/null bs=256M count=1
