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
	oom := false
	switch s := data.(type) {
	case *v1.Metrics:
		res.CPU = time.Duration(s.GetCPU().GetUsage().GetTotal())
		res.PeakMemory = int64(s.GetMemory().GetUsage().GetMax())
		oom = s.GetMemoryOomControl().GetOomKill() > 0
	case *v2.Metrics:
		res.CPU = time.Duration(s.GetCPU().GetUsageUsec()) * time.Microsecond
		res.PeakMemory = int64(s.GetMemory().GetMaxUsage())
		oom = s.GetMemoryEvents().GetOomKill() > 0
	}
	if oom && (res.Reason == Exited || res.Reason == "") {
		res.Reason = OutOfMemory
	}
}
