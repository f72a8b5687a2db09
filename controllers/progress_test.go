package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers/directory"
)

func userWithReady(generation, observed int64, reason string) *identityv1alpha1.User {
	u := &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Name: "ada", Generation: generation}}
	u.Status.ObservedGeneration = observed
	if reason != "" {
		status := metav1.ConditionFalse
		if reason == identityv1alpha1.ReasonReconciled {
			status = metav1.ConditionTrue
		}
		u.Status.Conditions = []metav1.Condition{{Type: identityv1alpha1.ConditionReady, Status: status, Reason: reason}}
	}
	return u
}

func TestProgressIsWrittenOncePerInterval(t *testing.T) {
	key := types.NamespacedName{Namespace: "acme", Name: "ada"}
	start := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	unwritten := userWithReady(1, 0, "")
	converging := userWithReady(1, 1, identityv1alpha1.ReasonProgressing)
	ready := userWithReady(1, 1, identityv1alpha1.ReasonReconciled)
	tr := newProgressThrottle()

	if wait := tr.hold(key, unwritten, converging, start); wait != 0 {
		t.Fatalf("a new User's first status is held %s, want written at once (a User without Ready reads as done)", wait)
	}
	if wait := tr.hold(key, converging, converging, start.Add(time.Second)); wait != progressEvery-time.Second {
		t.Fatalf("progress a second after a write is held %s, want %s", wait, progressEvery-time.Second)
	}
	if wait := tr.hold(key, converging, ready, start.Add(2*time.Second)); wait != 0 {
		t.Fatalf("Ready is held %s, want written at once", wait)
	}
	if wait := tr.hold(key, ready, converging, start.Add(3*time.Second)); wait != 0 {
		t.Fatalf("progress after Ready is held %s, want written: the interval starts again", wait)
	}
	if wait := tr.hold(key, converging, converging, start.Add(4*time.Second)); wait != progressEvery-time.Second {
		t.Fatalf("progress a second after that write is held %s, want %s", wait, progressEvery-time.Second)
	}
	if wait := tr.hold(key, userWithReady(2, 1, identityv1alpha1.ReasonProgressing), userWithReady(2, 1, identityv1alpha1.ReasonProgressing), start.Add(5*time.Second)); wait != 0 {
		t.Fatalf("a new generation is held %s, want written at once", wait)
	}
	synced := userWithReady(1, 0, "")
	synced.Labels = map[string]string{directory.LabelDirectorySync: "hr"}
	written := userWithReady(1, 1, identityv1alpha1.ReasonProgressing)
	written.Labels = synced.Labels
	dsKey := types.NamespacedName{Namespace: "acme", Name: "grace"}
	if wait := tr.hold(dsKey, synced, written, start); wait != firstStatusGrace {
		t.Fatalf("a directory User's first progress is held %s, want %s (its accounts may all come up meanwhile)", wait, firstStatusGrace)
	}
	if wait := tr.hold(dsKey, synced, written, start.Add(firstStatusGrace)); wait != 0 {
		t.Fatalf("a directory User's progress past the grace is held %s, want written", wait)
	}
	fresh := newProgressThrottle() // after a restart: nothing remembered
	if wait := fresh.hold(key, converging, converging, start); wait != 0 {
		t.Fatalf("progress of a User written before the restart is held %s, want written", wait)
	}
}
