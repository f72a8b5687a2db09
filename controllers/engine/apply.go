package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

// maxRetryDelay caps the wait before a User whose writes keep failing is tried again.
const maxRetryDelay = 5 * time.Minute

type outcome struct {
	account connectors.Account
	adopted bool
	err     error
}

// apply sends one User's account change to the app. Group changes go to the flusher
// once the account change is recorded.
func (e *Engine) apply(ctx context.Context, target connectors.Target, p userPlan) outcome {
	start := time.Now()
	var o outcome
	switch p.action {
	case actCreate:
		create := connectors.CreateOrAdopt
		if e.createMayHaveLanded(p.user) {
			create = connectors.LookupOrCreate
		}
		o.account, o.adopted, o.err = create(ctx, target, p.desired, e.matchBy())
	case actUpdate:
		o.account, o.err = target.Update(ctx, *p.current, p.desired)
	case actDeactivate:
		o.account, o.err = target.Deactivate(ctx, *p.current)
	case actDelete:
		o.err = target.Delete(ctx, p.current.ID)
	}
	if p.action != actNone && p.action != actOrphan {
		observeRequest(e.appName(), p.action.String(), o.err, time.Since(start))
	}
	return o
}

// createMayHaveLanded reports whether an earlier create for the User failed in a way
// that leaves it unknown whether the app made the account.
func (e *Engine) createMayHaveLanded(user string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, unsure := e.unsureCreates[user]
	return unsure
}

func (e *Engine) matchBy() connectors.KeyKind {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg.MatchBy
}

func (e *Engine) appName() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg.App
}

// appliedLocked brings the observed app, the links and the account states up to date
// after an apply, and queues the User's group changes.
func (e *Engine) appliedLocked(p plannedUser, o outcome) {
	user := p.user
	if o.err != nil {
		e.applyFailedLocked(p.userPlan, o.err)
		return
	}
	e.failStreak = 0
	delete(e.retry, user)
	delete(e.unsureCreates, user)
	if current, ok := e.planned[user]; ok && current.version == p.version {
		delete(e.planned, user)
	}
	e.releaseReportsLocked(user)
	delete(e.cleared, user)
	e.appChanged = true
	if p.current != nil && isUnmanagedKey(user) {
		e.unmanagedDeactivatedLocked(p.userPlan, o.account)
		return
	}
	switch p.action {
	case actNone: // group changes only
		if p.current != nil {
			e.queueGroupsLocked(user, p.current.ID, p.addGroups, p.removeGroups)
		}
	case actCreate:
		e.createdLocked(p.userPlan, o)
	case actUpdate:
		e.updatedLocked(p.userPlan, o.account)
	case actDeactivate:
		e.deactivatedLocked(p.userPlan, o.account)
	case actDelete:
		e.deletedLocked(p.userPlan)
	case actOrphan:
		e.orphanedLocked(p.userPlan)
	}
	if e.version[user] != p.version {
		// The User changed while this was on its way, and was planned again against the
		// app as it was before it landed: plan them again against what the app holds now.
		e.markLocked(user)
		e.signal()
	}
	e.observeConvergedLocked(user)
	e.announceIfDoneLocked(user)
}

func (e *Engine) unmanagedDeactivatedLocked(p userPlan, acc connectors.Account) {
	e.app.put(acc.ID, pack(&acc, e.cfg.MatchBy))
	e.events.App(e.cfg.App, "Normal", identityv1alpha1.EventDeactivated, fmt.Sprintf("Deactivated %s, an account no User holds", p.current.UserName()))
}

func (e *Engine) createdLocked(p userPlan, o outcome) {
	user, acc := p.user, o.account
	e.app.put(acc.ID, pack(&acc, e.cfg.MatchBy))
	e.app.link(user, acc.ID)
	e.setAccountStateLocked(user, stateOf(&acc), acc.ID, acc.Note)
	e.setLastLoginLocked(user, acc.LastLogin)
	if o.adopted {
		e.userEventLocked(user, "Normal", identityv1alpha1.EventAdopted, fmt.Sprintf("Adopted the existing account %s in %s", acc.UserName(), e.cfg.App))
		e.markLocked(user) // it may differ from what is declared: plan it again
		e.signal()
	} else {
		e.userEventLocked(user, "Normal", identityv1alpha1.EventProvisioned, fmt.Sprintf("Created account %s in %s", acc.UserName(), e.cfg.App))
	}
	e.queueGroupsLocked(user, acc.ID, p.addGroups, nil)
	if reports := e.subjects.Reports(user); len(reports) > 0 {
		for _, report := range reports {
			e.markLocked(report) // their manager now has an account id
		}
		e.signal()
	}
}

