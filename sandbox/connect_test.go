package sandbox

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgibox/cgibox/internal/testenv"
)

// The data directory's lock records its holder, and a second taker learns
// who it is (flock locks belong to open files, so this works in one process).
func TestLockDataDirNamesHolder(t *testing.T) {
	dir := t.TempDir()
	l, err := lockDataDir(dir, "serve")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.connected("/run/x.sock", true); err != nil {
		t.Fatal(err)
	}
	_, err = lockDataDir(dir, "image ls")
	var busy *BusyError
	if !errors.As(err, &busy) || !errors.Is(err, ErrDataDirBusy) {
		t.Fatalf("second lockDataDir = %v, want a *BusyError", err)
	}
	want := Holder{PID: os.Getpid(), Command: "serve", Containerd: "/run/x.sock", Private: true}
	got := busy.Holder
	got.Since = time.Time{}
	if got != want {
		t.Errorf("holder = %+v, want %+v", got, want)
	}
	for _, s := range []string{dir, "cgibox serve", "pid " + strconv.Itoa(os.Getpid()), "private containerd on /run/x.sock"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if err := l.release(); err != nil {
		t.Fatal(err)
	}
	l2, err := lockDataDir(dir, "gc")
	if err != nil {
		t.Fatalf("lockDataDir after release = %v", err)
	}
	l2.release()
	if _, err := readHolder(dir); err == nil {
		t.Errorf("readHolder after release found a holder; the record must be emptied")
	}
}

func TestProcessStartTellsProcessesApart(t *testing.T) {
	self, err := processStart(os.Getpid())
	if err != nil || self == 0 {
		t.Fatalf("processStart(self) = %d, %v", self, err)
	}
	again, _ := processStart(os.Getpid())
	if again != self {
		t.Errorf("processStart(self) changed: %d then %d", self, again)
	}
	if _, err := processStart(deadPid(t)); err == nil {
		t.Errorf("processStart of an exited process succeeded")
	}
}

func TestPidFileOwner(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		content string
		alive   bool
	}{
		{"owner runs", mustJSON(t, pidFile{PID: 5, Owner: os.Getpid(), OwnerStart: mustStart(t)}), true},
		{"owner gone", mustJSON(t, pidFile{PID: 5, Owner: deadPid(t), OwnerStart: 1}), false},
		{"pid reused by another process", mustJSON(t, pidFile{PID: 5, Owner: os.Getpid(), OwnerStart: mustStart(t) + 1}), false},
		{"older cgibox: owner unknown", "5\n", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "containerd.pid")
			if err := os.WriteFile(p, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			pf, err := readPidFile(p)
			if err != nil || pf.PID != 5 {
				t.Fatalf("readPidFile(%q) = %+v, %v", c.content, pf, err)
			}
			if got := pf.ownerAlive(); got != c.alive {
				t.Errorf("ownerAlive(%q) = %v, want %v", c.content, got, c.alive)
			}
		})
	}
}

