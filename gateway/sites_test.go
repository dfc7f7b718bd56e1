package gateway

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgibox/cgibox/sandbox"
)

func TestCanonicalHost(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{"", "", false},
		{"example.org", "example.org", false},
		{"Example.ORG", "example.org", false},
		{"example.org.", "example.org", false},
		{"example.org:8000", "example.org", false},
		{"EXAMPLE.org.:80", "example.org", false},
		{"example.org:", "example.org", false}, // RFC 3986: port = *DIGIT
		{"127.0.0.1:8000", "127.0.0.1", false},
		{"[::1]:8000", "::1", false},
		{"[::1]", "::1", false},
		{"[2001:DB8::1]", "2001:db8::1", false},
		{"under_score.example", "under_score.example", false},
		{"::1", "", true},
		{"[::1", "", true},
		{"[::1]x", "", true},
		{"[1.2.3.4]", "", true},
		{"example.org:http", "", true},
		{"example.org:123456", "", true},
		{"a b", "", true},
		{"a..b", "", true},
		{".", "", true},
		{"exa%6dple.org", "", true},
		{"bücher.example", "", true},
		{"a/b", "", true},
		{strings.Repeat("a", 64) + ".example", "", true},
	}
	for _, tt := range tests {
		got, err := CanonicalHost(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("CanonicalHost(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

// namedSite makes a site root whose index.html and static.txt say name,
// with an executable script in each of dirs.
func namedSite(t *testing.T, name string, dirs ...string) string {
	t.Helper()
	root := t.TempDir()
	os.Chmod(root, 0o755)
	os.WriteFile(filepath.Join(root, "index.html"), []byte(name+"\n"), 0o644)
	for _, d := range dirs {
		os.MkdirAll(filepath.Join(root, d), 0o755)
		os.WriteFile(filepath.Join(root, d, "s.sh"), []byte("#!/bin/sh\n"), 0o755)
	}
	return root
}

type sitesServer struct {
	gw     *Server
	srv    *httptest.Server
	access *syncWriter
	logs   *syncWriter
}

func newSitesServer(t *testing.T, cfg Config) *sitesServer {
	t.Helper()
	s := &sitesServer{access: &syncWriter{}, logs: &syncWriter{}}
	cfg.AccessLog = s.access
	cfg.Logger = slog.New(slog.NewTextHandler(s.logs, nil))
	gw, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	s.gw = gw
	s.srv = httptest.NewUnstartedServer(gw)
	s.srv.Config = NewHTTPServer(gw, cfg.Logger)
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

// get sends GET target with Host host and returns the response, its body
// read.
func (s *sitesServer) get(t *testing.T, host, target string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", s.srv.URL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %q): %v", target, host, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// raw sends one raw request and returns the status line.
func (s *sitesServer) raw(t *testing.T, req string) string {
	t.Helper()
	conn, err := net.Dial("tcp", s.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, req)
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	return strings.TrimSpace(line)
}

func TestSitesByHost(t *testing.T) {
	run := &scriptedRunner{stdout: "Content-Type: text/plain\n\nhi\n", result: sandbox.Result{Reason: sandbox.Exited}}
	sites := []Site{
		{Name: "alice", Hosts: []string{"alice.example", "*.alice.example"}, Root: namedSite(t, "alice", "cgi-bin"),
			CGI: true, Image: "alice-img", Headers: http.Header{"X-Site": {"alice"}},
			Limits: sandbox.Limits{Memory: 32 << 20}, Mode: ModeRFC3875},
		{Name: "bob", Hosts: []string{"bob.example", "127.0.0.1"}, Root: namedSite(t, "bob", "scripts", "cgi-bin"),
			CGI: true, CGIDirs: []string{"/scripts"}, Image: "bob-img", Limits: sandbox.Limits{Memory: 64 << 20}},
	}
	s := newSitesServer(t, Config{Runner: run, Sites: sites})
	tests := []struct {
		host, want string
		code       int
	}{
		{"alice.example", "alice\n", 200},
		{"ALICE.Example.", "alice\n", 200},
		{"alice.example:8000", "alice\n", 200},
		{"www.alice.example", "alice\n", 200},
		{"a.b.alice.example", "alice\n", 200},
		{"bob.example", "bob\n", 200},
		{"127.0.0.1:1234", "bob\n", 200},
		{"alice.example.evil", "", 421},
		{"xalice.example", "", 421},
		{"example", "", 421},
	}
	for _, tt := range tests {
		resp, body := s.get(t, tt.host, "/")
		if resp.StatusCode != tt.code || tt.code == 200 && body != tt.want {
			t.Errorf("GET / Host %q: %d %q, want %d %q", tt.host, resp.StatusCode, body, tt.code, tt.want)
		}
		if got := resp.Header.Get("X-Site"); (got == "alice") != (tt.want == "alice\n") {
			t.Errorf("GET / Host %q: X-Site %q; a site's headers go on its responses only", tt.host, got)
		}
	}

	t.Run("raw", func(t *testing.T) {
		for _, tt := range []struct{ req, want string }{
			// RFC 9112 §3.2.2: the target's authority wins over Host.
			{"GET http://bob.example/ HTTP/1.1\r\nHost: alice.example\r\n\r\n", "HTTP/1.1 200 OK"},
			{"GET http://nobody.example/ HTTP/1.1\r\nHost: alice.example\r\n\r\n", "HTTP/1.1 421 Misdirected Request"},
			{"GET / HTTP/1.1\r\nHost: alice.example\r\nHost: bob.example\r\n\r\n", "HTTP/1.1 400 Bad Request"},
			{"GET / HTTP/1.1\r\nHost: alice example\r\n\r\n", "HTTP/1.1 400 Bad Request"},
			{"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", "HTTP/1.1 400 Bad Request"},
			{"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"}, // HTTP/1.1 needs a Host
			{"GET / HTTP/1.0\r\n\r\n", "HTTP/1.0 421 Misdirected Request"},
		} {
			if got := s.raw(t, tt.req); !strings.HasPrefix(got, tt.want) {
				t.Errorf("%q: %q, want %q", tt.req, got, tt.want)
			}
		}
	})

	t.Run("each site its own CGI directories", func(t *testing.T) {
		if resp, _ := s.get(t, "bob.example", "/scripts/s.sh"); resp.StatusCode != 200 {
			t.Errorf("bob /scripts/s.sh: %d, want 200 (a CGI directory of bob's)", resp.StatusCode)
		}
		if resp, body := s.get(t, "alice.example", "/scripts/s.sh"); resp.StatusCode != 404 {
			t.Errorf("alice /scripts/s.sh: %d %q, want 404 (not alice's CGI directory, no such file)", resp.StatusCode, body)
		}
		run.mu.Lock()
		jobs := slices.Clone(run.jobs)
		run.mu.Unlock()
		if len(jobs) != 1 || jobs[0].Site != "bob" || jobs[0].MountPoint != "/www/scripts" ||
			jobs[0].Image != "bob-img" || jobs[0].Limits.Memory != 64<<20 {
			t.Fatalf("jobs %+v, want one of site bob in /www/scripts, with bob's image and limits", jobs)
		}
		resp, _ := s.get(t, "WWW.Alice.Example.:80", "/cgi-bin/s.sh")
		if resp.StatusCode != 200 {
			t.Fatalf("alice /cgi-bin/s.sh: %d", resp.StatusCode)
		}
		run.mu.Lock()
		job := run.jobs[len(run.jobs)-1]
		run.mu.Unlock()
		if job.Image != "alice-img" || job.Limits.Memory != 32<<20 {
			t.Errorf("alice's job: image %q, memory %d; want alice's", job.Image, job.Limits.Memory)
		}
		if job.Site != "alice" || !slices.Contains(job.Env, "SERVER_NAME=www.alice.example") {
			t.Errorf("job of site %q, env %q; want site alice, SERVER_NAME=www.alice.example (the host routing chose it by)", job.Site, job.Env)
		}
	})

	t.Run("logs and error pages name the site", func(t *testing.T) {
		_, body := s.get(t, "alice.example", "/nothing")
		if !strings.Contains(body, "Site: alice") {
			t.Errorf("alice's 404 page does not name the site:\n%s", body)
		}
		resp, body := s.get(t, "nobody.example", "/")
		if resp.StatusCode != 421 || strings.Contains(body, "Site:") || resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("unknown host: %d, page %q, X-Request-Id %q; want 421 with a request id and no site", resp.StatusCode, body, resp.Header.Get("X-Request-Id"))
		}
		s.gw.Close() // writes the access log's batch
		log := s.access.String()
		if !strings.Contains(log, `"GET /nothing HTTP/1.1" 404 - site=alice`) {
			t.Errorf("access log has no line for alice's 404 with its site:\n%s", log)
		}
	})
}

func TestSitesDefault(t *testing.T) {
	sites := []Site{
		{Name: "alice", Hosts: []string{"alice.example"}, Root: namedSite(t, "alice")},
		{Name: "fallback", Default: true, Root: namedSite(t, "fallback")},
	}
	s := newSitesServer(t, Config{Sites: sites})
	for _, host := range []string{"unknown.example", "localhost:8000"} {
		if resp, body := s.get(t, host, "/"); resp.StatusCode != 200 || body != "fallback\n" {
			t.Errorf("Host %q: %d %q, want the default site", host, resp.StatusCode, body)
		}
	}
	if got := s.raw(t, "GET / HTTP/1.0\r\n\r\n"); got != "HTTP/1.0 200 OK" {
		t.Errorf("HTTP/1.0 without Host: %q, want the default site's 200", got)
	}
	if _, body := s.get(t, "alice.example", "/"); body != "alice\n" {
		t.Errorf("alice.example: %q, want alice's", body)
	}
}

// TestSiteQuotas checks a site over its concurrency or rate gets 429 with
// Retry-After at once, without taking from another site.
func TestSiteQuotas(t *testing.T) {
	block := make(chan struct{})
	defer func() {
		select {
		case <-block:
		default:
			close(block)
		}
	}()
	run := &scriptedRunner{stdout: "Content-Type: text/plain\n\nhi\n", block: block, result: sandbox.Result{Reason: sandbox.Exited}}
	sites := []Site{
		{Name: "busy", Hosts: []string{"busy.example"}, Root: namedSite(t, "busy", "cgi-bin"), CGI: true, Image: "img", Concurrent: 2},
		{Name: "calm", Hosts: []string{"calm.example"}, Root: namedSite(t, "calm", "cgi-bin"), CGI: true, Image: "img"},
	}
	s := newSitesServer(t, Config{Runner: run, Sites: sites, MaxConcurrent: 4})

	// Two of busy's scripts run (and block): its cap.
	var open []*http.Response
	for range 2 {
		req, _ := http.NewRequest("GET", s.srv.URL+"/cgi-bin/s.sh", nil)
		req.Host = "busy.example"
		resp, err := s.srv.Client().Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("busy's request under its cap: %v %v", resp, err)
		}
		open = append(open, resp)
	}
	resp, body := s.get(t, "busy.example", "/cgi-bin/s.sh")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "Site: busy") {
		t.Errorf("busy's third request: %d, Retry-After %q, page %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// calm still runs, while busy holds two of the four global slots.
	req, _ := http.NewRequest("GET", s.srv.URL+"/cgi-bin/s.sh", nil)
	req.Host = "calm.example"
	calm, err := s.srv.Client().Do(req)
	if err != nil || calm.StatusCode != 200 {
		t.Fatalf("calm's request beside busy at its cap: %v %v, want 200", calm, err)
	}
	open = append(open, calm)
	close(block)
	for _, r := range open {
		io.ReadAll(r.Body)
		r.Body.Close()
	}
	// Static files are no CGI request: never refused by a quota.
	if resp, _ := s.get(t, "busy.example", "/"); resp.StatusCode != 200 {
		t.Errorf("busy's static file: %d", resp.StatusCode)
	}

	t.Run("rate", func(t *testing.T) {
		run := &scriptedRunner{stdout: "Content-Type: text/plain\n\nhi\n", result: sandbox.Result{Reason: sandbox.Exited}}
		sites := []Site{
			{Name: "rated", Hosts: []string{"rated.example"}, Root: namedSite(t, "rated", "cgi-bin"), CGI: true, Image: "img", Rate: 0.5},
			{Name: "other", Hosts: []string{"other.example"}, Root: namedSite(t, "other", "cgi-bin"), CGI: true, Image: "img"},
		}
		s := newSitesServer(t, Config{Runner: run, Sites: sites})
		if resp, _ := s.get(t, "rated.example", "/cgi-bin/s.sh"); resp.StatusCode != 200 {
			t.Fatalf("rated's first request: %d, want 200 (the burst)", resp.StatusCode)
		}
		resp, _ := s.get(t, "rated.example", "/cgi-bin/s.sh")
		ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != 429 || ra < 1 || ra > 2 {
			t.Errorf("rated's second request at 0.5/s: %d, Retry-After %q; want 429 and 1 or 2 s", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if resp, _ := s.get(t, "other.example", "/cgi-bin/s.sh"); resp.StatusCode != 200 {
			t.Errorf("other site beside a rated one: %d, want 200", resp.StatusCode)
		}
		if resp, _ := s.get(t, "rated.example", "/cgi-bin/nothing"); resp.StatusCode != 404 {
			t.Errorf("a missing script of the rated site: %d, want its 404 (no script, no rate)", resp.StatusCode)
		}
	})
}

// TestSetSites checks a reload: a request under way finishes from the sites
// it began with, new requests see the new sites, and a bad set changes
// nothing.
func TestSetSites(t *testing.T) {
	block := make(chan struct{})
	run := &scriptedRunner{stdout: "Content-Type: text/plain\n\nfirst\n", block: block, result: sandbox.Result{Reason: sandbox.Exited}}
	alice := Site{Name: "alice", Hosts: []string{"alice.example"}, Root: namedSite(t, "alice", "cgi-bin"), CGI: true, Image: "img"}
	s := newSitesServer(t, Config{Runner: run, Sites: []Site{alice}})

	req, _ := http.NewRequest("GET", s.srv.URL+"/cgi-bin/s.sh", nil)
	req.Host = "alice.example"
	streaming, err := s.srv.Client().Do(req)
	if err != nil || streaming.StatusCode != 200 {
		t.Fatalf("alice's streaming request: %v %v", streaming, err)
	}
	defer streaming.Body.Close()
	br := bufio.NewReader(streaming.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("first line of the stream: %q %v", line, err)
	}

	carol := Site{Name: "carol", Hosts: []string{"carol.example"}, Root: namedSite(t, "carol")}
	if err := s.gw.SetSites([]Site{alice, carol}); err != nil {
		t.Fatal(err)
	}
	if resp, body := s.get(t, "carol.example", "/"); resp.StatusCode != 200 || body != "carol\n" {
		t.Errorf("carol after the reload: %d %q", resp.StatusCode, body)
	}
	bad := Site{Name: "dave", Hosts: []string{"dave.example"}, Root: filepath.Join(t.TempDir(), "missing")}
	if err := s.gw.SetSites([]Site{alice, bad}); err == nil || !strings.Contains(err.Error(), `site "dave"`) {
		t.Errorf("SetSites with a missing root: %v, want an error naming the site", err)
	}
	if resp, _ := s.get(t, "carol.example", "/"); resp.StatusCode != 200 {
		t.Errorf("carol after a refused reload: %d, want the sites before it still served", resp.StatusCode)
	}
	if got := s.gw.Sites(); !slices.Equal(got, []string{"alice", "carol"}) {
		t.Errorf("Sites() = %q", got)
	}
	// The stream began before both reloads and still ends cleanly.
	close(block)
	rest, err := io.ReadAll(br)
	if err != nil || len(rest) != 0 {
		t.Errorf("rest of the stream: %q, %v; want a clean end", rest, err)
	}
	// Dropping a site: its host is now misdirected.
	if err := s.gw.SetSites([]Site{carol}); err != nil {
		t.Fatal(err)
	}
	if resp, _ := s.get(t, "alice.example", "/"); resp.StatusCode != 421 {
		t.Errorf("alice after being dropped: %d, want 421", resp.StatusCode)
	}
}

func TestSiteData(t *testing.T) {
	run := &scriptedRunner{stdout: "Content-Type: text/plain\n\nhi\n", result: sandbox.Result{Reason: sandbox.Exited}}
	users := sandbox.SiteUsers("withdata")
	sites := []Site{
		{Name: "withdata", Hosts: []string{"a.example"}, Root: namedSite(t, "a", "cgi-bin"), CGI: true, Image: "img",
			DataDir: "/srv/a/data", Users: &users},
		{Name: "nodata", Hosts: []string{"b.example"}, Root: namedSite(t, "b", "cgi-bin"), CGI: true, Image: "img"},
	}
	s := newSitesServer(t, Config{Runner: run, Sites: sites})
	s.get(t, "a.example", "/cgi-bin/s.sh")
	s.get(t, "b.example", "/cgi-bin/s.sh")
	run.mu.Lock()
	defer run.mu.Unlock()
	if len(run.jobs) != 2 {
		t.Fatalf("%d jobs, want 2", len(run.jobs))
	}
	a, b := run.jobs[0], run.jobs[1]
	if a.DataDir != "/srv/a/data" || a.Users == nil || *a.Users != users || !slices.Contains(a.Env, "CGIBOX_DATA=/data") {
		t.Errorf("job of a site with data: DataDir %q, Users %v, env %q", a.DataDir, a.Users, a.Env)
	}
	if b.DataDir != "" || b.Users != nil || slices.ContainsFunc(b.Env, func(e string) bool { return strings.HasPrefix(e, "CGIBOX_DATA=") }) {
		t.Errorf("job of a site without data: DataDir %q, Users %v, env %q", b.DataDir, b.Users, b.Env)
	}
}
