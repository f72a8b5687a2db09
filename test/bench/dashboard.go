package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"image/png"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/rosterhq/roster/test/testenv"
)

// scrapeEvery is how often the bench's Prometheus scrapes the operator.
const scrapeEvery = 2 * time.Second

// dashboard is a Prometheus server (Debian's, from the test tools) scraping the
// operator in this process for the whole run, so that the Grafana dashboard's own
// queries can be drawn from the run's metrics at its end.
type dashboard struct {
	metrics *http.Server
	server  *exec.Cmd
	api     promv1.API
	start   time.Time
}

// startDashboard serves the operator's metrics on loopback and starts Prometheus
// scraping them into a throwaway store.
func startDashboard(ctx context.Context, dir string) (*dashboard, error) {
	prometheus, err := exec.LookPath("prometheus")
	if err != nil {
		return nil, fmt.Errorf("prometheus is not installed (hack/install-test-tools.sh installs it): %w", err)
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	webAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	listener, err := net.Listen("tcp", metricsAddr)
	if err != nil {
		return nil, err
	}
	d := &dashboard{metrics: &http.Server{Handler: promhttp.HandlerFor(ctrlmetrics.Registry, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second},
		start: time.Now()}
	go func() { _ = d.metrics.Serve(listener) }()
	config := fmt.Sprintf("global: {scrape_interval: %s}\nscrape_configs:\n  - job_name: roster\n    static_configs: [{targets: [%q]}]\n", scrapeEvery, metricsAddr)
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		d.stop()
		return nil, err
	}
	d.server = exec.CommandContext(ctx, prometheus, "--config.file="+configFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+webAddr, "--log.level=warn")
	d.server.Stderr = os.Stderr
	if err := d.server.Start(); err != nil {
		d.stop()
		return nil, err
	}
	client, err := promapi.NewClient(promapi.Config{Address: "http://" + webAddr})
	if err != nil {
		d.stop()
		return nil, err
	}
	d.api = promv1.NewAPI(client)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := d.api.Buildinfo(ctx); err == nil {
			return d, nil
		} else if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("prometheus did not start: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *dashboard) stop() {
	if d.server != nil && d.server.Process != nil {
		_ = d.server.Process.Signal(syscall.SIGTERM)
		_ = d.server.Wait()
	}
	_ = d.metrics.Close()
}

// grafanaDashboard is what the bench reads of config/grafana/roster.json.
type grafanaDashboard struct {
	Panels []struct {
		Title       string `json:"title"`
		FieldConfig struct {
			Defaults struct {
				Unit string `json:"unit"`
			} `json:"defaults"`
		} `json:"fieldConfig"`
		Targets []struct {
			Expr         string `json:"expr"`
			LegendFormat string `json:"legendFormat"`
		} `json:"targets"`
	} `json:"panels"`
}

// draw runs every query of the Grafana dashboard over the run and draws its panels into
// a PNG; it returns how many series each panel drew.
func (d *dashboard) draw(ctx context.Context, file string) (map[string]int, error) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "grafana", "roster.json"))
	if err != nil {
		return nil, err
	}
	var dash grafanaDashboard
	if err := json.Unmarshal(data, &dash); err != nil {
		return nil, err
	}
	end, err := d.settled(ctx)
	if err != nil {
		return nil, err
	}
	span := promv1.Range{Start: d.start, End: end, Step: max(scrapeEvery, end.Sub(d.start)/400).Round(time.Second)}
	drawn := map[string]int{}
	var plots []*plot.Plot
	for _, panel := range dash.Panels {
		p := plot.New()
		p.Title.Text = panel.Title
		p.X.Label.Text = "minutes into the run"
		p.Y.Label.Text = panel.FieldConfig.Defaults.Unit
		p.Legend.Top, p.Legend.Left = true, true
		p.Legend.TextStyle.Font.Size = vg.Points(7)
		p.Add(plotter.NewGrid())
		for _, target := range panel.Targets {
			matrix, err := d.query(ctx, strings.ReplaceAll(target.Expr, "$job", ".*"), span)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", panel.Title, target.Expr, err)
			}
			for _, series := range matrix {
				points := d.points(series)
				if len(points) == 0 {
					continue
				}
				line, err := plotter.NewLine(points)
				if err != nil {
					return nil, err
				}
				line.Color, line.Width = plotutil.Color(drawn[panel.Title]), vg.Points(1.2)
				p.Add(line)
				if len(points) < 3 { // too short a line to see
					dots, _ := plotter.NewScatter(points)
					dots.Color = line.Color
					p.Add(dots)
				}
				p.Legend.Add(legend(target.LegendFormat, series.Metric), line)
				drawn[panel.Title]++
			}
		}
		if drawn[panel.Title] == 0 {
			p.Title.Text += " (no data in this run)"
		}
		plots = append(plots, p)
	}
	return drawn, savePanels(plots, file)
}

