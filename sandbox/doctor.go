package sandbox

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// This file is `cgibox doctor`'s probing: what the host and containerd
// provide, and what of SECURITY.md's hardening is in force. Each probe
// reads the host or the daemon; the decisions are small pure functions
// (version comparison, cgroup mode, seccomp and /proc parsing) tested
// without a daemon.

// Check statuses.
const (
	CheckOK   = "OK"
	CheckWarn = "WARN"
	CheckFail = "FAIL"
)

// Check is one line of the doctor's report.
type Check struct {
	Name   string
	Status string // CheckOK, CheckWarn or CheckFail
	Detail string // what was found, in plain words
	Fix    string // the command or step that fixes a problem ("" for OK)
}

// DoctorConfig says what Doctor examines.
type DoctorConfig struct {
	// Address is the containerd socket, or AddressAuto/AddressPrivate/""
	// as for WithAddress.
	Address string
	// DataDir is cgibox's data directory (a private containerd lives there).
	DataDir string
	// Launcher is the cgibox binary to check ("": the running executable).
	Launcher string
	// Images maps the image names to check to their containerd references.
	Images map[string]string
	// ImageFix is the command that builds a missing image, with %s for its
	// name (default "cgibox image build %s").
	ImageFix string
	// Log receives the private daemon's start and stop (default: discard).
	Log *slog.Logger
}

const (
	probeTimeout = 10 * time.Second
	// probeOutputMax bounds what is read from a probed command or file.
	probeOutputMax = 1 << 20
)

// Doctor examines the host and containerd and returns one Check per item,
// in a fixed order. It finds containerd as cgibox serve would (see
// doctorConnect): beside a serving cgibox it examines that cgibox's daemon
// and disturbs nothing; where it has to start a private containerd to
// examine, it stops it before returning.
func Doctor(ctx context.Context, cfg DoctorConfig) []Check {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "/var/lib/cgibox"
	}
	root := os.Geteuid() == 0
	var out []Check
	out = append(out, checkRoot(root), checkDataDir(cfg.DataDir))
	out = append(out, checkBinaries()...)

	client, where, state, cleanup, cerr := doctorConnect(ctx, cfg, root)
	out = append(out, checkContainerd(ctx, client, where, cerr, cfg))
	if cleanup != nil {
		defer cleanup()
	}

	runc := probeRunc(ctx)
	out = append(out, runc.check())
	for _, f := range knownRuncFixes() {
		out = append(out, assessRunc(runc, f))
	}

	cg := probeCgroups(DetectCgroups(""))
	out = append(out, cg.modeCheck(), cg.swapCheck(), cg.pidsCheck())

	spec, serr := policySpec(ctx)
	out = append(out, checkSeccompKernel(runc.libseccomp), checkSeccompPolicy(spec, serr),
		checkUserNamespaces(doctorUserNamespaces(state, cfg.Launcher)))
	out = append(out, checkLauncher(cfg.Launcher))
	if cfg.ImageFix == "" {
		cfg.ImageFix = "cgibox image build %s"
	}
	out = append(out, checkImages(ctx, client, cfg.Images, cfg.ImageFix)...)
	return out
}

func checkRoot(root bool) Check {
	c := Check{Name: "root"}
	if root {
		c.Status, c.Detail = CheckOK, "running as root (cgibox drives containerd and needs it)"
		return c
	}
	c.Status = CheckFail
	c.Detail = fmt.Sprintf("running as uid %d; cgibox needs root to drive containerd", os.Geteuid())
	c.Fix = "run cgibox as root: sudo cgibox ..."
	return c
}

// checkDataDir creates the data directory when missing (as cgibox does)
// and writes and removes a file in it.
func checkDataDir(dir string) Check {
	c := Check{Name: "data directory"}
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		var f *os.File
		if f, err = os.CreateTemp(dir, ".doctor-*"); err == nil {
			f.Close()
			err = os.Remove(f.Name())
		}
	}
	if err != nil {
		c.Status = CheckFail
		c.Detail = fmt.Sprintf("%s is not writable: %v", dir, err)
		c.Fix = fmt.Sprintf("run as root, or choose another one with --data-dir DIR (sudo mkdir -p %s)", dir)
		return c
	}
	c.Status, c.Detail = CheckOK, dir+" is writable"
	return c
}

