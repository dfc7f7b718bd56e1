#!/bin/sh
# Case 36, site B: leaves traces (a /tmp file, its own command line) and
# waits until the test hangs up.
echo Content-Type: text/plain
echo
echo b-secret-data > /tmp/b-secret-file
echo started
sleep 60
