package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgibox/cgibox/sandbox"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
)

// cgiSite makes a site whose cgi-bin holds scripts (name → body), readable
// and runnable by uid 65534.
func cgiSite(t *testing.T, scripts map[string]string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "site")
	bin := filepath.Join(root, "cgi-bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for p := root; p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755) // t.TempDir is 0700; nobody must traverse it
		if p == os.TempDir() {
			break
		}
	}
	for name, body := range scripts {
		p := filepath.Join(bin, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "index.html"), []byte("static\n"), 0o644)
	return root
}

const (
	scriptEnv    = "#!/bin/sh\necho Content-Type: text/plain\necho\ntr '\\0' '\\n' < /proc/$$/environ\n"
	scriptID     = "#!/bin/sh\necho Content-Type: text/plain\necho\nid\n"
	scriptCat    = "#!/bin/sh\necho Content-Type: application/octet-stream\necho\nexec cat\n"
	scriptStream = "#!/bin/sh\necho Content-Type: text/plain\necho\necho first\nsleep 1\ncut -d' ' -f1 /proc/uptime\n"
	scriptHang   = "#!/bin/sh\ntrap '' TERM\necho Content-Type: text/plain\necho\necho started\nwhile :; do sleep 1; done\n"
)

// containerdClient connects the test to the shared daemon, to look at what
// cgibox leaves in its namespace.
func containerdClient(t *testing.T) (*containerd.Client, context.Context) {
	t.Helper()
	c, err := containerd.New(containerdAddr, containerd.WithDefaultNamespace("cgibox"))
	if err != nil {
		t.Fatalf("connecting to containerd: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := namespaces.WithNamespace(t.Context(), "cgibox")
	return c, ctx
}

// leftovers counts containers and active snapshots in the cgibox namespace.
func leftovers(t *testing.T, c *containerd.Client, ctx context.Context) (int, int) {
	t.Helper()
	live := livePrepared(t, c, ctx)
	cs, err := c.Containers(ctx)
	if err != nil {
		t.Fatalf("listing containers: %v", err)
	}
	active := 0
	err = c.SnapshotService("overlayfs").Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindActive && !live[info.Name] {
			active++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing snapshots: %v", err)
	}
	return len(cs) - len(live), active
}

// requestContainers counts the containers of requests (not prepared ones).
func requestContainers(t *testing.T, c *containerd.Client, ctx context.Context) int {
	t.Helper()
	cs, err := c.Containers(ctx, fmt.Sprintf("labels.%q!=true", sandbox.LabelPrepared))
	if err != nil {
		t.Fatalf("listing containers: %v", err)
	}
	return len(cs)
}

// livePrepared is the set of the prepared containers waiting in the pools
// of a running cgibox: not leftovers while it runs (it deletes them when it
// stops, and once it has stopped they count).
func livePrepared(t *testing.T, c *containerd.Client, ctx context.Context) map[string]bool {
	t.Helper()
	cs, err := c.Containers(ctx, fmt.Sprintf("labels.%q==true", sandbox.LabelPrepared))
	if err != nil {
		t.Fatalf("listing containers: %v", err)
	}
	live := map[string]bool{}
	for _, ctr := range cs {
		if labels, err := ctr.Labels(ctx); err == nil && sandbox.WaitingForLiveOwner(labels) {
			live[ctr.ID()] = true
		}
	}
	return live
}

// assertClean fails t unless the namespace empties within d.
func assertClean(t *testing.T, c *containerd.Client, ctx context.Context, d time.Duration) {
	t.Helper()
	var n, s int
	if !waitFor(d, func() bool { n, s = leftovers(t, c, ctx); return n == 0 && s == 0 }) {
		t.Errorf("left behind after %s: %d containers, %d active snapshots", d, n, s)
	}
}

func get(t *testing.T, url string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	return do(t, "GET", url, header, nil)
}

func do(t *testing.T, method, url string, header http.Header, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body = nil
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, b
}

func TestCGIEnvironment(t *testing.T) {
	requireContainerd(t)
	c, cctx := containerdClient(t)
	root := cgiSite(t, map[string]string{"env.sh": scriptEnv, "sub/deep.sh": scriptEnv})
	// A canary in cgibox's own environment must never reach a script.
	t.Setenv("CGIBOX_CANARY", "leaked")
	srv := startCgibox(t, "-d", root)
	port := strings.TrimPrefix(srv.base, "http://127.0.0.1:")

	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("ada:secret"))
	cases := []struct {
		name, method, target string
		header               http.Header
		body                 []byte
		want                 []string // besides the variables every request has
	}{
		{
			name: "GET", method: "GET", target: "/cgi-bin/env.sh",
			want: []string{"QUERY_STRING=", "REQUEST_METHOD=GET", "REQUEST_URI=/cgi-bin/env.sh", "PATH_INFO=",
				"SCRIPT_NAME=/cgi-bin/env.sh", "SCRIPT_FILENAME=/www/cgi-bin/env.sh"},
		},
		{
			name: "query and PATH_INFO", method: "GET", target: "/cgi-bin/sub/deep.sh/a%20b/c?x=1&y=%2F&-s",
			want: []string{"QUERY_STRING=x=1&y=%2F&-s", "REQUEST_METHOD=GET",
				"REQUEST_URI=/cgi-bin/sub/deep.sh/a%20b/c?x=1&y=%2F&-s",
				"PATH_INFO=/a b/c", "PATH_TRANSLATED=/www/a b/c",
				"SCRIPT_NAME=/cgi-bin/sub/deep.sh", "SCRIPT_FILENAME=/www/cgi-bin/sub/deep.sh"},
		},
		{
			name: "POST", method: "POST", target: "/cgi-bin/env.sh",
			header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			body:   []byte("a=1&b=2"),
			want: []string{"QUERY_STRING=", "REQUEST_METHOD=POST", "REQUEST_URI=/cgi-bin/env.sh", "PATH_INFO=",
				"SCRIPT_NAME=/cgi-bin/env.sh", "SCRIPT_FILENAME=/www/cgi-bin/env.sh",
				"CONTENT_LENGTH=7", "CONTENT_TYPE=application/x-www-form-urlencoded"},
		},
		{
			name: "Basic auth and hostile headers", method: "GET", target: "/cgi-bin/env.sh",
			header: http.Header{"Authorization": {auth}, "Proxy": {"http://evil"},
				"Remote-User": {"root"}, "Script_filename": {"/etc/passwd"}, "X-Test": {"() { :; }; echo pwned"}},
			want: []string{"QUERY_STRING=", "REQUEST_METHOD=GET", "REQUEST_URI=/cgi-bin/env.sh", "PATH_INFO=",
				"SCRIPT_NAME=/cgi-bin/env.sh", "SCRIPT_FILENAME=/www/cgi-bin/env.sh",
				"AUTH_TYPE=Basic", "REMOTE_USER=ada", "HTTP_REMOTE_USER=root",
				"HTTP_X_TEST=() { :; }; echo pwned"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"User-Agent": {"cgibox-test"}}
			for k, v := range tc.header {
				h[k] = v
			}
			resp, body := do(t, tc.method, srv.base+tc.target, h, tc.body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, body %q", resp.StatusCode, body)
			}
			got := strings.Split(strings.TrimSpace(string(body)), "\n")
			var remotePort string
			for _, kv := range got {
				if v, ok := strings.CutPrefix(kv, "REMOTE_PORT="); ok {
					remotePort = v
				}
			}
			if _, err := strconv.Atoi(remotePort); err != nil {
				t.Errorf("REMOTE_PORT=%q is not a port", remotePort)
			}
			want := append([]string{
				"DOCUMENT_ROOT=/www",
				"GATEWAY_INTERFACE=CGI/1.1",
				"HTTP_ACCEPT_ENCODING=gzip",
				"HTTP_HOST=127.0.0.1:" + port,
				"HTTP_USER_AGENT=cgibox-test",
				"PATH=/usr/local/bin:/usr/bin:/bin",
				"REMOTE_ADDR=127.0.0.1",
				"REMOTE_HOST=127.0.0.1",
				"REMOTE_PORT=" + remotePort,
				"SERVER_NAME=127.0.0.1",
				"SERVER_PORT=" + port,
				"SERVER_PROTOCOL=HTTP/1.1",
				"SERVER_SOFTWARE=cgibox/devel",
			}, tc.want...)
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("environment differs\n got:  %q\n want: %q", got, want)
			}
		})
	}
	assertClean(t, c, cctx, 10*time.Second)
}

