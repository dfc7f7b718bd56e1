#!/bin/sh
# Case 26: an interpreter doubling a string until memory runs out.
echo Content-Type: text/plain
echo
echo started
exec awk 'BEGIN { s = "xxxxxxxxxxxxxxxx"; while (1) s = s s; print length(s) }'
