package sandbox

import (
	"bytes"
	"io"
	"os"

	"github.com/cgibox/cgibox/sandbox/launch"
)

// The launcher is the process every container starts with (package
// launch): it reads the job's frame from stdin and execs the script.

// LaunchCommand is the argument that makes a cgibox binary the launcher.
const LaunchCommand = launch.Command

// MaxFrameSize bounds the payload of a frame (argv + env + dir).
const MaxFrameSize = launch.MaxFrameSize

// ErrBadFrame is wrapped by the errors of a malformed frame.
var ErrBadFrame = launch.ErrBadFrame

// launchUID and launchGID are the only identity the launcher accepts.
const (
	launchUID = launch.UID
	launchGID = launch.GID
)

// Launch is the container side of a job (see launch.Run).
func Launch(stdin *os.File) error { return launch.Run(stdin) }

// EncodeFrame returns the frame carrying argv, env and dir to the launcher.
func EncodeFrame(args, env []string, dir string) ([]byte, error) {
	return launch.EncodeFrame(args, env, dir)
}

// frameReader is the frame followed by the body: what a job's stdin gets.
func frameReader(frame []byte, body io.Reader) io.Reader {
	if body == nil {
		return bytes.NewReader(frame)
	}
	return io.MultiReader(bytes.NewReader(frame), body)
}