func TestCGIRunsAsNobody(t *testing.T) {
	requireContainerd(t)
	root := cgiSite(t, map[string]string{"id.sh": scriptID})
	srv := startCgibox(t, "-d", root)
	resp, body := get(t, srv.base+"/cgi-bin/id.sh", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// busybox id: uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)
	re := regexp.MustCompile(`^uid=65534(\(\w+\))? gid=65534(\(\w+\))? groups=65534(\(\w+\))?$`)
	if got := strings.TrimSpace(string(body)); !re.MatchString(got) {
		t.Errorf("id printed %q, want uid=65534 gid=65534 and no other groups", got)
	}
}

func TestCGIRequestBodyByteExact(t *testing.T) {
	requireContainerd(t)
	c, cctx := containerdClient(t)
	root := cgiSite(t, map[string]string{"cat.sh": scriptCat})
	srv := startCgibox(t, "-d", root)
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	big := make([]byte, 1<<20)
	rand.Read(big)
	for name, body := range map[string][]byte{"empty": {}, "binary": binary, "1MiB": big, "2MiB spooled": append(big, big...)} {
		t.Run(name, func(t *testing.T) {
			resp, got := do(t, "POST", srv.base+"/cgi-bin/cat.sh",
				http.Header{"Content-Type": {"application/octet-stream"}}, body)
			if resp.StatusCode != 200 || !bytes.Equal(got, body) {
				t.Errorf("status %d, got %d bytes back, want the %d bytes sent", resp.StatusCode, len(got), len(body))
			}
		})
	}
	assertClean(t, c, cctx, 10*time.Second)
}

func TestCGIStreamsWhileRunning(t *testing.T) {
	requireContainerd(t)
	root := cgiSite(t, map[string]string{"stream.sh": scriptStream})
	srv := startCgibox(t, "-d", root)
	resp, err := http.Get(srv.base + "/cgi-bin/stream.sh")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || first != "first\n" {
		t.Fatalf("first line %q, %v", first, err)
	}
	// The host and the container share one clock: the client's reading
	// of it, taken once the first line is here, must precede the moment
	// the script produced its second line.
	seen := uptime(t)
	second, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("second line: %v", err)
	}
	produced, err := strconv.ParseFloat(strings.TrimSpace(second), 64)
	if err != nil {
		t.Fatalf("second line %q: %v", second, err)
	}
	if !(seen < produced) {
		t.Errorf("first line reached the client at uptime %.2f, after the second was produced at %.2f: output was not streamed", seen, produced)
	}
}

