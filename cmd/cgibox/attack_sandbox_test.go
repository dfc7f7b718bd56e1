package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gcrname "github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Attack cases 16, 18–24 and 36 of SECURITY.md: escape and privilege,
// inside the container. The hostile scripts live under
// testdata/attack/<case>/; each runs its attempts through tryLib's `try`,
// which prints one line per attempt, and the tests assert every line.

// tryLib is sourced by the probe scripts (as ./try.lib): it prints the CGI
// header and defines try NAME COMMAND..., which runs COMMAND (stdin from
// /dev/null) and prints "NAME rc=STATUS OUTPUT", its output on one line.
const tryLib = `echo Content-Type: text/plain
echo
try() {
	name=$1; shift
	out=$("$@" 2>&1 </dev/null); rc=$?
	printf '%s rc=%d %s\n' "$name" "$rc" "$(printf '%s' "$out" | tr '\n' ' ' | cut -c1-400)"
}
`

// Error texts the attempts must end with.
const (
	eROFS  = "Read-only file system"
	eACCES = "Permission denied"
	ePERM  = "Operation not permitted"
	eNOENT = "No such file or directory"
)

// absent are the ways busybox says a path does not exist.
var absent = []string{eNOENT, "no such file", "nonexistent directory"}

// attackScript reads testdata/attack/<dir>/<name>.
func attackScript(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "attack", dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// probeSite is an attackSite holding the probe scripts (name → testdata
// file of case dir) and try.lib.
func probeSite(t *testing.T, dir string, names ...string) string {
	t.Helper()
	scripts := map[string]string{"try.lib": tryLib}
	for _, n := range names {
		scripts[n] = attackScript(t, dir, n)
	}
	return attackSite(t, scripts)
}

// attempt is one line of try's output.
type attempt struct {
	rc  int
	out string
}

var attemptRE = regexp.MustCompile(`^(\S+) rc=(\d+) ?(.*)$`)

// runProbe requests target from srv, wants a 200 and returns the attempts
// by name and the whole body.
func runProbe(t *testing.T, srv *server, target string) (map[string]attempt, string) {
	t.Helper()
	resp, body := get(t, srv.base+target, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: status %d, body %q", target, resp.StatusCode, body)
	}
	res := map[string]attempt{}
	for _, line := range strings.Split(string(body), "\n") {
		if m := attemptRE.FindStringSubmatch(line); m != nil {
			rc, _ := strconv.Atoi(m[2])
			res[m[1]] = attempt{rc: rc, out: strings.TrimSpace(m[3])}
		}
	}
	return res, string(body)
}

// expectFailed fails t unless the attempt name ran, failed and printed one
// of the error texts wants.
func expectFailed(t *testing.T, res map[string]attempt, name string, wants ...string) {
	t.Helper()
	a, ok := res[name]
	switch {
	case !ok:
		t.Errorf("%s: the script did not report this attempt", name)
	case a.rc == 0:
		t.Errorf("%s: succeeded (output %q); want a failure with one of %q", name, a.out, wants)
	case !slices.ContainsFunc(wants, func(w string) bool { return strings.Contains(a.out, w) }):
		t.Errorf("%s: failed with rc=%d %q; want one of %q", name, a.rc, a.out, wants)
	}
}

// expectOK fails t unless the attempt name succeeded printing exactly want.
func expectOK(t *testing.T, res map[string]attempt, name, want string) {
	t.Helper()
	a, ok := res[name]
	switch {
	case !ok:
		t.Errorf("%s: the script did not report this attempt", name)
	case a.rc != 0 || a.out != want:
		t.Errorf("%s: rc=%d output %q; want rc=0 output %q", name, a.rc, a.out, want)
	}
}

// statusFields collects the "status NAME: VALUE" lines a probe printed
// from /proc/self/status.
func statusFields(body string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, "status "); ok {
			k, v, _ := strings.Cut(rest, ":")
			out[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return out
}

func TestAttack18ReadOnlyImageAndScriptDir(t *testing.T) {
	requireContainerd(t)
	root := probeSite(t, "18", "write.sh")
	okBefore, err := os.ReadFile(filepath.Join(root, "cgi-bin", "ok.sh"))
	if err != nil {
		t.Fatal(err)
	}
	srv := startCgibox(t, "-d", root)
	// Twice: the second run must find nothing of the first (its /tmp
	// file included) and the image unchanged.
	for run := 1; run <= 2; run++ {
		res, body := runProbe(t, srv, "/cgi-bin/write.sh")
		t.Logf("run %d:\n%s", run, body)
		expectOK(t, res, "tmp_fresh", "")
		expectOK(t, res, "tmp", "x")
		for _, name := range []string{"bin_sh", "rm_sh", "mv_id", "chmod", "new_file",
			"mkdir", "launcher", "cgi_drop", "cgi_overwrite", "cgi_rm", "www_drop"} {
			expectFailed(t, res, name, eROFS)
		}
		// Appending (no O_TRUNC, no create) meets the permission check
		// before the mount's read-only flag: root-owned files say EACCES.
		for _, name := range []string{"busybox", "passwd"} {
			expectFailed(t, res, name, eROFS, eACCES)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(root, "cgi-bin"))
	for _, e := range entries {
		if !slices.Contains([]string{"ok.sh", "try.lib", "write.sh"}, e.Name()) {
			t.Errorf("the script dropped %s into its CGI directory", e.Name())
		}
	}
	if okAfter, _ := os.ReadFile(filepath.Join(root, "cgi-bin", "ok.sh")); string(okAfter) != string(okBefore) {
		t.Errorf("ok.sh changed: %q", okAfter)
	}
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

func TestAttack19ProcAndSys(t *testing.T) {
	requireContainerd(t)
	srv := startCgibox(t, "-d", probeSite(t, "19", "proc.sh"))
	res, body := runProbe(t, srv, "/cgi-bin/proc.sh")
	t.Logf("%s", body)
	// What the host's kernel lacks (this CI's has no sysrq-trigger and no
	// kcore) must be absent in the container too; what it has must be
	// read-only or masked.
	onHost := func(p string) bool { _, err := os.Stat(p); return err == nil }
	for name, p := range map[string]string{"sysrq": "/proc/sysrq-trigger",
		"sys_hostname": "/proc/sys/kernel/hostname", "sys_core_pattern": "/proc/sys/kernel/core_pattern",
		"sys_drop_caches": "/proc/sys/vm/drop_caches"} {
		if onHost(p) {
			expectFailed(t, res, name, eROFS, eACCES)
		} else {
			expectFailed(t, res, name, absent...)
		}
	}
	// Masked: bound over with /dev/null (empty) or an empty tmpfs.
	for name, p := range map[string]string{"kcore": "/proc/kcore", "keys": "/proc/keys",
		"timer_list": "/proc/timer_list", "sched_debug": "/proc/sched_debug", "latency_stats": "/proc/latency_stats"} {
		if onHost(p) {
			expectOK(t, res, name, "0")
		} else {
			expectFailed(t, res, name, absent...)
		}
	}
	if onHost("/proc/acpi") {
		expectOK(t, res, "acpi", "")
	}
	expectOK(t, res, "sysfs", "") // no sysfs at all: /sys is the image's empty directory
	expectFailed(t, res, "firmware", absent...)
	if h, _ := os.Hostname(); h == "evil" {
		t.Errorf("the host's hostname was changed")
	}
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

func TestAttack20NoPrivileges(t *testing.T) {
	requireContainerd(t)
	root := probeSite(t, "20", "priv.sh")
	// A setuid-root binary the script can reach: busybox, whose su refuses
	// with "must be suid" unless it runs with euid 0. The CGI directory is
	// mounted nosuid and the process has no_new_privs.
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	suid := filepath.Join(root, "cgi-bin", "busybox")
	if err := os.WriteFile(suid, bb, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	srv := startCgibox(t, "-d", root)
	res, body := runProbe(t, srv, "/cgi-bin/priv.sh")
	t.Logf("%s", body)
	st := statusFields(body)
	want := map[string]string{
		"Uid": "65534 65534 65534 65534", "Gid": "65534 65534 65534 65534", "Groups": "65534",
		"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
		"CapBnd": "0000000000000000", "CapAmb": "0000000000000000",
		"NoNewPrivs": "1", "Seccomp": "2",
	}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("/proc/self/status %s: %q, want %q", k, st[k], v)
		}
	}
	expectFailed(t, res, "mount", "denied", ePERM)
	expectFailed(t, res, "mount_bind", "denied", ePERM)
	expectFailed(t, res, "mknod", ePERM)
	expectFailed(t, res, "chown", ePERM)
	expectFailed(t, res, "ping", "denied", ePERM)
	if strings.Contains(res["ping"].out, "bytes from") {
		t.Errorf("ping got an answer: %q", res["ping"].out)
	}
	expectOK(t, res, "setuid_files", "") // the image has no setuid or setgid file
	expectFailed(t, res, "su", "must be suid")
	expectFailed(t, res, "passwd", "must be suid")
	expectOK(t, res, "suid_mode", "4755:0") // the bit is there...
	expectFailed(t, res, "suid_su", "must be suid")
	expectFailed(t, res, "suid_passwd", "must be suid") // ...and has no effect
	expectOK(t, res, "id", "65534")
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

func TestAttack21Namespaces(t *testing.T) {
	requireContainerd(t)
	srv := startCgibox(t, "-d", probeSite(t, "21", "ns.sh"))
	res, body := runProbe(t, srv, "/cgi-bin/ns.sh")
	t.Logf("%s", body)
	// The filter in force is what denies bpf, io_uring_*, keyctl,
	// perf_event_open, userfaultfd and ptrace, for which busybox has no
	// applet; sandbox's TestSpecSeccomp checks they are off its allowlist.
	st := statusFields(body)
	if st["Seccomp"] != "2" || st["NoNewPrivs"] != "1" {
		t.Errorf("/proc/self/status Seccomp %q NoNewPrivs %q, want 2 and 1", st["Seccomp"], st["NoNewPrivs"])
	}
	for _, name := range []string{"unshare_user", "unshare_mount", "unshare_net", "unshare_pid",
		"nsenter_init", "nsenter_self", "chroot"} {
		expectFailed(t, res, name, ePERM)
	}
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

func TestAttack22Network(t *testing.T) {
	requireContainerd(t)
	root := probeSite(t, "22", "net.sh")
	srv := startCgibox(t, "-d", root)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.base, "http://"))
	// The gateway's port on 127.0.0.1 is the container's own loopback:
	// refused. Every other address has no route at all.
	targets := "gateway 127.0.0.1 " + port + "\nmetadata 169.254.169.254 80\n"
	unreachable := []string{"connect_metadata"}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range addrs {
		ip, _, _ := net.ParseCIDR(a.String())
		if ip == nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
			continue
		}
		name := "host" + strconv.Itoa(i)
		targets += name + " " + ip.String() + " " + port + "\n"
		unreachable = append(unreachable, "connect_"+name)
	}
	if err := os.WriteFile(filepath.Join(root, "cgi-bin", "targets"), []byte(targets), 0o644); err != nil {
		t.Fatal(err)
	}
	res, body := runProbe(t, srv, "/cgi-bin/net.sh")
	t.Logf("targets:\n%s\n%s", targets, body)
	expectOK(t, res, "links", "lo")
	expectOK(t, res, "unix", "")
	expectFailed(t, res, "resolv", absent...)
	// No resolver file: busybox asks 127.0.0.1, where nothing listens.
	expectFailed(t, res, "dns", "no servers could be reached")
	expectFailed(t, res, "dns_direct", "unreachable")
	if a := res["wget_metadata"]; a.rc == 0 || a.out != "" {
		t.Errorf("wget_metadata: rc=%d %q; want a failure and no data", a.rc, a.out)
	}
	expectFailed(t, res, "connect_gateway", "refused")
	for _, name := range unreachable {
		expectFailed(t, res, name, "unreachable")
	}
	if strings.Contains(srv.stderr.String(), "\"GET /latest") {
		t.Errorf("a request from the script reached the gateway:\n%s", srv.stderr.String())
	}
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

func TestAttack23Devices(t *testing.T) {
	requireContainerd(t)
	srv := startCgibox(t, "-d", probeSite(t, "23", "dev.sh"))
	res, body := runProbe(t, srv, "/cgi-bin/dev.sh")
	t.Logf("%s", body)
	var got []string
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, "dev "); ok {
			got = append(got, rest)
		}
	}
	slices.Sort(got)
	want := []string{
		"/dev/full character special file 1:7",
		"/dev/null character special file 1:3",
		"/dev/random character special file 1:8",
		"/dev/tty character special file 5:0",
		"/dev/urandom character special file 1:9",
		"/dev/zero character special file 1:5",
	}
	if !slices.Equal(got, want) {
		t.Errorf("device nodes in /dev:\n got:  %q\n want: %q", got, want)
	}
	expectOK(t, res, "block", "")
	for _, name := range []string{"mem", "kmem", "kmsg", "port", "sda"} {
		expectFailed(t, res, name, absent...)
	}
	expectFailed(t, res, "mknod_dev", ePERM, eACCES)
	expectFailed(t, res, "mknod_tmp", ePERM)
	expectFailed(t, res, "newdev", eACCES)
	assertStillServes(t, srv)
	assertNothingLeft(t)
}

func TestAttack24RuntimeMissingOrBroken(t *testing.T) {
	requireContainerd(t)
	root := attackSite(t, nil)
	broken := filepath.Join(t.TempDir(), "broken-runc")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho 'broken runtime says no' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, binary string }{
		{"missing", filepath.Join(t.TempDir(), "no-such-runc")},
		{"broken", broken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startCgibox(t, "-d", root, "--runtime-binary", tc.binary)
			for i := 0; i < 2; i++ { // every request, not just the first
				start := time.Now()
				resp, body := get(t, srv.base+"/cgi-bin/ok.sh", nil)
				took := time.Since(start)
				if resp.StatusCode != 503 || strings.Contains(string(body), "fine") {
					t.Errorf("request %d: status %d body %q; want 503 and no script output", i, resp.StatusCode, body)
				}
				if took > 10*time.Second {
					t.Errorf("request %d: 503 after %s; want it fast", i, took)
				}
			}
			// The log says why, naming the runtime binary.
			logged := func() bool {
				for _, line := range strings.Split(srv.stderr.String(), "\n") {
					if strings.Contains(line, "CGI runtime unavailable") && strings.Contains(line, tc.binary) {
						return true
					}
				}
				return false
			}
			if !waitFor(5*time.Second, logged) {
				t.Errorf("no log line saying the runtime %s is unavailable:\n%s", tc.binary, srv.stderr.String())
			}
			if strings.Contains(srv.stderr.String(), "end=exited") {
				t.Errorf("a script ran although the runtime is %s:\n%s", tc.name, srv.stderr.String())
			}
			// Static files are still served by the same gateway.
			if resp, body := get(t, srv.base+"/ok.txt", nil); resp.StatusCode != 200 || string(body) != "static fine\n" {
				t.Errorf("static file with the runtime %s: status %d body %q", tc.name, resp.StatusCode, body)
			}
			assertNothingLeft(t)
		})
	}
	// The sandbox itself is fine: a gateway with the working runtime serves.
	assertStillServes(t, startCgibox(t, "-d", root))
	assertNothingLeft(t)
}

