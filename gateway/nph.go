package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/cgibox/cgibox/sandbox"
)

// statusLineRE is the status line an NPH script must start with.
var statusLineRE = regexp.MustCompile(`^HTTP/1\.[01] [1-5][0-9][0-9]( [\t -~]*)?\r?\n$`)

// isNPH reports whether the script is a non-parsed-header script (RFC 3875
// §5): its name starts with "nph-".
func isNPH(scriptName string) bool {
	i := strings.LastIndexByte(scriptName, '/')
	return strings.HasPrefix(scriptName[i+1:], "nph-")
}

// streamNPH passes an NPH script's output to the client as it is: the script
// writes its own status line and headers. Only the status line is checked;
// the connection is taken over and closed afterwards, so whatever framing
// the script chose cannot reach a following request. Operators enable this
// with --nph; without it nph- scripts are answered like any other.
func (h *site) streamNPH(ctx context.Context, w http.ResponseWriter, r *http.Request,
	stdout *io.PipeReader, cancel context.CancelCauseFunc, wait func() jobOutcome) {
	defer stdout.Close()
	br := bufio.NewReaderSize(stdout, 8<<10)
	timer := h.headerTimer(stdout, cancel)
	line, err := br.ReadSlice('\n')
	timer.Stop()
	if err != nil || !statusLineRE.Match(line) {
		abandon(stdout, cancel, errHeaders)
		o := wait()
		h.setOutcome(w, o, false)
		h.log.WarnContext(ctx, "NPH script sent no valid status line", "request_id", requestID(w),
			"line", escapeLog(string(line)), "err", err)
		h.fail(w, r, http.StatusBadGateway, "The CGI script sent an invalid response")
		return
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		cancel(fmt.Errorf("hijack: %w", err))
		h.setOutcome(w, wait(), true)
		h.log.WarnContext(ctx, "NPH needs HTTP/1.x", "request_id", requestID(w), "err", err)
		h.fail(w, r, http.StatusHTTPVersionNotSupported, "NPH scripts need HTTP/1.x")
		return
	}
	defer conn.Close()
	go func() {
		io.Copy(io.Discard, io.LimitReader(conn, 1<<20))
		cancel(errClientGone)
	}()
	if sw, ok := w.(*statusWriter); ok {
		sw.status = statusOf(line)
	}
	out := &deadlineWriter{conn: conn, timeout: h.srv.cfg.WriteTimeout}
	_, err = out.Write(line)
	if err == nil {
		_, err = io.Copy(out, br)
	}
	if err != nil {
		abandon(stdout, cancel, errClientGone)
	}
	o := wait()
	aborted := err != nil || o.err != nil || o.res.Reason != sandbox.Exited
	if aborted {
		resetOnClose(conn)
	}
	h.setOutcome(w, o, aborted)
}

// statusOf returns the code of a valid status line.
func statusOf(line []byte) int {
	n := 0
	for _, c := range line[9:12] {
		n = n*10 + int(c-'0')
	}
	return n
}
