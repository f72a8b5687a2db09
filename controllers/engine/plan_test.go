package engine

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/controllers/safety"
)

func TestPlanDecisions(t *testing.T) {
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	user := &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Name: "ada"}}
	active := &connectors.Account{ID: "1", Active: true, Attributes: map[string]any{"userName": "ada", "title": "Eng"}}
	inactive := &connectors.Account{ID: "1", Active: false, Attributes: map[string]any{"userName": "ada", "title": "Eng"}}
	desired := map[string]any{"userName": "ada", "title": "Eng"}
	changed := map[string]any{"userName": "ada", "title": "Lead"}
	assigned := Subject{User: user, Active: true, Assigned: true, Groups: []string{"eng"}}
	suspended := Subject{User: user, Active: false, Assigned: true}
	unassigned := Subject{User: user, Active: true}
	cfg := func(onSuspend identityv1alpha1.SuspendAction, onRemoval identityv1alpha1.RemovalAction, deleteAfter time.Duration) *Config {
		return &Config{OnSuspend: onSuspend, OnRemoval: onRemoval, DeleteAfter: deleteAfter}
	}
	deactivate := cfg(identityv1alpha1.SuspendDeactivate, identityv1alpha1.RemovalDeactivate, 0)
	managed := func(g string) bool { return g == "eng" || g == "old" }
	cases := []struct {
		reason     string
		in         planInput
		wantAction action
		wantAdd    []string
		wantRemove []string
		wantWake   time.Time
	}{
		{"a joiner gets an account and groups", planInput{subject: assigned, exists: true, cfg: deactivate, desired: desired},
			actCreate, []string{"eng"}, nil, time.Time{}},
		{"an account as declared needs nothing", planInput{subject: assigned, exists: true, cfg: deactivate, current: active, desired: desired, groupsNow: []string{"eng"}},
			actNone, nil, nil, time.Time{}},
		{"a changed attribute is an update", planInput{subject: assigned, exists: true, cfg: deactivate, current: active, desired: changed, groupsNow: []string{"eng"}},
			actUpdate, nil, nil, time.Time{}},
		{"an inactive account of an active User is reactivated", planInput{subject: assigned, exists: true, cfg: deactivate, current: inactive, desired: desired, groupsNow: []string{"eng"}},
			actUpdate, nil, nil, time.Time{}},
		{"a mover leaves managed groups only", planInput{subject: assigned, exists: true, cfg: deactivate, current: active, desired: desired, groupsNow: []string{"old", "manual"}},
			actNone, []string{"eng"}, []string{"old"}, time.Time{}},
		{"suspended: Deactivate", planInput{subject: suspended, exists: true, cfg: deactivate, current: active, groupsNow: []string{"eng"}},
			actDeactivate, nil, []string{"eng"}, time.Time{}},
		{"suspended: Delete", planInput{subject: suspended, exists: true, cfg: cfg(identityv1alpha1.SuspendDelete, identityv1alpha1.RemovalDeactivate, 0), current: active},
			actDelete, nil, nil, time.Time{}},
		{"suspended: Ignore leaves the account", planInput{subject: suspended, exists: true, cfg: cfg(identityv1alpha1.SuspendIgnore, identityv1alpha1.RemovalDeactivate, 0), current: active},
			actNone, nil, nil, time.Time{}},
		{"unassigned: Orphan lets the account go", planInput{subject: unassigned, exists: true, cfg: cfg(identityv1alpha1.SuspendDeactivate, identityv1alpha1.RemovalOrphan, 0), current: active},
			actOrphan, nil, nil, time.Time{}},
		{"unassigned: Delete", planInput{subject: unassigned, exists: true, cfg: cfg(identityv1alpha1.SuspendDeactivate, identityv1alpha1.RemovalDelete, 0), current: active},
			actDelete, nil, nil, time.Time{}},
		{"unassigned without an account: nothing", planInput{subject: unassigned, exists: true, cfg: deactivate},
			actNone, nil, nil, time.Time{}},
		{"deactivated, deleteAfter not yet due: wait for it", planInput{subject: suspended, exists: true, cfg: cfg(identityv1alpha1.SuspendDeactivate, identityv1alpha1.RemovalDeactivate, time.Hour), current: inactive, since: now.Add(-time.Minute), now: now},
			actNone, nil, nil, now.Add(59 * time.Minute)},
		{"deactivated, deleteAfter due: delete", planInput{subject: suspended, exists: true, cfg: cfg(identityv1alpha1.SuspendDeactivate, identityv1alpha1.RemovalDeactivate, time.Hour), current: inactive, since: now.Add(-2 * time.Hour), now: now},
			actDelete, nil, nil, time.Time{}},
		{"a deleted User's account follows onRemoval", planInput{subject: Subject{User: user}, exists: false, cfg: deactivate, current: active},
			actDeactivate, nil, nil, time.Time{}},
		{"the AppConnection going releases every account", planInput{subject: assigned, exists: true, cfg: &Config{OnRemoval: identityv1alpha1.RemovalDelete, Removing: true}, current: active, desired: desired},
			actDelete, nil, nil, time.Time{}},
		{"a duplicate userName gets nothing", planInput{subject: Subject{User: user, Active: true, Assigned: true, Duplicate: true}, exists: true, cfg: deactivate},
			actNone, nil, nil, time.Time{}},
		{"a User whose assignment cannot be told keeps its account", planInput{subject: Subject{User: user, Active: true, AssignmentUnknown: true}, exists: true, cfg: deactivate, current: active},
			actNone, nil, nil, time.Time{}},
		{"a start date in the future wakes the plan then", planInput{subject: Subject{User: user, Assigned: true, NextChange: now.Add(time.Hour)}, exists: true, cfg: deactivate, now: now},
			actNone, nil, nil, now.Add(time.Hour)},
	}
	for _, tc := range cases {
		if tc.in.managed == nil {
			tc.in.managed = managed
		}
		p := plan(tc.in)
		if p.action != tc.wantAction || !equal(p.addGroups, tc.wantAdd) || !equal(p.removeGroups, tc.wantRemove) || !p.wake.Equal(tc.wantWake) {
			t.Errorf("%s: got %s +%v -%v wake %v; want %s +%v -%v wake %v", tc.reason,
				p.action, p.addGroups, p.removeGroups, p.wake, tc.wantAction, tc.wantAdd, tc.wantRemove, tc.wantWake)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSafetyThreshold(t *testing.T) {
	count, percent := int32(25), int32(10)
	cases := []struct {
		reason           string
		n, managed       int
		maxCount, maxPct *int32
		want             bool
	}{
		{"under the count", 25, 1000, &count, nil, false},
		{"over the count", 26, 1000, &count, nil, true},
		{"over the percent", 11, 100, nil, &percent, true},
		{"within both", 10, 100, &count, &percent, false},
		{"over either bound", 26, 1000, &count, &percent, true},
		{"no bounds", 1000, 1000, nil, nil, false},
	}
	for _, tc := range cases {
		if got := safety.Exceeds(tc.n, tc.managed, tc.maxCount, tc.maxPct); got != tc.want {
			t.Errorf("%s: exceeds = %v, want %v", tc.reason, got, tc.want)
		}
	}
}

func TestAnUpdateTheAppDidNotKeepIsNotResentButAnEditInTheAppIs(t *testing.T) {
	last := sentValues(map[string]any{"name.givenName": "Augusta"}, map[string]any{"name.givenName": "Ada"})
	cases := []struct {
		reason  string
		desired string
		current string
		drift   bool
	}{
		{"the app still has the old value: drift, not resent", "Augusta", "Ada", true},
		{"someone changed it in the app since: sent again", "Augusta", "Countess", false},
		{"what is desired changed: sent again", "Ava", "Ada", false},
	}
	for _, tc := range cases {
		desired := map[string]any{"name.givenName": tc.desired}
		current := map[string]any{"name.givenName": tc.current}
		if got := last.notKept(connectors.Differences(desired, current), desired, current); got != tc.drift {
			t.Errorf("%s: notKept = %v", tc.reason, got)
		}
	}
}
