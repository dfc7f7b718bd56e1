package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkStatic1KiB serves a 1 KiB file over keep-alive loopback
// connections through everything a request meets in cgibox: net/http, the
// gateway's guards, the router, the static handler and the access log,
// written to a file. The client is a few lines over a raw connection, so
// that the time and allocations measured are nearly all the server's.
// "c1" is one connection, "c8" eight at once (wrk -c1 and -c8).
func BenchmarkStatic1KiB(b *testing.B) {
	for _, format := range []LogFormat{LogPython, LogJSON} {
		b.Run(string(format)+"/c1", func(b *testing.B) { benchStatic(b, format, 1) })
		b.Run(string(format)+"/c8", func(b *testing.B) { benchStatic(b, format, 8) })
	}
}

func benchStatic(b *testing.B, format LogFormat, conns int) {
	root := b.TempDir()
	if err := os.WriteFile(filepath.Join(root, "1k.txt"), bytes.Repeat([]byte("x"), 1024), 0o644); err != nil {
		b.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close()
	gw, err := New(Config{AccessLog: logFile, LogFormat: format, Sites: []Site{{Root: root}}})
	if err != nil {
		b.Fatal(err)
	}
	defer gw.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := NewHTTPServer(gw, slog.New(slog.DiscardHandler))
	go srv.Serve(ln)
	defer srv.Close()

	b.SetParallelism((conns + 1) / 2) // GOMAXPROCS is 2 on the machines measured
	var failed atomic.Value
	b.ReportAllocs()
	b.SetBytes(1024)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := newRawClient(ln.Addr().String(), "/1k.txt")
		if err != nil {
			failed.Store(err)
			return
		}
		defer c.Close()
		for pb.Next() {
			if err := c.get(1024); err != nil {
				failed.Store(err)
				return
			}
		}
	})
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}

// rawClient sends one fixed GET at a time on a keep-alive connection and
// reads the response with next to no allocation.
type rawClient struct {
	net.Conn
	r   *bufio.Reader
	req []byte
}

func newRawClient(addr, target string) (*rawClient, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &rawClient{
		Conn: c,
		r:    bufio.NewReaderSize(c, 16<<10),
		req:  []byte("GET " + target + " HTTP/1.1\r\nHost: bench\r\n\r\n"),
	}, nil
}

// get sends the request and reads a 200 response whose body has size bytes.
func (c *rawClient) get(size int) error {
	if _, err := c.Write(c.req); err != nil {
		return err
	}
	status, err := c.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("status line %q", status)
	}
	length := -1
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if length != size {
		return fmt.Errorf("Content-Length %d, want %d", length, size)
	}
	_, err = io.CopyN(io.Discard, c.r, int64(length))
	return err
}
