// Package safetext makes untrusted text — file names, request lines, what a
// script writes to stderr — safe to show to a person: in a directory
// listing, in a log line, on a terminal. It is shared by the static file
// handler and the gateway's logs so that both write the same escapes.
package safetext

import (
	"fmt"
	"strings"
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
	var b strings.Builder
	kept := 0 // s[:kept] is in b
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var esc string
		switch {
		case r == utf8.RuneError && size == 1:
			esc = fmt.Sprintf(`\x%02x`, s[i])
		case r == '\\':
			esc = `\\`
		case !unsafe(r):
		case r < 0x100:
			esc = fmt.Sprintf(`\x%02x`, r)
		default:
			esc = fmt.Sprintf(`\u%04x`, r)
		}
		if esc != "" {
			b.WriteString(s[kept:i])
			b.WriteString(esc)
			kept = i + size
		}
		i += size
	}
	if kept == 0 {
		return s // nothing escaped
	}
	b.WriteString(s[kept:])
	return b.String()
}

// unsafe reports whether r is a control, bidirectional control or line
// separator character.
func unsafe(r rune) bool {
	return r < 0x20 || (0x7f <= r && r < 0xa0) ||
		unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029'
}
