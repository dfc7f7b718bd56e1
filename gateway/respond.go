package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cgibox/cgibox/sandbox"
)

// CGIMode says how a script's response reaches the client.
type CGIMode string

const (
	// ModePython is Python's documented behaviour (the default): 200 goes
	// out as soon as the script starts, then its checked header lines and
	// its body; then the connection closes. Scripts cannot set the status.
	ModePython CGIMode = "python"
	// ModeRFC3875 reads the script's header block first (RFC 3875 §6):
	// Status and Location work, the body streams with keep-alive and
	// chunked encoding, HTTP/2 included.
	ModeRFC3875 CGIMode = "rfc3875"
)

// maxLocalRedirects bounds the internal redirects of one request.
const maxLocalRedirects = 10

// Trailers sent after a chunked rfc3875 response.
const (
	trailerExit = "CGI-Exit-Status"
	trailerEnd  = "CGI-Termination"
)

var errHeaderTimeout = errors.New("script sent no complete header block in time")

// jobOutcome is how a job ended; wait blocks until it has.
type jobOutcome struct {
	res sandbox.Result
	err error
}

// parsedResponse is what a script's header block asks for.
type parsedResponse struct {
	status   int
	header   http.Header
	location string // a local redirect (RFC 3875 §6.2.2), "" for none
}

// interpretHeaders turns a script's header block into a response. Strict is
// rfc3875 mode: a malformed, repeated or out-of-range Status, an unusable
// Location or a document without Content-Type is an error (502). Otherwise
// (Python mode over HTTP/2) the status is always 200 and Status is passed
// on as an ordinary header, as Python passes the script's lines on.
func interpretHeaders(hdr []headerField, strict bool) (parsedResponse, error) {
	p := parsedResponse{status: http.StatusOK, header: http.Header{}}
	var status, location string
	nStatus := 0
	for _, f := range hdr {
		if gatewayOwned(f.Name) {
			continue
		}
		switch {
		case strict && strings.EqualFold(f.Name, "Status"):
			nStatus++
			status = f.Value
		case strict && strings.EqualFold(f.Name, "Location"):
			if location != "" {
				return p, errors.New("more than one Location")
			}
			location = f.Value
		default:
			p.header.Add(f.Name, f.Value)
		}
	}
	if !strict {
		return p, nil
	}
	if nStatus > 1 {
		return p, errors.New("more than one Status")
	}
	if nStatus == 1 {
		code, err := parseStatus(status)
		if err != nil {
			return p, err
		}
		p.status = code
	}
	if location != "" {
		u, err := url.Parse(location)
		if err != nil {
			return p, fmt.Errorf("Location %q: %w", location, err)
		}
		switch {
		case strings.HasPrefix(location, "/") && !strings.HasPrefix(location, "//") && p.status == http.StatusOK:
			// Local redirect response (§6.2.2): the server answers with
			// the resource at that path, in the same site.
			p.location = location
			return p, nil
		case u.IsAbs() || strings.HasPrefix(location, "//") || strings.HasPrefix(location, "/"):
			// Client redirect (§6.2.3, §6.2.4).
			if nStatus == 0 {
				p.status = http.StatusFound
			}
			p.header.Set("Location", location)
			return p, nil
		default:
			return p, fmt.Errorf("Location %q is neither an absolute URL nor a local path", location)
		}
	}
	if p.header.Get("Content-Type") == "" && p.status != http.StatusNoContent && p.status != http.StatusNotModified {
		return p, errors.New("document response without Content-Type")
	}
	return p, nil
}

// parseStatus parses a Status header value: three digits from 100 to 599,
// then an optional reason phrase (RFC 3875 §6.3.3).
func parseStatus(v string) (int, error) {
	code, _, _ := strings.Cut(v, " ")
	n, err := strconv.Atoi(code)
	if err != nil || len(code) != 3 || n < 100 || n > 599 {
		return 0, fmt.Errorf("Status %q: want a three-digit code from 100 to 599", v)
	}
	if n < 200 {
		return 0, fmt.Errorf("Status %q: informational statuses cannot end a response", v)
	}
	return n, nil
}

