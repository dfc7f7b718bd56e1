package static

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// maxSymlinks bounds the links followed for one path, like the kernel's 40.
const maxSymlinks = 40

var (
	// errEscapes: a symlink leads out of the site root (an absolute
	// target, or too many ".."). Never followed (SECURITY.md case 4).
	errEscapes = errors.New("symlink leads out of the site root")
	// errLoop: too many symlinks.
	errLoop = errors.New("too many levels of symbolic links")
)

// resolve follows the symlinks of rel (a clean, slash-separated path
// relative to root; "." is the root) and returns the path they lead to,
// relative to root, free of symlinks and of "." and ".." components, with
// its FileInfo. It fails with errEscapes when a link leads out of the root,
// errLoop on a loop, or the error of the component that does not exist.
//
// os.Root already refuses every escape when a file is opened; resolve adds
// the real location so that the dotfile and CGI-directory rules apply to
// where a link points, not only to its name: a link "src -> cgi-bin" must not
// serve script source, nor "cfg -> .env" a dotfile. A link swapped after
// resolve still cannot leave the root, as the file is opened through it.
func resolve(root *os.Root, rel string) (string, fs.FileInfo, error) {
	var done []string // resolved components, none a symlink
	var fi fs.FileInfo
	todo := splitPath(rel)
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				return "", nil, fmt.Errorf("%q: %w", rel, errEscapes)
			}
			done = done[:len(done)-1]
			fi = nil
			continue
		}
		cur := joinPath(append(done, c))
		var err error
		fi, err = root.Lstat(cur)
		if err != nil {
			return "", nil, fmt.Errorf("lstat %q: %w", cur, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		if links++; links > maxSymlinks {
			return "", nil, fmt.Errorf("%q: %w", rel, errLoop)
		}
		target, err := root.Readlink(cur)
		if err != nil {
			return "", nil, fmt.Errorf("readlink %q: %w", cur, err)
		}
		if path.IsAbs(target) {
			// Python follows these; os.Root never does (it cannot know
			// where the root lies in the host's tree).
			return "", nil, fmt.Errorf("%q -> %q: %w", cur, target, errEscapes)
		}
		todo = append(splitPath(target), todo...)
		fi = nil
	}
	out := joinPath(done)
	if fi == nil {
		// The root itself, or a path ending in "..".
		var err error
		if fi, err = root.Lstat(out); err != nil {
			return "", nil, fmt.Errorf("lstat %q: %w", out, err)
		}
	}
	return out, fi, nil
}

func splitPath(p string) []string {
	if p == "" || p == "." {
		return nil
	}
	return strings.Split(p, "/")
}

func joinPath(parts []string) string {
	if len(parts) == 0 {
		return "."
	}
	return strings.Join(parts, "/")
}