// importTestImage builds an image holding /bin/busybox (with a few applet
// links) and the given extra files, imports it into the shared containerd
// with `cgibox image import` and removes it when t ends.
func importTestImage(t *testing.T, ref string, files map[string]string) {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mod := time.Unix(0, 0)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mod})
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb)), ModTime: mod})
	tw.Write(bb)
	for _, applet := range []string{"sh", "id", "cat", "grep", "sed", "tr"} {
		tw.WriteHeader(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777, ModTime: mod})
	}
	for name, body := range files {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: mod})
		tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	tag, err := gcrname.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		t.Fatal(err)
	}
	daemon := []string{"--containerd", containerdAddr, "--data-dir", sharedDataDir}
	out, err := exec.Command(cgiboxBin, append([]string{"image", "import", archive}, daemon...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "imported "+ref) {
		t.Fatalf("cgibox image import: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(cgiboxBin, append([]string{"image", "rm", ref}, daemon...)...).CombinedOutput(); err != nil {
			t.Errorf("cgibox image rm %s: %v\n%s", ref, err, out)
		}
	})
}

func TestAttack16ImageWithoutNobody(t *testing.T) {
	requireContainerd(t)
	// The normal requests' ok.sh (#!/bin/sh) runs in cgibox's busybox
	// image, which a gateway with the default image builds if missing.
	root := attackSite(t, map[string]string{"whoami.sh": attackScript(t, "16", "whoami.sh")})
	startCgibox(t, "-d", root).stop(t)
	for _, tc := range []struct {
		name, ref  string
		files      map[string]string
		wantPasswd string
	}{
		{"no user database", "example.test/cgibox-attack/no-passwd:16", nil, "cat: can't open '/etc/passwd': No such file or directory"},
		{"root only", "example.test/cgibox-attack/root-only:16",
			map[string]string{"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n"},
			"root:x:0:0:root:/root:/bin/sh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			importTestImage(t, tc.ref, tc.files)
			srv := startCgibox(t, "-d", root, "--image", tc.ref)
			resp, body := get(t, srv.base+"/cgi-bin/whoami.sh", nil)
			t.Logf("status %d\n%s", resp.StatusCode, body)
			// Numeric 65534 needs no user database: the script runs as
			// nobody (failing would be acceptable; root never is).
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, body %q; want the script to run as 65534", resp.StatusCode, body)
			}
			lines := map[string]string{}
			for _, line := range strings.Split(string(body), "\n") {
				k, v, _ := strings.Cut(line, " ")
				lines[k] = strings.TrimSpace(v)
			}
			if got := lines["passwd"]; got != tc.wantPasswd {
				t.Errorf("/etc/passwd in the image: %q, want %q (is the script in the test image?)", got, tc.wantPasswd)
			}
			if got := lines["id"]; got != "uid=65534 gid=65534 groups=65534" {
				t.Errorf("id: %q, want uid=65534 gid=65534 groups=65534 (numeric, no name)", got)
			}
			st := statusFields(string(body))
			for k, want := range map[string]string{"Uid": "65534 65534 65534 65534", "Gid": "65534 65534 65534 65534", "Groups": "65534"} {
				if st[k] != want {
					t.Errorf("/proc/self/status %s: %q, want %q", k, st[k], want)
				}
			}
			assertStillServes(t, srv)
			assertNothingLeft(t)
		})
	}
}

