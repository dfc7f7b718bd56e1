// Command cgibox serves a site's static files and runs its CGI scripts, each
// in a fresh, hardened containerd container.
//
//	cgibox [serve] [port] [-b ADDRESS] [-d DIRECTORY] [-p VERSION] [--cgi] ...
//	cgibox image build|import|ls|rm ...
//	cgibox gc
//	cgibox config check FILE
//	cgibox inspect URL [--config FILE] [-X METHOD] [-H 'Name: value']
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
	ctx, now := stopSignals()
	err := run(ctx, now, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		fmt.Fprintf(os.Stderr, "cgibox: %v\n", err)
		os.Exit(2) // argparse's status for a usage error
	case err != nil:
		fmt.Fprintf(os.Stderr, "cgibox: %v\n", err)
		os.Exit(1)
	}
}

// stopSignals turns SIGINT and SIGTERM into the stages of a stop: the first
// ends ctx (serve drains, every other command stops), the second closes now
// (serve ends the requests in flight at once and cleans up), the third exits
// without cleaning up; the next start's sweep removes what is left.
func stopSignals() (ctx context.Context, now <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	nowc := make(chan struct{})
	sigs := make(chan os.Signal, 3)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel()
		<-sigs
		close(nowc)
		<-sigs
		fmt.Fprintln(os.Stderr, "cgibox: third signal: exiting without cleaning up")
		os.Exit(1)
	}()
	return ctx, nowc
}

// run runs the command args names until ctx ends; serve then drains until
// its requests are done or now is closed.
func run(ctx context.Context, now <-chan struct{}, args []string, stdout, stderr io.Writer) error {
	cmd, rest := "serve", args
	if len(args) > 0 {
		switch args[0] {
		case "serve", "image", "gc", "doctor", "version", "config", "inspect":
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
	case "config":
		return configCmd(ctx, rest, stdout, stderr)
	case "inspect":
		return inspectCmd(ctx, rest, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "cgibox %s (%s, %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	}
	return serve(ctx, now, rest, stdout, stderr)
}

// version is the module version stamped by the Go toolchain, or "devel".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
