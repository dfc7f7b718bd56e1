// Package sandbox runs one CGI job in one fresh, hardened containerd container
// that is used once and deleted. It knows nothing of HTTP: a Job says what to
// run and where its bytes come from and go to; a Result says how it ended.
package sandbox

import (
	"io"
	"time"
)

// Job is one script execution.
type Job struct {
	// ID identifies the request; it becomes part of the container id and a
	// label, so it must match [A-Za-z0-9_.-]{1,64}.
	ID string
	// Site names the site the script belongs to (a label only).
	Site string
	// Image is the containerd image reference the rootfs comes from.
	Image string
	// ScriptDir is the host directory bind-mounted read-only at MountPoint.
	ScriptDir string
	// MountPoint is the absolute path inside the container where ScriptDir
	// appears, for example /www/cgi-bin.
	MountPoint string
	// Path is the absolute path of the script inside the container.
	Path string
	// Args is the script's argv, Args[0] included. Empty means {Path}.
	// Args[0] is always replaced by Path: the launcher execs argv[0].
	Args []string
	// Env is the complete environment of the script, KEY=value.
	Env []string
	// Dir is the working directory inside the container; empty means the
	// directory of Path.
	Dir string
	// DataDir is a host directory mounted read-write at DataMountPoint
	// (nosuid, nodev, noexec): the site's data. Empty: no data mount, and
	// nothing is writable but /tmp. The script writes there as host uid
	// and gid 65534, or Users.Nobody: the directory must let that user
	// write. MountPoint may not be DataMountPoint or below it.
	DataDir string
	// Users, when not nil, runs the job in a user namespace of its own
	// that maps the container's root and nobody to these host ids, so the
	// scripts of different sites are different host users. Nil: no user
	// namespace; the script is host uid and gid 65534.
	//
	// The runtime sets such a container up as Users.Root, a stranger to
	// the host's files: ScriptDir, DataDir and each of their parents must
	// let others search them. Where user namespaces cannot be used
	// (Manager.UserNamespaces), the job fails with ErrUnavailable; it
	// never runs without its namespace.
	Users *UserRange

	// Stdin is copied to the script's standard input, which is then
	// closed (the script sees EOF). Nil means an empty input.
	Stdin io.Reader
	// Stdout receives the script's standard output as it is produced, in
	// chunks of at most 32 KiB, never before Started returned and never
	// after Run returned. A write error ends the job (ClientGone). Writes
	// must not block forever: give the writer a deadline. Nil discards.
	Stdout io.Writer
	// Stderr receives the script's standard error; after a write error
	// the rest is discarded (the job goes on). Nil discards.
	Stderr io.Writer

	// Started, when not nil, is called once, after the script's process
	// has been started and before any of its output is written to Stdout.
	Started func()
	// Ended, when not nil, is called once the script has exited and all of
	// its output has been written, with what Run will return, but before
	// the container is deleted: the caller can finish its response while
	// Run cleans up.
	Ended func(Result, error)

	Limits Limits
}

// Limits bound one job. Zero fields take the Manager's defaults (see
// WithDefaults and DefaultLimits).
type Limits struct {
	Wall      time.Duration // wall-clock deadline from start
	Memory    int64         // bytes of memory, no swap
	Pids      int64         // processes and threads
	CPU       float64       // cores, e.g. 0.5
	Output    int64         // bytes of stdout before the job is killed
	Tmp       int64         // bytes of the /tmp tmpfs
	NoFile    uint64        // RLIMIT_NOFILE
	FileSize  uint64        // RLIMIT_FSIZE in bytes
	KillGrace time.Duration // between SIGTERM and SIGKILL
}

// Reason says why a job ended.
type Reason string

const (
	Exited      Reason = "exited"       // the script ended by itself
	Timeout     Reason = "timeout"      // killed at Limits.Wall
	OutOfMemory Reason = "oom"          // the cgroup OOM-killed a process of the job
	ClientGone  Reason = "client-gone"  // ctx ended or writing Stdout failed; killed
	OutputLimit Reason = "output-limit" // killed after Limits.Output bytes of stdout
)

// Result says how a job ended.
type Result struct {
	// ExitCode is the script's exit status; 128+N when it was killed by
	// signal N (137 after SIGKILL), as containerd reports it; -1 when
	// unknown. Reason says why it ended.
	ExitCode int
	Reason   Reason
	Duration time.Duration // from the task's start to its exit
	// CPU and PeakMemory come from the container's cgroup; zero when the
	// cgroup did not tell.
	CPU        time.Duration
	PeakMemory int64
	// OOMKills is how many of the job's processes the cgroup's OOM killer
	// killed (Reason is OutOfMemory when it is not zero).
	OOMKills uint64
	// SetupCPU is the CPU the container used before the job was handed
	// to it: the runtime's start, the seccomp filter, the launcher's start.
	// CPU does not include it.
	SetupCPU time.Duration
	// Container is the id of the job's container (one per job, deleted
	// after it).
	Container string
	// Prepared is true when the job took a container a pool had started
	// ahead: Phases' Create, Task and Start then happened before the
	// request.
	Prepared bool
	// Phases is where the job's time went before and after the script.
	Phases Phases
}

// Phases are the durations of a job's steps around the script itself
// (Result.Duration), as measured by the gateway side. Task and Start are
// its container's even when a pool did them ahead (Result.Prepared); Create
// is then the image lookup and the take, the only step on the request's
// path. The container's deletion comes after Run returns; it is in the
// debug log.
type Phases struct {
	Create time.Duration // image lookup, snapshot and container record (prepared: image lookup and take)
	Task   time.Duration // new task: shim, runtime create, mounts, FIFOs
	Start  time.Duration // task start, until the script runs
	// FirstByte is from the hand-over of the job to its first byte of
	// output; zero for a script that printed nothing.
	FirstByte time.Duration
	Drain     time.Duration // from the exit until the output is drained and the metrics read
}

// withDefaults returns l with its zero fields taken from d.
func (l Limits) withDefaults(d Limits) Limits {
	if l.Wall <= 0 {
		l.Wall = d.Wall
	}
	if l.Memory <= 0 {
		l.Memory = d.Memory
	}
	if l.Pids <= 0 {
		l.Pids = d.Pids
	}
	if l.CPU <= 0 {
		l.CPU = d.CPU
	}
	if l.Output <= 0 {
		l.Output = d.Output
	}
	if l.Tmp <= 0 {
		l.Tmp = d.Tmp
	}
	if l.NoFile == 0 {
		l.NoFile = d.NoFile
	}
	if l.FileSize == 0 {
		// A file in /tmp may fill /tmp: an upload spooled there is one.
		l.FileSize = max(d.FileSize, uint64(l.Tmp))
	}
	if l.KillGrace <= 0 {
		l.KillGrace = d.KillGrace
	}
	return l
}

// validLabelValue reports whether s matches [A-Za-z0-9_.-]{1,64}: safe in a
// container id, a label and a log line.
func validLabelValue(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
		default:
			return false
		}
	}
	return true
}
