package controllers

import "github.com/prometheus/client_golang/prometheus"

var (
	workerCrashes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "roster_worker_crashes_total",
		Help: "Panics recovered in an object's worker (kind engine or directorysync); the object's work stops and starts again after a backoff.",
	}, []string{"kind", "object"})
	inboundFailedLogins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "roster_inbound_scim_failed_logins_total",
		Help: "Inbound SCIM requests refused for a missing, wrong or revoked bearer token, by endpoint (namespace/name, or unknown).",
	}, []string{"endpoint"})
)

func collectors() []prometheus.Collector {
	return []prometheus.Collector{workerCrashes, inboundFailedLogins}
}
