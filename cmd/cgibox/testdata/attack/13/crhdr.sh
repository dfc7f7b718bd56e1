#!/bin/sh
# A CR inside a header value.
echo Content-Type: text/plain
printf 'X-Cr: a\rInjected: yes\n'
echo
echo SCRIPT-BODY