func (e *Engine) updatedLocked(p userPlan, acc connectors.Account) {
	user := p.user
	e.app.put(acc.ID, pack(&acc, e.cfg.MatchBy))
	e.setAccountStateLocked(user, stateOf(&acc), acc.ID, acc.Note)
	e.setLastLoginLocked(user, acc.LastLogin)
	e.lastSent[user] = sentValues(p.desired.Attributes, p.current.Attributes)
	if !e.lastSent[user].keptBy(acc.Attributes) {
		e.markLocked(user) // the app answered without what was sent: plan again, to say so
		e.signal()
	}
	if !p.current.Active {
		e.userEventLocked(user, "Normal", identityv1alpha1.EventProvisioned, fmt.Sprintf("Reactivated account %s in %s", acc.UserName(), e.cfg.App))
	}
	e.queueGroupsLocked(user, acc.ID, p.addGroups, p.removeGroups)
}

func (e *Engine) deactivatedLocked(p userPlan, acc connectors.Account) {
	user := p.user
	e.app.put(acc.ID, pack(&acc, e.cfg.MatchBy))
	e.setAccountStateLocked(user, identityv1alpha1.AccountStateDeactivated, acc.ID, "")
	e.userEventLocked(user, "Normal", identityv1alpha1.EventDeprovisioned, fmt.Sprintf("Deactivated account %s in %s", acc.UserName(), e.cfg.App))
	e.queueGroupsLocked(user, acc.ID, nil, p.removeGroups)
	if e.cfg.DeleteAfter > 0 {
		e.timers.schedule(user, e.now().Add(e.cfg.DeleteAfter))
	}
}

func (e *Engine) deletedLocked(p userPlan) {
	id := p.current.ID
	e.app.put(id, nil)
	for _, gs := range e.app.groups {
		delete(gs.members, id) // the app drops a deleted account from its groups
	}
	e.app.unlink(p.user)
	e.setAccountStateLocked(p.user, identityv1alpha1.AccountStateDeleted, id, "")
	e.userEventLocked(p.user, "Normal", identityv1alpha1.EventDeprovisioned, fmt.Sprintf("Deleted account %s in %s", p.current.UserName(), e.cfg.App))
}

func (e *Engine) orphanedLocked(p userPlan) {
	e.app.unlink(p.user)
	e.dropAccountStateLocked(p.user)
	e.userEventLocked(p.user, "Normal", identityv1alpha1.EventOrphaned, fmt.Sprintf("Left account %s in %s as it is; Roster no longer manages it", p.current.UserName(), e.cfg.App))
}

// announceIfDoneLocked tells the controllers when a User reported pending has nothing
// left to do, so that its status catches up.
func (e *Engine) announceIfDoneLocked(user string) {
	if e.askedPending[user] && !e.pendingLocked(user) {
		delete(e.askedPending, user)
		e.changedUsers[user] = true
	}
}

func isUnmanagedKey(user string) bool {
	return len(user) > len(unmanagedPrefix) && user[:len(unmanagedPrefix)] == unmanagedPrefix
}

// applyFailedLocked decides what a failed write means for the User and the app.
func (e *Engine) applyFailedLocked(p userPlan, err error) {
	user := p.user
	if p.action == actCreate && connectors.OutcomeUnknown(err) {
		// Look before creating again, and find the account if the User leaves meanwhile.
		e.unsureCreates[user] = unsureCreate{key: p.desired.KeyValue(e.cfg.MatchBy), failed: e.now()}
	}
	switch {
	case errors.Is(err, connectors.ErrNotFound) && p.current != nil:
		// The account vanished from the app since it was listed: plan the User again.
		e.app.put(p.current.ID, nil)
		e.app.unlink(user)
		e.markLocked(user)
		e.signal()
	case errors.As(err, new(*connectors.PendingError)):
		e.waitingLocked(user, err)
	case errUnauthorized(err):
		e.health, e.err = HealthFailing, err
		e.appChanged = true
		e.setAccountStateLocked(user, e.stateNowLocked(user), e.app.links[user], "the app rejected Roster's credentials; see the AppConnection")
		e.markLocked(user)
		e.askResync()
	default:
		e.failLocked(user, err)
		if b := e.retry[user]; b != nil {
			b.deprovision = p.deprovision()
		}
	}
}

