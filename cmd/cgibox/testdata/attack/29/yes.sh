#!/bin/sh
# Case 29: endless output.
echo Content-Type: text/plain
echo
exec yes
