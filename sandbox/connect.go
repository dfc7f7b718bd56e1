package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
)

// The special values of a containerd address (--containerd).
const (
	// AddressAuto is the data directory's holder's containerd when another
	// cgibox holds it; else DefaultAddress when a daemon answers there;
	// else a private containerd under the data directory.
	AddressAuto = "auto"
	// AddressPrivate is always the data directory's private containerd,
	// even when one answers on DefaultAddress (a host whose containerd
	// belongs to Docker or Kubernetes, say).
	AddressPrivate = "private"
)

// lockWait bounds how long a command waits for a data directory held by a
// shorter command (an image build takes a minute or two), or for a serving
// holder to record its containerd (its start-up can take most of a minute).
const lockWait = 5 * time.Minute

// endpoint is the containerd a process uses, found by openEndpoint: the
// one answer to "which containerd?" that serve, image, gc and doctor share.
type endpoint struct {
	client  *containerd.Client
	address string
	// daemon is the private containerd this process started (nil when it
	// uses one it did not start); close stops it.
	daemon *Daemon
	// lock is the data directory, held by this process; nil when beside
	// holds it.
	lock   *dataDirLock
	beside *Holder
	// where says in words how the daemon was found.
	where string
	// state is the daemon's state directory, where the containers'
	// bundles are, when cgibox knows it (a private daemon's); else "".
	state string
}

type endpointConfig struct {
	address  string // AddressAuto, AddressPrivate or a socket path
	standard string // the socket AddressAuto tries (DefaultAddress)
	dataDir  string // absolute
	command  string // recorded in the lock: "serve", "image ls", …
	// share lets the process work beside another holder of the data
	// directory, on that holder's containerd; without it a held data
	// directory is a *BusyError.
	share bool
	log   *slog.Logger
}

// openEndpoint takes the data directory (or, with share, finds it held by a
// serving cgibox and works beside it) and connects to the containerd
// cfg.address names. A private containerd is started only by the holder of
// the data directory, and a private containerd left running is stopped only
// when the process that started it is provably gone.
func openEndpoint(ctx context.Context, cfg endpointConfig) (*endpoint, error) {
	if cfg.address != AddressAuto && cfg.address != AddressPrivate && cfg.address != "" {
		// Recorded for other commands, which may run elsewhere.
		abs, err := filepath.Abs(cfg.address)
		if err != nil {
			return nil, fmt.Errorf("containerd address: %w", err)
		}
		cfg.address = abs
	}
	lock, busy, err := acquire(ctx, cfg)
	switch {
	case busy != nil:
		return besideHolder(ctx, cfg, busy.Holder)
	case err != nil:
		return nil, err
	}
	// A private daemon whose owner was killed is stopped whichever
	// containerd this holder goes on to use.
	if err := stopStale(filepath.Join(cfg.dataDir, "containerd.pid"), filepath.Join(cfg.dataDir, "containerd.toml"), cfg.log); err != nil {
		cfg.log.Warn("a private containerd of this data directory runs", "err", err)
	}
	e, err := connectHeld(ctx, cfg)
	if err != nil {
		lock.release()
		return nil, err
	}
	e.lock = lock
	if err := lock.connected(e.address, e.daemon != nil); err != nil {
		e.close(ctx)
		return nil, err
	}
	return e, nil
}

// acquire takes the data directory's lock, or, with share, returns the
// serving cgibox that holds it (busy) once that one has connected to
// containerd. Only a serve is worked beside: a shorter command (image
// build, gc, doctor) stops its private containerd when it ends, under
// whatever would use it, so acquire waits for it to finish instead, up to
// lockWait, saying so once. A second serve is refused at once.
func acquire(ctx context.Context, cfg endpointConfig) (lock *dataDirLock, busy *BusyError, err error) {
	ctx, cancel := context.WithTimeout(ctx, lockWait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	said := false
	for {
		lock, err = lockDataDir(cfg.dataDir, cfg.command)
		if !errors.As(err, &busy) {
			return lock, nil, err
		}
		h := busy.Holder
		switch {
		case h.Command == "serve" && !cfg.share:
			return nil, nil, err
		case h.Command == "serve" && h.Containerd != "":
			return nil, busy, nil
		}
		if !said {
			cfg.log.Info("waiting for the cgibox that holds the data directory", "data_dir", cfg.dataDir, "holder", busy.Error())
			said = true
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w; waited %s (pass --containerd ADDR to use a daemon directly, or another --data-dir)",
				err, lockWait)
		case <-tick.C:
		}
	}
}

