//go:build linux

package sitedata

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// openOrCreateImage opens o's image, or makes it if there is none. Either
// way it refuses a data directory that is not empty (dirEmpty false): the
// mount would hide its files.
func openOrCreateImage(ctx context.Context, o Options, dirEmpty bool) (img *os.File, created bool, err error) {
	_, err = os.Lstat(o.Image)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("sitedata: %w", err)
	}
	switch {
	case !dirEmpty && exists:
		return nil, false, fmt.Errorf("sitedata: %s is not empty, and not mounted: mounting its quota image %s on it would hide its files; move them away (mv %s %s.hidden), open it again, and copy them into the volume", o.Dir, o.Image, o.Dir, o.Dir)
	case !dirEmpty:
		return nil, false, fmt.Errorf("sitedata: %s is not empty and has no quota image yet: the new volume %s mounted on it would hide its files; move them away (mv %s %s.before-quota), open it again, and copy them into the volume", o.Dir, o.Image, o.Dir, o.Dir)
	case exists:
		img, err := openImage(o)
		return img, false, err
	}
	img, err = createImage(ctx, o)
	return img, err == nil, err
}

// openImage opens o's existing image for the loop device. It refuses an
// image anyone but root could have written (the kernel would parse a
// filesystem someone else crafted) and one larger than the quota.
func openImage(o Options) (*os.File, error) {
	f, err := os.OpenFile(o.Image, os.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("sitedata: quota image %s is a symbolic link: give the real path", o.Image)
	}
	if err != nil {
		return nil, fmt.Errorf("sitedata: opening the quota image: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("sitedata: %w", err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		err = fmt.Errorf("sitedata: quota image %s is not a regular file", o.Image)
	case st.Uid != 0 || st.Mode&0o077 != 0:
		err = fmt.Errorf("sitedata: quota image %s is uid %d's with mode %#o, not root's alone: a filesystem image someone else could write is not mounted; if you trust its contents, chown root %s and chmod 0600 %s", o.Image, st.Uid, st.Mode&0o7777, o.Image, o.Image)
	case st.Size > o.Quota:
		err = fmt.Errorf("sitedata: quota %d bytes for %s is smaller than its existing volume %s (%d bytes), and a quota can't shrink below the existing size: give at least %d, or copy the data out, remove %s and open again with the smaller quota", o.Quota, o.Dir, o.Image, st.Size, st.Size, o.Image)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// createImage makes o's image: a sparse file of o.Quota bytes, root's
// alone, holding a new ext4 filesystem (mkfsArgs).
func createImage(ctx context.Context, o Options) (img *os.File, err error) {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		return nil, fmt.Errorf("sitedata: a quota needs mkfs.ext4 (install e2fsprogs; it is in /usr/sbin, which must be on PATH): %w", err)
	}
	f, err := os.OpenFile(o.Image, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sitedata: making the quota image: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(o.Image)
		}
	}()
	// Group root too under a setgid directory; the mode whatever the umask.
	if err := f.Chown(0, 0); err != nil {
		return nil, fmt.Errorf("sitedata: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		return nil, fmt.Errorf("sitedata: %w", err)
	}
	if err := f.Truncate(o.Quota); err != nil {
		return nil, fmt.Errorf("sitedata: sizing the quota image: %w", err)
	}
	cmd := exec.CommandContext(ctx, mkfs, mkfsArgs(o.Image, o.Quota, o.UID, o.GID)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("sitedata: making the filesystem of %s: %s: %w: %s", o.Image, cmd, err, bytes.TrimSpace(out))
	}
	return f, nil
}

// checkAndGrow checks the filesystem of the unmounted image img (e2fsck
// -p, and -f too when it will grow, which resize2fs requires), then makes
// image and filesystem o.Quota bytes. Without a journal (below 16 MiB) the
// check is what makes an image safe to mount after a crash; with one it
// costs a few milliseconds. Each step is judged afresh, so an Open after
// one that failed midway finishes the work, and a failure before the
// filesystem grew gives the image back its old size.
func checkAndGrow(ctx context.Context, o Options, img *os.File) (err error) {
	fi, err := img.Stat()
	if err != nil {
		return fmt.Errorf("sitedata: %w", err)
	}
	sb, err := readSuperblock(img)
	if err != nil {
		return fmt.Errorf("sitedata: quota image %s: %w: check it (e2fsck -n %s) or move it away so that a new one is made", o.Image, err, o.Image)
	}
	needResize := sb.blocks < uint64(o.Quota)/uint64(sb.blockSize)
	if err := fsck(ctx, o.Image, needResize); err != nil {
		return err
	}
	if old := fi.Size(); old < o.Quota {
		if err := img.Truncate(o.Quota); err != nil {
			return fmt.Errorf("sitedata: growing the quota image: %w", err)
		}
		defer func() {
			if sb, rerr := readSuperblock(img); err != nil && rerr == nil && sb.blocks*uint64(sb.blockSize) <= uint64(old) {
				img.Truncate(old) // the filesystem did not grow: undo
			}
		}()
	}
	if !needResize {
		return nil
	}
	return resize2fs(ctx, o.Image, o.Image, o.Quota)
}

// growOnline makes v's mounted volume, whose image is img and loop device
// loop, quota bytes: the image, then the loop device, then the filesystem
// (resize2fs, online). As checkAndGrow, a retry finishes the work.
func growOnline(ctx context.Context, v *Volume, img, loop *os.File, quota int64) (err error) {
	fi, err := img.Stat()
	if err != nil {
		return fmt.Errorf("sitedata: %w", err)
	}
	sb, err := readSuperblock(loop)
	if err != nil {
		return fmt.Errorf("sitedata: loop device %s (from %s): %w", v.loop, v.image, err)
	}
	old := fi.Size()
	if old >= quota && sb.blocks >= uint64(quota)/uint64(sb.blockSize) {
		return nil
	}
	// ext4 lets only CAP_SYS_RESOURCE resize a mounted filesystem; say so
	// before touching anything rather than pass on resize2fs's EPERM.
	if ok, err := capable(unix.CAP_SYS_RESOURCE); err != nil || !ok {
		return fmt.Errorf("sitedata: growing %s to %d bytes while it is mounted needs CAP_SYS_RESOURCE, which this process lacks (%v): unmount it (umount %s) and open it again, which grows it unmounted", v.dir, quota, err, v.dir)
	}
	if old < quota {
		if err := img.Truncate(quota); err != nil {
			return fmt.Errorf("sitedata: growing the quota image: %w", err)
		}
		if err := unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_SET_CAPACITY, 0); err != nil {
			img.Truncate(old) // nothing has used the new space yet
			return fmt.Errorf("sitedata: growing loop device %s to its image %s: %w", v.loop, v.image, err)
		}
	}
	return resize2fs(ctx, v.loop, v.image, quota)
}

// resize2fs grows the filesystem on target (an image, or the loop device
// of a mounted one) to the size of target.
func resize2fs(ctx context.Context, target, image string, size int64) error {
	path, err := exec.LookPath("resize2fs")
	if err != nil {
		return fmt.Errorf("sitedata: growing a quota needs resize2fs (install e2fsprogs; it is in /usr/sbin, which must be on PATH): %w", err)
	}
	cmd := exec.CommandContext(ctx, path, target)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sitedata: growing the filesystem of %s to %d bytes: %s: %w: %s", image, size, cmd, err, bytes.TrimSpace(out))
	}
	return nil
}

