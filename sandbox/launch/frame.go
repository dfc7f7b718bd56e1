// Package launch is the container side of a cgibox job and the frame that
// carries a job's argv, environment and directory to it. It imports the
// standard library only, so that the launcher binary starting in every
// container (cmd/cgibox-launch) starts in a millisecond or two.
package launch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// The frame is what Run writes at the head of the task's stdin so that the
// per-request argv, environment and working directory never appear in the
// OCI spec (a container can then be prepared before its request arrives).
//
// Layout (all integers big-endian uint32):
//
//	"CGBX" magic, 1 version byte (1), payload length,
//	payload: dir, argc, argv..., envc, env...
//
// where every string is its length followed by its bytes. The launcher reads
// the fixed header, then exactly the payload length: it never reads past the
// frame, so what follows on stdin is the script's (the request body).
const (
	frameMagic      = "CGBX"
	frameVersion    = 1
	frameHeaderSize = len(frameMagic) + 1 + 4
	// MaxFrameSize bounds the payload of a frame (argv + env + dir).
	MaxFrameSize = 1 << 20
)

// ErrBadFrame is returned for a frame that is truncated, too large or
// malformed.
var ErrBadFrame = errors.New("bad launcher frame")

// frame is the decoded content of a launcher frame.
type frame struct {
	Args []string
	Env  []string
	Dir  string
}

// EncodeFrame encodes argv, env and the working directory as the launcher
// frame. args must not be empty and args[0] must be an absolute path (the
// launcher execs it); dir must be absolute; no string may contain a NUL byte
// and every env entry must be KEY=value.
func EncodeFrame(args, env []string, dir string) ([]byte, error) {
	f := frame{Args: args, Env: env, Dir: dir}
	if err := f.validate(); err != nil {
		return nil, err
	}
	size := 4 + len(dir) + 4 + 4
	for _, s := range args {
		size += 4 + len(s)
	}
	for _, s := range env {
		size += 4 + len(s)
	}
	if size > MaxFrameSize {
		return nil, fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrBadFrame, size, MaxFrameSize)
	}
	b := make([]byte, 0, frameHeaderSize+size)
	b = append(b, frameMagic...)
	b = append(b, frameVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	b = appendString(b, dir)
	b = binary.BigEndian.AppendUint32(b, uint32(len(args)))
	for _, s := range args {
		b = appendString(b, s)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(env)))
	for _, s := range env {
		b = appendString(b, s)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// readFrame reads exactly one frame from r and nothing more: a header read
// and then one read of the announced payload size, both with io.ReadFull.
func readFrame(r io.Reader) (frame, error) {
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return frame{}, fmt.Errorf("%w: header: %w", ErrBadFrame, err)
	}
	if string(hdr[:len(frameMagic)]) != frameMagic {
		return frame{}, fmt.Errorf("%w: bad magic %q", ErrBadFrame, hdr[:len(frameMagic)])
	}
	if v := hdr[len(frameMagic)]; v != frameVersion {
		return frame{}, fmt.Errorf("%w: unsupported version %d", ErrBadFrame, v)
	}
	size := binary.BigEndian.Uint32(hdr[len(frameMagic)+1:])
	if size > MaxFrameSize {
		return frame{}, fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrBadFrame, size, MaxFrameSize)
	}
	payload := make([]byte, size)
	if _, err := io.ReadFull(r, payload); err != nil {
		return frame{}, fmt.Errorf("%w: payload: %w", ErrBadFrame, err)
	}
	return decodePayload(payload)
}

func decodePayload(p []byte) (frame, error) {
	d := decoder{b: p}
	var f frame
	f.Dir = d.string()
	f.Args = d.strings()
	f.Env = d.strings()
	if d.err != nil {
		return frame{}, d.err
	}
	if len(d.b) != 0 {
		return frame{}, fmt.Errorf("%w: %d trailing bytes", ErrBadFrame, len(d.b))
	}
	if err := f.validate(); err != nil {
		return frame{}, err
	}
	return f, nil
}

func (f frame) validate() error {
	if len(f.Args) == 0 {
		return fmt.Errorf("%w: empty argv", ErrBadFrame)
	}
	if !path.IsAbs(f.Args[0]) {
		return fmt.Errorf("%w: argv[0] %q is not an absolute path", ErrBadFrame, f.Args[0])
	}
	if !path.IsAbs(f.Dir) {
		return fmt.Errorf("%w: dir %q is not an absolute path", ErrBadFrame, f.Dir)
	}
	for _, s := range append(append([]string{f.Dir}, f.Args...), f.Env...) {
		if strings.IndexByte(s, 0) >= 0 {
			return fmt.Errorf("%w: NUL byte in %q", ErrBadFrame, s)
		}
	}
	for _, e := range f.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return fmt.Errorf("%w: env entry %q is not KEY=value", ErrBadFrame, e)
		}
	}
	return nil
}

// decoder consumes length-prefixed strings from a payload; the first error
// sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uint32() uint32 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 4 {
		d.err = fmt.Errorf("%w: truncated payload", ErrBadFrame)
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) string() string {
	n := d.uint32()
	if d.err != nil {
		return ""
	}
	if uint64(n) > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: string of %d bytes overruns payload", ErrBadFrame, n)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) strings() []string {
	n := d.uint32()
	if d.err != nil {
		return nil
	}
	// Every string takes at least 4 bytes: a count beyond that is garbage,
	// and checking it first keeps the allocation bounded.
	if uint64(n)*4 > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: count %d overruns payload", ErrBadFrame, n)
		return nil
	}
	out := make([]string, 0, n)
	for range n {
		out = append(out, d.string())
		if d.err != nil {
			return nil
		}
	}
	return out
}
