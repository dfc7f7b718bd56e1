package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/cgibox/cgibox/sandbox"
)

// shebangMax is how much of a script is read to find its #! line: the
// kernel reads no more (BINPRM_BUF_SIZE) either.
const shebangMax = 256

// errNoImage means no image provides the interpreter a script's #! line
// names.
var errNoImage = errors.New("no image provides the script's interpreter")

// imagesFor returns the cgibox images that have the interpreter interp,
// best first. Debian's minbase (the perl and python images) has bash and
// dash; busybox has sh and ash.
func imagesFor(interp string) []string {
	switch interp {
	case "sh", "ash":
		return []string{"busybox"}
	case "bash", "dash":
		return []string{"perl", "python"}
	case "perl":
		return []string{"perl"}
	case "python", "python3":
		return []string{"python"}
	}
	return nil
}

// readShebang reads the first line of the script name (a path inside root),
// at most shebangMax bytes of it.
func readShebang(root *os.Root, name string) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, shebangMax)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	buf = buf[:n]
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		buf = buf[:i]
	}
	return buf, nil
}

// interpreter returns the name of the program a script's first line runs:
// "perl" for "#!/usr/bin/perl -w", "python3" for "#!/usr/bin/env python3"
// (env's options and NAME=VALUE arguments skipped, -S split). Version
// suffixes are dropped: perl5.36 → perl, python3.11 → python3. ok is false
// when the line is not a #! line.
func interpreter(line []byte) (name string, ok bool) {
	rest, ok := bytes.CutPrefix(line, []byte("#!"))
	if !ok {
		return "", false
	}
	f := strings.Fields(strings.TrimRight(string(rest), "\r"))
	if len(f) == 0 {
		return "", true
	}
	prog := path.Base(f[0])
	if prog == "env" {
		prog = ""
		args := f[1:]
		for i := 0; i < len(args); i++ {
			a := args[i]
			switch {
			case a == "-S" || a == "--split-string":
				continue // the rest is split into words, which Fields did
			case strings.HasPrefix(a, "-S"):
				args[i] = a[2:]
				i--
				continue
			case a == "-u" || a == "--unset" || a == "-C" || a == "--chdir":
				i++ // skip the option's argument
				continue
			case strings.HasPrefix(a, "-"), strings.Contains(a, "="):
				continue
			}
			prog = path.Base(a)
			break
		}
	}
	return normalizeInterpreter(prog), true
}

// normalizeInterpreter drops a version suffix: perl5.36.0 → perl,
// python3.11 → python3, python2.7 → python2.
func normalizeInterpreter(p string) string {
	switch {
	case p == "perl" || strings.HasPrefix(p, "perl5"):
		return "perl"
	case strings.HasPrefix(p, "python3"):
		return "python3"
	case strings.HasPrefix(p, "python2"):
		return "python2"
	}
	return p
}

// chooseImage picks the containerd reference a script runs in from its
// first line (DESIGN.md "Images": the site's configuration, a later issue,
// else the #! line, else the default). images maps cgibox's image names to
// references; def is the default reference. It returns the reference and,
// when one of images was chosen, its name (for the fix in a log line).
//
//   - images nil, or no #! line: def.
//   - a known interpreter: the first of its images that images has.
//   - otherwise: def when def is a custom image (none of images), because
//     its owner chose it for exactly such scripts; else errNoImage, naming
//     the interpreter and the fix.
func chooseImage(line []byte, images map[string]string, def string) (ref, name string, err error) {
	if images == nil {
		return def, "", nil
	}
	interp, ok := interpreter(line)
	if !ok {
		return def, nameOf(images, def), nil
	}
	for _, n := range imagesFor(interp) {
		if r, ok := images[n]; ok {
			return r, n, nil
		}
	}
	if nameOf(images, def) == "" {
		return def, "", nil
	}
	shown := strings.TrimSpace(strings.ToValidUTF8(string(line), "?"))
	if interp == "" {
		return "", "", fmt.Errorf("%w: the #! line %q names no interpreter; fix the script's first line", errNoImage, shown)
	}
	return "", "", fmt.Errorf("%w: %q (from %q): cgibox's images run sh (busybox), bash, perl and python3; "+
		"change the script's #! line to one of those, or serve with --image REF naming an image that has %s (cgibox image import)",
		errNoImage, interp, shown, interp)
}

// nameOf returns the name images gives ref, or "".
func nameOf(images map[string]string, ref string) string {
	for n, r := range images {
		if r == ref {
			return n
		}
	}
	return ""
}

// imageHint adds the fix to err when it is the sandbox's ErrImageNotFound
// and ref is one of cgibox's images: most often it was never built, or
// was built into another data directory. flags are the server's own (see
// Config.ImageFixFlags).
func imageHint(images map[string]string, ref, flags string, err error) error {
	if name := nameOf(images, ref); name != "" && errors.Is(err, sandbox.ErrImageNotFound) {
		return fmt.Errorf("%w (build it: cgibox image build %s%s)", err, name, flags)
	}
	return err
}

// scriptProblem says why a script with first line line cannot run, and
// the fix, when it can tell without running it; "" when it cannot. These
// are the first causes of "premature end of script headers": the kernel
// refuses such a file (bad interpreter, exec format error) before the
// script prints anything.
func scriptProblem(line []byte) (cause, fix string) {
	switch {
	case bytes.HasPrefix(line, []byte("\x7fELF")):
		return "", "" // a program: the image's libraries decide
	case !bytes.HasPrefix(line, []byte("#!")):
		return "the script has no #! line: the kernel cannot run a text file without one (exec format error)",
			"make its first line name its interpreter: #!/bin/sh, #!/usr/bin/perl or #!/usr/bin/env python3"
	case bytes.HasSuffix(line, []byte("\r")):
		interp := strings.Fields(string(bytes.TrimPrefix(line, []byte("#!"))))
		name := ""
		if len(interp) > 0 {
			name = interp[0]
		}
		return fmt.Sprintf("its #! line ends in a carriage return (Windows line endings): the kernel looks for the interpreter %q, which does not exist (bad interpreter)", name+"\r"),
			"convert the file to Unix line endings: dos2unix FILE (or sed -i 's/\\r$//' FILE)"
	}
	return "", ""
}
