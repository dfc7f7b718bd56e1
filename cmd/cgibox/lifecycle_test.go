package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests run cgibox on a private containerd of its own data directory
// (--containerd private), whatever else answers on the standard socket:
// a Docker engine's containerd on the hosts CI uses, or nothing.

const helloScript = "#!/bin/sh\necho Content-Type: text/plain\necho\necho hello\n"

// servePrivate starts cgibox serving root with its own data directory and
// private containerd, and returns it with that directory.
func servePrivate(t *testing.T, root string, args ...string) (*server, string) {
	t.Helper()
	requireContainerd(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	// Registered first, so it runs after the server is stopped.
	t.Cleanup(func() { assertNoProcessUses(t, dataDir) })
	srv := startCgibox(t, append([]string{"-d", root, "--containerd", "private", "--data-dir", dataDir}, args...)...)
	return srv, dataDir
}

// privateDaemonPid reads the pid of the data directory's private containerd.
func privateDaemonPid(t *testing.T, dataDir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "containerd.pid"))
	if err != nil {
		t.Fatalf("no private containerd recorded: %v", err)
	}
	var pf struct{ PID int }
	if err := json.Unmarshal(b, &pf); err != nil || pf.PID <= 1 {
		t.Fatalf("containerd.pid %q: %v", b, err)
	}
	return pf.PID
}

