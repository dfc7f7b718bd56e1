package report

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgibox/cgibox/bench/load"
	"github.com/cgibox/cgibox/bench/procmem"
)

func closed(peer, work string, c int, rps, p50, p99 float64, errs int) load.Cell {
	return load.Cell{Peer: peer, Workload: work, Result: load.Result{
		Mode: load.Closed, Concurrency: c, RPS: rps, P50: p50, P90: p50, P99: p99, Errors: errs, Samples: 100,
	}}
}

func open(peer string, p50, p99 float64) load.Cell {
	return load.Cell{Peer: peer, Workload: WorkCGI, Result: load.Result{
		Mode: load.Open, Rate: 10, RPS: 10, P50: p50, P90: p50, P99: p99, Samples: 50,
	}}
}

// sample is a run without the pool: no warm cells.
func sample() *Results {
	return &Results{
		Meta: Meta{Started: "2026-12-03T06:00:00Z", CellTime: "5s", LightRate: 10, PoolNote: "no --pool flag"},
		Cells: []load.Cell{
			closed(PeerCold, WorkCGI, 1, 11, 90, 120, 0),
			closed(PeerCold, WorkCGI, 8, 15, 500, 880, 2),
			open(PeerCold, 95, 130),
			closed(PeerNaive, WorkCGI, 1, 16, 60, 80, 0),
			closed(PeerPython, WorkCGI, 1, 200, 4.5, 9, 0),
			closed(PeerPython, WorkCGI, 8, 240, 30, 90, 0),
			open(PeerPython, 5, 10),
			closed(PeerNginx, WorkStatic1K, 1, 16000, 0.05, 0.1, 0),
			closed(PeerNginx, WorkStatic1K, 8, 50000, 0.1, 0.3, 0),
			closed(PeerCgibox, WorkStatic1K, 1, 8000, 0.1, 0.2, 0),
			closed(PeerCgibox, WorkStatic1K, 8, 40000, 0.15, 0.4, 0),
			closed(PeerCgibox, WorkStatic1M, 1, 2000, 0.4, 0.8, 0),
		},
		Memory: []procmem.Sample{{Peer: PeerCold, Serve: procmem.Usage{RssKiB: 30 * 1024}}},
	}
}

func target(t *testing.T, r *Results, name string) Target {
	t.Helper()
	for _, x := range r.Targets {
		if x.Name == name {
			return x
		}
	}
	t.Fatalf("no target %q in %+v", name, r.Targets)
	return Target{}
}

func TestEvaluate(t *testing.T) {
	r := sample()
	r.Evaluate()
	tests := []struct {
		name, status string
		value        float64
	}{
		{"warm, light load: p50 cgibox / python", statusNA, 0},
		{"cold p50 (c=1) / naive containerd p50 (c=1)", statusNotMet, 1.5},
		{"saturation c=8, cold: req/s", statusNotMet, 15},
		{"saturation c=8, cold: errors", statusNotMet, 2},
		{"saturation c=8, warm: p99", statusNA, 0},
		{"static 1 KiB c=1: req/s cgibox / nginx", statusNotMet, 0.5},
		{"static 1 KiB c=8: req/s cgibox / nginx", statusMet, 0.8},
		{"idle RSS, cold", statusMet, 30},
		{"per prepared container: shim + launcher RSS", statusNA, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := target(t, r, tt.name)
			if got.Status != tt.status || got.Status != statusNA && !near(got.Value, tt.value) {
				t.Errorf("got %+v, want status %q, value %g", got, tt.status, tt.value)
			}
		})
	}
	warm := target(t, r, "warm, light load: p50 cgibox / python")
	if !strings.Contains(warm.Note, "no --pool flag") || !strings.Contains(warm.Note, "cold instead: 19.0×") {
		t.Errorf("warm target note %q: want the pool note and the cold ratio", warm.Note)
	}
}

