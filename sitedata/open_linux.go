//go:build linux

package sitedata

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Open provides the data directory o describes: a plain directory without
// a quota; with one, the directory with the quota's ext4 volume mounted on
// it (made the first time, grown when the quota grew, reused when already
// mounted). On failure it leaves nothing behind that it made: no mount,
// no loop device, no new image.
//
// A Volume that reuses a mount does not count it: the Volume that made the
// mount unmounts it on Close, whoever else uses it. The mount is made in
// the caller's mount namespace; containerd must share it.
func Open(ctx context.Context, o Options) (*Volume, error) {
	return open(ctx, o, loopControl)
}

// open is Open with the loop control device as a parameter, so a test can
// play a host without loop devices.
func open(ctx context.Context, o Options, loopControl string) (*Volume, error) {
	o, err := o.check()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sitedata: opening %s: %w", o.Dir, err)
	}
	if o.Quota == 0 {
		return openPlain(o)
	}
	return openQuota(ctx, o, loopControl)
}

// openPlain provides a directory without a quota. It refuses when o's
// image exists, since the site's data is in it, not in the directory.
func openPlain(o Options) (*Volume, error) {
	switch _, err := os.Lstat(o.Image); {
	case err == nil:
		return nil, fmt.Errorf("sitedata: %s has no quota, but its quota image %s exists and holds the site's data, which the plain directory would not show: give a quota at least the image's size, or copy the data out of the volume and remove the image", o.Dir, o.Image)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("sitedata: %w", err)
	}
	d, err := openDir(o.Dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if err := own(d, o); err != nil {
		return nil, err
	}
	return &Volume{dir: o.Dir}, nil
}

// openQuota provides a directory with o's volume mounted on it.
func openQuota(ctx context.Context, o Options, loopControl string) (*Volume, error) {
	d, err := openDir(o.Dir)
	if err != nil {
		return nil, err
	}
	defer d.Close() // and with it the lock
	// One Open of a directory at a time, in this process or another: two
	// that both found it unmounted would mount one filesystem twice, from
	// two loop devices, and corrupt it. The lock is on the directory
	// under any mount; an Open that comes later and opens the mounted
	// root instead finds the mount made, which is as good.
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("sitedata: locking %s: %w", o.Dir, err)
	}
	// mountinfo names mount points by their real path.
	point, err := filepath.EvalSymlinks(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("sitedata: %w", err)
	}
	m, mounted, err := findMount(point)
	if err != nil {
		return nil, err
	}
	if mounted {
		return reuse(ctx, o, m)
	}
	return mountNew(ctx, o, point, d, loopControl)
}

// reuse provides the volume already mounted at o.Dir as m, growing it if
// the quota grew. The mount is not this Volume's: Close leaves it.
func reuse(ctx context.Context, o Options, m mount) (*Volume, error) {
	backing, isLoop, err := loopBackingFile(m.major, m.minor)
	if err != nil {
		return nil, err
	}
	image, err := filepath.EvalSymlinks(o.Image)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("sitedata: %w", err)
	}
	if !isLoop || backing != image || m.root != "/" {
		return nil, fmt.Errorf("sitedata: %s is already a mount point (of %s, %s), not of its quota image %s, which would hide it: unmount it (umount %s) or choose another directory", o.Dir, m.source, m.fstype, o.Image, o.Dir)
	}
	for _, opt := range []string{"nosuid", "nodev", "noexec"} {
		if !m.has(opt) {
			return nil, fmt.Errorf("sitedata: %s is mounted from its quota image %s without %s: unmount it (umount %s) and open it again, which mounts it nosuid,nodev,noexec", o.Dir, o.Image, opt, o.Dir)
		}
	}
	img, err := openImage(o)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	v := &Volume{dir: o.Dir, image: o.Image, dev: unix.Mkdev(m.major, m.minor)}
	if v.loop, err = loopDevicePath(m.major, m.minor); err != nil {
		return nil, err
	}
	loop, err := os.OpenFile(v.loop, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("sitedata: opening the loop device of %s: %w", o.Dir, err)
	}
	defer loop.Close()
	if err := growOnline(ctx, v, img, loop, o.Quota); err != nil {
		return nil, err
	}
	if err := ownRoot(v, o); err != nil {
		return nil, err
	}
	return v, nil
}

// mountNew mounts o's volume at point, whose directory d is not a mount
// point, making the image if there is none.
func mountNew(ctx context.Context, o Options, point string, d *os.File, loopControl string) (v *Volume, err error) {
	empty, err := isEmpty(d)
	if err != nil {
		return nil, fmt.Errorf("sitedata: reading %s: %w", o.Dir, err)
	}
	img, created, err := openOrCreateImage(ctx, o, empty)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	defer func() {
		if err != nil && created {
			os.Remove(o.Image) // the loop device, if any, holds its own reference
		}
	}()
	if !created {
		if err := checkAndGrow(ctx, o, img); err != nil {
			return nil, err
		}
	}
	loop, err := attach(img, loopControl)
	if err != nil {
		return nil, fmt.Errorf("sitedata: %s: %w", o.Image, err)
	}
	// With autoclear, closing loop detaches the device unless the mount
	// below holds it: on failure, the unmount first, then this.
	defer loop.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(loop.Fd()), &st); err != nil {
		return nil, fmt.Errorf("sitedata: %w", err)
	}
	v = &Volume{dir: o.Dir, image: o.Image, loop: loop.Name(), dev: st.Rdev}
	// The directory under the mount becomes root's alone, so that a job
	// that misses the mount (a containerd in another mount namespace
	// binds the directory beneath) fails to write instead of writing past
	// the quota.
	if err := d.Chown(0, 0); err != nil {
		return nil, fmt.Errorf("sitedata: %w", err)
	}
	if err := d.Chmod(0o700); err != nil {
		return nil, fmt.Errorf("sitedata: %w", err)
	}
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := unix.Mount(v.loop, point, "ext4", flags, ""); err != nil {
		return nil, fmt.Errorf("sitedata: mounting %s (from %s) at %s: %w", v.loop, o.Image, o.Dir, err)
	}
	defer func() {
		if err != nil {
			unix.Unmount(point, unix.UMOUNT_NOFOLLOW)
		}
	}()
	if err := ownRoot(v, o); err != nil {
		return nil, err
	}
	v.owned = true
	return v, nil
}

