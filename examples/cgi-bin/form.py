#!/usr/bin/env python3
"""form.py: a classic Python CGI form with cgi.FieldStorage. It echoes the
fields of a GET query, an urlencoded POST or a multipart POST, HTML-escaped
and in the order they came; for an uploaded file it shows its name, size
and SHA-256."""
import hashlib
import html
import os
import sys
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)
import cgi  # noqa: E402  (deprecated since Python 3.11, still there in 3.11)

HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Python form</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<main>
<h1>Python form</h1>
"""
FOOT = """<p><a href="/">Back to the index</a></p>
</main>
</body>
</html>
"""

form = cgi.FieldStorage()
out = []
out.append("Content-Type: text/html; charset=utf-8\n\n")
out.append(HEAD)
out.append("<p>Method: %s</p>\n" % html.escape(os.environ.get("REQUEST_METHOD", "")))
items = form.list or []
if items:
    out.append("<ul>\n")
    for item in items:
        if item.filename:
            data = item.file.read()
            out.append("<li>%s = file %s, %d bytes, sha256 %s</li>\n" % (
                html.escape(item.name), html.escape(item.filename), len(data), hashlib.sha256(data).hexdigest()))
        else:
            out.append("<li>%s = %s</li>\n" % (html.escape(item.name), html.escape(item.value)))
    out.append("</ul>\n")
else:
    out.append("<p>No fields.</p>\n")
out.append('<form method="post" action="form.py" enctype="multipart/form-data">\n'
           '<label>Name <input name="name" value="Ada"></label>\n'
           '<label>File <input type="file" name="file"></label>\n'
           '<button type="submit">Send</button>\n</form>\n')
out.append(FOOT)
sys.stdout.buffer.write("".join(out).encode("utf-8"))
