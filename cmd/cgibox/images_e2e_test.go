package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gcrname "github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/cgibox/cgibox/images"
)

// The perl and python images are built once per test binary, through the
// binary, into the shared containerd and data directory.
var debianImages struct {
	once    sync.Once
	err     error
	timings []string
}

// requireImages builds the perl and python images (once) and fails t if
// that fails.
func requireImages(t *testing.T) {
	t.Helper()
	requireContainerd(t)
	debianImages.once.Do(func() {
		for _, name := range []string{"perl", "python"} {
			start := time.Now()
			out, err := cgiboxCmd(t, 10*time.Minute, "image", "build", name)
			if err != nil {
				debianImages.err = fmt.Errorf("cgibox image build %s: %w\n%s", name, err, out)
				return
			}
			debianImages.timings = append(debianImages.timings,
				fmt.Sprintf("%s: %s", name, time.Since(start).Round(100*time.Millisecond)))
		}
	})
	if debianImages.err != nil {
		t.Fatal(debianImages.err)
	}
	t.Logf("image builds (first in this run): %s", strings.Join(debianImages.timings, ", "))
}

// cgiboxCmd runs the binary with args against the shared containerd and
// data directory and returns its combined output.
func cgiboxCmd(t *testing.T, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), timeout)
	defer cancel()
	args = append(args, "--containerd", containerdAddr, "--data-dir", sharedDataDir)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, cgiboxBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// exampleSite is a site whose cgi-bin holds the repository's example
// scripts (and extra, name → body).
func exampleSite(t *testing.T, extra map[string]string) string {
	t.Helper()
	scripts := map[string]string{}
	entries, err := os.ReadDir("../../examples/cgi-bin")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join("../../examples/cgi-bin", e.Name())
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("examples/cgi-bin/%s has mode %o, want 0755", e.Name(), fi.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		scripts[e.Name()] = string(b)
	}
	for k, v := range extra {
		scripts[k] = v
	}
	return cgiSite(t, scripts)
}

// multipartBody is a multipart/form-data body with the fields in order and
// one file part.
func multipartBody(t *testing.T, fields [][2]string, fileField, fileName string, file []byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if fileField != "" {
		w, err := mw.CreateFormFile(fileField, fileName)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(file)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), mw.FormDataContentType()
}

func urlencode(fields [][2]string) string {
	var parts []string
	for _, f := range fields {
		parts = append(parts, escapeQuery(f[0])+"="+escapeQuery(f[1]))
	}
	return strings.Join(parts, "&")
}

func escapeQuery(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("-_.~", c) >= 0:
			b.WriteByte(c)
		case c == ' ':
			b.WriteByte('+')
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// perlEscape is CGI.pm's escapeHTML for the characters the tests send.
func perlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// The form fields every case sends: markup, an ampersand, a quote, UTF-8,
// a repeated name and an empty value.
var formFields = [][2]string{
	{"name", "Ada <b>Lovelace</b>"},
	{"message", `Tom & "Jerry" – 1 + 1 = 2`},
	{"name", "Émilie du Châtelet"},
	{"empty", ""},
}

// pyEscape is Python's html.escape.
func pyEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#x27;").Replace(s)
}

type exampleCase struct {
	name        string
	method      string
	target      string
	contentType string
	body        []byte
	wantType    string
	wantBody    string
}

// examplePage is an HTML example's page: the demo's head (viewport,
// /style.css) titled title, heading as its h1, body, and a link back to the
// index.
func examplePage(title, heading, body string) string {
	return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n" +
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n" +
		"<title>" + title + "</title>\n<link rel=\"stylesheet\" href=\"/style.css\">\n</head>\n" +
		"<body>\n<main>\n<h1>" + heading + "</h1>\n" + body +
		"<p><a href=\"/\">Back to the index</a></p>\n</main>\n</body>\n</html>\n"
}

func runExampleCases(t *testing.T, srv *server, cases []exampleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.contentType != "" {
				h.Set("Content-Type", tc.contentType)
			}
			resp, body := do(t, tc.method, srv.base+tc.target, h, tc.body)
			if resp.StatusCode != 200 {
				t.Fatalf("%s %s: status %d, body %q", tc.method, tc.target, resp.StatusCode, body)
			}
			if got := resp.Header.Get("Content-Type"); got != tc.wantType {
				t.Errorf("%s %s: Content-Type %q, want %q", tc.method, tc.target, got, tc.wantType)
			}
			if string(body) != tc.wantBody {
				t.Errorf("%s %s: body differs\n got: %q\nwant: %q", tc.method, tc.target, body, tc.wantBody)
			}
		})
	}
}

