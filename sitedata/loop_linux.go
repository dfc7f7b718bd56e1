//go:build linux

package sitedata

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Where the kernel shows loop devices and mounts.
const (
	loopControl   = "/dev/loop-control"
	sysDevBlock   = "/sys/dev/block"
	mountinfoPath = "/proc/self/mountinfo"
)

// attach attaches img to a free loop device and returns the device, open.
// The device clears itself (LO_FLAGS_AUTOCLEAR) when its last user is
// gone: closing it before mounting it detaches it; once mounted, the
// unmount does.
func attach(img *os.File, loopControl string) (*os.File, error) {
	ctl, err := os.OpenFile(loopControl, os.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("a quota needs a loop device, and this host has none (%w): load the loop module (modprobe loop), or in a container give it the host's /dev/loop-control and /dev/loop*; or give no quota", err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening the loop control device: %w", err)
	}
	defer ctl.Close()
	cfg := unix.LoopConfig{
		Fd:   uint32(img.Fd()),
		Info: unix.LoopInfo64{Flags: unix.LO_FLAGS_AUTOCLEAR},
	}
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], img.Name()) // what losetup shows
	const tries = 16
	for range tries {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("finding a free loop device (%s): %w", loopControl, err)
		}
		path := "/dev/loop" + strconv.Itoa(n)
		dev, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s offered loop device %s, which this /dev lacks (a container without the host's /dev/loop*?): %w", loopControl, path, err)
		}
		if err != nil {
			return nil, fmt.Errorf("opening loop device: %w", err)
		}
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("attaching loop device %s (LOOP_CONFIGURE, Linux 5.8 and later): %w", path, err)
		}
		// Another process took it between LOOP_CTL_GET_FREE and now.
	}
	return nil, fmt.Errorf("no free loop device after %d tries: others took each one first", tries)
}

// loopBackingFile returns the file behind block device major:minor, and
// false if it is not a loop device.
func loopBackingFile(major, minor uint32) (string, bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d:%d/loop/backing_file", sysDevBlock, major, minor))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("sitedata: %w", err)
	}
	return strings.TrimSuffix(string(b), "\n"), true, nil
}

// loopDevicePath returns the /dev path of block device major:minor.
func loopDevicePath(major, minor uint32) (string, error) {
	link, err := os.Readlink(fmt.Sprintf("%s/%d:%d", sysDevBlock, major, minor))
	if err != nil {
		return "", fmt.Errorf("sitedata: %w", err)
	}
	return "/dev/" + filepath.Base(link), nil
}

// findMount returns the mount visible at point, a real path.
func findMount(point string) (mount, bool, error) {
	f, err := os.Open(mountinfoPath)
	if err != nil {
		return mount{}, false, fmt.Errorf("sitedata: %w", err)
	}
	defer f.Close()
	m, ok, err := topMount(f, point)
	if err != nil {
		return mount{}, false, fmt.Errorf("sitedata: %w", err)
	}
	return m, ok, nil
}
