#!/usr/bin/env bash
# scripts/bench.sh [--out DIR] [--duration D]
#
# Measures cgibox against its peers on this machine, in one run, loopback
# only, and writes DIR/results.md (the table and the targets), results.json
# (every number) and chart.png; default DIR: bench/results/<UTC timestamp>/.
# Run as root from a clone: it installs what is missing (nginx-light,
# python3, containerd, runc, busybox-static), builds cgibox and bench/cmd/*,
# makes a temporary site and deletes everything it started when it ends.
#
# What it measures, each cell for D (default 5s) after a dropped warm-up,
# with one Go client (bench/cmd/load, HTTP/1.1 keep-alive):
#   CGI cgi-bin/hello.sh (a #!/bin/sh script printing one line):
#     cgibox-warm       cgibox serve --pool 4 (prepared containers), when cgibox has --pool
#     cgibox-cold       cgibox serve --pool 0 (a fresh container per request)
#     naive-containerd  bench/cmd/naive: the whole containerd lifecycle per request
#     python            python3 -m http.server --cgi (fork/exec, no sandbox)
#     go-cgi            bench/cmd/gocgi: Go's net/http/cgi (fork/exec, the floor)
#   static 1 KiB and 1 MiB files: nginx (access log on, sendfile on), cgibox, python
#   each at c=1 and c=8 (closed loop) and, for CGI, an open loop at 10 requests/s;
#   p50/p90/p99 ms, successful req/s, errors (non-200, wrong length, transport);
#   cgibox's idle serve RSS and each prepared container's shim + launcher RSS.
# All servers run at once (idle ones cost nothing); the cells of one workload
# and pacing run back to back, peer after peer, so that a drifting machine
# load treats the peers alike. Then it prints the targets, each met or not
# met (bench/README.md explains them). Compare rows of one run only: the
# client shares the two cores with the server.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

OUT=
DURATION=5s
LIGHT_RATE=10
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    --duration) DURATION=${2:?--duration needs a duration such as 5s}; shift 2 ;;
    --duration=*) DURATION=${1#--duration=}; shift ;;
    -h|--help) sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) die "unknown argument $1 (usage: scripts/bench.sh [--out DIR] [--duration D])" ;;
  esac
done
[[ $DURATION =~ ^[0-9]+(\.[0-9]+)?(ms|s|m)$ ]] || die "--duration $DURATION: want a Go duration such as 5s"
[ "$(id -u)" = 0 ] || die "run as root (sudo): cgibox drives containerd"

STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
T0=$(date +%s)
OUT=${OUT:-bench/results/$(date -u +%Y%m%dT%H%M%SZ)}

say "installing what is missing"
ensure_packages containerd:containerd runc:runc /bin/busybox:busybox-static /usr/bin/python3:python3
# bookworm has nginx-light; later suites only nginx.
ensure_packages /usr/sbin/nginx:nginx-light 2>/dev/null || ensure_packages /usr/sbin/nginx:nginx
# Debian's Python, whatever else is first on PATH.
PYTHON=/usr/bin/python3
ensure_go

# Everything of this run lives under WORK; world-traversable because nginx's
# workers, Python's CGI children and the containers' scripts run as nobody.
WORK=$(mktemp -d /tmp/cgibox-bench.XXXXXX)
chmod 755 "$WORK"
BIN=$WORK/bin SITE=$WORK/site DATA=$WORK/cold LOGS=$WORK/logs
mkdir -p "$BIN" "$SITE/cgi-bin" "$SITE/static" "$LOGS" "$WORK/fifo" "$WORK/nginx"
CELLS=$WORK/cells.jsonl MEM=$WORK/mem.jsonl
declare -A PIDS=() # name → pid of each server this script started and has not stopped

# stop NAME: SIGTERM, up to 30 s to exit (cgibox drains and deletes its
# containers), then SIGKILL. Only the pid this script recorded.
stop() {
  local name=$1 pid=${PIDS[$1]:-} i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "warning: $name (pid $pid) did not stop on SIGTERM in 30 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  unset "PIDS[$name]"
}

