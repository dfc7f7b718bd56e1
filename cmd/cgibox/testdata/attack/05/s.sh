#!/bin/sh
# SOURCE-MARKER: this comment is in the script's source, never in its output.
echo Content-Type: text/plain
echo
echo ran-s
