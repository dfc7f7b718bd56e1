// Package load is the benchmark's one HTTP client: the same code drives
// every peer, so their numbers compare. It runs a closed loop (N workers,
// each sending its next request when the last one is done) or an open loop
// (requests sent at a fixed rate whatever the server does), for a bounded
// time, over HTTP/1.1 keep-alive, and records the latency of every request
// up to a bounded sample count.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"
)

// Mode is how requests are paced.
type Mode string

const (
	// Closed: Concurrency workers, each sends its next request as soon as
	// its last one is done (throughput and latency at saturation).
	Closed Mode = "closed"
	// Open: requests start at Rate per second on a fixed schedule, each
	// measured from its scheduled time (no coordinated omission).
	Open Mode = "open"
)

const (
	// DefaultMaxSamples bounds the latencies kept per run; requests beyond
	// it are counted but not sampled.
	DefaultMaxSamples = 1_000_000
	// DefaultTimeout bounds one request, body included.
	DefaultTimeout = 20 * time.Second
	// DefaultMaxInFlight bounds an open loop's concurrent requests; a
	// request due while that many are outstanding is counted as an error.
	DefaultMaxInFlight = 256
	// maxErrorKinds bounds the distinct error descriptions kept.
	maxErrorKinds = 8
)

// Config describes one run. Zero values of the optional fields take the
// defaults above.
type Config struct {
	URL         string
	Mode        Mode
	Concurrency int           // Closed: workers
	Rate        float64       // Open: requests per second
	Duration    time.Duration // how long requests are started
	Warmup      int           // requests sent first and not recorded
	Settle      time.Duration // pause after the warm-up
	// BodySize, when at least zero, is the body length a correct response
	// has; another length counts as an error. Negative: not checked.
	BodySize    int64
	Timeout     time.Duration
	MaxSamples  int
	MaxInFlight int
}

// Result is what a run measured. Latencies are in milliseconds.
type Result struct {
	Mode        Mode    `json:"mode"`
	Concurrency int     `json:"concurrency,omitempty"`
	Rate        float64 `json:"rate,omitempty"`
	DurationS   float64 `json:"duration_s"` // from the first request to the last answer
	Requests    int     `json:"requests"`   // completed, errors included
	Errors      int     `json:"errors"`
	// ErrorKinds counts errors by description (at most a few kinds; the
	// rest go under "other").
	ErrorKinds map[string]int `json:"error_kinds,omitempty"`
	RPS        float64        `json:"rps"` // successful requests per second
	Samples    int            `json:"samples"`
	P50        float64        `json:"p50_ms"`
	P90        float64        `json:"p90_ms"`
	P99        float64        `json:"p99_ms"`
	Max        float64        `json:"max_ms"`
	Mean       float64        `json:"mean_ms"`
}

// Cell is one measured cell of the benchmark: a Result and what it
// measured. bench/cmd/load writes one per line; bench/cmd/report reads them.
type Cell struct {
	Peer     string `json:"peer"`
	Workload string `json:"workload"`
	URL      string `json:"url"`
	// Failed says why the cell could not be measured (its warm-up failed,
	// say); its Result then holds only the pacing.
	Failed string `json:"failed,omitempty"`
	Result
}

