package sandbox

import (
	"compress/gzip"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestCompareDebianVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.1.5+ds1-1+deb12u1", "1.1.5+ds1-1", 1},
		{"1.1.5+ds1-1+deb12u1", "1.1.5+ds1-1+deb12u2", -1},
		{"1.1.5+ds1-1+deb12u1", "1.1.5+ds1-1+deb12u1", 0},
		{"1.1.12+ds1-1", "1.1.5+ds1-1+deb12u1", 1},
		{"1.0~rc1", "1.0", -1},
		{"1.0~~", "1.0~", -1},
		{"1.0", "1.0.0", -1},
		{"1.0a", "1.0+", -1},
		{"1.10", "1.9", 1},
		{"0001", "1", 0},
		{"1:1.0", "2.0", 1},
		{"1.0.0~rc93+ds1-5+deb11u3", "1.0.0~rc93+ds1-5+deb11u2", 1},
		{"1.0.0~rc93+ds1-5", "1.0.0+ds1-1", -1},
	}
	_, dpkgErr := exec.LookPath("dpkg")
	for _, tt := range tests {
		t.Run(tt.a+"_vs_"+tt.b, func(t *testing.T) {
			if got := CompareDebianVersions(tt.a, tt.b); got != tt.want {
				t.Errorf("CompareDebianVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
			if got := CompareDebianVersions(tt.b, tt.a); got != -tt.want {
				t.Errorf("CompareDebianVersions(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
			}
			if dpkgErr != nil {
				return
			}
			// The table itself must agree with dpkg.
			op := map[int]string{-1: "lt", 0: "eq", 1: "gt"}[tt.want]
			if err := exec.Command("dpkg", "--compare-versions", tt.a, op, tt.b).Run(); err != nil {
				t.Errorf("dpkg --compare-versions %s %s %s: %v (the table is wrong)", tt.a, op, tt.b, err)
			}
		})
	}
}

func TestFixedUpstream(t *testing.T) {
	cve2024 := []string{"1.1.12"}
	cve2025 := []string{"1.2.8", "1.3.3", "1.4.0-rc.3"}
	tests := []struct {
		version string
		fixedIn []string
		want    bool
	}{
		{"1.1.5+ds1", cve2024, false},
		{"1.1.11", cve2024, false},
		{"1.1.12", cve2024, true},
		{"v1.1.13", cve2024, true},
		{"1.2.0", cve2024, true},
		{"1.0.0-rc93", cve2024, false},
		{"1.0.0~rc93+ds1", cve2024, false},
		{"2.0.0", cve2024, true},
		{"1.1.15", cve2025, false},
		{"1.2.7", cve2025, false},
		{"1.2.8", cve2025, true},
		{"1.3.2", cve2025, false},
		{"1.3.3", cve2025, true},
		{"1.4.0-rc.2", cve2025, false},
		{"1.4.0-rc.3", cve2025, true},
		{"1.4.0", cve2025, true},
		{"1.5.1", cve2025, true},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			v, ok := parseUpstreamVersion(tt.version)
			if !ok {
				t.Fatalf("parseUpstreamVersion(%q) failed", tt.version)
			}
			if got := fixedUpstream(v, tt.fixedIn); got != tt.want {
				t.Errorf("fixedUpstream(%q, %v) = %v, want %v", tt.version, tt.fixedIn, got, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "abc", "1", "1.x.3", "1.2.3.4"} {
		if v, ok := parseUpstreamVersion(bad); ok {
			t.Errorf("parseUpstreamVersion(%q) = %+v, want failure", bad, v)
		}
	}
}

func TestAssessRunc(t *testing.T) {
	fix := runcFix{
		CVEs:    []string{"CVE-2024-21626"},
		What:    "escape",
		FixedIn: []string{"1.1.12"},
		Debian:  []string{"1.1.5+ds1-1+deb12u1"},
	}
	tests := []struct {
		name       string
		ri         runcInfo
		wantStatus string
		wantDetail string
	}{
		{"upstream fixed", runcInfo{version: "1.1.12"}, CheckOK, "upstream fix"},
		{"upstream old, not Debian", runcInfo{version: "1.1.11"}, CheckWarn, "not fixed upstream"},
		{"Debian backport", runcInfo{version: "1.1.5+ds1", debVersion: "1.1.5+ds1-1+deb12u1"}, CheckOK, "Debian backported"},
		{"Debian newer revision", runcInfo{version: "1.1.5+ds1", debVersion: "1.1.5+ds1-1+deb12u2"}, CheckOK, "Debian backported"},
		{"Debian before the backport", runcInfo{version: "1.1.5+ds1", debVersion: "1.1.5+ds1-1"}, CheckWarn, "does not list them"},
		{"Debian other upstream, changelog lists it", runcInfo{version: "1.0.0~rc93+ds1", debVersion: "1.0.0~rc93+ds1-5+deb11u9",
			debCVEs: map[string]bool{"CVE-2024-21626": true}}, CheckOK, "changelog"},
		{"Debian other upstream, changelog silent", runcInfo{version: "1.0.0~rc93+ds1", debVersion: "1.0.0~rc93+ds1-5",
			debCVEs: map[string]bool{"CVE-2023-27561": true}}, CheckWarn, "unknown"},
		{"no version", runcInfo{}, CheckWarn, "unknown"},
		{"unreadable version", runcInfo{version: "weird"}, CheckWarn, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := assessRunc(tt.ri, fix)
			if got.Status != tt.wantStatus || !strings.Contains(got.Detail, tt.wantDetail) {
				t.Errorf("assessRunc(%+v) = %s %q, want %s and a detail containing %q", tt.ri, got.Status, got.Detail, tt.wantStatus, tt.wantDetail)
			}
			if (got.Status == CheckOK) != (got.Fix == "") {
				t.Errorf("assessRunc(%+v): status %s with fix %q; a problem needs a fix, OK none", tt.ri, got.Status, got.Fix)
			}
		})
	}
}

func TestCgroupChecks(t *testing.T) {
	all := map[string]bool{"memory": true, "cpu": true, "pids": true, "devices": true}
	tests := []struct {
		name                  string
		ci                    cgroupInfo
		mode, swap, pids      string
		modeDetail, swapFixed string
	}{
		{"hybrid complete", cgroupInfo{mode: CgroupHybrid, controllers: all, swap: true, swapFile: "memory.memsw.limit_in_bytes"},
			CheckOK, CheckOK, CheckOK, "hybrid", ""},
		{"v1 without swap accounting", cgroupInfo{mode: CgroupV1, controllers: all, swapFile: "memory.memsw.limit_in_bytes"},
			CheckOK, CheckWarn, CheckOK, "cgroup v1", "swapaccount=1"},
		{"v2 without pids", cgroupInfo{mode: CgroupV2, controllers: map[string]bool{"memory": true, "cpu": true}, swap: true, swapFile: "memory.swap.max"},
			CheckFail, CheckOK, CheckFail, "pids", ""},
		{"none", cgroupInfo{mode: CgroupUnknown}, CheckFail, CheckWarn, CheckFail, "no cgroup", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, s, p := tt.ci.modeCheck(), tt.ci.swapCheck(), tt.ci.pidsCheck()
			if m.Status != tt.mode || !strings.Contains(m.Detail, tt.modeDetail) {
				t.Errorf("modeCheck(%+v) = %s %q, want %s containing %q", tt.ci, m.Status, m.Detail, tt.mode, tt.modeDetail)
			}
			if s.Status != tt.swap || !strings.Contains(s.Fix, tt.swapFixed) {
				t.Errorf("swapCheck(%+v) = %s %q fix %q, want %s, fix containing %q", tt.ci, s.Status, s.Detail, s.Fix, tt.swap, tt.swapFixed)
			}
			if p.Status != tt.pids {
				t.Errorf("pidsCheck(%+v) = %s %q, want %s", tt.ci, p.Status, p.Detail, tt.pids)
			}
		})
	}
}

func TestParseProcCgroups(t *testing.T) {
	in := "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t3\t1\t1\nmemory\t5\t90\t1\npids\t0\t1\t0\nbad line\n"
	got := parseProcCgroups([]byte(in))
	want := map[string]bool{"cpuset": true, "memory": true}
	if len(got) != len(want) || !got["cpuset"] || !got["memory"] {
		t.Errorf("parseProcCgroups(%q) = %v, want %v", in, got, want)
	}
}

func TestParseSeccompStatus(t *testing.T) {
	tests := []struct {
		name   string
		status string
		mode   int
		ok     bool
	}{
		{"not filtered", "Name:\tcat\nNoNewPrivs:\t0\nSeccomp:\t0\nSeccomp_filters:\t0\n", 0, true},
		{"in a filter", "Seccomp:\t2\nSeccomp_filters:\t1\n", 2, true},
		{"no seccomp in the kernel", "Name:\tcat\nNoNewPrivs:\t0\n", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mode, ok := parseSeccompStatus([]byte(tt.status))
			if mode != tt.mode || ok != tt.ok {
				t.Errorf("parseSeccompStatus(%q) = %d, %v, want %d, %v", tt.status, mode, ok, tt.mode, tt.ok)
			}
		})
	}
}

func TestParseRuncVersionOutput(t *testing.T) {
	tests := []struct {
		out, version, libseccomp string
	}{
		{"runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\ngo: go1.19.8\nlibseccomp: 2.5.4\n", "1.1.5+ds1", "2.5.4"},
		{"runc version 1.2.8\ncommit: v1.2.8-0-g1234\nspec: 1.2.0\n", "1.2.8", ""},
		{"crun version 1.8.1\n", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			v, l := parseRuncVersionOutput([]byte(tt.out))
			if v != tt.version || l != tt.libseccomp {
				t.Errorf("parseRuncVersionOutput(%q) = %q, %q, want %q, %q", tt.out, v, l, tt.version, tt.libseccomp)
			}
		})
	}
}

