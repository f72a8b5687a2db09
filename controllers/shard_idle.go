package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// shardLeaders tells the main shard's replica whether a named shard has a replica
// leading it: replicas of a shard elect their leader by a lease, so a shard whose lease
// is missing, given up, or not renewed for its duration has no replica running it.
type shardLeaders struct {
	reader    client.Reader // uncached: only these few leases are read
	namespace string
	base      string
	duration  time.Duration // when a lease does not say its own

	mu       sync.Mutex
	observed map[Shard]observedLease
}

func newShardLeaders(reader client.Reader, timing LeaseTiming, base string) *shardLeaders {
	return &shardLeaders{reader: reader, namespace: timing.Namespace, base: base, duration: timing.Duration,
		observed: map[Shard]observedLease{}}
}

// led says whether a replica leads shard, and when to look again. A lease expires by
// this replica's clock, from when it saw the lease's record last change, as leader
// election's does: the holder's clock may differ.
func (l *shardLeaders) led(ctx context.Context, shard Shard, now time.Time) (bool, time.Duration, error) {
	lease := &coordinationv1.Lease{}
	err := l.reader.Get(ctx, client.ObjectKey{Namespace: l.namespace, Name: shard.LeaderElectionID(l.base)}, lease)
	if apierrors.IsNotFound(err) {
		return false, l.duration, nil
	}
	if err != nil {
		return false, 0, err
	}
	duration := l.duration
	if s := lease.Spec.LeaseDurationSeconds; s != nil && *s > 0 {
		duration = time.Duration(*s) * time.Second
	}
	holder := holderOf(lease)
	if holder == "" {
		return false, duration, nil
	}
	var renew time.Time
	if lease.Spec.RenewTime != nil {
		renew = lease.Spec.RenewTime.Time
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	seen, ok := l.observed[shard]
	if !ok || seen.holder != holder || !seen.renew.Equal(renew) {
		seen = observedLease{holder: holder, renew: renew, at: now}
		l.observed[shard] = seen
	}
	left := duration - now.Sub(seen.at)
	if left < 0 {
		return false, duration, nil
	}
	return true, left + time.Second, nil
}

// reportUnled is what the main shard's replica does with an AppConnection or a
// DirectorySync of a shard it does not run: while no replica leads that shard, it says
// so on the object (Ready=False, Stalled: a person must start the shard's replicas or
// change the label), and it looks again as the shard's lease would expire. It writes
// only if the object is unchanged since read, so that it never overwrites what the
// shard's replica wrote meanwhile.
func (s *Sharding) reportUnled(ctx context.Context, c client.Client, rec recorder.EventRecorder, obj client.Object,
	status *identityv1alpha1.CommonStatus) (ctrl.Result, error) {
	shard := s.of(obj)
	if s.leaders == nil || shard.main() || strings.HasPrefix(string(shard), autoShardPrefix) || !s.main() {
		return ctrl.Result{}, nil
	}
	led, recheck, err := s.leaders.led(ctx, shard, time.Now())
	if err != nil || led {
		return ctrl.Result{RequeueAfter: recheck}, err
	}
	before, statusBefore := obj.DeepCopyObject().(client.Object), *status.DeepCopy()
	was := meta.FindStatusCondition(status.Conditions, identityv1alpha1.ConditionReady)
	message := fmt.Sprintf("no replica runs shard %q (label %s): start one with --shard=%s, or change the label",
		shard, identityv1alpha1.LabelShard, shard)
	newConditions(status, obj.GetGeneration()).stalled(identityv1alpha1.ReasonShardNotRunning, message)
	status.ObservedGeneration = obj.GetGeneration()
	err = patchStatusLocked(ctx, c, obj, before, *status, statusBefore)
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return ctrl.Result{}, nil // changed meanwhile: its update brings it back here
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if was == nil || was.Reason != identityv1alpha1.ReasonShardNotRunning {
		rec.Eventf(obj, nil, corev1.EventTypeWarning, identityv1alpha1.ReasonShardNotRunning, "Reconcile", "%s", message)
	}
	return ctrl.Result{RequeueAfter: recheck}, nil
}
