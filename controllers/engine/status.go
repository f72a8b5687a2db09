package engine

import (
	"fmt"
	"sort"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

const (
	sampleSize        = 20
	unmanagedSize     = 50
	failureSampleSize = 3
)

// Snapshot is the engine's state for the AppConnection's status and metrics.
func (e *Engine) Snapshot() Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.drainInboxLocked()
	s := Snapshot{
		Generation: e.cfg.Generation, Health: e.health, Err: e.err, Capabilities: e.caps,
		Managed: e.app.managedCount(), Pending: len(e.planned), LastFullSync: e.lastFullSync,
		Blocked: e.heldPlanID != "", QuarantinedUntil: e.quarantine,
	}
	failed := make([]string, 0, len(e.failedUsers))
	for u, r := range e.failedUsers {
		failed = append(failed, u)
		if r.rateLimited {
			s.RateLimited++
		}
	}
	s.Failed = len(failed)
	sort.Strings(failed)
	for _, u := range failed[:min(len(failed), failureSampleSize)] {
		s.FailureSample = append(s.FailureSample, u+": "+e.failedUsers[u].status.Message)
	}
	if e.cfg.Unmanaged != identityv1alpha1.UnmanagedIgnore {
		unmanaged := e.app.unmanaged()
		s.Unmanaged = len(unmanaged)
		for _, acc := range unmanaged {
			s.UnmanagedSample = append(s.UnmanagedSample, acc.userName)
		}
		sort.Strings(s.UnmanagedSample)
		if len(s.UnmanagedSample) > unmanagedSize {
			s.UnmanagedSample = s.UnmanagedSample[:unmanagedSize]
		}
	}
	s.Plan = e.planSummaryLocked()
	if e.heldPlanID != "" {
		s.BlockedMessage = e.blockedMessage(e.heldPlanID, len(e.held), e.heldSent)
	}
	s.Converging, s.Released = e.convergingLocked(), e.releasedLocked(s.Managed)
	s.RecentDeprovisions = e.window.Counted(e.now())
	for _, g := range e.managedGroups {
		s.ManagedGroups = append(s.ManagedGroups, g)
	}
	sort.Strings(s.ManagedGroups)
	publishGauges(e.cfg.App, s)
	return s
}

func (e *Engine) planSummaryLocked() PlanSummary {
	var sum PlanSummary
	users := make([]string, 0, len(e.planned))
	var deprovisions []string
	for u, p := range e.planned {
		users = append(users, u)
		switch p.action {
		case actCreate:
			sum.Creates++
		case actUpdate:
			sum.Updates++
		case actDeactivate:
			sum.Deactivations++
			deprovisions = append(deprovisions, u)
		case actDelete:
			sum.Deletions++
			deprovisions = append(deprovisions, u)
		}
		sum.GroupChanges += len(p.addGroups) + len(p.removeGroups)
	}
	sort.Strings(users)
	for _, u := range users {
		if len(sum.Sample) == sampleSize {
			break
		}
		sum.Sample = append(sum.Sample, e.planned[u].describe())
	}
	switch {
	case e.heldPlanID != "":
		sum.ID = e.heldPlanID
	case len(deprovisions) > 0:
		sum.ID = planID(dedupe(deprovisions), e.planned)
	}
	return sum
}

// UserView is what an engine knows of one User, read at one instant.
type UserView struct {
	// Account is the User's account in the app; Known is false when the engine has
	// nothing to say (no account, or the app not listed yet).
	Account AccountStatus
	Known   bool
	// Planned: the engine has listed the app since it connected and planned the User
	// since it was last marked. Until then an account not Known is not known to be
	// missing (an engine that has just taken the app over lists it first and plans its
	// Users after, a chunk at a time): what the User's status recorded stands.
	Planned bool
	// Pending: the engine has work for the User it has not finished. A User seen
	// pending is announced again (Notifier.UsersChanged) once it is not.
	Pending bool
	// Unreachable is the error talking to the app, when the app cannot be reached and
	// it matters to the User (the User is assigned the app or holds an account there).
	Unreachable error
	// Waiting says, for a User going away, what the engine still waits for before it is
	// done with the User's account; "" once it is.
	Waiting string
}

