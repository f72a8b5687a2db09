package bench

import (
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestQuickScale is make bench --scale at two small sizes: each size runs in a process
// of its own, its figures reach the scale report, the counted ones hold at both sizes,
// and the curves are drawn.
func TestQuickScale(t *testing.T) {
	var log strings.Builder
	dir := t.TempDir()
	out, chart := filepath.Join(dir, "scale.json"), filepath.Join(dir, "scale.png")
	report, err := Scale(context.Background(), ScaleOptions{Sizes: []ScaleSize{{150, 2}, {300, 2}}, Out: out, Chart: chart, Dir: dir, Log: &log})
	t.Log("\n" + log.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Points) != 2 {
		t.Fatalf("%d sizes measured, want 2", len(report.Points))
	}
	for _, p := range report.Points {
		if p.InitialSyncSeconds <= 0 || p.FloorSeconds <= 0 || p.HeapLiveMiB <= 0 || p.RSSMiB < p.HeapLiveMiB {
			t.Errorf("%s: figures missing: %+v", p, p)
		}
		if p.RequestsPerAccount < 1 || p.RequestsPerAccount > 1.05 {
			t.Errorf("%s: %v SCIM requests per account created, want 1 (at most 1.05)", p, p.RequestsPerAccount)
		}
		if p.ResyncWrites != 0 {
			results, _ := os.ReadFile(filepath.Join(sizeDir(ScaleOptions{Dir: dir}, p.ScaleSize), "results.json"))
			t.Errorf("%s: a steady-state resync wrote %v times; the size's report, whose details say what:\n%s", p, p.ResyncWrites, results)
		}
	}
	for _, figure := range []string{"SCIM requests per person, 300 ÷ 150 people (2 apps)", "writes in a steady-state resync, most at any size"} {
		res := findResult(report.Results, "scale", figure)
		switch {
		case res == nil:
			t.Errorf("no figure %q in %+v", figure, report.Results)
		case !res.Met:
			t.Errorf("%s = %v, target %s", figure, res.Value, res.Target)
		}
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("the JSON report was not written: %v", err)
	}
	f, err := os.Open(chart)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("the curves are no PNG: %v", err)
	}
}

// TestScaleGrowth: a cost per person that grows with the organisation is caught, by
// its marginal cost where a large fixed cost at the smallest size hides it from the
// plain ratio; a flat one passes; sizes with more apps are judged per account.
func TestScaleGrowth(t *testing.T) {
	point := func(users, apps int, seconds float64) ScalePoint {
		return ScalePoint{ScaleSize: ScaleSize{Users: users, Apps: apps}, InitialSyncSeconds: seconds,
			RequestsPerAccount: 1, APIWrites: 2 * float64(users), RSSMiB: 50 + float64(users)/100, HeapLiveMiB: 20 + float64(users)/200}
	}
	figure := "initial sync time per person, 50000 ÷ 1000 people (5 apps)"
	// 10 s of fixed cost, then 10 ms a person.
	flat := []ScalePoint{point(1000, 5, 20), point(10000, 5, 110), point(50000, 5, 510)}
	if res := findResult(judgeScale(flat), "scale", figure); res == nil || !res.Met {
		t.Errorf("a flat cost was judged %+v", res)
	}
	// 10 s of fixed cost hides, in the plain ratio (1.11), a cost per added person that
	// grows 2.5 times: 10 ms from 1,000 to 10,000 people, 25 ms from 10,000 to 50,000.
	growing := []ScalePoint{point(1000, 5, 20), point(10000, 5, 110), point(50000, 5, 1110)}
	res := findResult(judgeScale(growing), "scale", figure)
	if res == nil || res.Met || res.Details["perPersonRatio"] > maxGrowth || res.Details["marginalRatio"] < 2 {
		t.Errorf("a growing cost was judged %+v", res)
	}
	withApps := append(flat, point(10000, 20, 880))
	res = findResult(judgeScale(withApps), "scale", "initial sync time per account, 20 ÷ 5 apps (10000 people)")
	if res == nil || res.Met || res.Value < 1.9 {
		t.Errorf("twice the cost per account with 20 apps was judged %+v", res)
	}
}

func findResult(results []Result, scenario, figure string) *Result {
	r := Report{Results: results}
	return r.find(scenario, figure)
}

// TestScaleOnReplicas: a size run on replicas is judged on whether each app had one
// replica, and is left out of the growth of cost, which one replica's sizes show.
func TestScaleOnReplicas(t *testing.T) {
	point := func(users, apps int, seconds float64) ScalePoint {
		return ScalePoint{ScaleSize: ScaleSize{Users: users, Apps: apps}, InitialSyncSeconds: seconds, RequestsPerAccount: 1}
	}
	sharded := point(50000, 20, 99999)
	sharded.Replicas, sharded.AppsRunOnce, sharded.AppsPerReplica = 3, 19, []int{7, 6, 7}
	results := judgeScale([]ScalePoint{point(10000, 20, 400), point(50000, 20, 2000), sharded})
	if res := findResult(results, "scale", "initial sync time per person, 50000 ÷ 10000 people (20 apps)"); res == nil || !res.Met {
		t.Errorf("the growth on one replica was judged %+v: the replicas' point counted in it", res)
	}
	res := findResult(results, "scale-out", "apps run by exactly one replica, 50000×20 on 3 replicas")
	if res == nil || res.Met || res.Value != 19 || res.Details["replica1"] != 6 {
		t.Errorf("an app run by no replica, or two, was judged %+v", res)
	}
}
