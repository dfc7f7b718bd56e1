package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/cgibox/cgibox/config"
	"github.com/cgibox/cgibox/gateway"
	"github.com/cgibox/cgibox/images"
	"github.com/cgibox/cgibox/sandbox"
)

// serveOptions is the command line of `cgibox serve`: python -m http.server's,
// plus cgibox's own.
type serveOptions struct {
	port      int
	bind      string
	directory string
	protocol  string
	noCGI     bool
	dotfiles  bool
	tlsCert   string
	tlsKey    string
	tlsPass   string
	headers   http.Header

	containerd string
	dataDir    string
	image      string
	cgiDirs    []string
	passAuth   bool
	cgiMode    string
	nph        bool
	// runtimeBinary replaces the runc the shim runs (another
	// runc-compatible runtime; the tests also use it for a missing or
	// broken one).
	runtimeBinary string

	timeout       time.Duration
	drainTimeout  time.Duration
	memory        int64
	pids          int64
	cpus          float64
	maxOutput     int64
	maxBody       int64
	tmp           int64
	maxConcurrent int
	queue         int
	queueWait     time.Duration
	pool          sandbox.PoolConfig

	headerTimeout time.Duration
	bodyTimeout   time.Duration
	writeTimeout  time.Duration
	idleTimeout   time.Duration

	logFormat string
	logLevel  slog.Level

	// configFile is --config; set names the flags given (by their long
	// names), which override the file.
	configFile string
	set        map[string]bool

	admin string
	audit string
}

// The headings the flags of `cgibox serve` are grouped under in its help.
const (
	groupPython  = "Python's options (as python -m http.server --cgi)"
	groupTLS     = "TLS (as Python 3.14)"
	groupScripts = "Scripts"
	groupLimits  = "Sandbox limits (each script)"
	groupServer  = "Server"
	groupOps     = "Operations"
	groupDaemon  = "containerd"
)

// serveFlags holds what the flags of `cgibox serve` parse into until
// options checks them and makes the serveOptions.
type serveFlags struct {
	o                *serveOptions
	cgi              bool
	headers, cgiDirs stringList
	logLevel         string

	timeout, drainTimeout, queueWait, poolIdle            positiveDuration
	headerTimeout, bodyTimeout, writeTimeout, idleTimeout positiveDuration
	memory, maxOutput, maxBody, tmp                       byteSize
}

