package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cgibox/cgibox/images"
	"github.com/cgibox/cgibox/sandbox"
)

// daemonFlags are the flags every command that talks to containerd takes.
type daemonFlags struct {
	containerd string
	dataDir    string
}

func (d *daemonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.containerd, "containerd", "auto", "containerd socket `address`; auto: the standard socket, else a private daemon")
	fs.StringVar(&d.dataDir, "data-dir", "/var/lib/cgibox", "`directory` for cgibox's state and a private containerd")
}

// connect reaches containerd for a command that serves nothing. Its start-up
// sweep removes every container of this data directory's instance only when
// no cgibox is serving with it; otherwise just those past their deadline.
func (d *daemonFlags) connect(ctx context.Context, stderr io.Writer, opts ...sandbox.Option) (*sandbox.Manager, error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	instance := instanceID(d.dataDir)
	lock, err := lockDataDir(d.dataDir)
	switch {
	case errors.Is(err, errDataDirBusy):
		instance = fmt.Sprintf("%s-cmd-%d", instance, os.Getpid())
	case err != nil:
		return nil, err
	default:
		defer lock.Close()
	}
	return sandbox.New(ctx, append([]sandbox.Option{sandbox.WithAddress(d.containerd), sandbox.WithDataDir(d.dataDir),
		sandbox.WithLogger(log), sandbox.WithInstance(instance)}, opts...)...)
}

const imageUsage = `usage: cgibox image build NAME | import ARCHIVE | ls | rm NAME  [--containerd ADDR] [--data-dir DIR]`

func imageCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(imageUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("cgibox image "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var d daemonFlags
	d.register(fs)
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	want := map[string]int{"build": 1, "import": 1, "rm": 1, "ls": 0}
	n, ok := want[sub]
	if !ok || len(pos) != n {
		return errors.New(imageUsage)
	}
	mgr, err := d.connect(ctx, stderr)
	if err != nil {
		return err
	}
	defer mgr.Close()
	switch sub {
	case "build":
		start := time.Now()
		if err := buildImage(ctx, mgr, pos[0], stderr); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "built %s in %s\n", images.Ref(pos[0]), time.Since(start).Round(time.Millisecond))
	case "import":
		f, err := os.Open(pos[0])
		if err != nil {
			return fmt.Errorf("image import: %w", err)
		}
		defer f.Close()
		names, err := mgr.Import(ctx, f)
		if err != nil {
			return fmt.Errorf("image import %s: %w", pos[0], err)
		}
		for _, n := range names {
			fmt.Fprintf(stdout, "imported %s\n", n)
		}
	case "rm":
		ref := pos[0]
		if !strings.ContainsAny(ref, "/:") {
			ref = images.Ref(ref)
		}
		if err := mgr.RemoveImage(ctx, ref); err != nil {
			return fmt.Errorf("image rm %s: %w", ref, err)
		}
		fmt.Fprintf(stdout, "removed %s\n", ref)
	case "ls":
		list, err := mgr.ListImages(ctx)
		if err != nil {
			return fmt.Errorf("image ls: %w", err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSIZE\tCREATED")
		for _, im := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", im.Name, humanSize(im.Size), im.Created.Format(time.DateTime))
		}
		tw.Flush()
	}
	return nil
}

func gcCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cgibox gc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var d daemonFlags
	d.register(fs)
	if pos, err := parseInterleaved(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("cgibox gc takes no arguments, got %q", pos)
	}
	mgr, err := d.connect(ctx, stderr, sandbox.WithoutStartupSweep())
	if err != nil {
		return err
	}
	defer mgr.Close()
	n, err := mgr.Sweep(ctx)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	fmt.Fprintf(stdout, "removed %d leftover container(s)\n", n)
	return nil
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
