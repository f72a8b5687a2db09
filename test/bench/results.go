package bench

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one measured figure beside its target and, where there is one, the floor
// measured in the same run.
type Result struct {
	Scenario string  `json:"scenario"`
	Figure   string  `json:"figure"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	// Floor is the least the same work can take on this machine, measured in the run.
	Floor *float64 `json:"floor,omitempty"`
	// Ratio is Value / Floor.
	Ratio  *float64 `json:"ratio,omitempty"`
	Target string   `json:"target"`
	Met    bool     `json:"met"`
	// Details are the numbers behind the figure.
	Details map[string]float64 `json:"details,omitempty"`
}

// Report is a run's results, as bench/results.json holds them.
type Report struct {
	Date     time.Time `json:"date"`
	Machine  Machine   `json:"machine"`
	Options  Options   `json:"options"`
	Results  []Result  `json:"results"`
	Profiles []Profile `json:"profiles,omitempty"`
	// Dashboard is how many series each panel of the Grafana dashboard drew from the
	// run's metrics.
	Dashboard map[string]int `json:"dashboard,omitempty"`
}

// Machine is where the run ran.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"goVersion"`
	OS        string `json:"os"`
}

// Profile is the top of a pprof profile taken during a scenario.
type Profile struct {
	Scenario string   `json:"scenario"`
	Kind     string   `json:"kind"`
	File     string   `json:"file"`
	Top      []string `json:"top"`
}

func newReport(opts Options) *Report {
	return &Report{
		Date:    time.Now().UTC().Truncate(time.Second),
		Machine: Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH},
		Options: opts,
	}
}

// add records a result; atMost tells whether lower is better.
func (r *Report) add(res Result) *Result {
	r.Results = append(r.Results, res)
	return &r.Results[len(r.Results)-1]
}

// find returns a scenario's figure, or nil.
func (r *Report) find(scenario, figure string) *Result {
	for i := range r.Results {
		if r.Results[i].Scenario == scenario && r.Results[i].Figure == figure {
			return &r.Results[i]
		}
	}
	return nil
}

// atMost is a result whose target is an upper bound.
func atMost(scenario, figure string, value, limit float64, unit string, details map[string]float64) Result {
	return Result{Scenario: scenario, Figure: figure, Value: round(value), Unit: unit,
		Target: "≤ " + number(limit) + unitSuffix(unit), Met: value <= limit, Details: details}
}

// atLeast is a result whose target is a lower bound.
func atLeast(scenario, figure string, value, limit float64, unit string, details map[string]float64) Result {
	return Result{Scenario: scenario, Figure: figure, Value: round(value), Unit: unit,
		Target: "≥ " + number(limit) + unitSuffix(unit), Met: value >= limit, Details: details}
}

// againstFloor is a result whose target is a multiple of the floor.
func againstFloor(scenario, figure string, value, floor, maxRatio float64, unit string, details map[string]float64) Result {
	ratio := round(value / floor)
	f := round(floor)
	return Result{Scenario: scenario, Figure: figure, Value: round(value), Unit: unit, Floor: &f, Ratio: &ratio,
		Target: "≤ " + number(maxRatio) + " × floor", Met: value <= maxRatio*floor, Details: details}
}

// aboveFloor is a result whose target is a fraction of the floor, for rates: the floor
// is the most the same work reaches without Roster.
func aboveFloor(scenario, figure string, value, floor, minRatio float64, unit string, details map[string]float64) Result {
	ratio := round(value / floor)
	f := round(floor)
	return Result{Scenario: scenario, Figure: figure, Value: round(value), Unit: unit, Floor: &f, Ratio: &ratio,
		Target: "≥ " + number(minRatio) + " × floor", Met: value >= minRatio*floor, Details: details}
}

func unitSuffix(unit string) string {
	if unit == "" {
		return ""
	}
	return " " + unit
}

func round(v float64) float64 {
	switch {
	case v >= 100:
		return float64(int64(v*10+0.5)) / 10
	default:
		return float64(int64(v*1000+0.5)) / 1000
	}
}

func number(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

// Print writes the results as a table.
func (r *Report) Print(w io.Writer) { printResults(w, r.Results) }

// printResults writes results as a table.
func printResults(w io.Writer, results []Result) {
	tw := newTable(w, "SCENARIO\tFIGURE\tMEASURED\tFLOOR\tRATIO\tTARGET\tMET")
	for _, res := range results {
		floor, ratio := "-", "-"
		if res.Floor != nil {
			floor = number(*res.Floor) + unitSuffix(res.Unit)
			ratio = number(*res.Ratio)
		}
		met := "yes"
		if !res.Met {
			met = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", res.Scenario, res.Figure, number(res.Value)+unitSuffix(res.Unit), floor, ratio, res.Target, met)
	}
	_ = tw.Flush()
}

// newTable is a table writer with its header written.
func newTable(w io.Writer, header string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	return tw
}

// Write saves the report as JSON.
func (r *Report) Write(path string) error { return saveJSON(path, r) }

// Missed lists the results whose target was not met.
func (r *Report) Missed() []Result {
	var out []Result
	for _, res := range r.Results {
		if !res.Met {
			out = append(out, res)
		}
	}
	return out
}
