package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgibox/cgibox/sandbox"
)

// scriptedRunner stands in for the sandbox where the gateway's own handling
// of a job's output is under test: it plays back fixed output and a fixed
// end. (Containers themselves are tested against a real containerd in
// sandbox and cmd/cgibox.)
type scriptedRunner struct {
	stdout  string
	stderr  string
	result  sandbox.Result
	err     error // returned before start when notStarted, else after
	noStart bool
	block   chan struct{} // when set, Run waits on it (or ctx) after writing stdout
	onStdin io.Writer     // when set, receives the job's stdin

	mu   sync.Mutex
	jobs []sandbox.Job
}

func (s *scriptedRunner) Run(ctx context.Context, job sandbox.Job) (sandbox.Result, error) {
	s.mu.Lock()
	s.jobs = append(s.jobs, job)
	s.mu.Unlock()
	if s.noStart {
		return sandbox.Result{}, s.err
	}
	sink := io.Discard
	if s.onStdin != nil {
		sink = s.onStdin
	}
	io.Copy(sink, job.Stdin)
	job.Started()
	io.WriteString(job.Stderr, s.stderr)
	if _, err := io.WriteString(job.Stdout, s.stdout); err != nil {
		return sandbox.Result{Reason: sandbox.ClientGone, ExitCode: 137}, nil
	}
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return sandbox.Result{Reason: sandbox.ClientGone, ExitCode: 137}, nil
		}
	}
	return s.result, s.err
}

// testSite makes a site with an executable cgi-bin/s.sh and a static file.
func testSite(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	os.Chmod(root, 0o755)
	os.MkdirAll(filepath.Join(root, "cgi-bin"), 0o755)
	os.WriteFile(filepath.Join(root, "cgi-bin", "s.sh"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(root, "index.html"), []byte("home\n"), 0o644)
	return root
}

func newTestServer(t *testing.T, cfg Config) (*httptest.Server, *syncWriter, *syncWriter) {
	t.Helper()
	if len(cfg.Sites) == 0 {
		cfg.Sites = []Site{{}}
	}
	for i := range cfg.Sites {
		if cfg.Sites[i].Root == "" {
			cfg.Sites[i].Root = testSite(t)
		}
	}
	access := &syncWriter{}
	logs := &syncWriter{}
	cfg.AccessLog = access
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	gw, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	srv := httptest.NewUnstartedServer(gw)
	srv.Config = NewHTTPServer(gw, cfg.Logger)
	srv.Start()
	t.Cleanup(srv.Close)
	_ = logs
	return srv, access, logs
}

type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// rawRequest sends req on a fresh connection and returns everything the
// server wrote until it closed, and how the connection ended.
func rawRequest(t *testing.T, srv *httptest.Server, req string) (string, error) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, req)
	out, err := io.ReadAll(conn)
	return string(out), err
}

