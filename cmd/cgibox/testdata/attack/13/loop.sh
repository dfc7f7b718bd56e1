#!/bin/sh
# Redirects to itself, forever.
echo 'Location: /cgi-bin/loop.sh'
echo
