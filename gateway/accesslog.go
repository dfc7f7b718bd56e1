package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
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
	// Site is the site's name; "" for a server's lone implicit site, whose
	// lines stay exactly Python's.
	Site string
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
	out    *lineBatch
	json   *slog.Logger
}

func newAccessLog(format LogFormat, w io.Writer) *accessLog {
	if w == nil {
		return nil
	}
	a := &accessLog{format: format, out: &lineBatch{w: w, delay: logFlushDelay}}
	if format == LogJSON {
		a.json = slog.New(slog.NewJSONHandler(a.out, nil))
	}
	return a
}

// close writes what is batched; lines logged after it are written at once.
func (a *accessLog) close() {
	if a != nil {
		a.out.close()
	}
}

func (a *accessLog) log(ctx context.Context, e entry) {
	if a == nil {
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
		if e.Site != "" {
			attrs = append(attrs, slog.String("site", e.Site))
		}
		if e.CGI != nil {
			attrs = append(attrs,
				slog.String("script", escapeLog(e.Script)),
				slog.Int("exit_code", e.CGI.ExitCode),
				slog.String("end", e.CGI.Reason),
				slog.Duration("cpu", e.CGI.CPU),
				slog.Int64("peak_memory", e.CGI.PeakMemory),
				slog.Bool("aborted", e.CGI.Aborted),
				slog.Time("started", e.Time),
				slog.Time("ended", e.Time.Add(e.Duration)))
		}
		a.json.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
		return
	}
	var line [256]byte // most lines fit; append moves longer ones to the heap
	a.out.Write(appendText(line[:0], e))
}

// appendText appends e's line in Python's format, plus what cgibox adds.
func appendText(b []byte, e entry) []byte {
	host := e.Remote
	if h, _, err := net.SplitHostPort(e.Remote); err == nil {
		host = h
	}
	b = append(b, host...)
	b = append(b, " - - ["...)
	b = e.Time.AppendFormat(b, "02/Jan/2006 15:04:05")
	b = append(b, "] \""...)
	b = safetext.AppendEscape(b, e.Method)
	b = append(b, ' ')
	b = safetext.AppendEscape(b, e.URI)
	b = append(b, ' ')
	b = safetext.AppendEscape(b, e.Proto)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, " -"...)
	if e.Site != "" {
		b = append(b, " site="...)
		b = append(b, e.Site...)
	}
	if e.CGI != nil {
		// Python logs a CGI script's end on a line of its own; cgibox adds it
		// to the request's line so that one line tells the whole story.
		b = append(b, " cgi="...)
		b = safetext.AppendEscape(b, e.Script)
		b = append(b, " exit="...)
		b = strconv.AppendInt(b, int64(e.CGI.ExitCode), 10)
		b = append(b, " end="...)
		b = append(b, e.CGI.Reason...)
		b = append(b, " cpu="...)
		b = append(b, e.CGI.CPU.Round(time.Millisecond).String()...)
		b = append(b, " mem="...)
		b = strconv.AppendInt(b, e.CGI.PeakMemory, 10)
		if e.CGI.Aborted {
			b = append(b, " aborted"...)
		}
		// The line's time is the request's arrival, as in Python; a
		// script's line also says when the response ended and how long
		// it took (a timed-out one ended well after it began).
		b = append(b, " took="...)
		b = append(b, e.Duration.Round(time.Millisecond).String()...)
		b = append(b, " ended="...)
		b = e.Time.Add(e.Duration).AppendFormat(b, "15:04:05.000")
	}
	if e.RequestID != "" && (e.CGI != nil || e.Status >= 400) {
		b = append(b, " rid="...)
		b = append(b, e.RequestID...)
	}
	return append(b, '\n')
}

// The access log is written in batches: one write per request cost as
// much as a tenth of serving a small file.
const (
	// logFlushDelay is how late a line may reach the log: an operator
	// watching it sees every request within this time.
	logFlushDelay = 100 * time.Millisecond
	// logBatchSize bounds a batch. It is PIPE_BUF, so that a batch written
	// to a pipe (stderr under systemd or a shell) is never cut by the lines
	// another writer of the same pipe writes.
	logBatchSize = 4 << 10
)

// lineBatch gathers whole lines and writes them to w together: when the
// next line would not fit in logBatchSize, delay after the first line of
// a batch, and on close. A line longer than a batch is written on its
// own, in one write. It holds at most logBatchSize bytes; when w is slow,
// a Write waits for it, as an unbatched log would.
type lineBatch struct {
	w     io.Writer
	delay time.Duration

	mu     sync.Mutex // serialises writes to w so lines never interleave
	buf    []byte
	timer  *time.Timer // flushes buf delay after its first line
	armed  bool        // timer is set
	closed bool        // no more batching: every line is written at once
}

// Write adds the lines in p, which must end with a newline, to the batch.
// It returns the error of a write to w that it made itself.
func (l *lineBatch) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if len(l.buf)+len(p) > logBatchSize {
		err = l.flushLocked()
	}
	if len(p) > logBatchSize {
		// Copied, so that p, usually on the caller's stack, stays there.
		if _, werr := l.w.Write(append([]byte(nil), p...)); werr != nil {
			err = werr
		}
		return len(p), err
	}
	if l.buf == nil {
		l.buf = make([]byte, 0, logBatchSize)
	}
	l.buf = append(l.buf, p...)
	switch {
	case l.closed:
		err = l.flushLocked()
	case !l.armed:
		l.armed = true
		if l.timer == nil {
			l.timer = time.AfterFunc(l.delay, l.flush)
		} else {
			l.timer.Reset(l.delay)
		}
	}
	return len(p), err
}

// flush writes the batch; the timer calls it.
func (l *lineBatch) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.armed = false
	l.flushLocked() // nobody to tell of an error; the next Write meets it again
}

func (l *lineBatch) flushLocked() error {
	if len(l.buf) == 0 {
		return nil
	}
	_, err := l.w.Write(l.buf)
	l.buf = l.buf[:0]
	if err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	return nil
}

// close writes the batch and turns batching off.
func (l *lineBatch) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
		l.armed = false
	}
	l.flushLocked()
}

// escapeLog makes text from a request or a script safe to log: control
// characters (C0, DEL, C1, as Python's log_message escapes them),
// bidirectional controls, line separators and invalid UTF-8 become visible
// escapes and a backslash is doubled (see safetext.Escape), so that a
// request can neither forge log lines, nor drive the operator's terminal,
// nor reorder what a log line shows. A directory listing escapes names
// with the same function.
func escapeLog(s string) string { return safetext.Escape(s) }
