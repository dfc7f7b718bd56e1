package static

import (
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestConditional(t *testing.T) {
	root, _ := fixture(t)
	h := newHandler(t, root)
	first := do(t, h, "GET", "/hello.txt")
	lastMod := first.Header().Get("Last-Modified")
	etag := first.Header().Get("Etag")
	if want := fixedMtime.Format(http.TimeFormat); lastMod != want {
		t.Fatalf("Last-Modified %q, want %q", lastMod, want)
	}
	if !strings.HasPrefix(etag, `"`) {
		t.Fatalf("ETag %q is not a strong ETag", etag)
	}
	date := func(d time.Duration) string { return fixedMtime.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name   string
		header []string
		status int
	}{
		{"none", nil, 200},
		{"IMS equal (sub-second mtime dropped, as Python)", []string{"If-Modified-Since: " + lastMod}, 304},
		{"IMS later", []string{"If-Modified-Since: " + date(time.Hour)}, 304},
		{"IMS one second earlier", []string{"If-Modified-Since: " + date(-time.Second)}, 200},
		{"IMS malformed is ignored", []string{"If-Modified-Since: yesterday"}, 200},
		{"IMS with +0000, as Python accepts", []string{"If-Modified-Since: " + strings.Replace(date(time.Hour), "GMT", "+0000", 1)}, 304},
		{"IMS with UTC", []string{"If-Modified-Since: " + strings.Replace(date(0), "GMT", "UTC", 1)}, 304},
		{"IMS in another zone is ignored, as Python does", []string{"If-Modified-Since: " + strings.Replace(date(time.Hour), "GMT", "+0100", 1)}, 200},
		{"IMS ignored when INM present", []string{"If-Modified-Since: " + date(time.Hour), `If-None-Match: "other"`}, 200},
		{"INM match", []string{"If-None-Match: " + etag}, 304},
		{"INM in a list", []string{`If-None-Match: "a", ` + etag}, 304},
		{"INM star", []string{"If-None-Match: *"}, 304},
		{"INM weak match", []string{"If-None-Match: W/" + etag}, 304},
		{"INM other", []string{`If-None-Match: "other"`}, 200},
		{"If-Match fails", []string{`If-Match: "other"`}, 412},
		{"If-Unmodified-Since fails", []string{"If-Unmodified-Since: " + date(-time.Hour)}, 412},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(t, h, "GET", "/hello.txt", tt.header...)
			got := body(w)
			if w.Code != tt.status {
				t.Fatalf("GET /hello.txt %q: status %d, want %d", tt.header, w.Code, tt.status)
			}
			switch tt.status {
			case 200:
				if got != helloBody {
					t.Errorf("GET /hello.txt %q: body %q", tt.header, got)
				}
			case 304:
				if got != "" || w.Header().Get("Content-Length") != "" {
					t.Errorf("304 with body %q, Content-Length %q", got, w.Header().Get("Content-Length"))
				}
			case 412:
				if !strings.Contains(got, "<p>Error code: 412</p>") {
					t.Errorf("412 without an HTML error page: %q", got)
				}
			}
		})
	}
}

