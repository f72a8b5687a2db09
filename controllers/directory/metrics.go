package directory

import "github.com/prometheus/client_golang/prometheus"

var (
	lastSync = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "roster_directory_last_sync_timestamp_seconds",
		Help: "When a DirectorySync last finished a full sync, changes or none.",
	}, []string{"directorysync"})
	lastSyncDuration = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "roster_directory_last_sync_duration_seconds",
		Help: "How long a DirectorySync's last full sync took.",
	}, []string{"directorysync"})
)

// Collectors are the directory syncers' metrics, for registration with the manager's
// registry.
func Collectors() []prometheus.Collector { return []prometheus.Collector{lastSync, lastSyncDuration} }

// ForgetMetrics drops a DirectorySync's series when it goes away.
func ForgetMetrics(name string) {
	lastSync.DeleteLabelValues(name)
	lastSyncDuration.DeleteLabelValues(name)
}
