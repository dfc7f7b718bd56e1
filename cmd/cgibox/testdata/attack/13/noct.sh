#!/bin/sh
# A document without Content-Type.
echo X-Only: this
echo
echo SCRIPT-BODY
