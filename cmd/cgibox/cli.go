package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// usageError is a command line that cannot be run: cgibox prints it with a
// pointer to the command's help and exits 2, as argparse does.
type usageError struct {
	err     error
	command string // "cgibox image build", for the hint; set by run
}

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// hint is the line printed under a usage error.
func (u usageError) hint() string {
	cmd := u.command
	if cmd == "" {
		cmd = "cgibox"
	}
	return fmt.Sprintf("see '%s --help'", cmd)
}

// run runs the command args names until ctx ends; serve then drains until
// its requests are done or now is closed. A usage error comes back as a
// usageError naming the command whose help to see.
func run(ctx context.Context, now <-chan struct{}, args []string, stdout, stderr io.Writer) error {
	root := newRootCommand(now, stdout, stderr)
	long, short := allFlagNames(root)
	root.SetArgs(longFlags(long, short, args))
	cmd, err := root.ExecuteContextC(ctx)
	if u := (usageError{}); errors.As(err, &u) {
		return usageError{err: err, command: cmd.CommandPath()}
	}
	return err
}

// newRootCommand builds cgibox's command tree. The root is `serve`, as
// python -m http.server is: `cgibox 8000 -b 127.0.0.1` serves.
func newRootCommand(now <-chan struct{}, stdout, stderr io.Writer) *cobra.Command {
	root := newServeCommand(now, "cgibox [port] [-b ADDRESS] [-d DIRECTORY] [-p VERSION] [--cgi] [options]")
	root.Short = ""
	root.Long = "cgibox serves a directory as python -m http.server --cgi does, and runs each\n" +
		"CGI script in a fresh, hardened containerd container. With no command it\n" +
		"serves (cgibox serve)."
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SilenceErrors, root.SilenceUsage = true, true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err: err} })
	root.SetHelpFunc(func(c *cobra.Command, _ []string) { writeHelp(c.OutOrStdout(), c) })
	root.SetUsageFunc(func(c *cobra.Command) error { writeHelp(c.OutOrStderr(), c); return nil })
	serveCmd := newServeCommand(now, "serve [port] [-b ADDRESS] [-d DIRECTORY] [-p VERSION] [--cgi] [options]")
	root.AddCommand(
		serveCmd,
		newImageCommand(),
		newGCCommand(),
		newDoctorCommand(),
		newConfigCommand(),
		newInspectCommand(),
		&cobra.Command{
			Use: "version", Short: "print cgibox's version", Args: noArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				fmt.Fprintf(c.OutOrStdout(), "cgibox %s (%s, %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
				return nil
			},
		},
	)
	// cobra's help and completion commands, made now to word them as the
	// others are.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "help":
			c.Short = "show the help of cgibox or of a command (cgibox help image)"
		case "completion":
			c.Short = "print a shell completion script (bash, zsh, fish or powershell)"
		}
	}
	var tidy func(*cobra.Command)
	tidy = func(c *cobra.Command) {
		c.DisableFlagsInUseLine = true // the usage lines say [options] where they take some
		unquoteUsages(c.Flags())
		unquoteUsages(c.PersistentFlags())
		if c.Flags().Lookup("help") == nil {
			addHelpFlag(c.Flags())
		}
		for _, s := range c.Commands() {
			tidy(s)
		}
	}
	tidy(root)
	return root
}

// newServeCommand is `cgibox serve`, used as the root too.
func newServeCommand(now <-chan struct{}, use string) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: "serve a directory: static files, and CGI scripts in containers (the default)",
		Long: "Serves the directory as python -m http.server --cgi does, each CGI script in a\n" +
			"fresh, hardened containerd container; with --config, the sites a TOML file\n" +
			"describes.",
		Annotations:           map[string]string{argsAnnotation: "port\tport to listen on (default: 8000; 0 picks a free one)"},
		DisableFlagsInUseLine: true,
	}
	f := addServeFlags(c.Flags())
	_ = c.MarkFlagDirname("directory")
	_ = c.MarkFlagDirname("data-dir")
	_ = c.MarkFlagFilename("config", "toml")
	c.Args = cobra.ArbitraryArgs // the port, checked by options
	c.RunE = func(c *cobra.Command, args []string) error {
		o, err := f.options(c.Flags(), args)
		if err != nil {
			if len(args) > 0 && !c.HasParent() && !portLike(args[0]) {
				if s := c.SuggestionsFor(args[0]); len(s) > 0 {
					err = usageError{err: fmt.Errorf("%w (or did you mean cgibox %s?)", err, s[0])}
				}
			}
			return err
		}
		return serve(c.Context(), now, o, c.OutOrStdout(), c.ErrOrStderr())
	}
	return c
}

