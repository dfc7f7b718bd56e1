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
	"sync"
	"time"

	"github.com/cgibox/cgibox/sandbox"
)

// memBody is the largest request body kept in memory; larger ones are
// spooled to an unlinked file in SpoolDir.
const memBody = 1 << 20

// stderrCap bounds how much of one script's stderr reaches the log.
const stderrCap = 64 << 10

// notStartedReason is the access log's end for a script that never ran.
const notStartedReason sandbox.Reason = "not-started"

var (
	errClientGone = errors.New("client went away")
	errHeaders    = errors.New("script header block unusable")
)

// serveCGI resolves the script that clean names, checks the request against
// the limits, reads its body, and runs the script in a fresh container (see
// runCGI). It returns the target of a local redirect the script asked for.
func (h *site) serveCGI(w http.ResponseWriter, r *http.Request, dir, clean string) (redirect string) {
	ctx := r.Context()
	rid := requestID(w)
	log := h.log.With("request_id", rid, "path", clean)

	sc, err := resolveScript(h.root, dir, clean)
	switch {
	case errors.Is(err, errNoScript):
		log.InfoContext(ctx, "no CGI script", "err", err)
		h.fail(w, r, http.StatusNotFound, "No such CGI script")
		return ""
	case errors.Is(err, errForbidden):
		log.WarnContext(ctx, "CGI script refused", "err", err)
		h.fail(w, r, http.StatusForbidden, "CGI script is not runnable")
		return ""
	case err != nil:
		log.ErrorContext(ctx, "resolving CGI script", "err", err)
		h.fail(w, r, http.StatusInternalServerError, "Internal server error")
		return ""
	}
	log = log.With("script", sc.Name)
	if sw, ok := w.(*statusWriter); ok {
		sw.cgi = &cgiLog{script: sc.Name}
	}
	if !slices.Contains(cgiMethods, r.Method) {
		h.fail(w, r, http.StatusNotImplemented, fmt.Sprintf("Unsupported method (%q)", r.Method))
		return ""
	}
	// The site's rate, before its body is read: a refusal costs nothing.
	if ok, wait := h.quota.allow(time.Now()); !ok {
		log.InfoContext(ctx, "site over its CGI rate", "rate", h.cfg.Rate)
		w.Header().Set("Retry-After", retryAfter(wait))
		h.fail(w, r, http.StatusTooManyRequests, "Too many requests for this site, try again later")
		return ""
	}
	if r.ContentLength > h.cfg.MaxBody {
		w.Header().Set("Connection", "close")
		h.fail(w, r, http.StatusRequestEntityTooLarge, "Request body too large")
		return ""
	}
	scriptDir, err := h.hostCGIDir(dir)
	if err != nil {
		log.ErrorContext(ctx, "CGI directory refused", "err", err)
		h.fail(w, r, http.StatusForbidden, "CGI script is not runnable")
		return ""
	}

	// The image: from the script's #! line, read through the site root.
	var image string
	line, err := readShebang(h.root, strings.TrimPrefix(path.Join(sc.Dir, sc.Rel), "/"))
	if err == nil {
		if cause, fix := scriptProblem(line); cause != "" {
			// It runs all the same (the image may know better), and
			// most likely fails before printing: say why first.
			log.WarnContext(ctx, "CGI script will not run: "+cause, "fix", fix)
		}
		image, _, err = chooseImage(line, h.srv.cfg.Images, h.cfg.Image)
	}
	if err != nil {
		log.ErrorContext(ctx, "no image for the CGI script", "err", err)
		h.fail(w, r, http.StatusInternalServerError, "CGI script could not be started")
		return ""
	}
	log = log.With("image", image)

	// The whole body is read before a container exists: a slow client then
	// holds no container and no concurrency slot, and a chunked body that
	// breaks off never reaches a script with a wrong CONTENT_LENGTH.
	body, n, err := h.readBody(w, r)
	switch {
	case errors.Is(err, errBodyTooLarge):
		w.Header().Set("Connection", "close")
		h.fail(w, r, http.StatusRequestEntityTooLarge, "Request body too large")
		return ""
	case err != nil:
		log.InfoContext(ctx, "reading request body", "err", err)
		w.Header().Set("Connection", "close")
		h.fail(w, r, http.StatusBadRequest, "Could not read the request body")
		return ""
	}
	defer body.Close()

	// The site's own cap first: a site at it is refused without taking
	// one of the slots all sites share.
	if !h.quota.acquire() {
		log.InfoContext(ctx, "site at its CGI concurrency cap", "cap", h.cfg.Concurrent)
		w.Header().Set("Retry-After", "1")
		h.fail(w, r, http.StatusTooManyRequests, "Too many requests for this site, try again later")
		return ""
	}
	defer h.quota.release()
	if !h.srv.takeSlot(ctx) {
		if ctx.Err() != nil {
			return "" // the client went away while it waited
		}
		log.WarnContext(ctx, "CGI concurrency cap reached", "cap", h.srv.cfg.MaxConcurrent,
			"queue", h.srv.cfg.QueueLength, "queue_wait", h.srv.cfg.QueueWait)
		w.Header().Set("Retry-After", "1")
		h.fail(w, r, http.StatusServiceUnavailable, "Too many CGI requests, try again")
		return ""
	}
	defer func() { <-h.srv.slots }()

	// CONTENT_LENGTH is the length the script gets: the decoded length of a
	// chunked body (RFC 3875 §4.1.2); unset when the request had no body.
	contentLength := int64(-1)
	if r.Header.Get("Content-Length") != "" || n > 0 || len(r.TransferEncoding) > 0 {
		contentLength = n
	}
	var canonical string
	if sw, ok := w.(*statusWriter); ok {
		canonical = sw.host
	}
	host, port := serverAddr(r, canonical)
	// Rel has symlinks resolved: the file that runs is the one checked.
	inPath := h.srv.cfg.MountRoot + sc.Dir + "/" + sc.Rel
	env := cgiEnv(envInput{
		Req:               r,
		Script:            sc,
		ScriptFilename:    inPath,
		DocumentRoot:      h.srv.cfg.MountRoot,
		ServerName:        host,
		ServerPort:        port,
		ServerSoftware:    h.srv.cfg.ServerSoftware,
		ContentLength:     contentLength,
		PassAuthorization: h.cfg.PassAuthorization,
		HasData:           h.cfg.DataDir != "",
	})
	// One container per job: the jobs of a request's local redirects get
	// ids of their own, as the container of the last one may still be
	// being deleted.
	jobID := rid
	if hops, _ := r.Context().Value(redirectHopsKey{}).(int); hops > 0 {
		jobID = fmt.Sprintf("%s.%d", rid, hops)
	}
	job := sandbox.Job{
		ID:         jobID,
		Site:       h.cfg.Name,
		Image:      image,
		ScriptDir:  scriptDir,
		MountPoint: h.srv.cfg.MountRoot + dir,
		Path:       inPath,
		Env:        env,
		Dir:        path.Dir(inPath),
		Stdin:      body,
		Limits:     h.cfg.Limits,
		DataDir:    h.cfg.DataDir,
		Users:      h.cfg.Users,
	}
	if sw, ok := w.(*statusWriter); ok && sw.cgi != nil {
		sw.cgi.record = CGIRecord{Image: image, Limits: h.cfg.Limits, BytesIn: n}
	}
	return h.runCGI(w, r, log, job, isNPH(sc.Name))
}

