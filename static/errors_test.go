package static

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestWriteError(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		code       int
		message    string
		requestID  string
		wantParts  []string
		wantNoBody bool
	}{
		{
			name: "404 with default message", method: "GET", code: 404,
			wantParts: []string{"<title>Error response</title>", "<p>Error code: 404</p>", "<p>Message: Not Found.</p>", "<p>Error code explanation: 404 - ",
				`<meta name="viewport" content="width=device-width, initial-scale=1">`, "<style>" + pageStyle + "</style>\n    </head>"},
		},
		{
			name: "message escaped", method: "GET", code: 400, message: `<script>alert("x")</script> & co`,
			wantParts: []string{`<p>Message: &lt;script&gt;alert("x")&lt;/script&gt; &amp; co.</p>`},
		},
		{
			name: "request id", method: "GET", code: 503, message: "Busy", requestID: "ab<12>",
			wantParts: []string{"<p>Message: Busy.</p>", "<p>Request id: ab&lt;12&gt;</p>"},
		},
		{name: "HEAD has no body", method: "HEAD", code: 404, wantNoBody: true},
		{name: "304 has no body", method: "GET", code: 304, wantNoBody: true},
		{name: "414 spelled like Python", method: "GET", code: 414, wantParts: []string{"<p>Message: Request-URI Too Long.</p>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			w.Header().Set("Etag", `"x"`)
			w.Header().Set("Last-Modified", "Mon, 01 Jan 2001 00:00:00 GMT")
			WriteError(w, httptest.NewRequest(tt.method, "/", nil), tt.code, tt.message, tt.requestID)
			b := body(w)
			if w.Code != tt.code {
				t.Fatalf("code %d, want %d", w.Code, tt.code)
			}
			if w.Header().Get("Etag") != "" || w.Header().Get("Last-Modified") != "" {
				t.Errorf("error page keeps file headers: %v", w.Header())
			}
			if tt.wantNoBody {
				if b != "" {
					t.Errorf("%s %d: body %q, want none", tt.method, tt.code, b)
				}
				if tt.method == "HEAD" && w.Header().Get("Content-Length") == "" {
					t.Errorf("HEAD: no Content-Length")
				}
				return
			}
			if ct := w.Header().Get("Content-Type"); ct != "text/html;charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if cl := w.Header().Get("Content-Length"); cl != fmt.Sprint(len(b)) {
				t.Errorf("Content-Length %q for %d bytes", cl, len(b))
			}
			for _, p := range tt.wantParts {
				if !strings.Contains(b, p) {
					t.Errorf("body lacks %q:\n%s", p, b)
				}
			}
			if tt.requestID == "" && strings.Contains(b, "Request id") {
				t.Errorf("body names a request id though none was given")
			}
		})
	}
}

func TestEscapeHTML(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{`<b>&"'`, `&lt;b&gt;&amp;"'`},
		{"&amp;", "&amp;amp;"},
	}
	for _, tt := range tests {
		if got := escapeHTML(tt.in); got != tt.want {
			t.Errorf("escapeHTML(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPyRepr(t *testing.T) {
	for in, want := range map[string]string{"POST": "'POST'", "A'B": `"A'B"`} {
		if got := pyRepr(in); got != want {
			t.Errorf("pyRepr(%q) = %q, want %q", in, got, want)
		}
	}
}

// ExampleHandler serves a site root the way cgibox's gateway does.
func ExampleHandler() {
	dir, err := exampleSite()
	defer os.RemoveAll(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer root.Close()
	h := &Handler{Root: root, CGIDirs: []string{"/cgi-bin"}}
	for _, target := range []string{"/index.html", "/cgi-bin/hello.sh", "/.env", "/docs"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
		fmt.Println(strings.TrimSpace(fmt.Sprint(target, " ", w.Code, " ", w.Header().Get("Location"))))
	}
	// Output:
	// /index.html 200
	// /cgi-bin/hello.sh 403
	// /.env 404
	// /docs 301 /docs/
}

func ExampleContentType() {
	fmt.Println(ContentType("app.js"), ContentType("photo.JPG"), ContentType("backup.tar.gz"), ContentType("Makefile"))
	// Output: text/javascript image/jpeg application/gzip application/octet-stream
}
