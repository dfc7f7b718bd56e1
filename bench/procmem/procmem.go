// Package procmem reads what processes cost in memory from /proc: the
// resident set of one process, and that of the containerd shims of one
// containerd (found by the socket on their command line) with every process
// under them, which for a prepared container is its launcher.
package procmem

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Usage is the memory of one process, in KiB. Pss shares each shared page
// among the processes that map it, so Pss values add up honestly; Rss
// counts shared pages in every process.
type Usage struct {
	PID    int    `json:"pid"`
	Comm   string `json:"comm"`
	RssKiB int64  `json:"rss_kib"`
	PssKiB int64  `json:"pss_kib"`
}

// Shim is one containerd shim and the processes under it (its containers'
// init processes and their descendants).
type Shim struct {
	Usage
	// Containers is the processes directly under the shim: one init per
	// container (several when containers share a shim).
	Containers int     `json:"containers"`
	Children   []Usage `json:"children"`
}

// Root is the /proc to read; tests use a fake one.
type Root string

// Proc is the system's /proc.
const Proc Root = "/proc"

// maxStatusFile bounds what is read of one /proc file.
const maxStatusFile = 64 << 10

// Of reads the memory of process pid.
func (r Root) Of(pid int) (Usage, error) {
	u := Usage{PID: pid}
	dir := filepath.Join(string(r), strconv.Itoa(pid))
	status, err := readBounded(filepath.Join(dir, "status"))
	if err != nil {
		return u, fmt.Errorf("process %d: %w", pid, err)
	}
	u.Comm = field(status, "Name:")
	if u.RssKiB, err = kib(field(status, "VmRSS:")); err != nil {
		return u, fmt.Errorf("process %d VmRSS: %w", pid, err)
	}
	// smaps_rollup exists since Linux 4.14; without it Pss stays 0.
	if rollup, err := readBounded(filepath.Join(dir, "smaps_rollup")); err == nil {
		u.PssKiB, _ = kib(field(rollup, "Pss:"))
	}
	return u, nil
}

// Shims finds the containerd shims whose command line names the socket
// address (the containerd they belong to) and measures each with every
// process under it.
func (r Root) Shims(address string) ([]Shim, error) {
	procs, err := r.list()
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var out []Shim
	for _, p := range procs {
		if !strings.HasPrefix(filepath.Base(p.argv0()), "containerd-shim") || !slices.Contains(p.args, address) {
			continue
		}
		u, err := r.Of(p.pid)
		if err != nil {
			continue // exited meanwhile
		}
		s := Shim{Usage: u, Containers: len(children[p.pid])}
		for _, c := range descendants(children, p.pid) {
			if cu, err := r.Of(c); err == nil {
				s.Children = append(s.Children, cu)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

type proc struct {
	pid, ppid int
	args      []string
}

func (p proc) argv0() string {
	if len(p.args) == 0 {
		return ""
	}
	return p.args[0]
}

// list reads every process's parent and command line.
func (r Root) list() ([]proc, error) {
	entries, err := os.ReadDir(string(r))
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(string(r), e.Name())
		status, err := readBounded(filepath.Join(dir, "status"))
		if err != nil {
			continue
		}
		ppid, err := strconv.Atoi(field(status, "PPid:"))
		if err != nil {
			continue
		}
		cmdline, _ := readBounded(filepath.Join(dir, "cmdline"))
		var args []string
		if len(cmdline) > 0 {
			args = strings.Split(string(bytes.TrimRight(cmdline, "\x00")), "\x00")
		}
		out = append(out, proc{pid: pid, ppid: ppid, args: args})
	}
	return out, nil
}

// descendants lists the processes under pid, depth first.
func descendants(children map[int][]int, pid int) []int {
	var out []int
	stack := slices.Clone(children[pid])
	for len(stack) > 0 && len(out) < 1<<16 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		out = append(out, c)
		stack = append(stack, children[c]...)
	}
	return out
}

// field returns the value of the first line of a /proc key-value file
// that starts with key.
func field(data []byte, key string) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// kib parses "1234 kB".
func kib(v string) (int64, error) {
	num, unit, _ := strings.Cut(strings.TrimSpace(v), " ")
	if unit != "kB" {
		return 0, fmt.Errorf("value %q: want a number of kB", v)
	}
	return strconv.ParseInt(num, 10, 64)
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStatusFile))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

// Sample is what bench/cmd/mem records about one idle cgibox: its serve
// process and the shims of its containerd.
type Sample struct {
	Peer       string           `json:"peer"`
	Serve      Usage            `json:"serve"`
	Shims      []Shim           `json:"shims"`
	Containers ContainerSummary `json:"containers"`
}

// ContainerSummary adds up the shims: Count is the processes directly under
// them (one per container); the Per fields are the cost of one container,
// its shim's share included.
type ContainerSummary struct {
	Count           int     `json:"count"`
	ShimRssKiB      int64   `json:"shim_rss_kib"`
	ChildRssKiB     int64   `json:"child_rss_kib"`
	TotalPssKiB     int64   `json:"total_pss_kib"`
	PerContainerRss float64 `json:"per_container_rss_kib"`
	PerContainerPss float64 `json:"per_container_pss_kib"`
}

// Summarize adds up the memory of shims and the processes under them.
func Summarize(shims []Shim) ContainerSummary {
	var c ContainerSummary
	for _, s := range shims {
		c.ShimRssKiB += s.RssKiB
		c.TotalPssKiB += s.PssKiB
		for _, ch := range s.Children {
			c.ChildRssKiB += ch.RssKiB
			c.TotalPssKiB += ch.PssKiB
		}
		c.Count += s.Containers
	}
	if c.Count > 0 {
		c.PerContainerRss = float64(c.ShimRssKiB+c.ChildRssKiB) / float64(c.Count)
		c.PerContainerPss = float64(c.TotalPssKiB) / float64(c.Count)
	}
	return c
}