// checkBinaries looks for the binaries a private containerd needs on PATH.
func checkBinaries() []Check {
	var out []Check
	for _, b := range []struct{ bin, pkg string }{
		{"containerd", "containerd"},
		{"containerd-shim-runc-v2", "containerd"},
		{"runc", "runc"},
	} {
		c := Check{Name: b.bin + " binary"}
		if p, err := exec.LookPath(b.bin); err == nil {
			c.Status, c.Detail = CheckOK, p
		} else {
			c.Status, c.Detail = CheckFail, b.bin+" is not on PATH"
			c.Fix = "apt-get install " + b.pkg
		}
		out = append(out, c)
	}
	return out
}

// doctorConnect reaches the daemon cgibox would use, found as every
// command finds it (openEndpoint): beside a cgibox that holds the data
// directory, its daemon; else the standard socket; else a private daemon,
// started for the examination and stopped by cleanup. Without root it only
// tries the socket it was given or the standard one. state is the daemon's
// state directory when cgibox knows it (see endpoint.state).
func doctorConnect(ctx context.Context, cfg DoctorConfig, root bool) (c *containerd.Client, where, state string, cleanup func(), err error) {
	if !root {
		addr := cfg.Address
		if addr == AddressPrivate {
			return nil, "", "", nil, errors.New("a private containerd needs root")
		}
		if addr == AddressAuto || addr == "" {
			addr = DefaultAddress
		}
		c, err = connect(ctx, addr)
		if err != nil {
			return nil, "", "", nil, fmt.Errorf("%w (a private containerd needs root)", err)
		}
		return c, "on " + addr, "", nil, nil
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, "", "", nil, fmt.Errorf("data dir: %w", err)
	}
	e, err := openEndpoint(ctx, endpointConfig{
		address: cfg.Address, standard: DefaultAddress, dataDir: dataDir,
		command: "doctor", share: true, log: cfg.Log,
	})
	if err != nil {
		return nil, "", "", nil, err
	}
	cleanup = func() {
		if err := e.close(ctx); err != nil {
			cfg.Log.Warn("closing the doctor's containerd", "err", err)
		}
	}
	return e.client, e.where, e.state, cleanup, nil
}

