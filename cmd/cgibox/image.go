package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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

func (d *daemonFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&d.containerd, "containerd", sandbox.AddressAuto, containerdUsage)
	fs.StringVar(&d.dataDir, "data-dir", "/var/lib/cgibox", "`directory` for cgibox's state and a private containerd")
	setGroup(fs, groupDaemon, "containerd", "data-dir")
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

// imageCacheDir is where built images and downloaded Debian packages are
// kept under a data directory.
func imageCacheDir(dataDir string) string { return filepath.Join(dataDir, "images", "cache") }

// newImageCommand is `cgibox image build|import|ls|rm`; every one takes
// the daemon flags.
func newImageCommand() *cobra.Command {
	var d daemonFlags
	c := &cobra.Command{
		Use:   "image COMMAND [options]",
		Short: "build, import, list and remove the images scripts run in",
		Long: "Manages the images CGI scripts run in, in containerd's namespace cgibox:\n" +
			"cgibox's own (busybox, perl, python, or a recipe directory) and imported ones.",
		Args: cobra.ArbitraryArgs,
		RunE: needSubcommand,
	}
	c.Flags().SortFlags = false
	c.PersistentFlags().SortFlags = false
	d.register(c.PersistentFlags())
	var mirror, suite string
	build := &cobra.Command{
		Use:       "build NAME|DIR [--suite SUITE] [--mirror URL] [options]",
		Short:     "build one of cgibox's images (" + strings.Join(images.Names(), ", ") + ") or a recipe directory",
		Args:      exactArgs(1, "NAME|DIR"),
		ValidArgs: images.Names(),
		RunE: func(c *cobra.Command, args []string) error {
			return imageBuild(c.Context(), d, args[0], mirror, suite, c.OutOrStdout(), c.ErrOrStderr())
		},
	}
	build.Flags().SortFlags = false
	addHelpFlag(build.Flags())
	build.Flags().StringVar(&suite, "suite", "", "Debian `suite` for Debian-based images (default: the recipe's, else the host's own)")
	build.Flags().StringVar(&mirror, "mirror", "", "Debian mirror `URL` for Debian-based images (default: the host's apt sources)")
	setGroup(build.Flags(), "Building", "suite", "mirror")
	importCmd := &cobra.Command{
		Use:   "import ARCHIVE [options]",
		Short: "import a docker-save or OCI archive into containerd",
		Args:  exactArgs(1, "ARCHIVE"),
		RunE: func(c *cobra.Command, args []string) error {
			return imageImport(c.Context(), d, args[0], c.OutOrStdout(), c.ErrOrStderr())
		},
	}
	ls := &cobra.Command{
		Use:   "ls [options]",
		Short: "list the images, their sizes and package versions",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return imageList(c.Context(), d, c.OutOrStdout(), c.ErrOrStderr())
		},
	}
	rm := &cobra.Command{
		Use:   "rm NAME [options]",
		Short: "remove an image",
		Args:  exactArgs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			return imageRemove(c.Context(), d, args[0], c.OutOrStdout(), c.ErrOrStderr())
		},
	}
	for _, s := range []*cobra.Command{build, importCmd, ls, rm} {
		s.DisableFlagsInUseLine = true
		c.AddCommand(s)
	}
	for _, s := range []*cobra.Command{importCmd, ls, rm} {
		addHelpFlag(s.Flags())
	}
	_ = c.MarkPersistentFlagDirname("data-dir")
	return c
}

func imageBuild(ctx context.Context, d daemonFlags, nameOrDir, mirror, suite string, stdout, stderr io.Writer) error {
	mgr, err := d.connect(ctx, "image build", stderr)
	if err != nil {
		return err
	}
	defer mgr.Close()
	start := time.Now()
	res, err := buildImage(ctx, mgr, nameOrDir, images.Options{
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
	return nil
}

func imageImport(ctx context.Context, d daemonFlags, archive string, stdout, stderr io.Writer) error {
	mgr, err := d.connect(ctx, "image import", stderr)
	if err != nil {
		return err
	}
	defer mgr.Close()
	f, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("image import: %w", err)
	}
	defer f.Close()
	names, err := mgr.Import(ctx, f)
	if err != nil {
		return fmt.Errorf("image import %s: %w", archive, err)
	}
	for _, n := range names {
		fmt.Fprintf(stdout, "imported %s\n", n)
	}
	return nil
}

func imageRemove(ctx context.Context, d daemonFlags, name string, stdout, stderr io.Writer) error {
	mgr, err := d.connect(ctx, "image rm", stderr)
	if err != nil {
		return err
	}
	defer mgr.Close()
	ref := name
	if !strings.ContainsAny(ref, "/:") {
		ref = images.Ref(ref)
	}
	if err := mgr.RemoveImage(ctx, ref); err != nil {
		return fmt.Errorf("image rm %s: %w", ref, err)
	}
	fmt.Fprintf(stdout, "removed %s\n", ref)
	return nil
}

func imageList(ctx context.Context, d daemonFlags, stdout, stderr io.Writer) error {
	mgr, err := d.connect(ctx, "image ls", stderr)
	if err != nil {
		return err
	}
	defer mgr.Close()
	list, err := mgr.ListImages(ctx)
	if err != nil {
		return fmt.Errorf("image ls: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tCREATED\tPACKAGES")
	for _, im := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", im.Name, images.HumanSize(im.Size), im.Created.Format(time.DateTime), packageList(im.Labels))
	}
	return tw.Flush()
}

// newDaemonCommand is a command that takes only the daemon flags (gc,
// doctor) and runs do with them.
func newDaemonCommand(use, short, long string, do func(ctx context.Context, d daemonFlags, stdout, stderr io.Writer) error) *cobra.Command {
	var d daemonFlags
	c := &cobra.Command{
		Use: use, Short: short, Long: long, Args: noArgs, DisableFlagsInUseLine: true,
		RunE: func(c *cobra.Command, _ []string) error { return do(c.Context(), d, c.OutOrStdout(), c.ErrOrStderr()) },
	}
	c.Flags().SortFlags = false
	addHelpFlag(c.Flags())
	d.register(c.Flags())
	return c
}

func newGCCommand() *cobra.Command {
	return newDaemonCommand("gc [options]", "remove containers a crashed cgibox left behind",
		"Removes the containers, tasks and snapshots a cgibox that was killed left\nbehind in containerd's namespace cgibox.", gc)
}

func gc(ctx context.Context, d daemonFlags, stdout, stderr io.Writer) error {
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
