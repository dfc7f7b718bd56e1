package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cgibox/cgibox/sandbox"
)

// memBody is the largest request body kept in memory; larger ones are
// spooled to an unlinked file in SpoolDir.
const memBody = 1 << 20

// stderrCap bounds how much of one script's stderr reaches the log.
const stderrCap = 64 << 10

var (
	errClientGone = errors.New("client went away")
	errHeaders    = errors.New("script header block unusable")
)

// serveCGI runs the script that clean names in a fresh container and streams
// its output back the way Python's CGIHTTPRequestHandler does: the status line
// goes out as soon as the script has started, then the script's (checked)
// header lines, then its body as it is produced; then the connection closes.
func (s *Server) serveCGI(w http.ResponseWriter, r *http.Request, dir, clean string) {
	ctx := r.Context()
	rid := requestID(w)
	log := s.log.With("request_id", rid, "path", clean)

	sc, err := resolveScript(s.root, dir, clean)
	switch {
	case errors.Is(err, errNoScript):
		log.InfoContext(ctx, "no CGI script", "err", err)
		s.fail(w, r, http.StatusNotFound, "No such CGI script")
		return
	case errors.Is(err, errForbidden):
		log.WarnContext(ctx, "CGI script refused", "err", err)
		s.fail(w, r, http.StatusForbidden, "CGI script is not runnable")
		return
	case err != nil:
		log.ErrorContext(ctx, "resolving CGI script", "err", err)
		s.fail(w, r, http.StatusInternalServerError, "Internal server error")
		return
	}
	log = log.With("script", sc.Name)
	if sw, ok := w.(*statusWriter); ok {
		sw.cgi = &cgiLog{script: sc.Name}
	}
	if !slices.Contains(cgiMethods, r.Method) {
		s.fail(w, r, http.StatusNotImplemented, fmt.Sprintf("Unsupported method (%q)", r.Method))
		return
	}
	// A chunked body is refused for now: the script must be told its
	// length up front (RFC 3875 §4.1.2).
	if r.ContentLength < 0 && len(r.TransferEncoding) > 0 {
		w.Header().Set("Connection", "close")
		s.fail(w, r, http.StatusLengthRequired, "Length Required")
		return
	}
	if r.ContentLength > s.cfg.MaxBody {
		w.Header().Set("Connection", "close")
		s.fail(w, r, http.StatusRequestEntityTooLarge, "Request body too large")
		return
	}
	scriptDir, err := s.hostCGIDir(dir)
	if err != nil {
		log.ErrorContext(ctx, "CGI directory refused", "err", err)
		s.fail(w, r, http.StatusForbidden, "CGI script is not runnable")
		return
	}

	// The whole body is read before a container exists: a slow client then
	// holds no container and no concurrency slot.
	body, err := s.readBody(w, r)
	if err != nil {
		log.InfoContext(ctx, "reading request body", "err", err)
		w.Header().Set("Connection", "close")
		s.fail(w, r, http.StatusBadRequest, "Could not read the request body")
		return
	}
	defer body.Close()

	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		log.WarnContext(ctx, "CGI concurrency cap reached", "cap", s.cfg.MaxConcurrent)
		w.Header().Set("Retry-After", "1")
		s.fail(w, r, http.StatusServiceUnavailable, "Too many CGI requests, try again")
		return
	}

	contentLength := int64(-1)
	if r.Header.Get("Content-Length") != "" || r.ContentLength > 0 {
		contentLength = r.ContentLength
	}
	host, port := serverAddr(r)
	// Rel has symlinks resolved: the file that runs is the one checked.
	inPath := s.cfg.MountRoot + sc.Dir + "/" + sc.Rel
	env := cgiEnv(envInput{
		Req:               r,
		Script:            sc,
		ScriptFilename:    inPath,
		DocumentRoot:      s.cfg.MountRoot,
		ServerName:        host,
		ServerPort:        port,
		ServerSoftware:    s.cfg.ServerSoftware,
		ContentLength:     contentLength,
		PassAuthorization: s.cfg.PassAuthorization,
	})
	s.runCGI(w, r, log, sandbox.Job{
		ID:         rid,
		Site:       "default",
		Image:      s.cfg.Image,
		ScriptDir:  scriptDir,
		MountPoint: s.cfg.MountRoot + dir,
		Path:       inPath,
		Env:        env,
		Dir:        path.Dir(inPath),
		Stdin:      body,
		Limits:     s.cfg.Limits,
	})
}

