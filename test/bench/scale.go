package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rosterhq/roster/test/testenv"
)

// ScaleSize is one size of a scale run: people, and the apps each has an account in.
type ScaleSize struct {
	Users int `json:"users"`
	Apps  int `json:"apps"`
}

func (s ScaleSize) String() string { return fmt.Sprintf("%d×%d", s.Users, s.Apps) }

// DefaultScaleSizes are 1,000, 10,000 and 50,000 people into 5 apps, and 10,000 into 20.
var DefaultScaleSizes = []ScaleSize{{1000, 5}, {10000, 5}, {50000, 5}, {10000, 20}}

// ParseScaleSizes reads sizes written as "1000x5,10000x20".
func ParseScaleSizes(s string) ([]ScaleSize, error) {
	var sizes []ScaleSize
	for item := range strings.SplitSeq(s, ",") {
		users, apps, ok := strings.Cut(strings.TrimSpace(item), "x")
		u, err1 := strconv.Atoi(users)
		a, err2 := strconv.Atoi(apps)
		if !ok || err1 != nil || err2 != nil || u < 100 || a < 1 {
			return nil, fmt.Errorf("%q is no size: want PEOPLExAPPS, at least 100 people and 1 app, as 10000x5", item)
		}
		sizes = append(sizes, ScaleSize{Users: u, Apps: a})
	}
	return sizes, nil
}

// ScaleOptions shape a scale run.
type ScaleOptions struct {
	Sizes []ScaleSize
	// Concurrency and Leavers are each size's (defaults as a full run's), Replicas the
	// operator's (above 1, sharing automatic shards).
	Concurrency int
	Leavers     int
	Replicas    int
	// Out is where the JSON report goes (default bench/scale.json), Chart where the
	// curves go (default docs/img/scale.png), Dir where each size's own report and
	// profiles go (default bin/bench/scale).
	Out, Chart, Dir string
	Log             io.Writer
}

func (o ScaleOptions) defaults() ScaleOptions {
	root := testenv.RepoRoot()
	if len(o.Sizes) == 0 {
		o.Sizes = DefaultScaleSizes
	}
	if o.Out == "" {
		o.Out = filepath.Join(root, "bench", "scale.json")
	}
	if o.Chart == "" {
		o.Chart = filepath.Join(root, "docs", "img", "scale.png")
	}
	if o.Dir == "" {
		o.Dir = filepath.Join(root, "bin", "bench", "scale")
	}
	if o.Log == nil {
		o.Log = os.Stdout
	}
	return o
}

// ScalePoint is what one size cost.
type ScalePoint struct {
	ScaleSize
	// InitialSyncSeconds is the time until every account and status converged;
	// FloorSeconds the floor of the same work, measured in the same process.
	InitialSyncSeconds float64 `json:"initialSyncSeconds"`
	FloorSeconds       float64 `json:"floorSeconds"`
	// RequestsPerAccount counts SCIM requests about users per account created;
	// APIWrites the API server's writes during the initial sync.
	RequestsPerAccount float64 `json:"requestsPerAccount"`
	APIWrites          float64 `json:"apiWrites"`
	// ResyncWrites are the app writes and API writes of a full resync with nothing
	// changed.
	ResyncWrites float64 `json:"resyncWrites"`
	// LeaverP99Seconds is for Leavers one at a time; BurstP99Seconds for as many at
	// once.
	Leavers          int     `json:"leavers"`
	LeaverP99Seconds float64 `json:"leaverP99Seconds"`
	BurstP99Seconds  float64 `json:"burstP99Seconds"`
	// RSSMiB and HeapLiveMiB are the operator process's after the initial sync.
	RSSMiB      float64 `json:"rssMiB"`
	HeapLiveMiB float64 `json:"heapLiveMiB"`
	// Replicas, above 1, is how many replicas of the operator shared the work;
	// AppsRunOnce how many apps exactly one of them ran, and AppsPerReplica how many
	// each ran.
	Replicas       int   `json:"replicas,omitempty"`
	AppsRunOnce    int   `json:"appsRunOnce,omitempty"`
	AppsPerReplica []int `json:"appsPerReplica,omitempty"`
}

func (p ScalePoint) String() string {
	if p.Replicas > 1 {
		return fmt.Sprintf("%s on %d replicas", p.ScaleSize, p.Replicas)
	}
	return p.ScaleSize.String()
}

// ScaleReport is a scale run, as bench/scale.json holds it.
type ScaleReport struct {
	Date    time.Time    `json:"date"`
	Machine Machine      `json:"machine"`
	Points  []ScalePoint `json:"points"`
	// Results are the growth of each cost per person, steady-state writes and leaver
	// latency at every size, beside their targets.
	Results []Result `json:"results"`
}

