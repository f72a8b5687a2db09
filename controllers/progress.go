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

// progressThrottle remembers, per converging User, when its status was last written (or
// when it was first seen, before any).
type progressThrottle struct {
	mu   sync.Mutex
	last map[types.NamespacedName]time.Time
}

func newProgressThrottle() *progressThrottle {
	return &progressThrottle{last: map[types.NamespacedName]time.Time{}}
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

// forget drops a User that is gone.
func (t *progressThrottle) forget(key types.NamespacedName) {
	t.mu.Lock()
	delete(t.last, key)
	t.mu.Unlock()
}