func TestReadChangelogCVEs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "changelog.Debian.gz")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	zw.Write([]byte("runc (1.1.5+ds1-1+deb12u1) bookworm-security; urgency=high\n\n  * CVE-2024-21626: breakouts\n  * CVE-2023-25809, CVE-2023-27561\n"))
	zw.Close()
	f.Close()
	got := readChangelogCVEs(p)
	for _, id := range []string{"CVE-2024-21626", "CVE-2023-25809", "CVE-2023-27561"} {
		if !got[id] {
			t.Errorf("readChangelogCVEs: %s missing from %v", id, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("readChangelogCVEs = %v, want 3 ids", got)
	}
	if got := readChangelogCVEs(filepath.Join(t.TempDir(), "none.gz")); got != nil {
		t.Errorf("readChangelogCVEs(missing file) = %v, want nil", got)
	}
}

func TestDescribeSeccomp(t *testing.T) {
	policy, err := policySpec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := describeSeccomp(policy); !ok || !strings.Contains(d, "SCMP_ACT_ERRNO") || !strings.Contains(d, "ptrace") {
		t.Errorf("describeSeccomp(policy) = %q, %v; want ok naming the default action and the denied syscalls", d, ok)
	}
	noSeccomp := &oci.Spec{Linux: &specs.Linux{}}
	if d, ok := describeSeccomp(noSeccomp); ok {
		t.Errorf("describeSeccomp(no profile) = %q, ok; want not ok", d)
	}
	ptrace := &oci.Spec{Linux: &specs.Linux{Seccomp: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"read", "ptrace"}, Action: specs.ActAllow}}}}}
	if d, ok := describeSeccomp(ptrace); ok || !strings.Contains(d, "ptrace") {
		t.Errorf("describeSeccomp(allows ptrace) = %q, %v; want not ok naming ptrace", d, ok)
	}
}

