//go:build linux

package sitedata

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkCreate64MiB: making, attaching and mounting a new 64 MiB
// volume (ms/open), and unmounting it (ms/close).
func BenchmarkCreate64MiB(b *testing.B) {
	root := scratch(b)
	var timer openCloseTimer
	for i := 0; b.Loop(); i++ {
		timer.openClose(b, Options{Dir: filepath.Join(root, strconv.Itoa(i)), Quota: 64 << 20, UID: siteUID, GID: siteGID})
	}
	timer.report(b)
}

// BenchmarkReopen64MiB: checking, attaching and mounting an existing 64 MiB
// volume (ms/open), and unmounting it (ms/close).
func BenchmarkReopen64MiB(b *testing.B) {
	root := scratch(b)
	o := Options{Dir: filepath.Join(root, "data"), Quota: 64 << 20, UID: siteUID, GID: siteGID}
	var timer openCloseTimer
	timer.openClose(b, o) // makes it
	timer = openCloseTimer{}
	for b.Loop() {
		timer.openClose(b, o)
	}
	timer.report(b)
}

type openCloseTimer struct {
	n              int
	opening, close time.Duration
}

func (ot *openCloseTimer) openClose(b *testing.B, o Options) {
	start := time.Now()
	v, err := Open(b.Context(), o)
	if err != nil {
		b.Fatal(err)
	}
	opened := time.Now()
	if err := v.Close(); err != nil {
		b.Fatal(err)
	}
	ot.n++
	ot.opening += opened.Sub(start)
	ot.close += time.Since(opened)
}

func (ot *openCloseTimer) report(b *testing.B) {
	ms := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(ot.n) }
	b.ReportMetric(ms(ot.opening), "ms/open")
	b.ReportMetric(ms(ot.close), "ms/close")
}
