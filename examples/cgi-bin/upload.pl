#!/usr/bin/perl
# upload.pl: a CGI.pm multipart/form-data file upload. It reports the
# uploaded file's name, size, MD5 and SHA-256, and the comment sent with it.
use strict;
use warnings;
use CGI;
use Digest::MD5;
use Digest::SHA;

my $q = CGI->new;
if ($q->request_method ne 'POST') {
    print $q->header(-type => 'text/html', -charset => 'utf-8');
    print <<'HTML';
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Upload</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<main>
<h1>Upload a file</h1>
<form method="post" action="upload.pl" enctype="multipart/form-data">
<label>File <input type="file" name="file"></label>
<label>Comment <input name="comment"></label>
<button type="submit">Upload</button>
</form>
<p><a href="/">Back to the index</a></p>
</main>
</body>
</html>
HTML
    exit 0;
}

print $q->header(-type => 'text/plain', -charset => 'utf-8');
my $fh = $q->upload('file');
if (!defined $fh) {
    print "no file uploaded\n";
    exit 0;
}
binmode $fh;
my ($md5, $sha, $size) = (Digest::MD5->new, Digest::SHA->new(256), 0);
my $buf;
while (my $n = read($fh, $buf, 65536)) {
    $size += $n;
    $md5->add($buf);
    $sha->add($buf);
}
my $comment = $q->param('comment');
print "file: ", scalar $q->param('file'), "\n";
print "size: $size\n";
print "md5: ", $md5->hexdigest, "\n";
print "sha256: ", $sha->hexdigest, "\n";
print "comment: ", (defined $comment ? $comment : ''), "\n";
