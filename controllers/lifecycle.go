package controllers

import (
	"time"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// lifecycle is where a User is in its life, and when that next changes by the clock.
func lifecycle(u *identityv1alpha1.User, now time.Time) (identityv1alpha1.UserPhase, time.Time) {
	s := u.Spec
	var next time.Time
	if s.ActiveUntil != nil && now.Before(s.ActiveUntil.Time) {
		next = s.ActiveUntil.Time
	}
	switch {
	case u.DeletionTimestamp != nil:
		return identityv1alpha1.UserPhaseDeprovisioning, time.Time{}
	case s.State == identityv1alpha1.UserStateSuspended:
		return identityv1alpha1.UserPhaseSuspended, time.Time{}
	case s.ActiveUntil != nil && !now.Before(s.ActiveUntil.Time):
		return identityv1alpha1.UserPhaseExpired, time.Time{}
	case s.ActiveFrom != nil && now.Before(s.ActiveFrom.Time):
		return identityv1alpha1.UserPhasePending, s.ActiveFrom.Time
	}
	return identityv1alpha1.UserPhaseActive, next
}

// validity is whether an AppAssignment grants access now, and when that next changes.
func validity(a *identityv1alpha1.AppAssignment, now time.Time) (bool, time.Time) {
	s := a.Spec
	if s.ValidFrom != nil && now.Before(s.ValidFrom.Time) {
		return false, s.ValidFrom.Time
	}
	if s.ValidUntil != nil {
		if !now.Before(s.ValidUntil.Time) {
			return false, time.Time{}
		}
		return true, s.ValidUntil.Time
	}
	return true, time.Time{}
}

func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}