// addServeFlags defines the flags of `cgibox serve` on fs, each under its
// heading, with the configuration document's defaults: one source.
func addServeFlags(fs *pflag.FlagSet) *serveFlags {
	o := &serveOptions{headers: http.Header{}}
	ds, dl := config.DefaultServer(), config.DefaultSite()
	o.pool = ds.Pool
	f := &serveFlags{
		o: o, logLevel: ds.LogLevel,
		timeout: positiveDuration(dl.Limits.Timeout), drainTimeout: positiveDuration(ds.DrainTimeout),
		queueWait: positiveDuration(ds.QueueWait), poolIdle: positiveDuration(o.pool.Idle),
		headerTimeout: positiveDuration(ds.HeaderTimeout), bodyTimeout: positiveDuration(ds.BodyTimeout),
		writeTimeout: positiveDuration(ds.WriteTimeout), idleTimeout: positiveDuration(ds.IdleTimeout),
		memory: byteSize(dl.Limits.Memory), maxOutput: byteSize(dl.Limits.Output),
		maxBody: byteSize(dl.Limits.Body), tmp: byteSize(dl.Limits.Tmp),
	}
	fs.SortFlags = false
	cwd, _ := os.Getwd()

	addHelpFlag(fs)
	fs.StringVarP(&o.bind, "bind", "b", "", "bind to this `address` (default: all interfaces, IPv4 and IPv6)")
	fs.StringVarP(&o.directory, "directory", "d", cwd, "serve this `directory` (default: the current one)")
	fs.Lookup("directory").DefValue = "" // the help says it; a path would differ per machine
	fs.StringVarP(&o.protocol, "protocol", "p", ds.Protocol, "conform to this HTTP `version` (HTTP/1.0 closes every connection)")
	fs.BoolVar(&f.cgi, "cgi", false, "run CGI scripts (always on in cgibox; accepted for compatibility)")
	fs.Var(&f.headers, "header", "add this `'Name: value'` header to every response (repeatable)")
	setGroup(fs, groupPython, "help", "bind", "directory", "protocol", "cgi", "header")

	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this certificate `file` (PEM)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "private key `file` for --tls-cert (default: in the certificate file)")
	fs.StringVar(&o.tlsPass, "tls-password-file", "", "`file` holding the password of an encrypted --tls-key")
	setGroup(fs, groupTLS, "tls-cert", "tls-key", "tls-password-file")

	fs.BoolVar(&o.noCGI, "no-cgi", false, "do not run CGI scripts; CGI directories then answer 403")
	fs.Var(&f.cgiDirs, "cgi-dir", "URL `directory` holding CGI scripts (repeatable; default: /cgi-bin and /htbin)")
	fs.StringVar(&o.cgiMode, "cgi-mode", dl.Mode, "how script output becomes a response, by `mode`: python (200 at once, like Python) or rfc3875 (Status, Location, keep-alive)")
	fs.BoolVar(&o.nph, "nph", false, "let scripts named nph-* send their own status line and headers, unparsed")
	fs.BoolVar(&o.passAuth, "pass-authorization", false, "pass the Authorization header to scripts as HTTP_AUTHORIZATION")
	fs.BoolVar(&o.dotfiles, "dotfiles", false, "serve and list files whose names start with a dot")
	fs.StringVar(&o.image, "image", dl.Image, "`image` scripts run in (a cgibox image name or a containerd reference)")
	setGroup(fs, groupScripts, "no-cgi", "cgi-dir", "cgi-mode", "nph", "pass-authorization", "dotfiles", "image")

	fs.Var(&f.timeout, "timeout", "wall-clock limit of one script")
	fs.Var(&f.memory, "memory", "memory limit of one script, without swap")
	fs.Int64Var(&o.pids, "pids", dl.Limits.Pids, "processes and threads of one script, at most")
	fs.Float64Var(&o.cpus, "cpus", dl.Limits.CPUs, "CPU cores one script may use")
	fs.Var(&f.maxOutput, "max-output", "output of one script before it is stopped")
	fs.Var(&f.maxBody, "max-body", "largest request body passed to a script (413 above)")
	fs.Var(&f.tmp, "tmp", "size of a script's /tmp, where uploads are spooled, and of the largest file it may write (default: --max-body + 8M; counts against --memory)")
	fs.Lookup("tmp").DefValue = "" // the help says it: it follows --max-body
	setGroup(fs, groupLimits, "timeout", "memory", "pids", "cpus", "max-output", "max-body", "tmp")

	fs.StringVar(&o.configFile, "config", "", "serve the sites this TOML `file` describes; flags given too override it (SIGHUP reloads it)")
	fs.IntVar(&o.maxConcurrent, "max-concurrent", ds.MaxConcurrent, "CGI requests that may run at once, all sites together")
	fs.IntVar(&o.queue, "queue", ds.Queue, "CGI requests that may wait, in arrival order, when --max-concurrent run (0: none, 503 at once)")
	fs.Var(&f.queueWait, "queue-wait", "how long a request waits in the queue before 503")
	fs.IntVar(&o.pool.Max, "pool", o.pool.Max, "keep up to this many containers started ahead per site and image (each still serves one request; 0 turns this off)")
	fs.IntVar(&o.pool.Min, "pool-min", o.pool.Min, "prepared containers a pool keeps while idle (0 lets it shrink to none)")
	fs.IntVar(&o.pool.Total, "pool-total", o.pool.Total, "prepared containers of all pools together, at most (0: no cap); the least recently used pool gives one up for a busier one")
	fs.Var(&f.poolIdle, "pool-idle", "a pool without requests for this long shrinks by one container")
	fs.Var(&f.headerTimeout, "header-timeout", "time to receive a request's line and headers; then the connection is closed")
	fs.Var(&f.bodyTimeout, "body-timeout", "time to receive a CGI request's body; then 400, and no script runs")
	fs.Var(&f.writeTimeout, "write-timeout", "time each write of a CGI response to the client may take; then the script is killed")
	fs.Var(&f.idleTimeout, "idle-timeout", "time a keep-alive connection may wait for its next request")
	fs.Var(&f.drainTimeout, "drain-timeout", "on SIGTERM or SIGINT, how long requests in flight may take to finish before they are ended")
	setGroup(fs, groupServer, "config", "max-concurrent", "queue", "queue-wait", "pool", "pool-min", "pool-total", "pool-idle",
		"header-timeout", "body-timeout", "write-timeout", "idle-timeout", "drain-timeout")

	fs.StringVar(&o.logFormat, "log-format", ds.LogFormat, "log `format`: text (python's access log) or json")
	fs.StringVar(&f.logLevel, "log-level", ds.LogLevel, "log `level`: debug, info, warn or error")
	fs.StringVar(&o.admin, "admin", "", "serve /metrics, /healthz and /readyz on this `host:port`, apart from every site (e.g. 127.0.0.1:9100)")
	fs.StringVar(&o.audit, "audit", "", "append one JSON line per CGI job to this `file` (- for stdout; reopened on SIGUSR1)")
	setGroup(fs, groupOps, "log-format", "log-level", "admin", "audit")

	fs.StringVar(&o.containerd, "containerd", sandbox.AddressAuto, containerdUsage)
	fs.StringVar(&o.dataDir, "data-dir", ds.DataDir, "`directory` for cgibox's state and a private containerd")
	fs.StringVar(&o.runtimeBinary, "runtime-binary", "", "runc-compatible runtime `binary` the shim runs (default: runc on containerd's PATH)")
	setGroup(fs, groupDaemon, "containerd", "data-dir", "runtime-binary")
	return f
}

