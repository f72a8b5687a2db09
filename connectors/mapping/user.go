package mapping

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// Enterprise extension paths of Roster's canonical account schema.
const (
	enterprise          = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:"
	AttrDepartment      = enterprise + "department"
	AttrManagerValue    = enterprise + "manager.value"
	AttrEmployeeNumber  = enterprise + "employeeNumber"
	AttrUserType        = "userType"
	AttrTitle           = "title"
	AttrDisplayName     = "displayName"
	AttrGivenName       = "name.givenName"
	AttrFamilyName      = "name.familyName"
	AttrMiddleName      = "name.middleName"
	AttrRoles           = "roles"
	defaultDisplayNames = `user.displayName != "" ? user.displayName : ` +
		`([user.name.givenName, user.name.familyName].filter(s, s != "").join(" ") != "" ? ` +
		`[user.name.givenName, user.name.familyName].filter(s, s != "").join(" ") : user.userName)`
)

// DefaultAccountMapping maps a User to Roster's canonical account schema (SCIM 2.0
// paths). An AppConnection's mapping adds to and overrides it.
var DefaultAccountMapping = []identityv1alpha1.ExpressionMapping{
	{Target: "userName", Expression: "user.userName"},
	{Target: "externalId", Expression: `user.externalID != "" ? user.externalID : user.metadata.name`},
	{Target: AttrGivenName, Expression: "user.name.givenName"},
	{Target: AttrFamilyName, Expression: "user.name.familyName"},
	{Target: AttrMiddleName, Expression: "user.name.middleName"},
	{Target: AttrDisplayName, Expression: defaultDisplayNames},
	{Target: "emails", Expression: `user.emails.map(e, {"value": e.value, "type": e.type, "primary": e.primary})`},
	{Target: AttrTitle, Expression: "user.title"},
	{Target: AttrUserType, Expression: "user.employeeType"},
	{Target: AttrDepartment, Expression: "user.department"},
	{Target: AttrManagerValue, Expression: "manager.accountID"},
	{Target: AttrRoles, Expression: `entitlements.appRole != "" ? [{"value": entitlements.appRole, "primary": true}] : []`},
}

// AccountVars are the variables an AppConnection's mapping sees.
var AccountVars = []string{"user", "manager", "entitlements"}

// UserVars is how a User looks to CEL as `user`: its spec fields (every one present,
// empty when unset) and its metadata (name, namespace, labels, annotations).
func UserVars(u *identityv1alpha1.User) map[string]any {
	s := u.Spec
	emails := make([]any, 0, len(s.Emails))
	for _, e := range s.Emails {
		typ := string(e.Type)
		if typ == "" {
			typ = "work"
		}
		emails = append(emails, map[string]any{"value": e.Value, "type": typ, "primary": e.Primary})
	}
	name := map[string]any{"givenName": "", "familyName": "", "middleName": ""}
	if s.Name != nil {
		name = map[string]any{"givenName": s.Name.GivenName, "familyName": s.Name.FamilyName, "middleName": s.Name.MiddleName}
	}
	manager := ""
	if s.Manager != nil {
		manager = s.Manager.Name
	}
	state := string(s.State)
	if state == "" {
		state = string(identityv1alpha1.UserStateActive)
	}
	return map[string]any{
		"metadata": map[string]any{
			"name": u.Name, "namespace": u.Namespace,
			"labels": stringMap(u.Labels), "annotations": stringMap(u.Annotations),
		},
		"userName":     s.UserName,
		"externalID":   s.ExternalID,
		"name":         name,
		"displayName":  s.DisplayName,
		"emails":       emails,
		"title":        s.Title,
		"department":   s.Department,
		"location":     s.Location,
		"employeeType": s.EmployeeType,
		"manager":      manager,
		"groups":       stringList(s.Groups),
		"attributes":   stringMap(s.Attributes),
		"state":        state,
		"activeFrom":   timeString(s.ActiveFrom),
		"activeUntil":  timeString(s.ActiveUntil),
	}
}

// ManagerVars is how a User's manager looks to CEL as `manager`: name, userName and
// accountID (the manager's account id in the app), empty when unknown.
func ManagerVars(name, userName, accountID string) map[string]any {
	return map[string]any{"name": name, "userName": userName, "accountID": accountID}
}

// EntitlementVars is how the entitlements a User holds in an app look to CEL as
// `entitlements`: groups, appRole and license.
func EntitlementVars(groups []string, appRole, license string) map[string]any {
	return map[string]any{"groups": stringList(groups), "appRole": appRole, "license": license}
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func stringList(l []string) []any {
	out := make([]any, len(l))
	for i, v := range l {
		out[i] = v
	}
	return out
}

func timeString(t *metav1.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
