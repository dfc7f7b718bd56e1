#!/bin/sh
# Installed with modes the policy forbids: it must never run.
echo Content-Type: text/plain
echo
echo RAN-17