func checkContainerd(ctx context.Context, c *containerd.Client, where string, cerr error, cfg DoctorConfig) Check {
	ch := Check{Name: "containerd"}
	if cerr != nil {
		ch.Status, ch.Detail = CheckFail, "not reachable: "+cerr.Error()
		ch.Fix = "apt-get install containerd runc; run cgibox as root; see " +
			filepath.Join(cfg.DataDir, "containerd.log") + " when a private daemon fails"
		if cfg.Address != "auto" && cfg.Address != "" {
			ch.Fix = "start containerd on " + cfg.Address + ", or use --containerd auto"
		}
		return ch
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	v, err := c.Version(ctx)
	if err != nil {
		ch.Status, ch.Detail = CheckFail, fmt.Sprintf("answers %s but not its version: %v", where, err)
		ch.Fix = "restart containerd"
		return ch
	}
	ch.Status = CheckOK
	ch.Detail = fmt.Sprintf("containerd %s (revision %s) answers %s", v.Version, v.Revision, where)
	return ch
}

// checkImages looks the images up in cgibox's namespace.
func checkImages(ctx context.Context, c *containerd.Client, imgs map[string]string, fix string) []Check {
	names := make([]string, 0, len(imgs))
	for n := range imgs {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []Check
	for _, n := range names {
		ref := imgs[n]
		ch := Check{Name: "image " + n, Fix: fmt.Sprintf(fix, n)}
		if c == nil {
			ch.Status, ch.Detail, ch.Fix = CheckWarn, "not checked: containerd is not reachable", ""
			out = append(out, ch)
			continue
		}
		ictx, cancel := context.WithTimeout(namespaces.WithNamespace(ctx, Namespace), probeTimeout)
		img, err := c.ImageService().Get(ictx, ref)
		cancel()
		switch {
		case err == nil:
			ch.Status, ch.Fix = CheckOK, ""
			id := img.Target.Digest.Encoded()
			ch.Detail = fmt.Sprintf("%s present (%s)", ref, id[:min(12, len(id))])
		case errdefs.IsNotFound(err):
			ch.Status = CheckWarn
			ch.Detail = ref + " is missing: scripts that need it get 503"
			if n == "busybox" {
				ch.Detail = ref + " is missing (cgibox serve builds it on first start)"
			}
		default:
			ch.Status, ch.Detail = CheckFail, fmt.Sprintf("looking up %s: %v", ref, err)
		}
		out = append(out, ch)
	}
	return out
}

func checkLauncher(path string) Check {
	c := Check{Name: "launcher"}
	p, err := resolveLauncher(path)
	if err != nil {
		c.Status, c.Detail = CheckFail, err.Error()+" (it runs inside images without libc)"
		c.Fix = "CGO_ENABLED=0 go build -o cgibox ./cmd/cgibox"
		return c
	}
	c.Status, c.Detail = CheckOK, p+" is statically linked (it runs inside every container)"
	return c
}

// --- runc -------------------------------------------------------------

// runcInfo is what is known of the runtime binary.
type runcInfo struct {
	path       string
	version    string // upstream version from `runc --version` ("1.1.5+ds1")
	libseccomp string // "2.5.4", "" when runc does not say
	err        error
	// debVersion is the Debian package version when the binary belongs
	// to Debian's runc package ("1.1.5+ds1-1+deb12u1"), else "".
	debVersion string
	// debCVEs are the CVE ids that the package's changelog.Debian lists.
	debCVEs map[string]bool
}

func probeRunc(ctx context.Context) runcInfo {
	var ri runcInfo
	ri.path, ri.err = exec.LookPath("runc")
	if ri.err != nil {
		return ri
	}
	out, err := runProbe(ctx, ri.path, "--version")
	if err != nil {
		ri.err = fmt.Errorf("%s --version: %w", ri.path, err)
		return ri
	}
	ri.version, ri.libseccomp = parseRuncVersionOutput(out)
	// A Debian build: the binary belongs to a package (dpkg-query -S),
	// whose version and changelog say which fixes were backported.
	resolved, err := filepath.EvalSymlinks(ri.path)
	if err != nil {
		return ri
	}
	owner, err := runProbe(ctx, "dpkg-query", "-S", resolved)
	if err != nil {
		return ri
	}
	pkg, _, ok := strings.Cut(strings.TrimSpace(string(owner)), ":")
	if !ok || strings.ContainsAny(pkg, ", ") {
		return ri
	}
	ver, err := runProbe(ctx, "dpkg-query", "-W", "-f", "${Version}", pkg)
	if err != nil {
		return ri
	}
	ri.debVersion = strings.TrimSpace(string(ver))
	ri.debCVEs = readChangelogCVEs(filepath.Join("/usr/share/doc", pkg, "changelog.Debian.gz"))
	return ri
}

func (ri runcInfo) check() Check {
	c := Check{Name: "runtime"}
	switch {
	case ri.err != nil:
		c.Status, c.Detail, c.Fix = CheckFail, "runc: "+ri.err.Error(), "apt-get install runc"
		return c
	case ri.version == "":
		c.Status, c.Detail = CheckWarn, ri.path+" --version does not name a version"
		c.Fix = "apt-get install --reinstall runc"
		return c
	}
	c.Status = CheckOK
	c.Detail = fmt.Sprintf("%s (shim %s) runc %s", ri.path, Runtime, ri.version)
	if ri.debVersion != "" {
		c.Detail += ", Debian package " + ri.debVersion
	}
	if ri.libseccomp != "" {
		c.Detail += ", libseccomp " + ri.libseccomp
	}
	return c
}

var runcVersionRE = regexp.MustCompile(`(?m)^runc version (\S+)`)
var libseccompRE = regexp.MustCompile(`(?m)^libseccomp: (\S+)`)

// parseRuncVersionOutput reads `runc --version`.
func parseRuncVersionOutput(out []byte) (version, libseccomp string) {
	if m := runcVersionRE.FindSubmatch(out); m != nil {
		version = string(m[1])
	}
	if m := libseccompRE.FindSubmatch(out); m != nil {
		libseccomp = string(m[1])
	}
	return version, libseccomp
}

var cveRE = regexp.MustCompile(`CVE-\d{4}-\d{4,}`)

// readChangelogCVEs returns the CVE ids a gzipped Debian changelog names
// (nil when it cannot be read).
func readChangelogCVEs(path string) map[string]bool {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil
	}
	defer zr.Close()
	cves := map[string]bool{}
	sc := bufio.NewScanner(io.LimitReader(zr, 16<<20))
	for sc.Scan() {
		for _, id := range cveRE.FindAllString(sc.Text(), -1) {
			cves[id] = true
		}
	}
	return cves
}

// runcFix is a known runc container escape and the releases that fix it.
type runcFix struct {
	CVEs    []string
	What    string
	FixedIn []string // the first fixed release of each maintained line
	// Debian lists Debian package versions known to carry the backport;
	// a version of the same upstream release at least as new has it too.
	Debian []string
}

// knownRuncFixes are the runc escapes the doctor knows about.
func knownRuncFixes() []runcFix {
	return []runcFix{
		{
			CVEs:    []string{"CVE-2024-21626"},
			What:    "leaked file descriptor lets a process escape to the host (\"Leaky Vessels\")",
			FixedIn: []string{"1.1.12"},
			Debian:  []string{"1.1.5+ds1-1+deb12u1"}, // DSA-5615-1, bookworm
		},
		{
			CVEs:    []string{"CVE-2025-31133", "CVE-2025-52565", "CVE-2025-52881"},
			What:    "mount races on /dev/null, /dev/console and /proc writes let a crafted container escape",
			FixedIn: []string{"1.2.8", "1.3.3", "1.4.0-rc.3"},
		},
	}
}

// assessRunc says whether the runtime has fix f: fixed upstream, carried
// by a Debian backport (a known package version, or the CVE in the
// package's changelog), or not known to be fixed.
func assessRunc(ri runcInfo, f runcFix) Check {
	c := Check{Name: "runc " + strings.Join(f.CVEs, ", ")}
	fix := fmt.Sprintf("apt-get install --only-upgrade runc; if your distribution has no fixed runc, put runc >= %s (https://github.com/opencontainers/runc/releases) first on containerd's PATH",
		f.FixedIn[0])
	if ri.version == "" {
		c.Status, c.Detail, c.Fix = CheckWarn, "unknown: the runc version is unknown ("+f.What+")", fix
		return c
	}
	v, ok := parseUpstreamVersion(ri.version)
	if !ok {
		c.Status, c.Detail, c.Fix = CheckWarn, fmt.Sprintf("unknown: cannot read runc version %q", ri.version), fix
		return c
	}
	if fixedUpstream(v, f.FixedIn) {
		c.Status = CheckOK
		c.Detail = fmt.Sprintf("fixed: runc %s includes the upstream fix (%s)", ri.version, strings.Join(f.FixedIn, ", "))
		return c
	}
	if ri.debVersion != "" {
		for _, d := range f.Debian {
			if sameUpstream(ri.debVersion, d) && CompareDebianVersions(ri.debVersion, d) >= 0 {
				c.Status = CheckOK
				c.Detail = fmt.Sprintf("fixed: Debian backported the fix in %s (installed %s)", d, ri.debVersion)
				return c
			}
		}
		if listsAll(ri.debCVEs, f.CVEs) {
			c.Status = CheckOK
			c.Detail = fmt.Sprintf("fixed: the changelog of Debian's runc %s lists %s", ri.debVersion, strings.Join(f.CVEs, ", "))
			return c
		}
		c.Status = CheckWarn
		c.Detail = fmt.Sprintf("unknown, probably not fixed: runc %s predates the upstream fix (%s) and the changelog of Debian's package %s does not list them; %s",
			ri.version, strings.Join(f.FixedIn, ", "), ri.debVersion, f.What)
		c.Fix = fix
		return c
	}
	c.Status = CheckWarn
	c.Detail = fmt.Sprintf("not fixed upstream in runc %s (fixed in %s), unless your distribution backported it: %s",
		ri.version, strings.Join(f.FixedIn, ", "), f.What)
	c.Fix = fix
	return c
}

func listsAll(set map[string]bool, ids []string) bool {
	for _, id := range ids {
		if !set[id] {
			return false
		}
	}
	return len(ids) > 0
}

// upstreamVersion is a runc release: major.minor.patch and an optional
// pre-release ("rc.3", "rc93").
type upstreamVersion struct {
	num [3]int
	pre string
}

// parseUpstreamVersion reads "1.1.5", "1.1.5+ds1", "v1.2.8",
// "1.0.0-rc93", "1.0.0~rc93+ds1" (Debian's spelling), "1.4.0-rc.3".
func parseUpstreamVersion(s string) (upstreamVersion, bool) {
	var v upstreamVersion
	s = strings.TrimPrefix(s, "v")
	s, _, _ = strings.Cut(s, "+")
	core, pre, _ := strings.Cut(strings.Replace(s, "~", "-", 1), "-")
	parts := strings.Split(core, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, false
		}
		v.num[i] = n
	}
	v.pre = pre
	return v, true
}