// waitingLocked records an account that cannot be made yet, and when to try again.
func (e *Engine) waitingLocked(user string, err error) {
	var pending *connectors.PendingError
	errors.As(err, &pending)
	e.setAccountStateLocked(user, identityv1alpha1.AccountStatePending, e.app.links[user], pending.Message)
	e.releaseReportsLocked(user)
	delete(e.planned, user)
	if pending.RetryAfter > 0 {
		b := &backoff{delay: pending.RetryAfter, next: e.now().Add(pending.RetryAfter)}
		e.retry[user] = b
		e.timers.schedule(user, b.next)
	}
}

// failLocked records a failed write and schedules a retry unless it cannot help.
func (e *Engine) failLocked(user string, err error) {
	if isUnmanagedKey(user) {
		e.log.Info("Could not deactivate an unmanaged account", "app", e.cfg.App, "account", user, "error", err.Error())
		delete(e.planned, user)
		return
	}
	e.setAccountStateLocked(user, identityv1alpha1.AccountStateFailed, e.app.links[user], err.Error())
	_, e.accountStates[user].rateLimited = connectors.RetryAfter(err)
	e.releaseReportsLocked(user)
	if connectors.IsPermanent(err) {
		delete(e.planned, user)
		return // until the User, its assignments or the app change, or the next full sync
	}
	b := e.retry[user]
	if b == nil {
		b = &backoff{delay: time.Second}
		e.retry[user] = b
	} else {
		b.delay = min(2*b.delay, maxRetryDelay)
	}
	wait := b.delay
	if after, limited := connectors.RetryAfter(err); limited && after > wait {
		wait = after
	}
	b.next = e.now().Add(wait)
	delete(e.planned, user)
	e.timers.schedule(user, b.next)
}

// sent is what an update sent, by path: the value sent and the value the app had.
type sent map[string]struct{ value, was any }

// sentValues is what an update sends: the desired values of the paths that differ.
func sentValues(desired, current map[string]any) sent {
	out := sent{}
	for _, path := range connectors.Differences(desired, current) {
		out[path] = struct{ value, was any }{desired[path], current[path]}
	}
	return out
}

// keptBy reports whether an account has every value sent.
func (s sent) keptBy(attributes map[string]any) bool {
	values := make(map[string]any, len(s))
	for path, v := range s {
		values[path] = v.value
	}
	return len(connectors.Differences(values, attributes)) == 0
}

// stateNowLocked is the state of the User's account as observed.
func (e *Engine) stateNowLocked(user string) identityv1alpha1.AccountState {
	if acc := e.app.accountOf(user); acc != nil {
		return stateOf(&acc.Account)
	}
	return identityv1alpha1.AccountStatePending
}

func stateOf(acc *connectors.Account) identityv1alpha1.AccountState {
	if acc.Active {
		return identityv1alpha1.AccountStateActive
	}
	return identityv1alpha1.AccountStateDeactivated
}

// settleLocked records a User whose plan has nothing to do.
func (e *Engine) settleLocked(user string, p userPlan) {
	switch {
	case isUnmanagedKey(user):
		return
	case !p.exists:
		e.app.unlink(user)
		e.forgetAccountStateLocked(user)
		delete(e.unsureCreates, user)
	case p.problem != "":
		e.setAccountStateLocked(user, identityv1alpha1.AccountStateFailed, e.app.links[user], p.problem)
	case p.current != nil && e.app.links[user] == p.current.ID && len(p.drift) > 0:
		msg := fmt.Sprintf("the app does not keep %s: Roster sent it and the app answered or lists otherwise; it is not sent again until it changes", strings.Join(p.drift, ", "))
		if r := e.accountStates[user]; r == nil || r.status.Message != msg {
			e.userEventLocked(user, "Warning", identityv1alpha1.EventDrifting, fmt.Sprintf("%s in %s", msg, e.cfg.App))
		}
		e.setAccountStateLocked(user, stateOf(p.current), p.current.ID, msg)
		e.setLastLoginLocked(user, p.current.LastLogin)
	case p.current != nil && e.app.links[user] == p.current.ID:
		delete(e.lastSent, user)
		e.setAccountStateLocked(user, stateOf(p.current), p.current.ID, p.current.Note)
		e.setLastLoginLocked(user, p.current.LastLogin)
	case e.accountStates[user] != nil && e.accountStates[user].status.State == identityv1alpha1.AccountStateDeleted:
	default:
		e.dropAccountStateLocked(user)
	}
	e.observeConvergedLocked(user)
}

