package controllers

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/mapping"
)

// Membership knows which Users hold which Roles, and which Users may hold accounts,
// and keeps that current one change at a time: a changed User is evaluated against the
// Roles of its namespace, a changed Role against the Users, never everything for every
// event.
type Membership struct {
	env *mapping.Env

	mu      sync.RWMutex
	roles   map[types.NamespacedName]*roleRules
	broken  map[types.NamespacedName]bool            // rules that do not compile
	members map[types.NamespacedName]map[string]bool // role → users
	rolesOf map[types.NamespacedName][]string        // user → roles, sorted (a few each)
	// lifespans are every User's, so that counting an AppAssignment's active members
	// copies no User out of the cache (most of the operator's CPU while 20 apps of
	// 10,000 deprovisioned).
	lifespans map[types.NamespacedName]lifespan
}

// roleRules is a Role's membership rules, compiled once per generation.
type roleRules struct {
	generation int64
	users      map[string]bool
	groups     map[string]bool // lower-cased
	selector   labels.Selector
	rule       *mapping.Program
}

// NewMembership returns an empty index.
func NewMembership() (*Membership, error) {
	env, err := mapping.NewEnv("user")
	if err != nil {
		return nil, err
	}
	return &Membership{
		env:       env,
		roles:     map[types.NamespacedName]*roleRules{},
		broken:    map[types.NamespacedName]bool{},
		members:   map[types.NamespacedName]map[string]bool{},
		rolesOf:   map[types.NamespacedName][]string{},
		lifespans: map[types.NamespacedName]lifespan{},
	}, nil
}

func compileRole(env *mapping.Env, role *identityv1alpha1.Role) (*roleRules, error) {
	m := role.Spec.Members
	r := &roleRules{generation: role.Generation, users: map[string]bool{}, groups: map[string]bool{}}
	for _, u := range m.Users {
		r.users[u] = true
	}
	for _, g := range m.Groups {
		r.groups[strings.ToLower(g)] = true
	}
	if m.Selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(m.Selector)
		if err != nil {
			return nil, fmt.Errorf("members.selector: %w", err)
		}
		r.selector = sel
	}
	if m.Rule != "" {
		p, err := env.Compile(m.Rule)
		if err != nil {
			return nil, fmt.Errorf("members.rule does not compile: %w", err)
		}
		r.rule = p
	}
	return r, nil
}

// holds reports whether a User is a member. A rule that fails on one User (a missing
// attribute, say) leaves that User out.
func (r *roleRules) holds(u *identityv1alpha1.User) bool {
	if r.users[u.Name] {
		return true
	}
	if r.selector != nil && !r.selector.Empty() && r.selector.Matches(labels.Set(u.Labels)) {
		return true
	}
	for _, g := range u.Spec.Groups {
		if r.groups[strings.ToLower(g)] {
			return true
		}
	}
	if r.rule != nil {
		ok, err := r.rule.EvalBool(map[string]any{"user": mapping.UserVars(u)})
		return err == nil && ok
	}
	return false
}

// SetRole evaluates a new Role, or a new generation of one, against every User of its
// namespace, as listed by users, and returns the Users whose membership changed. Other
// changes to who holds an unchanged Role come one User at a time (SetUser). The listing
// runs under the index's lock, so that no User change slips between it and the new
// membership. A Role whose rules do not compile keeps its members as they were, so that
// a typo never takes access away, and the error says why.
func (m *Membership) SetRole(role *identityv1alpha1.Role, users func() ([]identityv1alpha1.User, error)) ([]string, error) {
	key := types.NamespacedName{Namespace: role.Namespace, Name: role.Name}
	m.mu.Lock()
	defer m.mu.Unlock()
	if rules := m.roles[key]; rules != nil && rules.generation == role.Generation {
		return nil, nil
	}
	rules, err := compileRole(m.env, role)
	if err != nil {
		m.broken[key] = true
		return nil, err
	}
	list, err := users()
	if err != nil {
		return nil, err
	}
	now := map[string]bool{}
	for i := range list {
		if rules.holds(&list[i]) {
			now[list[i].Name] = true
		}
	}
	m.roles[key] = rules
	delete(m.broken, key)
	return m.replaceMembersLocked(key, now), nil
}

// DeleteRole forgets a Role and returns its former members.
func (m *Membership) DeleteRole(namespace, name string) []string {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.roles, key)
	delete(m.broken, key)
	return m.replaceMembersLocked(key, nil)
}

func (m *Membership) replaceMembersLocked(role types.NamespacedName, now map[string]bool) []string {
	before := m.members[role]
	var changed []string
	for u := range before {
		if !now[u] {
			changed = append(changed, u)
			m.setLocked(role, u, false)
		}
	}
	for u := range now {
		if !before[u] {
			changed = append(changed, u)
			m.setLocked(role, u, true)
		}
	}
	slices.Sort(changed)
	return changed
}

