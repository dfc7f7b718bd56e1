package static

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cgibox/cgibox/internal/testenv"
)

var entryRE = regexp.MustCompile(`<li><a href="([^"]*)">([^<]*)</a></li>`)

// entries returns a listing's entries as "href => text".
func entries(page string) []string {
	var out []string
	for _, m := range entryRE.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1]+" => "+m[2])
	}
	return out
}

func TestListing(t *testing.T) {
	root, _ := fixture(t)
	tests := []struct {
		name     string
		dotfiles bool
		target   string
		title    string
		want     []string
	}{
		{
			name:   "order, escaping, markers",
			target: "/listing/",
			title:  "Directory listing for /listing/",
			want: []string{
				`%3Cb%3E%26%22%27.txt => &lt;b&gt;&amp;"'.txt`,
				"A.txt => A.txt",
				"Apple.txt => Apple.txt",
				"apple.txt => apple.txt",
				"b.txt => b.txt",
				"blink => blink@", // broken link inside the root: listed, like Python
				"c%20dir/ => c dir/",
				"index.html.bak => index.html.bak",
				"link/ => link@", // link to a directory: "@" shown, "/" linked
				"Q%3F%23%25.txt => Q?#%.txt",
				"Zed => Zed",
				"%C3%BCn%C3%AF.txt => ünï.txt",
			},
		},
		{
			name:     "with dotfiles",
			dotfiles: true,
			target:   "/listing/",
			title:    "Directory listing for /listing/",
			want: []string{
				".dot => .dot",
				".dotdir/ => .dotdir/",
				".dotlink => .dotlink@",
				`%3Cb%3E%26%22%27.txt => &lt;b&gt;&amp;"'.txt`,
				"A.txt => A.txt",
				"Apple.txt => Apple.txt",
				"apple.txt => apple.txt",
				"b.txt => b.txt",
				"blink => blink@",
				"c%20dir/ => c dir/",
				"hiddenlink => hiddenlink@",
				"index.html.bak => index.html.bak",
				"link/ => link@",
				"Q%3F%23%25.txt => Q?#%.txt",
				"Zed => Zed",
				"%C3%BCn%C3%AF.txt => ünï.txt",
			},
		},
		{
			name:   "empty after hiding dotfiles",
			target: "/emptydir/",
			title:  "Directory listing for /emptydir/",
			want:   nil,
		},
		{
			name:   "through a symlinked directory, title as requested",
			target: "/linkdir/",
			title:  "Directory listing for /linkdir/",
			want:   []string{"nested/ => nested/", "style.css => style.css", "up => up@"},
		},
		{
			name:   "title escaped, query left out",
			target: "/listing/c%20dir/?q=<x>",
			title:  "Directory listing for /listing/c dir/",
			want:   []string{"x => x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHandler(t, root)
			h.Dotfiles = tt.dotfiles
			w := do(t, h, "GET", tt.target)
			page := body(w)
			if w.Code != 200 {
				t.Fatalf("GET %s: status %d, body %q", tt.target, w.Code, page)
			}
			if got := w.Header().Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("GET %s: Content-Type %q", tt.target, got)
			}
			if got, want := w.Header().Get("Content-Length"), fmt.Sprint(len(page)); got != want {
				t.Errorf("GET %s: Content-Length %s, body is %s bytes", tt.target, got, want)
			}
			for _, part := range []string{"<title>" + tt.title + "</title>", "<h1>" + tt.title + "</h1>"} {
				if !strings.Contains(page, part) {
					t.Errorf("GET %s: page lacks %q:\n%s", tt.target, part, page)
				}
			}
			got := entries(page)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("GET %s: entries\n%s\nwant\n%s", tt.target, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestListingHides checks the root listing leaves out what is never served.
func TestListingHides(t *testing.T) {
	root, _ := fixture(t)
	h := newHandler(t, root)
	got := strings.Join(entries(body(do(t, h, "GET", "/"))), "\n")
	for _, hidden := range []string{".hidden", ".git", "out", "pw", "rel-out", "outdir", "cfg"} {
		if strings.Contains("\n"+got+"\n", "\n"+quote(hidden)+" => ") || strings.Contains("\n"+got+"\n", "\n"+quote(hidden)+"/ => ") {
			t.Errorf("root listing shows %q:\n%s", hidden, got)
		}
	}
	for _, shown := range []string{"hello.txt => hello.txt", "sub/ => sub/", "cgi-bin/ => cgi-bin/", "linkdir/ => linkdir@", "broken => broken@", "fifo => fifo"} {
		if !strings.Contains("\n"+got+"\n", "\n"+shown+"\n") {
			t.Errorf("root listing lacks %q:\n%s", shown, got)
		}
	}
}

func TestListingPage(t *testing.T) {
	page := listingPage("/a/<b>/", []listEntry{{name: "x"}}, false)
	for _, part := range []string{
		"<!DOCTYPE HTML>", `<html lang="en">`, `<meta charset="utf-8">`,
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		"<style>" + pageStyle + "</style>", "Directory listing for /a/&lt;b&gt;/", "<hr>\n<ul>\n", "</ul>\n<hr>\n</body>\n</html>\n",
	} {
		if !strings.Contains(page, part) {
			t.Errorf("listing page lacks %q:\n%s", part, page)
		}
	}
	if strings.Contains(page, "Only the first") {
		t.Errorf("untruncated page says it is truncated")
	}
	if !strings.Contains(listingPage("/", nil, true), "Only the first") {
		t.Errorf("truncated page does not say so")
	}
}

// TestListingPageEscapesNames checks that a name's text shows its control
// characters, bidirectional controls and invalid UTF-8 as visible escapes,
// and that its link keeps the exact bytes, percent-encoded.
func TestListingPageEscapesNames(t *testing.T) {
	tests := []struct {
		name     string
		entry    listEntry
		wantHref string
		wantText string
	}{
		{"terminal escape", listEntry{name: "a\x1b[2Jb.txt"}, "a%1B%5B2Jb.txt", `a\x1b[2Jb.txt`},
		{"right-to-left override", listEntry{name: "report\u202etxt.exe"}, "report%E2%80%AEtxt.exe", `report\u202etxt.exe`},
		{"isolates", listEntry{name: "x\u2066y\u2069.txt"}, "x%E2%81%A6y%E2%81%A9.txt", `x\u2066y\u2069.txt`},
		{"marks", listEntry{name: "m\u200e\u200f"}, "m%E2%80%8E%E2%80%8F", `m\u200e\u200f`},
		{"C1 control", listEntry{name: "nel\u0085"}, "nel%C2%85", `nel\x85`},
		{"newline and DEL", listEntry{name: "a\nb\x7f"}, "a%0Ab%7F", `a\x0ab\x7f`},
		{"invalid UTF-8", listEntry{name: "bad\xff\xfe"}, "bad%FF%FE", `bad\xff\xfe`},
		{"backslash", listEntry{name: `back\slash`}, "back%5Cslash", `back\\slash`},
		{"HTML after escaping", listEntry{name: "<\x1b>&"}, "%3C%1B%3E%26", `&lt;\x1b&gt;&amp;`},
		{"directory", listEntry{name: "d\u202e", dir: true}, "d%E2%80%AE/", `d\u202e/`},
		{"symlink", listEntry{name: "l\x1b", link: true}, "l%1B", `l\x1b@`},
		{"plain Unicode kept", listEntry{name: "ünï"}, "%C3%BCn%C3%AF", "ünï"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := listingPage("/", []listEntry{tt.entry}, false)
			got := entries(page)
			want := tt.wantHref + " => " + tt.wantText
			if len(got) != 1 || got[0] != want {
				t.Errorf("listing of %+v: entries %q, want [%q]", tt.entry, got, want)
			}
		})
	}
}

func TestListingPageEscapesTitle(t *testing.T) {
	tests := []struct{ display, want string }{
		{"/a\x1b]0;x\x07/", `Directory listing for /a\x1b]0;x\x07/`},
		{"/b\u202ec/", `Directory listing for /b\u202ec/`},
		{"/\xff<i>/", `Directory listing for /\xff&lt;i&gt;/`},
	}
	for _, tt := range tests {
		t.Run(tt.display, func(t *testing.T) {
			page := listingPage(tt.display, nil, false)
			for _, part := range []string{"<title>" + tt.want + "</title>", "<h1>" + tt.want + "</h1>"} {
				if !strings.Contains(page, part) {
					t.Errorf("listingPage(%q) lacks %q:\n%s", tt.display, part, page)
				}
			}
		})
	}
}

// TestListingStrangeNamesOnDisk lists a real directory of hostile names
// over HTTP, then follows every link as a browser would: each must show
// escaped and lead to its own file's bytes.
func TestListingStrangeNamesOnDisk(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "strange")
	must(t, os.Mkdir(dir, 0o755))
	files := []struct{ name, shown string }{
		{"esc\x1b[31mred.txt", `esc\x1b[31mred.txt`},
		{"bell\x07\ttab.txt", `bell\x07\x09tab.txt`},
		{"report\u202etxt.exe", `report\u202etxt.exe`},
		{"iso\u2066late\u2069.txt", `iso\u2066late\u2069.txt`},
		{"marks\u200e\u200f.txt", `marks\u200e\u200f.txt`},
		{"c1\u0085\u009b.txt", `c1\x85\x9b.txt`},
		{"del\x7f.txt", `del\x7f.txt`},
		{"bad\xff\xfe.txt", `bad\xff\xfe.txt`},
		{`back\slash.txt`, `back\\slash.txt`},
	}
	want := map[string]string{} // shown text => content
	for i, f := range files {
		content := fmt.Sprintf("file %d: %q\n", i, f.name)
		must(t, os.WriteFile(filepath.Join(dir, f.name), []byte(content), 0o644))
		want[f.shown] = content
	}
	must(t, os.Mkdir(filepath.Join(dir, "sub\u202e\x1b"), 0o755))
	want[`sub\u202e\x1b/`] = "" // a directory: its own listing

	srv := httptest.NewServer(newHandler(t, root))
	t.Cleanup(srv.Close)
	base, err := url.Parse(srv.URL + "/strange/")
	must(t, err)
	page := get(t, base.String())
	hrefs := map[string]string{} // shown text => href
	for _, m := range entryRE.FindAllStringSubmatch(page, -1) {
		hrefs[m[2]] = m[1]
	}
	if got, want := slices.Sorted(maps.Keys(hrefs)), slices.Sorted(maps.Keys(want)); !slices.Equal(got, want) {
		t.Fatalf("listing shows %q, want %q:\n%s", got, want, page)
	}
	for _, shown := range slices.Sorted(maps.Keys(want)) {
		t.Run(shown, func(t *testing.T) {
			href := hrefs[shown]
			ref, err := url.Parse(href)
			must(t, err)
			target := base.ResolveReference(ref).String()
			body := get(t, target)
			if strings.HasSuffix(shown, "/") {
				title := "Directory listing for /strange/" + shown
				if !strings.Contains(body, "<h1>"+title+"</h1>") {
					t.Errorf("GET %s (href %q): page lacks the title %q:\n%s", target, href, title, body)
				}
				return
			}
			if body != want[shown] {
				t.Errorf("GET %s (href %q): body %q, want %q", target, href, body, want[shown])
			}
		})
	}
}

// get fetches url and fails the test unless the answer is 200.
func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, body %q", url, resp.StatusCode, b)
	}
	return string(b)
}

