package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cgibox/cgibox/config"
)

// newConfigCommand is `cgibox config check FILE`: validate a sites file
// and print the sites as cgibox resolves them, defaults applied.
func newConfigCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "config COMMAND",
		Short: "check a sites file (TOML)",
		Args:  cobra.ArbitraryArgs,
		RunE:  needSubcommand,
	}
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "check a sites file and print the sites as cgibox would serve them",
		Long:  "Checks a sites file (TOML) and prints the sites as cgibox would serve them,\ndefaults applied.",
		Args:  exactArgs(1, "FILE"),
		RunE: func(c *cobra.Command, args []string) error {
			cf, err := config.Load(args[0])
			if err != nil {
				return err
			}
			describe(c.OutOrStdout(), cf)
			return nil
		},
	}
	addHelpFlag(check.Flags())
	c.AddCommand(check)
	return c
}

// describe prints c for a person: the server, then each site with every
// setting that matters to its scripts.
func describe(w io.Writer, c *config.Config) {
	sv := c.Server
	fmt.Fprintf(w, "%s: OK, %d site(s)\n\n", c.File, len(c.Sites))
	fmt.Fprintf(w, "server\n")
	row(w, "listen", strings.Join(sv.Listen, ", "))
	row(w, "cgi at once", fmt.Sprintf("%d, all sites together; %d more wait up to %s", sv.MaxConcurrent, sv.Queue, sv.QueueWait))
	row(w, "data_dir", sv.DataDir)
	row(w, "containerd", sv.Containerd)
	row(w, "user ns", sv.UserNamespaces)
	total := "no cap in all"
	if sv.Pool.Total > 0 {
		total = fmt.Sprintf("%d in all", sv.Pool.Total)
	}
	row(w, "prepared", fmt.Sprintf("up to %d per site and image, %s, %d kept idle, shrinking after %s", sv.Pool.Max, total, sv.Pool.Min, sv.Pool.Idle))
	if sv.Admin != "" {
		row(w, "admin", "http://"+sv.Admin+"/ (/metrics, /healthz, /readyz)")
	}
	if sv.Audit != "" {
		row(w, "audit", sv.Audit)
	}
	sum := 0
	for _, s := range c.Sites {
		fmt.Fprintf(w, "\nsite %s", s.Name)
		if s.Default {
			fmt.Fprint(w, " (default: answers every host no site names)")
		}
		fmt.Fprintln(w)
		hosts := strings.Join(s.Hosts, ", ")
		if hosts == "" {
			hosts = "(none)"
		}
		row(w, "hosts", hosts)
		row(w, "root", s.Root)
		static := "listing on"
		if !s.Listing {
			static = "listing off"
		}
		if s.Dotfiles {
			static += ", dotfiles served"
		}
		row(w, "static", static+", index "+strings.Join(s.Index, " "))
		if s.CGI {
			cgi := fmt.Sprintf("%s in %s mode, image %s", strings.Join(s.CGIDirs, " "), s.Mode, s.Image)
			if s.NPH {
				cgi += ", nph-* scripts"
			}
			if s.PassAuthorization {
				cgi += ", Authorization passed"
			}
			row(w, "cgi", cgi)
		} else {
			row(w, "cgi", "off: CGI directories answer 403")
		}
		l := s.Limits
		row(w, "limits", fmt.Sprintf("timeout %s, memory %s, cpus %g, pids %d, output %s, body %s, tmp %s",
			l.Timeout, config.FormatSize(l.Memory), l.CPUs, l.Pids, config.FormatSize(l.Output),
			config.FormatSize(l.Body), config.FormatSize(l.Tmp)))
		row(w, "quota", quota(l))
		switch {
		case !s.CGI:
		case l.Concurrent > 0:
			sum += l.Concurrent
		default:
			sum += sv.MaxConcurrent
		}
		if s.DataDir != "" {
			q := "no quota"
			if s.DataQuota > 0 {
				q = "quota " + config.FormatSize(s.DataQuota)
			}
			row(w, "data", fmt.Sprintf("%s (%s), at /data, writable", s.DataDir, q))
		}
		if sv.UserNamespaces != "off" {
			row(w, "host ids", fmt.Sprintf("%d (root) and %d (nobody), where user namespaces are in force", s.Users.Root, s.Users.Nobody))
		}
		for k, vs := range s.Headers {
			for _, v := range vs {
				row(w, "header", k+": "+v)
			}
		}
	}
	if len(c.Sites) > 1 && sum > sv.MaxConcurrent {
		fmt.Fprintf(w, "\nnote: the sites may run %d scripts at once together, above max_concurrent %d: when they are all busy, a request beyond it waits in the queue (%d, up to %s) and then answers 503\n", sum, sv.MaxConcurrent, sv.Queue, sv.QueueWait)
	}
}

func quota(l config.Limits) string {
	var parts []string
	if l.Concurrent > 0 {
		parts = append(parts, fmt.Sprintf("%d at once", l.Concurrent))
	}
	if l.Rate > 0 {
		parts = append(parts, fmt.Sprintf("%g per second", l.Rate))
	}
	if len(parts) == 0 {
		return "none beyond the server's"
	}
	return strings.Join(parts, ", ") + "; more answer 429"
}

func row(w io.Writer, name, value string) { fmt.Fprintf(w, "  %-11s %s\n", name, value) }
