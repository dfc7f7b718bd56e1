package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/cgibox/cgibox/internal/safetext"
)

// LogFormat selects how the access log is written.
type LogFormat string

const (
	// LogPython writes the access log exactly like python -m http.server:
	//	127.0.0.1 - - [24/Nov/2026 05:33:51] "GET / HTTP/1.1" 200 -
	LogPython LogFormat = "python"
	// LogJSON writes one structured slog record per request.
	LogJSON LogFormat = "json"
)

// entry is what the access log records about one request.
type entry struct {
	Remote    string
	Time      time.Time
	Method    string
	URI       string // as received, query included
	Proto     string
	Status    int
	Bytes     int64
	Duration  time.Duration
	RequestID string
	// CGI only.
	Script string
	CGI    *cgiOutcome
}

// cgiOutcome is how a script ended, for the log.
type cgiOutcome struct {
	ExitCode   int
	Reason     string
	CPU        time.Duration
	PeakMemory int64
	Aborted    bool // the response was cut after the status line went out
}

// accessLog writes entries in one format. It is safe for concurrent use.
type accessLog struct {
	format LogFormat
	mu     sync.Mutex // serialises writes to w so lines never interleave
	w      io.Writer
	json   *slog.Logger
}

func newAccessLog(format LogFormat, w io.Writer) *accessLog {
	a := &accessLog{format: format, w: w}
	if format == LogJSON {
		a.json = slog.New(slog.NewJSONHandler(w, nil))
	}
	return a
}

func (a *accessLog) log(ctx context.Context, e entry) {
	if a == nil || a.w == nil {
		return
	}
	if a.format == LogJSON {
		// JSON would only turn ESC into \u001b, which jq -r turns back,
		// and would keep bidirectional controls: the request's own words
		// are escaped as in the text format.
		attrs := []slog.Attr{
			slog.String("remote", e.Remote),
			slog.String("method", escapeLog(e.Method)),
			slog.String("uri", escapeLog(e.URI)),
			slog.String("proto", escapeLog(e.Proto)),
			slog.Int("status", e.Status),
			slog.Int64("bytes", e.Bytes),
			slog.Duration("duration", e.Duration),
			slog.String("request_id", e.RequestID),
		}
		if e.CGI != nil {
			attrs = append(attrs,
				slog.String("script", escapeLog(e.Script)),
				slog.Int("exit_code", e.CGI.ExitCode),
				slog.String("end", e.CGI.Reason),
				slog.Duration("cpu", e.CGI.CPU),
				slog.Int64("peak_memory", e.CGI.PeakMemory),
				slog.Bool("aborted", e.CGI.Aborted))
		}
		a.json.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
		return
	}
	host := e.Remote
	if h, _, err := net.SplitHostPort(e.Remote); err == nil {
		host = h
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s - - [%s] %s",
		host, e.Time.Format("02/Jan/2006 15:04:05"),
		escapeLog(fmt.Sprintf("\"%s %s %s\" %d -", e.Method, e.URI, e.Proto, e.Status)))
	if e.CGI != nil {
		// Python logs a CGI script's end on a line of its own; cgibox adds it
		// to the request's line so that one line tells the whole story.
		fmt.Fprintf(&b, " cgi=%s exit=%d end=%s cpu=%s mem=%d",
			escapeLog(e.Script), e.CGI.ExitCode, e.CGI.Reason,
			e.CGI.CPU.Round(time.Millisecond), e.CGI.PeakMemory)
		if e.CGI.Aborted {
			b.WriteString(" aborted")
		}
	}
	if e.RequestID != "" && (e.CGI != nil || e.Status >= 400) {
		fmt.Fprintf(&b, " rid=%s", e.RequestID)
	}
	b.WriteByte('\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	io.WriteString(a.w, b.String())
}

// escapeLog makes text from a request or a script safe to log: control
// characters (C0, DEL, C1, as Python's log_message escapes them),
// bidirectional controls, line separators and invalid UTF-8 become visible
// escapes and a backslash is doubled (see safetext.Escape), so that a
// request can neither forge log lines, nor drive the operator's terminal,
// nor reorder what a log line shows. A directory listing escapes names
// with the same function.
func escapeLog(s string) string { return safetext.Escape(s) }