func TestEvaluateWarm(t *testing.T) {
	r := sample()
	r.Meta.Pool = true
	r.Cells = append(r.Cells, open(PeerWarm, 4, 40), closed(PeerWarm, WorkCGI, 8, 45, 100, 200, 0))
	r.Memory = append(r.Memory, procmem.Sample{Peer: PeerWarm, Serve: procmem.Usage{RssKiB: 45 * 1024},
		Containers: procmem.ContainerSummary{Count: 4, PerContainerRss: 12 * 1024, PerContainerPss: 8 * 1024}})
	r.Evaluate()
	for name, want := range map[string]string{
		"warm, light load: p50 cgibox / python":       statusMet,
		"warm, light load: p99 cgibox / python":       statusNotMet,
		"saturation c=8, warm: req/s":                 statusMet,
		"saturation c=8, warm: p99":                   statusMet,
		"saturation c=8, warm: errors":                statusMet,
		"idle RSS, warm":                              statusNotMet,
		"per prepared container: shim + launcher RSS": statusMeasured,
	} {
		if got := target(t, r, name); got.Status != want {
			t.Errorf("%s: %+v, want %s", name, got, want)
		}
	}
	if got := target(t, r, "per prepared container: shim + launcher RSS"); !near(got.Value, 12) {
		t.Errorf("per container %g MiB, want 12", got.Value)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestWriteMarkdown(t *testing.T) {
	r := sample()
	r.Evaluate()
	var b bytes.Buffer
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| cgibox-cold | cgi-hello | c=1 | 90.0 | 90.0 | 120 | 11.0 | 0 |",
		"| python | cgi-hello | open 10/s | 5.00 | 5.00 | 10.0 | 10.0 | 0 |",
		"| nginx | static-1k | c=8 |",
		"| static 1 KiB c=8: req/s cgibox / nginx | 0.80× | ≥ 0.70× | met |",
		"| saturation c=8, cold: errors | 2 | ≤ 0 | not met |",
		"| saturation c=8, warm: p99 | - |  | not available (no --pool flag) |",
		"**cgibox warm: not available (no --pool flag).**",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	// CGI rows before static rows; within a peer c=1, c=8, then open.
	if i, j := strings.Index(md, "| cgibox-cold | cgi-hello | c=8"), strings.Index(md, "| cgibox-cold | cgi-hello | open"); i < 0 || j < i {
		t.Errorf("rows out of order:\n%s", md)
	}
}

func TestWriteChart(t *testing.T) {
	r := sample()
	var b bytes.Buffer
	if err := r.WriteChart(&b); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("BENCH_CHART_DIR"); dir != "" {
		os.WriteFile(filepath.Join(dir, "chart-test.png"), b.Bytes(), 0o644)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatalf("chart is not a PNG: %v", err)
	}
	if sz := img.Bounds().Size(); sz.X < 1000 || sz.Y < 700 {
		t.Errorf("chart is %v, want at least 1000×700", sz)
	}
}

func TestReadLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cells.jsonl")
	os.WriteFile(path, []byte(`{"peer":"a","workload":"w","mode":"closed","concurrency":1,"rps":3}`+"\n\n"+`{"peer":"b"}`+"\n"), 0o644)
	cells, err := ReadLines[load.Cell](path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) != 2 || cells[0].Peer != "a" || cells[0].RPS != 3 || cells[1].Peer != "b" {
		t.Errorf("ReadLines = %+v", cells)
	}
	if got, err := ReadLines[load.Cell](filepath.Join(t.TempDir(), "none")); err != nil || got != nil {
		t.Errorf("missing file: %v, %v; want nothing and no error", got, err)
	}
	os.WriteFile(path, []byte("{not json\n"), 0o644)
	if _, err := ReadLines[load.Cell](path); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Errorf("bad line: %v, want an error naming line 1", err)
	}
}

func TestFailedCell(t *testing.T) {
	r := sample()
	r.Cells = append(r.Cells, load.Cell{Peer: PeerNaive, Workload: WorkCGI, Failed: "warm-up of http://x: status 502",
		Result: load.Result{Mode: load.Closed, Concurrency: 8}})
	for i, c := range r.Cells {
		if c.Peer == PeerNaive && c.Concurrency == 1 {
			r.Cells[i] = load.Cell{Peer: PeerNaive, Workload: WorkCGI, Failed: "no", Result: load.Result{Mode: load.Closed, Concurrency: 1}}
		}
	}
	r.Evaluate()
	if got := target(t, r, "cold p50 (c=1) / naive containerd p50 (c=1)"); got.Status != statusNA || got.Note != "naive-containerd failed" {
		t.Errorf("target against a failed cell: %+v, want not available because naive-containerd failed", got)
	}
	var b bytes.Buffer
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| naive-containerd | cgi-hello | c=8 | failed |", "- naive-containerd cgi-hello c=8: warm-up of http://x: status 502"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("results.md lacks %q:\n%s", want, b.String())
		}
	}
	if err := r.WriteChart(&bytes.Buffer{}); err != nil {
		t.Errorf("chart with a failed cell: %v", err)
	}
}
