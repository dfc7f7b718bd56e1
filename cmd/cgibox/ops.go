package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/cgibox/cgibox/admin"
	"github.com/cgibox/cgibox/config"
	"github.com/cgibox/cgibox/gateway"
	"github.com/cgibox/cgibox/sandbox"
)

// readiness is what /readyz checks: not draining, CGI available, the
// sites' images present in a containerd that answers.
type readiness struct {
	gw          *gateway.Server
	mgr         *sandbox.Manager // nil: CGI unavailable, or no site runs CGI
	unavailable error            // why the sandbox could not start

	mu     sync.Mutex
	images []string // the CGI sites' images
}

// setSites records the images of the sites now served.
func (r *readiness) setSites(sites []gateway.Site) {
	var refs []string
	for _, s := range sites {
		if s.CGI && !slices.Contains(refs, s.Image) {
			refs = append(refs, s.Image)
		}
	}
	r.mu.Lock()
	r.images = refs
	r.mu.Unlock()
}

func (r *readiness) check(ctx context.Context) error {
	if r.gw.Draining() {
		return &admin.NotReady{Reason: "draining"}
	}
	if r.unavailable != nil {
		return &admin.NotReady{Reason: "CGI unavailable (see cgibox doctor)", Err: r.unavailable}
	}
	if r.mgr == nil {
		return nil
	}
	if st := r.mgr.Stats(); !st.ContainerdUp {
		return &admin.NotReady{Reason: "containerd does not answer", Err: st.Err}
	}
	r.mu.Lock()
	images := r.images
	r.mu.Unlock()
	for _, ref := range images {
		ok, err := r.mgr.HasImage(ctx, ref)
		switch {
		case err != nil:
			return &admin.NotReady{Reason: "containerd does not answer", Err: err}
		case !ok:
			return &admin.NotReady{Reason: fmt.Sprintf("image %s is missing", ref)}
		}
	}
	return nil
}

// ops is the operations side of a serving cgibox: metrics, the audit log
// and the admin listener.
type ops struct {
	metrics *admin.Metrics
	audit   *admin.Audit
	ready   *readiness
	srv     *http.Server
	log     *slog.Logger
}

// startOps makes the metrics and opens the audit log of sv.
func startOps(sv config.Server, stdout io.Writer, log *slog.Logger) (*ops, error) {
	o := &ops{metrics: admin.NewMetrics(version()), log: log}
	if sv.Audit != "" {
		runtime := sv.RuntimeBinary
		if runtime == "" {
			runtime = "runc"
		}
		a, err := admin.OpenAudit(sv.Audit, runtime, stdout, log)
		if err != nil {
			return nil, err
		}
		o.audit = a
	}
	return o, nil
}

// recorder is what the gateway records requests to.
func (o *ops) recorder() gateway.Recorder {
	if o.audit == nil {
		return o.metrics
	}
	return admin.Recorders{o.metrics, o.audit}
}

// listen starts the admin listener on addr, if any.
func (o *ops) listen(ctx context.Context, addr string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	o.srv = &http.Server{
		Handler:           admin.Handler(o.metrics, o.ready.check, o.log),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ErrorLog:          slog.NewLogLogger(o.log.Handler(), slog.LevelDebug),
	}
	o.log.Info("admin listener: /metrics, /healthz, /readyz", "address", "http://"+ln.Addr().String()+"/")
	go o.srv.Serve(ln)
	return nil
}

// reopen reopens the audit log (SIGUSR1, after logrotate moved it).
func (o *ops) reopen() {
	if o.audit == nil {
		return
	}
	if err := o.audit.Reopen(); err != nil {
		o.log.Error("SIGUSR1: the audit log could not be reopened; still writing the old file", "err", err)
		return
	}
	o.log.Info("SIGUSR1: audit log reopened")
}

// close stops the admin listener and closes the audit log.
func (o *ops) close() {
	if o.srv != nil {
		o.srv.Close()
	}
	if o.audit != nil {
		o.audit.Close()
	}
}