// The fix for the bug where `cgibox image ls` stopped a serving cgibox's
// private containerd: beside a holder, New uses the holder's daemon and
// Close leaves it running; without WithShareDataDir New refuses.
func TestNewBesideHolderLeavesItsDaemon(t *testing.T) {
	manager(t)
	dataDir, err := os.MkdirTemp("", "cgibox-beside-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dataDir)
	ctx := testContext(t)
	holder, err := New(ctx, WithAddress(AddressPrivate), WithDataDir(dataDir), WithLauncher(testEnv.launcher))
	if err != nil {
		t.Fatalf("New(private): %v", err)
	}
	defer holder.Close()
	if !holder.Private() || holder.Address() != filepath.Join(dataDir, "containerd.sock") {
		t.Fatalf("holder: Private() = %v, Address() = %q; want its own daemon under %s", holder.Private(), holder.Address(), dataDir)
	}
	daemonPid := holder.endpoint.daemon.Pid()

	_, err = New(ctx, WithDataDir(dataDir), WithLauncher(testEnv.launcher))
	var busy *BusyError
	if !errors.As(err, &busy) || busy.Holder.Containerd != holder.Address() {
		t.Errorf("second New without sharing = %v, want a *BusyError naming %s", err, holder.Address())
	}
	for _, addr := range []string{AddressAuto, AddressPrivate} {
		beside, err := New(ctx, WithAddress(addr), WithDataDir(dataDir), WithLauncher(testEnv.launcher),
			WithShareDataDir(), WithCommand("image ls"), WithStandardAddress(testEnv.daemon.Address()))
		if err != nil {
			t.Fatalf("New(%s) beside the holder: %v", addr, err)
		}
		if beside.Address() != holder.Address() || beside.Private() || beside.instance == holder.instance {
			t.Errorf("beside (%s): Address() = %q, Private() = %v, instance %q; want the holder's daemon %q, not private, not instance %q",
				addr, beside.Address(), beside.Private(), beside.instance, holder.Address(), holder.instance)
		}
		if err := beside.Close(); err != nil {
			t.Errorf("Close beside the holder: %v", err)
		}
	}
	if err := syscall.Kill(daemonPid, 0); err != nil {
		t.Fatalf("the holder's containerd (pid %d) is gone after a command beside it closed: %v", daemonPid, err)
	}
	if ok, err := holder.Client().IsServing(ctx); err != nil || !ok {
		t.Errorf("the holder's containerd no longer answers: %v, %v", ok, err)
	}
}

// auto prefers a daemon on the standard socket, and then starts nothing.
func TestNewAutoUsesStandardSocket(t *testing.T) {
	manager(t)
	dataDir := t.TempDir()
	m, err := New(testContext(t), WithDataDir(dataDir), WithLauncher(testEnv.launcher),
		WithStandardAddress(testEnv.daemon.Address()), WithInstance("auto-standard"), WithoutStartupSweep())
	if err != nil {
		t.Fatalf("New(auto): %v", err)
	}
	defer m.Close()
	if m.Address() != testEnv.daemon.Address() || m.Private() {
		t.Errorf("Address() = %q, Private() = %v; want the standard socket %q", m.Address(), m.Private(), testEnv.daemon.Address())
	}
	if _, err := os.Stat(filepath.Join(dataDir, "containerd.sock")); err == nil {
		t.Errorf("a private containerd was started although the standard socket answers")
	}
	h, err := readHolder(dataDir)
	if err != nil || h.Containerd != testEnv.daemon.Address() || h.Private || h.Command != "serve" {
		t.Errorf("lock record = %+v, %v; want serve on %s, not private", h, err, testEnv.daemon.Address())
	}
}

// A private containerd whose owner still runs is never stopped by another
// StartDaemon; one whose owner is gone is.
func TestStartDaemonStopsOnlyOrphans(t *testing.T) {
	testenv.RequireRoot(t)
	dataDir, err := os.MkdirTemp("", "cgibox-stale-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dataDir)
	ctx := testContext(t)
	first, err := StartDaemon(ctx, dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Stop(ctx)
	if _, err := StartDaemon(ctx, dataDir, nil); err == nil || !strings.Contains(err.Error(), "already runs") {
		t.Fatalf("StartDaemon beside a live owner's daemon = %v, want an error saying it already runs", err)
	}
	select {
	case <-first.proc().exited:
		t.Fatalf("the first daemon was stopped although its owner runs")
	default:
	}
	// Now make its recorded owner a process that has exited.
	pf, err := readPidFile(first.pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pf.Owner, pf.OwnerStart = deadPid(t), 1
	if err := os.WriteFile(first.pidFile, []byte(mustJSON(t, pf)), 0o600); err != nil {
		t.Fatal(err)
	}
	second, err := StartDaemon(ctx, dataDir, nil)
	if err != nil {
		t.Fatalf("StartDaemon after the owner is gone: %v", err)
	}
	defer second.Stop(ctx)
	select {
	case <-first.proc().exited:
	case <-time.After(daemonStopTimeout):
		t.Errorf("the orphaned daemon still runs")
	}
}

// deadPid returns the pid of a child that has exited and been reaped.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func mustStart(t *testing.T) uint64 {
	t.Helper()
	s, err := processStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A command never works beside a shorter command than serve: that one
// stops its private containerd when it ends, under whatever would use it.
// The second command waits for the data directory instead, then holds it.
func TestNewWaitsForShortLivedHolder(t *testing.T) {
	manager(t)
	dataDir, err := os.MkdirTemp("", "cgibox-wait-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dataDir)
	ctx := testContext(t)
	build, err := New(ctx, WithAddress(AddressPrivate), WithDataDir(dataDir), WithLauncher(testEnv.launcher),
		WithCommand("image build"), WithoutStartupSweep())
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	type made struct {
		m   *Manager
		err error
	}
	second := make(chan made, 1)
	go func() {
		m, err := New(ctx, WithAddress(AddressPrivate), WithDataDir(dataDir), WithLauncher(testEnv.launcher),
			WithShareDataDir(), WithCommand("image ls"), WithoutStartupSweep(),
			WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
		second <- made{m, err}
	}()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(logs.String(), "waiting for the cgibox that holds the data directory") {
		select {
		case r := <-second:
			build.Close()
			t.Fatalf("New beside an image build returned (%v, %v) instead of waiting for it", r.m, r.err)
		case <-deadline:
			build.Close()
			t.Fatalf("New beside an image build neither waited nor returned; log:\n%s", logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := build.Close(); err != nil {
		t.Fatal(err)
	}
	r := <-second
	if r.err != nil {
		t.Fatalf("New after the image build ended: %v", r.err)
	}
	defer r.m.Close()
	if r.m.endpoint.lock == nil || !r.m.Private() {
		t.Errorf("after waiting: holds the lock %v, private daemon %v; want both", r.m.endpoint.lock != nil, r.m.Private())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
