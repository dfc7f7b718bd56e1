package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgibox/cgibox/images"
	"github.com/cgibox/cgibox/internal/testenv"
	"github.com/containerd/containerd/v2/core/snapshots"
)

// testEnv is the private containerd, launcher and image shared by the
// integration tests of this package; set up once by TestMain when the tests
// run as root.
var testEnv struct {
	manager  *Manager
	daemon   *Daemon
	dir      string
	launcher string
	image    string
	archive  []byte // the busybox image as built
	setupErr error
}

var jobCounter atomic.Int64

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == LaunchCommand {
		// Re-executed by TestLaunchRefusesOtherUsers to be the launcher,
		// exactly as cmd/cgibox's main runs it.
		err := Launch(os.Stdin)
		fmt.Fprintf(os.Stderr, "cgibox launcher: %v\n", err)
		os.Exit(127)
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		return m.Run() // the integration tests skip (or fail) via testenv
	}
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.fuzzworker") {
			return m.Run() // fuzz workers run FuzzReadFrame only
		}
	}
	dir, err := os.MkdirTemp("", "cgibox-sandbox-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Traversable, as containerd's own /var/lib/containerd: the runtime
	// sets a user-namespaced container up as the site's root, which must
	// reach the bundle under the private daemon's state.
	if err := os.Chmod(dir, 0o711); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testEnv.dir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	testEnv.setupErr = setup(ctx, dir, log)
	code := m.Run()
	if testEnv.manager != nil {
		testEnv.manager.Close()
	}
	if testEnv.daemon != nil {
		testEnv.daemon.Stop(context.Background())
	}
	return code
}

func setup(ctx context.Context, dir string, log *slog.Logger) error {
	launcher, err := buildLauncher(ctx, dir)
	if err != nil {
		return err
	}
	testEnv.launcher = launcher
	d, err := StartDaemon(ctx, filepath.Join(dir, "data"), log)
	if err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	testEnv.daemon = d
	m, err := New(ctx, WithAddress(d.Address()), WithDataDir(filepath.Join(dir, "manager")),
		WithLauncher(launcher), WithLogger(log), WithInstance("test"))
	if err != nil {
		return fmt.Errorf("new manager: %w", err)
	}
	testEnv.manager = m
	var archive bytes.Buffer
	if err := images.Build(ctx, "busybox", &archive, nil); err != nil {
		return err
	}
	testEnv.archive = bytes.Clone(archive.Bytes())
	names, err := m.Import(ctx, &archive)
	if err != nil {
		return fmt.Errorf("import busybox: %w", err)
	}
	if len(names) != 1 || names[0] != images.Ref("busybox") {
		return fmt.Errorf("import busybox: got names %v, want [%s]", names, images.Ref("busybox"))
	}
	testEnv.image = names[0]
	return nil
}

// buildLauncher builds the static launcher binary that starts in every
// container (cmd/cgibox-launch).
func buildLauncher(ctx context.Context, dir string) (string, error) {
	launcher := filepath.Join(dir, "cgibox")
	build := exec.CommandContext(ctx, "go", "build", "-o", launcher, "github.com/cgibox/cgibox/cmd/cgibox-launch")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build launcher: %v\n%s", err, out)
	}
	return launcher, nil
}

// manager returns the shared Manager, skipping without root and failing
// when the set-up failed; after the test it checks that nothing of the
// test's jobs is left in the namespace.
func manager(t testing.TB) *Manager {
	t.Helper()
	testenv.RequireRoot(t)
	if testEnv.setupErr != nil {
		t.Fatalf("integration set-up failed: %v", testEnv.setupErr)
	}
	t.Cleanup(func() { assertNamespaceEmpty(t) })
	return testEnv.manager
}

// assertNamespaceEmpty fails when a container, task or active snapshot is
// left in the namespace.
func assertNamespaceEmpty(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := testEnv.manager.Client()
	ctrs, err := c.Containers(ctx)
	if err != nil {
		t.Errorf("list containers: %v", err)
	}
	for _, ctr := range ctrs {
		t.Errorf("container %s left in the namespace", ctr.ID())
	}
	tasks, err := c.TaskService().List(ctx, nil)
	if err == nil {
		for _, tk := range tasks.Tasks {
			t.Errorf("task %s left in the namespace", tk.ID)
		}
	}
	err = c.SnapshotService(Snapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindActive {
			t.Errorf("active snapshot %s left in the namespace", info.Name)
		}
		return nil
	})
	if err != nil {
		t.Errorf("walk snapshots: %v", err)
	}
}

// scriptJob writes script into a fresh directory (mode 0755, so that uid
// 65534 can traverse it) mounted at /www/cgi-bin, and returns a job for it.
func scriptJob(t testing.TB, script string) Job {
	t.Helper()
	dir := hostDir(t, 0, 0o755)
	if err := os.WriteFile(filepath.Join(dir, "s.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return Job{
		ID:         jobID(t),
		Site:       "test.example",
		Image:      testEnv.image,
		ScriptDir:  dir,
		MountPoint: "/www/cgi-bin",
		Path:       "/www/cgi-bin/s.sh",
		Env:        []string{"PATH=/bin:/usr/bin", "GATEWAY_INTERFACE=CGI/1.1"},
		Dir:        "/www/cgi-bin",
	}
}

// hostDir makes a fresh directory owned by uid (and gid uid) with mode
// perm, whose parent others may search: what the runtime needs to mount it
// in a user namespace, where it sets the container up as an unmapped user.
func hostDir(t testing.TB, uid uint32, perm os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, int(uid), int(uid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, perm); err != nil {
		t.Fatal(err)
	}
	return dir
}

var unsafeID = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func jobID(t testing.TB) string {
	id := fmt.Sprintf("%s-%d", unsafeID.ReplaceAllString(t.Name(), "_"), jobCounter.Add(1))
	if len(id) > 64 {
		id = id[len(id)-64:]
	}
	return strings.TrimLeft(id, "_.-")
}

// run runs job with buffers for stdout and stderr.
func run(t *testing.T, ctx context.Context, job Job) (Result, string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	job.Stdout, job.Stderr = &stdout, &stderr
	res, err := testEnv.manager.Run(ctx, job)
	return res, stdout.String(), stderr.String(), err
}