func TestRange(t *testing.T) {
	root, _ := fixture(t)
	h := newHandler(t, root)
	first := do(t, h, "GET", "/hello.txt")
	etag, lastMod := first.Header().Get("Etag"), first.Header().Get("Last-Modified")
	size := len(helloBody)
	tests := []struct {
		name         string
		header       []string
		status       int
		body         string // for 200 and single-range 206
		contentRange string
	}{
		{"first bytes", []string{"Range: bytes=0-4"}, 206, "hello", fmt.Sprintf("bytes 0-4/%d", size)},
		{"open end", []string{"Range: bytes=7-"}, 206, "world\n", fmt.Sprintf("bytes 7-12/%d", size)},
		{"suffix", []string{"Range: bytes=-6"}, 206, "world\n", fmt.Sprintf("bytes 7-12/%d", size)},
		{"end past size is clipped", []string{"Range: bytes=7-999"}, 206, "world\n", fmt.Sprintf("bytes 7-12/%d", size)},
		{"unsatisfiable", []string{"Range: bytes=100-200"}, 416, "", fmt.Sprintf("bytes */%d", size)},
		{"other unit ignored", []string{"Range: lines=1-2"}, 200, helloBody, ""},
		{"malformed ignored", []string{"Range: bytes=abc"}, 200, helloBody, ""},
		{"reversed ignored", []string{"Range: bytes=5-2"}, 200, helloBody, ""},
		{"empty set ignored", []string{"Range: bytes=,"}, 200, helloBody, ""},
		{"If-Range ETag matches", []string{"Range: bytes=0-4", "If-Range: " + etag}, 206, "hello", fmt.Sprintf("bytes 0-4/%d", size)},
		{"If-Range ETag stale", []string{"Range: bytes=0-4", `If-Range: "stale"`}, 200, helloBody, ""},
		{"If-Range date matches", []string{"Range: bytes=0-4", "If-Range: " + lastMod}, 206, "hello", fmt.Sprintf("bytes 0-4/%d", size)},
		{"If-Range date stale", []string{"Range: bytes=0-4", "If-Range: Mon, 01 Jan 2001 00:00:00 GMT"}, 200, helloBody, ""},
		{"IMS beats Range", []string{"Range: bytes=0-4", "If-Modified-Since: " + lastMod}, 304, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(t, h, "GET", "/hello.txt", tt.header...)
			got := body(w)
			if w.Code != tt.status {
				t.Fatalf("GET /hello.txt %q: status %d, want %d; body %q", tt.header, w.Code, tt.status, got)
			}
			if cr := w.Header().Get("Content-Range"); cr != tt.contentRange {
				t.Errorf("GET /hello.txt %q: Content-Range %q, want %q", tt.header, cr, tt.contentRange)
			}
			if tt.status == 416 {
				if !strings.Contains(got, "<p>Error code: 416</p>") || strings.Contains(got, "invalid range") {
					t.Errorf("416 body %q: want the HTML error page, no Go error text", got)
				}
				return
			}
			if got != tt.body {
				t.Errorf("GET /hello.txt %q: body %q, want %q", tt.header, got, tt.body)
			}
			if cl := w.Header().Get("Content-Length"); tt.status != 304 && cl != fmt.Sprint(len(got)) {
				t.Errorf("Content-Length %q for a %d-byte body", cl, len(got))
			}
		})
	}

	t.Run("multiple ranges", func(t *testing.T) {
		w := do(t, h, "GET", "/hello.txt", "Range: bytes=0-1,7-8")
		if w.Code != 206 {
			t.Fatalf("status %d, want 206", w.Code)
		}
		mt, params, err := mime.ParseMediaType(w.Header().Get("Content-Type"))
		if err != nil || mt != "multipart/byteranges" {
			t.Fatalf("Content-Type %q (%v), want multipart/byteranges", w.Header().Get("Content-Type"), err)
		}
		mr := multipart.NewReader(strings.NewReader(body(w)), params["boundary"])
		var parts []string
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			must(t, err)
			b, _ := io.ReadAll(p)
			parts = append(parts, p.Header.Get("Content-Type")+" "+p.Header.Get("Content-Range")+" "+string(b))
		}
		want := []string{"text/plain bytes 0-1/13 he", "text/plain bytes 7-8/13 wo"}
		if strings.Join(parts, "|") != strings.Join(want, "|") {
			t.Errorf("parts %q, want %q", parts, want)
		}
	})
}

// TestLargeFileStreams serves a 64 MiB file over a real connection and
// checks it was not read into memory, and that a range deep inside it works.
func TestLargeFileStreams(t *testing.T) {
	root, _ := fixture(t)
	srv := httptest.NewServer(newHandler(t, root))
	defer srv.Close()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp, err := http.Get(srv.URL + "/large.bin")
	must(t, err)
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	must(t, err)
	runtime.ReadMemStats(&after)
	if resp.StatusCode != 200 || n != largeSize || resp.ContentLength != largeSize {
		t.Fatalf("GET /large.bin: %d, %d bytes, Content-Length %d; want 200 and %d", resp.StatusCode, n, resp.ContentLength, largeSize)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > largeSize/8 {
		t.Errorf("serving %d bytes allocated %d bytes; the file is not streamed", largeSize, alloc)
	}

	req, _ := http.NewRequest("GET", srv.URL+"/large.bin", nil)
	req.Header.Set("Range", "bytes=60000000-60000009")
	resp, err = http.DefaultClient.Do(req)
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || len(b) != 10 || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 60000000-60000009/%d", largeSize) {
		t.Errorf("range of large file: %d, %d bytes, Content-Range %q", resp.StatusCode, len(b), resp.Header.Get("Content-Range"))
	}
}