// fsck checks the unmounted image with e2fsck -p, which repairs what is
// safe to repair unattended; force checks a filesystem marked clean too.
func fsck(ctx context.Context, image string, force bool) error {
	path, err := exec.LookPath("e2fsck")
	if err != nil {
		return fmt.Errorf("sitedata: a quota needs e2fsck (install e2fsprogs; it is in /usr/sbin, which must be on PATH): %w", err)
	}
	args := []string{"-p"}
	if force {
		args = append(args, "-f")
	}
	cmd := exec.CommandContext(ctx, path, append(args, image)...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 {
		return nil // errors found and corrected
	}
	if err != nil {
		return fmt.Errorf("sitedata: checking the filesystem of %s: %s: %w: %s; repair it by hand (e2fsck -f %s) and open again", image, cmd, err, bytes.TrimSpace(out), image)
	}
	return nil
}

// capable reports whether this process has capability c.
func capable(c uint) (bool, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false, fmt.Errorf("capget: %w", err)
	}
	return data[c/32].Effective&(1<<(c%32)) != 0, nil
}

func readSuperblock(dev *os.File) (superblock, error) {
	b := make([]byte, superblockSize)
	if _, err := dev.ReadAt(b, superblockOffset); err != nil {
		if errors.Is(err, io.EOF) {
			return superblock{}, errNotExt4
		}
		return superblock{}, fmt.Errorf("reading the superblock: %w", err)
	}
	return parseSuperblock(b)
}
