package images

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
)

// buildDebian builds a recipe with a `debian SUITE` base: a minbase made
// by debootstrap with the recipe's packages, its removals and its files,
// set-id bits cleared, as one layer. With opts.CacheDir the finished
// archive is kept there under the recipe's hash and reused.
func (rc *Recipe) buildDebian(ctx context.Context, archive io.Writer, opts Options,
	labels map[string]string, step func(string, ...any)) (Result, error) {
	name, r := rc.Name, rc.r
	res := Result{Name: name, Ref: Ref(name)}
	// The suite and mirror are decided before the cache is looked at: an
	// archive built from another suite is another image.
	suite, mirror, note, srcErr := debianSource("/etc", r.debian, opts)
	var cached string
	if opts.CacheDir != "" {
		if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
			return res, fmt.Errorf("images: cache: %w", err)
		}
		cached = filepath.Join(opts.CacheDir, cacheName(name, rc.SHA256, suite, r.debian))
		if f, err := os.Open(cached); err == nil {
			defer f.Close()
			n, err := io.Copy(archive, f)
			if err != nil {
				return res, fmt.Errorf("images: %s: copying cached archive: %w", name, err)
			}
			step("unchanged recipe: using the cached archive %s", filepath.Base(cached))
			step("done: archive %d bytes (%s)", n, HumanSize(n))
			res.Size, res.Cached = n, true
			return res, nil
		}
	}
	if os.Geteuid() != 0 {
		return res, fmt.Errorf("images: %s: building a Debian-based image runs debootstrap, which needs root", name)
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return res, fmt.Errorf("images: %s: debootstrap not found (install it: apt-get install debootstrap): %w", name, err)
	}
	if srcErr != nil {
		return res, fmt.Errorf("images: %s: %w", name, srcErr)
	}
	if note != "" {
		step("%s", note)
	}

	workParent := opts.CacheDir
	if workParent == "" {
		workParent = os.TempDir()
	}
	work, err := os.MkdirTemp(workParent, "build-"+name+"-")
	if err != nil {
		return res, fmt.Errorf("images: %s: %w", name, err)
	}
	defer removeWork(work, step)
	rootfs := filepath.Join(work, "rootfs")

	start := time.Now()
	if err := debootstrap(ctx, suite, r.installs, rootfs, mirror, opts.CacheDir, step); err != nil {
		return res, fmt.Errorf("images: %s: %w", name, err)
	}
	size, files := treeSize(rootfs)
	step("debootstrap done in %s: %d files, %s", time.Since(start).Round(time.Second), files, HumanSize(size))

	versions, err := dpkgVersions(ctx, filepath.Join(rootfs, "var/lib/dpkg"))
	if err != nil {
		return res, fmt.Errorf("images: %s: %w", name, err)
	}
	labels[LabelDebianSuite] = suite
	for _, p := range r.installs {
		v, ok := versions[p]
		if !ok {
			return res, fmt.Errorf("images: %s: package %s is not installed after debootstrap", name, p)
		}
		labels[LabelPackage+"."+p] = v
		step("installed Debian package %s %s", p, v)
	}
	step("%d Debian packages in all", len(versions))

	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return res, fmt.Errorf("images: %s: %w", name, err)
	}
	defer root.Close()
	removed, err := removePaths(root, r.removes)
	if err != nil {
		return res, fmt.Errorf("images: %s: %w", name, err)
	}
	step("removed %d paths (package caches, documentation, host files)", removed)
	if err := r.applySteps(root, rc.dir, step); err != nil {
		return res, fmt.Errorf("images: %s: %w", name, err)
	}
	if err := checkNobody(root); err != nil {
		return res, fmt.Errorf("images: %s: %w", name, err)
	}

	layerPath := filepath.Join(work, "layer.tar.gz")
	created := time.Now().UTC().Truncate(time.Second)
	st, err := writeLayerFile(layerPath, rootfs, created)
	if err != nil {
		return res, fmt.Errorf("images: %s: layer: %w", name, err)
	}
	if len(st.cleared) > 0 {
		step("cleared the setuid/setgid bits of %d files: %s", len(st.cleared), strings.Join(st.cleared, " "))
	}
	step("layer: %d entries, %s (%s compressed)", st.entries, HumanSize(st.bytes), HumanSize(st.compressed))
	layer, err := tarball.LayerFromFile(layerPath)
	if err != nil {
		return res, fmt.Errorf("images: %s: layer: %w", name, err)
	}

	if cached == "" {
		n, err := r.writeImage(ctx, name, layer, created, labels, archive, step)
		res.Size = n
		return res, err
	}
	tmp, err := os.CreateTemp(opts.CacheDir, name+"-*.tar.part")
	if err != nil {
		return res, fmt.Errorf("images: %s: cache: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := r.writeImage(ctx, name, layer, created, labels, tmp, step); err != nil {
		return res, err
	}
	if err := tmp.Sync(); err != nil {
		return res, fmt.Errorf("images: %s: cache: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), cached); err != nil {
		return res, fmt.Errorf("images: %s: cache: %w", name, err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return res, fmt.Errorf("images: %s: cache: %w", name, err)
	}
	n, err := io.Copy(archive, tmp)
	res.Size = n
	if err != nil {
		return res, fmt.Errorf("images: %s: writing archive: %w", name, err)
	}
	return res, nil
}

// debootstrap makes a minbase of suite with the packages installs in
// rootfs. Downloaded packages are kept in cacheDir/debs when cacheDir is set.
func debootstrap(ctx context.Context, suite string, installs []string, rootfs, mirror, cacheDir string,
	step func(string, ...any)) error {
	args := []string{"--variant=minbase", "--components=main"}
	if len(installs) > 0 {
		args = append(args, "--include="+strings.Join(installs, ","))
	}
	if cacheDir != "" {
		debs, err := filepath.Abs(filepath.Join(cacheDir, "debs"))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(debs, 0o700); err != nil {
			return fmt.Errorf("package cache: %w", err)
		}
		args = append(args, "--cache-dir="+debs)
	}
	args = append(args, suite, rootfs, mirror)
	step("debootstrap --variant=minbase %s with %s from %s", suite, strings.Join(installs, " "), mirror)
	cmd := exec.CommandContext(ctx, "debootstrap", args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive"}
	// A proxy the operator set for this command is honoured; nothing else
	// of the environment reaches debootstrap.
	for _, k := range []string{"http_proxy", "https_proxy", "no_proxy"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("debootstrap: %w", err)
	}
	// Phase lines go to progress; the per-package lines are only counted.
	var last []string
	perPackage := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if len(line) > 300 {
			line = line[:300]
		}
		last = append(last, line)
		if len(last) > 20 {
			last = last[1:]
		}
		switch {
		case isPerPackage(line):
			perPackage++
		case strings.HasPrefix(line, "I: "), strings.HasPrefix(line, "W: "), strings.HasPrefix(line, "E: "):
			step("debootstrap: %s", line[3:])
		}
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("debootstrap failed: %w; its last lines:\n%s", err, strings.Join(last, "\n"))
	}
	return nil
}

// isPerPackage reports whether a debootstrap line is about one package.
func isPerPackage(line string) bool {
	for _, p := range []string{"I: Retrieving ", "I: Validating ", "I: Extracting ", "I: Unpacking ", "I: Configuring "} {
		if strings.HasPrefix(line, p) && !strings.Contains(line, " the base system") && !strings.HasPrefix(line, "I: Retrieving Release") &&
			!strings.HasPrefix(line, "I: Retrieving Packages") && !strings.HasPrefix(line, "I: Retrieving InRelease") {
			return true
		}
	}
	return false
}

// treeSize sums the sizes of the regular files under dir.
func treeSize(dir string) (size int64, files int) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				size += fi.Size()
				files++
			}
		}
		return nil
	})
	return size, files
}

