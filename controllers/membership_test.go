package controllers

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

func testUser(name, dept string, groups []string, labels map[string]string) identityv1alpha1.User {
	return identityv1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: name, Labels: labels},
		Spec:       identityv1alpha1.UserSpec{UserName: name, Department: dept, Groups: groups},
	}
}

func testRole(name string, gen int64, members identityv1alpha1.RoleMembers) *identityv1alpha1.Role {
	return &identityv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: name, Generation: gen}, Spec: identityv1alpha1.RoleSpec{Members: members}}
}

func TestMembershipByEveryKindOfRule(t *testing.T) {
	m, err := NewMembership()
	if err != nil {
		t.Fatal(err)
	}
	users := []identityv1alpha1.User{
		testUser("ada", "eng", []string{"OnCall"}, map[string]string{"team": "compilers"}),
		testUser("grace", "eng", nil, nil),
		testUser("linus", "ops", nil, map[string]string{"team": "kernel"}),
		testUser("ken", "sales", nil, nil),
	}
	cases := []struct {
		reason  string
		members identityv1alpha1.RoleMembers
		want    []string
	}{
		{"explicit users", identityv1alpha1.RoleMembers{Users: []string{"ken"}}, []string{"ken"}},
		{"a label selector", identityv1alpha1.RoleMembers{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "kernel"}}}, []string{"linus"}},
		{"directory groups ignore letter case", identityv1alpha1.RoleMembers{Groups: []string{"oncall"}}, []string{"ada"}},
		{"a CEL rule", identityv1alpha1.RoleMembers{Rule: `user.department == "eng" && "OnCall" in user.groups`}, []string{"ada"}},
		{"the union of all parts", identityv1alpha1.RoleMembers{Users: []string{"ken"}, Rule: `user.department == "ops"`, Groups: []string{"oncall"}}, []string{"ada", "ken", "linus"}},
	}
	for i, tc := range cases {
		changed, err := m.SetRole(testRole(tc.reason, int64(i+1), tc.members), listed(users))
		if err != nil {
			t.Fatalf("%s: %v", tc.reason, err)
		}
		if !reflect.DeepEqual(changed, tc.want) || !reflect.DeepEqual(m.Members("acme", tc.reason), tc.want) {
			t.Errorf("%s: changed %v members %v, want %v", tc.reason, changed, m.Members("acme", tc.reason), tc.want)
		}
	}
}

func TestMembershipChangesOneAtATime(t *testing.T) {
	m, _ := NewMembership()
	users := []identityv1alpha1.User{testUser("ada", "eng", nil, nil), testUser("ken", "sales", nil, nil)}
	eng := testRole("eng", 1, identityv1alpha1.RoleMembers{Rule: `user.department == "eng"`})
	if _, err := m.SetRole(eng, listed(users)); err != nil {
		t.Fatal(err)
	}
	// A mover: ken joins engineering; only the eng role changes.
	ken := testUser("ken", "eng", nil, nil)
	if changed := m.SetUser(&ken); !reflect.DeepEqual(changed, []string{"eng"}) {
		t.Fatalf("SetUser changed %v, want [eng]", changed)
	}
	if !m.Has("acme", "eng", "ken") || !reflect.DeepEqual(m.RolesOf("acme", "ken"), []string{"eng"}) {
		t.Fatal("ken is not in eng after moving")
	}
	if changed := m.SetUser(&ken); changed != nil {
		t.Fatalf("evaluating an unchanged User changed %v", changed)
	}
	if roles := m.DeleteUser("acme", "ken"); !reflect.DeepEqual(roles, []string{"eng"}) || m.Has("acme", "eng", "ken") {
		t.Fatalf("DeleteUser returned %v", roles)
	}
	if former := m.DeleteRole("acme", "eng"); !reflect.DeepEqual(former, []string{"ada"}) {
		t.Fatalf("DeleteRole returned %v", former)
	}
}

func TestABrokenRuleKeepsTheMembers(t *testing.T) {
	m, _ := NewMembership()
	users := []identityv1alpha1.User{testUser("ada", "eng", nil, nil)}
	if _, err := m.SetRole(testRole("eng", 1, identityv1alpha1.RoleMembers{Rule: `user.department == "eng"`}), listed(users)); err != nil {
		t.Fatal(err)
	}
	_, err := m.SetRole(testRole("eng", 2, identityv1alpha1.RoleMembers{Rule: `user.department ==`}), listed(users))
	if err == nil || !strings.Contains(err.Error(), "members.rule does not compile") {
		t.Fatalf("got %v, want the compiler's message", err)
	}
	if !m.Has("acme", "eng", "ada") || !m.Broken("acme", "eng") {
		t.Fatal("a rule that does not compile took access away, or is not reported broken")
	}
}

// listed is a fixed listing of Users.
func listed(users []identityv1alpha1.User) func() ([]identityv1alpha1.User, error) {
	return func() ([]identityv1alpha1.User, error) { return users, nil }
}

// A Role reconciled again at the same generation keeps the members its Users' own
// changes gave it, even when the listing it is handed has not caught up with them.
func TestMembershipSurvivesAStaleListing(t *testing.T) {
	m, _ := NewMembership()
	eng := testRole("eng", 1, identityv1alpha1.RoleMembers{Rule: `user.department == "eng"`})
	ada := testUser("ada", "eng", nil, nil)
	if _, err := m.SetRole(eng, listed([]identityv1alpha1.User{ada})); err != nil {
		t.Fatal(err)
	}
	grace := testUser("grace", "eng", nil, nil)
	if changed := m.SetUser(&grace); !reflect.DeepEqual(changed, []string{"eng"}) {
		t.Fatalf("SetUser(grace) changed %v", changed)
	}
	changed, err := m.SetRole(eng, listed([]identityv1alpha1.User{ada}))
	if err != nil || len(changed) != 0 || !reflect.DeepEqual(m.Members("acme", "eng"), []string{"ada", "grace"}) {
		t.Fatalf("SetRole again = %v, %v; members %v, want ada and grace", changed, err, m.Members("acme", "eng"))
	}
}

