package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cgibox/cgibox/sandbox"
	containerd "github.com/containerd/containerd/v2/client"
)

func TestWriteChecks(t *testing.T) {
	tests := []struct {
		name   string
		checks []sandbox.Check
		want   string
	}{
		{"ok has no fix line", []sandbox.Check{{Name: "root", Status: sandbox.CheckOK, Detail: "running as root", Fix: "ignored"}},
			"OK    root: running as root\n1 checks: 0 failed, 0 warnings\n"},
		{"problems carry their fix", []sandbox.Check{
			{Name: "containerd", Status: sandbox.CheckFail, Detail: "not reachable", Fix: "apt-get install containerd"},
			{Name: "image perl", Status: sandbox.CheckWarn, Detail: "missing", Fix: "cgibox image build perl"},
		}, "FAIL  containerd: not reachable\n      fix: apt-get install containerd\n" +
			"WARN  image perl: missing\n      fix: cgibox image build perl\n2 checks: 1 failed, 1 warnings\n"},
		{"multi-line detail stays on one line", []sandbox.Check{{Name: "x", Status: sandbox.CheckWarn, Detail: "a\nb\tc"}},
			"WARN  x: a b c\n1 checks: 0 failed, 1 warnings\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			writeChecks(&b, tt.checks)
			if b.String() != tt.want {
				t.Errorf("writeChecks(%+v):\ngot:\n%s\nwant:\n%s", tt.checks, b.String(), tt.want)
			}
		})
	}
}

func TestDoctorFlagsForFix(t *testing.T) {
	tests := []struct {
		d    daemonFlags
		want string
	}{
		{daemonFlags{containerd: "auto", dataDir: "/var/lib/cgibox"}, ""},
		{daemonFlags{containerd: "/run/c.sock", dataDir: "/srv/d"}, " --containerd /run/c.sock --data-dir /srv/d"},
		{daemonFlags{containerd: "auto", dataDir: "/srv/100%"}, " --data-dir /srv/100%%"},
	}
	for _, tt := range tests {
		if got := tt.d.flagsForFix(); got != tt.want {
			t.Errorf("flagsForFix(%+v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// runDoctor runs the built binary's doctor and returns its output and exit
// code.
func runDoctor(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cgiboxBin, append([]string{"doctor"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("cgibox doctor %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// TestDoctorCommand runs `cgibox doctor` against the shared containerd: it
// names containerd's and runc's versions and exits 0 on this host.
func TestDoctorCommand(t *testing.T) {
	requireContainerd(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := containerd.New(containerdAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runcOut, err := exec.CommandContext(ctx, "runc", "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^runc version (\S+)`).FindSubmatch(runcOut)
	if m == nil {
		t.Fatalf("runc --version: no version in %q", runcOut)
	}
	dataDir := t.TempDir()
	out, stderr, code := runDoctor(t, "--containerd", containerdAddr, "--data-dir", dataDir)
	t.Logf("cgibox doctor:\n%s", out)
	if code != 0 {
		t.Errorf("cgibox doctor exited %d, want 0; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		"OK    containerd: containerd " + v.Version + " ",
		"OK    runtime: ",
		"runc " + string(m[1]),
		"OK    data directory: " + dataDir,
		"OK    launcher: ",
		"seccomp (cgibox): in force",
		"user namespaces: ",
		"image busybox: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("cgibox doctor output lacks %q", want)
		}
	}
	if strings.Contains(out, "FAIL") {
		t.Errorf("cgibox doctor reports a failure on the test host")
	}
	// A fix for a missing image names this daemon and data directory.
	for line := range strings.Lines(out) {
		if strings.Contains(line, "fix: cgibox image build") && !strings.Contains(line, "--containerd "+containerdAddr+" --data-dir "+dataDir) {
			t.Errorf("fix line %q does not repeat --containerd and --data-dir", line)
		}
	}
}

// TestDoctorFails: with a containerd socket nobody answers, the doctor
// says so with a fix and exits 1.
func TestDoctorFails(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "nobody.sock")
	out, stderr, code := runDoctor(t, "--containerd", sock, "--data-dir", filepath.Join(dir, "data"))
	if code != 1 {
		t.Errorf("cgibox doctor with %s exited %d, want 1; stderr:\n%s", sock, code, stderr)
	}
	if !regexp.MustCompile(`(?m)^FAIL  containerd: not reachable.*\n      fix: .*` + regexp.QuoteMeta(sock)).MatchString(out) {
		t.Errorf("cgibox doctor output lacks a FAIL line for containerd with a fix naming %s:\n%s", sock, out)
	}
	if !strings.Contains(stderr, "check(s) failed") {
		t.Errorf("stderr %q does not say that checks failed", stderr)
	}
}