cleanup() {
  local rc=$? name m
  set +e
  for name in "${!PIDS[@]}"; do stop "$name"; done
  if [ "$rc" != 0 ]; then
    for name in "$LOGS"/cgibox-*.log "$LOGS"/naive.log; do
      [ -s "$name" ] && { echo "--- last lines of $name" >&2; tail -n 20 "$name" >&2; }
    done
  fi
  # Mounts a killed daemon may have left under WORK, deepest first.
  for m in $(awk -v w="$WORK/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
  if awk -v w="$WORK/" 'index($2, w) == 1 {found = 1} END {exit !found}' /proc/mounts; then
    echo "warning: mounts left under $WORK; not deleting it" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: runs CMD in the background, its output in LOGS/NAME.log.
start() {
  local name=$1; shift
  "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.log" &
  PIDS[$name]=$!
}

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready NAME URL: until URL answers 200 (3 min at most: cgibox's first
# start builds its busybox image); fails when NAME exits or the time is up.
wait_ready() {
  local name=$1 url=$2 i
  for ((i = 0; i < 180; i++)); do
    "$BIN/load" -ready 1s -url "$url" 2>/dev/null && return 0
    if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
      echo "$name exited during start-up; the last lines of its log:" >&2
      tail -n 20 "$LOGS/$name.log" >&2
      return 1
    fi
  done
  echo "$name did not answer $url within 3 minutes" >&2
  return 1
}

# cell PEER WORKLOAD URL BODYSIZE ARGS...: one measured cell.
cell() {
  local peer=$1 work=$2 url=$3 size=$4; shift 4
  # A failed cell is recorded (the report says why) and the run goes on.
  "$BIN/load" -peer "$peer" -workload "$work" -url "$url" -body-size "$size" -d "$DURATION" -out "$CELLS" "$@" ||
    echo "warning: $peer $work $* failed" >&2
}

HELLO_BODY="hello from cgi"
HELLO_SIZE=$((${#HELLO_BODY} + 1))

declare -A URL=() # peer → base URL

# cgi_round PACING...: the CGI cell of every CGI peer, one after the other,
# so that a machine whose load drifts treats the peers alike. The 1 s pause
# after each warm-up lets a pool refill; every peer gets the same.
cgi_round() {
  local peer
  for peer in "${CGI_PEERS[@]}"; do
    cell "$peer" cgi-hello "${URL[$peer]}/cgi-bin/hello.sh" "$HELLO_SIZE" "$@"
  done
}

# static_round FILE SIZE C: one static cell of every static peer.
static_round() {
  local peer
  for peer in nginx cgibox python; do
    cell "$peer" "static-$1" "${URL[$peer]}/static/$1.bin" "$2" -c "$3" -warmup 200
  done
}

build_cgibox
say "building the bench programs"
CGO_ENABLED=0 go build -trimpath -o "$BIN/" ./bench/cmd/...

say "making the site in $SITE"
cat >"$SITE/cgi-bin/hello.sh" <<EOF
#!/bin/sh
echo "Content-Type: text/plain"
echo
echo "$HELLO_BODY"
EOF
chmod 755 "$SITE" "$SITE/cgi-bin" "$SITE/static" "$SITE/cgi-bin/hello.sh"
head -c 1024 /dev/urandom >"$SITE/static/1k.bin"
head -c 1048576 /dev/urandom >"$SITE/static/1m.bin"
chmod 644 "$SITE"/static/*.bin

# The pool (--pool N) is new; a cgibox without it runs the cold cells only.
HAS_POOL=false POOL_NOTE="no --pool flag"
if ./cgibox serve --help 2>&1 | grep -q -- '-pool'; then
  HAS_POOL=true POOL_NOTE=
fi
POOL=$HAS_POOL # the warm cells run

{
  echo "cpus: $(nproc)"
  echo "kernel: $(uname -r)"
  case $(stat -fc %T /sys/fs/cgroup) in
    cgroup2fs) echo "cgroup: v2" ;;
    *) if [ -d /sys/fs/cgroup/unified ]; then echo "cgroup: hybrid"; else echo "cgroup: v1"; fi ;;
  esac
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "cgibox: $(./cgibox version 2>&1 | head -n1)"
  echo "containerd: $(containerd --version | head -n1)"
  echo "runc: $(runc --version | head -n1)"
  echo "nginx: $(nginx -v 2>&1)"
  echo "python: $("$PYTHON" --version 2>&1)"
  echo "go: $(go version)"
  echo "cell duration: $DURATION"
} >"$WORK/env.txt"
# A busy machine makes every number noisy (the targets compare peers measured
# minutes apart): say so, and record it in the results.
if awk '{exit !($1 > 1.0)}' /proc/loadavg; then
  echo "warning: this machine is busy (load average $(cut -d' ' -f1-3 /proc/loadavg)); the numbers will be noisy" >&2
fi

# Every server is up at once (an idle one costs nothing) and the cells of
# one workload and pacing run back to back, peer after peer.

# nginx: one worker per core, sendfile, the access log on (cgibox logs every
# request too).
say "starting nginx"
PORT=$(free_port)
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $LOGS/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log $LOGS/nginx-access.log;
    sendfile on;
    tcp_nopush on;
    # cgibox keeps a connection for any number of requests; so does nginx here.
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$PORT;
        root $SITE;
    }
}
EOF
start nginx nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;'
URL[nginx]=http://127.0.0.1:$PORT
wait_ready nginx "${URL[nginx]}/static/1k.bin" || die "nginx did not start"

# Python as people run it (HTTP/1.0: one connection per request).
say "starting python3 -m http.server --cgi"
PORT=$(free_port)
start python bash -c 'cd "$1" && exec "$2" -m http.server --cgi --bind 127.0.0.1 "$3"' _ "$SITE" "$PYTHON" "$PORT"
URL[python]=http://127.0.0.1:$PORT
wait_ready python "${URL[python]}/cgi-bin/hello.sh" || die "python did not start"

say "starting Go net/http/cgi"
PORT=$(free_port)
start go-cgi "$BIN/gocgi" -addr "127.0.0.1:$PORT" -dir "$SITE/cgi-bin"
URL[go-cgi]=http://127.0.0.1:$PORT
wait_ready go-cgi "${URL[go-cgi]}/cgi-bin/hello.sh" || die "go-cgi did not start"

# serve_cgibox NAME DATADIR ARGS...: a cgibox on its own port with a private
# containerd under DATADIR (one serve per data directory), its access log in
# LOGS/NAME.log; warmed up, left idle, then its memory measured.
serve_cgibox() {
  local name=$1 data=$2 port; shift 2
  port=$(free_port)
  start "$name" ./cgibox serve "$port" -b 127.0.0.1 -d "$SITE" --containerd private --data-dir "$data" "$@"
  URL[$name]=http://127.0.0.1:$port
  wait_ready "$name" "${URL[$name]}/cgi-bin/hello.sh" || return 1
  "$BIN/load" -url "${URL[$name]}/cgi-bin/hello.sh" -body-size "$HELLO_SIZE" -c 1 -d 1s -warmup 10 >/dev/null 2>&1 || true
  "$BIN/load" -url "${URL[$name]}/static/1k.bin" -body-size 1024 -c 1 -d 1s -warmup 100 >/dev/null 2>&1 || true
  sleep 3
  "$BIN/mem" -peer "$name" -pid "${PIDS[$name]}" -address "$data/containerd.sock" -out "$MEM"
}

CGI_PEERS=()
if $POOL; then
  say "starting cgibox warm (--pool 4: prepared containers)"
  if serve_cgibox cgibox-warm "$WORK/warm" --pool 4; then
    CGI_PEERS+=(cgibox-warm)
  else
    # The pool is new: without it the rest of the run still means something.
    stop cgibox-warm
    POOL=false POOL_NOTE="cgibox serve --pool 4 did not start"
    echo "warning: $POOL_NOTE; going on without the warm cells" >&2
  fi
else
  say "cgibox warm: not available ($POOL_NOTE)"
fi
say "starting cgibox cold (a fresh container per request)"
if $HAS_POOL; then
  serve_cgibox cgibox-cold "$DATA" --pool 0 || die "cgibox cold did not start"
else
  serve_cgibox cgibox-cold "$DATA" || die "cgibox cold did not start"
fi
URL[cgibox]=${URL[cgibox-cold]} # static files: the same with or without a pool

# The naive peer uses the cold cgibox's private containerd and its image.
say "starting the naive containerd lifecycle (on the cold cgibox's containerd)"
IMAGE=$(./cgibox image ls --containerd private --data-dir "$DATA" 2>/dev/null | awk '$1 ~ /busybox/ {print $1; exit}')
[ -n "$IMAGE" ] || die "no busybox image in $DATA's containerd"
PORT=$(free_port)
start naive "$BIN/naive" -addr "127.0.0.1:$PORT" -address "$DATA/containerd.sock" -site "$SITE" -image "$IMAGE" -fifo-dir "$WORK/fifo"
URL[naive-containerd]=http://127.0.0.1:$PORT
wait_ready naive "${URL[naive-containerd]}/cgi-bin/hello.sh" || die "naive did not start"
CGI_PEERS+=(cgibox-cold naive-containerd python go-cgi)

say "static files"
for c in 1 8; do static_round 1k 1024 "$c"; done
for c in 1 8; do static_round 1m 1048576 "$c"; done

say "CGI hello.sh"
cgi_round -c 1 -warmup 10 -settle 1s
cgi_round -c 8 -warmup 16 -settle 1s
cgi_round -rate "$LIGHT_RATE" -warmup 5 -settle 2s

say "stopping the servers"
for name in naive cgibox-cold cgibox-warm go-cgi python nginx; do stop "$name"; done

ELAPSED=$(( $(date +%s) - T0 ))
ELAPSED_TEXT="$((ELAPSED / 60)) min $((ELAPSED % 60)) s"
say "results"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORK/env.txt"
mkdir -p "$OUT"
cp "$CELLS" "$OUT/cells.jsonl"
[ -f "$MEM" ] && cp "$MEM" "$OUT/mem.jsonl"
"$BIN/report" -cells "$CELLS" -mem "$MEM" -env "$WORK/env.txt" -out "$OUT" \
  -started "$STARTED" -cell-duration "$DURATION" -elapsed "$ELAPSED_TEXT" \
  -pool="$POOL" -pool-note "$POOL_NOTE" -light-rate "$LIGHT_RATE"
echo
echo "took $ELAPSED_TEXT; results: $OUT/results.md, $OUT/results.json, $OUT/chart.png"