func TestAttack36OtherSites(t *testing.T) {
	requireContainerd(t)
	rootA := probeSite(t, "36", "probe.sh")
	rootB := attackSite(t, map[string]string{"b-secret-hold.sh": attackScript(t, "36", "b-secret-hold.sh")})
	// Two gateways, two sites, one containerd: B is another cgibox with
	// its own data directory (and so its own instance).
	srvA := startCgibox(t, "-d", rootA)
	srvB := startCgibox(t, "-d", rootB, "--containerd", containerdAddr, "--data-dir", t.TempDir())
	_, portB, _ := net.SplitHostPort(strings.TrimPrefix(srvB.base, "http://"))
	if err := os.WriteFile(filepath.Join(rootA, "cgi-bin", "targets"), []byte(rootB+" "+portB+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// B's script runs (and has written its /tmp file) while A probes.
	conn, err := dialServer(srvB)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(conn, "GET /cgi-bin/b-secret-hold.sh HTTP/1.1\r\nHost: b\r\n\r\n")
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("site B's script did not start: %v", err)
		}
		if line == "started\n" {
			break
		}
	}

	res, body := runProbe(t, srvA, "/cgi-bin/probe.sh")
	t.Logf("%s", body)
	if strings.Contains(body, "b-secret") {
		t.Errorf("site A's script saw a trace of site B (b-secret)")
	}
	expectOK(t, res, "www", "ok.sh probe.sh targets try.lib")
	expectOK(t, res, "tmp", "")
	if a := res["procs"]; a.rc != 0 || !strings.Contains(a.out, "/www/cgi-bin/probe.sh") {
		t.Errorf("procs: rc=%d %q; want A's own processes only", a.rc, a.out)
	}
	if a := res["proc_roots"]; a.rc != 0 || strings.Count(a.out, "ok.sh probe.sh targets try.lib") == 0 {
		t.Errorf("proc_roots: rc=%d %q; want only A's own root", a.rc, a.out)
	}
	expectOK(t, res, "find", "")
	expectFailed(t, res, "b_dir", absent...)
	expectFailed(t, res, "b_cgi", absent...)
	expectFailed(t, res, "b_port", "refused")
	expectOK(t, res, "unix", "")
	// Its own cgroup namespace: every hierarchy's path is its root.
	for _, f := range strings.Fields(res["cgroup"].out) {
		if !strings.HasSuffix(f, ":/") {
			t.Errorf("cgroup: %q; want every path to be / (cgroup namespace)", res["cgroup"].out)
			break
		}
	}
	conn.Close()

	assertStillServes(t, srvA)
	assertStillServes(t, srvB)
	assertNothingLeft(t)
}
