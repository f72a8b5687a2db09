package adversarial

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/memory"
	"github.com/rosterhq/roster/test/testenv"
)

func namespace(t *testing.T) string { t.Helper(); return env.Namespace(t) }

func create(t *testing.T, objs ...client.Object) { t.Helper(); env.Create(t, objs...) }

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	testenv.WaitFor(t, 90*time.Second, what, cond)
}

// scimApp declares an AppConnection to a SCIM app at url, with a bearer token.
func scimApp(ns, name, url string) []client.Object {
	return []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-token"}, StringData: map[string]string{"token": name + "-token-value"}},
		&identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: identityv1alpha1.AppConnectionSpec{SCIM: &identityv1alpha1.SCIMConnector{BaseURL: url + "/scim/v2",
				Auth: identityv1alpha1.SCIMAuth{Type: identityv1alpha1.SCIMAuthBearer, SecretRef: identityv1alpha1.LocalObjectReference{Name: name + "-token"}}}}},
	}
}

func export(ids ...string) string {
	csv := "id,firstName,lastName,email,department\n"
	for _, id := range ids {
		csv += fmt.Sprintf("%s,%s,Tester,%s@example.com,eng\n", id, id, id)
	}
	return csv
}

func hrSync(ns, name string, src *identityv1alpha1.HRISSource) *identityv1alpha1.DirectorySync {
	return &identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: identityv1alpha1.DirectorySyncSpec{HRIS: src}}
}

func countUsers(t *testing.T, ns, sync string) int {
	var users identityv1alpha1.UserList
	if err := env.Client.List(context.Background(), &users, client.InNamespace(ns), client.MatchingLabels{"identity.roster.dev/directorysync": sync}); err != nil {
		t.Fatal(err)
	}
	return len(users.Items)
}

func activeAccounts(app *memory.App) int {
	if app == nil {
		return 0
	}
	n := 0
	for _, a := range app.Accounts() {
		if a.Active {
			n++
		}
	}
	return n
}

// readyMessage is an AppConnection's Ready condition as "Status/Reason: message".
func readyMessage(t *testing.T, ns, name string) string {
	conn := &identityv1alpha1.AppConnection{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, conn); err != nil {
		t.Fatal(err)
	}
	c := meta.FindStatusCondition(conn.Status.Conditions, identityv1alpha1.ConditionReady)
	if c == nil {
		return ""
	}
	return fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
}

// push sends one request to the inbound SCIM server.
func push(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	status, _, answer := testenv.SCIMRequest(t, method, url, token, body)
	return status, answer
}