// noArgs refuses positional arguments as a usage error.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{err: fmt.Errorf("%s takes no arguments, got %q", c.CommandPath(), args)}
	}
	return nil
}

// exactArgs wants n positional arguments, named in what.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{err: fmt.Errorf("want %s %s", c.CommandPath(), what)}
		}
		return nil
	}
}

// needSubcommand is the RunE of a command that only groups others
// (image, config): a missing or unknown one is a usage error.
func needSubcommand(c *cobra.Command, args []string) error {
	var names []string
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			names = append(names, s.Name())
		}
	}
	if len(args) == 0 {
		return usageError{err: fmt.Errorf("%s needs a command: %s", c.CommandPath(), strings.Join(names, ", "))}
	}
	return usageError{err: fmt.Errorf("unknown command %q for %s (want %s)", args[0], c.CommandPath(), strings.Join(names, ", "))}
}

// allFlagNames is, for every flag of every command, whether it takes a
// value, by long name and by short name: what longFlags needs.
func allFlagNames(root *cobra.Command) (long, short map[string]bool) {
	long, short = map[string]bool{}, map[string]bool{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		flagNames(c.Flags(), long, short)
		flagNames(c.PersistentFlags(), long, short)
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	return long, short
}

// addHelpFlag defines -h, --help as argparse words it; cobra uses a help
// flag a command defines instead of its own.
func addHelpFlag(fs *pflag.FlagSet) {
	fs.BoolP("help", "h", false, "show this help and exit")
}

// The help of a command: flags under headings, each alias once, defaults as
// the configuration file writes them (64M, 30s).

const (
	groupAnnotation   = "cgibox_group"   // a flag's heading in the help
	argsAnnotation    = "cgibox_args"    // a command's positional arguments: "name\tmeaning" lines
	metavarAnnotation = "cgibox_metavar" // a flag's value's name, taken out of its usage
	helpWidth         = 80
	maxColumn         = 32 // where the meanings start, at most
)

// unquoteUsages takes the value's name out of each flag's usage
// ("serve this `directory`") into an annotation, so that completion shows
// the plain text; the help prints the name as the value's (DIRECTORY).
func unquoteUsages(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		if !strings.Contains(f.Usage, "`") || f.Annotations[metavarAnnotation] != nil {
			return
		}
		name, usage := pflag.UnquoteUsage(f)
		f.Usage = usage
		_ = fs.SetAnnotation(f.Name, metavarAnnotation, []string{name})
	})
}

// setGroup puts the named flags of fs under heading in the help.
func setGroup(fs *pflag.FlagSet, heading string, names ...string) {
	for _, n := range names {
		_ = fs.SetAnnotation(n, groupAnnotation, []string{heading}) // a misspelt name shows under "Options"; the golden help catches it
	}
}

// section is a heading and its rows: a term and its meaning.
type section struct {
	heading string
	rows    [][2]string
}

// writeHelp prints c's help: usage, description, commands, arguments and
// flags under their headings.
func writeHelp(w io.Writer, c *cobra.Command) {
	fmt.Fprintf(w, "usage: %s\n", c.UseLine())
	if c.HasAvailableSubCommands() && !strings.Contains(c.Use, "COMMAND") {
		fmt.Fprintf(w, "       %s COMMAND [options]\n", c.CommandPath())
	}
	if desc := strings.TrimSpace(cmp(c.Long, c.Short)); desc != "" {
		fmt.Fprintf(w, "\n%s\n", desc)
	}
	var sections []section
	if c.HasAvailableSubCommands() {
		s := section{heading: "Commands"}
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() || sub.Name() == "help" {
				s.rows = append(s.rows, [2]string{sub.Name(), sub.Short})
			}
		}
		sections = append(sections, s)
	}
	if a := c.Annotations[argsAnnotation]; a != "" {
		s := section{heading: "Arguments"}
		for _, line := range strings.Split(a, "\n") {
			term, meaning, _ := strings.Cut(line, "\t")
			s.rows = append(s.rows, [2]string{term, meaning})
		}
		sections = append(sections, s)
	}
	sections = append(sections, flagSections(c)...)
	// The commands have a column of their own; the arguments and flags
	// share one, so that every heading's meanings line up.
	var terms []string
	for _, s := range sections {
		if s.heading != "Commands" {
			for _, r := range s.rows {
				terms = append(terms, r[0])
			}
		}
	}
	col := column(terms)
	for _, s := range sections {
		fmt.Fprintf(w, "\n%s:\n", s.heading)
		c := col
		if s.heading == "Commands" {
			var names []string
			for _, r := range s.rows {
				names = append(names, r[0])
			}
			c = column(names)
		}
		for _, r := range s.rows {
			writeRow(w, c, r[0], r[1])
		}
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(w, "\nRun '%s help COMMAND' (or '%s COMMAND --help') for a command's own help.\n", root(c).Name(), c.CommandPath())
	}
}

