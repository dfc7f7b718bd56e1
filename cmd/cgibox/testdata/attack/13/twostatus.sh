#!/bin/sh
echo Status: 200 OK
echo Status: 404 Not Found
echo Content-Type: text/plain
echo
echo SCRIPT-BODY
