package static

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
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
		"<style>", "Directory listing for /a/&lt;b&gt;/", "<hr>\n<ul>\n", "</ul>\n<hr>\n</body>\n</html>\n",
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

func TestListingUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any directory; permission cannot be denied here")
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
