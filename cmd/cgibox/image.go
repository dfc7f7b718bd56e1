package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cgibox/cgibox/images"
	"github.com/cgibox/cgibox/sandbox"
)

const containerdUsage = "containerd socket `address`; auto: the one a cgibox holding --data-dir uses, else the standard socket, " +
	"else a private daemon; private: always the data directory's private daemon"

// daemonFlags are the flags every command that talks to containerd takes.
type daemonFlags struct {
	containerd string
	dataDir    string
}

func (d *daemonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.containerd, "containerd", sandbox.AddressAuto, containerdUsage)
	fs.StringVar(&d.dataDir, "data-dir", "/var/lib/cgibox", "`directory` for cgibox's state and a private containerd")
}

// connect reaches containerd for a command that serves nothing. Beside a
// cgibox that holds the data directory it works on that cgibox's containerd
// and leaves it, and its running containers, alone; otherwise it holds the
// data directory itself until the manager is closed.
func (d *daemonFlags) connect(ctx context.Context, command string, stderr io.Writer, opts ...sandbox.Option) (*sandbox.Manager, error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return sandbox.New(ctx, append([]sandbox.Option{sandbox.WithAddress(d.containerd), sandbox.WithDataDir(d.dataDir),
		sandbox.WithLogger(log), sandbox.WithCommand(command), sandbox.WithShareDataDir()}, opts...)...)
}

const imageUsage = `usage: cgibox image build NAME|DIR [--suite SUITE] [--mirror URL] | import ARCHIVE | ls | rm NAME  [--containerd ADDR] [--data-dir DIR]`

// imageCacheDir is where built images and downloaded Debian packages are
// kept under a data directory.
func imageCacheDir(dataDir string) string { return filepath.Join(dataDir, "images", "cache") }

func imageCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(imageUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("cgibox image "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var d daemonFlags
	d.register(fs)
	var mirror, suite string
	if sub == "build" {
		fs.StringVar(&mirror, "mirror", "", "Debian mirror `URL` for Debian-based images (default: the host's apt sources)")
		fs.StringVar(&suite, "suite", "", "Debian `suite` for Debian-based images (default: the recipe's, else the host's own)")
	}
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	want := map[string]int{"build": 1, "import": 1, "rm": 1, "ls": 0}
	n, ok := want[sub]
	if !ok || len(pos) != n {
		return errors.New(imageUsage)
	}
	mgr, err := d.connect(ctx, "image "+sub, stderr)
	if err != nil {
		return err
	}
	defer mgr.Close()
	switch sub {
	case "build":
		start := time.Now()
		res, err := buildImage(ctx, mgr, pos[0], images.Options{
			Progress: stderr, CacheDir: imageCacheDir(d.dataDir), Mirror: mirror, Suite: suite,
		})
		if err != nil {
			return err
		}
		how := ""
		if res.Cached {
			how = ", from the cache"
		}
		fmt.Fprintf(stdout, "built %s in %s: %s%s\n", res.Ref, time.Since(start).Round(time.Millisecond), images.HumanSize(res.Size), how)
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
		fmt.Fprintln(tw, "NAME\tSIZE\tCREATED\tPACKAGES")
		for _, im := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", im.Name, images.HumanSize(im.Size), im.Created.Format(time.DateTime), packageList(im.Labels))
		}
		tw.Flush()
	}
	return nil
}

// parseDaemonOnly parses the command line of a command that takes only
// the daemon flags.
func parseDaemonOnly(name string, args []string, stderr io.Writer) (daemonFlags, error) {
	fs := flag.NewFlagSet("cgibox "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var d daemonFlags
	d.register(fs)
	if pos, err := parseInterleaved(fs, args); err != nil {
		return d, err
	} else if len(pos) > 0 {
		return d, fmt.Errorf("cgibox %s takes no arguments, got %q", name, pos)
	}
	return d, nil
}

func gcCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	d, err := parseDaemonOnly("gc", args, stderr)
	if err != nil {
		return err
	}
	mgr, err := d.connect(ctx, "gc", stderr, sandbox.WithoutStartupSweep())
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

// packageList formats the package versions an image's labels record:
// "perl=5.36.0-7 libcgi-pm-perl=4.55-1", or "-".
func packageList(labels map[string]string) string {
	var out []string
	for k, v := range labels {
		if p, ok := strings.CutPrefix(k, images.LabelPackage+"."); ok {
			out = append(out, p+"="+v)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}
