package gateway

import (
	"time"

	"github.com/cgibox/cgibox/sandbox"
)

// Recorder receives the Record of every request once its response has
// ended (metrics, the audit log). It is called on the request's goroutine
// and must not block for long.
type Recorder interface {
	Record(Record)
}

// Record is what one request was and how it ended.
type Record struct {
	Time      time.Time     // when it came in
	Duration  time.Duration // until its response ended
	RequestID string
	// Site is the site's name; "" when no site was found (400, 421).
	Site   string
	Method string
	URI    string // as received
	Remote string
	Status int
	Bytes  int64 // response bytes written, headers not counted
	// CGI is set when the request was for a script that was resolved and
	// given to the runner (it may still not have started).
	CGI *CGIRecord
}

// CGIRecord is what a CGI request adds to its Record.
type CGIRecord struct {
	Script  string // the script's URL path
	Image   string // the containerd reference it ran in
	Limits  sandbox.Limits
	BytesIn int64 // request body bytes passed to the script
	// Result is the runner's: exit code, end, CPU, peak memory, OOM kills,
	// phases, container. Its Reason is "not-started" for a job that failed
	// before its script started.
	Result sandbox.Result
	// Aborted: the response was cut after its status line went out.
	Aborted bool
}

// NotStarted is the Reason of a CGIRecord whose script never ran.
const NotStarted = notStartedReason
