package sandbox

import (
	"fmt"
	"hash/fnv"
)

// DataMountPoint is where a job's DataDir appears inside its container.
const DataMountPoint = "/data"

// UserRange is a site's pair of host ids in a user namespace: the
// container's uid and gid 0 map to Root (used only while the runtime sets
// the container up; the script never runs as it), and 65534, the script's
// uid and gid, to Nobody. Nothing else inside is mapped, so every file of
// the host that is not the site's own appears as the overflow id.
type UserRange struct {
	Root   uint32
	Nobody uint32
}

// The host ids sites' user namespaces take: pairs in [siteIDFirst,
// siteIDLast], inside the range systemd sets aside for containers' ids
// (524288–1879048191), far above any account's.
const (
	siteIDFirst = 0x4000_0000
	siteIDLast  = 0x6fff_ffff
	siteIDPairs = (siteIDLast - siteIDFirst + 1) / 2
)

// SiteUsers returns the host ids of site name's user namespace. They
// depend on the name only, so they are the same on every start and every
// host, and a site's data keeps its owner; two names may collide (about
// one chance in 400 million per pair of sites), which the configuration
// check refuses, and a site may then set its ids itself (SiteUsersAt).
func SiteUsers(name string) UserRange {
	h := fnv.New64a()
	h.Write([]byte(name))
	return SiteUsersAt(siteIDFirst + 2*uint32(h.Sum64()%siteIDPairs))
}

// SiteUsersAt returns the range whose root is host id root and whose
// nobody is root+1.
func SiteUsersAt(root uint32) UserRange { return UserRange{Root: root, Nobody: root + 1} }

// Check refuses a range that would map onto host root or the host's own
// nobody, or that wraps around.
func (u UserRange) Check() error {
	switch {
	case u.Root == 0 || u.Nobody == 0:
		return fmt.Errorf("user range %d/%d: host id 0 is root", u.Root, u.Nobody)
	case u.Root == nobody || u.Nobody == nobody:
		return fmt.Errorf("user range %d/%d: host id %d is the host's nobody, shared by every site without a user namespace", u.Root, u.Nobody, nobody)
	case u.Root == u.Nobody, u.Nobody == 1<<32-1, u.Root == 1<<32-1:
		return fmt.Errorf("user range %d/%d: want two distinct valid ids", u.Root, u.Nobody)
	}
	return nil
}
