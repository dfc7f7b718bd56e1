package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	cfs "github.com/containerd/continuity/fs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A job with Users runs in a user namespace of its own (see
// withUserNamespace in spec.go). Whether this host can do that is decided
// once, by New, from what the kernel says and from where the runtime will
// have to reach: runc sets a user-namespaced container up as the site's
// root, an unmapped user to the host, so every directory on the way to the
// container's bundle and to the launcher must let others search it.

// UserNamespaces reports whether jobs with Users can run here: nil when
// they can, else an error saying why not. A job with Users fails before
// anything starts, with an error wrapping ErrUnavailable and this one,
// when it is not nil; it never runs without its user namespace.
func (m *Manager) UserNamespaces() error { return m.userns }

// userNamespaceSupport is what New decides: the kernel's support and the
// reachability of the bundles under state ("" when unknown: a daemon cgibox
// did not start) and of the launcher ("" when unknown).
func userNamespaceSupport(state, launcher string) error {
	if err := kernelUserNamespaces("/proc"); err != nil {
		return err
	}
	var dirs []string
	if state != "" {
		dirs = append(dirs, state)
	}
	if launcher != "" {
		dirs = append(dirs, filepath.Dir(launcher))
	}
	return searchableByOthers(dirs...)
}

// kernelUserNamespaces reports why the kernel whose proc filesystem is at
// proc gives no user namespaces, or nil when it does.
func kernelUserNamespaces(proc string) error {
	if _, err := os.Stat(filepath.Join(proc, "self", "ns", "user")); err != nil {
		return fmt.Errorf("the kernel has no user namespaces (built without CONFIG_USER_NS: %w)", err)
	}
	file := filepath.Join(proc, "sys", "user", "max_user_namespaces")
	b, err := readBounded(file)
	if err != nil {
		return fmt.Errorf("cannot tell whether the kernel allows user namespaces: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	switch {
	case err != nil:
		return fmt.Errorf("cannot tell whether the kernel allows user namespaces: %s: %w", file, err)
	case n <= 0:
		return fmt.Errorf("the kernel forbids user namespaces: %s is %d (sysctl -w user.max_user_namespaces=15000)", file, n)
	}
	return nil
}

// searchableByOthers fails unless every directory given, and each of its
// parents, lets a user that is neither its owner nor in its group search
// it (the execute bit for others).
func searchableByOthers(dirs ...string) error {
	for _, dir := range dirs {
		for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
			fi, err := os.Stat(d)
			if err != nil {
				return fmt.Errorf("runc must reach %s from inside a user namespace: %w", dir, err)
			}
			if fi.Mode().Perm()&0o001 == 0 {
				return fmt.Errorf("runc sets a user-namespaced container up as an unmapped user, who cannot search %s (mode %04o) to reach %s (chmod o+x %s)",
					d, fi.Mode().Perm(), dir, d)
			}
			if d == "/" || d == "." {
				break
			}
		}
	}
	return nil
}

// withMountPoints creates, in the container's new snapshot, the mount
// points of its spec that the image lacks (a directory, or an empty file
// for a bind mount of a file), as host root, before the runtime sees the
// snapshot. Without a user namespace the runtime creates them itself; in
// one, it sets the container up as the site's root, which is nobody to the
// image's files (all host root's) and may create nothing in them. The image
// is left as it is otherwise: its files keep their owner, which the
// container sees as the overflow id.
func withMountPoints(ctx context.Context, client *containerd.Client, c *containers.Container) error {
	if c.Spec == nil || c.SnapshotKey == "" {
		return errors.New("mount points: the container has no spec or snapshot yet")
	}
	v, err := typeurl.UnmarshalAny(c.Spec)
	if err != nil {
		return fmt.Errorf("mount points: %w", err)
	}
	spec, ok := v.(*specs.Spec)
	if !ok {
		return fmt.Errorf("mount points: spec is a %T", v)
	}
	mounts, err := client.SnapshotService(c.Snapshotter).Mounts(ctx, c.SnapshotKey)
	if err != nil {
		return fmt.Errorf("mount points: %w", err)
	}
	return mount.WithTempMount(ctx, mounts, func(root string) error {
		return makeMountPoints(root, spec.Mounts)
	})
}

// makeMountPoints creates below root what the runtime will mount on:
// every destination not below an earlier mount (whose filesystem provides
// it: /dev/shm in the /dev tmpfs), resolved within root so that a symlink
// of the image cannot point the creation outside it.
func makeMountPoints(root string, mounts []specs.Mount) error {
	var done []string
	for _, m := range mounts {
		dest := path.Clean(m.Destination)
		below := false
		for _, d := range done {
			below = below || hasPathPrefix(dest, d) && dest != d
		}
		done = append(done, dest)
		if below {
			continue
		}
		p, err := cfs.RootPath(root, dest)
		if err != nil {
			return fmt.Errorf("mount point %s: %w", dest, err)
		}
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		file := false
		if m.Type == "bind" {
			fi, err := os.Stat(m.Source)
			if err != nil {
				return fmt.Errorf("mount point %s: %w", dest, err)
			}
			file = !fi.IsDir()
		}
		dir := p
		if file {
			dir = filepath.Dir(p)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("mount point %s: %w", dest, err)
		}
		if file {
			f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("mount point %s: %w", dest, err)
			}
			f.Close()
		}
	}
	return nil
}

// ReachableInUserNamespace reports, for each directory a user-namespaced
// job mounts (its script and data directories), whether the runtime can
// reach it: every directory on the way must let others search it, since
// runc sets such a container up as a user the host does not know. The
// error names the first directory that does not, and the fix.
func ReachableInUserNamespace(dirs ...string) error { return searchableByOthers(dirs...) }
