#!/usr/bin/perl
# printenv.pl: the classic first Perl CGI script. It prints every variable
# of its environment, one NAME=value per line, sorted by name. A newline in
# a value is shown as \n.
use strict;
use warnings;

print "Content-Type: text/plain; charset=utf-8\n\n";
foreach my $name (sort keys %ENV) {
    my $value = $ENV{$name};
    $value =~ s/\n/\\n/g;
    print "$name=$value\n";
}
