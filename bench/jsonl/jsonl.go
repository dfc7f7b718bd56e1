// Package jsonl appends the bench programs' one-line JSON results to their
// files (cells.jsonl, mem.jsonl), which scripts/bench.sh hands to the
// report.
package jsonl

import (
	"fmt"
	"io"
	"os"
)

// Append appends line to the file out, creating it, or writes it to
// stdout when out is "".
func Append(out string, line []byte, stdout io.Writer) error {
	if out == "" {
		_, err := stdout.Write(line)
		return err
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return fmt.Errorf("results: %w", err)
	}
	return f.Close()
}
