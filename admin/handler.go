package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ReadyFunc says whether cgibox can serve CGI now: nil when it can, else
// why not.
type ReadyFunc func(ctx context.Context) error

// probeTimeout bounds one readiness check.
const probeTimeout = 3 * time.Second

// Handler serves /metrics (Prometheus' text format), /healthz (the
// process answers: 200) and /readyz (200 when ready says so, else 503 with
// the reason). It is meant for a listener of its own, apart from every
// site, so that no site's files can shadow or reach it.
func Handler(m *Metrics, ready ReadyFunc, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		Registry:          m.reg,
		EnableOpenMetrics: false,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := ready(ctx); err != nil {
			var nr *NotReady
			if errors.As(err, &nr) {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "not ready: %s\n", nr.Reason)
				return
			}
			log.WarnContext(r.Context(), "readiness check failed", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready")
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// NotReady is a reason not to be ready that may be shown on /readyz (the
// admin listener is the operator's, not the public's).
type NotReady struct {
	Reason string
	Err    error
}

func (e *NotReady) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func (e *NotReady) Unwrap() error { return e.Err }