// settled waits until a scrape shows the operator with nothing planned (group changes
// included, which a joiner's and a leaver's time to converged counts), and returns its
// time: the dashboard ends there.
func (d *dashboard) settled(ctx context.Context) (time.Time, error) {
	since := time.Now()
	deadline := since.Add(2 * time.Minute)
	for {
		v, _, err := d.api.Query(ctx, `sum(roster_plan_changes)`, time.Now())
		at, _, _ := d.api.Query(ctx, `timestamp(up{job="roster"})`, time.Now())
		vec, ok := v.(model.Vector)
		scraped, _ := at.(model.Vector)
		idle := len(vec) == 0 || len(vec) == 1 && vec[0].Value == 0 // no series: no AppConnection ran
		if err == nil && ok && idle && len(scraped) == 1 && float64(scraped[0].Value) >= float64(since.Unix()) {
			return time.Unix(int64(scraped[0].Value), 0).Add(time.Second), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("no scrape since %s shows the operator with nothing planned: %v %v", since.Format(time.TimeOnly), v, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (d *dashboard) query(ctx context.Context, expr string, span promv1.Range) (model.Matrix, error) {
	v, _, err := d.api.QueryRange(ctx, expr, span)
	if err != nil {
		return nil, err
	}
	matrix, ok := v.(model.Matrix)
	if !ok {
		return nil, errors.New("not a range vector")
	}
	return matrix, nil
}

// points are a series' finite values, at minutes into the run.
func (d *dashboard) points(series *model.SampleStream) plotter.XYs {
	var out plotter.XYs
	for _, s := range series.Values {
		v := float64(s.Value)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		out = append(out, plotter.XY{X: s.Timestamp.Time().Sub(d.start).Minutes(), Y: v})
	}
	return out
}

var legendLabel = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)

// legend fills a Grafana legend format from a series' labels.
func legend(format string, metric model.Metric) string {
	return strings.TrimSpace(legendLabel.ReplaceAllStringFunc(format, func(m string) string {
		return string(metric[model.LabelName(legendLabel.FindStringSubmatch(m)[1])])
	}))
}

// savePanels draws the panels two to a row into a PNG.
func savePanels(plots []*plot.Plot, file string) error {
	const cols = 2
	rows := (len(plots) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i, p := range plots {
		grid[i/cols] = append(grid[i/cols], p)
	}
	for len(grid[rows-1]) < cols {
		grid[rows-1] = append(grid[rows-1], nil)
	}
	img := vgimg.NewWith(vgimg.UseWH(vg.Length(cols)*8*vg.Inch, vg.Length(rows)*3.2*vg.Inch), vgimg.UseDPI(72),
		vgimg.UseBackgroundColor(color.White))
	canvas := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	for r, row := range plot.Align(grid, tiles, canvas) {
		for c, cell := range row {
			if grid[r][c] != nil {
				grid[r][c].Draw(cell)
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(f, img.Image()); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
