package report

import (
	"fmt"
	"image/color"
	"io"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/cgibox/cgibox/bench/load"
)

// series is one colour of a grouped bar chart: a value per group, NaN-free;
// missing values are drawn as empty bars labelled "n/a".
type series struct {
	name    string
	values  []float64
	missing []bool
}

// shortName is how a peer is named under its bars.
var shortName = map[string]string{
	PeerWarm: "cgibox warm", PeerCold: "cgibox cold", PeerCgibox: "cgibox",
	PeerNaive: "naive ctrd", PeerPython: "python", PeerGoCGI: "go cgi", PeerNginx: "nginx",
}

// WriteChart draws four panels as one PNG: CGI req/s and CGI p50 latency
// per peer at c=1 and c=8 (and the light open loop), and static req/s for
// 1 KiB and 1 MiB files.
func (r *Results) WriteChart(w io.Writer) error {
	cgiPeers := []string{PeerCold, PeerNaive, PeerPython, PeerGoCGI}
	if r.Meta.Pool {
		cgiPeers = append([]string{PeerWarm}, cgiPeers...)
	}
	staticPeers := []string{PeerNginx, PeerCgibox, PeerPython}
	light := fmt.Sprintf("open %g/s", r.Meta.LightRate)

	get := func(peers []string, work string, c int, f func(load.Cell) float64) series {
		s := series{values: make([]float64, len(peers)), missing: make([]bool, len(peers))}
		for i, p := range peers {
			if x, ok := r.cell(p, work, c); ok && x.Samples > 0 {
				s.values[i] = f(x)
			} else {
				s.missing[i] = true
			}
		}
		return s
	}
	rps := func(c load.Cell) float64 { return c.RPS }
	p50 := func(c load.Cell) float64 { return c.P50 }
	named := func(s series, name string) series { s.name = name; return s }

	panels := []struct {
		title, ylabel string
		peers         []string
		series        []series
	}{
		{"CGI hello.sh: throughput (closed loop)", "req/s", cgiPeers, []series{
			named(get(cgiPeers, WorkCGI, 1, rps), "c=1"), named(get(cgiPeers, WorkCGI, 8, rps), "c=8"),
		}},
		{"CGI hello.sh: median latency", "p50 ms", cgiPeers, []series{
			named(get(cgiPeers, WorkCGI, 1, p50), "c=1"), named(get(cgiPeers, WorkCGI, 8, p50), "c=8"),
			named(get(cgiPeers, WorkCGI, 0, p50), light),
		}},
		{"static 1 KiB: throughput", "req/s", staticPeers, []series{
			named(get(staticPeers, WorkStatic1K, 1, rps), "c=1"), named(get(staticPeers, WorkStatic1K, 8, rps), "c=8"),
		}},
		{"static 1 MiB: throughput", "req/s", staticPeers, []series{
			named(get(staticPeers, WorkStatic1M, 1, rps), "c=1"), named(get(staticPeers, WorkStatic1M, 8, rps), "c=8"),
		}},
	}
	plots := [][]*plot.Plot{{nil, nil}, {nil, nil}}
	for i, p := range panels {
		names := make([]string, len(p.peers))
		for j, peer := range p.peers {
			names[j] = shortName[peer]
		}
		pl, err := groupedBars(p.title, p.ylabel, names, p.series)
		if err != nil {
			return fmt.Errorf("chart %q: %w", p.title, err)
		}
		plots[i/2][i%2] = pl
	}

	img := vgimg.NewWith(vgimg.UseWH(14*vg.Inch, 10*vg.Inch), vgimg.UseDPI(96),
		vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	title := fmt.Sprintf("cgibox benchmark %s (%s per cell, loopback, 2 cores shared with the client)", r.Meta.Started, r.Meta.CellTime)
	tiles := draw.Tiles{Rows: 2, Cols: 2, PadTop: 0.45 * vg.Inch, PadBottom: 0.1 * vg.Inch, PadLeft: 0.1 * vg.Inch,
		PadRight: 0.2 * vg.Inch, PadX: 0.4 * vg.Inch, PadY: 0.4 * vg.Inch}
	canvases := plot.Align(plots, tiles, dc)
	for row := range plots {
		for col := range plots[row] {
			plots[row][col].Draw(canvases[row][col])
		}
	}
	drawTitle(dc, title)
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

func drawTitle(dc draw.Canvas, title string) {
	sty := text.Style{
		Color:   color.Black,
		Font:    plot.DefaultFont,
		Handler: plot.DefaultTextHandler,
		XAlign:  draw.XCenter,
		YAlign:  draw.YTop,
	}
	sty.Font.Size = vg.Points(14)
	dc.FillText(sty, vg.Point{X: (dc.Min.X + dc.Max.X) / 2, Y: dc.Max.Y - 0.1*vg.Inch}, title)
}

// groupedBars draws one bar per series in every group, each bar labelled
// with its value.
func groupedBars(title, ylabel string, groups []string, ss []series) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Y.Label.Text = ylabel
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = false
	barW := vg.Points(84 / float64(len(ss)+1))
	maxV := 0.0
	for _, s := range ss {
		for _, v := range s.values {
			maxV = max(maxV, v)
		}
	}
	if maxV == 0 {
		maxV = 1
	}
	// Room above the bars for their labels and the legend.
	p.Y.Max = maxV * 1.3
	for i, s := range ss {
		bars, err := plotter.NewBarChart(plotter.Values(s.values), barW)
		if err != nil {
			return nil, err
		}
		bars.Color = plotutil.Color(i)
		bars.LineStyle.Width = vg.Length(0)
		bars.Offset = barW * vg.Length(float64(i)-float64(len(ss)-1)/2)
		p.Add(bars)
		p.Legend.Add(s.name, bars)

		xys := make(plotter.XYs, len(s.values))
		labels := make([]string, len(s.values))
		for j, v := range s.values {
			xys[j] = plotter.XY{X: float64(j), Y: v}
			labels[j] = num(v)
			if s.missing[j] {
				labels[j] = "n/a"
			}
		}
		lab, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
		if err != nil {
			return nil, err
		}
		for k := range lab.TextStyle {
			lab.TextStyle[k].XAlign = draw.XCenter
			lab.TextStyle[k].YAlign = draw.YBottom
			lab.TextStyle[k].Font.Size = vg.Points(8)
			lab.TextStyle[k].Rotation = 0
		}
		lab.Offset = vg.Point{X: bars.Offset, Y: vg.Points(2)}
		p.Add(lab)
	}
	p.NominalX(groups...)
	p.Y.Tick.Marker = plainTicks{}
	return p, nil
}

// plainTicks are the default ticks labelled without trailing zeros.
type plainTicks struct{}

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
}
