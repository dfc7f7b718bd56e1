package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
)

const (
	// drainTimeout bounds the wait for the script's output after it exited
	// (a descendant that escaped the pid namespace's teardown cannot
	// exist, but the shim might misbehave).
	drainTimeout = 5 * time.Second
	// killTimeout bounds one Kill call to containerd.
	killTimeout = 5 * time.Second
	// cleanupRetryFor bounds the background retries of a removal that
	// failed because containerd did not answer.
	cleanupRetryFor = 10 * time.Minute
)

// Run runs job in a fresh container and deletes the container afterwards.
//
// Before the script started (job.Started not called yet) an error means
// nothing ran: it wraps ErrUnavailable when containerd, the runtime or the
// image is unavailable (answer 503), and is a plain error for an invalid
// job or a cancelled ctx. Once the script started, Run returns a nil error
// whenever the job ended in one of the known ways (see Reason), and an
// error (with the Result known so far) only when containerd failed under a
// running job.
//
// Result.ExitCode is the script's exit status, or 128+N when it was killed
// by signal N (137 after SIGKILL; what containerd reports, so a script that
// itself exits 137 looks the same: look at Result.Reason). It is -1 when
// the exit status is unknown.
//
// Writes to job.Stdout and job.Stderr all happen before Run returns; a
// Write that blocks (a client that does not read) holds Run until it
// returns, so the writer must carry its own deadline.
func (m *Manager) Run(ctx context.Context, job Job) (Result, error) {
	res := Result{ExitCode: -1}
	if err := checkJob(job); err != nil {
		return res, err
	}
	if job.Users != nil && m.userns != nil {
		// Never without the user namespace the job asked for.
		return res, fmt.Errorf("%w: job %s: no user namespace on this host: %w", ErrUnavailable, job.ID, m.userns)
	}
	// Close ends the job as if its client had gone, and waits for it.
	m.jobs.Add(1)
	defer m.jobs.Done()
	select {
	case <-m.closing:
		return res, fmt.Errorf("%w: cgibox is shutting down", ErrUnavailable)
	default:
	}
	if h := m.health.Load(); !h.up {
		// Fail at once while the monitor sees containerd down, rather
		// than each job waiting for its own timeout.
		return res, fmt.Errorf("%w: containerd has not answered since %s: %w", ErrUnavailable, h.since.Format(time.RFC3339), h.err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-m.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	l := job.Limits.withDefaults(m.defaults)
	args := append([]string{job.Path}, job.Args[min(1, len(job.Args)):]...)
	dir := job.Dir
	if dir == "" {
		dir = path.Dir(job.Path)
	}
	frame, err := EncodeFrame(args, job.Env, dir)
	if err != nil {
		return res, fmt.Errorf("job %s: %w", job.ID, err)
	}
	// The image is looked up for every job, prepared container or not: a
	// job runs in the image as it is now, and a removed image fails it.
	t := time.Now()
	img, err := m.image(ctx, job.Image)
	if err != nil {
		return res, m.beforeStart(ctx, err)
	}
	key := keyOf(job, l)
	c := m.pools.take(key, img.Target().Digest)
	res.Prepared = c != nil
	if c == nil {
		c, err = m.startContainer(ctx, key, img, identity{id: "cgibox-" + job.ID, labels: map[string]string{
			LabelRequest:  job.ID,
			LabelSite:     job.Site,
			LabelDeadline: time.Now().Add(l.Wall).UTC().Format(time.RFC3339),
			LabelInstance: m.instance,
		}})
		if err != nil {
			return res, m.beforeStart(ctx, err)
		}
	}
	res.Phases, res.Container = c.phases, c.id
	if res.Prepared {
		res.Phases.Create = time.Since(t) // looking up the image and taking the container
	}
	defer func() {
		deleted := time.Now()
		m.cleanup(ctx, c)
		m.log.Debug("job phases", "container", c.id, "request", job.ID, "prepared", res.Prepared,
			"create", res.Phases.Create, "task", res.Phases.Task, "start", res.Phases.Start,
			"first_byte", res.Phases.FirstByte, "run", res.Duration, "drain", res.Phases.Drain,
			"delete", time.Since(deleted))
	}()
	end := job.Ended
	job.Ended = func(r Result, err error) {
		if end != nil {
			end(r, err)
		}
		m.pools.done(key)
	}
	res, err = m.runIn(ctx, c, job, l, frame, res)
	return res, err
}

// runIn hands job to the started container c: the frame and the body go
// to the launcher's stdin, the output to the job's writers, and it
// supervises the script until it has exited and its output is drained.
func (m *Manager) runIn(ctx context.Context, c *started, job Job, l Limits, frame []byte, res Result) (Result, error) {
	// What the container used before its job (runtime start, seccomp,
	// the launcher's start) is not the script's.
	base, baseErr := m.cgroups.cpuUsage(c.id)
	if baseErr == nil {
		res.SetupCPU = base
	}
	started := make(chan struct{})
	stdout := &outWriter{w: job.Stdout, limit: l.Output, started: started, ended: make(chan Reason, 1), done: make(chan struct{})}
	stderr := &errWriter{w: job.Stderr}
	if stdout.w == nil {
		stdout.w = io.Discard
	}
	defer stdout.close()
	defer stderr.close()
	c.out.attach(stdout)
	c.errs.attach(stderr)
	feeding := make(chan struct{})
	go func() {
		defer close(feeding)
		_, err := io.Copy(c.stdin, frameReader(frame, job.Stdin))
		c.stdin.CloseWithError(err) // nil: the script sees EOF
	}()
	defer func() {
		// A script that does not read its stdin leaves the feeder blocked:
		// release it, and let no read of job.Stdin outlive Run.
		c.stdinR.CloseWithError(errJobEnded)
		select {
		case <-feeding:
		case <-time.After(drainTimeout):
			m.log.Warn("request body still being read after the job", "container", c.id)
		}
	}()
	start := time.Now()
	// Closing our end of the stdin FIFO is not enough for the script to see
	// EOF: the shim holds the FIFO open for writing too (containerd 1.6,
	// verified by TestRunStdinByteExact). Tell it to close stdin once the
	// body is through.
	runDone := make(chan struct{})
	defer close(runDone)
	go func() {
		select {
		case <-c.eof:
		case <-runDone:
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killTimeout)
		defer cancel()
		if err := c.task.CloseIO(cctx, containerd.WithStdinCloser); err != nil && !errdefs.IsNotFound(err) {
			m.log.Debug("close stdin", "container", c.id, "err", err)
		}
	}()
	if job.Started != nil {
		job.Started()
	}
	close(started)

	var st containerd.ExitStatus
	var err error
	res.Reason, st, err = supervise(ctx, c.task, c.exited, stdout.ended, l, stdout.cut)
	ended := time.Now()
	res.Duration = ended.Sub(start)
	if err == nil {
		if st.Error() != nil {
			err = fmt.Errorf("wait task %s: %w", c.id, st.Error())
		} else {
			res.ExitCode = int(st.ExitCode())
			c.gone = true
			if at := st.ExitTime(); at.After(start) {
				res.Duration = at.Sub(start)
			}
		}
	}
	if err != nil {
		// containerd no longer answers for the task (it died or was
		// restarted): the deadline is enforced without it.
		go m.killAtDeadline(c.id, start.Add(l.Wall+l.KillGrace))
	}
	m.drain(c.task)
	m.readMetrics(ctx, c.task, &res)
	if first := stdout.firstByte(); !first.IsZero() {
		res.Phases.FirstByte = first.Sub(start)
	}
	if baseErr == nil && res.CPU >= base {
		res.CPU -= base
	}
	res.Phases.Drain = time.Since(ended)
	if job.Ended != nil {
		job.Ended(res, err)
	}
	return res, err
}

// errJobEnded ends the read of a job's stdin that outlived the job.
var errJobEnded = errors.New("job ended")

// runtimeOptions are the runc shim's options: the runtime binary when
// WithRuntimeBinary set one, else none (nil: the shim's defaults).
func (m *Manager) runtimeOptions() any {
	if m.runtimeBinary == "" {
		return nil
	}
	return &runcoptions.Options{BinaryName: m.runtimeBinary}
}

// supervise waits for the task to exit; on the deadline, ctx's end or an
// output event it kills the task (SIGTERM to all its processes, then
// SIGKILL after the grace) and says why. At the deadline it calls cut
// first: what a script prints while it dies (a shell goes on after its
// sleep was killed) is not its response. It returns once the task has
// exited, or with an error when the exit can no longer be observed.
func supervise(ctx context.Context, task containerd.Task, exited <-chan containerd.ExitStatus, ended <-chan Reason, l Limits, cut func()) (Reason, containerd.ExitStatus, error) {
	deadline := time.NewTimer(l.Wall)
	defer deadline.Stop()
	var grace *time.Timer
	var graceC <-chan time.Time
	reason := Exited
	var killErr error
	kill := func(sig syscall.Signal) {
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killTimeout)
		defer cancel()
		err := task.Kill(kctx, sig, containerd.WithKillAll)
		if err != nil && !errdefs.IsNotFound(err) && !errdefs.IsFailedPrecondition(err) {
			killErr = fmt.Errorf("kill task with %v: %w", sig, err)
		}
	}
	begin := func(r Reason) {
		if reason != Exited {
			return
		}
		reason = r
		kill(syscall.SIGTERM)
		grace = time.NewTimer(l.KillGrace)
		graceC = grace.C
	}
	defer func() {
		if grace != nil {
			grace.Stop()
		}
	}()
	done := ctx.Done()
	for {
		select {
		case st, ok := <-exited:
			if !ok {
				return reason, st, errors.Join(errors.New("exit status lost"), killErr)
			}
			return reason, st, nil
		case <-deadline.C:
			cut()
			begin(Timeout)
		case <-done:
			done = nil
			begin(ClientGone)
		case r := <-ended:
			begin(r)
		case <-graceC:
			graceC = nil
			kill(syscall.SIGKILL)
			if killErr != nil {
				// The task cannot be killed: containerd is broken.
				return reason, containerd.ExitStatus{}, killErr
			}
		}
	}
}

// beforeStart classifies an error that happened before the script started:
// a cancelled ctx stays itself, containerd failures become ErrUnavailable.
func (m *Manager) beforeStart(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	// Anything containerd or the runtime refused before the script ran
	// is the sandbox being unavailable, not the script's fault.
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// drain waits, bounded, for the output copies to finish, then closes the
// FIFOs.
func (m *Manager) drain(task containerd.Task) {
	tio := task.IO()
	if tio == nil {
		return
	}
	drained := make(chan struct{})
	go func() {
		tio.Wait()
		close(drained)
	}()
	t := time.NewTimer(drainTimeout)
	defer t.Stop()
	select {
	case <-drained:
	case <-t.C:
		m.log.Warn("script output did not drain; cancelling", "container", task.ID())
		tio.Cancel()
	}
}

// cleanup deletes the task, container and snapshot of c under a context
// that outlives the request. When containerd fails (it may be
// restarting), the removal is retried in the background until it answers
// again, so that a script left running is killed and nothing stays behind;
// Sweep at the next start catches what even that misses.
func (m *Manager) cleanup(ctx context.Context, c *started) {
	ctx = context.WithoutCancel(ctx)
	cctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	if c.stdinR != nil {
		c.stdinR.CloseWithError(errJobEnded)
	}
	failed := false
	if c.task != nil {
		select {
		case <-c.eof:
		default:
			// No job's stdin went through (a prepared container retired
			// unused, or a job that failed early): the shim holds the
			// stdin FIFO open, and lingers after the delete, until told.
			if err := c.task.CloseIO(cctx, containerd.WithStdinCloser); err != nil && !errdefs.IsNotFound(err) {
				m.log.Debug("close stdin", "container", c.id, "err", err)
			}
		}
		// A task seen to exit has no process left (its pid namespace
		// went with its init); killing it again costs a runc run.
		var opts []containerd.ProcessDeleteOpts
		if !c.gone {
			opts = append(opts, containerd.WithProcessKill)
		}
		if _, err := c.task.Delete(cctx, opts...); err != nil && !errdefs.IsNotFound(err) {
			m.log.Error("delete task", "container", c.id, "err", err)
			failed = true
		}
	}
	if c.cancelWait != nil {
		c.cancelWait()
	}
	switch err := c.container.Delete(cctx, containerd.WithSnapshotCleanup); {
	case err == nil:
		m.deleted.Add(1)
	case !errdefs.IsNotFound(err):
		m.log.Error("delete container", "container", c.id, "err", err)
		failed = true
	}
	if failed {
		go m.retryRemove(ctx, c.container)
	}
}

// retryRemove removes container (killing its task) once containerd
// answers again, retrying with a growing delay for cleanupRetryFor.
func (m *Manager) retryRemove(ctx context.Context, container containerd.Container) {
	give := time.NewTimer(cleanupRetryFor)
	defer give.Stop()
	for delay := 250 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		wait := time.NewTimer(delay)
		select {
		case <-give.C:
			wait.Stop()
			m.log.Error("leftover container not removed; `cgibox gc` or the next start removes it", "container", container.ID())
			return
		case <-wait.C:
		}
		rctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
		err := removeContainer(rctx, container)
		cancel()
		if err == nil {
			m.deleted.Add(1)
			m.log.Info("removed leftover container after containerd recovered", "container", container.ID())
			return
		}
		m.log.Debug("retrying leftover removal", "container", container.ID(), "err", err)
	}
}

// removeSnapshot removes the snapshot of a container that could not be
// created.
func (m *Manager) removeSnapshot(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := m.client.SnapshotService(Snapshotter).Remove(ctx, key); err != nil && !errdefs.IsNotFound(err) {
		m.log.Warn("remove snapshot of failed container", "snapshot", key, "err", err)
	}
}

// checkJob rejects jobs the sandbox cannot run safely.
func checkJob(j Job) error {
	switch {
	case !validLabelValue(j.ID):
		return fmt.Errorf("job id %q: must match [A-Za-z0-9_.-]{1,64}", j.ID)
	case len(j.Site) > 256:
		return fmt.Errorf("job %s: site name too long", j.ID)
	case j.Image == "":
		return fmt.Errorf("job %s: no image", j.ID)
	case !path.IsAbs(j.Path) || path.Clean(j.Path) != j.Path:
		return fmt.Errorf("job %s: script path %q is not a clean absolute path", j.ID, j.Path)
	case !path.IsAbs(j.MountPoint) || path.Clean(j.MountPoint) != j.MountPoint || j.MountPoint == "/":
		return fmt.Errorf("job %s: mount point %q is not a clean absolute path below /", j.ID, j.MountPoint)
	case j.MountPoint == "/.cgibox" || hasPathPrefix(LauncherPath, j.MountPoint) || hasPathPrefix(j.MountPoint, "/.cgibox"):
		return fmt.Errorf("job %s: mount point %q collides with the launcher", j.ID, j.MountPoint)
	case j.Dir != "" && (!path.IsAbs(j.Dir) || path.Clean(j.Dir) != j.Dir):
		return fmt.Errorf("job %s: dir %q is not a clean absolute path", j.ID, j.Dir)
	case j.DataDir != "" && (hasPathPrefix(j.MountPoint, DataMountPoint) || hasPathPrefix(DataMountPoint, j.MountPoint)):
		return fmt.Errorf("job %s: mount point %q collides with the data directory's %s", j.ID, j.MountPoint, DataMountPoint)
	}
	if j.Users != nil {
		if err := j.Users.Check(); err != nil {
			return fmt.Errorf("job %s: %w", j.ID, err)
		}
	}
	if err := checkDir(j.ScriptDir); err != nil {
		return fmt.Errorf("job %s: script dir: %w", j.ID, err)
	}
	if j.DataDir != "" {
		if err := checkDir(j.DataDir); err != nil {
			return fmt.Errorf("job %s: data dir: %w", j.ID, err)
		}
	}
	return nil
}

// checkDir fails unless dir is an absolute path to a directory.
func checkDir(dir string) error {
	if !path.IsAbs(dir) {
		return fmt.Errorf("%q is not an absolute path", dir)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%q is not a directory", dir)
	}
	return nil
}

// hasPathPrefix reports whether p is prefix or below it.
func hasPathPrefix(p, prefix string) bool {
	return p == prefix || len(p) > len(prefix) && p[:len(prefix)] == prefix && p[len(prefix)] == '/'
}

// eofReader closes eof when its reader is exhausted (or fails).
type eofReader struct {
	r    io.Reader
	eof  chan struct{}
	once sync.Once
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.once.Do(func() { close(e.eof) })
	}
	return n, err
}