// TestListingUnreadable: a directory the server may not read is a 404 with
// Python's message. Root reads any directory, so as root the test runs
// itself again as nobody (65534), which CI's root run then covers too.
func TestListingUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		cmd := testenv.Reexec(t, 65534, 65534, "-test.run=^TestListingUnreadable$", "-test.v", "-test.count=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestListingUnreadable") {
			t.Errorf("TestListingUnreadable as uid 65534: %v, want it to run and pass:\n%s", err, out)
		}
		return
	}
	root, _ := fixture(t)
	must(t, os.Chmod(filepath.Join(root, "emptydir"), 0o311))
	t.Cleanup(func() { os.Chmod(filepath.Join(root, "emptydir"), 0o755) })
	w := do(t, newHandler(t, root), "GET", "/emptydir/")
	if got := body(w); w.Code != 404 || !strings.Contains(got, "No permission to list directory") {
		t.Errorf("GET unreadable dir: %d %q, want 404 No permission to list directory", w.Code, got)
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abc-_.~XYZ09", "abc-_.~XYZ09"},
		{"a b", "a%20b"},
		{"dir/", "dir/"},
		{`<b>&"'.txt`, "%3Cb%3E%26%22%27.txt"},
		{"?#%;:@=+$,", "%3F%23%25%3B%3A%40%3D%2B%24%2C"},
		{"ü", "%C3%BC"},
		{"\xff", "%FF"},
		{"javascript:alert(1)", "javascript%3Aalert%281%29"},
	}
	for _, tt := range tests {
		if got := quote(tt.in); got != tt.want {
			t.Errorf("quote(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
