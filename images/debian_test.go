package images

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHostMirror(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string // relative to etc/apt
		suite   string
		want    string
		wantErr bool
	}{
		{"one-line", map[string]string{
			"sources.list": "# comment\ndeb-src http://src.invalid/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://one.invalid/debian bookworm main contrib\n",
		}, "bookworm", "http://one.invalid/debian", false},
		{"deb822 after the security suite", map[string]string{
			"sources.list.d/debian.sources": "Types: deb\nURIs: http://sec.invalid/debian-security\nSuites: bookworm-security\nComponents: main\n\n" +
				"Types: deb deb-src\n# a comment\nURIs: http://main.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n",
		}, "bookworm", "http://main.invalid/debian", false},
		{"disabled stanza skipped", map[string]string{
			"sources.list.d/a.sources": "Enabled: no\nTypes: deb\nURIs: http://off.invalid/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://on.invalid/debian\nSuites: bookworm\n",
		}, "bookworm", "http://on.invalid/debian", false},
		{"other extensions ignored", map[string]string{
			"sources.list.d/x.sources.disabled": "Types: deb\nURIs: http://no.invalid/debian\nSuites: bookworm\n",
			"sources.list.d/y.list":             "deb http://yes.invalid/debian bookworm main\n",
		}, "bookworm", "http://yes.invalid/debian", false},
		{"sources.list first", map[string]string{
			"sources.list":             "deb http://first.invalid/debian bookworm main\n",
			"sources.list.d/z.list":    "deb http://second.invalid/debian bookworm main\n",
			"sources.list.d/a.sources": "Types: deb\nURIs: http://third.invalid/debian\nSuites: bookworm\n",
		}, "bookworm", "http://first.invalid/debian", false},
		{"continuation line", map[string]string{
			"sources.list.d/c.sources": "Types: deb\nURIs:\n http://cont.invalid/debian\nSuites: bookworm\n",
		}, "bookworm", "http://cont.invalid/debian", false},
		{"no matching suite", map[string]string{
			"sources.list": "deb http://old.invalid/debian bullseye main\n",
		}, "bookworm", "", true},
		{"nothing", nil, "bookworm", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "sources.list.d"), 0o755)
			for n, b := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(b), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := HostMirror(dir, tt.suite)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("HostMirror(%v, %s) = %q, %v; want %q (error: %v)", tt.files, tt.suite, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestWriteTree checks the layer of a tree: set-id bits cleared, hard links
// kept, /dev contents left out, symlinks not followed.
func TestWriteTree(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "dev/pts"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "var/mail"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr/bin/su"), []byte("su"), 0o755))
	must(os.Chmod(filepath.Join(root, "usr/bin/su"), 0o755|os.ModeSetuid))
	must(os.WriteFile(filepath.Join(root, "usr/bin/wall"), []byte("wall"), 0o755))
	must(os.Chmod(filepath.Join(root, "usr/bin/wall"), 0o755|os.ModeSetgid))
	must(os.Chmod(filepath.Join(root, "var/mail"), 0o775|os.ModeSetgid))
	must(os.WriteFile(filepath.Join(root, "usr/bin/perl"), []byte("perl"), 0o755))
	must(os.Link(filepath.Join(root, "usr/bin/perl"), filepath.Join(root, "usr/bin/perl5.36")))
	must(os.Symlink("/etc/shadow", filepath.Join(root, "usr/bin/link")))
	must(os.WriteFile(filepath.Join(root, "dev/null"), []byte("not a device"), 0o644))

	var buf bytes.Buffer
	st, err := writeTree(&buf, root, time.Unix(1e9, 0))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*tar.Header{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
	}
	if strings.Join(st.cleared, " ") != "/usr/bin/su /usr/bin/wall" {
		t.Errorf("cleared = %q, want su and wall", st.cleared)
	}
	tests := []struct {
		name     string
		typeflag byte
		mode     int64
		link     string
	}{
		{"usr/bin/su", tar.TypeReg, 0o755, ""},
		{"usr/bin/wall", tar.TypeReg, 0o755, ""},
		{"var/mail/", tar.TypeDir, 0o775, ""},
		{"usr/bin/perl", tar.TypeReg, 0o755, ""},
		{"usr/bin/perl5.36", tar.TypeLink, 0o755, "usr/bin/perl"},
		{"usr/bin/link", tar.TypeSymlink, 0o777, "/etc/shadow"},
		{"dev/", tar.TypeDir, 0o755, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, ok := got[tt.name]
			if !ok {
				t.Fatalf("%s missing; have %d entries", tt.name, len(got))
			}
			if h.Typeflag != tt.typeflag || h.Mode != tt.mode || h.Linkname != tt.link {
				t.Errorf("%s: type %c mode %o link %q; want type %c mode %o link %q",
					tt.name, h.Typeflag, h.Mode, h.Linkname, tt.typeflag, tt.mode, tt.link)
			}
		})
	}
	for _, absent := range []string{"dev/null", "dev/pts/"} {
		if _, ok := got[absent]; ok {
			t.Errorf("%s is in the layer; /dev contents must be left out", absent)
		}
	}
	for n, h := range got {
		if h.Mode&0o6000 != 0 {
			t.Errorf("%s keeps set-id mode %o", n, h.Mode)
		}
	}
}

