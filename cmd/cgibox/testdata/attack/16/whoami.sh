#!/bin/busybox sh
# Case 16: run in an image whose user database lacks nobody. The #! line
# names no interpreter cgibox maps to its own images, so --image is used.
echo Content-Type: text/plain
echo
echo "id $(id)"
grep -E '^(Uid|Gid|Groups):' /proc/self/status | sed 's/^/status /'
echo "passwd $(cat /etc/passwd 2>&1 | tr '\n' ' ')"
