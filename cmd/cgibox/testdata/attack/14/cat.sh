#!/bin/sh
# Reports CONTENT_LENGTH and echoes its stdin back.
echo Content-Type: application/octet-stream
echo
echo "len=$CONTENT_LENGTH"
exec cat
