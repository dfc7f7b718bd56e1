#!/bin/sh
# Prints its argv: the query string must never become arguments.
echo Content-Type: text/plain
echo
echo "argc=$#"
for a in "$@"; do echo "arg=$a"; done
echo "query=$QUERY_STRING"