// compareUpstream orders releases; a pre-release comes before its release
// and pre-releases compare by their numbers ("rc.3" < "rc.10").
func compareUpstream(a, b upstreamVersion) int {
	for i := range a.num {
		if a.num[i] != b.num[i] {
			return cmpInt(a.num[i], b.num[i])
		}
	}
	switch {
	case a.pre == b.pre:
		return 0
	case a.pre == "":
		return 1
	case b.pre == "":
		return -1
	}
	na, nb := trailingNumber(a.pre), trailingNumber(b.pre)
	if na >= 0 && nb >= 0 && na != nb {
		return cmpInt(na, nb)
	}
	return strings.Compare(a.pre, b.pre)
}

func trailingNumber(s string) int {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	n, err := strconv.Atoi(s[i:])
	if err != nil {
		return -1
	}
	return n
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fixedUpstream reports whether v has a fix released as fixedIn (the first
// fixed release of each line): v's line has a fixed release not newer than
// v, or v's line is newer than every fixed line.
func fixedUpstream(v upstreamVersion, fixedIn []string) bool {
	newest := upstreamVersion{}
	for _, s := range fixedIn {
		f, ok := parseUpstreamVersion(s)
		if !ok {
			continue
		}
		if f.num[0] == v.num[0] && f.num[1] == v.num[1] {
			return compareUpstream(v, f) >= 0
		}
		if compareUpstream(f, newest) > 0 {
			newest = f
		}
	}
	line := upstreamVersion{num: [3]int{v.num[0], v.num[1], 0}}
	newestLine := upstreamVersion{num: [3]int{newest.num[0], newest.num[1], 0}}
	return compareUpstream(line, newestLine) > 0
}

// sameUpstream reports whether two Debian versions package the same
// upstream release (epoch and upstream version equal).
func sameUpstream(a, b string) bool {
	ea, ua, _ := splitDebianVersion(a)
	eb, ub, _ := splitDebianVersion(b)
	return ea == eb && ua == ub
}

// splitDebianVersion splits "[epoch:]upstream[-revision]".
func splitDebianVersion(s string) (epoch int, upstream, revision string) {
	if e, rest, ok := strings.Cut(s, ":"); ok {
		if n, err := strconv.Atoi(e); err == nil {
			epoch, s = n, rest
		}
	}
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		return epoch, s[:i], s[i+1:]
	}
	return epoch, s, ""
}

// CompareDebianVersions orders two Debian package versions as dpkg does
// (deb-version(7)): by epoch, then upstream version, then revision, each
// compared in alternating non-digit and digit runs, where '~' sorts before
// everything, even the end of the string, and letters before other
// characters.
func CompareDebianVersions(a, b string) int {
	ea, ua, ra := splitDebianVersion(a)
	eb, ub, rb := splitDebianVersion(b)
	if ea != eb {
		return cmpInt(ea, eb)
	}
	if c := compareDebianPart(ua, ub); c != 0 {
		return c
	}
	return compareDebianPart(ra, rb)
}

func compareDebianPart(a, b string) int {
	for a != "" || b != "" {
		// Non-digit run.
		var na, nb string
		na, a = spanFunc(a, func(c byte) bool { return c < '0' || c > '9' })
		nb, b = spanFunc(b, func(c byte) bool { return c < '0' || c > '9' })
		if c := compareNonDigits(na, nb); c != 0 {
			return c
		}
		// Digit run.
		var da, db string
		da, a = spanFunc(a, func(c byte) bool { return c >= '0' && c <= '9' })
		db, b = spanFunc(b, func(c byte) bool { return c >= '0' && c <= '9' })
		if c := compareDigits(da, db); c != 0 {
			return c
		}
	}
	return 0
}

func spanFunc(s string, f func(byte) bool) (run, rest string) {
	i := 0
	for i < len(s) && f(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// debOrder is a character's weight in dpkg's non-digit comparison; 0 is
// the end of the string.
func debOrder(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	c := s[i]
	switch {
	case c == '~':
		return -1
	case (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'):
		return int(c)
	}
	return int(c) + 256
}

func compareNonDigits(a, b string) int {
	for i := 0; i < len(a) || i < len(b); i++ {
		if oa, ob := debOrder(a, i), debOrder(b, i); oa != ob {
			return cmpInt(oa, ob)
		}
	}
	return 0
}

func compareDigits(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return cmpInt(len(a), len(b))
	}
	return strings.Compare(a, b)
}

// --- cgroups ----------------------------------------------------------

type cgroupInfo struct {
	mode string
	// controllers available: from /proc/cgroups (v1) or
	// cgroup.controllers (v2).
	controllers map[string]bool
	swap        bool   // swap accounting files found
	swapFile    string // the file looked for
}

// probeCgroups looks at the host's cgroup filesystem cg (its mode detected
// in one place, DetectCgroups).
func probeCgroups(cg Cgroups) cgroupInfo {
	base := cg.root
	ci := cgroupInfo{mode: cg.Mode()}
	switch ci.mode {
	case CgroupV2:
		b, _ := readBounded(filepath.Join(base, "cgroup.controllers"))
		ci.controllers = map[string]bool{}
		for _, f := range strings.Fields(string(b)) {
			ci.controllers[f] = true
		}
		// memory.swap.max exists in every non-root cgroup when swap
		// accounting is on.
		ci.swapFile = "memory.swap.max"
		m, _ := filepath.Glob(filepath.Join(base, "*", "memory.swap.max"))
		ci.swap = len(m) > 0
	case CgroupV1, CgroupHybrid:
		b, _ := readBounded("/proc/cgroups")
		ci.controllers = parseProcCgroups(b)
		for name := range ci.controllers {
			if _, err := os.Stat(filepath.Join(base, name)); err != nil {
				delete(ci.controllers, name) // enabled but not mounted
			}
		}
		ci.swapFile = filepath.Join(base, "memory", "memory.memsw.limit_in_bytes")
		_, err := os.Stat(ci.swapFile)
		ci.swap = err == nil
	}
	return ci
}

// parseProcCgroups reads /proc/cgroups: the enabled v1 controllers.
func parseProcCgroups(b []byte) map[string]bool {
	out := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) != 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[3] == "1" {
			out[f[0]] = true
		}
	}
	return out
}

func (ci cgroupInfo) modeCheck() Check {
	c := Check{Name: "cgroups"}
	var missing []string
	need := []string{"memory", "cpu", "pids"}
	if ci.mode != CgroupV2 {
		need = append(need, "devices")
	}
	for _, n := range need {
		if !ci.controllers[n] {
			missing = append(missing, n)
		}
	}
	desc := map[string]string{
		CgroupV1:     "cgroup v1",
		CgroupHybrid: "cgroup v1, hybrid (cgroup2 also mounted at /sys/fs/cgroup/unified; limits use v1)",
		CgroupV2:     "cgroup v2 (unified)",
	}[ci.mode]
	switch {
	case ci.mode == CgroupUnknown:
		c.Status, c.Detail = CheckFail, "no cgroup filesystem at /sys/fs/cgroup"
		c.Fix = "mount cgroups: mount -t cgroup2 none /sys/fs/cgroup"
	case len(missing) > 0:
		c.Status = CheckFail
		c.Detail = fmt.Sprintf("%s; controllers missing: %s (limits cannot be enforced)", desc, strings.Join(missing, ", "))
		c.Fix = "enable them on the kernel command line (cgroup_enable=" + strings.Join(missing, ",") + ") and reboot"
	default:
		c.Status, c.Detail = CheckOK, desc+"; controllers "+strings.Join(need, ", ")+" available"
	}
	return c
}

func (ci cgroupInfo) swapCheck() Check {
	c := Check{Name: "memory swap accounting"}
	switch {
	case ci.mode == CgroupUnknown:
		c.Status, c.Detail = CheckWarn, "unknown: no cgroup filesystem"
	case ci.swap:
		c.Status, c.Detail = CheckOK, "on ("+filepath.Base(ci.swapFile)+" present): the memory limit includes swap, so a script cannot swap"
	default:
		c.Status = CheckWarn
		c.Detail = "off (" + filepath.Base(ci.swapFile) + " missing): the memory limit does not cover swap; a script may push memory to swap"
		c.Fix = "add swapaccount=1 to the kernel command line and reboot (or turn swap off: swapoff -a)"
	}
	return c
}

func (ci cgroupInfo) pidsCheck() Check {
	c := Check{Name: "pids controller"}
	if ci.controllers["pids"] {
		c.Status, c.Detail = CheckOK, "available: the process limit (--pids) stops fork bombs"
		return c
	}
	c.Status, c.Detail = CheckFail, "missing: the process limit cannot be enforced, a fork bomb can exhaust the host"
	c.Fix = "use a kernel with CONFIG_CGROUP_PIDS and mount the pids controller"
	return c
}

// --- seccomp and namespaces -------------------------------------------

// policySpec builds the container policy with no daemon, as Run would.
func policySpec(ctx context.Context) (*oci.Spec, error) {
	ctx = namespaces.WithNamespace(ctx, Namespace)
	return oci.GenerateSpec(ctx, nil, &containers.Container{ID: "doctor"}, hardenedSpec(specConfig{
		Launcher: "/cgibox", ScriptDir: "/cgi-bin", MountPoint: "/www/cgi-bin",
		Limits: DefaultLimits(),
	}))
}

// parseSeccompStatus reads the Seccomp field of /proc/<pid>/status; ok is
// false when the kernel has no seccomp (the field is absent).
func parseSeccompStatus(status []byte) (mode int, ok bool) {
	for line := range strings.Lines(string(status)) {
		if v, found := strings.CutPrefix(line, "Seccomp:"); found {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			return n, err == nil
		}
	}
	return 0, false
}

func checkSeccompKernel(libseccomp string) Check {
	c := Check{Name: "seccomp (kernel)"}
	status, _ := readBounded("/proc/self/status")
	_, ok := parseSeccompStatus(status)
	actions, aerr := readBounded("/proc/sys/kernel/seccomp/actions_avail")
	switch {
	case !ok:
		c.Status, c.Detail = CheckFail, "the kernel has no seccomp (no Seccomp field in /proc/self/status)"
		c.Fix = "use a kernel built with CONFIG_SECCOMP and CONFIG_SECCOMP_FILTER"
		return c
	case aerr != nil:
		c.Status, c.Detail = CheckWarn, "the kernel has seccomp; filter support unknown (no /proc/sys/kernel/seccomp/actions_avail)"
		return c
	}
	c.Status = CheckOK
	c.Detail = "available, filter actions: " + strings.TrimSpace(string(actions))
	if libseccomp != "" {
		c.Detail += "; runc uses libseccomp " + libseccomp
	}
	return c
}

func checkSeccompPolicy(s *oci.Spec, err error) Check {
	c := Check{Name: "seccomp (cgibox)"}
	if err != nil {
		c.Status, c.Detail = CheckFail, "cannot build the container policy: "+err.Error()
		return c
	}
	detail, ok := describeSeccomp(s)
	if !ok {
		c.Status, c.Detail = CheckFail, detail
		c.Fix = "this cgibox build is broken; reinstall cgibox"
		return c
	}
	c.Status, c.Detail = CheckOK, detail
	return c
}

// describeSeccomp says which profile the spec sets; ok is false when there
// is none or a denied syscall is allowed.
func describeSeccomp(s *oci.Spec) (string, bool) {
	if s.Linux == nil || s.Linux.Seccomp == nil {
		return "no seccomp profile in the container policy", false
	}
	p := s.Linux.Seccomp
	allowed := map[string]bool{}
	for _, r := range p.Syscalls {
		if r.Action == specs.ActAllow {
			for _, n := range r.Names {
				allowed[n] = true
			}
		}
	}
	for _, n := range deniedSyscalls() {
		if allowed[n] {
			return "the container policy's seccomp profile allows " + n, false
		}
	}
	arches := make([]string, len(p.Architectures))
	for i, a := range p.Architectures {
		arches[i] = strings.ToLower(strings.TrimPrefix(string(a), "SCMP_ARCH_"))
	}
	return fmt.Sprintf("in force for every script: containerd's default profile for a process without capabilities, "+
		"default action %s, %d syscalls allowed, architectures %s (other ABIs are killed), never: %s",
		p.DefaultAction, len(allowed), strings.Join(arches, " "), strings.Join(deniedSyscalls(), " ")), true
}

// doctorUserNamespaces decides, as New does, whether jobs with Users can
// run with the daemon whose state directory is state ("" when unknown) and
// the launcher at launcher ("": the running executable's; the launcher's
// own check says when it is unusable).
func doctorUserNamespaces(state, launcher string) error {
	p, _ := resolveLauncher(launcher)
	return userNamespaceSupport(state, p)
}

// checkUserNamespaces reports whether sites with user ids of their own
// (Job.Users) can run here: err is Manager.UserNamespaces' answer.
func checkUserNamespaces(err error) Check {
	c := Check{Name: "user namespaces"}
	if err == nil {
		c.Status = CheckOK
		c.Detail = "per-site user namespaces are available: a site with user ids of its own runs its scripts as its own host uid and gid, " +
			"in a user namespace that maps only its root and nobody; a site without runs them as host uid/gid 65534"
		return c
	}
	c.Status = CheckWarn
	c.Detail = "per-site user namespaces are not available here: " + err.Error() +
		"; the jobs of a site with user ids of its own fail (503); sites without run as host uid/gid 65534 " +
		"(no capabilities, no_new_privs, seccomp and a read-only root still apply)"
	c.Fix = "make user namespaces available as the reason says, or run the sites without user ids of their own"
	return c
}

// --- helpers ----------------------------------------------------------

// readBounded reads at most probeOutputMax bytes of a (proc) file.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, probeOutputMax))
}

// cappedBuffer keeps the first max bytes written to it.
type cappedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// runProbe runs a host command with a timeout and returns its (bounded)
// standard output.
func runProbe(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	out := &cappedBuffer{max: probeOutputMax}
	errOut := &cappedBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = out, errOut
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(errOut.buf.String()); msg != "" {
			return nil, fmt.Errorf("%s: %w: %s", name, err, msg)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out.buf.Bytes(), nil
}
