// Package testenv gates the tests that need root and a real containerd.
//
// Without root those tests skip with a clear message. The README's test
// command sets CGIBOX_INTEGRATION=require when it runs as root; a skip then
// becomes a failure, so CI can never pass without the integration tests.
package testenv

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Required reports whether the integration tests must run.
func Required() bool { return os.Getenv("CGIBOX_INTEGRATION") == "require" }

// Skip skips t with reason, or fails it when integration tests are required.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if Required() {
		t.Fatalf("integration test cannot run: %s (CGIBOX_INTEGRATION=require)", reason)
	}
	t.Skipf("integration test skipped: %s", reason)
}

// RequireRoot skips t (see Skip) unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root (run the README's test command as root)")
	}
}

// Reexec returns a command that runs this test binary again, with args, as
// uid and gid and no supplementary groups: the standard way to test
// something as another user (for cgibox, nobody, 65534) in a process of its
// own. It needs root (see RequireRoot). The binary is run from a copy that
// every user may execute, since go test keeps its own in a directory only
// its user can enter, and TMPDIR names a directory uid owns, so that
// t.TempDir works in the child. The child's working directory is the
// test's.
func Reexec(t testing.TB, uid, gid uint32, args ...string) *exec.Cmd {
	t.Helper()
	RequireRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("re-executing the test binary: %v", err)
	}
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tmp")
	bin := filepath.Join(dir, filepath.Base(exe))
	// t.TempDir's own parent is made private; open both for uid.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatalf("re-executing the test binary: %v", err)
		}
	}
	if err := copyFile(bin, exe, 0o755); err != nil {
		t.Fatalf("re-executing the test binary: %v", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatalf("re-executing the test binary: %v", err)
	}
	if err := os.Chown(tmp, int(uid), int(gid)); err != nil {
		t.Fatalf("re-executing the test binary: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	return cmd
}

func copyFile(dst, src string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return out.Close()
}
