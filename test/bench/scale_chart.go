package bench

import (
	"fmt"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Entra ID's documented initial cycle: 0.01 to 0.08 minutes per object, for each app.
const (
	entraFastestSecondsPerObject = 0.6
	entraSlowestSecondsPerObject = 4.8
)

// scaleCurve is one figure of a size, drawn against its people.
type scaleCurve struct {
	legend string
	of     func(ScalePoint) float64
}

// drawScale draws how each cost grows with the organisation into a PNG: a line per
// figure and number of apps, against people on a log axis.
func drawScale(points []ScalePoint, file string) error {
	points = oneReplica(points)
	if len(points) == 0 {
		return fmt.Errorf("no sizes to draw")
	}
	byApps := map[int][]ScalePoint{}
	for _, p := range points {
		byApps[p.Apps] = append(byApps[p.Apps], p)
	}
	for _, series := range byApps {
		slices.SortFunc(series, func(a, b ScalePoint) int { return a.Users - b.Users })
	}
	perThousand := func(v func(ScalePoint) float64) func(ScalePoint) float64 {
		return func(p ScalePoint) float64 { return v(p) * 1000 / float64(p.Users) }
	}
	panels := []struct {
		title, unit string
		logY        bool
		// curves get a line for each number of apps; documented ones, which do not
		// depend on the apps, one line through every size.
		curves, documented []scaleCurve
		target             float64
	}{
		{"Initial sync: time until every account exists, beside Entra ID's documented initial cycle", "seconds", true, []scaleCurve{
			{"Roster", func(p ScalePoint) float64 { return p.InitialSyncSeconds }},
			{"floor", func(p ScalePoint) float64 { return p.FloorSeconds }},
		}, []scaleCurve{
			{"Entra ID (documented), 0.01 min an object, each app", func(p ScalePoint) float64 { return entraFastestSecondsPerObject * float64(p.Users) }},
			{"Entra ID (documented), 0.08 min an object, each app", func(p ScalePoint) float64 { return entraSlowestSecondsPerObject * float64(p.Users) }},
		}, 0},
		{"Initial sync: seconds per 1,000 people", "seconds", false, []scaleCurve{
			{"Roster", perThousand(func(p ScalePoint) float64 { return p.InitialSyncSeconds })},
			{"floor", perThousand(func(p ScalePoint) float64 { return p.FloorSeconds })},
		}, nil, 0},
		{"Operator memory per person after the initial sync", "KiB", false, []scaleCurve{
			{"RSS", func(p ScalePoint) float64 { return p.RSSMiB * 1024 / float64(p.Users) }},
			{"live heap", func(p ScalePoint) float64 { return p.HeapLiveMiB * 1024 / float64(p.Users) }},
		}, nil, 0},
		{"Requests and writes per person", "per person", false, []scaleCurve{
			{"SCIM requests (initial sync)", func(p ScalePoint) float64 { return p.RequestsPerAccount * float64(p.Apps) }},
			{"API writes (initial sync)", func(p ScalePoint) float64 { return p.APIWrites / float64(p.Users) }},
			{"writes in a steady-state resync", func(p ScalePoint) float64 { return p.ResyncWrites / float64(p.Users) }},
		}, nil, 0},
		{"Leavers: p99 until every account is deactivated", "seconds", false, []scaleCurve{
			{"one at a time", func(p ScalePoint) float64 { return p.LeaverP99Seconds }},
			{"a burst, all at once", func(p ScalePoint) float64 { return p.BurstP99Seconds }},
		}, nil, 1},
	}
	// sizes: one point for each number of people, for the curves that do not depend on
	// the apps.
	var sizes []ScalePoint
	for _, p := range points {
		if !slices.ContainsFunc(sizes, func(q ScalePoint) bool { return q.Users == p.Users }) {
			sizes = append(sizes, p)
		}
	}
	slices.SortFunc(sizes, func(a, b ScalePoint) int { return a.Users - b.Users })
	apps := make([]int, 0, len(byApps))
	for n := range byApps {
		apps = append(apps, n)
	}
	slices.Sort(apps)
	var plots []*plot.Plot
	for _, panel := range panels {
		p := newScalePlot(panel.title, panel.unit, panel.logY)
		colour := 0
		for _, curve := range panel.curves {
			for i, n := range apps {
				if err := addCurve(p, fmt.Sprintf("%s, %d apps", curve.legend, n), byApps[n], curve.of, colour, i); err != nil {
					return err
				}
			}
			colour++
		}
		for _, curve := range panel.documented {
			if err := addCurve(p, curve.legend, sizes, curve.of, colour, len(apps)); err != nil {
				return err
			}
			colour++
		}
		if panel.target > 0 {
			target := plotter.NewFunction(func(float64) float64 { return panel.target })
			target.Color, target.Dashes = plotutil.Color(colour), []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(target)
			p.Legend.Add("target", target)
			p.Y.Max = max(p.Y.Max, 1.1*panel.target)
		}
		plots = append(plots, p)
	}
	return savePanels(plots, file)
}

func newScalePlot(title, unit string, logY bool) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "people (log scale)"
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.Y.Label.Text = unit
	if logY {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
		p.Y.Label.Text += " (log scale)"
	} else {
		p.Y.Min = 0
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = vg.Points(7)
	p.Add(plotter.NewGrid())
	return p
}

// addCurve draws a figure of a series of sizes with the same apps: a line through its
// points, each point marked; a series' shape tells the apps apart.
func addCurve(p *plot.Plot, legend string, series []ScalePoint, of func(ScalePoint) float64, colour, shape int) error {
	xys := make(plotter.XYs, len(series))
	for i, pt := range series {
		xys[i] = plotter.XY{X: float64(pt.Users), Y: of(pt)}
	}
	dots, err := plotter.NewScatter(xys)
	if err != nil {
		return err
	}
	dots.Color, dots.Shape = plotutil.Color(colour), plotutil.Shape(shape)
	p.Add(dots)
	if len(series) < 2 {
		p.Legend.Add(legend, dots)
		return nil
	}
	line, err := plotter.NewLine(xys)
	if err != nil {
		return err
	}
	line.Color, line.Width = plotutil.Color(colour), vg.Points(1.2)
	line.Dashes = plotutil.Dashes(shape)
	p.Add(line)
	p.Legend.Add(legend, line, dots)
	return nil
}
