package gateway

import (
	"github.com/cgibox/cgibox/sandbox"

	"encoding/base64"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// cgiPath is the PATH every script gets; nothing of the gateway's own
// environment reaches a script (SECURITY.md case 9).
const cgiPath = "/usr/local/bin:/usr/bin:/bin"

// envInput is everything cgiEnv needs to know about one CGI request.
type envInput struct {
	Req               *http.Request
	Script            script
	ScriptFilename    string // path of the script INSIDE the container, e.g. /www/cgi-bin/env.sh
	DocumentRoot      string // inside the container, e.g. /www
	ServerName        string // from Host (without port), else the listener's
	ServerPort        string
	ServerSoftware    string // e.g. "cgibox/0.1"
	ContentLength     int64  // bytes the script will get on stdin; -1 = none (GET)
	PassAuthorization bool   // pass the Authorization header on as HTTP_AUTHORIZATION
	HasData           bool   // the site's data directory is mounted: CGIBOX_DATA names it
}

// cgiEnv builds a script's environment (RFC 3875 §4.1) from an allowlist:
// "KEY=value" strings, sorted by key. It reads nothing but its input.
//
// A value that contains NUL, CR or LF is never passed: such a variable (or
// request header) is left out. The query string never becomes argv: Python's
// handler passed a query without '=' as a command-line argument, which turned
// `?-s` into an interpreter option (CVE-2012-1823); cgibox runs scripts with no
// arguments (SECURITY.md case 10), a deliberate departure from Python.
func cgiEnv(in envInput) []string {
	r := in.Req
	env := make(map[string]string, 32+len(r.Header))
	set := func(k, v string) {
		if envValueOK(v) {
			env[k] = v
		}
	}

	// §4.1.1: the scheme of the Authorization header, as Python reports it
	// (whether or not the header itself is passed on).
	scheme, user := authInfo(r.Header.Get("Authorization"))
	if scheme != "" {
		set("AUTH_TYPE", scheme)
	}
	// §4.1.2: the length of the body on stdin, only when there is one
	// (Python: whenever the request has a Content-Length header).
	if in.ContentLength >= 0 {
		set("CONTENT_LENGTH", strconv.FormatInt(in.ContentLength, 10))
	}
	// §4.1.3: only when the client gave one (Python invents text/plain).
	if ct := r.Header.Get("Content-Type"); ct != "" {
		set("CONTENT_TYPE", ct)
	}
	// §4.1.4.
	set("GATEWAY_INTERFACE", "CGI/1.1")
	// §4.1.5: decoded, "" when the URL ends at the script (always set, as
	// Python and Go's net/http/cgi do).
	set("PATH_INFO", in.Script.PathInfo)
	// §4.1.6: PATH_INFO mapped into the document root (inside the container).
	if in.Script.PathInfo != "" {
		set("PATH_TRANSLATED", strings.TrimSuffix(in.DocumentRoot, "/")+in.Script.PathInfo)
	}
	// §4.1.7: raw (still URL-encoded), always present, possibly empty.
	if q := r.URL.RawQuery; envValueOK(q) {
		env["QUERY_STRING"] = q
	} else {
		env["QUERY_STRING"] = ""
	}
	// §4.1.8, §4.1.9: the client's address; REMOTE_HOST is the address too,
	// cgibox does no DNS look-ups. REMOTE_PORT is a common extra.
	if host, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		set("REMOTE_ADDR", host)
		set("REMOTE_HOST", host)
		set("REMOTE_PORT", port)
	} else if r.RemoteAddr != "" {
		set("REMOTE_ADDR", r.RemoteAddr)
		set("REMOTE_HOST", r.RemoteAddr)
	}
	// §4.1.10 REMOTE_IDENT: not supported (no ident look-ups).
	// §4.1.11: the user of Basic authentication, unverified, as Python does.
	if user != "" {
		set("REMOTE_USER", user)
	}
	// §4.1.12.
	set("REQUEST_METHOD", r.Method)
	// §4.1.13: the URL path of the script.
	set("SCRIPT_NAME", in.Script.Name)
	// §4.1.14 - §4.1.17.
	set("SERVER_NAME", in.ServerName)
	set("SERVER_PORT", in.ServerPort)
	set("SERVER_PROTOCOL", r.Proto)
	set("SERVER_SOFTWARE", in.ServerSoftware)
	// Not RFC 3875: where the site's writable data is (cgibox's own name,
	// so no script mistakes it for a standard variable).
	if in.HasData {
		set("CGIBOX_DATA", sandbox.DataMountPoint)
	}

	// Common extras (Apache, Go's net/http/cgi).
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	set("REQUEST_URI", uri)
	set("SCRIPT_FILENAME", in.ScriptFilename)
	set("DOCUMENT_ROOT", in.DocumentRoot)
	if r.TLS != nil {
		set("HTTPS", "on")
	}
	set("PATH", cgiPath)

	// §4.1.18: protocol-specific meta-variables, one per request header.
	// net/http keeps Host out of r.Header.
	if r.Host != "" {
		set("HTTP_HOST", r.Host)
	}
	for _, name := range slices.Sorted(maps.Keys(r.Header)) {
		key, ok := headerEnvName(name, in.PassAuthorization)
		if !ok {
			continue
		}
		sep := ", "
		if key == "HTTP_COOKIE" {
			sep = "; "
		}
		v := strings.Join(r.Header[name], sep)
		if !envValueOK(v) {
			continue // the whole header, not part of it
		}
		if prev, dup := env[key]; dup { // the same name spelt twice in r.Header
			v = prev + sep + v
		}
		env[key] = v
	}

	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// headerEnvName maps a request header name to its HTTP_* variable, or reports
// that the header is not passed on.
func headerEnvName(name string, passAuthorization bool) (string, bool) {
	if name == "" {
		return "", false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		// '_' would let `Script_Filename:` or `Remote_User:` collide with the
		// dashed spelling, which nginx and Apache also refuse (SECURITY.md
		// case 8); other token characters make names shells cannot use.
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return "", false
		}
	}
	switch strings.ToLower(name) {
	case "proxy":
		// httpoxy (CVE-2016-5385, Go issue 16405): HTTP_PROXY is read by
		// HTTP clients as their proxy setting (SECURITY.md case 6).
		return "", false
	case "content-length", "content-type":
		// They have their own variables (§4.1.2, §4.1.3) and are the
		// gateway's word, not the client's.
		return "", false
	case "host":
		// Taken from r.Host above.
		return "", false
	case "authorization":
		// Credentials stay with the gateway unless configured (§4.1.18
		// allows leaving them out).
		if !passAuthorization {
			return "", false
		}
	case "proxy-authorization":
		// Meant for a proxy, never for the script.
		return "", false
	}
	return "HTTP_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")), true
}

// authInfo returns the scheme of an Authorization header value and, for Basic
// credentials that decode to printable ASCII, the user. Like Python, the value
// must be exactly "scheme credentials"; unlike Python, a password may contain
// ':' (RFC 7617 §2: the user-id cannot, the password can).
func authInfo(h string) (scheme, user string) {
	f := strings.Fields(h)
	if len(f) != 2 || !validToken(f[0]) {
		return "", ""
	}
	scheme = f[0]
	if !strings.EqualFold(scheme, "basic") {
		return scheme, ""
	}
	raw, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return scheme, ""
	}
	u, _, ok := strings.Cut(string(raw), ":")
	if !ok {
		return scheme, ""
	}
	for i := 0; i < len(u); i++ {
		if u[i] < 0x20 || u[i] > 0x7e {
			return scheme, ""
		}
	}
	return scheme, u
}

// envValueOK reports whether v may go into a script's environment: no NUL
// (execve cannot carry it) and no CR or LF (a value must not look like more
// than one line to whatever logs or re-emits it).
func envValueOK(v string) bool {
	return !strings.ContainsAny(v, "\x00\r\n")
}
