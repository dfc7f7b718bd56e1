package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/cgibox/cgibox/config"
	"github.com/cgibox/cgibox/gateway"
	"github.com/cgibox/cgibox/images"
	"github.com/cgibox/cgibox/sandbox"
)

// newInspectCommand is `cgibox inspect URL`: a dry run of one request
// through the real gateway, with a runner that records the job instead of
// starting a container. It prints the site, the script, the image, the
// limits, the mounts and the exact environment the script would get, or
// why the request would be refused.
func newInspectCommand() *cobra.Command {
	cwd, _ := os.Getwd()
	var configFile, method, directory string
	var headers stringList
	c := &cobra.Command{
		Use:   "inspect URL [--config FILE] [-X METHOD] [-H 'Name: value']...",
		Short: "show what cgibox would do with one request (a dry run)",
		Long: "Shows what cgibox would do with one request: which site and script, PATH_INFO,\n" +
			"image, limits, mounts and the exact CGI environment, or why it would refuse it.\n" +
			"No container is started.",
		Args:                  exactArgs(1, "URL"),
		DisableFlagsInUseLine: true,
		RunE: func(c *cobra.Command, args []string) error {
			return inspectCmd(c.Context(), args[0], configFile, method, directory, headers, c.OutOrStdout())
		},
	}
	fs := c.Flags()
	fs.SortFlags = false
	addHelpFlag(fs)
	fs.StringVar(&configFile, "config", "", "the sites `file` to inspect against (default: the one site cgibox serve has without a file)")
	fs.StringVarP(&method, "request", "X", "GET", "request `method`")
	fs.VarP(&headers, "header", "H", "request header `'Name: value'` (repeatable)")
	fs.StringVarP(&directory, "directory", "d", cwd, "without --config: the site's `directory` (default: the current one)")
	fs.Lookup("directory").DefValue = "" // the help says it; a path would differ per machine
	_ = c.MarkFlagFilename("config", "toml")
	_ = c.MarkFlagDirname("directory")
	return c
}

func inspectCmd(ctx context.Context, rawURL, configFile, method, directory string, headers []string, stdout io.Writer) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return usageError{err: fmt.Errorf("URL %q: want an absolute http:// or https:// URL", rawURL)}
	}
	o := &serveOptions{configFile: configFile, directory: directory, set: map[string]bool{}, headers: http.Header{}}
	if configFile == "" {
		d, err := defaultServeOptions(directory)
		if err != nil {
			return err
		}
		o = d
	}
	c, err := o.loadConfig()
	if err != nil {
		return err
	}
	req, err := inspectRequest(u, method, headers, c.Server.Listen)
	if err != nil {
		return usageError{err: err}
	}
	return inspect(ctx, c, req, stdout)
}

// defaultServeOptions are `cgibox serve -d directory`'s options.
func defaultServeOptions(directory string) (*serveOptions, error) {
	return parseServe([]string{"-d", directory})
}

// inspectRequest builds the request as net/http's server would hand it to
// the gateway: a server request with its Host, RequestURI, remote and local
// addresses.
func inspectRequest(u *url.URL, method string, headers []string, listen []string) (*http.Request, error) {
	req, err := http.NewRequest(method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || !config.ValidHeaderName(name) {
			return nil, fmt.Errorf("-H %q: want 'Name: value'", h)
		}
		if strings.EqualFold(name, "Host") {
			req.Host = value
			continue
		}
		req.Header.Add(name, value)
	}
	req.RequestURI = u.RequestURI()
	req.URL = &url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}
	req.RemoteAddr = "127.0.0.1:49152"
	if u.Scheme == "https" {
		req.TLS = &tls.ConnectionState{HandshakeComplete: true}
	}
	port := u.Port()
	if port == "" && len(listen) > 0 {
		_, port, _ = net.SplitHostPort(listen[0])
	}
	p, _ := strconv.Atoi(port)
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p}
	return req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, local)), nil
}

// recorder is the dry run's runner: it keeps the job and starts nothing.
type recorder struct {
	mu  sync.Mutex
	job *sandbox.Job
}

var errDryRun = errors.New("dry run: no container is started")

func (r *recorder) Run(_ context.Context, job sandbox.Job) (sandbox.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.job == nil {
		j := job
		r.job = &j
	}
	return sandbox.Result{}, errDryRun
}

