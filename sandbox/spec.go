package sandbox

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"path"
	"runtime"
	"slices"
	"strconv"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// This file is the whole container policy (SECURITY.md "Hardening"): one
// composition of small oci.SpecOpts, starting from an empty spec so that
// nothing of containerd's default spec (uid 0, capabilities, no seccomp)
// survives. Nothing here comes from a request: argv, environment and
// working directory reach the launcher through the stdin frame.

const (
	// nobody is the numeric uid and gid every script runs as; numeric so
	// that images without /etc/passwd work and no lookup can fail open.
	nobody = 65534
	// LauncherPath is where the launcher binary is bind-mounted.
	LauncherPath = "/.cgibox/cgibox"
	// ScriptPATH is the fixed PATH of the launcher process.
	ScriptPATH = "PATH=/usr/local/bin:/usr/bin:/bin"
	// devShmSize bounds /dev/shm.
	devShmSize = 4 << 20
	// cpuPeriod is the CFS period the CPU quota is expressed in.
	cpuPeriod = 100_000
)

// maskedPaths are hidden from the script (bind-mounted over with /dev/null
// or an empty read-only tmpfs by the runtime).
func maskedPaths() []string {
	return []string{
		"/proc/acpi",
		"/proc/asound",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/proc/sched_debug",
		"/proc/scsi",
		"/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
}

// readonlyPaths are remounted read-only.
func readonlyPaths() []string {
	return []string{
		"/proc/bus",
		"/proc/fs",
		"/proc/irq",
		"/proc/sys",
		"/proc/sysrq-trigger",
	}
}

// allowedDevices are the only device nodes a script gets (and the only ones
// the devices cgroup lets it open).
type device struct {
	path         string
	major, minor int64
}

func allowedDevices() []device {
	return []device{
		{"/dev/null", 1, 3},
		{"/dev/zero", 1, 5},
		{"/dev/full", 1, 7},
		{"/dev/random", 1, 8},
		{"/dev/urandom", 1, 9},
		{"/dev/tty", 5, 0},
	}
}

// specConfig is what the policy is parameterised with: per site and per
// image, never per request.
type specConfig struct {
	// Launcher is the host path of the static cgibox binary.
	Launcher string
	// ScriptDir (host) is bind-mounted read-only at MountPoint.
	ScriptDir  string
	MountPoint string
	// DataDir (host), when not empty, is bind-mounted read-write at
	// DataMountPoint: the one writable place besides /tmp.
	DataDir string
	// Users, when not nil, puts the container in a user namespace of its
	// own that maps only container root and nobody (see withUserNamespace).
	Users *UserRange
	// Limits must be complete (defaults applied).
	Limits Limits
}

// hardenedSpec is the container policy as one composed SpecOpts.
func hardenedSpec(c specConfig) oci.SpecOpts {
	l := c.Limits
	return oci.Compose(
		withEmptySpec,
		oci.WithHostname("cgibox"),
		// The process: the launcher, no terminal, fixed PATH.
		oci.WithProcessArgs(LauncherPath, LaunchCommand),
		oci.WithEnv([]string{ScriptPATH}),
		oci.WithProcessCwd("/"),
		// Identity: numeric nobody, supplementary groups only its own.
		oci.WithUIDGID(nobody, nobody),
		oci.WithUmask(0o077),
		// Privileges: none, and no way to gain any.
		withNoCapabilities,
		oci.WithNoNewPrivileges,
		withRlimits(l),
		// Filesystem: read-only root, a few explicit mounts, masks.
		oci.WithRootFSPath("rootfs"),
		oci.WithRootFSReadonly(),
		withMounts(c),
		oci.WithMaskedPaths(maskedPaths()),
		oci.WithReadonlyPaths(readonlyPaths()),
		withDevices,
		withNamespaces,
		withUserNamespace(c.Users),
		// Resources.
		withCgroupsPath,
		oci.WithMemoryLimit(uint64(l.Memory)),
		// memory+swap == memory: no swap (memory.memsw on cgroup v1,
		// memory.swap.max = 0 on v2).
		oci.WithMemorySwap(l.Memory),
		oci.WithCPUCFS(int64(math.Ceil(l.CPU*cpuPeriod)), cpuPeriod),
		oci.WithPidsLimit(l.Pids),
		// Seccomp last: the default profile depends on the capabilities.
		withSeccomp,
	)
}

// withEmptySpec replaces whatever the spec held with a minimal skeleton, so
// that every field the container gets is set by this file.
func withEmptySpec(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	*s = oci.Spec{
		Version: specs.Version,
		Process: &specs.Process{},
		Root:    &specs.Root{},
		Linux:   &specs.Linux{Resources: &specs.LinuxResources{}},
	}
	return nil
}

func withNoCapabilities(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	s.Process.Capabilities = &specs.LinuxCapabilities{
		Bounding:    []string{},
		Effective:   []string{},
		Inheritable: []string{},
		Permitted:   []string{},
		Ambient:     []string{},
	}
	return nil
}

// withRlimits sets NOFILE, CORE 0, FSIZE and a CPU-seconds backstop above
// the wall deadline (the deadline is what normally stops a job).
func withRlimits(l Limits) oci.SpecOpts {
	cpu := uint64(math.Ceil((l.Wall + l.KillGrace).Seconds())) + 1
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Process.Rlimits = []specs.POSIXRlimit{
			{Type: "RLIMIT_NOFILE", Soft: l.NoFile, Hard: l.NoFile},
			{Type: "RLIMIT_CORE", Soft: 0, Hard: 0},
			{Type: "RLIMIT_FSIZE", Soft: l.FileSize, Hard: l.FileSize},
			{Type: "RLIMIT_CPU", Soft: cpu, Hard: cpu + 1},
		}
		return nil
	}
}

