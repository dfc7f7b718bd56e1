// Command load measures one benchmark cell: one peer, one URL, one way of
// pacing the requests. It appends the result as one JSON line to -out (or
// prints it), labelled with -peer and -workload so that bench/cmd/report
// can put it in its table.
//
//	load -peer nginx -workload static-1k -url http://127.0.0.1:8080/static/1k.bin -c 8 -d 5s -body-size 1024 -out cells.jsonl
//	load -peer python -workload cgi-hello -url ... -rate 10 -d 5s -out cells.jsonl
//	load -ready 60s -url ...   # only wait until the URL answers 200
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cgibox/cgibox/bench/jsonl"
	"github.com/cgibox/cgibox/bench/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg load.Config
	var cell load.Cell
	var out string
	var ready time.Duration
	fs.StringVar(&cfg.URL, "url", "", "`URL` to request (GET)")
	fs.StringVar(&cell.Peer, "peer", "", "peer `name` for the report")
	fs.StringVar(&cell.Workload, "workload", "", "workload `name` for the report")
	fs.IntVar(&cfg.Concurrency, "c", 1, "closed loop: `workers`")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop at this many `requests` per second (instead of a closed loop)")
	fs.DurationVar(&cfg.Duration, "d", 5*time.Second, "how `long` requests are started")
	fs.IntVar(&cfg.Warmup, "warmup", 10, "`requests` sent first and dropped")
	fs.DurationVar(&cfg.Settle, "settle", 0, "pause this `long` after the warm-up")
	fs.Int64Var(&cfg.BodySize, "body-size", -1, "a correct response's body length in `bytes` (-1: not checked)")
	fs.DurationVar(&cfg.Timeout, "timeout", load.DefaultTimeout, "`limit` on one request, body included")
	fs.IntVar(&cfg.MaxSamples, "max-samples", load.DefaultMaxSamples, "latencies kept at most (`count`)")
	fs.StringVar(&out, "out", "", "append the result as one JSON line to this `file` (default: print it)")
	fs.DurationVar(&ready, "ready", 0, "only wait up to this `long` for the URL to answer 200, then exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if ready > 0 {
		return load.WaitReady(ctx, cfg.URL, ready)
	}
	cfg.Mode = load.Closed
	if cfg.Rate > 0 {
		cfg.Mode = load.Open
	}
	res, runErr := load.Run(ctx, cfg)
	cell.URL, cell.Result = cfg.URL, res
	if runErr != nil {
		// Recorded, so that the report says which cell failed and why.
		cell.Failed = runErr.Error()
		cell.Result = load.Result{Mode: cfg.Mode, Concurrency: cfg.Concurrency, Rate: cfg.Rate}
		if cfg.Mode == load.Open {
			cell.Concurrency = 0
		}
	}
	line, err := json.Marshal(cell)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if runErr == nil {
		fmt.Fprintf(stderr, "  %-16s %-10s %-6s %8.1f req/s  p50 %8.2f  p90 %8.2f  p99 %8.2f ms  errors %d\n",
			cell.Peer, cell.Workload, pacing(res), res.RPS, res.P50, res.P90, res.P99, res.Errors)
	}
	if err := jsonl.Append(out, line, stdout); err != nil {
		return err
	}
	if runErr != nil {
		return fmt.Errorf("%s %s: %w", cell.Peer, cell.Workload, runErr)
	}
	return nil
}

func pacing(r load.Result) string {
	if r.Mode == load.Open {
		return fmt.Sprintf("%g/s", r.Rate)
	}
	return fmt.Sprintf("c=%d", r.Concurrency)
}
