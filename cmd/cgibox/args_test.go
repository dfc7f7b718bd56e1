package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cgibox/cgibox/gateway"
	"github.com/cgibox/cgibox/sandbox"
)

func TestParseServe(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args    []string
		check   func(*serveOptions) bool
		wantErr string
	}{
		{args: []string{}, check: func(o *serveOptions) bool {
			return o.port == 8000 && o.bind == "" && o.protocol == "HTTP/1.1" && !o.noCGI
		}},
		{args: []string{"8080", "-b", "127.0.0.1", "-d", dir}, check: func(o *serveOptions) bool {
			return o.port == 8080 && o.bind == "127.0.0.1" && o.directory == dir
		}},
		{args: []string{"-b", "::1", "9000", "--directory", dir, "--cgi"}, check: func(o *serveOptions) bool { return o.port == 9000 && o.bind == "::1" }},
		{args: []string{"--bind=0.0.0.0", "-p", "HTTP/1.0", "--no-cgi"}, check: func(o *serveOptions) bool {
			return o.bind == "0.0.0.0" && o.protocol == "HTTP/1.0" && o.noCGI
		}},
		{args: []string{"--header", "X-A: 1", "--header", "X-B:two words"}, check: func(o *serveOptions) bool {
			return o.headers.Get("X-A") == "1" && o.headers.Get("X-B") == "two words"
		}},
		{args: []string{"--memory", "64M", "--timeout", "5s", "--max-body", "1K"}, check: func(o *serveOptions) bool {
			return o.memory == 64<<20 && o.timeout == 5*time.Second && o.maxBody == 1024
		}},
		{args: []string{"--no-cgi"}, check: func(o *serveOptions) bool {
			return o.headerTimeout == gateway.DefaultReadHeaderTimeout && o.bodyTimeout == gateway.DefaultBodyTimeout &&
				o.writeTimeout == gateway.DefaultWriteTimeout && o.idleTimeout == gateway.DefaultIdleTimeout
		}},
		{args: []string{"--header-timeout", "1s", "--body-timeout", "2s", "--write-timeout=3s", "--idle-timeout", "4m"}, check: func(o *serveOptions) bool {
			return o.headerTimeout == time.Second && o.bodyTimeout == 2*time.Second && o.writeTimeout == 3*time.Second && o.idleTimeout == 4*time.Minute
		}},
		{args: []string{"--", "8001"}, check: func(o *serveOptions) bool { return o.port == 8001 }},
		{args: []string{"--cgi-mode", "rfc3875", "--nph"}, check: func(o *serveOptions) bool { return o.cgiMode == "rfc3875" && o.nph }},
		{args: []string{}, check: func(o *serveOptions) bool { return o.pool == sandbox.DefaultPool() }},
		{args: []string{"--pool", "2", "--pool-min", "0", "--pool-idle", "5s"}, check: func(o *serveOptions) bool {
			return o.pool.Max == 2 && o.pool.Min == 0 && o.pool.Idle == 5*time.Second
		}},
		// No pool: nothing to keep, whatever --pool-min says by default.
		{args: []string{"--pool", "0"}, check: func(o *serveOptions) bool { return o.pool.Max == 0 && o.pool.Min == 0 }},
		{args: []string{"--pool-total", "3"}, check: func(o *serveOptions) bool { return o.pool.Total == 3 }},
		{args: []string{"--admin", "127.0.0.1:9100", "--audit", "-"}, check: func(o *serveOptions) bool { return o.admin == "127.0.0.1:9100" && o.audit == "-" }},
		{args: []string{"--pool", "2", "--pool-min", "3"}, wantErr: "--pool-min"},
		{args: []string{"--pool", "-1"}, wantErr: "--pool"},
		{args: []string{"--pool-idle", "0s"}, wantErr: "above zero"},
		{args: []string{"--cgi-mode", "apache"}, wantErr: "--cgi-mode"},
		{args: []string{"port"}, wantErr: `port "port"`},
		{args: []string{"70000"}, wantErr: `port "70000"`},
		{args: []string{"1", "2"}, wantErr: "only one port"},
		{args: []string{"-p", "HTTP/2"}, wantErr: "--protocol"},
		{args: []string{"--header", "NoColon"}, wantErr: "--header"},
		{args: []string{"--header", "Bad Name: x"}, wantErr: "--header"},
		{args: []string{"--tls-key", "k.pem"}, wantErr: "need --tls-cert"},
		{args: []string{"--log-format", "xml"}, wantErr: "--log-format"},
		{args: []string{"--memory", "lots"}, wantErr: "size"},
		{args: []string{"-d", filepath.Join(dir, "missing")}, wantErr: "not a directory"},
		{args: []string{"--timeout", "-1s"}, wantErr: "above zero"},
		{args: []string{"--header-timeout", "0s"}, wantErr: "above zero"},
		{args: []string{"--body-timeout", "-5s"}, wantErr: "above zero"},
		{args: []string{"--write-timeout", "soon"}, wantErr: "write-timeout"},
		{args: []string{"--idle-timeout", "0"}, wantErr: "above zero"},
		{args: []string{"--bogus"}, wantErr: "unknown flag: --bogus"},
		{args: []string{"-z"}, wantErr: "unknown shorthand flag: 'z'"},
		{args: []string{"-b"}, wantErr: "needs an argument"},

		// Python's own command lines, as python -m http.server parses them.
		{args: []string{"-b=127.0.0.1", "8001"}, check: func(o *serveOptions) bool { return o.bind == "127.0.0.1" && o.port == 8001 }},
		{args: []string{"-b127.0.0.1"}, check: func(o *serveOptions) bool { return o.bind == "127.0.0.1" }},
		{args: []string{"--cgi", "-d", dir, "--bind", "::", "8002", "--protocol", "HTTP/1.0"}, check: func(o *serveOptions) bool {
			return o.port == 8002 && o.bind == "::" && o.directory == dir && o.protocol == "HTTP/1.0"
		}},
		{args: []string{"--directory=" + dir, "-p=HTTP/1.1", "0"}, check: func(o *serveOptions) bool {
			return o.port == 0 && o.directory == dir && o.protocol == "HTTP/1.1"
		}},
		{args: []string{"-d", dir, "8000", "--cgi"}, check: func(o *serveOptions) bool { return o.directory == dir && o.port == 8000 }},
		// The single-dash long flags Go's flag package took.
		{args: []string{"-cgi", "-directory", dir, "-bind=::1", "-no-cgi", "9001"}, check: func(o *serveOptions) bool {
			return o.directory == dir && o.bind == "::1" && o.noCGI && o.port == 9001
		}},
		{args: []string{"-memory=1M", "-timeout", "2s"}, check: func(o *serveOptions) bool { return o.memory == 1<<20 && o.timeout == 2*time.Second }},
		// A value that looks like a single-dash long flag stays a value.
		{args: []string{"--header", "X-A: -cgi", "-b", "-nph"}, check: func(o *serveOptions) bool {
			return o.headers.Get("X-A") == "-cgi" && o.bind == "-nph" && !o.nph
		}},
		// After "--" nothing is a flag.
		{args: []string{"--", "-cgi"}, wantErr: `port "-cgi"`},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o, err := parseServe(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("parseServe(%q) error %v, want one containing %q", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseServe(%q): %v", tc.args, err)
			}
			if !tc.check(o) {
				t.Errorf("parseServe(%q) = %+v", tc.args, *o)
			}
		})
	}
}

