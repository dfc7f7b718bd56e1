package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRFC3875ModeEndToEnd runs scripts written for Apache, unchanged, in
// real containers with --cgi-mode rfc3875.
func TestRFC3875ModeEndToEnd(t *testing.T) {
	requireContainerd(t)
	c, cctx := containerdClient(t)
	root := cgiSite(t, map[string]string{
		"local.sh":    "#!/bin/sh\necho 'Location: /index.html'\necho\n",
		"away.sh":     "#!/bin/sh\necho 'Location: https://example.org/moved'\necho\n",
		"notfound.sh": "#!/bin/sh\necho 'Status: 404 Not Found'\necho 'Content-Type: text/plain'\necho\necho 'no such item'\nexit 3\n",
		"upload.sh":   "#!/bin/sh\necho 'Content-Type: application/octet-stream'\necho\nprintf 'len=%s\\n' \"$CONTENT_LENGTH\"\nexec cat\n",
	})
	srv := startCgibox(t, "-d", root, "--cgi-mode", "rfc3875")
	client := &http.Client{
		Timeout:       60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	t.Run("local redirect", func(t *testing.T) {
		resp, body := doWith(t, client, "GET", srv.base+"/cgi-bin/local.sh", nil)
		if resp.StatusCode != 200 || string(body) != "static\n" {
			t.Errorf("status %d, body %q; want index.html served in place", resp.StatusCode, body)
		}
	})
	t.Run("client redirect", func(t *testing.T) {
		resp, _ := doWith(t, client, "GET", srv.base+"/cgi-bin/away.sh", nil)
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://example.org/moved" {
			t.Errorf("status %d, Location %q; want 302 to the script's URL", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("404 from a script, with trailers", func(t *testing.T) {
		resp, body := doWith(t, client, "GET", srv.base+"/cgi-bin/notfound.sh", nil)
		if resp.StatusCode != 404 || string(body) != "no such item\n" {
			t.Errorf("status %d, body %q", resp.StatusCode, body)
		}
		if resp.Trailer.Get("CGI-Exit-Status") != "3" || resp.Trailer.Get("CGI-Termination") != "exited" {
			t.Errorf("trailers %v; want CGI-Exit-Status 3 and CGI-Termination exited", resp.Trailer)
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		resp, body := doWith(t, client, "HEAD", srv.base+"/cgi-bin/notfound.sh", nil)
		if resp.StatusCode != 404 || len(body) != 0 || resp.Header.Get("Content-Type") != "text/plain" {
			t.Errorf("status %d, Content-Type %q, %d body bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	})
	t.Run("chunked upload", func(t *testing.T) {
		payload := make([]byte, 3<<20+17)
		rand.Read(payload)
		// Chunks written by hand, so the test knows they are chunks.
		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		go func() {
			bw := bufio.NewWriter(conn)
			fmt.Fprintf(bw, "POST /cgi-bin/upload.sh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
			for p := payload; len(p) > 0; {
				n := min(len(p), 100_000)
				fmt.Fprintf(bw, "%x\r\n%s\r\n", n, p[:n])
				p = p[n:]
			}
			fmt.Fprintf(bw, "0\r\n\r\n")
			bw.Flush()
		}()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := append([]byte("len="+strconv.Itoa(len(payload))+"\n"), payload...)
		if resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Errorf("status %d, %d bytes back (prefix %.20q), want %d", resp.StatusCode, len(body), body, len(want))
		}
	})
	assertClean(t, c, cctx, 10*time.Second)
}

func doWith(t *testing.T, client *http.Client, method, url string, body []byte) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, b
}