func root(c *cobra.Command) *cobra.Command {
	for c.HasParent() {
		c = c.Parent()
	}
	return c
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// flagSections groups c's flags, its own and those it inherits, by heading
// in the order the headings first appear; flags without one go under
// "Options".
func flagSections(c *cobra.Command) []section {
	c.InheritedFlags() // merges the persistent flags into c.Flags()
	var out []section
	index := map[string]int{}
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		heading := "Options"
		if g := f.Annotations[groupAnnotation]; len(g) > 0 {
			heading = g[0]
		}
		i, ok := index[heading]
		if !ok {
			i = len(out)
			index[heading] = i
			out = append(out, section{heading: heading})
		}
		out[i].rows = append(out[i].rows, flagRow(f))
	})
	// "Options" (help, mostly) last, unless it is all there is.
	if i, ok := index["Options"]; ok && len(out) > 1 {
		opts := out[i]
		out = append(append(out[:i:i], out[i+1:]...), opts)
	}
	return out
}

// flagRow is "-d, --directory DIRECTORY" and its meaning with the default.
func flagRow(f *pflag.Flag) [2]string {
	name, usage := pflag.UnquoteUsage(f)
	if m := f.Annotations[metavarAnnotation]; len(m) > 0 {
		name = m[0]
	}
	term := "    "
	if f.Shorthand != "" {
		term = "-" + f.Shorthand + ", "
	}
	term += "--" + f.Name
	if name != "" {
		term += " " + metavar(name)
	}
	switch f.DefValue {
	case "", "0", "false", "[]":
	default:
		usage += " (default: " + f.DefValue + ")"
	}
	return [2]string{term, usage}
}

// metavar writes a value's name as argparse does, in capitals; one that
// shows a form ('Name: value') stays as it is, and numbers are N.
func metavar(name string) string {
	switch {
	case name == "int" || name == "float" || name == "uint":
		return "N"
	case strings.ContainsAny(name, " '"):
		return name
	}
	return strings.ToUpper(name)
}

// column is where the meanings of terms start: two spaces after the
// longest, up to maxColumn.
func column(terms []string) int {
	c := 0
	for _, t := range terms {
		c = max(c, len(t)+4)
	}
	return min(c, maxColumn)
}

// writeRow prints term and its meaning, the meaning wrapped at helpWidth
// from column col on (on the next line when the term is too long).
func writeRow(w io.Writer, col int, term, meaning string) {
	line := "  " + term
	if len(line) > col-2 {
		fmt.Fprintln(w, line)
		line = ""
	}
	for _, l := range wrap(meaning, helpWidth-col) {
		fmt.Fprintf(w, "%-*s%s\n", col, line, l)
		line = ""
	}
	if meaning == "" && line != "" {
		fmt.Fprintln(w, line)
	}
}

// wrap breaks s into lines of at most width characters, at spaces.
func wrap(s string, width int) []string {
	var lines []string
	var cur strings.Builder
	for _, word := range strings.Fields(s) {
		if cur.Len() > 0 && cur.Len()+1+len(word) > width {
			lines = append(lines, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(word)
	}
	if cur.Len() > 0 {
		lines = append(lines, cur.String())
	}
	return lines
}

// portLike says whether s could be meant as a port.
func portLike(s string) bool { _, err := strconv.Atoi(s); return err == nil }
