package httpx

import "github.com/prometheus/client_golang/prometheus"

var responses = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "roster_connector_http_responses_total",
	Help: "HTTP answers apps gave Roster, by app, method and status code (0: no answer), retries included; code 429 counts rate limiting.",
}, []string{"app", "method", "code"})

// Collectors are the HTTP connectors' metrics, for registration with the manager's
// registry.
func Collectors() []prometheus.Collector { return []prometheus.Collector{responses} }

// ForgetMetrics drops an app's series when its object goes away.
func ForgetMetrics(app string) { responses.DeletePartialMatch(prometheus.Labels{"app": app}) }