// runCGI runs job and writes its response.
func (s *Server) runCGI(w http.ResponseWriter, r *http.Request, log *slog.Logger, job sandbox.Job) {
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)

	stdout, pw := io.Pipe()
	stderr := &stderrLog{ctx: ctx, log: log, max: stderrCap}
	started := make(chan struct{})
	job.Stdout, job.Stderr = pw, stderr
	job.Started = func() { close(started) }

	type outcome struct {
		res sandbox.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := s.cfg.Runner.Run(ctx, job)
		switch {
		case err != nil:
			pw.CloseWithError(err)
		case res.Reason != sandbox.Exited:
			// Killed: the reader must not mistake this for a clean end.
			pw.CloseWithError(fmt.Errorf("script stopped: %s", res.Reason))
		default:
			pw.Close() // the reader sees EOF
		}
		done <- outcome{res, err}
	}()

	var o outcome
	select {
	case <-started:
	case o = <-done:
		select {
		case <-started:
		default:
			stderr.flush()
			s.notStarted(w, r, log, o.err)
			return
		}
	}

	sw, _ := w.(*statusWriter)
	aborted, werr := s.streamPython(ctx, w, r, stdout, cancel)
	if o.err == nil && o.res.Reason == "" {
		o = <-done
	}
	stderr.flush()
	if o.err != nil || o.res.Reason != sandbox.Exited {
		aborted = true
	}
	if sw != nil {
		sw.status = http.StatusOK
		if sw.cgi != nil {
			sw.cgi.outcome = cgiOutcome{
				ExitCode: o.res.ExitCode, Reason: string(o.res.Reason),
				CPU: o.res.CPU, PeakMemory: o.res.PeakMemory, Aborted: aborted,
			}
		}
	}
	switch {
	case o.err != nil:
		log.ErrorContext(ctx, "CGI job failed after start", "err", o.err)
	case werr != nil && !errors.Is(werr, errClientGone):
		log.WarnContext(ctx, "CGI response cut", "err", werr, "end", o.res.Reason)
	case o.res.Reason != sandbox.Exited:
		log.WarnContext(ctx, "CGI script stopped", "end", o.res.Reason, "exit_code", o.res.ExitCode)
	}
}

// notStarted answers a job that failed before its script started.
func (s *Server) notStarted(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	switch {
	case err == nil:
		log.ErrorContext(r.Context(), "CGI job ended without starting")
		s.fail(w, r, http.StatusInternalServerError, "CGI script could not be started")
	case errors.Is(err, sandbox.ErrUnavailable):
		log.ErrorContext(r.Context(), "CGI runtime unavailable", "err", err)
		w.Header().Set("Retry-After", "5")
		s.fail(w, r, http.StatusServiceUnavailable, "CGI runtime unavailable")
	case r.Context().Err() != nil:
		log.InfoContext(r.Context(), "client went away before the script started", "err", err)
	default:
		log.ErrorContext(r.Context(), "CGI job could not start", "err", err)
		s.fail(w, r, http.StatusInternalServerError, "CGI script could not be started")
	}
}

