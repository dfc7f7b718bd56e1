package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
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

// holderWait bounds how long a command beside a starting holder waits for
// it to record its containerd.
const holderWait = 10 * time.Second

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

// openEndpoint takes the data directory (or, with share, finds it held and
// works beside its holder) and connects to the containerd cfg.address
// names. A private containerd is started only by the holder of the data
// directory, and a private containerd left running is stopped only when the
// process that started it is provably gone.
func openEndpoint(ctx context.Context, cfg endpointConfig) (*endpoint, error) {
	lock, err := lockDataDir(cfg.dataDir, cfg.command)
	var busy *BusyError
	switch {
	case errors.As(err, &busy) && cfg.share:
		return besideHolder(ctx, cfg, busy)
	case err != nil:
		return nil, err
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
	return &endpoint{client: c, address: d.Address(), daemon: d,
		where: "as a private daemon started under " + cfg.dataDir}, nil
}

// besideHolder connects a process that found the data directory held: to
// the address it was given, or else to the holder's own containerd. It
// never starts or stops a daemon there.
func besideHolder(ctx context.Context, cfg endpointConfig, busy *BusyError) (*endpoint, error) {
	if cfg.address != AddressAuto && cfg.address != AddressPrivate && cfg.address != "" {
		h, _ := readHolder(cfg.dataDir)
		c, err := connect(ctx, cfg.address)
		if err != nil {
			return nil, err
		}
		return &endpoint{client: c, address: cfg.address, beside: &h, where: "on " + cfg.address}, nil
	}
	h, err := waitForHolder(ctx, cfg.dataDir, busy.Holder)
	if err != nil {
		return nil, err
	}
	c, err := connect(ctx, h.Containerd)
	if err != nil {
		return nil, fmt.Errorf("data directory %s is held by %s, whose containerd does not answer: %w", cfg.dataDir, h, err)
	}
	return &endpoint{client: c, address: h.Containerd, beside: &h,
		where: fmt.Sprintf("as the daemon of %s, which holds %s", h, cfg.dataDir)}, nil
}

// waitForHolder waits, up to holderWait, until the holder of dataDir has
// recorded the containerd it uses.
func waitForHolder(ctx context.Context, dataDir string, h Holder) (Holder, error) {
	ctx, cancel := context.WithTimeout(ctx, holderWait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for h.Containerd == "" {
		select {
		case <-ctx.Done():
			who := "another cgibox"
			if h.PID != 0 {
				who = h.String()
			}
			return h, fmt.Errorf("%w: data directory %s is held by %s, which has not connected to containerd within %s; "+
				"pass --containerd ADDR to use a daemon directly, or another --data-dir", ErrDataDirBusy, dataDir, who, holderWait)
		case <-tick.C:
		}
		if next, err := readHolder(dataDir); err == nil {
			h = next
		}
	}
	return h, nil
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
