package sitedata

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestOptionsCheck(t *testing.T) {
	tests := []struct {
		name      string
		in        Options
		wantImage string
		wantErr   string // a part of the error; empty: no error
	}{
		{name: "default image beside the directory", in: Options{Dir: "/srv/alice/data/", Quota: MinQuota}, wantImage: "/srv/alice/data.cgibox-quota.ext4"},
		{name: "image given", in: Options{Dir: "/srv/a", Quota: 4 << 20, Image: "/var/lib/q/../q/a.img"}, wantImage: "/var/lib/q/a.img"},
		{name: "no quota", in: Options{Dir: "/srv/a"}, wantImage: "/srv/a.cgibox-quota.ext4"},
		{name: "no dir", in: Options{}, wantErr: "no data directory"},
		{name: "relative dir", in: Options{Dir: "srv/a"}, wantErr: `"srv/a" is not an absolute path`},
		{name: "root", in: Options{Dir: "/."}, wantErr: "cannot be /"},
		{name: "negative quota", in: Options{Dir: "/srv/a", Quota: -1}, wantErr: "quota -1 bytes for /srv/a is negative"},
		{name: "quota too small", in: Options{Dir: "/srv/a", Quota: MinQuota - 1}, wantErr: "below the minimum of 1048576 (1 MiB)"},
		{name: "relative image", in: Options{Dir: "/srv/a", Quota: MinQuota, Image: "a.img"}, wantErr: `quota image "a.img" for /srv/a is not an absolute path`},
		{name: "image inside dir", in: Options{Dir: "/srv/a", Quota: MinQuota, Image: "/srv/a/q.img"}, wantErr: "inside the data directory /srv/a"},
		{name: "image is dir", in: Options{Dir: "/srv/a", Quota: MinQuota, Image: "/srv/a"}, wantErr: "inside the data directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.check()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("check(%+v) = %v, want no error", tt.in, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("check(%+v) = %v, want an error containing %q", tt.in, err, tt.wantErr)
			case tt.wantErr == "" && got.Image != tt.wantImage:
				t.Errorf("check(%+v).Image = %q, want %q", tt.in, got.Image, tt.wantImage)
			}
		})
	}
}

func TestParseMountinfoLine(t *testing.T) {
	tests := []struct {
		line string
		want mount
	}{
		{
			line: "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
			want: mount{major: 98, minor: 0, root: "/mnt1", point: "/mnt2", options: []string{"rw", "noatime"}, fstype: "ext3", source: "/dev/root"},
		},
		{
			line: `612 27 7:3 / /tmp/a\040b\134c\011d rw,nosuid,nodev,noexec,relatime - ext4 /dev/loop3 rw`,
			want: mount{major: 7, minor: 3, root: "/", point: "/tmp/a b\\c\td", options: []string{"rw", "nosuid", "nodev", "noexec", "relatime"}, fstype: "ext4", source: "/dev/loop3"},
		},
		{
			line: "45 27 254:0 /var/lib/docker /var/lib/docker rw shared:1 master:2 propagate_from:3 - ext4 /dev/vda rw,discard",
			want: mount{major: 254, minor: 0, root: "/var/lib/docker", point: "/var/lib/docker", options: []string{"rw"}, fstype: "ext4", source: "/dev/vda"},
		},
	}
	for _, tt := range tests {
		got, err := parseMountinfoLine(tt.line)
		if err != nil || !equalMount(got, tt.want) {
			t.Errorf("parseMountinfoLine(%q) = %+v, %v; want %+v", tt.line, got, err, tt.want)
		}
	}
	for _, line := range []string{"", "36 35 98:0 /mnt1 /mnt2 rw - ext3", "36 35 98-0 /a /b rw - ext3 src rw", "1 2 x:0 / /b rw - ext3 src rw"} {
		if m, err := parseMountinfoLine(line); err == nil {
			t.Errorf("parseMountinfoLine(%q) = %+v, want an error", line, m)
		}
	}
}

func equalMount(a, b mount) bool {
	return a.major == b.major && a.minor == b.minor && a.root == b.root && a.point == b.point &&
		slices.Equal(a.options, b.options) && a.fstype == b.fstype && a.source == b.source
}

