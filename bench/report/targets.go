package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/cgibox/cgibox/bench/load"
)

// Target is one number cgibox is held to.
type Target struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Op    string  `json:"op,omitempty"` // "<=" or ">="; empty: measured, no limit
	Limit float64 `json:"limit"`
	Unit  string  `json:"unit"`
	// Status is "met", "not met", "measured" (no limit) or "not available".
	Status string `json:"status"`
	Note   string `json:"note,omitempty"`
}

// unitCount marks a target that counts things (errors): no decimals.
const unitCount = "count"

const (
	statusMet      = "met"
	statusNotMet   = "not met"
	statusMeasured = "measured"
	statusNA       = "not available"
)

func (t Target) measured() string {
	if t.Status == statusNA {
		return "-"
	}
	return t.format(t.Value)
}

func (t Target) limit() string {
	if t.Op == "" {
		return ""
	}
	return map[string]string{"<=": "≤ ", ">=": "≥ "}[t.Op] + t.format(t.Limit)
}

func (t Target) format(v float64) string {
	if t.Unit == unitCount {
		return fmt.Sprintf("%.0f", v)
	}
	return num(v) + unitSuffix(t.Unit)
}

func (t Target) verdict() string {
	if t.Note != "" {
		return t.Status + " (" + t.Note + ")"
	}
	return t.Status
}

func unitSuffix(u string) string {
	switch u {
	case "":
		return ""
	case "×":
		return "×"
	default:
		return " " + u
	}
}

func judge(name string, v float64, op string, limit float64, unit string) Target {
	t := Target{Name: name, Value: v, Op: op, Limit: limit, Unit: unit, Status: statusNotMet}
	if op == "<=" && v <= limit || op == ">=" && v >= limit {
		t.Status = statusMet
	}
	return t
}

func unavailable(name, why string) Target { return Target{Name: name, Status: statusNA, Note: why} }

// Evaluate computes the targets from the cells and memory samples.
func (r *Results) Evaluate() {
	var ts []Target
	warmWhy := "not measured"
	if !r.Meta.Pool {
		warmWhy = r.Meta.PoolNote
	}
	// ratio judges num/den of a field of two cells; a missing cell, or
	// one with errors only, is not available.
	ratio := func(name string, a, b load.Cell, okA, okB bool, field func(load.Cell) float64, op string, limit float64, whyA string) Target {
		switch {
		case !okA:
			return unavailable(name, whyA)
		case !okB:
			return unavailable(name, "peer not measured")
		case a.Failed != "":
			return unavailable(name, a.Peer+" failed")
		case b.Failed != "":
			return unavailable(name, b.Peer+" failed")
		case field(b) == 0 || a.Samples == 0:
			return unavailable(name, "no successful requests")
		}
		return judge(name, field(a)/field(b), op, limit, "×")
	}
	p50 := func(c load.Cell) float64 { return c.P50 }
	p99 := func(c load.Cell) float64 { return c.P99 }
	rps := func(c load.Cell) float64 { return c.RPS }

	warmL, okW := r.cell(PeerWarm, WorkCGI, 0)
	pyL, okP := r.cell(PeerPython, WorkCGI, 0)
	coldL, okC := r.cell(PeerCold, WorkCGI, 0)
	for _, x := range []struct {
		name  string
		field func(load.Cell) float64
		limit float64
	}{
		{"warm, light load: p50 cgibox / python", p50, 1},
		{"warm, light load: p99 cgibox / python", p99, 3},
	} {
		t := ratio(x.name, warmL, pyL, okW, okP, x.field, "<=", x.limit, warmWhy)
		if !okW && okC && okP && coldL.Failed == "" && x.field(pyL) > 0 {
			t.Note += fmt.Sprintf("; cold instead: %s×", num(x.field(coldL)/x.field(pyL)))
		}
		ts = append(ts, t)
	}

	cold1, okC1 := r.cell(PeerCold, WorkCGI, 1)
	naive1, okN1 := r.cell(PeerNaive, WorkCGI, 1)
	ts = append(ts, ratio("cold p50 (c=1) / naive containerd p50 (c=1)", cold1, naive1, okC1, okN1, p50, "<=", 0.8, "not measured"))

	for _, peer := range []string{PeerCold, PeerWarm} {
		label := strings.TrimPrefix(peer, "cgibox-")
		c8, ok := r.cell(peer, WorkCGI, 8)
		why := "not measured"
		if peer == PeerWarm {
			why = warmWhy
		}
		if ok && c8.Failed != "" {
			ok, why = false, peer+" failed"
		}
		if !ok {
			for _, what := range []string{"req/s", "p99", "errors"} {
				ts = append(ts, unavailable(fmt.Sprintf("saturation c=8, %s: %s", label, what), why))
			}
			continue
		}
		ts = append(ts,
			judge(fmt.Sprintf("saturation c=8, %s: req/s", label), c8.RPS, ">=", 40, "req/s"),
			judge(fmt.Sprintf("saturation c=8, %s: p99", label), c8.P99, "<=", 250, "ms"),
			judge(fmt.Sprintf("saturation c=8, %s: errors", label), float64(c8.Errors), "<=", 0, unitCount),
		)
	}

	for _, c := range []struct {
		conc  int
		limit float64
	}{{1, 0.9}, {8, 0.7}} {
		a, okA := r.cell(PeerCgibox, WorkStatic1K, c.conc)
		b, okB := r.cell(PeerNginx, WorkStatic1K, c.conc)
		ts = append(ts, ratio(fmt.Sprintf("static 1 KiB c=%d: req/s cgibox / nginx", c.conc), a, b, okA, okB, rps, ">=", c.limit, "not measured"))
	}

	measuredRSS := false
	for _, peer := range []string{PeerWarm, PeerCold} {
		if m, ok := r.memory(peer); ok {
			ts = append(ts, judge(fmt.Sprintf("idle RSS, %s", strings.TrimPrefix(peer, "cgibox-")), float64(m.Serve.RssKiB)/1024, "<=", 40, "MiB"))
			measuredRSS = true
		}
	}
	if !measuredRSS {
		ts = append(ts, unavailable("idle RSS", "not measured"))
	}
	const perName = "per prepared container: shim + launcher RSS"
	switch m, ok := r.memory(PeerWarm); {
	case !ok:
		ts = append(ts, unavailable(perName, warmWhy))
	case m.Containers.Count == 0:
		ts = append(ts, unavailable(perName, "no prepared container was running when measured"))
	default:
		ts = append(ts, Target{
			Name: perName, Value: m.Containers.PerContainerRss / 1024, Unit: "MiB", Status: statusMeasured,
			Note: fmt.Sprintf("%d containers; PSS %s MiB each", m.Containers.Count, mib(m.Containers.PerContainerPss)),
		})
	}
	r.Targets = ts
}

// PrintTargets writes the targets as an aligned table, one per line.
func (r *Results) PrintTargets(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tMEASURED\tLIMIT\tVERDICT")
	for _, t := range r.Targets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.measured(), t.limit(), t.verdict())
	}
	return tw.Flush()
}
