package bench

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rosterhq/roster/controllers"
)

// failover is a replica killed mid-way through the initial sync: when, with how many
// accounts made, and how long until the others ran its shards.
type failover struct {
	after    time.Duration // since the initial sync began
	accounts int           // in the apps when it was killed
	moved    time.Duration // until every shard's lease was renewed by a replica alive
	err      error
}

// killMidSync, with Options.KillReplica, kills the last replica once the apps hold
// half of the initial sync's accounts, and waits for its shards to move; the returned
// func waits for that and reports it once the sync has converged.
func (b *bench) killMidSync(ctx context.Context, accounts int) func() error {
	if !b.opts.KillReplica || len(b.op.replicas) < 2 {
		return func() error { return nil }
	}
	done := make(chan failover, 1)
	go func() { done <- b.killHalfway(ctx, accounts) }()
	return func() error {
		f := <-done
		if f.err != nil {
			return fmt.Errorf("killing a replica mid-sync: %w", f.err)
		}
		b.reportFailover(f)
		return nil
	}
}

func (b *bench) killHalfway(ctx context.Context, accounts int) failover {
	var f failover
	f.err = b.waitFor(ctx, timeoutFor(accounts), 200*time.Millisecond, "half the accounts, to kill a replica", func() (bool, string, error) {
		stats, err := b.apps.stats()
		f.accounts = 0
		for _, st := range stats {
			f.accounts += st.Users
		}
		return f.accounts*2 >= accounts, fmt.Sprintf("%d of %d accounts", f.accounts, accounts), err
	})
	if f.err != nil {
		return f
	}
	killed := time.Now()
	f.after = killed.Sub(initial.start)
	b.op.kill()
	b.logf("  killed a replica after %s, with %d of %d accounts made\n", f.after.Round(time.Millisecond), f.accounts, accounts)
	f.err = b.waitFor(ctx, 2*time.Minute, 100*time.Millisecond, "the killed replica's shards to move", func() (bool, string, error) {
		stale, err := b.shardsRenewedBefore(ctx, killed)
		return stale == 0, fmt.Sprintf("%d shards not renewed since the kill", stale), err
	})
	f.moved = time.Since(killed)
	return f
}

// shardsRenewedBefore counts the automatic shards whose lease no replica has renewed
// since t.
func (b *bench) shardsRenewedBefore(ctx context.Context, t time.Time) (int, error) {
	stale := 0
	for i := range shardsPerReplica * b.opts.Replicas {
		lease := &coordinationv1.Lease{}
		key := client.ObjectKey{Namespace: "default", Name: fmt.Sprintf("auto-%d.shard.%s", i, controllers.LeaseBase)}
		if err := b.env.Client.Get(ctx, key, lease); err != nil {
			return 0, err
		}
		held := lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != ""
		if r := lease.Spec.RenewTime; r == nil || r.Time.Before(t) || !held {
			stale++
		}
	}
	return stale, nil
}

// reportFailover reports how long the shards took to move, and whether any account was
// created twice: a create the killed replica had sent is found by the next holder's
// listing and adopted, never sent again.
func (b *bench) reportFailover(f failover) {
	var posts, accounts float64
	for i := range b.opts.Apps {
		st := initial.stats[appName(i)]
		posts += float64(st.Count("POST /Users"))
		accounts += float64(st.Users)
	}
	b.report.add(atMost("scale-out", "seconds until a replica killed mid-sync has its shards run by the others", f.moved.Seconds(),
		(benchLease + benchRenew).Seconds(), "s", map[string]float64{"killedAfterSeconds": f.after.Seconds(),
			"accountsAtKill": float64(f.accounts), "leaseSeconds": benchLease.Seconds()}))
	b.report.add(atMost("scale-out", "account creates sent again after the kill", posts-accounts, 0, "",
		map[string]float64{"POST /Users": posts, "accounts": accounts}))
}
