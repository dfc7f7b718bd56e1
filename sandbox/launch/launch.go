package launch

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Command is the argument that makes a cgibox binary act as the launcher
// inside a container.
const Command = "__launch"

// UID and GID are the only identity the launcher accepts.
const (
	UID = 65534
	GID = 65534
)

// Run is the container side of a job: it reads the frame from stdin
// (exactly the frame, nothing of the body after it), checks that it runs as
// 65534:65534, changes to the frame's directory and execs argv[0] with the
// frame's argv and environment. The script inherits stdin positioned just
// after the frame. Run returns only on failure.
func Run(stdin *os.File) error {
	// Refuse to run as anything but nobody: a spec that failed to drop
	// privileges must never run a script (SECURITY.md "Hardening").
	if uid, gid := os.Getuid(), os.Getgid(); uid != UID || gid != GID || os.Geteuid() != UID || os.Getegid() != GID {
		return fmt.Errorf("refusing to run as uid %d gid %d: must be %d:%d", uid, gid, UID, GID)
	}
	if stdin == nil {
		return errors.New("no stdin")
	}
	f, err := readFrame(stdin)
	if err != nil {
		return err
	}
	if err := os.Chdir(f.Dir); err != nil {
		return fmt.Errorf("chdir: %w", err)
	}
	if err := syscall.Exec(f.Args[0], f.Args, f.Env); err != nil {
		return fmt.Errorf("exec %s: %w", f.Args[0], err)
	}
	return nil
}
