package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
)

// Daemon is a private containerd started by cgibox as a child process, with
// its own root, state, socket and configuration under a data directory.
// Once supervised it is restarted whenever it exits, until Stop.
type Daemon struct {
	bin, configPath, logPath, dataDir string
	address                           string
	pidFile                           string
	log                               *slog.Logger

	stop       chan struct{} // closed by Stop
	supervised chan struct{} // closed when the supervisor has ended

	mu          sync.Mutex
	cur         *daemonProc
	stopping    bool
	supervising bool
	restarts    int
}

// daemonProc is one run of the daemon's process.
type daemonProc struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has been reaped
	waitErr error         // valid after exited is closed
}

const (
	daemonReadyTimeout = 20 * time.Second
	daemonStopTimeout  = 10 * time.Second
	// A supervised daemon that exits is restarted after restartDelay,
	// doubling up to restartMaxDelay while it keeps failing; one that
	// stayed up for restartSettled starts over at restartDelay.
	restartDelay    = 500 * time.Millisecond
	restartMaxDelay = 30 * time.Second
	restartSettled  = time.Minute
)

// daemonConfig is the private containerd's configuration. Version 2 is read
// by containerd 1.6, 1.7 and 2.x. No TCP listener is configured (debug and
// metrics addresses stay empty); the CRI plugin and the snapshotters this
// host does not need are disabled.
const daemonConfig = `version = 2
root = %[1]q
state = %[2]q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = %[3]q

[ttrpc]
  address = ""

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q
`

// StartDaemon starts a private containerd with everything under dataDir:
// dataDir/containerd/{root,state,opt}, the socket dataDir/containerd.sock,
// the config dataDir/containerd.toml and the log dataDir/containerd.log. It
// returns once the daemon answers, or an error (bounded by ctx and an
// internal timeout). The daemon's pid file, dataDir/containerd.pid, names
// this process as its owner. A daemon left running by an owner that is
// provably gone (killed before it could stop it) is stopped first; one whose
// owner still runs is an error, never disturbed.
//
// The daemon is not tied to ctx: it runs until Stop.
func StartDaemon(ctx context.Context, dataDir string, log *slog.Logger) (*Daemon, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return nil, fmt.Errorf("%w: containerd binary not found (install it: apt-get install containerd): %w", ErrUnavailable, err)
	}
	if _, err := exec.LookPath("containerd-shim-runc-v2"); err != nil {
		return nil, fmt.Errorf("%w: containerd-shim-runc-v2 not found (install it: apt-get install containerd): %w", ErrUnavailable, err)
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return nil, fmt.Errorf("%w: runc binary not found (install it: apt-get install runc): %w", ErrUnavailable, err)
	}
	dataDir, err = filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	base := filepath.Join(dataDir, "containerd")
	for _, d := range []string{"root", "state", "opt"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o711); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
	}
	d := &Daemon{
		bin:        bin,
		dataDir:    dataDir,
		configPath: filepath.Join(dataDir, "containerd.toml"),
		logPath:    filepath.Join(dataDir, "containerd.log"),
		address:    filepath.Join(dataDir, "containerd.sock"),
		pidFile:    filepath.Join(dataDir, "containerd.pid"),
		log:        log,
		stop:       make(chan struct{}),
		supervised: make(chan struct{}),
	}
	if len(d.address) > 100 {
		return nil, fmt.Errorf("data dir %s: socket path %s is too long for a unix socket", dataDir, d.address)
	}
	config := fmt.Sprintf(daemonConfig,
		filepath.Join(base, "root"), privateState(dataDir), d.address, filepath.Join(base, "opt"))
	if err := os.WriteFile(d.configPath, []byte(config), 0o600); err != nil {
		return nil, fmt.Errorf("write containerd config: %w", err)
	}
	if err := stopStale(d.pidFile, d.configPath, log); err != nil {
		return nil, err
	}
	if err := d.spawn(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// spawn starts the daemon's process and waits until it answers; on
// failure the process is stopped again.
func (d *Daemon) spawn(ctx context.Context) error {
	logFile, err := os.OpenFile(d.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("containerd log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(d.bin, "--config", d.configPath)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Dir = d.dataDir
	// Its own process group: a Ctrl-C on cgibox's terminal must not kill
	// the daemon under running containers; cgibox stops it on Close.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &daemonProc{cmd: cmd, exited: make(chan struct{})}
	d.mu.Lock()
	if d.stopping {
		d.mu.Unlock()
		return fmt.Errorf("%w: containerd is being stopped", ErrUnavailable)
	}
	if err := cmd.Start(); err != nil {
		d.mu.Unlock()
		return fmt.Errorf("%w: start containerd: %w", ErrUnavailable, err)
	}
	d.cur = p
	d.mu.Unlock()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := writePidFile(d.pidFile, cmd.Process.Pid); err != nil {
		d.log.Warn("cannot record containerd pid", "err", err)
	}
	d.log.Info("started private containerd", "pid", cmd.Process.Pid, "address", d.address, "log", d.logPath)

	if err := d.waitReady(ctx, p); err != nil {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), daemonStopTimeout)
		defer cancel()
		if serr := d.terminate(stopCtx, p); serr != nil {
			d.log.Warn("stopping failed containerd", "err", serr)
		}
		return err
	}
	return nil
}

// Supervise restarts the daemon whenever it exits, until Stop: containers
// keep running under their shims while it is gone, and the restarted
// daemon takes them back, so a serving cgibox recovers without a restart
// of its own. Calling it again does nothing.
func (d *Daemon) Supervise() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.supervising || d.stopping {
		return
	}
	d.supervising = true
	go d.supervise()
}

