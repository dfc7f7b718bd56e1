package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgibox/cgibox/internal/testenv"
)

var adminRE = regexp.MustCompile(`msg="admin listener: [^"]*" address=(http://\S+/)`)

// adminURL is the admin listener's base URL from srv's log.
func adminURL(t *testing.T, srv *server) string {
	t.Helper()
	var base string
	if !waitFor(10*time.Second, func() bool {
		m := adminRE.FindStringSubmatch(srv.stderr.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	}) {
		t.Fatalf("no admin listener in the log:\n%s", srv.stderr.String())
	}
	return base
}

// TestAuditRecords: the audit record of a normal exit, a timeout and an
// OOM kill carries the right end and the CPU and memory the script used.
func TestAuditRecords(t *testing.T) {
	requireContainerd(t)
	root := cgiSite(t, map[string]string{
		"ok.sh":   "#!/bin/sh\necho Content-Type: text/plain\necho\ni=0; while [ $i -lt 20000 ]; do i=$((i+1)); done\necho done\n",
		"slow.sh": "#!/bin/sh\necho Content-Type: text/plain\necho\ni=0; while [ $i -lt 20000 ]; do i=$((i+1)); done\nsleep 30\n",
		// dd's one 300M buffer is filled by the kernel in a single read: the
		// OOM comes at once, well before the deadline even on a slow host
		// (a pipe that fills tail's buffer took longer than 2s at 0.5 CPU).
		"oom.sh": "#!/bin/sh\necho Content-Type: text/plain\necho\ndd if=/dev/zero of=/dev/null bs=300M count=1\n",
	})
	audit := filepath.Join(t.TempDir(), "audit.log")
	srv := startCgibox(t, "-d", root, "--audit", audit, "--timeout", "2s", "--memory", "32M")
	for _, s := range []string{"ok.sh", "slow.sh", "oom.sh"} {
		resp, err := http.Get(srv.base + "/cgi-bin/" + s)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) // a cut response ends with an error: fine
		resp.Body.Close()
	}
	var recs []map[string]any
	if !waitFor(10*time.Second, func() bool {
		recs = readJSONLines(t, audit)
		return len(recs) == 3
	}) {
		t.Fatalf("%d audit records, want 3: %v", len(recs), recs)
	}
	want := map[string]string{"/cgi-bin/ok.sh": "exited", "/cgi-bin/slow.sh": "timeout", "/cgi-bin/oom.sh": "oom"}
	for _, r := range recs {
		script, _ := r["script"].(string)
		if r["end"] != want[script] {
			t.Errorf("%s: end %v, want %s (record %v)", script, r["end"], want[script], r)
		}
		if cpu, _ := r["cpu_seconds"].(float64); cpu <= 0 {
			t.Errorf("%s: cpu_seconds %v, want above zero", script, r["cpu_seconds"])
		}
		if mem, _ := r["peak_memory_bytes"].(float64); mem <= 0 {
			t.Errorf("%s: peak_memory_bytes %v, want above zero", script, r["peak_memory_bytes"])
		}
		if kills, _ := r["oom_kills"].(float64); (script == "/cgi-bin/oom.sh") != (kills > 0) {
			t.Errorf("%s: oom_kills %v", script, r["oom_kills"])
		}
		limits, _ := r["limits"].(map[string]any)
		if limits["memory_bytes"] != float64(32<<20) || limits["timeout_seconds"] != 2.0 || r["runtime"] != "runc" || r["site"] != "default" {
			t.Errorf("%s: limits %v, runtime %v, site %v", script, limits, r["runtime"], r["site"])
		}
	}
}

func readJSONLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// freePort is a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestPrometheusScrapes: a real Prometheus scrapes the admin listener, and
// its query API counts the requests the test made.
func TestPrometheusScrapes(t *testing.T) {
	requireContainerd(t)
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		testenv.Skip(t, "no prometheus binary (apt-get install prometheus)")
	}
	root := cgiSite(t, map[string]string{"hi.sh": "#!/bin/sh\necho Content-Type: text/plain\necho\necho hi\n"})
	os.WriteFile(filepath.Join(root, "page.html"), []byte("page\n"), 0o644)
	srv := startCgibox(t, "-d", root, "--admin", "127.0.0.1:0")
	admin := adminURL(t, srv)
	if resp, body := get(t, admin+"metrics", nil); resp.StatusCode != 200 || !strings.Contains(string(body), "cgibox_build_info") {
		t.Fatalf("/metrics: %d\n%s", resp.StatusCode, body)
	}

	dir := t.TempDir()
	port := freePort(t)
	u, _ := url.Parse(admin)
	conf := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(conf, []byte(fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: cgibox\n    static_configs:\n      - targets: [%q]\n", u.Host)), 0o644)
	prom := exec.Command(bin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	logs := &syncBuffer{max: 1 << 20}
	prom.Stdout, prom.Stderr = logs, logs
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		prom.Process.Signal(syscall.SIGTERM)
		prom.Wait()
		if t.Failed() {
			t.Logf("prometheus:\n%s", logs.String())
		}
	}()

	const static, cgi = 3, 2
	for range static {
		get(t, srv.base+"/page.html", nil)
	}
	for range cgi {
		get(t, srv.base+"/cgi-bin/hi.sh", nil)
	}
	query := func(q string) (string, bool) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/query?query=%s", port, url.QueryEscape(q)))
		if err != nil {
			return "", false
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Data   struct {
				Result []struct {
					Value [2]any
				}
			}
		}
		if json.NewDecoder(resp.Body).Decode(&r) != nil || r.Status != "success" || len(r.Data.Result) != 1 {
			return "", false
		}
		v, _ := r.Data.Result[0].Value[1].(string)
		return v, true
	}
	var got string
	check := func(q, want string) {
		t.Helper()
		if !waitFor(60*time.Second, func() bool { v, ok := query(q); got = v; return ok && v == want }) {
			t.Errorf("Prometheus: %s = %q, want %s", q, got, want)
		}
	}
	check(`sum(cgibox_requests_total{kind="static",code="200"})`, fmt.Sprint(static))
	check(`sum(cgibox_requests_total{kind="cgi",code="200"})`, fmt.Sprint(cgi))
	check(`sum(cgibox_cgi_ends_total{reason="exited"})`, fmt.Sprint(cgi))
	check(`sum(cgibox_cgi_request_duration_seconds_count)`, fmt.Sprint(cgi))
	check(`up{job="cgibox"}`, "1")
}

