package controllers

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
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
	// Sharding is the part of the work this replica does; nil for all of it (the main
	// shard, with no automatic shards).
	Sharding *Sharding
	// Leases time the automatic shards' leases, as leader election's.
	Leases LeaseTiming
	// ShardLeaders says that every shard's replicas elect their leader by a lease in
	// Leases.Namespace (--leader-elect): the main shard's replica then reports, on an
	// AppConnection or DirectorySync, a shard that no replica leads.
	ShardLeaders bool
}

// addWorkers runs the engines and syncers: on the leader, or, with automatic shards, on
// every replica, for the shards whose leases it holds.
func addWorkers(mgr ctrl.Manager, shard *Sharding, timing LeaseTiming, engines *Engines, syncers *Syncers) error {
	if shard.auto == 0 {
		if err := mgr.Add(engines); err != nil {
			return err
		}
		return mgr.Add(syncers)
	}
	direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return err
	}
	cache := mgr.GetClient()
	of := func(obj client.Object, key types.NamespacedName) Shard {
		if err := cache.Get(context.Background(), key, obj); err != nil {
			return autoShard(key.Namespace, key.Name, shard.auto)
		}
		return shard.of(obj)
	}
	stop := func(s Shard) {
		engines.StopWhere(func(key types.NamespacedName) bool { return of(&identityv1alpha1.AppConnection{}, key) == s })
		syncers.StopWhere(func(key types.NamespacedName) bool { return of(&identityv1alpha1.DirectorySync{}, key) == s })
	}
	start := func(s Shard) { go wake(cache, shard, s, engines, syncers) }
	leases := newShardLeases(direct, shard, timing, LeaseBase, ctrl.Log.WithName("shards"), stop, start)
	// The manager stops this when the replica stops leading (its lease lost): from then
	// on the main shard's work is no longer its to do, even in a reconcile already begun.
	leading := manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		shard.deposed.Store(true)
		return nil
	})
	for _, r := range []manager.Runnable{onEveryReplica{engines}, onEveryReplica{syncers}, leases, leading} {
		if err := mgr.Add(r); err != nil {
			return err
		}
	}
	return nil
}

// LeaseBase ends the name of every lease the operator holds: the main shard's leader
// election ID, and, before it, a shard's name.
const LeaseBase = "roster.identity.roster.dev"

// onEveryReplica runs a runnable whether or not this replica leads.
type onEveryReplica struct{ manager.Runnable }

func (onEveryReplica) NeedLeaderElection() bool { return false }

// wake reconciles the AppConnections and DirectorySyncs of a shard this replica took.
func wake(cache client.Reader, sharding *Sharding, s Shard, engines *Engines, syncers *Syncers) {
	ctx := context.Background()
	var conns identityv1alpha1.AppConnectionList
	if err := cache.List(ctx, &conns); err == nil {
		for i := range conns.Items {
			if sharding.of(&conns.Items[i]) == s {
				engines.AppChanged(client.ObjectKeyFromObject(&conns.Items[i]).String())
			}
		}
	}
	var syncs identityv1alpha1.DirectorySyncList
	if err := cache.List(ctx, &syncs); err == nil {
		for i := range syncs.Items {
			if sharding.of(&syncs.Items[i]) == s {
				syncers.changedNow(client.ObjectKeyFromObject(&syncs.Items[i]))
			}
		}
	}
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
	shard := opts.Sharding
	if shard == nil {
		shard = NewSharding(MainShard, 0)
	}
	shard.elected = mgr.Elected()
	if opts.ShardLeaders {
		shard.leaders = newShardLeaders(mgr.GetAPIReader(), opts.Leases, LeaseBase)
	}
	engines := NewEngines(mgr.GetCache(), mgr.GetEventRecorder("roster"), membership, ctrl.Log.WithName("engine"))
	engines.shards = shard
	syncers := NewSyncers(mgr.GetClient(), ctrl.Log.WithName("directorysync"))
	if err := addWorkers(mgr, shard, opts.Leases, engines, syncers); err != nil {
		return err
	}
	if opts.Inbound != nil {
		kept, err := keptObjectsCache(mgr, opts.Inbound.Namespaces)
		if err != nil {
			return err
		}
		opts.Inbound.syncers, opts.Inbound.kept, opts.Inbound.live = syncers, kept, mgr.GetAPIReader()
		if opts.Inbound.Client == nil {
			opts.Inbound.Client = mgr.GetClient()
		}
		if err := mgr.Add(opts.Inbound); err != nil {
			return err
		}
	}
	reconcilers := []interface{ SetupWithManager(ctrl.Manager) error }{
		&DirectorySyncReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Registry: opts.Registry, Syncers: syncers, Inbound: opts.Inbound,
			Recorder: mgr.GetEventRecorder("roster"), Notify: hub, Shards: shard},
		&UserReconciler{Client: mgr.GetClient(), Engines: engines, Recorder: mgr.GetEventRecorder("roster"), Notify: hub, Membership: membership, Shards: shard},
		&RoleReconciler{Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Engines: engines, Membership: membership, Shards: shard},
		&AppAssignmentReconciler{Client: mgr.GetClient(), Engines: engines, Membership: membership, Shards: shard},
		&NotifierReconciler{Client: mgr.GetClient(), Hub: hub, Shards: shard},
		&DirectorySyncPreviewReconciler{Client: mgr.GetClient(), Syncers: syncers, Shards: shard},
		&AppConnectionReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Registry: opts.Registry,
			Engines: engines, Recorder: mgr.GetEventRecorder("roster"), Notify: hub, Shards: shard},
	}
	if shard.name.main() {
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
