package gateway

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cgibox/cgibox/sandbox"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// TestGoldenResponses plays every script output under testdata/cgi-output
// through the gateway in each mode and compares the raw bytes on the wire
// with testdata/golden/<mode>/<name>.txt. Outputs named nph-* run as an
// NPH script with NPH enabled. Run with -update to rewrite the goldens after
// a deliberate change, and read the diff.
func TestGoldenResponses(t *testing.T) {
	outputs, err := filepath.Glob("testdata/cgi-output/*.out")
	if err != nil || len(outputs) == 0 {
		t.Fatalf("no script outputs: %v", err)
	}
	for _, mode := range []CGIMode{ModePython, ModeRFC3875} {
		for _, file := range outputs {
			name := strings.TrimSuffix(filepath.Base(file), ".out")
			for _, method := range []string{"GET", "HEAD"} {
				t.Run(string(mode)+"/"+name+"/"+method, func(t *testing.T) {
					stdout, err := os.ReadFile(file)
					if err != nil {
						t.Fatal(err)
					}
					run := &scriptedRunner{stdout: string(stdout), result: sandbox.Result{Reason: sandbox.Exited}}
					site := testSite(t)
					os.WriteFile(filepath.Join(site, "cgi-bin", "nph-s.sh"), []byte("#!/bin/sh\n"), 0o755)
					srv, _, _ := newTestServer(t, Config{Runner: run, Sites: []Site{{Root: site, CGI: true, Image: "img", Mode: mode, NPH: true}}})
					script := "/cgi-bin/s.sh"
					if strings.HasPrefix(name, "nph-") {
						script = "/cgi-bin/nph-s.sh"
					}
					out, _ := rawRequest(t, srv, method+" "+script+"?q=1 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
					got := normalizeResponse(out)
					golden := filepath.Join("testdata", "golden", string(mode), name+"."+method+".txt")
					if *update {
						os.MkdirAll(filepath.Dir(golden), 0o755)
						if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
							t.Fatal(err)
						}
						return
					}
					want, err := os.ReadFile(golden)
					if err != nil {
						t.Fatalf("%v (run go test ./gateway -run TestGoldenResponses -update)", err)
					}
					if got != string(want) {
						t.Errorf("raw response differs from %s\n--- got\n%s\n--- want\n%s", golden, got, want)
					}
				})
			}
		}
	}
}

var (
	dateRE = regexp.MustCompile(`(?m)^(Date|Last-Modified|Etag): .*\r$`)
	ridRE  = regexp.MustCompile(`[0-9a-f]{16}`)
)

// normalizeResponse replaces what changes from run to run.
func normalizeResponse(s string) string {
	s = dateRE.ReplaceAllString(s, "$1: <varies>\r")
	return ridRE.ReplaceAllString(s, "<request-id>")
}