// dpkgVersions reads the installed packages and versions from a dpkg
// database (admindir/status).
func dpkgVersions(ctx context.Context, admindir string) (map[string]string, error) {
	cmd := exec.CommandContext(ctx, "dpkg-query", "--admindir="+admindir, "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\n")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("dpkg-query of the new image: %w", err)
	}
	versions := map[string]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimRight(line, "\n"), "\t")
		if len(f) == 3 && strings.HasPrefix(f[0], "ii") {
			versions[f[1]] = f[2]
		}
	}
	return versions, nil
}

// removePaths removes each recipe path from root; the last element of a
// path may be a pattern (path.Match). Everything goes through root, so a
// symlink in the new tree can never lead the removal onto the host.
func removePaths(root *os.Root, removes []string) (int, error) {
	n := 0
	for _, p := range removes {
		dir, pattern := path.Split(p)
		dir = strings.TrimPrefix(path.Clean(dir), "/")
		if dir == "" {
			dir = "."
		}
		d, err := root.Open(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("remove %s: %w", p, err)
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return n, fmt.Errorf("remove %s: %w", p, err)
		}
		for _, name := range names {
			if ok, _ := path.Match(pattern, name); !ok {
				continue
			}
			if err := root.RemoveAll(path.Join(dir, name)); err != nil {
				return n, fmt.Errorf("remove %s: %w", p, err)
			}
			n++
		}
	}
	return n, nil
}