func TestCGIPythonModeOnTheWire(t *testing.T) {
	cases := []struct {
		name     string
		stdout   string
		method   string
		want     []string // substrings of the raw response, in order
		wantNot  []string
		wantBody string
	}{
		{
			name:   "headers checked and framing dropped",
			stdout: "Content-Type: text/plain\r\nContent-Length: 999\nTransfer-Encoding: chunked\nConnection: keep-alive\nX-Ok: 1\nbad line\nX-CR: a\rb\n\nhello\n",
			method: "GET",
			want: []string{"HTTP/1.1 200 Script output follows\r\n", "Server: cgibox\r\n", "Date: ",
				"Content-Type: text/plain\r\nX-Ok: 1\r\n", "Connection: close\r\n\r\nhello\n"},
			wantNot:  []string{"999", "chunked", "keep-alive", "bad line", "X-CR"},
			wantBody: "hello\n",
		},
		{
			name:     "fake second response stays body",
			stdout:   "Content-Type: text/plain\n\nHTTP/1.1 200 OK\r\nX-Evil: 1\r\n\r\n",
			method:   "GET",
			want:     []string{"Connection: close\r\n\r\nHTTP/1.1 200 OK\r\nX-Evil: 1\r\n\r\n"},
			wantBody: "HTTP/1.1 200 OK\r\nX-Evil: 1\r\n\r\n",
		},
		{
			name:     "HEAD sends no body",
			stdout:   "Content-Type: text/plain\n\nbody bytes\n",
			method:   "HEAD",
			want:     []string{"Content-Type: text/plain\r\nConnection: close\r\n\r\n"},
			wantNot:  []string{"body bytes"},
			wantBody: "",
		},
		{
			name:     "no blank line: rest passed through",
			stdout:   "Content-Type: text/plain\nhello",
			method:   "GET",
			wantBody: "hello",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := &scriptedRunner{stdout: tc.stdout, result: sandbox.Result{Reason: sandbox.Exited}}
			srv, _, _ := newTestServer(t, Config{Runner: run, Sites: []Site{{CGI: true, Image: "img"}}})
			out, err := rawRequest(t, srv, tc.method+" /cgi-bin/s.sh HTTP/1.1\r\nHost: x\r\n\r\n")
			if err != nil {
				t.Fatalf("connection ended with %v; a clean script must end with a clean close", err)
			}
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("response lacks %q (in order)\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tc.wantNot {
				if strings.Contains(out, w) {
					t.Errorf("response contains %q\n%s", w, out)
				}
			}
			_, body, _ := strings.Cut(out, "\r\n\r\n")
			if body != tc.wantBody {
				t.Errorf("body %q, want %q", body, tc.wantBody)
			}
		})
	}
}

