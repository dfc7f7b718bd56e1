package sandbox

import (
	"testing"
	"time"
)

// Every phase of a job around the script is measured, and the phases with
// the script's own run fit in the time Run took.
func TestRunPhases(t *testing.T) {
	manager(t)
	job := scriptJob(t, "#!/bin/sh\necho hi\n")
	begin := time.Now()
	res, out, _, err := run(t, testContext(t), job)
	took := time.Since(begin)
	if err != nil || out != "hi\n" {
		t.Fatalf("Run = %q, %v", out, err)
	}
	p := res.Phases
	for name, d := range map[string]time.Duration{"create": p.Create, "task": p.Task, "start": p.Start, "drain": p.Drain, "run": res.Duration} {
		if d <= 0 {
			t.Errorf("phase %s = %s, want it measured (phases %+v)", name, d, p)
		}
	}
	// The first byte is timed when it reaches the gateway side, the run's
	// end by containerd's exit time: on a busy machine the byte may come
	// in after the exit, never after Run returned.
	if p.FirstByte <= 0 || p.FirstByte > took {
		t.Errorf("first byte after %s, want within the %s Run took", p.FirstByte, took)
	}
	if sum := p.Create + p.Task + p.Start + res.Duration + p.Drain; sum > took {
		t.Errorf("phases add up to %s, more than the %s Run took: %+v, run %s", sum, took, p, res.Duration)
	}
}
