#!/bin/sh
# Echoes a POSTed application/x-www-form-urlencoded form back as HTML.
echo "Content-Type: text/html; charset=utf-8"
echo
html() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'; }
cat <<'HTML'
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Form echo</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<main>
<h1>Form echo</h1>
HTML
foot() { printf '%s\n' '<p><a href="/">Back to the index</a></p>' '</main>' '</body>' '</html>'; }
if [ "$REQUEST_METHOD" != "POST" ]; then
  echo '<p>Send the form on <a href="/">the home page</a>.</p>'
  foot
  exit 0
fi
body=$(head -c "${CONTENT_LENGTH:-0}")
echo "<p>$CONTENT_LENGTH bytes of $(printf %s "$CONTENT_TYPE" | html)</p><dl>"
printf '%s\n' "$body" | tr '&' '\n' | while IFS='=' read -r key value; do
  [ -n "$key" ] || continue
  k=$(busybox httpd -d "$(printf %s "$key" | tr + ' ')" | html)
  v=$(busybox httpd -d "$(printf %s "$value" | tr + ' ')" | html)
  echo "<dt>$k</dt><dd>$v</dd>"
done
echo '</dl>'
foot
