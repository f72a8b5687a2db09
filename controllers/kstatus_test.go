package controllers_test

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/test/slapd"
)

// kstatusOf reads an object back from the API server and computes its kstatus. An
// object the controllers have not answered yet (absent, or no Ready condition for its
// generation) has no kstatus worth asserting: kstatus calls an object without status
// Current.
func kstatusOf(t *testing.T, ns, kind, name string) (st status.Status, msg string, answered bool) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: "identity.roster.dev", Version: "v1alpha1", Kind: kind})
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		if apierrors.IsNotFound(err) {
			return "", "not created yet", false
		}
		t.Fatal(err)
	}
	if !reconciledAtGeneration(u) {
		return "", "not reconciled at its generation yet", false
	}
	res, err := status.Compute(u)
	if err != nil {
		t.Fatal(err)
	}
	return res.Status, res.Message, true
}

func reconciledAtGeneration(u *unstructured.Unstructured) bool {
	observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conditions {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" {
			return observed == u.GetGeneration()
		}
	}
	return false
}

func expectKstatus(t *testing.T, ns, kind, name string, want status.Status) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s %s is %s", kind, name, want), func() (bool, string) {
		got, msg, answered := kstatusOf(t, ns, kind, name)
		return answered && got == want, fmt.Sprintf("%s: %s", got, msg)
	})
}

// TestKstatusOfEveryKind: kstatus says Current for converged objects, InProgress while
// they converge and Failed when they are Stalled, on objects after real reconciles.
func TestKstatusOfEveryKind(t *testing.T) {
	ns := namespace(t)
	create(t, memoryConnection(ns, "memapp"), newUser(ns, "ada", "eng"),
		roleWithGrants(ns, "eng", `user.department == "eng"`, grant("memapp")))
	expectKstatus(t, ns, "User", "ada", status.CurrentStatus)
	expectKstatus(t, ns, "Role", "eng", status.CurrentStatus)
	expectKstatus(t, ns, "AppAssignment", "eng-memapp", status.CurrentStatus)
	expectKstatus(t, ns, "AppConnection", "memapp", status.CurrentStatus)

	// Converging: a paused app holds the work of its Users and assignments.
	paused := memoryConnection(ns, "paused")
	paused.Annotations = map[string]string{identityv1alpha1.AnnotationPaused: "true"}
	create(t, paused, newUser(ns, "grace", "ops"), &identityv1alpha1.AppAssignment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "grace-paused"},
		Spec:       identityv1alpha1.AppAssignmentSpec{UserRef: &identityv1alpha1.LocalObjectReference{Name: "grace"}, App: "paused"},
	})
	expectKstatus(t, ns, "User", "grace", status.InProgressStatus)
	expectKstatus(t, ns, "AppAssignment", "grace-paused", status.InProgressStatus)
	expectKstatus(t, ns, "AppConnection", "paused", status.InProgressStatus)
	// A grant whose AppAssignment name is taken by someone else's is retried.
	create(t, &identityv1alpha1.AppAssignment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ops-memapp"},
		Spec:       identityv1alpha1.AppAssignmentSpec{UserRef: &identityv1alpha1.LocalObjectReference{Name: "grace"}, App: "memapp"},
	}, &identityv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other"}, Spec: identityv1alpha1.RoleSpec{Members: identityv1alpha1.RoleMembers{Users: []string{"grace"}}}})
	other := get(t, ns, "other", &identityv1alpha1.Role{})
	update(t, &identityv1alpha1.AppAssignment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ops-memapp"}}, func(a *identityv1alpha1.AppAssignment) {
		a.OwnerReferences = []metav1.OwnerReference{{APIVersion: "identity.roster.dev/v1alpha1", Kind: "Role", Name: "other", UID: other.UID, Controller: ptr(true)}}
	})
	create(t, roleWithGrants(ns, "ops", `user.department == "ops"`, grant("memapp")))
	expectKstatus(t, ns, "Role", "ops", status.InProgressStatus)

	// Stalled: a person must act.
	twin := newUser(ns, "ada-twin", "eng")
	twin.Spec.UserName = "ADA@example.com"
	create(t, twin, roleWithGrants(ns, "broken", `user.department ==`))
	app := newSCIMApp(t)
	create(t, scimConnection(t, app, ns, "badtoken", "not-the-token"))
	expectKstatus(t, ns, "User", "ada-twin", status.FailedStatus)
	expectKstatus(t, ns, "Role", "broken", status.FailedStatus)
	expectKstatus(t, ns, "AppConnection", "badtoken", status.FailedStatus)

	// DirectorySync: Current when synced, InProgress while its directory cannot be
	// reached, Failed when it refuses the credentials.
	srv := slapd.Start(t)
	srv.AddPerson(t, "linus", "Linus", "Torvalds", "ops")
	ldapSync(t, ns, srv, nil)
	expectKstatus(t, ns, "DirectorySync", "corp", status.CurrentStatus)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wrong"}, StringData: map[string]string{"password": "wrong"}})
	for name, change := range map[string]func(*identityv1alpha1.LDAPSource){
		"unreachable": func(s *identityv1alpha1.LDAPSource) { s.URL = "ldap://" + freeAddr() },
		"refused":     func(s *identityv1alpha1.LDAPSource) { s.PasswordSecretRef.Name = "wrong" },
	} {
		ds := &identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: identityv1alpha1.DirectorySyncSpec{
			LDAP: get(t, ns, "corp", &identityv1alpha1.DirectorySync{}).Spec.LDAP.DeepCopy()}}
		change(ds.Spec.LDAP)
		create(t, ds)
	}
	expectKstatus(t, ns, "DirectorySync", "unreachable", status.InProgressStatus)
	expectKstatus(t, ns, "DirectorySync", "refused", status.FailedStatus)
}

func ptr[T any](v T) *T { return &v }
