package safetext

import (
	"fmt"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain ASCII kept", "index.html", "index.html"},
		{"letters of other scripts kept", "ünïcödé-日本-עברית.txt", "ünïcödé-日本-עברית.txt"},
		{"a literal U+FFFD kept", "a\uFFFDb", "a\uFFFDb"},
		{"empty", "", ""},
		{"ESC of a terminal sequence", "\x1b[31mred", `\x1b[31mred`},
		{"newline and carriage return", "a\r\nb", `a\x0d\x0ab`},
		{"NUL, tab and unit separator", "\x00\t\x1f", `\x00\x09\x1f`},
		{"DEL", "a\x7f", `a\x7f`},
		{"C1 controls (NEL, CSI)", "a\u0085b\u009b", `a\x85b\x9b`},
		{"U+00A0 is no control", "a\u00a0b", "a\u00a0b"},
		{"right-to-left override fakes an extension", "report\u202etxt.exe", `report\u202etxt.exe`},
		{"every embedding and override", "\u202a\u202b\u202c\u202d\u202e", `\u202a\u202b\u202c\u202d\u202e`},
		{"every isolate", "\u2066\u2067\u2068\u2069", `\u2066\u2067\u2068\u2069`},
		{"marks LRM, RLM, ALM", "\u200e\u200f\u061c", `\u200e\u200f\u061c`},
		{"line and paragraph separators", "a\u2028b\u2029", `a\u2028b\u2029`},
		{"invalid UTF-8, byte by byte", "bad\xff\xfe.txt", `bad\xff\xfe.txt`},
		{"truncated sequence", "a\xe2\x80", `a\xe2\x80`},
		{"backslash doubled", `back\slash`, `back\\slash`},
		{"a name that looks like an escape stays distinct", `\x1b`, `\\x1b`},
		{"escapes at both ends", "\x1bmid\u202e", `\x1bmid\u202e`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Escape(tt.in); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := string(AppendEscape([]byte("x\x01 "), tt.in)); got != "x\x01 "+tt.want {
				t.Errorf("AppendEscape(%q, %q) = %q, want %q", "x\x01 ", tt.in, got, "x\x01 "+tt.want)
			}
		})
	}
}

func ExampleEscape() {
	fmt.Println(Escape("invoice\u202efdp.exe"))
	fmt.Println(Escape("\x1b]0;owned\x07"))
	// Output:
	// invoice\u202efdp.exe
	// \x1b]0;owned\x07
}

// FuzzEscape checks that whatever goes in, what comes out is valid UTF-8
// holding no character that Escape is meant to remove.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"plain", "\x1b[2J", "a\u202eb", "\xff", `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := Escape(in)
		if app := string(AppendEscape([]byte("> "), in)); app != "> "+out {
			t.Fatalf("AppendEscape(%q, %q) = %q; Escape gives %q", "> ", in, app, out)
		}
		if !utf8.ValidString(out) {
			t.Fatalf("Escape(%q) = %q: not valid UTF-8", in, out)
		}
		for _, r := range out {
			if unsafe(r) {
				t.Fatalf("Escape(%q) = %q: keeps %U", in, out, r)
			}
		}
	})
}
