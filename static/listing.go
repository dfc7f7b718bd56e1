package static

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/cgibox/cgibox/internal/safetext"
)

// maxListEntries bounds a listing page (and the memory it takes): a
// directory with more entries shows the first ones read, sorted, and says so.
const maxListEntries = 10000

// listEntry is one line of a listing.
type listEntry struct {
	name string
	key  string // sort key: the name lower-cased, as Python sorts
	dir  bool   // a directory, or a symlink to one
	link bool   // a symlink
}

// list writes the listing of directory resolved (root-relative), titled with
// the request's decoded path. Like Python's list_directory: entries sorted
// case-insensitively, directories with "/" appended to name and link,
// symlinks with "@" appended to the name only, names HTML-escaped and
// percent-encoded in links. Unlike Python: the text of a name (and of the
// title) has its control characters, bidirectional controls and invalid
// UTF-8 written as visible escapes (see safetext.Escape), so that a name
// can neither fake its extension nor drive the terminal of someone who
// fetches the page with curl; its link still holds the exact bytes. And
// dotfiles are left out unless Dotfiles is set, and so are symlinks that
// lead out of the root or to a hidden name, which cgibox would not serve
// anyway.
func (h *Handler) list(w http.ResponseWriter, r *http.Request, resolved, display string) {
	d, err := h.Root.Open(resolved)
	if err != nil {
		h.fail(w, r, http.StatusNotFound, msgNoListing)
		return
	}
	defer d.Close()
	ents, err := d.ReadDir(maxListEntries + 1)
	if err != nil && !errors.Is(err, io.EOF) {
		h.fail(w, r, http.StatusNotFound, msgNoListing)
		return
	}
	truncated := len(ents) > maxListEntries
	if truncated {
		ents = ents[:maxListEntries]
	}
	items := make([]listEntry, 0, len(ents))
	for _, e := range ents {
		it, ok := h.entry(resolved, e)
		if ok {
			items = append(items, it)
		}
	}
	// Python: list.sort(key=lambda a: a.lower()), a stable sort over
	// os.listdir's arbitrary order; ties are broken by the name here so
	// the page is the same on every run.
	slices.SortFunc(items, func(a, b listEntry) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	body := listingPage(display, items, truncated)
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		io.WriteString(w, body) // a failed write is the client's loss
	}
}

// entry classifies one directory entry; ok is false for entries not shown.
func (h *Handler) entry(dir string, e fs.DirEntry) (listEntry, bool) {
	name := e.Name()
	it := listEntry{name: name, key: strings.ToLower(name), dir: e.IsDir()}
	if !h.Dotfiles && strings.HasPrefix(name, ".") {
		return it, false
	}
	if e.Type()&fs.ModeSymlink == 0 {
		return it, true
	}
	it.link = true
	resolved, fi, err := resolve(h.Root, path.Join(dir, name))
	switch {
	case errors.Is(err, errEscapes):
		return it, false
	case err != nil:
		// Broken or looping, inside the root: listed, as Python does.
		return it, true
	case h.hidden(absPath(resolved)):
		return it, false
	}
	it.dir = fi.IsDir()
	return it, true
}

func listingPage(display string, items []listEntry, truncated bool) string {
	title := "Directory listing for " + escapeHTML(safetext.Escape(display))
	var b strings.Builder
	b.WriteString("<!DOCTYPE HTML>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	b.WriteString("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	b.WriteString("<title>" + title + "</title>\n")
	b.WriteString("<style>" + pageStyle + "</style>\n</head>\n")
	b.WriteString("<body>\n<h1>" + title + "</h1>\n<hr>\n<ul>\n")
	for _, it := range items {
		link, shown := it.name, it.name
		if it.dir {
			link += "/"
			shown += "/"
		}
		if it.link {
			shown = it.name + "@" // a link to a directory shows "@" and links with "/"
		}
		b.WriteString(`<li><a href="` + quote(link) + `">`)
		b.WriteString(escapeHTML(safetext.Escape(shown)))
		b.WriteString("</a></li>\n")
	}
	b.WriteString("</ul>\n")
	if truncated {
		b.WriteString("<p>Only the first " + strconv.Itoa(maxListEntries) + " entries are listed.</p>\n")
	}
	b.WriteString("<hr>\n</body>\n</html>\n")
	return b.String()
}

// quote is Python's urllib.parse.quote(s) with its default safe="/": every
// byte but ASCII letters, digits, "_.-~" and "/" becomes %XX (upper-case
// hex). Bytes of a name that is not valid UTF-8 are encoded as they are, so
// the link leads back to the file.
func quote(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '_', c == '.', c == '-', c == '~', c == '/':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}