// inspect runs req through a gateway made of c with a recorder, and prints
// what happened.
func inspect(ctx context.Context, c *config.Config, req *http.Request, w io.Writer) error {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "request_id" {
				return slog.Attr{}
			}
			return a
		},
	}))
	// "auto" is shown as in force; `cgibox doctor` says whether it is here.
	rt := &siteRuntime{log: log, dry: true, userns: c.Server.UserNamespaces != "off"}
	sites, err := rt.gatewaySites(ctx, c)
	if err != nil {
		return err
	}
	rec := &recorder{}
	all := map[string]string{}
	for _, name := range images.Names() {
		all[name] = images.Ref(name)
	}
	gw, err := gateway.New(gateway.Config{
		Sites: sites, Runner: rec, Images: all, Logger: log,
		Protocol: c.Server.Protocol, ServerSoftware: "cgibox/" + version(),
		MaxConcurrent: c.Server.MaxConcurrent, SpoolDir: os.TempDir(),
	})
	if err != nil {
		return err
	}
	defer gw.Close()
	resp := httptest.NewRecorder()
	gw.ServeHTTP(resp, req)

	fmt.Fprintf(w, "request     %s %s (Host %s)\n", req.Method, req.RequestURI, req.Host)
	name, host, err := gw.SiteFor(req.Host)
	if err != nil {
		fmt.Fprintf(w, "site        none: %v\n", err)
	} else {
		fmt.Fprintf(w, "site        %s (host %s)\n", name, host)
	}
	rec.mu.Lock()
	job := rec.job
	rec.mu.Unlock()
	if job == nil {
		printAnswer(w, resp, &logs)
		return nil
	}
	site := siteNamed(c, job.Site)
	printJob(w, job, site, c.Server.UserNamespaces)
	// What the gateway saw wrong with the script itself (a #! line
	// with Windows line endings, none at all).
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, "level=WARN") {
			fmt.Fprintf(w, "warning     %s\n", line)
		}
	}
	return nil
}

// printAnswer prints a response the gateway gave itself: a static file or
// a refusal, with the log lines that say why.
func printAnswer(w io.Writer, resp *httptest.ResponseRecorder, logs *bytes.Buffer) {
	code := resp.Code
	switch {
	case code < 300:
		fmt.Fprintf(w, "answer      %d %s: a static file (%s, %d bytes); no script runs\n",
			code, http.StatusText(code), resp.Header().Get("Content-Type"), resp.Body.Len())
	case code < 400:
		fmt.Fprintf(w, "answer      %d %s: redirect to %s\n", code, http.StatusText(code), resp.Header().Get("Location"))
	default:
		msg := ""
		if m := strings.SplitN(resp.Body.String(), "<p>Message: ", 2); len(m) == 2 {
			msg, _, _ = strings.Cut(m[1], "</p>")
			msg = strings.TrimSuffix(msg, ".")
		}
		fmt.Fprintf(w, "refused     %d %s: %s\n", code, http.StatusText(code), msg)
		if ra := resp.Header().Get("Retry-After"); ra != "" {
			fmt.Fprintf(w, "retry after %s s\n", ra)
		}
	}
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		if line != "" {
			fmt.Fprintf(w, "log         %s\n", line)
		}
	}
}

// printJob prints the job a request would run.
func printJob(w io.Writer, job *sandbox.Job, site *config.Site, userns string) {
	fmt.Fprintf(w, "answer      CGI: the script runs in a fresh container, deleted after\n")
	fmt.Fprintf(w, "script      %s\n", job.Path)
	env := map[string]string{}
	for _, kv := range job.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if v, ok := env["PATH_INFO"]; ok && v == "" {
		fmt.Fprintf(w, "path info   (empty)\n")
	} else if ok {
		fmt.Fprintf(w, "path info   %s\n", v)
	} else {
		fmt.Fprintf(w, "path info   (none)\n")
	}
	fmt.Fprintf(w, "image       %s\n", job.Image)
	fmt.Fprintf(w, "user        uid 65534, gid 65534, no capabilities, no new privileges\n")
	switch {
	case job.Users != nil && userns == "auto":
		fmt.Fprintf(w, "host ids    %d, in a user namespace of the site's own (its root is %d), where this host has them (see cgibox doctor); else 65534\n", job.Users.Nobody, job.Users.Root)
	case job.Users != nil:
		fmt.Fprintf(w, "host ids    %d, in a user namespace of the site's own (its root is %d)\n", job.Users.Nobody, job.Users.Root)
	default:
		fmt.Fprintf(w, "host ids    65534 (no user namespace: the same host user as every site's scripts)\n")
	}
	l := job.Limits
	fmt.Fprintf(w, "limits      timeout %s, memory %s (no swap), cpus %g, pids %d, output %s\n",
		l.Wall, config.FormatSize(l.Memory), l.CPU, l.Pids, config.FormatSize(l.Output))
	if site != nil {
		fmt.Fprintf(w, "quota       %s\n", quota(site.Limits))
	}
	fmt.Fprintf(w, "mounts      / from the image, read-only\n")
	fmt.Fprintf(w, "            %s from %s, read-only, nosuid, nodev\n", job.MountPoint, job.ScriptDir)
	if job.DataDir != "" {
		fmt.Fprintf(w, "            %s from %s, writable, nosuid, nodev, noexec\n", sandbox.DataMountPoint, job.DataDir)
	}
	fmt.Fprintf(w, "            /tmp, tmpfs of %s, writable\n", config.FormatSize(l.Tmp))
	fmt.Fprintf(w, "network     none (loopback only)\n")
	fmt.Fprintf(w, "environment\n")
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s=%s\n", k, env[k])
	}
}

func siteNamed(c *config.Config, name string) *config.Site {
	for i := range c.Sites {
		if c.Sites[i].Name == name {
			return &c.Sites[i]
		}
	}
	return nil
}