func uptime(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	f, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCGIDeadlineKillsScript(t *testing.T) {
	requireContainerd(t)
	c, cctx := containerdClient(t)
	root := cgiSite(t, map[string]string{"hang.sh": scriptHang})
	srv := startCgibox(t, "-d", root, "--timeout", "2s")
	start := time.Now()
	resp, err := http.Get(srv.base + "/cgi-bin/hang.sh")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err == nil {
		t.Errorf("response ended cleanly after %s with %q; a killed script must cut the connection", took, body)
	}
	if !strings.HasPrefix(string(body), "started") {
		t.Errorf("body %q: want the output produced before the kill", body)
	}
	if took > 10*time.Second {
		t.Errorf("took %s; the deadline is 2s", took)
	}
	if !waitFor(5*time.Second, func() bool { return strings.Contains(srv.stderr.String(), "end=timeout") }) {
		t.Errorf("access log does not say end=timeout:\n%s", srv.stderr.String())
	}
	assertClean(t, c, cctx, 10*time.Second)
	// The gateway still serves.
	if resp, _ := get(t, srv.base+"/", nil); resp.StatusCode != 200 {
		t.Errorf("after the kill: status %d", resp.StatusCode)
	}
}

func TestCGIClientGoneKillsScript(t *testing.T) {
	requireContainerd(t)
	c, cctx := containerdClient(t)
	root := cgiSite(t, map[string]string{"hang.sh": scriptHang})
	srv := startCgibox(t, "-d", root)
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /cgi-bin/hang.sh HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading response: %v", err)
		}
		if line == "started\n" {
			break
		}
	}
	if n, _ := leftovers(t, c, cctx); n != 1 {
		t.Fatalf("%d containers while the script runs, want 1", n)
	}
	conn.Close()
	gone := time.Now()
	// Killed within a second: its task no longer runs.
	killed := waitFor(time.Second, func() bool {
		cs, _ := c.Containers(cctx)
		live := livePrepared(t, c, cctx)
		for _, ct := range cs {
			if live[ct.ID()] {
				continue // waiting for a request, running no script
			}
			task, err := ct.Task(cctx, nil)
			if err != nil {
				continue
			}
			if st, err := task.Status(cctx); err == nil && st.Status == containerd.Running {
				return false
			}
		}
		return true
	})
	if !killed {
		t.Errorf("script still running %s after the client went away", time.Since(gone))
	}
	assertClean(t, c, cctx, 10*time.Second)
	if !waitFor(5*time.Second, func() bool { return strings.Contains(srv.stderr.String(), "end=client-gone") }) {
		t.Errorf("access log does not say end=client-gone:\n%s", srv.stderr.String())
	}
}