// TestParseServeSet: the flags given are recorded by their long names,
// short or single-dash forms included (they override a --config file), and
// the port when one is given; nothing else.
func TestParseServeSet(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want []string
	}{
		{nil, nil},
		{[]string{"-b", "::1", "-d", dir, "-p", "HTTP/1.0"}, []string{"bind", "directory", "protocol"}},
		{[]string{"8000", "--memory=1M", "-cgi"}, []string{"cgi", "memory", "port"}},
		{[]string{"-timeout", "1s", "--", "1"}, []string{"port", "timeout"}},
	}
	for _, tc := range cases {
		o, err := parseServe(tc.args)
		if err != nil {
			t.Fatalf("parseServe(%q): %v", tc.args, err)
		}
		var got []string
		for k := range o.set {
			got = append(got, k)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("parseServe(%q): set %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestParseServeUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"--bogus"}, {"1", "2"}, {"--pool", "-1"}, {"--memory", "x"}, {"-d", "/nonexistent"}} {
		if _, err := parseServe(args); !errorsAs(err, new(usageError)) {
			t.Errorf("parseServe(%q): %v, want a usage error", args, err)
		}
	}
}

func TestLongFlags(t *testing.T) {
	long := map[string]bool{"cgi": false, "directory": true, "header": true, "help": false}
	short := map[string]bool{"d": true, "b": true, "h": false}
	cases := []struct{ in, want []string }{
		{[]string{"-cgi", "-directory", "-x", "-help"}, []string{"--cgi", "--directory", "-x", "--help"}},
		{[]string{"-directory=d", "--header", "-cgi", "-d", "-cgi"}, []string{"--directory=d", "--header", "-cgi", "-d", "-cgi"}},
		{[]string{"-b", "-cgi", "-h", "-cgi"}, []string{"-b", "-cgi", "-h", "--cgi"}},
		{[]string{"-dcgi", "-c", "--", "-cgi"}, []string{"-dcgi", "-c", "--", "-cgi"}},
	}
	for _, tc := range cases {
		if got := longFlags(long, short, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("longFlags(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "4096": 4096, "16K": 16 << 10, "128M": 128 << 20, "1G": 1 << 30, "2MiB": 2 << 20} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1T", "M", "9999999999G"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): no error", in)
		}
	}
}

func TestVersionCommand(t *testing.T) {
	var out strings.Builder
	if err := run(t.Context(), nil, []string{"version"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "cgibox ") || !strings.Contains(out.String(), "go1.") {
		t.Errorf("version printed %q", out.String())
	}
}

// TestServeTLSAndHeaders runs the binary with a certificate whose key is
// encrypted (Python 3.14's --tls-password-file) and an extra header.
func TestServeTLSAndHeaders(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, passFile, pool := writeCert(t, dir, "s3cret")
	site := filepath.Join(dir, "site")
	os.Mkdir(site, 0o755)
	os.WriteFile(filepath.Join(site, "hello.txt"), []byte("over tls\n"), 0o644)

	srv := startCgibox(t, "-d", site, "--no-cgi", "--tls-cert", certFile, "--tls-key", keyFile,
		"--tls-password-file", passFile, "--header", "X-Frame-Options: DENY")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	url := strings.Replace(srv.base, "http://", "https://", 1) + "/hello.txt"
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "over tls\n" || resp.TLS == nil {
		t.Errorf("body %q, TLS %v", body, resp.TLS != nil)
	}
	if got := resp.Header.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("X-Frame-Options %q, want DENY", got)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key,
// encrypted with password in the classic PEM scheme.
func writeCert(t *testing.T, dir, password string) (certFile, keyFile, passFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cgibox test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 the classic scheme is what the server must read
	block, err := x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", keyDER, []byte(password), x509.PEMCipherAES256) //nolint:staticcheck
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, passFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "pass")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600)
	os.WriteFile(passFile, []byte(password+"\n"), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, passFile, pool
}

// TestServeWithoutSandbox: where no container can run (no containerd, not
// root), static files are still served as a Python user expects, and every
// CGI request answers 503 with a request id; the log says why.
func TestServeWithoutSandbox(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	os.MkdirAll(filepath.Join(site, "cgi-bin"), 0o755)
	os.WriteFile(filepath.Join(site, "hello.txt"), []byte("static\n"), 0o644)
	os.WriteFile(filepath.Join(site, "cgi-bin", "s.sh"), []byte("#!/bin/sh\necho secret\n"), 0o755)
	srv := startCgibox(t, "-d", site, "--containerd", filepath.Join(dir, "no.sock"), "--data-dir", filepath.Join(dir, "data"))
	if resp, body := get(t, srv.base+"/hello.txt", nil); resp.StatusCode != 200 || string(body) != "static\n" {
		t.Errorf("static: %d %q", resp.StatusCode, body)
	}
	resp, body := get(t, srv.base+"/cgi-bin/s.sh", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(string(body), "secret") ||
		!strings.Contains(string(body), resp.Header.Get("X-Request-Id")) {
		t.Errorf("CGI: status %d, body %q; want 503 with the request id", resp.StatusCode, body)
	}
	if !strings.Contains(srv.stderr.String(), "CGI is unavailable") {
		t.Errorf("the log does not say CGI is unavailable:\n%s", srv.stderr.String())
	}
}
