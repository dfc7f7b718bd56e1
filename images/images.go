// Package images makes the runtime images CGI scripts run in, offline, from
// files of the host. Each image has a folder here (images/busybox/, …) with
// a human-readable recipe and the small files it names; Build turns a
// recipe into a docker-save archive (written with go-containerregistry)
// that sandbox.Manager.Import loads into containerd.
package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	gcrname "github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

//go:embed busybox perl python
var recipes embed.FS

// Registry is the registry part of every cgibox image reference. It is not
// a real registry: images are built locally and never pulled.
const Registry = "cgibox.local"

// Label keys recorded in every built image's config.
const (
	LabelImage        = "cgibox.image"
	LabelRecipeSHA256 = "cgibox.recipe.sha256"
	LabelPackage      = "cgibox.package" // + "." + Debian package name = its version
	LabelDebianSuite  = "cgibox.debian.suite"
)

// Ref is the containerd reference of the image built from recipe name:
// "cgibox.local/<name>:latest".
func Ref(name string) string { return Registry + "/" + name + ":latest" }

// Names lists the images Build knows.
func Names() []string {
	entries, _ := recipes.ReadDir(".")
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// Options tune BuildWith. The zero value builds without a cache, with the
// mirror of the host's apt configuration and no progress output.
type Options struct {
	// Progress receives a line per step (nil: none).
	Progress io.Writer
	// CacheDir keeps finished archives of Debian-based images, named
	// <name>-<recipe hash>.tar, and the Debian packages downloaded for them,
	// so that rebuilding an unchanged recipe takes seconds. "" means no
	// cache: every build starts from scratch in a temporary directory.
	CacheDir string
	// Mirror is the Debian mirror URL debootstrap downloads from; "" means
	// the one the host's apt configuration names for the suite.
	Mirror string
	// Suite replaces the Debian suite a recipe names ("": the recipe's,
	// or the host's own Debian suite when its apt sources have no other;
	// see debianSource).
	Suite string
}

// Result describes a finished build.
type Result struct {
	Name   string // image name (the recipe's name directive)
	Ref    string // containerd reference, Ref(Name)
	Size   int64  // bytes written to the archive
	Cached bool   // the archive came from Options.CacheDir
}

// Build builds the image of recipe name and writes it to archive as a
// docker-save tarball tagged Ref(name). It writes a line per step to
// progress (which may be nil). It keeps no cache; see BuildWith.
func Build(ctx context.Context, name string, archive io.Writer, progress io.Writer) error {
	if !slices.Contains(Names(), name) {
		return fmt.Errorf("images: no recipe %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	_, err := BuildWith(ctx, name, archive, Options{Progress: progress})
	return err
}

// BuildWith builds the image of a recipe and writes it to archive as a
// docker-save tarball tagged Ref(name). nameOrDir is the name of one of
// cgibox's own recipes (see Names) or a directory holding a file "recipe"
// and the files it names.
func BuildWith(ctx context.Context, nameOrDir string, archive io.Writer, opts Options) (Result, error) {
	rc, err := Open(nameOrDir)
	if err != nil {
		return Result{}, err
	}
	return rc.Build(ctx, archive, opts)
}

// Recipe is a parsed recipe with the folder its files come from.
type Recipe struct {
	// Name is the image name the recipe declares.
	Name string
	// SHA256 is the hex SHA-256 of the recipe file.
	SHA256 string
	dir    fs.FS
	r      *recipe
}

// Open reads one of cgibox's own recipes (a name from Names) or, when
// nameOrDir is not one of them, the recipe in the directory nameOrDir.
func Open(nameOrDir string) (*Recipe, error) {
	var dir fs.FS
	var where string
	if slices.Contains(Names(), nameOrDir) {
		sub, err := fs.Sub(recipes, nameOrDir)
		if err != nil {
			return nil, fmt.Errorf("images: %w", err)
		}
		dir, where = sub, nameOrDir+"/recipe"
	} else if st, err := os.Stat(nameOrDir); err == nil && st.IsDir() {
		dir, where = os.DirFS(nameOrDir), path.Join(nameOrDir, "recipe")
	} else {
		return nil, fmt.Errorf("images: no recipe %q (known: %s; or give a directory holding a file named recipe)",
			nameOrDir, strings.Join(Names(), ", "))
	}
	raw, err := fs.ReadFile(dir, "recipe")
	if err != nil {
		return nil, fmt.Errorf("images: %s: %w", where, err)
	}
	r, err := parseRecipe(raw)
	if err != nil {
		return nil, fmt.Errorf("images: %s: %w", where, err)
	}
	if dir != nil && slices.Contains(Names(), nameOrDir) && r.name != nameOrDir {
		return nil, fmt.Errorf("images: %s names the image %q", where, r.name)
	}
	sum := sha256.Sum256(raw)
	return &Recipe{Name: r.name, SHA256: hex.EncodeToString(sum[:]), dir: dir, r: r}, nil
}

// Build builds the image and writes it to archive as a docker-save tarball
// tagged Ref(rc.Name).
func (rc *Recipe) Build(ctx context.Context, archive io.Writer, opts Options) (Result, error) {
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	name, r := rc.Name, rc.r
	res := Result{Name: name, Ref: Ref(name)}
	step := func(format string, args ...any) {
		fmt.Fprintf(progress, "image %s: "+format+"\n", append([]any{name}, args...)...)
	}
	step("reading recipe (sha256 %s)", rc.SHA256[:16])
	labels := map[string]string{
		LabelImage:                        name,
		LabelRecipeSHA256:                 rc.SHA256,
		"org.opencontainers.image.title":  name,
		"org.opencontainers.image.source": "cgibox images/" + name + "/recipe",
	}
	if r.description != "" {
		labels["org.opencontainers.image.description"] = r.description
	}
	if r.debian != "" {
		return rc.buildDebian(ctx, archive, opts, labels, step)
	}
	for _, p := range r.packages {
		if v := debVersion(ctx, p); v != "" {
			labels[LabelPackage+"."+p] = v
			step("using Debian package %s %s", p, v)
		}
	}

	step("assembling the layer")
	layerTar, created, err := r.layer(ctx, rc.dir, step)
	if err != nil {
		return res, fmt.Errorf("images: %s: %w", name, err)
	}
	step("layer: %d bytes", len(layerTar))
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return res, fmt.Errorf("images: %s: layer: %w", name, err)
	}
	n, err := r.writeImage(ctx, name, layer, created, labels, archive, step)
	res.Size = n
	return res, err
}

// writeImage puts layer into an image with the recipe's config and labels
// and writes it to archive as a docker-save tarball.
func (r *recipe) writeImage(ctx context.Context, name string, layer v1.Layer, created time.Time,
	labels map[string]string, archive io.Writer, step func(string, ...any)) (int64, error) {
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return 0, fmt.Errorf("images: %s: %w", name, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return 0, fmt.Errorf("images: %s: %w", name, err)
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Created = v1.Time{Time: created}
	cf.Config.Env = r.env
	cf.Config.User = r.user
	cf.Config.WorkingDir = r.workdir
	cf.Config.Labels = labels
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return 0, fmt.Errorf("images: %s: config: %w", name, err)
	}
	tag, err := gcrname.NewTag(Ref(name))
	if err != nil {
		return 0, fmt.Errorf("images: %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	step("writing archive %s", tag.String())
	cw := &countingWriter{w: archive}
	if err := tarball.Write(tag, img, cw); err != nil {
		return cw.n, fmt.Errorf("images: %s: write archive: %w", name, err)
	}
	step("done: archive %d bytes (%s)", cw.n, HumanSize(cw.n))
	return cw.n, nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// HumanSize formats n bytes with a binary unit, e.g. "55.4 MiB".
func HumanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// recipe is a parsed recipe file.
type recipe struct {
	name, description string
	packages          []string // host packages the copied files come from
	debian            string   // suite of a debootstrap minbase base, or ""
	installs          []string // Debian packages installed on that base
	removes           []string // paths (last element may be a glob) removed from it
	steps             []recipeStep
	env               []string
	user, workdir     string
}

type recipeStep struct {
	op   string // copy, applets, file, dir
	args []string
	mode int64
	line int
}

func parseRecipe(b []byte) (*recipe, error) {
	r := &recipe{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		want := map[string]int{"name": 1, "package": 1, "copy": 3, "applets": 1, "file": 3,
			"dir": 2, "env": 1, "user": 1, "workdir": 1, "debian": 1, "remove": 1}
		op, args := f[0], f[1:]
		switch op {
		case "description":
			r.description = strings.Join(args, " ")
			continue
		case "install":
			if len(args) == 0 {
				return nil, fmt.Errorf("line %d: install takes one or more Debian package names", n)
			}
			for _, p := range args {
				if !debName.MatchString(p) {
					return nil, fmt.Errorf("line %d: %q is not a Debian package name", n, p)
				}
			}
			r.installs = append(r.installs, args...)
			continue
		}
		w, ok := want[op]
		if !ok {
			return nil, fmt.Errorf("line %d: unknown directive %q", n, op)
		}
		if len(args) != w {
			return nil, fmt.Errorf("line %d: %s takes %d arguments, got %d", n, op, w, len(args))
		}
		st := recipeStep{op: op, args: args, line: n}
		switch op {
		case "name":
			r.name = args[0]
			continue
		case "package":
			r.packages = append(r.packages, args[0])
			continue
		case "env":
			if k, _, ok := strings.Cut(args[0], "="); !ok || k == "" {
				return nil, fmt.Errorf("line %d: env %q is not KEY=VALUE", n, args[0])
			}
			r.env = append(r.env, args[0])
			continue
		case "user":
			r.user = args[0]
			continue
		case "workdir":
			r.workdir = args[0]
			continue
		case "debian":
			if !debName.MatchString(args[0]) {
				return nil, fmt.Errorf("line %d: %q is not a Debian suite name", n, args[0])
			}
			r.debian = args[0]
			continue
		case "remove":
			p := args[0]
			if !path.IsAbs(p) || path.Clean(p) != p || p == "/" || strings.ContainsAny(path.Dir(p), "*?[") {
				return nil, fmt.Errorf("line %d: remove %q: want a clean absolute path, a pattern only in its last element", n, p)
			}
			if _, err := path.Match(path.Base(p), ""); err != nil {
				return nil, fmt.Errorf("line %d: remove %q: %w", n, p, err)
			}
			r.removes = append(r.removes, p)
			continue
		case "copy", "file":
			modeArg := args[2]
			if op == "file" {
				modeArg = args[1]
			}
			mode, err := parseMode(modeArg)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			st.mode = mode
		case "dir":
			mode, err := parseMode(args[1])
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			st.mode = mode
		}
		for _, p := range imagePaths(op, args) {
			if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
				return nil, fmt.Errorf("line %d: %q is not a clean absolute path", n, p)
			}
		}
		r.steps = append(r.steps, st)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if r.name == "" {
		return nil, errors.New("no name directive")
	}
	if !debName.MatchString(r.name) {
		return nil, fmt.Errorf("image name %q: want lower-case letters, digits, '.', '-' or '+'", r.name)
	}
	if r.debian == "" && (len(r.installs) > 0 || len(r.removes) > 0) {
		return nil, errors.New("install and remove need a debian base")
	}
	if r.debian != "" {
		for _, st := range r.steps {
			if st.op == "applets" {
				return nil, fmt.Errorf("line %d: applets is only for recipes without a debian base", st.line)
			}
		}
	}
	return r, nil
}

// debName matches Debian package and suite names (and image names).
var debName = regexp.MustCompile(`^[a-z0-9][a-z0-9.+-]*$`)

// imagePaths are the in-image paths of a step.
func imagePaths(op string, args []string) []string {
	switch op {
	case "copy":
		return []string{args[1]}
	case "applets", "file", "dir":
		return []string{args[0]}
	}
	return nil
}

// parseMode parses an octal mode and refuses setuid and setgid bits: no
// image file may raise privileges (SECURITY.md "Escape and privilege").
func parseMode(s string) (int64, error) {
	m, err := strconv.ParseInt(s, 8, 32)
	if err != nil || m < 0 || m > 0o7777 {
		return 0, fmt.Errorf("bad mode %q", s)
	}
	if m&0o6000 != 0 {
		return 0, fmt.Errorf("mode %s: setuid and setgid bits are not allowed", s)
	}
	return m, nil
}

// layer builds the layer tar. created is the newest modification time of
// the host inputs (so a rebuild from the same inputs is identical).
func (r *recipe) layer(ctx context.Context, dir fs.FS, step func(string, ...any)) ([]byte, time.Time, error) {
	var created time.Time
	type entry struct {
		hdr  tar.Header
		body []byte
	}
	entries := map[string]*entry{}
	var addDir func(p string, mode int64)
	addDir = func(p string, mode int64) {
		if p == "/" || p == "." {
			return
		}
		addDir(path.Dir(p), 0o755)
		if e, ok := entries[p]; ok {
			if mode != 0o755 {
				e.hdr.Mode = mode
			}
			return
		}
		entries[p] = &entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: p[1:] + "/", Mode: mode}}
	}
	addFile := func(p string, mode int64, body []byte) {
		addDir(path.Dir(p), 0o755)
		entries[p] = &entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: p[1:], Mode: mode, Size: int64(len(body))}, body: body}
	}
	hostCopies := map[string]string{} // image path → host path
	for _, st := range r.steps {
		switch st.op {
		case "dir":
			addDir(st.args[0], st.mode)
		case "file":
			body, err := fs.ReadFile(dir, st.args[2])
			if err != nil {
				return nil, created, fmt.Errorf("recipe line %d: %w", st.line, err)
			}
			addFile(st.args[0], st.mode, body)
		case "copy":
			src := st.args[0]
			fi, err := os.Stat(src)
			if err != nil {
				return nil, created, fmt.Errorf("recipe line %d: %s not found (install the Debian package %s: apt-get install %[3]s): %w",
					st.line, src, strings.Join(r.packages, " "), err)
			}
			if !fi.Mode().IsRegular() || fi.Size() > 256<<20 {
				return nil, created, fmt.Errorf("recipe line %d: %s is not a regular file of at most 256 MiB", st.line, src)
			}
			body, err := os.ReadFile(src)
			if err != nil {
				return nil, created, fmt.Errorf("recipe line %d: %w", st.line, err)
			}
			created = later(created, fi.ModTime())
			addFile(st.args[1], st.mode, body)
			hostCopies[st.args[1]] = src
			step("copied %s to %s (%d bytes)", src, st.args[1], len(body))
		case "applets":
			bin := st.args[0]
			host, ok := hostCopies[bin]
			if !ok {
				return nil, created, fmt.Errorf("recipe line %d: applets of %s, which no copy line provides", st.line, bin)
			}
			list, err := appletList(ctx, host)
			if err != nil {
				return nil, created, fmt.Errorf("recipe line %d: %w", st.line, err)
			}
			n := 0
			for _, a := range list {
				p := path.Clean("/" + a)
				if p == bin {
					continue
				}
				if _, exists := entries[p]; exists {
					continue
				}
				addDir(path.Dir(p), 0o755)
				entries[p] = &entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: p[1:], Linkname: bin, Mode: 0o777}}
				n++
			}
			step("linked %d applets to %s", n, bin)
		}
	}
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC().Truncate(time.Second)
	names := make([]string, 0, len(entries))
	for p := range entries {
		names = append(names, p)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range names {
		e := entries[p]
		e.hdr.Uid, e.hdr.Gid = 0, 0
		e.hdr.Uname, e.hdr.Gname = "root", "root"
		e.hdr.ModTime = created
		e.hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(&e.hdr); err != nil {
			return nil, created, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, created, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, created, err
	}
	return buf.Bytes(), created, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// appletList runs `bin --list-full` on the host binary (busybox prints one
// relative path per applet, e.g. "bin/sh", "usr/bin/awk").
func appletList(ctx context.Context, bin string) ([]string, error) {
	cmd := exec.CommandContext(ctx, bin, "--list-full")
	cmd.Env = []string{}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", bin, err)
	}
	var list []string
	sc := bufio.NewScanner(io.LimitReader(out, 1<<20))
	for sc.Scan() {
		a := strings.TrimSpace(sc.Text())
		if a == "" || strings.Contains(a, "..") || strings.HasPrefix(a, "/") {
			continue
		}
		list = append(list, a)
	}
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", bin, err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%s --list-full listed no applets", bin)
	}
	return list, nil
}

// debVersion is the installed version of a Debian package, or "".
func debVersion(ctx context.Context, pkg string) string {
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f", "${Version}", pkg).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
