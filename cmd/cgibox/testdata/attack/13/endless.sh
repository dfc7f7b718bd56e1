#!/bin/sh
# A header block that never ends: header lines forever.
echo Content-Type: text/plain
while :; do echo X-More: again; done
