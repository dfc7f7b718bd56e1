#!/bin/sh
# Invalid header lines (CR inside a value, a name with a space, NUL), the
# framing and connection headers only the gateway may set, then a fake
# second response inside the body.
echo Content-Type: text/plain
printf 'X-Cr: a\rInjected: yes\n'
echo Bad Name: x
printf 'X-Nul: a\000b\n'
echo Content-Length: 3
echo Transfer-Encoding: chunked
echo Connection: keep-alive
echo X-Good: kept
echo
echo body-start
printf 'HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nSMUGGLE'
