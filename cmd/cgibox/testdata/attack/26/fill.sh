#!/bin/sh
# Case 26: fill /tmp and /dev/shm (both tmpfs, charged to memory).
echo Content-Type: text/plain
echo
trap '' XFSZ
for d in /tmp /dev/shm; do
	err=$(dd if=/dev/zero of=$d/fill bs=1M count=512 2>&1 >/dev/null | grep -v records | head -n 1)
	echo "$d size=$(wc -c <$d/fill) err=$err"
done
