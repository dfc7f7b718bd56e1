// Command mem measures, from /proc, what an idle cgibox costs: the resident
// memory of its serve process and, for the containerd at -address, every
// shim with the processes under it (a prepared container's launcher). It
// appends one JSON line to -out, labelled with -peer.
//
//	mem -peer cgibox-warm -pid 1234 -address /tmp/x/data/containerd.sock -out mem.jsonl
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/cgibox/cgibox/bench/jsonl"
	"github.com/cgibox/cgibox/bench/procmem"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "mem: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mem", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s procmem.Sample
	var pid int
	var address, out string
	fs.StringVar(&s.Peer, "peer", "cgibox", "peer `name` for the report")
	fs.IntVar(&pid, "pid", 0, "`pid` of the serve process")
	fs.StringVar(&address, "address", "", "containerd socket `path` whose shims are measured")
	fs.StringVar(&out, "out", "", "append the sample as one JSON line to this `file` (default: print it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if pid <= 0 || address == "" {
		return errors.New("need -pid and -address")
	}
	var err error
	if s.Serve, err = procmem.Proc.Of(pid); err != nil {
		return err
	}
	if s.Shims, err = procmem.Proc.Shims(address); err != nil {
		return err
	}
	s.Containers = procmem.Summarize(s.Shims)
	line, err := json.Marshal(s)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "  %s: serve RSS %.1f MiB; %d shim(s), %d container(s), %.1f MiB RSS per container\n",
		s.Peer, float64(s.Serve.RssKiB)/1024, len(s.Shims), s.Containers.Count, s.Containers.PerContainerRss/1024)
	return jsonl.Append(out, append(line, '\n'), stdout)
}
