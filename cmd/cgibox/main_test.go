package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgibox/cgibox/internal/testenv"
	"github.com/cgibox/cgibox/sandbox"
)

// The binary under test, built once by TestMain, and the containerd the
// end-to-end tests share (a private one, started here, when running as root).
var (
	cgiboxBin      string
	containerdAddr string
	containerdDir  string // the shared daemon's data directory
	sharedDataDir  string
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "cgibox-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	cgiboxBin = filepath.Join(dir, "cgibox")
	build := exec.Command("go", "build", "-o", cgiboxBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building cgibox: %v\n%s", err, out)
		return 1
	}
	// The launcher beside it, as scripts/lib.sh builds them.
	build = exec.Command("go", "build", "-o", filepath.Join(dir, "cgibox-launch"), "../cgibox-launch")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building cgibox-launch: %v\n%s", err, out)
		return 1
	}
	if os.Geteuid() == 0 {
		sharedDataDir = filepath.Join(dir, "data")
		ctx := context.Background()
		containerdDir = filepath.Join(dir, "containerd")
		d, err := sandbox.StartDaemon(ctx, containerdDir, slog.New(slog.NewTextHandler(os.Stderr, nil)))
		if err != nil {
			fmt.Fprintf(os.Stderr, "starting a private containerd: %v\n", err)
			return 1
		}
		defer d.Stop(ctx)
		containerdAddr = d.Address()
		cache := os.Getenv("CGIBOX_TEST_IMAGE_CACHE")
		restoreImageCache(cache, imageCacheDir(sharedDataDir))
		defer keepImageCache(imageCacheDir(sharedDataDir), cache)
	}
	return m.Run()
}

// The perl and python images take a debootstrap each (about half a
// minute); the test command keeps their archives between runs on one
// machine in $CGIBOX_TEST_IMAGE_CACHE. An archive is named by its recipe's
// hash, so a changed recipe misses and is built again, and a machine that
// never ran the suite builds both for real.

// restoreImageCache links (or copies) the archives kept in from into the
// data directory's image cache to.
func restoreImageCache(from, to string) {
	if from == "" {
		return
	}
	kept, _ := filepath.Glob(filepath.Join(from, "*.tar"))
	if err := os.MkdirAll(to, 0o700); err != nil {
		fmt.Fprintf(os.Stderr, "image cache: %v\n", err)
		return
	}
	for _, f := range kept {
		if err := linkOrCopy(f, filepath.Join(to, filepath.Base(f))); err != nil {
			fmt.Fprintf(os.Stderr, "image cache: %v\n", err)
		}
	}
}

// keepImageCache makes the archives of this run, and only those, the ones
// kept in to: archives of recipes that changed since do not pile up.
func keepImageCache(from, to string) {
	if to == "" {
		return
	}
	built, _ := filepath.Glob(filepath.Join(from, "*.tar"))
	if len(built) == 0 {
		return
	}
	if err := os.MkdirAll(to, 0o700); err != nil {
		fmt.Fprintf(os.Stderr, "image cache: %v\n", err)
		return
	}
	keep := map[string]bool{}
	for _, f := range built {
		keep[filepath.Base(f)] = true
		if err := linkOrCopy(f, filepath.Join(to, filepath.Base(f))); err != nil {
			fmt.Fprintf(os.Stderr, "image cache: %v\n", err)
		}
	}
	old, _ := filepath.Glob(filepath.Join(to, "*.tar"))
	for _, f := range old {
		if !keep[filepath.Base(f)] {
			os.Remove(f)
		}
	}
}

func linkOrCopy(from, to string) error {
	if _, err := os.Stat(to); err == nil {
		return nil
	}
	if os.Link(from, to) == nil {
		return nil
	}
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := to + ".part"
	dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		os.Remove(tmp)
		return err
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, to)
}

// requireContainerd skips (or, in CI, fails) t unless the end-to-end CGI
// tests can run here.
func requireContainerd(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	if containerdAddr == "" {
		testenv.Skip(t, "no containerd")
	}
}

// server is a running cgibox or python3 -m http.server.
type server struct {
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:PORT
	stderr *syncBuffer
	done   chan struct{}
}

var servingRE = regexp.MustCompile(`^Serving HTTPS? on (\S+) port (\d+) `)

// startServer runs argv, which must print Python's "Serving HTTP on ..."
// line, and returns once it does. It is stopped when t ends.
func startServer(t *testing.T, argv ...string) *server {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, stderr: &syncBuffer{max: 1 << 20}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", argv, err)
	}
	go func() { cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("stderr of %s:\n%s", filepath.Base(argv[0]), s.stderr.String())
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := servingRE.FindStringSubmatch(sc.Text()); m != nil {
				lines <- m[2]
			}
		}
	}()
	select {
	case port := <-lines:
		s.base = "http://127.0.0.1:" + port
	case <-s.done:
		t.Fatalf("%v exited before serving:\n%s", argv, s.stderr.String())
	case <-time.After(120 * time.Second):
		t.Fatalf("%v did not start serving within 120s:\n%s", argv, s.stderr.String())
	}
	return s
}

// stop ends the server with SIGTERM, then SIGKILL after 10 s.
func (s *server) stop(t *testing.T) {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Errorf("server did not stop within 10s of SIGTERM; killing it")
		s.cmd.Process.Kill()
		<-s.done
	}
}

// startCgibox runs the built binary on 127.0.0.1 and a free port with args.
// With CGI on it uses the shared private containerd.
func startCgibox(t *testing.T, args ...string) *server {
	t.Helper()
	argv := append([]string{cgiboxBin, "0", "-b", "127.0.0.1"}, args...)
	if !contains(args, "--no-cgi") && !contains(args, "--containerd") {
		argv = append(argv, "--containerd", containerdAddr, "--data-dir", sharedDataDir)
	}
	return startServer(t, argv...)
}

// startCold is startCgibox with the pool off (unless args set --pool):
// every request starts its own container, named after its request id
// (cgibox-<X-Request-Id>), and no container exists between requests. The
// HTTP and resource attack cases watch containers and cgroups by those
// names and count them; the sandbox cases, the CGI and parity tests run
// with the pool on, as cgibox serves by default.
func startCold(t *testing.T, args ...string) *server {
	t.Helper()
	if !contains(args, "--pool") {
		args = append(args, "--pool", "0")
	}
	return startCgibox(t, args...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// syncBuffer is a bounded, concurrency-safe buffer for a child's stderr.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

var _ = io.Discard
var _ = strings.Contains