// streamPython takes over the connection and writes the response in Python's
// mode. It reports whether the response had to be cut and the first write or
// header error. It returns once stdout is drained or abandoned.
func (s *Server) streamPython(ctx context.Context, w http.ResponseWriter, r *http.Request,
	stdout *io.PipeReader, cancel context.CancelCauseFunc) (aborted bool, err error) {
	defer stdout.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 cannot be taken over; its mode comes with issue 5.
		cancel(fmt.Errorf("hijack: %w", err))
		return true, fmt.Errorf("taking over the connection: %w", err)
	}
	defer conn.Close()
	// Once the connection is ours, net/http no longer notices a client that
	// goes away: read until the peer closes, then end the job.
	go func() {
		io.Copy(io.Discard, io.LimitReader(brw.Reader, 1<<20))
		cancel(errClientGone)
	}()

	out := bufio.NewWriterSize(&deadlineWriter{conn: conn, timeout: s.cfg.WriteTimeout}, 32<<10)
	var head bytes.Buffer
	fmt.Fprintf(&head, "%s 200 Script output follows\r\n", s.cfg.Protocol)
	fmt.Fprintf(&head, "Server: %s\r\nDate: %s\r\n", s.cfg.ServerSoftware, time.Now().UTC().Format(http.TimeFormat))
	for k, vs := range s.cfg.Headers {
		for _, v := range vs {
			fmt.Fprintf(&head, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprintf(&head, "X-Request-Id: %s\r\n", requestID(w))
	if _, err := out.Write(head.Bytes()); err != nil || out.Flush() != nil {
		return s.cut(conn, stdout, cancel, errClientGone)
	}

	// The script's header block, checked line by line.
	br := bufio.NewReaderSize(stdout, 16<<10)
	hdr, rejected, herr := readHeaderBlock(br, headerLimits{MaxLine: 8 << 10, MaxLines: 100})
	if len(rejected) > 0 {
		s.log.WarnContext(ctx, "dropped invalid script header lines",
			"request_id", requestID(w), "lines", len(rejected), "first", escapeLog(rejected[0]))
	}
	if err := writeHeaderFields(out, hdr); err != nil {
		return s.cut(conn, stdout, cancel, errClientGone)
	}
	out.WriteString("Connection: close\r\n\r\n")
	if err := out.Flush(); err != nil {
		return s.cut(conn, stdout, cancel, errClientGone)
	}
	switch {
	case herr == nil:
	case errors.Is(herr, io.ErrUnexpectedEOF):
		// Output ended inside the header block: what is left of its last
		// line goes out as body, as Python would pass it through.
	default:
		return s.cut(conn, stdout, cancel, fmt.Errorf("%w: %w", errHeaders, herr))
	}

	// The body, flushed as it comes.
	sink := io.Writer(out)
	if r.Method == http.MethodHead {
		sink = io.Discard
	}
	buf := make([]byte, 32<<10)
	for {
		n, rerr := br.Read(buf)
		if n > 0 {
			if _, werr := sink.Write(buf[:n]); werr != nil {
				return s.cut(conn, stdout, cancel, errClientGone)
			}
			if br.Buffered() == 0 {
				if werr := out.Flush(); werr != nil {
					return s.cut(conn, stdout, cancel, errClientGone)
				}
			}
		}
		if rerr == io.EOF {
			return false, out.Flush()
		}
		if rerr != nil {
			// The job failed: whatever came so far is out; cut the rest.
			out.Flush()
			resetOnClose(conn)
			return true, nil
		}
	}
}

// cut abandons a response: the job is ended, its output is discarded and the
// connection is reset so the client can never take a cut response for a
// complete one.
func (s *Server) cut(conn net.Conn, stdout *io.PipeReader, cancel context.CancelCauseFunc, why error) (bool, error) {
	cancel(why)
	stdout.CloseWithError(why)
	resetOnClose(conn)
	return true, why
}

// resetOnClose makes the coming Close send a TCP RST instead of a FIN.
func resetOnClose(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
}

// deadlineWriter gives every write to the client its own deadline, so a
// client that stops reading fails the write instead of holding the script.
type deadlineWriter struct {
	conn    net.Conn
	timeout time.Duration
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.conn.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.conn.Write(p)
}

// body is a request body ready to be replayed to a script.
type body interface {
	io.Reader
	io.Closer
}

type memReader struct{ *bytes.Reader }

func (memReader) Close() error { return nil }

// readBody reads exactly Content-Length bytes: small bodies into memory,
// larger ones into an unlinked file, within BodyTimeout.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (body, error) {
	n := r.ContentLength
	if n <= 0 {
		return memReader{bytes.NewReader(nil)}, nil
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
	defer rc.SetReadDeadline(time.Time{})
	if n <= memBody {
		b := make([]byte, n)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
		return memReader{bytes.NewReader(b)}, nil
	}
	f, err := os.CreateTemp(s.cfg.SpoolDir, "cgibox-body-*")
	if err != nil {
		return nil, fmt.Errorf("spooling body: %w", err)
	}
	os.Remove(f.Name()) // gone with the last descriptor, whatever happens
	if _, err := io.CopyN(f, r.Body, n); err != nil {
		f.Close()
		return nil, fmt.Errorf("spooling body: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("spooling body: %w", err)
	}
	return f, nil
}

// hostCGIDir returns the real host path of the CGI directory dir. It must
// lie inside the site root: a cgi-bin that is a symlink to / would otherwise
// hand the host's files to every script.
func (s *Server) hostCGIDir(dir string) (string, error) {
	root := s.cfg.Root // absolute and resolved by New
	d, err := filepath.EvalSymlinks(filepath.Join(root, filepath.FromSlash(dir)))
	if err != nil {
		return "", fmt.Errorf("CGI directory: %w", err)
	}
	if rel, err := filepath.Rel(root, d); err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("CGI directory %s resolves to %s, outside the site root", dir, d)
	}
	return d, nil
}

// serverAddr returns SERVER_NAME and SERVER_PORT: the Host header's name,
// else the local address, and the port the request came in on.
func serverAddr(r *http.Request) (string, string) {
	var port string
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if local != nil {
		_, port, _ = net.SplitHostPort(local.String())
	}
	name := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		name = h
	}
	if name == "" && local != nil {
		name, _, _ = net.SplitHostPort(local.String())
	}
	return strings.Trim(name, "[]"), port
}

// stderrLog turns a script's stderr into log lines: escaped, line by line,
// at most max bytes per request.
type stderrLog struct {
	ctx     context.Context
	log     *slog.Logger
	max     int64
	n       int64
	line    []byte
	dropped int64
}

func (e *stderrLog) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if e.n >= e.max {
			e.dropped += int64(len(p))
			return total, nil
		}
		room := min(int64(len(p)), e.max-e.n)
		chunk := p[:room]
		if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
			chunk = chunk[:i+1]
		}
		e.n += int64(len(chunk))
		e.line = append(e.line, chunk...)
		p = p[len(chunk):]
		if e.line[len(e.line)-1] == '\n' || len(e.line) >= 4<<10 {
			e.emit()
		}
	}
	return total, nil
}

func (e *stderrLog) emit() {
	if len(e.line) == 0 {
		return
	}
	e.log.WarnContext(e.ctx, "script stderr", "line", escapeLog(strings.TrimSuffix(string(e.line), "\n")))
	e.line = e.line[:0]
}

// flush logs what is left; called once the job has ended.
func (e *stderrLog) flush() {
	e.emit()
	if e.dropped > 0 {
		e.log.WarnContext(e.ctx, "script stderr over the cap; rest dropped", "dropped_bytes", e.dropped)
	}
}
