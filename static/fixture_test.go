package static

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Contents the tests look for.
const (
	helloBody   = "hello, world\n"
	outsideMark = "OUTSIDE-SECRET-7f3a" // in a file next to the root, never served
	scriptBody  = "#!/bin/sh\necho SCRIPT-SOURCE-MARK\n"
	gitConfig   = "[core]\nGIT-CONFIG-MARK\n"
)

// fixedMtime has sub-second digits so that second-precision comparisons are
// exercised.
var fixedMtime = time.Date(2024, 1, 2, 3, 4, 5, 678_000_000, time.UTC)

// fixture builds a site root in a temp dir, next to a directory "outside"
// that holds a secret, and returns the root's path and the temp dir.
//
//	site/hello.txt  A.txt  %41.txt  with space.txt  ünïcödé.txt  <b>&"'.txt
//	site/withindex/index.html  withhtm/index.htm  sub/nested/deep.txt
//	site/listing/...            (see TestListing)
//	site/.hidden  .git/config   cgi-bin/script.sh  \x/  large.bin  fifo
//	site/link-in.txt -> hello.txt   linkdir -> sub   src -> cgi-bin
//	site/cfg -> .git/config   broken -> nowhere   loop -> loop
//	site/out -> /etc   pw -> /etc/passwd   rel-out -> ../outside/secret.txt
//	site/outdir -> ../outside
func fixture(t testing.TB) (root, tmp string) {
	t.Helper()
	tmp = t.TempDir()
	root = filepath.Join(tmp, "site")
	files := map[string]string{
		"outside/secret.txt":             outsideMark + "\n",
		"site/hello.txt":                 helloBody,
		"site/A.txt":                     "capital A\n",
		"site/%41.txt":                   "percent 41\n",
		"site/with space.txt":            "space\n",
		"site/ünïcödé.txt":               "unicode\n",
		"site/<b>&\"'.txt":               "html chars\n",
		"site/withindex/index.html":      "<p>index.html</p>\n",
		"site/withindex/index.htm":       "<p>not me</p>\n",
		"site/withhtm/index.htm":         "<p>index.htm</p>\n",
		"site/sub/nested/deep.txt":       "deep\n",
		"site/sub/style.css":             "body{}\n",
		"site/.hidden":                   "hidden\n",
		"site/.git/config":               gitConfig,
		"site/cgi-bin/script.sh":         scriptBody,
		"site/\\x/inner.txt":             "backslash dir\n",
		"site/listing/b.txt":             "",
		"site/listing/A.txt":             "",
		"site/listing/Zed":               "",
		"site/listing/ünï.txt":           "",
		"site/listing/<b>&\"'.txt":       "",
		"site/listing/c dir/x":           "",
		"site/listing/.dot":              "",
		"site/listing/index.html.bak":    "",
		"site/listing/.dotdir/cfg":       "",
		"site/listing/c dir/.keep":       "",
		"site/listing/Q?#%.txt":          "",
		"site/listing/Apple.txt":         "",
		"site/listing/apple.txt":         "",
		"site/emptydir/.keep":            "",
		"site/withindex/sub/keep.txt":    "",
		"site/withindex/notes.md":        "# notes\n",
		"site/withindex/data.json":       "{}\n",
		"site/withindex/archive.tar.gz":  "",
		"site/withindex/scripts/app.js":  "",
		"site/withindex/pages/index.htm": "",
	}
	for name, body := range files {
		p := filepath.Join(tmp, filepath.FromSlash(name))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(body), 0o644))
	}
	links := map[string]string{
		"link-in.txt":         "hello.txt",
		"linkdir":             "sub",
		"src":                 "cgi-bin",
		"cfg":                 ".git/config",
		"broken":              "nowhere",
		"loop":                "loop",
		"out":                 "/etc",
		"pw":                  "/etc/passwd",
		"rel-out":             "../outside/secret.txt",
		"outdir":              "../outside",
		"sub/up":              "../hello.txt",
		"listing/link":        "c dir",
		"listing/blink":       "nowhere",
		"listing/out":         "/etc",
		"listing/relout":      "../../outside",
		"listing/hiddenlink":  ".dot",
		"listing/.dotlink":    "b.txt",
		"withindex/indexlink": "index.html",
	}
	for name, target := range links {
		must(t, os.Symlink(target, filepath.Join(root, filepath.FromSlash(name))))
	}
	large, err := os.Create(filepath.Join(root, "large.bin"))
	must(t, err)
	must(t, large.Truncate(largeSize)) // sparse: cheap to make, big to serve
	must(t, large.Close())
	must(t, syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	must(t, os.Chtimes(filepath.Join(root, "hello.txt"), fixedMtime, fixedMtime))
	return root, tmp
}

const largeSize = 64 << 20

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newHandler opens root and returns a Handler with the default CGI dirs.
func newHandler(t testing.TB, root string) *Handler {
	t.Helper()
	r, err := os.OpenRoot(root)
	must(t, err)
	t.Cleanup(func() { r.Close() })
	return &Handler{Root: r, CGIDirs: []string{"/cgi-bin", "/htbin"}}
}

// do sends method target (a raw request-target, parsed as net/http's server
// does) with header lines "Name: value".
func do(t testing.TB, h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for _, kv := range header {
		k, v, _ := strings.Cut(kv, ": ")
		r.Header.Add(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func body(w *httptest.ResponseRecorder) string {
	b, _ := io.ReadAll(w.Result().Body)
	return string(b)
}
