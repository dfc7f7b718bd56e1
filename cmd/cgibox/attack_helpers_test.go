package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The attack suite (SECURITY.md's catalogue) runs against the built binary
// and the shared private containerd. Each attack test asserts three things:
// the attack failed in the stated way, a normal request right after it
// succeeds, and nothing is left behind. These helpers are the last two.

// attackSite is a site with the hostile scripts given plus a known-good
// script (cgi-bin/ok.sh) and static page (/ok.txt) for the normal request.
func attackSite(t *testing.T, scripts map[string]string) string {
	t.Helper()
	all := map[string]string{"ok.sh": "#!/bin/sh\necho Content-Type: text/plain\necho\necho fine\n"}
	for k, v := range scripts {
		all[k] = v
	}
	root := cgiSite(t, all)
	if err := os.WriteFile(filepath.Join(root, "ok.txt"), []byte("static fine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// assertStillServes fails t unless both a static file and a CGI script are
// served normally by srv (SECURITY.md: "the gateway still serves the next
// request normally").
func assertStillServes(t *testing.T, srv *server) {
	t.Helper()
	for _, c := range []struct{ path, want string }{{"/ok.txt", "static fine\n"}, {"/cgi-bin/ok.sh", "fine\n"}} {
		resp, body := get(t, srv.base+c.path, nil)
		if resp.StatusCode != 200 || string(body) != c.want {
			t.Errorf("normal request %s after the attack: status %d, body %q", c.path, resp.StatusCode, body)
		}
	}
}

// assertNothingLeft fails t unless, within 10 s, the cgibox namespace holds
// no container and no active snapshot, no shim of the shared daemon runs,
// and no mount under the daemon's directory remains but the baseline ones.
func assertNothingLeft(t *testing.T) {
	t.Helper()
	c, ctx := containerdClient(t)
	var n, s, shims int
	var mounts []string
	ok := waitFor(10*time.Second, func() bool {
		n, s = leftovers(t, c, ctx)
		live := livePrepared(t, c, ctx)
		shims = countShims() - len(live)
		mounts = slices.DeleteFunc(daemonMounts(), func(m string) bool {
			for id := range live {
				if strings.Contains(m, "/"+id+"/") {
					return true
				}
			}
			return false
		})
		return n == 0 && s == 0 && shims == 0 && len(mounts) == 0
	})
	if !ok {
		t.Errorf("left behind: %d containers, %d active snapshots, %d shims, mounts %q", n, s, shims, mounts)
	}
}

// countShims counts the shim processes serving the shared daemon.
func countShims() int {
	n := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if len(args) > 0 && strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") &&
			strings.Contains(string(b), containerdAddr) {
			n++
		}
	}
	return n
}

// daemonMounts lists the container mounts below the shared daemon's
// directory (rootfs overlays, bind mounts); the daemon itself keeps none.
func daemonMounts() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], containerdDir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// rawHTTP sends raw bytes to srv and returns what came back until the
// server closed the connection or 10 s passed.
func rawHTTP(t *testing.T, srv *server, req string) string {
	t.Helper()
	conn, err := dialServer(srv)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	conn.Write([]byte(req))
	var out bytes.Buffer
	out.ReadFrom(conn)
	return out.String()
}

// dialServer opens a TCP connection to srv.
func dialServer(srv *server) (net.Conn, error) {
	return net.DialTimeout("tcp", strings.TrimPrefix(srv.base, "http://"), 5*time.Second)
}