func (d *Daemon) supervise() {
	defer close(d.supervised)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-d.stop
		cancel()
	}()
	delay := restartDelay
	for {
		p := d.proc()
		up := time.Now()
		select {
		case <-p.exited:
		case <-d.stop:
			return
		}
		if time.Since(up) >= restartSettled {
			delay = restartDelay
		}
		d.log.Error("private containerd exited; restarting it (CGI requests get 503 meanwhile)",
			"pid", p.cmd.Process.Pid, "status", p.waitErr, "in", delay, "log", d.logPath)
		wait := time.NewTimer(delay)
		select {
		case <-wait.C:
		case <-d.stop:
			wait.Stop()
			return
		}
		delay = min(2*delay, restartMaxDelay)
		if err := d.spawn(ctx); err != nil {
			d.log.Error("private containerd did not restart; trying again", "err", err, "in", delay)
			continue
		}
		d.mu.Lock()
		d.restarts++
		d.mu.Unlock()
		d.log.Info("private containerd restarted", "pid", d.Pid())
	}
}

// proc is the current run of the process.
func (d *Daemon) proc() *daemonProc {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur
}

// Pid is the current process's pid.
func (d *Daemon) Pid() int { return d.proc().cmd.Process.Pid }

// Restarts counts the times the supervisor restarted the daemon.
func (d *Daemon) Restarts() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.restarts
}

// privateState is the state directory of dataDir's private containerd,
// below which it keeps the containers' bundles.
func privateState(dataDir string) string { return filepath.Join(dataDir, "containerd", "state") }

func (d *Daemon) waitReady(ctx context.Context, p *daemonProc) error {
	ctx, cancel := context.WithTimeout(ctx, daemonReadyTimeout)
	defer cancel()
	// Wait for the socket to appear, then for the health service.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(d.address); err == nil {
			break
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%w: containerd exited during start-up (%v); see its log", ErrUnavailable, p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("%w: containerd did not create its socket: %w", ErrUnavailable, ctx.Err())
		case <-tick.C:
		}
	}
	c, err := containerd.New(d.address)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer c.Close()
	serving := make(chan error, 1)
	go func() {
		ok, err := c.IsServing(ctx)
		if err == nil && !ok {
			err = errors.New("health check: not serving")
		}
		serving <- err
	}()
	select {
	case err := <-serving:
		if err != nil {
			return fmt.Errorf("%w: containerd does not answer: %w", ErrUnavailable, err)
		}
		return nil
	case <-p.exited:
		return fmt.Errorf("%w: containerd exited during start-up (%v); see its log", ErrUnavailable, p.waitErr)
	}
}

// Address is the daemon's socket.
func (d *Daemon) Address() string { return d.address }

