package install

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// as is a client of a person the API server authenticates by their own certificate.
func as(t *testing.T, user string) client.Client {
	t.Helper()
	cfg, err := env.UserConfig(user)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// annotate sets (or, with "", removes) annotations with a merge patch.
func annotate(ctx context.Context, c client.Client, obj client.Object, annotations map[string]any) error {
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	return c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
}

// A plan held by the safety threshold is approved only by someone granted the approve
// verb, and only under their own user name: an editor cannot approve, an approver
// cannot approve in another's name, and editing an approved object otherwise stays
// possible for editors.
func TestOnlyAnApproverApprovesAHeldPlan(t *testing.T) {
	ctx := context.Background()
	asOperator(t) // installs the rendered RBAC and admission policies
	ns := "approvals"
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "slack"},
			Spec: identityv1alpha1.AppConnectionSpec{Memory: &identityv1alpha1.MemoryConnector{}}},
		&identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr"},
			Spec: identityv1alpha1.DirectorySyncSpec{HRIS: &identityv1alpha1.HRISSource{Format: "CSV",
				ConfigMapRef: &identityv1alpha1.ConfigMapKeySelector{Name: "people", Key: "people.csv"}}}},
	}
	for _, who := range []struct{ user, role string }{
		{"alice", "roster-identity-editor-role"}, {"bob", "roster-identity-editor-role"}, {"bob", "roster-plan-approver"},
	} {
		objs = append(objs, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: who.user + "-" + who.role},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: who.role},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: who.user}}})
	}
	for _, obj := range objs {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	alice, bob := as(t, "alice"), as(t, "bob")
	slack := &identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "slack"}}
	approve := func(by string) map[string]any {
		return map[string]any{identityv1alpha1.AnnotationApprovePlan: "3f9c2a1b7d04", identityv1alpha1.AnnotationPlanApprovedBy: by}
	}

	// The API server loads admission policies a moment after they are created.
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err = annotate(ctx, alice, slack, approve("alice")); err != nil || time.Now().After(deadline) {
			break
		}
		_ = annotate(ctx, env.Client, slack, map[string]any{identityv1alpha1.AnnotationApprovePlan: nil, identityv1alpha1.AnnotationPlanApprovedBy: nil})
	}
	if err == nil || !strings.Contains(err.Error(), "alice may not approve plans") {
		t.Fatalf("an editor approved a plan: %v", err)
	}
	if err := annotate(ctx, bob, slack, approve("alice")); err == nil || !strings.Contains(err.Error(), "set identity.roster.dev/plan-approved-by to bob") {
		t.Fatalf("an approver approved in another's name: %v", err)
	}
	if err := annotate(ctx, bob, slack, approve("bob")); err != nil {
		t.Fatalf("an approver could not approve: %v", err)
	}
	if err := annotate(ctx, alice, slack, map[string]any{identityv1alpha1.AnnotationPlanApprovedBy: "alice"}); err == nil {
		t.Fatal("an editor put her name on another's approval")
	}
	if err := annotate(ctx, alice, slack, map[string]any{"team": "it"}); err != nil {
		t.Fatalf("an editor could not edit an approved AppConnection: %v", err)
	}
	if err := annotate(ctx, alice, slack, map[string]any{identityv1alpha1.AnnotationApprovePlan: nil, identityv1alpha1.AnnotationPlanApprovedBy: nil}); err != nil {
		t.Fatalf("an editor could not withdraw an approval: %v", err)
	}
	hr := &identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr"}}
	if err := annotate(ctx, alice, hr, approve("alice")); err == nil || !strings.Contains(err.Error(), "directorysyncs/approval") {
		t.Fatalf("an editor approved a DirectorySync's plan: %v", err)
	}
	if err := annotate(ctx, bob, hr, approve("bob")); err != nil {
		t.Fatalf("an approver could not approve a DirectorySync's plan: %v", err)
	}
}