// runCGI runs job and writes its response in the configured mode. It
// returns the target of a local redirect the script asked for, if any.
func (h *site) runCGI(w http.ResponseWriter, r *http.Request, log *slog.Logger, job sandbox.Job, nph bool) (redirect string) {
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)

	stdout, pw := io.Pipe()
	stderr := &stderrLog{ctx: ctx, log: log, max: stderrCap}
	started := make(chan struct{})
	job.Stdout, job.Stderr = pw, stderr
	job.Started = func() { close(started) }

	// The response ends as soon as the job's end is known (Ended); the
	// container is deleted after that, while Run returns.
	done := make(chan jobOutcome, 1)
	var endOnce sync.Once
	end := func(res sandbox.Result, err error) {
		endOnce.Do(func() {
			switch {
			case err != nil:
				pw.CloseWithError(err)
			case res.Reason != sandbox.Exited:
				// Killed: the reader must not mistake this for a clean end.
				pw.CloseWithError(fmt.Errorf("script stopped: %s", res.Reason))
			default:
				pw.Close() // the reader sees EOF
			}
			done <- jobOutcome{res, err}
		})
	}
	job.Ended = end
	go func() { end(h.srv.cfg.Runner.Run(ctx, job)) }()
	var o jobOutcome
	ended := false
	wait := func() jobOutcome {
		if !ended {
			o, ended = <-done, true
		}
		return o
	}

	select {
	case <-started:
	case o = <-done:
		ended = true
		select {
		case <-started:
		default:
			stderr.flush()
			h.notStarted(w, r, log, imageHint(h.srv.cfg.Images, job.Image, h.srv.cfg.ImageFixFlags, o.err))
			return ""
		}
	}
	// Runs also when a parsed response is aborted by panicking.
	defer func() {
		o := wait()
		stderr.flush()
		switch {
		case o.err != nil:
			log.ErrorContext(ctx, "CGI job failed after start", "err", o.err)
		case o.res.Reason != sandbox.Exited:
			log.WarnContext(ctx, "CGI script stopped", "end", o.res.Reason, "exit_code", o.res.ExitCode)
		}
	}()

	switch {
	case nph && h.cfg.NPH:
		h.streamNPH(ctx, w, r, stdout, cancel, wait)
	case h.cfg.Mode == ModeRFC3875:
		return h.respondParsed(ctx, w, r, stdout, cancel, wait, true)
	case r.ProtoMajor >= 2:
		// HTTP/2 cannot be taken over: the script's header lines are
		// parsed and sent with a fixed 200.
		h.respondParsed(ctx, w, r, stdout, cancel, wait, false)
	default:
		h.streamPython(ctx, w, r, stdout, cancel, wait)
	}
	return ""
}