// TestActiveFollowsEveryUsersLifecycle: the Users an assignment counts as active are
// those that exist and, at the time asked, are neither suspended, deleting, expired
// nor yet to start, as each User's last change says, asked by name or by Role.
func TestActiveFollowsEveryUsersLifecycle(t *testing.T) {
	m, _ := NewMembership()
	now := time.Now()
	later, earlier := metav1.NewTime(now.Add(time.Hour)), metav1.NewTime(now.Add(-time.Hour))
	users := map[string]func(*identityv1alpha1.User){
		"active":    func(*identityv1alpha1.User) {},
		"suspended": func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateSuspended },
		"deleting":  func(u *identityv1alpha1.User) { u.DeletionTimestamp = &earlier },
		"expired":   func(u *identityv1alpha1.User) { u.Spec.ActiveUntil = &earlier },
		"starting":  func(u *identityv1alpha1.User) { u.Spec.ActiveFrom = &later },
		"contract":  func(u *identityv1alpha1.User) { u.Spec.ActiveFrom, u.Spec.ActiveUntil = &earlier, &later },
		"deleted":   func(*identityv1alpha1.User) {},
	}
	var held []identityv1alpha1.User
	for name, change := range users {
		u := testUser(name, "eng", nil, nil)
		change(&u)
		m.SetUser(&u)
		if name != "deleted" {
			held = append(held, u)
		}
	}
	m.DeleteUser("acme", "deleted")
	if _, err := m.SetRole(testRole("eng", 1, identityv1alpha1.RoleMembers{Rule: `user.department == "eng"`}), listed(held)); err != nil {
		t.Fatal(err)
	}
	other := testUser("active", "eng", nil, nil)
	other.Namespace = "globex"
	other.Spec.State = identityv1alpha1.UserStateSuspended
	m.SetUser(&other)

	asked := []string{"contract", "deleted", "active", "deleting", "expired", "missing", "starting", "suspended"}
	if got, want := m.Active("acme", asked, now), []string{"contract", "active"}; !reflect.DeepEqual(got, want) {
		t.Errorf("active now: %v, want %v", got, want)
	}
	if got, want := m.Active("acme", asked, now.Add(2*time.Hour)), []string{"active", "starting"}; !reflect.DeepEqual(got, want) {
		t.Errorf("active in two hours: %v, want %v", got, want)
	}
	active, members := m.ActiveMembers("acme", "eng", now)
	if slices.Sort(active); !reflect.DeepEqual(active, []string{"active", "contract"}) || members != 6 || m.Count("acme", "eng") != 6 {
		t.Errorf("the Role's active members now: %v of %d (counted %d), want [active contract] of 6", active, members, m.Count("acme", "eng"))
	}
	back := testUser("suspended", "eng", nil, nil)
	m.SetUser(&back)
	if got := m.Active("acme", []string{"suspended"}, now); !reflect.DeepEqual(got, []string{"suspended"}) {
		t.Errorf("a User back from suspension: %v", got)
	}
	if got := m.Active("globex", []string{"active"}, now); got != nil {
		t.Errorf("another namespace's suspended User of the same name: %v", got)
	}
}

func TestAUsersRolesStaySortedAsTheyChange(t *testing.T) {
	m, _ := NewMembership()
	ada := testUser("ada", "eng", []string{"oncall"}, map[string]string{"team": "compilers"})
	users := []identityv1alpha1.User{ada}
	for i, role := range []*identityv1alpha1.Role{
		testRole("zeta", 1, identityv1alpha1.RoleMembers{Groups: []string{"oncall"}}),
		testRole("alpha", 1, identityv1alpha1.RoleMembers{Rule: `user.department == "eng"`}),
		testRole("mid", 1, identityv1alpha1.RoleMembers{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "compilers"}}}),
	} {
		if _, err := m.SetRole(role, listed(users)); err != nil {
			t.Fatalf("role %d: %v", i, err)
		}
	}
	if got := m.RolesOf("acme", "ada"); !slices.Equal(got, []string{"alpha", "mid", "zeta"}) {
		t.Fatalf("RolesOf = %v, want [alpha mid zeta]", got)
	}
	ada.Spec.Department = "ops" // leaves alpha
	if changed := m.SetUser(&ada); !slices.Equal(changed, []string{"alpha"}) {
		t.Fatalf("SetUser changed %v, want [alpha]", changed)
	}
	got := m.RolesOf("acme", "ada")
	got[0] = "changed by the caller" // a copy, not the index's own
	if got := m.RolesOf("acme", "ada"); !slices.Equal(got, []string{"mid", "zeta"}) {
		t.Fatalf("RolesOf after leaving alpha = %v, want [mid zeta]", got)
	}
	if roles := m.DeleteUser("acme", "ada"); !slices.Equal(roles, []string{"mid", "zeta"}) || m.RolesOf("acme", "ada") != nil {
		t.Fatalf("DeleteUser returned %v and left %v", roles, m.RolesOf("acme", "ada"))
	}
	if m.Has("acme", "mid", "ada") || m.Has("acme", "zeta", "ada") {
		t.Fatal("a deleted User is still a member")
	}
}
