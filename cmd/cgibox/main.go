// Command cgibox serves a site's static files and runs its CGI scripts, each
// in a fresh, hardened containerd container.
//
//	cgibox [serve] [port] [-b ADDRESS] [-d DIRECTORY] [-p VERSION] [--cgi] ...
//	cgibox image build|import|ls|rm ...
//	cgibox gc
//	cgibox doctor
//	cgibox version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/cgibox/cgibox/sandbox"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == sandbox.LaunchCommand {
		// Inside a CGI container: read the frame from stdin, exec the script.
		err := sandbox.Launch(os.Stdin)
		fmt.Fprintf(os.Stderr, "cgibox launcher: %v\n", err)
		os.Exit(127)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintf(os.Stderr, "cgibox: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd, rest := "serve", args
	if len(args) > 0 {
		switch args[0] {
		case "serve", "image", "gc", "doctor", "version":
			cmd, rest = args[0], args[1:]
		}
	}
	switch cmd {
	case "image":
		return imageCmd(ctx, rest, stdout, stderr)
	case "gc":
		return gcCmd(ctx, rest, stdout, stderr)
	case "doctor":
		return doctorCmd(ctx, rest, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "cgibox %s (%s, %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	}
	return serve(ctx, rest, stdout, stderr)
}

// version is the module version stamped by the Go toolchain, or "devel".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
