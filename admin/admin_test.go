package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cgibox/cgibox/gateway"
	"github.com/cgibox/cgibox/sandbox"
)

func cgiRecord(site string, reason sandbox.Reason) gateway.Record {
	return gateway.Record{
		Time: time.Unix(1700000000, 0), Duration: 120 * time.Millisecond, RequestID: "rid1", Site: site,
		Method: "GET", URI: "/cgi-bin/x", Status: 200, Bytes: 42,
		CGI: &gateway.CGIRecord{
			Script: "/cgi-bin/x", Image: "cgibox.local/busybox:latest", BytesIn: 7,
			Limits: sandbox.Limits{Wall: 10 * time.Second, Memory: 64 << 20, CPU: 0.5, Pids: 64, Output: 1 << 20, Tmp: 16 << 20},
			Result: sandbox.Result{Reason: reason, ExitCode: 0, CPU: 30 * time.Millisecond, PeakMemory: 3 << 20, OOMKills: 0,
				Container: "cgibox-rid1", Duration: 80 * time.Millisecond,
				Phases: sandbox.Phases{Create: time.Millisecond, Task: 2 * time.Millisecond, Start: 3 * time.Millisecond}},
		},
	}
}

func TestMetricsRecord(t *testing.T) {
	m := NewMetrics("v1.2.3")
	m.Record(gateway.Record{Site: "alice", Status: 200})
	m.Record(gateway.Record{Site: "alice", Status: 404})
	m.Record(gateway.Record{Status: 421})
	m.Record(cgiRecord("alice", sandbox.Exited))
	m.Record(cgiRecord("alice", sandbox.Timeout))
	m.Record(cgiRecord("bob", ""))
	for _, tt := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"alice", "static", "200"}, 1},
		{[]string{"alice", "static", "404"}, 1},
		{[]string{"none", "static", "421"}, 1},
		{[]string{"alice", "cgi", "200"}, 2},
		{[]string{"bob", "cgi", "200"}, 1},
	} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(tt.labels...)); got != tt.want {
			t.Errorf("cgibox_requests_total%v = %v, want %v", tt.labels, got, tt.want)
		}
	}
	for _, tt := range []struct {
		site, reason string
		want         float64
	}{{"alice", "exited", 1}, {"alice", "timeout", 1}, {"bob", "not-started", 1}} {
		if got := testutil.ToFloat64(m.ends.WithLabelValues(tt.site, tt.reason)); got != tt.want {
			t.Errorf("cgibox_cgi_ends_total{%s,%s} = %v, want %v", tt.site, tt.reason, got, tt.want)
		}
	}
	if got := testutil.ToFloat64(m.cpu.WithLabelValues("alice")); got < 0.059 || got > 0.061 {
		t.Errorf("cgibox_cgi_cpu_seconds_total{alice} = %v, want 0.06", got)
	}
	if n := testutil.CollectAndCount(m.duration); n != 2 {
		t.Errorf("%d CGI duration histograms, want one per site (2)", n)
	}
}

type fakeSandbox struct {
	pools []sandbox.PoolStats
	stats sandbox.Stats
}

func (f fakeSandbox) Pools() []sandbox.PoolStats { return f.pools }
func (f fakeSandbox) Stats() sandbox.Stats       { return f.stats }

