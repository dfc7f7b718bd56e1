package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCgroupMode(t *testing.T) {
	tests := []struct {
		name          string
		root, unified int64
		want          string
	}{
		{"unified", cgroup2Magic, 0, CgroupV2},
		{"hybrid", tmpfsMagic, cgroup2Magic, CgroupHybrid},
		{"legacy", tmpfsMagic, 0, CgroupV1},
		{"legacy, unified dir not cgroup2", tmpfsMagic, tmpfsMagic, CgroupV1},
		{"v1 mounted directly", cgroupMagic, 0, CgroupV1},
		{"nothing mounted (sysfs)", 0x62656572, 0, CgroupUnknown},
		{"missing", 0, 0, CgroupUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cgroupMode(tt.root, tt.unified); got != tt.want {
				t.Errorf("cgroupMode(%#x, %#x) = %s, want %s", tt.root, tt.unified, got, tt.want)
			}
		})
	}
}

// fakeCgroups builds a cgroup filesystem of the given mode in a temporary
// directory: files maps paths below the root to their contents.
func fakeCgroups(t *testing.T, mode string, files map[string]string) Cgroups {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Cgroups{root: root, mode: mode}
}

// The container of these tests, as withCgroupsPath places it.
const (
	fakeID  = "cgibox-req1"
	fakeCg  = Namespace + "/" + fakeID
	fakeV1  = "pids/" + fakeCg + "/"
	fakeV2  = fakeCg + "/"
	fakeUni = "unified/" + fakeCg + "/"
)

func TestCgroupsProcesses(t *testing.T) {
	tests := []struct {
		name  string
		mode  string
		files map[string]string
		id    string
		want  []int
		err   bool
	}{
		{"v1: the pids hierarchy", CgroupV1, map[string]string{fakeV1 + "cgroup.procs": "4242\n4243\n",
			"memory/" + fakeCg + "/cgroup.procs": "9\n"}, fakeID, []int{4242, 4243}, false},
		{"hybrid: v1, not unified", CgroupHybrid, map[string]string{fakeV1 + "cgroup.procs": "4242\n",
			fakeUni + "cgroup.procs": "7\n"}, fakeID, []int{4242}, false},
		{"v2: the unified hierarchy", CgroupV2, map[string]string{fakeV2 + "cgroup.procs": "4242\n4243\n4244\n",
			"pids/" + fakeCg + "/cgroup.procs": "7\n"}, fakeID, []int{4242, 4243, 4244}, false},
		{"empty cgroup", CgroupV2, map[string]string{fakeV2 + "cgroup.procs": ""}, fakeID, nil, false},
		{"no such cgroup", CgroupV2, map[string]string{Namespace + "/other/cgroup.procs": "7\n"}, fakeID, nil, false},
		{"line cut by the read bound", CgroupV2, map[string]string{fakeV2 + "cgroup.procs": "4242\n12"}, fakeID, []int{4242}, false},
		{"pids 0 and 1 and junk", CgroupV1, map[string]string{fakeV1 + "cgroup.procs": "0\n1\n-5\nx\n4242\n"}, fakeID, []int{4242}, false},
		{"no cgroup filesystem", CgroupUnknown, map[string]string{fakeV2 + "cgroup.procs": "4242\n"}, fakeID, nil, true},
		{"id climbing out", CgroupV2, map[string]string{"cgroup.procs": "4242\n"}, "..", nil, true},
		{"id with a slash", CgroupV2, map[string]string{"x/cgroup.procs": "4242\n"}, "../x", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fakeCgroups(t, tt.mode, tt.files)
			got, err := c.Processes(tt.id)
			if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
				t.Errorf("%s tree %q: Processes(%q) = %v, %v; want %v, error %v", tt.mode, tt.files, tt.id, got, err, tt.want, tt.err)
			}
		})
	}
}

