#!/bin/sh
# Case 22: network. ./targets (written by the test) lists "name host port".
. ./try.lib
try links sh -c "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"
try unix sh -c 'tail -n +2 /proc/net/unix'
try resolv cat /etc/resolv.conf
try dns nslookup example.com
try dns_direct nslookup example.com 9.9.9.9
try wget_metadata wget -q -T 3 -O- http://169.254.169.254/latest/meta-data/
while read name host port; do
	try "connect_$name" nc -w 3 "$host" "$port" </dev/null
done < ./targets
