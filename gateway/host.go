package gateway

import (
	"errors"
	"net"
	"strings"
)

var errBadHost = errors.New("bad host")

// CanonicalHost returns the host name in a Host header value or the
// authority of an absolute-form request target: lower case, without its
// port, a trailing dot or an IPv6 literal's brackets. Routing, SERVER_NAME
// and the logs all use it, so they agree on which site a request is for
// (RFC 9110 §4.2.3: host names are case-insensitive; RFC 1034 §3.1: the
// trailing dot names the same host). An empty value gives "" and no error
// (an HTTP/1.0 request may have no Host); a value that is no host name or
// IP address is an error (400).
func CanonicalHost(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	host, port := v, ""
	switch {
	case strings.HasPrefix(v, "["):
		end := strings.IndexByte(v, ']')
		if end < 0 {
			return "", errBadHost
		}
		host, port = v[1:end], v[end+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return "", errBadHost
		}
		ip := net.ParseIP(host)
		if ip == nil || ip.To4() != nil && !strings.Contains(host, ":") {
			return "", errBadHost
		}
		if !validPort(strings.TrimPrefix(port, ":")) {
			return "", errBadHost
		}
		return strings.ToLower(ip.String()), nil
	case strings.Count(v, ":") == 1:
		host, port, _ = strings.Cut(v, ":")
		if !validPort(port) {
			return "", errBadHost
		}
	case strings.Contains(v, ":"):
		return "", errBadHost // an IPv6 literal must be in brackets
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if !validHostName(host) {
		return "", errBadHost
	}
	return host, nil
}

func validPort(p string) bool {
	if len(p) > 5 {
		return false
	}
	for _, c := range []byte(p) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validHostName reports whether h (lower case) is a DNS name or an IPv4
// address: labels of letters, digits, '-' and '_', 1 to 63 bytes each,
// 253 in all.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
