package controllers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/test/githubapi"
)

const githubToken = "ghp_envtest-token-0123456789"

func TestGitHubJoinerMoverLeaverReturn(t *testing.T) {
	ns := namespace(t)
	srv, err := githubapi.Start(githubapi.Options{Org: "acme", Token: githubToken})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		for _, p := range srv.Problems() {
			t.Errorf("GitHub's description: %s", p)
		}
	})
	burst, writes := int32(100), int32(1000)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "github"}, StringData: map[string]string{"token": githubToken}},
		&identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "github"}, Spec: identityv1alpha1.AppConnectionSpec{
			GitHub: &identityv1alpha1.GitHubConnector{Organization: "acme", APIURL: srv.URL,
				TokenSecretRef: &identityv1alpha1.SecretKeySelector{Name: "github", Key: "token"}},
			RateLimit:   &identityv1alpha1.RateLimit{Requests: 1000, Burst: &burst, Writes: &writes},
			Deprovision: identityv1alpha1.DeprovisionPolicy{OnSuspend: identityv1alpha1.SuspendDeactivate, OnRemoval: identityv1alpha1.RemovalDeactivate},
		}},
		roleWithGrants(ns, "eng", `user.department == "eng"`, grant("github", "Platform")),
		roleWithGrants(ns, "ops", `user.department == "ops"`, grant("github", "Infra")))
	ada := newUser(ns, "ada", "eng")
	ada.Spec.Attributes = map[string]string{"github": "Ada-L"}
	create(t, ada, newUser(ns, "nologin", "eng"))
	status := func(name string) identityv1alpha1.UserAccount {
		return accountOf(get(t, ns, name, &identityv1alpha1.User{}), "github")
	}

	waitFor(t, "joiner: ada invited, in Platform, her status saying so", func() (bool, string) {
		state, role, _ := srv.Member("ada-l")
		a := status("ada")
		return state == "pending" && role == "member" && srv.TeamMembers("platform")["ada-l"] == "member" &&
			a.State == identityv1alpha1.AccountStateActive && strings.Contains(a.Message, "waiting for the person to accept"), fmt.Sprintf("%s %s %+v", state, role, a)
	})
	waitFor(t, "a person without a GitHub login is pending, with what to do", func() (bool, string) {
		a := status("nologin")
		return a.State == identityv1alpha1.AccountStatePending && strings.Contains(a.Message, `attributes["github"]`), fmt.Sprintf("%+v", a)
	})

	srv.Accept("ada-l")
	update(t, &identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "github"}}, func(c *identityv1alpha1.AppConnection) {
		metav1.SetMetaDataAnnotation(&c.ObjectMeta, identityv1alpha1.AnnotationResync, time.Now().Format(time.RFC3339Nano))
	})
	waitFor(t, "once she accepts, the next sync says nothing more of it", func() (bool, string) {
		a := status("ada")
		return a.State == identityv1alpha1.AccountStateActive && a.Message == "", fmt.Sprintf("%+v", a)
	})

	user := &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"}}
	update(t, user, func(u *identityv1alpha1.User) { u.Spec.Department = "ops" })
	waitFor(t, "mover: ada leaves Platform for Infra", func() (bool, string) {
		p, i := srv.TeamMembers("platform"), srv.TeamMembers("infra")
		return p["ada-l"] == "" && i["ada-l"] == "member", fmt.Sprint(p, i)
	})
	update(t, user, func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateSuspended })
	waitFor(t, "leaver: ada is removed from the organization", func() (bool, string) {
		state, _, _ := srv.Member("ada-l")
		return state == "" && len(srv.TeamMembers("infra")) == 0, state
	})
	update(t, user, func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateActive })
	waitFor(t, "return: ada is invited again, to Infra", func() (bool, string) {
		state, _, _ := srv.Member("ada-l")
		return state == "pending" && srv.TeamMembers("infra")["ada-l"] == "member", state
	})
}
