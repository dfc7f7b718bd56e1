package main

import (
	"bytes"
	"crypto/rand"
	"html"
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
	"testing"
	"time"
)

// parityTree builds the fixture both servers serve.
func parityTree(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "site")
	files := map[string]string{
		"a.txt":                    "plain text\n",
		"nested/deeper/a.txt":      "deep\n",
		"nested/b.html":            "<p>b</p>\n",
		"withindex/index.html":     "<h1>index</h1>\n",
		"withindex/other.txt":      "other\n",
		"htmonly/index.htm":        "<h1>htm</h1>\n",
		"with space.txt":           "space\n",
		"ünïcödé.txt":              "unicode\n",
		`<b>&'x.txt`:               "html chars\n",
		"style.css":                "body{}\n",
		"data.json":                "{}\n",
		"img.png":                  "\x89PNG\r\n",
		"pic.svg":                  "<svg/>",
		"arch.tar":                 "tar",
		"pkg.tar.gz":               "gz",
		"noext":                    "no extension",
		".secret":                  "dotfile\n",
		"cgi-bin/script.sh":        "#!/bin/sh\necho secret source\n",
		"Caps/Index.HTML":          "caps",
		"nested/deeper/z dir/q.md": "# q\n",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(root, "cgi-bin/script.sh"), 0o755)
	big := make([]byte, 3<<20+123)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(root, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"link.txt": "nested/deeper/a.txt", // inside the root
		"linkdir":  "nested",              // a directory inside
		"out":      "/etc",                // leading out
		"pw":       "/etc/passwd",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	// Fixed times, so that Last-Modified and If-Modified-Since are exact.
	mtime := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil {
			os.Chtimes(p, mtime, mtime)
		}
		return nil
	})
	return root
}

type parityReq struct {
	method string
	target string // request-target, sent as is
	header http.Header
}

type response struct {
	status  int
	header  http.Header
	body    []byte
	listing []string // entries of a directory listing, when it is one
}

// rawGet sends one request with the target exactly as given.
func rawGet(t *testing.T, base string, q parityReq) response {
	t.Helper()
	req, err := http.NewRequest(q.method, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = q.target // sent verbatim, not cleaned or re-encoded
	for k, v := range q.header {
		req.Header[k] = v
	}
	client := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", q.method, q.target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", q.method, q.target, err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: body}
	if bytes.Contains(body, []byte("<title>Directory listing for ")) {
		r.listing = listingEntries(body)
	}
	return r
}

var entryRE = regexp.MustCompile(`<li><a href="([^"]*)">([^<]*)</a></li>`)

// listingEntries returns "href|text" for each entry of a listing page.
func listingEntries(page []byte) []string {
	var out []string
	for _, m := range entryRE.FindAllSubmatch(page, -1) {
		out = append(out, html.UnescapeString(string(m[1]))+"|"+html.UnescapeString(string(m[2])))
	}
	return out
}

func startPython(t *testing.T, dir string) *server {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is needed for the parity test (the README's test command installs it)")
	}
	return startServer(t, py, "-u", "-m", "http.server", "0", "-b", "127.0.0.1", "-d", dir)
}

