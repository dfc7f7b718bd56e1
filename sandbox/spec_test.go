package sandbox

import (
	"context"
	"encoding/json"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// testSpec builds the policy with no daemon.
func testSpec(t *testing.T, l Limits) *oci.Spec {
	t.Helper()
	return testSpecOf(t, testConfig(l))
}

// testConfig is the configuration testSpec builds the policy for.
func testConfig(l Limits) specConfig {
	return specConfig{
		Launcher:   "/usr/local/bin/cgibox",
		ScriptDir:  "/srv/site/cgi-bin",
		MountPoint: "/www/cgi-bin",
		Limits:     l.withDefaults(DefaultLimits()),
	}
}

// testSpecOf builds the policy for c with no daemon.
func testSpecOf(t *testing.T, c specConfig) *oci.Spec {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), Namespace)
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "cgibox-req1"}, hardenedSpec(c))
	if err != nil {
		t.Fatalf("GenerateSpec(%+v): %v", c, err)
	}
	return s
}

func TestSpecProcess(t *testing.T) {
	s := testSpec(t, Limits{})
	p := s.Process
	if p == nil {
		t.Fatal("no process")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"args", p.Args, []string{LauncherPath, LaunchCommand}},
		{"env", p.Env, []string{ScriptPATH}},
		{"cwd", p.Cwd, "/"},
		{"terminal", p.Terminal, false},
		{"uid", p.User.UID, uint32(65534)},
		{"gid", p.User.GID, uint32(65534)},
		{"additional gids", p.User.AdditionalGids, []uint32{65534}},
		{"umask", derefU32(p.User.Umask), uint32(0o077)},
		{"username", p.User.Username, ""},
		{"noNewPrivileges", p.NoNewPrivileges, true},
		{"apparmor", p.ApparmorProfile, ""},
		{"console size", p.ConsoleSize == nil, true},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !jsonEqual(c.got, c.want) {
				t.Errorf("process %s = %v, want %v", c.name, c.got, c.want)
			}
		})
	}
	t.Run("capabilities", func(t *testing.T) {
		c := p.Capabilities
		if c == nil {
			t.Fatal("capabilities nil: the runtime would pick its own")
		}
		for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective,
			"inheritable": c.Inheritable, "permitted": c.Permitted, "ambient": c.Ambient} {
			if len(set) != 0 {
				t.Errorf("%s capabilities = %v, want none", name, set)
			}
		}
	})
}

func TestSpecRlimits(t *testing.T) {
	l := Limits{Wall: 10 * time.Second, KillGrace: 500 * time.Millisecond, NoFile: 100, FileSize: 1 << 20}
	s := testSpec(t, l)
	want := map[string][2]uint64{
		"RLIMIT_NOFILE": {100, 100},
		"RLIMIT_CORE":   {0, 0},
		"RLIMIT_FSIZE":  {1 << 20, 1 << 20},
		"RLIMIT_CPU":    {12, 13}, // above wall+grace (10.5 s)
	}
	got := map[string][2]uint64{}
	for _, r := range s.Process.Rlimits {
		got[r.Type] = [2]uint64{r.Soft, r.Hard}
	}
	if !jsonEqual(got, want) {
		t.Errorf("rlimits (limits %+v) = %v, want %v", l, got, want)
	}
	if cpu := got["RLIMIT_CPU"][0]; time.Duration(cpu)*time.Second <= l.Wall+l.KillGrace {
		t.Errorf("RLIMIT_CPU %d s is not above the deadline %v", cpu, l.Wall+l.KillGrace)
	}
}