func TestRemovePathsStaysInside(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside")
	root := filepath.Join(dir, "rootfs")
	os.MkdirAll(outside, 0o755)
	os.MkdirAll(filepath.Join(root, "var/cache/apt"), 0o755)
	os.WriteFile(filepath.Join(outside, "keep"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(root, "var/cache/apt/pkgcache.bin"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(root, "var/cache/apt/keep.txt"), []byte("x"), 0o644)
	// An absolute symlink in the tree must not lead the removal out.
	os.Symlink(outside, filepath.Join(root, "escape"))
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n, err := removePaths(r, []string{"/var/cache/apt/*.bin", "/escape/*", "/nonexistent/*"})
	if err == nil {
		t.Errorf("removePaths through an escaping symlink succeeded (removed %d)", n)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Errorf("a file outside the tree was removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "var/cache/apt/pkgcache.bin")); err == nil {
		t.Errorf("pkgcache.bin was not removed")
	}
	if _, err := os.Stat(filepath.Join(root, "var/cache/apt/keep.txt")); err != nil {
		t.Errorf("keep.txt was removed: %v", err)
	}
}

func TestHasNobody(t *testing.T) {
	tests := []struct {
		passwd, group string
		want          bool
	}{
		{"root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", "nogroup:x:65534:\n", true},
		{"nobody:x:65534:65534::/:/bin/false\n", "nobody:x:65534:\n", true},
		{"nobody:x:65534:65533::/:/bin/false\n", "nogroup:x:65534:\n", false},
		{"root:x:0:0::/root:/bin/sh\n", "nogroup:x:65534:\n", false},
		{"nobody:x:65534:65534::/:/bin/false\n", "root:x:0:\n", false},
	}
	for _, tt := range tests {
		if got := HasNobody([]byte(tt.passwd), []byte(tt.group)); got != tt.want {
			t.Errorf("HasNobody(%q, %q) = %v, want %v", tt.passwd, tt.group, got, tt.want)
		}
	}
}

func TestParseDebianRecipes(t *testing.T) {
	for _, name := range []string{"perl", "python"} {
		t.Run(name, func(t *testing.T) {
			rc, err := Open(name)
			if err != nil {
				t.Fatal(err)
			}
			if rc.r.debian == "" || len(rc.r.installs) == 0 || rc.r.user != "65534:65534" {
				t.Errorf("recipe %s: debian %q installs %q user %q", name, rc.r.debian, rc.r.installs, rc.r.user)
			}
			for _, must := range []string{"/var/lib/apt/lists/*", "/var/cache/apt/*"} {
				if !strings.Contains(strings.Join(rc.r.removes, " "), must) {
					t.Errorf("recipe %s does not remove %s", name, must)
				}
			}
		})
	}
	tests := []struct{ recipe, wantErr string }{
		{"name x\ninstall perl\n", "debian base"},
		{"name x\ndebian bookworm\napplets /bin/busybox\n", "applets"},
		{"name x\ndebian bookworm\nremove /var/*/x\n", "pattern only in its last"},
		{"name x\ndebian bookworm\ninstall Perl!\n", "not a Debian package"},
		{"name x\ndebian bookworm\ninstall\n", "one or more"},
	}
	for _, tt := range tests {
		t.Run(tt.recipe, func(t *testing.T) {
			_, err := parseRecipe([]byte(tt.recipe))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseRecipe(%q) = %v, want error containing %q", tt.recipe, err, tt.wantErr)
			}
		})
	}
}

// TestDebianSource: which suite and mirror a `debian bookworm` recipe is
// built from on the hosts users have, and what the error says where it
// cannot be decided.
func TestDebianSource(t *testing.T) {
	const (
		bookwormList = "deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian-security bookworm-security main\n"
		trixieDeb822 = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie trixie-updates\nComponents: main\n" +
			"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n" +
			"Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: trixie-security\nComponents: main\n"
		nobleDeb822 = "Types: deb\nURIs: http://archive.ubuntu.com/ubuntu/\nSuites: noble noble-updates noble-backports\n" +
			"Components: main restricted universe multiverse\nSigned-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n"
	)
	hosts := map[string]map[string]string{
		"debian12": {
			"os-release":       "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n",
			"apt/sources.list": bookwormList,
		},
		"debian13": {
			"os-release":                        "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nVERSION_ID=\"13\"\nVERSION_CODENAME=trixie\nID=debian\n",
			"apt/sources.list.d/debian.sources": trixieDeb822,
		},
		"ubuntu2404": {
			"os-release":                        "PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n",
			"apt/sources.list.d/ubuntu.sources": nobleDeb822,
		},
	}
	tests := []struct {
		host                string
		opts                Options
		suite, mirror, note string // note: a part of it
		errHas              []string
	}{
		{host: "debian12", suite: "bookworm", mirror: "http://deb.debian.org/debian"},
		{host: "debian13", suite: "trixie", mirror: "http://deb.debian.org/debian", note: "building from its own suite trixie"},
		{host: "debian13", opts: Options{Suite: "trixie"}, suite: "trixie", mirror: "http://deb.debian.org/debian"},
		{host: "debian13", opts: Options{Mirror: "http://m.invalid/debian"}, suite: "bookworm", mirror: "http://m.invalid/debian"},
		{host: "debian13", opts: Options{Suite: "bookworm"}, suite: "bookworm",
			errHas: []string{"no deb source for \"bookworm\"", "debian trixie", "--suite trixie", "--mirror URL"}},
		{host: "ubuntu2404", suite: "bookworm", errHas: []string{"ubuntu noble", "--mirror URL", "http://deb.debian.org/debian"}},
		{host: "ubuntu2404", opts: Options{Suite: "trixie", Mirror: "http://m.invalid/debian"}, suite: "trixie", mirror: "http://m.invalid/debian"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %+v", tt.host, tt.opts), func(t *testing.T) {
			etc := t.TempDir()
			for name, body := range hosts[tt.host] {
				p := filepath.Join(etc, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			suite, mirror, note, err := debianSource(etc, "bookworm", tt.opts)
			if suite != tt.suite || mirror != tt.mirror || !strings.Contains(note, tt.note) || (tt.note == "") != (note == "") {
				t.Errorf("debianSource = %q, %q, note %q; want %q, %q, note with %q", suite, mirror, note, tt.suite, tt.mirror, tt.note)
			}
			if (err != nil) != (len(tt.errHas) > 0) {
				t.Fatalf("debianSource error = %v, want one containing %q", err, tt.errHas)
			}
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

func TestCacheNameCarriesForeignSuite(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	if got := cacheName("perl", sha, "bookworm", "bookworm"); got != "perl-abababababababab.tar" {
		t.Errorf("cacheName for the recipe's suite = %q", got)
	}
	if got := cacheName("perl", sha, "trixie", "bookworm"); got != "perl-abababababababab-trixie.tar" {
		t.Errorf("cacheName for another suite = %q", got)
	}
}
