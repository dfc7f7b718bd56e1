package gateway

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgibox/cgibox/sandbox"
)

var testImages = map[string]string{
	"busybox": "cgibox.local/busybox:latest",
	"perl":    "cgibox.local/perl:latest",
	"python":  "cgibox.local/python:latest",
}

func TestChooseImage(t *testing.T) {
	const (
		bb   = "cgibox.local/busybox:latest"
		perl = "cgibox.local/perl:latest"
		py   = "cgibox.local/python:latest"
		own  = "example.org/ruby:3"
	)
	tests := []struct {
		line     string
		images   map[string]string
		def      string
		want     string
		wantName string
		wantErr  string // substring; "" means no error
	}{
		{"#!/usr/bin/perl", testImages, bb, perl, "perl", ""},
		{"#!/usr/bin/perl -wT", testImages, bb, perl, "perl", ""},
		{"#! /usr/bin/perl5.36.0 -w", testImages, bb, perl, "perl", ""},
		{"#!/usr/bin/env perl", testImages, bb, perl, "perl", ""},
		{"#!/usr/bin/env python3", testImages, bb, py, "python", ""},
		{"#!/usr/bin/env python", testImages, bb, py, "python", ""},
		{"#!/usr/bin/python3.11 -u", testImages, bb, py, "python", ""},
		{"#!/usr/bin/env -S python3 -u", testImages, bb, py, "python", ""},
		{"#!/usr/bin/env -Sperl -w", testImages, bb, perl, "perl", ""},
		{"#!/usr/bin/env -i LANG=C python3", testImages, bb, py, "python", ""},
		{"#!/usr/bin/env -u HOME perl", testImages, bb, perl, "perl", ""},
		{"#!/bin/sh", testImages, perl, bb, "busybox", ""},
		{"#!/bin/sh -e", testImages, bb, bb, "busybox", ""},
		{"#!/bin/sh\r", testImages, bb, bb, "busybox", ""},
		{"#!/bin/ash", testImages, bb, bb, "busybox", ""},
		{"#!/bin/bash", testImages, bb, perl, "perl", ""},
		{"#!/usr/bin/env bash", testImages, bb, perl, "perl", ""},
		{"#!/bin/bash", map[string]string{"busybox": bb, "python": py}, bb, py, "python", ""},
		{"#!/bin/dash", testImages, bb, perl, "perl", ""},
		// No #! line: the default image.
		{"", testImages, bb, bb, "busybox", ""},
		{"echo hello", testImages, py, py, "python", ""},
		{"\x7fELF\x02\x01", testImages, bb, bb, "busybox", ""},
		// Without Images every script runs in the default.
		{"#!/usr/bin/perl", nil, bb, bb, "", ""},
		{"#!/usr/bin/ruby", nil, bb, bb, "", ""},
		// Interpreters no image provides.
		{"#!/usr/bin/ruby", testImages, bb, "", "", `"ruby"`},
		{"#!/usr/bin/env php-cgi", testImages, bb, "", "", `"php-cgi"`},
		{"#!/usr/bin/python2.7", testImages, bb, "", "", `"python2"`},
		{"#!/usr/bin/perl", map[string]string{"busybox": bb}, bb, "", "", `"perl"`},
		{"#!", testImages, bb, "", "", "names no interpreter"},
		{"#!/usr/bin/env", testImages, bb, "", "", "names no interpreter"},
		// A custom default image runs what cgibox's images cannot.
		{"#!/usr/bin/ruby", testImages, own, own, "", ""},
		{"#!/usr/bin/perl", testImages, own, perl, "perl", ""},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, name, err := chooseImage([]byte(tt.line), tt.images, tt.def)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, errNoImage) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("chooseImage(%q, def %s) = %q, %v; want errNoImage containing %s", tt.line, tt.def, got, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "#! line") {
					t.Errorf("error %q does not tell the fix", err)
				}
				return
			}
			if err != nil || got != tt.want || name != tt.wantName {
				t.Errorf("chooseImage(%q, def %s) = %q, %q, %v; want %q, %q", tt.line, tt.def, got, name, err, tt.want, tt.wantName)
			}
		})
	}
}

func TestReadShebang(t *testing.T) {
	dir := t.TempDir()
	long := "#!/usr/bin/perl " + strings.Repeat("x", 400) + "\nprint 1\n"
	files := map[string]string{
		"perl.pl":  "#!/usr/bin/perl -w\nprint 1;\n",
		"noeol.sh": "#!/bin/sh",
		"empty":    "",
		"long.pl":  long,
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	tests := []struct{ name, want string }{
		{"perl.pl", "#!/usr/bin/perl -w"},
		{"noeol.sh", "#!/bin/sh"},
		{"empty", ""},
		{"long.pl", long[:shebangMax]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readShebang(root, tt.name)
			if err != nil || string(got) != tt.want {
				t.Errorf("readShebang(%s) = %q, %v; want %q", tt.name, got, err, tt.want)
			}
		})
	}
	if _, err := readShebang(root, "../etc/passwd"); err == nil {
		t.Errorf("readShebang outside the root succeeded")
	}
}

func TestImageHint(t *testing.T) {
	unavailable := fmt.Errorf("%w: %w: cgibox.local/perl:latest", sandbox.ErrUnavailable, sandbox.ErrImageNotFound)
	runtimeBroken := fmt.Errorf("%w: create task: runc did not terminate", sandbox.ErrUnavailable)
	tests := []struct {
		ref      string
		err      error
		wantHint bool
	}{
		{"cgibox.local/perl:latest", unavailable, true},
		{"example.org/custom:1", unavailable, false},
		{"cgibox.local/perl:latest", errors.New("other"), false},
		{"cgibox.local/perl:latest", runtimeBroken, false},
	}
	for _, tt := range tests {
		t.Run(tt.ref+" "+tt.err.Error(), func(t *testing.T) {
			got := imageHint(testImages, tt.ref, " --data-dir /srv/x", tt.err)
			if !errors.Is(got, tt.err) {
				t.Errorf("imageHint lost the error: %v", got)
			}
			if has := strings.Contains(got.Error(), "cgibox image build perl --data-dir /srv/x)"); has != tt.wantHint {
				t.Errorf("imageHint(%s, %v) = %q; want hint: %v", tt.ref, tt.err, got, tt.wantHint)
			}
		})
	}
}

func TestScriptProblem(t *testing.T) {
	for _, tt := range []struct {
		line  string
		cause string // in the cause; "" for none
		fix   string
	}{
		{"#!/bin/sh", "", ""},
		{"#!/usr/bin/env python3", "", ""},
		{"\x7fELF\x02\x01\x01", "", ""},
		{"#!/bin/sh\r", `interpreter "/bin/sh\r"`, "dos2unix"},
		{"#!/usr/bin/perl -w\r", "carriage return", "dos2unix"},
		{"echo hello", "no #! line", "#!/bin/sh"},
		{"", "no #! line", "#!/usr/bin/perl"},
	} {
		cause, fix := scriptProblem([]byte(tt.line))
		if tt.cause == "" && cause != "" || !strings.Contains(cause, tt.cause) || !strings.Contains(fix, tt.fix) {
			t.Errorf("scriptProblem(%q) = %q, %q; want a cause with %q and a fix with %q", tt.line, cause, fix, tt.cause, tt.fix)
		}
	}
}