func TestCGIKilledScriptResetsConnection(t *testing.T) {
	for _, reason := range []sandbox.Reason{sandbox.Timeout, sandbox.OutOfMemory, sandbox.OutputLimit} {
		t.Run(string(reason), func(t *testing.T) {
			run := &scriptedRunner{stdout: "Content-Type: text/plain\n\npartial", result: sandbox.Result{Reason: reason, ExitCode: 137}}
			srv, access, _ := newTestServer(t, Config{Runner: run, Sites: []Site{{CGI: true, Image: "img"}}})
			out, err := rawRequest(t, srv, "GET /cgi-bin/s.sh HTTP/1.1\r\nHost: x\r\n\r\n")
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("connection ended with %v after %q; want a reset", err, out)
			}
			if !strings.Contains(out, "partial") {
				t.Errorf("output before the kill did not reach the client: %q", out)
			}
			waitFor(t, func() bool { return strings.Contains(access.String(), "end="+string(reason)) })
			if !strings.Contains(access.String(), "aborted") {
				t.Errorf("access log does not say aborted: %q", access.String())
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCGIFailuresBeforeStart(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{fmt.Errorf("%w: containerd at x: connection refused", sandbox.ErrUnavailable), http.StatusServiceUnavailable},
		// A missing image is the operator's to fix: retrying will not help.
		{fmt.Errorf("%w: %w: image x", sandbox.ErrUnavailable, sandbox.ErrImageNotFound), http.StatusInternalServerError},
		{errors.New("secret internal detail"), http.StatusInternalServerError},
	}
	for _, tc := range cases {
		run := &scriptedRunner{noStart: true, err: tc.err}
		srv, access, logs := newTestServer(t, Config{Runner: run, Sites: []Site{{CGI: true, Image: "img"}}})
		resp, err := http.Get(srv.URL + "/cgi-bin/s.sh")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%v: status %d, want %d", tc.err, resp.StatusCode, tc.want)
		}
		if strings.Contains(string(body), "detail") || strings.Contains(string(body), "image x") || strings.Contains(string(body), "refused") {
			t.Errorf("%v: error text reached the client: %s", tc.err, body)
		}
		id := resp.Header.Get("X-Request-Id")
		if id == "" || !strings.Contains(string(body), id) || !strings.Contains(logs.String(), id) {
			t.Errorf("request id %q must be in the page and the log", id)
		}
		if ra := resp.Header.Get("Retry-After"); (tc.want == 503) != (ra != "") {
			t.Errorf("%v: status %d with Retry-After %q; want one with 503 only", tc.err, resp.StatusCode, ra)
		}
		if misconfigured := strings.Contains(string(body), "misconfigured"); misconfigured != errors.Is(tc.err, sandbox.ErrImageNotFound) {
			t.Errorf("%v: page %q; want it to say the server is misconfigured exactly when the image is missing", tc.err, body)
		}
		waitFor(t, func() bool { return strings.Contains(access.String(), "\n") })
		if !strings.Contains(access.String(), "exit=-1 end=not-started") {
			t.Errorf("access log %q does not say the script never ran", access.String())
		}
	}
}

func TestCGIConcurrencyCap(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	run := &scriptedRunner{stdout: "Content-Type: text/plain\n\nx", block: block, result: sandbox.Result{Reason: sandbox.Exited}}
	srv, _, _ := newTestServer(t, Config{Runner: run, MaxConcurrent: 1, Sites: []Site{{CGI: true, Image: "img"}}})
	first, err := http.Get(srv.URL + "/cgi-bin/s.sh")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Body.Close()
	resp, err := http.Get(srv.URL + "/cgi-bin/s.sh")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("second request while the first runs: status %d, Retry-After %q; want 503 with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp, err := http.Get(srv.URL + "/"); err != nil || resp.StatusCode != 200 {
		t.Errorf("static while CGI is capped: %v %v", resp, err)
	}
}

// At the global cap a request waits in the queue, up to its length, and
// runs when a slot frees; beyond the queue it is refused at once.
func TestCGIQueueAtCap(t *testing.T) {
	block := make(chan struct{})
	run := &scriptedRunner{stdout: "Content-Type: text/plain\n\nx", block: block, result: sandbox.Result{Reason: sandbox.Exited}}
	cfg := Config{Runner: run, MaxConcurrent: 1, QueueLength: 1, QueueWait: time.Minute,
		Sites: []Site{{CGI: true, Image: "img", Root: testSite(t)}}, Logger: slog.New(slog.DiscardHandler)}
	gw, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	srv := httptest.NewServer(gw)
	defer srv.Close()
	first, err := http.Get(srv.URL + "/cgi-bin/s.sh") // runs, blocked
	if err != nil {
		t.Fatal(err)
	}
	defer first.Body.Close()
	queued := make(chan *http.Response, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/cgi-bin/s.sh")
		if err != nil {
			t.Error(err)
			resp = &http.Response{}
		} else {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		queued <- resp
	}()
	waitFor(t, func() bool { return gw.queued.Load() == 1 })
	resp, err := http.Get(srv.URL + "/cgi-bin/s.sh") // the queue is full
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("beyond the queue: %d, want 503 with Retry-After", resp.StatusCode)
	}
	close(block)
	io.Copy(io.Discard, first.Body)
	if r := <-queued; r.StatusCode != http.StatusOK {
		t.Errorf("the queued request: %d, want 200 once the running one ended", r.StatusCode)
	}
}

func TestCGIClientGoneCancelsJob(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	run := &scriptedRunner{stdout: "Content-Type: text/plain\n\nstarted\n", block: block, result: sandbox.Result{Reason: sandbox.Exited}}
	srv, access, _ := newTestServer(t, Config{Runner: run, Sites: []Site{{CGI: true, Image: "img"}}})
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "GET /cgi-bin/s.sh HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "started\n" {
			break
		}
	}
	conn.Close()
	waitFor(t, func() bool { return strings.Contains(access.String(), "end=client-gone") })
}

