package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/test/graphapi"
)

func licensed(app, license string, groups ...string) identityv1alpha1.RoleGrant {
	g := grant(app, groups...)
	g.License = license
	return g
}

// Entra ID on a real API server: a joiner gets a user with the department's group and
// licence, a mover changes group and licence, a leaver is disabled with their sessions
// revoked, a return enables the same user, and the User's deletion deletes it.
func TestMicrosoftGraphJoinerMoverLeaverReturnDelete(t *testing.T) {
	ns := namespace(t)
	srv := graphapi.StartTest(t, graphapi.Options{})
	burst := int32(100)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "entra"}, StringData: map[string]string{"tls.pem": string(srv.Certificate)}},
		&identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "entra"}, Spec: identityv1alpha1.AppConnectionSpec{
			MicrosoftGraph: &identityv1alpha1.MicrosoftGraphConnector{UsageLocation: "GB", MicrosoftGraphApp: identityv1alpha1.MicrosoftGraphApp{
				TenantID: graphapi.TenantID, ClientID: graphapi.ClientID, AuthorityURL: srv.URL, GraphURL: srv.URL,
				ClientCertificateSecretRef: &identityv1alpha1.SecretKeySelector{Name: "entra", Key: "tls.pem"}}},
			RateLimit:   &identityv1alpha1.RateLimit{Requests: 1000, Burst: &burst},
			Deprovision: identityv1alpha1.DeprovisionPolicy{OnSuspend: identityv1alpha1.SuspendDeactivate, OnRemoval: identityv1alpha1.RemovalDelete},
		}},
		roleWithGrants(ns, "eng", `user.department == "eng"`, licensed("entra", graphapi.SkuE3, "Platform")),
		roleWithGrants(ns, "ops", `user.department == "ops"`, licensed("entra", graphapi.SkuE5, "Infra")))
	create(t, newUser(ns, "ada", "eng"))
	status := func() identityv1alpha1.UserAccount {
		return accountOf(get(t, ns, "ada", &identityv1alpha1.User{}), "entra")
	}
	sku := func(u map[string]any) string {
		l, _ := u["assignedLicenses"].([]any)
		if len(l) != 1 {
			return fmt.Sprint(l)
		}
		return l[0].(map[string]any)["skuId"].(string)
	}

	var id string
	waitFor(t, "joiner: ada in Entra ID with E3, in Platform, her status Active", func() (bool, string) {
		u, a := srv.User("ada@example.com"), status()
		if u == nil {
			return false, fmt.Sprintf("no user; the AppConnection says %+v; ada's account %+v", get(t, ns, "entra", &identityv1alpha1.AppConnection{}).Status.Conditions, a)
		}
		id, _ = u["id"].(string)
		return u["accountEnabled"] == true && sku(u) == graphapi.SkuE3 && u["usageLocation"] == "GB" &&
				slices.Equal(srv.Members("Platform"), []string{"ada@example.com"}) && a.State == identityv1alpha1.AccountStateActive && a.ExternalID == id,
			fmt.Sprintf("%v %+v", u, a)
	})

	user := &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"}}
	update(t, user, func(u *identityv1alpha1.User) { u.Spec.Department = "ops" })
	waitFor(t, "mover: ada in Infra with E5, out of Platform", func() (bool, string) {
		u := srv.User(id)
		return sku(u) == graphapi.SkuE5 && len(srv.Members("Platform")) == 0 && slices.Equal(srv.Members("Infra"), []string{"ada@example.com"}),
			fmt.Sprint(sku(u), srv.Members("Platform"), srv.Members("Infra"))
	})
	update(t, user, func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateSuspended })
	waitFor(t, "leaver: ada disabled, her sessions revoked", func() (bool, string) {
		return srv.User(id)["accountEnabled"] == false && srv.Revocations(id) == 1 && status().State == identityv1alpha1.AccountStateDeactivated,
			fmt.Sprint(srv.User(id)["accountEnabled"], srv.Revocations(id))
	})
	update(t, user, func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateActive })
	waitFor(t, "return: the same user enabled, not a new one", func() (bool, string) {
		u := srv.User("ada@example.com")
		return u["id"] == id && u["accountEnabled"] == true && status().State == identityv1alpha1.AccountStateActive, fmt.Sprint(u)
	})
	if creates := srv.Calls("POST /users"); creates != 1 {
		t.Fatalf("%d users created for one person", creates)
	}
	if err := env.Client.Delete(context.Background(), user); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "deleted: the User's deletion deletes the Entra ID user", func() (bool, string) {
		return srv.User(id) == nil, fmt.Sprint(srv.User(id))
	})
}