// parseServe parses the command line of `cgibox serve` (without the word
// serve): python -m http.server's, plus cgibox's own. Every error is a
// usage error.
func parseServe(args []string) (*serveOptions, error) {
	fs := pflag.NewFlagSet("cgibox serve", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := addServeFlags(fs)
	long, short := map[string]bool{}, map[string]bool{}
	flagNames(fs, long, short)
	if err := fs.Parse(longFlags(long, short, args)); err != nil {
		return nil, usageError{err: err}
	}
	return f.options(fs, fs.Args())
}

// options checks the flags fs parsed and the positional arguments, and
// makes the serveOptions. Every error is a usage error.
func (f *serveFlags) options(fs *pflag.FlagSet, pos []string) (*serveOptions, error) {
	o, err := f.check(fs, pos)
	if err != nil {
		return nil, usageError{err: err}
	}
	return o, nil
}

func (f *serveFlags) check(fs *pflag.FlagSet, pos []string) (*serveOptions, error) {
	o := f.o
	o.set = map[string]bool{}
	fs.Visit(func(fl *pflag.Flag) { o.set[fl.Name] = true })
	delete(o.set, "help")
	if len(pos) > 0 {
		o.set["port"] = true
	}
	o.port = 8000
	switch len(pos) {
	case 0:
	case 1:
		p, err := strconv.Atoi(pos[0])
		if err != nil || p < 0 || p > 65535 {
			return nil, fmt.Errorf("port %q: want a number from 0 to 65535", pos[0])
		}
		o.port = p
	default:
		return nil, fmt.Errorf("unexpected arguments %q: only one port may be given", pos[1:])
	}
	if o.protocol != "HTTP/1.0" && o.protocol != "HTTP/1.1" {
		return nil, fmt.Errorf("--protocol %q: want HTTP/1.0 or HTTP/1.1", o.protocol)
	}
	for _, h := range f.headers {
		name, value, ok := strings.Cut(h, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || !config.ValidHeaderName(name) || strings.ContainsAny(value, "\r\n\x00") {
			return nil, fmt.Errorf("--header %q: want 'Name: value'", h)
		}
		o.headers.Add(name, value)
	}
	if (o.tlsKey != "" || o.tlsPass != "") && o.tlsCert == "" {
		return nil, errors.New("--tls-key and --tls-password-file need --tls-cert")
	}
	if o.cgiMode != string(gateway.ModePython) && o.cgiMode != string(gateway.ModeRFC3875) {
		return nil, fmt.Errorf("--cgi-mode %q: want python or rfc3875", o.cgiMode)
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return nil, fmt.Errorf("--log-format %q: want text or json", o.logFormat)
	}
	if err := o.logLevel.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	if o.pids <= 0 || o.cpus <= 0 || o.maxConcurrent <= 0 {
		return nil, errors.New("--pids, --cpus and --max-concurrent must be above zero")
	}
	if o.pool.Max == 0 {
		o.pool.Min = 0 // no pool: nothing to keep
	}
	if o.pool.Max < 0 || o.pool.Min < 0 || o.pool.Min > o.pool.Max {
		return nil, fmt.Errorf("--pool %d --pool-min %d: want 0 <= --pool-min <= --pool", o.pool.Max, o.pool.Min)
	}
	o.pool.Idle = time.Duration(f.poolIdle)
	if st, err := os.Stat(o.directory); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("--directory %q: not a directory", o.directory)
	}
	o.cgiDirs = f.cgiDirs
	o.timeout, o.drainTimeout, o.memory = time.Duration(f.timeout), time.Duration(f.drainTimeout), int64(f.memory)
	o.maxOutput, o.maxBody, o.tmp = int64(f.maxOutput), int64(f.maxBody), int64(f.tmp)
	o.queueWait = time.Duration(f.queueWait)
	o.headerTimeout, o.bodyTimeout = time.Duration(f.headerTimeout), time.Duration(f.bodyTimeout)
	o.writeTimeout, o.idleTimeout = time.Duration(f.writeTimeout), time.Duration(f.idleTimeout)
	return o, nil
}

// serve runs the server until ctx ends, then drains it: the requests in
// flight may finish for up to the drain timeout, or until now is closed.
// SIGHUP reloads the --config file's sites.
func serve(ctx context.Context, now <-chan struct{}, o *serveOptions, stdout, stderr io.Writer) error {
	c, err := o.loadConfig()
	if err != nil {
		return err
	}
	log, format := newLogger(c.Server, stderr)
	sv := c.Server
	gcfg := gateway.Config{
		Protocol:          sv.Protocol,
		ServerSoftware:    "cgibox/" + version(),
		MaxConcurrent:     sv.MaxConcurrent,
		QueueLength:       sv.Queue,
		QueueWait:         sv.QueueWait,
		ReadHeaderTimeout: sv.HeaderTimeout,
		BodyTimeout:       sv.BodyTimeout,
		WriteTimeout:      sv.WriteTimeout,
		IdleTimeout:       sv.IdleTimeout,
		SpoolDir:          filepath.Join(sv.DataDir, "spool"),
		Logger:            log,
		AccessLog:         stderr,
		LogFormat:         format,
	}
	rt := &siteRuntime{log: log, progress: stderr, cacheDir: imageCacheDir(sv.DataDir)}
	defer rt.close()
	op, err := startOps(sv, stdout, log)
	if err != nil {
		return err
	}
	defer op.close()
	op.ready = &readiness{}
	if slices.ContainsFunc(c.Sites, func(s config.Site) bool { return s.CGI }) {
		sb, err := startSandbox(ctx, sv, log)
		switch {
		case ctx.Err() != nil:
			// Stopped while starting: nothing was served yet.
			if sb != nil {
				sb.close()
			}
			return nil
		case errors.Is(err, sandbox.ErrDataDirBusy):
			return fmt.Errorf("%w; use another --data-dir", err)
		case err != nil:
			// Static files are still served, as a Python user expects; every
			// CGI request answers 503 until cgibox runs where it can.
			log.Error("CGI is unavailable: scripts answer 503 (run `cgibox doctor` to see why)", "err", err)
			gcfg.Runner, gcfg.SpoolDir = unavailable{err}, ""
			op.ready.unavailable = err
		default:
			defer sb.close()
			gcfg.Runner, gcfg.Images, rt.mgr = sb.mgr, sb.images, sb.mgr
			gcfg.ImageFixFlags = fixFlags(sv.Containerd, sv.DataDir)
			op.ready.mgr = sb.mgr
			op.metrics.CollectSandbox(sb.mgr)
			if rt.userns, err = userNamespaces(sv, sb.mgr, log); err != nil {
				return err
			}
			rt.required = sv.UserNamespaces == "on"
			if sv.Pool.Max > 0 {
				log.Info("prepared containers", "per_pool_max", sv.Pool.Max, "per_pool_min", sv.Pool.Min, "idle", sv.Pool.Idle)
				go reportPools(ctx, sb.mgr, log, poolReportEvery)
			}
		}
	}
	if gcfg.Sites, err = rt.gatewaySites(ctx, c); err != nil {
		return err
	}
	gcfg.Recorder = op.recorder()
	gw, err := gateway.New(gcfg)
	if err != nil {
		return err
	}
	defer gw.Close()
	if c.File != "" {
		log.Info("serving sites", "config", c.File, "sites", gw.Sites())
	}
	op.ready.gw = gw
	op.ready.setSites(gcfg.Sites)
	if err := op.listen(ctx, sv.Admin); err != nil {
		return err
	}

	srv := gateway.NewHTTPServer(gw, log)
	srv.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	if sv.Protocol == "HTTP/1.0" {
		srv.SetKeepAlivesEnabled(false)
	}
	scheme := "HTTP"
	if sv.TLSCert != "" {
		cert, err := loadCertificate(sv.TLSCert, sv.TLSKey, sv.TLSPasswordFile)
		if err != nil {
			return err
		}
		// HTTP/2 is offered: rfc3875 responses stream over it, and Python
		// mode falls back to parsed headers with a fixed 200 there.
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "HTTPS"
	}
	var lns []net.Listener
	for _, addr := range sv.Listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return fmt.Errorf("listen: %w", err)
		}
		lns = append(lns, ln)
	}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		host, port, _ := net.SplitHostPort(ln.Addr().String())
		if host == "" {
			host = "::"
		}
		urlHost := host
		if strings.Contains(host, ":") {
			urlHost = "[" + host + "]"
		}
		fmt.Fprintf(stdout, "Serving %s on %s port %s (%s://%s:%s/) ...\n",
			scheme, host, port, strings.ToLower(scheme), urlHost, port)
		go func() {
			if srv.TLSConfig != nil {
				errc <- srv.ServeTLS(ln, "", "")
			} else {
				errc <- srv.Serve(ln)
			}
		}()
	}

	hup, usr1 := make(chan os.Signal, 1), make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(hup)
	defer signal.Stop(usr1)
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("serving: %w", err)
		case <-hup:
			c = reload(ctx, o, c, rt, gw, op.ready, log)
			continue
		case <-usr1:
			op.reopen()
			continue
		case <-ctx.Done():
		}
		break
	}
	fmt.Fprintln(stdout, "\nKeyboard interrupt received, exiting.")
	drain(context.WithoutCancel(ctx), srv, gw, sv.DrainTimeout, now, log)
	// The deferred closes end what is left, delete its containers and stop
	// a private containerd this process started.
	return nil
}

