// Package gateway is cgibox's HTTP front end: it accepts connections, guards
// them with timeouts and size caps, routes each request to the static file
// handler or to a CGI script, speaks the CGI protocol (RFC 3875) on the
// script's behalf and writes the access log. It runs scripts through a Runner
// and knows nothing of containers.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/cgibox/cgibox/sandbox"
	"github.com/cgibox/cgibox/static"
)

// Runner runs one CGI job; *sandbox.Manager is the real one.
type Runner interface {
	Run(ctx context.Context, job sandbox.Job) (sandbox.Result, error)
}

// Default limits of the HTTP front end.
const (
	DefaultMaxURI        = 64 << 10 // request-target bytes; longer → 414, like Python
	DefaultMaxHeaderSize = 64 << 10 // all header lines together; more → 431
	DefaultMaxHeaders    = 100      // header lines; more → 431, like Python
	DefaultMaxBody       = 64 << 20 // CGI request body bytes; more → 413
	DefaultMaxConcurrent = 16       // CGI requests running at once; more → 503

	DefaultReadHeaderTimeout = 10 * time.Second // a request's line and headers; then the connection is closed
	DefaultBodyTimeout       = 60 * time.Second // a CGI request body; then 400
	DefaultWriteTimeout      = 30 * time.Second // each write of a CGI response; then the script is killed
	DefaultIdleTimeout       = 60 * time.Second // a keep-alive connection between requests
)

// Config is the server's configuration: what holds for every site. Zero
// values take the defaults named on each field.
type Config struct {
	// Sites are the sites served; at least one. A request goes to the site
	// whose Hosts name its host, else to the Default site, else 421.
	Sites []Site
	// Protocol is "HTTP/1.1" (default) or "HTTP/1.0"; with HTTP/1.0 every
	// response closes the connection, as Python's server does.
	Protocol string
	// ServerSoftware is the Server header and SERVER_SOFTWARE.
	ServerSoftware string

	// Runner runs CGI jobs; required when a site runs CGI.
	Runner Runner
	// Images maps the names of cgibox's images (busybox, perl, python) to
	// their containerd references. When set, a script's #! line chooses
	// among them (see chooseImage); when nil, every script runs in its
	// site's Image. An interpreter no image provides is a 500, unless the
	// site's Image is not one of Images (a custom image), which then runs
	// it.
	Images map[string]string
	// ImageFixFlags are appended to the `cgibox image build NAME` the log
	// gives as the fix of a missing image (" --data-dir /srv/cgibox"),
	// so that the command builds it where this server looks.
	ImageFixFlags string
	// MountRoot is where a site appears inside a container: a CGI
	// directory /cgi-bin is mounted at MountRoot+"/cgi-bin". Default /www.
	MountRoot string
	// HeaderTimeout bounds the wait for a script's header block where the
	// gateway reads it before answering (rfc3875 mode, NPH); default 30s.
	HeaderTimeout time.Duration

	MaxURI        int // default DefaultMaxURI
	MaxHeaderSize int // default DefaultMaxHeaderSize
	MaxHeaders    int // default DefaultMaxHeaders
	// MaxConcurrent is the CGI requests running at once, all sites
	// together; default DefaultMaxConcurrent.
	MaxConcurrent int
	// QueueLength is how many CGI requests may wait, all sites together,
	// when MaxConcurrent are running, each for at most QueueWait; beyond
	// either, 503 with Retry-After. 0: none wait. A site at its own
	// concurrency cap is answered 429 at once and never waits here.
	QueueLength int
	QueueWait   time.Duration
	// ReadHeaderTimeout bounds reading a request's line and headers (a
	// slowloris client); default DefaultReadHeaderTimeout. NewHTTPServer
	// applies it.
	ReadHeaderTimeout time.Duration
	// BodyTimeout bounds reading a CGI request body; default
	// DefaultBodyTimeout.
	BodyTimeout time.Duration
	// WriteTimeout bounds each write of a CGI response to the client;
	// default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection; default DefaultIdleTimeout. NewHTTPServer applies it.
	IdleTimeout time.Duration
	// SpoolDir holds request bodies too large for memory; default os.TempDir().
	SpoolDir string

	// Logger receives the application log; AccessLog the access log, in
	// batches of whole lines at most 100 ms late (Close writes the last).
	Logger    *slog.Logger
	AccessLog io.Writer
	LogFormat LogFormat
	// Recorder, when set, receives a Record of every request.
	Recorder Recorder
}

