package sandbox

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
)

// ErrUnavailable means containerd or the runtime is unreachable or broken,
// or the job's image is missing. Run returns it (wrapped) only before the
// script started; the gateway answers 503.
var ErrUnavailable = errors.New("sandbox unavailable")

// ErrImageNotFound is wrapped, together with ErrUnavailable, by the error of
// a job whose image is not in containerd.
var ErrImageNotFound = errors.New("image not found")

const (
	// Namespace is the containerd namespace everything of cgibox lives in.
	Namespace = "cgibox"
	// DefaultAddress is the standard containerd socket tried by "auto".
	DefaultAddress = "/run/containerd/containerd.sock"
	// Runtime is the only runtime cgibox uses; never a silent fallback.
	Runtime = "io.containerd.runc.v2"
	// Snapshotter holds the images and the containers' root filesystems.
	Snapshotter = "overlayfs"

	// Labels on every container (and its snapshot).
	LabelRequest  = "cgibox.request"
	LabelSite     = "cgibox.site"
	LabelDeadline = "cgibox.deadline"
	LabelInstance = "cgibox.instance"

	connectTimeout = 5 * time.Second
	cleanupTimeout = 30 * time.Second
)

// DefaultLimits returns the built-in limits, used for the zero fields of
// WithDefaults (whose result fills the zero fields of Job.Limits).
func DefaultLimits() Limits {
	return Limits{
		Wall:      30 * time.Second,
		Memory:    128 << 20,
		Pids:      64,
		CPU:       0.5,
		Output:    64 << 20,
		Tmp:       16 << 20,
		NoFile:    256,
		FileSize:  16 << 20,
		KillGrace: 500 * time.Millisecond,
	}
}

// Manager runs jobs in containers of one containerd. It is safe for
// concurrent use.
type Manager struct {
	client   *containerd.Client
	endpoint *endpoint
	address  string
	launcher string
	log      *slog.Logger
	defaults Limits
	instance string
	noSweep  bool
	// runtimeBinary is the runc binary the shim runs ("": runc from the
	// daemon's PATH).
	runtimeBinary string
	cgroups       Cgroups
	pools         *pools
	// userns is why jobs with Users cannot run here (nil: they can);
	// decided by New.
	userns error

	// created and deleted count the containers this manager made and
	// removed (jobs', prepared and swept ones).
	created, deleted atomic.Uint64
	// health is what the monitor last saw of containerd.
	health atomic.Pointer[health]

	// jobs counts the Runs under way, deletes included; closing is closed
	// by Close to end them.
	jobs      sync.WaitGroup
	closing   chan struct{}
	closeOnce sync.Once
}

// closeWait bounds how long Close waits for running jobs to be killed and
// deleted before it lets go of containerd.
const closeWait = 15 * time.Second

type config struct {
	address  string
	standard string
	dataDir  string
	command  string
	share    bool
	launcher string
	log      *slog.Logger
	defaults Limits
	instance string
	noSweep  bool
	runtime  string
	pool     PoolConfig
}

// Option configures New.
type Option func(*config)

// WithAddress sets the containerd socket, or AddressAuto (the default) or
// AddressPrivate.
func WithAddress(addr string) Option { return func(c *config) { c.address = addr } }

// WithStandardAddress replaces DefaultAddress as the socket AddressAuto
// tries (for tests of either host shape on any host).
func WithStandardAddress(addr string) Option { return func(c *config) { c.standard = addr } }

// WithCommand names the command a held data directory's lock records
// (default "serve").
func WithCommand(name string) Option { return func(c *config) { c.command = name } }

// WithShareDataDir lets New work beside another cgibox that holds the data
// directory: on that cgibox's containerd (with AddressAuto), under an
// instance of its own, starting and stopping no daemon. Without it a held
// data directory fails New with a *BusyError.
func WithShareDataDir() Option { return func(c *config) { c.share = true } }

// WithDataDir sets the data directory (default /var/lib/cgibox): New holds
// its lock until Close, and a private containerd keeps its state there.
func WithDataDir(dir string) Option { return func(c *config) { c.dataDir = dir } }

