#!/bin/sh
# A local redirect (RFC 3875 §6.2.2) to the path given, URL-decoded, as the
# query string: the gateway serves it in place, in the same site.
loc=$(printf '%s' "$QUERY_STRING" | sed 's/+/ /g; s/%\([0-9A-Fa-f][0-9A-Fa-f]\)/\\x\1/g')
printf 'Location: %b\n\n' "$loc"