// reload reads the --config file again and serves its sites; the requests
// under way finish with the sites they began with. A file that does not
// load, or sites that cannot be served, change nothing: the old
// configuration keeps serving and the log says why. Server settings are
// not reloaded: a change there is logged as needing a restart. It returns
// the configuration now served.
func reload(ctx context.Context, o *serveOptions, old *config.Config, rt *siteRuntime, gw *gateway.Server, ready *readiness, log *slog.Logger) *config.Config {
	if o.configFile == "" {
		log.Warn("SIGHUP: no --config file to reload; nothing changed")
		return old
	}
	c, err := o.loadConfig()
	if err != nil {
		log.Error("SIGHUP: the new configuration is refused; still serving the old one", "err", err)
		return old
	}
	if changed := serverChanges(old.Server, c.Server); len(changed) > 0 {
		log.Warn("SIGHUP: [server] settings take effect on a restart only", "changed", changed)
		c.Server = old.Server
	}
	sites, err := rt.gatewaySites(ctx, c)
	if err == nil {
		err = gw.SetSites(sites)
	}
	if err != nil {
		log.Error("SIGHUP: the new sites cannot be served; still serving the old ones", "err", err)
		rt.closeUnused(old)
		return old
	}
	rt.closeUnused(c)
	ready.setSites(sites)
	if rt.mgr != nil {
		var names []string
		for _, s := range sites {
			names = append(names, s.Name)
		}
		rt.mgr.KeepSites(names) // the prepared containers of sites gone
	}
	log.Info("SIGHUP: configuration reloaded", "config", c.File, "sites", gw.Sites())
	return c
}

