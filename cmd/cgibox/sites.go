package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cgibox/cgibox/config"
	"github.com/cgibox/cgibox/gateway"
	"github.com/cgibox/cgibox/images"
	"github.com/cgibox/cgibox/sandbox"
	"github.com/cgibox/cgibox/sitedata"
)

// loadConfig returns the configuration serve runs: the --config file with
// the flags given on top of it, or, without a file, the one site the flags
// describe, exactly as before there were files.
func (o *serveOptions) loadConfig() (*config.Config, error) {
	var c *config.Config
	if o.configFile == "" {
		site := config.DefaultSite()
		site.Name, site.Default, site.Root = "default", true, o.directory
		c = &config.Config{Server: config.DefaultServer(), Sites: []config.Site{site}}
		// One site of one operator: no user namespaces, as before.
		c.Server.UserNamespaces = "off"
		o.override(c, func(string) bool { return true })
		if errs := config.Check(c); len(errs) > 0 {
			return nil, errs
		}
		return c, nil
	}
	if o.set["directory"] {
		return nil, errors.New("--directory names one site's root: with --config, set each site's root in the file")
	}
	c, err := config.Load(o.configFile)
	if err != nil {
		return nil, err
	}
	o.override(c, func(name string) bool { return o.set[name] })
	if errs := config.Check(c); len(errs) > 0 {
		return nil, fmt.Errorf("with the flags given: %w", errs)
	}
	return c, nil
}

// override sets in c what the flags set says: server settings, and the site
// settings of every site.
func (o *serveOptions) override(c *config.Config, set func(flag string) bool) {
	s := &c.Server
	if set("bind") || set("port") {
		s.Listen = []string{net.JoinHostPort(o.bind, strconv.Itoa(o.port))}
	}
	if set("protocol") {
		s.Protocol = o.protocol
	}
	if set("max-concurrent") {
		s.MaxConcurrent = o.maxConcurrent
	}
	if set("queue") {
		s.Queue = o.queue
	}
	if set("queue-wait") {
		s.QueueWait = o.queueWait
	}
	if set("data-dir") {
		s.DataDir = o.dataDir
	}
	if set("containerd") {
		s.Containerd = o.containerd
	}
	if set("runtime-binary") {
		s.RuntimeBinary = o.runtimeBinary
	}
	if set("pool") {
		s.Pool.Max = o.pool.Max
		if o.pool.Max == 0 {
			s.Pool.Min = 0
		}
	}
	if set("pool-min") {
		s.Pool.Min = o.pool.Min
	}
	if set("pool-total") {
		s.Pool.Total = o.pool.Total
	}
	if set("pool-idle") {
		s.Pool.Idle = o.pool.Idle
	}
	for flag, d := range map[string]struct {
		dst *string
		v   string
	}{
		"tls-cert": {&s.TLSCert, o.tlsCert}, "tls-key": {&s.TLSKey, o.tlsKey},
		"tls-password-file": {&s.TLSPasswordFile, o.tlsPass}, "log-format": {&s.LogFormat, o.logFormat},
	} {
		if set(flag) {
			*d.dst = d.v
		}
	}
	if set("admin") {
		s.Admin = o.admin
	}
	if set("audit") {
		s.Audit = o.audit
	}
	if set("log-level") {
		s.LogLevel = o.logLevel.String()
	}
	if set("drain-timeout") {
		s.DrainTimeout = o.drainTimeout
	}
	if set("header-timeout") {
		s.HeaderTimeout = o.headerTimeout
	}
	if set("body-timeout") {
		s.BodyTimeout = o.bodyTimeout
	}
	if set("write-timeout") {
		s.WriteTimeout = o.writeTimeout
	}
	if set("idle-timeout") {
		s.IdleTimeout = o.idleTimeout
	}
	for i := range c.Sites {
		site := &c.Sites[i]
		if set("directory") {
			site.Root = o.directory
		}
		if set("no-cgi") {
			site.CGI = !o.noCGI
		}
		if set("dotfiles") {
			site.Dotfiles = o.dotfiles
		}
		if set("header") {
			for k, vs := range o.headers {
				site.Headers[k] = append(site.Headers[k], vs...)
			}
		}
		if set("image") {
			site.Image = o.image
		}
		if set("cgi-dir") {
			site.CGIDirs = o.cgiDirs
		}
		if set("cgi-mode") {
			site.Mode = o.cgiMode
		}
		if set("nph") {
			site.NPH = o.nph
		}
		if set("pass-authorization") {
			site.PassAuthorization = o.passAuth
		}
		l := &site.Limits
		if set("timeout") {
			l.Timeout = o.timeout
		}
		if set("memory") {
			l.Memory = o.memory
		}
		if set("pids") {
			l.Pids = o.pids
		}
		if set("cpus") {
			l.CPUs = o.cpus
		}
		if set("max-output") {
			l.Output = o.maxOutput
		}
		if set("max-body") {
			l.Body = o.maxBody
			// /tmp keeps room for the body a script is given.
			l.Tmp = max(l.Tmp, config.TmpFor(l.Body))
		}
		if set("tmp") {
			l.Tmp = o.tmp
		}
	}
}

