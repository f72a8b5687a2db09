package engine

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/connectors"
)

var (
	requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "roster_connector_requests_total",
		Help: "Account writes Roster sent to apps, by app, operation and result.",
	}, []string{"app", "operation", "result"})
	convergence = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "roster_convergence_seconds",
		Help:    "Time from a change to a User, Role or AppAssignment to the User's account in the app matching it, by app and change: leaver (the account goes off), joiner (it is made) or mover.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900},
	}, []string{"app", "change"})
	accounts = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "roster_accounts",
		Help: "Accounts in each app by state: managed (active, held by a User), pending, failed, unmanaged.",
	}, []string{"app", "state"})
	planChanges = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "roster_plan_changes",
		Help: "Changes planned and not yet applied, by app and kind.",
	}, []string{"app", "kind"})
	lastFullSync = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "roster_last_full_sync_timestamp_seconds",
		Help: "When Roster last listed the whole app.",
	}, []string{"app"})
)

// Collectors are the engine's metrics, for registration with the manager's registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{requests, convergence, accounts, planChanges, lastFullSync}
}

func observeRequest(app, operation string, err error, _ time.Duration) {
	requests.WithLabelValues(app, operation, result(err)).Inc()
}

func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errUnauthorized(err):
		return "unauthorized"
	}
	if _, limited := connectors.RetryAfter(err); limited {
		return "rate_limited"
	}
	if connectors.IsPermanent(err) {
		return "refused"
	}
	return "error"
}

// startConvergence publishes an app's convergence series at zero, so that a rate over
// them sees the first leaver and the first joiner.
func startConvergence(app string) {
	for _, change := range []string{"leaver", "joiner", "mover"} {
		convergence.WithLabelValues(app, change)
	}
}

func observeConvergence(app, change string, d time.Duration) {
	convergence.WithLabelValues(app, change).Observe(d.Seconds())
}

// publishGauges publishes a snapshot's counts.
func publishGauges(app string, s Snapshot) {
	accounts.WithLabelValues(app, "managed").Set(float64(s.Managed))
	accounts.WithLabelValues(app, "pending").Set(float64(s.Pending))
	accounts.WithLabelValues(app, "failed").Set(float64(s.Failed))
	accounts.WithLabelValues(app, "unmanaged").Set(float64(s.Unmanaged))
	planChanges.WithLabelValues(app, "create").Set(float64(s.Plan.Creates))
	planChanges.WithLabelValues(app, "update").Set(float64(s.Plan.Updates))
	planChanges.WithLabelValues(app, "deactivate").Set(float64(s.Plan.Deactivations))
	planChanges.WithLabelValues(app, "delete").Set(float64(s.Plan.Deletions))
	planChanges.WithLabelValues(app, "group").Set(float64(s.Plan.GroupChanges))
	if !s.LastFullSync.IsZero() {
		lastFullSync.WithLabelValues(app).Set(float64(s.LastFullSync.Unix()))
	}
}

// ForgetMetrics drops an app's series when its AppConnection goes away.
func ForgetMetrics(app string) {
	for _, v := range []*prometheus.GaugeVec{accounts, planChanges, lastFullSync} {
		v.DeletePartialMatch(prometheus.Labels{"app": app})
	}
	requests.DeletePartialMatch(prometheus.Labels{"app": app})
	convergence.DeletePartialMatch(prometheus.Labels{"app": app})
}
