package procmem

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeProcess is one process of a fake /proc.
type fakeProcess struct {
	pid, ppid int
	argv      []string
	rss, pss  int64
}

// fakeProc writes a /proc holding procs: status, smaps_rollup, cmdline.
func fakeProc(t *testing.T, procs []fakeProcess) Root {
	t.Helper()
	root := t.TempDir()
	for _, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(p.pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		status := "Name:\t" + filepath.Base(p.argv[0]) + "\nPPid:\t" + strconv.Itoa(p.ppid) +
			"\nVmRSS:\t   " + strconv.FormatInt(p.rss, 10) + " kB\n"
		rollup := "Rss: " + strconv.FormatInt(p.rss, 10) + " kB\nPss:  " + strconv.FormatInt(p.pss, 10) + " kB\n"
		for name, data := range map[string]string{
			"status": status, "smaps_rollup": rollup, "cmdline": strings.Join(p.argv, "\x00") + "\x00",
		} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return Root(root)
}

func TestShims(t *testing.T) {
	const sock = "/tmp/b/data/containerd.sock"
	r := fakeProc(t, []fakeProcess{
		{pid: 1, ppid: 0, argv: []string{"/sbin/init"}, rss: 10},
		{pid: 100, ppid: 1, argv: []string{"/usr/bin/containerd-shim-runc-v2", "-namespace", "cgibox", "-id", "a", "-address", sock}, rss: 9000, pss: 4000},
		{pid: 101, ppid: 100, argv: []string{"/cgibox", "launch"}, rss: 3000, pss: 2500},
		{pid: 102, ppid: 101, argv: []string{"/bin/sh"}, rss: 500, pss: 100},
		// Another containerd's shim (Docker's): not ours.
		{pid: 200, ppid: 1, argv: []string{"/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", "b", "-address", "/var/run/docker/containerd/containerd.sock"}, rss: 9000},
		{pid: 201, ppid: 200, argv: []string{"nginx"}, rss: 3000},
	})
	shims, err := r.Shims(sock)
	if err != nil {
		t.Fatal(err)
	}
	if len(shims) != 1 || shims[0].PID != 100 {
		t.Fatalf("Shims = %+v, want the one shim of pid 100", shims)
	}
	s := shims[0]
	if s.RssKiB != 9000 || s.PssKiB != 4000 || s.Comm != "containerd-shim-runc-v2" {
		t.Errorf("shim usage %+v, want rss 9000, pss 4000", s.Usage)
	}
	var rss int64
	for _, c := range s.Children {
		rss += c.RssKiB
	}
	if len(s.Children) != 2 || rss != 3500 || s.Containers != 1 {
		t.Errorf("children %+v, want the launcher and its sh, 3500 kB in all, one container", s.Children)
	}
}

func TestOfSelf(t *testing.T) {
	u, err := Proc.Of(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.RssKiB <= 0 || u.Comm == "" {
		t.Errorf("Of(self) = %+v, want a resident size and a name", u)
	}
}

func TestKiB(t *testing.T) {
	for in, want := range map[string]int64{"1234 kB": 1234, "  7 kB": 7} {
		if got, err := kib(in); err != nil || got != want {
			t.Errorf("kib(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "12", "12 MB", "x kB"} {
		if _, err := kib(in); err == nil {
			t.Errorf("kib(%q): no error", in)
		}
	}
}

func TestSummarize(t *testing.T) {
	shims := []Shim{
		{Usage: Usage{RssKiB: 9000, PssKiB: 4000}, Containers: 1, Children: []Usage{{RssKiB: 3000, PssKiB: 2000}}},
		// A shared shim with two containers.
		{Usage: Usage{RssKiB: 10000, PssKiB: 5000}, Containers: 2, Children: []Usage{{RssKiB: 3000, PssKiB: 2000}, {RssKiB: 3000, PssKiB: 2000}}},
		// A shim whose container is gone: its memory still counts.
		{Usage: Usage{RssKiB: 8000, PssKiB: 3000}},
	}
	got := Summarize(shims)
	want := ContainerSummary{
		Count: 3, ShimRssKiB: 27000, ChildRssKiB: 9000, TotalPssKiB: 18000,
		PerContainerRss: 12000, PerContainerPss: 6000,
	}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if got := Summarize(nil); got != (ContainerSummary{}) {
		t.Errorf("Summarize(nil) = %+v, want zero", got)
	}
}
