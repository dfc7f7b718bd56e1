package sandbox

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

// A started container is a fresh container whose task has been created and
// started, its launcher blocked reading the frame on stdin. It holds
// nothing of any request: the spec is the site's, argv, environment and
// body arrive through stdin only when a job attaches. It serves one job and
// is deleted after it.
type started struct {
	id        string
	container containerd.Container
	task      containerd.Task
	// exited delivers the task's exit status; it outlives any request
	// (cancelWait ends it).
	exited     <-chan containerd.ExitStatus
	cancelWait context.CancelFunc
	// stdin feeds the task's stdin copy; stdinR is its other end, closed
	// on deletion to release a feeder whose script does not read.
	stdin  *io.PipeWriter
	stdinR *io.PipeReader
	eof    <-chan struct{} // closed when the job's stdin is through
	out    *relay
	errs   *relay
	phases Phases
	image  digest.Digest
	born   time.Time
	// pid and pidStart identify the launcher's process on this host;
	// pidStart is 0 when its pid is not visible here (containerd in
	// another pid namespace).
	pid      int
	pidStart uint64
	// gone is set once the task's exit has been observed.
	gone bool
}

// identity is what names and labels a container.
type identity struct {
	id     string
	labels map[string]string
}

// image looks up the image of a job. One that is missing fails with
// ErrUnavailable and ErrImageNotFound. The lookup is bounded: a daemon
// that hangs (stopped, or swapping) fails the job rather than holding it.
func (m *Manager) image(ctx context.Context, ref string) (containerd.Image, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	img, err := m.client.GetImage(ctx, ref)
	switch {
	case errdefs.IsNotFound(err):
		return nil, fmt.Errorf("%w: %w: %s", ErrUnavailable, ErrImageNotFound, ref)
	case err != nil:
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	return img, nil
}

// startContainer creates a container for key from img, creates its task
// and starts it. The task's stdio is wired to relays that a job attaches
// later. On failure nothing is left behind.
func (m *Manager) startContainer(ctx context.Context, key poolKey, img containerd.Image, who identity) (*started, error) {
	t := time.Now()
	opts := []containerd.NewContainerOpts{
		containerd.WithRuntime(Runtime, m.runtimeOptions()),
		containerd.WithContainerLabels(who.labels),
		containerd.WithImageName(key.image),
		containerd.WithSnapshotter(Snapshotter),
		// A writable snapshot so that runc can create the mount points;
		// the spec makes the root read-only for the task.
		containerd.WithNewSnapshot(who.id, img, snapshots.WithLabels(who.labels)),
		containerd.WithNewSpec(hardenedSpec(m.specConfig(key))),
	}
	if key.userRange() != nil {
		// In its user namespace runc cannot create them.
		opts = append(opts, withMountPoints)
	}
	container, err := m.client.NewContainer(ctx, who.id, opts...)
	if err != nil {
		m.removeSnapshot(ctx, who.id)
		return nil, fmt.Errorf("create container %s: %w", who.id, err)
	}
	m.created.Add(1)
	s := &started{
		id: who.id, container: container, image: img.Target().Digest,
		out: &relay{}, errs: &relay{keep: earlyStderrCap},
	}
	s.phases.Create = time.Since(t)
	fail := func(err error) (*started, error) {
		m.cleanup(ctx, s)
		return nil, err
	}
	s.stdinR, s.stdin = io.Pipe()
	eof := make(chan struct{})
	s.eof = eof
	stdin := &eofReader{r: s.stdinR, eof: eof}
	t = time.Now()
	s.task, err = container.NewTask(ctx, cio.NewCreator(cio.WithStreams(stdin, s.out, s.errs)))
	if err != nil {
		return fail(fmt.Errorf("create task %s: %w", who.id, err))
	}
	// Wait before Start (containerd's documented order) so that the exit
	// cannot be missed. The wait outlives ctx: a request that ends must
	// still observe the exit, and a prepared container outlives the
	// request that made the pool grow.
	waitCtx, cancelWait := context.WithCancel(context.WithoutCancel(ctx))
	s.cancelWait = cancelWait
	if s.exited, err = s.task.Wait(waitCtx); err != nil {
		return fail(fmt.Errorf("wait task %s: %w", who.id, err))
	}
	s.phases.Task = time.Since(t)
	t = time.Now()
	if err := s.task.Start(ctx); err != nil {
		return fail(fmt.Errorf("start task %s: %w", who.id, err))
	}
	s.phases.Start = time.Since(t)
	s.born = time.Now()
	s.pid = int(s.task.Pid())
	if _, start, err := processState(s.pid); err == nil {
		s.pidStart = start
	}
	return s, nil
}

// usable reports why s cannot take a job, or "" when it can: its task must
// still be running and must not have written anything yet (the launcher
// writes nothing before it has read a frame). The exit event can lag
// behind the process's death: the process itself is looked at too, when
// its pid is visible here, else the shim is asked.
func (s *started) usable(ctx context.Context) string {
	select {
	case <-s.exited:
		return "exited"
	default:
	}
	if s.pidStart != 0 {
		if state, start, err := processState(s.pid); err != nil || start != s.pidStart || state == 'Z' || state == 'X' {
			return "exited"
		}
	} else {
		ctx, cancel := context.WithTimeout(ctx, killTimeout)
		defer cancel()
		if st, err := s.task.Status(ctx); err != nil || st.Status != containerd.Running {
			return "exited"
		}
	}
	if s.out.early() > 0 || s.errs.early() > 0 {
		return "wrote before its job"
	}
	return ""
}

// earlyStderrCap bounds what is kept of a started container's stderr
// before a job attaches (for the log of one that failed).
const earlyStderrCap = 2 << 10

// relay passes a task's output stream to the writer a job attaches. What
// comes before is counted and, up to keep bytes, kept for the log.
type relay struct {
	keep int
	mu   sync.Mutex
	w    io.Writer
	n    int64
	buf  []byte
}

func (r *relay) Write(p []byte) (int, error) {
	r.mu.Lock()
	w := r.w
	if w == nil {
		r.n += int64(len(p))
		if room := r.keep - len(r.buf); room > 0 {
			r.buf = append(r.buf, p[:min(room, len(p))]...)
		}
		r.mu.Unlock()
		return len(p), nil
	}
	r.mu.Unlock()
	// One copy goroutine writes each stream: no two Writes overlap.
	return w.Write(p)
}

// attach sends everything from now on to w.
func (r *relay) attach(w io.Writer) {
	r.mu.Lock()
	r.w = w
	r.mu.Unlock()
}

// early is how many bytes came before a writer was attached.
func (r *relay) early() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// kept is what was kept of them.
func (r *relay) kept() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.buf)
}
