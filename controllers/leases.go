package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// LeaseTiming is how automatic shards' leases are held, as leader election's lease is:
// a holder that has not renewed for Duration loses it to another replica; one that
// cannot renew for RenewDeadline (shorter) stops that shard's work first.
type LeaseTiming struct {
	Namespace                            string
	Duration, RenewDeadline, RetryPeriod time.Duration
}

// DefaultLeaseTiming is the operator's lease timing unless its flags say otherwise.
var DefaultLeaseTiming = LeaseTiming{Duration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}

// shardLeases holds a fair share of the automatic shards' leases for this replica:
// every round it lists the leases, renews its replica slot, counts the replicas holding
// one, renews the shard leases it holds, takes free or expired ones while it holds
// fewer than its share, and gives one up while it holds more. A shard's work stops
// before its lease is given up, and when the lease cannot be renewed in time.
type shardLeases struct {
	client   client.Client // uncached: leases change under other replicas' hands
	sharding *Sharding
	timing   LeaseTiming
	identity string
	base     string // lease names end with it
	log      logr.Logger
	// stop ends a shard's work and waits for it; start asks for it to begin.
	stop, start func(Shard)

	renewed  map[Shard]time.Time
	observed map[string]observedLease
}

// observedLease is when this replica last saw a lease's record change: a lease expires
// by this replica's clock, as leader election's does, not by the holder's.
type observedLease struct {
	holder string
	renew  time.Time
	at     time.Time
}

func newShardLeases(c client.Client, sharding *Sharding, timing LeaseTiming, base string, log logr.Logger, stop, start func(Shard)) *shardLeases {
	return &shardLeases{client: c, sharding: sharding, timing: timing, identity: replicaIdentity(), base: base, log: log,
		stop: stop, start: start, renewed: map[Shard]time.Time{}, observed: map[string]observedLease{}}
}

// replicaIdentity names this replica: its pod (POD_NAME, else the host name) and a
// random suffix, so that a restarted pod is a new holder.
func replicaIdentity() string {
	name := os.Getenv("POD_NAME")
	if name == "" {
		name, _ = os.Hostname()
	}
	name = regexp.MustCompile(`[^a-z0-9-]+`).ReplaceAllString(strings.ToLower(name), "-")
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	return strings.Trim(name[:min(len(name), 40)], "-") + "-" + hex.EncodeToString(suffix)
}

// NeedLeaderElection: every replica holds its share of shards.
func (l *shardLeases) NeedLeaderElection() bool { return false }

// Start holds leases until ctx ends, then stops the shards' work and gives them up.
func (l *shardLeases) Start(ctx context.Context) error {
	l.log.Info("Sharing automatic shards", "identity", l.identity, "shards", l.sharding.auto)
	tick := time.NewTicker(l.timing.RetryPeriod)
	defer tick.Stop()
	for {
		l.round(ctx)
		select {
		case <-ctx.Done():
			l.giveUpAll()
			return nil
		case <-tick.C:
		}
	}
}

// round is one pass over the leases.
func (l *shardLeases) round(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, l.timing.RenewDeadline)
	defer cancel()
	now := time.Now()
	for shard, at := range l.renewed {
		if now.Sub(at) > l.timing.RenewDeadline {
			l.log.Info("Could not renew a shard's lease in time; its work stops", "shard", shard)
			l.drop(shard)
		}
	}
	known, err := l.listLeases(ctx)
	if err != nil {
		l.log.Error(err, "Could not read the shards' leases")
		return
	}
	alive, err := l.replicas(ctx, known, now)
	if err != nil {
		l.log.Error(err, "Could not renew this replica's lease")
		return
	}
	leases := make([]*coordinationv1.Lease, l.sharding.auto)
	held := map[string]int{} // by replicas alive
	for i := range leases {
		if leases[i], err = l.lease(ctx, known, l.shardName(i).LeaderElectionID(l.base)); err != nil {
			l.log.V(1).Info("Could not create a shard's lease", "shard", l.shardName(i), "error", err.Error())
			continue
		}
		if h := holderOf(leases[i]); alive[h] && !l.free(leases[i], now) {
			held[h]++
		}
	}
	s := share{least: l.sharding.auto / len(alive), most: (l.sharding.auto + len(alive) - 1) / len(alive)}
	for h := range alive {
		s.short = s.short || held[h] < s.least
	}
	for i, lease := range leases {
		if lease != nil {
			l.keep(ctx, l.shardName(i), lease, &s, now)
		}
	}
}