// TestCheckUserNamespaces: the doctor's line says whether sites can have
// user namespaces and, when not, why.
func TestCheckUserNamespaces(t *testing.T) {
	if c := checkUserNamespaces(nil); c.Status != CheckOK || !strings.Contains(c.Detail, "per-site user namespaces are available") || c.Fix != "" {
		t.Errorf("checkUserNamespaces(nil) = %s %q fix %q, want OK saying they are available", c.Status, c.Detail, c.Fix)
	}
	why := errors.New("the kernel forbids user namespaces: /proc/sys/user/max_user_namespaces is 0")
	c := checkUserNamespaces(why)
	if c.Status != CheckWarn || !strings.Contains(c.Detail, "not available here: "+why.Error()) || c.Fix == "" {
		t.Errorf("checkUserNamespaces(%v) = %s %q fix %q, want WARN naming the reason, with a fix", why, c.Status, c.Detail, c.Fix)
	}
}

// TestDoctor runs every probe against the shared private containerd.
func TestDoctor(t *testing.T) {
	m := manager(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := m.Client().Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checks := Doctor(ctx, DoctorConfig{
		Address:  testEnv.daemon.Address(),
		DataDir:  t.TempDir(),
		Launcher: testEnv.launcher,
		Images:   map[string]string{"busybox": testEnv.image, "nosuch": "cgibox.local/nosuch:latest"},
	})
	byName := map[string]Check{}
	for _, c := range checks {
		t.Logf("%-4s %s: %s", c.Status, c.Name, c.Detail)
		byName[c.Name] = c
	}
	want := []struct {
		name, status, detail, fix string
	}{
		{"root", CheckOK, "root", ""},
		{"containerd", CheckOK, "containerd " + v.Version, ""},
		{"runtime", CheckOK, "runc ", ""},
		{"launcher", CheckOK, testEnv.launcher, ""},
		{"seccomp (cgibox)", CheckOK, "in force", ""},
		{"user namespaces", CheckOK, "per-site user namespaces are available", ""},
		{"image busybox", CheckOK, testEnv.image, ""},
		{"image nosuch", CheckWarn, "missing", "cgibox image build nosuch"},
	}
	for _, w := range want {
		c, ok := byName[w.name]
		if !ok {
			t.Errorf("no check %q in %v", w.name, checks)
			continue
		}
		if c.Status != w.status || !strings.Contains(c.Detail, w.detail) || c.Fix != w.fix {
			t.Errorf("check %q = %s %q fix %q, want %s, detail containing %q, fix %q", w.name, c.Status, c.Detail, c.Fix, w.status, w.detail, w.fix)
		}
	}
	for _, c := range checks {
		if c.Status == CheckFail {
			t.Errorf("check %q failed on the test host: %s (fix: %s)", c.Name, c.Detail, c.Fix)
		}
	}
}

// TestDoctorUnreachable: a socket nobody answers fails the containerd
// check with a fix, and the images are reported as not checked.
func TestDoctorUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr := filepath.Join(t.TempDir(), "none.sock")
	checks := Doctor(ctx, DoctorConfig{Address: addr, DataDir: t.TempDir(), Images: map[string]string{"busybox": "cgibox.local/busybox:latest"}})
	var sawContainerd, sawImage bool
	for _, c := range checks {
		switch c.Name {
		case "containerd":
			sawContainerd = true
			if c.Status != CheckFail || !strings.Contains(c.Fix, addr) {
				t.Errorf("containerd check with %s = %s %q fix %q, want FAIL with a fix naming the socket", addr, c.Status, c.Detail, c.Fix)
			}
		case "image busybox":
			sawImage = true
			if c.Status != CheckWarn || !strings.Contains(c.Detail, "not checked") || c.Fix != "" {
				t.Errorf("image check without containerd = %s %q, want WARN not checked and no fix (%q)", c.Status, c.Detail, c.Fix)
			}
		}
	}
	if !sawContainerd || !sawImage {
		t.Errorf("checks %v lack the containerd or image check", checks)
	}
}
