#!/bin/sh
echo "Content-Type: text/plain"
echo
echo "Hello from $SERVER_NAME, site bob."
ls /data 2>/dev/null || echo "Bob has no data directory: only /tmp is writable."
