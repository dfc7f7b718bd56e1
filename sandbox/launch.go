package sandbox

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// LaunchCommand is the argument that makes the cgibox binary act as the
// launcher inside a container.
const LaunchCommand = "__launch"

// launchUID and launchGID are the only identity the launcher accepts.
const (
	launchUID = 65534
	launchGID = 65534
)

// Launch is the container side of a job: it reads the frame from stdin
// (exactly the frame, nothing of the body after it), checks that it runs as
// 65534:65534, changes to the frame's directory and execs argv[0] with the
// frame's argv and environment. The script inherits stdin positioned just
// after the frame. Launch returns only on failure.
func Launch(stdin *os.File) error {
	// Refuse to run as anything but nobody: a spec that failed to drop
	// privileges must never run a script (SECURITY.md "Hardening").
	if uid, gid := os.Getuid(), os.Getgid(); uid != launchUID || gid != launchGID || os.Geteuid() != launchUID || os.Getegid() != launchGID {
		return fmt.Errorf("refusing to run as uid %d gid %d: must be %d:%d", uid, gid, launchUID, launchGID)
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