func TestCGIStderrEscapedAndCapped(t *testing.T) {
	flood := strings.Repeat("x", stderrCap)
	run := &scriptedRunner{stdout: "Content-Type: text/plain\n\n", stderr: "\x1b[31mred\x1b[0m\nfake\rline\n" + flood,
		result: sandbox.Result{Reason: sandbox.Exited}}
	srv, _, logs := newTestServer(t, Config{Runner: run, Sites: []Site{{CGI: true, Image: "img"}}})
	resp, err := http.Get(srv.URL + "/cgi-bin/s.sh")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	waitFor(t, func() bool { return strings.Contains(logs.String(), "rest dropped") })
	l := logs.String()
	if strings.ContainsAny(l, "\x1b\r") {
		t.Errorf("control characters reached the log: %q", l)
	}
	if !strings.Contains(l, `\\x1b[31mred`) && !strings.Contains(l, `\x1b[31mred`) {
		t.Errorf("escaped stderr line missing from the log: %q", l)
	}
	if len(l) > 2*stderrCap {
		t.Errorf("log grew to %d bytes for a capped stderr", len(l))
	}
}

func TestCGIEnvironmentAndJob(t *testing.T) {
	run := &scriptedRunner{stdout: "Content-Type: text/plain\n\n", result: sandbox.Result{Reason: sandbox.Exited}}
	// A relative root, as in `cgibox -d examples`: the job still names
	// the CGI directory by its absolute path, for the bind mount.
	site := testSite(t)
	t.Chdir(filepath.Dir(site))
	srv, _, _ := newTestServer(t, Config{Runner: run, Sites: []Site{{CGI: true, Image: "img", Root: filepath.Base(site)}}})
	body := "a=1&b=2"
	resp, err := http.Post(srv.URL+"/cgi-bin/s.sh/extra?q=1", "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(run.jobs) != 1 {
		t.Fatalf("%d jobs", len(run.jobs))
	}
	j := run.jobs[0]
	if j.Path != "/www/cgi-bin/s.sh" || j.MountPoint != "/www/cgi-bin" || j.Dir != "/www/cgi-bin" || j.Image != "img" {
		t.Errorf("job paths: %+v", j)
	}
	if want, _ := filepath.EvalSymlinks(filepath.Join(site, "cgi-bin")); j.ScriptDir != want {
		t.Errorf("ScriptDir %q", j.ScriptDir)
	}
	for _, kv := range []string{"PATH_INFO=/extra", "QUERY_STRING=q=1", "CONTENT_LENGTH=7", "REQUEST_METHOD=POST"} {
		if !contains(j.Env, kv) {
			t.Errorf("env lacks %s: %q", kv, j.Env)
		}
	}
}

