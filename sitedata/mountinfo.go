package sitedata

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// mount is one line of /proc/self/mountinfo (proc(5)).
type mount struct {
	major, minor uint32
	root         string // the directory of the filesystem mounted here
	point        string // the mount point
	options      []string
	fstype       string
	source       string
}

func (m mount) has(option string) bool {
	for _, o := range m.options {
		if o == option {
			return true
		}
	}
	return false
}

// topMount returns the mount at point that is visible there (the last one
// mounted on it), or false when point is not a mount point.
func topMount(mountinfo io.Reader, point string) (mount, bool, error) {
	var top mount
	found := false
	s := bufio.NewScanner(mountinfo)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		m, err := parseMountinfoLine(s.Text())
		if err != nil {
			return mount{}, false, err
		}
		if m.point == point {
			top, found = m, true
		}
	}
	if err := s.Err(); err != nil {
		return mount{}, false, fmt.Errorf("reading mountinfo: %w", err)
	}
	return top, found, nil
}

// parseMountinfoLine parses
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// whose paths escape space, tab, newline and backslash in octal (\040).
func parseMountinfoLine(line string) (mount, error) {
	bad := func(why string) (mount, error) {
		return mount{}, fmt.Errorf("mountinfo line %q: %s", line, why)
	}
	fields := strings.Fields(line)
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || len(fields) < sep+3 {
		return bad("too few fields")
	}
	maj, min, ok := strings.Cut(fields[2], ":")
	if !ok {
		return bad("no major:minor")
	}
	major, err1 := strconv.ParseUint(maj, 10, 32)
	minor, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return bad("bad major:minor")
	}
	return mount{
		major:   uint32(major),
		minor:   uint32(minor),
		root:    unescapeMountinfo(fields[3]),
		point:   unescapeMountinfo(fields[4]),
		options: strings.Split(fields[5], ","),
		fstype:  fields[sep+1],
		source:  unescapeMountinfo(fields[sep+2]),
	}, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\ooo).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && '0' <= s[i+1] && s[i+1] <= '3' && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }
