# Shared by test.sh and demo.sh: make sure the machine has what cgibox needs.
# Sourced, not run. Needs bash.

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ensure_packages CMD:PACKAGE...: installs PACKAGE from the distribution when
# CMD is not on PATH (a path for CMD checks that file instead).
ensure_packages() {
  local missing=() pair cmd pkg
  for pair in "$@"; do
    cmd=${pair%%:*} pkg=${pair#*:}
    if [[ $cmd == /* ]]; then [ -e "$cmd" ] && continue
    else command -v "$cmd" >/dev/null 2>&1 && continue
    fi
    missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}): run as root (sudo) so they can be installed"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Packages such as prometheus and nginx start their service when
  # installed; the tests start their own, on ports of their own, and a
  # service nobody asked for must not be left running. policy-rc.d's 101
  # tells invoke-rc.d to start nothing (one we did not write is kept).
  local policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || { [ -z "$policy" ] || rm -f "$policy"; return 1; }
  [ -z "$policy" ] || rm -f "$policy"
}

# ensure_go puts a Go toolchain of the version go.mod names on PATH. A Go of
# 1.21 or later fetches it through the module proxy by itself; an older or
# missing Go (Debian's golang-go) fetches it with `go mod download`.
ensure_go() {
  local want have dir arch
  want=$(sed -n 's/^go \([0-9.]*\)$/\1/p' go.mod)
  export PATH=$PATH:/usr/local/go/bin
  if ! command -v go >/dev/null 2>&1; then
    ensure_packages go:golang-go
  fi
  have=$(go env GOVERSION 2>/dev/null || go version | awk '{print $3}')
  have=${have#go}
  if [ "$(printf '%s\n' 1.21 "$have" | sort -V | head -n1)" = 1.21 ]; then
    export GOTOOLCHAIN=auto
    return 0
  fi
  say "Go $have is too old; fetching Go $want through the module proxy"
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
  dir=$(cd "$(mktemp -d)" && GO111MODULE=on GOFLAGS= go mod download -json \
        "golang.org/toolchain@v0.0.1-go$want.linux-$arch" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -f "$dir/bin/go" ] || die "could not fetch Go $want; install Go $want or later by hand"
  # The module cache keeps no executable bits; the go command restores them
  # when it switches toolchains itself, and so must we.
  chmod +x "$dir"/bin/* "$dir"/pkg/tool/*/*
  export PATH=$dir/bin:$PATH GOTOOLCHAIN=local
}

# build_cgibox builds the static binaries (the launcher inside containers
# must not need a libc) to ./cgibox and, beside it, ./cgibox-launch, the
# launcher cgibox then uses (it starts in a quarter of cgibox's time).
build_cgibox() {
  say "building cgibox"
  CGO_ENABLED=0 go build -trimpath -o cgibox ./cmd/cgibox
  CGO_ENABLED=0 go build -trimpath -o cgibox-launch ./cmd/cgibox-launch
}
