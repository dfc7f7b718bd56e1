package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
)

// Errors of resolveScript. The handler maps them with errors.Is; the wrapped
// detail is for the log only, never for the client.
var (
	// errNoScript: nothing to run at that path (404). The script is missing,
	// or the path names the CGI directory itself or a directory in it.
	errNoScript = errors.New("no such CGI script")
	// errForbidden: a script exists but policy forbids running it (403).
	errForbidden = errors.New("CGI script forbidden")
)

// maxSymlinkHops bounds the symlinks followed while resolving one request,
// as the kernel's ELOOP limit does.
const maxSymlinkHops = 40

// script is a resolved CGI request.
type script struct {
	Dir      string // URL path of the CGI directory it lives in, e.g. "/cgi-bin"
	Name     string // SCRIPT_NAME: URL path of the script, e.g. "/cgi-bin/sub/env.sh"
	Rel      string // path of the script relative to the CGI directory: "sub/env.sh", symlinks resolved
	PathInfo string // PATH_INFO, decoded, "" or starting with "/"
}

// resolveScript walks urlPath (already decoded and cleaned by the gateway: starts
// with cgiDir+"/", no "." or ".." segments, no NUL) inside the site root the way
// Python's run_cgi does: the first component after cgiDir that is not a directory
// is the script; the rest is PATH_INFO.
//
// Every look-up goes through root, so nothing outside the site root is touched.
// Symlinks inside the CGI directory are resolved here, component by component,
// and must stay inside it; Rel is the resolved path, so what was checked is what
// the sandbox runs (the sandbox mounts only the CGI directory, and a symlink
// swapped after this check resolves inside the container, never on the host).
//
// Policy (suEXEC's lessons, SECURITY.md case 17), each a 403 (errForbidden):
// the script must be a regular file, readable and executable by "other" (it
// runs as uid 65534, which owns nothing), neither world-writable nor
// setuid/setgid; every directory from the CGI directory down to the script must
// be searchable by "other" and not world-writable; no symlink on the way may
// lead out of the CGI directory (absolute targets always do: inside the
// container they would name the image's files).
func resolveScript(root *os.Root, cgiDir, urlPath string) (script, error) {
	if !strings.HasPrefix(cgiDir, "/") || strings.HasSuffix(cgiDir, "/") || !strings.HasPrefix(urlPath, cgiDir+"/") {
		return script{}, fmt.Errorf("%w: %q is not under CGI directory %q", errNoScript, urlPath, cgiDir)
	}
	comps := strings.Split(urlPath[len(cgiDir)+1:], "/")
	for i, c := range comps {
		// The gateway cleans paths; refuse anything that slipped through rather
		// than interpret it (an empty last component is a trailing slash).
		if c == "." || c == ".." || strings.IndexByte(c, 0) >= 0 || (c == "" && i != len(comps)-1) {
			return script{}, fmt.Errorf("%w: malformed path %q", errNoScript, urlPath)
		}
	}

	w := walker{root: root, base: strings.TrimPrefix(cgiDir, "/")}
	fi, err := root.Stat(w.base)
	switch {
	case isNotFound(err):
		return script{}, fmt.Errorf("%w: CGI directory %q: %w", errNoScript, cgiDir, err)
	case err != nil:
		return script{}, fmt.Errorf("CGI directory %q: %w", cgiDir, err)
	case !fi.IsDir():
		return script{}, fmt.Errorf("%w: CGI directory %q is not a directory", errNoScript, cgiDir)
	}
	if err := checkDir(cgiDir, fi); err != nil {
		return script{}, fmt.Errorf("%s: %w", urlPath, err)
	}

	var dir []string // resolved directory so far, relative to the CGI directory
	for i, c := range comps {
		if c == "" {
			return script{}, fmt.Errorf("%w: %q names a directory", errNoScript, urlPath)
		}
		real, fi, err := w.step(dir, c)
		if err != nil {
			return script{}, fmt.Errorf("%s: %w", urlPath, err)
		}
		if fi.IsDir() {
			dir = real
			continue
		}
		if err := checkScript(urlPath, fi); err != nil {
			return script{}, err
		}
		s := script{
			Dir:  cgiDir,
			Name: cgiDir + "/" + strings.Join(comps[:i+1], "/"),
			Rel:  strings.Join(real, "/"),
		}
		if rest := comps[i+1:]; len(rest) > 0 {
			s.PathInfo = "/" + strings.Join(rest, "/")
		}
		return s, nil
	}
	return script{}, fmt.Errorf("%w: %q names a directory", errNoScript, urlPath)
}

