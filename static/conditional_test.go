package static

import (
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
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
