// Package bench is make bench: it measures how fast Roster converges and what it costs,
// on a real kube-apiserver and etcd, with the operator in this process and SCIM apps,
// an HR export, slapd, Samba's Active Directory and identity-provider clients on loopback, and sets each figure
// beside its target and, where there is one, the floor measured in the same run.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/rosterhq/roster/test/testenv"
)

// Options size a run. Zero values take the defaults of a full run.
type Options struct {
	// Users is the size of the organisation (the initial sync, and the second initial
	// sync the leavers are measured under).
	Users int `json:"users"`
	// Apps is how many SCIM apps every User gets an account in.
	Apps int `json:"apps"`
	// Concurrency is how many requests each AppConnection sends at once, and the floor's
	// concurrency per app.
	Concurrency int `json:"concurrency"`
	// Latency is each app's added response time.
	Latency time.Duration `json:"latency"`
	// Leavers is how many Users are suspended one at a time idle, as many at once, and as
	// many again while a second organisation joins.
	Leavers int `json:"leavers"`
	// LeaversIdleOnly leaves out the leavers measured while a second organisation joins
	// (a scale run's sizes measure the initial sync alone).
	LeaversIdleOnly bool `json:"leaversIdleOnly,omitempty"`
	// RateBudget is the rate-limited app's writes a minute; RateDuration how long its
	// scenario provisions for.
	RateBudget   int           `json:"rateBudget"`
	RateDuration time.Duration `json:"rateDuration"`
	// LDAPUsers is the size of the slapd directory.
	LDAPUsers int `json:"ldapUsers"`
	// LDAPTargetUsers is how many accounts are provisioned into slapd and into Active
	// Directory.
	LDAPTargetUsers int `json:"ldapTargetUsers"`
	// WebhookUsers is how many accounts are provisioned through the webhook connector.
	WebhookUsers int `json:"webhookUsers"`
	// GitHubMembers is how many people are invited into the GitHub organization.
	GitHubMembers int `json:"githubMembers"`
	// SuiteUsers is how many people are provisioned into Google Workspace and into
	// Entra ID (and, up to 2,000, read from Google Workspace).
	SuiteUsers int `json:"suiteUsers"`
	// InboundClients push to the inbound SCIM endpoint for InboundDuration.
	InboundClients  int           `json:"inboundClients"`
	InboundDuration time.Duration `json:"inboundDuration"`
	// Replicas is how many replicas of the operator run (in this process), sharing
	// automatic shards when more than one.
	Replicas int `json:"replicas"`
	// KillReplica kills the last replica, as SIGKILL would, once the initial sync has
	// made half its accounts (with Replicas above 1).
	KillReplica bool `json:"killReplica,omitempty"`
	// Quick is the small run make test makes.
	Quick bool `json:"quick"`
	// Only, when set, runs these parts alone: provisioning (the floor, initial sync,
	// steady state and leavers), rate, directory, apps.
	Only []string `json:"only,omitempty"`
	// Out is where the JSON report goes; ProfileDir where the pprof profiles go;
	// Dashboard where the Grafana dashboard's panels, drawn from the run's metrics, go.
	Out        string `json:"-"`
	ProfileDir string `json:"-"`
	Dashboard  string `json:"-"`
	// APIServerProfile, when above 0, profiles the API server's CPU for this long from
	// the start of the initial sync.
	APIServerProfile time.Duration `json:"-"`
	// Verbose logs the operator to stderr.
	Verbose bool      `json:"-"`
	Log     io.Writer `json:"-"`
}

// runs says whether a part of the bench runs: every part unless Only names some.
func (o Options) runs(part string) bool { return len(o.Only) == 0 || slices.Contains(o.Only, part) }

