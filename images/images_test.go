package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestRef(t *testing.T) {
	if got, want := Ref("busybox"), "cgibox.local/busybox:latest"; got != want {
		t.Errorf("Ref(busybox) = %q, want %q", got, want)
	}
}

// buildBusybox builds the image once per test binary run.
func buildBusybox(t *testing.T) []byte {
	t.Helper()
	var archive, progress bytes.Buffer
	if err := Build(context.Background(), "busybox", &archive, &progress); err != nil {
		t.Fatalf("Build(busybox): %v\nprogress:\n%s", err, progress.String())
	}
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) < 4 {
		t.Errorf("progress has %d lines, want a line per step:\n%s", len(lines), progress.String())
	}
	return archive.Bytes()
}

func TestBuildBusybox(t *testing.T) {
	archive := buildBusybox(t)
	img, err := tarball.Image(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(archive)), nil
	}, nil)
	if err != nil {
		t.Fatalf("archive is not a docker-save tarball: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65534:65534" {
		t.Errorf("config user = %q, want 65534:65534", cf.Config.User)
	}
	for _, k := range []string{LabelImage, LabelRecipeSHA256, LabelPackage + ".busybox-static"} {
		if cf.Config.Labels[k] == "" {
			t.Errorf("label %s missing; labels: %v", k, cf.Config.Labels)
		}
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	bodies := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := "/" + strings.TrimSuffix(h.Name, "/")
		files[name] = h
		if h.Typeflag == tar.TypeReg && h.Size < 4096 {
			b, _ := io.ReadAll(tr)
			bodies[name] = string(b)
		}
		if h.Mode&0o6000 != 0 {
			t.Errorf("%s has setuid/setgid mode %o", name, h.Mode)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want 0:0", name, h.Uid, h.Gid)
		}
	}
	tests := []struct {
		path     string
		typeflag byte
		mode     int64
		link     string
	}{
		{"/bin/busybox", tar.TypeReg, 0o755, ""},
		{"/bin/sh", tar.TypeSymlink, 0o777, "/bin/busybox"},
		{"/usr/bin/env", tar.TypeSymlink, 0o777, "/bin/busybox"},
		{"/bin/cat", tar.TypeSymlink, 0o777, "/bin/busybox"},
		{"/tmp", tar.TypeDir, 0o1777, ""},
		{"/proc", tar.TypeDir, 0o555, ""},
		{"/dev", tar.TypeDir, 0o755, ""},
		{"/sys", tar.TypeDir, 0o555, ""},
		{"/www", tar.TypeDir, 0o755, ""},
		{"/etc/passwd", tar.TypeReg, 0o644, ""},
		{"/etc/group", tar.TypeReg, 0o644, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			h, ok := files[tt.path]
			if !ok {
				t.Fatalf("%s missing from the layer", tt.path)
			}
			if h.Typeflag != tt.typeflag || h.Mode != tt.mode || h.Linkname != tt.link {
				t.Errorf("%s: got type %c mode %o link %q, want type %c mode %o link %q",
					tt.path, h.Typeflag, h.Mode, h.Linkname, tt.typeflag, tt.mode, tt.link)
			}
		})
	}
	if !strings.Contains(bodies["/etc/passwd"], "nobody:x:65534:65534:") || !strings.HasPrefix(bodies["/etc/passwd"], "root:x:0:0:") {
		t.Errorf("/etc/passwd = %q, want root and nobody (65534)", bodies["/etc/passwd"])
	}
	if !strings.Contains(bodies["/etc/group"], "nobody:x:65534:") {
		t.Errorf("/etc/group = %q, want nobody (65534)", bodies["/etc/group"])
	}
}

func TestBuildIsReproducible(t *testing.T) {
	a, b := buildBusybox(t), buildBusybox(t)
	if !bytes.Equal(a, b) {
		t.Errorf("two builds from the same inputs differ (%d vs %d bytes)", len(a), len(b))
	}
}

func TestBuildUnknown(t *testing.T) {
	err := Build(context.Background(), "nonesuch", io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "no recipe") {
		t.Errorf("Build(nonesuch) = %v, want a no-recipe error", err)
	}
}

func TestParseRecipe(t *testing.T) {
	tests := []struct {
		name, recipe, wantErr string
	}{
		{"ok", "name x\ndir /tmp 1777\n", ""},
		{"setuid", "name x\ncopy /bin/su /bin/su 4755\n", "setuid"},
		{"setgid dir", "name x\ndir /d 2755\n", "setuid"},
		{"relative path", "name x\ndir tmp 0755\n", "clean absolute"},
		{"dotdot", "name x\nfile /etc/../x 0644 passwd\n", "clean absolute"},
		{"unknown", "name x\nrun rm -rf /\n", "unknown directive"},
		{"arity", "name x\ndir /tmp\n", "takes 2 arguments"},
		{"no name", "dir /tmp 0755\n", "no name"},
		{"bad env", "name x\nenv NOEQUALS\n", "KEY=VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseRecipe([]byte(tt.recipe))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("parseRecipe(%q) = %v, want no error", tt.recipe, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("parseRecipe(%q) = %v, want error containing %q", tt.recipe, err, tt.wantErr)
			}
		})
	}
}

func TestMissingHostFileNamesPackage(t *testing.T) {
	r, err := parseRecipe([]byte("name x\npackage busybox-static\ncopy /nonexistent/busybox /bin/busybox 0755\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = r.layer(context.Background(), recipes, func(string, ...any) {})
	if err == nil || !strings.Contains(err.Error(), "apt-get install busybox-static") {
		t.Errorf("layer() with a missing host file = %v, want an error naming the package", err)
	}
}
