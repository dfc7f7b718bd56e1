package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgibox/cgibox/internal/testenv"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/cio"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The hardening tests run in both shapes of container (shapes): as the
// host's nobody and in a user namespace of a site's own.

func TestRunIdentity(t *testing.T) {
	manager(t)
	for _, sh := range shapes() {
		t.Run(sh.name, func(t *testing.T) {
			job := scriptJob(t, "#!/bin/sh\nid -u; id -g; id -G\n")
			job.Users = sh.users
			res, out, errOut, err := run(t, testContext(t), job)
			if err != nil || res.Reason != Exited || res.ExitCode != 0 {
				t.Fatalf("Run = %+v, %v; stderr %q", res, err, errOut)
			}
			if want := "65534\n65534\n65534\n"; out != want {
				t.Errorf("id -u; id -g; id -G printed %q, want %q", out, want)
			}
		})
	}
}

func TestRunProcessStatus(t *testing.T) {
	manager(t)
	for _, sh := range shapes() {
		t.Run(sh.name, func(t *testing.T) {
			job := scriptJob(t, "#!/bin/sh\ngrep -e '^Cap' -e '^NoNewPrivs' -e '^Seccomp:' /proc/self/status\n")
			job.Users = sh.users
			res, out, errOut, err := run(t, testContext(t), job)
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("Run = %+v, %v; stderr %q", res, err, errOut)
			}
			for _, want := range []string{"CapInh:\t0000000000000000", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
				"CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"} {
				if !strings.Contains(out, want+"\n") {
					t.Errorf("/proc/self/status lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestRunEnvironmentIsExactlyTheJobs(t *testing.T) {
	manager(t)
	// /proc/$$/environ is the environment the shell was exec'd with.
	job := scriptJob(t, "#!/bin/sh\ntr '\\0' '\\n' < /proc/$$/environ\n")
	job.Env = []string{"PATH=/bin", "GATEWAY_INTERFACE=CGI/1.1", "QUERY_STRING=a=1&b", "HTTP_X=y z", "EMPTY="}
	t.Setenv("CGIBOX_CANARY", "leaked") // must not reach the script
	res, out, errOut, err := run(t, testContext(t), job)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v; stderr %q", res, err, errOut)
	}
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if !slices.Equal(got, job.Env) {
		t.Errorf("script environment = %q, want exactly %q", got, job.Env)
	}
}

func TestRunArgsAndDir(t *testing.T) {
	manager(t)
	job := scriptJob(t, "#!/bin/sh\necho \"$0|$#|$1|$2\"; pwd\n")
	job.Args = []string{"ignored", "-s", "two words"}
	job.Dir = "/tmp"
	_, out, errOut, err := run(t, testContext(t), job)
	if want := "/www/cgi-bin/s.sh|2|-s|two words\n/tmp\n"; err != nil || out != want {
		t.Errorf("Run = %q, %v (stderr %q), want %q", out, err, errOut, want)
	}
}

func TestRunStdinByteExact(t *testing.T) {
	manager(t)
	binary := make([]byte, 0, 4096)
	for i := range 4096 {
		binary = append(binary, byte(i))
	}
	big := make([]byte, 1<<20)
	rand.Read(big)
	tests := []struct {
		name  string
		input []byte
	}{
		{"empty", nil},
		{"binary", binary},
		{"1MiB", big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := scriptJob(t, "#!/bin/sh\nexec cat\n")
			job.Stdin = bytes.NewReader(tt.input)
			job.Limits.Wall = 20 * time.Second
			res, out, errOut, err := run(t, testContext(t), job)
			if err != nil || res.Reason != Exited || res.ExitCode != 0 {
				t.Fatalf("Run = %+v, %v; stderr %q (a cat that never sees EOF times out)", res, err, errOut)
			}
			if !bytes.Equal([]byte(out), tt.input) {
				t.Errorf("cat echoed %d bytes, want the %d bytes of input exactly", len(out), len(tt.input))
			}
		})
	}
}

// arrivals records when each chunk of output arrived.
type arrivals struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	times []time.Time
}

func (a *arrivals) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.times = append(a.times, time.Now())
	return a.buf.Write(p)
}

func TestRunStreamsOutput(t *testing.T) {
	m := manager(t)
	job := scriptJob(t, "#!/bin/sh\necho first\nsleep 1\necho second\n")
	var out arrivals
	var startedAt time.Time
	job.Stdout = &out
	job.Started = func() { startedAt = time.Now() }
	res, err := m.Run(testContext(t), job)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if out.buf.String() != "first\nsecond\n" || len(out.times) < 2 {
		t.Fatalf("output %q in %d chunks, want first and second in two chunks", out.buf.String(), len(out.times))
	}
	exitAt := startedAt.Add(res.Duration)
	if lead := exitAt.Sub(out.times[0]); lead < 500*time.Millisecond {
		t.Errorf("first chunk arrived %v before the exit, want it while the script slept (>= 500ms)", lead)
	}
}

func TestRunStartedBeforeOutput(t *testing.T) {
	m := manager(t)
	job := scriptJob(t, "#!/bin/sh\necho out\n")
	var mu sync.Mutex
	var events []string
	job.Started = func() {
		mu.Lock()
		events = append(events, "started")
		mu.Unlock()
	}
	job.Stdout = writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		events = append(events, "output")
		mu.Unlock()
		return len(p), nil
	})
	if _, err := m.Run(testContext(t), job); err != nil {
		t.Fatal(err)
	}
	if len(events) < 2 || events[0] != "started" {
		t.Errorf("events = %v, want started before any output", events)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestRunDeadline(t *testing.T) {
	manager(t)
	job := scriptJob(t, "#!/bin/sh\ntrap '' TERM\necho up\nsleep 1000\necho never\n")
	job.Limits.Wall = time.Second
	job.Limits.KillGrace = 200 * time.Millisecond
	begin := time.Now()
	res, out, _, err := run(t, testContext(t), job)
	took := time.Since(begin)
	if err != nil || res.Reason != Timeout || res.ExitCode != 137 {
		t.Errorf("Run = %+v, %v; want reason %s, exit 137 (SIGKILL: TERM is trapped)", res, err, Timeout)
	}
	if out != "up\n" {
		t.Errorf("output %q, want %q", out, "up\n")
	}
	if res.Duration < time.Second || took > 5*time.Second {
		t.Errorf("ran %v (Run took %v), want the 1s deadline + 200ms grace", res.Duration, took)
	}
}

// After the deadline nothing more of the script's output is passed on:
// a shell whose sleep the SIGTERM killed goes on printing while it dies.
func TestRunNothingAfterDeadline(t *testing.T) {
	manager(t)
	job := scriptJob(t, "#!/bin/sh\ntrap 'echo trapped' TERM\necho up\nsleep 1000 &\nwait\necho after\n")
	job.Limits.Wall = time.Second
	job.Limits.KillGrace = 2 * time.Second
	res, out, _, err := run(t, testContext(t), job)
	if err != nil || res.Reason != Timeout {
		t.Errorf("Run = %+v, %v; want reason %s", res, err, Timeout)
	}
	if out != "up\n" {
		t.Errorf("output %q, want only what came before the deadline, %q", out, "up\n")
	}
}

func TestRunClientGone(t *testing.T) {
	m := manager(t)
	job := scriptJob(t, "#!/bin/sh\nsleep 1000\n")
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	var cancelledAt time.Time
	job.Started = func() {
		time.AfterFunc(200*time.Millisecond, func() { cancelledAt = time.Now(); cancel() })
	}
	res, err := m.Run(ctx, job)
	returned := time.Now()
	if err != nil || res.Reason != ClientGone {
		t.Fatalf("Run = %+v, %v; want reason %s", res, err, ClientGone)
	}
	killedAfter := cancelledAt.Add(-200 * time.Millisecond).Add(res.Duration).Sub(cancelledAt)
	if killedAfter > time.Second || returned.Sub(cancelledAt) > 2*time.Second {
		t.Errorf("script died %v after the cancel (Run returned after %v), want within 1s", killedAfter, returned.Sub(cancelledAt))
	}
}

func TestRunWriteErrorEndsJob(t *testing.T) {
	m := manager(t)
	job := scriptJob(t, "#!/bin/sh\nwhile :; do echo x; done\n")
	job.Stdout = writerFunc(func(p []byte) (int, error) { return 0, errors.New("client went away") })
	res, err := m.Run(testContext(t), job)
	if err != nil || res.Reason != ClientGone {
		t.Errorf("Run = %+v, %v; want reason %s", res, err, ClientGone)
	}
}

func TestRunOutputLimit(t *testing.T) {
	manager(t)
	job := scriptJob(t, "#!/bin/sh\nexec yes\n")
	job.Limits.Output = 100 << 10
	res, out, _, err := run(t, testContext(t), job)
	if err != nil || res.Reason != OutputLimit {
		t.Errorf("Run = %+v, %v; want reason %s", res, err, OutputLimit)
	}
	if len(out) != 100<<10 {
		t.Errorf("got %d bytes of output, want exactly the limit %d", len(out), 100<<10)
	}
}

func TestRunOutOfMemory(t *testing.T) {
	m := manager(t)
	// tail keeps the last line in memory; /dev/zero has no newline. The
	// script then waits for the test to read its cgroup. The hog asks to
	// be the OOM killer's first choice (raising one's own oom_score_adj
	// needs no privilege): on a busy host the killer otherwise took the
	// shell too, and the cgroup was never read.
	job := scriptJob(t, "#!/bin/sh\nsh -c 'echo 1000 > /proc/self/oom_score_adj; head -c 300m /dev/zero | tail -n 1' | wc -c\necho counted\nread x || :\n")
	job.Limits.Memory = 32 << 20
	var out, errOut bytes.Buffer
	job.Stderr = &errOut
	kc := readCountersAt(&job, "counted", &out)
	res, err := m.Run(testContext(t), job)
	if err != nil || res.Reason != OutOfMemory {
		t.Errorf("Run = %+v, %v (stdout %q, stderr %q); want reason %s", res, err, out.String(), errOut.String(), OutOfMemory)
	}
	if kc.oomErr != nil || kc.oomKills == 0 {
		t.Errorf("the cgroup's OOM kill count = %d, %v; want the killed tail counted", kc.oomKills, kc.oomErr)
	}
	if res.OOMKills == 0 {
		t.Errorf("Result.OOMKills = 0, want the killed tail counted")
	}
	if assertMatchesKernel(t, res, kc) && (res.PeakMemory < 16<<20 || res.PeakMemory > 33<<20) {
		t.Errorf("peak memory %d, want near the 32 MiB limit", res.PeakMemory)
	}
}

func TestRunMetrics(t *testing.T) {
	m := manager(t)
	job := scriptJob(t, "#!/bin/sh\ni=0; while [ $i -lt 20000 ]; do i=$((i+1)); done\necho counted\nread x || :\n")
	var out bytes.Buffer
	kc := readCountersAt(&job, "counted", &out)
	res, err := m.Run(testContext(t), job)
	if err != nil || res.ExitCode != 0 || res.Reason != Exited {
		t.Fatalf("Run = %+v, %v (stdout %q)", res, err, out.String())
	}
	if res.CPU <= 0 || res.Duration <= 0 {
		t.Errorf("result %+v: want CPU and duration", res)
	}
	if kc.oomErr != nil || kc.oomKills != 0 {
		t.Errorf("the cgroup's OOM kill count = %d, %v; want 0", kc.oomKills, kc.oomErr)
	}
	assertMatchesKernel(t, res, kc)
}

// kernelCounters is what the kernel said of a running job's cgroup (see
// readCountersAt).
type kernelCounters struct {
	read     bool
	mode     string
	cpu      time.Duration
	cpuErr   error
	peak     int64
	peakErr  error
	oomKills uint64
	oomErr   error
}

// readCountersAt sets job's stdin and stdout so that when the script
// prints the line mark, its cgroup's counters are read and then its stdin
// is closed: the script waits for that EOF after mark. out receives the
// script's output.
func readCountersAt(job *Job, mark string, out *bytes.Buffer) *kernelCounters {
	stdin, stdinW := io.Pipe()
	job.Stdin = stdin
	id := "cgibox-" + job.ID
	kc := &kernelCounters{}
	job.Stdout = writerFunc(func(p []byte) (int, error) {
		out.Write(p)
		if !kc.read && strings.Contains(out.String(), mark+"\n") {
			cg := DetectCgroups("")
			kc.read, kc.mode = true, cg.Mode()
			kc.cpu, kc.cpuErr = cg.cpuUsage(id)
			kc.peak, kc.peakErr = cg.peakMemory(id)
			kc.oomKills, kc.oomErr = cg.oomKills(id)
			stdinW.Close()
		}
		return len(p), nil
	})
	return kc
}

// assertMatchesKernel checks that res reports what the kernel counted
// before the script's end (it may count a little more after it: the
// script's last steps). It says whether the kernel gave a peak.
func assertMatchesKernel(t *testing.T, res Result, kc *kernelCounters) (peak bool) {
	t.Helper()
	if !kc.read {
		t.Fatalf("the script never reached the point where its cgroup is read (result %+v)", res)
	}
	// The cgroup counts the container's set-up too (runtime, seccomp,
	// launcher): Result.SetupCPU, which Result.CPU leaves out.
	if total := res.CPU + res.SetupCPU; kc.cpuErr != nil || total < kc.cpu || total > kc.cpu+time.Second {
		t.Errorf("%s: Result.CPU + SetupCPU = %v + %v; the cgroup said %v, %v before the end", kc.mode, res.CPU, res.SetupCPU, kc.cpu, kc.cpuErr)
	}
	if res.SetupCPU <= 0 || res.SetupCPU >= kc.cpu {
		t.Errorf("Result.SetupCPU = %v, want some of the cgroup's %v", res.SetupCPU, kc.cpu)
	}
	switch {
	case kc.mode == CgroupV2 && errors.Is(kc.peakErr, fs.ErrNotExist):
		// Linux before 5.19 has no memory.peak: no peak to report.
		t.Logf("no memory.peak on this kernel: %v", kc.peakErr)
		if res.PeakMemory != 0 {
			t.Errorf("Result.PeakMemory = %d without memory.peak, want 0", res.PeakMemory)
		}
		return false
	case kc.peakErr != nil || kc.peak <= 0 || res.PeakMemory < kc.peak || res.PeakMemory > kc.peak+16<<20:
		t.Errorf("%s: Result.PeakMemory = %d; the cgroup said %d, %v before the end", kc.mode, res.PeakMemory, kc.peak, kc.peakErr)
	}
	return true
}

func TestRunPidsLimit(t *testing.T) {
	manager(t)
	// The subshell forks until it cannot (ash then gives up); the parent
	// counts what exists with builtins only.
	job := scriptJob(t, "#!/bin/sh\n(i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done) 2>/dev/null\nset -- /proc/[0-9]*\necho $#\n")
	job.Limits.Pids = 16
	res, out, errOut, err := run(t, testContext(t), job)
	if err != nil {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	n, convErr := strconv.Atoi(strings.TrimSpace(out))
	if convErr != nil || n > 16 || n < 8 {
		t.Errorf("processes in the container = %q (result %+v, stderr %q), want at most the pids limit 16 (and the bomb to have tried)", out, res, errOut)
	}
}

func TestRunFilesystem(t *testing.T) {
	manager(t)
	script := `#!/bin/sh
try() { if "$@" 2>/dev/null; then echo "$*: ok"; else echo "$*: fail"; fi; }
try touch /bin/x
try touch /www/cgi-bin/x
try touch /x
try sh -c 'echo hi > /tmp/f && test "$(cat /tmp/f)" = hi'
try sh -c 'echo 1 > /proc/sys/kernel/hostname'
try sh -c 'echo b > /proc/sysrq-trigger'
try test -e /dev/mem
try test -e /dev/kmsg
try test -c /dev/null
try sh -c 'head -c 5 /dev/urandom | wc -c | grep -q 5'
try grep -Eq ' cgroup2? ' /proc/self/mounts
try touch /dev/x
try mknod /tmp/null c 1 3
try chown 0:0 /tmp/f
try cat /proc/kcore
`
	for _, sh := range shapes() {
		t.Run(sh.name, func(t *testing.T) {
			job := scriptJob(t, script)
			job.Users = sh.users
			_, out, errOut, err := run(t, testContext(t), job)
			if err != nil {
				t.Fatalf("Run: %v (stderr %q)", err, errOut)
			}
			if out != filesystemWant {
				t.Errorf("filesystem checks:\n%s\nwant:\n%s", out, filesystemWant)
			}
		})
	}
}

const filesystemWant = `touch /bin/x: fail
touch /www/cgi-bin/x: fail
touch /x: fail
sh -c echo hi > /tmp/f && test "$(cat /tmp/f)" = hi: ok
sh -c echo 1 > /proc/sys/kernel/hostname: fail
sh -c echo b > /proc/sysrq-trigger: fail
test -e /dev/mem: fail
test -e /dev/kmsg: fail
test -c /dev/null: ok
sh -c head -c 5 /dev/urandom | wc -c | grep -q 5: ok
grep -Eq  cgroup2?  /proc/self/mounts: fail
touch /dev/x: fail
mknod /tmp/null c 1 3: fail
chown 0:0 /tmp/f: fail
cat /proc/kcore: fail
`

func TestRunNoNetwork(t *testing.T) {
	manager(t)
	for _, sh := range shapes() {
		t.Run(sh.name, func(t *testing.T) {
			job := scriptJob(t, "#!/bin/sh\ntail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '\n")
			job.Users = sh.users
			_, out, errOut, err := run(t, testContext(t), job)
			if err != nil || out != "lo\n" {
				t.Errorf("interfaces = %q, %v (stderr %q); want only lo", out, err, errOut)
			}
		})
	}
}

func TestRunMissingImage(t *testing.T) {
	manager(t)
	job := scriptJob(t, "#!/bin/sh\necho hi\n")
	job.Image = "cgibox.local/nonesuch:latest"
	started := false
	job.Started = func() { started = true }
	_, _, _, err := run(t, testContext(t), job)
	if !errors.Is(err, ErrUnavailable) || started {
		t.Errorf("Run with a missing image = %v (started %v), want ErrUnavailable before start", err, started)
	}
}

func TestRunRejectsBadJobs(t *testing.T) {
	m := manager(t)
	base := scriptJob(t, "#!/bin/sh\n")
	tests := []struct {
		name string
		edit func(*Job)
	}{
		{"bad id", func(j *Job) { j.ID = "a/b" }},
		{"relative path", func(j *Job) { j.Path = "s.sh" }},
		{"unclean path", func(j *Job) { j.Path = "/www/../s.sh" }},
		{"root mount point", func(j *Job) { j.MountPoint = "/" }},
		{"launcher mount point", func(j *Job) { j.MountPoint = "/.cgibox" }},
		{"missing script dir", func(j *Job) { j.ScriptDir = "/nonexistent/dir" }},
		{"env without =", func(j *Job) { j.Env = []string{"X"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := base
			tt.edit(&job)
			job.Started = func() { t.Error("Started called for an invalid job") }
			if _, err := m.Run(testContext(t), job); err == nil || errors.Is(err, ErrUnavailable) {
				t.Errorf("Run(%s) = %v, want a plain error", tt.name, err)
			}
		})
	}
}

func TestSweepRemovesLeftovers(t *testing.T) {
	m := manager(t)
	ctx := testContext(t)
	job := scriptJob(t, "#!/bin/sh\nsleep 1000\n")
	id := "cgibox-" + job.ID
	// What a cgibox killed mid-request leaves: a labelled container with a
	// running task and its snapshot.
	img, err := m.client.GetImage(ctx, job.Image)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{LabelRequest: job.ID, LabelSite: job.Site, LabelInstance: m.instance,
		LabelDeadline: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	ctr, err := m.client.NewContainer(ctx, id, containerd.WithRuntime(Runtime, nil),
		containerd.WithContainerLabels(labels), containerd.WithSnapshotter(Snapshotter),
		containerd.WithNewSnapshot(id, img, snapshots.WithLabels(labels)),
		containerd.WithNewSpec(hardenedSpec(specConfig{Launcher: m.launcher, ScriptDir: job.ScriptDir,
			MountPoint: job.MountPoint, Limits: m.defaults})))
	if err != nil {
		t.Fatal(err)
	}
	frame, err := EncodeFrame([]string{job.Path}, job.Env, job.Dir)
	if err != nil {
		t.Fatal(err)
	}
	stdin, stdinW := io.Pipe()
	defer stdinW.Close()
	go stdinW.Write(frame)
	task, err := ctr.NewTask(ctx, cio.NewCreator(cio.WithStreams(stdin, io.Discard, io.Discard)))
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// An orphan snapshot too (cgibox died before creating its container),
	// held by a lease so that containerd's own garbage collector does not
	// remove it first.
	orphan := "cgibox-" + job.ID + "-orphan"
	leaseCtx, done, err := m.client.WithLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer done(ctx)
	if _, err := m.client.SnapshotService(Snapshotter).Prepare(leaseCtx, orphan, "", snapshots.WithLabels(labels)); err != nil {
		t.Fatal(err)
	}

	removed, err := m.Sweep(ctx)
	if err != nil || removed != 2 {
		t.Errorf("Sweep = %d, %v; want 2 removed (the container and the orphan snapshot)", removed, err)
	}
	// assertNamespaceEmpty (cleanup of manager) checks the rest.
}

func TestSweepOwnership(t *testing.T) {
	m := &Manager{instance: "test"}
	cases := []struct {
		name     string
		instance string
		deadline time.Time
		owned    bool
	}{
		{"ours", m.instance, time.Now().Add(time.Hour), true},
		{"other, live", "other", time.Now().Add(time.Hour), false},
		{"other, past deadline", "other", time.Now().Add(-time.Hour), true},
	}
	for _, c := range cases {
		labels := map[string]string{LabelInstance: c.instance, LabelDeadline: c.deadline.UTC().Format(time.RFC3339)}
		if got := m.owns(labels, time.Now()); got != c.owned {
			t.Errorf("%s: owns(%v) = %v, want %v", c.name, labels, got, c.owned)
		}
	}
}

func TestNewUnreachableSocket(t *testing.T) {
	testenv.RequireRoot(t)
	if testEnv.setupErr != nil {
		t.Fatalf("integration set-up failed: %v", testEnv.setupErr)
	}
	sock := filepath.Join(t.TempDir(), "nothing.sock")
	_, err := New(testContext(t), WithAddress(sock), WithDataDir(t.TempDir()), WithLauncher(testEnv.launcher))
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("New(%s) = %v, want ErrUnavailable", sock, err)
	}
}

// BenchmarkTrivialJob measures a job that does nothing, end to end:
// create the container, start it, the script exits, delete it. It needs
// root and the containerd TestMain starts:
//
//	go test -run '^$' -bench TrivialJob ./sandbox
func BenchmarkTrivialJob(b *testing.B) {
	m := manager(b)
	job := scriptJob(b, "#!/bin/sh\nexit 0\n")
	id := jobID(b)
	for i := 0; b.Loop(); i++ {
		job.ID = fmt.Sprintf("%s-%d", id, i)
		ctx, cancel := context.WithTimeout(b.Context(), 60*time.Second)
		res, err := m.Run(ctx, job)
		cancel()
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("run %d: %+v, %v", i, res, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
}

func TestRunCgroupLimits(t *testing.T) {
	m := manager(t)
	cg := DetectCgroups("")
	if !probeCgroups(cg).swap {
		testenv.Skip(t, "host without memory+swap accounting")
	}
	// The files runc writes the limits to, and what they must hold.
	type file struct{ controller, name, want string }
	v1 := []file{
		{"memory", "memory.limit_in_bytes", strconv.Itoa(48 << 20)},
		{"memory", "memory.memsw.limit_in_bytes", strconv.Itoa(48 << 20)}, // memory+swap: no swap
		{"pids", "pids.max", "20"},
		{"cpu", "cpu.cfs_quota_us", "25000"},
		{"cpu", "cpu.cfs_period_us", "100000"},
	}
	files := map[string][]file{
		CgroupV1:     v1,
		CgroupHybrid: v1,
		CgroupV2: {
			{"memory", "memory.max", strconv.Itoa(48 << 20)},
			{"memory", "memory.swap.max", "0"}, // swap alone: none
			{"pids", "pids.max", "20"},
			{"cpu", "cpu.max", "25000 100000"},
		},
	}[cg.Mode()]
	if files == nil {
		t.Fatalf("cgroup mode %s: no files to read the limits from", cg.Mode())
	}
	job := scriptJob(t, "#!/bin/sh\nexec cat\n")
	job.Limits = Limits{Memory: 48 << 20, Pids: 20, CPU: 0.25}
	body, bodyW := io.Pipe()
	job.Stdin = body
	got := map[string]string{}
	job.Started = func() {
		// The script blocks on stdin until the files are read.
		defer bodyW.Close()
		for _, f := range files {
			b, err := cg.read(f.controller, "cgibox-"+job.ID, f.name)
			got[f.name] = strings.TrimSpace(string(b))
			if err != nil {
				got[f.name] = "error: " + err.Error()
			}
		}
	}
	if res, err := m.Run(testContext(t), job); err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	for _, f := range files {
		if got[f.name] != f.want {
			t.Errorf("cgroup %s: container cgroup %s = %q, want %q", cg.Mode(), f.name, got[f.name], f.want)
		}
	}
}

func TestNewAutoStartsPrivateDaemon(t *testing.T) {
	testenv.RequireRoot(t)
	if testEnv.setupErr != nil {
		t.Fatalf("integration set-up failed: %v", testEnv.setupErr)
	}
	dataDir, err := os.MkdirTemp("", "cgibox-auto-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dataDir)
	// Whatever this host has on the real standard socket, auto here meets
	// a standard socket where nothing answers.
	m, err := New(testContext(t), WithDataDir(dataDir), WithLauncher(testEnv.launcher),
		WithStandardAddress(filepath.Join(dataDir, "no-standard.sock")))
	if err != nil {
		t.Fatalf("New(auto): %v", err)
	}
	pid := m.endpoint.daemon.Pid()
	if !m.Private() || m.Address() != filepath.Join(dataDir, "containerd.sock") {
		t.Errorf("Private() = %v, Address() = %q; want a private daemon on %s", m.Private(), m.Address(), filepath.Join(dataDir, "containerd.sock"))
	}
	for _, f := range []string{"containerd.toml", "containerd.log", "containerd.pid"} {
		if _, err := os.Stat(filepath.Join(dataDir, f)); err != nil {
			t.Errorf("private daemon: %v", err)
		}
	}
	// Its bundles are below the data directory, mode 0700 here: runc
	// could not reach them from a user namespace.
	if err := m.UserNamespaces(); err == nil || !strings.Contains(err.Error(), "cannot search "+dataDir+" (mode 0700)") {
		t.Errorf("UserNamespaces() with a private daemon under a 0700 data directory = %v, want the directory named", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("containerd (pid %d) still runs after Close", pid)
	}
}

func TestImages(t *testing.T) {
	m := manager(t)
	ctx := testContext(t)
	ref := testEnv.image
	list, err := m.ListImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found *ImageInfo
	for i := range list {
		if list[i].Name == ref {
			found = &list[i]
		}
	}
	if found == nil || found.Size <= 0 || found.Created.IsZero() || found.Labels["cgibox.image"] != "busybox" {
		t.Errorf("ListImages = %+v, want %s with size, creation time and the recipe labels", list, ref)
	}
	// Remove it, then restore it for the other tests.
	if err := m.RemoveImage(ctx, ref); err != nil {
		t.Fatalf("RemoveImage: %v", err)
	}
	has, err := m.HasImage(ctx, ref)
	if err != nil || has {
		t.Errorf("HasImage after RemoveImage = %v, %v; want false", has, err)
	}
	names, err := m.Import(ctx, bytes.NewReader(testEnv.archive))
	if err != nil || len(names) != 1 || names[0] != ref {
		t.Fatalf("Import = %v, %v; want [%s]", names, err, ref)
	}
	has, err = m.HasImage(ctx, ref)
	if err != nil || !has {
		t.Errorf("HasImage after Import = %v, %v; want true", has, err)
	}
	// And it runs.
	job := scriptJob(t, "#!/bin/sh\necho ok\n")
	if _, out, _, err := run(t, ctx, job); err != nil || out != "ok\n" {
		t.Errorf("job on the re-imported image: %q, %v", out, err)
	}
}

func TestRunCreateFailureLeavesNothing(t *testing.T) {
	manager(t)
	// runc cannot mount the script directory below a regular file: the
	// task is never created. The container and snapshot must go too
	// (checked by manager's cleanup).
	job := scriptJob(t, "#!/bin/sh\necho never\n")
	job.MountPoint = "/etc/passwd/cgi-bin"
	job.Path = "/etc/passwd/cgi-bin/s.sh"
	job.Dir = "/"
	started := false
	job.Started = func() { started = true }
	_, _, _, err := run(t, testContext(t), job)
	if !errors.Is(err, ErrUnavailable) || started {
		t.Errorf("Run = %v (started %v), want ErrUnavailable before start", err, started)
	}
}

// TestCloseEndsRunningJobs: stopping cgibox must not leave a running script
// or its container behind: Close ends the jobs under way and waits until
// they are deleted.
func TestCloseEndsRunningJobs(t *testing.T) {
	manager(t) // root, the shared daemon, and the empty-namespace check
	m, err := New(t.Context(), WithAddress(testEnv.manager.Address()), WithDataDir(t.TempDir()),
		WithLauncher(testEnv.launcher), WithInstance("close-test"), WithoutStartupSweep())
	if err != nil {
		t.Fatal(err)
	}
	job := scriptJob(t, "#!/bin/sh\ntrap '' TERM\necho started\nwhile :; do sleep 1; done\n")
	job.Limits.Wall = time.Minute
	started := make(chan struct{})
	job.Started = func() { close(started) }
	job.Stdout = io.Discard
	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := m.Run(t.Context(), job)
		done <- outcome{res, err}
	}()
	select {
	case <-started:
	case o := <-done:
		t.Fatalf("job ended before it started: %+v %v", o.res, o.err)
	}
	closed := time.Now()
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case o := <-done:
		if o.res.Reason == Exited {
			t.Errorf("job ended as %q; Close must have killed it", o.res.Reason)
		}
	default:
		t.Fatalf("Close returned after %s while the job still ran", time.Since(closed))
	}
	// Close waited for the delete: nothing is left right now.
	ctrs, err := testEnv.manager.Client().Containers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ctrs {
		t.Errorf("container %s left after Close", c.ID())
	}
}

// int80 is a program that makes a 32-bit system call (getpid through
// int 0x80) from a 64-bit process.
const int80Main = `package main

import "fmt"

func getpid32() int32

func main() { fmt.Println("getpid via int 0x80:", getpid32()) }
`

const int80Asm = `#include "textflag.h"

TEXT ·getpid32(SB),NOSPLIT,$0-4
	MOVL $20, AX
	INT $0x80
	MOVL AX, ret+0(FP)
	RET
`

// TestRunNo32BitSyscalls: the seccomp filter admits the native ABI only. A
// 32-bit system call is never carried out: the kernel kills the calling
// thread (seccomp's action for a foreign architecture), which leaves a Go
// program hung until the deadline.
func TestRunNo32BitSyscalls(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("the int 0x80 probe is x86-64 code; this is %s", runtime.GOARCH)
	}
	manager(t)
	src := t.TempDir()
	for name, body := range map[string]string{"go.mod": "module int80\n\ngo 1.26\n", "main.go": int80Main, "int80_amd64.s": int80Asm} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	job := scriptJob(t, "#!/bin/sh\n/www/cgi-bin/int80\n")
	build := exec.Command("go", "build", "-o", filepath.Join(job.ScriptDir, "int80"), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH=amd64", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the probe: %v\n%s", err, out)
	}
	const works = "getpid via int 0x80: "
	if out, err := exec.Command(filepath.Join(job.ScriptDir, "int80")).CombinedOutput(); err != nil || !strings.HasPrefix(string(out), works) {
		t.Fatalf("the probe outside the sandbox: %v, %q; want it to work", err, out)
	}
	job.Limits.Wall = 2 * time.Second
	res, out, errOut, err := run(t, testContext(t), job)
	if err != nil {
		t.Fatalf("Run = %+v, %v; stderr %q", res, err, errOut)
	}
	if strings.Contains(out, works) || res.ExitCode == 0 {
		t.Errorf("the 32-bit system call was carried out: %+v, output %q", res, out)
	}
}
