package main

import (
	"github.com/cgibox/cgibox/config"

	"errors"
	"flag"
	"strconv"
	"strings"
	"time"
)

// parseInterleaved parses args with fs the way Python's argparse does:
// flags and positional arguments may come in any order ("8000 -b 127.0.0.1"),
// "--" ends the flags. It returns the positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// flag stops at "--" (consumed) or at the first non-flag.
		if len(args) >= len(rest)+1 && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ", ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// byteSize is a flag holding a size such as 128M, 16MiB, 1G or 4096.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

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
