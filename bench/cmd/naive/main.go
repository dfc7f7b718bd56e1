// Command naive is the benchmark's "straightforward containerd user": an
// HTTP server that runs each /cgi-bin/NAME request in a fresh container the
// way containerd's getting-started guide does it, all on the request path:
// NewContainer (a new snapshot of the image, a spec from the image config
// with the script's cgi-bin bind-mounted read-only and containerd's default
// seccomp profile), NewTask with its stdout captured, Wait, Start, wait for
// the exit, delete the task and the container with its snapshot, and only
// then answer with the script's output after its header lines.
//
// It talks to a containerd that is already running (the private one of a
// cgibox serving on the same data directory), in cgibox's namespace, and
// deletes the containers it made when it stops.
//
//	naive -addr 127.0.0.1:8082 -address /tmp/x/data/containerd.sock -site /tmp/x/site
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cgibox/cgibox/images"
	"github.com/cgibox/cgibox/sandbox"
)

const (
	// labelOwner marks this peer's containers with the pid of the naive
	// process that made them, for its clean-up at exit.
	labelOwner     = "cgibox-bench.naive"
	maxOutput      = 1 << 20 // bytes of a script's stdout kept; more is a 502
	scriptTimeout  = 30 * time.Second
	cleanupTimeout = 30 * time.Second
	drainTimeout   = 5 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "naive: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("naive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "`address` to listen on")
	address := fs.String("address", "", "containerd socket `path` (a running daemon)")
	namespace := fs.String("namespace", sandbox.Namespace, "containerd `namespace`")
	image := fs.String("image", images.Ref("busybox"), "image `reference` the scripts run in")
	site := fs.String("site", "", "site `directory`; its cgi-bin is mounted read-only at /site/cgi-bin")
	fifoDir := fs.String("fifo-dir", "", "`directory` for the tasks' stdio FIFOs (default: a new one under the system temp dir)")
	maxConcurrent := fs.Int("max-concurrent", 16, "containers at `once`; above, requests answer 503")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *address == "" || *site == "" {
		return errors.New("need -address and -site")
	}
	if *maxConcurrent <= 0 {
		return errors.New("-max-concurrent must be above zero")
	}
	cgiDir, err := filepath.Abs(filepath.Join(*site, "cgi-bin"))
	if err != nil {
		return fmt.Errorf("-site: %w", err)
	}
	if *fifoDir == "" {
		if *fifoDir, err = os.MkdirTemp("", "naive-fifo-"); err != nil {
			return fmt.Errorf("fifo dir: %w", err)
		}
		defer os.RemoveAll(*fifoDir)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	client, err := containerd.New(*address, containerd.WithDefaultNamespace(*namespace), containerd.WithTimeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("containerd %s: %w", *address, err)
	}
	defer client.Close()
	img, err := client.GetImage(ctx, *image)
	if err != nil {
		return fmt.Errorf("image %s: %w", *image, err)
	}
	r := &runner{
		client:  client,
		image:   img,
		cgiDir:  cgiDir,
		fifoDir: *fifoDir,
		owner:   strconv.Itoa(os.Getpid()),
		slots:   make(chan struct{}, *maxConcurrent),
		log:     log,
	}
	defer r.removeLeftovers(context.WithoutCancel(ctx))

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	fmt.Fprintf(stderr, "naive: serving %s on http://%s/cgi-bin/ (containerd %s, image %s)\n", cgiDir, ln.Addr(), *address, *image)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	// Let the requests in flight finish; their containers are deleted on
	// their way out, and removeLeftovers catches the rest.
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	return srv.Shutdown(shut)
}

// runner runs one container per request.
type runner struct {
	client  *containerd.Client
	image   containerd.Image
	cgiDir  string
	fifoDir string
	owner   string
	seq     atomic.Uint64
	slots   chan struct{}
	log     *slog.Logger
}

func (r *runner) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	name, ok := strings.CutPrefix(req.URL.Path, "/cgi-bin/")
	if !ok || name == "" || strings.Contains(name, "/") || strings.HasPrefix(name, ".") {
		http.NotFound(w, req)
		return
	}
	if st, err := os.Stat(filepath.Join(r.cgiDir, name)); err != nil || !st.Mode().IsRegular() {
		http.NotFound(w, req)
		return
	}
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	default:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	id := fmt.Sprintf("naive-%s-%d", r.owner, r.seq.Add(1))
	out, err := r.runScript(req.Context(), id, name)
	if err != nil {
		r.log.Error("script failed", "container", id, "script", name, "err", err)
		http.Error(w, "script failed", http.StatusBadGateway)
		return
	}
	header, body := splitHeader(out)
	if ct := header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// runScript does the whole lifecycle of one container and returns the
