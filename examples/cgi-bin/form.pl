#!/usr/bin/perl
# form.pl: a CGI.pm form. GET shows the form and echoes any query
# parameters; POST (urlencoded or multipart) echoes the fields it got, in
# the order they came, HTML-escaped.
use strict;
use warnings;
use CGI;

my $q = CGI->new;
print $q->header(-type => 'text/html', -charset => 'utf-8');
print <<'HTML';
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CGI.pm form</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<main>
<h1>CGI.pm form</h1>
HTML
print "<p>Method: ", $q->escapeHTML($q->request_method), "</p>\n";
my @names = $q->param;
if (@names) {
    print "<ul>\n";
    foreach my $name (@names) {
        foreach my $value ($q->multi_param($name)) {
            print "<li>", $q->escapeHTML($name), " = ", $q->escapeHTML($value), "</li>\n";
        }
    }
    print "</ul>\n";
} else {
    print "<p>No fields.</p>\n";
}
print <<'HTML';
<form method="post" action="form.pl">
<label>Name <input name="name" value="Ada"></label>
<label>Message <textarea name="message">Hello &amp; welcome</textarea></label>
<button type="submit">Send</button>
</form>
<p><a href="/">Back to the index</a></p>
</main>
</body>
</html>
HTML
