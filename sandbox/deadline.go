package sandbox

import (
	"time"
)

// killAtDeadline enforces a job's deadline when containerd cannot: at
// deadline it SIGKILLs every process in the container's cgroup (host pids,
// see Cgroups.killAll), until none is left or a minute has passed.
// containerd deletes the container once it answers again (see cleanup).
func (m *Manager) killAtDeadline(id string, deadline time.Time) {
	time.Sleep(time.Until(deadline))
	cg := DetectCgroups("")
	stop := time.Now().Add(time.Minute)
	for {
		n, err := cg.killAll(id)
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
		m.log.Warn("killed processes past their deadline without containerd", "container", id, "processes", n, "cgroups", cg.Mode())
		time.Sleep(100 * time.Millisecond)
	}
}
