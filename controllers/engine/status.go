package engine

import (
	"fmt"
	"sort"
	"strings"

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
	s := Snapshot{
		Generation: e.cfg.Generation, Health: e.health, Err: e.err, Capabilities: e.caps,
		Managed: e.managedCountLocked(), Pending: len(e.planned), LastFullSync: e.lastFullSync,
		Blocked: e.heldPlanID != "", QuarantinedUntil: e.quarantine,
	}
	var failed []string
	for u, r := range e.records {
		if r.status.State == identityv1alpha1.AccountStateFailed {
			failed = append(failed, u)
			if r.rateLimited {
				s.RateLimited++
			}
		}
	}
	s.Failed = len(failed)
	sort.Strings(failed)
	for _, u := range failed[:min(len(failed), failureSampleSize)] {
		s.FailureSample = append(s.FailureSample, u+": "+e.records[u].status.Message)
	}
	if e.cfg.Unmanaged != identityv1alpha1.UnmanagedIgnore {
		unmanaged := e.unmanagedLocked()
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
	s.RecentDeprovisions = e.window.Counted(e.now())
	for _, g := range e.managedGroups {
		s.ManagedGroups = append(s.ManagedGroups, g)
	}
	sort.Strings(s.ManagedGroups)
	recordGauges(e.cfg.App, s)
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

// BlockedMessage explains a plan held by the safety threshold, "" if none is.
func (e *Engine) BlockedMessage() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.heldPlanID == "" {
		return ""
	}
	return e.blockedMessage(e.heldPlanID, len(e.held), e.heldSent)
}

// Account is a User's account in the app, for its status; false when the engine has
// nothing to say (no account, or the app not listed yet).
func (e *Engine) Account(user string) (AccountStatus, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.records[user]
	if r == nil || !e.synced {
		return AccountStatus{}, false
	}
	return r.status, true
}

// Settled reports whether the engine is done with a User that is going away: its
// account is no longer active and nothing is pending. The reason says what it waits for.
func (e *Engine) Settled(user string) (bool, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.cfg.Mode == identityv1alpha1.ModePlan:
		return true, ""
	case e.cfg.Paused:
		return false, fmt.Sprintf("%s is paused", e.cfg.App)
	case e.health == HealthFailing:
		return false, fmt.Sprintf("%s cannot be reached: %v", e.cfg.App, e.err)
	case !e.synced:
		return false, fmt.Sprintf("%s has not been listed yet", e.cfg.App)
	case e.held[user]:
		return false, fmt.Sprintf("%s: plan %s waits for approval", e.cfg.App, e.heldPlanID)
	}
	if acc := e.accounts[e.links[user]]; acc != nil && acc.Active {
		return false, fmt.Sprintf("the account in %s is still active", e.cfg.App)
	}
	e.drainInboxLocked()
	_, dirty := e.dirty[user]
	_, planned := e.planned[user]
	if dirty || planned || e.hasPendingGroupsLocked(user) {
		return false, fmt.Sprintf("the account in %s is being deprovisioned", e.cfg.App)
	}
	return true, ""
}

// Health reports how the connection to the app stands, and its last error.
func (e *Engine) Health() (Health, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.health, e.err
}

// Concerns reports whether the app matters to a User: it is assigned the app, or holds
// an account there.
func (e *Engine) Concerns(user string) bool {
	e.mu.Lock()
	_, linked := e.links[user]
	e.mu.Unlock()
	if linked {
		return true
	}
	s, ok := e.subjects.Subject(user)
	return ok && s.Assigned
}

// Synced reports whether the engine has listed the app since it connected.
func (e *Engine) Synced() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.synced
}

// Drained reports whether every account the engine managed is released (for a
// deleted AppConnection): none active and linked, nothing pending.
func (e *Engine) Drained() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cfg.Mode == identityv1alpha1.ModePlan {
		return true
	}
	e.drainInboxLocked()
	if !e.synced || len(e.dirty) > 0 || len(e.planned) > 0 || len(e.pendingGroups) > 0 {
		return false
	}
	return e.managedCountLocked() == 0
}

// Pending reports whether a User has work the engine has not finished. A User reported
// pending is announced again (Notifier.UsersChanged) once it is not.
func (e *Engine) Pending(user string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	pending := e.pendingLocked(user)
	if pending {
		e.askedPending[user] = true
	}
	return pending
}

func (e *Engine) pendingLocked(user string) bool {
	e.drainInboxLocked()
	_, dirty := e.dirty[user]
	_, planned := e.planned[user]
	return dirty || (planned && !e.held[user] && e.cfg.Mode == identityv1alpha1.ModeEnforce) || e.hasPendingGroupsLocked(user)
}

// Converging reports whether the engine has work it has not finished.
func (e *Engine) Converging() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.drainInboxLocked()
	return !e.synced || len(e.dirty) > 0 || (len(e.planned) > 0 && e.heldPlanID == "" && e.cfg.Mode == identityv1alpha1.ModeEnforce) || len(e.pendingGroups) > 0
}

// describeUsers is a short list of Users for a message.
func describeUsers(users []string) string {
	if len(users) > 5 {
		return strings.Join(users[:5], ", ") + fmt.Sprintf(" and %d more", len(users)-5)
	}
	return strings.Join(users, ", ")
}
