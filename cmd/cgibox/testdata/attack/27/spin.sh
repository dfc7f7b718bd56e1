#!/bin/sh
# Case 27: eight busy loops (processes) and an awk spinner, forever.
echo Content-Type: text/plain
echo
echo started
for i in 1 2 3 4 5 6 7 8; do
	(while :; do :; done) &
done
exec awk 'BEGIN { while (1) n++ }'
