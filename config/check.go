package config

import (
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cgibox/cgibox/gateway"
	"github.com/cgibox/cgibox/sandbox"
)

// minQuota is the smallest data quota: below it the filesystem's own
// bookkeeping leaves a script next to nothing.
const minQuota = 1 << 20

// Check validates a resolved configuration, the command line's too, and
// returns every problem it finds. Paths are checked on this host: a root
// must be a directory that exists.
func Check(c *Config) Errors {
	var es Errors
	add := func(key, format string, args ...any) {
		es = append(es, &Error{File: c.File, Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	s := c.Server
	if len(s.Listen) == 0 {
		add("server.listen", "no address to serve on")
	}
	for _, l := range s.Listen {
		host, port, err := net.SplitHostPort(l)
		if p, perr := strconv.Atoi(port); err != nil || perr != nil || p < 0 || p > 65535 {
			add("server.listen", "%q: want host:port, like 127.0.0.1:8000 or :8000", l)
		} else if host != "" && net.ParseIP(host) == nil {
			if _, err := gateway.CanonicalHost(host); err != nil {
				add("server.listen", "%q: not a host name or IP address", l)
			}
		}
	}
	if s.Admin != "" {
		if _, port, err := net.SplitHostPort(s.Admin); err != nil || port == "" {
			add("server.admin", "%q: want host:port, like 127.0.0.1:9100", s.Admin)
		} else if port != "0" && slices.Contains(s.Listen, s.Admin) {
			add("server.admin", "%q is also a site listener: the admin listener must be apart from every site", s.Admin)
		}
	}
	if s.Protocol != "HTTP/1.0" && s.Protocol != "HTTP/1.1" {
		add("server.protocol", "%q: want HTTP/1.0 or HTTP/1.1", s.Protocol)
	}
	if s.Queue < 0 {
		add("server.queue", "%d: must not be negative (0: no request waits)", s.Queue)
	}
	if s.QueueWait <= 0 {
		add("server.queue_wait", "%v: must be above zero", s.QueueWait)
	}
	if s.MaxConcurrent <= 0 {
		add("server.max_concurrent", "%d: must be above zero", s.MaxConcurrent)
	}
	if !slices.Contains([]string{"auto", "on", "off"}, s.UserNamespaces) {
		add("server.user_namespaces", "%q: want auto, on or off", s.UserNamespaces)
	}
	if s.Pool.Max < 0 || s.Pool.Min < 0 || s.Pool.Min > s.Pool.Max {
		add("server.pool", "max %d, min %d: want 0 <= min <= max", s.Pool.Max, s.Pool.Min)
	}
	if s.Pool.Total < 0 {
		add("server.pool.total", "%d: want 0 (no cap) or more", s.Pool.Total)
	}
	if s.LogFormat != "text" && s.LogFormat != "json" {
		add("server.log_format", "%q: want text or json", s.LogFormat)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(s.LogLevel)) {
		add("server.log_level", "%q: want debug, info, warn or error", s.LogLevel)
	}
	if (s.TLSKey != "" || s.TLSPasswordFile != "") && s.TLSCert == "" {
		add("server.tls_key", "tls_key and tls_password_file need tls_cert")
	}

	if len(c.Sites) == 0 {
		add("site", "no site: add a [[site]] table with a name and a root")
	}
	names := map[string]int{}
	hosts := map[string]string{}     // exact name → site
	wildcards := map[string]string{} // ".suffix" → site
	dataDirs := map[string]string{}
	ids := map[uint32]string{}
	defaults := 0
	for i, site := range c.Sites {
		key := func(k string) string { return siteKey(i, site.Name, k) }
		siteAdd := func(k, format string, args ...any) { add(key(k), format, args...) }
		switch {
		case site.Name == "":
			siteAdd("name", "missing: every site needs a name (letters, digits, '.', '_', '-')")
		case !validName(site.Name):
			siteAdd("name", "%q: want 1 to 64 letters, digits, '.', '_' or '-'", site.Name)
		default:
			if j, dup := names[site.Name]; dup {
				siteAdd("name", "%q is also the name of site[%d]", site.Name, j)
			}
			names[site.Name] = i
		}
		if site.Default {
			defaults++
		}
		if len(site.Hosts) == 0 && !site.Default && len(c.Sites) > 1 {
			siteAdd("hosts", "none: a site that is not the default needs at least one host name")
		}
		for _, h := range site.Hosts {
			name, wild, err := hostPattern(h)
			if err != nil {
				siteAdd("hosts", "%v", err)
				continue
			}
			if !wild {
				if other, dup := hosts[name]; dup {
					siteAdd("hosts", "%q is already a host of site %q", h, other)
				}
				hosts[name] = site.Name
				continue
			}
			if other, dup := wildcards[name]; dup {
				siteAdd("hosts", "%q is already a host of site %q", h, other)
			}
			for suffix, other := range wildcards {
				if suffix != name && (strings.HasSuffix(suffix, name) || strings.HasSuffix(name, suffix)) {
					siteAdd("hosts", "%q overlaps %q of site %q: which would answer is not clear; name the hosts of one of them", h, "*"+suffix, other)
				}
			}
			wildcards[name] = site.Name
		}
		checkRoot(site, siteAdd)
		for _, d := range site.CGIDirs {
			if cl := path.Clean("/" + d); cl == "/" || strings.Count(cl, "/") != 1 {
				siteAdd("cgi_dirs", "%q: must be one directory below the root, like /cgi-bin", d)
			}
		}
		if site.Mode != string(gateway.ModePython) && site.Mode != string(gateway.ModeRFC3875) {
			siteAdd("mode", "%q: want python or rfc3875", site.Mode)
		}
		if site.Image == "" || strings.ContainsAny(site.Image, " \t\r\n") {
			siteAdd("image", "%q: want a cgibox image name (busybox, perl, python) or a containerd reference", site.Image)
		}
		for _, n := range site.Index {
			if n == "" || strings.ContainsAny(n, "/\x00") || n == "." || n == ".." {
				siteAdd("index", "%q: want a file name, like index.html", n)
			}
		}
		for k, vs := range site.Headers {
			for _, v := range vs {
				if !ValidHeaderName(k) || strings.ContainsAny(v, "\r\n\x00") {
					siteAdd("headers", "%q = %q: not a valid header", k, v)
				}
			}
		}
		checkData(site, dataDirs, siteAdd)
		checkLimits(site.Limits, s.MaxConcurrent, siteAdd)
		if s.UserNamespaces != "off" {
			if err := site.Users.Check(); err != nil {
				siteAdd("uid", "%v", err)
			}
			for _, id := range []uint32{site.Users.Root, site.Users.Nobody} {
				if other, dup := ids[id]; dup {
					siteAdd("uid", "host id %d is also site %q's; give one of them its own uid", id, other)
				}
				ids[id] = site.Name
			}
		}
	}
	if defaults > 1 {
		add("site.default", "%d sites are the default; at most one may be", defaults)
	}
	return es
}

// hostPattern checks a configured host: a name, or "*." and a name. It
// returns the canonical name, or for a wildcard the suffix it matches
// (".example.org").
func hostPattern(h string) (string, bool, error) {
	name, wild := strings.CutPrefix(h, "*.")
	if strings.Contains(name, "*") {
		return "", false, fmt.Errorf("%q: a wildcard may only be the first label, like *.example.org", h)
	}
	canon, err := gateway.CanonicalHost(name)
	if err != nil || canon == "" {
		return "", false, fmt.Errorf("%q: not a host name or IP address", h)
	}
	if strings.Contains(name, ":") && !strings.HasPrefix(name, "[") || strings.Contains(strings.TrimPrefix(name, "["), "]:") {
		return "", false, fmt.Errorf("%q: a host without its port (one site answers on every listener)", h)
	}
	if wild {
		if net.ParseIP(canon) != nil {
			return "", false, fmt.Errorf("%q: an IP address has no names below it", h)
		}
		return "." + canon, true, nil
	}
	return canon, false, nil
}

func checkRoot(site Site, add func(k, format string, args ...any)) {
	if site.Root == "" {
		add("root", "missing: the directory the site serves")
		return
	}
	fi, err := os.Stat(site.Root)
	switch {
	case err != nil:
		add("root", "%s: %v", site.Root, unwrapPathError(err))
	case !fi.IsDir():
		add("root", "%s: not a directory", site.Root)
	}
}

func checkData(site Site, seen map[string]string, add func(k, format string, args ...any)) {
	if site.DataDir == "" {
		if site.DataQuota != 0 {
			add("data_quota", "set without data_dir")
		}
		return
	}
	if !filepath.IsAbs(site.DataDir) {
		add("data_dir", "%q: want an absolute path", site.DataDir)
		return
	}
	if site.Root != "" && (within(site.DataDir, site.Root) || within(site.Root, site.DataDir)) {
		add("data_dir", "%s and the root %s are inside one another: the data would be served as files, or the files be writable", site.DataDir, site.Root)
	}
	if other, dup := seen[site.DataDir]; dup {
		add("data_dir", "%s is also site %q's data directory", site.DataDir, other)
	}
	seen[site.DataDir] = site.Name
	if site.DataQuota != 0 && site.DataQuota < minQuota {
		add("data_quota", "%s: the smallest quota is %s", FormatSize(site.DataQuota), FormatSize(minQuota))
	}
}

func checkLimits(l Limits, maxConcurrent int, add func(k, format string, args ...any)) {
	if l.Timeout <= 0 {
		add("limits.timeout", "%v: must be above zero", l.Timeout)
	}
	for _, v := range []struct {
		key string
		n   int64
	}{{"limits.memory", l.Memory}, {"limits.pids", l.Pids}, {"limits.output", l.Output}, {"limits.body", l.Body}, {"limits.tmp", l.Tmp}} {
		if v.n <= 0 {
			add(v.key, "%d: must be above zero", v.n)
		}
	}
	if l.Tmp > 0 && l.Tmp < l.Body {
		add("limits.tmp", "%s is below limits.body %s: a script could not spool the body it is given to /tmp (raise tmp, or leave it out: it is body + %s)",
			FormatSize(l.Tmp), FormatSize(l.Body), FormatSize(tmpSlack))
	}
	if l.Memory > 0 && l.Memory < 4<<20 {
		add("limits.memory", "%s: below 4M no script starts", FormatSize(l.Memory))
	}
	if l.CPUs <= 0 {
		add("limits.cpus", "%v: must be above zero", l.CPUs)
	}
	if l.Concurrent < 0 {
		add("limits.concurrent", "%d: must not be negative (0: up to the server's max_concurrent)", l.Concurrent)
	}
	if maxConcurrent > 0 && l.Concurrent > maxConcurrent {
		add("limits.concurrent", "%d is above the server's max_concurrent %d", l.Concurrent, maxConcurrent)
	}
	if l.Rate < 0 {
		add("limits.rate", "%v: must not be negative (0: no rate limit)", l.Rate)
	}
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}

// ValidHeaderName reports whether s is an HTTP header field name (RFC 9110
// §5.1: a token).
func ValidHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

func usersFor(name string) sandbox.UserRange { return sandbox.SiteUsers(name) }
func usersAt(root uint32) sandbox.UserRange  { return sandbox.SiteUsersAt(root) }
