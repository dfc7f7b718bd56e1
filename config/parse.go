package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// maxFile bounds the document read by Load.
const maxFile = 4 << 20

// The document as written. Pointers tell a key that is absent (take the
// default) from one set to its zero value.
type fileDoc struct {
	Server fileServer `toml:"server"`
	Site   []fileSite `toml:"site"`
}

type fileServer struct {
	Listen          []string  `toml:"listen"`
	Protocol        string    `toml:"protocol"`
	MaxConcurrent   *int      `toml:"max_concurrent"`
	Queue           *int      `toml:"queue"`
	QueueWait       *Duration `toml:"queue_wait"`
	DataDir         string    `toml:"data_dir"`
	Containerd      string    `toml:"containerd"`
	RuntimeBinary   string    `toml:"runtime_binary"`
	UserNamespaces  string    `toml:"user_namespaces"`
	Pool            filePool  `toml:"pool"`
	DrainTimeout    *Duration `toml:"drain_timeout"`
	HeaderTimeout   *Duration `toml:"header_timeout"`
	BodyTimeout     *Duration `toml:"body_timeout"`
	WriteTimeout    *Duration `toml:"write_timeout"`
	IdleTimeout     *Duration `toml:"idle_timeout"`
	TLSCert         string    `toml:"tls_cert"`
	TLSKey          string    `toml:"tls_key"`
	TLSPasswordFile string    `toml:"tls_password_file"`
	LogFormat       string    `toml:"log_format"`
	LogLevel        string    `toml:"log_level"`
	Admin           string    `toml:"admin"`
	Audit           string    `toml:"audit"`
}

type filePool struct {
	Max   *int      `toml:"max"`
	Min   *int      `toml:"min"`
	Total *int      `toml:"total"`
	Idle  *Duration `toml:"idle"`
}

type fileSite struct {
	Name              string            `toml:"name"`
	Default           bool              `toml:"default"`
	Hosts             []string          `toml:"hosts"`
	Root              string            `toml:"root"`
	CGI               *bool             `toml:"cgi"`
	CGIDirs           []string          `toml:"cgi_dirs"`
	Mode              string            `toml:"mode"`
	Image             string            `toml:"image"`
	NPH               bool              `toml:"nph"`
	PassAuthorization bool              `toml:"pass_authorization"`
	Dotfiles          bool              `toml:"dotfiles"`
	Listing           *bool             `toml:"listing"`
	Index             []string          `toml:"index"`
	Headers           map[string]string `toml:"headers"`
	DataDir           string            `toml:"data_dir"`
	DataQuota         *Size             `toml:"data_quota"`
	UID               *int64            `toml:"uid"`
	Limits            fileLimits        `toml:"limits"`
}

type fileLimits struct {
	Timeout    *Duration `toml:"timeout"`
	Memory     *Size     `toml:"memory"`
	CPUs       *float64  `toml:"cpus"`
	Pids       *int64    `toml:"pids"`
	Output     *Size     `toml:"output"`
	Body       *Size     `toml:"body"`
	Tmp        *Size     `toml:"tmp"`
	Concurrent *int      `toml:"concurrent"`
	Rate       *float64  `toml:"rate"`
}

// Load reads, parses and checks the document in file.
func Load(file string) (*Config, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, maxFile+1)); err != nil {
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	if buf.Len() > maxFile {
		return nil, &Error{File: file, Msg: fmt.Sprintf("larger than %s", FormatSize(maxFile))}
	}
	return Parse(file, buf.Bytes())
}

// Parse parses and checks a document; file names it in errors and is
// where relative paths in it are relative to.
func Parse(file string, src []byte) (*Config, error) {
	var doc fileDoc
	dec := toml.NewDecoder(bytes.NewReader(src)).DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, decodeError(file, err)
	}
	base := filepath.Dir(file)
	if abs, err := filepath.Abs(base); err == nil {
		base = abs
	}
	r := resolver{file: file, src: src, base: base}
	c := &Config{Server: r.server(doc.Server), File: file}
	for i, fs := range doc.Site {
		c.Sites = append(c.Sites, r.site(i, fs))
	}
	if len(r.errs) == 0 {
		r.errs = append(r.errs, Check(c)...)
	}
	if len(r.errs) > 0 {
		for _, e := range r.errs {
			if e.File == "" {
				e.File = file
			}
			if e.Line == 0 {
				e.Line = r.lineOf(e)
			}
		}
		return nil, r.errs
	}
	return c, nil
}

