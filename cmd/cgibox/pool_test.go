package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
)

// TestPoolServesPreparedContainers: with the pool on, a request runs in a
// container that was waiting before it came, used by that request only and
// deleted after it; each finds a fresh /tmp; stopping cgibox deletes what
// still waits.
func TestPoolServesPreparedContainers(t *testing.T) {
	requireContainerd(t)
	c, ctx := containerdClient(t)
	root := cgiSite(t, map[string]string{
		"tmp.sh": "#!/bin/sh\necho Content-Type: text/plain\necho\nls -A /tmp | wc -l\ntouch /tmp/left-by-$$\n",
	})
	srv := startCgibox(t, "-d", root, "--pool", "2", "--pool-min", "2")
	for i := range 6 {
		var waiting map[string]bool
		if i > 0 {
			// From the second request on, the pool has had time to fill.
			if !waitFor(30*time.Second, func() bool { waiting = readyPrepared(t, c, ctx); return len(waiting) == 2 }) {
				t.Fatalf("request %d: %d prepared containers waiting, want 2", i, len(waiting))
			}
		}
		resp, body := get(t, srv.base+"/cgi-bin/tmp.sh", nil)
		if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "0" {
			t.Fatalf("request %d: status %d, body %q; want 200 and an empty /tmp", i, resp.StatusCode, body)
		}
		if i == 0 {
			continue
		}
		// The container that served it was one of those waiting, and it
		// is gone: it served this request only.
		var gone []string
		ok := waitFor(10*time.Second, func() bool {
			now := livePrepared(t, c, ctx)
			gone = slices.DeleteFunc(slices.Collect(maps.Keys(waiting)), func(id string) bool { return now[id] })
			return len(gone) == 1 && requestContainers(t, c, ctx) == 0
		})
		if !ok {
			t.Errorf("request %d: of the prepared containers %v, %v are gone, want exactly one (the one it took)", i, slices.Collect(maps.Keys(waiting)), gone)
		}
	}
	srv.stop(t)
	assertNothingLeft(t)
}

// readyPrepared is the set of live prepared containers whose launcher is
// blocked reading its stdin (a thread in read(0, ...) per
// /proc/PID/task/TID/syscall): ready for a request, not still being made.
func readyPrepared(t *testing.T, c *containerd.Client, ctx context.Context) map[string]bool {
	t.Helper()
	ready := map[string]bool{}
	for id := range livePrepared(t, c, ctx) {
		ctr, err := c.LoadContainer(ctx, id)
		if err != nil {
			continue
		}
		task, err := ctr.Task(ctx, nil)
		if err != nil {
			continue
		}
		files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", task.Pid()))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && strings.HasPrefix(string(b), "0 0x0 ") {
				ready[id] = true
				break
			}
		}
	}
	return ready
}
