#!/bin/sh
# Valid header lines the gateway owns (framing, connection), a lying
# Content-Length, then a fake second response inside the body.
echo Content-Type: text/plain
echo Content-Length: 3
echo Transfer-Encoding: chunked
echo Connection: keep-alive
echo X-Good: kept
echo
echo body-start
printf 'HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nSMUGGLE'
