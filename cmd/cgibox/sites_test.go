package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgibox/cgibox/sandbox"
)

// openDir is a temp dir that every user may search, as runc needs of the
// directories on the way to what it mounts when it sets up a
// user-namespaced container.
func openDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// hostSite writes a site root below dir: index.html saying name and
// cgi-bin scripts.
func hostSite(t *testing.T, dir, name string, scripts map[string]string) string {
	t.Helper()
	root := filepath.Join(dir, name)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "cgi-bin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "index.html"), []byte(name+"\n"), 0o644))
	for n, body := range scripts {
		must(os.WriteFile(filepath.Join(root, "cgi-bin", n), []byte(body), 0o755))
	}
	return root
}

// getHost sends GET url with Host host.
func getHost(t *testing.T, url, host string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", url, host, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

const plain = "#!/bin/sh\necho Content-Type: text/plain\necho\n"

// TestSitesEndToEnd serves two sites from one cgibox in real containers:
// each sees only its own files, scripts and data, gets its own mode and
// limits, runs as host ids of its own, and an unknown host gets 421.
func TestSitesEndToEnd(t *testing.T) {
	requireContainerd(t)
	dir := openDir(t)
	probe := plain + "ls /www/cgi-bin\necho tmp $(df -k /tmp | awk 'NR==2 {print $2}')\necho data $(ls /data 2>&1)\necho env $CGIBOX_DATA\nawk '{printf \"%s %s %s;\", $1, $2, $3}' /proc/self/uid_map\necho\n"
	count := plain + "n=$(cat /data/count 2>/dev/null || echo 0)\nn=$((n+1))\necho $n > /data/count\necho hits $n\n"
	fill := plain + "dd if=/dev/zero of=/data/fill bs=64k count=200 2>&1 | grep -o 'No space left on device' | head -1\nrm -f /data/fill\necho done\n"
	status := "#!/bin/sh\necho 'Status: 201 Created'\necho Content-Type: text/plain\necho\necho made\n"
	alice := hostSite(t, dir, "alice", map[string]string{"probe.sh": probe, "count.sh": count, "fill.sh": fill, "status.sh": status, "alice-only.sh": plain})
	bob := hostSite(t, dir, "bob", map[string]string{"probe.sh": probe, "count.sh": count, "status.sh": status})
	aliceData, bobData := filepath.Join(dir, "alice-data"), filepath.Join(dir, "bob-data")
	file := filepath.Join(dir, "sites.toml")
	os.WriteFile(file, []byte(fmt.Sprintf(`
[server]
user_namespaces = "on"

[[site]]
name = "alice"
hosts = ["alice.example"]
root = %q
data_dir = %q
data_quota = "2M"
[site.limits]
body = "1M"
tmp = "2M"

[[site]]
name = "bob"
hosts = ["bob.example"]
root = %q
mode = "rfc3875"
data_dir = %q
`, alice, aliceData, bob, bobData)), 0o644)
	srv := startCgibox(t, "--config", file)
	url := srv.base + "/cgi-bin/"

	_, a := getHost(t, url+"probe.sh", "alice.example")
	_, b := getHost(t, url+"probe.sh", "bob.example")
	if !strings.Contains(a, "alice-only.sh") || strings.Contains(b, "alice-only.sh") {
		t.Errorf("each site must see its own scripts only:\nalice: %s\nbob: %s", a, b)
	}
	if !strings.Contains(a, "tmp 2048\n") || !strings.Contains(b, "tmp 73728\n") {
		t.Errorf("each site's /tmp limit: alice %q, bob %q; want 2048 and 73728 KiB (the default: body + 8M)", a, b)
	}
	if !strings.Contains(a, "env /data\n") {
		t.Errorf("CGIBOX_DATA not set for a site with data:\n%s", a)
	}
	ua, ub := sandbox.SiteUsers("alice"), sandbox.SiteUsers("bob")
	for _, c := range []struct {
		out   string
		users sandbox.UserRange
	}{{a, ua}, {b, ub}} {
		want := fmt.Sprintf("0 %d 1;65534 %d 1;", c.users.Root, c.users.Nobody)
		if !strings.Contains(c.out, want) {
			t.Errorf("uid_map: want %q in\n%s", want, c.out)
		}
	}

	t.Run("mode", func(t *testing.T) {
		if resp, _ := getHost(t, url+"status.sh", "bob.example"); resp.StatusCode != 201 {
			t.Errorf("bob (rfc3875) Status: 201 script: %d, want 201", resp.StatusCode)
		}
		if resp, _ := getHost(t, url+"status.sh", "alice.example"); resp.StatusCode != 200 {
			t.Errorf("alice (python) Status: 201 script: %d, want Python's 200", resp.StatusCode)
		}
	})
	t.Run("data", func(t *testing.T) {
		for i := 1; i <= 3; i++ {
			if _, body := getHost(t, url+"count.sh", "alice.example"); body != fmt.Sprintf("hits %d\n", i) {
				t.Fatalf("alice's counter, request %d: %q", i, body)
			}
		}
		// bob's /data is his own: none of alice's files are in it.
		if _, body := getHost(t, url+"probe.sh", "bob.example"); !strings.Contains(body, "\ndata\n") {
			t.Errorf("bob's /data after alice's counter: want it empty\n%s", body)
		}
		if _, body := getHost(t, url+"count.sh", "bob.example"); body != "hits 1\n" {
			t.Errorf("bob's counter: %q, want its own, at 1", body)
		}
		fi, err := os.Stat(filepath.Join(aliceData, "count"))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != ua.Nobody || st.Gid != ua.Nobody {
			t.Errorf("alice's counter is owned by %d:%d on the host, want her nobody %d", st.Uid, st.Gid, ua.Nobody)
		}
		if fi, err := os.Stat(filepath.Join(bobData, "count")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != ub.Nobody {
			t.Errorf("bob's counter: %v, owner %v; want his nobody %d", err, fi, ub.Nobody)
		}
		// The quota: 2M, a write of 12.5M stops at ENOSPC.
		if _, body := getHost(t, url+"fill.sh", "alice.example"); body != "No space left on device\ndone\n" {
			t.Errorf("filling alice's 2M quota: %q, want ENOSPC", body)
		}
		if _, body := getHost(t, url+"count.sh", "alice.example"); body != "hits 4\n" {
			t.Errorf("alice's counter after the fill: %q, want hits 4 (the data survives)", body)
		}
	})
	t.Run("unknown host", func(t *testing.T) {
		if resp, _ := getHost(t, srv.base+"/", "carol.example"); resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("unknown host: %d, want 421", resp.StatusCode)
		}
		if resp, body := getHost(t, srv.base+"/", "Alice.Example."); resp.StatusCode != 200 || body != "alice\n" {
			t.Errorf("Alice.Example.: %d %q, want alice's index", resp.StatusCode, body)
		}
	})
	srv.stop(t)
	if mounted(t, aliceData) {
		t.Errorf("alice's data volume is still mounted after cgibox stopped")
	}
	assertNothingLeft(t)
}

// mounted reports whether dir is a mount point.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// TestNoisyNeighbour: site A holds its whole quota with slow scripts and is
// refused beyond it, while site B's requests keep the latency they have
// alone.
func TestNoisyNeighbour(t *testing.T) {
	requireContainerd(t)
	dir := openDir(t)
	slow := plain + "echo started\nsleep 30\n"
	fast := plain + "echo fast\n"
	a := hostSite(t, dir, "a", map[string]string{"slow.sh": slow})
	b := hostSite(t, dir, "b", map[string]string{"fast.sh": fast})
	file := filepath.Join(dir, "sites.toml")
	os.WriteFile(file, []byte(fmt.Sprintf(`
[[site]]
name = "a"
hosts = ["a.example"]
root = %q
[site.limits]
concurrent = 3

[[site]]
name = "b"
hosts = ["b.example"]
root = %q
`, a, b)), 0o644)
	srv := startCgibox(t, "--config", file)

	latency := func(n int) time.Duration {
		var ds []time.Duration
		for range n {
			start := time.Now()
			resp, body := getHost(t, srv.base+"/cgi-bin/fast.sh", "b.example")
			if resp.StatusCode != 200 || body != "fast\n" {
				t.Fatalf("B's request: %d %q", resp.StatusCode, body)
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	latency(3) // B's pool fills
	alone := latency(15)

	// A fills its quota: three slow scripts, each seen to have started.
	var held []*http.Response
	var mu sync.Mutex
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range held {
			r.Body.Close() // the client goes: the scripts are killed
		}
	}()
	for range 3 {
		req, _ := http.NewRequest("GET", srv.base+"/cgi-bin/slow.sh", nil)
		req.Host = "a.example"
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("A's slow request: %v %v", resp, err)
		}
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		if line != "started\n" {
			t.Fatalf("A's slow script: %q", line)
		}
		mu.Lock()
		held = append(held, resp)
		mu.Unlock()
	}
	refused := 0
	for range 5 {
		if resp, _ := getHost(t, srv.base+"/cgi-bin/slow.sh", "a.example"); resp.StatusCode == http.StatusTooManyRequests {
			refused++
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("A's 429 has no Retry-After")
			}
		}
	}
	if refused != 5 {
		t.Errorf("A over its quota: %d of 5 requests refused 429, want all", refused)
	}
	loaded := latency(15)
	t.Logf("B's median latency: alone %v, beside A at its quota %v", alone, loaded)
	if bound := 2*alone + 50*time.Millisecond; loaded > bound {
		t.Errorf("B's median latency beside A: %v, alone %v; want at most %v", loaded, alone, bound)
	}
}

// TestReloadSites: SIGHUP adds a site while a streaming response of another
// is in flight, which ends intact; a bad file is refused and the sites
// served before keep serving.
func TestReloadSites(t *testing.T) {
	requireContainerd(t)
	dir := openDir(t)
	stream := plain + "echo first\nsleep 3\necho last\n"
	alice := hostSite(t, dir, "alice", map[string]string{"stream.sh": stream})
	carol := hostSite(t, dir, "carol", nil)
	file := filepath.Join(dir, "sites.toml")
	one := fmt.Sprintf("[[site]]\nname = \"alice\"\nhosts = [\"alice.example\"]\nroot = %q\n", alice)
	two := one + fmt.Sprintf("\n[[site]]\nname = \"carol\"\nhosts = [\"carol.example\"]\nroot = %q\n", carol)
	os.WriteFile(file, []byte(one), 0o644)
	srv := startCgibox(t, "--config", file)

	req, _ := http.NewRequest("GET", srv.base+"/cgi-bin/stream.sh", nil)
	req.Host = "alice.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, _ := br.ReadString('\n'); line != "first\n" {
		t.Fatalf("stream's first line: %q", line)
	}
	os.WriteFile(file, []byte(two), 0o644)
	srv.cmd.Process.Signal(syscall.SIGHUP)
	if !waitFor(10*time.Second, func() bool {
		r, body := getHost(t, srv.base+"/", "carol.example")
		return r.StatusCode == 200 && body == "carol\n"
	}) {
		t.Fatalf("carol is not served after SIGHUP:\n%s", srv.stderr.String())
	}
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "last\n" {
		t.Errorf("the stream in flight during the reload: rest %q, %v; want last and a clean end", rest, err)
	}

	os.WriteFile(file, []byte(two+"\n[server]\nlisen = 1\n"), 0o644)
	srv.cmd.Process.Signal(syscall.SIGHUP)
	if !waitFor(10*time.Second, func() bool { return strings.Contains(srv.stderr.String(), "new configuration is refused") }) {
		t.Fatalf("a bad file on SIGHUP is not reported:\n%s", srv.stderr.String())
	}
	if !strings.Contains(srv.stderr.String(), "sites.toml:12: server.lisen: unknown key") {
		t.Errorf("the refusal does not say what and where:\n%s", srv.stderr.String())
	}
	for _, host := range []string{"alice.example", "carol.example"} {
		if r, _ := getHost(t, srv.base+"/", host); r.StatusCode != 200 {
			t.Errorf("%s after a refused reload: %d, want still served", host, r.StatusCode)
		}
	}
}

