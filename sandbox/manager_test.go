package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgibox/cgibox/internal/testenv"
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
				testenv.Skip(t, tt.path+" is not on this host (scripts/test.sh installs busybox-static)")
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

// TestLaunchRefusesOtherUsers runs the launcher in a child process — this
// test binary again, as cmd/cgibox's main runs it (see TestMain) — with a
// frame whose script prints a mark. Under any identity but 65534:65534 it
// must refuse and exit 127 with the script never run; were the guard gone,
// the child would exec the script, which the test sees, instead of the
// test process itself being replaced. As root the test also sets the
// identities itself, nobody's included, so a guard that refused everyone
// would fail it too.
func TestLaunchRefusesOtherUsers(t *testing.T) {
	const mark = "THE-SCRIPT-RAN"
	frame, err := EncodeFrame([]string{"/bin/echo", mark}, nil, "/")
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	tests := []struct {
		name     string
		root     bool // sets uid and gid, which needs root
		uid, gid uint32
	}{
		{name: "the test's own identity", uid: uid, gid: gid},
		{name: "root", root: true, uid: 0, gid: 0},
		{name: "uid 65534, gid 0", root: true, uid: launchUID, gid: 0},
		{name: "uid 0, gid 65534", root: true, uid: 0, gid: launchGID},
		{name: "uid 1000, gid 65534", root: true, uid: 1000, gid: launchGID},
		{name: "nobody", root: true, uid: launchUID, gid: launchGID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cmd *exec.Cmd
			if tt.root {
				cmd = testenv.Reexec(t, tt.uid, tt.gid, LaunchCommand)
			} else {
				exe, err := os.Executable()
				if err != nil {
					t.Fatal(err)
				}
				cmd = exec.Command(exe, LaunchCommand)
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(frame), &stdout, &stderr
			err := cmd.Run()
			code := cmd.ProcessState.ExitCode()
			if tt.uid == launchUID && tt.gid == launchGID {
				if err != nil || stdout.String() != mark+"\n" {
					t.Errorf("launcher as %d:%d: %v, stdout %q, stderr %q; want the script run, printing %q",
						tt.uid, tt.gid, err, stdout.String(), stderr.String(), mark)
				}
				return
			}
			want := fmt.Sprintf("cgibox launcher: refusing to run as uid %d gid %d: must be 65534:65534\n", tt.uid, tt.gid)
			if code != 127 || stderr.String() != want || stdout.Len() != 0 {
				t.Errorf("launcher as %d:%d: exit %d, stdout %q, stderr %q; want exit 127, no output and stderr %q",
					tt.uid, tt.gid, code, stdout.String(), stderr.String(), want)
			}
		})
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