// TestParityWithPython serves one tree with python3 -m http.server and with
// cgibox and compares the answers; where cgibox differs on purpose, the
// test asserts the difference.
func TestParityWithPython(t *testing.T) {
	root := parityTree(t)
	py := startPython(t, root)
	cg := startCgibox(t, "-d", root, "--no-cgi")

	lastMod := "Fri, 01 Mar 2024 12:00:00 GMT"
	same := []parityReq{
		{method: "GET", target: "/"},
		{method: "GET", target: "/a.txt"},
		{method: "HEAD", target: "/a.txt"},
		{method: "GET", target: "/nested"},
		{method: "GET", target: "/nested?x=1&y=%2F"},
		{method: "GET", target: "/nested/"},
		{method: "GET", target: "/nested/deeper/"},
		{method: "GET", target: "/nested/deeper/z%20dir/"},
		{method: "GET", target: "/withindex/"},
		{method: "GET", target: "/withindex"},
		{method: "GET", target: "/htmonly/"},
		{method: "GET", target: "/with%20space.txt"},
		{method: "GET", target: "/%C3%BCn%C3%AFc%C3%B6d%C3%A9.txt"},
		{method: "GET", target: "/%3Cb%3E%26%27x.txt"},
		{method: "GET", target: "/link.txt"},
		{method: "GET", target: "/linkdir/b.html"},
		{method: "GET", target: "/style.css"},
		{method: "GET", target: "/data.json"},
		{method: "GET", target: "/img.png"},
		{method: "GET", target: "/pic.svg"},
		{method: "GET", target: "/arch.tar"},
		{method: "GET", target: "/pkg.tar.gz"},
		{method: "GET", target: "/noext"},
		{method: "GET", target: "/big.bin"},
		{method: "HEAD", target: "/big.bin"},
		{method: "GET", target: "/missing"},
		{method: "GET", target: "/a.txt/"},
		{method: "GET", target: "/nested/../a.txt"},
		{method: "GET", target: "/../../etc/passwd"},
		{method: "GET", target: "/%2e%2e/%2e%2e/etc/passwd"},
		{method: "GET", target: "/%252e%252e%252fetc/passwd"},
		{method: "GET", target: "/a.txt?query=1"},
		{method: "GET", target: "/a.txt", header: http.Header{"If-Modified-Since": {lastMod}}},
		{method: "GET", target: "/a.txt", header: http.Header{"If-Modified-Since": {"Thu, 29 Feb 2024 12:00:00 GMT"}}},
	}
	for _, q := range same {
		t.Run(q.method+" "+q.target, func(t *testing.T) {
			want := rawGet(t, py.base, q)
			got := rawGet(t, cg.base, q)
			compareResponses(t, q, got, want)
		})
	}

	// Where cgibox differs from Python on purpose.
	t.Run("Range is honoured", func(t *testing.T) {
		q := parityReq{method: "GET", target: "/big.bin", header: http.Header{"Range": {"bytes=10-19"}}}
		want, got := rawGet(t, py.base, q), rawGet(t, cg.base, q)
		full := rawGet(t, py.base, parityReq{method: "GET", target: "/big.bin"}).body
		if want.status != 200 {
			t.Errorf("python: status %d, expected it to ignore Range", want.status)
		}
		if got.status != http.StatusPartialContent || !bytes.Equal(got.body, full[10:20]) ||
			got.header.Get("Content-Range") != "bytes 10-19/"+itoa(len(full)) {
			t.Errorf("cgibox: status %d, Content-Range %q, body %q; want 206 with bytes 10-19",
				got.status, got.header.Get("Content-Range"), got.body)
		}
	})
	t.Run("ETag and If-None-Match", func(t *testing.T) {
		q := parityReq{method: "GET", target: "/a.txt"}
		if e := rawGet(t, py.base, q).header.Get("ETag"); e != "" {
			t.Errorf("python sent an ETag %q; the test assumes it does not", e)
		}
		etag := rawGet(t, cg.base, q).header.Get("ETag")
		if etag == "" {
			t.Fatal("cgibox sent no ETag")
		}
		q.header = http.Header{"If-None-Match": {etag}}
		if got := rawGet(t, cg.base, q); got.status != http.StatusNotModified {
			t.Errorf("If-None-Match %s: status %d, want 304", etag, got.status)
		}
	})
	for _, target := range []string{"/.secret", "/pw", "/out/passwd", "/out/"} {
		t.Run("not served "+target, func(t *testing.T) {
			q := parityReq{method: "GET", target: target}
			if want := rawGet(t, py.base, q); want.status != 200 {
				t.Errorf("python: status %d; the test assumes Python serves %s", want.status, target)
			}
			got := rawGet(t, cg.base, q)
			if got.status != http.StatusNotFound {
				t.Errorf("cgibox: status %d, want 404", got.status)
			}
			if target == "/pw" || target == "/out/passwd" {
				passwd, _ := os.ReadFile("/etc/passwd")
				if len(passwd) > 0 && bytes.Contains(got.body, passwd[:min(len(passwd), 20)]) {
					t.Errorf("cgibox served bytes of /etc/passwd")
				}
			}
		})
	}
	t.Run("listing hides dotfiles", func(t *testing.T) {
		q := parityReq{method: "GET", target: "/"}
		want, got := rawGet(t, py.base, q), rawGet(t, cg.base, q)
		if !slices.Contains(want.listing, ".secret|.secret") {
			t.Errorf("python listing %q lacks .secret; the test assumes it lists it", want.listing)
		}
		if slices.ContainsFunc(got.listing, func(e string) bool { return strings.HasPrefix(e, ".") }) {
			t.Errorf("cgibox listing shows a dotfile: %q", got.listing)
		}
	})
	t.Run("CGI directory with --no-cgi", func(t *testing.T) {
		got := rawGet(t, cg.base, parityReq{method: "GET", target: "/cgi-bin/script.sh"})
		if got.status != http.StatusForbidden || bytes.Contains(got.body, []byte("secret source")) {
			t.Errorf("status %d, body %q; want 403 and never the script's source", got.status, got.body)
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

// compareResponses checks the fields Python and cgibox must agree on.
func compareResponses(t *testing.T, q parityReq, got, want response) {
	t.Helper()
	if got.status != want.status {
		t.Errorf("status: got %d, want %d (python)", got.status, want.status)
	}
	for _, h := range []string{"Location", "Last-Modified", "Content-Type"} {
		g, w := got.header.Get(h), want.header.Get(h)
		if h == "Content-Type" && got.status >= 400 {
			continue // error pages differ in design, not in meaning
		}
		if g != w {
			t.Errorf("%s: got %q, want %q (python)", h, g, w)
		}
	}
	switch {
	case want.listing != nil:
		// Hidden on purpose: dotfiles, and symlinks leading out of the root.
		hidden := []string{"out/|out@", "pw|pw@"}
		wantEntries := slices.DeleteFunc(slices.Clone(want.listing), func(e string) bool {
			return strings.HasPrefix(e, ".") || slices.Contains(hidden, e)
		})
		if !slices.Equal(got.listing, wantEntries) {
			t.Errorf("listing entries:\n got  %q\n want %q (python, less dotfiles and links out)", got.listing, wantEntries)
		}
	case want.status < 400:
		if g, w := got.header.Get("Content-Length"), want.header.Get("Content-Length"); g != w {
			t.Errorf("Content-Length: got %q, want %q (python)", g, w)
		}
		if !bytes.Equal(got.body, want.body) {
			t.Errorf("body: got %d bytes %.60q, want %d bytes %.60q (python)", len(got.body), got.body, len(want.body), want.body)
		}
	}
}

var _ = net.JoinHostPort
