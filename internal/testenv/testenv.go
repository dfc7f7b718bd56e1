// Package testenv gates the tests that need root and a real containerd.
//
// Without root those tests skip with a clear message. The README's test
// command sets CGIBOX_INTEGRATION=require when it runs as root; a skip then
// becomes a failure, so CI can never pass without the integration tests.
package testenv

import (
	"os"
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
