package engine

import (
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
	// awaitsManager names the User's manager when the manager has no account in the app
	// yet.
	awaitsManager string
	// drift lists the attributes the app did not keep when they were last sent: they are
	// not sent again until what is desired of them changes.
	drift []string
}

func (p userPlan) deprovision() bool { return p.action == actDeactivate || p.action == actDelete }

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
	case in.exists && in.subject.Undecided && !in.subject.Deleting && !in.cfg.Removing:
		p.problem = "a Role that may grant this app has a rule that does not compile; the account is left as it is"
		return p
	case !in.exists || in.subject.Deleting || !in.subject.Assigned || in.cfg.Removing:
		return leave(p, in, in.cfg.OnRemoval)
	case in.subject.Duplicate:
		p.problem = "another User in the namespace has the same userName"
		return p
	case !in.subject.Active:
		if in.cfg.OnSuspend == identityv1alpha1.ActionIgnore {
			return p
		}
		return leave(p, in, in.cfg.OnSuspend)
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

// leave plans an account that should no longer be active, by the policy given.
func leave(p userPlan, in planInput, policy string) userPlan {
	if in.current == nil {
		return p
	}
	switch policy {
	case identityv1alpha1.ActionOrphan:
		p.action = actOrphan
		return p
	case identityv1alpha1.ActionDelete:
		p.action = actDelete
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
