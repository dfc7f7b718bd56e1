//go:build linux

package sitedata

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cgibox/cgibox/internal/testenv"
	"golang.org/x/sys/unix"
)

// siteUID and siteGID are a site's host ids as the sandbox gives them
// (sandbox.SiteUsersAt(0x4000_0000).Nobody), far from any account's.
const siteUID, siteGID = 1073741825, 1073741825

// fillCommand makes the test binary, run again by testenv.Reexec, the
// "script" that writes into a volume as the site: fill FILE LIMIT.
const fillCommand = "sitedata-fill"

func TestMain(m *testing.M) {
	if len(os.Args) == 4 && os.Args[1] == fillCommand {
		os.Exit(fill(os.Args[2], os.Args[3]))
	}
	os.Exit(m.Run())
}

// fill writes zeros to file until LIMIT bytes or an error, syncs it, and
// prints "WRITTEN WRITE-ERRNO SYNC-ERRNO", each errno by name or "none".
func fill(file, limitArg string) int {
	limit, err := strconv.ParseInt(limitArg, 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	var written int64
	var writeErr error
	for written < limit && writeErr == nil {
		var n int
		n, writeErr = f.Write(chunk[:min(int64(len(chunk)), limit-written)])
		written += int64(n)
	}
	fmt.Printf("%d %s %s\n", written, errnoName(writeErr), errnoName(f.Sync()))
	return 0
}

func errnoName(err error) string {
	var errno unix.Errno
	switch {
	case err == nil:
		return "none"
	case errors.As(err, &errno):
		return unix.ErrnoName(errno)
	}
	return strconv.Quote(err.Error())
}

// writeAs runs fill as the site: limit bytes into file.
func writeAs(t *testing.T, file string, limit int64) (written int64, writeErr, syncErr string) {
	t.Helper()
	cmd := testenv.Reexec(t, siteUID, siteGID, fillCommand, file, strconv.FormatInt(limit, 10))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("writing %s as %d:%d: %v: %s", file, siteUID, siteGID, err, stderr.Bytes())
	}
	if _, err := fmt.Sscan(string(out), &written, &writeErr, &syncErr); err != nil {
		t.Fatalf("writing %s as %d:%d: output %q: %v", file, siteUID, siteGID, out, err)
	}
	return written, writeErr, syncErr
}

// scratch returns a directory for a test's volumes; when the test ends it
// unmounts whatever is still mounted under it, and detaches the loop
// devices still backed by its files, before t.TempDir removes it. It skips
// (or fails, see testenv) without root or e2fsprogs.
func scratch(t testing.TB) string {
	t.Helper()
	testenv.RequireRoot(t)
	for _, tool := range []string{"mkfs.ext4", "resize2fs"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Skip(t, tool+" is not on PATH (install e2fsprogs; it is in /usr/sbin)")
		}
	}
	if _, err := os.Stat(loopControl); err != nil {
		testenv.Skip(t, "this host has no loop devices: "+err.Error())
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanUnder(t, dir) })
	return dir
}

// cleanUnder unmounts every mount under dir, last first, then detaches
// every loop device whose backing file is under dir.
func cleanUnder(t testing.TB, dir string) {
	t.Helper()
	info, err := os.ReadFile(mountinfoPath)
	if err != nil {
		t.Error(err)
		return
	}
	lines := strings.Split(strings.TrimSpace(string(info)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		m, err := parseMountinfoLine(lines[i])
		if err != nil {
			t.Error(err)
			continue
		}
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			if err := unix.Unmount(m.point, 0); err != nil {
				t.Errorf("cleanup: unmounting %s: %v; detaching it", m.point, err)
				unix.Unmount(m.point, unix.MNT_DETACH)
			}
		}
	}
	backing, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		t.Error(err)
	}
	for _, b := range backing {
		file, err := os.ReadFile(b)
		if err != nil || !strings.HasPrefix(string(file), dir+"/") {
			continue
		}
		dev := "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(b)))
		f, err := os.Open(dev)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			continue
		}
		if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0); err != nil {
			t.Errorf("cleanup: detaching %s: %v", dev, err)
		}
		f.Close()
	}
}

// openVolume opens o, failing t on an error, and closes the volume when t
// ends (Close twice is harmless).
func openVolume(t testing.TB, o Options) *Volume {
	t.Helper()
	v, err := Open(t.Context(), o)
	if err != nil {
		t.Fatalf("Open(%+v): %v", o, err)
	}
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return v
}

