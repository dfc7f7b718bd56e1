package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sites makes directories for roots named in docs (www, alice, bob) below a
// temp dir and returns it; documents name them relative to the file.
func sites(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"www", "alice", "bob"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func parse(t *testing.T, dir, doc string) (*Config, error) {
	t.Helper()
	return Parse(filepath.Join(dir, "cgibox.toml"), []byte(doc))
}

const issueExample = `
[server]
listen = ["127.0.0.1:8000"]

[[site]]
name = "alice"
hosts = ["alice.example", "*.alice.example"]
root = "alice"
cgi_dirs = ["/cgi-bin"]
mode = "rfc3875"          # or "python"
image = "perl"            # default image; #! selection still applies
data_dir = "/srv/alice/data"
[site.limits]
timeout = "10s"
memory = "64M"
concurrent = 4
rate = 20
`

func TestParseGood(t *testing.T) {
	dir := sites(t)
	t.Run("the issue's example", func(t *testing.T) {
		c, err := parse(t, dir, issueExample)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Server.Listen; len(got) != 1 || got[0] != "127.0.0.1:8000" {
			t.Errorf("listen %q", got)
		}
		if len(c.Sites) != 1 {
			t.Fatalf("%d sites, want 1", len(c.Sites))
		}
		s := c.Sites[0]
		want := Limits{Timeout: 10 * time.Second, Memory: 64 << 20, CPUs: 0.5, Pids: 64, Output: 64 << 20,
			Body: 64 << 20, Tmp: 72 << 20, Concurrent: 4, Rate: 20}
		if s.Limits != want {
			t.Errorf("limits\n got %+v\nwant %+v", s.Limits, want)
		}
		if s.Root != filepath.Join(dir, "alice") || s.Mode != "rfc3875" || s.Image != "perl" || s.DataDir != "/srv/alice/data" {
			t.Errorf("site %+v", s)
		}
		if strings.Join(s.CGIDirs, ",") != "/cgi-bin" || strings.Join(s.Hosts, ",") != "alice.example,*.alice.example" {
			t.Errorf("cgi_dirs %q hosts %q", s.CGIDirs, s.Hosts)
		}
		if !s.CGI || !s.Listing || s.Users != usersFor("alice") {
			t.Errorf("defaults: cgi %v listing %v users %+v", s.CGI, s.Listing, s.Users)
		}
	})
	t.Run("every key", func(t *testing.T) {
		c, err := parse(t, dir, `
[server]
listen = [":8080", "[::1]:8081"]
protocol = "HTTP/1.0"
max_concurrent = 32
data_dir = "state"
containerd = "private"
user_namespaces = "off"
drain_timeout = "5s"
header_timeout = "2s"
body_timeout = "3s"
write_timeout = "4s"
idle_timeout = "6s"
log_format = "json"
log_level = "debug"
admin = "127.0.0.1:9100"
audit = "audit.log"
[server.pool]
max = 0

[[site]]
name = "www"
default = true
root = "www"
cgi = false
dotfiles = true
listing = false
index = ["index.cgi.html"]
headers = { "X-Frame-Options" = "DENY" }
nph = true
pass_authorization = true
uid = 1234567
[site.limits]
cpus = 1.5
pids = 10
output = "1G"
body = "512K"
tmp = "32MiB"
`)
		if err != nil {
			t.Fatal(err)
		}
		sv := c.Server
		if sv.Protocol != "HTTP/1.0" || sv.MaxConcurrent != 32 || sv.DataDir != filepath.Join(dir, "state") ||
			sv.Containerd != "private" || sv.UserNamespaces != "off" || sv.DrainTimeout != 5*time.Second ||
			sv.IdleTimeout != 6*time.Second || sv.LogFormat != "json" || sv.Pool.Max != 0 || sv.Pool.Min != 0 ||
			sv.Admin != "127.0.0.1:9100" || sv.Audit != filepath.Join(dir, "audit.log") {
			t.Errorf("server %+v", sv)
		}
		s := c.Sites[0]
		if !s.Default || s.CGI || !s.Dotfiles || s.Listing || s.Index[0] != "index.cgi.html" ||
			s.Headers.Get("X-Frame-Options") != "DENY" || !s.NPH || !s.PassAuthorization || s.Users.Root != 1234567 {
			t.Errorf("site %+v", s)
		}
		if l := s.Limits; l.CPUs != 1.5 || l.Pids != 10 || l.Output != 1<<30 || l.Body != 512<<10 || l.Tmp != 32<<20 {
			t.Errorf("limits %+v", l)
		}
	})
	t.Run("a name beats another site's wildcard", func(t *testing.T) {
		_, err := parse(t, dir, `
[[site]]
name = "alice"
hosts = ["*.example.org"]
root = "alice"
[[site]]
name = "bob"
hosts = ["bob.example.org"]
root = "bob"
`)
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestParseBad(t *testing.T) {
	dir := sites(t)
	two := func(aliceHosts, bobHosts string) string {
		return `
[[site]]
name = "alice"
hosts = ` + aliceHosts + `
root = "alice"

[[site]]
name = "bob"
hosts = ` + bobHosts + `
root = "bob"
`
	}
	tests := []struct {
		name, doc string
		want      []string // each in the error, in this order
	}{
		{"unknown key", "[server]\nlisten = [\":80\"]\nlisen = 1\n", []string{"cgibox.toml:3: server.lisen: unknown key"}},
		{"unknown key in a site's limits", "[[site]]\nname = \"a\"\nroot = \"www\"\n[site.limits]\nmemroy = \"1M\"\n",
			[]string{"cgibox.toml:5: site.limits.memroy: unknown key"}},
		{"syntax", "[server\n", []string{"cgibox.toml:1:"}},
		{"duplicate host", two(`["shared.example"]`, `["Shared.Example."]`),
			[]string{"cgibox.toml:9: site[1](bob).hosts:", `"Shared.Example." is already a host of site "alice"`}},
		{"overlapping wildcard", two(`["*.example.org"]`, `["*.bob.example.org"]`),
			[]string{"site[1](bob).hosts:", `"*.bob.example.org" overlaps "*.example.org" of site "alice"`}},
		{"missing root", "[[site]]\nname = \"a\"\nroot = \"nowhere\"\n",
			[]string{"cgibox.toml:3: site[0](a).root:", "nowhere: no such file or directory"}},
		{"root is a file", "[[site]]\nname = \"a\"\nroot = \"file\"\n", []string{"site[0](a).root:", "not a directory"}},
		{"no root", "[[site]]\nname = \"a\"\n", []string{"cgibox.toml:1: site[0](a).root: missing"}},
		{"bad size", "[[site]]\nname = \"a\"\nroot = \"www\"\n[site.limits]\nmemory = \"64 parsecs\"\n",
			[]string{"cgibox.toml:5:", `size "64 parsecs": want a number of bytes`}},
		{"size as a number", "[[site]]\nname = \"a\"\nroot = \"www\"\n[site.limits]\nmemory = 64\n",
			[]string{"cgibox.toml:5:"}},
		{"bad duration", "[[site]]\nname = \"a\"\nroot = \"www\"\n[site.limits]\ntimeout = \"10 seconds\"\n",
			[]string{"cgibox.toml:5:", `duration "10 seconds": want a number with a unit`}},
		{"zero duration", "[server]\ndrain_timeout = \"0s\"\n", []string{"cgibox.toml:2:", "must be above zero"}},
		{"negative queue", "[server]\nqueue = -1\n[[site]]\nname = \"a\"\nroot = \"www\"\n", []string{"cgibox.toml:2: server.queue: -1: must not be negative"}},
		{"tmp below body", "[[site]]\nname = \"a\"\nroot = \"www\"\n[site.limits]\nbody = \"64M\"\ntmp = \"16M\"\n",
			[]string{"site[0](a).limits.tmp: 16M is below limits.body 64M: a script could not spool"}},
		{"no sites", "[server]\nlisten = [\":80\"]\n", []string{"site: no site"}},
		{"two defaults", "[[site]]\nname = \"a\"\ndefault = true\nroot = \"www\"\n[[site]]\nname = \"b\"\ndefault = true\nroot = \"www\"\n",
			[]string{"2 sites are the default"}},
		{"duplicate name", "[[site]]\nname = \"a\"\nroot = \"www\"\nhosts=[\"a\"]\n[[site]]\nname = \"a\"\nroot = \"www\"\nhosts=[\"b\"]\n",
			[]string{"cgibox.toml:6: site[1](a).name:", "also the name of site[0]"}},
		{"bad name", "[[site]]\nname = \"a b\"\nroot = \"www\"\n", []string{"site[0](a b).name:", "want 1 to 64 letters"}},
		{"unreachable site", two(`["a.example"]`, `[]`), []string{"site[1](bob).hosts: none"}},
		{"host with a port", two(`["a.example:8000"]`, `["b"]`), []string{"site[0](alice).hosts:", "without its port"}},
		{"host not a name", two(`["a b"]`, `["b"]`), []string{"site[0](alice).hosts:", "not a host name"}},
		{"bad mode", "[[site]]\nname = \"a\"\nroot = \"www\"\nmode = \"fastcgi\"\n", []string{"cgibox.toml:4: site[0](a).mode:", "want python or rfc3875"}},
		{"cgi dir too deep", "[[site]]\nname = \"a\"\nroot = \"www\"\ncgi_dirs = [\"/a/b\"]\n", []string{"site[0](a).cgi_dirs:", "one directory below"}},
		{"data inside the root", "[[site]]\nname = \"a\"\nroot = \"www\"\ndata_dir = \"www/data\"\n",
			[]string{"site[0](a).data_dir:", "inside one another"}},
		{"shared data", "[[site]]\nname = \"a\"\nroot = \"alice\"\nhosts=[\"a\"]\ndata_dir = \"/srv/d\"\n[[site]]\nname = \"b\"\nroot = \"bob\"\nhosts=[\"b\"]\ndata_dir = \"/srv/d\"\n",
			[]string{"site[1](b).data_dir:", `also site "a"'s data directory`}},
		{"quota without data", "[[site]]\nname = \"a\"\nroot = \"www\"\ndata_quota = \"10M\"\n", []string{"site[0](a).data_quota: set without data_dir"}},
		{"tiny quota", "[[site]]\nname = \"a\"\nroot = \"www\"\ndata_dir = \"/srv/d\"\ndata_quota = \"10K\"\n", []string{"cgibox.toml:5: site[0](a).data_quota:", "smallest quota is 1M"}},
		{"concurrent above the server's", "[server]\nmax_concurrent = 4\n[[site]]\nname = \"a\"\nroot = \"www\"\n[site.limits]\nconcurrent = 5\n",
			[]string{"cgibox.toml:7: site[0](a).limits.concurrent:", "above the server's max_concurrent 4"}},
		{"negative rate", "[[site]]\nname = \"a\"\nroot = \"www\"\n[site.limits]\nrate = -1\n", []string{"site[0](a).limits.rate:"}},
		{"same uid", "[[site]]\nname = \"a\"\nroot = \"www\"\nhosts=[\"a\"]\nuid = 2000000\n[[site]]\nname = \"b\"\nroot = \"www\"\nhosts=[\"b\"]\nuid = 2000001\n",
			[]string{"site[1](b).uid:", `host id 2000001 is also site "a"'s`}},
		{"uid of the host's nobody", "[[site]]\nname = \"a\"\nroot = \"www\"\nuid = 65533\n", []string{"site[0](a).uid:", "host's nobody"}},
		{"bad listen", "[server]\nlisten = [\"8000\"]\n[[site]]\nname = \"a\"\nroot = \"www\"\n", []string{"cgibox.toml:2: server.listen:", "want host:port"}},
		{"bad admin", "[server]\nadmin = \"9100\"\n[[site]]\nname = \"a\"\nroot = \"www\"\n", []string{"cgibox.toml:2: server.admin:", "want host:port"}},
		{"admin on a site's listener", "[server]\nlisten = [\":8000\"]\nadmin = \":8000\"\n[[site]]\nname = \"a\"\nroot = \"www\"\n", []string{"server.admin:", "apart from every site"}},
		{"bad protocol", "[server]\nprotocol = \"HTTP/2\"\n[[site]]\nname = \"a\"\nroot = \"www\"\n", []string{"server.protocol:"}},
		{"bad header", "[[site]]\nname = \"a\"\nroot = \"www\"\nheaders = { \"Bad Name\" = \"x\" }\n", []string{"site[0](a).headers:"}},
		{"every problem at once", "[[site]]\nname = \"a\"\nmode = \"x\"\n", []string{"site[0](a).root: missing", "site[0](a).mode:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse(t, dir, tt.doc)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", tt.doc, c)
			}
			msg := err.Error()
			rest := msg
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("Parse(%q):\n got %s\nwant it to contain, in order, %q", tt.doc, msg, tt.want)
				}
				rest = rest[i+len(w):]
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error %T does not hold a *config.Error", err)
			}
		})
	}
}

