package controllers

import (
	"time"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// lifecycle is where a User is in its life, and when that next changes by the clock.
func lifecycle(u *identityv1alpha1.User, now time.Time) (identityv1alpha1.UserPhase, time.Time) {
	return lifespanOf(u).phase(now)
}

// lifespan is what a User's phase depends on.
type lifespan struct {
	deleting, suspended bool
	from, until         time.Time // zero when not set
}

func lifespanOf(u *identityv1alpha1.User) lifespan {
	l := lifespan{deleting: u.DeletionTimestamp != nil, suspended: u.Spec.State == identityv1alpha1.UserStateSuspended}
	if u.Spec.ActiveFrom != nil {
		l.from = u.Spec.ActiveFrom.Time
	}
	if u.Spec.ActiveUntil != nil {
		l.until = u.Spec.ActiveUntil.Time
	}
	return l
}

// phase is where the User is in its life at now, and when that next changes by the
// clock.
func (l lifespan) phase(now time.Time) (identityv1alpha1.UserPhase, time.Time) {
	var next time.Time
	if !l.until.IsZero() && now.Before(l.until) {
		next = l.until
	}
	switch {
	case l.deleting:
		return identityv1alpha1.UserPhaseDeprovisioning, time.Time{}
	case l.suspended:
		return identityv1alpha1.UserPhaseSuspended, time.Time{}
	case !l.until.IsZero() && !now.Before(l.until):
		return identityv1alpha1.UserPhaseExpired, time.Time{}
	case !l.from.IsZero() && now.Before(l.from):
		return identityv1alpha1.UserPhasePending, l.from
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