// WithLauncher sets the host path of the static cgibox binary that is
// mounted into every container (default: the running executable).
func WithLauncher(path string) Option { return func(c *config) { c.launcher = path } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithDefaults sets the limits used for zero fields of Job.Limits; its own
// zero fields take DefaultLimits().
func WithDefaults(l Limits) Option { return func(c *config) { c.defaults = l } }

// WithInstance sets the value of the cgibox.instance label (default: one
// derived from the host name and the data directory, stable across
// restarts). Sweep removes this instance's containers.
func WithInstance(id string) Option { return func(c *config) { c.instance = id } }

// WithRuntimeBinary makes the runc shim run the runtime binary at path
// instead of the runc on containerd's PATH (any runc-compatible runtime,
// such as crun). A binary that is missing or broken makes every job fail
// with ErrUnavailable; there is no fallback to another runtime.
func WithRuntimeBinary(path string) Option { return func(c *config) { c.runtime = path } }

// WithoutStartupSweep leaves the sweep to the caller (`cgibox gc` sweeps
// itself to report what it removed).
func WithoutStartupSweep() Option { return func(c *config) { c.noSweep = true } }

// New takes the data directory, connects to containerd, or starts a
// private one (see openEndpoint), checks the launcher and sweeps what a
// previous run left in the namespace. Errors about containerd itself wrap
// ErrUnavailable; a data directory held by another cgibox is a *BusyError
// (unless WithShareDataDir).
func New(ctx context.Context, opts ...Option) (*Manager, error) {
	cfg := config{address: AddressAuto, standard: DefaultAddress, dataDir: "/var/lib/cgibox", command: "serve"}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	if cfg.instance != "" && !validLabelValue(cfg.instance) {
		return nil, fmt.Errorf("instance %q: must match [A-Za-z0-9_.-]{1,64}", cfg.instance)
	}
	launcher, err := resolveLauncher(cfg.launcher)
	if err != nil {
		return nil, err
	}
	dataDir, err := filepath.Abs(cfg.dataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	e, err := openEndpoint(ctx, endpointConfig{
		address: cfg.address, standard: cfg.standard, dataDir: dataDir,
		command: cfg.command, share: cfg.share, log: cfg.log,
	})
	if err != nil {
		return nil, err
	}
	instance := cfg.instance
	if instance == "" {
		instance = instanceOf(dataDir)
		if e.beside != nil {
			// Not the holder's instance: this process's sweep must
			// leave the holder's running containers alone.
			instance = fmt.Sprintf("%s-%d", instance, os.Getpid())
		}
	}
	m := &Manager{
		client:   e.client,
		endpoint: e,
		address:  e.address,
		closing:  make(chan struct{}),
		launcher: launcher,
		log:      cfg.log,
		defaults: cfg.defaults.withDefaults(DefaultLimits()),
		instance: instance,

		runtimeBinary: cfg.runtime,
		cgroups:       DetectCgroups(""),
		userns:        userNamespaceSupport(e.state, launcher),
	}
	m.health.Store(&health{up: true, since: time.Now()})
	m.pools = newPools(ctx, m, cfg.pool)
	if cfg.command == "serve" {
		m.jobs.Add(1)
		go m.monitor()
	}
	if e.beside != nil {
		m.log.Info("data directory held by another cgibox; working beside it",
			"data_dir", dataDir, "holder", e.beside.String(), "containerd", e.address)
	}
	// Recover from a previous run that was killed. A leftover that cannot
	// be removed now is retried by the next sweep; a daemon that does not
	// answer fails New.
	if cfg.noSweep {
		return m, nil
	}
	if n, err := m.Sweep(ctx); errors.Is(err, ErrUnavailable) {
		m.Close()
		return nil, err
	} else if err != nil {
		m.log.Warn("start-up sweep incomplete", "removed", n, "err", err)
	}
	return m, nil
}

// LauncherName is the launcher binary cgibox uses when it lies beside the
// running executable (cmd/cgibox-launch); without it, the running
// executable is the launcher.
const LauncherName = "cgibox-launch"

// resolveLauncher makes the launcher path absolute and checks that the
// binary is statically linked: it runs inside images that have no libc.
// The default is LauncherName beside the running executable when it is
// there and static, else the running executable.
func resolveLauncher(path string) (string, error) {
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("launcher: %w", err)
		}
		path = exe
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			beside := filepath.Join(filepath.Dir(exe), LauncherName)
			if fi, err := os.Stat(beside); err == nil && fi.Mode().IsRegular() && checkStatic(beside) == nil {
				path = beside
			}
		}
	}
	path, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("launcher: %w", err)
	}
	if path, err = filepath.Abs(path); err != nil {
		return "", fmt.Errorf("launcher: %w", err)
	}
	if err := checkStatic(path); err != nil {
		return "", err
	}
	return path, nil
}