// Defaults fills in what is unset: the full run's sizes, or the quick run's.
func (o Options) Defaults() Options {
	full := Options{Users: 10000, Apps: 5, Concurrency: 8, Leavers: 100, RateBudget: 180, RateDuration: 2 * time.Minute,
		LDAPUsers: 10000, LDAPTargetUsers: 10000, WebhookUsers: 10000, GitHubMembers: 5000, SuiteUsers: 10000, InboundClients: 8, InboundDuration: 15 * time.Second,
		Out: filepath.Join(testenv.RepoRoot(), "bench", "results.json"), Dashboard: filepath.Join(testenv.RepoRoot(), "docs", "img", "dashboard.png")}
	if o.Quick {
		full.Users, full.Leavers, full.LDAPUsers, full.LDAPTargetUsers, full.WebhookUsers, full.GitHubMembers, full.SuiteUsers = 200, 10, 200, 200, 200, 200, 200
		full.RateDuration, full.InboundDuration = 20*time.Second, 3*time.Second
		full.Out = filepath.Join(testenv.RepoRoot(), "bin", "bench", "results-quick.json")
		full.Dashboard = filepath.Join(testenv.RepoRoot(), "bin", "bench", "dashboard-quick.png")
	}
	if o.Users == 0 {
		o.Users = full.Users
	}
	if o.Apps == 0 {
		o.Apps = full.Apps
	}
	if o.Concurrency == 0 {
		o.Concurrency = full.Concurrency
	}
	if o.Leavers == 0 {
		o.Leavers = min(full.Leavers, o.Users/10)
	}
	if o.RateBudget == 0 {
		o.RateBudget = full.RateBudget
	}
	if o.RateDuration == 0 {
		o.RateDuration = full.RateDuration
	}
	if o.LDAPUsers == 0 {
		o.LDAPUsers = full.LDAPUsers
	}
	if o.LDAPTargetUsers == 0 {
		o.LDAPTargetUsers = full.LDAPTargetUsers
	}
	if o.WebhookUsers == 0 {
		o.WebhookUsers = full.WebhookUsers
	}
	if o.GitHubMembers == 0 {
		o.GitHubMembers = full.GitHubMembers
	}
	if o.SuiteUsers == 0 {
		o.SuiteUsers = full.SuiteUsers
	}
	if o.InboundClients == 0 {
		o.InboundClients = full.InboundClients
	}
	if o.InboundDuration == 0 {
		o.InboundDuration = full.InboundDuration
	}
	if o.Out == "" {
		o.Out = full.Out
	}
	o.Replicas = max(o.Replicas, 1)
	if o.Dashboard == "" {
		o.Dashboard = full.Dashboard
	}
	if o.ProfileDir == "" {
		o.ProfileDir = filepath.Join(testenv.RepoRoot(), "bin", "bench")
	}
	if o.Log == nil {
		o.Log = os.Stdout
	}
	return o
}

// bench is a run in progress.
type bench struct {
	opts    Options
	report  *Report
	env     *testenv.Env
	apps    *apps
	exports *exports
	op      *operator
	dash    *dashboard
}

