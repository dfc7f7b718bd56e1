package static

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgibox/cgibox/internal/testenv"
)

// browser is one headless Chromium, driven over the DevTools protocol on
// --remote-debugging-pipe (JSON messages ended by a NUL byte: commands on
// the child's fd 3, answers and events on its fd 4). The protocol rather
// than --screenshot because --window-size cannot go below 500 CSS pixels
// in headless Chromium: a "390 wide" --screenshot is the left part of a
// page laid out 500 wide, and Chromium then ignores the viewport meta
// anyway. Emulation.setDeviceMetricsOverride with mobile set lays the page
// out as a phone does, viewport meta included.
type browser struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has been waited for
	stderr  *logBuffer    // Chromium's own log, for failure messages
	send    *os.File
	recv    chan cdpMessage
	quit    chan struct{} // closed by close: the reader stops
	id      int
	session string
	events  []cdpMessage // events read while waiting for an answer
}

type cdpMessage struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// startBrowser starts Chromium (skipping t when it is not installed, see
// testenv.Skip) and opens one page to render into. Everything it does is
// bounded by ctx: when ctx ends, Chromium's whole process group is killed.
func startBrowser(ctx context.Context, t *testing.T) *browser {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Skip(t, "chromium is not installed (apt-get install --no-install-recommends chromium)")
	}
	// The profile, and Chromium's temporary files (its singleton socket
	// outlives a killed Chromium), in the test's temporary directory.
	dir := t.TempDir()
	profile, tmp := filepath.Join(dir, "profile"), filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	toChild, ours, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	theirs, fromChild, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{done: make(chan struct{}), stderr: new(logBuffer), send: ours, recv: make(chan cdpMessage, 16), quit: make(chan struct{})}
	b.cmd = exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--user-data-dir="+profile, "--remote-debugging-pipe", "--no-first-run",
		"--no-default-browser-check", "--disable-extensions", "about:blank")
	b.cmd.ExtraFiles = []*os.File{toChild, fromChild} // fd 3 and fd 4
	b.cmd.Stderr = b.stderr
	b.cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	// Chromium forks renderers and helpers; a group of their own lets a
	// timeout end them all.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b.cmd.Cancel = func() error { return syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL) }
	b.cmd.WaitDelay = 5 * time.Second
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	toChild.Close()
	fromChild.Close()
	go func() {
		defer close(b.recv)
		r := bufio.NewReader(theirs)
		for {
			raw, err := r.ReadBytes(0)
			if err != nil {
				theirs.Close()
				return
			}
			var m cdpMessage
			if json.Unmarshal(raw[:len(raw)-1], &m) != nil {
				continue
			}
			select {
			case b.recv <- m:
			case <-b.quit:
				theirs.Close()
				return
			}
		}
	}()
	go func() { b.cmd.Wait(); close(b.done) }()
	// Registered after t.TempDir, so it runs first: the profile is
	// removed only once Chromium has gone.
	t.Cleanup(b.close)

	var target struct{ TargetID string }
	if err := b.call(ctx, "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		t.Fatalf("chromium: %v\n%s", err, b.log())
	}
	var attached struct{ SessionID string }
	if err := b.call(ctx, "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached); err != nil {
		t.Fatalf("chromium: %v\n%s", err, b.log())
	}
	b.session = attached.SessionID
	if err := b.call(ctx, "Page.enable", nil, nil); err != nil {
		t.Fatalf("chromium: %v\n%s", err, b.log())
	}
	return b
}

// close asks Chromium to quit and kills its process group if it has not
// within a few seconds.
func (b *browser) close() {
	b.id++
	msg, _ := json.Marshal(cdpMessage{ID: b.id, Method: "Browser.close"})
	b.send.Write(append(msg, 0))
	b.send.Close()
	close(b.quit)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.done
	}
}

// log is the tail of Chromium's stderr.
func (b *browser) log() string {
	b.stderr.mu.Lock()
	defer b.stderr.mu.Unlock()
	s := b.stderr.buf.String()
	return s[max(0, len(s)-2000):]
}

