// Package admin is cgibox's operations side: the Prometheus metrics, the
// health and readiness probes, the admin listener that serves them apart
// from every site, and the audit log of CGI jobs.
package admin

import (
	"runtime"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cgibox/cgibox/gateway"
	"github.com/cgibox/cgibox/sandbox"
)

// Metrics are cgibox's Prometheus metrics, in a registry of their own. It
// is a gateway.Recorder: each request's Record updates them.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	ends     *prometheus.CounterVec
	cpu      *prometheus.CounterVec
	bytesIn  *prometheus.CounterVec
}

// NewMetrics makes the registry with the request metrics, build info and
// the Go runtime's and process's own.
func NewMetrics(version string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cgibox_requests_total",
			Help: "Requests answered, by site, kind (static or cgi) and status code.",
		}, []string{"site", "kind", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cgibox_cgi_request_duration_seconds",
			Help:    "Time from a CGI request's arrival to the end of its response, by site.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"site"}),
		ends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cgibox_cgi_ends_total",
			Help: "CGI jobs by how they ended: exited, timeout, oom, output-limit, client-gone, not-started.",
		}, []string{"site", "reason"}),
		cpu: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cgibox_cgi_cpu_seconds_total",
			Help: "CPU time CGI scripts used, from their containers' cgroups, by site.",
		}, []string{"site"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cgibox_cgi_request_body_bytes_total",
			Help: "Request body bytes passed to CGI scripts, by site.",
		}, []string{"site"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "cgibox_build_info",
		Help:        "cgibox's version and Go version; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	build.Set(1)
	m.reg.MustRegister(m.requests, m.duration, m.ends, m.cpu, m.bytesIn, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the metrics are, for the /metrics handler and for
// further collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Record counts one request.
func (m *Metrics) Record(r gateway.Record) {
	site := r.Site
	if site == "" {
		site = "none"
	}
	kind := "static"
	if r.CGI != nil {
		kind = "cgi"
	}
	m.requests.WithLabelValues(site, kind, strconv.Itoa(r.Status)).Inc()
	if r.CGI == nil {
		return
	}
	m.duration.WithLabelValues(site).Observe(r.Duration.Seconds())
	reason := string(r.CGI.Result.Reason)
	if reason == "" {
		reason = string(gateway.NotStarted)
	}
	m.ends.WithLabelValues(site, reason).Inc()
	m.cpu.WithLabelValues(site).Add(r.CGI.Result.CPU.Seconds())
	m.bytesIn.WithLabelValues(site).Add(float64(r.CGI.BytesIn))
}

// SandboxSource is what the sandbox collector reads at each scrape.
type SandboxSource interface {
	Pools() []sandbox.PoolStats
	Stats() sandbox.Stats
}

// sandboxCollector reports the pools of prepared containers at scrape time.
type sandboxCollector struct {
	src    SandboxSource
	ready  *prometheus.Desc
	prep   *prometheus.Desc
	target *prometheus.Desc
	hits   *prometheus.Desc
	misses *prometheus.Desc

	up       *prometheus.Desc
	created  *prometheus.Desc
	deleted  *prometheus.Desc
	restarts *prometheus.Desc
}

// CollectSandbox adds the sandbox's pool metrics, read at each scrape.
func (m *Metrics) CollectSandbox(src SandboxSource) {
	labels := []string{"site", "image"}
	m.reg.MustRegister(&sandboxCollector{
		src:    src,
		ready:  prometheus.NewDesc("cgibox_pool_ready", "Prepared containers waiting for a request.", labels, nil),
		prep:   prometheus.NewDesc("cgibox_pool_preparing", "Prepared containers being started.", labels, nil),
		target: prometheus.NewDesc("cgibox_pool_target", "Prepared containers the pool aims to hold.", labels, nil),
		hits:   prometheus.NewDesc("cgibox_pool_hits_total", "Jobs that took a prepared container.", labels, nil),
		misses: prometheus.NewDesc("cgibox_pool_misses_total", "Jobs that found their pool empty and started their own container.", labels, nil),

		up:       prometheus.NewDesc("cgibox_containerd_up", "Whether containerd answered its last health check (1) or not (0).", nil, nil),
		created:  prometheus.NewDesc("cgibox_containers_created_total", "Containers created, for jobs and prepared ahead.", nil, nil),
		deleted:  prometheus.NewDesc("cgibox_containers_deleted_total", "Containers deleted, including leftovers removed after an outage or at start.", nil, nil),
		restarts: prometheus.NewDesc("cgibox_containerd_restarts_total", "Restarts of the private containerd after it exited.", nil, nil),
	})
}

func (c *sandboxCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.ready, c.prep, c.target, c.hits, c.misses, c.up, c.created, c.deleted, c.restarts} {
		ch <- d
	}
}

func (c *sandboxCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	up := 0.0
	if st.ContainerdUp {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(c.created, prometheus.CounterValue, float64(st.Created))
	ch <- prometheus.MustNewConstMetric(c.deleted, prometheus.CounterValue, float64(st.Deleted))
	ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(st.DaemonRestarts))
	// Pools of one site and image with different directories or limits
	// are summed: the labels name what an operator tells apart.
	type key struct{ site, image string }
	sum := map[key]*sandbox.PoolStats{}
	var order []key
	for _, p := range c.src.Pools() {
		k := key{p.Site, p.Image}
		s, ok := sum[k]
		if !ok {
			s = &sandbox.PoolStats{}
			sum[k] = s
			order = append(order, k)
		}
		s.Ready += p.Ready
		s.Preparing += p.Preparing
		s.Target += p.Target
		s.Hits += p.Hits
		s.Misses += p.Misses
	}
	for _, k := range order {
		s := sum[k]
		ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, float64(s.Ready), k.site, k.image)
		ch <- prometheus.MustNewConstMetric(c.prep, prometheus.GaugeValue, float64(s.Preparing), k.site, k.image)
		ch <- prometheus.MustNewConstMetric(c.target, prometheus.GaugeValue, float64(s.Target), k.site, k.image)
		ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(s.Hits), k.site, k.image)
		ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(s.Misses), k.site, k.image)
	}
}
