package sandbox

import (
	"path/filepath"
	"syscall"
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

// Cgroups is the host's cgroup filesystem. Get one with DetectCgroups.
type Cgroups struct {
	root string
	mode string
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