func TestExamplePerlForm(t *testing.T) {
	requireImages(t)
	srv := startCgibox(t, "-d", exampleSite(t, nil))
	formHTML := "<form method=\"post\" action=\"form.pl\">\n" +
		"<label>Name <input name=\"name\" value=\"Ada\"></label>\n" +
		"<label>Message <textarea name=\"message\">Hello &amp; welcome</textarea></label>\n" +
		"<button type=\"submit\">Send</button>\n</form>\n"
	page := func(method string, fields [][2]string) string {
		s := "<p>Method: " + method + "</p>\n"
		if len(fields) == 0 {
			return examplePage("CGI.pm form", "CGI.pm form", s+"<p>No fields.</p>\n"+formHTML)
		}
		// CGI.pm groups the values of a name where that name first came.
		var order []string
		values := map[string][]string{}
		for _, f := range fields {
			if _, ok := values[f[0]]; !ok {
				order = append(order, f[0])
			}
			values[f[0]] = append(values[f[0]], f[1])
		}
		s += "<ul>\n"
		for _, n := range order {
			for _, v := range values[n] {
				s += "<li>" + perlEscape(n) + " = " + perlEscape(v) + "</li>\n"
			}
		}
		return examplePage("CGI.pm form", "CGI.pm form", s+"</ul>\n"+formHTML)
	}
	mp, mpType := multipartBody(t, formFields, "", "", nil)
	const html = "text/html; charset=utf-8"
	runExampleCases(t, srv, []exampleCase{
		{"GET empty", "GET", "/cgi-bin/form.pl", "", nil, html, page("GET", nil)},
		{"GET query", "GET", "/cgi-bin/form.pl?" + urlencode(formFields), "", nil, html, page("GET", formFields)},
		{"POST urlencoded", "POST", "/cgi-bin/form.pl", "application/x-www-form-urlencoded",
			[]byte(urlencode(formFields)), html, page("POST", formFields)},
		{"POST multipart", "POST", "/cgi-bin/form.pl", mpType, mp, html, page("POST", formFields)},
	})
}

func TestExamplePerlUpload(t *testing.T) {
	requireImages(t)
	srv := startCgibox(t, "-d", exampleSite(t, nil))
	file := make([]byte, 300<<10)
	rand.Read(file)
	copy(file, "\r\n--\x00binary\r\n\r\n")
	md := md5.Sum(file)
	sha := sha256.Sum256(file)
	comment := "a comment & <more>"
	mp, mpType := multipartBody(t, [][2]string{{"comment", comment}}, "file", "data.bin", file)
	report := fmt.Sprintf("file: data.bin\nsize: %d\nmd5: %s\nsha256: %s\ncomment: %s\n",
		len(file), hex.EncodeToString(md[:]), hex.EncodeToString(sha[:]), comment)
	mpNoFile, mpNoFileType := multipartBody(t, [][2]string{{"comment", comment}}, "", "", nil)
	form := examplePage("Upload", "Upload a file",
		"<form method=\"post\" action=\"upload.pl\" enctype=\"multipart/form-data\">\n"+
			"<label>File <input type=\"file\" name=\"file\"></label>\n"+
			"<label>Comment <input name=\"comment\"></label>\n"+
			"<button type=\"submit\">Upload</button>\n</form>\n")
	runExampleCases(t, srv, []exampleCase{
		{"GET form", "GET", "/cgi-bin/upload.pl", "", nil, "text/html; charset=utf-8", form},
		{"POST urlencoded", "POST", "/cgi-bin/upload.pl", "application/x-www-form-urlencoded",
			[]byte("comment=x"), "text/plain; charset=utf-8", "no file uploaded\n"},
		{"POST multipart without file", "POST", "/cgi-bin/upload.pl", mpNoFileType, mpNoFile,
			"text/plain; charset=utf-8", "no file uploaded\n"},
		{"POST multipart upload", "POST", "/cgi-bin/upload.pl", mpType, mp, "text/plain; charset=utf-8", report},
	})
}

