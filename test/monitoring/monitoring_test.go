// Package monitoring checks the alerts (config/prometheus) and the Grafana dashboard
// (config/grafana) with Prometheus's own promtool, and that they name only metrics the
// operator exports.
package monitoring

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	"github.com/rosterhq/roster/controllers"
	"github.com/rosterhq/roster/test/testenv"
)

func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: run make test-tools, which installs Debian's prometheus package")
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

type rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type groups struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

func alerts(t *testing.T) groups {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "prometheus", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		Spec groups `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &obj); err != nil {
		t.Fatal(err)
	}
	return obj.Spec
}

// exported are the names of the metrics the operator exports, histograms' series
// included: Roster's own (described by their collectors), and controller-runtime's,
// the work queues' and the Go runtime's as its registry gathers them.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	descs := make(chan *prometheus.Desc, 64)
	go func() {
		for _, c := range controllers.Collectors() {
			c.Describe(descs)
		}
		close(descs)
	}()
	fqName := regexp.MustCompile(`fqName: "([a-z0-9_]+)"`)
	for d := range descs {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			names[m[1]] = true
		}
	}
	queue := workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[string]{Name: "monitoring-test"})
	defer queue.ShutDown()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		names[f.GetName()] = true
	}
	return names
}

var metricName = regexp.MustCompile(`\b((?:roster|process|go|workqueue|controller_runtime)_[a-z0-9_]+)\b`)

// checkMetrics fails for each metric an expression names that the operator does not
// export.
func checkMetrics(t *testing.T, where, expr string, names map[string]bool) {
	t.Helper()
	for _, m := range metricName.FindAllString(expr, -1) {
		base := m
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if trimmed, ok := strings.CutSuffix(m, suffix); ok && names[trimmed] {
				base = trimmed
			}
		}
		if !names[base] {
			t.Errorf("%s names %s, which the operator does not export", where, m)
		}
	}
}

// Every alert parses, is unit-tested (alerts_test.yaml, run by promtool), names exported
// metrics, and links a runbook section that exists.
func TestAlerts(t *testing.T) {
	dir := t.TempDir()
	spec := alerts(t)
	data, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "prometheus", "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, dir, "check", "rules", "rules.yaml")
	promtool(t, dir, "test", "rules", "alerts_test.yaml")
	names := exported(t)
	guide, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "docs", "troubleshooting.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := anchorsOf(string(guide))
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			checkMetrics(t, "the alert "+r.Alert, r.Expr, names)
			if !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") {
				t.Errorf("the alert %s has no unit test in alerts_test.yaml", r.Alert)
			}
			for _, anchor := range runbookAnchors(r) {
				if !anchors[anchor] {
					t.Errorf("the alert %s links #%s, which docs/troubleshooting.md does not have", r.Alert, anchor)
				}
			}
		}
	}
}

// runbookAnchors are the sections an alert's runbook_url can link: one per reason its
// expression matches when the anchor is the reason.
func runbookAnchors(r rule) []string {
	_, anchor, found := strings.Cut(r.Annotations["runbook_url"], "docs/troubleshooting.md#")
	if !found {
		return []string{"(no runbook_url into docs/troubleshooting.md)"}
	}
	if !strings.Contains(anchor, "{{") {
		return []string{anchor}
	}
	reasons := regexp.MustCompile(`reason=~"([^"]+)"`).FindStringSubmatch(r.Expr)
	if reasons == nil {
		return []string{anchor}
	}
	var out []string
	for _, reason := range strings.Split(reasons[1], "|") {
		out = append(out, strings.ToLower(reason))
	}
	return out
}

// anchorsOf are the anchors of a Markdown page: explicit ids, and GitHub's slugs of its
// headings.
func anchorsOf(page string) map[string]bool {
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`<a id="([^"]+)"></a>`).FindAllStringSubmatch(page, -1) {
		out[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(page, -1) {
		slug := strings.ToLower(m[1])
		slug = regexp.MustCompile(`[^a-z0-9 -]`).ReplaceAllString(slug, "")
		out[strings.ReplaceAll(slug, " ", "-")] = true
	}
	return out
}

// Every query of the dashboard parses (promtool checks it as a recording rule) and
// names only exported metrics.
func TestDashboard(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "grafana", "roster.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	names := exported(t)
	var recorded groups
	recorded.Groups = append(recorded.Groups, struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	}{Name: "dashboard"})
	var titles []string
	for _, p := range dash.Panels {
		titles = append(titles, p.Title)
		for i, target := range p.Targets {
			expr := strings.ReplaceAll(target.Expr, "$job", ".*")
			checkMetrics(t, "the panel "+p.Title, expr, names)
			recorded.Groups[0].Rules = append(recorded.Groups[0].Rules, rule{Record: "dashboard:panel_" + slugOf(p.Title, i), Expr: expr})
		}
	}
	dir := t.TempDir()
	out, err := yaml.Marshal(recorded)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dashboard.yaml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, dir, "check", "rules", "dashboard.yaml")
	for _, want := range []string{"Leavers: time until the account is off", "Joiners: time until the account is made", "429", "Pending and failed", "held by the safety threshold", "Directory sync lag",
		"Inbound SCIM", "memory", "queue depth", "Notifications"} {
		if !slices.ContainsFunc(titles, func(title string) bool { return strings.Contains(title, want) }) {
			t.Errorf("no panel about %q in %v", want, titles)
		}
	}
}

func slugOf(title string, i int) string {
	return regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(title), "_") + "_" + string(rune('a'+i))
}