// logBuffer is Chromium's stderr, written by exec's copying goroutine while
// a failing test may read it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// call sends one command to the page's session (or to the browser before
// there is one) and decodes its result into result.
func (b *browser) call(ctx context.Context, method string, params, result any) error {
	b.id++
	p, err := json.Marshal(params)
	if err != nil {
		return err
	}
	if params == nil {
		p = nil
	}
	msg, err := json.Marshal(cdpMessage{ID: b.id, Method: method, SessionID: b.session, Params: p})
	if err != nil {
		return err
	}
	if _, err := b.send.Write(append(msg, 0)); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	for {
		m, err := b.next(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		if m.ID != b.id {
			if m.Method != "" {
				b.events = append(b.events, m)
			}
			continue
		}
		if m.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		if result == nil {
			return nil
		}
		return json.Unmarshal(m.Result, result)
	}
}

// waitEvent returns once the page's session has sent the event method,
// looking first at the events call set aside.
func (b *browser) waitEvent(ctx context.Context, method string) error {
	for i, m := range b.events {
		if m.Method == method && m.SessionID == b.session {
			b.events = b.events[i+1:]
			return nil
		}
	}
	b.events = nil
	for {
		m, err := b.next(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", method, err)
		}
		if m.Method == method && m.SessionID == b.session {
			return nil
		}
	}
}

func (b *browser) next(ctx context.Context) (cdpMessage, error) {
	select {
	case m, ok := <-b.recv:
		if !ok {
			return m, errors.New("chromium closed its pipe")
		}
		return m, nil
	case <-ctx.Done():
		return cdpMessage{}, ctx.Err()
	}
}

// rendering is what one page looked like at one size.
type rendering struct {
	PNG []byte
	// Measured in the page once it has loaded.
	Text        string // document.body.innerText
	InnerWidth  int    // the layout viewport's width, a scrollbar included
	ClientWidth int    // of the root element: the viewport less a scrollbar
	ScrollWidth int    // of the root element: more than ClientWidth scrolls sideways
	StyleSheets int    // style sheets that loaded and have rules
}

// render loads url in a viewport of width×height CSS pixels (a phone's when
// mobile is set: viewport meta honoured, overlay scrollbars), waits for its
// load event, measures it and takes a screenshot of the viewport.
func (b *browser) render(ctx context.Context, url string, width, height int, mobile bool) (rendering, error) {
	var r rendering
	metrics := map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
	if err := b.call(ctx, "Emulation.setDeviceMetricsOverride", metrics, nil); err != nil {
		return r, err
	}
	b.events = nil
	var nav struct{ ErrorText string }
	if err := b.call(ctx, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return r, err
	}
	if nav.ErrorText != "" {
		return r, fmt.Errorf("navigating to %s: %s", url, nav.ErrorText)
	}
	if err := b.waitEvent(ctx, "Page.loadEventFired"); err != nil {
		return r, err
	}
	const measure = `JSON.stringify({
		Text: document.body.innerText,
		InnerWidth: innerWidth,
		InnerWidth: innerWidth,
		ClientWidth: document.documentElement.clientWidth,
		ScrollWidth: document.documentElement.scrollWidth,
		StyleSheets: [...document.styleSheets].filter(s => { try { return s.cssRules.length > 0 } catch (e) { return false } }).length,
	})`
	var eval struct {
		Result struct{ Value string }
	}
	if err := b.call(ctx, "Runtime.evaluate", map[string]any{"expression": measure, "returnByValue": true}, &eval); err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(eval.Result.Value), &r); err != nil {
		return r, fmt.Errorf("measuring %s: %w (%q)", url, err, eval.Result.Value)
	}
	var shot struct{ Data string }
	if err := b.call(ctx, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot); err != nil {
		return r, err
	}
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		return r, fmt.Errorf("screenshot of %s: %w", url, err)
	}
	r.PNG = png
	return r, nil
}
