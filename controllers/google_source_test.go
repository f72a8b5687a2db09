package controllers_test

import (
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/googleworkspace"
	"github.com/rosterhq/roster/test/googleapi"
)

func googlePerson(email, given string, more map[string]any) map[string]any {
	u := map[string]any{"primaryEmail": email, "name": map[string]any{"givenName": given, "familyName": "Tester"}, "password": "a-long-password"}
	for k, v := range more {
		u[k] = v
	}
	return u
}

// A Google Workspace account drives a SCIM app: its users become Users (the org unit as
// an attribute, the manager resolved), a Role of the eng@ group (ada in it through the
// nested platform@) gives them the app, and what an admin changes later in Google (a
// joiner added to the group, a leaver suspended) reaches the app through the Reports
// API's admin activity, without waiting for the next full sync.
func TestGoogleWorkspaceSourceDrivesASCIMApp(t *testing.T) {
	ns := namespace(t)
	srv := googleapi.StartTest(t, googleapi.Options{Delegated: append(slices.Clone(googleworkspace.SourceScopes), googleworkspace.ReportsScope)})
	srv.Admin(t, "directory.users.insert", nil, googlePerson("grace@example.com", "Grace", nil))
	srv.Admin(t, "directory.users.insert", nil, googlePerson("ada@example.com", "Ada", map[string]any{"orgUnitPath": "/Engineering",
		"relations": []any{map[string]any{"type": "manager", "value": "grace@example.com"}}}))
	for _, g := range []string{"eng@example.com", "platform@example.com"} {
		srv.Admin(t, "directory.groups.insert", nil, map[string]any{"email": g})
	}
	for group, member := range map[string]string{"eng@example.com": "platform@example.com", "platform@example.com": "ada@example.com"} {
		srv.Admin(t, "directory.members.insert", map[string]string{"groupKey": group}, map[string]any{"email": member})
	}
	srv.Admin(t, "directory.members.insert", map[string]string{"groupKey": "eng@example.com"}, map[string]any{"email": "grace@example.com"})

	app := newSCIMApp(t)
	create(t, scimConnection(t, app, ns, "slack", app.token),
		&identityv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "eng"}, Spec: identityv1alpha1.RoleSpec{
			Members: identityv1alpha1.RoleMembers{Groups: []string{"eng@example.com"}}, Grants: []identityv1alpha1.RoleGrant{grant("slack", "engineering")}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "google"}, Data: map[string][]byte{"key.json": srv.Key}},
		&identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "google"}, Spec: identityv1alpha1.DirectorySyncSpec{
			GoogleWorkspace: &identityv1alpha1.GoogleWorkspaceSource{GoogleServiceAccount: identityv1alpha1.GoogleServiceAccount{
				AdminEmail: "admin@example.com", APIURL: srv.URL, ServiceAccountKeySecretRef: identityv1alpha1.SecretKeySelector{Name: "google", Key: "key.json"}}},
		}})

	waitFor(t, "ada and grace are Users, ada with her org unit and manager, and both in the app's engineering group", func() (bool, string) {
		users := syncedUsers(t, ns, "google")
		ada, grace := users["ada@example.com"], users["grace@example.com"]
		ok := ada.Spec.Attributes["orgUnitPath"] == "/Engineering" && ada.Spec.Manager != nil && ada.Spec.Manager.Name == grace.Name &&
			slices.Equal(app.groupMembers("engineering"), []string{"ada@example.com", "grace@example.com"})
		return ok, fmt.Sprintf("ada %+v; members %v", ada.Spec, app.groupMembers("engineering"))
	})
	ada := app.user("ada@example.com").ID()

	srv.Admin(t, "directory.users.insert", nil, googlePerson("carol@example.com", "Carol", nil))
	srv.Admin(t, "directory.members.insert", map[string]string{"groupKey": "platform@example.com"}, map[string]any{"email": "carol@example.com"})
	srv.Admin(t, "directory.users.patch", map[string]string{"userKey": "ada@example.com"}, map[string]any{"suspended": true})
	waitFor(t, "carol joined the app through the nested group and ada's account is deactivated, from the admin activity", func() (bool, string) {
		carol, a := app.user("carol@example.com"), app.user("ada@example.com")
		return carol != nil && carol.Active() && a.ID() == ada && !a.Active(), fmt.Sprintf("carol %v; ada %v", carol, a)
	})
	if n := srv.Calls("directory.users.list"); n != 1 {
		t.Errorf("users were listed %d times: the changes were to come from the admin activity, not a full sync", n)
	}
	if n := srv.Calls("reports.activities.list"); n == 0 {
		t.Error("the admin activity was never read")
	}
}