func TestSizes(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{{"4096", 4096}, {"64M", 64 << 20}, {"16MiB", 16 << 20}, {"1G", 1 << 30}, {"512k", 512 << 10}, {" 2K ", 2048}} {
		if got, err := ParseSize(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "-1", "1T", "M", "1.5M", "99999999999G"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
	for _, tt := range []struct {
		in   int64
		want string
	}{{64 << 20, "64M"}, {1536 << 10, "1536K"}, {100, "100"}, {1 << 30, "1G"}, {0, "0"}} {
		if got := FormatSize(tt.in); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLoadTooLarge(t *testing.T) {
	f := filepath.Join(t.TempDir(), "big.toml")
	if err := os.WriteFile(f, []byte(strings.Repeat("# x\n", maxFile/4+1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(f); err == nil || !strings.Contains(err.Error(), "larger than 4M") {
		t.Errorf("Load of a %d-byte file: %v, want larger than 4M", maxFile+4, err)
	}
}

// A site that sets no tmp gets room in /tmp for the largest body it
// accepts: CGI.pm and cgi.FieldStorage spool uploads there.
func TestTmpFollowsBody(t *testing.T) {
	dir := sites(t)
	for _, tt := range []struct {
		limits string
		want   int64
	}{
		{"", 72 << 20},
		{"body = \"100M\"\n", 108 << 20},
		{"body = \"100M\"\ntmp = \"200M\"\n", 200 << 20},
	} {
		c, err := parse(t, dir, "[[site]]\nname = \"a\"\nroot = \"www\"\n[site.limits]\n"+tt.limits)
		if err != nil {
			t.Fatalf("%q: %v", tt.limits, err)
		}
		if got := c.Sites[0].Limits.Tmp; got != tt.want {
			t.Errorf("%q: tmp %s, want %s", tt.limits, FormatSize(got), FormatSize(tt.want))
		}
	}
}