// withMounts sets the complete mount table. Every mount is nosuid; all but
// /dev are nodev. There is no sysfs and no cgroupfs.
func withMounts(c specConfig) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Mounts = []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc",
				Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs",
				Options: []string{"nosuid", "noexec", "strictatime", "mode=755", "size=64k"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm",
				Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.Itoa(devShmSize)}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs",
				Options: []string{"nosuid", "nodev", "mode=1777", "size=" + strconv.FormatInt(c.Limits.Tmp, 10)}},
			// Plain bind, not rbind: nothing mounted below the script
			// directory on the host comes along.
			{Destination: c.MountPoint, Type: "bind", Source: c.ScriptDir,
				Options: []string{"bind", "ro", "nosuid", "nodev"}},
			{Destination: LauncherPath, Type: "bind", Source: c.Launcher,
				Options: []string{"bind", "ro", "nosuid", "nodev"}},
		}
		if c.DataDir != "" {
			// The site's data: writable, but nothing in it runs (noexec),
			// gains privileges (nosuid) or opens a device (nodev). A plain
			// bind, as the script directory.
			s.Mounts = append(s.Mounts, specs.Mount{Destination: DataMountPoint, Type: "bind", Source: c.DataDir,
				Options: []string{"bind", "rw", "nosuid", "nodev", "noexec"}})
		}
		return nil
	}
}

// withDevices creates only the allowed device nodes and lets the devices
// cgroup deny everything else.
func withDevices(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	// FileMode holds permission bits only; the runtime adds S_IFCHR.
	mode := fs.FileMode(0o666)
	var zero uint32
	s.Linux.Devices = nil
	s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	for _, d := range allowedDevices() {
		s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{
			Path: d.path, Type: "c", Major: d.major, Minor: d.minor,
			FileMode: ptr(mode), UID: &zero, GID: &zero,
		})
		s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
			Allow: true, Type: "c", Major: ptr(d.major), Minor: ptr(d.minor), Access: "rwm",
		})
	}
	return nil
}

// withNamespaces gives the container fresh pid, ipc, uts, mount, network
// (loopback only: nothing configures it) and cgroup namespaces.
func withNamespaces(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	s.Linux.Namespaces = []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.MountNamespace},
		{Type: specs.NetworkNamespace},
		{Type: specs.CgroupNamespace},
	}
	return nil
}

// withUserNamespace gives the container a user namespace of its own when u
// is not nil: container root maps to u.Root (the runtime sets the
// container up as it; the launcher refuses to run a script as it) and
// nobody, the script's uid and gid, to u.Nobody, one id each. Nothing else
// is mapped: every other file of the host, the image's included, appears
// owned by the overflow id, and no capability held inside the namespace
// applies to it. Nil leaves the spec without a user namespace.
func withUserNamespace(u *UserRange) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if u == nil {
			return nil
		}
		if err := u.Check(); err != nil {
			return err
		}
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = userMappings(*u)
		s.Linux.GIDMappings = userMappings(*u)
		return nil
	}
}

// userMappings are the two id mappings of u, for uids or gids alike.
func userMappings(u UserRange) []specs.LinuxIDMapping {
	return []specs.LinuxIDMapping{
		{ContainerID: 0, HostID: u.Root, Size: 1},
		{ContainerID: nobody, HostID: u.Nobody, Size: 1},
	}
}

// withCgroupsPath puts the container's cgroup at /<namespace>/<id>.
func withCgroupsPath(ctx context.Context, _ oci.Client, c *containers.Container, s *oci.Spec) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return fmt.Errorf("cgroups path: %w", err)
	}
	s.Linux.CgroupsPath = path.Join("/", ns, c.ID)
	return nil
}

// deniedSyscalls are removed from the allow rules of containerd's default
// profile: SECURITY.md wants that profile "or stricter", without ptrace
// (which the default allows on kernels >= 4.8) and the others listed.
func deniedSyscalls() []string {
	return []string{
		"bpf", "io_uring_enter", "io_uring_register", "io_uring_setup", "keyctl",
		"add_key", "request_key", "mount", "umount", "umount2", "unshare", "setns",
		"perf_event_open", "ptrace", "process_vm_readv", "process_vm_writev",
		"userfaultfd", "pivot_root", "chroot", "kexec_load", "open_by_handle_at",
	}
}

// nativeArch is the one seccomp architecture scripts may use: the
// machine's own (containerd's default profile picks its list from GOARCH
// too). Nil leaves the default profile's list.
func nativeArch() []specs.Arch {
	switch runtime.GOARCH {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64}
	}
	return nil
}

// withSeccomp sets containerd's default seccomp profile for a process
// without capabilities, minus deniedSyscalls, for the native architecture
// only. The default profile also admits the 32-bit ABIs (x86 and x32 on
// amd64), which runc compiles into the filter of every container: 3/4 of
// the filter's cost, about 12 ms of CPU per container with runc 1.1. A
// script's 32-bit system calls are killed instead (SIGSYS): the x86_64
// part of the filter is the same, the policy stricter.
func withSeccomp(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	p := seccomp.DefaultProfile(s)
	if a := nativeArch(); a != nil {
		p.Architectures = a
	}
	denied := deniedSyscalls()
	rules := p.Syscalls[:0]
	for _, r := range p.Syscalls {
		if r.Action == specs.ActAllow {
			r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return slices.Contains(denied, n) })
			if len(r.Names) == 0 {
				continue
			}
		}
		rules = append(rules, r)
	}
	p.Syscalls = rules
	s.Linux.Seccomp = p
	return nil
}

func ptr[T any](v T) *T { return &v }
