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
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
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

// Config is the handler's configuration. Zero values take the defaults named
// on each field.
type Config struct {
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
	// Protocol is "HTTP/1.1" (default) or "HTTP/1.0"; with HTTP/1.0 every
	// response closes the connection, as Python's server does.
	Protocol string
	// Headers are added to every response (--header).
	Headers http.Header
	// ServerSoftware is the Server header and SERVER_SOFTWARE.
	ServerSoftware string

	// Runner runs CGI jobs; required when CGI is true.
	Runner Runner
	// Image is the default image: scripts without a #! line run in it.
	Image string
	// Images maps the names of cgibox's images (busybox, perl, python) to
	// their containerd references. When set, a script's #! line chooses
	// among them (see chooseImage); when nil, every script runs in Image.
	// An interpreter no image provides is a 500, unless Image is not one
	// of Images (a custom image), which then runs it.
	Images map[string]string
	// Limits apply to every job; zero fields take the Runner's defaults.
	Limits sandbox.Limits
	// MountRoot is where the site appears inside a container: a CGI
	// directory /cgi-bin is mounted at MountRoot+"/cgi-bin". Default /www.
	MountRoot string
	// Mode is how script output becomes a response; default ModePython.
	Mode CGIMode
	// NPH lets scripts named nph-* write their own status line and headers,
	// passed to the client unparsed (RFC 3875 §5).
	NPH bool
	// HeaderTimeout bounds the wait for a script's header block where the
	// gateway reads it before answering (rfc3875 mode, NPH); default 30s.
	HeaderTimeout time.Duration
	// PassAuthorization passes the Authorization header to scripts as
	// HTTP_AUTHORIZATION (off by default, like Apache).
	PassAuthorization bool

	MaxURI        int   // default DefaultMaxURI
	MaxHeaderSize int   // default DefaultMaxHeaderSize
	MaxHeaders    int   // default DefaultMaxHeaders
	MaxBody       int64 // default DefaultMaxBody
	MaxConcurrent int   // default DefaultMaxConcurrent
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
}

// Server is the gateway's http.Handler.
type Server struct {
	cfg    Config
	root   *os.Root
	static *static.Handler
	router *httprouter.Router
	log    *slog.Logger
	access *accessLog
	slots  chan struct{} // CGI concurrency: one token per running script
	// inFlight counts the requests being handled, for a graceful stop.
	inFlight *inFlight
}

// New checks cfg and opens the site root.
func New(cfg Config) (*Server, error) {
	if cfg.CGIDirs == nil {
		cfg.CGIDirs = []string{"/cgi-bin", "/htbin"}
	}
	for i, d := range cfg.CGIDirs {
		c := path.Clean("/" + d)
		if c == "/" || strings.Count(c, "/") != 1 {
			return nil, fmt.Errorf("CGI directory %q: must be one directory below the root, like /cgi-bin", d)
		}
		cfg.CGIDirs[i] = c
	}
	switch cfg.Protocol {
	case "":
		cfg.Protocol = "HTTP/1.1"
	case "HTTP/1.0", "HTTP/1.1":
	default:
		return nil, fmt.Errorf("protocol %q: want HTTP/1.0 or HTTP/1.1", cfg.Protocol)
	}
	if cfg.CGI && cfg.Runner == nil {
		return nil, errors.New("CGI is on but no runner was given")
	}
	setDefault(&cfg.ServerSoftware, "cgibox")
	setDefault(&cfg.MountRoot, "/www")
	setDefault(&cfg.SpoolDir, os.TempDir())
	setDefault(&cfg.MaxURI, DefaultMaxURI)
	setDefault(&cfg.MaxHeaderSize, DefaultMaxHeaderSize)
	setDefault(&cfg.MaxHeaders, DefaultMaxHeaders)
	setDefault(&cfg.MaxBody, DefaultMaxBody)
	setDefault(&cfg.MaxConcurrent, DefaultMaxConcurrent)
	setDefault(&cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDefault(&cfg.BodyTimeout, DefaultBodyTimeout)
	setDefault(&cfg.WriteTimeout, DefaultWriteTimeout)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDefault(&cfg.HeaderTimeout, 30*time.Second)
	switch cfg.Mode {
	case "":
		cfg.Mode = ModePython
	case ModePython, ModeRFC3875:
	default:
		return nil, fmt.Errorf("CGI mode %q: want python or rfc3875", cfg.Mode)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.LogFormat == "" {
		cfg.LogFormat = LogPython
	}

	// Absolute and free of symlinks: the CGI directories below it are
	// bind-mounted by path, and whatever the working directory is then.
	abs, err := filepath.Abs(cfg.Root)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return nil, fmt.Errorf("site root: %w", err)
	}
	cfg.Root = abs
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("site root: %w", err)
	}
	s := &Server{
		cfg:    cfg,
		root:   root,
		static: &static.Handler{Root: root, Dotfiles: cfg.Dotfiles, CGIDirs: cfg.CGIDirs},
		log:    cfg.Logger,
		access: newAccessLog(cfg.LogFormat, cfg.AccessLog),
		slots:  make(chan struct{}, cfg.MaxConcurrent),

		inFlight: newInFlight(),
	}
	s.router = s.routes()
	return s, nil
}

