package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// Errors of readHeaderBlock. In rfc3875 mode (issue 5) each means 502; in
// Python mode they tell the handler to end the header block itself.
var (
	errHeaderTooLong  = errors.New("script header line too long")
	errTooManyHeaders = errors.New("too many script header lines")
)

// Default header limits, well under anything a client would accept.
const (
	defaultMaxHeaderLine  = 8 << 10
	defaultMaxHeaderLines = 100
	maxRejectedLog        = 256 // bytes of a rejected line kept for the log
)

// headerLimits bounds a script's header block. Zero values mean the defaults:
// 8 KiB per line (without its line ending) and 100 lines (without the blank
// line that ends the block).
type headerLimits struct{ MaxLine, MaxLines int }

func (l headerLimits) withDefaults() headerLimits {
	if l.MaxLine <= 0 {
		l.MaxLine = defaultMaxHeaderLine
	}
	if l.MaxLines <= 0 {
		l.MaxLines = defaultMaxHeaderLines
	}
	return l
}

// headerField is one valid header line of a script's output: Name is an
// RFC 9110 token, Value has no surrounding whitespace and no control
// characters but HTAB.
type headerField struct{ Name, Value string }

// readHeaderBlock reads the script's header block from br: lines ending in "\n"
// or "\r\n" up to the first empty line (consumed). It never buffers more than
// MaxLine per line nor more than MaxLines lines. It returns the lines as parsed
// fields and the lines it rejected (for the log, each cut to 256 bytes), and
// errHeaderTooLong / errTooManyHeaders / io.ErrUnexpectedEOF (output ended
// before the blank line) or br's own read error — these are for rfc3875 mode
// (issue 5) to answer 502; python mode uses them to decide to end the header
// block itself. With an error, the fields and rejected lines read so far are
// returned too.
//
// Nothing past the blank line is read from br. When the block ends with an
// error, br is left at the start of the line that caused it (the extra line
// for errTooManyHeaders, the partial last line for io.ErrUnexpectedEOF, the
// overlong line for errHeaderTooLong) provided br's buffer holds MaxLine+2
// bytes; with a smaller buffer, part of that line may have been consumed.
//
// A valid line is `name ":" value`: name an RFC 9110 token, value without CR,
// LF, NUL or other control characters except HTAB, leading and trailing
// whitespace trimmed. Anything else, also obs-fold (a line starting with SP or
// HTAB; RFC 9112 §5.2), is rejected without ending the block (SECURITY.md
// case 12).
func readHeaderBlock(br *bufio.Reader, lim headerLimits) (hdr []headerField, rejected []string, err error) {
	lim = lim.withDefaults()
	for n := 0; ; n++ {
		if n == lim.MaxLines {
			// One more line is allowed: the blank one. Look, don't consume.
			if end, err := peekBlankLine(br); err != nil || !end {
				if err == nil {
					err = errTooManyHeaders
				}
				return hdr, rejected, err
			}
		}
		line, err := readLine(br, lim.MaxLine)
		if err != nil {
			return hdr, rejected, err
		}
		if len(line) == 0 {
			return hdr, rejected, nil
		}
		if f, ok := parseHeaderLine(line); ok {
			hdr = append(hdr, f)
		} else {
			if len(line) > maxRejectedLog {
				line = line[:maxRejectedLog]
			}
			rejected = append(rejected, string(line))
		}
	}
}

// peekBlankLine reports whether br starts with "\n" or "\r\n", without
// consuming anything. io.EOF becomes io.ErrUnexpectedEOF.
func peekBlankLine(br *bufio.Reader) (bool, error) {
	b, err := br.Peek(1)
	if err == nil && b[0] == '\r' {
		b, err = br.Peek(2)
		if err == nil {
			return b[1] == '\n', nil
		}
	}
	if errors.Is(err, io.EOF) {
		return false, io.ErrUnexpectedEOF
	}
	if err != nil {
		return false, err
	}
	return b[0] == '\n', nil
}

// readLine returns the next line of br without its "\n" or "\r\n", consuming
// it. A line must end in '\n' and hold at most max bytes before its ending.
// While br's buffer can hold such a line, errors leave the line in br.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	limit := max + 2 // the longest valid line with its "\r\n"
	for {
		buf, _ := br.Peek(br.Buffered())
		look := buf[:min(len(buf), limit)]
		if i := bytes.IndexByte(look, '\n'); i >= 0 {
			line := trimEOL(look[:i+1])
			if len(line) > max {
				return nil, errHeaderTooLong
			}
			line = bytes.Clone(line)
			br.Discard(i + 1)
			return line, nil
		}
		if len(buf) >= limit {
			return nil, errHeaderTooLong
		}
		if len(buf) == br.Size() {
			return readLineSmallBuffer(br, max)
		}
		// Wait for at least one more byte.
		if _, err := br.Peek(len(buf) + 1); err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// readLineSmallBuffer is readLine for a br whose buffer is smaller than a
// line may be: it consumes as it goes, never keeping more than max+2 bytes.
func readLineSmallBuffer(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > max+2 {
			return nil, errHeaderTooLong
		}
		line = append(line, frag...)
		switch {
		case err == nil:
			line = trimEOL(line)
			if len(line) > max {
				return nil, errHeaderTooLong
			}
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// trimEOL removes a trailing "\n" or "\r\n".
func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// parseHeaderLine parses one non-empty header line (without its ending).
func parseHeaderLine(line []byte) (headerField, bool) {
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok || !validToken(string(name)) { // also catches obs-fold: SP/HTAB is no tchar
		return headerField{}, false
	}
	value = bytes.Trim(value, " \t")
	if !validFieldValue(string(value)) {
		return headerField{}, false
	}
	return headerField{Name: string(name), Value: string(value)}, true
}

// validToken reports whether s is an RFC 9110 §5.6.2 token.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validFieldValue reports whether s is an RFC 9110 §5.5 field value with no
// surrounding whitespace: VCHAR, obs-text, SP and HTAB; no CR, LF, NUL or
// other control characters.
func validFieldValue(s string) bool {
	if s != strings.Trim(s, " \t") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// gatewayOwned reports headers the gateway owns and never takes from a script
// (SECURITY.md case 12), compared case-insensitively:
//   - framing: Content-Length, Transfer-Encoding, Trailer — the gateway alone
//     decides how the body is delimited (a lying Content-Length would let a
//     script smuggle a second response onto a kept-alive connection);
//   - connection management and hop-by-hop fields (RFC 9110 §7.6.1):
//     Connection, Keep-Alive, Proxy-Connection, TE, Upgrade, HTTP2-Settings.
func gatewayOwned(name string) bool {
	switch strings.ToLower(name) {
	case "content-length", "transfer-encoding", "trailer",
		"connection", "keep-alive", "proxy-connection", "te", "upgrade", "http2-settings":
		return true
	}
	return false
}

// writeHeaderFields writes the valid fields of hdr that the gateway does not
// own, in order, as "Name: value\r\n" (Python mode, after the gateway's own
// status line and headers). It writes nothing else: the caller ends the block.
func writeHeaderFields(w io.Writer, hdr []headerField) error {
	var b bytes.Buffer
	for _, f := range hdr {
		if gatewayOwned(f.Name) || !validToken(f.Name) || !validFieldValue(f.Value) {
			continue
		}
		b.WriteString(f.Name)
		b.WriteString(": ")
		b.WriteString(f.Value)
		b.WriteString("\r\n")
	}
	_, err := w.Write(b.Bytes())
	return err
}
