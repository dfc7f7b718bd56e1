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
	daemon   *Daemon // nil unless New started it
	address  string
	launcher string
	log      *slog.Logger
	defaults Limits
	instance string
	noSweep  bool
	// runtimeBinary is the runc binary the shim runs ("": runc from the
	// daemon's PATH).
	runtimeBinary string

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
	dataDir  string
	launcher string
	log      *slog.Logger
	defaults Limits
	instance string
	noSweep  bool
	runtime  string
}

// Option configures New.
type Option func(*config)

// WithAddress sets the containerd socket: "auto" (the default) uses
// DefaultAddress when a daemon answers there and otherwise starts a
// private containerd under the data directory.
func WithAddress(addr string) Option { return func(c *config) { c.address = addr } }

// WithDataDir sets where a private containerd keeps its state (default
// /var/lib/cgibox).
func WithDataDir(dir string) Option { return func(c *config) { c.dataDir = dir } }

// WithLauncher sets the host path of the static cgibox binary that is
// mounted into every container (default: the running executable).
func WithLauncher(path string) Option { return func(c *config) { c.launcher = path } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithDefaults sets the limits used for zero fields of Job.Limits; its own
// zero fields take DefaultLimits().
func WithDefaults(l Limits) Option { return func(c *config) { c.defaults = l } }

// WithInstance sets the value of the cgibox.instance label (default
// "cgibox"). Sweep removes this instance's containers.
func WithInstance(id string) Option { return func(c *config) { c.instance = id } }

// WithRuntimeBinary makes the runc shim run the runtime binary at path
// instead of the runc on containerd's PATH (any runc-compatible runtime,
// such as crun). A binary that is missing or broken makes every job fail
// with ErrUnavailable; there is no fallback to another runtime.
func WithRuntimeBinary(path string) Option { return func(c *config) { c.runtime = path } }

// WithoutStartupSweep leaves the sweep to the caller (`cgibox gc` sweeps
// itself to report what it removed).
func WithoutStartupSweep() Option { return func(c *config) { c.noSweep = true } }

// New connects to containerd, or starts a private one, checks the launcher
// and sweeps what a previous run left in the namespace. Errors about
// containerd itself wrap ErrUnavailable.
func New(ctx context.Context, opts ...Option) (*Manager, error) {
	cfg := config{address: "auto", dataDir: "/var/lib/cgibox", instance: "cgibox"}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	if !validLabelValue(cfg.instance) {
		return nil, fmt.Errorf("instance %q: must match [A-Za-z0-9_.-]{1,64}", cfg.instance)
	}
	launcher, err := resolveLauncher(cfg.launcher)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		closing:  make(chan struct{}),
		launcher: launcher,
		log:      cfg.log,
		defaults: cfg.defaults.withDefaults(DefaultLimits()),
		instance: cfg.instance,

		runtimeBinary: cfg.runtime,
	}
	switch cfg.address {
	case "auto", "":
		if c, err := connect(ctx, DefaultAddress); err == nil {
			m.client, m.address = c, DefaultAddress
		} else {
			m.log.Info("no containerd answers on the standard socket; starting a private one",
				"socket", DefaultAddress, "reason", err)
			d, err := StartDaemon(ctx, cfg.dataDir, cfg.log)
			if err != nil {
				return nil, err
			}
			c, err := connect(ctx, d.Address())
			if err != nil {
				m.stopDaemon(ctx, d)
				return nil, err
			}
			m.client, m.address, m.daemon = c, d.Address(), d
		}
	default:
		c, err := connect(ctx, cfg.address)
		if err != nil {
			return nil, err
		}
		m.client, m.address = c, cfg.address
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

// connect dials addr and checks that the daemon answers.
func connect(ctx context.Context, addr string) (*containerd.Client, error) {
	if _, err := os.Stat(addr); err != nil {
		return nil, fmt.Errorf("%w: containerd socket %s: %w", ErrUnavailable, addr, err)
	}
	c, err := containerd.New(addr,
		containerd.WithDefaultNamespace(Namespace),
		containerd.WithDefaultRuntime(Runtime),
		containerd.WithTimeout(connectTimeout))
	if err != nil {
		return nil, fmt.Errorf("%w: containerd at %s: %w", ErrUnavailable, addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if ok, err := c.IsServing(ctx); err != nil || !ok {
		c.Close()
		if err == nil {
			err = errors.New("health check: not serving")
		}
		return nil, fmt.Errorf("%w: containerd at %s does not answer: %w", ErrUnavailable, addr, err)
	}
	return c, nil
}

// resolveLauncher makes the launcher path absolute and checks that the
// binary is statically linked: it runs inside images that have no libc.
func resolveLauncher(path string) (string, error) {
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("launcher: %w", err)
		}
		path = exe
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

// Close closes the client and stops the private daemon if New started it.
//
// Jobs still running are ended (as if their client had gone) and Close
// waits, up to closeWait, until their containers are deleted, so that
// stopping cgibox, or its private containerd, leaves nothing behind.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() { close(m.closing) })
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
	err := m.client.Close()
	if m.daemon != nil {
		ctx, cancel := context.WithTimeout(context.Background(), daemonStopTimeout+5*time.Second)
		defer cancel()
		err = errors.Join(err, m.daemon.Stop(ctx))
	}
	return err
}

func (m *Manager) stopDaemon(ctx context.Context, d *Daemon) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), daemonStopTimeout+5*time.Second)
	defer cancel()
	if err := d.Stop(ctx); err != nil {
		m.log.Warn("stopping private containerd", "err", err)
	}
}

// Address is the containerd socket in use.
func (m *Manager) Address() string { return m.address }

// Private reports whether New started the daemon.
func (m *Manager) Private() bool { return m.daemon != nil }

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
