package gateway

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// writeRecorder keeps each Write separately.
type writeRecorder struct {
	mu     sync.Mutex
	writes []string
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func (w *writeRecorder) get() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.writes...)
}

func TestLineBatchWritesWithinDelay(t *testing.T) {
	w := &writeRecorder{}
	l := &lineBatch{w: w, delay: 20 * time.Millisecond}
	start := time.Now()
	l.Write([]byte("one\n"))
	l.Write([]byte("two\n"))
	if got := w.get(); len(got) != 0 {
		t.Fatalf("written at once: %q; want the lines batched", got)
	}
	waitFor(t, func() bool { return len(w.get()) > 0 })
	if took := time.Since(start); took > time.Second {
		t.Errorf("lines written after %s; the delay is 20ms", took)
	}
	if got := w.get(); len(got) != 1 || got[0] != "one\ntwo\n" {
		t.Errorf("writes %q, want one write of both lines", got)
	}
	// A line after the batch went out starts the next one.
	l.Write([]byte("three\n"))
	waitFor(t, func() bool { return len(w.get()) == 2 })
	if got := w.get(); got[1] != "three\n" {
		t.Errorf("second batch %q, want %q", got[1], "three\n")
	}
	l.close()
}

func TestLineBatchCloseFlushesAndStopsBatching(t *testing.T) {
	w := &writeRecorder{}
	l := &lineBatch{w: w, delay: time.Hour}
	l.Write([]byte("before\n"))
	l.close()
	if got := w.get(); len(got) != 1 || got[0] != "before\n" {
		t.Fatalf("after close: writes %q, want the batched line", got)
	}
	l.Write([]byte("after\n"))
	if got := w.get(); len(got) != 2 || got[1] != "after\n" {
		t.Errorf("a line after close: writes %q, want it written at once", got)
	}
}

func TestLineBatchBoundedWholeLines(t *testing.T) {
	w := &writeRecorder{}
	l := &lineBatch{w: w, delay: time.Hour}
	var want bytes.Buffer
	for i := range 500 {
		line := fmt.Sprintf("%d %s\n", i, strings.Repeat("x", i%97))
		want.WriteString(line)
		l.Write([]byte(line))
	}
	long := strings.Repeat("L", 3*logBatchSize) + "\n"
	want.WriteString(long)
	l.Write([]byte(long))
	want.WriteString("last\n")
	l.Write([]byte("last\n"))
	l.close()
	got := w.get()
	if strings.Join(got, "") != want.String() {
		t.Fatalf("the lines written differ from the lines logged")
	}
	for i, s := range got {
		if !strings.HasSuffix(s, "\n") {
			t.Errorf("write %d ends inside a line: ...%q", i, s[max(0, len(s)-20):])
		}
		if len(s) > logBatchSize && s != long {
			t.Errorf("write %d holds %d bytes, above the batch size %d", i, len(s), logBatchSize)
		}
	}
	if !strings.Contains(strings.Join(got, "\x00"), "\x00"+long+"\x00") {
		t.Errorf("the long line was not written whole, on its own")
	}
	if len(got) > 2*want.Len()/logBatchSize+3 {
		t.Errorf("%d writes for %d bytes: the batches are not filled", len(got), want.Len())
	}
}
