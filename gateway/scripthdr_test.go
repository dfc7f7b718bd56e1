package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadHeaderBlock(t *testing.T) {
	type hf = headerField
	long := func(n int) string { return strings.Repeat("v", n) }
	tests := []struct {
		name     string
		in       string
		lim      headerLimits
		bufSize  int // bufio size; 0 = 16 KiB
		want     []headerField
		rejected []string
		err      error
		rest     string // what must remain unread in br
	}{
		{
			name: "CRLF",
			in:   "Content-Type: text/html\r\nX-A: 1\r\n\r\n<html>",
			want: []hf{{"Content-Type", "text/html"}, {"X-A", "1"}},
			rest: "<html>",
		},
		{
			name: "LF only",
			in:   "Content-Type: text/plain\nX-A: 1\n\nbody\n",
			want: []hf{{"Content-Type", "text/plain"}, {"X-A", "1"}},
			rest: "body\n",
		},
		{
			name: "mixed endings",
			in:   "A: 1\nB: 2\r\n\nbody",
			want: []hf{{"A", "1"}, {"B", "2"}},
			rest: "body",
		},
		{name: "empty block CRLF", in: "\r\nbody", rest: "body"},
		{name: "empty block LF", in: "\n"},
		{
			name: "whitespace and obs-text",
			in:   "X-A:   spaced  value \t\r\nX-B:\r\nX-C: a\tb\r\nX-D: caf\xc3\xa9\r\nX~!#$%&'*+.^_`|: ok\r\n\r\n",
			want: []hf{{"X-A", "spaced  value"}, {"X-B", ""}, {"X-C", "a\tb"}, {"X-D", "caf\xc3\xa9"}, {"X~!#$%&'*+.^_`|", "ok"}},
		},
		{
			name:     "CR inside a header",
			in:       "X-A: a\rb\r\nX-B: ok\r\nX-C: c\r\r\n\r\n",
			want:     []hf{{"X-B", "ok"}},
			rejected: []string{"X-A: a\rb", "X-C: c\r"},
		},
		{
			name: "invalid names and obs-fold",
			in: "Bad Name: x\nX(y): 1\n: novalue\nNoColon\n folded: x\n\tfolded\nName : x\n" +
				"X-\xc3\xa9: 1\nGood: yes\n\n",
			want:     []hf{{"Good", "yes"}},
			rejected: []string{"Bad Name: x", "X(y): 1", ": novalue", "NoColon", " folded: x", "\tfolded", "Name : x", "X-\xc3\xa9: 1"},
		},
		{
			name:     "NUL and other control characters",
			in:       "X-A: a\x00b\nX\x00: 1\nX-B: del\x7f\nX-C: bell\a\nX-D: fine\n\n",
			want:     []hf{{"X-D", "fine"}},
			rejected: []string{"X-A: a\x00b", "X\x00: 1", "X-B: del\x7f", "X-C: bell\a"},
		},
		{
			// SECURITY.md case 12: a fake second response stays in br, unread
			// by the header parser (the gateway streams it as body).
			name: "fake second response after the blank line",
			in:   "Content-Type: text/plain\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
			want: []hf{{"Content-Type", "text/plain"}},
			rest: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		},
		{
			// The reader keeps them; writeHeaderFields drops them.
			name: "framing headers are parsed",
			in:   "Content-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
			want: []hf{{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}, {"Connection", "keep-alive"}},
		},
		{
			name: "line at the limit",
			in:   "X-A: " + long(11) + "\r\nX-B: " + long(11) + "\n\n",
			lim:  headerLimits{MaxLine: 16},
			want: []hf{{"X-A", long(11)}, {"X-B", long(11)}},
		},
		{
			name: "overlong line",
			in:   "X-A: 1\nX-B: " + long(12) + "\r\n\r\nbody",
			lim:  headerLimits{MaxLine: 16},
			want: []hf{{"X-A", "1"}},
			err:  errHeaderTooLong,
			rest: "X-B: " + long(12) + "\r\n\r\nbody",
		},
		{
			name: "overlong line without newline",
			in:   "X-B: " + long(100),
			lim:  headerLimits{MaxLine: 16},
			err:  errHeaderTooLong,
			rest: "X-B: " + long(100),
		},
		{
			name:    "small buffer, long valid line",
			in:      "X-A: " + long(35) + "\r\n\r\nbody",
			lim:     headerLimits{MaxLine: 40},
			bufSize: 16,
			want:    []hf{{"X-A", long(35)}},
			rest:    "body",
		},
		{
			name:    "small buffer, overlong line",
			in:      "X-A: " + long(36) + "\r\n\r\n",
			lim:     headerLimits{MaxLine: 40},
			bufSize: 16,
			err:     errHeaderTooLong,
			rest:    "\r\n", // the line is consumed: the buffer cannot hold it
		},
		{
			name: "default limit: 8 KiB line",
			in:   "X-A: " + long(8<<10-5) + "\n\n",
			want: []hf{{"X-A", long(8<<10 - 5)}},
		},
		{
			name: "default limit: 8 KiB + 1 line",
			in:   "X-A: " + long(8<<10-4) + "\n\n",
			err:  errHeaderTooLong,
			rest: "X-A: " + long(8<<10-4) + "\n\n",
		},
		{
			name:    "default limit with bufio's default buffer",
			in:      "X-A: " + long(8<<10-5) + "\n\n",
			bufSize: 4096,
			want:    []hf{{"X-A", long(8<<10 - 5)}},
		},
		{
			name: "as many lines as allowed",
			in:   "A: 1\nB: 2\n\r\nbody",
			lim:  headerLimits{MaxLines: 2},
			want: []hf{{"A", "1"}, {"B", "2"}},
			rest: "body",
		},
		{
			name: "too many lines",
			in:   "A: 1\nB: 2\nC: 3\n\n",
			lim:  headerLimits{MaxLines: 2},
			want: []hf{{"A", "1"}, {"B", "2"}},
			err:  errTooManyHeaders,
			rest: "C: 3\n\n",
		},
		{
			name:     "rejected lines count",
			in:       "bad\nB: 2\n\rC\n",
			lim:      headerLimits{MaxLines: 2},
			want:     []hf{{"B", "2"}},
			rejected: []string{"bad"},
			err:      errTooManyHeaders,
			rest:     "\rC\n",
		},
		{
			name: "too many default lines",
			in:   strings.Repeat("A: 1\n", 101) + "\n",
			err:  errTooManyHeaders,
			want: slices.Repeat([]hf{{"A", "1"}}, 100),
			rest: "A: 1\n\n",
		},
		{name: "no output", in: "", err: io.ErrUnexpectedEOF},
		{
			name: "EOF before the blank line",
			in:   "A: 1\r\nB: 2",
			want: []hf{{"A", "1"}},
			err:  io.ErrUnexpectedEOF,
			rest: "B: 2",
		},
		{
			name: "EOF after a complete line",
			in:   "A: 1\r\n",
			want: []hf{{"A", "1"}},
			err:  io.ErrUnexpectedEOF,
		},
		{
			name: "EOF at the line limit",
			in:   "A: 1\r\n\r",
			lim:  headerLimits{MaxLines: 1},
			want: []hf{{"A", "1"}},
			err:  io.ErrUnexpectedEOF,
			rest: "\r",
		},
		{
			name:     "rejected lines are cut for the log",
			in:       long(300) + "\n\n",
			rejected: []string{long(256)},
		},
	}
	readers := map[string]func(string) io.Reader{
		"whole":        func(s string) io.Reader { return strings.NewReader(s) },
		"byte by byte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"data+EOF":     func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) },
	}
	for _, tt := range tests {
		for rname, mk := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				size := tt.bufSize
				if size == 0 {
					size = 16 << 10
				}
				br := bufio.NewReaderSize(mk(tt.in), size)
				hdr, rejected, err := readHeaderBlock(br, tt.lim)
				rest, rerr := io.ReadAll(br)
				if rerr != nil {
					t.Fatal(rerr)
				}
				if !slices.Equal(hdr, tt.want) || !slices.Equal(rejected, tt.rejected) || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) || string(rest) != tt.rest {
					t.Errorf("readHeaderBlock(%q, %+v)\n got %q, rejected %q, err %v, rest %q\nwant %q, rejected %q, err %v, rest %q",
						trunc(tt.in), tt.lim, hdr, rejected, err, trunc(string(rest)), tt.want, tt.rejected, tt.err, trunc(tt.rest))
				}
			})
		}
	}
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// readHeaderBlock must return as soon as the blank line is in: a script that
// prints its headers and then works for a while must not hold them up.
func TestReadHeaderBlockStopsAtBlankLine(t *testing.T) {
	for _, head := range []string{"A: 1\r\n\r\n", "A: 1\n\n", "\n", "\r\n"} {
		t.Run(strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(head), func(t *testing.T) {
			more := readerFunc(func([]byte) (int, error) {
				t.Errorf("readHeaderBlock(%q) read past the blank line", head)
				return 0, io.EOF
			})
			br := bufio.NewReader(io.MultiReader(strings.NewReader(head), more))
			if _, _, err := readHeaderBlock(br, headerLimits{}); err != nil {
				t.Errorf("readHeaderBlock(%q) = %v", head, err)
			}
		})
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestReadHeaderBlockReadError(t *testing.T) {
	boom := errors.New("boom")
	for _, in := range []string{"", "A: 1\n", "A: 1"} {
		br := bufio.NewReader(io.MultiReader(strings.NewReader(in), iotest.ErrReader(boom)))
		hdr, _, err := readHeaderBlock(br, headerLimits{})
		if !errors.Is(err, boom) {
			t.Errorf("readHeaderBlock(%q then error) = %q, %v; want %v", in, hdr, err, boom)
		}
	}
}

func TestGatewayOwned(t *testing.T) {
	tests := map[string]bool{
		"Content-Length": true, "content-length": true, "Transfer-Encoding": true,
		"Trailer": true, "Connection": true, "Keep-Alive": true, "Proxy-Connection": true,
		"TE": true, "te": true, "Upgrade": true, "HTTP2-Settings": true,
		"Content-Type": false, "Location": false, "Status": false, "Set-Cookie": false,
		"Content-Encoding": false, "X-Connection": false, "Trailers": false,
	}
	for name, want := range tests {
		if got := gatewayOwned(name); got != want {
			t.Errorf("gatewayOwned(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestWriteHeaderFields(t *testing.T) {
	tests := []struct {
		name string
		in   []headerField
		want string
	}{
		{name: "none", in: nil, want: ""},
		{
			name: "order and duplicates kept",
			in:   []headerField{{"Content-Type", "text/html"}, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}, {"X-Empty", ""}},
			want: "Content-Type: text/html\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Empty: \r\n",
		},
		{
			// SECURITY.md case 12: framing is the gateway's.
			name: "gateway-owned dropped",
			in: []headerField{
				{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}, {"connection", "keep-alive"},
				{"Keep-Alive", "timeout=5"}, {"Upgrade", "h2c"}, {"TE", "trailers"}, {"Trailer", "X"},
				{"Proxy-Connection", "keep-alive"}, {"Location", "/x"},
			},
			want: "Location: /x\r\n",
		},
		{
			name: "invalid fields dropped",
			in: []headerField{
				{"Bad Name", "x"}, {"", "x"}, {"X-A", "a\r\nX-Injected: 1"}, {"X-B", " padded"},
				{"X-C", "nul\x00"}, {"X-D", "ok"},
			},
			want: "X-D: ok\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeHeaderFields(&b, tt.in); err != nil || b.String() != tt.want {
				t.Errorf("writeHeaderFields(%q)\n got %q, %v\nwant %q, nil", tt.in, b.String(), err, tt.want)
			}
		})
	}
	boom := errors.New("boom")
	if err := writeHeaderFields(errWriter{boom}, []headerField{{"A", "1"}}); !errors.Is(err, boom) {
		t.Errorf("writeHeaderFields to a failing writer = %v, want %v", err, boom)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// FuzzReadHeaderBlock checks, for any script output: no panic; every field is
// valid and survives writeHeaderFields + readHeaderBlock unchanged; br is left
// exactly after the blank line (or at the start of the offending line).
func FuzzReadHeaderBlock(f *testing.F) {
	// The committed corpus is in testdata/fuzz/FuzzReadHeaderBlock.
	f.Add([]byte("Content-Type: text/plain\r\n\r\nhello"))
	lim := headerLimits{MaxLine: 64, MaxLines: 8}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, size := range []int{16, 4096} { // small: the consuming path
			br := bufio.NewReaderSize(bytes.NewReader(data), size)
			hdr, rejected, err := readHeaderBlock(br, lim)
			rest, _ := io.ReadAll(br)

			if len(hdr)+len(rejected) > lim.MaxLines {
				t.Fatalf("%q: %d fields + %d rejected > MaxLines %d", data, len(hdr), len(rejected), lim.MaxLines)
			}
			for _, f := range hdr {
				if !validToken(f.Name) || !validFieldValue(f.Value) || len(f.Name)+1+len(f.Value) > lim.MaxLine {
					t.Fatalf("%q: invalid field %q", data, f)
				}
			}
			for _, r := range rejected {
				if len(r) > lim.MaxLine || strings.Contains(r, "\n") {
					t.Fatalf("%q: rejected line %q too long or with LF", data, r)
				}
			}

			// Where br was left: after whole lines of data, the last of them
			// blank exactly when there was no error.
			if !bytes.HasSuffix(data, rest) {
				t.Fatalf("%q: rest %q is not what follows the block", data, rest)
			}
			consumed := data[:len(data)-len(rest)]
			lines := strings.SplitAfter(string(consumed), "\n")
			// A buffer too small for a whole line may leave the
			// offending line partly consumed.
			if lines[len(lines)-1] != "" && !(size < lim.MaxLine+2 && err != nil) {
				t.Fatalf("%q (buffer %d): consumed %q, not whole lines (err %v)", data, size, consumed, err)
			}
			lines = lines[:len(lines)-1]
			for i, l := range lines {
				blank := l == "\n" || l == "\r\n"
				if blank != (i == len(lines)-1 && err == nil) {
					t.Fatalf("%q: consumed %q: line %d %q blank=%v, err %v", data, consumed, i, l, blank, err)
				}
			}
			if err == nil && len(lines) != len(hdr)+len(rejected)+1 {
				t.Fatalf("%q: %d lines consumed for %d fields and %d rejected", data, len(lines), len(hdr), len(rejected))
			}

			// Round trip: what the gateway writes parses back the same.
			var out bytes.Buffer
			if werr := writeHeaderFields(&out, hdr); werr != nil {
				t.Fatal(werr)
			}
			out.WriteString("\r\n")
			var kept []headerField
			for _, f := range hdr {
				if !gatewayOwned(f.Name) {
					kept = append(kept, f)
				}
			}
			hdr2, rej2, err2 := readHeaderBlock(bufio.NewReader(&out), headerLimits{MaxLine: lim.MaxLine + 2, MaxLines: lim.MaxLines})
			if err2 != nil || len(rej2) > 0 || !slices.Equal(hdr2, kept) || out.Len() != 0 {
				t.Fatalf("%q: re-parse of %q = %q, %q, %v; want %q", data, out.String(), hdr2, rej2, err2, kept)
			}
		}
	})
}
