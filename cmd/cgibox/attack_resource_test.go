package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/cgibox/cgibox/sandbox"
)

// Attack cases 25–30, 32, 34, 35 and 37–40 of SECURITY.md: resource
// exhaustion, crash and restart. The hostile scripts live under
// testdata/attack/<case>/. Resource attacks also check that a normal
// request made while the attack runs is served in normal time.

// soak is the number of requests of TestSoak (case 40); 0 skips it.
var soak = flag.Int("soak", 0, "run TestSoak with this many requests (timeouts, OOMs, client aborts mixed)")

// latencyFactor and latencySlack make the budget of a normal request made
// during an attack: factor × the baseline measured in the same test, plus
// slack for a loaded CI machine.
const (
	latencyFactor = 4
	latencySlack  = 1500 * time.Millisecond
)

// normalRequest runs the known-good script once and returns how long it took.
func normalRequest(t *testing.T, srv *server) time.Duration {
	t.Helper()
	start := time.Now()
	resp, body := get(t, srv.base+"/cgi-bin/ok.sh", nil)
	took := time.Since(start)
	if resp.StatusCode != 200 || string(body) != "fine\n" {
		t.Errorf("normal request: status %d, body %q", resp.StatusCode, body)
	}
	return took
}

// baseline is the median latency of three normal requests on an idle srv.
func baseline(t *testing.T, srv *server) time.Duration {
	t.Helper()
	d := []time.Duration{normalRequest(t, srv), normalRequest(t, srv), normalRequest(t, srv)}
	slices.Sort(d)
	return d[1]
}

// assertLatency makes n normal requests while an attack runs and fails t
// when one of them takes longer than the budget derived from base.
func assertLatency(t *testing.T, srv *server, base time.Duration, n int) {
	t.Helper()
	budget := latencyFactor*base + latencySlack
	for i := 0; i < n; i++ {
		if took := normalRequest(t, srv); took > budget {
			t.Errorf("normal request %d during the attack took %s; baseline %s, budget %s", i+1, took, base, budget)
		}
	}
}

// endLine is the access log's account of one CGI request.
type endLine struct {
	exit    int
	end     string
	cpu     time.Duration
	mem     int64
	aborted bool
	line    string
}

// endLines returns the access log lines of the CGI script name (its file
// name) that srv wrote so far.
func endLines(srv *server, name string) []endLine {
	re := regexp.MustCompile(`cgi=\S*` + regexp.QuoteMeta(name) + ` exit=(-?\d+) end=(\S+) cpu=(\S+) mem=(\d+)( aborted)?`)
	var out []endLine
	for _, line := range strings.Split(srv.stderr.String(), "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		e := endLine{end: m[2], aborted: m[5] != "", line: line}
		e.exit, _ = strconv.Atoi(m[1])
		e.cpu, _ = time.ParseDuration(m[3])
		e.mem, _ = strconv.ParseInt(m[4], 10, 64)
		out = append(out, e)
	}
	return out
}

// waitEnd waits up to 15 s for the n-th access log line of script name.
func waitEnd(t *testing.T, srv *server, name string, n int) endLine {
	t.Helper()
	var got []endLine
	if !waitFor(15*time.Second, func() bool { got = endLines(srv, name); return len(got) >= n }) {
		t.Fatalf("no access log line #%d for %s; log:\n%s", n, name, srv.stderr.String())
	}
	return got[n-1]
}

// vmRSS is the resident memory of process pid in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// containerProcs lists the host processes of the running containers of
// the daemon at addr: those in a container cgroup (/cgibox/cgibox-*) below
// one of its shims. (Other daemons on the host run cgibox containers too.)
func containerProcs(addr string) []string {
	return cgroupProcs(func(pid, _ string) bool { return underShim(pid, addr) })
}

// survivors lists the host processes still in the cgroup of a request
// srv logged (its container is cgibox-<rid>), whatever their parent.
func survivors(srv *server) []string {
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(` rid=(\S+)`).FindAllStringSubmatch(srv.stderr.String(), -1) {
		ids["cgibox-"+m[1]] = true
	}
	return cgroupProcs(func(_, id string) bool { return ids[id] })
}

var cgroupIDRE = regexp.MustCompile(`:/cgibox/(cgibox-[A-Za-z0-9_.-]+)`)

// cgroupProcs lists the processes in a container cgroup of cgibox for
// which keep(pid, container id) holds, as "pid(comm)".
func cgroupProcs(keep func(pid, id string) bool) []string {
	var out []string
	files, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		m := cgroupIDRE.FindSubmatch(b)
		pid := filepath.Base(filepath.Dir(f))
		if m == nil || !keep(pid, string(m[1])) {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join(filepath.Dir(f), "comm"))
		out = append(out, pid+"("+strings.TrimSpace(string(comm))+")")
	}
	return out
}

// underShim reports whether an ancestor of pid is a shim of the daemon at
// addr.
func underShim(pid, addr string) bool {
	for i := 0; i < 64 && pid != "1" && pid != "0"; i++ {
		b, err := os.ReadFile("/proc/" + pid + "/cmdline")
		if err != nil {
			return false
		}
		if strings.HasPrefix(filepath.Base(strings.Split(string(b), "\x00")[0]), "containerd-shim") {
			return strings.Contains(string(b), addr)
		}
		st, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return false
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
		if len(f) < 2 {
			return false
		}
		pid = f[1]
	}
	return false
}

// pidsWatch polls the pids cgroup of one container until stopped and
// records the most processes it held, how often the kernel refused a fork
// (pids.events "max") and its pids.max.
type pidsWatch struct {
	stop    chan struct{}
	done    chan struct{}
	peak    atomic.Int64
	refused atomic.Int64
	limit   atomic.Value // string
}