func TestSpecRootAndMounts(t *testing.T) {
	s := testSpec(t, Limits{Tmp: 1 << 20})
	if s.Root == nil || !s.Root.Readonly || s.Root.Path != "rootfs" {
		t.Errorf("root = %+v, want read-only rootfs", s.Root)
	}
	if s.Hostname != "cgibox" {
		t.Errorf("hostname = %q, want cgibox (not the host's)", s.Hostname)
	}
	want := map[string]struct {
		typ, source string
		options     []string
	}{
		"/proc":           {"proc", "proc", []string{"nosuid", "noexec", "nodev"}},
		"/dev":            {"tmpfs", "tmpfs", []string{"nosuid", "noexec", "strictatime", "mode=755", "size=64k"}},
		"/dev/shm":        {"tmpfs", "shm", []string{"nosuid", "noexec", "nodev", "mode=1777", "size=4194304"}},
		"/tmp":            {"tmpfs", "tmpfs", []string{"nosuid", "nodev", "mode=1777", "size=1048576"}},
		"/www/cgi-bin":    {"bind", "/srv/site/cgi-bin", []string{"bind", "ro", "nosuid", "nodev"}},
		"/.cgibox/cgibox": {"bind", "/usr/local/bin/cgibox", []string{"bind", "ro", "nosuid", "nodev"}},
	}
	got := map[string]specs.Mount{}
	for _, m := range s.Mounts {
		if _, dup := got[m.Destination]; dup {
			t.Errorf("mount %s twice", m.Destination)
		}
		got[m.Destination] = m
	}
	for dest, w := range want {
		t.Run(dest, func(t *testing.T) {
			m, ok := got[dest]
			if !ok {
				t.Fatalf("no mount at %s", dest)
			}
			if m.Type != w.typ || m.Source != w.source || !slices.Equal(m.Options, w.options) {
				t.Errorf("mount %s = %s %s %v, want %s %s %v", dest, m.Type, m.Source, m.Options, w.typ, w.source, w.options)
			}
		})
	}
	for dest, m := range got {
		if _, ok := want[dest]; !ok {
			t.Errorf("unexpected mount %s (%s)", dest, m.Type)
		}
		if !slices.Contains(m.Options, "nosuid") {
			t.Errorf("mount %s lacks nosuid", dest)
		}
		if dest != "/dev" && !slices.Contains(m.Options, "nodev") {
			t.Errorf("mount %s lacks nodev", dest)
		}
		if slices.Contains(m.Options, "rbind") || m.Type == "sysfs" || m.Type == "cgroup" || m.Type == "cgroup2" {
			t.Errorf("mount %s: %s %v is not allowed", dest, m.Type, m.Options)
		}
	}
}

func TestSpecMaskedAndReadonlyPaths(t *testing.T) {
	s := testSpec(t, Limits{})
	masked := []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
		"/sys/devices/virtual/powercap"}
	for _, p := range masked {
		if !slices.Contains(s.Linux.MaskedPaths, p) {
			t.Errorf("masked paths %v lack %s", s.Linux.MaskedPaths, p)
		}
	}
	ro := []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
	for _, p := range ro {
		if !slices.Contains(s.Linux.ReadonlyPaths, p) {
			t.Errorf("read-only paths %v lack %s", s.Linux.ReadonlyPaths, p)
		}
	}
}

func TestSpecNamespaces(t *testing.T) {
	s := testSpec(t, Limits{})
	var got []string
	for _, ns := range s.Linux.Namespaces {
		if ns.Path != "" {
			t.Errorf("namespace %s joins %s; want a fresh one", ns.Type, ns.Path)
		}
		got = append(got, string(ns.Type))
	}
	slices.Sort(got)
	want := []string{"cgroup", "ipc", "mount", "network", "pid", "uts"}
	if !slices.Equal(got, want) {
		t.Errorf("namespaces = %v, want %v", got, want)
	}
}

func TestSpecResources(t *testing.T) {
	l := Limits{Memory: 64 << 20, CPU: 0.25, Pids: 10}
	s := testSpec(t, l)
	r := s.Linux.Resources
	if r == nil || r.Memory == nil || r.CPU == nil || r.Pids == nil {
		t.Fatalf("resources = %+v: memory, cpu and pids must be set", r)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"memory limit", derefI64(r.Memory.Limit), int64(64 << 20)},
		{"memory+swap (no swap)", derefI64(r.Memory.Swap), int64(64 << 20)},
		{"cpu quota", derefI64(r.CPU.Quota), int64(25000)},
		{"cpu period", derefU64(r.CPU.Period), uint64(100000)},
		{"pids", r.Pids.Limit, int64(10)},
		{"cgroups path", s.Linux.CgroupsPath, "/cgibox/cgibox-req1"},
		{"sysctl", len(s.Linux.Sysctl), 0},
		{"hooks", s.Hooks == nil, true},
		{"annotations", len(s.Annotations), 0},
		{"uid mappings", len(s.Linux.UIDMappings), 0},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !jsonEqual(c.got, c.want) {
				t.Errorf("%s (limits %+v) = %v, want %v", c.name, l, c.got, c.want)
			}
		})
	}
}