// serverChanges names the [server] settings that differ.
func serverChanges(a, b config.Server) []string {
	var out []string
	if !slices.Equal(a.Listen, b.Listen) {
		out = append(out, "listen")
	}
	a.Listen, b.Listen = nil, nil
	av, bv := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range av.NumField() {
		if !reflect.DeepEqual(av.Field(i).Interface(), bv.Field(i).Interface()) {
			out = append(out, av.Type().Field(i).Name)
		}
	}
	return out
}

// newLogger makes the application log of the server's settings, and says
// in which format the access log goes.
func newLogger(sv config.Server, w io.Writer) (*slog.Logger, gateway.LogFormat) {
	var level slog.Level
	level.UnmarshalText([]byte(sv.LogLevel)) // checked by config.Check
	opts := &slog.HandlerOptions{Level: level}
	if sv.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), gateway.LogJSON
	}
	return slog.New(slog.NewTextHandler(w, opts)), gateway.LogPython
}

// userNamespaces decides whether sites run in user namespaces of their
// own: "auto" where the host can, "on" or not at all, "off" never.
func userNamespaces(sv config.Server, mgr *sandbox.Manager, log *slog.Logger) (bool, error) {
	switch sv.UserNamespaces {
	case "off":
		return false, nil
	case "on":
		if err := mgr.UserNamespaces(); err != nil {
			return false, fmt.Errorf("user_namespaces = \"on\", but this host cannot: %w", err)
		}
		log.Info("user namespaces: each site's scripts run as host ids of their own")
		return true, nil
	}
	if err := mgr.UserNamespaces(); err != nil {
		log.Warn("user namespaces unavailable: every site's scripts run as host uid 65534", "why", err)
		return false, nil
	}
	log.Info("user namespaces: each site's scripts run as host ids of their own")
	return true, nil
}