func watchPids(container string) *pidsWatch {
	w := &pidsWatch{stop: make(chan struct{}), done: make(chan struct{})}
	w.limit.Store("")
	// The pids controller's directory on either hierarchy (v1:
	// pids/cgibox/ID; v2: cgibox/ID).
	d, _ := sandbox.DetectCgroups("").Dir("pids", container)
	go func() {
		defer close(w.done)
		for {
			if b, err := os.ReadFile(filepath.Join(d, "pids.current")); err == nil {
				n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
				w.peak.Store(max(w.peak.Load(), n))
			}
			if b, err := os.ReadFile(filepath.Join(d, "pids.events")); err == nil {
				n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(string(b), "max")), 10, 64)
				w.refused.Store(max(w.refused.Load(), n))
			}
			if b, err := os.ReadFile(filepath.Join(d, "pids.max")); err == nil {
				w.limit.Store(strings.TrimSpace(string(b)))
			}
			select {
			case <-w.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *pidsWatch) end() { close(w.stop); <-w.done }

// readCut requests target and reads the whole response; it returns the
// body and the error that cut it (nil when it ended cleanly).
func readCut(t *testing.T, srv *server, target string) (int, string, error) {
	t.Helper()
	resp, err := http.Get(srv.base + target)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	return resp.StatusCode, string(body), err
}

func TestAttack25ForkBombAndFDs(t *testing.T) {
	requireContainerd(t)
	root := attackSite(t, map[string]string{
		"forkbomb.sh": attackScript(t, "25", "forkbomb.sh"),
		"awkbomb.sh":  attackScript(t, "25", "awkbomb.sh"),
		"spawn.sh":    attackScript(t, "25", "spawn.sh"),
		"fds.sh":      attackScript(t, "25", "fds.sh"),
	})
	const pids = 32
	srv := startCold(t, "-d", root, "--pids", strconv.Itoa(pids), "--timeout", "4s")
	base := baseline(t, srv)

	for _, name := range []string{"forkbomb.sh", "awkbomb.sh"} {
		t.Run(name, func(t *testing.T) {
			resp, err := http.Get(srv.base + "/cgi-bin/" + name)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			// The container is cgibox-<request id>.
			w := watchPids("cgibox-" + resp.Header.Get("X-Request-Id"))
			type res struct {
				body string
				err  error
			}
			done := make(chan res, 1)
			go func() {
				b, err := io.ReadAll(resp.Body)
				done <- res{string(b), err}
			}()
			// The bomb is at its limit once the kernel refused a fork.
			if !waitFor(10*time.Second, func() bool { return w.refused.Load() > 0 }) {
				t.Errorf("the kernel never refused a fork of the bomb (peak %d processes, pids.max %q)", w.peak.Load(), w.limit.Load())
			}
			assertLatency(t, srv, base, 2)
			r := <-done
			w.end()
			if l := w.limit.Load(); l != strconv.Itoa(pids) {
				t.Errorf("pids.max of the container is %q, want %d", l, pids)
			}
			if p := w.peak.Load(); p > pids {
				t.Errorf("the bomb held %d processes; the limit is %d", p, pids)
			}
			if !strings.HasPrefix(r.body, "started") || r.err == nil {
				t.Errorf("response %q, %v: want the output so far, then a cut connection", r.body, r.err)
			}
			if e := waitEnd(t, srv, name, 1); e.end != "timeout" || !e.aborted {
				t.Errorf("access log: %s; want end=timeout aborted", e.line)
			}
		})
	}

	t.Run("spawn count", func(t *testing.T) {
		status, body, err := readCut(t, srv, "/cgi-bin/spawn.sh")
		t.Logf("%s", body)
		if status != 200 || err != nil {
			t.Fatalf("status %d, %v", status, err)
		}
		m := regexp.MustCompile(`spawned=(\d+) procs=(\d+)\nerr=(.*)`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("body %q: no report", body)
		}
		spawned, _ := strconv.Atoi(m[1])
		procs, _ := strconv.Atoi(m[2])
		if spawned >= pids || procs > pids || spawned < pids/2 {
			t.Errorf("spawned %d, %d processes visible; want fewer than the limit %d (and most of it)", spawned, procs, pids)
		}
		if !strings.Contains(m[3], "can't fork") && !strings.Contains(m[3], "Resource temporarily unavailable") {
			t.Errorf("error %q: want fork refused (EAGAIN)", m[3])
		}
	})

	t.Run("fd exhaustion", func(t *testing.T) {
		status, body, err := readCut(t, srv, "/cgi-bin/fds.sh")
		if status != 200 || err != nil {
			t.Fatalf("status %d, %v, body %q", status, err, body)
		}
		// RLIMIT_NOFILE 256: descriptors 0–255 only; then EMFILE (or
		// EBADF for a number above the limit).
		if !strings.Contains(body, "ulimit=256\n") || !strings.Contains(body, "last=255\n") ||
			!strings.Contains(body, "Too many open files") && !strings.Contains(body, "Bad file descriptor") {
			t.Errorf("body %q: want ulimit=256, last=255 and EMFILE or EBADF", body)
		}
	})
	assertStillServes(t, srv)
	assertNothingLeft(t)
	if p := survivors(srv); len(p) > 0 {
		t.Errorf("processes of the bombs survive: %v", p)
	}
}

func TestAttack26MemoryBombAndTmpfs(t *testing.T) {
	requireContainerd(t)
	root := attackSite(t, map[string]string{
		"membomb.sh": attackScript(t, "26", "membomb.sh"),
		"awkmem.sh":  attackScript(t, "26", "awkmem.sh"),
		"fill.sh":    attackScript(t, "26", "fill.sh"),
	})
	// /tmp at 16M, below the memory limit: a full /tmp is ENOSPC, not an
	// OOM kill (tmpfs pages count against the memory limit).
	srv := startCold(t, "-d", root, "--memory", "64M", "--timeout", "20s", "--tmp", "16M", "--max-body", "8M")
	pid := srv.cmd.Process.Pid
	base := baseline(t, srv)
	rssBefore := vmRSS(t, pid)

	for _, name := range []string{"membomb.sh", "awkmem.sh"} {
		t.Run(name, func(t *testing.T) {
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); assertLatency(t, srv, base, 1) }()
			start := time.Now()
			status, body, err := readCut(t, srv, "/cgi-bin/"+name)
			took := time.Since(start)
			wg.Wait()
			if status != 200 || body != "started\n" || err == nil {
				t.Errorf("status %d, body %q, read error %v: want 200, the output so far, then a cut connection", status, body, err)
			}
			if took > 15*time.Second {
				t.Errorf("took %s: the OOM kill should end the script long before the 20s deadline", took)
			}
			if e := waitEnd(t, srv, name, 1); e.end != "oom" || !e.aborted || e.mem > 64<<20+1<<20 {
				t.Errorf("access log: %s; want end=oom aborted, mem at most 64 MiB", e.line)
			}
		})
	}

	t.Run("fill tmp and shm", func(t *testing.T) {
		status, body, err := readCut(t, srv, "/cgi-bin/fill.sh")
		t.Logf("%s", body)
		if status != 200 || err != nil {
			t.Fatalf("status %d, %v", status, err)
		}
		for _, c := range []struct {
			dir string
			max int64
		}{{"/tmp", 16 << 20}, {"/dev/shm", 4 << 20}} {
			m := regexp.MustCompile(regexp.QuoteMeta(c.dir) + ` size=(\d+) err=(.*)`).FindStringSubmatch(body)
			if m == nil {
				t.Errorf("%s: no report in %q", c.dir, body)
				continue
			}
			size, _ := strconv.ParseInt(m[1], 10, 64)
			if size > c.max || size < c.max/2 || !strings.Contains(m[2], "No space left on device") && !strings.Contains(m[2], "File too large") {
				t.Errorf("%s: wrote %d bytes, error %q; want ENOSPC or EFBIG at %d bytes", c.dir, size, m[2], c.max)
			}
		}
	})

	// The gateway itself did not grow with the attack.
	if rssAfter := vmRSS(t, pid); rssAfter > rssBefore+16<<20 {
		t.Errorf("cgibox's VmRSS grew from %d to %d bytes during the attacks", rssBefore, rssAfter)
	}
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

