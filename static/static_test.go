package static

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// leaked reports which outside or forbidden content a body carries.
func leaked(body string) string {
	for _, mark := range []string{outsideMark, "root:x:0:0", "SCRIPT-SOURCE-MARK", "GIT-CONFIG-MARK"} {
		if strings.Contains(body, mark) {
			return mark
		}
	}
	return ""
}

func TestPaths(t *testing.T) {
	root, _ := fixture(t)
	h := newHandler(t, root)
	tests := []struct {
		name   string
		target string
		status int
		body   string // exact body wanted when status is 200
	}{
		{"plain file", "/hello.txt", 200, helloBody},
		{"query dropped", "/hello.txt?a=1&b", 200, helloBody},
		{"literal fragment dropped", "/hello.txt#frag", 200, helloBody},
		{"encoded fragment is a name", "/hello.txt%23frag", 404, ""},
		{"double slash", "//hello.txt", 200, helloBody},
		{"many slashes", "///sub//nested///deep.txt", 200, "deep\n"},
		{"dot segment", "/./hello.txt", 200, helloBody},
		{"dotdot inside root", "/sub/nested/../../hello.txt", 200, helloBody},
		{"percent-encoded letters", "/h%65llo.txt", 200, helloBody},
		{"space", "/with%20space.txt", 200, "space\n"},
		{"unicode", "/%C3%BCn%C3%AFc%C3%B6d%C3%A9.txt", 200, "unicode\n"},
		{"html characters", "/%3Cb%3E%26%22%27.txt", 200, "html chars\n"},
		{"single decoding", "/%2541.txt", 200, "percent 41\n"},
		{"symlink inside", "/link-in.txt", 200, helloBody},
		{"symlinked directory", "/linkdir/nested/deep.txt", 200, "deep\n"},
		{"relative symlink up, still inside", "/sub/up", 200, helloBody},
		{"file with trailing slash", "/hello.txt/", 404, ""},
		{"file with trailing dot segment", "/hello.txt/.", 200, helloBody},
		{"missing", "/nope.txt", 404, ""},
		{"path through a file", "/hello.txt/x", 404, ""},

		// SECURITY.md case 1: raw traversal.
		{"raw traversal", "/../../etc/passwd", 404, ""},
		{"raw traversal to secret", "/../outside/secret.txt", 404, ""},
		// Case 2: encoded traversal, no double decoding, overlong UTF-8,
		// backslashes.
		{"encoded dots", "/%2e%2e/%2e%2e/etc/passwd", 404, ""},
		{"encoded dots and slashes", "/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 404, ""},
		{"encoded dots to secret", "/%2e%2e%2foutside%2fsecret.txt", 404, ""},
		{"double encoded", "/%252e%252e%252f%252e%252e%252fetc%252fpasswd", 404, ""},
		{"overlong utf-8 dot", "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", 404, ""},
		{"encoded backslashes", "/..%5c..%5coutside%5csecret.txt", 404, ""},
		{"raw backslashes", `/..\..\outside\secret.txt`, 404, ""},
		// Case 3: NUL, CR, LF.
		{"NUL", "/hello.txt%00", 400, ""},
		{"NUL inside", "/hello%00.txt", 400, ""},
		{"CRLF", "/hello.txt%0d%0aX-Injected:%201", 400, ""},
		// Case 4: symlinks out of the root.
		{"symlink to /etc", "/out/passwd", 404, ""},
		{"symlink to /etc itself", "/out/", 404, ""},
		{"symlink to /etc/passwd", "/pw", 404, ""},
		{"relative symlink out", "/rel-out", 404, ""},
		{"relative symlink to dir out", "/outdir/secret.txt", 404, ""},
		{"broken symlink", "/broken", 404, ""},
		{"symlink loop", "/loop", 404, ""},
		// Case 5: script source and dotfiles.
		{"script", "/cgi-bin/script.sh", 403, ""},
		{"script double slash", "//cgi-bin/script.sh", 403, ""},
		{"script dot segment", "/cgi-bin/./script.sh", 403, ""},
		{"script via dotdot", "/sub/../cgi-bin/script.sh", 403, ""},
		{"script encoded slash", "/cgi-bin%2fscript.sh", 403, ""},
		{"script trailing dot", "/cgi-bin/script.sh.", 403, ""},
		{"cgi dir itself", "/cgi-bin", 403, ""},
		{"cgi dir listing", "/cgi-bin/", 403, ""},
		{"script other case", "/CGI-BIN/script.sh", 404, ""},
		{"script through symlinked dir", "/src/script.sh", 403, ""},
		{"cgi dir through symlink", "/src/", 403, ""},
		{"dotfile", "/.hidden", 404, ""},
		{"git config", "/.git/config", 404, ""},
		{"git config encoded", "/%2egit/config", 404, ""},
		{"git config via dotdot", "/sub/../.git/config", 404, ""},
		{"symlink to dotfile", "/cfg", 404, ""},
		{"htpasswd", "/.htpasswd", 404, ""},

		{"fifo never opened", "/fifo", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(t, h, "GET", tt.target)
			got := body(w)
			if w.Code != tt.status {
				t.Fatalf("GET %s: status %d, want %d; body %q", tt.target, w.Code, tt.status, got)
			}
			if tt.status == 200 && got != tt.body {
				t.Errorf("GET %s: body %q, want %q", tt.target, got, tt.body)
			}
			if m := leaked(got); m != "" {
				t.Errorf("GET %s: body leaks %q", tt.target, m)
			}
			if tt.status != 200 && !strings.Contains(got, "<h1>Error response</h1>") {
				t.Errorf("GET %s: %d without an HTML error page: %q", tt.target, w.Code, got)
			}
			if strings.Contains(got, "/tmp/") || strings.Contains(got, root) {
				t.Errorf("GET %s: body reveals a host path: %q", tt.target, got)
			}
		})
	}
}