// noteLocked records what a planned User is waiting for.
func (e *Engine) noteLocked(user string, p userPlan) {
	if isUnmanagedKey(user) {
		return
	}
	state := e.stateNowLocked(user)
	if e.app.links[user] == "" && p.action != actCreate {
		if r := e.accountStates[user]; r != nil {
			state = r.status.State
		}
	}
	message := ""
	if e.cfg.Mode == identityv1alpha1.ModePlan {
		message = "planned (Plan mode, not applied): " + p.describe()
	}
	e.setAccountStateLocked(user, state, e.app.links[user], message)
}

// setAccountStateLocked updates a User's account status; a change is published.
func (e *Engine) setAccountStateLocked(user string, state identityv1alpha1.AccountState, accountID, message string) {
	r := e.accountStates[user]
	if r == nil {
		r = &accountState{}
		e.accountStates[user] = r
	}
	st := r.status
	if st.State == state && st.ExternalID == accountID && st.Message == message {
		return
	}
	now := e.now()
	if st.State != state || st.LastTransitionTime.IsZero() {
		st.LastTransitionTime = now
		e.appChanged = e.appChanged || state == identityv1alpha1.AccountStateFailed || st.State == identityv1alpha1.AccountStateFailed
	}
	st.State, st.ExternalID, st.Message, st.LastSyncTime = state, accountID, message, now
	r.status = st
	e.countFailedLocked(user, r)
	e.changedUsers[user] = true
}

// countFailedLocked keeps the failed Users in step with a User's record.
func (e *Engine) countFailedLocked(user string, r *accountState) {
	if r.status.State == identityv1alpha1.AccountStateFailed {
		e.failedUsers[user] = r
	} else {
		delete(e.failedUsers, user)
	}
}

// forgetAccountStateLocked drops a User's record of its account.
func (e *Engine) forgetAccountStateLocked(user string) {
	delete(e.accountStates, user)
	delete(e.failedUsers, user)
}

// setLastLoginLocked records when the person last signed in to the app, where the app
// tells; a time the app no longer gives keeps the last one known.
func (e *Engine) setLastLoginLocked(user string, at time.Time) {
	r := e.accountStates[user]
	if r == nil || at.IsZero() || r.status.LastLogin.Equal(at) {
		return
	}
	r.status.LastLogin = at
	e.changedUsers[user] = true
}

func (e *Engine) dropAccountStateLocked(user string) {
	if _, ok := e.accountStates[user]; ok {
		e.forgetAccountStateLocked(user)
		e.changedUsers[user] = true
	}
}

// seedAccountStateLocked starts a User's record from its status, so that times (and so
// deleteAfter) survive a restart.
func (e *Engine) seedAccountStateLocked(user string, recorded *identityv1alpha1.UserAccount) {
	if _, ok := e.accountStates[user]; ok || recorded == nil {
		return
	}
	st := AccountStatus{State: recorded.State, ExternalID: recorded.ExternalID, Message: recorded.Message}
	if recorded.LastLoginTime != nil {
		st.LastLogin = recorded.LastLoginTime.Time
	}
	if recorded.LastSyncTime != nil {
		st.LastSyncTime = recorded.LastSyncTime.Time
	}
	if recorded.LastTransitionTime != nil {
		st.LastTransitionTime = recorded.LastTransitionTime.Time
	}
	r := &accountState{status: st}
	e.accountStates[user] = r
	e.countFailedLocked(user, r)
}

// observeConvergedLocked measures how long a User took from its change to converged: a
// joiner or mover until their groups are in place too, a leaver until the account is
// off (group removals that follow it take nothing more away).
func (e *Engine) observeConvergedLocked(user string) {
	c, ok := e.converging[user]
	if !ok {
		return
	}
	if _, planned := e.planned[user]; planned || (c.change != "leaver" && e.hasPendingGroupsLocked(user)) {
		return
	}
	delete(e.converging, user)
	observeConvergence(e.cfg.App, c.change, e.now().Sub(c.since))
}
