#!/bin/sh
# Case 19: kernel interfaces under /proc and /sys.
. ./try.lib
try sysrq sh -c 'echo b > /proc/sysrq-trigger'
try kcore sh -c 'wc -c < /proc/kcore'
try keys sh -c 'wc -c < /proc/keys'
try timer_list sh -c 'wc -c < /proc/timer_list'
try sched_debug sh -c 'wc -c < /proc/sched_debug'
try latency_stats sh -c 'wc -c < /proc/latency_stats'
try acpi ls -A /proc/acpi
try sys_hostname sh -c 'echo evil > /proc/sys/kernel/hostname'
try sys_core_pattern sh -c 'echo "|/tmp/x" > /proc/sys/kernel/core_pattern'
try sys_drop_caches sh -c 'echo 3 > /proc/sys/vm/drop_caches'
try sysfs ls -A /sys
try firmware ls /sys/firmware
