package static

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// WriteError writes an HTML error page laid out like Python's send_error: the
// code, the message (the status text when message is ""), an explanation of
// the code, and "Request id: <id>" when requestID is not empty. Everything
// interpolated is HTML-escaped. Responses to HEAD, and 1xx/204/205/304
// responses, carry no body. Headers describing a file that may have been set
// before the error (ETag, Last-Modified, Content-Encoding) are removed;
// Content-Range stays, as a 416 needs it.
//
// message is shown to the client: pass a fixed public text, never an error
// string.
func WriteError(w http.ResponseWriter, r *http.Request, code int, message, requestID string) {
	WriteErrorRef(w, r, code, message, Ref{RequestID: requestID})
}

// Ref is what an error page names for the operator to find the request by:
// its id and the site it was for. Empty fields are left out.
type Ref struct {
	RequestID string
	Site      string
}

// WriteErrorRef is WriteError with the page naming ref.
func WriteErrorRef(w http.ResponseWriter, r *http.Request, code int, message string, ref Ref) {
	if message == "" {
		message = statusText(code)
	}
	h := w.Header()
	for _, k := range []string{"Etag", "Last-Modified", "Content-Encoding", "Content-Disposition", "Accept-Ranges"} {
		h.Del(k)
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusResetContent || code == http.StatusNotModified {
		h.Del("Content-Type")
		h.Del("Content-Length")
		w.WriteHeader(code)
		return
	}
	body := errorPage(code, message, ref)
	h.Set("Content-Type", "text/html;charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if r == nil || r.Method != http.MethodHead {
		io.WriteString(w, body) // a failed write is the client's loss; nothing to do
	}
}

// errorPage renders the page. Python's layout and text (title "Error
// response", the code, "Message: …." and "Error code explanation: N - ….")
// are kept so people and tools that know Python's pages recognise it; the
// head adds the viewport and the listing's stylesheet (pageStyle), so the
// page reads well on a phone.
func errorPage(code int, message string, ref Ref) string {
	var b strings.Builder
	b.WriteString("<!DOCTYPE HTML>\n<html lang=\"en\">\n    <head>\n        <meta charset=\"utf-8\">\n")
	b.WriteString("        <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	b.WriteString("        <title>Error response</title>\n")
	b.WriteString("        <style>" + pageStyle + "</style>\n")
	b.WriteString("    </head>\n    <body>\n        <h1>Error response</h1>\n")
	fmt.Fprintf(&b, "        <p>Error code: %d</p>\n", code)
	fmt.Fprintf(&b, "        <p>Message: %s.</p>\n", escapeHTML(message))
	fmt.Fprintf(&b, "        <p>Error code explanation: %d - %s.</p>\n", code, escapeHTML(explanation(code)))
	if ref.RequestID != "" {
		fmt.Fprintf(&b, "        <p>Request id: %s</p>\n", escapeHTML(ref.RequestID))
	}
	if ref.Site != "" && ref.Site != "default" {
		fmt.Fprintf(&b, "        <p>Site: %s</p>\n", escapeHTML(ref.Site))
	}
	b.WriteString("    </body>\n</html>\n")
	return b.String()
}

// statusText is the reason phrase Python uses by default; it differs from
// Go's only in spelling for a couple of codes.
func statusText(code int) string {
	switch code {
	case http.StatusRequestURITooLong:
		return "Request-URI Too Long"
	}
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "Unknown status"
}

// explanation says in one line what a status code means to the person
// reading the page.
func explanation(code int) string {
	switch code {
	case http.StatusBadRequest:
		return "The request was malformed or is not supported"
	case http.StatusUnauthorized:
		return "Credentials are needed to see this page"
	case http.StatusForbidden:
		return "The server will not serve this resource"
	case http.StatusNotFound:
		return "Nothing was found at the requested address"
	case http.StatusMethodNotAllowed:
		return "This resource does not accept the request method"
	case http.StatusRequestTimeout:
		return "The request was not received in time"
	case http.StatusLengthRequired:
		return "The request body needs a Content-Length"
	case http.StatusPreconditionFailed:
		return "A condition in the request headers does not hold"
	case http.StatusRequestEntityTooLarge:
		return "The request body is larger than the server accepts"
	case http.StatusRequestURITooLong:
		return "The request address is longer than the server accepts"
	case http.StatusRequestedRangeNotSatisfiable:
		return "The requested byte range lies outside the resource"
	case http.StatusTooManyRequests:
		return "Too many requests at once; retry later"
	case http.StatusRequestHeaderFieldsTooLarge:
		return "The request headers are larger than the server accepts"
	case http.StatusInternalServerError:
		return "The server failed to complete the request"
	case http.StatusNotImplemented:
		return "The server does not support this request method"
	case http.StatusBadGateway:
		return "The script did not produce a valid response"
	case http.StatusServiceUnavailable:
		return "The server cannot handle the request right now; retry later"
	case http.StatusGatewayTimeout:
		return "The script did not answer in time"
	}
	return statusText(code)
}

// errorPageWriter turns the plain-text errors http.ServeContent writes
// (412, 416) into WriteError pages, so a client never sees Go's internal
// error text. Everything else passes through; ReadFrom is forwarded so
// sendfile still applies to file bodies.
type errorPageWriter struct {
	http.ResponseWriter
	r      *http.Request
	failed bool // an error page was written; swallow the original body
	// copyBuf, when set, carries a body read by ReadFrom through Write,
	// into the response's buffer, instead of handing it to sendfile.
	copyBuf []byte
}

func (e *errorPageWriter) WriteHeader(code int) {
	if code >= 400 && !e.failed {
		e.failed = true
		WriteError(e.ResponseWriter, e.r, code, "", "")
		return
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *errorPageWriter) Write(p []byte) (int, error) {
	if e.failed {
		return len(p), nil
	}
	return e.ResponseWriter.Write(p)
}

func (e *errorPageWriter) ReadFrom(src io.Reader) (int64, error) {
	if e.failed {
		return io.Copy(io.Discard, src)
	}
	if e.copyBuf != nil {
		return io.CopyBuffer(writerOnly{e}, src, e.copyBuf)
	}
	if rf, ok := e.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{e.ResponseWriter}, src)
}

// Unwrap lets http.ResponseController reach the real writer.
func (e *errorPageWriter) Unwrap() http.ResponseWriter { return e.ResponseWriter }

// writerOnly hides a ReadFrom method so io.Copy does not recurse into it.
type writerOnly struct{ io.Writer }

// escapeHTML is Python's html.escape(s, quote=False): only &, < and >.
// Quotes stay as they are (every attribute value cgibox writes is
// percent-encoded instead).
func escapeHTML(s string) string {
	if !strings.ContainsAny(s, "&<>") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
