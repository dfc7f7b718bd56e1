package static

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// rootDir is a descriptor of the site root for openat2(2), which os.Root
// does not expose. The zero value opens it on first use; it stays open as
// long as the Handler.
type rootDir struct {
	once sync.Once
	f    *os.File // holds fd open
	fd   int      // -1 when the root could not be opened
}

func (d *rootDir) get(root *os.Root) int {
	d.once.Do(func() {
		d.fd = -1
		if f, err := root.Open("."); err == nil {
			d.f, d.fd = f, int(f.Fd())
		}
	})
	return d.fd
}

// serveRegular serves rel, a clean path relative to the root, the short
// way when it names a regular file reached through no symlink, and
// reports whether it did. Such a path is its own resolved path and the
// caller has applied the policy to it, so resolve and a second check would
// decide nothing new; they cost a syscall per path component, os.Root as
// many again to open the file, and the open an epoll_ctl. Here it takes
// three: an fstatat, so that nothing but a regular file is ever opened (as
// with resolve's lstat); an openat2 that the kernel keeps below the root
// (RESOLVE_BENEATH) and fails at any symlink on the way
// (RESOLVE_NO_SYMLINKS), so that the file opened is the one the policy
// judged, wherever a link may have been put since; and an fstat of what it
// opened. Anything else — missing, a symlink on the way, not a regular
// file, a kernel before 5.6 or a seccomp filter without openat2 — returns
// false, and the caller takes the general way, which gives the answer.
func (h *Handler) serveRegular(w http.ResponseWriter, r *http.Request, rel, name string) bool {
	if rel == "" {
		return false
	}
	dir := h.root.get(h.Root)
	if dir < 0 {
		return false
	}
	// The fstatat may pass through links, out of the root even: it only
	// decides whether the openat2 is tried, which alone is trusted.
	var st unix.Stat_t
	if err := unix.Fstatat(dir, rel, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false
	}
	// O_NONBLOCK: should the file be swapped for a FIFO after the fstatat,
	// the open must not hang; the fstat below then refuses it.
	fd, err := unix.Openat2(dir, rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
	})
	if err != nil {
		return false
	}
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return false
	}
	mtime := time.Unix(st.Mtim.Unix())
	if st.Size > smallFile {
		f := os.NewFile(uintptr(fd), rel) // for sendfile, which wants an *os.File
		defer f.Close()
		h.serveContent(w, r, name, f, st.Size, mtime, st.Ino)
		return true
	}
	defer unix.Close(fd)
	h.serveContent(w, r, name, io.NewSectionReader(fdReader(fd), 0, st.Size), st.Size, mtime, st.Ino)
	return true
}

// fdReader reads a file descriptor with pread(2).
type fdReader int

func (fd fdReader) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Pread(int(fd), p[n:], off+int64(n))
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return n, &os.PathError{Op: "pread", Path: "", Err: err}
		case m == 0:
			return n, io.EOF
		}
		n += m
	}
	return n, nil
}