func TestSpecDevices(t *testing.T) {
	s := testSpec(t, Limits{})
	want := map[string][2]int64{
		"/dev/null": {1, 3}, "/dev/zero": {1, 5}, "/dev/full": {1, 7},
		"/dev/random": {1, 8}, "/dev/urandom": {1, 9}, "/dev/tty": {5, 0},
	}
	got := map[string][2]int64{}
	for _, d := range s.Linux.Devices {
		if d.Type != "c" || d.FileMode == nil || *d.FileMode != fs.FileMode(0o666) {
			t.Errorf("device %s: type %s mode %v, want c 0666", d.Path, d.Type, d.FileMode)
		}
		got[d.Path] = [2]int64{d.Major, d.Minor}
	}
	if !jsonEqual(got, want) {
		t.Errorf("devices = %v, want %v", got, want)
	}
	rules := s.Linux.Resources.Devices
	if len(rules) == 0 || rules[0].Allow || rules[0].Access != "rwm" || rules[0].Type != "" && rules[0].Type != "a" ||
		rules[0].Major != nil || rules[0].Minor != nil {
		t.Fatalf("first device rule = %+v, want deny all rwm", rules)
	}
	allowed := map[[2]int64]bool{}
	for _, r := range rules[1:] {
		if !r.Allow || r.Type != "c" || r.Major == nil || r.Minor == nil {
			t.Errorf("device rule %+v: want an allow rule for one character device", r)
			continue
		}
		allowed[[2]int64{*r.Major, *r.Minor}] = true
	}
	if len(allowed) != len(want) {
		t.Errorf("device cgroup allows %v, want exactly %v", allowed, want)
	}
	for p, mm := range want {
		if !allowed[mm] {
			t.Errorf("device cgroup does not allow %s %v", p, mm)
		}
	}
}