// hostNobody is the host uid and gid of scripts without a user namespace.
const hostNobody = 65534

// siteRuntime is what serving the sites needs beyond their configuration:
// the sandbox's images and user namespaces, and the sites' data volumes.
// It is used by one goroutine at a time (start-up, then reloads).
type siteRuntime struct {
	mgr    *sandbox.Manager // nil: no sandbox (CGI unavailable, or a dry run)
	log    *slog.Logger
	userns bool // sites run in user namespaces of their own
	// required makes a site that cannot run in its user namespace an
	// error (user_namespaces = "on"); else it runs without, and the log
	// says why.
	required bool
	// dry opens no volume and builds no image: `cgibox inspect`.
	dry bool
	// progress receives image builds' progress; cacheDir is their cache.
	progress io.Writer
	cacheDir string
	// volumes are the data volumes open, by directory.
	volumes map[string]*volume
}

// volume is an open data volume and what it was opened with.
type volume struct {
	v        *sitedata.Volume
	quota    int64
	uid, gid uint32
}

// gatewaySites turns the configured sites into the gateway's, opening the
// data volumes and building the images they need. A site whose image
// cannot be had still serves its files (its scripts answer 503); a data
// volume that cannot be opened fails the whole set, so that no script
// writes where its data is not. The volumes of sites no longer configured
// stay open until closeUnused.
func (rt *siteRuntime) gatewaySites(ctx context.Context, c *config.Config) ([]gateway.Site, error) {
	if rt.volumes == nil {
		rt.volumes = map[string]*volume{}
	}
	var out []gateway.Site
	built := map[string]string{}
	for _, s := range c.Sites {
		g := gateway.Site{
			Name: s.Name, Hosts: s.Hosts, Default: s.Default,
			Root: s.Root, CGI: s.CGI, CGIDirs: s.CGIDirs,
			Dotfiles: s.Dotfiles, NoListing: !s.Listing, Index: s.Index, Headers: s.Headers,
			Limits: s.Limits.SandboxLimits(), Mode: gateway.CGIMode(s.Mode), NPH: s.NPH,
			PassAuthorization: s.PassAuthorization, MaxBody: s.Limits.Body,
			Concurrent: s.Limits.Concurrent, Rate: s.Limits.Rate,
			Image: imageRef(s.Image),
		}
		if rt.mgr != nil && s.CGI {
			ref, ok := built[s.Image]
			if !ok {
				var err error
				ref, err = ensureImage(ctx, rt.mgr, s.Image, images.Options{Progress: rt.progress, CacheDir: rt.cacheDir})
				if err != nil {
					rt.log.Error("a site's image is unavailable: its scripts answer 503", "site", s.Name, "image", s.Image, "err", err)
					ref = imageRef(s.Image)
				}
				built[s.Image] = ref
			}
			g.Image = ref
		}
		uid, gid := uint32(hostNobody), uint32(hostNobody)
		if rt.userns && s.CGI {
			if err := rt.reachable(s); err != nil {
				if rt.required {
					return nil, fmt.Errorf("site %q: %w", s.Name, err)
				}
				rt.log.Warn("a site runs without its user namespace: its scripts are host uid 65534", "site", s.Name, "why", err)
			} else {
				users := s.Users
				g.Users = &users
				uid, gid = users.Nobody, users.Nobody
			}
		}
		if s.DataDir != "" && rt.dry {
			g.DataDir = s.DataDir
		} else if s.DataDir != "" {
			dir, err := rt.openVolume(ctx, s.DataDir, s.DataQuota, uid, gid)
			if err != nil {
				return nil, fmt.Errorf("site %q: data_dir: %w", s.Name, err)
			}
			g.DataDir = dir
		}
		out = append(out, g)
	}
	return out, nil
}

