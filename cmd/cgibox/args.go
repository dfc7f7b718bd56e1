package main

import (
	"errors"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/cgibox/cgibox/config"
)

// longFlags rewrites the single-dash long flags Go's flag package took
// ("-cgi", "-directory=DIR") as GNU ones ("--cgi", "--directory=DIR") so
// that command lines written for the cgibox before pflag keep working. Only
// names some command defines as a long flag are rewritten, so Python's
// "-b ADDRESS" and "-bADDRESS" stay short options; the value that follows a
// flag taking one is left alone, and so is everything after "--".
func longFlags(takesValue map[string]bool, shortTakesValue map[string]bool, args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		out = append(out, a)
		switch {
		case a == "--":
			return append(out, args[i+1:]...)
		case strings.HasPrefix(a, "--"):
			name, _, hasValue := strings.Cut(a[2:], "=")
			if !hasValue && takesValue[name] && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			name, _, hasValue := strings.Cut(a[1:], "=")
			if v, long := takesValue[name]; long && len(name) > 1 {
				out[len(out)-1] = "-" + a
				if !hasValue && v && i+1 < len(args) {
					i++
					out = append(out, args[i])
				}
				continue
			}
			if len(a) == 2 && shortTakesValue[a[1:]] && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		}
	}
	return out
}

// flagNames records, for the long and the short names of fs's flags,
// whether each takes a value.
func flagNames(fs *pflag.FlagSet, long, short map[string]bool) {
	fs.VisitAll(func(f *pflag.Flag) {
		long[f.Name] = f.NoOptDefVal == ""
		if f.Shorthand != "" {
			short[f.Shorthand] = f.NoOptDefVal == ""
		}
	})
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ", ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
func (l *stringList) Type() string       { return "strings" }

// byteSize is a flag holding a size such as 128M, 16MiB, 1G or 4096; it
// prints as the configuration file writes sizes (128M).
type byteSize int64

func (b *byteSize) String() string { return config.FormatSize(int64(*b)) }
func (b *byteSize) Type() string   { return "size" }

func (b *byteSize) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

func parseSize(v string) (int64, error) { return config.ParseSize(v) }

// positiveDuration is a flag holding a duration above zero.
type positiveDuration time.Duration

func (d *positiveDuration) String() string { return time.Duration(*d).String() }
func (d *positiveDuration) Type() string   { return "duration" }

func (d *positiveDuration) Set(v string) error {
	t, err := time.ParseDuration(v)
	if err != nil {
		return err
	}
	if t <= 0 {
		return errors.New("must be above zero")
	}
	*d = positiveDuration(t)
	return nil
}
