#!/usr/bin/env bash
# The main command of the README: installs what cgibox needs on a fresh
# Debian/Ubuntu machine, builds it, and serves the demo site in examples/
# with sandboxed CGI on port 8000. Its arguments go to `cgibox serve`
# (a port, -b ADDRESS, -d DIRECTORY, --data-dir DIR, ...). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

[ "$(id -u)" = 0 ] || die "cgibox runs containers: run this as root (sudo $0)"
ensure_packages containerd:containerd runc:runc /bin/busybox:busybox-static debootstrap:debootstrap
ensure_go
build_cgibox
# The demo has Perl and Python scripts too: their images are made from a
# Debian minbase the first time (about a minute each), then come from the
# cache under /var/lib/cgibox.
# An image that cannot be built (a host whose apt sources have no Debian
# suite, no network to the mirror) leaves the rest of the demo running:
# say which scripts will answer 500 and how to build it later.
# The arguments for cgibox serve: a port, when one is given (a number not
# taken as an option's value), and the data directory the images go to.
port="" data_dir=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  a=${args[i]}
  case $a in
    --data-dir) data_dir=(--data-dir "${args[i+1]:-}"); i=$((i+1)) ;;
    --data-dir=*) data_dir=(--data-dir "${a#*=}") ;;
    --cgi|--no-cgi|--dotfiles|--nph|--pass-authorization|-h|--help) ;;
    -*=*) ;;
    -*) i=$((i+1)) ;;
    *[!0-9]*|'') ;;
    *) [ -n "$port" ] || port=$a ;;
  esac
done
for image in perl python; do
  say "image $image"
  if ! ./cgibox image build "$image" "${data_dir[@]}"; then
    scripts=$(grep -l -E "^#!.*[/ ]${image}3?( |\$)" examples/cgi-bin/* 2>/dev/null | xargs -r -n1 basename | tr '\n' ' ' || true)
    printf 'warning: the %s image could not be built (see above); these examples will answer 500: %s\n' "$image" "${scripts:-none}" >&2
    printf '         build it later with: ./cgibox image build %s [--suite SUITE] [--mirror URL]\n' "$image" >&2
  fi
done
# Scripts run as uid 65534: they and their directory must be readable and
# executable by others, whatever the umask of the clone was.
chmod -R o+rX examples
[ -n "$port" ] || set -- 8000 "$@"
say "serving — open http://localhost:${port:-8000}/ (stop it with Ctrl-C, or kill $$)"
# -d examples first: a -d among the arguments overrides it.
exec ./cgibox serve -d examples "$@"
