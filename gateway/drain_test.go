package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cgibox/cgibox/sandbox"
)

// While draining, a streaming CGI response in flight (hijacked, so
// http.Server.Shutdown does not see it) keeps the gateway busy until it
// ends; a new CGI request is refused with 503 and Retry-After; static
// files are still served.
func TestDrainWaitsForStreamsAndRefusesNewScripts(t *testing.T) {
	block := make(chan struct{})
	run := &scriptedRunner{stdout: "Content-Type: text/plain\n\nfirst\n", block: block, result: sandbox.Result{Reason: sandbox.Exited}}
	gw, err := New(Config{Runner: run, AccessLog: io.Discard, Sites: []Site{{Root: testSite(t), CGI: true, Image: "img"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	srv := httptest.NewUnstartedServer(gw)
	srv.Config = NewHTTPServer(gw, slog.New(slog.DiscardHandler))
	srv.Start()
	defer srv.Close()

	stream, err := http.Get(srv.URL + "/cgi-bin/s.sh")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if gw.Draining() {
		t.Fatal("Draining() before Drain")
	}
	gw.Drain()

	resp, err := http.Get(srv.URL + "/cgi-bin/s.sh")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("new CGI request while draining: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp, err := http.Get(srv.URL + "/index.html"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("static while draining: %v, %v; want 200", resp, err)
	} else {
		resp.Body.Close()
	}

	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := gw.WaitIdle(short); err == nil || gw.InFlight() != 1 {
		t.Errorf("WaitIdle with a stream in flight = %v (in flight %d); want a timeout with 1 in flight", err, gw.InFlight())
	}
	close(block)
	body, err := io.ReadAll(stream.Body)
	if err != nil || string(body) != "first\n" {
		t.Errorf("stream across Drain: %q, %v; want %q whole", body, err, "first\n")
	}
	if err := gw.WaitIdle(t.Context()); err != nil || gw.InFlight() != 0 {
		t.Errorf("WaitIdle after the stream ended = %v (in flight %d)", err, gw.InFlight())
	}
}