// Stop stops the daemon, and its supervision: SIGTERM, then SIGKILL when
// it has not exited within daemonStopTimeout or before ctx ends.
func (d *Daemon) Stop(ctx context.Context) error {
	d.mu.Lock()
	first := !d.stopping
	d.stopping = true
	supervising := d.supervising
	d.mu.Unlock()
	if first {
		close(d.stop)
	}
	if supervising {
		// A restart under way gives up (its ctx ends) and stops what it
		// started; after this no process is started again.
		<-d.supervised
	}
	p := d.proc()
	select {
	case <-p.exited:
		return nil
	default:
	}
	defer os.Remove(d.pidFile)
	return d.terminate(ctx, p)
}

// terminate ends the process p: SIGTERM, then SIGKILL.
func (d *Daemon) terminate(ctx context.Context, p *daemonProc) error {
	pid := p.cmd.Process.Pid
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop containerd: %w", err)
	}
	timer := time.NewTimer(daemonStopTimeout)
	defer timer.Stop()
	select {
	case <-p.exited:
		d.log.Info("private containerd stopped", "pid", pid)
		return nil
	case <-ctx.Done():
	case <-timer.C:
	}
	d.log.Warn("private containerd did not stop on SIGTERM; killing it", "pid", pid)
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill containerd: %w", err)
	}
	<-p.exited
	return nil
}

// pidFile is what dataDir/containerd.pid records: the daemon and the cgibox
// process that started it, with its start time so that a later process
// reusing the owner's pid is not taken for it.
type pidFile struct {
	PID        int    `json:"pid"`
	Owner      int    `json:"owner"`
	OwnerStart uint64 `json:"owner_start"`
}

func writePidFile(path string, pid int) error {
	self := os.Getpid()
	start, err := processStart(self)
	if err != nil {
		return err
	}
	b, err := json.Marshal(pidFile{PID: pid, Owner: self, OwnerStart: start})
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// readPidFile reads a pid file; one written by an older cgibox holds the
// daemon's pid alone (the owner is then unknown: zero).
func readPidFile(path string) (pidFile, error) {
	b, err := readBounded(path)
	if err != nil {
		return pidFile{}, err
	}
	var pf pidFile
	if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
		pf.PID = n
	} else if err := json.Unmarshal(b, &pf); err != nil {
		return pidFile{}, fmt.Errorf("%s: %w", path, err)
	}
	return pf, nil
}

// ownerAlive reports whether the process that started a daemon still runs.
// An unknown owner counts as alive: nothing proves it gone.
func (pf pidFile) ownerAlive() bool {
	if pf.Owner <= 0 {
		return true
	}
	start, err := processStart(pf.Owner)
	return err == nil && start == pf.OwnerStart
}

// stopStale stops a private containerd with the same config that a cgibox
// started and left behind: it was killed and could not stop it. Only a
// process whose command line names exactly our config file is touched, and
// only when its owner is provably gone; a daemon whose owner runs is an
// error naming both.
func stopStale(pidPath, configPath string, log *slog.Logger) error {
	pf, err := readPidFile(pidPath)
	if err != nil || pf.PID <= 1 {
		return nil
	}
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pf.PID), "cmdline"))
	if err != nil {
		return nil
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) != 3 || filepath.Base(args[0]) != "containerd" || args[1] != "--config" || args[2] != configPath {
		return nil
	}
	if pf.ownerAlive() {
		owner := "a process cgibox cannot tell (the pid file predates owner records)"
		if pf.Owner > 0 {
			owner = fmt.Sprintf("cgibox pid %d, which still runs", pf.Owner)
		}
		return fmt.Errorf("%w: a private containerd (pid %d) already runs for %s, started by %s; "+
			"not stopping it (stop it with `kill %d` if no cgibox uses it)", ErrUnavailable, pf.PID, filepath.Dir(pidPath), owner, pf.PID)
	}
	log.Warn("stopping a private containerd whose cgibox is gone", "pid", pf.PID, "owner", pf.Owner)
	p, err := os.FindProcess(pf.PID)
	if err != nil {
		return nil
	}
	_ = p.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(daemonStopTimeout)
	for time.Now().Before(deadline) {
		if err := p.Signal(syscall.Signal(0)); err != nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond) // polling a foreign process's exit
	}
	_ = p.Signal(syscall.SIGKILL)
	return nil
}