// notStarted answers a job that failed before its script started.
func (h *site) notStarted(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	h.setOutcome(w, jobOutcome{res: sandbox.Result{ExitCode: -1, Reason: notStartedReason}}, false)
	switch {
	case err == nil:
		log.ErrorContext(r.Context(), "CGI job ended without starting")
		h.fail(w, r, http.StatusInternalServerError, "CGI script could not be started")
	case errors.Is(err, sandbox.ErrImageNotFound):
		// Retrying will not help: the server lacks an image until its
		// operator builds it. No Retry-After.
		log.ErrorContext(r.Context(), "CGI image missing: the server is misconfigured", "err", err)
		h.fail(w, r, http.StatusInternalServerError, "The server is misconfigured: the script's image is missing")
	case errors.Is(err, sandbox.ErrUnavailable):
		log.ErrorContext(r.Context(), "CGI runtime unavailable", "err", err)
		w.Header().Set("Retry-After", "5")
		h.fail(w, r, http.StatusServiceUnavailable, "CGI runtime unavailable")
	case r.Context().Err() != nil:
		log.InfoContext(r.Context(), "client went away before the script started", "err", err)
	default:
		log.ErrorContext(r.Context(), "CGI job could not start", "err", err)
		h.fail(w, r, http.StatusInternalServerError, "CGI script could not be started")
	}
}