// applySteps writes the recipe's dir, file and copy steps into root.
func (r *recipe) applySteps(root *os.Root, dir fs.FS, step func(string, ...any)) error {
	for _, st := range r.steps {
		p := strings.TrimPrefix(st.args[0], "/")
		switch st.op {
		case "dir":
			if err := root.MkdirAll(p, 0o755); err != nil {
				return fmt.Errorf("recipe line %d: %w", st.line, err)
			}
			if err := root.Chmod(p, unixMode(st.mode)); err != nil {
				return fmt.Errorf("recipe line %d: %w", st.line, err)
			}
		case "file", "copy":
			var body []byte
			var err error
			if st.op == "file" {
				body, err = fs.ReadFile(dir, st.args[2])
			} else {
				p = strings.TrimPrefix(st.args[1], "/")
				body, err = os.ReadFile(st.args[0])
			}
			if err != nil {
				return fmt.Errorf("recipe line %d: %w", st.line, err)
			}
			if err := root.MkdirAll(path.Dir(p), 0o755); err != nil {
				return fmt.Errorf("recipe line %d: %w", st.line, err)
			}
			root.Remove(p)
			if err := root.WriteFile(p, body, 0o600); err != nil {
				return fmt.Errorf("recipe line %d: %w", st.line, err)
			}
			if err := root.Chmod(p, unixMode(st.mode)); err != nil {
				return fmt.Errorf("recipe line %d: %w", st.line, err)
			}
			step("wrote /%s (%d bytes)", p, len(body))
		}
	}
	return nil
}

// unixMode turns an octal recipe mode into an fs.FileMode.
func unixMode(m int64) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// checkNobody makes sure the image's user database has nobody as
// 65534:65534 and a group 65534, which scripts run as.
func checkNobody(root *os.Root) error {
	passwd, err := root.ReadFile("etc/passwd")
	if err != nil {
		return fmt.Errorf("user database: %w", err)
	}
	group, err := root.ReadFile("etc/group")
	if err != nil {
		return fmt.Errorf("group database: %w", err)
	}
	if !HasNobody(passwd, group) {
		return errors.New("the image's /etc/passwd and /etc/group lack nobody (65534:65534)")
	}
	return nil
}

// HasNobody reports whether passwd has the user nobody with uid and gid
// 65534 and group has a group with gid 65534.
func HasNobody(passwd, group []byte) bool {
	user := false
	for line := range strings.Lines(string(passwd)) {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) >= 4 && f[0] == "nobody" && f[2] == "65534" && f[3] == "65534" {
			user = true
		}
	}
	for line := range strings.Lines(string(group)) {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) >= 3 && f[2] == "65534" {
			return user
		}
	}
	return false
}

// removeWork deletes a build's work directory. debootstrap mounts /proc
// and /sys (and may bind /dev) inside the new tree; anything still mounted
// there is detached first, and if that fails the directory is left alone
// rather than deleting through a mount into the host.
func removeWork(work string, step func(string, ...any)) {
	for range 3 {
		mounts := mountsUnder(work)
		if len(mounts) == 0 {
			os.RemoveAll(work)
			return
		}
		for _, m := range slices.Backward(mounts) {
			unix.Unmount(m, unix.MNT_DETACH)
		}
	}
	step("warning: %s still has mounts; left in place", work)
}

