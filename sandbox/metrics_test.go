package sandbox

import (
	"testing"
	"time"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/typeurl/v2"
)

// TestCgroupUsage decodes statistics as the shim sends them (a typeurl
// Any) for both cgroup versions, with the units each uses.
func TestCgroupUsage(t *testing.T) {
	tests := []struct {
		name   string
		in     any
		want   usage
		wantOK bool
	}{
		{"v1", &v1.Metrics{
			CPU:              &v1.CPUStat{Usage: &v1.CPUUsage{Total: 1_500_000_000}},
			Memory:           &v1.MemoryStat{Usage: &v1.MemoryEntry{Usage: 1 << 20, Max: 48 << 20}},
			MemoryOomControl: &v1.MemoryOomControl{OomKill: 2},
		}, usage{cpu: 1500 * time.Millisecond, peak: 48 << 20, oomKills: 2}, true},
		{"v1 without OOM", &v1.Metrics{
			CPU:    &v1.CPUStat{Usage: &v1.CPUUsage{Total: 7}},
			Memory: &v1.MemoryStat{Usage: &v1.MemoryEntry{Max: 4096}},
		}, usage{cpu: 7, peak: 4096}, true},
		{"v2", &v2.Metrics{
			CPU:          &v2.CPUStat{UsageUsec: 1_500_000},
			Memory:       &v2.MemoryStat{Usage: 1 << 20, MaxUsage: 48 << 20},
			MemoryEvents: &v2.MemoryEvents{Max: 9, Oom: 3, OomKill: 1},
		}, usage{cpu: 1500 * time.Millisecond, peak: 48 << 20, oomKills: 1}, true},
		{"v2 limit hit, nothing killed", &v2.Metrics{
			CPU:          &v2.CPUStat{UsageUsec: 1},
			MemoryEvents: &v2.MemoryEvents{Max: 9, Oom: 3},
		}, usage{cpu: time.Microsecond}, true},
		{"v2 before Linux 5.19 (no memory.peak)", &v2.Metrics{
			CPU:    &v2.CPUStat{UsageUsec: 10},
			Memory: &v2.MemoryStat{Usage: 1 << 20},
		}, usage{cpu: 10 * time.Microsecond}, true},
		{"neither", &v1.CPUStat{}, usage{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire, err := typeurl.MarshalAny(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			data, err := typeurl.UnmarshalAny(wire)
			if err != nil {
				t.Fatalf("UnmarshalAny(%s): %v", wire.GetTypeUrl(), err)
			}
			got, ok := cgroupUsage(data)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("cgroupUsage(%s %v) = %+v, %v; want %+v, %v", wire.GetTypeUrl(), tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
