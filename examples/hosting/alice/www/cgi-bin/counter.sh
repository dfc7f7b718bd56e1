#!/bin/sh
# The classic hit counter: a script that keeps a file of its own. The root
# is read-only; the site's data directory is where it may write.
file="$CGIBOX_DATA/hits"
exec 9>>"$file.lock"
flock 9                       # one request at a time updates the count
n=$(cat "$file" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$file.new" && mv "$file.new" "$file"
echo "Content-Type: text/plain"
echo
echo "This page has been seen $n times."
