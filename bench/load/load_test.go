package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", []time.Duration{7}, 99, 7},
		{"p50 of four", []time.Duration{1, 2, 3, 4}, 50, 2},
		{"p90 of four", []time.Duration{1, 2, 3, 4}, 90, 4},
		{"p50 of 100", hundred, 50, 50 * time.Millisecond},
		{"p90 of 100", hundred, 90, 90 * time.Millisecond},
		{"p99 of 100", hundred, 99, 99 * time.Millisecond},
		{"p100 of 100", hundred, 100, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestRunCountsErrors(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 4 {
		case 0:
			http.Error(w, "no", http.StatusServiceUnavailable)
		case 1:
			w.Write([]byte("short"))
		default:
			w.Write([]byte("hello"))
		}
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{
		URL: srv.URL, Mode: Closed, Concurrency: 2, Duration: 200 * time.Millisecond, BodySize: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors == 0 || res.Errors != res.Requests/4 && res.Errors != res.Requests/4+1 {
		t.Errorf("requests %d, errors %d (%v): want a quarter of them errors", res.Requests, res.Errors, res.ErrorKinds)
	}
	if res.ErrorKinds["status 503"] != res.Errors {
		t.Errorf("error kinds %v, want all %d as status 503", res.ErrorKinds, res.Errors)
	}
	if res.Samples != res.Requests-res.Errors {
		t.Errorf("samples %d, want %d", res.Samples, res.Requests-res.Errors)
	}
}

func TestRunBodySize(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello"))
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{
		URL: srv.URL, Mode: Closed, Concurrency: 1, Duration: 50 * time.Millisecond, BodySize: 6,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors == 0 || res.Errors != res.Requests {
		t.Errorf("errors %d of %d (%v), want all: the body is one byte short", res.Errors, res.Requests, res.ErrorKinds)
	}
}

func TestRunOpenLoopRate(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{
		URL: srv.URL, Mode: Open, Rate: 100, Duration: 500 * time.Millisecond, BodySize: -1, Warmup: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 50 || res.Errors != 0 {
		t.Errorf("open loop at 100/s for 0.5 s: %d requests, %d errors (%v); want 50 and 0", res.Requests, res.Errors, res.ErrorKinds)
	}
	if res.P50 < 2 || res.P99 > 1000 {
		t.Errorf("p50 %.2f ms, p99 %.2f ms: want at least the handler's 2 ms and well under a second", res.P50, res.P99)
	}
}

func TestWarmupFailureFails(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := Run(context.Background(), Config{URL: srv.URL, Mode: Closed, Concurrency: 1, Duration: time.Millisecond, Warmup: 2, BodySize: -1})
	if err == nil {
		t.Fatal("a peer that answers 404 to the warm-up: Run succeeded, want an error")
	}
}

func TestValidate(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{URL: "http://x", Mode: Closed, Duration: time.Second},
		{URL: "http://x", Mode: Open, Duration: time.Second},
		{URL: "http://x", Mode: "other", Duration: time.Second, Concurrency: 1},
		{URL: "http://x", Mode: Closed, Concurrency: 1},
	} {
		if err := cfg.validate(); err == nil {
			t.Errorf("validate(%+v) = nil, want an error", cfg)
		}
	}
}