// drain stops srv gracefully: no new connections, new CGI requests 503,
// and the requests in flight (hijacked streams included, which
// http.Server.Shutdown does not wait for) given until timeout, or until now
// is closed, to finish.
func drain(ctx context.Context, srv *http.Server, gw *gateway.Server, timeout time.Duration, now <-chan struct{}, log *slog.Logger) {
	start := time.Now()
	gw.Drain()
	log.Info("draining: waiting for the requests in flight", "in_flight", gw.InFlight(), "timeout", timeout)
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errors.New("drain timeout"))
	defer cancel()
	go func() {
		select {
		case <-now:
			log.Warn("second signal: ending the requests in flight now", "in_flight", gw.InFlight())
			cancel()
		case <-ctx.Done():
		}
	}()
	err := srv.Shutdown(ctx) // closes the listeners and idle connections
	if ctx.Err() == nil {
		// Shutdown does not wait for hijacked streams, and may have
		// failed on closing a listener only.
		err = errors.Join(err, gw.WaitIdle(ctx))
	}
	if err != nil {
		log.Warn("drain incomplete: ending what is left", "in_flight", gw.InFlight(), "err", err)
		srv.Close()
		return
	}
	log.Info("drained", "took", time.Since(start).Round(time.Millisecond))
}

// sandboxed is the running sandbox of a serving cgibox.
type sandboxed struct {
	mgr    *sandbox.Manager
	images map[string]string // cgibox's images by name
}

func (s *sandboxed) close() { s.mgr.Close() }

// startSandbox takes the data directory and connects to containerd (or
// starts a private one). The data directory is held until close.
func startSandbox(ctx context.Context, sv config.Server, log *slog.Logger) (*sandboxed, error) {
	mgr, err := sandbox.New(ctx,
		sandbox.WithAddress(sv.Containerd),
		sandbox.WithDataDir(sv.DataDir),
		sandbox.WithLogger(log),
		sandbox.WithRuntimeBinary(sv.RuntimeBinary),
		sandbox.WithPool(sv.Pool),
	)
	if err != nil {
		return nil, err
	}
	log.Info("containerd", "where", mgr.Where())
	if err := os.MkdirAll(filepath.Join(sv.DataDir, "spool"), 0o700); err != nil {
		mgr.Close()
		return nil, fmt.Errorf("data directory: %w", err)
	}
	// A script's #! line picks one of cgibox's images; those not built yet
	// answer 503 naming `cgibox image build`.
	all := map[string]string{}
	for _, name := range images.Names() {
		all[name] = images.Ref(name)
	}
	return &sandboxed{mgr: mgr, images: all}, nil
}

// poolReportEvery is how often the pools are reported (when they changed).
const poolReportEvery = time.Minute

