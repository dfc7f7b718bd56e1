#!/bin/sh
# Prints the CGI environment the script was given (RFC 3875 variables and HTTP_*).
echo "Content-Type: text/plain; charset=utf-8"
echo
env | sort
