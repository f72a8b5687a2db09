package bench

import (
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	ServeIfChild() // the bench's apps, and a scale run's sizes, run in child processes: this test binary
	os.Exit(m.Run())
}

// countedFigures are the figures a run decides by counting requests and writes, not by
// timing them, so that a run on a busy machine meets them as surely as on an idle one.
// Timings are make bench's to report, not a test's to assert.
var countedFigures = []struct{ scenario, figure string }{
	{"requests per account", "SCIM requests per account created"},
	{"steady state", "app writes in a full resync"},
	{"steady state", "app reads other than list pages"},
	{"steady state", "API writes to Users, Roles, AppAssignments, Events"},
	{"steady state", "API writes in all"},
	{"rate budget", "429 answers, % of requests"},
	{"rate budget", "accounts lost"},
	{"LDAP target: OpenLDAP", "adds per account created"},
	{"LDAP target: Active Directory", "adds per account created"},
	{"webhook", "change requests per account created"},
	{"GitHub", "requests per member, the teams' creation apart"},
	{"Google Workspace target", "inserts per account created"},
	{"Microsoft Graph target", "creates per account created"},
}

// TestQuick is make bench --quick: every scenario at 200 users, so that the benchmark
// keeps working, and the figures that are counts meet their targets.
func TestQuick(t *testing.T) {
	var log strings.Builder
	out, picture := filepath.Join(t.TempDir(), "results.json"), filepath.Join(t.TempDir(), "dashboard.png")
	report, err := Run(context.Background(), Options{Quick: true, Log: &log, Out: out, ProfileDir: t.TempDir(), Dashboard: picture})
	t.Log("\n" + log.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range countedFigures {
		res := report.find(want.scenario, want.figure)
		switch {
		case res == nil:
			t.Errorf("the report has no %q figure of %s", want.figure, want.scenario)
		case !res.Met:
			t.Errorf("%s: %s = %v, target %s", want.scenario, want.figure, res.Value, res.Target)
		}
	}
	if len(report.Results) < 15 {
		t.Errorf("the report has %d figures, want every scenario's", len(report.Results))
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("the JSON report was not written: %v", err)
	}
	checkDashboard(t, picture, report.Dashboard)
}

// TestQuickReplicasKilledMidSync is make bench --quick --replicas 3 --kill-replica
// --only provisioning: three replicas of the operator share automatic shards, and one
// is killed when the initial sync has made half its accounts. Its shards move to the
// other two (how soon is reported, not asserted: the machine is shared); every app is
// provisioned once, with the requests one replica would send and no create sent again;
// a resync writes nothing; both replicas left hold shards.
func TestQuickReplicasKilledMidSync(t *testing.T) {
	var log strings.Builder
	dir := t.TempDir()
	report, err := Run(context.Background(), Options{Quick: true, Replicas: 3, KillReplica: true, Only: []string{"provisioning"}, Log: &log,
		Out: filepath.Join(dir, "results.json"), ProfileDir: dir, Dashboard: filepath.Join(dir, "dashboard.png")})
	t.Log("\n" + log.String())
	if err != nil {
		t.Fatal(err)
	}
	if report.find("scale-out", "seconds until a replica killed mid-sync has its shards run by the others") == nil {
		t.Error("the report does not say how soon the killed replica's shards moved")
	}
	want := []struct{ scenario, figure string }{
		{"scale-out", "replicas holding automatic shards, of 2 alive"},
		{"scale-out", "account creates sent again after the kill"},
	}
	for _, f := range countedFigures {
		if f.scenario == "requests per account" || f.scenario == "steady state" {
			want = append(want, f)
		}
	}
	for _, f := range want {
		switch res := report.find(f.scenario, f.figure); {
		case res == nil:
			t.Errorf("the report has no %q figure of %s", f.figure, f.scenario)
		case !res.Met:
			t.Errorf("%s: %s = %v, target %s", f.scenario, f.figure, res.Value, res.Target)
		}
	}
}

// checkDashboard: the dashboard's panels were drawn into a PNG, those the run exercises
// with at least one series from Prometheus.
func checkDashboard(t *testing.T, file string, drawn map[string]int) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the dashboard is no PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 1000 {
		t.Errorf("the dashboard is %v", b)
	}
	for _, panel := range []string{"Leavers: time until the account is off (p50, p99)", "Joiners: time until the account is made (p50, p99)",
		"Account writes per app, by result", "HTTP requests and 429s per app", "Inbound SCIM requests and failed logins", "Operator memory", "Work queue depth"} {
		if drawn[panel] == 0 {
			t.Errorf("the panel %q drew no series (drawn: %v)", panel, drawn)
		}
	}
}