// User returns the engine's view of one User.
func (e *Engine) User(user string) UserView {
	e.mu.Lock()
	e.drainInboxLocked()
	_, unplanned := e.dirty[user]
	v := UserView{Planned: e.synced && !unplanned, Waiting: e.waitingForLocked(user)}
	if r := e.accountStates[user]; r != nil && e.synced {
		v.Account, v.Known = r.status, true
	}
	if e.cfg.Mode != identityv1alpha1.ModePlan && e.pendingLocked(user) {
		v.Pending = true
		e.askedPending[user] = true
	}
	_, linked := e.app.links[user]
	failing, err := e.health == HealthFailing, e.err
	e.mu.Unlock()
	if failing && (linked || e.assigned(user)) {
		v.Unreachable = err
	}
	return v
}

// Accounts visits the recorded account of each of the Users that has one, under one
// lock: what counting many Users' accounts needs, without building each one's view.
func (e *Engine) Accounts(users []string, visit func(user string, account AccountStatus)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.drainInboxLocked()
	if !e.synced {
		return
	}
	for _, user := range users {
		if r := e.accountStates[user]; r != nil {
			visit(user, r.status)
		}
	}
}

// assigned reports whether a User is assigned the app.
func (e *Engine) assigned(user string) bool {
	s, ok := e.subjects.Subject(user)
	return ok && s.Assigned
}

// waitingForLocked says what the engine waits for before it is done with a User that
// is going away: its account no longer active and nothing pending; "" when done.
func (e *Engine) waitingForLocked(user string) string {
	switch {
	case e.cfg.Mode == identityv1alpha1.ModePlan:
		return ""
	case e.cfg.Paused:
		return fmt.Sprintf("%s is paused", e.cfg.App)
	case e.health == HealthFailing:
		return fmt.Sprintf("%s cannot be reached: %v", e.cfg.App, e.err)
	case !e.synced:
		return fmt.Sprintf("%s has not been listed yet", e.cfg.App)
	case e.held[user]:
		return fmt.Sprintf("%s: plan %s waits for approval", e.cfg.App, e.heldPlanID)
	}
	if acc := e.app.accountOf(user); acc != nil && acc.Active {
		return fmt.Sprintf("the account in %s is still active", e.cfg.App)
	}
	_, dirty := e.dirty[user]
	_, planned := e.planned[user]
	if dirty || planned || e.hasPendingGroupsLocked(user) {
		return fmt.Sprintf("the account in %s is being deprovisioned", e.cfg.App)
	}
	return ""
}

// releasedLocked reports whether every account the engine managed is released (for a
// deleted AppConnection): none active and linked, nothing pending.
func (e *Engine) releasedLocked(managed int) bool {
	if e.cfg.Mode == identityv1alpha1.ModePlan {
		return true
	}
	return e.synced && len(e.dirty) == 0 && len(e.planned) == 0 && len(e.pendingGroups) == 0 && managed == 0
}

func (e *Engine) pendingLocked(user string) bool {
	_, dirty := e.dirty[user]
	_, planned := e.planned[user]
	return dirty || (planned && !e.held[user] && e.cfg.Mode == identityv1alpha1.ModeEnforce) || e.hasPendingGroupsLocked(user)
}

// convergingLocked reports whether the engine has work it has not finished.
func (e *Engine) convergingLocked() bool {
	return !e.synced || len(e.dirty) > e.runLeft || (len(e.planned) > 0 && e.heldPlanID == "" && e.cfg.Mode == identityv1alpha1.ModeEnforce) || len(e.pendingGroups) > 0
}
