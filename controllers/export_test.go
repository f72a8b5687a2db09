package controllers

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
