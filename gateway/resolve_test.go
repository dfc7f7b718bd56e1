package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// resolveFixture builds a site root with a CGI directory and returns it opened
// as an os.Root. Modes are set with Chmod so the umask does not matter.
func resolveFixture(t *testing.T) *os.Root {
	t.Helper()
	top := t.TempDir()
	site := filepath.Join(top, "site")

	dirs := map[string]os.FileMode{
		"site":                0o755,
		"site/cgi-bin":        0o755,
		"site/cgi-bin/sub":    0o755,
		"site/cgi-bin/closed": 0o750,
		"site/cgi-bin/wwdir":  0o777,
		"site/cgi-bin/sticky": 0o1777,
		"site/htbin-ww":       0o777,
	}
	files := map[string]os.FileMode{
		"secret.sh":                  0o755, // outside the site root
		"site/index.html":            0o644,
		"site/run.sh":                0o755, // in the site, outside the CGI dir
		"site/cgi-bin/env.sh":        0o755,
		"site/cgi-bin/a b.sh":        0o755,
		"site/cgi-bin/sub/deep.sh":   0o755,
		"site/cgi-bin/data.txt":      0o644,
		"site/cgi-bin/noother.sh":    0o750,
		"site/cgi-bin/onlyx.sh":      0o711,
		"site/cgi-bin/ww.sh":         0o757,
		"site/cgi-bin/suid.sh":       0o755 | os.ModeSetuid,
		"site/cgi-bin/sgid.sh":       0o755 | os.ModeSetgid,
		"site/cgi-bin/closed/x.sh":   0o755,
		"site/cgi-bin/wwdir/x.sh":    0o755,
		"site/cgi-bin/sticky/x.sh":   0o755,
		"site/htbin-ww/x.sh":         0o755,
		"site/cgi-bin/sub/other.txt": 0o644,
	}
	links := map[string]string{
		"site/cgi-bin/link-in.sh":    "env.sh",
		"site/cgi-bin/link-sub":      "sub",
		"site/cgi-bin/link-dotdot":   "sub/../env.sh",
		"site/cgi-bin/link-chain":    "link-in.sh",
		"site/cgi-bin/link-out":      "../index.html",
		"site/cgi-bin/link-run":      "../run.sh",
		"site/cgi-bin/link-host":     "../../secret.sh",
		"site/cgi-bin/link-abs":      "/bin/sh",
		"site/cgi-bin/link-abs-dir":  "/etc",
		"site/cgi-bin/link-parent":   "..",
		"site/cgi-bin/link-self":     ".",
		"site/cgi-bin/link-dangling": "nothing-here",
		"site/cgi-bin/link-notdir":   "env.sh/",
		"site/cgi-bin/link-through":  "env.sh/x",
		"site/cgi-bin/loop1":         "loop2",
		"site/cgi-bin/loop2":         "loop1",
		"site/cgi-bin/sub/up.sh":     "../env.sh",
		"site/cgi-bin/sub/upout":     "../../index.html",
		"site/cgi-bin/sub/updir":     "../sub/../..",
		"site/cgi-bin/sub/closed":    "../closed",
	}
	for _, d := range []string{"site", "site/cgi-bin", "site/cgi-bin/sub", "site/cgi-bin/closed", "site/cgi-bin/wwdir", "site/cgi-bin/sticky", "site/htbin-ww"} {
		if err := os.Mkdir(filepath.Join(top, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for f, mode := range files {
		p := filepath.Join(top, f)
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho hi\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(top, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(site, "cgi-bin/fifo"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(site, "cgi-bin/fifo"), 0o755); err != nil {
		t.Fatal(err)
	}
	for d, mode := range dirs {
		if err := os.Chmod(filepath.Join(top, d), mode); err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(site)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return root
}

func TestResolveScript(t *testing.T) {
	root := resolveFixture(t)
	tests := []struct {
		cgiDir, path string
		want         script
		wantErr      error  // nil: success
		wantDetail   string // substring of the error, for the log
	}{
		// Found, with and without PATH_INFO.
		{cgiDir: "/cgi-bin", path: "/cgi-bin/env.sh",
			want: script{Dir: "/cgi-bin", Name: "/cgi-bin/env.sh", Rel: "env.sh"}},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/env.sh/",
			want: script{Dir: "/cgi-bin", Name: "/cgi-bin/env.sh", Rel: "env.sh", PathInfo: "/"}},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/env.sh/a/b c/",
			want: script{Dir: "/cgi-bin", Name: "/cgi-bin/env.sh", Rel: "env.sh", PathInfo: "/a/b c/"}},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/a b.sh/x",
			want: script{Dir: "/cgi-bin", Name: "/cgi-bin/a b.sh", Rel: "a b.sh", PathInfo: "/x"}},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/sub/deep.sh/x",
			want: script{Dir: "/cgi-bin", Name: "/cgi-bin/sub/deep.sh", Rel: "sub/deep.sh", PathInfo: "/x"}},
		// A CGI directory nested below another one.
		{cgiDir: "/cgi-bin/sub", path: "/cgi-bin/sub/deep.sh",
			want: script{Dir: "/cgi-bin/sub", Name: "/cgi-bin/sub/deep.sh", Rel: "deep.sh"}},
		// The walk stops at the first non-directory, even if later parts exist.
		{cgiDir: "/cgi-bin", path: "/cgi-bin/env.sh/sub/deep.sh",
			want: script{Dir: "/cgi-bin", Name: "/cgi-bin/env.sh", Rel: "env.sh", PathInfo: "/sub/deep.sh"}},

		// Symlinks that stay inside the CGI directory: allowed, Rel resolved.
		{cgiDir: "/cgi-bin", path: "/cgi-bin/link-in.sh/p",
			want: script{Dir: "/cgi-bin", Name: "/cgi-bin/link-in.sh", Rel: "env.sh", PathInfo: "/p"}},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/link-chain",
			want: script{Dir: "/cgi-bin", Name: "/cgi-bin/link-chain", Rel: "env.sh"}},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/link-sub/deep.sh",
			want: script{Dir: "/cgi-bin", Name: "/cgi-bin/link-sub/deep.sh", Rel: "sub/deep.sh"}},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/link-dotdot",
			want: script{Dir: "/cgi-bin", Name: "/cgi-bin/link-dotdot", Rel: "env.sh"}},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/sub/up.sh",
			want: script{Dir: "/cgi-bin", Name: "/cgi-bin/sub/up.sh", Rel: "env.sh"}},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/link-self/env.sh",
			want: script{Dir: "/cgi-bin", Name: "/cgi-bin/link-self/env.sh", Rel: "env.sh"}},

		// Missing, or naming a directory: 404.
		{cgiDir: "/cgi-bin", path: "/cgi-bin/missing.sh", wantErr: errNoScript},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/missing/env.sh", wantErr: errNoScript},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/sub/missing", wantErr: errNoScript},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/", wantErr: errNoScript, wantDetail: "names a directory"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/sub", wantErr: errNoScript, wantDetail: "names a directory"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/sub/", wantErr: errNoScript, wantDetail: "names a directory"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/link-sub", wantErr: errNoScript, wantDetail: "names a directory"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/link-dangling", wantErr: errNoScript},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/link-notdir", wantErr: errNoScript},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/link-through", wantErr: errNoScript},
		{cgiDir: "/htbin", path: "/htbin/env.sh", wantErr: errNoScript, wantDetail: "CGI directory"},
		{cgiDir: "/index.html", path: "/index.html/x", wantErr: errNoScript, wantDetail: "not a directory"},
		// Not cleaned or not under the CGI directory: refused, never interpreted.
		{cgiDir: "/cgi-bin", path: "/cgi-bin/../run.sh", wantErr: errNoScript, wantDetail: "malformed"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/./env.sh", wantErr: errNoScript, wantDetail: "malformed"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin//env.sh", wantErr: errNoScript, wantDetail: "malformed"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/env.sh\x00", wantErr: errNoScript, wantDetail: "malformed"},
		{cgiDir: "/cgi-bin", path: "/cgi-binx/env.sh", wantErr: errNoScript},
		{cgiDir: "/cgi-bin", path: "/run.sh", wantErr: errNoScript},
		{cgiDir: "/cgi-bin/", path: "/cgi-bin/env.sh", wantErr: errNoScript},

		// File policy: 403 (SECURITY.md case 17).
		{cgiDir: "/cgi-bin", path: "/cgi-bin/data.txt", wantErr: errForbidden, wantDetail: "not executable"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/noother.sh", wantErr: errForbidden, wantDetail: "chmod o+rx"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/onlyx.sh", wantErr: errForbidden, wantDetail: "chmod o+rx"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/ww.sh", wantErr: errForbidden, wantDetail: "world-writable"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/suid.sh", wantErr: errForbidden, wantDetail: "setuid"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/sgid.sh", wantErr: errForbidden, wantDetail: "setgid"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/fifo", wantErr: errForbidden, wantDetail: "not a regular file"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/sub/other.txt/x", wantErr: errForbidden, wantDetail: "not executable"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/closed/x.sh", wantErr: errForbidden, wantDetail: "chmod o+x"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/sub/closed/x.sh", wantErr: errForbidden, wantDetail: "chmod o+x"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/wwdir/x.sh", wantErr: errForbidden, wantDetail: "world-writable"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/sticky/x.sh", wantErr: errForbidden, wantDetail: "world-writable"},
		{cgiDir: "/htbin-ww", path: "/htbin-ww/x.sh", wantErr: errForbidden, wantDetail: "world-writable"},
		// Symlinks out of the CGI directory: 403, whatever they point at.
		{cgiDir: "/cgi-bin", path: "/cgi-bin/link-out", wantErr: errForbidden, wantDetail: "leads out"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/link-run", wantErr: errForbidden, wantDetail: "leads out"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/link-host", wantErr: errForbidden, wantDetail: "leads out"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/link-abs", wantErr: errForbidden, wantDetail: "leads out"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/link-abs-dir/passwd", wantErr: errForbidden, wantDetail: "leads out"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/link-parent/run.sh", wantErr: errForbidden, wantDetail: "leads out"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/sub/upout", wantErr: errForbidden, wantDetail: "leads out"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/sub/updir/run.sh", wantErr: errForbidden, wantDetail: "leads out"},
		{cgiDir: "/cgi-bin", path: "/cgi-bin/loop1", wantErr: errForbidden, wantDetail: "too many levels"},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.cgiDir+" "+tt.path, "/", "_"), func(t *testing.T) {
			got, err := resolveScript(root, tt.cgiDir, tt.path)
			if tt.wantErr == nil {
				if err != nil || got != tt.want {
					t.Fatalf("resolveScript(%q, %q)\n got %+v, %v\nwant %+v, nil", tt.cgiDir, tt.path, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || got != (script{}) {
				t.Fatalf("resolveScript(%q, %q)\n got %+v, %v\nwant error %v", tt.cgiDir, tt.path, got, err, tt.wantErr)
			}
			if other := map[error]error{errNoScript: errForbidden, errForbidden: errNoScript}[tt.wantErr]; errors.Is(err, other) {
				t.Fatalf("resolveScript(%q, %q) = %v: is both %v and %v", tt.cgiDir, tt.path, err, tt.wantErr, other)
			}
			if !strings.Contains(err.Error(), tt.wantDetail) {
				t.Fatalf("resolveScript(%q, %q) = %v, want detail %q", tt.cgiDir, tt.path, err, tt.wantDetail)
			}
		})
	}
}

// A CGI directory that is itself a symlink out of the site root must not be
// followed: os.Root refuses it, and it is neither a script nor a 404.
func TestResolveScriptCGIDirOutsideRoot(t *testing.T) {
	top := t.TempDir()
	for _, d := range []string{"site", "outside"} {
		if err := os.Mkdir(filepath.Join(top, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(top, "outside/env.sh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside", filepath.Join(top, "site/cgi-bin")); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(filepath.Join(top, "site"))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	got, err := resolveScript(root, "/cgi-bin", "/cgi-bin/env.sh")
	if err == nil || errors.Is(err, errNoScript) {
		t.Fatalf("resolveScript through a CGI dir linking out of the root = %+v, %v; want a (500) error", got, err)
	}
}

func TestCleanPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/", "/"},
		{"", "/"},
		{"/a/b", "/a/b"},
		{"/a/b/", "/a/b/"},
		{"//cgi-bin//s", "/cgi-bin/s"},
		{"/cgi-bin/./s", "/cgi-bin/s"},
		{"/x/../cgi-bin/s", "/cgi-bin/s"},
		{"/../../etc", "/etc"},
		{"a/b", "/a/b"},
		{"/a/..", "/"},
		{"/a/../", "/"},
		{"///", "/"},
	}
	for _, tt := range tests {
		if got := cleanPath(tt.in); got != tt.want {
			t.Errorf("cleanPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