func TestSpecSeccomp(t *testing.T) {
	s := testSpec(t, Limits{})
	sc := s.Linux.Seccomp
	if sc == nil {
		t.Fatal("no seccomp profile")
	}
	if sc.DefaultAction == specs.ActAllow {
		t.Errorf("seccomp default action is allow")
	}
	if len(sc.Syscalls) < 10 {
		t.Errorf("seccomp profile has %d rules; want the default allowlist", len(sc.Syscalls))
	}
	// The native ABI only: no 32-bit system calls (and a filter a third
	// the size to compile).
	if want := nativeArch(); want != nil && !slices.Equal(sc.Architectures, want) {
		t.Errorf("seccomp architectures %v, want only %v", sc.Architectures, want)
	}
	denied := []string{"io_uring_setup", "io_uring_enter", "keyctl", "bpf", "ptrace", "mount", "unshare",
		"perf_event_open", "userfaultfd", "setns"}
	for _, name := range denied {
		for _, rule := range sc.Syscalls {
			if rule.Action == specs.ActAllow && slices.Contains(rule.Names, name) {
				t.Errorf("seccomp allows %s (rule args %v)", name, rule.Args)
			}
		}
	}
	// A few syscalls every script needs must stay.
	for _, name := range []string{"read", "write", "execve", "clone", "exit_group"} {
		found := false
		for _, rule := range sc.Syscalls {
			found = found || rule.Action == specs.ActAllow && slices.Contains(rule.Names, name)
		}
		if !found {
			t.Errorf("seccomp does not allow %s", name)
		}
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func derefU32(p *uint32) any {
	if p == nil {
		return nil
	}
	return *p
}

func derefI64(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func derefU64(p *uint64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestSpecDataDir: a data directory is one more mount, a plain bind,
// writable but nosuid, nodev and noexec; everything else stays as it was.
func TestSpecDataDir(t *testing.T) {
	without := testSpec(t, Limits{})
	c := testConfig(Limits{})
	c.DataDir = "/srv/site/data"
	with := testSpecOf(t, c)
	if len(with.Mounts) != len(without.Mounts)+1 {
		t.Fatalf("mounts with a data dir: %d, want the %d without it and one more", len(with.Mounts), len(without.Mounts))
	}
	for i, m := range without.Mounts {
		if !jsonEqual(with.Mounts[i], m) {
			t.Errorf("mount %d with a data dir = %+v, want it as without one: %+v", i, with.Mounts[i], m)
		}
	}
	got := with.Mounts[len(with.Mounts)-1]
	want := specs.Mount{Destination: DataMountPoint, Type: "bind", Source: "/srv/site/data",
		Options: []string{"bind", "rw", "nosuid", "nodev", "noexec"}}
	if !jsonEqual(got, want) {
		t.Errorf("data mount = %+v, want %+v", got, want)
	}
	for _, m := range without.Mounts {
		if m.Destination == DataMountPoint {
			t.Errorf("mount at %s without a data dir: %+v", DataMountPoint, m)
		}
	}
	// The root stays read-only: /data is a writable mount on it, not a
	// writable root.
	if !with.Root.Readonly {
		t.Errorf("root not read-only with a data dir")
	}
}

// TestSpecUserNamespace: with Users the spec gains a user namespace with
// exactly two mappings, uid and gid alike; everything else is the spec
// without it. Without Users there is no user namespace at all.
func TestSpecUserNamespace(t *testing.T) {
	without := testSpec(t, Limits{})
	if usesUserns(without) || without.Linux.UIDMappings != nil || without.Linux.GIDMappings != nil {
		t.Errorf("spec without Users: namespaces %v, uid mappings %v, gid mappings %v; want no user namespace",
			without.Linux.Namespaces, without.Linux.UIDMappings, without.Linux.GIDMappings)
	}
	u := SiteUsers("a.example")
	c := testConfig(Limits{})
	c.Users = &u
	with := testSpecOf(t, c)
	if !usesUserns(with) {
		t.Fatalf("spec with Users: namespaces %v, want a user namespace", with.Linux.Namespaces)
	}
	want := []specs.LinuxIDMapping{
		{ContainerID: 0, HostID: u.Root, Size: 1},
		{ContainerID: 65534, HostID: u.Nobody, Size: 1},
	}
	if !jsonEqual(with.Linux.UIDMappings, want) || !jsonEqual(with.Linux.GIDMappings, want) {
		t.Errorf("mappings for %+v: uid %v, gid %v; want both %v", u, with.Linux.UIDMappings, with.Linux.GIDMappings, want)
	}
	for _, ns := range with.Linux.Namespaces {
		if ns.Path != "" {
			t.Errorf("namespace %s joins %s; want a fresh one", ns.Type, ns.Path)
		}
	}
	// The rest is the spec without Users: the same identity, privileges,
	// mounts, devices, limits and seccomp.
	rest := *with
	restLinux := *with.Linux
	rest.Linux = &restLinux
	rest.Linux.UIDMappings, rest.Linux.GIDMappings = nil, nil
	rest.Linux.Namespaces = slices.DeleteFunc(slices.Clone(rest.Linux.Namespaces), func(n specs.LinuxNamespace) bool {
		return n.Type == specs.UserNamespace
	})
	if !jsonEqual(&rest, without) {
		x, _ := json.Marshal(&rest)
		y, _ := json.Marshal(without)
		t.Errorf("spec with Users, less its user namespace and mappings:\n%s\nwant the spec without Users:\n%s", x, y)
	}
}

func TestSpecRefusesBadUserRange(t *testing.T) {
	for _, u := range []UserRange{{Root: 0, Nobody: 1}, {Root: 65533, Nobody: 65534}, {Root: 7, Nobody: 7}} {
		c := testConfig(Limits{})
		c.Users = &u
		ctx := namespaces.WithNamespace(context.Background(), Namespace)
		if _, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "cgibox-req1"}, hardenedSpec(c)); err == nil {
			t.Errorf("GenerateSpec with users %+v succeeded; want Check's refusal", u)
		}
	}
}

func usesUserns(s *oci.Spec) bool {
	return slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.UserNamespace })
}
