#!/bin/sh
# Case 30: write a huge file to /tmp (tmpfs size) and grow one past
# RLIMIT_FSIZE (SIGXFSZ ignored, so the write fails with EFBIG).
trap '' XFSZ
echo Content-Type: text/plain
echo
err=$(dd if=/dev/zero of=/tmp/big bs=1M count=1024 2>&1 >/dev/null | grep -v records | head -n 1)
echo "tmp size=$(wc -c </tmp/big) err=$err"
rm -f /tmp/big
err=$(truncate -s 1G /tmp/sparse 2>&1)
echo "fsize rc=$? size=$(wc -c </tmp/sparse 2>/dev/null) err=$err"
