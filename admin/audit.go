package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/cgibox/cgibox/gateway"
	"github.com/cgibox/cgibox/internal/safetext"
)

// Audit writes one JSON line per CGI job: what ran, where, with which
// limits, how it ended and what it cost. Lines are appended whole (one
// write each, O_APPEND) so that logrotate's copy or move never cuts one;
// Reopen, on SIGUSR1, opens the file again after a move. It holds no
// queue: a record is written before the request's goroutine moves on.
type Audit struct {
	path    string // "" when writing to a stream that is not reopened
	runtime string
	log     *slog.Logger

	mu  sync.Mutex
	w   io.Writer
	f   *os.File // the open file; nil for a stream
	buf []byte
}

// maxAuditLine bounds one record; longer fields (a script name) are cut.
const maxAuditLine = 8 << 10

// OpenAudit opens path for appending ("-" is stdout). runtime names the
// OCI runtime jobs run with, for the records.
func OpenAudit(path, runtime string, stdout io.Writer, log *slog.Logger) (*Audit, error) {
	a := &Audit{runtime: runtime, log: log}
	if path == "-" {
		a.w = stdout
		return a, nil
	}
	a.path = path
	if err := a.Reopen(); err != nil {
		return nil, err
	}
	return a, nil
}

// Reopen opens the file again, for logrotate's move-then-signal. A file
// that cannot be opened keeps the old one and returns why.
func (a *Audit) Reopen() error {
	if a.path == "" {
		return nil
	}
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	a.mu.Lock()
	old := a.f
	a.f, a.w = f, f
	a.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Close closes the file.
func (a *Audit) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f, a.w = nil, io.Discard
	return err
}

// auditRecord is one line. Durations are in seconds, sizes in bytes.
type auditRecord struct {
	Time       time.Time   `json:"time"`
	RequestID  string      `json:"request_id"`
	Site       string      `json:"site"`
	Script     string      `json:"script"`
	Image      string      `json:"image"`
	Runtime    string      `json:"runtime"`
	Container  string      `json:"container,omitempty"`
	Prepared   bool        `json:"prepared"`
	Limits     auditLimits `json:"limits"`
	Status     int         `json:"status"`
	ExitCode   int         `json:"exit_code"`
	End        string      `json:"end"`
	Aborted    bool        `json:"aborted"`
	CPU        float64     `json:"cpu_seconds"`
	PeakMemory int64       `json:"peak_memory_bytes"`
	OOMKills   uint64      `json:"oom_kills"`
	BytesIn    int64       `json:"bytes_in"`
	BytesOut   int64       `json:"bytes_out"`
	Duration   float64     `json:"duration_seconds"`
	Phases     auditPhases `json:"phases"`
}

type auditLimits struct {
	Timeout float64 `json:"timeout_seconds"`
	Memory  int64   `json:"memory_bytes"`
	CPUs    float64 `json:"cpus"`
	Pids    int64   `json:"pids"`
	Output  int64   `json:"output_bytes"`
	Tmp     int64   `json:"tmp_bytes"`
}

type auditPhases struct {
	Create    float64 `json:"create"`
	Task      float64 `json:"task"`
	Start     float64 `json:"start"`
	FirstByte float64 `json:"first_byte"`
	Run       float64 `json:"run"`
	Drain     float64 `json:"drain"`
}

// Record writes the line of a CGI request; other requests have none.
func (a *Audit) Record(r gateway.Record) {
	c := r.CGI
	if c == nil {
		return
	}
	res, l := c.Result, c.Limits
	end := string(res.Reason)
	if end == "" {
		end = string(gateway.NotStarted)
	}
	rec := auditRecord{
		Time: r.Time.UTC(), RequestID: r.RequestID, Site: r.Site,
		Script: cut(safetext.Escape(c.Script), 1024), Image: c.Image, Runtime: a.runtime,
		Container: res.Container, Prepared: res.Prepared,
		Limits: auditLimits{Timeout: l.Wall.Seconds(), Memory: l.Memory, CPUs: l.CPU, Pids: l.Pids, Output: l.Output, Tmp: l.Tmp},
		Status: r.Status, ExitCode: res.ExitCode, End: end, Aborted: c.Aborted,
		CPU: res.CPU.Seconds(), PeakMemory: res.PeakMemory, OOMKills: res.OOMKills,
		BytesIn: c.BytesIn, BytesOut: r.Bytes, Duration: r.Duration.Seconds(),
		Phases: auditPhases{
			Create: res.Phases.Create.Seconds(), Task: res.Phases.Task.Seconds(), Start: res.Phases.Start.Seconds(),
			FirstByte: res.Phases.FirstByte.Seconds(), Run: res.Duration.Seconds(), Drain: res.Phases.Drain.Seconds(),
		},
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	b, err := json.Marshal(rec)
	if err != nil || len(b) >= maxAuditLine {
		a.log.Error("audit record not written", "request_id", r.RequestID, "err", err, "bytes", len(b))
		return
	}
	a.buf = append(append(a.buf[:0], b...), '\n')
	if _, err := a.w.Write(a.buf); err != nil {
		a.log.Error("writing the audit log", "request_id", r.RequestID, "err", err)
	}
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Recorders sends each Record to every recorder in turn.
type Recorders []gateway.Recorder

// Record sends r to each.
func (rs Recorders) Record(r gateway.Record) {
	for _, x := range rs {
		x.Record(r)
	}
}
