package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
)

// poolManager returns a Manager with pools on the shared daemon, under an
// instance of its own. It is closed after the test, and then none of its
// containers may be left.
func poolManager(t *testing.T, cfg PoolConfig) *Manager {
	t.Helper()
	manager(t) // skips without root; checks the namespace after the test
	instance := jobID(t)
	m, err := New(testContext(t), WithAddress(testEnv.daemon.Address()), WithDataDir(t.TempDir()),
		WithLauncher(testEnv.launcher), WithInstance(instance), WithPool(cfg),
		WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if ids := instanceContainers(t, instance); len(ids) > 0 {
			t.Errorf("containers of instance %s left after Close: %v", instance, ids)
		}
		closed := time.Now()
		for pids := preparedShims(); len(pids) > 0; pids = preparedShims() {
			if time.Since(closed) > 10*time.Second {
				t.Errorf("shims of prepared containers left 10s after Close: %v", pids)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return m
}

// preparedShims lists the shim processes of prepared containers of the
// test daemon.
func preparedShims() []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte("containerd-shim")) &&
			bytes.Contains(b, []byte(testEnv.daemon.Address()+"\x00")) && bytes.Contains(b, []byte("\x00cgibox-p-")) {
			out = append(out, filepath.Base(filepath.Dir(p)))
		}
	}
	return out
}

// instanceContainers lists the containers labelled with instance.
func instanceContainers(t *testing.T, instance string) []string {
	t.Helper()
	ctrs, err := testEnv.manager.Client().Containers(testContext(t), fmt.Sprintf("labels.%q==%s", LabelInstance, instance))
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	var ids []string
	for _, c := range ctrs {
		ids = append(ids, c.ID())
	}
	return ids
}

