package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cgibox/cgibox/config"
	"github.com/cgibox/cgibox/images"
	"github.com/cgibox/cgibox/sandbox"
)

// errDoctorFailed is returned when a check failed (cgibox exits 1).
type errDoctorFailed int

func (n errDoctorFailed) Error() string {
	return fmt.Sprintf("doctor: %d check(s) failed", int(n))
}

func newDoctorCommand() *cobra.Command {
	return newDaemonCommand("doctor [options]", "check this host and say what of the sandbox is in force",
		"Checks what cgibox needs and prints one line per item, OK, WARN or FAIL, with\n"+
			"the command that fixes each problem. Exits 1 when a check fails.", doctor)
}

// doctor runs `cgibox doctor [--containerd ADDR] [--data-dir DIR]`: one
// line per check, and the command that fixes each problem.
func doctor(ctx context.Context, d daemonFlags, stdout, stderr io.Writer) error {
	// The images cgibox builds itself (busybox, perl, python).
	imgs := map[string]string{}
	for _, n := range images.Names() {
		imgs[n] = images.Ref(n)
	}
	checks := sandbox.Doctor(ctx, sandbox.DoctorConfig{
		Address:  d.containerd,
		DataDir:  d.dataDir,
		Images:   imgs,
		ImageFix: "cgibox image build %s" + d.flagsForFix(),
		Log:      slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	writeChecks(stdout, checks)
	if n := countFailed(checks); n > 0 {
		return errDoctorFailed(n)
	}
	return nil
}

// flagsForFix repeats the daemon flags that differ from their defaults,
// so that a printed fix acts on the same containerd and data directory.
func (d *daemonFlags) flagsForFix() string {
	return strings.ReplaceAll(fixFlags(d.containerd, d.dataDir), "%", "%%")
}

// fixFlags are the --containerd and --data-dir flags, each when it differs
// from its default, that a printed command needs to act where this one
// does.
func fixFlags(containerd, dataDir string) string {
	var b strings.Builder
	if containerd != sandbox.AddressAuto {
		fmt.Fprintf(&b, " --containerd %s", containerd)
	}
	if dataDir != config.DefaultServer().DataDir {
		fmt.Fprintf(&b, " --data-dir %s", dataDir)
	}
	return b.String()
}

// writeChecks prints one line per check, "STATUS  name: detail", and under
// each problem an indented "fix: ..." line.
func writeChecks(w io.Writer, checks []sandbox.Check) {
	for _, c := range checks {
		fmt.Fprintf(w, "%-4s  %s: %s\n", c.Status, c.Name, oneLine(c.Detail))
		if c.Fix != "" && c.Status != sandbox.CheckOK {
			fmt.Fprintf(w, "      fix: %s\n", oneLine(c.Fix))
		}
	}
	warn := 0
	for _, c := range checks {
		if c.Status == sandbox.CheckWarn {
			warn++
		}
	}
	fmt.Fprintf(w, "%d checks: %d failed, %d warnings\n", len(checks), countFailed(checks), warn)
}

func countFailed(checks []sandbox.Check) int {
	n := 0
	for _, c := range checks {
		if c.Status == sandbox.CheckFail {
			n++
		}
	}
	return n
}

// oneLine keeps a check on its line whatever an error message holds.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