func TestHandler(t *testing.T) {
	m := NewMetrics("v1.2.3")
	m.CollectSandbox(fakeSandbox{
		pools: []sandbox.PoolStats{{Site: "alice", Image: "img", Ready: 2, Target: 3, Hits: 5, Misses: 1}, {Site: "alice", Image: "img", Ready: 1}},
		stats: sandbox.Stats{ContainerdUp: true, Created: 7, Deleted: 6, DaemonRestarts: 1},
	})
	m.Record(gateway.Record{Site: "alice", Status: 200})
	var readyErr error
	srv := httptest.NewServer(Handler(m, func(context.Context) error { return readyErr }, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz ready: %d %q", code, body)
	}
	readyErr = &NotReady{Reason: "containerd does not answer", Err: errors.New("dial unix: no such file")}
	if code, body := get("/readyz"); code != 503 || body != "not ready: containerd does not answer\n" {
		t.Errorf("/readyz not ready: %d %q", code, body)
	}
	readyErr = errors.New("secret detail")
	if code, body := get("/readyz"); code != 503 || strings.Contains(body, "secret") {
		t.Errorf("/readyz with an unexplained error: %d %q, want 503 without the detail", code, body)
	}
	code, body := get("/metrics")
	for _, want := range []string{
		`cgibox_requests_total{code="200",kind="static",site="alice"} 1`,
		`cgibox_build_info{goversion="go`,
		`cgibox_pool_ready{image="img",site="alice"} 3`,
		`cgibox_pool_hits_total{image="img",site="alice"} 5`,
		"cgibox_containerd_up 1\n",
		"cgibox_containers_created_total 7\n",
		"cgibox_containers_deleted_total 6\n",
		"cgibox_containerd_restarts_total 1\n",
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %q", code, want)
		}
	}
	if code, _ := get("/"); code != 404 {
		t.Errorf("/: %d, want 404 (only the three endpoints)", code)
	}
}

func TestAudit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	a, err := OpenAudit(path, "runc", nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Record(gateway.Record{Site: "alice", Status: 200}) // static: no line
	oom := cgiRecord("alice", sandbox.OutOfMemory)
	oom.CGI.Result.OOMKills, oom.CGI.Result.ExitCode = 1, 137
	a.Record(oom)
	// logrotate moves the file, then signals: the next line goes to a new one.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	a.Record(cgiRecord("bob", sandbox.Exited))
	if err := a.Reopen(); err != nil {
		t.Fatal(err)
	}
	a.Record(cgiRecord("carol", sandbox.Timeout))

	lines := func(p string) []map[string]any {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var out []map[string]any
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("%s: line %q is not JSON: %v", p, sc.Text(), err)
			}
			out = append(out, m)
		}
		return out
	}
	old, cur := lines(path+".1"), lines(path)
	if len(old) != 2 || len(cur) != 1 {
		t.Fatalf("%d lines in the rotated file, %d in the new one; want 2 and 1", len(old), len(cur))
	}
	r := old[0]
	want := map[string]any{
		"request_id": "rid1", "site": "alice", "script": "/cgi-bin/x", "image": "cgibox.local/busybox:latest",
		"runtime": "runc", "end": "oom", "exit_code": 137.0, "oom_kills": 1.0, "cpu_seconds": 0.03,
		"peak_memory_bytes": float64(3 << 20), "bytes_in": 7.0, "bytes_out": 42.0, "status": 200.0,
		"container": "cgibox-rid1", "duration_seconds": 0.12, "time": "2023-11-14T22:13:20Z",
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("audit %s = %v (%T), want %v", k, r[k], r[k], v)
		}
	}
	limits, _ := r["limits"].(map[string]any)
	if limits["memory_bytes"] != float64(64<<20) || limits["timeout_seconds"] != 10.0 || limits["cpus"] != 0.5 {
		t.Errorf("audit limits = %v", limits)
	}
	phases, _ := r["phases"].(map[string]any)
	if phases["task"] != 0.002 || phases["run"] != 0.08 {
		t.Errorf("audit phases = %v", phases)
	}
	if old[1]["site"] != "bob" || cur[0]["site"] != "carol" || cur[0]["end"] != "timeout" {
		t.Errorf("after the move: %v in the old file, %v in the new", old[1]["site"], cur[0]["site"])
	}
}

func TestAuditStdout(t *testing.T) {
	var b strings.Builder
	a, err := OpenAudit("-", "crun", &b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a.Record(cgiRecord("alice", sandbox.Exited))
	if err := a.Reopen(); err != nil {
		t.Errorf("Reopen of stdout: %v", err)
	}
	if !strings.HasSuffix(b.String(), "\n") || !strings.Contains(b.String(), `"runtime":"crun"`) || strings.Count(b.String(), "\n") != 1 {
		t.Errorf("stdout audit: %q", b.String())
	}
}