// mountsUnder lists the mount points at or below dir, outermost first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a blank).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// layerStats describes a layer written by writeTree.
type layerStats struct {
	entries    int
	bytes      int64    // uncompressed tar bytes
	compressed int64    // gzip bytes (writeLayerFile only)
	cleared    []string // files whose setuid/setgid bits were cleared
}

// writeLayerFile writes the gzip-compressed layer of the tree rootfs to p.
func writeLayerFile(p, rootfs string, mtime time.Time) (layerStats, error) {
	f, err := os.Create(p)
	if err != nil {
		return layerStats{}, err
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		return layerStats{}, err
	}
	st, err := writeTree(zw, rootfs, mtime)
	if err != nil {
		return st, err
	}
	if err := zw.Close(); err != nil {
		return st, err
	}
	if fi, err := f.Stat(); err == nil {
		st.compressed = fi.Size()
	}
	return st, f.Close()
}

// writeTree writes the tree rootfs as an uncompressed layer tar to w:
// owners kept numerically, hard links kept, symlinks not followed, the
// contents of /dev, /proc and /sys left out (the runtime provides them),
// sockets and FIFOs left out, extended attributes (file capabilities) not
// copied, and the setuid and setgid bits of every entry cleared: nothing in
// an image may raise privileges (SECURITY.md "Escape and privilege").
func writeTree(w io.Writer, rootfs string, mtime time.Time) (layerStats, error) {
	var st layerStats
	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	type inode struct{ dev, ino uint64 }
	links := map[inode]string{}
	err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(rootfs, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if dir := path.Dir(rel); dir == "dev" || dir == "proc" || dir == "sys" {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode()
		if mode&(fs.ModeSocket|fs.ModeNamedPipe|fs.ModeDevice|fs.ModeCharDevice|fs.ModeIrregular) != 0 {
			return nil
		}
		var link string
		if mode&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = rel
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			hdr.Uid, hdr.Gid = int(sys.Uid), int(sys.Gid)
			if mode.IsRegular() && sys.Nlink > 1 {
				key := inode{uint64(sys.Dev), uint64(sys.Ino)}
				if first, ok := links[key]; ok {
					hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				} else {
					links[key] = rel
				}
			}
		}
		hdr.Uname, hdr.Gname = "", ""
		if hdr.Mode&0o6000 != 0 {
			hdr.Mode &^= 0o6000
			if !fi.IsDir() {
				st.cleared = append(st.cleared, "/"+rel)
			}
		}
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = mtime, time.Time{}, time.Time{}
		hdr.Format = tar.FormatPAX
		hdr.PAXRecords = nil
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		st.entries++
		if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.CopyN(tw, f, hdr.Size)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	if err := tw.Close(); err != nil {
		return st, err
	}
	st.bytes = cw.n
	return st, nil
}

// cacheName is the file name of a built archive in the cache: the recipe's
// name and hash, and the suite when it is not the recipe's own.
func cacheName(name, sha, suite, recipeSuite string) string {
	if suite != recipeSuite {
		return name + "-" + sha[:16] + "-" + suite + ".tar"
	}
	return name + "-" + sha[:16] + ".tar"
}

// debianSource decides which Debian suite a recipe whose base is
// `debian recipeSuite` is built from, and from which mirror, given the
// host's configuration under etc (normally /etc):
//
//   - opts.Suite, when set, replaces the recipe's suite;
//   - opts.Mirror, when set, is the mirror; else the host's apt source for
//     the suite;
//   - a Debian host with no apt source for the recipe's suite (Debian 13
//     building a bookworm recipe) builds from its own suite, which its apt
//     sources name, and note says so;
//   - otherwise (Ubuntu, say, or an apt configuration without Debian) the
//     error says exactly what to pass.
//
// suite is set even with an error: the suite a cached archive may be of.
func debianSource(etc, recipeSuite string, opts Options) (suite, mirror, note string, err error) {
	suite = recipeSuite
	if opts.Suite != "" {
		suite = opts.Suite
	}
	if opts.Mirror != "" {
		return suite, opts.Mirror, "", nil
	}
	etcApt := filepath.Join(etc, "apt")
	m, err := HostMirror(etcApt, suite)
	if err == nil {
		return suite, m, "", nil
	}
	id, codename := hostOS(filepath.Join(etc, "os-release"))
	host := strings.TrimSpace(id + " " + codename)
	if host == "" {
		host = "an unknown distribution"
	}
	if id == "debian" && codename != "" && codename != suite && opts.Suite == "" {
		if m, herr := HostMirror(etcApt, codename); herr == nil {
			return codename, m, fmt.Sprintf("no apt source for %s on this host (it runs %s): building from its own suite %s (--suite %s --mirror URL builds %s)",
				suite, host, codename, suite, suite), nil
		}
	}
	fix := fmt.Sprintf("pass --mirror URL of a Debian mirror that has %s (such as http://deb.debian.org/debian)", suite)
	if id == "debian" && codename != "" && codename != suite {
		fix = fmt.Sprintf("pass --suite %s to build from this host's suite, or --mirror URL of a Debian mirror that has %s", codename, suite)
	}
	return suite, "", "", fmt.Errorf("%w; this host runs %s: %s", err, host, fix)
}

// hostOS reads ID and VERSION_CODENAME from an os-release file; empty
// strings when it cannot tell.
func hostOS(path string) (id, codename string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			id = v
		case "VERSION_CODENAME":
			codename = v
		}
	}
	return id, codename
}

