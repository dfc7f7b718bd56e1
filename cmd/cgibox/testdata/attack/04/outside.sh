#!/bin/sh
# Lies in the site root, outside the CGI directory: must never run.
echo Content-Type: text/plain
echo
echo OUTSIDE-RAN
