// Package static serves a site's static files the way Python's
// http.server.SimpleHTTPRequestHandler does — same paths, index files,
// directory listings, redirects, Content-Type and If-Modified-Since — while
// never leaving the site root: every file is opened through an os.Root, and
// symlinks are followed only while they stay inside it. On top of Python it
// hides dotfiles, refuses to serve the CGI directories as files, and answers
// ETag/If-None-Match, Range and If-Range requests.
package static

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Handler serves files below Root. Zero values mean: no dotfiles, no extra
// headers.
type Handler struct {
	// Root is the site root, opened by the caller with os.OpenRoot.
	Root *os.Root
	// Dotfiles serves and lists names starting with "." (default: 404 and
	// hidden from listings).
	Dotfiles bool
	// CGIDirs are URL directory prefixes like "/cgi-bin" that are NOT
	// static: a request for such a path, or for a path whose symlinks lead
	// into one, is answered 403 — a script's source is never served. The
	// match is on the cleaned path, case-sensitive, whole segments.
	CGIDirs []string
	// Index are the names served for a directory, first found wins
	// (default index.html and index.htm, like Python).
	Index []string
	// NoListing answers a directory without an index file 403 instead of
	// listing it.
	NoListing bool
	// Site, when set, is named on error pages (as in the gateway's own).
	Site string

	bufs sync.Pool // *[]byte of smallFile bytes, for small files
	root rootDir   // the root's descriptor, for serveRegular
}

// Public messages. Python's wording where Python has one.
const (
	msgNotFound   = "File not found"
	msgNoListing  = "No permission to list directory"
	msgForbidden  = "Forbidden"
	msgBadRequest = "Bad request path"
)

// ServeHTTP answers GET and HEAD for a file or directory below h.Root.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.fail(w, r, http.StatusNotImplemented, "Unsupported method ("+pyRepr(r.Method)+")")
		return
	}
	req, ok := parsePath(r.URL)
	if !ok {
		h.fail(w, r, http.StatusBadRequest, msgBadRequest)
		return
	}
	if code, msg := h.deny(req.clean); code != 0 {
		h.fail(w, r, code, msg)
		return
	}
	// A file named with a trailing slash is 404, like Python (bpo-17324).
	if !req.trailingSlash && h.serveRegular(w, r, strings.TrimPrefix(req.clean, "/"), path.Base(req.clean)) {
		return
	}
	resolved, fi, err := resolve(h.Root, strings.TrimPrefix(req.clean, "/"))
	if err != nil {
		// Missing, a symlink out of the root or a loop: all alike to the
		// client (SECURITY.md case 4).
		h.fail(w, r, http.StatusNotFound, msgNotFound)
		return
	}
	if code, msg := h.deny(absPath(resolved)); code != 0 {
		h.fail(w, r, code, msg)
		return
	}
	switch {
	case fi.IsDir():
		h.serveDir(w, r, req, resolved)
	case fi.Mode().IsRegular() && !req.trailingSlash:
		// A file named with a trailing slash is 404, like Python
		// (bpo-17324).
		h.serveFile(w, r, resolved, path.Base(req.clean))
	default:
		// Devices, FIFOs and sockets are never served: reading them could
		// block or never end.
		h.fail(w, r, http.StatusNotFound, msgNotFound)
	}
}

// serveDir redirects to the slash form, or serves the index file, or lists
// the directory — Python's send_head order.
func (h *Handler) serveDir(w http.ResponseWriter, r *http.Request, req requestPath, resolved string) {
	if !req.trailingSlash {
		w.Header().Set("Location", req.redirect())
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusMovedPermanently)
		return
	}
	for _, name := range h.indexNames() {
		if code, _ := h.deny(absPath(path.Join(resolved, name))); code == 0 && h.serveRegular(w, r, path.Join(resolved, name), name) {
			return
		}
		index, ifi, err := resolve(h.Root, path.Join(resolved, name))
		if err != nil || !ifi.Mode().IsRegular() {
			continue
		}
		if code, _ := h.deny(absPath(index)); code != 0 {
			continue
		}
		h.serveFile(w, r, index, name)
		return
	}
	if h.NoListing {
		h.fail(w, r, http.StatusForbidden, msgNoListing)
		return
	}
	h.list(w, r, resolved, req.display())
}

// fail writes an error page naming the site.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	WriteErrorRef(w, r, code, msg, Ref{Site: h.Site})
}

// indexNames returns Index or its default.
func (h *Handler) indexNames() []string {
	if h.Index != nil {
		return h.Index
	}
	return []string{"index.html", "index.htm"}
}

