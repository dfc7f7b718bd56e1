package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
)

// Sweep removes what jobs left behind in the namespace: every container
// labelled as cgibox's (LabelRequest) that belongs to this instance or whose
// deadline has passed, with its task (killed) and snapshot, and then every
// active snapshot labelled as cgibox's that no container uses any more. New
// runs it at start-up; it is what recovers from a cgibox that was killed.
// Containers of another instance whose deadline is still ahead are left
// alone (they may be running).
func (m *Manager) Sweep(ctx context.Context) (removed int, err error) {
	ctrs, err := m.client.Containers(ctx, fmt.Sprintf("labels.%q", LabelRequest))
	if err != nil {
		return 0, classify(fmt.Errorf("sweep: list containers: %w", err))
	}
	now := time.Now()
	var errs []error
	inUse := map[string]bool{}
	waiting := 0 // prepared containers of a live cgibox
	for _, c := range ctrs {
		labels, err := c.Labels(ctx)
		if err != nil {
			if !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("container %s: %w", c.ID(), err))
			}
			continue
		}
		if !m.owns(labels, now) {
			inUse[c.ID()] = true
			if labels[LabelPrepared] == "true" {
				waiting++
			}
			continue
		}
		if err := removeContainer(ctx, c); err != nil {
			errs = append(errs, err)
			continue
		}
		m.endOrphanShim(c.ID())
		m.deleted.Add(1)
		removed++
		m.log.Info("swept leftover container", "container", c.ID(),
			"request", labels[LabelRequest], "site", labels[LabelSite], "instance", labels[LabelInstance])
	}
	// Snapshots whose container record is gone (cgibox died between
	// preparing a snapshot and creating its container).
	sn := m.client.SnapshotService(Snapshotter)
	var orphans []string
	err = sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindActive && info.Labels[LabelRequest] != "" && !inUse[info.Name] {
			orphans = append(orphans, info.Name)
		}
		return nil
	}, fmt.Sprintf("labels.%q", LabelRequest))
	if err != nil {
		errs = append(errs, fmt.Errorf("walk snapshots: %w", err))
	}
	for _, key := range orphans {
		if _, err := m.client.LoadContainer(ctx, key); err == nil {
			continue // a container created meanwhile owns it
		}
		if err := sn.Remove(ctx, key); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove snapshot %s: %w", key, err))
			continue
		}
		removed++
		m.log.Info("swept leftover snapshot", "snapshot", key)
	}
	if waiting > 0 {
		m.log.Info("left alone: prepared containers waiting for a running cgibox", "containers", waiting)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, classify(fmt.Errorf("sweep: %w", err))
	}
	return removed, nil
}

// owns reports whether Sweep may remove a container with these labels.
func (m *Manager) owns(labels map[string]string, now time.Time) bool {
	if labels[LabelInstance] == m.instance {
		return true
	}
	// A prepared container waits for a job of its owner only: once that
	// owner has ended, nothing will ever take it.
	if labels[LabelPrepared] == "true" && ownerGone(labels[LabelOwner]) {
		return true
	}
	deadline, err := time.Parse(time.RFC3339, labels[LabelDeadline])
	return err != nil || now.After(deadline.Add(time.Minute))
}

// removeContainer kills and deletes the container's task, if any, and then
// the container with its snapshot.
func removeContainer(ctx context.Context, c containerd.Container) error {
	task, err := c.Task(ctx, nil)
	switch {
	case err == nil:
		// The shim holds the task's stdin open until told otherwise; a
		// gateway that died never told it.
		_ = task.CloseIO(ctx, containerd.WithStdinCloser)
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			// A task whose shim died cannot be waited for: kill and
			// force the delete.
			_ = task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll)
			if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("delete task %s: %w", c.ID(), err)
			}
		}
	case !errdefs.IsNotFound(err):
		return fmt.Errorf("load task %s: %w", c.ID(), err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", c.ID(), err)
	}
	return nil
}

// orphanShimGrace is how long a swept container's shim may take to exit on
// its own.
const orphanShimGrace = 2 * time.Second

// endOrphanShim makes sure the shim of a swept container exits. After a
// gateway crash, containerd 1.6 sometimes deletes the task and container but
// leaves their shim running (it still holds the dead gateway's stdin FIFO),
// for half a minute or for good. The shim is found by its exact container id
// and daemon address, given the grace to exit, then killed.
func (m *Manager) endOrphanShim(id string) {
	deadline := time.Now().Add(orphanShimGrace)
	for {
		pids := shimPids(id, m.address)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
					m.log.Warn("killed the orphaned shim of a swept container", "container", id, "pid", pid)
				}
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shimPids lists the shim processes serving container id for the daemon at
// address, from their command lines.
func shimPids(id, address string) []int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.HasPrefix(b, []byte("/")) && !bytes.HasPrefix(b, []byte("containerd-shim")) {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") ||
			!slices.Contains(args, id) || !slices.Contains(args, address) {
			continue
		}
		if i := slices.Index(args, "-id"); i < 0 || i+1 >= len(args) || args[i+1] != id {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}