// respondParsed answers from the script's parsed header block through w, so
// that net/http frames the body (keep-alive, chunked, HTTP/2). It returns a
// local redirect target, if the script asked for one.
func (h *site) respondParsed(ctx context.Context, w http.ResponseWriter, r *http.Request,
	stdout *io.PipeReader, cancel context.CancelCauseFunc, wait func() jobOutcome, strict bool) (redirect string) {
	defer stdout.Close()
	log := h.log.With("request_id", requestID(w))

	// The header block is bounded in size by readHeaderBlock and in time
	// here: a script that never ends it is stopped.
	timer := h.headerTimer(stdout, cancel)
	br := bufio.NewReaderSize(stdout, 16<<10)
	hdr, rejected, herr := readHeaderBlock(br, headerLimits{})
	timer.Stop()
	if len(rejected) > 0 {
		log.WarnContext(ctx, "invalid script header lines", "lines", len(rejected), "first", escapeLog(rejected[0]))
	}
	var p parsedResponse
	err := herr
	if !strict && errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil // the rest of the last line goes out as body
	}
	if err == nil && strict && len(rejected) > 0 {
		err = fmt.Errorf("%d invalid header lines", len(rejected))
	}
	if err == nil {
		p, err = interpretHeaders(hdr, strict)
	}
	if err != nil {
		abandon(stdout, cancel, fmt.Errorf("%w: %w", errHeaders, err))
		o := wait()
		h.setOutcome(w, o, false)
		code := http.StatusBadGateway
		if o.res.Reason == sandbox.Timeout || errors.Is(err, errHeaderTimeout) {
			code = http.StatusGatewayTimeout
		}
		log.WarnContext(ctx, "script response unusable", "err", err, "end", o.res.Reason, "exit_code", o.res.ExitCode)
		h.fail(w, r, code, "The CGI script sent an invalid response")
		return ""
	}
	if p.location != "" {
		// The body of a local redirect response is not used.
		io.Copy(io.Discard, br)
		h.setOutcome(w, wait(), false)
		return p.location
	}

	out := w.Header()
	for k, vs := range p.header {
		out[k] = vs
	}
	out.Set("X-Request-Id", requestID(w))
	chunked := r.ProtoAtLeast(1, 1) && r.Method != http.MethodHead
	if chunked {
		out.Set("Trailer", trailerExit+", "+trailerEnd)
	}
	w.WriteHeader(p.status)
	rc := http.NewResponseController(w)
	sink := io.Writer(w)
	if r.Method == http.MethodHead {
		sink = io.Discard
	}
	buf := make([]byte, 32<<10)
	var streamErr error
	for {
		n, rerr := br.Read(buf)
		if n > 0 {
			rc.SetWriteDeadline(time.Now().Add(h.srv.cfg.WriteTimeout))
			if _, werr := sink.Write(buf[:n]); werr != nil {
				abandon(stdout, cancel, errClientGone)
				streamErr = errClientGone
				break
			}
			if br.Buffered() == 0 {
				rc.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			streamErr = rerr
			break
		}
	}
	o := wait()
	failed := streamErr != nil || o.err != nil || o.res.Reason != sandbox.Exited
	h.setOutcome(w, o, failed)
	if failed {
		// Never let a cut response end like a complete one: no final
		// chunk, the connection (or HTTP/2 stream) is reset.
		panic(http.ErrAbortHandler)
	}
	if chunked {
		out.Set(trailerExit, strconv.Itoa(o.res.ExitCode))
		out.Set(trailerEnd, string(o.res.Reason))
	}
	return ""
}

// abandon ends the job for why and stops reading its output, so that the
// job's writer fails instead of blocking.
func abandon(stdout *io.PipeReader, cancel context.CancelCauseFunc, why error) {
	cancel(why)
	stdout.CloseWithError(why)
}

// headerTimer abandons the job if its header block is not read within
// HeaderTimeout; the caller stops it once it is.
func (h *site) headerTimer(stdout *io.PipeReader, cancel context.CancelCauseFunc) *time.Timer {
	return time.AfterFunc(h.srv.cfg.HeaderTimeout, func() { abandon(stdout, cancel, errHeaderTimeout) })
}

// setOutcome records how the job ended for the access log.
func (h *site) setOutcome(w http.ResponseWriter, o jobOutcome, aborted bool) {
	sw, ok := w.(*statusWriter)
	if !ok || sw.cgi == nil {
		return
	}
	sw.cgi.outcome = cgiOutcome{
		ExitCode: o.res.ExitCode, Reason: string(o.res.Reason),
		CPU: o.res.CPU, PeakMemory: o.res.PeakMemory, Aborted: aborted,
	}
	sw.cgi.record.Result = o.res
}

type redirectHopsKey struct{}

// localRedirect serves target as a GET in the same site (RFC 3875 §6.2.2),
// at most maxLocalRedirects times for one client request.
func (h *site) localRedirect(w http.ResponseWriter, r *http.Request, target string) {
	hops, _ := r.Context().Value(redirectHopsKey{}).(int)
	if hops >= maxLocalRedirects {
		h.log.WarnContext(r.Context(), "too many local redirects", "request_id", requestID(w), "target", escapeLog(target))
		h.fail(w, r, http.StatusBadGateway, "The CGI script redirected too often")
		return
	}
	u, err := url.Parse(target)
	if err != nil {
		h.fail(w, r, http.StatusBadGateway, "The CGI script sent an invalid response")
		return
	}
	r2 := r.Clone(context.WithValue(r.Context(), redirectHopsKey{}, hops+1))
	r2.Method = http.MethodGet
	r2.Body, r2.ContentLength, r2.TransferEncoding = http.NoBody, 0, nil
	r2.Header.Del("Content-Length")
	r2.Header.Del("Content-Type")
	r2.URL.Path, r2.URL.RawPath, r2.URL.RawQuery = u.Path, u.RawPath, u.RawQuery
	r2.RequestURI = u.RequestURI()
	if sw, ok := w.(*statusWriter); ok {
		sw.cgi = nil
	}
	h.dispatch(w, r2)
}