// envRun carries, to a child process, the options of the run it makes.
const envRun = "ROSTER_BENCH_RUN"

// childRun is what a scale run's child is asked to run.
type childRun struct {
	Options    Options `json:"options"`
	Out        string  `json:"out"`
	ProfileDir string  `json:"profileDir"`
	Dashboard  string  `json:"dashboard"`
}

// Scale runs the provisioning scenarios (the floor, initial sync, steady state and
// leavers one at a time and at once) at each size, each in a process of its own so that
// its memory is its own, and reports how their cost per person grows.
func Scale(ctx context.Context, opts ScaleOptions) (*ScaleReport, error) {
	opts = opts.defaults()
	report := &ScaleReport{Date: time.Now().UTC().Truncate(time.Second), Machine: newReport(Options{}).Machine}
	for _, size := range opts.Sizes {
		fmt.Fprintf(opts.Log, "▸▸ %d people × %d apps\n", size.Users, size.Apps)
		point, err := runSize(ctx, opts, size)
		if err != nil {
			return report, fmt.Errorf("%s: %w", size, err)
		}
		report.Points = append(report.Points, point)
	}
	report.Results = judgeScale(report.Points)
	fmt.Fprintln(opts.Log)
	printPoints(opts.Log, report.Points)
	fmt.Fprintln(opts.Log)
	printResults(opts.Log, report.Results)
	if err := saveJSON(opts.Out, report); err != nil {
		return report, err
	}
	if err := drawScale(report.Points, opts.Chart); err != nil {
		return report, fmt.Errorf("drawing the curves: %w", err)
	}
	fmt.Fprintf(opts.Log, "\nWrote %s and the curves to %s\n", opts.Out, opts.Chart)
	return report, nil
}

// Redraw judges a saved scale report again and draws its curves (into chart, or
// docs/img/scale.png), without running anything.
func Redraw(report, chart string, log io.Writer) error {
	chart = cmp.Or(chart, ScaleOptions{}.defaults().Chart)
	data, err := os.ReadFile(report)
	if err != nil {
		return err
	}
	var r ScaleReport
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%s: %w", report, err)
	}
	r.Results = judgeScale(r.Points)
	printPoints(log, r.Points)
	fmt.Fprintln(log)
	printResults(log, r.Results)
	if err := saveJSON(report, &r); err != nil {
		return err
	}
	return drawScale(r.Points, chart)
}

// Collect makes a scale report of the sizes already run into opts.Dir (each size's
// results.json), as Scale would have, without running any: for a run cut short.
func Collect(opts ScaleOptions) (*ScaleReport, error) {
	opts = opts.defaults()
	report := &ScaleReport{Date: time.Now().UTC().Truncate(time.Second), Machine: newReport(Options{}).Machine}
	for _, size := range opts.Sizes {
		point, date, err := readPoint(sizeDir(opts, size), size)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", size, err)
		}
		report.Date = date
		report.Points = append(report.Points, point)
	}
	return report, saveJSON(opts.Out, report)
}

// runSize runs one size in a child process and reads its figures from its report.
func runSize(ctx context.Context, opts ScaleOptions, size ScaleSize) (ScalePoint, error) {
	dir := sizeDir(opts, size)
	run := childRun{
		Options: Options{Users: size.Users, Apps: size.Apps, Concurrency: opts.Concurrency, Leavers: opts.Leavers,
			Replicas: opts.Replicas, Only: []string{"provisioning"}, LeaversIdleOnly: true},
		Out: filepath.Join(dir, "results.json"), ProfileDir: dir, Dashboard: filepath.Join(dir, "dashboard.png"),
	}
	spec, err := json.Marshal(run)
	if err != nil {
		return ScalePoint{}, err
	}
	exe, err := os.Executable()
	if err != nil {
		return ScalePoint{}, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), envRun+"="+string(spec))
	cmd.Stdout, cmd.Stderr = opts.Log, os.Stderr
	if err := cmd.Run(); err != nil {
		return ScalePoint{}, err
	}
	point, _, err := readPoint(dir, size)
	return point, err
}

// sizeDir is where a size's own report and profiles go.
func sizeDir(opts ScaleOptions, size ScaleSize) string {
	name := fmt.Sprintf("%dx%d", size.Users, size.Apps)
	if opts.Replicas > 1 {
		name += fmt.Sprintf("-%dreplicas", opts.Replicas)
	}
	return filepath.Join(opts.Dir, name)
}

// readPoint reads a size's figures, and the date of its run, from the report in dir.
func readPoint(dir string, size ScaleSize) (ScalePoint, time.Time, error) {
	data, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return ScalePoint{}, time.Time{}, err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return ScalePoint{}, time.Time{}, err
	}
	point, err := pointOf(size, &r)
	return point, r.Date, err
}

