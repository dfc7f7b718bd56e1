package gateway

import (
	"bytes"
	"io"

	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgibox/cgibox/sandbox"
)

func TestRFC3875KeepAliveAndTrailers(t *testing.T) {
	run := &scriptedRunner{stdout: "Status: 404 Not Found\nContent-Type: text/plain\n\nmissing\n",
		result: sandbox.Result{Reason: sandbox.Exited, ExitCode: 3}}
	srv, access, _ := newTestServer(t, Config{Runner: run, Sites: []Site{{CGI: true, Image: "img", Mode: ModeRFC3875}}})
	client := srv.Client()
	for i := range 2 {
		resp, err := client.Get(srv.URL + "/cgi-bin/s.sh")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 404 || string(body) != "missing\n" {
			t.Fatalf("request %d: %d %q %v", i, resp.StatusCode, body, err)
		}
		if got := resp.Trailer.Get(trailerExit); got != "3" {
			t.Errorf("trailer %s = %q, want 3", trailerExit, got)
		}
		if got := resp.Trailer.Get(trailerEnd); got != "exited" {
			t.Errorf("trailer %s = %q, want exited", trailerEnd, got)
		}
		if resp.Close {
			t.Errorf("request %d: connection closed; rfc3875 mode keeps it alive", i)
		}
	}
	waitFor(t, func() bool { return strings.Count(access.String(), "exit=3 end=exited") == 2 })
}

func TestRFC3875AbortAfterHeaders(t *testing.T) {
	run := &scriptedRunner{stdout: "Content-Type: text/plain\n\npartial", result: sandbox.Result{Reason: sandbox.OutOfMemory, ExitCode: 137}}
	srv, access, _ := newTestServer(t, Config{Runner: run, Sites: []Site{{CGI: true, Image: "img", Mode: ModeRFC3875}}})
	resp, err := srv.Client().Get(srv.URL + "/cgi-bin/s.sh")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Errorf("body %q ended cleanly; a killed script's response must be cut", body)
	}
	waitFor(t, func() bool {
		return strings.Contains(access.String(), "end=oom") && strings.Contains(access.String(), "aborted")
	})
}

func TestRFC3875HeaderTimeout(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	run := &scriptedRunner{stdout: "Content-Type: text/plain\n", block: block}
	srv, _, _ := newTestServer(t, Config{Runner: run, HeaderTimeout: 200 * time.Millisecond, Sites: []Site{{CGI: true, Image: "img", Mode: ModeRFC3875}}})
	resp, err := srv.Client().Get(srv.URL + "/cgi-bin/s.sh")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout && resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d; a header block that never ends must give 502/504", resp.StatusCode)
	}
}

func TestChunkedRequestBody(t *testing.T) {
	run := &scriptedRunner{stdout: "Content-Type: text/plain\n\n", result: sandbox.Result{Reason: sandbox.Exited}}
	stdin := &bytes.Buffer{}
	run.onStdin = stdin
	srv, _, _ := newTestServer(t, Config{Runner: run, Sites: []Site{{CGI: true, Image: "img", MaxBody: 3 << 20}}})
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16+7) // over memBody: spooled
	cases := []struct {
		name    string
		raw     string
		want    string // status line prefix
		stdin   []byte
		nostart bool
	}{
		{"decoded", "POST /cgi-bin/s.sh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "HTTP/1.1 200 ", []byte("hello world"), false},
		{"expect 100-continue", "POST /cgi-bin/s.sh HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ", []byte("abc"), false},
		{"bad chunk syntax", "POST /cgi-bin/s.sh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", "HTTP/1.1 400 ", nil, true},
		{"over the cap", "POST /cgi-bin/s.sh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(bytes.Repeat([]byte("x"), 3<<20+1)) + "0\r\n\r\n", "HTTP/1.1 413 ", nil, true},
		{"spooled", "POST /cgi-bin/s.sh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(payload) + "0\r\n\r\n", "HTTP/1.1 200 ", payload, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run.mu.Lock()
			before := len(run.jobs)
			stdin.Reset()
			run.mu.Unlock()
			out, _ := rawRequest(t, srv, tc.raw)
			if !strings.HasPrefix(out, tc.want) {
				t.Fatalf("response %.120q, want it to start with %q", out, tc.want)
			}
			run.mu.Lock()
			defer run.mu.Unlock()
			if tc.nostart {
				if len(run.jobs) != before {
					t.Errorf("a job ran")
				}
				return
			}
			if len(run.jobs) != before+1 {
				t.Fatalf("%d jobs ran, want 1", len(run.jobs)-before)
			}
			if !bytes.Equal(stdin.Bytes(), tc.stdin) {
				t.Errorf("script stdin: %d bytes, want %d", stdin.Len(), len(tc.stdin))
			}
			if want := "CONTENT_LENGTH=" + strconv.Itoa(len(tc.stdin)); !contains(run.jobs[before].Env, want) {
				t.Errorf("env lacks %s", want)
			}
		})
	}
}

func chunk(b []byte) string {
	var s strings.Builder
	for len(b) > 0 {
		n := min(len(b), 32<<10)
		s.WriteString(strconv.FormatInt(int64(n), 16) + "\r\n")
		s.Write(b[:n])
		s.WriteString("\r\n")
		b = b[n:]
	}
	return s.String()
}

// TestPythonModeOverHTTP2 checks the fallback where the connection cannot
// be taken over: headers parsed, a fixed 200.
func TestPythonModeOverHTTP2(t *testing.T) {
	run := &scriptedRunner{stdout: "Status: 404 Not Found\nContent-Type: text/plain\nContent-Length: 1\n\nbody\n", result: sandbox.Result{Reason: sandbox.Exited}}
	gw, err := New(Config{Runner: run, Sites: []Site{{Root: testSite(t), CGI: true, Image: "img"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	srv := httptest.NewUnstartedServer(gw)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/cgi-bin/s.sh")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s; the test needs HTTP/2", resp.Proto)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Status") != "404 Not Found" || string(body) != "body\n" ||
		resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("got %d %v %q; want a fixed 200 with the script's headers", resp.StatusCode, resp.Header, body)
	}
}

func TestNPHOnlyWhenEnabled(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		run := &scriptedRunner{stdout: "HTTP/1.1 201 Created\r\nX-Raw: 1\r\n\r\nraw", result: sandbox.Result{Reason: sandbox.Exited}}
		site := testSite(t)
		writeExec(t, site, "cgi-bin/nph-s.sh")
		srv, _, _ := newTestServer(t, Config{Runner: run, Sites: []Site{{Root: site, CGI: true, Image: "img", NPH: enabled}}})
		out, _ := rawRequest(t, srv, "GET /cgi-bin/nph-s.sh HTTP/1.1\r\nHost: x\r\n\r\n")
		raw := strings.HasPrefix(out, "HTTP/1.1 201 Created\r\nX-Raw: 1\r\n\r\nraw")
		if raw != enabled {
			t.Errorf("NPH %v: response %.80q", enabled, out)
		}
	}
}

// TestChunkedWithContentLengthNeverReused: SECURITY.md case 41. net/http
// lets Transfer-Encoding win over Content-Length; the gateway then closes
// the connection, so a smuggled second request can never be read from it.
func TestChunkedWithContentLengthNeverReused(t *testing.T) {
	srv, _, _ := newTestServer(t, Config{})
	out, err := rawRequest(t, srv, "GET /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "HTTP/1.1 "); n != 1 || !strings.Contains(out, "Connection: close\r\n") {
		t.Errorf("%d responses on the connection, want 1 and Connection: close:\n%s", n, out)
	}
}