func (l *shardLeases) shardName(i int) Shard { return Shard(fmt.Sprintf("%s%d", autoShardPrefix, i)) }

// share is how many shards each replica should hold: from least to most, and whether
// a replica alive holds fewer than least: those above it then give one up (one a
// round), and leave free shards to it.
type share struct {
	least, most int
	short       bool
	gaveUp      bool
}

// keep renews, takes or gives up one shard's lease.
func (l *shardLeases) keep(ctx context.Context, shard Shard, lease *coordinationv1.Lease, s *share, now time.Time) {
	_, running := l.renewed[shard]
	var err error
	switch {
	case running && !s.gaveUp && (len(l.renewed) > s.most || s.short && len(l.renewed) > s.least):
		s.gaveUp = true
		l.giveUp(ctx, shard, lease)
	case running:
		if err = l.hold(ctx, lease, now); err == nil {
			l.renewed[shard] = now
		}
	case (len(l.renewed) < s.least || !s.short && len(l.renewed) < s.most) && (holderOf(lease) == l.identity || l.free(lease, now)):
		if err = l.hold(ctx, lease, now); err == nil {
			l.renewed[shard] = now
			l.sharding.hold(shard, true)
			l.log.Info("Took a shard's lease", "shard", shard)
			l.start(shard)
		}
	}
	if err != nil && ctx.Err() == nil {
		l.log.V(1).Info("Could not take or renew a shard's lease", "shard", shard, "error", err.Error())
	}
}

func holderOf(lease *coordinationv1.Lease) string {
	if lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// replicas keeps this replica counted among those alive, by holding one of as many
// replica slots (leases) as there are shards, and names the replicas alive, itself
// too. A replica gone without a goodbye leaves its slot to expire and be taken again,
// so slots never pile up; one that finds no slot free has no shard to run anyway.
func (l *shardLeases) replicas(ctx context.Context, known map[string]*coordinationv1.Lease, now time.Time) (map[string]bool, error) {
	slots := make([]*coordinationv1.Lease, l.sharding.auto)
	mine := -1
	for i := range slots {
		var err error
		if slots[i], err = l.lease(ctx, known, l.slotName(i)); err != nil {
			return nil, err
		}
		if holderOf(slots[i]) == l.identity && mine < 0 {
			mine = i
		}
	}
	for i := 0; mine < 0 && i < len(slots); i++ {
		if l.free(slots[i], now) {
			mine = i
		}
	}
	if mine >= 0 {
		if err := l.hold(ctx, slots[mine], now); err != nil {
			return nil, err
		}
	}
	alive := map[string]bool{l.identity: true}
	for _, slot := range slots {
		if !l.free(slot, now) {
			alive[holderOf(slot)] = true
		}
	}
	return alive, nil
}

// listLeases reads the leases of the operator's namespace in one request, by name: a
// round costs one read however many shards there are, which keeps a takeover quick
// when the API server is busy.
func (l *shardLeases) listLeases(ctx context.Context) (map[string]*coordinationv1.Lease, error) {
	list := &coordinationv1.LeaseList{}
	if err := l.client.List(ctx, list, client.InNamespace(l.timing.Namespace)); err != nil {
		return nil, err
	}
	known := make(map[string]*coordinationv1.Lease, len(list.Items))
	for i := range list.Items {
		known[list.Items[i].Name] = &list.Items[i]
	}
	return known, nil
}

// lease is a lease listed this round, created (held by no one) when it does not exist.
func (l *shardLeases) lease(ctx context.Context, known map[string]*coordinationv1.Lease, name string) (*coordinationv1.Lease, error) {
	if lease, ok := known[name]; ok {
		return lease, nil
	}
	seconds := int32(l.timing.Duration / time.Second)
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: l.timing.Namespace, Name: name},
		Spec: coordinationv1.LeaseSpec{LeaseDurationSeconds: &seconds}}
	if err := l.client.Create(ctx, lease); err != nil {
		return nil, err
	}
	known[name] = lease
	return lease, nil
}

