package controllers

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// ShardReplica is one replica's share of automatic shards, driven round by round by a
// test against a real API server's leases.
type ShardReplica struct {
	leases *shardLeases
}

// NewShardReplica shares n automatic shards with the other replicas of a test, by
// leases in namespace.
func NewShardReplica(c client.Client, namespace string, n int, lease, renew time.Duration) *ShardReplica {
	sharding := NewSharding(MainShard, n)
	timing := LeaseTiming{Namespace: namespace, Duration: lease, RenewDeadline: renew, RetryPeriod: renew / 10}
	return &ShardReplica{leases: newShardLeases(c, sharding, timing, LeaseBase, logr.Discard(), func(Shard) {}, func(Shard) {})}
}

// Round is one pass of the replica over the leases.
func (r *ShardReplica) Round(ctx context.Context) { r.leases.round(ctx) }

// Running names the shards the replica runs now.
func (r *ShardReplica) Running() []string {
	var out []string
	for _, s := range r.leases.sharding.running() {
		out = append(out, string(s))
	}
	return out
}

// Stop gives every shard up, as a replica that stops does.
func (r *ShardReplica) Stop() { r.leases.giveUpAll() }

// SecretsUnchanged says whether the Secrets still have the resourceVersions read.
func SecretsUnchanged(ctx context.Context, api client.Reader, namespace string, versions map[string]string) bool {
	return secretsUnchanged(ctx, api, namespace, versions)
}

// Leadership is the main shard's work of a replica with automatic shards, whose
// leadership a test decides.
type Leadership struct {
	sharding *Sharding
	elected  chan struct{}
}

// NewLeadership returns a replica's share of n automatic shards that does not lead yet.
func NewLeadership(n int) *Leadership {
	l := &Leadership{sharding: NewSharding(MainShard, n), elected: make(chan struct{})}
	l.sharding.elected = l.elected
	return l
}

// Lead makes the replica the leader, as the manager does once elected.
func (l *Leadership) Lead() { close(l.elected) }

// Depose ends its leadership, as the manager does when the lease is lost.
func (l *Leadership) Depose() { l.sharding.deposed.Store(true) }

// Main says whether the replica does the main shard's work.
func (l *Leadership) Main() bool { return l.sharding.main() }

// OnLead starts the source that queues, once the replica leads, every object of list.
func (l *Leadership) OnLead(ctx context.Context, cache client.Reader, list client.ObjectList, q workqueue) error {
	return l.sharding.onLead(cache, list).Start(ctx, q)
}

// UnreadEngines are engines whose User events nobody reads, as once the manager's
// controllers have stopped.
type UnreadEngines struct{ es *Engines }

// NewUnreadEngines returns engines that read Users from cache and whose channel of User
// events holds none.
func NewUnreadEngines(cache client.Reader) *UnreadEngines {
	es := NewEngines(cache, nil, nil, logr.Discard())
	es.userEvents = make(chan event.GenericEvent)
	return &UnreadEngines{es: es}
}

// Start runs the engines until ctx ends.
func (u *UnreadEngines) Start(ctx context.Context) error { return u.es.Start(ctx) }

// ReconcileUsers has every User of a namespace reconciled, as letting a shard go does.
func (u *UnreadEngines) ReconcileUsers(namespace string) {
	u.es.reconcileUsers(client.InNamespace(namespace))
}

// AssignmentsOfApp reads an app's AppAssignments by index, as the engines read them.
func AssignmentsOfApp(ctx context.Context, r client.Reader, namespace, app string) ([]*identityv1alpha1.AppAssignment, error) {
	return assignmentsBy(ctx, r, indexAssignmentApp, namespace, app)
}

// UsersIn reads a namespace's Users by index, as the engines read them.
func UsersIn(ctx context.Context, r client.Reader, namespace string) ([]*identityv1alpha1.User, error) {
	return usersIn(ctx, r, namespace)
}

// PatchUserStatusForMetadata writes a User's status as the User reconciler does while
// the User is not being deleted.
var PatchUserStatusForMetadata = patchUserStatusForMetadata

// StatusPatch is the patch every reconciler's status write sends.
var StatusPatch = statusPatch

// KeptConfigMaps names the ConfigMaps of namespace that the inbound endpoint's cache holds.
func (s *InboundSCIM) KeptConfigMaps(ctx context.Context, namespace string) ([]string, error) {
	var cms corev1.ConfigMapList
	if err := s.kept.List(ctx, &cms, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(cms.Items))
	for _, cm := range cms.Items {
		names = append(names, cm.Name)
	}
	return names, nil
}
