// Command report writes the results of a benchmark run into a folder:
// results.md (the table and the targets), results.json (every number) and
// chart.png, from the cells bench/cmd/load and the samples bench/cmd/mem
// appended to their files; and it prints the targets, each met or not.
//
//	report -cells cells.jsonl -mem mem.jsonl -out bench/results/20261203T060000Z -pool=false -pool-note "..."
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cgibox/cgibox/bench/load"
	"github.com/cgibox/cgibox/bench/procmem"
	"github.com/cgibox/cgibox/bench/report"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "report: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cellsFile, memFile, out, envFile string
	var res report.Results
	fs.StringVar(&cellsFile, "cells", "", "`file` of cells, one JSON line each (from load)")
	fs.StringVar(&memFile, "mem", "", "`file` of memory samples, one JSON line each (from mem)")
	fs.StringVar(&out, "out", "", "results `folder`")
	fs.StringVar(&envFile, "env", "", "`file` of 'key: value' lines about the host, for the report's header")
	fs.StringVar(&res.Meta.Started, "started", "", "when the run started (`UTC`)")
	fs.StringVar(&res.Meta.CellTime, "cell-duration", "", "`duration` of each cell")
	fs.StringVar(&res.Meta.Elapsed, "elapsed", "", "`time` the whole run took")
	fs.BoolVar(&res.Meta.Pool, "pool", false, "the cgibox warm cells ran (cgibox has --pool)")
	fs.StringVar(&res.Meta.PoolNote, "pool-note", "no --pool flag", "why the warm cells did not run (`text`)")
	fs.Float64Var(&res.Meta.LightRate, "light-rate", 10, "`rate` of the light-load cells")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cellsFile == "" || out == "" {
		return errors.New("need -cells and -out")
	}
	var err error
	if res.Cells, err = report.ReadLines[load.Cell](cellsFile); err != nil {
		return err
	}
	if memFile != "" {
		if res.Memory, err = report.ReadLines[procmem.Sample](memFile); err != nil {
			return err
		}
	}
	if envFile != "" {
		if res.Meta.Env, err = readEnv(envFile); err != nil {
			return err
		}
	}
	res.Evaluate()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("results folder: %w", err)
	}
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{
		{"results.md", res.WriteMarkdown},
		{"results.json", res.WriteJSON},
		{"chart.png", res.WriteChart},
	} {
		if err := writeFile(filepath.Join(out, f.name), f.write); err != nil {
			return err
		}
	}
	return res.PrintTargets(stdout)
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	w := bufio.NewWriter(f)
	if err := write(w); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// readEnv reads 'key: value' lines (at most 1 MiB).
func readEnv(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("env: %w", err)
	}
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("env %s: over 1 MiB", path)
	}
	env := map[string]string{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := strings.Cut(string(line), ":")
		if ok && strings.TrimSpace(k) != "" {
			env[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return env, nil
}