// free says whether a lease is held by no one, or by someone who has not renewed it
// for its duration, as this replica has watched it.
func (l *shardLeases) free(lease *coordinationv1.Lease, now time.Time) bool {
	holder := holderOf(lease)
	if holder == "" {
		return true
	}
	var renew time.Time
	if lease.Spec.RenewTime != nil {
		renew = lease.Spec.RenewTime.Time
	}
	seen, ok := l.observed[lease.Name]
	if !ok || seen.holder != holder || !seen.renew.Equal(renew) {
		seen = observedLease{holder: holder, renew: renew, at: now}
		l.observed[lease.Name] = seen
	}
	duration := l.timing.Duration
	if s := lease.Spec.LeaseDurationSeconds; s != nil {
		duration = time.Duration(*s) * time.Second
	}
	return now.Sub(seen.at) > duration
}

// hold writes this replica as the lease's holder, renewed now; a conflict means another
// replica wrote it first.
func (l *shardLeases) hold(ctx context.Context, lease *coordinationv1.Lease, now time.Time) error {
	renew := metav1.NewMicroTime(now)
	seconds := int32(l.timing.Duration / time.Second)
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != l.identity {
		lease.Spec.AcquireTime = &renew
		transitions := int32(1)
		if lease.Spec.LeaseTransitions != nil {
			transitions += *lease.Spec.LeaseTransitions
		}
		lease.Spec.LeaseTransitions = &transitions
	}
	lease.Spec.HolderIdentity, lease.Spec.RenewTime, lease.Spec.LeaseDurationSeconds = &l.identity, &renew, &seconds
	return l.client.Update(ctx, lease)
}

// release leaves a lease held by no one, for another replica to take at once.
func (l *shardLeases) release(ctx context.Context, lease *coordinationv1.Lease) error {
	none := ""
	lease.Spec.HolderIdentity = &none
	return l.client.Update(ctx, lease)
}

func (l *shardLeases) slotName(i int) string { return fmt.Sprintf("replica-%d.%s", i, l.base) }

// drop stops a shard's work here, without touching its lease.
func (l *shardLeases) drop(shard Shard) {
	l.sharding.hold(shard, false)
	delete(l.renewed, shard)
	l.stop(shard)
}

// giveUp stops a shard's work, then gives its lease up for another replica to take at
// once.
func (l *shardLeases) giveUp(ctx context.Context, shard Shard, lease *coordinationv1.Lease) {
	l.drop(shard)
	if err := l.release(ctx, lease); err != nil {
		l.log.Error(err, "Could not give a shard's lease up; it expires instead", "shard", shard)
		return
	}
	l.log.Info("Gave a shard's lease up to another replica", "shard", shard)
}

// giveUpAll, as the replica stops, ends its shards' work and gives their leases and
// its slot up.
func (l *shardLeases) giveUpAll() {
	ctx, cancel := context.WithTimeout(context.Background(), l.timing.RenewDeadline)
	defer cancel()
	for shard := range l.renewed {
		lease := &coordinationv1.Lease{}
		if err := l.client.Get(ctx, client.ObjectKey{Namespace: l.timing.Namespace, Name: shard.LeaderElectionID(l.base)}, lease); err != nil {
			l.drop(shard)
			continue
		}
		l.giveUp(ctx, shard, lease)
	}
	for i := range l.sharding.auto {
		slot := &coordinationv1.Lease{}
		if err := l.client.Get(ctx, client.ObjectKey{Namespace: l.timing.Namespace, Name: l.slotName(i)}, slot); err == nil && holderOf(slot) == l.identity {
			_ = l.release(ctx, slot)
		}
	}
}