// Site is one site's configuration. Zero values take the defaults named on
// each field.
type Site struct {
	// Name names the site in logs, labels and error pages; default
	// "default".
	Name string
	// Hosts are the host names the site answers (lower case, no port);
	// "*.example.org" answers every name below example.org. A name beats
	// a wildcard.
	Hosts []string
	// Default makes the site answer every host no site names. A lone site
	// without Hosts is the default.
	Default bool

	// Root is the directory served (the site root).
	Root string
	// CGI runs scripts under CGIDirs. When false, those directories answer
	// 403: a script's source is never served as a file.
	CGI bool
	// CGIDirs are the URL directories holding scripts; default /cgi-bin
	// and /htbin, like Python.
	CGIDirs []string
	// Dotfiles serves and lists names starting with a dot.
	Dotfiles bool
	// NoListing answers a directory without an index file 403.
	NoListing bool
	// Index are the names served for a directory (default index.html,
	// index.htm).
	Index []string
	// Headers are added to every response of the site (--header).
	Headers http.Header

	// Image is the default image: scripts without a #! line run in it.
	Image string
	// Limits apply to every job; zero fields take the Runner's defaults.
	Limits sandbox.Limits
	// Mode is how script output becomes a response; default ModePython.
	Mode CGIMode
	// NPH lets scripts named nph-* write their own status line and headers,
	// passed to the client unparsed (RFC 3875 §5).
	NPH bool
	// PassAuthorization passes the Authorization header to scripts as
	// HTTP_AUTHORIZATION (off by default, like Apache).
	PassAuthorization bool
	// MaxBody is the largest request body passed to a script; default
	// DefaultMaxBody.
	MaxBody int64
	// Concurrent is the site's CGI requests at once; more answer 429. Zero:
	// no cap but the server's MaxConcurrent.
	Concurrent int
	// Rate is the site's CGI requests per second, with a burst of as many;
	// more answer 429. Zero: no rate limit.
	Rate float64

	// DataDir is the host directory mounted read-write at
	// sandbox.DataMountPoint in the site's containers; "" for none.
	DataDir string
	// Users, when not nil, runs the site's scripts in a user namespace
	// mapped to these host ids.
	Users *sandbox.UserRange
}

// Server is the gateway's http.Handler.
type Server struct {
	cfg    Config
	log    *slog.Logger
	access *accessLog
	slots  chan struct{} // CGI concurrency: one token per running script
	queued atomic.Int64  // requests waiting for a slot
	// inFlight counts the requests being handled, for a graceful stop,
	// and holds the sites they are served from.
	inFlight *inFlight
	// quotas are the sites' quotas by name; they outlive a reload, so a
	// site's running scripts still count against it.
	quotas quotas
}

