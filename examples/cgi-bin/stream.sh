#!/bin/sh
# Each line reaches the browser as it is printed.
echo "Content-Type: text/plain; charset=utf-8"
echo
for i in 1 2 3 4 5; do
  echo "line $i at $(date +%T)"
  sleep 1
done
