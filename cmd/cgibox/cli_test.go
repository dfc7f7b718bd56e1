package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelp compares the help of cgibox and its commands with the golden
// files under testdata/help (rewrite them with -update). The two ways of
// asking for a command's help print the same.
func TestHelp(t *testing.T) {
	cases := []struct {
		golden string
		ways   [][]string
	}{
		{"cgibox.golden", [][]string{{"--help"}, {"-h"}, {"help"}, {"-help"}}},
		{"serve.golden", [][]string{{"serve", "--help"}, {"help", "serve"}}},
		{"image.golden", [][]string{{"image", "--help"}, {"help", "image"}}},
		{"image-build.golden", [][]string{{"image", "build", "--help"}, {"help", "image", "build"}}},
		{"inspect.golden", [][]string{{"inspect", "--help"}}},
		{"doctor.golden", [][]string{{"doctor", "-h"}}},
		{"config-check.golden", [][]string{{"config", "check", "--help"}}},
	}
	for _, tc := range cases {
		t.Run(tc.golden, func(t *testing.T) {
			var first string
			for i, args := range tc.ways {
				var out, errOut bytes.Buffer
				if err := run(t.Context(), nil, args, &out, &errOut); err != nil {
					t.Fatalf("cgibox %q: %v", args, err)
				}
				if errOut.Len() > 0 {
					t.Errorf("cgibox %q wrote to stderr: %s", args, errOut.String())
				}
				if i == 0 {
					first = out.String()
					goldenFile(t, filepath.Join("testdata", "help", tc.golden), first)
				} else if out.String() != first {
					t.Errorf("cgibox %q differs from cgibox %q:\n%s", args, tc.ways[0], out.String())
				}
			}
		})
	}
}

// TestHelpGroupsEveryFlag: every flag of serve is under a heading of its
// own, none left to the catch-all "Options".
func TestHelpGroupsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), nil, []string{"--help"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "\nOptions:\n") {
		t.Errorf("a serve flag has no heading:\n%s", out.String())
	}
	for _, noise := range []string{"(default 0)", "(default: 0)", "(default false)", "67108864", "\n  -b, --bind ADDRESS", "--b "} {
		if noise == "\n  -b, --bind ADDRESS" {
			if !strings.Contains(out.String(), noise) {
				t.Errorf("the help does not show -b and --bind on one line:\n%s", out.String())
			}
			continue
		}
		if strings.Contains(out.String(), noise) {
			t.Errorf("the help holds %q:\n%s", noise, out.String())
		}
	}
}

// TestUsageExitCodes runs the binary: a command line that cannot be run
// exits 2, as argparse does, with the error and where to find the help on
// stderr; asking for help exits 0 and prints it to stdout.
func TestUsageExitCodes(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		code int
		want string // on stderr for 2, on stdout for 0
	}{
		{[]string{"--bogus"}, 2, "unknown flag: --bogus\nsee 'cgibox --help'"},
		{[]string{"-z"}, 2, "unknown shorthand flag"},
		{[]string{"--memory", "lots"}, 2, `invalid argument "lots" for "--memory"`},
		{[]string{"--timeout=0s"}, 2, "above zero"},
		{[]string{"-p", "HTTP/2"}, 2, "--protocol"},
		{[]string{"8000", "8001"}, 2, "only one port"},
		{[]string{"http"}, 2, `port "http"`},
		{[]string{"imag"}, 2, "did you mean cgibox image?"},
		{[]string{"-d", filepath.Join(dir, "missing")}, 2, "not a directory"},
		{[]string{"serve", "--bogus"}, 2, "see 'cgibox serve --help'"},
		{[]string{"image"}, 2, "cgibox image needs a command"},
		{[]string{"image", "frob"}, 2, `unknown command "frob" for cgibox image`},
		{[]string{"image", "build"}, 2, "want cgibox image build NAME|DIR\nsee 'cgibox image build --help'"},
		{[]string{"image", "ls", "extra"}, 2, "takes no arguments"},
		{[]string{"image", "ls", "--suite", "x"}, 2, "unknown flag: --suite"},
		{[]string{"gc", "now"}, 2, "cgibox gc takes no arguments"},
		{[]string{"doctor", "--bogus"}, 2, "see 'cgibox doctor --help'"},
		{[]string{"config"}, 2, "cgibox config needs a command: check"},
		{[]string{"config", "check"}, 2, "want cgibox config check FILE"},
		{[]string{"inspect"}, 2, "want cgibox inspect URL"},
		{[]string{"inspect", "ftp://x/"}, 2, "absolute http://"},

		{[]string{"--help"}, 0, "Python's options"},
		{[]string{"-h"}, 0, "usage: cgibox [port]"},
		{[]string{"help"}, 0, "Commands:"},
		{[]string{"help", "image"}, 0, "usage: cgibox image COMMAND"},
		{[]string{"image", "--help"}, 0, "usage: cgibox image COMMAND"},
		{[]string{"serve", "--help"}, 0, "usage: cgibox serve [port]"},
		{[]string{"8000", "-b", "127.0.0.1", "--help"}, 0, "Sandbox limits"},
		{[]string{"version"}, 0, "cgibox "},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := exec.Command(cgiboxBin, tc.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			got := stdout.String()
			if tc.code != 0 {
				got = stderr.String()
			}
			if code != tc.code || !strings.Contains(got, tc.want) {
				t.Errorf("cgibox %q: exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d and %q", tc.args, code, stdout.String(), stderr.String(), tc.code, tc.want)
			}
			if tc.code == 2 && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 1 {
				t.Errorf("cgibox %q: stderr is not the error and one hint line:\n%s", tc.args, stderr.String())
			}
		})
	}
}

// TestCompletionBash: cobra's completion command writes a bash script that
// completes cgibox.
func TestCompletionBash(t *testing.T) {
	out, err := exec.Command(cgiboxBin, "completion", "bash").Output()
	if err != nil {
		t.Fatalf("cgibox completion bash: %v", err)
	}
	if !strings.Contains(string(out), "complete -o default -F __start_cgibox cgibox") {
		t.Errorf("cgibox completion bash printed no completion script:\n%.500s", out)
	}
	// The script asks the binary itself; it answers with the commands.
	out, err = exec.Command(cgiboxBin, "__complete", "ima").Output()
	if err != nil || !strings.Contains(string(out), "image\t") {
		t.Errorf("cgibox __complete ima: %v\n%s", err, out)
	}
}