func TestExamplePythonForm(t *testing.T) {
	requireImages(t)
	srv := startCgibox(t, "-d", exampleSite(t, nil))
	formHTML := "<form method=\"post\" action=\"form.py\" enctype=\"multipart/form-data\">\n" +
		"<label>Name <input name=\"name\" value=\"Ada\"></label>\n" +
		"<label>File <input type=\"file\" name=\"file\"></label>\n" +
		"<button type=\"submit\">Send</button>\n</form>\n"
	head := func(method string) string { return "<p>Method: " + method + "</p>\n" }
	page := func(body string) string { return examplePage("Python form", "Python form", body) }
	fieldsHTML := func(fields [][2]string) string {
		s := "<ul>\n"
		for _, f := range fields {
			s += "<li>" + pyEscape(f[0]) + " = " + pyEscape(f[1]) + "</li>\n"
		}
		return s
	}
	// cgi.FieldStorage drops blank values of urlencoded forms.
	nonEmpty := slices.DeleteFunc(slices.Clone(formFields), func(f [2]string) bool { return f[1] == "" })
	file := make([]byte, 200<<10)
	rand.Read(file)
	sha := sha256.Sum256(file)
	mp, mpType := multipartBody(t, formFields, "file", "photo.jpg", file)
	mpPage := page(head("POST") + fieldsHTML(formFields) +
		fmt.Sprintf("<li>file = file photo.jpg, %d bytes, sha256 %s</li>\n", len(file), hex.EncodeToString(sha[:])) +
		"</ul>\n" + formHTML)
	const typ = "text/html; charset=utf-8"
	runExampleCases(t, srv, []exampleCase{
		{"GET empty", "GET", "/cgi-bin/form.py", "", nil, typ, page(head("GET") + "<p>No fields.</p>\n" + formHTML)},
		{"GET query", "GET", "/cgi-bin/form.py?" + urlencode(formFields), "", nil, typ,
			page(head("GET") + fieldsHTML(nonEmpty) + "</ul>\n" + formHTML)},
		{"POST urlencoded", "POST", "/cgi-bin/form.py", "application/x-www-form-urlencoded",
			[]byte(urlencode(formFields)), typ, page(head("POST") + fieldsHTML(nonEmpty) + "</ul>\n" + formHTML)},
		{"POST multipart upload", "POST", "/cgi-bin/form.py", mpType, mp, typ, mpPage},
	})
}

func TestExamplePerlPrintenv(t *testing.T) {
	requireImages(t)
	t.Setenv("CGIBOX_CANARY", "leaked")
	srv := startCgibox(t, "-d", exampleSite(t, nil))
	port := strings.TrimPrefix(srv.base, "http://127.0.0.1:")
	mp, mpType := multipartBody(t, formFields, "file", "a.txt", []byte("hello\n"))
	form := urlencode(formFields)
	cases := []struct {
		name, method, target, ctype string
		body                        []byte
		want                        []string
	}{
		{"GET", "GET", "/cgi-bin/printenv.pl/extra?x=1&y=%2F", "", nil, []string{
			"QUERY_STRING=x=1&y=%2F", "REQUEST_METHOD=GET", "REQUEST_URI=/cgi-bin/printenv.pl/extra?x=1&y=%2F",
			"PATH_INFO=/extra", "PATH_TRANSLATED=/www/extra"}},
		{"POST urlencoded", "POST", "/cgi-bin/printenv.pl", "application/x-www-form-urlencoded", []byte(form), []string{
			"QUERY_STRING=", "REQUEST_METHOD=POST", "REQUEST_URI=/cgi-bin/printenv.pl", "PATH_INFO=",
			"CONTENT_LENGTH=" + strconv.Itoa(len(form)), "CONTENT_TYPE=application/x-www-form-urlencoded"}},
		{"POST multipart", "POST", "/cgi-bin/printenv.pl", mpType, mp, []string{
			"QUERY_STRING=", "REQUEST_METHOD=POST", "REQUEST_URI=/cgi-bin/printenv.pl", "PATH_INFO=",
			"CONTENT_LENGTH=" + strconv.Itoa(len(mp)), "CONTENT_TYPE=" + mpType}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"User-Agent": {"cgibox-test"}}
			if tc.ctype != "" {
				h.Set("Content-Type", tc.ctype)
			}
			resp, body := do(t, tc.method, srv.base+tc.target, h, tc.body)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Fatalf("status %d, Content-Type %q, body %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			// The client's port is the one value the test cannot know.
			var remotePort string
			for line := range strings.Lines(string(body)) {
				if v, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "REMOTE_PORT="); ok {
					remotePort = v
				}
			}
			if _, err := strconv.Atoi(remotePort); err != nil {
				t.Fatalf("REMOTE_PORT=%q is not a port; body %q", remotePort, body)
			}
			vars := append([]string{
				"DOCUMENT_ROOT=/www", "GATEWAY_INTERFACE=CGI/1.1", "HTTP_ACCEPT_ENCODING=gzip",
				"HTTP_HOST=127.0.0.1:" + port, "HTTP_USER_AGENT=cgibox-test", "PATH=/usr/local/bin:/usr/bin:/bin",
				"REMOTE_ADDR=127.0.0.1", "REMOTE_HOST=127.0.0.1", "REMOTE_PORT=" + remotePort,
				"SCRIPT_FILENAME=/www/cgi-bin/printenv.pl", "SCRIPT_NAME=/cgi-bin/printenv.pl",
				"SERVER_NAME=127.0.0.1", "SERVER_PORT=" + port, "SERVER_PROTOCOL=HTTP/1.1", "SERVER_SOFTWARE=cgibox/devel",
			}, tc.want...)
			slices.SortFunc(vars, func(a, b string) int {
				ka, _, _ := strings.Cut(a, "=")
				kb, _, _ := strings.Cut(b, "=")
				return strings.Compare(ka, kb)
			})
			want := strings.Join(vars, "\n") + "\n"
			if string(body) != want {
				t.Errorf("printenv.pl output differs\n got: %q\nwant: %q", body, want)
			}
		})
	}
}

