package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/test/googleapi"
)

func TestGoogleWorkspaceJoinerMoverLeaverReturnDelete(t *testing.T) {
	ns := namespace(t)
	srv := googleapi.StartTest(t, googleapi.Options{})
	burst := int32(100)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "google"}, Data: map[string][]byte{"key.json": srv.Key}},
		&identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "google"}, Spec: identityv1alpha1.AppConnectionSpec{
			GoogleWorkspace: &identityv1alpha1.GoogleWorkspaceConnector{Domain: "example.com", GoogleServiceAccount: identityv1alpha1.GoogleServiceAccount{
				AdminEmail: "admin@example.com", APIURL: srv.URL, ServiceAccountKeySecretRef: identityv1alpha1.SecretKeySelector{Name: "google", Key: "key.json"}}},
			Mapping:     []identityv1alpha1.ExpressionMapping{{Target: "orgUnitPath", Expression: `"/" + user.department`}},
			RateLimit:   &identityv1alpha1.RateLimit{Requests: 1000, Burst: &burst},
			Deprovision: identityv1alpha1.DeprovisionPolicy{OnSuspend: identityv1alpha1.SuspendDeactivate, OnRemoval: identityv1alpha1.RemovalDelete},
		}},
		roleWithGrants(ns, "eng", `user.department == "eng"`, grant("google", "Platform")),
		roleWithGrants(ns, "ops", `user.department == "ops"`, grant("google", "Infra")))
	create(t, newUser(ns, "ada", "eng"))
	status := func() identityv1alpha1.UserAccount {
		return accountOf(get(t, ns, "ada", &identityv1alpha1.User{}), "google")
	}

	var id string
	waitFor(t, "joiner: ada in Google, in /eng and platform@, her status Active", func() (bool, string) {
		u, a := srv.User("ada@example.com"), status()
		if u == nil {
			return false, "no user"
		}
		id, _ = u["id"].(string)
		return u["orgUnitPath"] == "/eng" && u["suspended"] == false && slices.Equal(srv.Members("platform@example.com"), []string{"ada@example.com"}) &&
			a.State == identityv1alpha1.AccountStateActive && a.ExternalID == id, fmt.Sprintf("%v %+v", u, a)
	})

	signedIn := time.Now().Add(-time.Hour).Truncate(time.Second)
	srv.SignIn("ada@example.com", signedIn)
	update(t, &identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "google"}}, func(c *identityv1alpha1.AppConnection) {
		metav1.SetMetaDataAnnotation(&c.ObjectMeta, identityv1alpha1.AnnotationResync, time.Now().Format(time.RFC3339Nano))
	})
	waitFor(t, "her last sign-in is in her status", func() (bool, string) {
		a := status()
		return a.LastLoginTime != nil && a.LastLoginTime.Time.Equal(signedIn), fmt.Sprintf("%+v", a)
	})

	user := &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"}}
	update(t, user, func(u *identityv1alpha1.User) { u.Spec.Department = "ops" })
	waitFor(t, "mover: ada in /ops and infra@, out of platform@", func() (bool, string) {
		u := srv.User(id)
		return u["orgUnitPath"] == "/ops" && len(srv.Members("platform@example.com")) == 0 && slices.Equal(srv.Members("infra@example.com"), []string{"ada@example.com"}),
			fmt.Sprint(u["orgUnitPath"], srv.Members("platform@example.com"), srv.Members("infra@example.com"))
	})
	update(t, user, func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateSuspended })
	waitFor(t, "leaver: ada suspended in Google", func() (bool, string) {
		return srv.User(id)["suspended"] == true && status().State == identityv1alpha1.AccountStateDeactivated, fmt.Sprint(srv.User(id)["suspended"])
	})
	update(t, user, func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateActive })
	waitFor(t, "return: the same user unsuspended, not a new one", func() (bool, string) {
		u := srv.User("ada@example.com")
		return u["id"] == id && u["suspended"] == false && status().State == identityv1alpha1.AccountStateActive, fmt.Sprint(u)
	})
	if inserts := srv.Calls("directory.users.insert"); inserts != 1 {
		t.Fatalf("%d users inserted for one person", inserts)
	}
	if err := env.Client.Delete(context.Background(), user); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "deleted: the User's deletion deletes the Google user", func() (bool, string) {
		return srv.User(id) == nil, fmt.Sprint(srv.User(id))
	})
}
