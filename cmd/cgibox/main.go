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
//	cgibox help [COMMAND]
//	cgibox completion bash|zsh|fish|powershell
//
// The command line is cobra's (cli.go); usage errors exit 2, as argparse's.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
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
	var u usageError
	switch {
	case errors.As(err, &u):
		fmt.Fprintf(os.Stderr, "cgibox: %v\n%s\n", err, u.hint())
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

// version is the module version stamped by the Go toolchain, or "devel".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