// TestShebangChoosesImage runs scripts whose #! lines need each image, one
// that needs bash, and one whose interpreter no image has.
func TestShebangChoosesImage(t *testing.T) {
	requireImages(t)
	root := exampleSite(t, map[string]string{
		"which.sh":   "#!/bin/sh\necho Content-Type: text/plain\necho\nls /bin/busybox\n",
		"which.bash": "#!/bin/bash\necho Content-Type: text/plain\necho\necho \"bash ${BASH_VERSINFO[0]} $(id -u):$(id -g)\"\n",
		"which.pl":   "#!/usr/bin/perl -w\nprint \"Content-Type: text/plain\\n\\nperl $^V $< $(\\n\";\n",
		"which.py":   "#!/usr/bin/python3\nimport sys, os\nprint('Content-Type: text/plain\\n')\nprint('python', sys.version_info[0], os.getuid())\n",
		"which.rb":   "#!/usr/bin/ruby\nputs \"Content-Type: text/plain\\n\\n\"\n",
	})
	srv := startCgibox(t, "-d", root)
	tests := []struct {
		script string
		status int
		prefix string
	}{
		{"which.sh", 200, "/bin/busybox\n"},
		{"which.bash", 200, "bash 5 65534:65534\n"},
		{"which.pl", 200, "perl v5."},
		{"which.py", 200, "python 3 65534\n"},
		{"which.rb", 500, ""},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			resp, body := get(t, srv.base+"/cgi-bin/"+tt.script, nil)
			if resp.StatusCode != tt.status || !strings.HasPrefix(string(body), tt.prefix) {
				t.Errorf("GET %s = %d %q, want %d starting with %q", tt.script, resp.StatusCode, body, tt.status, tt.prefix)
			}
		})
	}
	if !waitFor(5*time.Second, func() bool {
		s := srv.stderr.String()
		return strings.Contains(s, `\"ruby\"`) && strings.Contains(s, "#! line")
	}) {
		t.Errorf("no log line names the interpreter ruby and the fix:\n%s", srv.stderr.String())
	}
}