// New checks cfg and opens the sites' roots.
func New(cfg Config) (*Server, error) {
	switch cfg.Protocol {
	case "":
		cfg.Protocol = "HTTP/1.1"
	case "HTTP/1.0", "HTTP/1.1":
	default:
		return nil, fmt.Errorf("protocol %q: want HTTP/1.0 or HTTP/1.1", cfg.Protocol)
	}
	setDefault(&cfg.ServerSoftware, "cgibox")
	setDefault(&cfg.MountRoot, "/www")
	setDefault(&cfg.SpoolDir, os.TempDir())
	setDefault(&cfg.MaxURI, DefaultMaxURI)
	setDefault(&cfg.MaxHeaderSize, DefaultMaxHeaderSize)
	setDefault(&cfg.MaxHeaders, DefaultMaxHeaders)
	setDefault(&cfg.MaxConcurrent, DefaultMaxConcurrent)
	setDefault(&cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDefault(&cfg.BodyTimeout, DefaultBodyTimeout)
	setDefault(&cfg.WriteTimeout, DefaultWriteTimeout)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDefault(&cfg.HeaderTimeout, 30*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LogFormat == "" {
		cfg.LogFormat = LogPython
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		access:   newAccessLog(cfg.LogFormat, cfg.AccessLog),
		slots:    make(chan struct{}, cfg.MaxConcurrent),
		inFlight: newInFlight(),
		quotas:   quotas{byName: map[string]*quota{}},
	}
	t, err := s.newTable(cfg.Sites)
	if err != nil {
		return nil, err
	}
	s.inFlight.table = t
	return s, nil
}

// Close writes the access log's last batch and releases the sites' roots.
// Requests that end after it are logged without batching.
func (s *Server) Close() error {
	s.access.close()
	s.inFlight.mu.Lock()
	t := s.inFlight.table
	s.inFlight.mu.Unlock()
	return t.close()
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// cgiMethods are the methods a script may be called with. Python's handler
// knows GET, HEAD and POST; scripts written for Apache also get the others.
var cgiMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// routes registers the site's CGI directories with its own router;
// everything else, static files included, reaches dispatch through NotFound
// (a catch-all route at the root would conflict with the CGI routes).
func (h *site) routes() *httprouter.Router {
	r := httprouter.New()
	// The gateway cleans paths itself and decides static or CGI on the
	// cleaned path; the router must not redirect on its own.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = false
	r.HandleOPTIONS = false
	r.NotFound = http.HandlerFunc(h.dispatch)
	for _, dir := range h.cfg.CGIDirs {
		for _, m := range cgiMethods {
			r.Handler(m, dir+"/*path", http.HandlerFunc(h.dispatch))
		}
	}
	r.PanicHandler = func(w http.ResponseWriter, r *http.Request, v any) {
		if v == http.ErrAbortHandler {
			panic(v) // a response cut on purpose: net/http resets it
		}
		h.log.ErrorContext(r.Context(), "panic in handler", "panic", v, "request_id", requestID(w))
		h.fail(w, r, http.StatusInternalServerError, "Internal server error")
	}
	return r
}

// ServeHTTP guards the request, finds its site, then routes it in the
// site's router.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := s.inFlight.begin()
	defer s.inFlight.end(t)
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w, id: newRequestID()}
	e := entry{
		Remote: r.RemoteAddr, Time: start, Method: r.Method,
		URI: r.RequestURI, Proto: r.Proto, RequestID: rw.id,
	}
	defer func() {
		e.Status, e.Bytes, e.Duration = rw.status, rw.bytes, time.Since(start)
		if rw.site != nil {
			e.Site = rw.site.logName
		}
		if rw.cgi != nil {
			e.Script, e.CGI = rw.cgi.script, &rw.cgi.outcome
		}
		s.access.log(r.Context(), e)
		if s.cfg.Recorder != nil {
			s.cfg.Recorder.Record(s.record(e, rw))
		}
	}()
	rw.Header().Set("Server", s.cfg.ServerSoftware)
	// With HTTP/1.0 every response closes, as with Python. So does the
	// response to a request with a chunked body: net/http lets
	// Transfer-Encoding win over a Content-Length sent with it, and the
	// bytes after such a request are not to be trusted (SECURITY.md 41).
	if s.cfg.Protocol == "HTTP/1.0" || len(r.TransferEncoding) > 0 {
		rw.Header().Set("Connection", "close")
	}
	if code, msg := s.check(r); code != 0 {
		// Close: a request this malformed says nothing good about the
		// bytes that follow it.
		rw.Header().Set("Connection", "close")
		s.fail(rw, r, code, msg)
		return
	}
	// net/http has already refused a second Host header, and made r.Host
	// the authority of an absolute-form target (RFC 9112 §3.2.2).
	host, err := CanonicalHost(r.Host)
	if err != nil {
		rw.Header().Set("Connection", "close")
		s.fail(rw, r, http.StatusBadRequest, "Bad Host header")
		return
	}
	h := t.lookup(host)
	if h == nil {
		s.fail(rw, r, http.StatusMisdirectedRequest, "No site is served at this host name")
		return
	}
	rw.site, rw.host = h, host
	for k, v := range h.cfg.Headers {
		rw.Header()[k] = v
	}
	h.router.ServeHTTP(rw, r)
}

// record is the Record of a request whose access log entry is e.
func (s *Server) record(e entry, rw *statusWriter) Record {
	rec := Record{
		Time: e.Time, Duration: e.Duration, RequestID: e.RequestID, Site: e.Site,
		Method: e.Method, URI: e.URI, Remote: e.Remote, Status: e.Status, Bytes: e.Bytes,
	}
	if rw.site != nil {
		rec.Site = rw.site.cfg.Name
	}
	if rw.cgi != nil && rw.cgi.record.Image != "" {
		c := rw.cgi.record
		c.Script, c.Aborted = rw.cgi.script, rw.cgi.outcome.Aborted
		rec.CGI = &c
	}
	return rec
}

// check applies the request-level limits that come before any routing.
func (s *Server) check(r *http.Request) (int, string) {
	if len(r.RequestURI) > s.cfg.MaxURI {
		return http.StatusRequestURITooLong, "URI Too Long"
	}
	n, size := 0, 0
	for k, vs := range r.Header {
		for _, v := range vs {
			n++
			size += len(k) + len(v) + 4
		}
	}
	if n > s.cfg.MaxHeaders {
		return http.StatusRequestHeaderFieldsTooLarge, "Too many headers"
	}
	if size > s.cfg.MaxHeaderSize {
		return http.StatusRequestHeaderFieldsTooLarge, "Request header fields too large"
	}
	if strings.ContainsAny(r.URL.Path, "\x00\r\n") {
		return http.StatusBadRequest, "Bad request path"
	}
	if r.Method == http.MethodConnect || r.RequestURI == "*" {
		return http.StatusMethodNotAllowed, "Method not allowed"
	}
	return 0, ""
}

// dispatch decides static or CGI on the cleaned, decoded path, so that
// //cgi-bin/s, /cgi-bin/./s, /x/../cgi-bin/s and %2f tricks all reach the
// same decision as /cgi-bin/s (SECURITY.md cases 3 and 5).
func (h *site) dispatch(w http.ResponseWriter, r *http.Request) {
	clean := cleanPath(r.URL.Path)
	if dir := h.cgiDir(clean); dir != "" && clean != dir {
		if !h.cfg.CGI {
			h.fail(w, r, http.StatusForbidden, "CGI is disabled")
			return
		}
		if h.srv.Draining() {
			// A script started now would be cut by the stop.
			w.Header().Set("Retry-After", "5")
			w.Header().Set("Connection", "close")
			h.fail(w, r, http.StatusServiceUnavailable, "Server is shutting down, try again")
			return
		}
		// A local redirect is served once the script's concurrency slot
		// is free again.
		if target := h.serveCGI(w, r, dir, clean); target != "" {
			h.localRedirect(w, r, target)
		}
		return
	}
	h.static.ServeHTTP(w, r)
}

// cgiDir returns the CGI directory that clean lies in, or "".
func (h *site) cgiDir(clean string) string {
	for _, d := range h.cfg.CGIDirs {
		if clean == d || strings.HasPrefix(clean, d+"/") {
			return d
		}
	}
	return ""
}

// cleanPath collapses p like Python's _url_collapse_path: duplicate
// slashes, "." and ".." are resolved, never above the root; a trailing
// slash is kept.
func cleanPath(p string) string {
	c := p
	if !strings.HasPrefix(c, "/") {
		c = "/" + c
	}
	c = path.Clean(c) // no copy when p is clean already, as most are
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// fail answers with a fixed public message and the request id, before a
// site is known.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	id := requestID(w)
	w.Header().Set("X-Request-Id", id)
	static.WriteErrorRef(w, r, code, msg, static.Ref{RequestID: id})
}

// fail answers with a fixed public message, the request id and the site.
func (h *site) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	id := requestID(w)
	w.Header().Set("X-Request-Id", id)
	static.WriteErrorRef(w, r, code, msg, static.Ref{RequestID: id, Site: h.cfg.Name})
}