// walker resolves paths below the CGI directory base (relative to root).
type walker struct {
	root *os.Root
	base string
	hops int
}

func (w *walker) lstat(real []string) (fs.FileInfo, error) {
	if len(real) == 0 {
		return w.root.Stat(w.base)
	}
	return w.root.Lstat(w.base + "/" + strings.Join(real, "/"))
}

// step resolves the component name inside the resolved directory dir. It
// returns the resolved path (no symlinks in it) and what it names.
func (w *walker) step(dir []string, name string) ([]string, fs.FileInfo, error) {
	real := append(dir[:len(dir):len(dir)], name)
	fi, err := w.lstat(real)
	switch {
	case isNotFound(err):
		return nil, nil, fmt.Errorf("%w: %w", errNoScript, err)
	case err != nil:
		return nil, nil, err
	case fi.IsDir():
		if err := checkDir(cgiDirRel(real), fi); err != nil {
			return nil, nil, err
		}
		return real, fi, nil
	case fi.Mode()&fs.ModeSymlink == 0:
		return real, fi, nil
	}

	// SECURITY.md cases 4 and 17: follow the link ourselves, inside the CGI
	// directory only.
	w.hops++
	if w.hops > maxSymlinkHops {
		return nil, nil, fmt.Errorf("%w: too many levels of symbolic links", errForbidden)
	}
	link := strings.Join(real, "/")
	target, err := w.root.Readlink(w.base + "/" + link)
	if err != nil {
		return nil, nil, err
	}
	if path.IsAbs(target) {
		return nil, nil, fmt.Errorf("%w: symlink %q -> %q leads out of the CGI directory", errForbidden, link, target)
	}
	cur := dir[:len(dir):len(dir)]
	fi = nil // nil while cur is a directory already known to be one
	for t := range strings.SplitSeq(target, "/") {
		if fi != nil && !fi.IsDir() {
			return nil, nil, fmt.Errorf("%w: symlink %q -> %q: %s is not a directory", errNoScript, link, target, strings.Join(cur, "/"))
		}
		switch t {
		case "", ".":
		case "..":
			if len(cur) == 0 {
				return nil, nil, fmt.Errorf("%w: symlink %q -> %q leads out of the CGI directory", errForbidden, link, target)
			}
			cur, fi = cur[:len(cur)-1], nil
		default:
			cur, fi, err = w.step(cur, t)
			if err != nil {
				return nil, nil, err
			}
		}
	}
	if fi == nil {
		if fi, err = w.lstat(cur); err != nil {
			return nil, nil, err
		}
	}
	return cur, fi, nil
}

// cgiDirRel names a resolved path for the log, relative to the CGI directory.
func cgiDirRel(real []string) string {
	return "CGI directory/" + strings.Join(real, "/")
}

// checkDir applies the policy to a directory on the way to a script.
func checkDir(dir string, fi fs.FileInfo) error {
	perm := fi.Mode().Perm()
	if perm&0o002 != 0 {
		return fmt.Errorf("%w: directory %s is world-writable (%s)", errForbidden, dir, fi.Mode())
	}
	if perm&0o001 == 0 {
		return fmt.Errorf("%w: directory %s is not searchable by uid 65534 (%s; chmod o+x)", errForbidden, dir, fi.Mode())
	}
	return nil
}

// checkScript applies the policy to the script itself.
func checkScript(where string, fi fs.FileInfo) error {
	mode := fi.Mode()
	switch perm := mode.Perm(); {
	case !mode.IsRegular():
		return fmt.Errorf("%w: %s is not a regular file (%s)", errForbidden, where, mode.Type())
	case mode&(fs.ModeSetuid|fs.ModeSetgid) != 0:
		return fmt.Errorf("%w: %s has the setuid or setgid bit (%s)", errForbidden, where, mode)
	case perm&0o002 != 0:
		return fmt.Errorf("%w: %s is world-writable (%s)", errForbidden, where, mode)
	case perm&0o111 == 0:
		return fmt.Errorf("%w: %s is not executable (%s)", errForbidden, where, mode)
	case perm&0o005 != 0o005:
		// The script runs as uid 65534, which owns nothing: only the "other"
		// bits count, and the interpreter must be able to read it.
		return fmt.Errorf("%w: %s is not readable and executable by uid 65534 (%s; chmod o+rx)", errForbidden, where, mode)
	}
	return nil
}

func isNotFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