// waitReady waits until m's pools hold n prepared containers.
func waitReady(t *testing.T, m *Manager, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := 0
		for _, p := range m.Pools() {
			ready += p.Ready
		}
		if ready >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pools %+v: want %d prepared containers within 30s", m.Pools(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// prepared lists the prepared containers of m's instance.
func preparedOf(t *testing.T, m *Manager) []containerd.Container {
	t.Helper()
	ctrs, err := m.Client().Containers(testContext(t),
		fmt.Sprintf("labels.%q==%s,labels.%q==true", LabelInstance, m.instance, LabelPrepared))
	if err != nil {
		t.Fatal(err)
	}
	return ctrs
}

// again returns job with a fresh id and its own output buffers.
func again(t *testing.T, job Job) (Job, *bytes.Buffer, *bytes.Buffer) {
	job.ID = jobID(t)
	var out, errOut bytes.Buffer
	job.Stdout, job.Stderr = &out, &errOut
	return job, &out, &errOut
}

func TestPoolHandsOverPreparedContainers(t *testing.T) {
	cfg := PoolConfig{Max: 2, Min: 1, Idle: time.Hour, MaxAge: time.Hour}
	m := poolManager(t, cfg)
	tmpl := scriptJob(t, "#!/bin/sh\nid -u\ngrep Seccomp: /proc/self/status\ntr '\\0' '\\n' < /proc/$$/environ\nwc -c\n")
	tmpl.Env = []string{"PATH=/bin", "QUERY_STRING=a=1&b", "HTTP_X=y z"}

	job, _, errOut := again(t, tmpl)
	res, err := m.Run(testContext(t), job)
	if err != nil || res.ExitCode != 0 || res.Prepared {
		t.Fatalf("first job: Run = %+v, %v (stderr %q); want a container of its own (empty pool)", res, err, errOut)
	}
	// The miss raised the target to 2: once both wait, none is half made.
	waitReady(t, m, 2)

	// What waits holds nothing of any request: the launcher's fixed argv
	// and PATH only, labels naming its owner and a deadline beyond its
	// longest wait.
	ctrs := preparedOf(t, m)
	if len(ctrs) == 0 {
		t.Fatal("no container labelled as prepared")
	}
	for _, c := range ctrs {
		labels, err := c.Labels(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if labels[LabelOwner] != ownerLabel() || labels[LabelSite] != tmpl.Site {
			t.Errorf("prepared container %s: labels %v, want owner %q and site %q", c.ID(), labels, ownerLabel(), tmpl.Site)
		}
		if d, err := time.Parse(time.RFC3339, labels[LabelDeadline]); err != nil || d.Before(time.Now().Add(cfg.MaxAge)) {
			t.Errorf("prepared container %s: deadline %q, want after its longest wait (%v)", c.ID(), labels[LabelDeadline], cfg.MaxAge)
		}
		task, err := c.Task(testContext(t), nil)
		if err != nil {
			t.Fatalf("prepared container %s has no task: %v", c.ID(), err)
		}
		pid := strconv.Itoa(int(task.Pid()))
		environ, err1 := os.ReadFile("/proc/" + pid + "/environ")
		cmdline, err2 := os.ReadFile("/proc/" + pid + "/cmdline")
		if err1 != nil || err2 != nil {
			t.Fatalf("prepared launcher %s: %v %v", pid, err1, err2)
		}
		// The spec's PATH, and the HOME runc adds from the image's
		// passwd: nothing else.
		for _, kv := range strings.Split(strings.TrimSuffix(string(environ), "\x00"), "\x00") {
			if kv != ScriptPATH && !strings.HasPrefix(kv, "HOME=") {
				t.Errorf("prepared launcher's environment has %q (all: %q), want only %s and HOME", kv, environ, ScriptPATH)
			}
		}
		if want := LauncherPath + "\x00" + LaunchCommand + "\x00"; string(cmdline) != want {
			t.Errorf("prepared launcher's argv = %q, want %q", cmdline, want)
		}
	}

	body := make([]byte, 100<<10)
	rand.Read(body)
	job, out, errOut := again(t, tmpl)
	job.Stdin = bytes.NewReader(body)
	res, err = m.Run(testContext(t), job)
	if err != nil || res.ExitCode != 0 || res.Reason != Exited {
		t.Fatalf("second job: Run = %+v, %v (stderr %q)", res, err, errOut)
	}
	if !res.Prepared {
		t.Errorf("second job: Result.Prepared = false with a prepared container ready")
	}
	want := "65534\nSeccomp:\t2\n" + strings.Join(tmpl.Env, "\n") + "\n" + strconv.Itoa(len(body)) + "\n"
	if out.String() != want {
		t.Errorf("second job printed %q, want %q", out, want)
	}
	if res.SetupCPU <= 0 {
		t.Errorf("Result.SetupCPU = %v, want the container's start-up", res.SetupCPU)
	}
	if s := m.Pools(); len(s) != 1 || s[0].Hits != 1 || s[0].Misses != 1 || s[0].Site != tmpl.Site || s[0].Image != tmpl.Image {
		t.Errorf("Pools() = %+v, want one pool for %s/%s with 1 hit and 1 miss", s, tmpl.Site, tmpl.Image)
	}
	waitReady(t, m, 1)
	cost, err := m.PreparedCost(testContext(t))
	if err != nil || cost.Containers < 1 || cost.ShimRSS <= 0 || cost.LauncherRSS <= 0 {
		t.Errorf("PreparedCost = %+v, %v; want the shims' and launchers' memory", cost, err)
	}
}

// TestPoolJobsShareNothing runs rounds of three jobs at once through a
// pool: each must find an empty /tmp and run in a container, pid, network,
// mount and cgroup namespace of its own.
func TestPoolJobsShareNothing(t *testing.T) {
	const at = 3
	m := poolManager(t, PoolConfig{Max: at, Min: at, Idle: time.Hour, MaxAge: time.Hour})
	// The script holds its namespaces until its stdin ends, so that the
	// jobs of a round overlap (a namespace's inode is reused once it is
	// gone).
	tmpl := scriptJob(t, "#!/bin/sh\nls -A /tmp | wc -l\necho x > /tmp/mark\nfor n in pid net mnt cgroup; do readlink /proc/self/ns/$n; done\ncat >/dev/null\n")
	job, _, _ := again(t, tmpl)
	if _, err := m.Run(testContext(t), job); err != nil {
		t.Fatal(err)
	}
	containers := map[string]bool{}
	prepared := 0
	for round := range 2 {
		waitReady(t, m, at)
		var wg sync.WaitGroup
		results := make([]Result, at)
		outs := make([]*syncBuffer, at)
		stdins := make([]*io.PipeWriter, at)
		printed := make(chan struct{}, at)
		for i := range at {
			job, _, errOut := again(t, tmpl)
			outs[i] = &syncBuffer{lines: 5, full: printed}
			job.Stdout = outs[i]
			var stdin *io.PipeReader
			stdin, stdins[i] = io.Pipe()
			job.Stdin = stdin
			wg.Go(func() {
				res, err := m.Run(testContext(t), job)
				if err != nil || res.ExitCode != 0 {
					t.Errorf("round %d job %d: Run = %+v, %v (stderr %q)", round, i, res, err, errOut)
				}
				results[i] = res
			})
		}
		for range at {
			select {
			case <-printed:
			case <-testContext(t).Done():
				t.Fatal("the jobs did not all print their namespaces")
			}
		}
		seen := map[string]int{}
		for i, o := range outs {
			lines := strings.Split(strings.TrimSpace(o.String()), "\n")
			if len(lines) != 5 || lines[0] != "0" {
				t.Errorf("round %d job %d printed %q: want an empty /tmp (0) and 4 namespaces", round, i, lines)
				continue
			}
			for _, ns := range lines[1:] {
				if j, ok := seen[ns]; ok {
					t.Errorf("round %d: jobs %d and %d share %s", round, j, i, ns)
				}
				seen[ns] = i
			}
		}
		for _, w := range stdins {
			w.Close()
		}
		wg.Wait()
		for _, res := range results {
			if containers[res.Container] {
				t.Errorf("container %s served two jobs", res.Container)
			}
			containers[res.Container] = true
			if res.Prepared {
				prepared++
			}
		}
	}
	if prepared == 0 {
		t.Errorf("none of the jobs took a prepared container (pools %+v)", m.Pools())
	}
}

// syncBuffer collects output and signals full once it holds lines lines.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines int
	full  chan<- struct{}
	sent  bool
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if !b.sent && bytes.Count(b.buf.Bytes(), []byte("\n")) >= b.lines {
		b.sent = true
		b.full <- struct{}{}
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestPoolShrinksToZeroWhenIdle(t *testing.T) {
	m := poolManager(t, PoolConfig{Max: 2, Min: 0, Idle: 100 * time.Millisecond, MaxAge: time.Hour})
	job, _, _ := again(t, scriptJob(t, "#!/bin/sh\necho ok\n"))
	if _, err := m.Run(testContext(t), job); err != nil {
		t.Fatal(err)
	}
	waitReady(t, m, 1)
	deadline := time.Now().Add(20 * time.Second)
	for len(m.Pools()) > 0 || len(instanceContainers(t, m.instance)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("idle pool not gone after 20s: pools %+v, containers %v", m.Pools(), instanceContainers(t, m.instance))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPoolReplacesContainerThatDied(t *testing.T) {
	m := poolManager(t, PoolConfig{Max: 1, Min: 1, Idle: time.Hour, MaxAge: time.Hour})
	tmpl := scriptJob(t, "#!/bin/sh\necho ok\n")
	job, _, _ := again(t, tmpl)
	if _, err := m.Run(testContext(t), job); err != nil {
		t.Fatal(err)
	}
	waitReady(t, m, 1)
	ctrs := preparedOf(t, m)
	if len(ctrs) != 1 {
		t.Fatalf("prepared containers %d, want 1", len(ctrs))
	}
	dead := ctrs[0].ID()
	task, err := ctrs[0].Task(testContext(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	exited, err := task.Wait(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Kill(testContext(t), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited

	job, out, errOut := again(t, tmpl)
	res, err := m.Run(testContext(t), job)
	if err != nil || res.ExitCode != 0 || out.String() != "ok\n" {
		t.Fatalf("job after the prepared container died: Run = %+v, %v, %q (stderr %q)", res, err, out, errOut)
	}
	if res.Prepared {
		t.Errorf("the job took the dead container")
	}
	waitReady(t, m, 1)
	if ids := instanceContainers(t, m.instance); slices.Contains(ids, dead) {
		t.Errorf("the dead prepared container %s is still there (%v)", dead, ids)
	}
}

// TestSweepRecognisesPreparedContainers: another instance's sweep (`cgibox
// gc` beside a serving cgibox) leaves a live pool's containers alone and
// removes those whose owner has ended.
func TestSweepRecognisesPreparedContainers(t *testing.T) {
	m := poolManager(t, PoolConfig{Max: 2, Min: 2, Idle: time.Hour, MaxAge: time.Hour})
	job, _, _ := again(t, scriptJob(t, "#!/bin/sh\necho ok\n"))
	if _, err := m.Run(testContext(t), job); err != nil {
		t.Fatal(err)
	}
	waitReady(t, m, 2)
	beside, err := New(testContext(t), WithAddress(testEnv.daemon.Address()), WithDataDir(t.TempDir()),
		WithLauncher(testEnv.launcher), WithInstance(jobID(t)), WithoutStartupSweep())
	if err != nil {
		t.Fatal(err)
	}
	defer beside.Close()
	if n, err := beside.Sweep(testContext(t)); err != nil || n != 0 {
		t.Errorf("Sweep beside a live pool = %d, %v; want nothing removed", n, err)
	}
	ctrs := preparedOf(t, m)
	if len(ctrs) != 2 {
		t.Fatalf("prepared containers %d, want 2", len(ctrs))
	}
	// The owner of one "ended": the same pid, a later start.
	ns, _ := os.Readlink("/proc/self/ns/pid")
	start, err := processStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ctrs[0].SetLabels(testContext(t), map[string]string{
		LabelOwner: fmt.Sprintf("%s/%d/%d", ns, os.Getpid(), start+1),
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := beside.Sweep(testContext(t)); err != nil || n != 1 {
		t.Errorf("Sweep with one prepared container's owner gone = %d, %v; want 1 removed", n, err)
	}
	if ids := instanceContainers(t, m.instance); slices.Contains(ids, ctrs[0].ID()) || !slices.Contains(ids, ctrs[1].ID()) {
		t.Errorf("after the sweep: %v; want %s gone and %s kept", ids, ctrs[0].ID(), ctrs[1].ID())
	}
}

func TestOwnerGone(t *testing.T) {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Skip("no /proc/self/ns/pid")
	}
	start, err := processStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	me := fmt.Sprintf("%s/%d/%d", ns, os.Getpid(), start)
	if ownerLabel() != me {
		t.Errorf("ownerLabel() = %q, want %q", ownerLabel(), me)
	}
	cases := []struct {
		label string
		gone  bool
	}{
		{me, false},
		{fmt.Sprintf("%s/%d/%d", ns, os.Getpid(), start+1), true},   // pid reused
		{fmt.Sprintf("%s/%d/%d", ns, 1<<22+1, 1), true},             // above pid_max: no such process
		{fmt.Sprintf("pid:[1]/%d/%d", os.Getpid(), start+1), false}, // another namespace: unknown
		{"", false}, {"garbage", false}, {ns + "/x/1", false}, {ns + "/-1/1", false},
	}
	for _, c := range cases {
		if got := ownerGone(c.label); got != c.gone {
			t.Errorf("ownerGone(%q) = %v, want %v", c.label, got, c.gone)
		}
	}
}

// TestPoolFollowsTheImage: a prepared container never runs a job whose
// image has been removed since it was made.
func TestPoolFollowsTheImage(t *testing.T) {
	m := poolManager(t, PoolConfig{Max: 1, Min: 1, Idle: time.Hour, MaxAge: time.Hour})
	ctx := testContext(t)
	is := m.Client().ImageService()
	src, err := is.Get(ctx, testEnv.image)
	if err != nil {
		t.Fatal(err)
	}
	name := "cgibox.test/pool-" + strings.ToLower(jobID(t)) + ":1"
	if _, err := is.Create(ctx, images.Image{Name: name, Target: src.Target}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { is.Delete(context.Background(), name) })
	tmpl := scriptJob(t, "#!/bin/sh\necho ok\n")
	tmpl.Image = name
	job, _, _ := again(t, tmpl)
	if _, err := m.Run(ctx, job); err != nil {
		t.Fatal(err)
	}
	waitReady(t, m, 1)
	if err := is.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	job, out, _ := again(t, tmpl)
	res, err := m.Run(ctx, job)
	if !errors.Is(err, ErrImageNotFound) || out.Len() > 0 {
		t.Errorf("job after its image was removed: Run = %+v, %v, output %q; want ErrImageNotFound and no script run", res, err, out)
	}
}

// TestPoolMatchesDataDirAndUsers: a prepared container is made for one
// data directory and one user range (or none), and only a job with the
// same is handed it.
func TestPoolMatchesDataDirAndUsers(t *testing.T) {
	m := poolManager(t, PoolConfig{Max: 1, Min: 1, Idle: time.Hour, MaxAge: time.Hour})
	a, b := SiteUsers("a"), SiteUsers("b")
	// Data directories anyone may read, each with a file naming it.
	x, y := hostDir(t, 0, 0o755), hostDir(t, 0, 0o755)
	for dir, name := range map[string]string{x: "x", y: "y"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmpl := scriptJob(t, "#!/bin/sh\nls /data\ncat /proc/self/uid_map\n")
	mapping := func(u *UserRange) string {
		if u == nil {
			return "0 0 4294967295" // the host's, unmapped
		}
		return fmt.Sprintf("0 %d 1|65534 %d 1", u.Root, u.Nobody)
	}
	runWith := func(dataDir, name string, users *UserRange) Result {
		t.Helper()
		job, out, errOut := again(t, tmpl)
		job.DataDir, job.Users = dataDir, users
		res, err := m.Run(testContext(t), job)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("job on %s with users %v: Run = %+v, %v (stderr %q)", name, users, res, err, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		for i, l := range lines {
			lines[i] = strings.Join(strings.Fields(l), " ")
		}
		if got, want := strings.Join(lines, "|"), name+"|"+mapping(users); got != want {
			t.Errorf("job on %s with users %v (prepared %v) saw %q, want %q", name, users, res.Prepared, got, want)
		}
		return res
	}
	if res := runWith(x, "x", &a); res.Prepared {
		t.Fatalf("first job took a prepared container from an empty pool")
	}
	waitReady(t, m, 1) // made for x and a
	for _, c := range []struct {
		dir, name string
		users     *UserRange
	}{{y, "y", &a}, {x, "x", &b}, {x, "x", nil}} {
		if res := runWith(c.dir, c.name, c.users); res.Prepared {
			t.Errorf("job on %s with users %v took the container prepared for x and %v", c.name, c.users, a)
		}
	}
	if res := runWith(x, "x", &a); !res.Prepared {
		t.Errorf("job on x with users %v did not take the container prepared for it (pools %+v)", a, m.Pools())
	}
}

// TestVictim: the pool that gives up a waiting container for one whose
// job found it empty is the least recently used of the others with one
// waiting, and only if it is idler than that pool.
func TestVictim(t *testing.T) {
	now := time.Now()
	type p struct {
		site  string
		ago   time.Duration // since its last job
		ready int
	}
	cases := []struct {
		name   string
		pools  []p // the first is the one that missed
		victim string
	}{
		{"least recently used", []p{{"x", 0, 0}, {"a", 3 * time.Minute, 1}, {"b", 2 * time.Minute, 2}, {"c", time.Minute, 1}}, "a"},
		{"only pools with one waiting", []p{{"x", 0, 0}, {"a", 3 * time.Minute, 0}, {"b", 2 * time.Minute, 1}}, "b"},
		{"never its own", []p{{"x", 0, 2}, {"a", time.Minute, 0}}, ""},
		{"none idler than it", []p{{"x", 2 * time.Minute, 0}, {"a", time.Minute, 1}, {"b", 0, 1}}, ""},
		{"idler than it, not all", []p{{"x", 2 * time.Minute, 0}, {"a", time.Minute, 1}, {"b", 3 * time.Minute, 1}}, "b"},
		{"used at the same time", []p{{"x", time.Minute, 0}, {"a", time.Minute, 1}}, ""},
		{"alone", []p{{"x", 0, 0}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			all := map[poolKey]*pool{}
			var missed *pool
			for i, q := range c.pools {
				pl := &pool{key: poolKey{site: q.site}, lastJob: now.Add(-q.ago), ready: make([]*started, q.ready)}
				all[pl.key] = pl
				if i == 0 {
					missed = pl
				}
			}
			got := ""
			if v := victim(missed, all); v != nil {
				got = v.key.site
			}
			if got != c.victim {
				t.Errorf("victim(%s) among %+v = %q, want %q", missed.key.site, c.pools, got, c.victim)
			}
		})
	}
}

// preparedBySite counts the prepared containers of m's instance per site,
// by their labels: waiting, being started or deleted, or serving a job.
func preparedBySite(t *testing.T, m *Manager) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, c := range preparedOf(t, m) {
		labels, err := c.Labels(testContext(t))
		if err != nil {
			continue // deleted meanwhile
		}
		n[labels[LabelSite]]++
	}
	return n
}

// readyBySite is what m's pools hold ready, per site; a site without a
// pool is absent.
func readyBySite(m *Manager) map[string]int {
	n := map[string]int{}
	for _, s := range m.Pools() {
		n[s.Site] += s.Ready
	}
	return n
}

// TestPoolTotalCapsAcrossSites: with Total 2, jobs of three sites never
// leave more than 2 prepared containers, and a site whose job found its
// pool empty takes the place of one of the least recently used site's.
func TestPoolTotalCapsAcrossSites(t *testing.T) {
	const total = 2
	m := poolManager(t, PoolConfig{Max: 2, Min: 1, Total: total, Idle: time.Hour, MaxAge: time.Hour})
	// HOLD is how many seconds the script runs.
	tmpl := scriptJob(t, "#!/bin/sh\nsleep ${HOLD:-0}\necho ok\n")
	runFor := func(site string, hold time.Duration) Result {
		t.Helper()
		job, out, errOut := again(t, tmpl)
		job.Site = site
		job.Env = append(slices.Clone(job.Env), fmt.Sprintf("HOLD=%d", int(hold.Seconds())))
		res, err := m.Run(testContext(t), job)
		if err != nil || res.ExitCode != 0 || out.String() != "ok\n" {
			t.Fatalf("job of %s: Run = %+v, %v, %q (stderr %q)", site, res, err, out, errOut)
		}
		return res
	}
	// settle polls until the pools hold want ready and nothing else is
	// labelled as prepared (no container being started or deleted). Only
	// between jobs: a running job's container keeps its label.
	settle := func(after string, want map[string]int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			labelled := preparedBySite(t, m)
			alive := 0
			for _, n := range labelled {
				alive += n
			}
			if alive > total {
				t.Fatalf("after %s: %d prepared containers %v (pools %+v), want at most %d", after, alive, labelled, m.Pools(), total)
			}
			ready := readyBySite(m)
			if maps.Equal(ready, want) && maps.Equal(labelled, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %s: ready %v, labelled %v (pools %+v); want %v within 30s", after, ready, labelled, m.Pools(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	runFor("a.example", 0) // a miss: the pool's target goes to 2
	settle("a's job", map[string]int{"a.example": 2})
	runFor("b.example", 0) // a miss, the cap reached: a gives up one
	settle("b's job", map[string]int{"a.example": 1, "b.example": 1})
	// A miss again: a (used before b) gives up its last and, with target
	// 0 and nothing left, its pool goes.
	runFor("c.example", 0)
	settle("c's first job", map[string]int{"b.example": 1, "c.example": 1})
	// Hits: each job's pool keeps its place while the job runs and
	// refills it after; no one gives anything up for a hit. The first
	// runs across the pools' checks, where b (target 2, one ready) would
	// take a free place.
	for i, hold := range []time.Duration{2 * poolTick, 0} {
		if res := runFor("c.example", hold); !res.Prepared {
			t.Errorf("c's job %d did not take its pool's prepared container (pools %+v)", i+2, m.Pools())
		}
		settle(fmt.Sprintf("c's job %d", i+2), map[string]int{"b.example": 1, "c.example": 1})
	}
}

// TestKeepSites: KeepSites deletes the pools of the sites it is not given,
// and their prepared containers, waiting or being started; the others
// stay, and a removed site's job still runs.
func TestKeepSites(t *testing.T) {
	m := poolManager(t, PoolConfig{Max: 1, Min: 1, Idle: time.Hour, MaxAge: time.Hour})
	tmpl := scriptJob(t, "#!/bin/sh\necho ok\n")
	runFor := func(site string) Result {
		t.Helper()
		job, out, errOut := again(t, tmpl)
		job.Site = site
		res, err := m.Run(testContext(t), job)
		if err != nil || res.ExitCode != 0 || out.String() != "ok\n" {
			t.Fatalf("job of %s: Run = %+v, %v, %q (stderr %q)", site, res, err, out, errOut)
		}
		return res
	}
	// gone waits until no container of site is labelled as prepared.
	gone := func(site, after string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for preparedBySite(t, m)[site] > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: prepared containers %v 30s after KeepSites, want none of %s", after, preparedBySite(t, m), site)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	const a, b = "a.example", "b.example"
	runFor(a)
	runFor(b)
	waitReady(t, m, 2)
	kept := preparedOf(t, m)
	if n := preparedBySite(t, m); n[a] != 1 || n[b] != 1 {
		t.Fatalf("prepared containers %v, want one of each site", n)
	}

	m.KeepSites([]string{a, "c.example"})
	if ready := readyBySite(m); !maps.Equal(ready, map[string]int{a: 1}) {
		t.Errorf("pools after KeepSites(%s): ready %v, want only %s's", a, ready, a)
	}
	gone(b, "waiting")
	var ids []string
	for _, c := range kept {
		if labels, err := c.Labels(testContext(t)); err == nil && labels[LabelSite] == a {
			ids = append(ids, c.ID())
		}
	}
	if got := instanceContainers(t, m.instance); len(ids) != 1 || !slices.Equal(got, ids) {
		t.Errorf("containers after KeepSites: %v, want %s's prepared one (%v) kept", got, a, ids)
	}

	// b's job runs without its pool, makes it again, and its refill is
	// under way (or done) when b goes again.
	if res := runFor(b); res.Prepared {
		t.Errorf("b's job after KeepSites took a prepared container")
	}
	m.KeepSites([]string{a})
	gone(b, "being started")
	if ready := readyBySite(m); !maps.Equal(ready, map[string]int{a: 1}) {
		t.Errorf("pools after the second KeepSites(%s): ready %v, want only %s's", a, ready, a)
	}
}