// NewHTTPServer returns the http.Server cgibox runs s in: s's timeouts on
// headers and idle connections (bodies and writes are bounded per request
// by the gateway), header bytes above the gateway's own caps so that it,
// not net/http, answers 414 and 431 with a proper page, and no built-in
// answer to OPTIONS *.
func NewHTTPServer(s *Server, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:                      s,
		ReadHeaderTimeout:            s.cfg.ReadHeaderTimeout,
		IdleTimeout:                  s.cfg.IdleTimeout,
		MaxHeaderBytes:               1 << 20,
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func requestID(w http.ResponseWriter) string {
	if sw, ok := w.(*statusWriter); ok {
		return sw.id
	}
	return ""
}

// statusWriter records what the access log needs. It unwraps for
// http.ResponseController, so flushing and hijacking reach the real writer.
type statusWriter struct {
	http.ResponseWriter
	id     string
	status int
	bytes  int64
	site   *site  // nil until the host is resolved
	host   string // the canonical host (SERVER_NAME)
	cgi    *cgiLog
}

// cgiLog is what a CGI request adds to its access log entry and Record.
type cgiLog struct {
	script  string
	outcome cgiOutcome
	record  CGIRecord
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom keeps net/http's sendfile path for static files.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := io.Copy(w.ResponseWriter, r)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