// runChild makes the run a scale run asked this process for, and exits.
func runChild(spec string) {
	var run childRun
	if err := json.Unmarshal([]byte(spec), &run); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	opts := run.Options
	opts.Out, opts.ProfileDir, opts.Dashboard = run.Out, run.ProfileDir, run.Dashboard
	if _, err := Run(context.Background(), opts); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// pointOf reads a size's figures from its report.
func pointOf(size ScaleSize, r *Report) (ScalePoint, error) {
	p := ScalePoint{ScaleSize: size}
	var missing []string
	figure := func(scenario, name string) *Result {
		res := r.find(scenario, name)
		if res == nil {
			missing = append(missing, scenario+": "+name)
			return &Result{}
		}
		return res
	}
	initial := figure("initial sync", fmt.Sprintf("%d Users × %d apps converged", size.Users, size.Apps))
	p.InitialSyncSeconds, p.APIWrites = initial.Value, initial.Details["apiWrites"]
	if initial.Floor != nil {
		p.FloorSeconds = *initial.Floor
	}
	p.RequestsPerAccount = figure("requests per account", "SCIM requests per account created").Value
	p.ResyncWrites = figure("steady state", "app writes in a full resync").Value + figure("steady state", "API writes in all").Value
	p.LeaverP99Seconds = figure("leaver", "p99 until every account is deactivated").Value
	p.Leavers = r.Options.Leavers
	p.BurstP99Seconds = figure("leaver", fmt.Sprintf("p99 of %d suspended at once", p.Leavers)).Value
	rss := figure("memory", "operator RSS after the initial sync")
	p.RSSMiB, p.HeapLiveMiB = rss.Value, rss.Details["heapLiveMiB"]
	if r.Options.Replicas > 1 {
		p.Replicas = r.Options.Replicas
		spread := figure("scale-out", "apps run by exactly one replica")
		p.AppsRunOnce = int(spread.Value)
		for i := range p.Replicas {
			p.AppsPerReplica = append(p.AppsPerReplica, int(spread.Details[fmt.Sprintf("replica%d", i)]))
		}
	}
	if len(missing) > 0 {
		return p, fmt.Errorf("the report lacks %s", strings.Join(missing, "; "))
	}
	return p, nil
}

// perPerson is one cost of a size, divided by its people.
type perPerson struct {
	name string
	of   func(ScalePoint) float64
}

// costs are the costs whose growth per person a scale run judges: all of them totals
// over the initial sync, divided by its people.
var costs = []perPerson{
	{"initial sync time", func(p ScalePoint) float64 { return p.InitialSyncSeconds / float64(p.Users) }},
	{"SCIM requests", func(p ScalePoint) float64 { return p.RequestsPerAccount * float64(p.Apps) }},
	{"API writes", func(p ScalePoint) float64 { return p.APIWrites / float64(p.Users) }},
	{"RSS", func(p ScalePoint) float64 { return p.RSSMiB / float64(p.Users) }},
	{"live heap", func(p ScalePoint) float64 { return p.HeapLiveMiB / float64(p.Users) }},
}

// maxGrowth is how much the cost per person may grow from the smallest size to the
// largest.
const maxGrowth = 1.3

// judgeScale sets the figures the targets are about: how each cost per person
// grows with the organisation (for the apps most sizes have), and with the apps (for
// people most sizes have), on one replica; steady-state writes and leaver latency at
// every size; and, where replicas shared the work, that each app had one replica.
func judgeScale(points []ScalePoint) []Result {
	results := appsRunOnce(points)
	single := oneReplica(points)
	if series := seriesOf(single, mostCommon(single, func(p ScalePoint) int { return p.Apps }),
		func(p ScalePoint) (int, int) { return p.Apps, p.Users }); len(series) >= 2 {
		first, last := series[0], series[len(series)-1]
		for _, c := range costs {
			growth, marginal := growthOf(series, c.of, func(p ScalePoint) float64 { return float64(p.Users) })
			results = append(results, atMost("scale", fmt.Sprintf("%s per person, %d ÷ %d people (%d apps)", c.name, last.Users, first.Users, first.Apps),
				max(growth, marginal), maxGrowth, "×", map[string]float64{
					"perPersonRatio": round(growth), "marginalRatio": round(marginal),
					"first": c.of(first), "last": c.of(last)}))
		}
	}
	if series := seriesOf(single, mostCommon(single, func(p ScalePoint) int { return p.Users }),
		func(p ScalePoint) (int, int) { return p.Users, p.Apps }); len(series) >= 2 {
		first, last := series[0], series[len(series)-1]
		perAccount := func(p ScalePoint) float64 { return p.InitialSyncSeconds / float64(p.Users*p.Apps) }
		growth, marginal := growthOf(series, perAccount, func(p ScalePoint) float64 { return float64(p.Users * p.Apps) })
		results = append(results, atMost("scale", fmt.Sprintf("initial sync time per account, %d ÷ %d apps (%d people)", last.Apps, first.Apps, first.Users),
			max(growth, marginal), maxGrowth, "×", map[string]float64{"perAccountRatio": round(growth), "marginalRatio": round(marginal)}))
	}
	var writes, leaver float64
	details := map[string]float64{}
	for _, p := range points {
		writes = max(writes, p.ResyncWrites)
		leaver = max(leaver, p.LeaverP99Seconds, p.BurstP99Seconds)
		details[p.String()+" idle"], details[p.String()+" burst"] = p.LeaverP99Seconds, p.BurstP99Seconds
	}
	results = append(results,
		atMost("scale", "writes in a steady-state resync, most at any size", writes, 0, "", nil),
		atMost("scale", "leaver p99, one at a time and at once, slowest at any size", leaver, 1, "s", details))
	return results
}

// oneReplica are the points of one replica: the growth of cost is judged, and drawn,
// on those alone.
func oneReplica(points []ScalePoint) []ScalePoint {
	var out []ScalePoint
	for _, p := range points {
		if p.Replicas <= 1 {
			out = append(out, p)
		}
	}
	return out
}

// appsRunOnce judges, for each point where replicas shared the work, that every app
// was run by exactly one of them.
func appsRunOnce(points []ScalePoint) []Result {
	var results []Result
	for _, p := range points {
		if p.Replicas <= 1 {
			continue
		}
		details := map[string]float64{}
		for i, n := range p.AppsPerReplica {
			details[fmt.Sprintf("replica%d", i)] = float64(n)
		}
		results = append(results, atLeast("scale-out", fmt.Sprintf("apps run by exactly one replica, %s", p),
			float64(p.AppsRunOnce), float64(p.Apps), "", details))
	}
	return results
}

// mostCommon is the value of key that most points share (the smallest, on a tie).
func mostCommon(points []ScalePoint, key func(ScalePoint) int) int {
	count := map[int]int{}
	best := 0
	for _, p := range points {
		count[key(p)]++
	}
	for v, n := range count {
		if n > count[best] || n == count[best] && v < best {
			best = v
		}
	}
	return best
}

// seriesOf are the points whose fixed part is fixed, sorted by the part that varies.
func seriesOf(points []ScalePoint, fixed int, parts func(ScalePoint) (fixed, varies int)) []ScalePoint {
	var out []ScalePoint
	for _, p := range points {
		if f, _ := parts(p); f == fixed {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b ScalePoint) int {
		_, va := parts(a)
		_, vb := parts(b)
		return va - vb
	})
	return out
}

// growthOf compares a cost per unit at the largest size with the smallest (growth),
// and, with three sizes or more, the last step's cost per added unit with the first
// step's (marginal), which a large fixed cost at the smallest size cannot hide.
func growthOf(series []ScalePoint, per func(ScalePoint) float64, units func(ScalePoint) float64) (growth, marginal float64) {
	first, last := series[0], series[len(series)-1]
	growth = ratio(per(last), per(first))
	if len(series) < 3 {
		return growth, 0
	}
	step := func(a, b ScalePoint) float64 {
		return (per(b)*units(b) - per(a)*units(a)) / (units(b) - units(a))
	}
	n := len(series)
	return growth, ratio(step(series[n-2], series[n-1]), step(series[0], series[1]))
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		if a <= 0 {
			return 1
		}
		return a / 1e-9
	}
	return a / b
}

// printPoints writes each size's figures as a table.
func printPoints(w io.Writer, points []ScalePoint) {
	tw := newTable(w, "PEOPLE × APPS\tINITIAL SYNC\tFLOOR\ts / 1,000 PEOPLE\tSCIM REQ / ACCOUNT\tAPI WRITES / PERSON\tRESYNC WRITES\tLEAVER P99\tBURST P99\tRSS\tLIVE HEAP\tRSS / PERSON")
	for _, p := range points {
		fmt.Fprintf(tw, "%s\t%s s\t%s s\t%s\t%s\t%s\t%s\t%s s\t%s s\t%s MiB\t%s MiB\t%s KiB\n", p,
			number(p.InitialSyncSeconds), number(p.FloorSeconds), number(round(p.InitialSyncSeconds*1000/float64(p.Users))),
			number(p.RequestsPerAccount), number(round(p.APIWrites/float64(p.Users))), number(p.ResyncWrites),
			number(p.LeaverP99Seconds), number(p.BurstP99Seconds), number(p.RSSMiB), number(round(p.HeapLiveMiB)),
			number(round(p.RSSMiB*1024/float64(p.Users))))
	}
	_ = tw.Flush()
}

// saveJSON saves v, indented, creating its directory.
func saveJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