// TestPolicyOff shows the denials above come from the policy: with
// dotfiles on and no CGI directories, the same files are served.
func TestPolicyOff(t *testing.T) {
	root, _ := fixture(t)
	h := newHandler(t, root)
	h.Dotfiles, h.CGIDirs = true, nil
	tests := []struct{ target, body string }{
		{"/.git/config", gitConfig},
		{"/.hidden", "hidden\n"},
		{"/cfg", gitConfig},
		{"/cgi-bin/script.sh", scriptBody},
		{"/src/script.sh", scriptBody},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			w := do(t, h, "GET", tt.target)
			if got := body(w); w.Code != 200 || got != tt.body {
				t.Errorf("GET %s: %d %q, want 200 %q", tt.target, w.Code, got, tt.body)
			}
		})
	}
}

func TestMethods(t *testing.T) {
	root, _ := fixture(t)
	h := newHandler(t, root)
	tests := []struct {
		method string
		status int
		msg    string
	}{
		{"GET", 200, ""},
		{"HEAD", 200, ""},
		{"POST", 501, "Unsupported method ('POST')"},
		{"PUT", 501, "Unsupported method ('PUT')"},
		{"DELETE", 501, "Unsupported method ('DELETE')"},
		{"OPTIONS", 501, "Unsupported method ('OPTIONS')"},
		{"BREW", 501, "Unsupported method ('BREW')"},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			w := do(t, h, tt.method, "/hello.txt")
			got := body(w)
			if w.Code != tt.status {
				t.Fatalf("%s /hello.txt: status %d, want %d", tt.method, w.Code, tt.status)
			}
			if tt.msg != "" && !strings.Contains(got, "<p>Message: "+tt.msg+".</p>") {
				t.Errorf("%s /hello.txt: body %q, want message %q", tt.method, got, tt.msg)
			}
		})
	}
}

func TestHead(t *testing.T) {
	root, _ := fixture(t)
	h := newHandler(t, root)
	tests := []struct {
		target string
		status int
	}{
		{"/hello.txt", 200},
		{"/sub/", 200},
		{"/withindex/", 200},
		{"/nope", 404},
		{"/sub", 301},
		{"/cgi-bin/script.sh", 403},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			get := do(t, h, "GET", tt.target)
			head := do(t, h, "HEAD", tt.target)
			if head.Code != tt.status || get.Code != tt.status {
				t.Fatalf("%s: HEAD %d, GET %d, want %d", tt.target, head.Code, get.Code, tt.status)
			}
			if b := body(head); b != "" {
				t.Errorf("HEAD %s: body %q, want none", tt.target, b)
			}
			for _, k := range []string{"Content-Type", "Content-Length", "Last-Modified", "Location"} {
				if g, h := get.Header().Get(k), head.Header().Get(k); g != h {
					t.Errorf("%s: %s is %q for GET, %q for HEAD", tt.target, k, g, h)
				}
			}
			if cl := head.Header().Get("Content-Length"); cl == "" {
				t.Errorf("HEAD %s: no Content-Length", tt.target)
			}
		})
	}
}

