package gateway

import (
	"crypto/tls"
	"encoding/base64"
	"maps"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestCGIEnv(t *testing.T) {
	basic := func(userpass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(userpass))
	}
	// Variables every request below gets unless a case overrides or drops them.
	common := map[string]string{
		"DOCUMENT_ROOT":     "/www",
		"GATEWAY_INTERFACE": "CGI/1.1",
		"HTTP_HOST":         "example.com:8000",
		"PATH":              "/usr/local/bin:/usr/bin:/bin",
		"PATH_INFO":         "",
		"QUERY_STRING":      "",
		"REMOTE_ADDR":       "192.0.2.1",
		"REMOTE_HOST":       "192.0.2.1",
		"REMOTE_PORT":       "1234",
		"REQUEST_METHOD":    "GET",
		"REQUEST_URI":       "/cgi-bin/env.sh",
		"SCRIPT_FILENAME":   "/www/cgi-bin/env.sh",
		"SCRIPT_NAME":       "/cgi-bin/env.sh",
		"SERVER_NAME":       "example.com",
		"SERVER_PORT":       "8000",
		"SERVER_PROTOCOL":   "HTTP/1.1",
		"SERVER_SOFTWARE":   "cgibox/0.1",
	}
	envScript := script{Dir: "/cgi-bin", Name: "/cgi-bin/env.sh", Rel: "env.sh"}

	tests := []struct {
		name       string
		method     string
		target     string
		headers    [][2]string // added in order
		remoteAddr string      // "" keeps httptest's 192.0.2.1:1234
		tls        bool
		script     script // zero: envScript
		length     int64  // ContentLength input; tests use -1 for none
		passAuth   bool
		want       map[string]string // on top of common; "" value = absent from common
		drop       []string          // common variables that must be absent
	}{
		{
			name: "GET", method: "GET", target: "/cgi-bin/env.sh", length: -1,
			headers: [][2]string{{"User-Agent", "curl/8.0"}, {"Accept", "*/*"}},
			want:    map[string]string{"HTTP_USER_AGENT": "curl/8.0", "HTTP_ACCEPT": "*/*"},
		},
		{
			name: "POST", method: "POST", target: "/cgi-bin/env.sh", length: 11,
			headers: [][2]string{{"Content-Type", "application/x-www-form-urlencoded"}, {"Content-Length", "11"}},
			want: map[string]string{
				"REQUEST_METHOD": "POST",
				"CONTENT_LENGTH": "11",
				"CONTENT_TYPE":   "application/x-www-form-urlencoded",
			},
		},
		{
			name: "POST empty body", method: "POST", target: "/cgi-bin/env.sh", length: 0,
			headers: [][2]string{{"Content-Length", "0"}},
			want:    map[string]string{"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "0"},
		},
		{
			name: "PATH_INFO and query", method: "GET", target: "/cgi-bin/env.sh/a%20b/c?x=1&y=%2F+z", length: -1,
			script: script{Dir: "/cgi-bin", Name: "/cgi-bin/env.sh", Rel: "env.sh", PathInfo: "/a b/c"},
			want: map[string]string{
				"PATH_INFO":       "/a b/c",
				"PATH_TRANSLATED": "/www/a b/c",
				"QUERY_STRING":    "x=1&y=%2F+z",
				"REQUEST_URI":     "/cgi-bin/env.sh/a%20b/c?x=1&y=%2F+z",
			},
		},
		{
			name: "script in a subdirectory, PATH_INFO /", method: "GET", target: "/cgi-bin/sub/t.sh/", length: -1,
			script: script{Dir: "/cgi-bin", Name: "/cgi-bin/sub/t.sh", Rel: "sub/t.sh", PathInfo: "/"},
			want: map[string]string{
				"SCRIPT_NAME":     "/cgi-bin/sub/t.sh",
				"SCRIPT_FILENAME": "/www/cgi-bin/sub/t.sh",
				"PATH_INFO":       "/",
				"PATH_TRANSLATED": "/www/",
				"REQUEST_URI":     "/cgi-bin/sub/t.sh/",
			},
		},
		{
			// SECURITY.md case 10: an option-like query is only ever data.
			name: "query without =", method: "GET", target: "/cgi-bin/env.sh?-d+allow_url_include%3d1", length: -1,
			want: map[string]string{
				"QUERY_STRING": "-d+allow_url_include%3d1",
				"REQUEST_URI":  "/cgi-bin/env.sh?-d+allow_url_include%3d1",
			},
		},
		{
			name: "Basic auth, password with colon", method: "GET", target: "/cgi-bin/env.sh", length: -1,
			headers: [][2]string{{"Authorization", basic("alice:pa:ss")}},
			want:    map[string]string{"AUTH_TYPE": "Basic", "REMOTE_USER": "alice"},
		},
		{
			name: "Basic auth passed on when configured", method: "GET", target: "/cgi-bin/env.sh", length: -1,
			headers:  [][2]string{{"Authorization", basic("bob:pw")}},
			passAuth: true,
			want: map[string]string{
				"AUTH_TYPE":          "Basic",
				"REMOTE_USER":        "bob",
				"HTTP_AUTHORIZATION": basic("bob:pw"),
			},
		},
		{
			name: "Basic auth that does not decode", method: "GET", target: "/cgi-bin/env.sh", length: -1,
			headers: [][2]string{{"Authorization", "basic %%%notbase64"}},
			want:    map[string]string{"AUTH_TYPE": "basic"},
		},
		{
			name: "Basic auth without colon", method: "GET", target: "/cgi-bin/env.sh", length: -1,
			headers: [][2]string{{"Authorization", basic("alice")}},
			want:    map[string]string{"AUTH_TYPE": "Basic"},
		},
		{
			name: "Basic auth with control characters in the user", method: "GET", target: "/cgi-bin/env.sh", length: -1,
			headers: [][2]string{{"Authorization", basic("ali\nce:pw")}},
			want:    map[string]string{"AUTH_TYPE": "Basic"},
		},
		{
			name: "Bearer token", method: "GET", target: "/cgi-bin/env.sh", length: -1,
			headers: [][2]string{{"Authorization", "Bearer abc.def"}},
			want:    map[string]string{"AUTH_TYPE": "Bearer"},
		},
		{
			name: "malformed Authorization", method: "GET", target: "/cgi-bin/env.sh", length: -1,
			headers: [][2]string{{"Authorization", "Basic a b"}},
		},
		{
			name: "TLS", method: "GET", target: "/cgi-bin/env.sh", length: -1, tls: true,
			want: map[string]string{"HTTPS": "on", "HTTP_HOST": "example.com:8443", "SERVER_PORT": "8443"},
		},
		{
			// SECURITY.md cases 6 and 8: headers only ever reach HTTP_* names,
			// and never HTTP_PROXY.
			name: "spoofing headers", method: "GET", target: "/cgi-bin/env.sh", length: -1,
			headers: [][2]string{
				{"Proxy", "http://evil:3128"},
				{"Remote-User", "root"},
				{"Remote_User", "root"},
				{"Script_Filename", "/etc/passwd"},
				{"Script-Filename", "/etc/shadow"},
				{"Path", "/tmp/evil"},
				{"Content-Length", "999"},
				{"Content-Type", "text/evil"},
				{"Proxy-Authorization", "Basic eDp5"},
				{"Gateway-Interface", "CGI/9"},
				{"Http-Proxy", "http://evil:3128"},
			},
			want: map[string]string{
				"CONTENT_TYPE":           "text/evil",
				"HTTP_REMOTE_USER":       "root",
				"HTTP_SCRIPT_FILENAME":   "/etc/shadow",
				"HTTP_PATH":              "/tmp/evil",
				"HTTP_GATEWAY_INTERFACE": "CGI/9",
				"HTTP_HTTP_PROXY":        "http://evil:3128",
			},
		},
		{
			// SECURITY.md case 7: the payload stays an inert string.
			name: "shellshock payload", method: "GET", target: "/cgi-bin/env.sh", length: -1,
			headers: [][2]string{{"User-Agent", "() { :; }; /bin/id"}, {"Referer", "() { _; } >_[$($())] { id; }"}},
			want: map[string]string{
				"HTTP_USER_AGENT": "() { :; }; /bin/id",
				"HTTP_REFERER":    "() { _; } >_[$($())] { id; }",
			},
		},
		{
			name: "repeated headers", method: "GET", target: "/cgi-bin/env.sh", length: -1,
			headers: [][2]string{
				{"Cookie", "a=1"}, {"Cookie", "b=2"},
				{"X-Forwarded-For", "10.0.0.1"}, {"X-Forwarded-For", "10.0.0.2"},
				{"Accept", ""},
			},
			want: map[string]string{
				"HTTP_COOKIE":          "a=1; b=2",
				"HTTP_X_FORWARDED_FOR": "10.0.0.1, 10.0.0.2",
				"HTTP_ACCEPT":          "",
			},
		},
		{
			name: "values with NUL, CR or LF dropped", method: "GET", target: "/cgi-bin/env.sh", length: -1,
			headers: [][2]string{
				{"X-Nul", "a\x00b"},
				{"X-Crlf", "a\r\nX-Injected: 1"},
				{"X-Lf", "ok"}, {"X-Lf", "a\nb"},
				{"X-Cr", "a\rb"},
				{"X-Tab", "a\tb"},
			},
			script: script{Dir: "/cgi-bin", Name: "/cgi-bin/env.sh", Rel: "env.sh", PathInfo: "/a\nb"},
			want:   map[string]string{"HTTP_X_TAB": "a\tb"},
			drop:   []string{"PATH_INFO"},
		},
		{
			name: "odd header names dropped", method: "GET", target: "/cgi-bin/env.sh", length: -1,
			headers: [][2]string{{"X.Dotted", "1"}, {"X=Eq", "1"}, {"X~Tilde", "1"}, {"X-Ok-2", "1"}},
			want:    map[string]string{"HTTP_X_OK_2": "1"},
		},
		{
			name: "IPv6 client", method: "GET", target: "/cgi-bin/env.sh", length: -1,
			remoteAddr: "[2001:db8::1]:4711",
			want: map[string]string{
				"REMOTE_ADDR": "2001:db8::1",
				"REMOTE_HOST": "2001:db8::1",
				"REMOTE_PORT": "4711",
			},
		},
		{
			name: "remote address without port", method: "GET", target: "/cgi-bin/env.sh", length: -1,
			remoteAddr: "@unix",
			want:       map[string]string{"REMOTE_ADDR": "@unix", "REMOTE_HOST": "@unix"},
			drop:       []string{"REMOTE_PORT"},
		},
		{
			name: "HEAD over HTTP/1.0", method: "HEAD", target: "/cgi-bin/env.sh", length: -1,
			want: map[string]string{"REQUEST_METHOD": "HEAD", "SERVER_PROTOCOL": "HTTP/1.0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, nil)
			r.Host = "example.com:8000"
			if tt.tls {
				r.Host = "example.com:8443"
				r.TLS = &tls.ConnectionState{}
			}
			if tt.method == "HEAD" {
				r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, 0
			}
			if tt.remoteAddr != "" {
				r.RemoteAddr = tt.remoteAddr
			}
			for _, h := range tt.headers {
				r.Header.Add(h[0], h[1])
			}
			sc := tt.script
			if sc == (script{}) {
				sc = envScript
			}
			port := "8000"
			if tt.tls {
				port = "8443"
			}
			in := envInput{
				Req:               r,
				Script:            sc,
				ScriptFilename:    "/www" + sc.Name,
				DocumentRoot:      "/www",
				ServerName:        "example.com",
				ServerPort:        port,
				ServerSoftware:    "cgibox/0.1",
				ContentLength:     tt.length,
				PassAuthorization: tt.passAuth,
			}
			want := maps.Clone(common)
			maps.Copy(want, tt.want)
			for _, k := range tt.drop {
				delete(want, k)
			}
			wantEnv := make([]string, 0, len(want))
			for _, k := range slices.Sorted(maps.Keys(want)) {
				wantEnv = append(wantEnv, k+"="+want[k])
			}

			got := cgiEnv(in)
			if !slices.Equal(got, wantEnv) {
				t.Errorf("cgiEnv(%s %s, headers %q)\n got %q\nwant %q\n%s",
					tt.method, tt.target, tt.headers, got, wantEnv, envDiff(got, wantEnv))
			}
			checkEnvShape(t, got)
			if again := cgiEnv(in); !slices.Equal(got, again) {
				t.Errorf("cgiEnv is not deterministic:\n%q\n%q", got, again)
			}
		})
	}
}

// SECURITY.md case 9: nothing of the gateway's own environment reaches a script.
func TestCGIEnvIgnoresGatewayEnvironment(t *testing.T) {
	t.Setenv("CGIBOX_CANARY", "canary-value")
	t.Setenv("LD_LIBRARY_PATH", "/canary/lib")
	t.Setenv("PATH", "/canary/bin")
	t.Setenv("HTTP_PROXY", "http://canary:3128")
	r := httptest.NewRequest("GET", "/cgi-bin/env.sh", nil)
	env := cgiEnv(envInput{Req: r, Script: script{Name: "/cgi-bin/env.sh"}, ContentLength: -1})
	for _, kv := range env {
		if strings.Contains(kv, "canary") || strings.HasPrefix(kv, "LD_LIBRARY_PATH=") || strings.HasPrefix(kv, "HTTP_PROXY=") {
			t.Errorf("gateway environment leaked into the script's: %q (env %q)", kv, env)
		}
	}
	if !slices.Contains(env, "PATH="+cgiPath) {
		t.Errorf("env %q lacks the fixed PATH=%s", env, cgiPath)
	}
}

// checkEnvShape asserts what every environment must look like: sorted unique
// KEY=value entries that execve can carry.
func checkEnvShape(t *testing.T, env []string) {
	t.Helper()
	seen := map[string]bool{}
	for i, kv := range env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(kv, "\x00\r\n") {
			t.Errorf("malformed entry %q", kv)
		}
		if seen[k] {
			t.Errorf("duplicate variable %s in %q", k, env)
		}
		seen[k] = true
		if i > 0 && env[i-1] >= kv {
			t.Errorf("not sorted: %q before %q", env[i-1], kv)
		}
	}
}

// envDiff lists entries only in got (+) or only in want (-).
func envDiff(got, want []string) string {
	var b strings.Builder
	for _, kv := range got {
		if !slices.Contains(want, kv) {
			b.WriteString("  + " + strings.ReplaceAll(kv, "\n", `\n`) + "\n")
		}
	}
	for _, kv := range want {
		if !slices.Contains(got, kv) {
			b.WriteString("  - " + strings.ReplaceAll(kv, "\n", `\n`) + "\n")
		}
	}
	return b.String()
}
