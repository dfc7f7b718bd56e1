// Package report turns the benchmark's measured cells and memory samples
// into its results: a markdown table, the raw numbers as JSON, a chart, and
// the targets cgibox is held to, each met or not.
package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/cgibox/cgibox/bench/load"
	"github.com/cgibox/cgibox/bench/procmem"
)

// The peers and workloads scripts/bench.sh measures, by the names it gives
// them.
const (
	PeerWarm   = "cgibox-warm"
	PeerCold   = "cgibox-cold"
	PeerCgibox = "cgibox" // static files (cgibox serves them the same with or without a pool)
	PeerNaive  = "naive-containerd"
	PeerPython = "python"
	PeerGoCGI  = "go-cgi"
	PeerNginx  = "nginx"

	WorkCGI      = "cgi-hello"
	WorkStatic1K = "static-1k"
	WorkStatic1M = "static-1m"
)

// Meta is what the run says about itself.
type Meta struct {
	Started   string            `json:"started"` // UTC, RFC 3339
	CellTime  string            `json:"cell_duration"`
	Elapsed   string            `json:"elapsed,omitempty"`
	Pool      bool              `json:"pool"`                // cgibox has --pool: the warm cells ran
	PoolNote  string            `json:"pool_note,omitempty"` // why not, when not
	LightRate float64           `json:"light_rate"`
	Env       map[string]string `json:"env,omitempty"` // versions and host facts
}

// Results is everything a run measured.
type Results struct {
	Meta    Meta             `json:"meta"`
	Cells   []load.Cell      `json:"cells"`
	Memory  []procmem.Sample `json:"memory"`
	Targets []Target         `json:"targets"`
}