// outWriter passes the script's stdout to the job's writer: not before the
// job's Started callback returned, not beyond the output limit, not after a
// failed write, never after Run returned. It reports OutputLimit or ClientGone (the writer failed) on
// ended, once.
type outWriter struct {
	w       io.Writer
	limit   int64
	started <-chan struct{}
	ended   chan Reason
	done    chan struct{} // closed by close

	// cutOff is set at the deadline: later writes are discarded. Not
	// under mu, which a write to a slow client holds.
	cutOff atomic.Bool

	mu     sync.Mutex
	n      int64
	failed bool
	closed bool
	first  time.Time // of the first byte
}

// Write never fails: after the limit, a write error or the end of Run it
// discards. The FIFO must keep being read, or the shim blocks on it and
// holds up the task's deletion (containerd 1.6 waits 2 s for its copies).
func (o *outWriter) Write(p []byte) (int, error) {
	select {
	case <-o.started:
	case <-o.done:
		return len(p), nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.failed || o.cutOff.Load() {
		return len(p), nil
	}
	if o.first.IsZero() {
		o.first = time.Now()
	}
	q := p
	over := false
	if rest := o.limit - o.n; int64(len(q)) > rest {
		q, over = q[:rest], true
	}
	n, err := o.w.Write(q)
	o.n += int64(n)
	switch {
	case err != nil:
		o.fail(ClientGone)
	case over:
		o.fail(OutputLimit)
	}
	return len(p), nil
}

// cut discards the output from now on; a write under way finishes.
func (o *outWriter) cut() { o.cutOff.Store(true) }

// firstByte is when the first byte of output came, or zero.
func (o *outWriter) firstByte() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.first
}

func (o *outWriter) fail(r Reason) {
	o.failed = true
	select {
	case o.ended <- r:
	default:
	}
}

// close waits for a Write in progress and refuses later ones.
func (o *outWriter) close() {
	close(o.done)
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
}

// errWriter passes stderr to the job's writer until it fails or Run
// returns; afterwards stderr is discarded, so a broken log never kills a
// script.
type errWriter struct {
	w      io.Writer
	mu     sync.Mutex
	closed bool
}

func (e *errWriter) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.w == nil {
		return len(p), nil
	}
	if _, err := e.w.Write(p); err != nil {
		e.w = nil
	}
	return len(p), nil
}

func (e *errWriter) close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
}
