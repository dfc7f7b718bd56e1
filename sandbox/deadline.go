package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Where a container's cgroup may be found: cgroup v1's pids hierarchy, then
// the unified hierarchy (v2).
const (
	cgroupV1Pids  = "/sys/fs/cgroup/pids"
	cgroupUnified = "/sys/fs/cgroup"
)

// killAtDeadline enforces a job's deadline when containerd cannot: at
// deadline it SIGKILLs every process in the container's cgroup (host pids,
// read from cgroup.procs), until none is left or a minute has passed.
// containerd deletes the container once it answers again (see cleanup).
func (m *Manager) killAtDeadline(id string, deadline time.Time) {
	time.Sleep(time.Until(deadline))
	stop := time.Now().Add(time.Minute)
	for {
		n, err := killCgroup(Namespace + "/" + id)
		switch {
		case err != nil:
			m.log.Warn("enforcing the deadline without containerd", "container", id, "err", err)
			return
		case n == 0:
			return
		case time.Now().After(stop):
			m.log.Warn("processes survive SIGKILL past the deadline", "container", id, "processes", n)
			return
		}
		m.log.Warn("killed processes past their deadline without containerd", "container", id, "processes", n)
		time.Sleep(100 * time.Millisecond)
	}
}

// killCgroup sends SIGKILL to every process of the cgroup at path (relative
// to a hierarchy root) and says how many it found. A cgroup that does not
// exist has none.
func killCgroup(path string) (int, error) {
	for _, root := range []string{cgroupV1Pids, cgroupUnified} {
		f, err := os.Open(filepath.Join(root, path, "cgroup.procs"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("cgroup %s: %w", path, err)
		}
		n := 0
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			pid, err := strconv.Atoi(sc.Text())
			if err != nil || pid <= 1 {
				continue
			}
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				n++
			}
		}
		f.Close()
		return n, sc.Err()
	}
	return 0, nil
}