// streamPython takes over the connection and writes the response in Python's
// mode: the status line now, then the script's checked header lines, then its
// body as it comes; then the connection closes. A response that cannot end
// cleanly (the script was killed, the client stopped reading) is reset.
func (h *site) streamPython(ctx context.Context, w http.ResponseWriter, r *http.Request,
	stdout *io.PipeReader, cancel context.CancelCauseFunc, wait func() jobOutcome) {
	defer stdout.Close()
	// Python sends its 200 before the script runs. cgibox sends the same
	// bytes when the script's first byte arrives, still before any of its
	// output, so that a script that ends without a byte (it failed at once,
	// or its interpreter is missing) gets an error page, not a blank 200.
	br := bufio.NewReaderSize(stdout, 16<<10)
	if _, err := br.Peek(1); err != nil {
		o := wait()
		h.setOutcome(w, o, false)
		if r.Context().Err() != nil {
			return // the client went away first
		}
		h.log.WarnContext(ctx, "CGI script ended without output", "request_id", requestID(w),
			"end", o.res.Reason, "exit_code", o.res.ExitCode)
		h.fail(w, r, http.StatusInternalServerError, "The CGI script ended without output")
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		cancel(fmt.Errorf("hijack: %w", err))
		h.setOutcome(w, wait(), true)
		h.log.ErrorContext(ctx, "taking over the connection", "request_id", requestID(w), "err", err)
		return
	}
	defer conn.Close()
	if sw, ok := w.(*statusWriter); ok {
		sw.status = http.StatusOK
	}
	// Once the connection is ours, net/http no longer notices a client that
	// goes away: read until the peer closes, then end the job.
	go func() {
		io.Copy(io.Discard, io.LimitReader(brw.Reader, 1<<20))
		cancel(errClientGone)
	}()
	aborted, err := h.writePython(ctx, w, r, conn, br)
	if err != nil {
		abandon(stdout, cancel, err)
	}
	o := wait()
	if o.err != nil || o.res.Reason != sandbox.Exited {
		aborted = true
	}
	if aborted {
		resetOnClose(conn)
	}
	h.setOutcome(w, o, aborted)
	if err != nil && !errors.Is(err, errClientGone) {
		h.log.WarnContext(ctx, "CGI response cut", "request_id", requestID(w), "err", err)
	}
}

// writePython writes the response of streamPython to conn. It reports
// whether the response was cut, and why when the gateway cut it.
func (h *site) writePython(ctx context.Context, w http.ResponseWriter, r *http.Request, conn net.Conn, br *bufio.Reader) (aborted bool, err error) {
	out := bufio.NewWriterSize(&deadlineWriter{conn: conn, timeout: h.srv.cfg.WriteTimeout}, 32<<10)
	var head bytes.Buffer
	fmt.Fprintf(&head, "%s 200 Script output follows\r\n", h.srv.cfg.Protocol)
	fmt.Fprintf(&head, "Server: %s\r\nDate: %s\r\n", h.srv.cfg.ServerSoftware, time.Now().UTC().Format(http.TimeFormat))
	for k, vs := range h.cfg.Headers {
		for _, v := range vs {
			fmt.Fprintf(&head, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprintf(&head, "X-Request-Id: %s\r\n", requestID(w))
	if _, err := out.Write(head.Bytes()); err != nil || out.Flush() != nil {
		return true, errClientGone
	}

	// The script's header block, checked line by line.
	hdr, rejected, herr := readHeaderBlock(br, headerLimits{})
	if len(rejected) > 0 {
		h.log.WarnContext(ctx, "dropped invalid script header lines",
			"request_id", requestID(w), "lines", len(rejected), "first", escapeLog(rejected[0]))
	}
	if err := writeHeaderFields(out, hdr); err != nil {
		return true, errClientGone
	}
	out.WriteString("Connection: close\r\n\r\n")
	if err := out.Flush(); err != nil {
		return true, errClientGone
	}
	switch {
	case herr == nil:
	case errors.Is(herr, io.ErrUnexpectedEOF):
		// Output ended inside the header block: what is left of its last
		// line goes out as body, as Python would pass it through.
	case errors.Is(herr, errHeaderTooLong) || errors.Is(herr, errTooManyHeaders):
		return true, fmt.Errorf("%w: %w", errHeaders, herr)
	default:
		return true, nil // the job failed; its end says why
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
				return true, errClientGone
			}
			if br.Buffered() == 0 {
				if werr := out.Flush(); werr != nil {
					return true, errClientGone
				}
			}
		}
		if rerr == io.EOF {
			if err := out.Flush(); err != nil {
				return true, errClientGone
			}
			return false, nil
		}
		if rerr != nil {
			out.Flush() // whatever came so far is out; the rest is cut
			return true, nil
		}
	}
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

var errBodyTooLarge = errors.New("request body over the cap")

// readBody reads the whole request body, Content-Length bytes or a chunked
// body decoded, at most MaxBody: up to memBody into memory, the rest into an
// unlinked file, within BodyTimeout. It returns the body and its length.
func (h *site) readBody(w http.ResponseWriter, r *http.Request) (_ body, _ int64, err error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return memReader{bytes.NewReader(nil)}, 0, nil
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(h.srv.cfg.BodyTimeout))
	defer func() {
		if err != nil {
			// After the handler, net/http drains up to 256 KiB of an unread
			// body with no deadline of its own: a slow POST would hold the
			// connection at the client's pace. One second, then it closes
			// (SECURITY.md case 33).
			rc.SetReadDeadline(time.Now().Add(time.Second))
			return
		}
		rc.SetReadDeadline(time.Time{})
	}()
	src := io.LimitReader(r.Body, h.cfg.MaxBody+1)
	var mem bytes.Buffer
	if r.ContentLength > 0 {
		mem.Grow(int(min(r.ContentLength, memBody+1)))
	}
	n, err := io.CopyN(&mem, src, memBody+1)
	switch {
	case err == io.EOF:
		return memReader{bytes.NewReader(mem.Bytes())}, n, h.checkLength(r, n)
	case err != nil:
		return nil, 0, fmt.Errorf("body: %w", err)
	}
	f, err := os.CreateTemp(h.srv.cfg.SpoolDir, "cgibox-body-*")
	if err != nil {
		return nil, 0, fmt.Errorf("spooling body: %w", err)
	}
	os.Remove(f.Name()) // gone with the last descriptor, whatever happens
	if _, err := f.Write(mem.Bytes()); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("spooling body: %w", err)
	}
	m, err := io.Copy(f, src)
	if err == nil {
		err = h.checkLength(r, n+m)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("spooling body: %w", err)
	}
	return f, n + m, nil
}