// checkStatic fails unless path is an ELF executable without a program
// interpreter (PT_INTERP), i.e. statically linked.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("launcher %s is not an ELF executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("launcher %s is dynamically linked; build cgibox with CGO_ENABLED=0", path)
		}
	}
	return nil
}

// Close closes the client, stops the private daemon if New started it and
// lets go of the data directory.
//
// Jobs still running are ended (as if their client had gone) and Close
// waits, up to closeWait, until their containers are deleted, so that
// stopping cgibox, or its private containerd, leaves nothing behind.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() { close(m.closing) })
	pctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	if err := m.pools.close(pctx); err != nil {
		m.log.Warn("closing", "err", err)
	}
	done := make(chan struct{})
	go func() {
		m.jobs.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(closeWait):
		m.log.Warn("closing while jobs are still being deleted", "waited", closeWait)
	}
	return m.endpoint.close(context.Background())
}

// healthEvery is how often a serving manager asks containerd whether it
// answers; healthTimeout bounds one question.
const (
	healthEvery   = time.Second
	healthTimeout = 2 * time.Second
)

// health is one state of containerd as the monitor saw it.
type health struct {
	up    bool
	since time.Time // of the last change
	err   error     // why it is down
}

// monitor watches containerd until Close, and logs when it stops and
// starts answering: the operator's first sign of an outage, and of its end.
func (m *Manager) monitor() {
	defer m.jobs.Done()
	t := time.NewTicker(healthEvery)
	defer t.Stop()
	for {
		select {
		case <-m.closing:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
		err := m.ping(ctx)
		cancel()
		was := m.health.Load()
		switch {
		case err != nil && was.up:
			m.health.Store(&health{up: false, since: time.Now(), err: err})
			m.log.Error("containerd does not answer: CGI requests get 503 until it does", "containerd", m.address, "err", err)
		case err == nil && !was.up:
			m.health.Store(&health{up: true, since: time.Now()})
			m.log.Info("containerd answers again", "containerd", m.address, "down_for", time.Since(was.since).Round(time.Millisecond))
		}
	}
}

// ping asks containerd whether it serves.
func (m *Manager) ping(ctx context.Context) error {
	ok, err := m.client.IsServing(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("%w: containerd at %s: %w", ErrUnavailable, m.address, err)
	case !ok:
		return fmt.Errorf("%w: containerd at %s: not serving", ErrUnavailable, m.address)
	}
	return nil
}

// Stats are a manager's counters, for metrics.
type Stats struct {
	// ContainerdUp is whether containerd answered the last health check
	// (a serving manager checks every second), Since when that has been
	// so; Err is why it is down.
	ContainerdUp bool
	Since        time.Time
	Err          error
	// Created and Deleted count containers made and removed.
	Created, Deleted uint64
	// DaemonRestarts counts restarts of a private containerd.
	DaemonRestarts int
}

// Stats reports the manager's counters.
func (m *Manager) Stats() Stats {
	h := m.health.Load()
	s := Stats{ContainerdUp: h.up, Since: h.since, Err: h.err, Created: m.created.Load(), Deleted: m.deleted.Load()}
	if d := m.endpoint.daemon; d != nil {
		s.DaemonRestarts = d.Restarts()
	}
	return s
}

// Address is the containerd socket in use.
func (m *Manager) Address() string { return m.address }

// Private reports whether New started the daemon.
func (m *Manager) Private() bool { return m.endpoint.daemon != nil }

// Where says in words which containerd the manager uses and how it was
// found.
func (m *Manager) Where() string { return m.endpoint.where }

// Client exposes the containerd client (for tests and diagnostics); its
// default namespace is Namespace.
func (m *Manager) Client() *containerd.Client { return m.client }

// classify wraps err in ErrUnavailable when it says containerd is gone or
// broken.
func classify(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	if errdefs.IsUnavailable(err) || errdefs.IsDeadlineExceeded(err) ||
		errdefs.IsInternal(err) || errdefs.IsUnknown(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}