// TestCgroupsProcessesBounded reads a cgroup.procs larger than
// cgroupFileMax: the pids up to the bound, and not the one it cuts.
func TestCgroupsProcessesBounded(t *testing.T) {
	const line = "123456\n"
	in := strings.Repeat(line, 2*cgroupFileMax/len(line))
	c := fakeCgroups(t, CgroupV2, map[string]string{fakeV2 + "cgroup.procs": in})
	got, err := c.Processes(fakeID)
	want := cgroupFileMax / len(line) // whole lines within the bound
	if err != nil || len(got) != want || slices.ContainsFunc(got, func(p int) bool { return p != 123456 }) {
		t.Errorf("Processes of a %d-byte cgroup.procs of %q lines = %d pids (%v), want %d pids 123456", len(in), line, len(got), err, want)
	}
}

func TestCgroupsKill(t *testing.T) {
	tests := []struct {
		name      string
		mode      string
		files     map[string]string
		signalled []int  // pids that get SIGKILL
		killFile  string // path of a cgroup.kill to look at
		wantKill  string // what it must hold afterwards
		gone      []int  // pids the fake reports as already dead
		wantN     int
	}{
		{"v1 signals each pid", CgroupV1, map[string]string{fakeV1 + "cgroup.procs": "4242\n4243\n"},
			[]int{4242, 4243}, "", "", nil, 2},
		{"hybrid signals each pid, leaves unified alone", CgroupHybrid,
			map[string]string{fakeV1 + "cgroup.procs": "4242\n", fakeUni + "cgroup.procs": "4242\n", fakeUni + "cgroup.kill": ""},
			[]int{4242}, fakeUni + "cgroup.kill", "", nil, 1},
		{"v2 writes cgroup.kill", CgroupV2, map[string]string{fakeV2 + "cgroup.procs": "4242\n4243\n", fakeV2 + "cgroup.kill": ""},
			nil, fakeV2 + "cgroup.kill", "1", nil, 2},
		{"v2 before Linux 5.14 signals each pid", CgroupV2, map[string]string{fakeV2 + "cgroup.procs": "4242\n4243\n"},
			[]int{4242, 4243}, fakeV2 + "cgroup.kill", "(none)", nil, 2},
		{"v2 empty cgroup: nothing to kill", CgroupV2, map[string]string{fakeV2 + "cgroup.procs": "", fakeV2 + "cgroup.kill": ""},
			nil, fakeV2 + "cgroup.kill", "", nil, 0},
		{"a pid already gone is not counted", CgroupV1, map[string]string{fakeV1 + "cgroup.procs": "4242\n4243\n"},
			[]int{4242, 4243}, "", "", []int{4243}, 1},
		{"no such cgroup", CgroupV1, map[string]string{}, nil, "", "", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fakeCgroups(t, tt.mode, tt.files)
			var signalled []int
			c.kill = func(pid int, sig syscall.Signal) error {
				if sig != syscall.SIGKILL {
					t.Errorf("pid %d got signal %v, want SIGKILL", pid, sig)
				}
				signalled = append(signalled, pid)
				if slices.Contains(tt.gone, pid) {
					return syscall.ESRCH
				}
				return nil
			}
			n, err := c.killAll(fakeID)
			if err != nil || n != tt.wantN || !slices.Equal(signalled, tt.signalled) {
				t.Errorf("%s tree %q: killAll = %d, %v, signalled %v; want %d, signalled %v", tt.mode, tt.files, n, err, signalled, tt.wantN, tt.signalled)
			}
			if tt.killFile != "" {
				b, err := os.ReadFile(filepath.Join(c.root, tt.killFile))
				got := string(b)
				if errors.Is(err, fs.ErrNotExist) {
					got = "(none)"
				}
				if got != tt.wantKill {
					t.Errorf("%s tree %q: %s holds %q after killAll, want %q", tt.mode, tt.files, tt.killFile, got, tt.wantKill)
				}
			}
		})
	}
}

// TestCgroupsKillSignalsProcesses kills real processes through the default
// kill function: their pids are in a fake cgroup.procs.
func TestCgroupsKillSignalsProcesses(t *testing.T) {
	var cmds []*exec.Cmd
	var procs strings.Builder
	for range 2 {
		cmd := exec.Command("sleep", "1000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		cmds = append(cmds, cmd)
		fmt.Fprintf(&procs, "%d\n", cmd.Process.Pid)
	}
	c := fakeCgroups(t, CgroupV1, map[string]string{fakeV1 + "cgroup.procs": procs.String()})
	if n, err := c.killAll(fakeID); n != 2 || err != nil {
		t.Fatalf("killAll with cgroup.procs %q = %d, %v; want 2, nil", procs.String(), n, err)
	}
	for _, cmd := range cmds {
		err := cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("sleep %d ended with %v, want killed by SIGKILL", cmd.Process.Pid, err)
		}
	}
}

