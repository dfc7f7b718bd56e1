package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// runCmd runs cgibox's command line in this process and returns its
// output, normalised: the test data's path as TESTDATA, the version as
// VERSION.
func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), nil, args, &out, &out)
	abs, _ := filepath.Abs("testdata/sites")
	s := strings.ReplaceAll(out.String(), abs, "TESTDATA")
	s = regexp.MustCompile(`cgibox/\S+`).ReplaceAllString(s, "cgibox/VERSION")
	return s, err
}

// golden compares got with testdata/sites/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenFile(t, filepath.Join("testdata", "sites", name), got)
}

// goldenFile compares got with file, or rewrites it with -update.
func goldenFile(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update to accept):\n--- got\n%s\n--- want\n%s", file, got, want)
	}
}

// TestInspect runs `cgibox inspect` on a few requests against the test
// sites: a script with PATH_INFO, a Perl script of an rfc3875 site, a
// static file, refusals, the default site and an unknown host.
func TestInspect(t *testing.T) {
	conf := filepath.Join("testdata", "sites", "sites.toml")
	cases := [][]string{
		{"http://www.alice.example:8080/cgi-bin/env.sh/a/b%20c?x=1&y=2", "-H", "Cookie: k=v", "-H", "Authorization: Basic eDp5"},
		{"-X", "POST", "http://bob.example/cgi-bin/hello.pl", "-H", "Content-Type: application/x-www-form-urlencoded"},
		{"https://bob.example/cgi-bin/hello.pl"},
		{"http://bob.example/static.txt"},
		{"http://bob.example/"},
		{"http://bob.example/cgi-bin/notes.txt"},
		{"http://bob.example/cgi-bin/missing.pl"},
		{"http://alice.example/cgi-bin/dos.sh"}, // Windows line endings
		{"http://alice.example/cgi-bin/../../etc/passwd"},
		{"http://elsewhere.example/cgi-bin/env.sh"},
		{"http://bad_host!/"},
	}
	var all strings.Builder
	for _, c := range cases {
		args := append([]string{"inspect", "--config", conf}, c...)
		got, err := runCmd(t, args...)
		all.WriteString("$ cgibox inspect " + strings.Join(c, " ") + "\n")
		all.WriteString(got)
		if err != nil {
			all.WriteString("error: " + err.Error() + "\n")
		}
		all.WriteString("\n")
	}
	golden(t, "inspect.golden", all.String())
}

func TestInspectUsage(t *testing.T) {
	for _, args := range [][]string{{"inspect"}, {"inspect", "/relative"}, {"inspect", "ftp://x/"}, {"inspect", "http://a/", "http://b/"}} {
		_, err := runCmd(t, args...)
		var u usageError
		if err == nil || !errorsAs(err, &u) {
			t.Errorf("%q: %v, want a usage error (exit status 2)", args, err)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	got, err := runCmd(t, "config", "check", filepath.Join("testdata", "sites", "sites.toml"))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "check.golden", got)

	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[[site]]\nname = \"a\"\nroot = \"/nonexistent\"\n[site.limits]\nmemroy = \"1M\"\n"), 0o644)
	_, err = runCmd(t, "config", "check", bad)
	if err == nil || !strings.Contains(err.Error(), "bad.toml:5: site.limits.memroy: unknown key") {
		t.Errorf("config check of a bad file: %v, want the unknown key and its line", err)
	}
	if _, err := runCmd(t, "config", "lint", bad); err == nil || !errorsAs(err, new(usageError)) {
		t.Errorf("config lint: %v, want a usage error", err)
	}
}

func errorsAs[T error](err error, target *T) bool { return errors.As(err, target) }
