package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

func TestLifecycle(t *testing.T) {
	now := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }
	deleted := metav1.NewTime(now)
	cases := []struct {
		reason    string
		spec      identityv1alpha1.UserSpec
		deleting  bool
		wantPhase identityv1alpha1.UserPhase
		wantNext  time.Time
	}{
		{"active with no dates", identityv1alpha1.UserSpec{}, false, identityv1alpha1.UserPhaseActive, time.Time{}},
		{"active until a contract end", identityv1alpha1.UserSpec{ActiveUntil: at(time.Hour)}, false, identityv1alpha1.UserPhaseActive, now.Add(time.Hour)},
		{"pending before a start date", identityv1alpha1.UserSpec{ActiveFrom: at(time.Hour), ActiveUntil: at(2 * time.Hour)}, false, identityv1alpha1.UserPhasePending, now.Add(time.Hour)},
		{"active from exactly now", identityv1alpha1.UserSpec{ActiveFrom: at(0)}, false, identityv1alpha1.UserPhaseActive, time.Time{}},
		{"expired at exactly its end", identityv1alpha1.UserSpec{ActiveUntil: at(0)}, false, identityv1alpha1.UserPhaseExpired, time.Time{}},
		{"suspended beats dates", identityv1alpha1.UserSpec{State: identityv1alpha1.UserStateSuspended, ActiveFrom: at(time.Hour)}, false, identityv1alpha1.UserPhaseSuspended, time.Time{}},
		{"deleting beats everything", identityv1alpha1.UserSpec{State: identityv1alpha1.UserStateSuspended}, true, identityv1alpha1.UserPhaseDeprovisioning, time.Time{}},
	}
	for _, tc := range cases {
		u := &identityv1alpha1.User{Spec: tc.spec}
		if tc.deleting {
			u.DeletionTimestamp = &deleted
		}
		phase, next := lifecycle(u, now)
		if phase != tc.wantPhase || !next.Equal(tc.wantNext) {
			t.Errorf("%s: got %s next %v, want %s next %v", tc.reason, phase, next, tc.wantPhase, tc.wantNext)
		}
	}
}

func TestValidity(t *testing.T) {
	now := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }
	cases := []struct {
		reason    string
		from, to  *metav1.Time
		wantValid bool
		wantNext  time.Time
	}{
		{"always", nil, nil, true, time.Time{}},
		{"not yet", at(time.Hour), at(2 * time.Hour), false, now.Add(time.Hour)},
		{"running", at(-time.Hour), at(time.Hour), true, now.Add(time.Hour)},
		{"over", at(-2 * time.Hour), at(-time.Hour), false, time.Time{}},
	}
	for _, tc := range cases {
		a := &identityv1alpha1.AppAssignment{Spec: identityv1alpha1.AppAssignmentSpec{ValidFrom: tc.from, ValidUntil: tc.to}}
		valid, next := validity(a, now)
		if valid != tc.wantValid || !next.Equal(tc.wantNext) {
			t.Errorf("%s: got %v next %v, want %v next %v", tc.reason, valid, next, tc.wantValid, tc.wantNext)
		}
	}
}
