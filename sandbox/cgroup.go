package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// This file is what cgibox knows of the host's cgroup filesystem: which
// layout it has and, further down, where a container's cgroup is in it and
// how its files read. runc creates and limits the cgroups (see
// withCgroupsPath); cgibox reads them only for the doctor, where containerd
// cannot answer (killAtDeadline), and in tests that compare what the daemon
// reports with what the kernel says.

// cgroupRoot is where the cgroup filesystem is mounted on every
// distribution cgibox supports.
const cgroupRoot = "/sys/fs/cgroup"

// Filesystem magic numbers (statfs f_type, include/uapi/linux/magic.h).
const (
	tmpfsMagic   = 0x01021994
	cgroupMagic  = 0x0027e0eb
	cgroup2Magic = 0x63677270
)

// Cgroup modes.
const (
	CgroupV1      = "v1"
	CgroupHybrid  = "hybrid" // v1 controllers; cgroup2 at <root>/unified with none
	CgroupV2      = "v2"
	CgroupUnknown = "unknown"
)

// cgroupFileMax bounds what is read from one cgroup file. cgroup.procs is
// the largest: a line of at most 8 bytes per process, far below this for
// any container under a pids limit.
const cgroupFileMax = 1 << 20

// Cgroups is the host's cgroup filesystem. Get one with DetectCgroups.
type Cgroups struct {
	root string
	mode string
	// kill signals a process; nil means syscall.Kill. Tests record
	// instead of signalling.
	kill func(pid int, sig syscall.Signal) error
}

// DetectCgroups returns the cgroup filesystem mounted at root ("" means
// /sys/fs/cgroup) with its mode, told as the kernel documents it
// (Documentation/admin-guide/cgroup-v2.rst, and systemd's hybrid layout):
// cgroup2 at the root is unified; tmpfs (or one v1 hierarchy) at the root
// is v1, hybrid when cgroup2 is mounted at root/unified.
func DetectCgroups(root string) Cgroups {
	if root == "" {
		root = cgroupRoot
	}
	return Cgroups{root: root, mode: cgroupMode(statfsType(root), statfsType(filepath.Join(root, "unified")))}
}

// Mode is CgroupV1, CgroupHybrid, CgroupV2 or CgroupUnknown.
func (c Cgroups) Mode() string { return c.mode }

// cgroupMode tells the cgroup layout from the statfs type of the root and
// of root/unified (0 when that does not exist).
func cgroupMode(rootType, unifiedType int64) string {
	switch rootType {
	case cgroup2Magic:
		return CgroupV2
	case tmpfsMagic, cgroupMagic:
		if unifiedType == cgroup2Magic {
			return CgroupHybrid
		}
		return CgroupV1
	}
	return CgroupUnknown
}

// statfsType is the filesystem type of path, 0 when it cannot be told.
func statfsType(path string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0
	}
	return int64(st.Type)
}

// Dir is the cgroup directory of container id (in Namespace) in the
// hierarchy of controller. runc with the cgroupfs driver, the one cgibox
// configures (no SystemdCgroup in its runtime options), puts the container
// at /<namespace>/<id> (withCgroupsPath) below each v1 hierarchy, or below
// the root on v2. The systemd driver would put it in a slice
// (<slice>/<prefix>-<id>.scope) instead; cgibox does not use it, and
// these paths would not find such a container. Nor would they on a v1
// host with one hierarchy mounted at the root itself, which no supported
// distribution does (each controller has its directory below the root).
func (c Cgroups) Dir(controller, id string) (string, error) {
	// id comes from cgibox, but a ".." or "/" here would name another
	// cgroup, and killAll would kill its processes.
	if id == "" || id == "." || id == ".." || strings.ContainsRune(id, '/') {
		return "", fmt.Errorf("cgroup of container %q: not a container id", id)
	}
	switch c.mode {
	case CgroupV1, CgroupHybrid:
		// Hybrid hosts keep every controller on v1; runc also makes
		// the cgroup in the unified hierarchy, but limits and counters
		// are on v1.
		return filepath.Join(c.root, controller, Namespace, id), nil
	case CgroupV2:
		return filepath.Join(c.root, Namespace, id), nil
	}
	return "", fmt.Errorf("cgroup of container %s: no cgroup filesystem at %s", id, c.root)
}

// read returns the file name of container id's cgroup in the hierarchy of
// controller, at most cgroupFileMax bytes of it.
func (c Cgroups) read(controller, id, name string) ([]byte, error) {
	dir, err := c.Dir(controller, id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("cgroup of container %s: %w", id, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, cgroupFileMax))
	if err != nil {
		return nil, fmt.Errorf("cgroup of container %s: %w", id, err)
	}
	return b, nil
}

