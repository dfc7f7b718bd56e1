#!/bin/sh
# Case 23: device nodes.
. ./try.lib
find /dev -type c -o -type b | while read d; do stat -c "dev %n %F %t:%T" "$d"; done
try block find /dev -type b
try mem ls /dev/mem
try kmem ls /dev/kmem
try kmsg ls /dev/kmsg
try port ls /dev/port
try sda ls /dev/sda
try mknod_dev mknod /dev/sda b 8 0
try mknod_tmp mknod /tmp/sda b 8 0
try newdev sh -c 'echo x > /dev/evil'
