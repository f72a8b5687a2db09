package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/mapping"
)

type action int

const (
	actNone action = iota
	actCreate
	actUpdate
	actDeactivate
	actDelete
	actOrphan
)

func (a action) String() string {
	return [...]string{"none", "create", "update", "deactivate", "delete", "orphan"}[a]
}

// userPlan is what one User's account in the app needs.
type userPlan struct {
	user    string
	exists  bool // the User exists
	action  action
	current *connectors.Account // the account in the app with all its attributes, nil if none
	// observed is the engine's own record of current, to tell a plan made against an
	// account that has changed since.
	observed *observed
	desired  connectors.Account // for create and update
	// adopted: current was found by the matching key, not by a link Roster recorded.
	adopted      bool
	addGroups    []string // group display names
	removeGroups []string
	// wake is when the plan may change by the clock alone.
	wake time.Time
	// problem says why the User cannot be provisioned (a mapping error, a duplicate).
	problem string
	// manager names the User's manager, and awaitsManager names it when the manager has
	// no account in the app yet.
	manager, awaitsManager string
	// drift lists the attributes the app did not keep when they were last sent: they are
	// not sent again until what is desired of them changes.
	drift []string
}

func (p userPlan) deprovision() bool { return p.action == actDeactivate || p.action == actDelete }

// change names what the plan does to the person's access, for the convergence metric:
// a leaver's account goes off, a joiner's is made, a mover's changes.
func (p userPlan) change() string {
	switch {
	case p.deprovision():
		return "leaver"
	case p.action == actCreate:
		return "joiner"
	}
	return "mover"
}

func (p userPlan) changes() bool {
	return p.action != actNone || len(p.addGroups) > 0 || len(p.removeGroups) > 0
}

// describe is one line of the plan's sample.
func (p userPlan) describe() string {
	var parts []string
	if p.action != actNone {
		parts = append(parts, p.action.String()+" "+p.user)
	}
	if len(p.addGroups) > 0 {
		parts = append(parts, fmt.Sprintf("add %s to %s", p.user, strings.Join(p.addGroups, ", ")))
	}
	if len(p.removeGroups) > 0 {
		parts = append(parts, fmt.Sprintf("remove %s from %s", p.user, strings.Join(p.removeGroups, ", ")))
	}
	return strings.Join(parts, "; ")
}

// planInput is everything one User's plan depends on.
type planInput struct {
	subject   Subject
	exists    bool
	cfg       *Config
	current   *connectors.Account
	adopted   bool
	desired   map[string]any // mapped attributes; nil when mapping failed
	mapErr    error
	groupsNow []string // display names of managed groups the account is in now
	// lastSent is what the last update sent.
	lastSent sent
	managed  func(group string) bool
	since    time.Time // when the account entered its recorded state
	now      time.Time
}

// plan decides what one User's account needs. It is a pure function of its input.
func plan(in planInput) userPlan {
	p := userPlan{user: in.subject.User.GetName(), exists: in.exists, current: in.current, adopted: in.adopted}
	if in.exists {
		p.wake = in.subject.NextChange
	}
	switch {
	case in.exists && in.subject.AssignmentUnknown && !in.subject.Deleting && !in.cfg.Removing:
		p.problem = "a Role that may grant this app has a rule that does not compile; the account is left as it is"
		return p
	case !in.exists || in.subject.Deleting || !in.subject.Assigned || in.cfg.Removing:
		return leave(p, in, onRemoval(in.cfg.OnRemoval))
	case in.subject.Duplicate:
		p.problem = "another User in the namespace has the same userName"
		return p
	case !in.subject.Active:
		if in.cfg.OnSuspend == identityv1alpha1.SuspendIgnore {
			return p
		}
		return leave(p, in, onSuspend(in.cfg.OnSuspend))
	case in.mapErr != nil:
		p.problem = in.mapErr.Error()
		return p
	}
	p.desired = connectors.Account{Active: true, Attributes: in.desired}
	switch {
	case in.current == nil:
		p.action = actCreate
	case !in.current.Active:
		p.action = actUpdate
	default:
		diff := connectors.Differences(in.desired, in.current.Attributes)
		switch {
		case len(diff) == 0:
		case in.lastSent.notKept(diff, in.desired, in.current.Attributes):
			p.drift = diff
		default:
			p.action = actUpdate
		}
	}
	p.addGroups, p.removeGroups = groupChanges(in.subject.Groups, in.groupsNow, in.managed)
	return p
}

// notKept reports whether every path of a difference was sent by the last update,
// with the value desired now, and the app still has the value it had then: the app
// took the update and did not keep it. A value changed in the app since is sent again.
func (s sent) notKept(diff []string, desired, current map[string]any) bool {
	for _, path := range diff {
		v, ok := s[path]
		if !ok || !connectors.Equivalent(v.value, desired[path], false) || !connectors.Equivalent(v.was, current[path], false) {
			return false
		}
	}
	return true
}