// Processes lists the host pids of the processes in the cgroup of
// container id: on v1 and hybrid hosts from the pids hierarchy (runc joins
// every hierarchy, and cgibox needs pids for its process limit), on v2
// from the unified one. A cgroup that does not exist has none.
func (c Cgroups) Processes(id string) ([]int, error) {
	b, err := c.read("pids", id, "cgroup.procs")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseProcs(b), nil
}

// parseProcs reads cgroup.procs: one pid a line, each line ending in a
// newline. A last line without one was cut by the read bound, and a part of
// a pid is another process's pid: it is dropped. So are pids 0 and 1, which
// are never in a container's cgroup and which kill(2) would take for a
// process group or the host's init.
func parseProcs(b []byte) []int {
	var pids []int
	for len(b) > 0 {
		line, rest, ok := bytes.Cut(b, []byte("\n"))
		if !ok {
			break
		}
		b = rest
		if pid, err := strconv.Atoi(string(line)); err == nil && pid > 1 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killAll sends SIGKILL to every process in the cgroup of container id and
// says how many it found. On v2 it writes "1" to cgroup.kill (Linux 5.14+),
// which kills the whole cgroup at once, forks racing with it included.
// Without cgroup.kill, and on v1, it signals each listed pid, so a process
// forked meanwhile lives until the next call: callers repeat until none is
// found.
func (c Cgroups) killAll(id string) (int, error) {
	pids, err := c.Processes(id)
	if err != nil || len(pids) == 0 {
		return 0, err
	}
	if c.mode == CgroupV2 {
		dir, err := c.Dir("", id)
		if err != nil {
			return 0, err
		}
		// O_WRONLY without O_CREATE: a kernel without cgroup.kill has
		// no such file, and none must be made.
		if f, err := os.OpenFile(filepath.Join(dir, "cgroup.kill"), os.O_WRONLY, 0); err == nil {
			_, werr := f.WriteString("1")
			if cerr := f.Close(); werr == nil && cerr == nil {
				return len(pids), nil
			}
			// A failed write falls back to signalling each pid.
		}
	}
	kill := c.kill
	if kill == nil {
		kill = syscall.Kill
	}
	n := 0
	for _, pid := range pids {
		if kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n, nil
}

// The counters below are the ones the shim's metrics come from (see
// cgroupUsage). cgibox reads them here when it can (usage), else asks the
// shim; tests read them while a script runs, to hold a Result against what
// the kernel counted before its end.

// usage reads CPU, peak memory and OOM kills of container id's cgroup.
func (c Cgroups) usage(id string) (usage, error) {
	var u usage
	var err error
	if u.cpu, err = c.cpuUsage(id); err != nil {
		return u, err
	}
	if u.peak, err = c.peakMemory(id); err != nil {
		return u, err
	}
	u.oomKills, err = c.oomKills(id)
	return u, err
}

// peakMemory is the most memory the cgroup of container id has used, in
// bytes: memory.max_usage_in_bytes on v1, memory.peak on v2, which Linux
// has from 5.19 (before, the error wraps fs.ErrNotExist).
func (c Cgroups) peakMemory(id string) (int64, error) {
	name := "memory.max_usage_in_bytes"
	if c.mode == CgroupV2 {
		name = "memory.peak"
	}
	b, err := c.read("memory", id, name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cgroup of container %s: %s: %w", id, name, err)
	}
	return n, nil
}

// oomKills is how many processes of the cgroup of container id the OOM
// killer killed: oom_kill of memory.oom_control on v1 (Linux 4.13+), of
// memory.events on v2.
func (c Cgroups) oomKills(id string) (uint64, error) {
	name := "memory.oom_control"
	if c.mode == CgroupV2 {
		name = "memory.events"
	}
	return c.keyed("memory", id, name, "oom_kill")
}

// cpuUsage is the CPU time the cgroup of container id has used:
// cpuacct.usage (nanoseconds) on v1, usage_usec of cpu.stat on v2 (there
// with or without the cpu controller).
func (c Cgroups) cpuUsage(id string) (time.Duration, error) {
	if c.mode == CgroupV2 {
		us, err := c.keyed("cpu", id, "cpu.stat", "usage_usec")
		return time.Duration(us) * time.Microsecond, err
	}
	b, err := c.read("cpuacct", id, "cpuacct.usage")
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cgroup of container %s: cpuacct.usage: %w", id, err)
	}
	return time.Duration(ns), nil
}

// keyed reads the value of key in a flat keyed file ("key value" lines,
// cgroup-v2.rst "Interface Files"; v1's memory.oom_control has the same
// form).
func (c Cgroups) keyed(controller, id, name, key string) (uint64, error) {
	b, err := c.read(controller, id, name)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || k != key {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cgroup of container %s: %s %s: %w", id, name, key, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("cgroup of container %s: no %s in %s", id, key, name)
}