// openDir opens the directory dir, made (0700) if missing, refusing a
// symbolic link: the site's directory is the one configured, not wherever
// a link points. Its parents may be links.
func openDir(dir string) (*os.File, error) {
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sitedata: making the data directory: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("sitedata: %w", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, errSymlink(dir)
	case !fi.IsDir():
		return nil, fmt.Errorf("sitedata: data directory %s is not a directory (%s): remove it or choose another path", dir, fi.Mode().Type())
	}
	// O_NOFOLLOW: dir may have been replaced by a link since the Lstat.
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, errSymlink(dir)
	case err != nil:
		return nil, fmt.Errorf("sitedata: opening data directory %s: %w", dir, err)
	}
	return os.NewFile(uintptr(fd), dir), nil
}

func errSymlink(dir string) error {
	to, _ := os.Readlink(dir)
	return fmt.Errorf("sitedata: data directory %s is a symbolic link (to %q): give the real directory instead", dir, to)
}

// own makes the directory d, the volume's root, o.UID:o.GID's with mode
// 0700: the site's scripts may write in it, and nobody else (but root)
// may look.
//
// Only the root: what is inside is the scripts' own, made as this user
// already. A recursive chown would rewrite owners an administrator set on
// purpose, take time in proportion to the files at every start, and, as
// root in a tree the site can write, be open to a script that swaps a
// directory for a link between the walk's look and its chown, giving the
// site a file of the host.
func own(d *os.File, o Options) error {
	if err := d.Chown(int(o.UID), int(o.GID)); err != nil {
		return fmt.Errorf("sitedata: %w", err)
	}
	if err := d.Chmod(0o700); err != nil {
		return fmt.Errorf("sitedata: %w", err)
	}
	return nil
}

// ownRoot owns (see own) the root of v's mounted filesystem.
func ownRoot(v *Volume, o Options) error {
	d, err := openDir(v.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &st); err != nil {
		return fmt.Errorf("sitedata: %w", err)
	}
	if st.Dev != v.dev {
		return fmt.Errorf("sitedata: %s is not the root of its volume (%s) after mounting it: did something else mount over it?", v.dir, v.loop)
	}
	return own(d, o)
}

// isEmpty reports whether the directory d, just opened, has no entries.
func isEmpty(d *os.File) (bool, error) {
	_, err := d.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

// Usage returns the bytes used in the volume and its size, as statfs(2)
// counts them: the filesystem's own metadata is in neither. Without a
// quota they are those of the filesystem holding the directory.
func (v *Volume) Usage() (used, size int64, err error) {
	var st unix.Stat_t
	if err := unix.Stat(v.dir, &st); err != nil {
		return 0, 0, fmt.Errorf("sitedata: %w", err)
	}
	if v.image != "" && st.Dev != v.dev {
		return 0, 0, fmt.Errorf("sitedata: %s is no longer the mount of its volume %s (from %s): open it again", v.dir, v.loop, v.image)
	}
	var sf unix.Statfs_t
	if err := unix.Statfs(v.dir, &sf); err != nil {
		return 0, 0, fmt.Errorf("sitedata: %w", err)
	}
	bsize := int64(sf.Bsize)
	return int64(sf.Blocks-sf.Bfree) * bsize, int64(sf.Blocks) * bsize, nil
}

// Close unmounts the volume if this Volume mounted it; the loop device
// then frees itself. A container that still has the directory mounted
// keeps the filesystem, and the device, until it ends. Close does nothing
// to a volume that Open found mounted, or a plain directory.
func (v *Volume) Close() error {
	if !v.owned {
		return nil
	}
	point, err := filepath.EvalSymlinks(v.dir)
	if err != nil {
		return fmt.Errorf("sitedata: %w", err)
	}
	m, mounted, err := findMount(point)
	if err != nil {
		return err
	}
	if !mounted || unix.Mkdev(m.major, m.minor) != v.dev {
		if mounted {
			return fmt.Errorf("sitedata: %s has another mount (of %s) over its volume %s: not unmounting it; unmount both (umount %s, twice)", v.dir, m.source, v.loop, v.dir)
		}
		v.owned = false // someone unmounted it already
		return nil
	}
	if err := unix.Unmount(point, unix.UMOUNT_NOFOLLOW); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("sitedata: unmounting %s: %w: a process has a file or directory open in it (fuser -vm %s)", v.dir, err, v.dir)
		}
		return fmt.Errorf("sitedata: unmounting %s: %w", v.dir, err)
	}
	v.owned = false
	return nil
}
