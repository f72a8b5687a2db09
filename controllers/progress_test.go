package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers/directory"
	"github.com/rosterhq/roster/controllers/engine"
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

func countsStatus(generation int64, conds ...metav1.Condition) *identityv1alpha1.CommonStatus {
	return &identityv1alpha1.CommonStatus{ObservedGeneration: generation, Conditions: conds}
}

func TestCountsAloneAreWrittenOncePerIntervalAndAChangeOfConditionAtOnce(t *testing.T) {
	key := types.NamespacedName{Namespace: "acme", Name: "wiki"}
	start := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	ready := func(status metav1.ConditionStatus, reason, message string) metav1.Condition {
		return metav1.Condition{Type: identityv1alpha1.ConditionReady, Status: status, Reason: reason, Message: message}
	}
	reconciling := metav1.Condition{Type: identityv1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: identityv1alpha1.ReasonProgressing, Message: "40 creates planned"}
	unwritten := countsStatus(0)
	tenOf100 := countsStatus(1, ready(metav1.ConditionFalse, identityv1alpha1.ReasonProgressing, "10 of 100 accounts provisioned"))
	fiftyOf100 := countsStatus(1, ready(metav1.ConditionFalse, identityv1alpha1.ReasonProgressing, "50 of 100 accounts provisioned"))
	failing := countsStatus(1, ready(metav1.ConditionFalse, identityv1alpha1.ReasonProvisioningFailed, "1 of 100 accounts failed"))
	done := countsStatus(1, ready(metav1.ConditionTrue, identityv1alpha1.ReasonReconciled, "100 accounts provisioned"))
	var tr countsThrottle

	steps := []struct {
		what          string
		at            time.Duration
		before, after *identityv1alpha1.CommonStatus
		want          time.Duration
	}{
		{"the first status", 0, unwritten, tenOf100, 0},
		{"counts a second after a write", time.Second, tenOf100, fiftyOf100, countsProgressEvery - time.Second},
		{"counts once the interval is over", countsProgressEvery, tenOf100, fiftyOf100, 0},
		{"a failure a second after a write", countsProgressEvery + time.Second, fiftyOf100, failing, 0},
		{"the end of the sync a second after a write", countsProgressEvery + 2*time.Second, failing, done, 0},
		{"a new generation a second after a write", countsProgressEvery + 3*time.Second, done, countsStatus(2, done.Conditions...), 0},
		{"a condition that appears", countsProgressEvery + 4*time.Second, countsStatus(2, done.Conditions...), countsStatus(2, append(done.Conditions, reconciling)...), 0},
		{"progress under it", countsProgressEvery + 5*time.Second, countsStatus(2, append(done.Conditions, reconciling)...), countsStatus(2, append(done.Conditions, reconciling)...), countsProgressEvery - time.Second},
		{"the condition that goes", countsProgressEvery + 6*time.Second, countsStatus(2, append(done.Conditions, reconciling)...), countsStatus(2, done.Conditions...), 0},
	}
	for _, s := range steps {
		if got := tr.hold(key, s.before, s.after, start.Add(s.at)); got != s.want {
			t.Errorf("%s: held %s, want %s", s.what, got, s.want)
		}
	}
	tr.forget(key) // gone, or a restart: nothing remembered
	if got := tr.hold(key, tenOf100, fiftyOf100, start.Add(countsProgressEvery+7*time.Second)); got != 0 {
		t.Errorf("counts of an object not seen since a restart are held %s, want written", got)
	}
}

// TestStatusSettlesWithinTheLongestDeferral: a reader that waits this long after the
// last change sees every write the operator deferred: a count held while only its
// numbers move, the summary of left-out Events, and counts coalesced by size.
func TestStatusSettlesWithinTheLongestDeferral(t *testing.T) {
	for _, tc := range []struct {
		role, app int
		want      time.Duration
	}{
		{0, 0, countsProgressEvery},
		{2_000, 50_000, countsProgressEvery},
		{30_000, 0, 30 * time.Second},    // an AppAssignment of 30,000 members recounted every 30 s
		{0, 1_000_000, 40 * time.Second}, // a snapshot of a million accounts every 40 s
	} {
		if got := StatusSettlesWithin(tc.role, tc.app); got != tc.want {
			t.Errorf("StatusSettlesWithin(%d, %d) = %v, want %v", tc.role, tc.app, got, tc.want)
		}
	}
	for _, deferral := range []time.Duration{countsEvery, countsProgressEvery, engine.SummarizeEvery} {
		if StatusSettlesWithin(0, 0) < deferral {
			t.Errorf("StatusSettlesWithin(0, 0) = %v, shorter than a deferral of %v", StatusSettlesWithin(0, 0), deferral)
		}
	}
}