// TestCrashLeftoversSwept kills cgibox with SIGKILL while a script runs;
// `cgibox gc` and a restart must remove what it left.
func TestCrashLeftoversSwept(t *testing.T) {
	requireContainerd(t)
	c, cctx := containerdClient(t)
	root := cgiSite(t, map[string]string{"hang.sh": scriptHang})
	for _, recover := range []string{"gc", "restart"} {
		t.Run(recover, func(t *testing.T) {
			srv := startCgibox(t, "-d", root)
			conn, err := net.Dial("tcp", strings.TrimPrefix(srv.base, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET /cgi-bin/hang.sh HTTP/1.1\r\nHost: x\r\n\r\n")
			if !waitFor(30*time.Second, func() bool { n, _ := leftovers(t, c, cctx); return n == 1 }) {
				t.Fatal("the script's container never appeared")
			}
			srv.cmd.Process.Signal(syscall.SIGKILL)
			<-srv.done
			// Left behind: the script's container, and the prepared ones
			// of the dead cgibox's pool, which no one will take now.
			all, _ := leftovers(t, c, cctx)
			if n := requestContainers(t, c, cctx); n != 1 {
				t.Fatalf("%d request containers after SIGKILL, want the 1 left behind", n)
			}
			switch recover {
			case "gc":
				out, err := exec.Command(cgiboxBin, "gc", "--containerd", containerdAddr, "--data-dir", sharedDataDir).CombinedOutput()
				if err != nil || !strings.Contains(string(out), fmt.Sprintf("removed %d ", all)) {
					t.Errorf("cgibox gc: %v\n%s", err, out)
				}
			case "restart":
				startCgibox(t, "-d", root)
			}
			assertClean(t, c, cctx, 10*time.Second)
		})
	}
}

func TestCGIErrorsBeforeStart(t *testing.T) {
	requireContainerd(t)
	root := cgiSite(t, map[string]string{"ok.sh": scriptID})
	os.WriteFile(filepath.Join(root, "cgi-bin", "noexec.sh"), []byte("#!/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "cgi-bin", "private.sh"), []byte("#!/bin/sh\n"), 0o750)
	srv := startCgibox(t, "-d", root, "--max-body", "1K")
	cases := []struct {
		method, target string
		body           []byte
		want           int
	}{
		{"GET", "/cgi-bin/missing.sh", nil, 404},
		{"GET", "/cgi-bin/noexec.sh", nil, 403},
		{"GET", "/cgi-bin/private.sh", nil, 403},
		{"GET", "/cgi-bin/", nil, 404}, // a directory is no script; never a listing
		{"POST", "/cgi-bin/ok.sh", make([]byte, 2048), 413},
		{"TRACE", "/cgi-bin/ok.sh", nil, 501},
	}
	for _, tc := range cases {
		resp, body := do(t, tc.method, srv.base+tc.target, nil, tc.body)
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.target, resp.StatusCode, tc.want)
		}
		if bytes.Contains(body, []byte("#!/bin/sh")) {
			t.Errorf("%s %s: the script's source was served", tc.method, tc.target)
		}
	}
}

// In Python's mode a script that ends without a byte of output gets a 500
// page with the request id (Python sends a blank 200); one that prints
// gets Python's 200 as before.
func TestNoOutputIs500(t *testing.T) {
	requireContainerd(t)
	root := cgiSite(t, map[string]string{
		"fails.sh":  "#!/bin/sh\nexit 3\n",
		"nointerp":  "#!/no/such/interpreter\nprint 1\n",
		"prints.sh": "#!/bin/sh\necho Content-Type: text/plain\necho\necho hi\nexit 3\n",
	})
	srv := startCgibox(t, "-d", root)
	for script, says := range map[string]string{"fails.sh": "ended without output", "nointerp": "could not be started"} {
		resp, body := get(t, srv.base+"/cgi-bin/"+script, nil)
		id := resp.Header.Get("X-Request-Id")
		if resp.StatusCode != http.StatusInternalServerError || id == "" || !strings.Contains(string(body), id) ||
			!strings.Contains(string(body), says) {
			t.Errorf("%s: %d, request id %q, body %q; want 500 naming the request id", script, resp.StatusCode, id, body)
		}
	}
	resp, body := get(t, srv.base+"/cgi-bin/prints.sh", nil)
	if resp.StatusCode != http.StatusOK || resp.Status != "200 Script output follows" || string(body) != "hi\n" {
		t.Errorf("prints.sh: %q %q; want Python's 200 and its output", resp.Status, body)
	}
}

// A body the gateway accepts fits the script's /tmp, file size limit
// included: with the defaults, a 20 MiB upload spooled to /tmp arrives
// whole (it used to stop at 16 MiB). --tmp sizes /tmp.
func TestUploadFitsTmp(t *testing.T) {
	requireContainerd(t)
	root := cgiSite(t, map[string]string{
		"spool.sh": "#!/bin/sh\necho Content-Type: text/plain\necho\ncat > /tmp/upload && wc -c < /tmp/upload\n",
	})
	body := bytes.Repeat([]byte("0123456789abcdef"), 20<<20/16)
	srv := startCgibox(t, "-d", root)
	resp, out := do(t, "POST", srv.base+"/cgi-bin/spool.sh", nil, body)
	if got := strings.TrimSpace(string(out)); resp.StatusCode != 200 || got != fmt.Sprint(len(body)) {
		t.Errorf("20 MiB upload with the defaults: %d, script counted %q bytes in /tmp, want %d", resp.StatusCode, got, len(body))
	}
	// A /tmp smaller than the body is refused at start, naming both.
	out2, code := runCgibox(t, "-d", root, "--tmp", "16M", "--containerd", containerdAddr, "--data-dir", sharedDataDir, "0")
	if code == 0 || !strings.Contains(out2, "16M is below limits.body 64M") {
		t.Errorf("--tmp 16M with --max-body 64M: exit %d, output %q; want a refusal naming both", code, out2)
	}
	// One serve at a time holds the shared data directory.
	srv.cmd.Process.Signal(syscall.SIGTERM)
	<-srv.done
	srv = startCgibox(t, "-d", root, "--tmp", "8M", "--max-body", "4M")
	small := body[:6<<20]
	resp, out = do(t, "POST", srv.base+"/cgi-bin/spool.sh", nil, small)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("6 MiB over --max-body 4M: %d %q, want 413", resp.StatusCode, out)
	}
}
