package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheckStatic(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, wantErr string
	}{
		{"dynamic", "/bin/ls", "CGO_ENABLED=0"},
		{"static", "/bin/busybox", ""},
		{"not ELF", notELF, "not an ELF"},
		{"missing", filepath.Join(dir, "nonesuch"), "not an ELF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := os.Stat(tt.path); err != nil && tt.name != "missing" {
				t.Skipf("%s not on this host", tt.path)
			}
			err := checkStatic(tt.path)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("checkStatic(%s) = %v, want nil", tt.path, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("checkStatic(%s) = %v, want an error containing %q", tt.path, err, tt.wantErr)
			}
		})
	}
}

func TestNewRejectsDynamicLauncher(t *testing.T) {
	_, err := New(context.Background(), WithLauncher("/bin/ls"), WithAddress("/nonexistent.sock"))
	if err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("New with a dynamic launcher = %v, want a CGO_ENABLED=0 error", err)
	}
}

func TestStartDaemonNamesMissingPackage(t *testing.T) {
	// A PATH with containerd and its shim but no runc, then an empty one.
	withShim := t.TempDir()
	for _, b := range []string{"containerd", "containerd-shim-runc-v2"} {
		if err := os.WriteFile(filepath.Join(withShim, b), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, path, want string
	}{
		{"no containerd", t.TempDir(), "apt-get install containerd"},
		{"no runc", withShim, "apt-get install runc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATH", tt.path)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			d, err := StartDaemon(ctx, t.TempDir(), nil)
			if err == nil {
				d.Stop(ctx)
			}
			if !errors.Is(err, ErrUnavailable) || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("StartDaemon with PATH=%s = %v, want ErrUnavailable naming %q", tt.path, err, tt.want)
			}
		})
	}
}

func TestLaunchRefusesOtherUsers(t *testing.T) {
	if os.Getuid() == launchUID {
		t.Skip("runs as 65534")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	frame, _ := EncodeFrame([]string{"/bin/true"}, nil, "/")
	w.Write(frame)
	w.Close()
	err = Launch(r)
	if err == nil || !strings.Contains(err.Error(), "refusing to run as uid") {
		t.Errorf("Launch as uid %d = %v, want a refusal", os.Getuid(), err)
	}
}

func TestLimitsDefaults(t *testing.T) {
	d := DefaultLimits()
	got := Limits{Wall: time.Second, CPU: 2}.withDefaults(d)
	want := d
	want.Wall, want.CPU = time.Second, 2
	if got != want {
		t.Errorf("withDefaults = %+v, want %+v", got, want)
	}
	if d.Wall != 30*time.Second || d.Memory != 128<<20 || d.Pids != 64 || d.CPU != 0.5 || d.Tmp != 16<<20 ||
		d.NoFile != 256 || d.FileSize != 16<<20 || d.KillGrace != 500*time.Millisecond {
		t.Errorf("DefaultLimits() = %+v, not the documented defaults", d)
	}
}
