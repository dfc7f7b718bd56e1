package sandbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A data directory holds cgibox's state: spooled request bodies, the image
// cache and, when no other containerd is used, a private daemon. One cgibox
// process at a time holds it, through an advisory lock on cgibox.lock that
// the kernel drops when the process dies (SIGKILL included). The lock file
// says who holds it, so that a second command can work beside the holder —
// use the holder's containerd, never start or stop one of its own there —
// and so that an operator reading an error knows which process to look at.

// lockFile is the name of the lock under a data directory.
const lockFile = "cgibox.lock"

// Holder is what the lock file records about the process holding a data
// directory.
type Holder struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
	// Containerd is the socket the holder uses; empty until it is
	// connected.
	Containerd string `json:"containerd,omitempty"`
	// Private is true when the holder started that containerd itself.
	Private bool `json:"private,omitempty"`
}

func (h Holder) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cgibox %s (pid %d, since %s", h.Command, h.PID, h.Since.Format(time.DateTime))
	switch {
	case h.Containerd != "" && h.Private:
		fmt.Fprintf(&b, ", its private containerd on %s", h.Containerd)
	case h.Containerd != "":
		fmt.Fprintf(&b, ", containerd on %s", h.Containerd)
	}
	b.WriteString(")")
	return b.String()
}

// ErrDataDirBusy is wrapped by the error of a command that needs a data
// directory to itself while another process holds it.
var ErrDataDirBusy = errors.New("data directory in use")

// BusyError says which process holds a data directory.
type BusyError struct {
	Dir    string
	Holder Holder // zero when the holder has not recorded itself yet
}

func (e *BusyError) Error() string {
	if e.Holder.PID == 0 {
		return fmt.Sprintf("data directory %s is in use by another cgibox that is starting", e.Dir)
	}
	return fmt.Sprintf("data directory %s is in use by %s", e.Dir, e.Holder)
}

func (e *BusyError) Unwrap() error { return ErrDataDirBusy }

// dataDirLock is a held data directory.
type dataDirLock struct {
	f      *os.File
	holder Holder
}

// lockDataDir takes dir's lock for command, or returns a *BusyError naming
// the holder.
func lockDataDir(dir, command string) (*dataDirLock, error) {
	// 0711, as containerd makes its own root and state: others may pass
	// through to a private daemon's container bundles (runc sets up a
	// user-namespaced container as a user the host does not know) but may
	// list nothing; what lies inside keeps its own modes.
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			h, _ := readHolder(dir)
			return nil, &BusyError{Dir: dir, Holder: h}
		}
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	l := &dataDirLock{f: f, holder: Holder{PID: os.Getpid(), Command: command, Since: time.Now().UTC().Truncate(time.Second)}}
	if err := l.record(); err != nil {
		l.release()
		return nil, err
	}
	return l, nil
}

// connected records the containerd the holder uses.
func (l *dataDirLock) connected(address string, private bool) error {
	l.holder.Containerd, l.holder.Private = address, private
	return l.record()
}

func (l *dataDirLock) record() error {
	b, err := json.Marshal(l.holder)
	if err != nil {
		return fmt.Errorf("data directory lock: %w", err)
	}
	b = append(b, '\n')
	// Readers may see the file empty for a moment; they treat that as a
	// holder still starting.
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("data directory lock: %w", err)
	}
	if _, err := l.f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("data directory lock: %w", err)
	}
	return nil
}

// release empties the record and drops the lock.
func (l *dataDirLock) release() error {
	_ = l.f.Truncate(0)
	return l.f.Close()
}

// readHolder reads what the holder of dir's lock recorded.
func readHolder(dir string) (Holder, error) {
	b, err := readBounded(filepath.Join(dir, lockFile))
	if err != nil {
		return Holder{}, err
	}
	var h Holder
	if len(bytes.TrimSpace(b)) == 0 {
		return h, errors.New("nothing recorded yet")
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return Holder{}, fmt.Errorf("data directory lock: %w", err)
	}
	return h, nil
}

// instanceOf names the gateway of a data directory in container labels. It
// is stable across restarts for one host and data directory, so that a
// cgibox started after a crash recognises the containers its predecessor
// left and removes them.
func instanceOf(dataDir string) string {
	h, _ := os.Hostname()
	sum := sha256.Sum256([]byte(dataDir))
	id := h + "-" + hex.EncodeToString(sum[:4])
	if !validLabelValue(id) {
		// A host name outside the label alphabet: the hash alone is
		// still unique per data directory.
		id = "cgibox-" + hex.EncodeToString(sum[:4])
	}
	return id
}

// processStart is the start time of pid in clock ticks since boot (field 22
// of /proc/PID/stat), which tells a process from a later one that reuses
// its pid.
func processStart(pid int) (uint64, error) {
	_, start, err := processState(pid)
	return start, err
}

// processState is the state (field 3 of /proc/PID/stat: R, S, Z...) and the
// start time of pid.
func processState(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0][0], start, err
}

// ownerLabel names the running process as the owner of a container: its
// pid namespace, pid and start time ("pid:[4026531836]/1234/5678"), so
// that a sweep in the same pid namespace can tell whether it still runs.
func ownerLabel() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	pid := os.Getpid()
	start, err := processStart(pid)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s/%d/%d", ns, pid, start)
}

// ownerGone reports whether the owner a label names has provably ended: it
// was a process of this pid namespace and that pid no longer runs, or runs
// a later process. An owner of another namespace, or a label that does not
// parse, is never gone.
func ownerGone(label string) bool {
	ns, rest, ok := strings.Cut(label, "/")
	if !ok {
		return false
	}
	here, err := os.Readlink("/proc/self/ns/pid")
	if err != nil || here != ns {
		return false
	}
	p, s, ok := strings.Cut(rest, "/")
	if !ok {
		return false
	}
	pid, err1 := strconv.Atoi(p)
	start, err2 := strconv.ParseUint(s, 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return false
	}
	now, err := processStart(pid)
	return errors.Is(err, fs.ErrNotExist) || err == nil && now != start
}
