#!/bin/sh
# Case 36, site A: looks for site B while B's script runs. ./targets
# (written by the test) holds B's site directory on the host and B's port.
. ./try.lib
read bdir bport < ./targets
try www ls -A /www/cgi-bin
try tmp ls -A /tmp
try procs sh -c 'cat /proc/[0-9]*/cmdline | tr "\0" " "'
try proc_roots sh -c 'ls -A /proc/[0-9]*/root/tmp /proc/[0-9]*/root/www/cgi-bin'
try find find / -xdev -path /root -prune -o -name '*b-secret*' -print
try b_dir ls "$bdir"
try b_cgi ls "$bdir/cgi-bin"
try b_port nc -w 2 127.0.0.1 "$bport"
try unix sh -c 'tail -n +2 /proc/net/unix'
try cgroup cat /proc/self/cgroup