// TestSmallAndLargeFilesAlike serves files on both sides of smallFile (read
// into a buffer below it, sent by sendfile above it) over a real
// connection and checks that the answers do not depend on the way: the
// whole body, one range, several ranges, HEAD, and a 304.
func TestSmallAndLargeFilesAlike(t *testing.T) {
	root := t.TempDir()
	sizes := []int{0, 1, 511, 512, 513, 1024, smallFile - 1, smallFile, smallFile + 1, 1 << 20}
	for _, n := range sizes {
		content := make([]byte, n)
		for i := range content {
			content[i] = byte('a' + i%26)
		}
		must(t, os.WriteFile(filepath.Join(root, fmt.Sprintf("f%d.txt", n)), content, 0o644))
	}
	srv := httptest.NewServer(newHandler(t, root))
	defer srv.Close()
	get := func(t *testing.T, method, target string, header ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+target, nil)
		must(t, err)
		for _, kv := range header {
			k, v, _ := strings.Cut(kv, ": ")
			req.Header.Add(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		must(t, err)
		return resp, string(b)
	}
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			target := fmt.Sprintf("/f%d.txt", n)
			want, err := os.ReadFile(filepath.Join(root, target))
			must(t, err)

			resp, got := get(t, "GET", target)
			if resp.StatusCode != 200 || got != string(want) || resp.ContentLength != int64(n) {
				t.Errorf("GET %s: %d, %d bytes, Content-Length %d; want 200 and the %d bytes", target, resp.StatusCode, len(got), resp.ContentLength, n)
			}
			etag := resp.Header.Get("Etag")
			if resp.Header.Get("Last-Modified") == "" || etag == "" || resp.Header.Get("Content-Type") != "text/plain" {
				t.Errorf("GET %s: headers %q", target, resp.Header)
			}

			resp, got = get(t, "HEAD", target)
			if resp.StatusCode != 200 || got != "" || resp.Header.Get("Content-Length") != fmt.Sprint(n) {
				t.Errorf("HEAD %s: %d, body %q, Content-Length %q", target, resp.StatusCode, got, resp.Header.Get("Content-Length"))
			}

			resp, _ = get(t, "GET", target, "If-None-Match: "+etag)
			if resp.StatusCode != 304 {
				t.Errorf("GET %s If-None-Match its ETag: %d, want 304", target, resp.StatusCode)
			}

			if n < 3 {
				// An empty file has no ranges: ServeContent sends it whole.
				wantStatus := 416
				if n == 0 {
					wantStatus = 200
				}
				resp, _ = get(t, "GET", target, "Range: bytes=5-9")
				if resp.StatusCode != wantStatus {
					t.Errorf("GET %s Range past the end: %d, Content-Range %q; want %d", target, resp.StatusCode, resp.Header.Get("Content-Range"), wantStatus)
				}
				return
			}
			resp, got = get(t, "GET", target, "Range: bytes=1-2")
			if resp.StatusCode != 206 || got != string(want[1:3]) || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 1-2/%d", n) {
				t.Errorf("GET %s Range 1-2: %d, %q, Content-Range %q", target, resp.StatusCode, got, resp.Header.Get("Content-Range"))
			}
			resp, got = get(t, "GET", target, fmt.Sprintf("Range: bytes=0-0,-%d", 1))
			if resp.StatusCode != 206 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") ||
				!strings.Contains(got, "\r\n\r\n"+string(want[:1])+"\r\n") || !strings.Contains(got, "\r\n\r\n"+string(want[n-1:])+"\r\n") {
				t.Errorf("GET %s two ranges: %d, Content-Type %q, body %q", target, resp.StatusCode, resp.Header.Get("Content-Type"), got)
			}
		})
	}
}
