package controllers

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/httpx"
	"github.com/rosterhq/roster/controllers/directory"
	"github.com/rosterhq/roster/controllers/engine"
	"github.com/rosterhq/roster/controllers/notify"
)

// DefaultConcurrentReconciles is how many objects of each kind the operator reconciles
// at once unless told otherwise: enough to keep Users' status current while thousands
// converge, few enough not to crowd the API server.
const DefaultConcurrentReconciles = 4

// ManagerOptions completes a manager's options with what Roster's controllers expect:
// concurrency (DefaultConcurrentReconciles unless set), and caches that drop
// managedFields, the server-side apply bookkeeping Roster never reads and that makes up
// much of a User's size in memory.
func ManagerOptions(opts ctrl.Options) ctrl.Options {
	if opts.Controller.MaxConcurrentReconciles == 0 {
		opts.Controller.MaxConcurrentReconciles = DefaultConcurrentReconciles
	}
	if opts.Cache.DefaultTransform == nil {
		opts.Cache.DefaultTransform = cache.TransformStripManagedFields()
	}
	// Secrets are read by name from the API server, never cached: a cache would list and
	// watch every Secret the operator can see.
	if opts.Client.Cache == nil {
		opts.Client.Cache = &client.CacheOptions{}
	}
	opts.Client.Cache.DisableFor = append(opts.Client.Cache.DisableFor, &corev1.Secret{})
	if opts.GracefulShutdownTimeout == nil {
		timeout := GracefulShutdown
		opts.GracefulShutdownTimeout = &timeout
	}
	return opts
}

// GracefulShutdown is how long the operator lets its work finish when it stops; the
// Deployment's terminationGracePeriodSeconds is longer.
const GracefulShutdown = 30 * time.Second

// Options configure the controllers.
type Options struct {
	// Registry holds the connectors the binary speaks.
	Registry *connectors.Registry
	// Inbound serves the "scim" directory source; nil serves none.
	Inbound *InboundSCIM
	// SecretRecheck is how often referenced Secrets are read again; 0 means
	// DefaultSecretRecheck.
	SecretRecheck time.Duration
	// IdentityPrefix is what the API server puts before a person's userName in their
	// Kubernetes user name (its OIDC username prefix).
	IdentityPrefix string
	// AccessRequestRetention is how long an ended AccessRequest is kept; 0 means
	// DefaultAccessRequestRetention.
	AccessRequestRetention time.Duration
	// Shard is the part of the work this replica does; MainShard unless sharded.
	Shard Shard
}

// Collectors are every metric Roster exports, beside controller-runtime's and the Go
// runtime's.
func Collectors() []prometheus.Collector {
	return slices.Concat(engine.Collectors(), directory.Collectors(), httpx.Collectors(), notify.Collectors(), collectors())
}

// Setup adds Roster's indexes, engines and controllers to a manager.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if err := addIndexes(ctx, mgr); err != nil {
		return err
	}
	for _, c := range Collectors() {
		// A second manager in the same process (a test's second replica) shares them.
		if err := metrics.Registry.Register(c); err != nil && !errors.As(err, &prometheus.AlreadyRegisteredError{}) {
			return err
		}
	}
	if opts.SecretRecheck > 0 {
		secretRecheck = opts.SecretRecheck
	}
	if opts.Inbound != nil && opts.Inbound.Recorder == nil {
		opts.Inbound.Recorder = mgr.GetEventRecorder("roster")
	}
	membership, err := NewMembership()
	if err != nil {
		return err
	}
	hub := notify.NewHub()
	engines := NewEngines(mgr.GetClient(), mgr.GetEventRecorder("roster"), membership, ctrl.Log.WithName("engine"))
	if err := mgr.Add(engines); err != nil {
		return err
	}
	syncers := NewSyncers(mgr.GetClient(), ctrl.Log.WithName("directorysync"))
	if err := mgr.Add(syncers); err != nil {
		return err
	}
	if opts.Inbound != nil {
		opts.Inbound.syncers, opts.Inbound.cache, opts.Inbound.live = syncers, mgr.GetCache(), mgr.GetAPIReader()
		if opts.Inbound.Client == nil {
			opts.Inbound.Client = mgr.GetClient()
		}
		if err := mgr.Add(opts.Inbound); err != nil {
			return err
		}
	}
	shard := opts.Shard
	reconcilers := []interface{ SetupWithManager(ctrl.Manager) error }{
		&DirectorySyncReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Registry: opts.Registry, Syncers: syncers, Inbound: opts.Inbound,
			Recorder: mgr.GetEventRecorder("roster"), Notify: hub, Shard: shard},
		&UserReconciler{Client: mgr.GetClient(), Engines: engines, Recorder: mgr.GetEventRecorder("roster"), Notify: hub, Membership: membership, Shard: shard},
		&RoleReconciler{Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Engines: engines, Membership: membership, Shard: shard},
		&AppAssignmentReconciler{Client: mgr.GetClient(), Engines: engines, Membership: membership, Shard: shard},
		&NotifierReconciler{Client: mgr.GetClient(), Hub: hub, Shard: shard},
		&DirectorySyncPreviewReconciler{Client: mgr.GetClient(), Syncers: syncers, Shard: shard},
		&AppConnectionReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Registry: opts.Registry,
			Engines: engines, Recorder: mgr.GetEventRecorder("roster"), Notify: hub, Shard: shard},
	}
	if shard.main() {
		reconcilers = append(reconcilers, &AccessRequestReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Membership: membership, Notify: hub,
			Recorder: mgr.GetEventRecorder("roster"), IdentityPrefix: opts.IdentityPrefix, Retention: opts.AccessRequestRetention})
	}
	for _, r := range reconcilers {
		if err := r.SetupWithManager(mgr); err != nil {
			return err
		}
	}
	return nil
}
