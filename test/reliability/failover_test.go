package reliability

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The leases of the main shard's replicas and of shard "east"'s.
const (
	leaseName     = "roster.identity.roster.dev"
	eastLeaseName = "east.shard." + leaseName
)

// leader is the identity holding the main shard's lease, "" if none.
func leader() string { return holder(leaseName) }

// holder is the identity holding a lease, "" if none.
func holder(leaseName string) string {
	lease := &coordinationv1.Lease{}
	if err := suite.env.Client.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: leaseName}, lease); err != nil || lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// killLeader kills the replica leading by a lease and returns how long another took to
// lead.
func killLeader(t *testing.T, leaseName string, leading *operator) time.Duration {
	t.Helper()
	was := holder(leaseName)
	leading.kill()
	killed := time.Now()
	waitUntil(t, time.Minute, "the standby takes the lead of "+leaseName, func() (bool, string) {
		now := holder(leaseName)
		return now != "" && now != was, "lease held by " + now
	})
	return time.Since(killed)
}

// TestLeaderFailover: two replicas with leader election; the leader is killed during
// the initial sync, and again during a burst of leavers. The standby takes over within
// the lease, converges, and duplicates nothing; every leaver is deactivated.
func TestLeaderFailover(t *testing.T) {
	people := size(100, 2000)
	o := newOrg(t, 17, "chat", "wiki")
	o.slowAnswers(t, 50, 50)
	stale := leader() // an earlier scenario's killed operator may still hold the lease
	a := startOperator(t, "a", suite.kubeconfig)
	waitForLeader(t, leaseName, stale)
	b := startOperator(t, "b", suite.kubeconfig)

	o.hire(t, 0, people)
	waitUntil(t, 3*time.Minute, "a third of the creates", func() (bool, string) {
		n := o.creates()
		return n >= 2*people*4/5/3, fmt.Sprint(n)
	})
	first := killLeader(t, leaseName, a)
	waitUntil(t, 5*time.Minute, "the new leader converges", func() (bool, string) { return o.converged(people, nil) })

	startOperator(t, "a", suite.kubeconfig) // back, as the standby
	leavers := o.suspendSome(t, people)
	waitUntil(t, 2*time.Minute, "some leavers deactivated", o.someLeft(0, leavers))
	second := killLeader(t, leaseName, b)
	o.fastAnswers(t)
	o.settle(t, people, leavers)
	t.Logf("takeover after a killed leader: %s during the initial sync, %s during the leavers (lease 4s, retry 0.5s)", first.Round(time.Millisecond), second.Round(time.Millisecond))
}

// TestKillShardLeaders: the apps are split between the main shard (chat) and shard
// "east" (wiki, crm), each run by two replicas with leader election. During the initial
// sync the east leader and then the main leader are killed; during a burst of leavers,
// the east leader again. Each shard's standby takes over within the lease; every app
// holds exactly the declared accounts, once; every User is Ready with the account of
// every app recorded, though each shard writes its own apps' entries.
func TestKillShardLeaders(t *testing.T) {
	people := size(100, 2000)
	o := newOrg(t, 19, "chat", "wiki", "crm")
	o.shard(t, "east", "wiki", "crm")
	o.slowAnswers(t, 50, 50)
	staleMain, staleEast := leader(), holder(eastLeaseName)
	mainLeader := startOperator(t, "main-1", suite.kubeconfig)
	waitForLeader(t, leaseName, staleMain)
	startOperator(t, "main-2", suite.kubeconfig)
	east := startOperator(t, "east-1", suite.kubeconfig, "--shard=east")
	waitForLeader(t, eastLeaseName, staleEast)
	eastStandby := startOperator(t, "east-2", suite.kubeconfig, "--shard=east")

	o.hire(t, 0, people)
	want := 3 * people * 4 / 5
	waitUntil(t, 3*time.Minute, "a third of the creates", func() (bool, string) {
		n := o.creates()
		return n >= want/3, fmt.Sprint(n)
	})
	eastTakeover := killLeader(t, eastLeaseName, east)
	mainTakeover := killLeader(t, leaseName, mainLeader)
	waitUntil(t, 5*time.Minute, "the new leaders converge", func() (bool, string) { return o.converged(people, nil) })

	startOperator(t, "east-1", suite.kubeconfig, "--shard=east") // back, as the standby
	leavers := o.suspendSome(t, people)
	waitUntil(t, 2*time.Minute, "some leavers deactivated in the east shard's apps", o.someLeft(1, leavers))
	second := killLeader(t, eastLeaseName, eastStandby)
	o.fastAnswers(t)
	o.settle(t, people, leavers)
	waitUntil(t, 2*time.Minute, "every User Ready", o.usersReady)
	waitUntil(t, time.Minute, "every User's status records its account in each app", func() (bool, string) {
		return o.accountsRecorded(leavers)
	})
	t.Logf("%d people in 3 apps over 2 shards: the east shard's standby led %s after its leader was killed, the main one's %s; "+
		"during the leavers the east shard's %s; %d creates for %d accounts, 0 duplicates",
		people, eastTakeover.Round(time.Millisecond), mainTakeover.Round(time.Millisecond), second.Round(time.Millisecond), o.creates(), want)
}

