#!/bin/sh
# One 100 KiB header line.
echo Content-Type: text/plain
printf 'X-Big: '
head -c 102400 /dev/zero | tr '\0' a
echo
echo
echo SCRIPT-BODY