// Close writes the access log's last batch and releases the site root.
// Requests that end after it are logged without batching.
func (s *Server) Close() error {
	s.access.close()
	return s.root.Close()
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

// routes registers every CGI directory with the router; everything else,
// static files included, reaches dispatch through NotFound (a catch-all
// route at the root would conflict with the CGI routes).
func (s *Server) routes() *httprouter.Router {
	r := httprouter.New()
	// The gateway cleans paths itself and decides static or CGI on the
	// cleaned path; the router must not redirect on its own.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = false
	r.HandleOPTIONS = false
	r.NotFound = http.HandlerFunc(s.dispatch)
	for _, dir := range s.cfg.CGIDirs {
		for _, m := range cgiMethods {
			r.Handler(m, dir+"/*path", http.HandlerFunc(s.dispatch))
		}
	}
	r.PanicHandler = func(w http.ResponseWriter, r *http.Request, v any) {
		if v == http.ErrAbortHandler {
			panic(v) // a response cut on purpose: net/http resets it
		}
		s.log.ErrorContext(r.Context(), "panic in handler", "panic", v, "request_id", requestID(w))
		s.fail(w, r, http.StatusInternalServerError, "Internal server error")
	}
	return r
}

// ServeHTTP guards the request, then routes it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.inFlight.begin()
	defer s.inFlight.end()
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w, id: newRequestID()}
	e := entry{
		Remote: r.RemoteAddr, Time: start, Method: r.Method,
		URI: r.RequestURI, Proto: r.Proto, RequestID: rw.id,
	}
	defer func() {
		e.Status, e.Bytes, e.Duration = rw.status, rw.bytes, time.Since(start)
		if rw.cgi != nil {
			e.Script, e.CGI = rw.cgi.script, &rw.cgi.outcome
		}
		s.access.log(r.Context(), e)
	}()
	for k, v := range s.cfg.Headers {
		rw.Header()[k] = v
	}
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
	s.router.ServeHTTP(rw, r)
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
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	clean := cleanPath(r.URL.Path)
	if dir := s.cgiDir(clean); dir != "" && clean != dir {
		if !s.cfg.CGI {
			s.fail(w, r, http.StatusForbidden, "CGI is disabled")
			return
		}
		if s.Draining() {
			// A script started now would be cut by the stop.
			w.Header().Set("Retry-After", "5")
			w.Header().Set("Connection", "close")
			s.fail(w, r, http.StatusServiceUnavailable, "Server is shutting down, try again")
			return
		}
		// A local redirect is served once the script's concurrency slot
		// is free again.
		if target := s.serveCGI(w, r, dir, clean); target != "" {
			s.localRedirect(w, r, target)
		}
		return
	}
	s.static.ServeHTTP(w, r)
}

// cgiDir returns the CGI directory that clean lies in, or "".
func (s *Server) cgiDir(clean string) string {
	for _, d := range s.cfg.CGIDirs {
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

// fail answers with a fixed public message and the request id.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	id := requestID(w)
	w.Header().Set("X-Request-Id", id)
	static.WriteError(w, r, code, msg, id)
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
	cgi    *cgiLog
}

// cgiLog is what a CGI request adds to its access log entry.
type cgiLog struct {
	script  string
	outcome cgiOutcome
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