// script's stdout.
func (r *runner) runScript(ctx context.Context, id, script string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, scriptTimeout)
	defer cancel()
	ctr, err := r.client.NewContainer(ctx, id,
		containerd.WithNewSnapshot(id, r.image),
		containerd.WithContainerLabels(map[string]string{labelOwner: r.owner}),
		containerd.WithNewSpec(
			oci.WithImageConfig(r.image),
			oci.WithProcessArgs("/bin/sh", "/site/cgi-bin/"+script),
			oci.WithMounts([]specs.Mount{{
				Destination: "/site/cgi-bin",
				Type:        "bind",
				Source:      r.cgiDir,
				Options:     []string{"bind", "ro", "nosuid", "nodev"},
			}}),
			seccomp.WithDefaultProfile(),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("new container: %w", err)
	}
	// Cleanup must happen even when the client went away.
	defer func() {
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer ccancel()
		if err := remove(cctx, ctr); err != nil {
			r.log.Warn("container not removed", "container", id, "err", err)
		}
	}()
	stdout := &boundedBuffer{max: maxOutput}
	task, err := ctr.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, stdout, io.Discard), cio.WithFIFODir(r.fifoDir)))
	if err != nil {
		return nil, fmt.Errorf("new task: %w", err)
	}
	exitc, err := task.Wait(ctx) // before Start, so the exit is never missed
	if err != nil {
		return nil, fmt.Errorf("wait: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	var status containerd.ExitStatus
	select {
	case status = <-exitc:
	case <-ctx.Done():
		return nil, fmt.Errorf("script: %w", context.Cause(ctx))
	}
	// The v2 client's Delete cancels the output copy (it closes our ends
	// of the FIFOs) before it waits, which loses output a short script
	// wrote just before it exited: wait for the copy first, bounded.
	drain(task.IO())
	if _, err := task.Delete(ctx); err != nil {
		return nil, fmt.Errorf("delete task: %w", err)
	}
	if code, _, err := status.Result(); err != nil || code != 0 {
		return nil, fmt.Errorf("script exited %d: %w", code, err)
	}
	if stdout.over {
		return nil, fmt.Errorf("output over %d bytes", maxOutput)
	}
	return stdout.buf.Bytes(), nil
}

// drain waits up to drainTimeout for a task's output to be copied.
func drain(tio cio.IO) {
	if tio == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		tio.Wait()
		close(done)
	}()
	t := time.NewTimer(drainTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		tio.Cancel()
	}
}

// remove deletes a container's task (killing it if it still runs) and the
// container with its snapshot.
func remove(ctx context.Context, ctr containerd.Container) error {
	if task, err := ctr.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task: %w", err)
		}
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("load task: %w", err)
	}
	if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container: %w", err)
	}
	return nil
}

// removeLeftovers deletes every container this process made that is still
// there (a request cut by the stop).
func (r *runner) removeLeftovers(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	ctrs, err := r.client.Containers(ctx, fmt.Sprintf("labels.%q==%s", labelOwner, r.owner))
	if err != nil {
		r.log.Warn("listing leftover containers", "err", err)
		return
	}
	for _, c := range ctrs {
		if err := remove(ctx, c); err != nil {
			r.log.Warn("leftover container not removed", "container", c.ID(), "err", err)
		}
	}
}

// splitHeader splits CGI output into its header block and body.
func splitHeader(out []byte) (http.Header, []byte) {
	h := http.Header{}
	br := bufio.NewReader(bytes.NewReader(out))
	consumed := 0
	for range 100 {
		line, err := br.ReadString('\n')
		consumed += len(line)
		trimmed := strings.TrimRight(line, "\r\n")
		if trimmed == "" {
			return h, out[consumed:]
		}
		if k, v, ok := strings.Cut(trimmed, ":"); ok {
			h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
		if err != nil {
			break
		}
	}
	// No blank line: not a CGI response; pass it through as the body.
	return http.Header{}, out
}

// boundedBuffer keeps at most max bytes and notes that more came.
type boundedBuffer struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	room := b.max - b.buf.Len()
	if len(p) > room {
		b.over = true
		b.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.buf.Write(p)
}
