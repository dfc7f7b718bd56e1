package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"
	"golang.org/x/time/rate"

	"github.com/cgibox/cgibox/static"
)

// site is one site as served: its configuration, its open root, its static
// handler and its own router with its own CGI directories.
type site struct {
	srv    *Server
	cfg    Site
	log    *slog.Logger
	root   *os.Root
	static *static.Handler
	router *httprouter.Router
	quota  *quota
	// logName is the site in the access log: "" for the implicit site of
	// a single-site server (its lines stay Python's).
	logName string
}

// siteTable is the set of sites one generation of the configuration
// serves. A request holds the table it began with until it ends; a table
// replaced by SetSites is closed when its last request is done.
type siteTable struct {
	sites []*site
	exact map[string]*site // host name → site
	wild  map[string]*site // ".suffix" of a wildcard → site
	def   *site

	// guarded by inFlight.mu
	users   int
	retired bool
}

// lookup returns the site of host (canonical, "" when the request had
// none): the site naming it, else the one whose wildcard matches the
// longest suffix, else the default; nil when there is none.
func (t *siteTable) lookup(host string) *site {
	if h, ok := t.exact[host]; ok {
		return h
	}
	for i := strings.IndexByte(host, '.'); i >= 0; {
		if h, ok := t.wild[host[i:]]; ok {
			return h
		}
		j := strings.IndexByte(host[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return t.def
}

func (t *siteTable) close() error {
	var errs []error
	for _, h := range t.sites {
		errs = append(errs, h.root.Close())
	}
	return errors.Join(errs...)
}

// newTable checks sites and opens their roots. On error nothing stays open.
func (s *Server) newTable(sites []Site) (_ *siteTable, err error) {
	if len(sites) == 0 {
		return nil, errors.New("no site to serve")
	}
	t := &siteTable{exact: map[string]*site{}, wild: map[string]*site{}}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	names := map[string]bool{}
	for _, cfg := range sites {
		if len(sites) == 1 && len(cfg.Hosts) == 0 {
			cfg.Default = true // a lone site answers every host
		}
		h, err := s.newSite(cfg)
		if err != nil {
			return nil, fmt.Errorf("site %q: %w", cfg.Name, err)
		}
		if names[h.cfg.Name] {
			h.root.Close()
			return nil, fmt.Errorf("two sites are named %q", h.cfg.Name)
		}
		names[h.cfg.Name] = true
		if len(sites) > 1 || h.cfg.Name != "default" {
			h.logName = h.cfg.Name
		}
		t.sites = append(t.sites, h)
		if h.cfg.Default {
			if t.def != nil {
				return nil, fmt.Errorf("sites %q and %q are both the default", t.def.cfg.Name, h.cfg.Name)
			}
			t.def = h
		}
		for _, name := range h.cfg.Hosts {
			m, key := t.exact, name
			if suffix, ok := strings.CutPrefix(name, "*"); ok {
				m, key = t.wild, suffix
			}
			if other, dup := m[key]; dup {
				return nil, fmt.Errorf("host %q: both site %q and site %q", name, other.cfg.Name, h.cfg.Name)
			}
			m[key] = h
		}
	}
	return t, nil
}

// newSite checks one site's configuration, applies its defaults and opens
// its root.
func (s *Server) newSite(cfg Site) (*site, error) {
	setDefault(&cfg.Name, "default")
	if cfg.CGIDirs == nil {
		cfg.CGIDirs = []string{"/cgi-bin", "/htbin"}
	}
	dirs := make([]string, len(cfg.CGIDirs))
	for i, d := range cfg.CGIDirs {
		c := path.Clean("/" + d)
		if c == "/" || strings.Count(c, "/") != 1 {
			return nil, fmt.Errorf("CGI directory %q: must be one directory below the root, like /cgi-bin", d)
		}
		dirs[i] = c
	}
	cfg.CGIDirs = dirs
	hosts := make([]string, len(cfg.Hosts))
	for i, name := range cfg.Hosts {
		suffix, wild := strings.CutPrefix(name, "*.")
		c, err := CanonicalHost(suffix)
		if err != nil || c == "" {
			return nil, fmt.Errorf("host %q: not a host name", name)
		}
		if wild {
			c = "*." + c
		}
		hosts[i] = c
	}
	cfg.Hosts = hosts
	switch cfg.Mode {
	case "":
		cfg.Mode = ModePython
	case ModePython, ModeRFC3875:
	default:
		return nil, fmt.Errorf("CGI mode %q: want python or rfc3875", cfg.Mode)
	}
	if cfg.CGI && s.cfg.Runner == nil {
		return nil, errors.New("CGI is on but no runner was given")
	}
	setDefault(&cfg.MaxBody, DefaultMaxBody)
	if cfg.Concurrent < 0 || cfg.Rate < 0 || math.IsNaN(cfg.Rate) {
		return nil, fmt.Errorf("quota %d at once, %v per second: must not be negative", cfg.Concurrent, cfg.Rate)
	}

	// Absolute and free of symlinks: the CGI directories below it are
	// bind-mounted by path, and whatever the working directory is then.
	abs, err := filepath.Abs(cfg.Root)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return nil, fmt.Errorf("site root: %w", err)
	}
	cfg.Root = abs
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("site root: %w", err)
	}
	h := &site{
		srv:  s,
		cfg:  cfg,
		log:  s.log.With("site", cfg.Name),
		root: root,
		static: &static.Handler{Root: root, Dotfiles: cfg.Dotfiles, CGIDirs: cfg.CGIDirs,
			Index: cfg.Index, NoListing: cfg.NoListing, Site: cfg.Name},
		quota: s.quotas.get(cfg.Name, cfg.Concurrent, cfg.Rate),
	}
	h.router = h.routes()
	return h, nil
}

// SetSites replaces the sites served: requests from now on are routed to
// the new ones, while the requests under way finish with the sites they
// began with (whose roots are closed after the last of them). A site keeps
// its quota's count of running scripts when its name stays. On error the
// sites served do not change.
func (s *Server) SetSites(sites []Site) error {
	t, err := s.newTable(sites)
	if err != nil {
		return err
	}
	f := s.inFlight
	f.mu.Lock()
	old := f.table
	f.table = t
	old.retired = true
	idle := old.users == 0
	f.mu.Unlock()
	names := map[string]bool{}
	for _, h := range t.sites {
		names[h.cfg.Name] = true
	}
	s.quotas.keep(names)
	if idle {
		return old.close()
	}
	return nil
}

// Sites returns the names of the sites served.
func (s *Server) Sites() []string {
	s.inFlight.mu.Lock()
	defer s.inFlight.mu.Unlock()
	var names []string
	for _, h := range s.inFlight.table.sites {
		names = append(names, h.cfg.Name)
	}
	return names
}

// quotas are the sites' quotas by name.
type quotas struct {
	mu     sync.Mutex
	byName map[string]*quota
}

// get returns the quota of site name, set to these limits.
func (qs *quotas) get(name string, concurrent int, perSecond float64) *quota {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	q, ok := qs.byName[name]
	if !ok {
		q = &quota{}
		qs.byName[name] = q
	}
	q.set(concurrent, perSecond)
	return q
}

// keep forgets the quotas of sites no longer served.
func (qs *quotas) keep(names map[string]bool) {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	for name := range qs.byName {
		if !names[name] {
			delete(qs.byName, name)
		}
	}
}

// quota is a site's share: CGI requests at once, and per second.
type quota struct {
	mu      sync.Mutex
	running int
	max     int           // 0: no cap
	limiter *rate.Limiter // nil: no rate limit
}

func (q *quota) set(concurrent int, perSecond float64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.max = concurrent
	switch {
	case perSecond <= 0:
		q.limiter = nil
	case q.limiter == nil:
		q.limiter = rate.NewLimiter(rate.Limit(perSecond), burst(perSecond))
	default:
		q.limiter.SetLimit(rate.Limit(perSecond))
		q.limiter.SetBurst(burst(perSecond))
	}
}

func burst(perSecond float64) int { return max(1, int(math.Ceil(perSecond))) }

// allow takes one of the rate's tokens; when there is none it says how
// long until there is.
func (q *quota) allow(now time.Time) (bool, time.Duration) {
	q.mu.Lock()
	lim := q.limiter
	q.mu.Unlock()
	if lim == nil {
		return true, 0
	}
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// acquire counts one more running script, unless the site is at its cap.
func (q *quota) acquire() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.max > 0 && q.running >= q.max {
		return false
	}
	q.running++
	return true
}

func (q *quota) release() {
	q.mu.Lock()
	q.running--
	q.mu.Unlock()
}

// retryAfter is the Retry-After value for a wait of d: whole seconds, at
// least one.
func retryAfter(d time.Duration) string {
	return fmt.Sprint(max(1, int(math.Ceil(d.Seconds()))))
}

// SiteFor returns the name of the site a request for host (a Host header
// value) is served by, and the canonical host; an error when none is (400
// or 421 for the request).
func (s *Server) SiteFor(host string) (name, canonical string, err error) {
	canonical, err = CanonicalHost(host)
	if err != nil {
		return "", "", fmt.Errorf("host %q: %w: the request gets 400", host, err)
	}
	s.inFlight.mu.Lock()
	h := s.inFlight.table.lookup(canonical)
	s.inFlight.mu.Unlock()
	if h == nil {
		return "", canonical, fmt.Errorf("no site answers host %q and none is the default: the request gets 421", canonical)
	}
	return h.cfg.Name, canonical, nil
}
