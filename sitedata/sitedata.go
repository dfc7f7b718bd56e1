// Package sitedata provides a site's data directory on the host: the
// directory the sandbox bind-mounts read-write at /data in each of the
// site's containers, where legacy scripts keep counters, guestbooks and
// SQLite files.
//
// Without a quota the volume is a plain directory. With one it is an ext4
// filesystem in a sparse image file beside it, attached to a loop device
// and mounted at the directory (nosuid, nodev, noexec): a full volume gives
// the script ENOSPC, and the host's filesystem, and every other site, never
// notices. Quotas need Linux, root, loop devices and e2fsprogs.
package sitedata

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// MinQuota is the smallest quota: below it ext4's own metadata would leave
// the site next to nothing.
const MinQuota = 1 << 20

// imageSuffix names the default image: a sibling of the directory, so that
// the mount never hides it and the two are found together.
const imageSuffix = ".cgibox-quota.ext4"

// Options says which directory to provide and how.
type Options struct {
	// Dir is the data directory, an absolute path; created (mode 0700,
	// as are missing parents) if missing. Dir itself must not be a
	// symbolic link.
	Dir string
	// Quota is the size of the volume in bytes, at least MinQuota; 0 means
	// no quota: Dir is a plain directory. The site gets a little less
	// than Quota: the filesystem's metadata (inode tables, and a journal
	// from 16 MiB up) lives in it too. A quota can grow between two Opens
	// but never shrink.
	Quota int64
	// UID and GID own the volume's root: the host ids the site's scripts
	// run as.
	UID, GID uint32
	// Image is the filesystem image of a quota, an absolute path outside
	// Dir. Empty means Dir + ".cgibox-quota.ext4". It is root's, mode
	// 0600, and sparse: it takes host space as the site fills it.
	Image string
}

// Volume is an opened data directory. Close must not run concurrently
// with its other methods.
type Volume struct {
	dir   string
	image string // empty without a quota
	loop  string // the loop device mounted at dir, for example /dev/loop3
	dev   uint64 // its device number
	// owned: this Volume mounted dir, so Close unmounts it. A Volume that
	// found the mount already there leaves it alone.
	owned bool
}

// Dir returns the directory to bind-mount into the site's containers.
func (v *Volume) Dir() string { return v.dir }

// check returns o validated, its paths cleaned and its defaults filled in.
func (o Options) check() (Options, error) {
	if o.Dir == "" {
		return o, errors.New("sitedata: no data directory given")
	}
	if !filepath.IsAbs(o.Dir) {
		return o, fmt.Errorf("sitedata: data directory %q is not an absolute path", o.Dir)
	}
	o.Dir = filepath.Clean(o.Dir)
	if o.Dir == "/" {
		return o, errors.New("sitedata: the data directory cannot be /")
	}
	switch {
	case o.Quota < 0:
		return o, fmt.Errorf("sitedata: quota %d bytes for %s is negative: give 0 (no quota) or at least %d (1 MiB)", o.Quota, o.Dir, MinQuota)
	case o.Quota > 0 && o.Quota < MinQuota:
		return o, fmt.Errorf("sitedata: quota %d bytes for %s is below the minimum of %d (1 MiB): raise it, or give 0 for no quota", o.Quota, o.Dir, MinQuota)
	}
	if o.Image == "" {
		o.Image = o.Dir + imageSuffix
	}
	if !filepath.IsAbs(o.Image) {
		return o, fmt.Errorf("sitedata: quota image %q for %s is not an absolute path", o.Image, o.Dir)
	}
	o.Image = filepath.Clean(o.Image)
	if o.Image == o.Dir || strings.HasPrefix(o.Image, o.Dir+"/") {
		return o, fmt.Errorf("sitedata: quota image %s is inside the data directory %s, which its mount would hide: put it beside the directory", o.Image, o.Dir)
	}
	return o, nil
}