func TestFileHeaders(t *testing.T) {
	root, _ := fixture(t)
	h := newHandler(t, root)
	tests := []struct {
		target, ctype, length string
	}{
		{"/hello.txt", "text/plain", "13"},
		{"/sub/style.css", "text/css", "7"},
		{"/withindex/", "text/html", "18"},
		{"/withhtm/", "text/html", "17"},
		{"/withindex/notes.md", "text/markdown", "8"},
		{"/withindex/archive.tar.gz", "application/gzip", "0"},
		{"/withindex/scripts/app.js", "text/javascript", "0"},
		{"/large.bin", "application/octet-stream", "67108864"},
		// The type follows the name asked for, not the link's target.
		{"/withindex/indexlink", "application/octet-stream", "18"},
		{"/%3Cb%3E%26%22%27.txt", "text/plain", "11"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			w := do(t, h, "HEAD", tt.target)
			if w.Code != 200 {
				t.Fatalf("HEAD %s: status %d", tt.target, w.Code)
			}
			hd := w.Header()
			if got := hd.Get("Content-Type"); got != tt.ctype {
				t.Errorf("HEAD %s: Content-Type %q, want %q", tt.target, got, tt.ctype)
			}
			if got := hd.Get("Content-Length"); got != tt.length {
				t.Errorf("HEAD %s: Content-Length %q, want %q", tt.target, got, tt.length)
			}
			if hd.Get("Last-Modified") == "" || hd.Get("Etag") == "" {
				t.Errorf("HEAD %s: Last-Modified %q, ETag %q; want both", tt.target, hd.Get("Last-Modified"), hd.Get("Etag"))
			}
		})
	}
	t.Run("index.html before index.htm", func(t *testing.T) {
		if got := body(do(t, h, "GET", "/withindex/")); got != "<p>index.html</p>\n" {
			t.Errorf("GET /withindex/: %q, want index.html's content", got)
		}
	})
	t.Run("a site's own index names", func(t *testing.T) {
		h := newHandler(t, root)
		h.Index = []string{"index.htm", "index.html"}
		if got := body(do(t, h, "GET", "/withindex/")); got != "<p>not me</p>\n" {
			t.Errorf("GET /withindex/ with Index %q: %q, want index.htm's content", h.Index, got)
		}
		h.Index = []string{"default.html"}
		if w := do(t, h, "GET", "/withindex/"); w.Code != 200 || !strings.Contains(body(w), "Directory listing") {
			t.Errorf("GET /withindex/ with Index %q: %d %q, want the listing", h.Index, w.Code, body(w))
		}
	})
	t.Run("listing off", func(t *testing.T) {
		h := newHandler(t, root)
		h.NoListing = true
		if w := do(t, h, "GET", "/sub/"); w.Code != 403 {
			t.Errorf("GET /sub/ with NoListing: %d, want 403", w.Code)
		}
		if got := body(do(t, h, "GET", "/withindex/")); got != "<p>index.html</p>\n" {
			t.Errorf("GET /withindex/ with NoListing: %q, want the index still served", got)
		}
	})
	t.Run("Last-Modified at epoch", func(t *testing.T) {
		epoch := time.Unix(0, 0)
		must(t, os.Chtimes(root+"/A.txt", epoch, epoch))
		w := do(t, h, "HEAD", "/A.txt")
		if got := w.Header().Get("Last-Modified"); got != "Thu, 01 Jan 1970 00:00:00 GMT" {
			t.Errorf("HEAD /A.txt dated 1970: Last-Modified %q, want the epoch like Python", got)
		}
	})
}

