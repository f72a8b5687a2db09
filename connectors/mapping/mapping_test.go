package mapping

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

func ada() *identityv1alpha1.User {
	return &identityv1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Name: "ada-lovelace", Namespace: "acme", Labels: map[string]string{"team": "compilers"}},
		Spec: identityv1alpha1.UserSpec{
			UserName:     "ada@example.com",
			Name:         &identityv1alpha1.PersonName{GivenName: "Ada", FamilyName: "Lovelace"},
			Emails:       []identityv1alpha1.Email{{Value: "ada@example.com", Type: "work", Primary: true}},
			Title:        "Engineer",
			Department:   "R&D",
			EmployeeType: "Employee",
			Groups:       []string{"eng", "oncall"},
			Attributes:   map[string]string{"costCenter": "42"},
		},
	}
}

func accountMapping(t *testing.T, overrides ...identityv1alpha1.ExpressionMapping) *Mappings {
	t.Helper()
	env, err := NewEnv(AccountVars...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := env.CompileMappings(DefaultAccountMapping, overrides)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDefaultMappingOfAUser(t *testing.T) {
	got, err := accountMapping(t).Apply(map[string]any{"user": UserVars(ada()), "manager": ManagerVars("grace", "grace@example.com", "m-42"),
		"entitlements": EntitlementVars([]string{"eng"}, "admin", "")})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"userName":       "ada@example.com",
		"externalId":     "ada-lovelace",
		AttrGivenName:    "Ada",
		AttrFamilyName:   "Lovelace",
		AttrMiddleName:   "",
		AttrDisplayName:  "Ada Lovelace",
		"emails":         []any{map[string]any{"value": "ada@example.com", "type": "work", "primary": true}},
		AttrTitle:        "Engineer",
		AttrUserType:     "Employee",
		AttrDepartment:   "R&D",
		AttrManagerValue: "m-42",
		AttrRoles:        []any{map[string]any{"value": "admin", "primary": true}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("mapped\n%v\nwant\n%v", got, want)
	}
}

func TestDisplayNameFallsBackToUserName(t *testing.T) {
	u := ada()
	u.Spec.Name = nil
	got, err := accountMapping(t).Apply(map[string]any{"user": UserVars(u), "manager": ManagerVars("", "", ""), "entitlements": EntitlementVars(nil, "", "")})
	if err != nil {
		t.Fatal(err)
	}
	if got[AttrDisplayName] != "ada@example.com" || got[AttrManagerValue] != "" || len(got[AttrRoles].([]any)) != 0 {
		t.Fatalf("displayName %q, manager %q", got[AttrDisplayName], got[AttrManagerValue])
	}
}

func TestOverridesAddReplaceAndNullLeavesOut(t *testing.T) {
	m := accountMapping(t,
		identityv1alpha1.ExpressionMapping{Target: AttrTitle, Expression: `user.title.upperAscii()`},
		identityv1alpha1.ExpressionMapping{Target: "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter",
			Expression: `"costCenter" in user.attributes ? user.attributes.costCenter : null`},
		identityv1alpha1.ExpressionMapping{Target: "nickName", Expression: `"nick" in user.attributes ? user.attributes.nick : null`},
		identityv1alpha1.ExpressionMapping{Target: "locale", Expression: `user.metadata.labels.team`},
	)
	got, err := m.Apply(map[string]any{"user": UserVars(ada()), "manager": ManagerVars("", "", ""), "entitlements": EntitlementVars(nil, "", "")})
	if err != nil {
		t.Fatal(err)
	}
	if got[AttrTitle] != "ENGINEER" || got["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter"] != "42" || got["locale"] != "compilers" {
		t.Fatalf("mapped %v", got)
	}
	if _, set := got["nickName"]; set {
		t.Fatal("a null mapping set the target")
	}
}

func TestCompileErrorsNameTheTarget(t *testing.T) {
	env, _ := NewEnv("user")
	_, err := env.CompileMappings(nil, []identityv1alpha1.ExpressionMapping{{Target: "title", Expression: "user.title +"}})
	if err == nil || !strings.Contains(err.Error(), "mapping for title") {
		t.Fatalf("got %v, want a compile error naming title", err)
	}
}

func TestRules(t *testing.T) {
	env, _ := NewEnv("user")
	cases := []struct {
		rule string
		want bool
	}{
		{`user.department == "R&D" && "oncall" in user.groups`, true},
		{`user.employeeType == "Contractor"`, false},
		{`user.emails.exists(e, e.value.endsWith("@example.com"))`, true},
		{`user.metadata.labels.team == "compilers"`, true},
		{`user.activeUntil == ""`, true},
	}
	for _, tc := range cases {
		p, err := env.Compile(tc.rule)
		if err != nil {
			t.Fatalf("%s: %v", tc.rule, err)
		}
		got, err := p.EvalBool(map[string]any{"user": UserVars(ada())})
		if err != nil || got != tc.want {
			t.Errorf("%s = %v, %v; want %v", tc.rule, got, err, tc.want)
		}
	}
	p, _ := env.Compile(`user.title`)
	if _, err := p.EvalBool(map[string]any{"user": UserVars(ada())}); err == nil {
		t.Error("a rule that is not a boolean evaluated")
	}
}

func TestRunawayExpressionsAreStopped(t *testing.T) {
	env, _ := NewEnv("user")
	p, err := env.Compile(`[1,2,3,4,5,6,7,8,9,10].map(a, [1,2,3,4,5,6,7,8,9,10].map(b, [1,2,3,4,5,6,7,8,9,10].map(c, [1,2,3,4,5,6,7,8,9,10].map(d, [1,2,3,4,5,6,7,8,9,10].map(e, [1,2,3,4,5,6,7,8,9,10].map(f, a*b*c*d*e*f))))))`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Eval(map[string]any{"user": UserVars(ada())}); err == nil {
		t.Fatal("an expression of a million steps ran to the end")
	}
}

func TestRunawayExpressionsOverAUsersValuesAreStopped(t *testing.T) {
	env, _ := NewEnv("user")
	p, err := env.Compile(`user.groups.map(a, user.groups.map(b, user.groups.map(c, a + b + c))).size() > 0`)
	if err != nil {
		t.Fatal(err)
	}
	u := ada()
	for i := range 200 {
		u.Spec.Groups = append(u.Spec.Groups, fmt.Sprintf("group-%d", i))
	}
	if _, err := p.Eval(map[string]any{"user": UserVars(u)}); err == nil {
		t.Fatal("eight million steps over a User's groups ran to the end")
	}
}

func TestOnlyExpressionsProvenCheapGoUntracked(t *testing.T) {
	env, _ := NewEnv(AccountVars...)
	for expr, bounded := range map[string]bool{
		"user.userName":                         true,
		defaultDisplayNames:                     true,
		`user.title == "" ? "n/a" : user.title`: true,
		`user.emails.map(e, e.value)`:           false,
		`user.groups.join(",")`:                 false,
		`[1,2,3].map(a, [1,2,3].map(b, a*b))`:   true,
	} {
		ast, iss := env.env.Compile(expr)
		if iss.Err() != nil {
			t.Fatal(iss.Err())
		}
		if got := boundedBelow(env.env, ast, costLimit); got != bounded {
			t.Errorf("%s: proven cheap %t, want %t", expr, got, bounded)
		}
	}
}