func TestAttack27CPUSpin(t *testing.T) {
	requireContainerd(t)
	root := attackSite(t, map[string]string{"spin.sh": attackScript(t, "27", "spin.sh")})
	const cpus, wall = 0.5, 4 * time.Second
	srv := startCold(t, "-d", root, "--cpus", "0.5", "--timeout", wall.String())
	base := baseline(t, srv)

	done := make(chan error, 1)
	var body string
	start := time.Now()
	go func() {
		var err error
		_, body, err = readCut(t, srv, "/cgi-bin/spin.sh")
		done <- err
	}()
	assertLatency(t, srv, base, 3)
	err := <-done
	took := time.Since(start)
	if body != "started\n" || err == nil {
		t.Errorf("body %q, read error %v: want the output so far, then a cut connection", body, err)
	}
	if took > wall+5*time.Second {
		t.Errorf("took %s; the deadline is %s", took, wall)
	}
	e := waitEnd(t, srv, "spin.sh", 1)
	// Nine spinners on two cores would burn about 2 × wall of CPU; the
	// quota holds them to cpus × wall (plus the grace and start-up).
	limit := time.Duration(float64(wall)*cpus*1.25) + 500*time.Millisecond
	if e.end != "timeout" || e.cpu > limit || e.cpu < time.Duration(float64(wall)*cpus/2) {
		t.Errorf("access log: %s; want end=timeout and cpu between %s and %s", e.line, time.Duration(float64(wall)*cpus/2), limit)
	}
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

func TestAttack28SleepIgnoringTERM(t *testing.T) {
	requireContainerd(t)
	root := attackSite(t, map[string]string{"sleeper.sh": attackScript(t, "28", "sleeper.sh")})
	const wall = 2 * time.Second
	srv := startCold(t, "-d", root, "--timeout", wall.String())
	start := time.Now()
	_, body, err := readCut(t, srv, "/cgi-bin/sleeper.sh")
	took := time.Since(start)
	if body != "started\n" || err == nil {
		t.Errorf("body %q, read error %v: want the output so far, then a cut connection", body, err)
	}
	// SIGTERM is ignored: only the SIGKILL after the grace (500 ms) ends it.
	if took < wall || took > wall+4*time.Second {
		t.Errorf("took %s; want the deadline %s plus the grace", took, wall)
	}
	if e := waitEnd(t, srv, "sleeper.sh", 1); e.end != "timeout" || e.exit != 137 || !e.aborted {
		t.Errorf("access log: %s; want exit=137 (SIGKILL) end=timeout aborted", e.line)
	}
	if p := survivors(srv); len(p) > 0 {
		t.Errorf("processes survive the kill: %v", p)
	}
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

func TestAttack29EndlessOutput(t *testing.T) {
	requireContainerd(t)
	root := attackSite(t, map[string]string{"yes.sh": attackScript(t, "29", "yes.sh")})

	t.Run("output cap", func(t *testing.T) {
		srv := startCold(t, "-d", root, "--max-output", "1M")
		start := time.Now()
		status, body, err := readCut(t, srv, "/cgi-bin/yes.sh")
		if status != 200 || err == nil || len(body) > 1<<20 || len(body) < 1<<19 || !strings.HasPrefix(body, "y\ny\n") {
			t.Errorf("status %d, %d bytes, read error %v: want at most the 1 MiB cap of y lines, then a cut connection", status, len(body), err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("took %s: the cap should end the script at once", took)
		}
		if e := waitEnd(t, srv, "yes.sh", 1); e.end != "output-limit" || !e.aborted {
			t.Errorf("access log: %s; want end=output-limit aborted", e.line)
		}
		assertStillServes(t, srv)
		assertNothingLeft(t)
	})

	t.Run("client reads nothing", func(t *testing.T) {
		const wall = 3 * time.Second
		srv := startCold(t, "-d", root, "--timeout", wall.String())
		pid := srv.cmd.Process.Pid
		base := baseline(t, srv)
		rssBefore := vmRSS(t, pid)
		conn, err := dialServer(srv)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /cgi-bin/yes.sh HTTP/1.1\r\nHost: x\r\n\r\n")
		start := time.Now()
		if !waitFor(10*time.Second, func() bool { return len(containerProcs(containerdAddr)) > 0 }) {
			t.Fatal("the script never ran")
		}
		assertLatency(t, srv, base, 1)
		// Stalled on its output, the script is killed at the deadline.
		if !waitFor(wall+5*time.Second, func() bool { return len(containerProcs(containerdAddr)) == 0 }) {
			t.Errorf("the stalled script still runs %s after it started (deadline %s): %v", time.Since(start), wall, containerProcs(containerdAddr))
		}
		// All the while the gateway's buffers stayed bounded.
		if rss := vmRSS(t, pid); rss > rssBefore+16<<20 {
			t.Errorf("cgibox's VmRSS grew from %d to %d bytes while the client read nothing", rssBefore, rss)
		}
		conn.Close()
		if e := waitEnd(t, srv, "yes.sh", 1); e.end != "timeout" || !e.aborted {
			t.Errorf("access log: %s; want end=timeout aborted", e.line)
		}
		assertStillServes(t, srv)
		assertNothingLeft(t)
	})
}

// diskFree is the free space of the file system holding path.
func diskFree(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

func TestAttack30HugeFile(t *testing.T) {
	requireContainerd(t)
	root := attackSite(t, map[string]string{"bigfile.sh": attackScript(t, "30", "bigfile.sh")})
	srv := startCold(t, "-d", root, "--tmp", "16M", "--max-body", "8M")
	before := map[string]int64{}
	paths := []string{"/", containerdDir, sharedDataDir, os.TempDir()}
	for _, p := range paths {
		before[p] = diskFree(t, p)
	}
	status, body, err := readCut(t, srv, "/cgi-bin/bigfile.sh")
	t.Logf("%s", body)
	if status != 200 || err != nil {
		t.Fatalf("status %d, %v", status, err)
	}
	m := regexp.MustCompile(`tmp size=(\d+) err=(.*)\nfsize rc=(\d+) size=(\d*) err=(.*)`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no report in %q", body)
	}
	if size, _ := strconv.ParseInt(m[1], 10, 64); size > 16<<20 || !strings.Contains(m[2], "No space left on device") && !strings.Contains(m[2], "File too large") {
		t.Errorf("/tmp: wrote %d bytes, error %q; want ENOSPC or EFBIG at 16 MiB (tmpfs size, RLIMIT_FSIZE)", size, m[2])
	}
	if m[3] == "0" || m[4] != "0" && m[4] != "" || !strings.Contains(m[5], "File too large") {
		t.Errorf("truncate to 1 GiB: rc=%s size=%q error %q; want EFBIG from RLIMIT_FSIZE and no file growth", m[3], m[4], m[5])
	}
	// The host's disks did not take the gigabyte.
	for _, p := range paths {
		if after := diskFree(t, p); before[p]-after > 256<<20 {
			t.Errorf("free space of %s dropped by %d bytes during the attack", p, before[p]-after)
		}
	}
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

func TestAttack32Burst(t *testing.T) {
	requireContainerd(t)
	c, cctx := containerdClient(t)
	root := attackSite(t, map[string]string{"slow.sh": attackScript(t, "32", "slow.sh")})
	const cap, burst = 2, 12
	// No queue: the excess is refused at once (TestBurstQueues waits).
	srv := startCold(t, "-d", root, "--max-concurrent", strconv.Itoa(cap), "--queue", "0")
	type answer struct {
		status     int
		retryAfter string
		body       string
		took       time.Duration
	}
	answers := make([]answer, burst)
	var wg sync.WaitGroup
	peak := 0
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			if cs, err := c.Containers(cctx); err == nil {
				peak = max(peak, len(cs))
			}
			select {
			case <-stopWatch:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(srv.base + "/cgi-bin/slow.sh")
			if err != nil {
				answers[i] = answer{status: -1, body: err.Error()}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers[i] = answer{resp.StatusCode, resp.Header.Get("Retry-After"), string(b), time.Since(start)}
		}()
	}
	// The host stays healthy: static files are served during the burst.
	for i := 0; i < 3; i++ {
		start := time.Now()
		resp, body := get(t, srv.base+"/ok.txt", nil)
		if took := time.Since(start); resp.StatusCode != 200 || string(body) != "static fine\n" || took > time.Second {
			t.Errorf("static request during the burst: status %d, %q, took %s", resp.StatusCode, body, took)
		}
	}
	wg.Wait()
	close(stopWatch)
	<-watched
	var ok, refused int
	for i, a := range answers {
		switch {
		case a.status == 200 && a.body == "done\n":
			ok++
		case a.status == 503 && a.retryAfter != "":
			refused++
			if a.took > time.Second {
				t.Errorf("request %d: 503 after %s; excess must be answered at once", i, a.took)
			}
		default:
			t.Errorf("request %d: status %d, Retry-After %q, body %q", i, a.status, a.retryAfter, a.body)
		}
	}
	if ok != cap || refused != burst-cap {
		t.Errorf("%d requests ran and %d were refused; want %d and %d", ok, refused, cap, burst-cap)
	}
	if peak > cap {
		t.Errorf("%d containers at once; the cap is %d", peak, cap)
	}
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

func TestAttack34ClientGoneAfterFirstByte(t *testing.T) {
	requireContainerd(t)
	root := attackSite(t, map[string]string{
		"sleeper.sh": attackScript(t, "28", "sleeper.sh"),
		"yes.sh":     attackScript(t, "29", "yes.sh"),
	})
	srv := startCold(t, "-d", root)
	for _, name := range []string{"sleeper.sh", "yes.sh"} {
		t.Run(name, func(t *testing.T) {
			conn, err := dialServer(srv)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "GET /cgi-bin/%s HTTP/1.1\r\nHost: x\r\n\r\n", name)
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			one := make([]byte, 1)
			if _, err := io.ReadFull(conn, one); err != nil {
				t.Fatalf("first byte: %v", err)
			}
			if !waitFor(10*time.Second, func() bool { return len(containerProcs(containerdAddr)) > 0 }) {
				t.Fatal("the script is not running")
			}
			conn.Close()
			gone := time.Now()
			if !waitFor(time.Second, func() bool { return len(containerProcs(containerdAddr)) == 0 }) {
				t.Errorf("the script still runs %s after the client went away: %v", time.Since(gone), containerProcs(containerdAddr))
			}
			if e := waitEnd(t, srv, name, 1); e.end != "client-gone" {
				t.Errorf("access log: %s; want end=client-gone", e.line)
			}
			assertNothingLeft(t)
		})
	}
	assertStillServes(t, srv)
}

func TestAttack35OneDirectorySaturates(t *testing.T) {
	requireContainerd(t)
	root := attackSite(t, nil)
	evil := filepath.Join(root, "evil-bin")
	if err := os.Mkdir(evil, 0o755); err != nil {
		t.Fatal(err)
	}
	attacks := []string{"25/forkbomb.sh", "27/spin.sh", "26/membomb.sh", "29/yes.sh"}
	for _, a := range attacks {
		dir, name := filepath.Split(a)
		if err := os.WriteFile(filepath.Join(evil, name), []byte(attackScript(t, filepath.Clean(dir), name)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The attacker holds all but one of the slots.
	srv := startCold(t, "-d", root, "--cgi-dir", "/cgi-bin", "--cgi-dir", "/evil-bin",
		"--max-concurrent", strconv.Itoa(len(attacks)+1), "--pids", "32", "--memory", "64M", "--timeout", "6s")
	base := baseline(t, srv)
	var wg sync.WaitGroup
	var conns []net.Conn
	for _, a := range attacks {
		name := filepath.Base(a)
		if name == "yes.sh" {
			// A flood nobody reads.
			conn, err := dialServer(srv)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, conn)
			fmt.Fprintf(conn, "GET /evil-bin/yes.sh HTTP/1.1\r\nHost: x\r\n\r\n")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(srv.base + "/evil-bin/" + name)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	if !waitFor(10*time.Second, func() bool { return len(endLines(srv, "membomb.sh")) > 0 }) {
		t.Error("the memory bomb did not end")
	}
	assertLatency(t, srv, base, 4)
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	for _, a := range attacks {
		name := filepath.Base(a)
		want := map[string]string{"forkbomb.sh": "timeout", "spin.sh": "timeout", "membomb.sh": "oom", "yes.sh": "timeout"}[name]
		e := waitEnd(t, srv, name, 1)
		// The bomb's own shell may itself meet the pids limit and give
		// up (exit 2, "can't fork") before its sleep: stopped all the same.
		if name == "forkbomb.sh" && e.end == "exited" && e.exit != 0 {
			continue
		}
		if e.end != want {
			t.Errorf("access log: %s; want end=%s", e.line, want)
		}
	}
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

// TestAttack37CrashWithLongScripts extends TestCrashLeftoversSwept: several
// long scripts with children (SIGTERM ignored) run when cgibox is killed;
// the restart or `cgibox gc` removes every task, container, snapshot,
// shim, mount and process within seconds.
func TestAttack37CrashWithLongScripts(t *testing.T) {
	requireContainerd(t)
	c, cctx := containerdClient(t)
	root := attackSite(t, map[string]string{
		"sleeper.sh":  attackScript(t, "28", "sleeper.sh"),
		"forkbomb.sh": attackScript(t, "25", "forkbomb.sh"),
		"spin.sh":     attackScript(t, "27", "spin.sh"),
	})
	for _, recover := range []string{"restart", "gc"} {
		t.Run(recover, func(t *testing.T) {
			srv := startCold(t, "-d", root, "--timeout", "5m")
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for _, name := range []string{"sleeper.sh", "sleeper.sh", "forkbomb.sh", "spin.sh"} {
				conn, err := dialServer(srv)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, conn)
				fmt.Fprintf(conn, "GET /cgi-bin/%s HTTP/1.1\r\nHost: x\r\n\r\n", name)
			}
			if !waitFor(30*time.Second, func() bool { n, _ := leftovers(t, c, cctx); return n == 4 }) {
				t.Fatal("the scripts' containers never appeared")
			}
			ids := map[string]bool{}
			cs, err := c.Containers(cctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, ct := range cs {
				ids[ct.ID()] = true
			}
			// Whatever their parent now: the processes in those containers' cgroups.
			procs := func() []string { return cgroupProcs(func(_, id string) bool { return ids[id] }) }
			// Only processes of the scripts count as running: a task
			// created but not started yet holds its runc:[2:INIT]
			// process, and killing cgibox then leaves only those.
			scriptProcs := func() int {
				n := 0
				for _, p := range procs() {
					if !strings.Contains(p, "(runc:") {
						n++
					}
				}
				return n
			}
			if !waitFor(10*time.Second, func() bool { return scriptProcs() >= 8 }) {
				t.Fatalf("the scripts are not all running (processes %v)", procs())
			}
			srv.cmd.Process.Signal(syscall.SIGKILL)
			<-srv.done
			if n, _ := leftovers(t, c, cctx); n != 4 {
				t.Fatalf("%d containers after SIGKILL, want the 4 left behind", n)
			}
			if scriptProcs() < 8 {
				t.Fatalf("the scripts died with cgibox (processes %v); nothing to recover from", procs())
			}
			start := time.Now()
			switch recover {
			case "gc":
				out, err := exec.Command(cgiboxBin, "gc", "--containerd", containerdAddr, "--data-dir", sharedDataDir).CombinedOutput()
				if err != nil || !strings.Contains(string(out), "removed 4 ") {
					t.Errorf("cgibox gc: %v\n%s", err, out)
				}
			case "restart":
				srv = startCold(t, "-d", root)
			}
			if !waitFor(10*time.Second, func() bool { return len(procs()) == 0 }) {
				t.Errorf("processes survive %s after %s: %v", time.Since(start), recover, procs())
			}
			var n, snaps int
			if !waitFor(10*time.Second, func() bool { n, snaps = leftovers(t, c, cctx); return n+snaps+len(daemonMounts()) == 0 }) {
				t.Errorf("%s after %s: %d containers, %d active snapshots, mounts %q", time.Since(start), recover, n, snaps, daemonMounts())
			}
			t.Logf("%s: processes, containers, snapshots and mounts gone %s after it began", recover, time.Since(start).Round(time.Millisecond))
			// containerd 1.6 sometimes leaves the shim of a task deleted
			// during recovery running (holding the dead gateway's stdin
			// FIFO); the sweep gives it 2 s, then ends it.
			if !waitFor(10*time.Second, func() bool { return countShims() == 0 }) {
				t.Errorf("a shim outlives %s by %s", recover, time.Since(start))
			}
			t.Logf("%s: shims gone %s after it began", recover, time.Since(start).Round(time.Millisecond))
			assertNothingLeft(t)
			if recover == "restart" {
				assertStillServes(t, srv)
			}
		})
	}
}

// privateDaemon is a containerd of its own, for the cases that stop it.
type privateDaemon struct {
	dir string
	d   *sandbox.Daemon
}

func startPrivateDaemon(t *testing.T, dir string) *sandbox.Daemon {
	t.Helper()
	d, err := sandbox.StartDaemon(t.Context(), dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("starting a private containerd: %v", err)
	}
	return d
}

// stop stops the daemon and kills the shims it leaves running (they
// outlive containerd by design).
func (p *privateDaemon) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 20*time.Second)
	defer cancel()
	if p.d != nil {
		if err := p.d.Stop(ctx); err != nil {
			t.Errorf("stopping the private containerd: %v", err)
		}
		p.d = nil
	}
}

// clientOf connects to a private daemon's socket.
func clientOf(t *testing.T, addr string) (*containerd.Client, context.Context) {
	t.Helper()
	c, err := containerd.New(addr, containerd.WithDefaultNamespace("cgibox"))
	if err != nil {
		t.Fatalf("connecting to containerd: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, namespaces.WithNamespace(t.Context(), "cgibox")
}

// privateLeftovers counts containers, active snapshots, shims and mounts
// of a private daemon kept under dir.
func privateLeftovers(t *testing.T, c *containerd.Client, ctx context.Context, dir, addr string) string {
	t.Helper()
	var parts []string
	if cs, err := c.Containers(ctx); err != nil {
		parts = append(parts, "containers: "+err.Error())
	} else if len(cs) > 0 {
		parts = append(parts, fmt.Sprintf("%d containers", len(cs)))
	}
	active := 0
	if err := c.SnapshotService("overlayfs").Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindActive {
			active++
		}
		return nil
	}); err != nil {
		parts = append(parts, "snapshots: "+err.Error())
	} else if active > 0 {
		parts = append(parts, fmt.Sprintf("%d active snapshots", active))
	}
	if n := shimsOf(addr); n > 0 {
		parts = append(parts, fmt.Sprintf("%d shims", n))
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
				parts = append(parts, "mount "+f[4])
			}
		}
	}
	if p := containerProcs(addr); len(p) > 0 {
		parts = append(parts, fmt.Sprintf("processes %v", p))
	}
	return strings.Join(parts, ", ")
}

// shimsOf counts the shim processes serving the daemon at addr.
func shimsOf(addr string) int {
	n := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if strings.HasPrefix(filepath.Base(strings.Split(string(b), "\x00")[0]), "containerd-shim") &&
			strings.Contains(string(b), addr) {
			n++
		}
	}
	return n
}

// TestAttack38And39DaemonFaults runs cgibox against a containerd of its
// own: case 38 stops that daemon mid-request and starts it again on the
// same directory; case 39 then takes away the image scripts run in.
func TestAttack38And39DaemonFaults(t *testing.T) {
	requireContainerd(t)
	dir, err := os.MkdirTemp("", "cgibox-38-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	p := &privateDaemon{dir: dir, d: startPrivateDaemon(t, dir)}
	t.Cleanup(func() { p.stop(t) })
	addr := p.d.Address()
	root := attackSite(t, map[string]string{
		"slow.sh":  attackScript(t, "32", "slow.sh"),
		"perl.cgi": "#!/usr/bin/perl\nprint \"Content-Type: text/plain\\n\\nperl\\n\";\n",
	})
	srv := startCold(t, "-d", root, "--containerd", addr, "--data-dir", filepath.Join(dir, "cgibox"), "--timeout", "20s")
	c, ctx := clientOf(t, addr)
	assertStillServes(t, srv)

	t.Run("38 containerd restarted mid-request", func(t *testing.T) {
		type res struct {
			status int
			body   string
			err    error
		}
		inflight := make(chan res, 1)
		// The status line comes once the script started.
		resp, err := http.Get(srv.base + "/cgi-bin/slow.sh")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("slow.sh: %v %v", resp, err)
		}
		go func() {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			inflight <- res{resp.StatusCode, string(b), err}
		}()
		p.stop(t)
		// The in-flight request ends: aborted or finished, in bounded time.
		select {
		case r := <-inflight:
			t.Logf("in-flight request: status %d, body %q, err %v", r.status, r.body, r.err)
			if r.err == nil && r.body != "done\n" {
				t.Errorf("in-flight request ended cleanly with %q; want finished (done) or aborted", r.body)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the in-flight request did not end within 30 s of containerd stopping")
		}
		// During the outage: 503 fast, static files still served.
		for i := 0; i < 2; i++ {
			start := time.Now()
			resp, body := get(t, srv.base+"/cgi-bin/ok.sh", nil)
			if took := time.Since(start); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || took > 10*time.Second {
				t.Errorf("during the outage: status %d, Retry-After %q, body %q, took %s; want a fast 503",
					resp.StatusCode, resp.Header.Get("Retry-After"), body, took)
			}
		}
		if resp, body := get(t, srv.base+"/ok.txt", nil); resp.StatusCode != 200 || string(body) != "static fine\n" {
			t.Errorf("static file during the outage: status %d, %q", resp.StatusCode, body)
		}
		p.d = startPrivateDaemon(t, dir)
		// Service resumes without restarting cgibox.
		var status int
		if !waitFor(30*time.Second, func() bool {
			resp, _ := get(t, srv.base+"/cgi-bin/ok.sh", nil)
			status = resp.StatusCode
			return status == 200
		}) {
			t.Fatalf("after containerd came back: status %d", status)
		}
		assertStillServes(t, srv)
		var left string
		if !waitFor(30*time.Second, func() bool { left = privateLeftovers(t, c, ctx, dir, addr); return left == "" }) {
			t.Errorf("left behind after the restart: %s", left)
		}
	})

	t.Run("38 deadline enforced while containerd is down", func(t *testing.T) {
		site := attackSite(t, map[string]string{"hang.sh": scriptHang})
		short := startCold(t, "-d", site, "--containerd", addr, "--data-dir", filepath.Join(dir, "cgibox-short"), "--timeout", "3s")
		resp, err := http.Get(short.base + "/cgi-bin/hang.sh")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("hang.sh: %v %v", resp, err)
		}
		defer resp.Body.Close()
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "started\n" {
			t.Fatalf("first line %q, %v", line, err)
		}
		// The container's processes, read as cgibox's deadline killer
		// reads them, on any cgroup hierarchy.
		cg, id := sandbox.DetectCgroups(""), "cgibox-"+resp.Header.Get("X-Request-Id")
		if pids, err := cg.Processes(id); err != nil || len(pids) == 0 {
			t.Fatalf("cgroup %s: processes of %s = %v, %v; want the running script", cg.Mode(), id, pids, err)
		}
		p.stop(t)
		// The deadline is 3 s, the grace 0.5 s: with containerd gone, the
		// script must still be dead soon after.
		var left []int
		if !waitFor(10*time.Second, func() bool { left, err = cg.Processes(id); return err == nil && len(left) == 0 }) {
			t.Errorf("cgroup %s: script processes %v (%v) still run past the deadline while containerd is down", cg.Mode(), left, err)
		}
		p.d = startPrivateDaemon(t, dir)
		if !waitFor(30*time.Second, func() bool { r, _ := get(t, short.base+"/cgi-bin/ok.sh", nil); return r.StatusCode == 200 }) {
			t.Fatal("CGI did not come back with containerd")
		}
		assertStillServes(t, short)
		var rest string
		if !waitFor(30*time.Second, func() bool { rest = privateLeftovers(t, c, ctx, dir, addr); return rest == "" }) {
			t.Errorf("left behind after containerd came back: %s", rest)
		}
	})

	t.Run("39 image missing", func(t *testing.T) {
		// A script whose #! names an image that was never built.
		start := time.Now()
		resp, body := get(t, srv.base+"/cgi-bin/perl.cgi", nil)
		// The operator's to fix, not the client's to retry: 500, no
		// Retry-After, and the log names the command, for this server's
		// containerd and data directory.
		if took := time.Since(start); resp.StatusCode != 500 || resp.Header.Get("Retry-After") != "" || took > 5*time.Second {
			t.Errorf("#! picking an unbuilt image: status %d, Retry-After %q, body %q, took %s; want a fast 500",
				resp.StatusCode, resp.Header.Get("Retry-After"), body, took)
		}
		fix := "cgibox image build perl --containerd " + addr + " --data-dir " + filepath.Join(dir, "cgibox")
		if !waitFor(5*time.Second, func() bool { return strings.Contains(srv.stderr.String(), fix) }) {
			t.Errorf("the log does not name the fix (%s):\n%s", fix, srv.stderr.String())
		}
		// The image removed while cgibox serves.
		imgs, err := c.ImageService().List(ctx)
		if err != nil || len(imgs) == 0 {
			t.Fatalf("listing images: %v (%d)", err, len(imgs))
		}
		for _, img := range imgs {
			if err := c.ImageService().Delete(ctx, img.Name, images.SynchronousDelete()); err != nil {
				t.Fatalf("deleting image %s: %v", img.Name, err)
			}
		}
		start = time.Now()
		resp, body = get(t, srv.base+"/cgi-bin/ok.sh", nil)
		if took := time.Since(start); resp.StatusCode != 500 || took > 5*time.Second {
			t.Errorf("image removed: status %d, body %q, took %s; want a fast 500", resp.StatusCode, body, took)
		}
		if !waitFor(5*time.Second, func() bool { return strings.Contains(srv.stderr.String(), "image not found") }) {
			t.Errorf("the log does not say the image is missing:\n%s", srv.stderr.String())
		}
		if left := privateLeftovers(t, c, ctx, dir, addr); left != "" {
			t.Errorf("half-created leftovers: %s", left)
		}
		// Static files are still served.
		if resp, body := get(t, srv.base+"/ok.txt", nil); resp.StatusCode != 200 || string(body) != "static fine\n" {
			t.Errorf("static file: status %d, %q", resp.StatusCode, body)
		}
	})
	assertNothingLeft(t) // the shared daemon saw none of it
}

// hostState is what requests could leak on the host, counted where it is
// cgibox's: mounts below the shared daemon's directory, container cgroups
// and FIFOs of the requests srv logged, network namespaces held by
// processes under the shared daemon's shims, and cgibox's open descriptors
// and threads (logged only: Go keeps idle threads). The host-wide counts
// are logged too (other test packages run meanwhile).
type hostState struct {
	mounts, cgroups, netns, fifos, fds, threads int
	allCgroups, allNetns, allFIFOs              int
}

func (h hostState) String() string {
	return fmt.Sprintf("mounts=%d cgroups=%d netns=%d fifos=%d fds=%d threads=%d (host-wide: cgroups=%d netns=%d fifos=%d)",
		h.mounts, h.cgroups, h.netns, h.fifos, h.fds, h.threads, h.allCgroups, h.allNetns, h.allFIFOs)
}

func measureHost(t *testing.T, srv *server) hostState {
	t.Helper()
	h := hostState{mounts: len(daemonMounts())}
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(` rid=(\S+)`).FindAllStringSubmatch(srv.stderr.String(), -1) {
		ids["cgibox-"+m[1]] = true
	}
	// v1 and hybrid: one directory per controller; v2: the unified one.
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/cgibox*")
	sub, _ := filepath.Glob("/sys/fs/cgroup/*/cgibox/cgibox*")
	if sandbox.DetectCgroups("").Mode() == sandbox.CgroupV2 {
		dirs, _ = filepath.Glob("/sys/fs/cgroup/cgibox*")
		sub, _ = filepath.Glob("/sys/fs/cgroup/cgibox/cgibox*")
	}
	h.allCgroups = len(dirs) + len(sub)
	for _, d := range sub {
		if ids[filepath.Base(d)] {
			h.cgroups++
		}
	}
	all, mine := map[string]bool{}, map[string]bool{}
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	for _, p := range procs {
		l, err := os.Readlink(p)
		if err != nil {
			continue
		}
		all[l] = true
		if pid := filepath.Base(filepath.Dir(filepath.Dir(p))); underShim(pid, containerdAddr) {
			mine[l] = true
		}
	}
	h.allNetns, h.netns = len(all), len(mine)
	// The client's FIFOs (cio's default directory) are named
	// <container>-stdin and so on.
	filepath.WalkDir("/run/containerd/fifo", func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type()&os.ModeNamedPipe != 0 {
			h.allFIFOs++
			if id, _, ok := strings.Cut(strings.TrimPrefix(d.Name(), "cgibox-"), "-"); ok && ids["cgibox-"+id] {
				h.fifos++
			}
		}
		return nil
	})
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", srv.cmd.Process.Pid))
	h.fds = len(fds)
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", srv.cmd.Process.Pid)); err == nil {
		if m := regexp.MustCompile(`(?m)^Threads:\s+(\d+)`).FindSubmatch(b); m != nil {
			h.threads, _ = strconv.Atoi(string(m[1]))
		}
	}
	return h
}

// goroutines ends srv with SIGQUIT (GOTRACEBACK=all dumps every
// goroutine) and counts the goroutines in the dump.
func goroutines(t *testing.T, srv *server) int {
	t.Helper()
	srv.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-srv.done:
	case <-time.After(10 * time.Second):
		t.Fatal("cgibox did not dump its goroutines")
	}
	return len(regexp.MustCompile(`(?m)^goroutine \d+ `).FindAllString(srv.stderr.String(), -1))
}

// TestSoak (case 40) runs -soak requests mixing normal ones, timeouts,
// OOMs and client aborts, then checks that what they use on the host is
// back to its baseline. Skipped without -soak; CI runs -soak=60.
func TestSoak(t *testing.T) {
	if *soak <= 0 {
		t.Skip("soak mode: run with -soak=N")
	}
	requireContainerd(t)
	t.Setenv("GOTRACEBACK", "all")
	root := attackSite(t, map[string]string{
		"sleeper.sh": attackScript(t, "28", "sleeper.sh"),
		"membomb.sh": attackScript(t, "26", "membomb.sh"),
		"yes.sh":     attackScript(t, "29", "yes.sh"),
	})
	args := []string{"-d", root, "--timeout", "1s", "--memory", "64M", "--max-concurrent", "16"}
	kinds := []string{"ok", "ok", "ok", "ok", "ok", "timeout", "oom", "abort-yes", "abort-sleeper", "ok"}
	one := func(t *testing.T, srv *server, kind string) {
		switch kind {
		case "ok":
			if resp, body := get(t, srv.base+"/cgi-bin/ok.sh", nil); resp.StatusCode != 200 || string(body) != "fine\n" {
				t.Errorf("ok.sh: status %d, %q", resp.StatusCode, body)
			}
		case "timeout", "oom":
			name := map[string]string{"timeout": "sleeper.sh", "oom": "membomb.sh"}[kind]
			if status, body, err := readCut(t, srv, "/cgi-bin/"+name); status != 200 || err == nil {
				t.Errorf("%s: status %d, %q, %v: want a cut response", name, status, body, err)
			}
		default:
			conn, err := dialServer(srv)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET /cgi-bin/%s HTTP/1.1\r\nHost: x\r\n\r\n", strings.TrimPrefix(kind, "abort-")+".sh")
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			io.ReadFull(conn, make([]byte, 64))
		}
	}

	// Baseline: a server that ran each kind once.
	base := startCold(t, args...)
	for _, k := range kinds {
		one(t, base, k)
	}
	assertNothingLeft(t)
	baseGoroutines := goroutines(t, base)

	srv := startCold(t, args...)
	for _, k := range kinds {
		one(t, srv, k)
	}
	assertNothingLeft(t)
	before := measureHost(t, srv)
	start := time.Now()
	work := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				one(t, srv, k)
			}
		}()
	}
	for i := 0; i < *soak; i++ {
		work <- kinds[i%len(kinds)]
	}
	close(work)
	wg.Wait()
	took := time.Since(start)
	assertNothingLeft(t)
	var after hostState
	waitFor(10*time.Second, func() bool {
		after = measureHost(t, srv)
		return after.fds <= before.fds && after.fifos == 0
	})
	ends := map[string]int{}
	for _, name := range []string{"ok.sh", "sleeper.sh", "membomb.sh", "yes.sh"} {
		for _, e := range endLines(srv, name) {
			ends[e.end]++
		}
	}
	soakGoroutines := goroutines(t, srv)
	t.Logf("soak: %d requests in %s; ends %v\n before: %s\n after:  %s\n goroutines: baseline server %d, soaked server %d",
		*soak, took.Round(time.Millisecond), ends, before, after, baseGoroutines, soakGoroutines)
	for _, c := range []struct {
		what        string
		got, before int
	}{
		{"mounts", after.mounts, before.mounts},
		{"container cgroups", after.cgroups, 0},
		{"network namespaces", after.netns, before.netns},
		{"FIFOs of the requests", after.fifos, 0},
		{"open descriptors", after.fds, before.fds},
		{"goroutines", soakGoroutines, baseGoroutines + 2},
	} {
		if c.got > c.before {
			t.Errorf("%s: %d after the soak, baseline %d", c.what, c.got, c.before)
		}
	}
	for _, want := range []string{"exited", "timeout", "oom", "client-gone"} {
		if ends[want] == 0 && *soak >= len(kinds) {
			t.Errorf("no request ended with end=%s; the mix did not run (ends %v)", want, ends)
		}
	}
}