func TestRedirects(t *testing.T) {
	root, _ := fixture(t)
	h := newHandler(t, root)
	tests := []struct {
		target, location string
	}{
		{"/sub", "/sub/"},
		{"/sub/nested", "/sub/nested/"},
		{"/sub?x=1&y=%2F", "/sub/?x=1&y=%2F"},
		{"/sub?", "/sub/"},
		{"/sub#top", "/sub/#top"},
		{"/linkdir", "/linkdir/"},
		{"/listing/c%20dir", "/listing/c%20dir/"},
		{"/sub/./nested", "/sub/./nested/"}, // Python keeps the raw path
		{"/sub/nested/..", "/sub/nested/../"},
		// Never a Location a browser reads as another host (Python's
		// CVE-2021-28861).
		{"//sub", "/sub/"},
		{"///sub?x", "/sub/?x"},
		{"//sub//nested", "/sub//nested/"},
		{"/%2Fsub", "/%2Fsub/"},
		{"/%5Cx", "/%5Cx/"},
		{`/\x`, "/%5Cx/"},
		{"/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			w := do(t, h, "GET", tt.target)
			loc := w.Header().Get("Location")
			if tt.location == "" {
				if w.Code == http.StatusMovedPermanently {
					t.Errorf("GET %s: unexpected redirect to %q", tt.target, loc)
				}
				return
			}
			if w.Code != http.StatusMovedPermanently || loc != tt.location {
				t.Fatalf("GET %s: %d Location %q, want 301 %q", tt.target, w.Code, loc, tt.location)
			}
			if strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, `/\`) {
				t.Errorf("GET %s: Location %q leaves the host", tt.target, loc)
			}
			if cl := w.Header().Get("Content-Length"); cl != "0" || body(w) != "" {
				t.Errorf("GET %s: Content-Length %q body %q, want 0 and none", tt.target, cl, body(w))
			}
		})
	}
}

// TestTreeChangesBetweenRequests changes the tree under one handler
// between requests: each answer must be the one the tree now calls for,
// whatever the handler saw before — a directory becomes a symlink into the
// CGI directory, to a dotfile directory, out of the root; a file becomes a
// symlink, a FIFO, is removed, and comes back with other contents.
func TestTreeChangesBetweenRequests(t *testing.T) {
	root, _ := fixture(t)
	h := newHandler(t, root)
	must(t, os.MkdirAll(filepath.Join(root, "d"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "d", "script.sh"), []byte("plain\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "d", "config"), []byte("plain\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "d", "secret.txt"), []byte("plain\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "f.txt"), []byte("first\n"), 0o644))
	swapDir := func(target string) {
		t.Helper()
		must(t, os.RemoveAll(filepath.Join(root, "d")))
		must(t, os.Symlink(target, filepath.Join(root, "d")))
	}
	swapFile := func(make func(p string) error) {
		t.Helper()
		must(t, os.Remove(filepath.Join(root, "f.txt")))
		if make != nil {
			must(t, make(filepath.Join(root, "f.txt")))
		}
	}
	steps := []struct {
		name   string
		change func()
		target string
		status int
		body   string
	}{
		{"plain directory", nil, "/d/script.sh", 200, "plain\n"},
		{"plain directory, other file", nil, "/d/config", 200, "plain\n"},
		{"directory now a link to cgi-bin", func() { swapDir("cgi-bin") }, "/d/script.sh", 403, ""},
		{"directory now a link to .git", func() { os.Remove(filepath.Join(root, "d")); swapDir(".git") }, "/d/config", 404, ""},
		{"directory now a link out of the root", func() { os.Remove(filepath.Join(root, "d")); swapDir("../outside") }, "/d/secret.txt", 404, ""},
		{"plain file", nil, "/f.txt", 200, "first\n"},
		{"file now a symlink to a dotfile", func() { swapFile(func(p string) error { return os.Symlink(".hidden", p) }) }, "/f.txt", 404, ""},
		{"file now a FIFO", func() { swapFile(func(p string) error { return syscall.Mkfifo(p, 0o644) }) }, "/f.txt", 404, ""},
		{"file removed", func() { swapFile(nil) }, "/f.txt", 404, ""},
		{"file back, other contents", func() {
			must(t, os.WriteFile(filepath.Join(root, "f.txt"), []byte("second\n"), 0o644))
		}, "/f.txt", 200, "second\n"},
		{"file rewritten in place", func() {
			must(t, os.WriteFile(filepath.Join(root, "f.txt"), []byte("third!\n"), 0o644))
		}, "/f.txt", 200, "third!\n"},
	}
	for _, st := range steps {
		if st.change != nil {
			st.change()
		}
		w := do(t, h, "GET", st.target)
		if got := body(w); w.Code != st.status || st.status == 200 && got != st.body {
			t.Errorf("%s: GET %s = %d %q, want %d %q", st.name, st.target, w.Code, got, st.status, st.body)
		}
	}
}