func (m *Membership) setLocked(role types.NamespacedName, user string, member bool) {
	userKey := types.NamespacedName{Namespace: role.Namespace, Name: user}
	if member {
		if m.members[role] == nil {
			m.members[role] = map[string]bool{}
		}
		m.members[role][user] = true
		held := m.rolesOf[userKey]
		if i, found := slices.BinarySearch(held, role.Name); !found {
			m.rolesOf[userKey] = slices.Insert(held, i, role.Name)
		}
		return
	}
	delete(m.members[role], user)
	held := m.rolesOf[userKey]
	if i, found := slices.BinarySearch(held, role.Name); found {
		m.rolesOf[userKey] = slices.Delete(held, i, i+1)
	}
	if len(m.members[role]) == 0 {
		delete(m.members, role)
	}
	if len(m.rolesOf[userKey]) == 0 {
		delete(m.rolesOf, userKey)
	}
}

// SetUser evaluates a User against the Roles of its namespace and returns the Roles
// whose membership changed.
func (m *Membership) SetUser(u *identityv1alpha1.User) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lifespans[types.NamespacedName{Namespace: u.Namespace, Name: u.Name}] = lifespanOf(u)
	var changed []string
	for key, rules := range m.roles {
		if key.Namespace != u.Namespace {
			continue
		}
		if holds, was := rules.holds(u), m.members[key][u.Name]; holds != was {
			m.setLocked(key, u.Name, holds)
			changed = append(changed, key.Name)
		}
	}
	slices.Sort(changed)
	return changed
}

// DeleteUser forgets a User and returns the Roles it held.
func (m *Membership) DeleteUser(namespace, name string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	userKey := types.NamespacedName{Namespace: namespace, Name: name}
	delete(m.lifespans, userKey)
	roles := slices.Clone(m.rolesOf[userKey])
	for _, role := range roles {
		m.setLocked(types.NamespacedName{Namespace: namespace, Name: role}, name, false)
	}
	return roles
}

// Active returns, in their order, those of these Users of a namespace that exist and
// may hold accounts at now.
func (m *Membership) Active(namespace string, users []string, now time.Time) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var active []string
	for _, name := range users {
		if m.activeLocked(namespace, name, now) {
			active = append(active, name)
		}
	}
	return active
}

// Has reports whether a User holds a Role.
func (m *Membership) Has(namespace, role, user string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.members[types.NamespacedName{Namespace: namespace, Name: role}][user]
}

// HoldsNow evaluates a Role's rules on a User as it is now, which may be newer than the
// User last counted; a Role whose rules do not compile keeps its members as counted.
func (m *Membership) HoldsNow(u *identityv1alpha1.User, role string) (holds, broken bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	key := types.NamespacedName{Namespace: u.Namespace, Name: role}
	if rules := m.roles[key]; rules != nil && !m.broken[key] {
		return rules.holds(u), false
	}
	return m.members[key][u.Name], m.broken[key]
}

// Broken reports whether a Role's rules do not compile, so that who holds it is not
// known for sure.
func (m *Membership) Broken(namespace, role string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.broken[types.NamespacedName{Namespace: namespace, Name: role}]
}

// ActiveMembers lists, in no order, a Role's members whose lifecycle allows accounts
// at now, and how many members it has in all.
func (m *Membership) ActiveMembers(namespace, role string, now time.Time) (active []string, members int) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	all := m.members[types.NamespacedName{Namespace: namespace, Name: role}]
	active = make([]string, 0, len(all))
	for name := range all {
		if m.activeLocked(namespace, name, now) {
			active = append(active, name)
		}
	}
	return active, len(all)
}

// activeLocked reports whether a User exists and its lifecycle allows accounts at now.
func (m *Membership) activeLocked(namespace, name string, now time.Time) bool {
	l, ok := m.lifespans[types.NamespacedName{Namespace: namespace, Name: name}]
	if !ok {
		return false
	}
	phase, _ := l.phase(now)
	return phase == identityv1alpha1.UserPhaseActive
}

// Count is how many members a Role has.
func (m *Membership) Count(namespace, role string) int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.members[types.NamespacedName{Namespace: namespace, Name: role}])
}

// Members lists a Role's members.
func (m *Membership) Members(namespace, role string) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.members[types.NamespacedName{Namespace: namespace, Name: role}]))
	for u := range m.members[types.NamespacedName{Namespace: namespace, Name: role}] {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

// RolesOf lists the Roles a User holds.
func (m *Membership) RolesOf(namespace, user string) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.rolesOf[types.NamespacedName{Namespace: namespace, Name: user}])
}