// A burst beyond --max-concurrent waits in the queue, as Apache's or
// Python's workers would make it wait, and every request runs; never more
// scripts at once than the cap.
func TestBurstQueues(t *testing.T) {
	requireContainerd(t)
	root := attackSite(t, map[string]string{"slow.sh": "#!/bin/sh\necho Content-Type: text/plain\necho\nsleep 1\necho done\n"})
	const cap, burst = 2, 6
	srv := startCold(t, "-d", root, "--max-concurrent", strconv.Itoa(cap), "--queue-wait", "60s")
	var wg sync.WaitGroup
	var mu sync.Mutex
	running, peak := 0, 0
	statuses := make([]string, burst)
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := (&http.Client{Timeout: 90 * time.Second}).Get(srv.base + "/cgi-bin/slow.sh")
			if err != nil {
				statuses[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			// The status line comes with the script's first byte: the
			// script runs from here until its body ends.
			mu.Lock()
			running++
			peak = max(peak, running)
			mu.Unlock()
			b, _ := io.ReadAll(resp.Body)
			mu.Lock()
			running--
			mu.Unlock()
			statuses[i] = fmt.Sprintf("%d %q", resp.StatusCode, b)
		}()
	}
	wg.Wait()
	for i, st := range statuses {
		if st != `200 "done\n"` {
			t.Errorf("request %d of the burst: %s, want 200 \"done\" after waiting its turn", i, st)
		}
	}
	if peak > cap {
		t.Errorf("%d scripts answered at once; the cap is %d", peak, cap)
	}
}