// TestImagesContents inspects the archives the builds left in the cache:
// labels, nobody, no setuid/setgid file, no package caches, the
// interpreters.
func TestImagesContents(t *testing.T) {
	requireImages(t)
	tests := []struct {
		name     string
		packages []string
		files    []string
	}{
		{"perl", []string{"perl", "libcgi-pm-perl"}, []string{"usr/bin/perl", "usr/share/perl5/CGI.pm", "usr/bin/bash"}},
		{"python", []string{"python3", "python-is-python3"}, []string{"usr/bin/python3", "usr/bin/python", "usr/lib/python3.11/cgi.py", "usr/bin/bash"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			matches, _ := filepath.Glob(filepath.Join(sharedDataDir, "images", "cache", tt.name+"-*.tar"))
			if len(matches) != 1 {
				t.Fatalf("cached archives of %s: %q, want one", tt.name, matches)
			}
			img, err := tarball.ImageFromPath(matches[0], nil)
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.Config.User != "65534:65534" {
				t.Errorf("config user %q, want 65534:65534", cf.Config.User)
			}
			rc, err := images.Open(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if got := cf.Config.Labels[images.LabelRecipeSHA256]; got != rc.SHA256 {
				t.Errorf("recipe label %q, want %q", got, rc.SHA256)
			}
			for _, p := range tt.packages {
				if v := cf.Config.Labels[images.LabelPackage+"."+p]; v == "" {
					t.Errorf("no version label for %s; labels %v", p, cf.Config.Labels)
				}
			}
			files := layerFiles(t, img)
			var setid []string
			for n, h := range files {
				if h.Mode&0o6000 != 0 {
					setid = append(setid, n)
				}
				if strings.HasPrefix(n, "var/lib/apt/lists/") && h.Typeflag == tar.TypeReg ||
					strings.HasPrefix(n, "var/cache/apt/") && n != "var/cache/apt/" || strings.HasPrefix(n, "dev/") && n != "dev/" {
					t.Errorf("%s should not be in the image", n)
				}
			}
			if len(setid) > 0 {
				t.Errorf("setuid/setgid entries: %q", setid)
			}
			for _, f := range append(tt.files, "etc/passwd", "etc/group", "www/", "tmp/") {
				if _, ok := files[f]; !ok {
					t.Errorf("%s missing from the image", f)
				}
			}
			if !images.HasNobody([]byte(files["etc/passwd"].PAXRecords["body"]), []byte(files["etc/group"].PAXRecords["body"])) {
				t.Errorf("nobody (65534:65534) missing:\n%s\n%s", files["etc/passwd"].PAXRecords["body"], files["etc/group"].PAXRecords["body"])
			}
		})
	}
}

// layerFiles lists the entries of img's layers; the bodies of /etc/passwd
// and /etc/group are kept in PAXRecords["body"].
func layerFiles(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*tar.Header{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name == "etc/passwd" || h.Name == "etc/group" {
				b, _ := io.ReadAll(io.LimitReader(tr, 1<<20))
				h.PAXRecords = map[string]string{"body": string(b)}
			}
			files[h.Name] = h
		}
		rc.Close()
	}
	return files
}

// TestImageBuildCachedAndListed rebuilds an unchanged recipe (from the
// cache, in seconds) and lists the images with their packages.
func TestImageBuildCachedAndListed(t *testing.T) {
	requireImages(t)
	start := time.Now()
	out, err := cgiboxCmd(t, 5*time.Minute, "image", "build", "perl")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("cgibox image build perl: %v\n%s", err, out)
	}
	t.Logf("cached rebuild of perl: %s", took.Round(10*time.Millisecond))
	if !strings.Contains(out, "from the cache") || took > 60*time.Second {
		t.Errorf("rebuild of an unchanged recipe took %s and said:\n%s\nwant it from the cache", took, out)
	}
	out, err = cgiboxCmd(t, time.Minute, "image", "ls")
	if err != nil {
		t.Fatalf("cgibox image ls: %v\n%s", err, out)
	}
	for _, want := range []string{"PACKAGES", "cgibox.local/perl:latest", "perl=5.", "libcgi-pm-perl=", "cgibox.local/python:latest", "python3=3."} {
		if !strings.Contains(out, want) {
			t.Errorf("image ls lacks %q:\n%s", want, out)
		}
	}
}

