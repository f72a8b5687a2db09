package controllers

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers/engine"
)

// subjects reads, from the informer caches, the Users of one namespace as one
// AppConnection's engine needs them.
type subjects struct {
	cache      client.Reader
	membership *Membership
	namespace  string
	app        string
	// asIs, when set, is a User read just now, whose Roles are evaluated as it is rather
	// than as last counted (the count may not have seen its latest change yet).
	asIs *identityv1alpha1.User
}

var _ engine.Subjects = (*subjects)(nil)

func (s *subjects) Names() []string {
	users, _ := usersIn(context.Background(), s.cache, s.namespace)
	return namesOf(users)
}

func (s *subjects) Reports(name string) []string {
	users, _ := usersBy(context.Background(), s.cache, indexUserManager, s.namespace, name)
	return namesOf(users)
}

func namesOf(users []*identityv1alpha1.User) []string {
	names := make([]string, len(users))
	for i, u := range users {
		names[i] = u.Name
	}
	return names
}

func (s *subjects) Subject(name string) (engine.Subject, bool) {
	ctx := context.Background()
	u := &identityv1alpha1.User{}
	// Read-only: the engine never changes a Subject's User, and a copy of every User at
	// every plan was most of a large sync's garbage.
	if err := s.cache.Get(ctx, types.NamespacedName{Namespace: s.namespace, Name: name}, u, client.UnsafeDisableDeepCopy); err != nil {
		return engine.Subject{}, false
	}
	now := time.Now()
	phase, next := lifecycle(u, now)
	subj := engine.Subject{
		User:       u,
		Active:     phase == identityv1alpha1.UserPhaseActive,
		Deleting:   u.DeletionTimestamp != nil,
		NextChange: next,
		Duplicate:  duplicateUserName(ctx, s.cache, u),
	}
	for i := range u.Status.Accounts {
		if u.Status.Accounts[i].App == s.app {
			subj.Recorded = &u.Status.Accounts[i]
		}
	}
	if m := u.Spec.Manager; m != nil {
		manager := &identityv1alpha1.User{}
		if err := s.cache.Get(ctx, types.NamespacedName{Namespace: s.namespace, Name: m.Name}, manager, client.UnsafeDisableDeepCopy); err == nil {
			subj.Manager, subj.ManagerUserName = manager.Name, manager.Spec.UserName
		}
	}
	s.entitle(ctx, &subj, now)
	return subj, true
}

// entitle finds the live AppAssignments of the app that give it to the User, and the
// union of their entitlements. It reads the app's assignments to the User and to Roles,
// not those to every other User, which may be thousands.
func (s *subjects) entitle(ctx context.Context, subj *engine.Subject, now time.Time) {
	var assignments []*identityv1alpha1.AppAssignment
	for _, grantee := range []string{userGrantee(s.app, subj.User.Name), rolesGrantee(s.app)} {
		some, err := assignmentsBy(ctx, s.cache, indexAssignmentGrantee, s.namespace, grantee)
		if err != nil {
			subj.AssignmentUnknown = true
			return
		}
		assignments = append(assignments, some...)
	}
	groups := map[string]bool{}
	s.granting(assignments, subj, now, func(a *identityv1alpha1.AppAssignment) {
		subj.Assigned = true
		for _, g := range a.Spec.Groups {
			if !groups[strings.ToLower(g)] {
				groups[strings.ToLower(g)] = true
				subj.Groups = append(subj.Groups, g)
			}
		}
		if subj.AppRole == "" {
			subj.AppRole = a.Spec.AppRole
		}
		if subj.License == "" {
			subj.License = a.Spec.License
		}
	})
	if subj.Assigned {
		subj.AssignmentUnknown = false
	}
	sort.Strings(subj.Groups)
}

// granting calls grant with each of the app's assignments that gives the User the app
// now, in name order, and notes in subj when that can change or cannot be told.
func (s *subjects) granting(assignments []*identityv1alpha1.AppAssignment, subj *engine.Subject, now time.Time, grant func(*identityv1alpha1.AppAssignment)) {
	sort.Slice(assignments, func(i, j int) bool { return assignments[i].Name < assignments[j].Name })
	for _, a := range assignments {
		if a.DeletionTimestamp != nil {
			continue
		}
		holds, unknown := s.holds(a, subj.User.Name)
		if unknown {
			subj.AssignmentUnknown = true
		}
		if !holds {
			continue
		}
		valid, next := validity(a, now)
		subj.NextChange = earliest(subj.NextChange, next)
		if valid {
			grant(a)
		}
	}
}

// holds reports whether an assignment's subject includes the User, and whether that
// cannot be told (its Role's rule does not compile).
func (s *subjects) holds(a *identityv1alpha1.AppAssignment, user string) (holds, unknown bool) {
	switch {
	case a.Spec.UserRef != nil:
		return a.Spec.UserRef.Name == user, false
	case a.Spec.RoleRef != nil:
		role := a.Spec.RoleRef.Name
		if s.asIs != nil && s.asIs.Name == user {
			return s.membership.HoldsNow(s.asIs, role)
		}
		return s.membership.Has(s.namespace, role, user), s.membership.Broken(s.namespace, role)
	}
	return false, false
}

// duplicateUserName reports whether an older User in the namespace has the same
// userName, ignoring letter case.
func duplicateUserName(ctx context.Context, cache client.Reader, u *identityv1alpha1.User) bool {
	same, err := usersBy(ctx, cache, indexUserName, u.Namespace, strings.ToLower(u.Spec.UserName))
	if err != nil {
		return false
	}
	for _, o := range same {
		if o.Name == u.Name || o.DeletionTimestamp != nil {
			continue
		}
		if o.CreationTimestamp.Before(&u.CreationTimestamp) || (o.CreationTimestamp.Equal(&u.CreationTimestamp) && o.Name < u.Name) {
			return true
		}
	}
	return false
}

// assignmentsOfApp names, sorted, the AppAssignments of an app whose subject includes
// any of these Users. Each of their Roles is looked up once, however many of the Users
// hold it, and the cache's objects are read without copying them.
func assignmentsOfApp(ctx context.Context, cache client.Reader, m *Membership, namespace, app string, users []string) []string {
	names := map[string]bool{}
	add := func(field, value string) {
		assignments, err := assignmentsBy(ctx, cache, field, namespace, value)
		if err != nil {
			return
		}
		for _, a := range assignments {
			if a.Spec.App == app {
				names[a.Name] = true
			}
		}
	}
	roles := map[string]bool{}
	for _, u := range users {
		add(indexAssignmentUser, u)
		for _, role := range m.RolesOf(namespace, u) {
			roles[role] = true
		}
	}
	for role := range roles {
		add(indexAssignmentRole, role)
	}
	return slices.Sorted(maps.Keys(names))
}
