package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// The integration tests of a site's data directory (Job.DataDir) and of
// its user namespace (Job.Users), against the shared containerd.

// shape is one of the two kinds of container a site's job gets: as the
// host's nobody, or in a user namespace of its own.
type shape struct {
	name  string
	users *UserRange
}

func shapes() []shape {
	u := SiteUsers("shape.example")
	return []shape{{"host nobody", nil}, {"user namespace", &u}}
}

// writer is the host uid (and gid) of a shape's script.
func (s shape) writer() uint32 {
	if s.users == nil {
		return nobody
	}
	return s.users.Nobody
}

// dataDir makes a site's data directory, owned by the host id its
// scripts write as, mode 0700.
func dataDir(t *testing.T, owner uint32) string {
	t.Helper()
	return hostDir(t, owner, 0o700)
}

// fileOwner is the host uid and gid of path.
func fileOwner(t *testing.T, path string) (uid, gid uint32) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}

// rwMounts prints the mount points that are mounted read-write.
const rwMounts = "while read -r _ _ _ _ mp opts _; do case $opts in rw*) echo \"rw $mp\";; esac; done < /proc/self/mountinfo\n"

// TestRunDataDir: a job's data directory is writable at /data, files
// written there are the host user's the script runs as, and nothing in it
// runs (noexec, nosuid, nodev); it is the only writable place it adds. A
// job without one has no /data.
func TestRunDataDir(t *testing.T) {
	manager(t)
	script := `#!/bin/sh
echo hello > /data/out && echo "wrote /data/out"
for p in /x /bin/x /etc/x /www/cgi-bin/x /.cgibox/x; do touch $p 2>&1; done
touch /tmp/x && echo "wrote /tmp/x"
printf '#!/bin/sh\necho ran\n' > /data/run.sh && chmod 700 /data/run.sh && { /data/run.sh 2>/dev/null; echo "exec /data/run.sh: $?"; }
cp /bin/busybox /data/bb && chmod 755 /data/bb && { /data/bb echo ran 2>/dev/null; echo "exec /data/bb: $?"; }
grep ' /data ' /proc/self/mountinfo | cut -d' ' -f6 | sed 's/^/options /'
` + rwMounts
	for _, sh := range shapes() {
		t.Run(sh.name, func(t *testing.T) {
			job := scriptJob(t, script)
			job.Users = sh.users
			job.DataDir = dataDir(t, sh.writer())
			res, out, errOut, err := run(t, testContext(t), job)
			if err != nil || res.Reason != Exited {
				t.Fatalf("Run = %+v, %v; stderr %q", res, err, errOut)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			for _, want := range []string{
				"wrote /data/out",
				"touch: /x: Read-only file system",
				"touch: /bin/x: Read-only file system",
				"touch: /etc/x: Read-only file system",
				"touch: /www/cgi-bin/x: Read-only file system",
				"touch: /.cgibox/x: Read-only file system",
				"wrote /tmp/x",
				// 126: found but not executable (noexec).
				"exec /data/run.sh: 126",
				"exec /data/bb: 126",
			} {
				if !slices.Contains(lines, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if slices.Contains(lines, "ran") {
				t.Errorf("a program in /data ran:\n%s", out)
			}
			var options string
			for _, l := range lines {
				if o, ok := strings.CutPrefix(l, "options "); ok {
					options = o
				}
			}
			for _, o := range []string{"rw", "nosuid", "nodev", "noexec"} {
				if !slices.Contains(strings.Split(options, ","), o) {
					t.Errorf("/data mounted with %q, want %s among them", options, o)
				}
			}
			b, err := os.ReadFile(filepath.Join(job.DataDir, "out"))
			if err != nil || string(b) != "hello\n" {
				t.Errorf("host reads /data/out as %q, %v; want hello", b, err)
			}
			if uid, gid := fileOwner(t, filepath.Join(job.DataDir, "out")); uid != sh.writer() || gid != sh.writer() {
				t.Errorf("/data/out is host %d:%d, want %d:%d", uid, gid, sh.writer(), sh.writer())
			}

			// The same job without a data directory: no /data, and the
			// read-write mounts are those of the job with one, less /data.
			bare := scriptJob(t, "#!/bin/sh\ntest -e /data && echo \"/data exists\"\ngrep ' /data ' /proc/self/mountinfo\n"+rwMounts)
			bare.Users = sh.users
			res, bareOut, errOut, err := run(t, testContext(t), bare)
			if err != nil || res.Reason != Exited {
				t.Fatalf("job without a data dir: Run = %+v, %v; stderr %q", res, err, errOut)
			}
			if strings.Contains(bareOut, "/data") {
				t.Errorf("job without a data dir sees /data:\n%s", bareOut)
			}
			rw := func(s string) []string {
				var out []string
				for l := range strings.Lines(s) {
					if strings.HasPrefix(l, "rw ") {
						out = append(out, strings.TrimSpace(l))
					}
				}
				slices.Sort(out)
				return out
			}
			want := append(rw(bareOut), "rw "+DataMountPoint)
			slices.Sort(want)
			if got := rw(out); !slices.Equal(got, want) {
				t.Errorf("read-write mounts with a data dir = %v, want those without one and /data: %v", got, want)
			}
		})
	}
}

// TestRunUserNamespaces: the jobs of two sites run as nobody inside, each
// in a user namespace that maps root and nobody to the site's own host ids,
// and what each writes to its data directory is its own host user's.
func TestRunUserNamespaces(t *testing.T) {
	m := manager(t)
	if err := m.UserNamespaces(); err != nil {
		t.Fatalf("UserNamespaces() = %v on the test host", err)
	}
	script := "#!/bin/sh\nid -u; id -g\ncat /proc/self/uid_map /proc/self/gid_map\ntouch /data/mine\n"
	owners := map[string]uint32{}
	for _, site := range []string{"a", "b"} {
		u := SiteUsers(site)
		job := scriptJob(t, script)
		job.Site = site
		job.Users = &u
		job.DataDir = dataDir(t, u.Nobody)
		res, out, errOut, err := run(t, testContext(t), job)
		if err != nil || res.Reason != Exited || res.ExitCode != 0 {
			t.Fatalf("site %s: Run = %+v, %v; stderr %q", site, res, err, errOut)
		}
		var got [][]string
		for l := range strings.Lines(out) {
			got = append(got, strings.Fields(l))
		}
		mapping := []string{"0", fmt.Sprint(u.Root), "1", "65534", fmt.Sprint(u.Nobody), "1"}
		want := [][]string{{"65534"}, {"65534"}, mapping[:3], mapping[3:], mapping[:3], mapping[3:]}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("site %s (users %+v): id -u, id -g, uid_map and gid_map = %q, want %q", site, u, out, want)
		}
		uid, gid := fileOwner(t, filepath.Join(job.DataDir, "mine"))
		if uid != u.Nobody || gid != u.Nobody {
			t.Errorf("site %s: /data/mine is host %d:%d, want the site's nobody %d:%d", site, uid, gid, u.Nobody, u.Nobody)
		}
		owners[site] = uid
	}
	if owners["a"] == owners["b"] || owners["a"] == nobody {
		t.Errorf("sites a and b wrote as host uids %d and %d; want two different ids, neither the host's nobody", owners["a"], owners["b"])
	}
}

// TestRunUserNamespaceIsNotHostNobody: in its user namespace a script is
// no longer the host's nobody, so a file only the host's nobody may read
// (another site's, without a namespace) is closed to it.
func TestRunUserNamespaceIsNotHostNobody(t *testing.T) {
	manager(t)
	for _, sh := range shapes() {
		t.Run(sh.name, func(t *testing.T) {
			job := scriptJob(t, "#!/bin/sh\ncat /www/cgi-bin/secret 2>&1\n")
			secret := filepath.Join(job.ScriptDir, "secret")
			if err := os.WriteFile(secret, []byte("nobody's\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(secret, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			job.Users = sh.users
			_, out, errOut, err := run(t, testContext(t), job)
			if err != nil {
				t.Fatalf("Run: %v (stderr %q)", err, errOut)
			}
			want := "nobody's\n" // the host's nobody reads its own file
			if sh.users != nil {
				want = "cat: can't open '/www/cgi-bin/secret': Permission denied\n"
			}
			if out != want {
				t.Errorf("reading a mode 0600 file of host uid 65534 printed %q, want %q", out, want)
			}
		})
	}
}

// TestRunUserNamespaceUnavailable: where user namespaces cannot be used, a
// job that asks for one fails before anything starts, saying why; it is
// never run without it.
func TestRunUserNamespaceUnavailable(t *testing.T) {
	manager(t) // root, the shared daemon, and the empty-namespace check
	m, err := New(testContext(t), WithAddress(testEnv.daemon.Address()), WithDataDir(t.TempDir()),
		WithLauncher(testEnv.launcher), WithInstance(jobID(t)), WithoutStartupSweep())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	why := errors.New("the kernel forbids user namespaces: /proc/sys/user/max_user_namespaces is 0")
	m.userns = why
	job := scriptJob(t, "#!/bin/sh\nid -u\n")
	u := SiteUsers("a")
	job.Users = &u
	started := false
	job.Started = func() { started = true }
	res, err := m.Run(testContext(t), job)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, why) || !strings.Contains(err.Error(), why.Error()) || started || res.Container != "" {
		t.Errorf("Run with Users where they are unavailable = %+v, %v (started %v); want ErrUnavailable naming %q before anything started",
			res, err, started, why)
	}
	// A job without Users still runs there.
	job = scriptJob(t, "#!/bin/sh\nid -u\n")
	if res, err := m.Run(testContext(t), job); err != nil || res.ExitCode != 0 {
		t.Errorf("Run without Users = %+v, %v; want it to run", res, err)
	}
}

// TestRunRejectsBadSiteJobs: data directories and user ranges that cannot
// be honoured are refused before anything starts.
func TestRunRejectsBadSiteJobs(t *testing.T) {
	m := manager(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(*Job)
	}{
		{"relative data dir", func(j *Job) { j.DataDir = "data" }},
		{"missing data dir", func(j *Job) { j.DataDir = "/nonexistent/data" }},
		{"data dir is a file", func(j *Job) { j.DataDir = file }},
		{"mount point at /data", func(j *Job) {
			j.DataDir, j.MountPoint, j.Path, j.Dir = t.TempDir(), "/data", "/data/s.sh", "/data"
		}},
		{"mount point below /data", func(j *Job) {
			j.DataDir, j.MountPoint, j.Path, j.Dir = t.TempDir(), "/data/cgi-bin", "/data/cgi-bin/s.sh", "/data/cgi-bin"
		}},
		{"users mapping host root", func(j *Job) { j.Users = &UserRange{Root: 0, Nobody: 1} }},
		{"users mapping host nobody", func(j *Job) { j.Users = &UserRange{Root: 65533, Nobody: 65534} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := scriptJob(t, "#!/bin/sh\n")
			tt.edit(&job)
			job.Started = func() { t.Error("Started called for an invalid job") }
			if _, err := m.Run(testContext(t), job); err == nil || errors.Is(err, ErrUnavailable) {
				t.Errorf("Run(%s) = %v, want a plain error", tt.name, err)
			}
		})
	}
}