// TestCgroupsCounters reads peak memory, OOM kills and CPU time from fake
// trees in the formats of the kernel's documentation.
func TestCgroupsCounters(t *testing.T) {
	const (
		v1mem = "memory/" + fakeCg + "/"
		v1cpu = "cpuacct/" + fakeCg + "/"
	)
	v2events := "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n"
	v2cpu := "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\nnr_periods 40\nnr_throttled 2\nthrottled_usec 9000\n"
	tests := []struct {
		name      string
		mode      string
		files     map[string]string
		peak      int64
		oomKills  uint64
		cpu       time.Duration
		peakErr   error // errors.Is target; nil: no error
		noOOMKill bool  // oomKills fails
	}{
		{"v1", CgroupV1, map[string]string{
			v1mem + "memory.max_usage_in_bytes": "50331648\n",
			v1mem + "memory.oom_control":        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
			v1cpu + "cpuacct.usage":             "1500000000\n",
			// v2 names in the v1 places must not be read.
			v1mem + "memory.peak": "1\n", v1mem + "memory.events": "oom_kill 9\n",
		}, 48 << 20, 1, 1500 * time.Millisecond, nil, false},
		{"hybrid reads v1", CgroupHybrid, map[string]string{
			v1mem + "memory.max_usage_in_bytes": "4096\n",
			v1mem + "memory.oom_control":        "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
			v1cpu + "cpuacct.usage":             "7\n",
			fakeUni + "cpu.stat":                v2cpu,
		}, 4096, 0, 7, nil, false},
		{"v2", CgroupV2, map[string]string{
			fakeV2 + "memory.peak":   "50331648\n",
			fakeV2 + "memory.events": v2events,
			fakeV2 + "cpu.stat":      v2cpu,
		}, 48 << 20, 2, 1500 * time.Millisecond, nil, false},
		{"v2 before Linux 5.19: no memory.peak", CgroupV2, map[string]string{
			fakeV2 + "memory.events": v2events,
			fakeV2 + "cpu.stat":      v2cpu,
		}, 0, 2, 1500 * time.Millisecond, fs.ErrNotExist, false},
		{"v1 before Linux 4.13: no oom_kill", CgroupV1, map[string]string{
			v1mem + "memory.max_usage_in_bytes": "4096\n",
			v1mem + "memory.oom_control":        "oom_kill_disable 0\nunder_oom 0\n",
			v1cpu + "cpuacct.usage":             "7\n",
		}, 4096, 0, 7, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fakeCgroups(t, tt.mode, tt.files)
			peak, err := c.peakMemory(fakeID)
			if peak != tt.peak || (tt.peakErr == nil) != (err == nil) || (tt.peakErr != nil && !errors.Is(err, tt.peakErr)) {
				t.Errorf("%s tree %q: peakMemory = %d, %v; want %d, error %v", tt.mode, tt.files, peak, err, tt.peak, tt.peakErr)
			}
			kills, err := c.oomKills(fakeID)
			if kills != tt.oomKills || (err != nil) != tt.noOOMKill {
				t.Errorf("%s tree %q: oomKills = %d, %v; want %d, error %v", tt.mode, tt.files, kills, err, tt.oomKills, tt.noOOMKill)
			}
			cpu, err := c.cpuUsage(fakeID)
			if cpu != tt.cpu || err != nil {
				t.Errorf("%s tree %q: cpuUsage = %v, %v; want %v", tt.mode, tt.files, cpu, err, tt.cpu)
			}
			// usage, what a Result takes, needs all three: a missing one
			// leaves it to the shim's metrics.
			u, err := c.usage(fakeID)
			if complete := tt.peakErr == nil && !tt.noOOMKill; complete != (err == nil) ||
				complete && u != (usage{cpu: tt.cpu, peak: tt.peak, oomKills: tt.oomKills}) {
				t.Errorf("%s tree %q: usage = %+v, %v; want all three counters or an error", tt.mode, tt.files, u, err)
			}
		})
	}
}
