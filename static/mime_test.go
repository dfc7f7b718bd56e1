package static

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/cgibox/cgibox/internal/testenv"
)

func TestContentType(t *testing.T) {
	tests := []struct{ name, want string }{
		{"index.html", "text/html"},
		{"page.htm", "text/html"},
		{"PAGE.HTML", "text/html"},
		{"a.txt", "text/plain"},
		{"a.css", "text/css"},
		{"a.js", "text/javascript"},
		{"a.mjs", "text/javascript"},
		{"a.json", "application/json"},
		{"a.png", "image/png"},
		{"a.PNG", "image/png"},
		{"a.jpg", "image/jpeg"},
		{"a.jpeg", "image/jpeg"},
		{"a.gif", "image/gif"},
		{"a.svg", "image/svg+xml"},
		{"a.pdf", "application/pdf"},
		{"a.zip", "application/zip"},
		{"a.tar", "application/x-tar"},
		{"a.wasm", "application/wasm"},
		{"a.md", "text/markdown"},
		{"a.py", "text/x-python"},
		{"a.sh", "text/x-sh"},
		{"a.pl", "text/x-perl"},
		{"a.xml", "application/xml"},
		{"a.ico", "image/vnd.microsoft.icon"},
		{"a.webp", "image/webp"},
		{"a.mp4", "video/mp4"},
		{"a.webm", "video/webm"},
		{"a.mp3", "audio/mpeg"},
		{"a.woff", "font/woff"},
		{"a.woff2", "font/woff2"},
		{"a.csv", "text/csv"},
		{"a.webmanifest", "application/manifest+json"},
		// SimpleHTTPRequestHandler's own overrides.
		{"a.gz", "application/gzip"},
		{"a.tar.gz", "application/gzip"},
		{"a.html.gz", "application/gzip"},
		{"a.GZ", "application/gzip"},
		{"a.Z", "application/octet-stream"},
		{"a.z", "application/octet-stream"},
		{"a.bz2", "application/x-bzip2"},
		{"a.xz", "application/x-xz"},
		// mimetypes' suffix map and encodings.
		{"a.tgz", "application/x-tar"},
		{"a.TGZ", "application/x-tar"},
		{"a.tbz2", "application/x-tar"},
		{"a.txz", "application/x-tar"},
		{"a.svgz", "image/svg+xml"},
		{"a.html.br", "text/html"},
		{"a.html.BR", "application/octet-stream"},
		{"a.br", "application/octet-stream"},
		// No or unknown extension.
		{"README", "application/octet-stream"},
		{"a.", "application/octet-stream"},
		{".bashrc", "application/octet-stream"},
		{"..html", "application/octet-stream"},
		{".x.html", "text/html"},
		{"a.unknownext", "application/octet-stream"},
		{"a.yaml", "application/octet-stream"},
		// Only the last path component counts.
		{"/srv/site.html/file", "application/octet-stream"},
		{"dir.d/page.css", "text/css"},
	}
	for _, tt := range tests {
		if got := ContentType(tt.name); got != tt.want {
			t.Errorf("ContentType(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestContentTypeMatchesPython asks the local python3 for the type of every
// extension in the table (and the names above) and compares. On Debian and
// Ubuntu, python3 depends on media-types, whose /etc/mime.types Python reads;
// the table holds what Python says there.
func TestContentTypeMatchesPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		testenv.Skip(t, "python3 not installed (scripts/test.sh installs it)")
	}
	if _, err := os.Stat("/etc/mime.types"); err != nil {
		testenv.Skip(t, "no /etc/mime.types, so python3 would use only its built-in table (scripts/test.sh installs media-types)")
	}
	names := []string{"README", "a.gz", "a.tar.gz", "a.Z", "a.bz2", "a.xz", "a.tgz", "a.svgz", "a.html.br", "a.br", ".bashrc", "a.PNG", "a.unknownext"}
	for _, ext := range tableExtensions(t) {
		names = append(names, "file"+ext, "FILE"+strings.ToUpper(ext))
	}
	const script = `
import sys, http.server
h = http.server.SimpleHTTPRequestHandler.__new__(http.server.SimpleHTTPRequestHandler)
for name in sys.stdin.read().split("\n"):
    print(h.guess_type("/srv/site/" + name))
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(strings.Join(names, "\n"))
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("python3: %v", err)
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != len(names) {
		t.Fatalf("python3 answered %d lines for %d names", len(got), len(names))
	}
	for i, name := range names {
		if ct := ContentType(name); ct != got[i] {
			t.Errorf("ContentType(%q) = %q, python3 says %q", name, ct, got[i])
		}
	}
}

// tableExtensions reads the extensions typeByExtension knows from mime.go.
func tableExtensions(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "mime.go", nil, 0)
	must(t, err)
	var exts []string
	ast.Inspect(f, func(n ast.Node) bool {
		fn, ok := n.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "typeByExtension" {
			return true
		}
		ast.Inspect(fn, func(n ast.Node) bool {
			if cc, ok := n.(*ast.CaseClause); ok {
				for _, e := range cc.List {
					if lit, ok := e.(*ast.BasicLit); ok {
						s, _ := strconv.Unquote(lit.Value)
						exts = append(exts, s)
					}
				}
			}
			return true
		})
		return false
	})
	if len(exts) < 150 {
		t.Fatalf("found %d extensions in typeByExtension; the parse went wrong", len(exts))
	}
	return exts
}