// Run measures every scenario and returns the report; it is written to opts.Out.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts = opts.Defaults()
	if opts.Verbose {
		ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	} else {
		ctrl.SetLogger(logr.Discard())
	}
	b := &bench{opts: opts, report: newReport(opts)}
	stop, err := b.start()
	defer stop()
	if err != nil {
		return nil, err
	}
	steps := []struct {
		name, part string
		run        func(context.Context) error
	}{
		{"floor", "", b.floor},
		{"operator", "", b.startOperator},
		{"initial sync", "provisioning", b.initialSync},
		{"steady state", "provisioning", b.steadyState},
		{"leaver", "provisioning", b.leavers},
		{"rate budget", "rate", b.rateBudget},
		{"directory sync", "directory", b.directorySync},
		{"LDAP targets", "directory", b.ldapTargets},
		{"webhook", "apps", b.webhookScenario},
		{"GitHub", "apps", b.githubScenario},
		{"Google Workspace and Entra ID", "apps", b.suitesScenario},
	}
	for _, s := range steps {
		if s.part != "" && !opts.runs(s.part) {
			continue
		}
		b.logf("▸ %s\n", s.name)
		if err := s.run(ctx); err != nil {
			return b.report, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	b.memoryAtEnd()
	drawn, err := b.dash.draw(ctx, opts.Dashboard)
	if err != nil {
		return b.report, fmt.Errorf("drawing the dashboard: %w", err)
	}
	b.report.Dashboard = drawn
	b.logf("\n")
	b.report.Print(opts.Log)
	for _, p := range b.report.Profiles {
		b.logf("\nTop of the %s profile during the %s (%s):\n", p.Kind, p.Scenario, p.File)
		for _, line := range p.Top {
			b.logf("  %s\n", line)
		}
	}
	if err := b.report.Write(opts.Out); err != nil {
		return b.report, err
	}
	b.logf("\nWrote %s and the dashboard's panels, drawn from the run's metrics, to %s\n", opts.Out, opts.Dashboard)
	return b.report, nil
}

func (b *bench) logf(format string, args ...any) { fmt.Fprintf(b.opts.Log, format, args...) }

// start brings up the control plane, the apps, the HR export server and Prometheus.
func (b *bench) start() (func(), error) {
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	var err error
	b.logf("Starting kube-apiserver and etcd, the SCIM apps, the HR export server and Prometheus\n")
	if b.env, err = testenv.Start(); err != nil {
		return stop, err
	}
	stops = append(stops, func() { _ = b.env.Stop() })
	if b.apps, err = startApps(b.opts.ProfileDir); err != nil {
		return stop, err
	}
	stops = append(stops, b.apps.stop)
	if b.exports, err = startExports(); err != nil {
		return stop, err
	}
	stops = append(stops, b.exports.stop)
	dir, err := os.MkdirTemp("", "roster-bench-prometheus-")
	if err != nil {
		return stop, err
	}
	stops = append(stops, func() { _ = os.RemoveAll(dir) })
	if b.dash, err = startDashboard(context.Background(), dir); err != nil {
		return stop, err
	}
	stops = append(stops, b.dash.stop)
	stops = append(stops, func() {
		if b.op != nil {
			b.op.stop()
		}
	})
	return stop, nil
}

// waitFor polls check every interval until it reports done, or fails after timeout.
// While it waits it says, every 15 seconds, what it waits for.
func (b *bench) waitFor(ctx context.Context, timeout, interval time.Duration, what string, check func() (bool, string, error)) error {
	start := time.Now()
	deadline, lastSaid := start.Add(timeout), start
	for {
		done, detail, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if b.op != nil && b.op.alive() == 0 {
			return fmt.Errorf("%s: no replica of the operator runs any more (%s)", what, detail)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not done after %s (%s)%s", what, timeout, detail, b.dumpGoroutines())
		}
		if time.Since(lastSaid) >= 15*time.Second {
			b.logf("  … %s, %s: %s\n", what, time.Since(start).Round(time.Second), detail)
			lastSaid = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// dumpGoroutines writes the stacks of this process (the operator) into the profile
// directory, so that a step that never ends says where it waits, and names the file.
func (b *bench) dumpGoroutines() string {
	return saveStacks(b.opts.ProfileDir, "stuck", "goroutines", func(w io.Writer) error {
		return pprof.Lookup("goroutine").WriteTo(w, 2)
	})
}

// saveStacks writes a process's stacks to <dir>/<prefix>-HHMMSS.goroutines.txt and
// returns what to add to an error message: "; <whose> in <file>", or "" if it failed.
func saveStacks(dir, prefix, whose string, write func(io.Writer) error) string {
	path := filepath.Join(dir, fmt.Sprintf("%s-%s.goroutines.txt", prefix, time.Now().Format("150405")))
	f, err := os.Create(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if err := write(f); err != nil {
		return ""
	}
	return fmt.Sprintf("; %s in %s", whose, path)
}

// timeoutFor is how long a step with n objects may take before the run gives up: far
// beyond any target, so that only a stuck run fails.
func timeoutFor(n int) time.Duration {
	return max(2*time.Minute, time.Duration(n)*60*time.Millisecond)
}