// onSuspend is the action a suspend policy asks for (but Ignore, which asks for none).
func onSuspend(policy identityv1alpha1.SuspendAction) action {
	if policy == identityv1alpha1.SuspendDelete {
		return actDelete
	}
	return actDeactivate
}

// onRemoval is the action a removal policy asks for.
func onRemoval(policy identityv1alpha1.RemovalAction) action {
	switch policy {
	case identityv1alpha1.RemovalOrphan:
		return actOrphan
	case identityv1alpha1.RemovalDelete:
		return actDelete
	}
	return actDeactivate
}

// leave plans an account that should no longer be active: orphaned, deleted, or
// deactivated (and deleted once deleteAfter has passed).
func leave(p userPlan, in planInput, how action) userPlan {
	if in.current == nil {
		return p
	}
	if how == actOrphan || how == actDelete {
		p.action = how
		return p
	}
	_, p.removeGroups = groupChanges(nil, in.groupsNow, in.managed)
	switch {
	case in.current.Active:
		p.action = actDeactivate
	case in.cfg.DeleteAfter > 0:
		due := in.since.Add(in.cfg.DeleteAfter)
		if in.since.IsZero() || !in.now.Before(due) {
			p.action = actDelete
		} else {
			p.wake = earliest(p.wake, due)
		}
	}
	return p
}

// groupChanges compares desired group names with the managed groups the account is in.
func groupChanges(desired, now []string, managed func(string) bool) (add, remove []string) {
	want := map[string]bool{}
	for _, g := range desired {
		want[strings.ToLower(g)] = true
	}
	have := map[string]bool{}
	for _, g := range now {
		have[strings.ToLower(g)] = true
		if !want[strings.ToLower(g)] && managed(g) {
			remove = append(remove, g)
		}
	}
	for _, g := range desired {
		if !have[strings.ToLower(g)] {
			add = append(add, g)
			have[strings.ToLower(g)] = true
		}
	}
	slices.Sort(add)
	slices.Sort(remove)
	return add, remove
}