// reachable checks that the runtime can reach the directories a site's
// user-namespaced containers mount. A dry run assumes it can.
func (rt *siteRuntime) reachable(s config.Site) error {
	if rt.dry {
		return nil
	}
	var dirs []string
	for _, d := range s.CGIDirs {
		dirs = append(dirs, filepath.Join(s.Root, d))
	}
	if s.DataDir != "" {
		dirs = append(dirs, filepath.Dir(s.DataDir))
	}
	// A CGI directory that does not exist has no scripts to run.
	dirs = slices.DeleteFunc(dirs, func(d string) bool { _, err := os.Stat(d); return err != nil })
	return sandbox.ReachableInUserNamespace(dirs...)
}

// openVolume opens the data volume of dir, or applies a new quota or owner
// to the one open (a volume already mounted is reused by sitedata, and
// grown when its quota grew).
func (rt *siteRuntime) openVolume(ctx context.Context, dir string, quota int64, uid, gid uint32) (string, error) {
	if open := rt.volumes[dir]; open != nil {
		if open.quota == quota && open.uid == uid && open.gid == gid {
			return open.v.Dir(), nil
		}
		// The first Volume keeps the mount; this one only changes it. A
		// change the mounted volume cannot take (a quota grown where the
		// kernel allows no online resize) waits for the next start.
		v, err := sitedata.Open(ctx, sitedata.Options{Dir: dir, Quota: quota, UID: uid, GID: gid})
		if err != nil {
			rt.log.Warn("a data volume keeps its quota and owner until the next start", "dir", dir, "why", err)
			return open.v.Dir(), nil
		}
		v.Close()
		open.quota, open.uid, open.gid = quota, uid, gid
		return open.v.Dir(), nil
	}
	v, err := sitedata.Open(ctx, sitedata.Options{Dir: dir, Quota: quota, UID: uid, GID: gid})
	if err != nil {
		return "", err
	}
	rt.volumes[dir] = &volume{v: v, quota: quota, uid: uid, gid: gid}
	return v.Dir(), nil
}

// closeUnused closes the volumes no site of c uses.
func (rt *siteRuntime) closeUnused(c *config.Config) {
	used := map[string]bool{}
	for _, s := range c.Sites {
		used[s.DataDir] = true
	}
	for dir, open := range rt.volumes {
		if !used[dir] {
			if err := open.v.Close(); err != nil {
				rt.log.Warn("closing a data volume no site uses", "dir", dir, "err", err)
			}
			delete(rt.volumes, dir)
		}
	}
}

// close closes every volume.
func (rt *siteRuntime) close() {
	rt.closeUnused(&config.Config{})
}

// imageRef is the containerd reference of a configured image.
func imageRef(name string) string {
	if strings.ContainsAny(name, "/:") {
		return name
	}
	return images.Ref(name)
}
