#!/bin/sh
# Shows the sandbox from the inside.
echo "Content-Type: text/plain; charset=utf-8"
echo
echo "id:        $(id)"
echo "hostname:  $(hostname)"
echo "interfaces:"; sed -n '3,$p' /proc/net/dev | cut -d: -f1
echo "capabilities:"; grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status
grep NoNewPrivs /proc/self/status
if touch /bin/x 2>/dev/null; then echo "write /bin: allowed"; else echo "write /bin: refused"; fi
if echo hi > /tmp/x; then echo "write /tmp: allowed"; fi