// runCgibox runs the built binary with args and returns its output and
// exit code.
func runCgibox(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(cgiboxBin, args...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	t.Fatalf("cgibox %q: %v", args, err)
	return "", -1
}

// The bug of issue 9: `cgibox image ls` beside a serving cgibox on its
// private containerd stopped that daemon, and every CGI request answered
// 503 from then on. image, gc and doctor must work beside it and leave it
// serving; a second serve must refuse, naming the holder.
func TestCommandsBesideServingInstance(t *testing.T) {
	srv, dataDir := servePrivate(t, cgiSite(t, map[string]string{"hello.sh": helloScript}))
	assertHello(t, srv)
	daemon := privateDaemonPid(t, dataDir)
	commands := []struct {
		args []string
		want string // in the output
		exit int
	}{
		{[]string{"image", "ls", "--data-dir", dataDir}, "cgibox.local/busybox:latest", 0},
		{[]string{"gc", "--data-dir", dataDir}, "removed 0 leftover container(s)", 0},
		{[]string{"image", "rm", "no-such-image", "--data-dir", dataDir}, "no-such-image", 1},
		{[]string{"doctor", "--data-dir", dataDir}, "beside cgibox serve (pid " + strconv.Itoa(srv.cmd.Process.Pid), -1},
	}
	for _, c := range commands {
		out, code := runCgibox(t, c.args...)
		if !strings.Contains(out, c.want) || c.exit >= 0 && code != c.exit {
			t.Errorf("cgibox %s: exit %d, output:\n%s\nwant exit %d and %q", strings.Join(c.args, " "), code, out, c.exit, c.want)
		}
		if err := syscall.Kill(daemon, 0); err != nil {
			t.Fatalf("after cgibox %s the serving cgibox's containerd (pid %d) is gone: %v", strings.Join(c.args, " "), daemon, err)
		}
		assertHello(t, srv)
	}
	out, code := runCgibox(t, "0", "-b", "127.0.0.1", "-d", t.TempDir(), "--data-dir", dataDir)
	want := "in use by cgibox serve (pid " + strconv.Itoa(srv.cmd.Process.Pid)
	if code != 1 || !strings.Contains(out, want) {
		t.Errorf("a second serve on the same data directory: exit %d, output:\n%s\nwant exit 1 and %q", code, out, want)
	}
	assertHello(t, srv)
}

func assertHello(t *testing.T, srv *server) {
	t.Helper()
	resp, body := get(t, srv.base+"/cgi-bin/hello.sh", nil)
	if resp.StatusCode != http.StatusOK || string(body) != "hello\n" {
		t.Fatalf("GET /cgi-bin/hello.sh: %d %q, want 200 \"hello\\n\"", resp.StatusCode, body)
	}
}

// slowScript streams four lines over three seconds.
const slowScript = "#!/bin/sh\necho Content-Type: text/plain\necho\nfor i in 1 2 3; do echo line $i; sleep 1; done\necho done\n"

// streamUntilFirstLine starts GET path and returns once the first body line
// has arrived, with the rest of the body still to come.
func streamUntilFirstLine(t *testing.T, srv *server, path string) (first string, rest <-chan streamed) {
	t.Helper()
	resp, err := http.Get(srv.base + path)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	br := bufio.NewReader(resp.Body)
	first, err = br.ReadString('\n')
	if err != nil {
		t.Fatalf("GET %s: first line: %v", path, err)
	}
	ch := make(chan streamed, 1)
	go func() {
		defer resp.Body.Close()
		b, err := io.ReadAll(br)
		ch <- streamed{string(b), err}
	}()
	return first, ch
}

type streamed struct {
	body string
	err  error
}

// exitCode waits up to d for srv to exit and returns its exit code.
func exitCode(t *testing.T, srv *server, d time.Duration) int {
	t.Helper()
	select {
	case <-srv.done:
	case <-time.After(d):
		t.Fatalf("cgibox still runs %s after the signal", d)
	}
	return srv.cmd.ProcessState.ExitCode()
}

// SIGTERM drains: a streaming response under way is delivered whole,
// cgibox exits 0, and no container, shim or private containerd is left.
func TestSIGTERMDrainsStreamingResponse(t *testing.T) {
	srv, dataDir := servePrivate(t, cgiSite(t, map[string]string{"slow.sh": slowScript, "hello.sh": helloScript}))
	daemon := privateDaemonPid(t, dataDir)
	first, rest := streamUntilFirstLine(t, srv, "/cgi-bin/slow.sh")
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	got := <-rest
	if body := first + got.body; got.err != nil || body != "line 1\nline 2\nline 3\ndone\n" {
		t.Errorf("response streaming across SIGTERM: %q, %v; want all four lines and a clean end", body, got.err)
	}
	if code := exitCode(t, srv, 20*time.Second); code != 0 {
		t.Errorf("cgibox exited %d after draining, want 0:\n%s", code, srv.stderr.String())
	}
	if !strings.Contains(srv.stderr.String(), "msg=drained") {
		t.Errorf("log does not say the drain completed:\n%s", srv.stderr.String())
	}
	if err := syscall.Kill(daemon, 0); err == nil {
		t.Errorf("the private containerd (pid %d) still runs after cgibox exited", daemon)
	}
}

// A second signal ends at once: the response in flight is cut (never
// looks complete), cgibox still cleans up and exits 0.
func TestSecondSignalEndsAtOnce(t *testing.T) {
	long := "#!/bin/sh\necho Content-Type: text/plain\necho\necho started\nexec sleep 60\n"
	srv, dataDir := servePrivate(t, cgiSite(t, map[string]string{"long.sh": long}), "--drain-timeout", "5m")
	daemon := privateDaemonPid(t, dataDir)
	_, rest := streamUntilFirstLine(t, srv, "/cgi-bin/long.sh")
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The first signal drained nothing yet: the script sleeps on. Wait
	// until cgibox says it is draining, then signal again.
	if !waitFor(10*time.Second, func() bool { return strings.Contains(srv.stderr.String(), "draining") }) {
		t.Fatalf("cgibox did not start draining:\n%s", srv.stderr.String())
	}
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if code := exitCode(t, srv, 30*time.Second); code != 0 {
		t.Errorf("cgibox exited %d after a second signal, want 0:\n%s", code, srv.stderr.String())
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("a second signal took %s to end cgibox", took)
	}
	if got := <-rest; got.err == nil {
		t.Errorf("the cut response ended cleanly (%q); it must not look complete", got.body)
	}
	if err := syscall.Kill(daemon, 0); err == nil {
		t.Errorf("the private containerd (pid %d) still runs after cgibox exited", daemon)
	}
}

// assertNoProcessUses fails t when a process (containerd, a shim, a script)
// still names dataDir on its command line once cgibox has exited.
func assertNoProcessUses(t *testing.T, dataDir string) {
	t.Helper()
	var left []string
	ok := waitFor(10*time.Second, func() bool {
		left = left[:0]
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err == nil && bytes.Contains(b, []byte(dataDir)) {
				left = append(left, strings.ReplaceAll(string(bytes.TrimRight(b, "\x00")), "\x00", " "))
			}
		}
		return len(left) == 0
	})
	if !ok {
		t.Errorf("processes left using %s: %q", dataDir, left)
	}
}