// TestImageImportRoundTrip imports an image made elsewhere, as a docker
// save tar and as an OCI layout tar, runs a script in it, and removes it.
func TestImageImportRoundTrip(t *testing.T) {
	requireContainerd(t)
	var bb bytes.Buffer
	if err := images.Build(t.Context(), "busybox", &bb, nil); err != nil {
		t.Fatal(err)
	}
	base, err := tarball.Image(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(bb.Bytes())), nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	token := rand.Text()
	var extra bytes.Buffer
	tw := tar.NewWriter(&extra)
	tw.WriteHeader(&tar.Header{Name: "etc/roundtrip", Mode: 0o644, Size: int64(len(token)), Typeflag: tar.TypeReg})
	tw.Write([]byte(token))
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(extra.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		t.Fatal(err)
	}
	wantConfig, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	dockerRef := "cgibox.local/roundtrip-docker:latest"
	dockerTar := filepath.Join(dir, "docker.tar")
	tag, _ := gcrname.NewTag(dockerRef)
	if err := tarball.WriteToFile(dockerTar, tag, img); err != nil {
		t.Fatal(err)
	}
	ociRef := "cgibox.local/roundtrip-oci:latest"
	ociTar := filepath.Join(dir, "oci.tar")
	lp, err := layout.Write(filepath.Join(dir, "oci"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ociRef, "io.containerd.image.name": ociRef,
	})); err != nil {
		t.Fatal(err)
	}
	tarDir(t, filepath.Join(dir, "oci"), ociTar)

	c, cctx := containerdClient(t)
	root := cgiSite(t, map[string]string{
		// busybox is no interpreter cgibox maps: it runs in the custom default image.
		"token.sh": "#!/bin/busybox sh\necho Content-Type: text/plain\necho\ncat /etc/roundtrip\n",
	})
	for _, tc := range []struct{ kind, archive, ref string }{{"docker", dockerTar, dockerRef}, {"oci", ociTar, ociRef}} {
		t.Run(tc.kind, func(t *testing.T) {
			out, err := cgiboxCmd(t, 2*time.Minute, "image", "import", tc.archive)
			if err != nil || !strings.Contains(out, "imported "+tc.ref) {
				t.Fatalf("image import %s: %v\n%s", tc.kind, err, out)
			}
			t.Cleanup(func() { cgiboxCmd(t, time.Minute, "image", "rm", tc.ref) })
			ci, err := c.GetImage(cctx, tc.ref)
			if err != nil {
				t.Fatalf("containerd has no %s: %v", tc.ref, err)
			}
			cfg, err := ci.Config(cctx)
			if err != nil || cfg.Digest.String() != wantConfig.String() {
				t.Errorf("imported config %v (%v), want %s", cfg.Digest, err, wantConfig)
			}
			if out, _ := cgiboxCmd(t, time.Minute, "image", "ls"); !strings.Contains(out, tc.ref) {
				t.Errorf("image ls lacks %s:\n%s", tc.ref, out)
			}
			srv := startCgibox(t, "-d", root, "--image", tc.ref)
			resp, body := get(t, srv.base+"/cgi-bin/token.sh", nil)
			if resp.StatusCode != 200 || string(body) != token {
				t.Errorf("script in %s: %d %q, want 200 %q", tc.ref, resp.StatusCode, body, token)
			}
			srv.stop(t)
			if out, err := cgiboxCmd(t, time.Minute, "image", "rm", tc.ref); err != nil {
				t.Fatalf("image rm: %v\n%s", err, out)
			}
			if out, _ := cgiboxCmd(t, time.Minute, "image", "ls"); strings.Contains(out, tc.ref) {
				t.Errorf("image ls still shows %s after rm:\n%s", tc.ref, out)
			}
		})
	}
}

// tarDir writes the tree dir as a tar file.
func tarDir(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			tw.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestExampleShellForm runs examples/cgi-bin/form.sh, the demo's form, in
// the busybox image: every field of a urlencoded POST comes back decoded and
// escaped, the last one included.
func TestExampleShellForm(t *testing.T) {
	requireContainerd(t)
	srv := startCgibox(t, "-d", exampleSite(t, nil))
	body := "name=Ada+L&message=1%3C2+%26+%22three%22"
	resp, got := do(t, "POST", srv.base+"/cgi-bin/form.sh",
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, []byte(body))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, want := range []string{
		"<p>" + strconv.Itoa(len(body)) + " bytes of application/x-www-form-urlencoded</p>",
		"<dt>name</dt><dd>Ada L</dd>",
		"<dt>message</dt><dd>1&lt;2 &amp; &quot;three&quot;</dd>",
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
		"<link rel=\"stylesheet\" href=\"/style.css\">",
		"<h1>Form echo</h1>",
		"</dl>\n<p><a href=\"/\">Back to the index</a></p>\n</main>\n</body>\n</html>\n",
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("response lacks %q:\n%s", want, got)
		}
	}
	resp, got = get(t, srv.base+"/cgi-bin/hello.sh", nil)
	if resp.StatusCode != 200 || string(got) != "Hello from a fresh container.\n" {
		t.Errorf("hello.sh: %d %q", resp.StatusCode, got)
	}
}