// mountAt returns the mount visible at dir, if any.
func mountAt(t testing.TB, dir string) (mount, bool) {
	t.Helper()
	m, ok, err := findMount(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m, ok
}

// mountsAt counts the mounts stacked at dir.
func mountsAt(t testing.TB, dir string) int {
	t.Helper()
	info, err := os.ReadFile(mountinfoPath)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(info)), "\n") {
		if m, err := parseMountinfoLine(line); err == nil && m.point == dir {
			n++
		}
	}
	return n
}

// backedBy reports whether loop device dev still has image behind it.
func backedBy(t testing.TB, dev uint64, image string) bool {
	t.Helper()
	file, isLoop, err := loopBackingFile(unix.Major(dev), unix.Minor(dev))
	if err != nil {
		t.Fatal(err)
	}
	return isLoop && file == image
}

func statfs(t testing.TB, path string) unix.Statfs_t {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func statT(t testing.TB, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func wantFile(t testing.TB, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || string(got) != want {
		t.Errorf("reading %s: %q, %v; want %q", path, got, err, want)
	}
}

func wantErrContaining(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func wantNotMounted(t testing.TB, dir string) {
	t.Helper()
	if m, ok := mountAt(t, dir); ok {
		t.Errorf("%s is mounted (%s from %s), want no mount", dir, m.fstype, m.source)
	}
}

// TestQuotaEnforced: the site, writing as itself, gets ENOSPC at its
// quota, having written no more than the quota, and the host loses no
// more; after a removal it writes again. The volume lives on a tmpfs of
// its own, so that the host's loss is measured exactly, whatever other
// tests write to /tmp meanwhile, and so that without a quota the writer
// would stop at the tmpfs's 64 MiB and fail the test, not fill the disk.
func TestQuotaEnforced(t *testing.T) {
	root := scratch(t)
	if err := os.Chmod(root, 0o755); err != nil { // the site must reach its directory
		t.Fatal(err)
	}
	host := filepath.Join(root, "host")
	if err := os.Mkdir(host, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", host, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64m,mode=0755"); err != nil {
		t.Fatal(err)
	}
	hostFree := func() int64 { st := statfs(t, host); return int64(st.Bfree) * int64(st.Bsize) }
	before := hostFree()

	const quota = 4 << 20
	v := openVolume(t, Options{Dir: filepath.Join(host, "data"), Quota: quota, UID: siteUID, GID: siteGID})
	file := filepath.Join(v.Dir(), "fill")
	written, writeErr, syncErr := writeAs(t, file, 1<<30)
	if writeErr != "ENOSPC" || syncErr != "none" {
		t.Errorf("the site writing until it fails: write error %s, sync error %s; want ENOSPC, then none", writeErr, syncErr)
	}
	if written > quota || written < quota*3/4 {
		t.Errorf("the site wrote %d bytes into a %d-byte quota, want at most the quota and at least three quarters of it", written, quota)
	}
	if lost := before - hostFree(); lost > quota {
		t.Errorf("the host's filesystem lost %d bytes to a %d-byte quota, want at most the quota", lost, quota)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if written, writeErr, syncErr := writeAs(t, file, 1<<20); written != 1<<20 || writeErr != "none" || syncErr != "none" {
		t.Errorf("writing 1 MiB after removing the full file: %d bytes, write error %s, sync error %s; want all written, no errors", written, writeErr, syncErr)
	}
}

// TestMount: the root of the volume is the site's, mode 0700, and set so
// again by each Open that mounts it; the mount is nosuid, nodev, noexec;
// no block is reserved for root; the image is root's alone, and sparse.
func TestMount(t *testing.T) {
	root := scratch(t)
	o := Options{Dir: filepath.Join(root, "data"), Quota: MinQuota, UID: siteUID, GID: siteGID}
	v := openVolume(t, o)
	if v.Dir() != o.Dir {
		t.Errorf("Dir() = %q, want %q", v.Dir(), o.Dir)
	}
	st := statT(t, o.Dir)
	if st.Uid != siteUID || st.Gid != siteGID || st.Mode&0o7777 != 0o700 || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("volume root: uid %d gid %d mode %#o, want a directory of %d:%d mode 0700", st.Uid, st.Gid, st.Mode, siteUID, siteGID)
	}
	m, ok := mountAt(t, o.Dir)
	if !ok {
		t.Fatalf("%s is not a mount point", o.Dir)
	}
	if m.fstype != "ext4" || unix.Mkdev(m.major, m.minor) != st.Dev || !m.has("rw") || !m.has("nosuid") || !m.has("nodev") || !m.has("noexec") {
		t.Errorf("mount at %s: %s from %s (%d:%d), options %q; want ext4 from the volume's device %d:%d, rw,nosuid,nodev,noexec",
			o.Dir, m.fstype, m.source, m.major, m.minor, m.options, unix.Major(st.Dev), unix.Minor(st.Dev))
	}
	// ext4 keeps back a few clusters for its own metadata in any case
	// (reserved_clusters); -m 0 reserves no more for root.
	resv, err := os.ReadFile("/sys/fs/ext4/" + filepath.Base(v.loop) + "/reserved_clusters")
	if err != nil {
		t.Fatal(err)
	}
	sf := statfs(t, o.Dir)
	if got := strconv.FormatUint(sf.Bfree-sf.Bavail, 10); got != strings.TrimSpace(string(resv)) {
		t.Errorf("volume: %d blocks free, %d available to the site; want only ext4's reserved_clusters, %s, held back", sf.Bfree, sf.Bavail, resv)
	}
	// An existing volume's root is set again: new ids for the site, a mode
	// changed since.
	if err := os.Chmod(o.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	renamed := o
	renamed.UID, renamed.GID = siteUID+2, siteGID+2
	openVolume(t, renamed)
	if st := statT(t, o.Dir); st.Uid != renamed.UID || st.Gid != renamed.GID || st.Mode&0o7777 != 0o700 {
		t.Errorf("volume root reopened for %d:%d: uid %d gid %d mode %#o, want %d:%d 0700", renamed.UID, renamed.GID, st.Uid, st.Gid, st.Mode&0o7777, renamed.UID, renamed.GID)
	}
	img := statT(t, o.Dir+imageSuffix)
	if img.Uid != 0 || img.Gid != 0 || img.Mode&0o7777 != 0o600 || img.Size != o.Quota || img.Blocks*512 >= img.Size {
		t.Errorf("image: uid %d gid %d mode %#o, size %d, %d bytes allocated; want root:root 0600, the quota's size, sparse",
			img.Uid, img.Gid, img.Mode&0o7777, img.Size, img.Blocks*512)
	}
}

// TestCloseAndReopen: Close unmounts and frees the loop device, and the
// directory beneath is root's alone; the next Open mounts the same data
// again.
func TestCloseAndReopen(t *testing.T) {
	root := scratch(t)
	o := Options{Dir: filepath.Join(root, "data"), Quota: 4 << 20, UID: siteUID, GID: siteGID}
	image := o.Dir + imageSuffix
	// The site's own (empty) directory, as a quota-less Open leaves it.
	openVolume(t, Options{Dir: o.Dir, UID: siteUID, GID: siteGID})
	v := openVolume(t, o)
	writeFile(t, filepath.Join(o.Dir, "counter"), "41")
	dev := v.dev
	if !backedBy(t, dev, image) {
		t.Fatalf("loop device %s: not backed by %s while open", v.loop, image)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	wantNotMounted(t, o.Dir)
	if backedBy(t, dev, image) {
		t.Errorf("loop device %s still backed by %s after Close, want it freed", v.loop, image)
	}
	if _, err := os.Stat(filepath.Join(o.Dir, "counter")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Close, %s/counter: %v; want it gone with the volume", o.Dir, err)
	}
	// A job that missed the mount could not write beneath it.
	if st := statT(t, o.Dir); st.Uid != 0 || st.Gid != 0 || st.Mode&0o7777 != 0o700 {
		t.Errorf("the directory under the volume: uid %d gid %d mode %#o, want root:root 0700", st.Uid, st.Gid, st.Mode&0o7777)
	}

	v = openVolume(t, o)
	wantFile(t, filepath.Join(o.Dir, "counter"), "41")
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Errorf("a second Close: %v, want none", err)
	}
}

// TestReuse: an Open while the volume is mounted uses that mount; its
// Close leaves it to the Volume that made it.
func TestReuse(t *testing.T) {
	root := scratch(t)
	o := Options{Dir: filepath.Join(root, "data"), Quota: 4 << 20, UID: siteUID, GID: siteGID}
	first := openVolume(t, o)
	writeFile(t, filepath.Join(o.Dir, "guestbook"), "hello")
	second := openVolume(t, o)
	if n := mountsAt(t, o.Dir); n != 1 || second.dev != first.dev || second.loop != first.loop {
		t.Errorf("second Open: %d mounts at %s, device %s (%d), want the first's one mount of %s (%d)", n, o.Dir, second.loop, second.dev, first.loop, first.dev)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	if m, ok := mountAt(t, o.Dir); !ok || unix.Mkdev(m.major, m.minor) != first.dev {
		t.Fatalf("after the second Volume's Close: mount %+v, %v; want the first's still there", m, ok)
	}
	wantFile(t, filepath.Join(o.Dir, "guestbook"), "hello")
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	wantNotMounted(t, o.Dir)
}

// TestConcurrentOpens: Opens of one directory at once make one image and
// one mount; one Volume owns it, the others reuse it.
func TestConcurrentOpens(t *testing.T) {
	root := scratch(t)
	o := Options{Dir: filepath.Join(root, "data"), Quota: 4 << 20, UID: siteUID, GID: siteGID}
	const n = 8
	vols := make([]*Volume, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { vols[i], errs[i] = Open(t.Context(), o) })
	}
	wg.Wait()
	owners := 0
	for i, v := range vols {
		if errs[i] != nil {
			t.Errorf("Open %d of %d at once: %v", i, n, errs[i])
			continue
		}
		t.Cleanup(func() { v.Close() })
		if v.owned {
			owners++
		}
	}
	if mounts := mountsAt(t, o.Dir); mounts != 1 || owners != 1 {
		t.Errorf("%d Opens at once: %d mounts at %s, %d Volumes owning one; want 1 and 1", n, mounts, o.Dir, owners)
	}
}

// TestReuseRefusesOtherMounts: a directory with some other filesystem
// mounted on it is not mounted over.
func TestReuseRefusesOtherMounts(t *testing.T) {
	root := scratch(t)
	dir := filepath.Join(root, "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), Options{Dir: dir, Quota: 4 << 20, UID: siteUID, GID: siteGID})
	wantErrContaining(t, err, dir+" is already a mount point (of tmpfs, tmpfs)", "umount "+dir)
	if n := mountsAt(t, dir); n != 1 {
		t.Errorf("%d mounts at %s, want the tmpfs alone", n, dir)
	}
}

// TestReuseRefusesWeakMount: the volume mounted by hand, without nosuid,
// nodev and noexec, is not reused.
func TestReuseRefusesWeakMount(t *testing.T) {
	root := scratch(t)
	o := Options{Dir: filepath.Join(root, "data"), Quota: 4 << 20, UID: siteUID, GID: siteGID}
	v := openVolume(t, o)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	img, err := os.OpenFile(o.Dir+imageSuffix, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	loop, err := attach(img, loopControl)
	if err != nil {
		t.Fatal(err)
	}
	defer loop.Close() // autoclear: the unmount in cleanUnder frees it
	if err := unix.Mount(loop.Name(), o.Dir, "ext4", 0, ""); err != nil {
		t.Fatal(err)
	}
	_, err = Open(t.Context(), o)
	wantErrContaining(t, err, "without nosuid", "umount "+o.Dir)
	if n := mountsAt(t, o.Dir); n != 1 {
		t.Errorf("%d mounts at %s, want the one made by hand", n, o.Dir)
	}
}

// TestGrow: a bigger quota grows the volume and keeps its data: unmounted,
// by an Open that mounts it; mounted, by an Open that reuses the mount,
// which ext4 allows only with CAP_SYS_RESOURCE; without it, that Open is
// refused and the volume left as it was.
func TestGrow(t *testing.T) {
	root := scratch(t)
	o := Options{Dir: filepath.Join(root, "data"), Quota: 4 << 20, UID: siteUID, GID: siteGID}
	image := o.Dir + imageSuffix
	// wantSize checks v at quota bytes and returns its size.
	wantSize := func(v *Volume, quota int64) int64 {
		t.Helper()
		used, size, err := v.Usage()
		if err != nil {
			t.Fatal(err)
		}
		if used <= 0 || used > size || size > quota || size < quota*3/4 {
			t.Errorf("Usage() at quota %d = %d used of %d, want 0 < used <= size, and three quarters of the quota <= size <= quota", quota, used, size)
		}
		if st := statT(t, image); st.Size != quota {
			t.Errorf("image at quota %d: %d bytes, want the quota", quota, st.Size)
		}
		return size
	}

	v := openVolume(t, o)
	writeFile(t, filepath.Join(o.Dir, "counter"), "7")
	small := wantSize(v, o.Quota)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}

	o.Quota = 8 << 20
	v = openVolume(t, o)
	if size := wantSize(v, o.Quota); size < 2*small*9/10 {
		t.Errorf("volume size %d after doubling the quota of one of %d, want about twice", size, small)
	}
	wantFile(t, filepath.Join(o.Dir, "counter"), "7")
	small = wantSize(v, o.Quota)

	bigger := o
	bigger.Quota = 16 << 20
	canResize, err := capable(unix.CAP_SYS_RESOURCE)
	if err != nil {
		t.Fatal(err)
	}
	reused, err := Open(t.Context(), bigger)
	if !canResize {
		wantErrContaining(t, err, "needs CAP_SYS_RESOURCE", "umount "+o.Dir)
		wantSize(v, o.Quota) // unchanged
		return
	}
	if err != nil {
		t.Fatalf("growing the mounted volume: %v", err)
	}
	if size := wantSize(reused, bigger.Quota); size < 2*small*9/10 {
		t.Errorf("volume size %d after doubling the quota of one of %d, want about twice", size, small)
	}
	if err := reused.Close(); err != nil {
		t.Fatal(err)
	}
	wantFile(t, filepath.Join(o.Dir, "counter"), "7")
}

// TestShrinkRefused: a quota below the volume's size is refused, and the
// volume, mounted or not, stays as it was.
func TestShrinkRefused(t *testing.T) {
	root := scratch(t)
	o := Options{Dir: filepath.Join(root, "data"), Quota: 8 << 20, UID: siteUID, GID: siteGID}
	image := o.Dir + imageSuffix
	v := openVolume(t, o)
	writeFile(t, filepath.Join(o.Dir, "counter"), "7")

	small := o
	small.Quota = 4 << 20
	_, err := Open(t.Context(), small)
	wantErrContaining(t, err, "can't shrink below the existing size", image, "8388608")
	if m, ok := mountAt(t, o.Dir); !ok || unix.Mkdev(m.major, m.minor) != v.dev {
		t.Errorf("after the refused Open, mount at %s: %+v, %v; want the volume's", o.Dir, m, ok)
	}

	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open(t.Context(), small)
	wantErrContaining(t, err, "can't shrink below the existing size", image)
	wantNotMounted(t, o.Dir)
	if st := statT(t, image); st.Size != o.Quota {
		t.Errorf("image after refused shrinks: %d bytes, want %d", st.Size, o.Quota)
	}
	openVolume(t, o)
	wantFile(t, filepath.Join(o.Dir, "counter"), "7")
}

// TestNonEmptyDirRefused: a volume is never mounted over files.
func TestNonEmptyDirRefused(t *testing.T) {
	for _, withImage := range []bool{false, true} {
		t.Run(fmt.Sprintf("image %v", withImage), func(t *testing.T) {
			root := scratch(t)
			o := Options{Dir: filepath.Join(root, "data"), Quota: 4 << 20, UID: siteUID, GID: siteGID}
			image := o.Dir + imageSuffix
			if withImage {
				v := openVolume(t, o)
				if err := v.Close(); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Mkdir(o.Dir, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(o.Dir, "guestbook.txt"), "old entries")
			_, err := Open(t.Context(), o)
			wantErrContaining(t, err, o.Dir+" is not empty", image, "hide its files")
			wantNotMounted(t, o.Dir)
			wantFile(t, filepath.Join(o.Dir, "guestbook.txt"), "old entries")
			if _, err := os.Stat(image); errors.Is(err, fs.ErrNotExist) == withImage {
				t.Errorf("image %s after the refusal: %v; want it there only if it was before", image, err)
			}
		})
	}
}

// TestSymlinkRefused: a data directory that is a symbolic link is refused,
// with a quota or without, and its target left alone.
func TestSymlinkRefused(t *testing.T) {
	for _, quota := range []int64{0, 4 << 20} {
		t.Run(fmt.Sprintf("quota %d", quota), func(t *testing.T) {
			root := scratch(t)
			target := filepath.Join(root, "elsewhere")
			if err := os.Mkdir(target, 0o755); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(root, "data")
			if err := os.Symlink(target, dir); err != nil {
				t.Fatal(err)
			}
			_, err := Open(t.Context(), Options{Dir: dir, Quota: quota, UID: siteUID, GID: siteGID})
			wantErrContaining(t, err, dir+" is a symbolic link", target)
			if st := statT(t, target); st.Uid != 0 || st.Mode&0o7777 != 0o755 {
				t.Errorf("link target after the refusal: uid %d mode %#o, want root's 0755 still", st.Uid, st.Mode&0o7777)
			}
			wantNotMounted(t, target)
			if _, err := os.Lstat(dir + imageSuffix); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("image after the refusal: %v, want none", err)
			}
		})
	}
}

// TestPlainDir: without a quota the directory is made, or taken as it is,
// its root (only) given to the site with mode 0700; nothing is mounted.
func TestPlainDir(t *testing.T) {
	root := scratch(t)
	t.Run("made", func(t *testing.T) {
		dir := filepath.Join(root, "new", "data")
		v := openVolume(t, Options{Dir: dir, UID: siteUID, GID: siteGID})
		if st := statT(t, dir); st.Uid != siteUID || st.Gid != siteGID || st.Mode&0o7777 != 0o700 {
			t.Errorf("made directory: uid %d gid %d mode %#o, want %d:%d 0700", st.Uid, st.Gid, st.Mode&0o7777, siteUID, siteGID)
		}
		wantNotMounted(t, dir)
		if _, size, err := v.Usage(); err != nil || size <= 0 {
			t.Errorf("Usage() size %d, %v; want the host filesystem's", size, err)
		}
	})
	t.Run("existing", func(t *testing.T) {
		dir := filepath.Join(root, "existing")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "counter"), "3")
		openVolume(t, Options{Dir: dir, UID: siteUID, GID: siteGID})
		if st := statT(t, dir); st.Uid != siteUID || st.Gid != siteGID || st.Mode&0o7777 != 0o700 {
			t.Errorf("existing directory: uid %d gid %d mode %#o, want %d:%d 0700", st.Uid, st.Gid, st.Mode&0o7777, siteUID, siteGID)
		}
		if st := statT(t, filepath.Join(dir, "counter")); st.Uid != 0 {
			t.Errorf("file inside: uid %d, want root's still (only the root changes owner)", st.Uid)
		}
	})
	t.Run("image exists", func(t *testing.T) {
		o := Options{Dir: filepath.Join(root, "had-quota"), Quota: 4 << 20, UID: siteUID, GID: siteGID}
		v := openVolume(t, o)
		if err := v.Close(); err != nil {
			t.Fatal(err)
		}
		o.Quota = 0
		_, err := Open(t.Context(), o)
		wantErrContaining(t, err, "has no quota, but its quota image "+o.Dir+imageSuffix+" exists")
	})
}

// TestUnsafeImageRefused: an image anyone but root could write is not
// mounted.
func TestUnsafeImageRefused(t *testing.T) {
	tests := []struct {
		name     string
		uid      int
		mode     os.FileMode
		wantText string
	}{
		{name: "the site's", uid: siteUID, mode: 0o600, wantText: "is uid 1073741825's with mode 0600"},
		{name: "world-readable", uid: 0, mode: 0o644, wantText: "is uid 0's with mode 0644"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := scratch(t)
			o := Options{Dir: filepath.Join(root, "data"), Quota: 4 << 20, UID: siteUID, GID: siteGID}
			image := o.Dir + imageSuffix
			v := openVolume(t, o)
			if err := v.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(image, tt.uid, 0); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(image, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Open(t.Context(), o)
			wantErrContaining(t, err, image+" "+tt.wantText, "chmod 0600")
			wantNotMounted(t, o.Dir)
		})
	}
}

// TestNoLoopDevices: on a host without loop devices Open says so, and
// removes the image it made.
func TestNoLoopDevices(t *testing.T) {
	root := scratch(t)
	o := Options{Dir: filepath.Join(root, "data"), Quota: 4 << 20, UID: siteUID, GID: siteGID}
	_, err := open(t.Context(), o, filepath.Join(root, "no-loop-control"))
	wantErrContaining(t, err, "a quota needs a loop device, and this host has none", "modprobe loop")
	t.Logf("the error: %v", err)
	if _, err := os.Lstat(o.Dir + imageSuffix); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("image after the failed Open: %v, want it removed", err)
	}
	wantNotMounted(t, o.Dir)
}