// reportPools logs the pools and what their waiting containers cost, every
// period in which a pool changed, until ctx ends.
func reportPools(ctx context.Context, mgr *sandbox.Manager, log *slog.Logger, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	var last []sandbox.PoolStats
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pools := mgr.Pools()
		if slices.Equal(pools, last) {
			continue
		}
		last = pools
		cost, err := mgr.PreparedCost(ctx)
		if err != nil {
			log.Debug("measuring prepared containers", "err", err)
		}
		for _, p := range pools {
			log.Info("pool", "site", p.Site, "image", p.Image, "ready", p.Ready, "preparing", p.Preparing,
				"target", p.Target, "hits", p.Hits, "misses", p.Misses)
		}
		if cost.Containers > 0 {
			log.Info("prepared containers waiting", "containers", cost.Containers,
				"shim_rss_each", mib(cost.ShimRSS/int64(cost.Containers)),
				"launcher_rss_each", mib(cost.LauncherRSS/int64(cost.Containers)))
		}
	}
}

// mib formats a byte count in MiB, as an operator reads memory.
func mib(n int64) string { return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20)) }

// unavailable answers every job with the reason the sandbox could not start.
type unavailable struct{ err error }

func (u unavailable) Run(context.Context, sandbox.Job) (sandbox.Result, error) {
	return sandbox.Result{}, fmt.Errorf("%w: %w", sandbox.ErrUnavailable, u.err)
}

// ensureImage returns the containerd reference of the image scripts run in,
// building it first when it is one of cgibox's own and missing.
func ensureImage(ctx context.Context, mgr *sandbox.Manager, name string, opts images.Options) (string, error) {
	ref := name
	own := !strings.ContainsAny(name, "/:")
	if own {
		ref = images.Ref(name)
	}
	ok, err := mgr.HasImage(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", ref, err)
	}
	if ok {
		return ref, nil
	}
	if !own {
		return "", fmt.Errorf("image %s is not in containerd's %q namespace; import it with `cgibox image import`", ref, "cgibox")
	}
	if opts.Progress != nil {
		fmt.Fprintf(opts.Progress, "cgibox: image %s is missing; building it (first run only)\n", name)
	}
	if _, err := buildImage(ctx, mgr, name, opts); err != nil {
		return "", err
	}
	return ref, nil
}

// buildImage builds the image of a cgibox recipe (a name or a directory)
// and imports it into containerd.
func buildImage(ctx context.Context, mgr *sandbox.Manager, nameOrDir string, opts images.Options) (images.Result, error) {
	rc, err := images.Open(nameOrDir)
	if err != nil {
		return images.Result{}, err
	}
	pr, pw := io.Pipe()
	type built struct {
		res images.Result
		err error
	}
	done := make(chan built, 1)
	go func() {
		res, err := rc.Build(ctx, pw, opts)
		pw.CloseWithError(err)
		done <- built{res, err}
	}()
	_, ierr := mgr.Import(ctx, pr)
	pr.CloseWithError(ierr)
	b := <-done
	if b.err != nil {
		return b.res, fmt.Errorf("building image %s: %w", rc.Name, b.err)
	}
	if ierr != nil {
		return b.res, fmt.Errorf("importing image %s: %w", rc.Name, ierr)
	}
	return b.res, nil
}

// loadCertificate reads a PEM certificate and key; the key may be in the
// certificate file (like Python's ssl.load_cert_chain) and may be encrypted
// with the classic PEM scheme, its password in passFile.
func loadCertificate(certFile, keyFile, passFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--tls-cert: %w", err)
	}
	keyPEM := certPEM
	if keyFile != "" {
		if keyPEM, err = os.ReadFile(keyFile); err != nil {
			return tls.Certificate{}, fmt.Errorf("--tls-key: %w", err)
		}
	}
	if passFile != "" {
		pass, err := os.ReadFile(passFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("--tls-password-file: %w", err)
		}
		if keyPEM, err = decryptKey(keyPEM, strings.TrimRight(string(pass), "\r\n")); err != nil {
			return tls.Certificate{}, fmt.Errorf("--tls-key: %w", err)
		}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	return cert, nil
}

// decryptKey decrypts the first private key block of data.
func decryptKey(data []byte, password string) ([]byte, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no private key found")
		}
		if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
			continue
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("PKCS#8-encrypted keys are not supported; convert with `openssl pkey -traditional -aes256`")
		}
		//lint:ignore SA1019 the classic PEM encryption is what such key files use
		der, err := x509.DecryptPEMBlock(block, []byte(password)) //nolint:staticcheck
		if err != nil {
			return nil, fmt.Errorf("decrypting: %w", err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: der}), nil
	}
}