// decodeError turns the parser's errors into Errors with lines.
func decodeError(file string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var es Errors
		for _, d := range strict.Errors {
			row, _ := d.Position()
			es = append(es, &Error{File: file, Line: row, Key: strings.Join(d.Key(), "."), Msg: "unknown key"})
		}
		return es
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return Errors{{File: file, Line: row, Key: strings.Join(de.Key(), "."), Msg: strings.TrimPrefix(de.Error(), "toml: ")}}
	}
	return Errors{{File: file, Msg: err.Error()}}
}

// resolver applies the defaults to the document as written.
type resolver struct {
	file string
	src  []byte
	base string
	errs Errors
}

func (r *resolver) server(f fileServer) Server {
	s := DefaultServer()
	if f.Listen != nil {
		s.Listen = f.Listen
	}
	setString(&s.Protocol, f.Protocol)
	setPtr(&s.MaxConcurrent, f.MaxConcurrent)
	setPtr(&s.Queue, f.Queue)
	setDuration(&s.QueueWait, f.QueueWait)
	if f.DataDir != "" {
		s.DataDir = r.path(f.DataDir)
	}
	setString(&s.Containerd, f.Containerd)
	setString(&s.RuntimeBinary, f.RuntimeBinary)
	setString(&s.UserNamespaces, f.UserNamespaces)
	setPtr(&s.Pool.Max, f.Pool.Max)
	setPtr(&s.Pool.Min, f.Pool.Min)
	setPtr(&s.Pool.Total, f.Pool.Total)
	if f.Pool.Max != nil && *f.Pool.Max == 0 && f.Pool.Min == nil {
		s.Pool.Min = 0 // no pool: nothing to keep
	}
	setDuration(&s.Pool.Idle, f.Pool.Idle)
	setDuration(&s.DrainTimeout, f.DrainTimeout)
	setDuration(&s.HeaderTimeout, f.HeaderTimeout)
	setDuration(&s.BodyTimeout, f.BodyTimeout)
	setDuration(&s.WriteTimeout, f.WriteTimeout)
	setDuration(&s.IdleTimeout, f.IdleTimeout)
	if f.TLSCert != "" {
		s.TLSCert = r.path(f.TLSCert)
	}
	if f.TLSKey != "" {
		s.TLSKey = r.path(f.TLSKey)
	}
	if f.TLSPasswordFile != "" {
		s.TLSPasswordFile = r.path(f.TLSPasswordFile)
	}
	setString(&s.LogFormat, f.LogFormat)
	setString(&s.LogLevel, f.LogLevel)
	setString(&s.Admin, f.Admin)
	if f.Audit != "" && f.Audit != "-" {
		s.Audit = r.path(f.Audit)
	} else {
		setString(&s.Audit, f.Audit)
	}
	return s
}

