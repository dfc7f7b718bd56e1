package static

import (
	"io/fs"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

// generalOnly returns a Handler over root that never takes serveRegular's
// short way.
func generalOnly(t *testing.T, root string) *Handler {
	h := newHandler(t, root)
	h.root.once.Do(func() { h.root.fd = -1 })
	return h
}

func TestServeRegularTakesOnlyPlainFiles(t *testing.T) {
	root, _ := fixture(t)
	h := newHandler(t, root)
	tests := []struct {
		rel  string
		want bool
	}{
		{"hello.txt", true},
		{"sub/nested/deep.txt", true},
		{"withindex/index.html", true},
		{"large.bin", true},
		{"link-in.txt", false},       // a symlink, even to a file inside
		{"linkdir/style.css", false}, // a symlink on the way
		{"sub/up", false},
		{"pw", false},
		{"out/passwd", false},
		{"rel-out", false},
		{"fifo", false},
		{"sub", false}, // a directory
		{"missing.txt", false},
		{"hello.txt/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.rel, func(t *testing.T) {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("HEAD", "/"+tt.rel, nil)
			if got := h.serveRegular(w, r, tt.rel, filepath.Base(tt.rel)); got != tt.want {
				t.Errorf("serveRegular(%q) = %v, want %v", tt.rel, got, tt.want)
			}
			if tt.want && w.Code != 200 {
				t.Errorf("serveRegular(%q): status %d, want 200", tt.rel, w.Code)
			}
		})
	}
}

// TestServeRegularAnswersAsResolve requests every name in the fixture, as
// a file and as a directory, plainly and with conditional and range
// headers, from a Handler that takes the short way for plain files and
// from one that never does: the answers must be the same.
func TestServeRegularAnswersAsResolve(t *testing.T) {
	root, _ := fixture(t)
	fast, general := newHandler(t, root), generalOnly(t, root)
	var targets []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		if err != nil || rel == "large.bin" {
			return nil
		}
		u := (&url.URL{Path: "/" + filepath.ToSlash(rel)}).EscapedPath()
		if rel == "." {
			u = "/"
		}
		targets = append(targets, u, strings.TrimSuffix(u, "/")+"/")
		return nil
	})
	first := do(t, general, "GET", "/hello.txt")
	variants := [][]string{
		nil,
		{"Range: bytes=1-3"},
		{"Range: bytes=0-0,-2"},
		{"Range: bytes=100-200"},
		{"If-None-Match: " + first.Header().Get("Etag")},
		{"If-Modified-Since: " + first.Header().Get("Last-Modified")},
	}
	for _, target := range targets {
		for _, method := range []string{"GET", "HEAD"} {
			for _, header := range variants {
				a := do(t, fast, method, target, header...)
				b := do(t, general, method, target, header...)
				ah, bh := a.Header().Clone(), b.Header().Clone()
				ab, bb := body(a), body(b)
				if strings.HasPrefix(ah.Get("Content-Type"), "multipart/byteranges") {
					// The boundary is random.
					ab = strings.ReplaceAll(ab, strings.TrimPrefix(ah.Get("Content-Type"), "multipart/byteranges; boundary="), "B")
					bb = strings.ReplaceAll(bb, strings.TrimPrefix(bh.Get("Content-Type"), "multipart/byteranges; boundary="), "B")
					ah.Del("Content-Type")
					bh.Del("Content-Type")
					ah.Del("Content-Length")
					bh.Del("Content-Length")
				}
				if a.Code != b.Code || ab != bb || !equalHeader(ah, bh) {
					t.Errorf("%s %s %q:\nshort way   %d %v %.80q\ngeneral way %d %v %.80q",
						method, target, header, a.Code, ah, ab, b.Code, bh, bb)
				}
			}
		}
	}
}

func equalHeader(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}

// TestServeRegularRootUnopenable: when the root's descriptor cannot be
// had (here the root is closed before the first request), every request
// takes the general way.
func TestServeRegularRootUnopenable(t *testing.T) {
	root, _ := fixture(t)
	h := newHandler(t, root)
	h.Root.Close()
	if h.serveRegular(httptest.NewRecorder(), httptest.NewRequest("GET", "/hello.txt", nil), "hello.txt", "hello.txt") {
		t.Errorf("served through a closed root")
	}
}
