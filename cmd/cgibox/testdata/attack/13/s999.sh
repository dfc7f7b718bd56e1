#!/bin/sh
echo Status: 999 Beyond
echo Content-Type: text/plain
echo
echo SCRIPT-BODY
