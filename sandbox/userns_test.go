package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fakeProc makes a proc tree with what kernelUserNamespaces reads: the
// user namespace link when ns, and max_user_namespaces when max is not "".
func fakeProc(t *testing.T, ns bool, max string) string {
	t.Helper()
	proc := t.TempDir()
	if ns {
		if err := os.MkdirAll(filepath.Join(proc, "self", "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("user:[4026531837]", filepath.Join(proc, "self", "ns", "user")); err != nil {
			t.Fatal(err)
		}
		// The link of the real proc resolves; a fake one needs a target.
		if err := os.WriteFile(filepath.Join(proc, "self", "ns", "user:[4026531837]"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if max != "" {
		if err := os.MkdirAll(filepath.Join(proc, "sys", "user"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, "sys", "user", "max_user_namespaces"), []byte(max), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return proc
}

func TestKernelUserNamespaces(t *testing.T) {
	tests := []struct {
		name string
		ns   bool
		max  string
		want string // in the error; "" for none
	}{
		{"available", true, "15000\n", ""},
		{"forbidden", true, "0\n", "max_user_namespaces is 0"},
		{"not built in", false, "", "the kernel has no user namespaces"},
		{"no limit file", true, "", "cannot tell"},
		{"garbage", true, "many\n", "cannot tell"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := kernelUserNamespaces(fakeProc(t, tt.ns, tt.max))
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("kernelUserNamespaces(ns %v, max %q) = %v, want an error containing %q", tt.ns, tt.max, err, tt.want)
			}
		})
	}
	if err := kernelUserNamespaces("/proc"); err != nil {
		t.Logf("this host: %v", err)
	}
}

func TestSearchableByOthers(t *testing.T) {
	base := t.TempDir()
	if err := os.Chmod(filepath.Dir(base), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(base, "open", "state")
	closed := filepath.Join(base, "closed", "state")
	for _, d := range []string{open, closed} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Dir(closed), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := searchableByOthers(open); err != nil {
		t.Errorf("searchableByOthers(%s) = %v, want nil (every directory 0711)", open, err)
	}
	err := searchableByOthers(open, closed)
	if err == nil || !strings.Contains(err.Error(), "cannot search "+filepath.Dir(closed)+" (mode 0700)") ||
		!strings.Contains(err.Error(), "chmod o+x "+filepath.Dir(closed)) {
		t.Errorf("searchableByOthers(%s) = %v, want an error naming %s, its mode and the fix", closed, err, filepath.Dir(closed))
	}
	// What New decides from: a private daemon's state below a data
	// directory only root may enter.
	if err := userNamespaceSupport(closed, ""); err == nil || !strings.Contains(err.Error(), filepath.Dir(closed)) {
		t.Errorf("userNamespaceSupport(%s) = %v, want the closed directory named", closed, err)
	}
}

// TestMakeMountPoints: what the runtime will mount on is created in the
// rootfs, below the rootfs even through the image's symlinks, as a file
// for a bind mount of a file; what exists or lies below an earlier mount
// is left alone.
func TestMakeMountPoints(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	launcher := filepath.Join(t.TempDir(), "cgibox")
	if err := os.WriteFile(launcher, []byte("launcher"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"proc", "usr/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// An image whose /srv points out of it, absolutely and relatively.
	if err := os.Symlink(outside, filepath.Join(root, "srv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../.."+outside, filepath.Join(root, "opt")); err != nil {
		t.Fatal(err)
	}
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm"},
		{Destination: "/usr/lib/cgi-bin", Type: "bind", Source: t.TempDir()},
		{Destination: "/srv/www", Type: "bind", Source: t.TempDir()},
		{Destination: "/opt/www", Type: "bind", Source: t.TempDir()},
		{Destination: LauncherPath, Type: "bind", Source: launcher},
	}
	if err := makeMountPoints(root, mounts); err != nil {
		t.Fatalf("makeMountPoints: %v", err)
	}
	for p, dir := range map[string]bool{
		"proc": true, "dev": true, "usr/lib/cgi-bin": true, LauncherPath[1:]: false,
		strings.TrimPrefix(outside, "/") + "/www": true, // below root, where the link points inside it
	} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil || fi.IsDir() != dir || !dir && fi.Size() != 0 {
			t.Errorf("mount point %s: %v, %v; want a directory %v (else an empty file)", p, fi, err, dir)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "dev", "shm")); err == nil {
		t.Errorf("/dev/shm created in the rootfs; the /dev tmpfs provides it")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("makeMountPoints created %v outside the rootfs, through the image's symlinks", entries)
	}
}