func (c *Config) validate() error {
	if c.URL == "" {
		return errors.New("load: no URL")
	}
	if c.Duration <= 0 {
		return errors.New("load: duration must be above zero")
	}
	switch c.Mode {
	case Closed:
		if c.Concurrency <= 0 {
			return errors.New("load: closed loop needs a concurrency above zero")
		}
	case Open:
		if c.Rate <= 0 {
			return errors.New("load: open loop needs a rate above zero")
		}
	default:
		return fmt.Errorf("load: mode %q: want %q or %q", c.Mode, Closed, Open)
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxSamples <= 0 {
		c.MaxSamples = DefaultMaxSamples
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	return nil
}

// Run performs the warm-up, then the measured run, until ctx ends or the
// duration is over; requests in flight at the end are waited for (each is
// bounded by the timeout) and counted.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.validate(); err != nil {
		return Result{}, err
	}
	conns := cfg.Concurrency
	if cfg.Mode == Open {
		conns = cfg.MaxInFlight
	}
	tr := &http.Transport{
		Proxy:               nil, // loopback only, never an environment proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	defer tr.CloseIdleConnections()
	c := &client{http: &http.Client{Transport: tr, Timeout: cfg.Timeout}, url: cfg.URL, bodySize: cfg.BodySize}

	if err := c.warmup(ctx, cfg.Warmup, max(1, cfg.Concurrency)); err != nil {
		return Result{}, err
	}
	if cfg.Settle > 0 {
		select {
		case <-time.After(cfg.Settle):
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	rec := newRecorder(cfg.MaxSamples)
	start := time.Now()
	if cfg.Mode == Closed {
		c.closed(ctx, cfg.Concurrency, start.Add(cfg.Duration), rec)
	} else {
		c.open(ctx, cfg.Rate, cfg.MaxInFlight, start, cfg.Duration, rec)
	}
	elapsed := time.Since(start)
	res := rec.result(elapsed)
	res.Mode, res.Concurrency, res.Rate = cfg.Mode, cfg.Concurrency, cfg.Rate
	if cfg.Mode == Open {
		res.Concurrency = 0
	}
	return res, ctx.Err()
}

// WaitReady polls url until it answers 200 or the timeout passes.
func WaitReady(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("ready %s: %w", url, err)
		}
		resp, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 8<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w", url, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type client struct {
	http     *http.Client
	url      string
	bodySize int64
}

// do sends one request and reads its whole body.
func (c *client) do(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return fmt.Errorf("reading body: %w", err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("status %d", resp.StatusCode)
	case c.bodySize >= 0 && n != c.bodySize:
		return fmt.Errorf("body of %d bytes, want %d", n, c.bodySize)
	}
	return nil
}

// warmup sends n requests over at most conc connections; any error fails
// the run (the peer is not working, so measuring it means nothing).
func (c *client) warmup(ctx context.Context, n, conc int) error {
	if n <= 0 {
		return nil
	}
	conc = min(conc, n)
	errs := make(chan error, conc)
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	for range conc {
		go func() {
			var first error
			for range next {
				if err := c.do(ctx); err != nil && first == nil {
					first = err
				}
			}
			errs <- first
		}()
	}
	var err error
	for range conc {
		err = errors.Join(err, <-errs)
	}
	if err != nil {
		return fmt.Errorf("warm-up of %s: %w", c.url, err)
	}
	return nil
}

func (c *client) closed(ctx context.Context, workers int, end time.Time, rec *recorder) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(end) {
				t0 := time.Now()
				err := c.do(ctx)
				rec.add(time.Since(t0), err)
			}
		})
	}
	wg.Wait()
}

func (c *client) open(ctx context.Context, rate float64, maxInFlight int, start time.Time, d time.Duration, rec *recorder) {
	interval := time.Duration(float64(time.Second) / rate)
	total := int(d / interval)
	slots := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(i) * interval)
		timer.Reset(time.Until(due))
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-timer.C:
		}
		select {
		case slots <- struct{}{}:
		default:
			rec.add(0, fmt.Errorf("client: over %d requests in flight", maxInFlight))
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			err := c.do(ctx)
			rec.add(time.Since(due), err)
		})
	}
	wg.Wait()
}

// recorder collects latencies and errors; safe for concurrent use.
type recorder struct {
	mu       sync.Mutex
	max      int
	requests int
	errors   int
	kinds    map[string]int
	lat      []time.Duration // successful requests only
}

func newRecorder(maxSamples int) *recorder {
	return &recorder{max: maxSamples, kinds: map[string]int{}, lat: make([]time.Duration, 0, min(maxSamples, 1<<16))}
}

func (r *recorder) add(d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if err != nil {
		r.errors++
		k := errorKind(err)
		if _, ok := r.kinds[k]; !ok && len(r.kinds) >= maxErrorKinds {
			k = "other"
		}
		r.kinds[k]++
		return
	}
	if len(r.lat) < r.max {
		r.lat = append(r.lat, d)
	}
}

// errorKind shortens an error to a description that repeats: the URL and
// addresses of a transport error vary little, but keep it bounded anyway.
func errorKind(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			err = inner
		}
	}
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

func (r *recorder) result(elapsed time.Duration) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{
		DurationS: elapsed.Seconds(),
		Requests:  r.requests,
		Errors:    r.errors,
		Samples:   len(r.lat),
	}
	if len(r.kinds) > 0 {
		res.ErrorKinds = make(map[string]int, len(r.kinds))
		for k, v := range r.kinds {
			res.ErrorKinds[k] = v
		}
	}
	if elapsed > 0 {
		res.RPS = float64(r.requests-r.errors) / elapsed.Seconds()
	}
	lat := slices.Clone(r.lat)
	slices.Sort(lat)
	res.P50, res.P90, res.P99 = ms(Percentile(lat, 50)), ms(Percentile(lat, 90)), ms(Percentile(lat, 99))
	if len(lat) > 0 {
		res.Max = ms(lat[len(lat)-1])
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		res.Mean = ms(sum / time.Duration(len(lat)))
	}
	return res
}

// Percentile returns the p-th percentile of sorted by the nearest-rank
// method: the smallest sample that at least p percent of the samples do
// not exceed. Zero for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The 0-based index of rank ceil(p/100 * n), in integers where exact.
	n := float64(len(sorted))
	rank := sort.Search(len(sorted), func(i int) bool { return float64(i+1)*100 >= p*n })
	return sorted[min(rank, len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
