#!/bin/sh
echo Status: abc
echo Content-Type: text/plain
echo
echo SCRIPT-BODY
