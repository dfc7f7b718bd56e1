// Command gocgi is the benchmark's floor for CGI: Go's net/http/cgi
// handler, which runs each script with a plain fork/exec, no container.
// It serves the scripts of -dir under /cgi-bin/ and writes one access log
// line per request to stderr, as the other peers do.
//
//	gocgi -addr 127.0.0.1:8081 -dir site/cgi-bin
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "gocgi: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("gocgi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "`address` to listen on")
	dir := fs.String("dir", "", "`directory` of the scripts, served under /cgi-bin/")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("need -dir")
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return fmt.Errorf("-dir: %w", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	h := &scripts{dir: abs, log: log.New(stderr, "", 0)}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second}
	fmt.Fprintf(stderr, "gocgi: serving %s on http://%s/cgi-bin/\n", abs, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shut)
}

// scripts runs /cgi-bin/NAME as dir/NAME through net/http/cgi.
type scripts struct {
	dir string
	log *log.Logger
}

func (s *scripts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		s.log.Printf("%s - - [%s] %q %d %s", r.RemoteAddr, start.Format("02/Jan/2006 15:04:05"),
			r.Method+" "+r.RequestURI+" "+r.Proto, rec.status, time.Since(start).Round(time.Microsecond))
	}()
	name, ok := strings.CutPrefix(r.URL.Path, "/cgi-bin/")
	if !ok || name == "" || strings.Contains(name, "/") || strings.HasPrefix(name, ".") {
		http.NotFound(rec, r)
		return
	}
	path := filepath.Join(s.dir, name)
	if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
		http.NotFound(rec, r)
		return
	}
	h := &cgi.Handler{Path: path, Root: "/cgi-bin/" + name, Dir: s.dir, Stderr: io.Discard}
	h.ServeHTTP(rec, r)
}

// statusRecorder remembers the status for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