// checkLength rejects a body over the cap (only a chunked one can get here).
func (h *site) checkLength(r *http.Request, n int64) error {
	if n > h.cfg.MaxBody {
		return errBodyTooLarge
	}
	return nil
}

// hostCGIDir returns the real host path of the CGI directory dir. It must
// lie inside the site root: a cgi-bin that is a symlink to / would otherwise
// hand the host's files to every script.
func (h *site) hostCGIDir(dir string) (string, error) {
	root := h.cfg.Root // absolute and resolved by New
	d, err := filepath.EvalSymlinks(filepath.Join(root, filepath.FromSlash(dir)))
	if err != nil {
		return "", fmt.Errorf("CGI directory: %w", err)
	}
	if rel, err := filepath.Rel(root, d); err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("CGI directory %s resolves to %s, outside the site root", dir, d)
	}
	return d, nil
}

// serverAddr returns SERVER_NAME and SERVER_PORT: the request's canonical
// host (see CanonicalHost; the one its site was chosen by), else the local
// address, and the port the request came in on.
func serverAddr(r *http.Request, host string) (string, string) {
	var port string
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if local != nil {
		_, port, _ = net.SplitHostPort(local.String())
	}
	name := host
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

// takeSlot takes one of the MaxConcurrent slots, waiting in the queue (in
// arrival order: a channel's senders are served first come, first
// served) when all are taken and there is room; false when there is none,
// the wait ran out or ctx ended.
func (s *Server) takeSlot(ctx context.Context) bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
	}
	if s.cfg.QueueLength <= 0 || s.cfg.QueueWait <= 0 {
		return false
	}
	if s.queued.Add(1) > int64(s.cfg.QueueLength) {
		s.queued.Add(-1)
		return false
	}
	defer s.queued.Add(-1)
	t := time.NewTimer(s.cfg.QueueWait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}