// mapVars are the CEL variables of one User's mapping.
func mapVars(s Subject, managerAccountID string) map[string]any {
	return map[string]any{
		"user":         mapping.UserVars(s.User),
		"manager":      mapping.ManagerVars(s.Manager, s.ManagerUserName, managerAccountID),
		"entitlements": mapping.EntitlementVars(s.Groups, s.AppRole, s.License),
	}
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

// unmanagedPrefix marks plan entries for accounts no User holds.
const unmanagedPrefix = "account:"

// planUserLocked plans one User (or one unmanaged account) against what is observed.
func (e *Engine) planUserLocked(user string, now time.Time) userPlan {
	if id, ok := strings.CutPrefix(user, unmanagedPrefix); ok {
		return e.planUnmanagedLocked(user, id)
	}
	s, exists := e.subjects.Subject(user)
	if e.released[user] {
		if !exists || s.Deleting {
			return userPlan{user: user} // its account was let go as it is
		}
		delete(e.released, user) // a new User of that name
	}
	if !exists {
		s = Subject{User: &identityv1alpha1.User{}}
		s.User.Name = user
	}
	e.seedAccountStateLocked(user, s.Recorded)
	var desired map[string]any
	var mapErr error
	if exists && s.Assigned && s.Active && !s.Deleting {
		desired, mapErr = e.cfg.Mapping.Apply(mapVars(s, e.app.links[s.Manager]))
	}
	seen, adopted := e.currentLocked(user, s, exists, desired)
	current := seen.unpack()
	in := planInput{
		subject: s, exists: exists, cfg: &e.cfg, current: current, adopted: adopted,
		desired: desired, mapErr: mapErr, managed: e.isManagedGroupLocked, now: now, lastSent: e.lastSent[user],
	}
	if current != nil {
		in.groupsNow = e.groupsOfLocked(current.ID)
	}
	if r := e.accountStates[user]; r != nil {
		in.since = r.status.LastTransitionTime
	}
	p := plan(in)
	p.observed, p.manager = seen, s.Manager
	if exists && s.Manager != "" && e.app.links[s.Manager] == "" {
		p.awaitsManager = s.Manager
	}
	if adopted && current != nil {
		e.app.link(user, current.ID)
		if e.cfg.Mode == identityv1alpha1.ModeEnforce && !e.cfg.Paused {
			e.userEventLocked(user, "Normal", identityv1alpha1.EventAdopted,
				fmt.Sprintf("Adopted the existing account %s in %s (matched by %s)", current.UserName(), e.cfg.App, e.cfg.MatchBy))
		}
	}
	if !p.wake.IsZero() {
		e.timers.schedule(user, p.wake)
	}
	return p
}

// currentLocked finds the User's account: the one linked, the one its status recorded,
// an unlinked account with the User's stamp, or, for a User who should have one, an
// unlinked account with the same matching key.
func (e *Engine) currentLocked(user string, s Subject, exists bool, desired map[string]any) (*observed, bool) {
	if _, ok := e.app.links[user]; ok {
		if acc := e.app.accountOf(user); acc != nil {
			return acc, false
		}
		e.app.unlink(user)
	}
	if r := s.Recorded; r != nil && r.ExternalID != "" && r.State != identityv1alpha1.AccountStateDeleted {
		if acc := e.app.unlinked(r.ExternalID); acc != nil {
			e.app.link(user, acc.ID)
			return acc, false
		}
	}
	if desired == nil {
		if acc := e.stampedAccountLocked(s, exists); acc != nil {
			return acc, true
		}
		return e.unsureAccountLocked(user), false
	}
	key := connectors.Account{Attributes: desired}.KeyValue(e.cfg.MatchBy)
	if key == "" {
		return nil, false
	}
	if acc := e.app.byMatchingKey(e.cfg.MatchBy, key); acc != nil {
		return acc, true
	}
	// An account whose externalId is this User's own name was made by Roster for this
	// User, whatever its key says now: a rename while the create was in flight, and a
	// restart before its id was recorded, must not make a second account.
	if stamp := (connectors.Account{Attributes: desired}).ExternalID(); stamp != "" && stamp == s.User.Name {
		if acc := e.app.byMatchingKey(connectors.KeyExternalID, stamp); acc != nil {
			return acc, true
		}
	}
	return nil, false
}

// stampedAccountLocked finds, for a User who should have no account, an unlinked
// account that carries the User's stamp (an externalId that is the User's own name, as
// the mapping writes it): Roster created it for this User, and a restart before its id
// was recorded lost the link while the User stopped being entitled. It is the User's to
// deprovision, not an unmanaged account to leave active.
func (e *Engine) stampedAccountLocked(s Subject, exists bool) *observed {
	if !exists {
		return nil
	}
	acc := e.app.byMatchingKey(connectors.KeyExternalID, s.User.Name)
	if acc == nil {
		return nil
	}
	stamped, err := e.cfg.Mapping.Apply(mapVars(s, e.app.links[s.Manager]))
	if err != nil || (connectors.Account{Attributes: stamped}).ExternalID() != s.User.Name {
		return nil // this mapping writes other externalIds: the match is another system's
	}
	return acc
}

// unsureAccountLocked finds, for a User who should have no account (a leaver), the
// account a create whose answer was lost may have made: by the key it was created with.
// When no listing has begun since that create failed, it asks for one; when one has and
// the account is not in it, the create did nothing.
func (e *Engine) unsureAccountLocked(user string) *observed {
	unsure, ok := e.unsureCreates[user]
	if !ok {
		return nil
	}
	if acc := e.app.byMatchingKey(e.cfg.MatchBy, unsure.key); acc != nil {
		e.app.link(user, acc.ID)
		delete(e.unsureCreates, user)
		return acc
	}
	if e.listedFrom.After(unsure.failed) {
		delete(e.unsureCreates, user)
	} else {
		e.askResync()
	}
	return nil
}

func (e *Engine) planUnmanagedLocked(key, id string) userPlan {
	acc := e.app.unlinked(id)
	p := userPlan{user: key}
	if acc == nil || !acc.Active || e.cfg.Unmanaged != identityv1alpha1.UnmanagedDeactivate {
		return p
	}
	p.current, p.observed, p.action = acc.unpack(), acc, actDeactivate
	return p
}

func blockedMessage(app, id string, n, sent int, window time.Duration, managed int, maxCount, maxPercent *int32) string {
	var limits []string
	if maxCount != nil {
		limits = append(limits, fmt.Sprintf("%d accounts", *maxCount))
	}
	if maxPercent != nil {
		limits = append(limits, fmt.Sprintf("%d%% of %d managed", *maxPercent, managed))
	}
	name := app[strings.Index(app, "/")+1:]
	return fmt.Sprintf("plan %s would deprovision %d accounts, with %d already deprovisioned in the last %s over the safety threshold (%s); "+
		"%d deprovisions are held and were not sent. Check status.plan, then approve it with: %s",
		id, n, sent, window, strings.Join(limits, ", "), n, fmt.Sprintf(identityv1alpha1.ApproveCommand, "appconnection", name, id))
}

// planID identifies a set of deprovisions, so that an approval covers exactly it.
func planID(users []string, planned map[string]plannedUser) string {
	h := sha256.New()
	for _, u := range users {
		fmt.Fprintf(h, "%s:%s\n", u, planned[u].action)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}
