#!/usr/bin/env bash
# The test command of the README: installs what the tests need on a fresh
# Debian/Ubuntu machine, then runs gofmt, go vet, every test and a short fuzz.
# As root, the integration tests (real containerd and runc) must run: a skip
# is a failure. Without root they skip with a message.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

if [ "$(id -u)" = 0 ]; then
  ensure_packages containerd:containerd runc:runc /bin/busybox:busybox-static python3:python3 /etc/mime.types:media-types git:git debootstrap:debootstrap /usr/sbin/mkfs.ext4:e2fsprogs prometheus:prometheus chromium:chromium /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fonts-dejavu-core
  export CGIBOX_INTEGRATION=require
  # The perl and python images' archives, kept between runs on this machine
  # (keyed by recipe hash; only the tests read this).
  export CGIBOX_TEST_IMAGE_CACHE=${CGIBOX_TEST_IMAGE_CACHE:-/var/cache/cgibox-test/images}
else
  echo "not running as root: the container tests will skip (run with sudo for the whole suite)" >&2
fi
ensure_go

say "gofmt"
unformatted=$(gofmt -l $(find . -name '*.go' -not -path './.git/*'))
[ -z "$unformatted" ] || die "gofmt would change: $unformatted"

say "go vet"
go vet ./...

say "go test"
go test -count=1 -timeout 40m ./...
go test -count=1 -run "^TestSoak$" ./cmd/cgibox -soak=60

say "fuzz the script header parser (short)"
go test -run '^$' -fuzz '^FuzzReadHeaderBlock$' -fuzztime 15s ./gateway

say "all tests passed"
