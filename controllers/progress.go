package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers/directory"
)

// A User's status is written once per change, and a User converging changes often: its
// account in each app comes up on its own time. So while a User converges its status is
// written at most once per progressEvery. Becoming Ready, failing, and a new generation
// are written at once, and so is the first status of a User applied by a person or from
// Git: until then it has no Ready condition, and tools that read status (kstatus, Argo
// CD) would take it for done. A User a DirectorySync writes is watched through the
// DirectorySync's status instead: its first status waits up to firstStatusGrace for its
// accounts, so that an initial sync of thousands writes one status per User, not two.
const (
	firstStatusGrace = 2 * time.Second
	progressEvery    = 5 * time.Second
)

// lastWrites remembers, per object, when its status was last written.
type lastWrites struct {
	mu   sync.Mutex
	last map[types.NamespacedName]time.Time
}

// forget drops an object that is gone.
func (w *lastWrites) forget(key types.NamespacedName) {
	w.mu.Lock()
	delete(w.last, key)
	w.mu.Unlock()
}

// progressThrottle remembers, per converging User, when its status was last written (or
// when it was first seen, before any).
type progressThrottle struct{ lastWrites }

func newProgressThrottle() *progressThrottle {
	return &progressThrottle{lastWrites{last: map[types.NamespacedName]time.Time{}}}
}

// hold reports how long to wait before writing a User's status, 0 to write it now.
func (t *progressThrottle) hold(key types.NamespacedName, before, after *identityv1alpha1.User, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	ready := meta.FindStatusCondition(after.Status.Conditions, identityv1alpha1.ConditionReady)
	if ready == nil || ready.Reason != identityv1alpha1.ReasonProgressing || after.DeletionTimestamp != nil {
		delete(t.last, key)
		return 0
	}
	wasWritten := meta.FindStatusCondition(before.Status.Conditions, identityv1alpha1.ConditionReady) != nil
	last, seen := t.last[key]
	every := progressEvery
	switch {
	case !wasWritten && after.Labels[directory.LabelDirectorySync] == "":
		t.last[key] = now
		return 0
	case !wasWritten:
		every = firstStatusGrace
		if !seen {
			last, t.last[key] = now, now
		}
	case !seen || before.Status.ObservedGeneration != after.Generation:
		t.last[key] = now
		return 0
	}
	if wait := last.Add(every).Sub(now); wait > 0 {
		return wait
	}
	t.last[key] = now
	return 0
}

// An AppAssignment's and an AppConnection's status count accounts, and the counts move
// with every account a sync makes. While nothing else moves (every condition keeps its
// status and reason, and the generation observed is the same), such a status is written
// at most once per countsProgressEvery; a change of condition, such as the end of a
// sync, is written at once. The counts are still taken every few seconds (countsEvery):
// counting is in memory, writing is what the API server and every watch pay for.
const countsProgressEvery = 10 * time.Second

// countsThrottle remembers, per object whose status counts accounts, when its status
// was last written. Its zero value is ready to use.
type countsThrottle struct{ lastWrites }

// hold reports how long to wait before writing a status that changed from before to
// after, 0 to write it now (and then it counts as written now).
func (t *countsThrottle) hold(key types.NamespacedName, before, after *identityv1alpha1.CommonStatus, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, seen := t.last[key]; seen && sameStanding(before, after) {
		if wait := last.Add(countsProgressEvery).Sub(now); wait > 0 {
			return wait
		}
	}
	if t.last == nil {
		t.last = map[types.NamespacedName]time.Time{}
	}
	t.last[key] = now
	return 0
}

// sameStanding reports whether two statuses observed the same generation and hold the
// same conditions, each with the same status and reason: whatever else differs is
// progress within that standing.
func sameStanding(a, b *identityv1alpha1.CommonStatus) bool {
	if a.ObservedGeneration != b.ObservedGeneration || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for _, c := range a.Conditions {
		d := meta.FindStatusCondition(b.Conditions, c.Type)
		if d == nil || d.Status != c.Status || d.Reason != c.Reason {
			return false
		}
	}
	return true
}

// sooner is the sooner of two requeues, either of which may be 0 (none).
func sooner(a, b time.Duration) time.Duration {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}
