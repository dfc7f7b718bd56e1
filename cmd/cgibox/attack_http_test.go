package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/typeurl/v2"
)

// Attack cases 1–14, 17, 31, 33 and 41–43 of SECURITY.md: paths, the CGI
// environment and protocol, and the HTTP front end, against the built binary
// over real sockets (raw bytes where a Go client would refuse to send them).
// The hostile scripts live under testdata/attack/<case>/.

// Markers that must never reach a client.
const (
	outsideSecret = "OUTSIDE-SECRET-d41d8cd9" // a file beside the site root
	sourceMarker  = "SOURCE-MARKER"           // a comment in 05/s.sh
	passwdLine    = "root:x:0:0:"             // the host's /etc/passwd
)

// httpScripts reads testdata/attack/<dir>/<name> for each name.
func httpScripts(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", "attack", dir, n))
		if err != nil {
			t.Fatal(err)
		}
		out[n] = string(b)
	}
	return out
}

// merge returns the union of maps.
func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// createWatch records the ids of the containers created in the cgibox
// namespace, from containerd's event stream, to prove that an attack was
// refused before any container existed.
type createWatch struct {
	mu  sync.Mutex
	ids []string
	off int // ids before off were reported already
}

// watchCreates subscribes to container creations; the subscription is live
// once a normal CGI request to srv has been seen through it.
func watchCreates(t *testing.T, srv *server) *createWatch {
	t.Helper()
	c, _ := containerdClient(t)
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(t.Context(), "cgibox"))
	t.Cleanup(cancel)
	ch, errs := c.Subscribe(ctx, `topic=="/containers/create",namespace=="cgibox"`)
	w := &createWatch{}
	go func() {
		for {
			select {
			case env := <-ch:
				v, err := typeurl.UnmarshalAny(env.Event)
				id := "?"
				if cc, ok := v.(*apievents.ContainerCreate); err == nil && ok {
					id = cc.ID
				}
				w.mu.Lock()
				w.ids = append(w.ids, id)
				w.mu.Unlock()
			case <-errs:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	// Arm: the stream is live once a marker request's container shows up.
	deadline := time.Now().Add(20 * time.Second)
	for !w.sawMarker(t, srv, time.Second) {
		if time.Now().After(deadline) {
			t.Fatal("containerd's event stream never reported a container")
		}
	}
	w.mu.Lock()
	w.off = len(w.ids)
	w.mu.Unlock()
	return w
}

// sawMarker runs the normal script once and reports whether its container's
// creation arrived within d.
func (w *createWatch) sawMarker(t *testing.T, srv *server, d time.Duration) bool {
	t.Helper()
	resp, body := get(t, srv.base+"/cgi-bin/ok.sh", nil)
	rid := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 200 || rid == "" {
		t.Fatalf("marker request: status %d, X-Request-Id %q, body %q", resp.StatusCode, rid, body)
	}
	return waitFor(d, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return slices.Contains(w.ids[w.off:], "cgibox-"+rid)
	})
}

// assertNoneSince fails t if a container other than a marker's was created
// since the last call (or since watchCreates). Events arrive in order, so
// once the marker request's creation is seen, any earlier one has been too.
func (w *createWatch) assertNoneSince(t *testing.T, srv *server, what string) {
	t.Helper()
	resp, _ := get(t, srv.base+"/cgi-bin/ok.sh", nil)
	marker := "cgibox-" + resp.Header.Get("X-Request-Id")
	var got []string
	ok := waitFor(10*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		got = slices.Clone(w.ids[w.off:])
		return slices.Contains(got, marker)
	})
	if !ok {
		t.Fatalf("the marker request's container %s never showed up in containerd's events", marker)
	}
	if extra := got[:slices.Index(got, marker)]; len(extra) > 0 {
		t.Errorf("%s: containers were created (%q); the attack must be refused before any container exists", what, extra)
	}
	w.mu.Lock()
	w.off = len(w.ids)
	w.mu.Unlock()
}

// rawResp is one response read off a raw connection.
type rawResp struct {
	status int
	header http.Header
	body   string
}