// HostMirror returns the Debian mirror the host's apt configuration under
// etcApt (normally /etc/apt) uses for suite: the first "deb" source, in
// sources.list and then sources.list.d/*.list and *.sources in name order,
// whose suites include suite.
func HostMirror(etcApt, suite string) (string, error) {
	files := []string{filepath.Join(etcApt, "sources.list")}
	if entries, err := os.ReadDir(filepath.Join(etcApt, "sources.list.d")); err == nil {
		for _, e := range entries {
			if n := e.Name(); strings.HasSuffix(n, ".list") || strings.HasSuffix(n, ".sources") {
				files = append(files, filepath.Join(etcApt, "sources.list.d", n))
			}
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var srcs []aptSource
		if strings.HasSuffix(f, ".sources") {
			srcs = parseDeb822Sources(b)
		} else {
			srcs = parseOneLineSources(b)
		}
		for _, s := range srcs {
			if slices.Contains(s.suites, suite) {
				return s.uri, nil
			}
		}
	}
	return "", fmt.Errorf("no deb source for %q in %s or %s", suite,
		filepath.Join(etcApt, "sources.list"), filepath.Join(etcApt, "sources.list.d"))
}

// aptSource is one "deb" source of an apt configuration.
type aptSource struct {
	uri    string
	suites []string
}

// parseOneLineSources reads the one-line format: deb [options] URI SUITE COMPONENT...
func parseOneLineSources(b []byte) []aptSource {
	var out []aptSource
	for line := range strings.Lines(string(b)) {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			// Options run up to the field that ends with "]".
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) < 2 || !isMirrorURI(f[0]) {
			continue
		}
		out = append(out, aptSource{uri: f[0], suites: []string{f[1]}})
	}
	return out
}

// parseDeb822Sources reads the deb822 format: stanzas of Types, URIs,
// Suites, Components and Enabled fields separated by blank lines.
func parseDeb822Sources(b []byte) []aptSource {
	var out []aptSource
	flush := func(st map[string]string) {
		if len(st) == 0 {
			return
		}
		if !slices.Contains(strings.Fields(st["types"]), "deb") || strings.EqualFold(st["enabled"], "no") {
			return
		}
		for _, u := range strings.Fields(st["uris"]) {
			if isMirrorURI(u) {
				out = append(out, aptSource{uri: u, suites: strings.Fields(st["suites"])})
				return
			}
		}
	}
	st := map[string]string{}
	key := ""
	for line := range strings.Lines(string(b) + "\n") {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.TrimSpace(line) == "":
			flush(st)
			st, key = map[string]string{}, ""
		case strings.HasPrefix(line, "#"):
		case line[0] == ' ' || line[0] == '\t':
			if key != "" {
				st[key] += " " + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			key = strings.ToLower(strings.TrimSpace(k))
			st[key] = strings.TrimSpace(v)
		}
	}
	return out
}

// isMirrorURI accepts the URI schemes debootstrap can download from.
func isMirrorURI(u string) bool {
	return strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "file:/")
}
