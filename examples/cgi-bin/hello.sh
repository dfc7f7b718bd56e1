#!/bin/sh
echo "Content-Type: text/plain"
echo
echo "Hello from a fresh container."
