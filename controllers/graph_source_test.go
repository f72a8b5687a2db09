package controllers_test

import (
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/test/graphapi"
	"github.com/rosterhq/roster/test/samba"
)

func entraPerson(t *testing.T, srv *graphapi.Server, name, department string) string {
	t.Helper()
	return srv.Admin(t, "POST", "/users", fmt.Sprintf(`{"accountEnabled":true,"displayName":%q,"mailNickname":%q,"userPrincipalName":"%s@example.com",
		"passwordProfile":{"password":"a-long-password"},"givenName":%q,"surname":"Tester","department":%q}`, name, name, name, name, department))["id"].(string)
}

func entraBind(t *testing.T, srv *graphapi.Server, group, member string) {
	t.Helper()
	srv.Admin(t, "PATCH", "/groups/"+group, fmt.Sprintf(`{"members@odata.bind":[%q]}`, srv.URL+"v1.0/directoryObjects/"+member))
}

// Entra ID drives Active Directory: the tenant's users become Users (the manager
// resolved to the manager's User), a Role of the
// Engineering group (ada in it through the nested Platform group) gives them an
// account in the domain, and what an admin changes later in Entra ID (a joiner, a
// leaver disabled) reaches the domain through the delta query, without a full read.
func TestEntraIDDrivesActiveDirectory(t *testing.T) {
	ns := namespace(t)
	srv := graphapi.StartTest(t, graphapi.Options{})
	ada, grace := entraPerson(t, srv, "ada", "eng"), entraPerson(t, srv, "grace", "eng")
	eng := srv.Admin(t, "POST", "/groups", `{"displayName":"Engineering","mailEnabled":false,"mailNickname":"eng","securityEnabled":true}`)["id"].(string)
	platform := srv.Admin(t, "POST", "/groups", `{"displayName":"Platform","mailEnabled":false,"mailNickname":"platform","securityEnabled":true}`)["id"].(string)
	entraBind(t, srv, eng, platform)
	entraBind(t, srv, platform, ada)
	entraBind(t, srv, eng, grace)
	srv.Admin(t, "PUT", "/users/"+ada+"/manager/$ref", fmt.Sprintf(`{"@odata.id":%q}`, srv.URL+"v1.0/users/"+grace))

	dc := samba.Start(t)
	for _, ou := range []string{"OU=staff", "OU=eng,OU=staff", "OU=groups,OU=staff"} {
		dc.AddOU(t, ou+","+samba.BaseDN)
	}
	ad := adConnection(t, ns, "corp-ad", dc)
	ad.Spec.LDAP.GroupsDN = "OU=groups,OU=staff," + samba.BaseDN
	create(t, ad,
		&identityv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "eng"}, Spec: identityv1alpha1.RoleSpec{
			Members: identityv1alpha1.RoleMembers{Groups: []string{"Engineering"}}, Grants: []identityv1alpha1.RoleGrant{grant("corp-ad", "eng-team")}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "entra"}, StringData: map[string]string{"secret": graphapi.Secret}},
		&identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "entra"}, Spec: identityv1alpha1.DirectorySyncSpec{
			MicrosoftGraph: &identityv1alpha1.MicrosoftGraphSource{MicrosoftGraphApp: identityv1alpha1.MicrosoftGraphApp{
				TenantID: graphapi.TenantID, ClientID: graphapi.ClientID, AuthorityURL: srv.URL, GraphURL: srv.URL,
				ClientSecretRef: &identityv1alpha1.SecretKeySelector{Name: "entra", Key: "secret"}}},
		}})

	waitFor(t, "ada and grace have enabled accounts in OU=eng, in eng-team, and ada's User names grace's as her manager", func() (bool, string) {
		users := syncedUsers(t, ns, "entra")
		if m := users["ada@example.com"].Spec.Manager; m == nil || m.Name != users["grace@example.com"].Name {
			return false, fmt.Sprintf("ada's manager %+v", m)
		}
		a, okA := readAD(t, dc, "(sAMAccountName=ada)")
		g, okG := readAD(t, dc, "(sAMAccountName=grace)")
		return okA && okG && a.uac == "512" && g.uac == "512" && slices.Equal(groupNames(a.groups), []string{"eng-team"}) &&
			slices.Equal(groupNames(g.groups), []string{"eng-team"}), fmt.Sprintf("ada %+v grace %+v", a, g)
	})

	srv.Admin(t, "PATCH", "/users/"+grace, `{"accountEnabled":false}`)
	entraBind(t, srv, platform, entraPerson(t, srv, "carol", "eng"))
	waitFor(t, "grace disabled in the domain and carol there, from the delta query", func() (bool, string) {
		g, _ := readAD(t, dc, "(sAMAccountName=grace)")
		c, ok := readAD(t, dc, "(sAMAccountName=carol)")
		return g.uac == "514" && ok && c.uac == "512", fmt.Sprintf("grace %+v carol %+v", g, c)
	})
	if n := srv.Calls("GET /users/delta"); n < 2 {
		t.Errorf("the users' delta was read %d times", n)
	}
}