// connectHeld connects for the holder of the data directory.
func connectHeld(ctx context.Context, cfg endpointConfig) (*endpoint, error) {
	switch cfg.address {
	case AddressAuto, "":
		c, err := connect(ctx, cfg.standard)
		if err == nil {
			return &endpoint{client: c, address: cfg.standard, where: "on the standard socket " + cfg.standard}, nil
		}
		cfg.log.Info("no containerd answers on the standard socket; starting a private one",
			"socket", cfg.standard, "reason", err)
		e, perr := startPrivate(ctx, cfg)
		if perr != nil {
			return nil, fmt.Errorf("none answers on %s (%w), and a private one did not start: %w", cfg.standard, err, perr)
		}
		e.where += fmt.Sprintf(" (none answers on %s)", cfg.standard)
		return e, nil
	case AddressPrivate:
		return startPrivate(ctx, cfg)
	default:
		c, err := connect(ctx, cfg.address)
		if err != nil {
			return nil, err
		}
		return &endpoint{client: c, address: cfg.address, where: "on " + cfg.address}, nil
	}
}

func startPrivate(ctx context.Context, cfg endpointConfig) (*endpoint, error) {
	d, err := StartDaemon(ctx, cfg.dataDir, cfg.log)
	if err != nil {
		return nil, err
	}
	c, err := connect(ctx, d.Address())
	if err != nil {
		stopDaemon(ctx, d, cfg.log)
		return nil, err
	}
	if cfg.command == "serve" {
		// A server outlives crashes of its daemon; a short command's
		// daemon ends with it anyway.
		d.Supervise()
	}
	return &endpoint{client: c, address: d.Address(), daemon: d, state: privateState(cfg.dataDir),
		where: "as a private daemon started under " + cfg.dataDir}, nil
}

// besideHolder connects a process beside the serving cgibox h that holds
// the data directory: to the address it was given, or else to h's own
// containerd. It never starts or stops a daemon there.
func besideHolder(ctx context.Context, cfg endpointConfig, h Holder) (*endpoint, error) {
	addr := cfg.address
	if addr == AddressAuto || addr == AddressPrivate || addr == "" {
		addr = h.Containerd
	}
	c, err := connect(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("data directory %s is held by %s; containerd on %s: %w", cfg.dataDir, h, addr, err)
	}
	e := &endpoint{client: c, address: addr, beside: &h,
		where: fmt.Sprintf("on %s, beside %s, which holds %s", addr, h, cfg.dataDir)}
	if h.Private && addr == h.Containerd {
		e.state = privateState(cfg.dataDir)
	}
	return e, nil
}

// close closes the client, stops a daemon this process started and only
// then lets go of the data directory, so that the next holder never meets
// that daemon still running.
func (e *endpoint) close(ctx context.Context) error {
	err := e.client.Close()
	if e.daemon != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), daemonStopTimeout+5*time.Second)
		defer cancel()
		err = errors.Join(err, e.daemon.Stop(ctx))
	}
	if e.lock != nil {
		err = errors.Join(err, e.lock.release())
	}
	return err
}

func stopDaemon(ctx context.Context, d *Daemon, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), daemonStopTimeout+5*time.Second)
	defer cancel()
	if err := d.Stop(ctx); err != nil {
		log.Warn("stopping private containerd", "err", err)
	}
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
