#!/bin/sh
# Case 18: the script tries to change its image and its CGI directory.
. ./try.lib
try tmp_fresh ls -A /tmp
try tmp sh -c 'echo x > /tmp/ok && cat /tmp/ok'
try bin_sh sh -c 'echo pwned > /bin/sh'
try busybox sh -c 'echo pwned >> /bin/busybox'
try rm_sh rm -f /bin/sh
try mv_id mv /bin/id /bin/id2
try chmod chmod 4777 /bin/busybox
try passwd sh -c 'echo "evil::0:0::/:/bin/sh" >> /etc/passwd'
try new_file touch /evil
try mkdir mkdir /bin/evil
try launcher sh -c 'echo x > /.cgibox/cgibox'
try cgi_drop touch ./dropped
try cgi_overwrite sh -c 'echo "echo pwned" > ./ok.sh'
try cgi_rm rm -f ./ok.sh
try www_drop touch /www/dropped
