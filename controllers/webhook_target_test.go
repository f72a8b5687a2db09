package controllers_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers"
	"github.com/rosterhq/roster/examples/webhook-receiver/receiver"
)

const webhookSecret = "whsec-0123456789abcdef0123456789"

// webhookApp starts the reference receiver on loopback and returns an AppConnection for it.
func webhookApp(t *testing.T, ns, name string, noList bool) (*receiver.Receiver, *identityv1alpha1.AppConnection) {
	t.Helper()
	r, err := receiver.New(receiver.Options{Secrets: [][]byte{[]byte(webhookSecret)}, NoList: noList, PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-signing"}, StringData: map[string]string{"secret": webhookSecret}})
	burst := int32(100)
	return r, &identityv1alpha1.AppConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: identityv1alpha1.AppConnectionSpec{
			Webhook: &identityv1alpha1.WebhookConnector{URL: srv.URL + "/roster",
				SigningSecretRef: identityv1alpha1.LocalObjectReference{Name: name + "-signing"}},
			RateLimit:   &identityv1alpha1.RateLimit{Requests: 1000, Burst: &burst},
			Deprovision: identityv1alpha1.DeprovisionPolicy{OnSuspend: identityv1alpha1.SuspendDeactivate, OnRemoval: identityv1alpha1.RemovalDeactivate},
		},
	}
}

// receiverAccount is the receiver's account of a userName, and the groups it is in.
func receiverAccount(r *receiver.Receiver, userName string) (receiver.Account, []string, bool) {
	for _, a := range r.Accounts() {
		if a.Attributes["userName"] == userName {
			var groups []string
			for _, g := range r.Groups() {
				if slices.Contains(g.Members, a.ID) {
					groups = append(groups, g.DisplayName)
				}
			}
			slices.Sort(groups)
			return a, groups, true
		}
	}
	return receiver.Account{}, nil, false
}

func TestWebhookJoinerMoverLeaverReturn(t *testing.T) {
	for _, noList := range []bool{false, true} {
		t.Run(fmt.Sprintf("receiver that cannot list: %v", noList), func(t *testing.T) {
			ns := namespace(t)
			r, conn := webhookApp(t, ns, "payroll", noList)
			create(t, conn,
				roleWithGrants(ns, "eng", `user.department == "eng"`, grant("payroll", "engineering")),
				roleWithGrants(ns, "ops", `user.department == "ops"`, grant("payroll", "operations")),
				newUser(ns, "ada", "eng"), newUser(ns, "grace", "eng"), newUser(ns, "linus", "eng"))
			user := &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"}}
			expect := func(what string, active bool, groups ...string) receiver.Account {
				t.Helper()
				var got receiver.Account
				waitFor(t, what, func() (bool, string) {
					a, in, ok := receiverAccount(r, "ada@example.com")
					got = a
					return ok && a.Active == active && slices.Equal(in, groups), fmt.Sprintf("%+v in %v", a, in)
				})
				return got
			}

			joined := expect("joiner: ada's account is active, in engineering", true, "engineering")
			waitFor(t, "ada's status shows the account", func() (bool, string) {
				u := get(t, ns, "ada", &identityv1alpha1.User{})
				return accountState(u, "payroll") == identityv1alpha1.AccountStateActive, fmt.Sprint(u.Status.Accounts)
			})
			update(t, user, func(u *identityv1alpha1.User) { u.Spec.Department = "ops" })
			if moved := expect("mover: ada is in operations instead", true, "operations"); moved.ID != joined.ID {
				t.Fatalf("moving made a new account %s (was %s)", moved.ID, joined.ID)
			}
			update(t, user, func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateSuspended })
			expect("leaver: ada's account is deactivated", false, "operations")
			update(t, user, func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateActive })
			if back := expect("return: ada's account is active again", true, "operations"); back.ID != joined.ID {
				t.Fatalf("the return made a new account %s (was %s)", back.ID, joined.ID)
			}
			waitFor(t, "ada's status shows the account active again", func() (bool, string) {
				u := get(t, ns, "ada", &identityv1alpha1.User{})
				return accountState(u, "payroll") == identityv1alpha1.AccountStateActive, fmt.Sprint(u.Status.Accounts)
			})
			waitFor(t, "the AppConnection is Ready with 3 managed accounts", func() (bool, string) {
				c := get(t, ns, "payroll", &identityv1alpha1.AppConnection{})
				ok, why := ready(c.Status.Conditions)
				return ok && c.Status.Accounts.Managed == 3, fmt.Sprintf("%s %+v", why, c.Status.Accounts)
			})
			if creates := len(r.Accounts()); creates != 3 {
				t.Fatalf("the receiver holds %d accounts, want 3", creates)
			}
			if noList {
				journalSurvivesARebuild(t, ns, r)
			}
		})
	}
}

// journalSurvivesARebuild: what was sent to a receiver that cannot list is kept in
// ConfigMaps owned by the AppConnection; a new connector (a spec change rebuilds it, as
// a restart does) reads them back and sends nothing again.
func journalSurvivesARebuild(t *testing.T, ns string, r *receiver.Receiver) {
	t.Helper()
	var cms corev1.ConfigMapList
	if err := env.Client.List(context.Background(), &cms, client.InNamespace(ns), client.HasLabels{controllers.LabelJournal}); err != nil {
		t.Fatal(err)
	}
	if len(cms.Items) != 5 { // 3 accounts, 2 groups
		t.Fatalf("%d journal ConfigMaps, want one for each of 3 accounts and 2 groups", len(cms.Items))
	}
	for _, cm := range cms.Items {
		if len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].Name != "payroll" {
			t.Fatalf("journal ConfigMap %s is owned by %v, want the AppConnection", cm.Name, cm.OwnerReferences)
		}
	}
	applied := r.Applied()
	before := time.Now().Truncate(time.Second)
	conn := &identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payroll"}}
	update(t, conn, func(c *identityv1alpha1.AppConnection) {
		c.Spec.Webhook.RequestTimeout = &metav1.Duration{Duration: 20 * time.Second}
	})
	waitFor(t, "the rebuilt connector has made a full sync", func() (bool, string) {
		c := get(t, ns, "payroll", &identityv1alpha1.AppConnection{})
		ok, why := ready(c.Status.Conditions)
		synced := c.Status.LastFullSyncTime != nil && !c.Status.LastFullSyncTime.Time.Before(before)
		return ok && synced && c.Status.ObservedGeneration == conn.Generation, fmt.Sprintf("%s, last full sync %v", why, c.Status.LastFullSyncTime)
	})
	if r.Applied() != applied {
		t.Fatalf("the receiver was sent %d changes again after the connector was rebuilt", r.Applied()-applied)
	}
}