// parseResponses reads every HTTP/1.x response in out (a whole connection's
// bytes). A response without framing runs to the end, as a client reads it.
// rest is what follows the last response that parses.
func parseResponses(out string, method ...string) (resps []rawResp, rest string) {
	var req *http.Request
	if len(method) > 0 {
		req = &http.Request{Method: method[0]}
	}
	br := bufio.NewReader(strings.NewReader(out))
	for {
		if _, err := br.Peek(1); err != nil {
			return resps, ""
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			b, _ := io.ReadAll(br)
			return resps, string(b)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resps = append(resps, rawResp{resp.StatusCode, resp.Header, string(b)})
	}
}

// rawOne sends req and returns the one response it must get; more than one
// response fails t (nothing may follow a refused or closed request).
func rawOne(t *testing.T, srv *server, req string) rawResp {
	t.Helper()
	out := rawHTTP(t, srv, req)
	method, _, _ := strings.Cut(req, " ")
	resps, rest := parseResponses(out, method)
	if len(resps) != 1 || rest != "" {
		t.Fatalf("request %.200q: want exactly one response, got %d (%.300q), then %.200q", req, len(resps), out, rest)
	}
	return resps[0]
}

// leaks reports which never-to-be-served markers body holds.
func leaks(body string) []string {
	var out []string
	for _, m := range []string{outsideSecret, sourceMarker, passwdLine, "OUTSIDE-RAN", "uid=0(", "RAN-17"} {
		if strings.Contains(body, m) {
			out = append(out, m)
		}
	}
	return out
}

// pathSite is the site of cases 1–5: a script, symlinks out of the root,
// dotfiles, a secret beside the root and a script outside the CGI
// directory.
func pathSite(t *testing.T) string {
	t.Helper()
	root := attackSite(t, merge(httpScripts(t, "05", "s.sh"), map[string]string{"sub/deep.sh": httpScripts(t, "05", "s.sh")["s.sh"]}))
	parent := filepath.Dir(root)
	write := func(p, body string, mode os.FileMode) {
		t.Helper()
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	link := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(parent, "secret.txt"), outsideSecret+"\n", 0o644)
	write(filepath.Join(root, "outside.sh"), httpScripts(t, "04", "outside.sh")["outside.sh"], 0o755)
	write(filepath.Join(root, "inside.txt"), "inside\n", 0o644)
	write(filepath.Join(root, "pages", "a b.txt"), "a page\n", 0o644)
	write(filepath.Join(root, ".git", "config"), outsideSecret+"\n", 0o644)
	write(filepath.Join(root, ".htpasswd"), outsideSecret+"\n", 0o644)
	link("/", "x")
	link("/etc/shadow", "a")
	link("/etc/passwd", "p")
	link("..", "up")
	link("../secret.txt", "sec")
	link("cgi-bin", "src")
	link("/", "cgi-bin/rootlink")
	link("../outside.sh", "cgi-bin/out.sh")
	return root
}

// TestAttack01to05Paths: traversal raw and encoded, NUL/CRLF, %2f, symlinks
// out of the root, and script source disclosure. Every answer is an error
// or the script's run; never a byte from outside the root, never source.
func TestAttack01to05Paths(t *testing.T) {
	requireContainerd(t)
	root := pathSite(t)
	srv := startCold(t, "-d", root)

	ran := "ran-s\n"
	cases := []struct {
		caseNo, target string
		want           []int  // acceptable statuses
		body           string // the exact body when want is 200
	}{
		// 1: raw traversal. Cleaned like Python: never above the root.
		{"1", "/../../etc/passwd", []int{400, 404}, ""},
		{"1", "/../../../../../../etc/passwd", []int{400, 404}, ""},
		{"1", "/cgi-bin/../../bin/id", []int{400, 404}, ""},
		{"1", "/cgi-bin/../../../etc/passwd", []int{400, 404}, ""},
		// 2: encoded traversal, decoded once only.
		{"2", "/%2e%2e/%2e%2e/etc/passwd", []int{400, 404}, ""},
		{"2", "/%2e%2e%2f%2e%2e%2fetc%2fpasswd", []int{400, 404}, ""},
		{"2", "/cgi-bin/%2e%2e%2f%2e%2e%2fbin%2fid", []int{400, 404}, ""},
		{"2", "/%252e%252e%252f%252e%252e%252fetc%252fpasswd", []int{400, 404}, ""},
		{"2", "/cgi-bin/%252e%252e%252fs.sh", []int{400, 404}, ""},
		{"2", "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", []int{400, 404}, ""},
		{"2", "/%c0%af..%c0%afetc/passwd", []int{400, 404}, ""},
		{"2", `/..\..\etc\passwd`, []int{400, 404}, ""},
		{"2", "/..%5c..%5cetc%5cpasswd", []int{400, 404}, ""},
		{"2", `/cgi-bin\..\sec`, []int{400, 404}, ""},
		// 3: NUL and CRLF → 400, for static and CGI alike.
		{"3", "/inside.txt%00.png", []int{400}, ""},
		{"3", "/cgi-bin/s.sh%00.txt", []int{400}, ""},
		{"3", "/cgi-bin/s.sh%0d%0aX-Injected:%20yes", []int{400}, ""},
		{"3", "/inside.txt%0d%0aSet-Cookie:%20a=b", []int{400}, ""},
		// 3: %2f inside a segment: the same decision as the plain slash.
		{"3", "/cgi-bin%2fs.sh", []int{200}, ran},
		{"3", "/cgi-bin/sub%2fdeep.sh", []int{200}, ran},
		{"3", "/pages%2fa%20b.txt", []int{200}, "a page\n"},
		// 4: symlinks out of the root, static and CGI.
		{"4", "/x/etc/passwd", []int{403, 404}, ""},
		{"4", "/a", []int{403, 404}, ""},
		{"4", "/p", []int{403, 404}, ""},
		{"4", "/up/secret.txt", []int{403, 404}, ""},
		{"4", "/sec", []int{403, 404}, ""},
		{"4", "/x/", []int{403, 404}, ""},
		{"4", "/cgi-bin/rootlink/bin/id", []int{403, 404}, ""},
		{"4", "/cgi-bin/out.sh", []int{403, 404}, ""},
		// 5: script source disclosure: run it or 404, never its bytes.
		{"5", "//cgi-bin/s.sh", []int{200}, ran},
		{"5", "///cgi-bin///s.sh", []int{200}, ran},
		{"5", "/cgi-bin/./s.sh", []int{200}, ran},
		{"5", "/x/../cgi-bin/s.sh", []int{200}, ran},
		{"5", "/cgi-bin/sub/../s.sh", []int{200}, ran},
		{"5", "/CGI-BIN/s.sh", []int{403, 404}, ""},
		{"5", "/cgi-bin/s.sh.", []int{403, 404}, ""},
		{"5", "/cgi-bin/s.sh%20", []int{403, 404}, ""},
		{"5", "/cgi-bin/s.sh~", []int{403, 404}, ""},
		{"5", "/src/s.sh", []int{403, 404}, ""},
		{"5", "/src/", []int{403, 404}, ""},
		{"5", "/cgi-bin/", []int{403, 404}, ""},
		{"5", "/.git/config", []int{404}, ""},
		{"5", "/.htpasswd", []int{404}, ""},
		{"5", "/%2egit/config", []int{404}, ""},
		{"5", "/x/../.htpasswd", []int{404}, ""},
	}
	for _, method := range []string{"GET", "HEAD"} {
		for _, tc := range cases {
			t.Run(method+" "+tc.caseNo+" "+tc.target, func(t *testing.T) {
				r := rawOne(t, srv, method+" "+tc.target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
				if !slices.Contains(tc.want, r.status) {
					t.Errorf("status %d, want one of %v; body %.200q", r.status, tc.want, r.body)
				}
				if l := leaks(r.body); len(l) > 0 {
					t.Errorf("body leaks %q: %.300q", l, r.body)
				}
				if method == "GET" && r.status == 200 && r.body != tc.body {
					t.Errorf("body %q, want %q", r.body, tc.body)
				}
				for k := range r.header {
					if strings.Contains(strings.ToLower(k), "injected") || k == "Set-Cookie" {
						t.Errorf("header %q injected", k)
					}
				}
			})
		}
	}
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

// TestAttack01RefusedRunNothing: the refused paths of cases 1–4 create no
// container at all.
func TestAttack01RefusedRunNothing(t *testing.T) {
	requireContainerd(t)
	root := pathSite(t)
	srv := startCold(t, "-d", root)
	w := watchCreates(t, srv)
	for _, target := range []string{
		"/cgi-bin/../../bin/id", "/cgi-bin/%2e%2e%2f%2e%2e%2fbin%2fid", "/cgi-bin/s.sh%00.txt",
		"/cgi-bin/rootlink/bin/id", "/cgi-bin/out.sh", "/cgi-bin/%252e%252e%252fs.sh", "/cgi-bin/s.sh.",
	} {
		r := rawOne(t, srv, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if r.status == 200 {
			t.Errorf("GET %s: status 200, body %.200q", target, r.body)
		}
	}
	w.assertNoneSince(t, srv, "refused CGI paths")
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

// flipLink makes name (in dir) a symlink to target, atomically.
func flipLink(dir, name, target string) error {
	tmp := filepath.Join(dir, "."+name+".flip")
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// TestAttack04SymlinkSwappedWhileServing: a goroutine flips a symlink
// between a target inside and one outside while the test requests it; every
// answer is the inside file (or script) or an error, never outside bytes.
func TestAttack04SymlinkSwappedWhileServing(t *testing.T) {
	requireContainerd(t)
	root := pathSite(t)
	srv := startCold(t, "-d", root)
	cgiBin := filepath.Join(root, "cgi-bin")
	cases := []struct {
		name, dir, link, url string
		targets              []string
		n                    int
		inside               string
	}{
		{"static", root, "flip", "/flip", []string{"inside.txt", "../secret.txt", "/etc/passwd", "x/etc/passwd"}, 300, "inside\n"},
		{"CGI", cgiBin, "flip.sh", "/cgi-bin/flip.sh", []string{"s.sh", "../outside.sh", "/bin/id", "rootlink/bin/id"}, 40, "ran-s\n"},
	}
	client := &http.Client{Timeout: 30 * time.Second}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := flipLink(tc.dir, tc.link, tc.targets[0]); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			flipped := make(chan int)
			go func() {
				n := 0
				for {
					select {
					case <-stop:
						flipped <- n
						return
					default:
					}
					flipLink(tc.dir, tc.link, tc.targets[n%len(tc.targets)])
					n++
				}
			}()
			seen := map[int]int{}
			for i := 0; i < tc.n; i++ {
				resp, err := client.Get(srv.base + tc.url)
				if err != nil {
					close(stop)
					<-flipped
					t.Fatalf("request %d: %v", i, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				seen[resp.StatusCode]++
				if l := leaks(string(b)); len(l) > 0 {
					t.Errorf("request %d: status %d leaks %q: %.200q", i, resp.StatusCode, l, b)
				}
				switch resp.StatusCode {
				case 200:
					if string(b) != tc.inside {
						t.Errorf("request %d: 200 with body %.200q, want %q", i, b, tc.inside)
					}
				case 403, 404:
				default:
					t.Errorf("request %d: status %d, body %.200q", i, resp.StatusCode, b)
				}
			}
			close(stop)
			t.Logf("%d requests while the link flipped %d times: statuses %v", tc.n, <-flipped, seen)
			os.Remove(filepath.Join(tc.dir, tc.link))
		})
	}
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

// envOf runs env.sh at target with extra raw header lines and returns
// the script's own environment as a map and everything it printed.
func envOf(t *testing.T, srv *server, target string, extra string) (map[string]string, string) {
	t.Helper()
	r := rawOne(t, srv, "GET "+target+" HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n"+extra+"Connection: close\r\n\r\n")
	if r.status != 200 {
		t.Fatalf("status %d, body %.300q", r.status, r.body)
	}
	own, _, _ := strings.Cut(r.body, "---all---")
	env := map[string]string{}
	for _, kv := range strings.Split(strings.TrimSpace(own), "\n") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env, r.body
}

// gatewayVars are the variables the gateway alone sets.
var gatewayVars = []string{
	"AUTH_TYPE", "CONTENT_LENGTH", "CONTENT_TYPE", "DOCUMENT_ROOT", "GATEWAY_INTERFACE",
	"HTTPS", "PATH", "PATH_INFO", "PATH_TRANSLATED", "QUERY_STRING", "REMOTE_ADDR",
	"REMOTE_HOST", "REMOTE_PORT", "REMOTE_USER", "REQUEST_METHOD", "REQUEST_URI",
	"SCRIPT_FILENAME", "SCRIPT_NAME", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL",
	"SERVER_SOFTWARE",
}

// TestAttack06to10Environment: httpoxy, Shellshock, gateway variables set
// by headers, the gateway's own environment, and ?-s style queries.
func TestAttack06to10Environment(t *testing.T) {
	requireContainerd(t)
	const canary = "CANARY-7f3a9e-must-not-leak"
	t.Setenv("CGIBOX_ATTACK_CANARY", canary)
	t.Setenv("LD_LIBRARY_PATH", "/"+canary)
	t.Setenv("LD_PRELOAD", "/"+canary+".so")
	t.Setenv("HTTP_PROXY", "http://"+canary)
	root := attackSite(t, merge(httpScripts(t, "06", "env.sh"), httpScripts(t, "07", "shock.sh"), httpScripts(t, "10", "argv.sh")))
	srv := startCold(t, "-d", root)

	t.Run("06 httpoxy", func(t *testing.T) {
		for _, h := range []string{"Proxy: http://evil:3128\r\n", "proxy: http://evil:3128\r\n", "PROXY: http://evil:3128\r\n"} {
			env, all := envOf(t, srv, "/cgi-bin/env.sh", h)
			if v, ok := env["HTTP_PROXY"]; ok {
				t.Errorf("header %q: HTTP_PROXY=%q reached the script", h, v)
			}
			if strings.Contains(all, "evil:3128") {
				t.Errorf("header %q: the proxy URL reached the script: %q", h, all)
			}
		}
	})

	t.Run("07 Shellshock", func(t *testing.T) {
		// Executed, the payload would print SHOCK42 or run id; as an inert
		// string the script echoes it back byte for byte.
		payload := `() { :; }; echo SHOCK$((6*7)); /bin/id`
		r := rawOne(t, srv, "GET /cgi-bin/shock.sh HTTP/1.1\r\nHost: x\r\nUser-Agent: "+payload+
			"\r\nCookie: "+payload+"\r\nReferer: "+payload+"\r\nBASH_FUNC_x%%: () { echo SHOCK42; }\r\nConnection: close\r\n\r\n")
		want := "UA=" + payload + "\nCOOKIE=" + payload + "\nREFERER=" + payload + "\nchild-ok\nbashfunc=0\n"
		if r.status != 200 || r.body != want {
			t.Errorf("status %d, body\n%q\nwant\n%q", r.status, r.body, want)
		}
		if strings.Contains(r.body, "SHOCK42") || strings.Contains(r.body, "uid=") {
			t.Errorf("the payload ran: %q", r.body)
		}
	})

	t.Run("08 gateway variables", func(t *testing.T) {
		hostile := map[string]string{
			"Remote-User": "root", "Script-Filename": "/etc/passwd", "Script-Name": "/evil",
			"Path": "/evil/bin", "Gateway-Interface": "evil", "Query-String": "evil=1",
			"Server-Software": "evil", "Document-Root": "/", "Request-Method": "DELETE",
			"Auth-Type": "evil", "Remote-Addr": "10.6.6.6", "Path-Info": "/evil",
			"Https": "on", "Server-Name": "evil", "Request-Uri": "/evil", "Remote-Port": "1",
		}
		var extra strings.Builder
		for k, v := range hostile {
			fmt.Fprintf(&extra, "%s: %s\r\n", k, v)
		}
		// Underscore spellings would collide with the dashed ones.
		extra.WriteString("Script_Filename: /etc/shadow\r\nContent_Length: 999\r\nContent_Type: evil/x\r\nRemote_User: root\r\n")
		env, _ := envOf(t, srv, "/cgi-bin/env.sh/real-info?q=1", extra.String())
		want := map[string]string{
			"SCRIPT_FILENAME": "/www/cgi-bin/env.sh", "SCRIPT_NAME": "/cgi-bin/env.sh",
			"PATH": "/usr/local/bin:/usr/bin:/bin", "GATEWAY_INTERFACE": "CGI/1.1",
			"QUERY_STRING": "q=1", "SERVER_SOFTWARE": "cgibox/devel", "DOCUMENT_ROOT": "/www",
			"REQUEST_METHOD": "GET", "REMOTE_ADDR": "127.0.0.1", "PATH_INFO": "/real-info",
			"SERVER_NAME": "x", "REQUEST_URI": "/cgi-bin/env.sh/real-info?q=1",
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s=%q, want %q (a header must not set it)", k, env[k], v)
			}
		}
		for _, k := range []string{"REMOTE_USER", "AUTH_TYPE", "HTTPS", "CONTENT_LENGTH", "CONTENT_TYPE", "HTTP_SCRIPT_FILENAME_", "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE"} {
			if v, ok := env[k]; ok {
				t.Errorf("%s=%q set by a request header", k, v)
			}
		}
		// The hostile headers reach the script only under HTTP_* names.
		for k, v := range hostile {
			name := "HTTP_" + strings.ToUpper(strings.ReplaceAll(k, "-", "_"))
			if env[name] != v {
				t.Errorf("%s=%q, want %q", name, env[name], v)
			}
		}
		for k := range env {
			if !strings.HasPrefix(k, "HTTP_") && !slices.Contains(gatewayVars, k) {
				t.Errorf("unexpected variable %s=%q", k, env[k])
			}
			if strings.Contains(k, "_FILENAME_") || env[k] == "/etc/shadow" || env[k] == "999" || env[k] == "evil/x" {
				t.Errorf("an underscore header got through: %s=%q", k, env[k])
			}
		}
	})

	t.Run("09 gateway environment", func(t *testing.T) {
		env, all := envOf(t, srv, "/cgi-bin/env.sh", "")
		if strings.Contains(all, canary) {
			t.Errorf("cgibox's own environment reached the container:\n%s", all)
		}
		for _, k := range []string{"LD_LIBRARY_PATH", "LD_PRELOAD", "CGIBOX_ATTACK_CANARY", "HTTP_PROXY"} {
			if v, ok := env[k]; ok {
				t.Errorf("%s=%q reached the script", k, v)
			}
		}
		if !strings.Contains(all, "---all---\n") || !strings.Contains(all[strings.Index(all, "---all---"):], "GATEWAY_INTERFACE=CGI/1.1") {
			t.Errorf("the script could not read the environments in its container: %q", all)
		}
	})

	t.Run("10 query never argv", func(t *testing.T) {
		for _, q := range []string{"-s", "--help", "-d+allow_url_include%3d1", "-n", "-e+id", "foo+bar", "-", "%2Dv"} {
			r := rawOne(t, srv, "GET /cgi-bin/argv.sh?"+q+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			want := "argc=0\nquery=" + q + "\n"
			if r.status != 200 || r.body != want {
				t.Errorf("?%s: status %d, body %q, want %q", q, r.status, r.body, want)
			}
		}
	})
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

// TestAttack11HugeHeaders: a 200 KiB Cookie, thousands of header lines and
// a header block over net/http's own cap → 431, before any container.
func TestAttack11HugeHeaders(t *testing.T) {
	requireContainerd(t)
	root := attackSite(t, nil)
	srv := startCold(t, "-d", root)
	w := watchCreates(t, srv)
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "X-H%d: v\r\n", i)
		}
		return b.String()
	}
	cases := []struct{ name, headers string }{
		{"200 KiB Cookie", "Cookie: a=" + strings.Repeat("x", 200<<10) + "\r\n"},
		{"100 KiB Cookie (under net/http's cap)", "Cookie: a=" + strings.Repeat("x", 100<<10) + "\r\n"},
		{"5000 headers", many(5000)},
		{"101 headers", many(101)},
		{"2 MiB header block", "X-Big: " + strings.Repeat("y", 2<<20) + "\r\n"},
	}
	for _, tc := range cases {
		for _, target := range []string{"/cgi-bin/ok.sh", "/ok.txt"} {
			t.Run(tc.name+" "+target, func(t *testing.T) {
				start := time.Now()
				r := rawOne(t, srv, "GET "+target+" HTTP/1.1\r\nHost: x\r\n"+tc.headers+"Connection: close\r\n\r\n")
				if r.status != http.StatusRequestHeaderFieldsTooLarge {
					t.Errorf("status %d, want 431; body %.200q", r.status, r.body)
				}
				if strings.Contains(r.body, "fine") {
					t.Errorf("the request was served: %q", r.body)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("answered after %s", d)
				}
			})
		}
	}
	w.assertNoneSince(t, srv, "oversized headers")
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

// TestAttack12ScriptOutputPython: in Python mode a script's invalid header
// lines are dropped, the gateway owns the framing, the connection closes
// and no second response reaches the socket.
func TestAttack12ScriptOutputPython(t *testing.T) {
	requireContainerd(t)
	root := attackSite(t, httpScripts(t, "12", "hostile.sh", "framing.sh"))
	srv := startCold(t, "-d", root)
	const fake = "body-start\nHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nSMUGGLE"
	for _, script := range []string{"hostile.sh", "framing.sh"} {
		t.Run(script, func(t *testing.T) {
			// Pipelined: a second request right behind the first. The first
			// response closes the connection, so it is never answered.
			out := rawHTTP(t, srv, "GET /cgi-bin/"+script+" HTTP/1.1\r\nHost: x\r\n\r\nGET /ok.txt HTTP/1.1\r\nHost: x\r\n\r\n")
			resps, rest := parseResponses(out)
			if len(resps) != 1 || rest != "" {
				t.Fatalf("want exactly one response on the connection, got %d then %q:\n%q", len(resps), rest, out)
			}
			r := resps[0]
			if r.status != 200 || r.body != fake {
				t.Errorf("status %d, body %q; want 200 and the script's bytes as body %q", r.status, r.body, fake)
			}
			if r.header.Get("X-Good") != "kept" {
				t.Errorf("the valid header was lost: %v", r.header)
			}
			for _, k := range []string{"Content-Length", "Transfer-Encoding", "Injected", "Bad Name", "X-Nul", "Keep-Alive"} {
				if v, ok := r.header[http.CanonicalHeaderKey(k)]; ok {
					t.Errorf("header %s: %q reached the client", k, v)
				}
			}
			head, _, _ := strings.Cut(out, "\r\n\r\n")
			head += "\r\n"
			if n := strings.Count(head, "\r\nConnection:"); n != 1 || !strings.Contains(head, "\r\nConnection: close\r\n") {
				t.Errorf("want exactly one Connection header, close, got %d in %q", n, head)
			}
			if strings.Contains(head, "\r\r") || strings.Contains(head, "\x00") || strings.Count(head, "HTTP/1.1 ") != 1 {
				t.Errorf("raw header block carries script bytes it must not: %q", head)
			}
			if strings.Contains(out, "static fine") {
				t.Errorf("the pipelined second request was answered on the same connection: %q", out)
			}
		})
	}
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

// TestAttack12And13ScriptOutputRFC3875: in rfc3875 mode the gateway frames
// every body itself (a fake second response stays inside the first one's
// body on a kept-alive connection), and a header block that is invalid,
// never ends or is too long is a 502 (504 out of time) with the container
// killed.
func TestAttack12And13ScriptOutputRFC3875(t *testing.T) {
	requireContainerd(t)
	c, cctx := containerdClient(t)
	root := attackSite(t, merge(httpScripts(t, "12", "hostile.sh", "framing.sh"),
		httpScripts(t, "13", "noct.sh", "s999.sh", "sabc.sh", "twostatus.sh", "endless.sh", "bigline.sh", "stall.sh", "crhdr.sh", "redir.sh", "loop.sh")))
	// For the local redirects: a secret beside the root, links out of it
	// and into the CGI directory, a dotfile.
	os.WriteFile(filepath.Join(filepath.Dir(root), "secret.txt"), []byte(outsideSecret+"\n"), 0o644)
	os.WriteFile(filepath.Join(root, ".htpasswd"), []byte(outsideSecret+"\n"), 0o644)
	os.Symlink("../secret.txt", filepath.Join(root, "sec"))
	os.Symlink("/", filepath.Join(root, "x"))
	os.Symlink("cgi-bin", filepath.Join(root, "src"))
	srv := startCold(t, "-d", root, "--cgi-mode", "rfc3875", "--timeout", "4s")

	t.Run("12 framing owned by the gateway", func(t *testing.T) {
		conn, err := dialServer(srv)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(conn)
		fmt.Fprintf(conn, "GET /cgi-bin/framing.sh HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		const fake = "body-start\nHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nSMUGGLE"
		if err != nil || resp.StatusCode != 200 || string(b) != fake {
			t.Errorf("status %d, body %q (%v); want 200 and %q", resp.StatusCode, b, err, fake)
		}
		if resp.ContentLength == 3 || resp.Header.Get("X-Good") != "kept" || resp.Header.Get("Connection") == "keep-alive" {
			t.Errorf("script framing reached the client: Content-Length %d, header %v", resp.ContentLength, resp.Header)
		}
		if !slices.Equal(resp.TransferEncoding, []string{"chunked"}) {
			t.Errorf("Transfer-Encoding %v: want the gateway's own chunked framing", resp.TransferEncoding)
		}
		// The next response on the connection is the real one, not SMUGGLE.
		fmt.Fprintf(conn, "GET /ok.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("second response: %v", err)
		}
		b, _ = io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "static fine\n" {
			t.Errorf("second response on the connection: status %d, body %q; want the real /ok.txt", resp.StatusCode, b)
		}
	})

	t.Run("12 local redirects stay in the site", func(t *testing.T) {
		for _, tc := range []struct {
			location string
			want     []int
		}{
			{"/ok.txt", []int{200}}, // the control: local redirects work
			{"/pages/../ok.txt", []int{200}},
			{"/../../../etc/passwd", []int{404}},
			{"/%2e%2e/%2e%2e/etc/passwd", []int{404}},
			{"/sec", []int{404}},
			{"/x/etc/passwd", []int{404}},
			{"/cgi-bin%2f..%2f..%2fsecret.txt", []int{404}},
			{"/.htpasswd", []int{404}},
			{"/src/ok.sh", []int{403, 404}},
			{"/cgi-bin/loop.sh", []int{502}},
		} {
			r := rawOne(t, srv, "GET /cgi-bin/redir.sh?"+url.QueryEscape(tc.location)+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if !slices.Contains(tc.want, r.status) {
				t.Errorf("Location: %s: status %d, want one of %v; body %.200q", tc.location, r.status, tc.want, r.body)
			}
			if r.status == 200 && r.body != "static fine\n" {
				t.Errorf("Location: %s: body %q, want /ok.txt's", tc.location, r.body)
			}
			if l := leaks(r.body); len(l) > 0 || strings.Contains(r.body, "#!/bin/sh") {
				t.Errorf("Location: %s: leaks %q: %.300q", tc.location, l, r.body)
			}
		}
	})

	cases := []struct {
		script string
		want   int
	}{
		{"hostile.sh", 502},   // invalid header lines
		{"crhdr.sh", 502},     // CR inside a value
		{"noct.sh", 502},      // no Content-Type
		{"s999.sh", 502},      // Status: 999
		{"sabc.sh", 502},      // Status: abc
		{"twostatus.sh", 502}, // two Status lines
		{"endless.sh", 502},   // header lines forever
		{"bigline.sh", 502},   // one 100 KiB line
		{"stall.sh", 504},     // never ends its block; --timeout 4s
	}
	for _, tc := range cases {
		t.Run("13 "+tc.script, func(t *testing.T) {
			start := time.Now()
			r := rawOne(t, srv, "GET /cgi-bin/"+tc.script+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if r.status != tc.want {
				t.Errorf("status %d, want %d; body %.200q", r.status, tc.want, r.body)
			}
			if strings.Contains(r.body, "SCRIPT-BODY") || strings.Contains(r.body, "body-start") || strings.Contains(r.body, "SMUGGLE") ||
				strings.Contains(r.body, strings.Repeat("a", 64)) { // bigline.sh's header; a request id can hold "aaaa"
				t.Errorf("the script's output reached the client: %.300q", r.body)
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("answered after %s", d)
			}
			// The container is gone (killed, not left running).
			assertClean(t, c, cctx, 10*time.Second)
		})
	}
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

// chunked encodes body in chunks of at most n bytes.
func chunked(body string, n int) string {
	var b strings.Builder
	for len(body) > 0 {
		k := min(n, len(body))
		fmt.Fprintf(&b, "%x\r\n%s\r\n", k, body[:k])
		body = body[k:]
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

// TestAttack14And31And41And42Bodies: a chunked body is decoded, capped and
// counted; a 10 GiB Content-Length, CL with TE and bad chunk syntax are
// refused before any container, and never leave the connection reusable.
func TestAttack14And31And41And42Bodies(t *testing.T) {
	requireContainerd(t)
	root := attackSite(t, httpScripts(t, "14", "cat.sh"))
	srv := startCold(t, "-d", root, "--max-body", "1M")

	t.Run("14 chunked body decoded", func(t *testing.T) {
		body := strings.Repeat("0123456789abcdef", 1000) + "\r\n0\r\n\r\nend"
		r := rawOne(t, srv, "POST /cgi-bin/cat.sh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+
			chunked(body, 777))
		want := fmt.Sprintf("len=%d\n%s", len(body), body)
		if r.status != 200 || r.body != want {
			t.Errorf("status %d, body %.120q…, want %.120q…", r.status, r.body, want)
		}
		if strings.Contains(r.body, "309\r\n") {
			t.Errorf("the script saw chunk syntax")
		}
	})

	t.Run("41 Content-Length with Transfer-Encoding", func(t *testing.T) {
		// net/http lets chunked win; the gateway closes after the response,
		// so the bytes after the chunked body are never read as a request.
		out := rawHTTP(t, srv, "POST /cgi-bin/cat.sh HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"5\r\nhello\r\n0\r\n\r\nGET /ok.txt HTTP/1.1\r\nHost: x\r\n\r\n")
		resps, rest := parseResponses(out)
		if len(resps) != 1 || rest != "" {
			t.Fatalf("want exactly one response, got %d then %q: %q", len(resps), rest, out)
		}
		r := resps[0]
		switch r.status {
		case 400:
		case 200:
			if r.body != "len=5\nhello" {
				t.Errorf("body %q: want the chunked body, decoded", r.body)
			}
		default:
			t.Errorf("status %d, want 400 or 200 with the chunked body", r.status)
		}
		if strings.Contains(out, "static fine") {
			t.Errorf("the connection was reused after CL+TE: %q", out)
		}
	})

	t.Run("41 CL+TE to a static path", func(t *testing.T) {
		out := rawHTTP(t, srv, "POST /ok.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"5\r\nhello\r\n0\r\n\r\nGET /ok.txt HTTP/1.1\r\nHost: x\r\n\r\n")
		if resps, rest := parseResponses(out); len(resps) != 1 || rest != "" || resps[0].status == 200 {
			t.Errorf("want one refusal and a closed connection, got %q", out)
		}
	})

	// From here on, every request is refused before a container exists.
	w := watchCreates(t, srv)
	t.Run("14 chunked body over the cap → 413", func(t *testing.T) {
		big := strings.Repeat("z", 1<<20+1)
		r := rawOne(t, srv, "POST /cgi-bin/cat.sh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+chunked(big, 64<<10))
		if r.status != http.StatusRequestEntityTooLarge || strings.Contains(r.body, "zzzz") {
			t.Errorf("status %d, body %.200q; want 413", r.status, r.body)
		}
	})

	t.Run("31 10 GiB Content-Length → 413 at once", func(t *testing.T) {
		for _, expect := range []string{"", "Expect: 100-continue\r\n"} {
			start := time.Now()
			out := rawHTTP(t, srv, "POST /cgi-bin/cat.sh HTTP/1.1\r\nHost: x\r\nContent-Length: 10737418240\r\n"+expect+"\r\nsome bytes")
			resps, _ := parseResponses(out)
			if len(resps) != 1 || resps[0].status != http.StatusRequestEntityTooLarge {
				t.Errorf("%q: want one 413, got %q", expect, out)
			}
			if strings.Contains(out, "100 Continue") || strings.Contains(out, "len=") {
				t.Errorf("%q: the body was asked for or run: %q", expect, out)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("%q: answered after %s", expect, d)
			}
		}
	})

	bad := []struct{ name, body string }{
		{"non-hex size", "5\r\nhello\r\nZZ\r\nxx\r\n0\r\n\r\n"},
		{"size overflow", "5\r\nhello\r\nffffffffffffffffffff\r\nxx\r\n0\r\n\r\n"},
		{"data longer than its size", "3\r\nhello\r\n0\r\n\r\n"},
		{"missing CRLF after data", "5\r\nhelloXX0\r\n\r\n"},
		{"negative size", "-5\r\nhello\r\n0\r\n\r\n"},
		{"bare LF", "5\nhello\n0\n\n"},
	}
	for _, tc := range bad {
		t.Run("42 "+tc.name, func(t *testing.T) {
			r := rawOne(t, srv, "POST /cgi-bin/cat.sh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+tc.body)
			if r.status != 400 || strings.Contains(r.body, "len=") || strings.Contains(r.body, "hello") {
				t.Errorf("status %d, body %.200q; want 400 and the script never run", r.status, r.body)
			}
		})
	}
	t.Run("42 body cut off", func(t *testing.T) {
		conn, err := dialServer(srv)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "POST /cgi-bin/cat.sh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nhel")
		conn.(*net.TCPConn).CloseWrite()
		out, _ := io.ReadAll(conn)
		if strings.Contains(string(out), "len=") || strings.Contains(string(out), " 200 ") {
			t.Errorf("a partial body reached the script: %q", out)
		}
	})
	w.assertNoneSince(t, srv, "refused bodies")
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

// TestAttack17ScriptFilePolicy: world-writable, setuid, setgid scripts,
// world-writable directories and symlinks out of the CGI directory → 403,
// never run.
func TestAttack17ScriptFilePolicy(t *testing.T) {
	requireContainerd(t)
	policy := httpScripts(t, "17", "policy.sh")["policy.sh"]
	root := attackSite(t, nil)
	bin := filepath.Join(root, "cgi-bin")
	install := func(rel string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(bin, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(policy), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	install("ww.sh", 0o757)
	install("ww777.sh", 0o777)
	install("suid.sh", 0o755|os.ModeSetuid)
	install("sgid.sh", 0o755|os.ModeSetgid)
	install("wwdir/x.sh", 0o755)
	os.Chmod(filepath.Join(bin, "wwdir"), 0o777)
	install("../outside.sh", 0o755) // in the site root, outside the CGI directory
	os.Symlink("../outside.sh", filepath.Join(bin, "out.sh"))
	os.Symlink("/bin/sh", filepath.Join(bin, "abs.sh"))
	os.Symlink(filepath.Join(bin, "ok.sh"), filepath.Join(bin, "absinside.sh"))
	os.Symlink("sub/../../outside.sh", filepath.Join(bin, "dotdot.sh"))
	os.MkdirAll(filepath.Join(bin, "sub"), 0o755)
	os.Symlink("..", filepath.Join(bin, "sub", "up"))
	os.Symlink("../..", filepath.Join(bin, "sub", "up2"))
	for _, fi := range []string{"suid.sh", "sgid.sh"} {
		st, err := os.Stat(filepath.Join(bin, fi))
		if err != nil || st.Mode()&(os.ModeSetuid|os.ModeSetgid) == 0 {
			t.Fatalf("%s: could not set the bit: %v %v", fi, st.Mode(), err)
		}
	}
	srv := startCold(t, "-d", root)
	w := watchCreates(t, srv)
	for _, target := range []string{
		"/cgi-bin/ww.sh", "/cgi-bin/ww777.sh", "/cgi-bin/suid.sh", "/cgi-bin/sgid.sh", "/cgi-bin/wwdir/x.sh",
		"/cgi-bin/out.sh", "/cgi-bin/abs.sh", "/cgi-bin/absinside.sh", "/cgi-bin/dotdot.sh", "/cgi-bin/sub/up/../outside.sh",
		"/cgi-bin/sub/up2/outside.sh",
	} {
		t.Run(target, func(t *testing.T) {
			resp, body := get(t, srv.base+target, nil)
			if resp.StatusCode != 403 && !(resp.StatusCode == 404 && strings.HasSuffix(target, "up/../outside.sh")) {
				t.Errorf("status %d, want 403; body %.200q", resp.StatusCode, body)
			}
			if l := leaks(string(body)); len(l) > 0 || strings.Contains(string(body), "#!/bin/sh") {
				t.Errorf("ran or served the script: %.200q", body)
			}
		})
	}
	w.assertNoneSince(t, srv, "forbidden scripts")
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

// TestAttack33SlowClients: slowloris headers are cut by the read-header
// timeout with no container started; a slow POST holds no container while
// its body trickles in; a client that never reads a big response gets its
// script killed by the per-write timeout. The timeouts are set short on the
// command line, so each must be the one that fires (the defaults are 10 s,
// 60 s and 30 s, far beyond the bounds checked here).
func TestAttack33SlowClients(t *testing.T) {
	requireContainerd(t)
	c, cctx := containerdClient(t)
	root := attackSite(t, merge(httpScripts(t, "14", "cat.sh"), map[string]string{
		"flood.sh": "#!/bin/sh\necho Content-Type: text/plain\necho\nexec yes flood-flood-flood-flood\n",
	}))
	const (
		headerTimeout = 2 * time.Second
		bodyTimeout   = 5 * time.Second // above the 2 s the "holds no container" POST takes
		writeTimeout  = 3 * time.Second
	)
	// The script's own deadline is far away: only the write timeout can
	// stop the flood.
	srv := startCold(t, "-d", root, "--timeout", "5m", "--header-timeout", headerTimeout.String(),
		"--body-timeout", bodyTimeout.String(), "--write-timeout", writeTimeout.String())
	w := watchCreates(t, srv)

	// A slow POST, in the background while the rest runs: a byte a second
	// never completes its body before the body timeout fires.
	type slowResult struct {
		out  string
		took time.Duration
		err  error
	}
	slowPost := make(chan slowResult, 1)
	go func() {
		conn, err := dialServer(srv)
		if err != nil {
			slowPost <- slowResult{err: err}
			return
		}
		defer conn.Close()
		start := time.Now()
		fmt.Fprintf(conn, "POST /cgi-bin/cat.sh HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
		read := make(chan []byte, 1)
		go func() {
			conn.SetReadDeadline(time.Now().Add(bodyTimeout + 30*time.Second))
			b, _ := io.ReadAll(conn)
			read <- b
		}()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case b := <-read:
				slowPost <- slowResult{out: string(b), took: time.Since(start)}
				return
			case <-tick.C:
				conn.Write([]byte("a"))
			}
		}
	}()

	t.Run("slowloris headers", func(t *testing.T) {
		conn, err := dialServer(srv)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		fmt.Fprintf(conn, "GET /cgi-bin/cat.sh HTTP/1.1\r\nHost: x\r\n")
		// One header line every 500 ms (the attack's pace), until the
		// server hangs up; a read sees that.
		closed := make(chan time.Duration, 1)
		go func() {
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			io.Copy(io.Discard, conn)
			closed <- time.Since(start)
		}()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case d := <-closed:
				if d < headerTimeout*9/10 || d > headerTimeout+3*time.Second {
					t.Errorf("connection closed after %s; want the %s read-header timeout", d, headerTimeout)
				}
				return
			case <-tick.C:
				fmt.Fprintf(conn, "X-Slow-%d: a\r\n", i)
			}
		}
	})
	w.assertNoneSince(t, srv, "slowloris headers")

	t.Run("slow POST holds no container", func(t *testing.T) {
		conn, err := dialServer(srv)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// A container of an earlier test may still be being deleted
		// (CI saw one): start from an empty namespace.
		if !waitFor(30*time.Second, func() bool { n, _ := leftovers(t, c, cctx); return n == 0 }) {
			n, _ := leftovers(t, c, cctx)
			t.Fatalf("%d containers exist before the slow POST", n)
		}
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(conn, "POST /cgi-bin/cat.sh HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n")
		for i := range 9 {
			// The attack's pace: a byte every 200 ms. No container exists
			// while the body is incomplete.
			conn.Write([]byte{'0' + byte(i)})
			time.Sleep(200 * time.Millisecond)
			if n, _ := leftovers(t, c, cctx); n != 0 {
				t.Fatalf("%d containers exist while the request body is still arriving", n)
			}
		}
		conn.Write([]byte{'9'})
		out, _ := io.ReadAll(conn)
		if resps, _ := parseResponses(string(out)); len(resps) != 1 || resps[0].body != "len=10\n0123456789" {
			t.Errorf("once complete, the script must get the body: %q", out)
		}
	})

	t.Run("client never reads", func(t *testing.T) {
		conn, err := dialServer(srv)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.(*net.TCPConn).SetReadBuffer(4 << 10)
		fmt.Fprintf(conn, "GET /cgi-bin/flood.sh HTTP/1.1\r\nHost: x\r\n\r\n")
		start := time.Now()
		if !waitFor(20*time.Second, func() bool { n, _ := leftovers(t, c, cctx); return n == 1 }) {
			t.Fatal("the flood script's container never appeared")
		}
		// Never read: the gateway's writes stall, the write timeout fires
		// and the script is killed and deleted. Each write's deadline is
		// set after start, so the kill cannot come sooner.
		if !waitFor(writeTimeout+20*time.Second, func() bool { n, _ := leftovers(t, c, cctx); return n == 0 }) {
			t.Fatalf("the flood's container still exists %s after the client stopped reading", time.Since(start))
		}
		d := time.Since(start)
		if d < writeTimeout {
			t.Errorf("killed after %s: before the %s write timeout, so something else stopped it", d, writeTimeout)
		}
		if !waitFor(5*time.Second, func() bool {
			return strings.Contains(srv.stderr.String(), "cgi=/cgi-bin/flood.sh") &&
				regexpMatch(`cgi=/cgi-bin/flood\.sh .*aborted`, srv.stderr.String())
		}) {
			t.Errorf("the access log does not record the flood as aborted:\n%s", srv.stderr.String())
		}
	})
	t.Run("slow POST cut by the body timeout", func(t *testing.T) {
		var r slowResult
		select {
		case r = <-slowPost:
		case <-time.After(bodyTimeout + 40*time.Second):
			t.Fatal("the slow POST never ended")
		}
		if r.err != nil {
			t.Fatal(r.err)
		}
		resps, _ := parseResponses(r.out)
		if len(resps) != 1 || (resps[0].status != 400 && resps[0].status != 408) || strings.Contains(r.out, "len=") {
			t.Errorf("want one 400/408 and the script never run, got %q", r.out)
		}
		// The body timeout, then at most the 1 s the gateway allows net/http
		// to drain the rest.
		if r.took < bodyTimeout*9/10 || r.took > bodyTimeout+4*time.Second {
			t.Errorf("the slow POST ended after %s; want the %s body timeout", r.took, bodyTimeout)
		}
	})
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

// TestAttack43MalformedRequests: NUL and obs-fold in headers, HTTP/0.9,
// HTTP/1.1 without Host, CONNECT, OPTIONS *, absolute-form targets and a
// 100 KiB URI → 400/405/414/431; nothing is ever proxied outbound.
func TestAttack43MalformedRequests(t *testing.T) {
	requireContainerd(t)
	root := attackSite(t, httpScripts(t, "06", "env.sh"))
	srv := startCold(t, "-d", root)
	w := watchCreates(t, srv)

	// A would-be proxy target: it must never see a connection.
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	var proxied sync.WaitGroup
	var mu sync.Mutex
	var hits int
	proxied.Add(1)
	go func() {
		defer proxied.Done()
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			hits++
			mu.Unlock()
			c.Close()
		}
	}()
	ta := target.Addr().String()

	cases := []struct {
		name, req string
		want      []int
	}{
		{"NUL in a header value", "GET /cgi-bin/env.sh HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", []int{400}},
		{"NUL in a header name", "GET /cgi-bin/env.sh HTTP/1.1\r\nHost: x\r\nX-\x00A: b\r\n\r\n", []int{400}},
		{"CR in a header value", "GET /cgi-bin/env.sh HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", []int{400}},
		{"space before colon", "GET /cgi-bin/env.sh HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", []int{400}},
		{"HTTP/0.9", "GET /cgi-bin/env.sh\r\n\r\n", []int{400}},
		{"HTTP/1.1 without Host", "GET /cgi-bin/env.sh HTTP/1.1\r\n\r\n", []int{400}},
		{"two Hosts", "GET /cgi-bin/env.sh HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", []int{400}},
		{"HTTP/2.0 on HTTP/1 framing", "GET /cgi-bin/env.sh HTTP/2.0\r\nHost: x\r\n\r\n", []int{400, 505}},
		{"CONNECT", "CONNECT " + ta + " HTTP/1.1\r\nHost: " + ta + "\r\n\r\n", []int{400, 405}},
		{"CONNECT to a CGI path", "CONNECT /cgi-bin/env.sh HTTP/1.1\r\nHost: x\r\n\r\n", []int{400, 405}},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", []int{400, 405}},
		{"100 KiB URI", "GET /cgi-bin/env.sh?" + strings.Repeat("q", 100<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", []int{414}},
		{"100 KiB static URI", "GET /" + strings.Repeat("q", 100<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", []int{414}},
		{"2 MiB URI", "GET /" + strings.Repeat("q", 2<<20) + " HTTP/1.1\r\nHost: x\r\n\r\n", []int{414, 431}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := rawHTTP(t, srv, tc.req)
			resps, rest := parseResponses(out)
			if len(resps) != 1 || rest != "" || !slices.Contains(tc.want, resps[0].status) {
				t.Errorf("want one response with a status in %v and the connection closed, got %.400q", tc.want, out)
				return
			}
			if strings.Contains(resps[0].body, "GATEWAY_INTERFACE") {
				t.Errorf("the script ran: %.300q", resps[0].body)
			}
		})
	}

	w.assertNoneSince(t, srv, "malformed requests")
	// Absolute-form targets are served locally (their path), never fetched.
	for _, req := range []string{
		"GET http://" + ta + "/ok.txt HTTP/1.1\r\nHost: " + ta + "\r\nConnection: close\r\n\r\n",
		"GET http://" + ta + "/cgi-bin/ok.sh HTTP/1.1\r\nHost: " + ta + "\r\nConnection: close\r\n\r\n",
	} {
		r := rawOne(t, srv, req)
		if r.status != 200 || (r.body != "fine\n" && r.body != "static fine\n") {
			t.Errorf("%q: status %d, body %q; want the local resource", req, r.status, r.body)
		}
	}

	// obs-fold: net/http replaces it with a space (RFC 9112 §5.2 allows
	// that instead of 400); the script then sees one line, never a
	// continuation.
	t.Run("obs-fold", func(t *testing.T) {
		r := rawOne(t, srv, "GET /cgi-bin/env.sh HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n Injected: yes\r\nConnection: close\r\n\r\n")
		switch r.status {
		case 400:
		case 200:
			if !strings.Contains(r.body, "\nHTTP_X_FOLD=a Injected: yes\n") || strings.Contains(r.body, "HTTP_INJECTED") {
				t.Errorf("folded header reached the script unfolded or as a header of its own: %q", r.body)
			}
		default:
			t.Errorf("status %d, want 400 or 200 with the value unfolded", r.status)
		}
	})

	target.Close()
	proxied.Wait()
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Errorf("the would-be proxy target got %d connections", hits)
	}
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

// regexpMatch reports whether pattern matches s.
func regexpMatch(pattern, s string) bool {
	return regexp.MustCompile(pattern).MatchString(s)
}
