package gateway

import (
	"context"
	"fmt"
	"sync"
)

// inFlight counts the requests being handled, so that a stopping server can
// wait for all of them: http.Server.Shutdown forgets a connection once it is
// hijacked, and every streaming CGI response in Python mode is one.
type inFlight struct {
	mu       sync.Mutex
	n        int
	draining bool
	idle     chan struct{} // closed when draining with nothing in flight
	// table is the sites new requests are served from.
	table *siteTable
}

func newInFlight() *inFlight { return &inFlight{idle: make(chan struct{})} }

// begin counts a request in and returns the sites it is served from.
func (f *inFlight) begin() *siteTable {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	f.table.users++
	return f.table
}

// end counts a request served from t out; the last request of a table
// SetSites replaced closes it.
func (f *inFlight) end(t *siteTable) {
	f.mu.Lock()
	f.n--
	f.closeIfIdle()
	t.users--
	last := t.retired && t.users == 0
	f.mu.Unlock()
	if last {
		t.close()
	}
}

func (f *inFlight) closeIfIdle() {
	if f.draining && f.n == 0 {
		select {
		case <-f.idle:
		default:
			close(f.idle)
		}
	}
}

// Drain starts a graceful stop: from now on a new CGI request is answered
// 503 with Retry-After (the script would be cut by the stop), while the
// requests in flight, streaming ones included, go on. Static files are still
// served on connections that are open; the caller stops the listeners.
func (s *Server) Drain() {
	s.inFlight.mu.Lock()
	defer s.inFlight.mu.Unlock()
	s.inFlight.draining = true
	s.inFlight.closeIfIdle()
}

// Draining reports whether Drain was called.
func (s *Server) Draining() bool {
	s.inFlight.mu.Lock()
	defer s.inFlight.mu.Unlock()
	return s.inFlight.draining
}

// InFlight is the number of requests being handled.
func (s *Server) InFlight() int {
	s.inFlight.mu.Lock()
	defer s.inFlight.mu.Unlock()
	return s.inFlight.n
}

// WaitIdle waits, after Drain, until no request is in flight or ctx ends.
func (s *Server) WaitIdle(ctx context.Context) error {
	select {
	case <-s.inFlight.idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d request(s) still in flight: %w", s.InFlight(), context.Cause(ctx))
	}
}
