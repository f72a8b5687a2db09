package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

var (
	workerCrashes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "roster_worker_crashes_total",
		Help: "Panics recovered in an object's worker (kind engine or directorysync); the object's work stops and starts again after a backoff.",
	}, []string{"kind", "object"})
	inboundFailedLogins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "roster_inbound_scim_failed_logins_total",
		Help: "Inbound SCIM requests refused for a missing, wrong or revoked bearer token, by endpoint (namespace/name, or unknown).",
	}, []string{"endpoint"})
	inboundRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "roster_inbound_scim_requests_total",
		Help: "Authenticated inbound SCIM requests by endpoint (namespace/name), method and answer code.",
	}, []string{"endpoint", "method", "code"})
	objectConditions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "roster_condition",
		Help: "The conditions of AppConnections, DirectorySyncs and Notifiers (object namespace/name): 1 while True, 0 while False, with the current reason.",
	}, []string{"kind", "object", "type", "reason"})
	quarantined = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "roster_app_quarantined",
		Help: "1 while Roster backs off from an app that keeps failing (status.quarantinedUntil), else 0.",
	}, []string{"app"})
)

func collectors() []prometheus.Collector {
	return []prometheus.Collector{workerCrashes, inboundFailedLogins, inboundRequests, objectConditions, quarantined}
}

// reportConditions puts an object's conditions in roster_condition, in place of what
// it reported before.
func reportConditions(kind string, key types.NamespacedName, conds []metav1.Condition) {
	forgetConditions(kind, key)
	for _, c := range conds {
		v := 0.0
		if c.Status == metav1.ConditionTrue {
			v = 1
		}
		objectConditions.WithLabelValues(kind, key.String(), c.Type, c.Reason).Set(v)
	}
}

// forgetConditions drops a deleted object's conditions.
func forgetConditions(kind string, key types.NamespacedName) {
	objectConditions.DeletePartialMatch(prometheus.Labels{"kind": kind, "object": key.String()})
}
