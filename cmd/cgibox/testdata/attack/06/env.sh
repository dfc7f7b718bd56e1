#!/bin/sh
# Prints its own environment, one variable a line, then every environment
# it can see in its container (the launcher's included), for the canary.
echo Content-Type: text/plain
echo
tr '\0' '\n' < /proc/$$/environ
echo ---all---
cat /proc/[0-9]*/environ 2>/dev/null | tr '\0' '\n'