// TestHostingExample serves examples/hosting as the README shows it: the
// hit counter counts in alice's data directory, bob has none, and an
// unknown host gets the default site.
func TestHostingExample(t *testing.T) {
	requireContainerd(t)
	dir := filepath.Join(openDir(t), "hosting")
	if err := os.CopyFS(dir, os.DirFS("../../examples/hosting")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, "alice", "data")) // should a run in the tree have left one
	srv := startCgibox(t, "--config", filepath.Join(dir, "sites.toml"))
	for i := 1; i <= 2; i++ {
		_, body := getHost(t, srv.base+"/cgi-bin/counter.sh", "alice.localhost")
		if want := fmt.Sprintf("This page has been seen %d times.\n", i); body != want {
			t.Fatalf("alice's counter, request %d: %q, want %q", i, body, want)
		}
	}
	if _, body := getHost(t, srv.base+"/cgi-bin/hello.sh", "bob.localhost"); !strings.Contains(body, "Bob has no data directory") {
		t.Errorf("bob's hello: %q", body)
	}
	if resp, _ := getHost(t, srv.base+"/", "bob.localhost"); resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("bob's header: %q", resp.Header.Get("X-Frame-Options"))
	}
	if _, body := getHost(t, srv.base+"/", "localhost"); !strings.Contains(body, "No site is configured for this host name") {
		t.Errorf("unknown host: %q, want the default site", body)
	}
}