func (r *resolver) site(i int, f fileSite) Site {
	s := DefaultSite()
	s.Name, s.Default, s.Hosts = f.Name, f.Default, f.Hosts
	if f.Root != "" {
		s.Root = r.path(f.Root)
	}
	setPtr(&s.CGI, f.CGI)
	if f.CGIDirs != nil {
		s.CGIDirs = f.CGIDirs
	}
	setString(&s.Mode, f.Mode)
	setString(&s.Image, f.Image)
	s.NPH, s.PassAuthorization, s.Dotfiles = f.NPH, f.PassAuthorization, f.Dotfiles
	setPtr(&s.Listing, f.Listing)
	if f.Index != nil {
		s.Index = f.Index
	}
	for k, v := range f.Headers {
		s.Headers.Add(k, v)
	}
	if f.DataDir != "" {
		s.DataDir = r.path(f.DataDir)
	}
	if f.DataQuota != nil {
		s.DataQuota = int64(*f.DataQuota)
	}
	s.Users = usersFor(s.Name)
	if f.UID != nil {
		if *f.UID <= 0 || *f.UID >= 1<<32-2 {
			r.errs = append(r.errs, &Error{Key: siteKey(i, s.Name, "uid"), Msg: fmt.Sprintf("%d: want a host id from 1 to %d", *f.UID, uint32(1<<32-3))})
		} else {
			s.Users = usersAt(uint32(*f.UID))
		}
	}
	l, fl := &s.Limits, f.Limits
	setDuration(&l.Timeout, fl.Timeout)
	setSize(&l.Memory, fl.Memory)
	setPtr(&l.CPUs, fl.CPUs)
	setPtr(&l.Pids, fl.Pids)
	setSize(&l.Output, fl.Output)
	setSize(&l.Body, fl.Body)
	l.Tmp = TmpFor(l.Body)
	setSize(&l.Tmp, fl.Tmp)
	setPtr(&l.Concurrent, fl.Concurrent)
	setPtr(&l.Rate, fl.Rate)
	return s
}

// path makes p absolute against the document's directory.
func (r *resolver) path(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(r.base, p)
}

var (
	tableHeader = regexp.MustCompile(`^\s*\[`)
	siteHeader  = regexp.MustCompile(`^\s*\[\[\s*site\s*\]\]`)
)

// lineOf finds the line of a checked field: the key's line inside the
// site's table (or [server]), else the table's header. Zero when it cannot
// tell (a key in an inline table, say).
func (r *resolver) lineOf(e *Error) int {
	if e.Key == "" {
		return 0
	}
	lines := strings.Split(string(r.src), "\n")
	site, key := -1, e.Key
	if n, rest, ok := parseSiteKey(e.Key); ok {
		site, key = n, rest
	} else {
		key = strings.TrimPrefix(key, "server.")
	}
	// The table the key is in: [server], the site's [[site]], or below
	// either a [site.limits] / [server.pool].
	table, leaf := "", key
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		table, leaf = key[:i], key[i+1:]
	}
	keyLine := regexp.MustCompile(`^\s*` + regexp.QuoteMeta(leaf) + `\s*=`)
	sites, in, header := -1, false, 0
	for n, line := range lines {
		if tableHeader.MatchString(line) {
			if siteHeader.MatchString(line) {
				sites++
			}
			name := strings.Trim(strings.TrimSpace(line), "[] ")
			switch {
			case site >= 0 && sites == site:
				in = (table == "" && siteHeader.MatchString(line)) || name == "site."+table
			case site < 0:
				in = (table == "" && name == "server") || name == "server."+table
			default:
				in = false
			}
			if in && header == 0 {
				header = n + 1
			}
			continue
		}
		if in && keyLine.MatchString(line) {
			return n + 1
		}
	}
	return header
}

// siteKey names a field of the i-th site in errors: site[i].key, with the
// name when it has one.
func siteKey(i int, name, key string) string {
	if name != "" {
		return fmt.Sprintf("site[%d](%s).%s", i, name, key)
	}
	return fmt.Sprintf("site[%d].%s", i, key)
}

var siteKeyRE = regexp.MustCompile(`^site\[(\d+)\](?:\([^)]*\))?\.(.+)$`)

func parseSiteKey(k string) (int, string, bool) {
	m := siteKeyRE.FindStringSubmatch(k)
	if m == nil {
		return 0, "", false
	}
	var n int
	fmt.Sscanf(m[1], "%d", &n)
	return n, m[2], true
}

func setString(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func setPtr[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func setDuration(dst *time.Duration, v *Duration) {
	if v != nil {
		*dst = time.Duration(*v)
	}
}

func setSize(dst *int64, v *Size) {
	if v != nil {
		*dst = int64(*v)
	}
}
