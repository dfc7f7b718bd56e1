// Package safetext makes untrusted text — file names, request lines, what a
// script writes to stderr — safe to show to a person: in a directory
// listing, in a log line, on a terminal. It is shared by the static file
// handler and the gateway's logs so that both write the same escapes.
package safetext

import (
	"unicode"
	"unicode/utf8"
)

// Escape returns s with every character that can change how the text
// around it looks written as a visible escape, in one notation:
//
//   - C0 controls, DEL and C1 controls as \xHH (ESC is \x1b): they move the
//     cursor, recolour or clear a terminal and forge log lines (Python's
//     log_message escapes the same range, gh-100001);
//   - the Unicode bidirectional controls (U+061C, U+200E, U+200F,
//     U+202A–U+202E, U+2066–U+2069) as \uHHHH: they reorder what follows,
//     so that "report\u202etxt.exe" reads as "reportexe.txt"
//     (CVE-2021-42574, "Trojan Source");
//   - the line and paragraph separators U+2028 and U+2029 as \uHHHH: some
//     viewers break a log line there;
//   - each byte of invalid UTF-8 as \xHH;
//   - the backslash as \\, so that an escape in the output always stands
//     for the character it names and never for itself.
//
// Everything else, letters of every script included, is kept as it is.
func Escape(s string) string {
	for i := 0; i < len(s); {
		_, size, esc := at(s, i)
		if esc {
			b := make([]byte, 0, len(s)+16)
			return string(AppendEscape(append(b, s[:i]...), s[i:]))
		}
		i += size
	}
	return s // nothing escaped
}

// AppendEscape appends Escape(s) to dst, for callers that build a line
// in a buffer of their own.
func AppendEscape(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	kept := 0 // s[:kept] is in dst
	for i := 0; i < len(s); {
		r, size, esc := at(s, i)
		if esc {
			dst = append(dst, s[kept:i]...)
			switch {
			case r == utf8.RuneError && size == 1:
				dst = append(dst, '\\', 'x', hex[s[i]>>4], hex[s[i]&0xf])
			case r == '\\':
				dst = append(dst, '\\', '\\')
			case r < 0x100:
				dst = append(dst, '\\', 'x', hex[r>>4], hex[r&0xf])
			default:
				// Every character escaped above U+00FF is below U+10000.
				dst = append(dst, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
			}
			kept = i + size
		}
		i += size
	}
	return append(dst, s[kept:]...)
}

// at decodes the character at s[i] and reports whether Escape writes it
// as an escape: an unsafe character, a byte of invalid UTF-8 or a
// backslash.
func at(s string, i int) (r rune, size int, escape bool) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1, c == '\\' || unsafe(rune(c))
	}
	r, size = utf8.DecodeRuneInString(s[i:])
	return r, size, r == utf8.RuneError && size == 1 || unsafe(r)
}

// unsafe reports whether r is a control, bidirectional control or line
// separator character.
func unsafe(r rune) bool {
	return r < 0x20 || (0x7f <= r && r < 0xa0) ||
		unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029'
}
