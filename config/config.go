// Package config is cgibox's configuration document: one TOML file (the
// format of containerd's own config) with a [server] table and one [[site]]
// table per site, parsed strictly, given its defaults in one place and
// validated with messages that name the field. Without a file, the command
// line describes one site (see cmd/cgibox).
package config

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cgibox/cgibox/gateway"
	"github.com/cgibox/cgibox/sandbox"
)

// Config is a resolved configuration: every default applied, every field
// checked.
type Config struct {
	Server Server
	Sites  []Site
	// File is where it was read from; "" when the command line made it.
	File string
}

// Server holds the settings of the whole server, never of one site.
type Server struct {
	// Listen are the addresses to serve on, host:port.
	Listen []string
	// Protocol is HTTP/1.1 or HTTP/1.0 (every connection closes).
	Protocol string
	// MaxConcurrent is the number of CGI requests running at once, all
	// sites together.
	MaxConcurrent int
	// Queue is how many CGI requests may wait when MaxConcurrent run,
	// each for at most QueueWait, before 503 (0: none wait).
	Queue     int
	QueueWait time.Duration
	// DataDir holds cgibox's state and a private containerd.
	DataDir string
	// Containerd is the containerd socket, "auto" or "private".
	Containerd string
	// RuntimeBinary replaces the runc the shim runs ("": runc).
	RuntimeBinary string
	// UserNamespaces is "auto" (each site in a user namespace of its own
	// where the host can), "on" (required: cgibox does not start without)
	// or "off".
	UserNamespaces string
	// Pool configures the prepared containers (per site and image).
	Pool sandbox.PoolConfig

	DrainTimeout  time.Duration
	HeaderTimeout time.Duration // a request's line and headers
	BodyTimeout   time.Duration // a CGI request's body
	WriteTimeout  time.Duration // each write of a CGI response
	IdleTimeout   time.Duration // a keep-alive connection between requests

	TLSCert, TLSKey, TLSPasswordFile string

	// Admin is the admin listener's host:port (/metrics, /healthz,
	// /readyz), apart from every site; "" for none.
	Admin string
	// Audit is the file the audit log of CGI jobs is appended to ("-":
	// stdout; "": none).
	Audit string

	LogFormat string // text or json
	LogLevel  string // debug, info, warn or error
}

// Site is one site: the hosts it answers, its files and scripts and what
// its scripts may use.
type Site struct {
	Name string
	// Default makes the site answer hosts no site names.
	Default bool
	// Hosts are lower-case names without a port or trailing dot; a name
	// "*.example.org" matches every name below example.org (not
	// example.org itself). A name beats a wildcard.
	Hosts []string
	// Root is the directory served, absolute.
	Root string

	// CGI runs scripts; off, CGI directories answer 403.
	CGI bool
	// CGIDirs are URL directories one level below the root.
	CGIDirs []string
	// Mode is "python" or "rfc3875".
	Mode string
	// Image is the default image (a cgibox image name or a containerd
	// reference); a script's #! line still chooses among cgibox's images.
	Image             string
	NPH               bool
	PassAuthorization bool

	Dotfiles bool
	Listing  bool
	Index    []string
	Headers  http.Header

	// DataDir is a host directory mounted read-write at /data in the
	// site's containers; "" for none. DataQuota caps its size (0: none).
	DataDir   string
	DataQuota int64
	// Users are the host ids of the site's user namespace (when user
	// namespaces are in force): from the name unless the file sets uid.
	Users sandbox.UserRange

	Limits Limits
}

// Limits bound a site's scripts.
type Limits struct {
	Timeout time.Duration // wall-clock time of one script
	Memory  int64         // bytes, no swap
	CPUs    float64       // cores
	Pids    int64         // processes and threads
	Output  int64         // bytes of one script's output
	Body    int64         // bytes of a request body passed to a script
	Tmp     int64         // bytes of a script's /tmp
	// Concurrent is the site's CGI requests at once (0: up to the
	// server's MaxConcurrent); more answer 429.
	Concurrent int
	// Rate is the site's CGI requests per second, burst the same (0: no
	// rate limit); more answer 429.
	Rate float64
}

// The queue at the global CGI cap: a burst beyond max_concurrent waits,
// as it would for Apache's or Python's workers, instead of failing.
const (
	DefaultQueue     = 64
	DefaultQueueWait = 10 * time.Second
)

// DefaultServer returns the server settings a file or the command line
// starts from.
func DefaultServer() Server {
	return Server{
		Listen:         []string{":8000"},
		Protocol:       "HTTP/1.1",
		MaxConcurrent:  gateway.DefaultMaxConcurrent,
		Queue:          DefaultQueue,
		QueueWait:      DefaultQueueWait,
		DataDir:        "/var/lib/cgibox",
		Containerd:     sandbox.AddressAuto,
		UserNamespaces: "auto",
		Pool:           sandbox.DefaultPool(),
		DrainTimeout:   30 * time.Second,
		HeaderTimeout:  gateway.DefaultReadHeaderTimeout,
		BodyTimeout:    gateway.DefaultBodyTimeout,
		WriteTimeout:   gateway.DefaultWriteTimeout,
		IdleTimeout:    gateway.DefaultIdleTimeout,
		LogFormat:      "text",
		LogLevel:       "info",
	}
}

// DefaultSite returns the settings a site starts from: Python's, with
// cgibox's limits.
func DefaultSite() Site {
	l := sandbox.DefaultLimits()
	return Site{
		CGI:     true,
		CGIDirs: []string{"/cgi-bin", "/htbin"},
		Mode:    string(gateway.ModePython),
		Image:   "busybox",
		Listing: true,
		Index:   []string{"index.html", "index.htm"},
		Headers: http.Header{},
		Limits: Limits{
			Timeout: l.Wall, Memory: l.Memory, CPUs: l.CPU, Pids: l.Pids,
			Output: l.Output, Body: gateway.DefaultMaxBody, Tmp: TmpFor(gateway.DefaultMaxBody),
		},
	}
}

// tmpSlack is what /tmp holds beyond a request body: the multipart
// framing and a script's own temporary files.
const tmpSlack = 8 << 20

// TmpFor is the /tmp size of a site that sets none: room for the largest
// body the site accepts, which CGI.pm and cgi.FieldStorage spool to /tmp,
// and then some. A file there may be as large as /tmp (RLIMIT_FSIZE).
func TmpFor(body int64) int64 { return body + tmpSlack }

// SandboxLimits returns the limits of one job of the site.
func (l Limits) SandboxLimits() sandbox.Limits {
	return sandbox.Limits{Wall: l.Timeout, Memory: l.Memory, CPU: l.CPUs, Pids: l.Pids, Output: l.Output, Tmp: l.Tmp}
}

// Error is a problem with a configuration document: where it is and what.
type Error struct {
	File string
	Line int    // 0 when the problem has no one line
	Key  string // the field, dotted ("site.limits.memory"); "" if none
	Msg  string
}

func (e *Error) Error() string {
	if e.File == "" && e.Line == 0 {
		if e.Key != "" {
			return fmt.Sprintf("%s: %s", e.Key, e.Msg)
		}
		return e.Msg
	}
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", where, e.Line)
	}
	if e.Key != "" {
		return fmt.Sprintf("%s: %s: %s", where, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", where, e.Msg)
}

// Errors are all the problems found in one document.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]error, len(es))
	for i, e := range es {
		msgs[i] = e
	}
	return errors.Join(msgs...).Error()
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
