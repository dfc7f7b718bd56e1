#!/bin/sh
# Case 21: namespaces and the syscalls seccomp removes.
. ./try.lib
grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | sed 's/^/status /'
try unshare_user unshare -U id -u
try unshare_mount unshare -m true
try unshare_net unshare -n true
try unshare_pid unshare -p -f true
try nsenter_init nsenter -t 1 -m -u -i -n -p true
try nsenter_self nsenter -t $$ -n true
try chroot chroot / true