// serveFile opens resolved, a regular file when resolve looked, and
// sends it.
func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, resolved, name string) {
	// O_NONBLOCK: should the file be swapped for a FIFO after resolve, the
	// open must not hang; the fstat below then refuses it.
	f, err := h.Root.OpenFile(resolved, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		h.fail(w, r, http.StatusNotFound, msgNotFound)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		h.fail(w, r, http.StatusNotFound, msgNotFound)
		return
	}
	var content io.ReadSeeker = f
	if fi.Size() <= smallFile {
		content = io.NewSectionReader(f, 0, fi.Size())
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	h.serveContent(w, r, name, content, fi.Size(), fi.ModTime(), ino)
}

// serveContent sends one regular file of size bytes, modified at mtime,
// with Python's Content-Type and Last-Modified plus an ETag. content is
// the file itself (an *os.File, so that net/http can use sendfile), or
// for a file of at most smallFile bytes a SectionReader over it ending at
// size: such a file is read with one pread into a pooled buffer and
// written through the response's own buffer, so that it leaves with the
// header in one write (sendfile would cost the two lseeks of
// ServeContent, a read and a write of the header with the first 512 bytes,
// then the sendfile).
//
// http.ServeContent does the conditional and range logic: If-Modified-Since
// at second precision and ignored when If-None-Match is present, as Python
// does; If-None-Match, If-Match, If-Unmodified-Since; Range with If-Range,
// several ranges answered as multipart/byteranges, a set of ranges larger
// than the file served whole, 416 when none overlaps.
func (h *Handler) serveContent(w http.ResponseWriter, r *http.Request, name string, content io.ReadSeeker, size int64, mtime time.Time, ino uint64) {
	hd := w.Header()
	hd.Set("Content-Type", ContentType(name))
	if mtime.IsZero() || mtime.Equal(time.Unix(0, 0)) {
		// ServeContent sets it for every other date; it leaves it out
		// for a file dated 1970-01-01, and Python always sends it.
		hd.Set("Last-Modified", mtime.UTC().Format(http.TimeFormat))
	}
	hd.Set("Etag", etag(ino, size, mtime))
	if rg := r.Header.Get("Range"); rg != "" && !validByteRanges(rg) {
		// RFC 9110 section 14.2: a Range with another unit, or one that does
		// not parse, is ignored (a full 200, as Python always sends);
		// ServeContent would answer 416.
		r = r.Clone(r.Context())
		r.Header.Del("Range")
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		if v := utcDate(ims); v != ims {
			r = r.Clone(r.Context())
			r.Header.Set("If-Modified-Since", v)
		}
	}
	ew := &errorPageWriter{ResponseWriter: w, r: r}
	if size <= smallFile {
		buf := h.copyBuf()
		defer h.bufs.Put(buf)
		ew.copyBuf = *buf
	}
	http.ServeContent(ew, r, name, mtime, content)
}

// smallFile is the largest file served from a buffer instead of by
// sendfile. Measured on loopback (CPU time per request, wrk -c8), it is
// cheaper at 1 KiB, no dearer at 16 KiB and dearer at 64 KiB.
const smallFile = 16 << 10

// copyBuf returns a buffer of smallFile bytes from h's pool.
func (h *Handler) copyBuf() *[]byte {
	if b, ok := h.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, smallFile)
	return &b
}

// validByteRanges reports whether v is a syntactically valid
// "bytes=" range set (RFC 9110 section 14.1.2): first-last, first- or
// -suffix, comma-separated, with first <= last.
func validByteRanges(v string) bool {
	set, ok := strings.CutPrefix(v, "bytes=")
	if !ok {
		return false
	}
	n := 0
	for spec := range strings.SplitSeq(set, ",") {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue // empty list elements are allowed
		}
		n++
		first, last, ok := strings.Cut(spec, "-")
		if !ok || !digits(first) && first != "" || !digits(last) && last != "" || first == "" && last == "" {
			return false
		}
		if first != "" && last != "" {
			a, errA := strconv.ParseInt(first, 10, 64)
			b, errB := strconv.ParseInt(last, 10, 64)
			if errA != nil || errB != nil || a > b {
				return false
			}
		}
	}
	return n > 0
}