func writeExec(t *testing.T, site, rel string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(site, rel), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestRequestLimits(t *testing.T) {
	srv, _, _ := newTestServer(t, Config{})
	cases := []struct {
		name string
		req  string
		want string
	}{
		{"long URI", "GET /" + strings.Repeat("a", 70<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 414 "},
		{"huge cookie", "GET / HTTP/1.1\r\nHost: x\r\nCookie: " + strings.Repeat("c", 200<<10) + "\r\n\r\n", "HTTP/1.1 431 "},
		{"many headers", "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: 1\r\n", 101) + "\r\n", "HTTP/1.1 431 "},
		{"NUL in path", "GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n", "HTTP/1.1 405 "},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 405 "},
		{"POST static", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "HTTP/1.1 501 "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, _ := rawRequest(t, srv, tc.req)
			if !strings.HasPrefix(out, tc.want) {
				t.Errorf("got %.80q, want %q", out, tc.want)
			}
		})
	}
}

func TestRoutingSameDecisionForStaticAndCGI(t *testing.T) {
	run := &scriptedRunner{stdout: "Content-Type: text/plain\n\nran\n", result: sandbox.Result{Reason: sandbox.Exited}}
	srv, _, _ := newTestServer(t, Config{Runner: run, Sites: []Site{{CGI: true, Image: "img"}}})
	for _, target := range []string{"/cgi-bin/s.sh", "//cgi-bin/s.sh", "/cgi-bin/./s.sh", "/x/../cgi-bin/s.sh", "/cgi-bin%2fs.sh", "/cgi%2Dbin/s.sh"} {
		out, _ := rawRequest(t, srv, "GET "+target+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if strings.Contains(out, "#!/bin/sh") {
			t.Errorf("%s: the script's source was served", target)
		}
		if !strings.Contains(out, "ran\n") {
			t.Errorf("%s: the script did not run: %.100q", target, out)
		}
	}
	for _, target := range []string{"/CGI-BIN/s.sh", "/cgi-bin/s.sh.", "/cgi-bin/"} {
		out, _ := rawRequest(t, srv, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 404 ") || strings.Contains(out, "#!/bin/sh") {
			t.Errorf("%s: %.60q, want 404", target, out)
		}
	}
}

func TestNoCGIForbidsCGIDirectories(t *testing.T) {
	srv, _, _ := newTestServer(t, Config{Sites: []Site{{CGI: false}}})
	for _, target := range []string{"/cgi-bin/s.sh", "//cgi-bin/s.sh", "/htbin/x"} {
		out, _ := rawRequest(t, srv, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(out, "HTTP/1.1 403 ") || strings.Contains(out, "#!/bin/sh") {
			t.Errorf("%s: %.60q, want 403", target, out)
		}
	}
}

func TestAccessLogPythonFormat(t *testing.T) {
	srv, access, _ := newTestServer(t, Config{})
	rawRequest(t, srv, "GET /index.html?a=%1b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	waitFor(t, func() bool { return strings.Contains(access.String(), "\n") })
	re := regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4} \d\d:\d\d:\d\d\] "GET /index.html\?a=%1b HTTP/1.1" 200 -\n$`)
	if line := access.String(); !re.MatchString(line) {
		t.Errorf("access log line %q does not match Python's format %s", line, re)
	}
}

// A CGI request's line says when its response ended and how long it took:
// the line's own time is its arrival, as in Python's log.
func TestAccessLogCGIEnd(t *testing.T) {
	start := time.Date(2026, 12, 3, 12, 46, 29, 0, time.Local)
	e := entry{Remote: "127.0.0.1:1234", Time: start, Method: "GET", URI: "/cgi-bin/slow.sh", Proto: "HTTP/1.1",
		Status: 200, Duration: 2384 * time.Millisecond, Script: "/cgi-bin/slow.sh", CGI: &cgiOutcome{ExitCode: 143, Reason: "timeout"}}
	line := string(appendText(nil, e))
	want := `127.0.0.1 - - [03/Dec/2026 12:46:29] "GET /cgi-bin/slow.sh HTTP/1.1" 200 - cgi=/cgi-bin/slow.sh exit=143 end=timeout cpu=0s mem=0 took=2.384s ended=12:46:31.384` + "\n"
	if line != want {
		t.Errorf("line\n%q\nwant\n%q", line, want)
	}
	var buf bytes.Buffer
	a := newAccessLog(LogJSON, &buf)
	a.log(context.Background(), e)
	a.close()
	var rec struct{ Started, Ended time.Time }
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || !rec.Started.Equal(start) || !rec.Ended.Equal(start.Add(e.Duration)) {
		t.Errorf("JSON started %v ended %v (%v), want %v and %v", rec.Started, rec.Ended, err, start, start.Add(e.Duration))
	}
}

func TestHeadersAndProtocol(t *testing.T) {
	srv, _, _ := newTestServer(t, Config{Protocol: "HTTP/1.0", Sites: []Site{{Headers: http.Header{"X-Extra": {"1"}}}}})
	resp, err := http.Get(srv.URL + "/index.html")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Extra") != "1" || !resp.Close {
		t.Errorf("X-Extra %q, close %v; want the extra header and a closed connection", resp.Header.Get("X-Extra"), resp.Close)
	}
}

func TestEscapeLog(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a\nb", `a\x0ab`},
		{"\x1b[31m", `\x1b[31m`},
		{`back\slash`, `back\\slash`},
		{"\x7f\u0085\u009b", `\x7f\x85\x9b`},
		{"ünï", "ünï"},
		{"bad\xffutf8", `bad\xffutf8`},
		{"/evil\u202etxt.exe", `/evil\u202etxt.exe`},
		{"\u2066\u2067\u2068\u2069", `\u2066\u2067\u2068\u2069`},
		{"\u200e\u200f", `\u200e\u200f`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			if got := escapeLog(tt.in); got != tt.want {
				t.Errorf("escapeLog(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestAccessLogEscapes checks both formats escape what a request controls:
// its target and the script's name.
func TestAccessLogEscapes(t *testing.T) {
	tests := []struct {
		name, uri, wantURI string
	}{
		{"terminal escape", "/a?\x1b]0;owned\x07", `/a?\x1b]0;owned\x07`},
		{"forged line", "/a\r\n127.0.0.1 - - [x] \"GET / HTTP/1.1\" 200 -", `/a\x0d\x0a127.0.0.1 - - [x] "GET / HTTP/1.1" 200 -`},
		{"C1 control", "/a\u009b2J", `/a\x9b2J`},
		{"right-to-left override", "/cgi-bin/x\u202eh%73.exe", `/cgi-bin/x\u202eh%73.exe`},
		{"isolates and marks", "/\u2066\u2069\u200e\u200f", `/\u2066\u2069\u200e\u200f`},
		{"invalid UTF-8", "/\xff\xfe", `/\xff\xfe`},
		{"backslash", `/a\b`, `/a\\b`},
	}
	for _, format := range []LogFormat{LogPython, LogJSON} {
		for _, tt := range tests {
			t.Run(string(format)+"/"+tt.name, func(t *testing.T) {
				var buf bytes.Buffer
				a := newAccessLog(format, &buf)
				a.log(context.Background(), entry{
					Remote: "127.0.0.1:1234", Time: time.Now(), Method: "GET", URI: tt.uri, Proto: "HTTP/1.1",
					Status: 200, Script: tt.uri, CGI: &cgiOutcome{Reason: "exited"},
				})
				a.close()
				line := buf.String()
				var gotURI, gotScript string
				if format == LogJSON {
					var rec struct{ URI, Script string }
					if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
						t.Fatalf("URI %q: log line %q is not JSON: %v", tt.uri, line, err)
					}
					gotURI, gotScript = rec.URI, rec.Script
				} else {
					m := regexp.MustCompile(`^127\.0\.0\.1 - - \[[^]]*\] "GET (.*) HTTP/1\.1" 200 - cgi=(.*) exit=0 `).FindStringSubmatch(line)
					if m == nil {
						t.Fatalf("URI %q: log line %q is not one Python-style line", tt.uri, line)
					}
					gotURI, gotScript = m[1], m[2]
				}
				if gotURI != tt.wantURI || gotScript != tt.wantURI {
					t.Errorf("URI and script %q: logged %q and %q, want %q\nline: %q", tt.uri, gotURI, gotScript, tt.wantURI, line)
				}
				if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
					t.Errorf("URI %q: log is not exactly one line: %q", tt.uri, line)
				}
			})
		}
	}
}

// TestAccessLogEscapesOnTheWire sends targets net/http lets through (it
// refuses ASCII controls itself) and reads both access log formats.
func TestAccessLogEscapesOnTheWire(t *testing.T) {
	tests := []struct{ target, want string }{
		{"/index.html?\u202egpj.exe", `/index.html?\u202egpj.exe`},
		{"/index.html?\u2066x\u2069", `/index.html?\u2066x\u2069`},
		{"/index.html?\u0085\u009b", `/index.html?\x85\x9b`},
		{"/index.html?\xff", `/index.html?\xff`},
	}
	for _, format := range []LogFormat{LogPython, LogJSON} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/%q", format, tt.target), func(t *testing.T) {
				srv, access, _ := newTestServer(t, Config{LogFormat: format, Sites: []Site{{}}})
				out, _ := rawRequest(t, srv, "GET "+tt.target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
				if !strings.HasPrefix(out, "HTTP/1.1 200 ") {
					t.Fatalf("GET %q: %.80q, want 200", tt.target, out)
				}
				waitFor(t, func() bool { return strings.Contains(access.String(), "\n") })
				line := access.String()
				got := ""
				if format == LogJSON {
					var rec struct{ URI string }
					if err := json.Unmarshal([]byte(line), &rec); err != nil {
						t.Fatalf("GET %q: log line %q is not JSON: %v", tt.target, line, err)
					}
					got = rec.URI
				} else if m := regexp.MustCompile(`"GET (.*) HTTP/1\.1" 200 -`).FindStringSubmatch(line); m != nil {
					got = m[1]
				}
				if got != tt.want {
					t.Errorf("GET %q: logged target %q, want %q\nline: %q", tt.target, got, tt.want, line)
				}
			})
		}
	}
}

// TestTimeouts checks each timeout takes its default when unset and the
// configured value otherwise, and that NewHTTPServer applies the ones
// net/http enforces.
func TestTimeouts(t *testing.T) {
	defaults := Config{ReadHeaderTimeout: DefaultReadHeaderTimeout, BodyTimeout: DefaultBodyTimeout, WriteTimeout: DefaultWriteTimeout, IdleTimeout: DefaultIdleTimeout}
	set := Config{ReadHeaderTimeout: 1 * time.Second, BodyTimeout: 2 * time.Second, WriteTimeout: 3 * time.Second, IdleTimeout: 4 * time.Second}
	tests := []struct {
		name     string
		in, want Config
	}{
		{"defaults", Config{}, defaults},
		{"configured", set, set},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Sites = []Site{{Root: testSite(t)}}
			gw, err := New(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			defer gw.Close()
			got := [4]time.Duration{gw.cfg.ReadHeaderTimeout, gw.cfg.BodyTimeout, gw.cfg.WriteTimeout, gw.cfg.IdleTimeout}
			want := [4]time.Duration{tt.want.ReadHeaderTimeout, tt.want.BodyTimeout, tt.want.WriteTimeout, tt.want.IdleTimeout}
			if got != want {
				t.Errorf("New(%+v): header, body, write, idle timeouts %v, want %v", tt.in, got, want)
			}
			hs := NewHTTPServer(gw, slog.New(slog.DiscardHandler))
			if hs.ReadHeaderTimeout != tt.want.ReadHeaderTimeout || hs.IdleTimeout != tt.want.IdleTimeout {
				t.Errorf("NewHTTPServer: ReadHeaderTimeout %s, IdleTimeout %s; want %s, %s",
					hs.ReadHeaderTimeout, hs.IdleTimeout, tt.want.ReadHeaderTimeout, tt.want.IdleTimeout)
			}
		})
	}
}

// TestConnectionTimeoutsOnTheWire: a client that never finishes its
// headers, and one that stays idle after a response, are hung up on once
// the configured timeout passes, not the default one.
func TestConnectionTimeoutsOnTheWire(t *testing.T) {
	const timeout = 300 * time.Millisecond
	tests := []struct {
		name string
		cfg  Config
		send string
		want string // what the server writes before hanging up
	}{
		{"slow headers", Config{ReadHeaderTimeout: timeout, Sites: []Site{{}}}, "GET /index.html HTTP/1.1\r\nHost: x\r\nX-Slow: a", ""},
		{"idle keep-alive", Config{IdleTimeout: timeout, Sites: []Site{{}}}, "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", "home\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _, _ := newTestServer(t, tt.cfg)
			start := time.Now()
			out, err := rawRequest(t, srv, tt.send) // reads until the server closes, at most 10 s
			took := time.Since(start)
			if err != nil || took > 5*time.Second {
				t.Fatalf("sent %q: connection still open after %s (%v); want it closed after %s", tt.send, took, err, timeout)
			}
			if took < timeout {
				t.Errorf("sent %q: closed after %s, before the %s timeout", tt.send, took, timeout)
			}
			if !strings.HasSuffix(out, tt.want) {
				t.Errorf("sent %q: got %q, want it to end in %q", tt.send, out, tt.want)
			}
		})
	}
}
