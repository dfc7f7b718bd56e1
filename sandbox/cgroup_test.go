package sandbox

import "testing"

func TestCgroupMode(t *testing.T) {
	tests := []struct {
		name          string
		root, unified int64
		want          string
	}{
		{"unified", cgroup2Magic, 0, CgroupV2},
		{"hybrid", tmpfsMagic, cgroup2Magic, CgroupHybrid},
		{"legacy", tmpfsMagic, 0, CgroupV1},
		{"legacy, unified dir not cgroup2", tmpfsMagic, tmpfsMagic, CgroupV1},
		{"v1 mounted directly", cgroupMagic, 0, CgroupV1},
		{"nothing mounted (sysfs)", 0x62656572, 0, CgroupUnknown},
		{"missing", 0, 0, CgroupUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cgroupMode(tt.root, tt.unified); got != tt.want {
				t.Errorf("cgroupMode(%#x, %#x) = %s, want %s", tt.root, tt.unified, got, tt.want)
			}
		})
	}
}
