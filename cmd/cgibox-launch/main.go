// Command cgibox-launch is cgibox's launcher on its own: the process every
// CGI container starts with. It reads the job's frame from stdin and execs
// the script (package sandbox/launch), exactly as `cgibox __launch` does,
// but it links the standard library only: it starts in about 1.7 ms of CPU
// where the whole cgibox binary takes 7.5 (its dependencies' package
// initialisation), and a prepared container waiting in it holds a few MiB
// less. cgibox uses it when it lies beside the cgibox binary; build it
// static, like cgibox: CGO_ENABLED=0 go build ./cmd/cgibox-launch.
package main

import (
	"fmt"
	"os"

	"github.com/cgibox/cgibox/sandbox/launch"
)

func main() {
	if len(os.Args) != 2 || os.Args[1] != launch.Command {
		fmt.Fprintf(os.Stderr, "usage: %s %s (cgibox runs it inside its containers)\n", os.Args[0], launch.Command)
		os.Exit(2)
	}
	err := launch.Run(os.Stdin)
	fmt.Fprintf(os.Stderr, "cgibox launcher: %v\n", err)
	os.Exit(127)
}
