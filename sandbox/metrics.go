package sandbox

import (
	"context"
	"time"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/typeurl/v2"
)

// readMetrics fills CPU and peak memory from the task's cgroup and turns
// the reason into OutOfMemory when the cgroup OOM-killed a process. It must
// run after the exit and before the task is deleted (the cgroup goes with
// it). Failures only leave the fields zero.
func (m *Manager) readMetrics(ctx context.Context, task containerd.Task, res *Result) {
	// The container's cgroup files first: three reads, where the shim's
	// metrics are a round trip through containerd (1.5 to 3.5 ms on the
	// path of every response). The shim's are what is left when the
	// files are not visible here (cgibox in a container of its own, a
	// kernel without memory.peak).
	if u, err := m.cgroups.usage(task.ID()); err == nil {
		m.useMetrics(u, res)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killTimeout)
	defer cancel()
	metric, err := task.Metrics(ctx)
	if err != nil || metric == nil || metric.Data == nil {
		m.log.Debug("no metrics for task", "container", task.ID(), "err", err)
		return
	}
	data, err := typeurl.UnmarshalAny(metric.Data)
	if err != nil {
		m.log.Debug("cannot decode task metrics", "container", task.ID(), "type", metric.Data.GetTypeUrl(), "err", err)
		return
	}
	u, ok := cgroupUsage(data)
	if !ok {
		m.log.Debug("task metrics of an unknown type", "container", task.ID(), "type", metric.Data.GetTypeUrl())
		return
	}
	m.useMetrics(u, res)
}

// useMetrics puts u into res.
func (m *Manager) useMetrics(u usage, res *Result) {
	res.CPU, res.PeakMemory, res.OOMKills = u.cpu, u.peak, u.oomKills
	if u.oomKills > 0 && (res.Reason == Exited || res.Reason == "") {
		res.Reason = OutOfMemory
	}
}

// usage is what a Result takes from a cgroup's statistics.
type usage struct {
	cpu      time.Duration
	peak     int64  // bytes; 0 when the kernel does not say
	oomKills uint64 // processes of the cgroup the OOM killer killed
}

// cgroupUsage reads the statistics the runc shim reports: cgroup1 stats on
// v1 and hybrid hosts, cgroup2 stats on v2. ok is false for anything else.
//
// On v2 the peak is memory.peak, which exists from Linux 5.19 only (Ubuntu
// 22.04's 5.15 has none: the peak is then 0). The OOM count is oom_kill of
// memory.events, "processes belonging to this cgroup killed by any kind of
// OOM killer" (cgroup-v2.rst); not oom, which counts the times the limit
// was reached and an allocation was about to fail, whether or not a
// process died of it.
func cgroupUsage(data any) (usage, bool) {
	switch s := data.(type) {
	case *v1.Metrics:
		return usage{
			cpu:      time.Duration(s.GetCPU().GetUsage().GetTotal()), // cpuacct.usage, ns
			peak:     int64(s.GetMemory().GetUsage().GetMax()),        // memory.max_usage_in_bytes
			oomKills: s.GetMemoryOomControl().GetOomKill(),            // memory.oom_control oom_kill
		}, true
	case *v2.Metrics:
		return usage{
			cpu:      time.Duration(s.GetCPU().GetUsageUsec()) * time.Microsecond, // cpu.stat usage_usec
			peak:     int64(s.GetMemory().GetMaxUsage()),                          // memory.peak
			oomKills: s.GetMemoryEvents().GetOomKill(),                            // memory.events oom_kill
		}, true
	}
	return usage{}, false
}
