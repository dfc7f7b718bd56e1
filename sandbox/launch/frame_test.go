package launch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		dir  string
	}{
		{"minimal", []string{"/s"}, nil, "/"},
		{"typical", []string{"/www/cgi-bin/env.sh", "a b", ""}, []string{"PATH=/bin", "QUERY_STRING=a=b&c", "EMPTY="},
			"/www/cgi-bin"},
		{"binary-ish", []string{"/x", "\xff\xfe\n"}, []string{"K=\x01\x02\n="}, "/d"},
		{"large env", []string{"/x"}, []string{"HTTP_COOKIE=" + strings.Repeat("c", 200<<10)}, "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeFrame(tt.args, tt.env, tt.dir)
			if err != nil {
				t.Fatalf("EncodeFrame(%q, %q, %q): %v", tt.args, tt.env, tt.dir, err)
			}
			body := "the body \x00 follows"
			r := strings.NewReader(string(b) + body)
			f, err := readFrame(r)
			if err != nil {
				t.Fatalf("readFrame: %v", err)
			}
			if !slices.Equal(f.Args, tt.args) || !slices.Equal(f.Env, tt.env) || f.Dir != tt.dir {
				t.Errorf("round trip = %q %q %q, want %q %q %q", f.Args, f.Env, f.Dir, tt.args, tt.env, tt.dir)
			}
			// Nothing past the frame was consumed.
			rest, _ := io.ReadAll(r)
			if string(rest) != body {
				t.Errorf("after the frame: %q, want %q", rest, body)
			}
		})
	}
}

// oneByteReader returns one byte per Read, like a slow pipe.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func TestFrameShortReads(t *testing.T) {
	b, err := EncodeFrame([]string{"/s", "x"}, []string{"A=1"}, "/")
	if err != nil {
		t.Fatal(err)
	}
	src := bytes.NewReader(append(b, "BODY"...))
	f, err := readFrame(oneByteReader{src})
	if err != nil || f.Args[1] != "x" || f.Env[0] != "A=1" {
		t.Fatalf("readFrame over 1-byte reads = %+v, %v", f, err)
	}
	if rest, _ := io.ReadAll(src); string(rest) != "BODY" {
		t.Errorf("rest = %q, want BODY", rest)
	}
}

func TestEncodeFrameRejects(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		dir  string
	}{
		{"no args", nil, nil, "/"},
		{"relative argv0", []string{"s.sh"}, nil, "/"},
		{"relative dir", []string{"/s"}, nil, "www"},
		{"NUL in arg", []string{"/s", "a\x00b"}, nil, "/"},
		{"NUL in env", []string{"/s"}, []string{"A=\x00"}, "/"},
		{"env without =", []string{"/s"}, []string{"NOEQUALS"}, "/"},
		{"env empty key", []string{"/s"}, []string{"=v"}, "/"},
		{"too large", []string{"/s"}, []string{"A=" + strings.Repeat("x", MaxFrameSize)}, "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := EncodeFrame(tt.args, tt.env, tt.dir); !errors.Is(err, ErrBadFrame) {
				t.Errorf("EncodeFrame(%q, %.40q, %q) = %v, want ErrBadFrame", tt.args, tt.env, tt.dir, err)
			}
		})
	}
}

func TestReadFrameRejects(t *testing.T) {
	good, err := EncodeFrame([]string{"/s", "arg"}, []string{"A=1"}, "/d")
	if err != nil {
		t.Fatal(err)
	}
	header := func(size uint32) []byte {
		return binary.BigEndian.AppendUint32([]byte("CGBX\x01"), size)
	}
	// payload builds a payload from raw uint32s and strings.
	payload := func(parts ...any) []byte {
		var b []byte
		for _, p := range parts {
			switch v := p.(type) {
			case int:
				b = binary.BigEndian.AppendUint32(b, uint32(v))
			case string:
				b = appendString(b, v)
			}
		}
		return append(header(uint32(len(b))), b...)
	}
	tests := []struct {
		name  string
		input []byte
	}{
		{"empty", nil},
		{"short header", good[:5]},
		{"bad magic", append([]byte("XXXX"), good[4:]...)},
		{"bad version", append([]byte("CGBX\x02"), good[5:]...)},
		{"oversized", header(MaxFrameSize + 1)},
		{"huge", header(0xffffffff)},
		{"truncated payload", good[:len(good)-1]},
		{"string overruns", payload(1000)},
		{"count overruns", payload("/d", 0x7fffffff)},
		{"trailing bytes", payload("/d", 1, "/s", 0, 7)},
		{"no argv", payload("/d", 0, 0)},
		{"relative argv0", payload("/d", 1, "s", 0)},
		{"NUL in env", payload("/d", 1, "/s", 1, "A=\x00")},
		{"env without =", payload("/d", 1, "/s", 1, "A")},
		{"garbage", []byte(strings.Repeat("\xff", 64))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := readFrame(bytes.NewReader(tt.input))
			if !errors.Is(err, ErrBadFrame) {
				t.Errorf("readFrame(%q) = %+v, %v; want ErrBadFrame", tt.input, f, err)
			}
		})
	}
}

func FuzzReadFrame(f *testing.F) {
	good, _ := EncodeFrame([]string{"/s", "a"}, []string{"A=1"}, "/")
	f.Add(good)
	f.Add([]byte("CGBX\x01\x00\x00\x00\x04\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := readFrame(bytes.NewReader(b))
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to the same bytes.
		again, err := EncodeFrame(fr.Args, fr.Env, fr.Dir)
		if err != nil {
			t.Fatalf("decoded frame %+v does not re-encode: %v", fr, err)
		}
		if !bytes.Equal(again, b[:len(again)]) {
			t.Fatalf("re-encoding differs")
		}
	})
}
