package static

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzPath throws arbitrary request paths at the handler: it must never
// panic, never send a byte from outside the root (the fixture's outside
// secret, /etc/passwd through the out links), never the script source or
// a dotfile, and never a Location that leaves the host.
func FuzzPath(f *testing.F) {
	for _, seed := range []string{
		"/", "/hello.txt", "/../../etc/passwd", "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
		"/%252e%252e%252f", "/%c0%ae%c0%ae/", `/..\..\outside\secret.txt`, "/a%00b",
		"//sub", "/./hello.txt", "/out/passwd", "/pw", "/rel-out", "/outdir/secret.txt",
		"/cgi-bin/script.sh", "/src/script.sh", "/.git/config", "/cfg", "/sub/up",
		"/linkdir/../../outside/secret.txt", "/hello.txt#x", "/sub?x=1", "/%5Cx",
	} {
		f.Add(seed, false)
	}
	root, _ := fixture(f)
	h := newHandler(f, root)
	f.Fuzz(func(t *testing.T, target string, asPath bool) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if u, err := url.ParseRequestURI(target); err == nil && !asPath {
			r.URL = u // the raw request-target, as net/http's server parses it
		} else {
			r.URL = &url.URL{Path: target} // an already-decoded path
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		b := w.Body.String()
		if m := leaked(b); m != "" {
			t.Fatalf("path %q (raw %q): %d response leaks %q", r.URL.Path, r.URL.RawPath, w.Code, m)
		}
		if loc := w.Header().Get("Location"); strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, `/\`) {
			t.Fatalf("path %q: Location %q leaves the host", r.URL.Path, loc)
		}
		if w.Code == http.StatusOK && strings.Contains(b, "Directory listing for") &&
			(strings.Contains(b, `href=".git/"`) || strings.Contains(b, `href="secret.txt"`)) {
			t.Fatalf("path %q: listing shows a hidden or outside entry", r.URL.Path)
		}
	})
}