// TestContainerdOutage: while the private containerd does not answer,
// static files are served, CGI answers 503 and /readyz says why; when it
// answers again CGI works without a restart of cgibox. A daemon that dies
// under a running script is restarted by cgibox, and the script's
// container is deleted once it answers.
func TestContainerdOutage(t *testing.T) {
	root := cgiSite(t, map[string]string{
		"hello.sh": helloScript,
		"slow.sh":  "#!/bin/sh\necho Content-Type: text/plain\necho\necho begun\nsleep 60\n",
	})
	srv, dataDir := servePrivate(t, root, "--admin", "127.0.0.1:0", "--pool", "0", "--timeout", "5s")
	admin := adminURL(t, srv)
	readyz := func() (int, string) {
		resp, body := get(t, admin+"readyz", nil)
		return resp.StatusCode, string(body)
	}
	metric := func(name string) string {
		_, body := get(t, admin+"metrics", nil)
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(string(body))
		if m == nil {
			return ""
		}
		return m[1]
	}
	var code int
	var body string
	if !waitFor(30*time.Second, func() bool { code, body = readyz(); return code == 200 }) {
		t.Fatalf("/readyz before the outage: %d %q", code, body)
	}
	assertHello(t, srv)
	pid := privateDaemonPid(t, dataDir)

	// A daemon that stops answering: stopped by SIGSTOP.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	if !waitFor(20*time.Second, func() bool { code, body = readyz(); return code == 503 }) {
		t.Fatalf("/readyz with containerd stopped: %d %q, want 503", code, body)
	}
	if body != "not ready: containerd does not answer\n" {
		t.Errorf("/readyz with containerd stopped says %q", body)
	}
	if v := metric("cgibox_containerd_up"); v != "0" {
		t.Errorf("cgibox_containerd_up = %q with containerd stopped, want 0", v)
	}
	if resp, b := get(t, srv.base+"/index.html", nil); resp.StatusCode != 200 || string(b) != "static\n" {
		t.Errorf("static file during the outage: %d %q", resp.StatusCode, b)
	}
	if resp, _ := get(t, srv.base+"/cgi-bin/hello.sh", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("CGI during the outage: %d, want 503", resp.StatusCode)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	if !waitFor(20*time.Second, func() bool { code, body = readyz(); return code == 200 }) {
		t.Fatalf("/readyz after containerd continued: %d %q, want 200", code, body)
	}
	assertHello(t, srv)

	// A daemon that dies under a running script: cgibox restarts it.
	first, rest := streamUntilFirstLine(t, srv, "/cgi-bin/slow.sh")
	if first != "begun\n" {
		t.Fatalf("slow.sh's first line %q", first)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rest:
		// Ended by its deadline, enforced without containerd (or cut
		// off): either way it did not run its minute.
	case <-time.After(45 * time.Second):
		t.Fatal("the request under the dead daemon did not end")
	}
	if !waitFor(60*time.Second, func() bool { code, body = readyz(); return code == 200 }) {
		t.Fatalf("/readyz after containerd died: %d %q, want 200 once cgibox restarted it\n%s", code, body, srv.stderr.String())
	}
	if now := privateDaemonPid(t, dataDir); now == pid {
		t.Errorf("containerd pid %d after the restart, the dead one's", now)
	}
	assertHello(t, srv)
	if v := metric("cgibox_containerd_restarts_total"); v != "1" {
		t.Errorf("cgibox_containerd_restarts_total = %q, want 1", v)
	}
	// No job is lost track of: every container made is deleted, the dead
	// daemon's script's too, once the new daemon answers.
	var created, deleted string
	if !waitFor(60*time.Second, func() bool {
		created, deleted = metric("cgibox_containers_created_total"), metric("cgibox_containers_deleted_total")
		return created == "4" && deleted == "4"
	}) {
		t.Errorf("containers created %s, deleted %s; want 4 and 4\n%s", created, deleted, srv.stderr.String())
	}
	if !strings.Contains(srv.stderr.String(), "private containerd exited; restarting it") {
		t.Errorf("the log does not say the daemon was restarted:\n%s", srv.stderr.String())
	}
}
