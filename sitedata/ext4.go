package sitedata

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Sizes that choose a new volume's layout (mkfsArgs).
const (
	// journalFrom: mke2fs gives a small filesystem a journal of 1024
	// blocks at least (1 MiB here), a quarter of a 4 MiB volume; from
	// 16 MiB up it costs a sixteenth or less, and buys crash consistency
	// for the scripts' SQLite files.
	journalFrom = 16 << 20
	// smallUpTo: like mke2fs's "small" type, 1 KiB blocks and an inode
	// per 4 KiB, suited to many tiny files (counters, sessions); above,
	// its defaults.
	smallUpTo = 512 << 20
)

// mkfsArgs returns the arguments of mkfs.ext4 making an ext4 filesystem of
// size bytes in image, its root owned by uid:gid.
//
// Every choice is explicit, so that a host's /etc/mke2fs.conf changes only
// the feature set of its own e2fsprogs. A volume keeps its block size and
// (lack of) journal when it grows.
func mkfsArgs(image string, size int64, uid, gid uint32) []string {
	blockSize, inodeRatio := "4096", "16384"
	if size < smallUpTo {
		blockSize, inodeRatio = "1024", "4096"
	}
	args := []string{
		"-t", "ext4",
		"-q",
		// No blocks reserved for root: the site's scripts are the only
		// users, and with reserved blocks they would hit ENOSPC before
		// the quota.
		"-m", "0",
		"-b", blockSize,
		"-i", inodeRatio,
		"-I", "256",
		// Initialise inode tables and journal now: no kernel thread
		// writes them behind the site's back after the mount.
		// nodiscard: a new sparse file has nothing to discard.
		"-E", "lazy_itable_init=0,lazy_journal_init=0,nodiscard,root_owner=" +
			strconv.FormatUint(uint64(uid), 10) + ":" + strconv.FormatUint(uint64(gid), 10),
	}
	if size < journalFrom {
		args = append(args, "-O", "^has_journal")
	}
	return append(args, image)
}

// superblock is what Open needs of an ext4 superblock.
type superblock struct {
	blocks    uint64
	blockSize uint32
}

// superblockOffset is where ext4's primary superblock starts, and
// superblockSize how many of its bytes parseSuperblock reads.
const (
	superblockOffset = 1024
	superblockSize   = 1024
)

var errNotExt4 = errors.New("not an ext4 filesystem")

// parseSuperblock reads the size of an ext4 filesystem from its
// superblock, b (superblockSize bytes from superblockOffset).
func parseSuperblock(b []byte) (superblock, error) {
	const (
		magic       = 0xef53
		incompat64  = 0x80
		maxLogBlock = 6 // 64 KiB blocks, ext4's largest
	)
	le := binary.LittleEndian
	if len(b) < superblockSize || le.Uint16(b[0x38:]) != magic {
		return superblock{}, errNotExt4
	}
	logBlock := le.Uint32(b[0x18:])
	if logBlock > maxLogBlock {
		return superblock{}, fmt.Errorf("%w: block size 1024<<%d", errNotExt4, logBlock)
	}
	blocks := uint64(le.Uint32(b[0x04:]))
	if le.Uint32(b[0x60:])&incompat64 != 0 {
		blocks |= uint64(le.Uint32(b[0x150:])) << 32
	}
	return superblock{blocks: blocks, blockSize: 1024 << logBlock}, nil
}