// autoShardHolders names, by shard, the replica (the POD_NAME it was started with)
// holding each of n automatic shards' leases, "" for none.
func autoShardHolders(n int) []string {
	out := make([]string, n)
	for i := range out {
		h := holder(fmt.Sprintf("auto-%d.shard.%s", i, leaseName))
		if cut := strings.LastIndex(h, "-"); cut > 0 {
			h = h[:cut]
		}
		out[i] = h
	}
	return out
}

// spread reports whether each of the replicas named holds at least one automatic shard
// and every shard is held by one of them.
func spread(n int, replicas ...string) (bool, string) {
	holders := autoShardHolders(n)
	counts := map[string]int{}
	for _, h := range holders {
		if !slices.Contains(replicas, h) {
			return false, fmt.Sprint("holders ", holders)
		}
		counts[h]++
	}
	return len(counts) == len(replicas), fmt.Sprint("holders ", holders)
}

// TestKillAReplicaHoldingAutomaticShards: three replicas share four automatic shards,
// over which the org's four apps hash. Every replica comes to hold at least one. During
// the initial sync a replica holding shards, not the leader, is killed: the two left
// take its shards within the lease duration. During a burst of leavers the leader is
// killed too: the last one takes every shard and the main shard's work. Every app holds
// exactly the declared accounts, once; every User is Ready with each app's account
// recorded.
func TestKillAReplicaHoldingAutomaticShards(t *testing.T) {
	const shards = 4
	people := size(100, 2000)
	o := newOrg(t, 23, "chat", "wiki", "crm", "docs")
	o.slowAnswers(t, 50, 50)
	stale := leader()
	auto := fmt.Sprintf("--auto-shards=%d", shards)
	first := startOperator(t, "r1", suite.kubeconfig, auto)
	waitForLeader(t, leaseName, stale)
	second := startOperator(t, "r2", suite.kubeconfig, auto)
	startOperator(t, "r3", suite.kubeconfig, auto)
	waitUntil(t, time.Minute, "the shards spread over the three replicas", func() (bool, string) { return spread(shards, "r1", "r2", "r3") })

	o.hire(t, 0, people)
	want := 4 * people * 4 / 5
	waitUntil(t, 3*time.Minute, "a third of the creates", func() (bool, string) {
		n := o.creates()
		return n >= want/3, fmt.Sprint(n)
	})
	held := autoShardHolders(shards)
	second.kill()
	killed := time.Now()
	waitUntil(t, time.Minute, "r2's shards move to r1 and r3", func() (bool, string) { return spread(shards, "r1", "r3") })
	moved := time.Since(killed)
	t.Logf("holders %v before r2 was killed, %v after", held, autoShardHolders(shards))
	waitUntil(t, 5*time.Minute, "the two left converge", func() (bool, string) { return o.converged(people, nil) })

	leavers := o.suspendSome(t, people)
	takeover := killLeader(t, leaseName, first)
	waitUntil(t, time.Minute, "r3 holds every shard", func() (bool, string) { return spread(shards, "r3") })
	o.fastAnswers(t)
	o.settle(t, people, leavers)
	waitUntil(t, 2*time.Minute, "every User Ready", o.usersReady)
	waitUntil(t, time.Minute, "every User's status records its account in each app", func() (bool, string) {
		return o.accountsRecorded(leavers)
	})
	t.Logf("%d people in 4 apps over %d automatic shards: a killed replica's shards held elsewhere %s after, the leader's lease %s after; %d creates for %d accounts, 0 duplicates",
		people, shards, moved.Round(time.Millisecond), takeover.Round(time.Millisecond), o.creates(), want)
}