// ReadLines reads a file of one JSON value per line into a slice; a
// missing file is an empty slice.
func ReadLines[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// cell finds the cell of peer and workload at concurrency c (closed loop),
// or the open-loop cell when c is 0.
func (r *Results) cell(peer, workload string, c int) (load.Cell, bool) {
	for _, x := range r.Cells {
		if x.Peer != peer || x.Workload != workload {
			continue
		}
		if c == 0 && x.Mode == load.Open || c > 0 && x.Mode == load.Closed && x.Concurrency == c {
			return x, true
		}
	}
	return load.Cell{}, false
}

func (r *Results) memory(peer string) (procmem.Sample, bool) {
	for _, m := range r.Memory {
		if m.Peer == peer {
			return m, true
		}
	}
	return procmem.Sample{}, false
}

// WriteJSON writes the results as indented JSON.
func (r *Results) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// pacing names how a cell's requests were sent.
func pacing(c load.Cell) string {
	if c.Mode == load.Open {
		return fmt.Sprintf("open %g/s", c.Rate)
	}
	return fmt.Sprintf("c=%d", c.Concurrency)
}

// sortedCells orders cells by workload, then peer (in the order the peers
// are introduced), then pacing.
func (r *Results) sortedCells() []load.Cell {
	order := func(list []string, s string) int {
		if i := slices.Index(list, s); i >= 0 {
			return i
		}
		return len(list)
	}
	works := []string{WorkCGI, WorkStatic1K, WorkStatic1M}
	peers := []string{PeerWarm, PeerCold, PeerNaive, PeerPython, PeerGoCGI, PeerNginx, PeerCgibox}
	cells := slices.Clone(r.Cells)
	slices.SortStableFunc(cells, func(a, b load.Cell) int {
		if d := order(works, a.Workload) - order(works, b.Workload); d != 0 {
			return d
		}
		if d := order(peers, a.Peer) - order(peers, b.Peer); d != 0 {
			return d
		}
		// c=1, c=8, then the open loop.
		ka, kb := a.Concurrency, b.Concurrency
		if a.Mode == load.Open {
			ka = 1 << 30
		}
		if b.Mode == load.Open {
			kb = 1 << 30
		}
		return ka - kb
	})
	return cells
}

// WriteMarkdown writes results.md: the table, the memory, the targets and
// how to read them.
func (r *Results) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# cgibox benchmark, %s\n\n", r.Meta.Started)
	fmt.Fprintf(&b, "Each cell: %s of requests after a dropped warm-up, one Go client (HTTP/1.1 keep-alive where the server keeps connections), loopback. ", r.Meta.CellTime)
	b.WriteString("Closed loop `c=N`: N workers, each sends its next request when the last is answered. ")
	fmt.Fprintf(&b, "Open loop: %g requests/s on a fixed schedule, latency from the scheduled time. ", r.Meta.LightRate)
	b.WriteString("Errors: non-200, a wrong body length or a transport error. req/s counts successful requests.\n\n")
	if r.Meta.Elapsed != "" {
		fmt.Fprintf(&b, "Whole run: %s.\n\n", r.Meta.Elapsed)
	}
	if !r.Meta.Pool {
		fmt.Fprintf(&b, "**cgibox warm: not available (%s).**\n\n", r.Meta.PoolNote)
	}
	if len(r.Meta.Env) > 0 {
		keys := make([]string, 0, len(r.Meta.Env))
		for k := range r.Meta.Env {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteString("| host | |\n|---|---|\n")
		for _, k := range keys {
			fmt.Fprintf(&b, "| %s | %s |\n", k, mdEscape(r.Meta.Env[k]))
		}
		b.WriteString("\n")
	}
	b.WriteString("## Latency and throughput\n\n")
	b.WriteString("| peer | workload | load | p50 ms | p90 ms | p99 ms | req/s | errors |\n")
	b.WriteString("|---|---|---|--:|--:|--:|--:|--:|\n")
	var failed []string
	for _, c := range r.sortedCells() {
		if c.Failed != "" {
			fmt.Fprintf(&b, "| %s | %s | %s | failed | | | | |\n", c.Peer, c.Workload, pacing(c))
			failed = append(failed, fmt.Sprintf("- %s %s %s: %s", c.Peer, c.Workload, pacing(c), mdEscape(c.Failed)))
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %d |\n",
			c.Peer, c.Workload, pacing(c), num(c.P50), num(c.P90), num(c.P99), num(c.RPS), c.Errors)
	}
	if len(failed) > 0 {
		b.WriteString("\nFailed cells:\n\n" + strings.Join(failed, "\n") + "\n")
	}
	var kinds []string
	for _, c := range r.sortedCells() {
		for k, n := range c.ErrorKinds {
			kinds = append(kinds, fmt.Sprintf("- %s %s %s: %d × %s", c.Peer, c.Workload, pacing(c), n, mdEscape(k)))
		}
	}
	if len(kinds) > 0 {
		b.WriteString("\nErrors by kind:\n\n" + strings.Join(kinds, "\n") + "\n")
	}
	if len(r.Memory) > 0 {
		b.WriteString("\n## Memory (idle, after warm-up)\n\n")
		b.WriteString("| cgibox | serve RSS MiB | containers | shim + launcher RSS per container MiB | PSS per container MiB |\n")
		b.WriteString("|---|--:|--:|--:|--:|\n")
		for _, m := range r.Memory {
			per, pss := "-", "-"
			if m.Containers.Count > 0 {
				per, pss = mib(m.Containers.PerContainerRss), mib(m.Containers.PerContainerPss)
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s |\n", m.Peer, mib(float64(m.Serve.RssKiB)), m.Containers.Count, per, pss)
		}
	}
	b.WriteString("\n## Targets\n\n")
	b.WriteString("| target | measured | limit | |\n|---|--:|--:|---|\n")
	for _, t := range r.Targets {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.Name, t.measured(), t.limit(), t.verdict())
	}
	b.WriteString("\n" + howToRead)
	_, err := io.WriteString(w, b.String())
	return err
}

const howToRead = `## How to read this

- Compare rows of this run only: the machine is shared and noisy, and the client
  runs on the same two cores as the server it measures.
- cgibox and Python close the connection after every CGI response (Python's
  documented behaviour, which cgibox keeps), so their CGI cells include a new TCP
  connection per request; Python's static cells do too (HTTP/1.0). nginx, cgibox's
  static files, go-cgi and naive-containerd keep connections alive.
- The open-loop cell at a light rate is what one user clicking sees; its p99 comes
  from few samples (rate × duration), so it is close to the maximum.
- naive-containerd is what a straightforward containerd user writes: every step of
  a container's life on the request path, with containerd's default seccomp profile.
  go-cgi (net/http/cgi, plain fork/exec) is the floor without any container.
`

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func mib(kib float64) string { return fmt.Sprintf("%.1f", kib/1024) }

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