// utcDate rewrites an If-Modified-Since date that Python accepts as UTC but
// Go's http.ParseTime does not ("…05 +0000", "…05 UTC") into the
// IMF-fixdate ServeContent reads. Anything else is returned as it is:
// either ServeContent parses it, or it ignores it as Python does.
func utcDate(v string) string {
	if _, err := http.ParseTime(v); err == nil {
		return v
	}
	for _, zone := range []string{" +0000", " -0000", " UTC", " UT", " Z"} {
		if base, ok := strings.CutSuffix(v, zone); ok {
			if t, err := http.ParseTime(base + " GMT"); err == nil {
				return t.Format(http.TimeFormat)
			}
		}
	}
	return v
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// etag identifies one version of a file: inode, size and modification time
// in nanoseconds. Strong, so If-Range can use it.
func etag(ino uint64, size int64, mtime time.Time) string {
	var b [3 + 3*17]byte
	t := append(b[:0], '"')
	t = strconv.AppendUint(t, ino, 16)
	t = append(t, '-')
	t = strconv.AppendInt(t, size, 16)
	t = append(t, '-')
	t = strconv.AppendInt(t, mtime.UnixNano(), 16)
	return string(append(t, '"'))
}

// deny applies the policy to a clean absolute path: CGI directories are
// 403 and dotfiles 404 (unless h.Dotfiles).
func (h *Handler) deny(p string) (int, string) {
	if h.inCGIDir(p) {
		return http.StatusForbidden, msgForbidden
	}
	if h.hidden(p) {
		return http.StatusNotFound, msgNotFound
	}
	return 0, ""
}

// inCGIDir reports whether clean path p is a CGI directory or lies in one.
// It is the gateway's decision (cleaned path, whole segments, case as on
// disk), so a path the gateway sent here as static yet naming a script —
// which it should never do — still does not leak the script's source.
func (h *Handler) inCGIDir(p string) bool {
	for _, d := range h.CGIDirs {
		if !strings.HasPrefix(d, "/") {
			d = "/" + d
		}
		d = path.Clean(d) // no copy when d is clean already, as the gateway's are
		if d == "/" {
			continue
		}
		if rest, ok := strings.CutPrefix(p, d); ok && (rest == "" || rest[0] == '/') {
			return true
		}
	}
	return false
}

// hidden reports whether clean path p has a component starting with "."
// and dotfiles are off (/.git/config, /.htpasswd: SECURITY.md case 5).
func (h *Handler) hidden(p string) bool {
	if h.Dotfiles {
		return false
	}
	return strings.HasPrefix(p, ".") || strings.Contains(p, "/.")
}

// absPath turns a root-relative path from resolve into a clean absolute one.
func absPath(rel string) string {
	if rel == "." {
		return "/"
	}
	return "/" + rel
}

// requestPath is the request's path as Python's translate_path sees it.
type requestPath struct {
	clean         string // decoded once, cleaned, absolute: "/a/b"
	trailingSlash bool   // the raw path ends in "/" (a file so named is 404)
	decoded       string // decoded, not cleaned
	raw           string // as sent, without the fragment; starts with "/"
	query         string // the raw query, without "?"
	frag          string // the fragment, without "#", when hasFrag
	hasFrag       bool
}

// display is the decoded path for the listing title.
func (p requestPath) display() string { return "/" + strings.TrimLeft(p.decoded, "/") }

// redirect is the Location for a directory named without its slash.
func (p requestPath) redirect() string {
	// A Location starting with "//" (or "/\", which browsers read alike)
	// would send the client to another host (Python's CVE-2021-28861
	// open redirect): collapse leading slashes, and keep backslashes
	// encoded.
	loc := strings.ReplaceAll("/"+strings.TrimLeft(p.raw, "/")+"/", `\`, "%5C")
	if strings.HasPrefix(loc, "//") {
		loc = "/" // only for a path of slashes, which is never redirected
	}
	if p.query != "" {
		loc += "?" + p.query
	}
	if p.hasFrag {
		loc += "#" + p.frag // Python keeps it too
	}
	return loc
}

// parsePath derives the request path like Python's translate_path: the
// query is already split off by net/http; a fragment (a literal "#", which
// browsers never send) is dropped; the path is percent-decoded exactly once
// (%252e stays %2e: SECURITY.md case 2) and cleaned lexically, never above
// the root. NUL, CR and LF are refused (SECURITY.md case 3). Only the clean
// path is built here; the listing title and the redirect, which few
// requests need, are built by display and redirect.
func parsePath(u *url.URL) (requestPath, bool) {
	raw := u.EscapedPath()
	if u.RawPath != "" {
		// EscapedPath drops a RawPath that holds a literal "#"; keep it so
		// the fragment can be cut where the client put it.
		if p, err := url.PathUnescape(u.RawPath); err == nil && p == u.Path {
			raw = u.RawPath
		}
	}
	raw, frag, hasFrag := strings.Cut(raw, "#")
	if !strings.HasPrefix(raw, "/") {
		raw = "/" + raw // "" (a bare fragment, or a handcrafted URL) is the root
	}
	decoded, err := url.PathUnescape(raw)
	if err != nil || strings.ContainsAny(decoded, "\x00\r\n") {
		return requestPath{}, false
	}
	return requestPath{
		// decoded starts with "/", as raw does: Clean copies only a path
		// that is not clean.
		clean:         path.Clean(decoded),
		trailingSlash: strings.HasSuffix(raw, "/"),
		decoded:       decoded,
		raw:           raw,
		query:         u.RawQuery,
		frag:          frag,
		hasFrag:       hasFrag,
	}, true
}

// pyRepr quotes a method name the way Python's %r does in "Unsupported
// method ('POST')". Methods are HTTP tokens, so only the quote choice
// matters.
func pyRepr(s string) string {
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		return `"` + s + `"`
	}
	return "'" + strings.ReplaceAll(s, "'", `\'`) + "'"
}