func TestUnescapeMountinfo(t *testing.T) {
	tests := []struct{ in, want string }{
		{`/plain`, `/plain`},
		{`/a\040b`, `/a b`},
		{`/nl\012`, "/nl\n"},
		{`/back\134slash`, `/back\slash`},
		{`/short\04`, `/short\04`},
		{`/not\999`, `/not\999`},
		{`/trailing\`, `/trailing\`},
	}
	for _, tt := range tests {
		if got := unescapeMountinfo(tt.in); got != tt.want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTopMount(t *testing.T) {
	info := strings.Join([]string{
		"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw",
		"600 27 7:1 / /srv/a rw,nosuid - ext4 /dev/loop1 rw",
		"601 27 7:2 / /srv/ab rw - ext4 /dev/loop2 rw",
		"602 600 0:40 / /srv/a rw - tmpfs tmpfs rw",
		"",
	}, "\n")
	m, ok, err := topMount(strings.NewReader(info), "/srv/a")
	if err != nil || !ok || m.source != "tmpfs" {
		t.Errorf("topMount(/srv/a) = %+v, %v, %v; want the tmpfs mounted last", m, ok, err)
	}
	if m, ok, err := topMount(strings.NewReader(info), "/srv"); err != nil || ok {
		t.Errorf("topMount(/srv) = %+v, %v, %v; want not found", m, ok, err)
	}
	if _, _, err := topMount(strings.NewReader("garbage\n"), "/srv"); err == nil {
		t.Error("topMount of a bad line: no error")
	}
}

func TestParseSuperblock(t *testing.T) {
	sb := func(blocksLo, logBlock, incompat, blocksHi uint32, magic uint16) []byte {
		b := make([]byte, superblockSize)
		le := binary.LittleEndian
		le.PutUint32(b[0x04:], blocksLo)
		le.PutUint32(b[0x18:], logBlock)
		le.PutUint16(b[0x38:], magic)
		le.PutUint32(b[0x60:], incompat)
		le.PutUint32(b[0x150:], blocksHi)
		return b
	}
	tests := []struct {
		name    string
		b       []byte
		want    superblock
		wantErr bool
	}{
		{name: "4 MiB in 1 KiB blocks", b: sb(4096, 0, 0, 0, 0xef53), want: superblock{blocks: 4096, blockSize: 1024}},
		{name: "64bit adds the high word", b: sb(16, 2, 0x80, 1, 0xef53), want: superblock{blocks: 1<<32 + 16, blockSize: 4096}},
		{name: "high word ignored without 64bit", b: sb(16, 2, 0, 1, 0xef53), want: superblock{blocks: 16, blockSize: 4096}},
		{name: "bad magic", b: sb(16, 2, 0, 0, 0x1234), wantErr: true},
		{name: "absurd block size", b: sb(16, 30, 0, 0, 0xef53), wantErr: true},
		{name: "short", b: make([]byte, 100), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSuperblock(tt.b)
			if tt.wantErr {
				if !errors.Is(err, errNotExt4) {
					t.Errorf("parseSuperblock = %+v, %v; want errNotExt4", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseSuperblock = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestMkfsArgs(t *testing.T) {
	tests := []struct {
		size        int64
		block       string
		journalLess bool
	}{
		{size: MinQuota, block: "1024", journalLess: true},
		{size: journalFrom - 1, block: "1024", journalLess: true},
		{size: journalFrom, block: "1024"},
		{size: smallUpTo - 1, block: "1024"},
		{size: smallUpTo, block: "4096"},
	}
	for _, tt := range tests {
		args := mkfsArgs("/q.img", tt.size, 1073741825, 7)
		joined := strings.Join(args, " ")
		for _, want := range []string{"-t ext4", "-m 0", "-b " + tt.block, "root_owner=1073741825:7", "lazy_itable_init=0"} {
			if !strings.Contains(joined, want) {
				t.Errorf("mkfsArgs(size %d) = %q, want %q in it", tt.size, joined, want)
			}
		}
		if got := strings.Contains(joined, "^has_journal"); got != tt.journalLess {
			t.Errorf("mkfsArgs(size %d) = %q: journal-less %v, want %v", tt.size, joined, got, tt.journalLess)
		}
		if args[len(args)-1] != "/q.img" {
			t.Errorf("mkfsArgs(size %d) = %q, want the image last", tt.size, joined)
		}
	}
}
