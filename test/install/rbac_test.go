package install

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const operatorAccount = "system:serviceaccount:roster-system:roster-controller-manager"

// asOperator installs the rendered RBAC and admission policies for real and returns a
// client that acts as the operator's ServiceAccount.
func asOperator(t *testing.T) client.Client {
	t.Helper()
	ctx := context.Background()
	for _, obj := range render(t) {
		switch obj.GetKind() {
		case "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
			"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("install-test"), client.ForceOwnership); err != nil {
				t.Fatalf("installing %s %s: %v", obj.GetKind(), obj.GetName(), err)
			}
		}
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: operatorAccount,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:roster-system", "system:authenticated"}}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOperatorCannotListSecrets(t *testing.T) {
	op := asOperator(t)
	ctx := context.Background()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "app-token"}, StringData: map[string]string{"token": "t0ken-of-the-app"}}
	if err := env.Client.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if err := op.Get(ctx, client.ObjectKeyFromObject(secret), &corev1.Secret{}); err != nil {
		t.Fatalf("the operator cannot read a Secret by name: %v", err)
	}
	for _, opts := range [][]client.ListOption{nil, {client.InNamespace("default")}, {client.InNamespace("kube-system")}} {
		if err := op.List(ctx, &corev1.SecretList{}, opts...); !apierrors.IsForbidden(err) {
			t.Fatalf("the operator listed Secrets (%v): err %v, want Forbidden", opts, err)
		}
	}
	if err := op.List(ctx, &metav1.PartialObjectMetadataList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "SecretList"}}); !apierrors.IsForbidden(err) {
		t.Fatalf("the operator listed Secrets' metadata: err %v, want Forbidden", err)
	}
}

func TestOperatorWritesOnlyTheConfigMapsItOwns(t *testing.T) {
	op := asOperator(t)
	ctx := context.Background()
	owned := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "corp-scim-groups",
		Labels: map[string]string{"identity.roster.dev/directorysync": "corp"}}, Data: map[string]string{"g1": "{}"}}
	if err := op.Create(ctx, owned); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("the operator cannot create a ConfigMap that keeps a DirectorySync's inbound SCIM pushes: %v", err)
	}
	// The API server loads admission policies a moment after they are created.
	probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "policy-probe"}}
	deadline := time.Now().Add(30 * time.Second)
	for err := op.Create(ctx, probe.DeepCopy()); err == nil || apierrors.IsAlreadyExists(err); err = op.Create(ctx, probe.DeepCopy()) {
		if time.Now().After(deadline) {
			t.Fatal("the configmap-writes admission policy never took effect")
		}
		_ = env.Client.Delete(ctx, probe.DeepCopy())
		time.Sleep(100 * time.Millisecond)
	}
	journal := func(name string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"identity.roster.dev/journal": "true"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "identity.roster.dev/v1alpha1", Kind: "AppConnection", Name: "payroll", UID: "0d5c4b0e-7f49-4c1e-9a41-6f0f4f0e1c11"}}}}
	}
	record := journal("payroll-journal-0a1b2c")
	if err := op.Create(ctx, record); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("the operator cannot keep what it sent to a webhook receiver: %v", err)
	}
	if err := op.Delete(ctx, record); err != nil {
		t.Fatalf("the operator cannot forget what it sent to a webhook receiver: %v", err)
	}
	cases := []struct {
		reason string
		write  func() error
	}{
		{"a journal ConfigMap named after another AppConnection than its owner", func() error {
			return op.Create(ctx, journal("payments-journal-0a1b2c"))
		}},
		{"a ConfigMap in kube-system", func() error {
			return op.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "coredns-override"}})
		}},
		{"a ConfigMap labelled as Roster's under another name", func() error {
			return op.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "app-settings",
				Labels: map[string]string{"identity.roster.dev/directorysync": "corp"}}})
		}},
		{"taking over a ConfigMap Roster did not create", func() error {
			theirs := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "x-scim-groups"}}
			if err := env.Client.Create(ctx, theirs); err != nil && !apierrors.IsAlreadyExists(err) {
				return err
			}
			theirs.Labels = map[string]string{"identity.roster.dev/directorysync": "x"}
			return op.Update(ctx, theirs)
		}},
		{"deleting a ConfigMap it did not create", func() error {
			theirs := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "corp-settings",
				Labels: map[string]string{"identity.roster.dev/directorysync": "corp"}}}
			if err := env.Client.Create(ctx, theirs); err != nil && !apierrors.IsAlreadyExists(err) {
				return err
			}
			return op.Delete(ctx, theirs)
		}},
	}
	for _, tc := range cases {
		err := tc.write()
		if err == nil || !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) {
			t.Errorf("%s: err %v, want it refused", tc.reason, err)
		}
	}
	if err := op.Delete(ctx, owned); err != nil {
		t.Errorf("the operator cannot delete a ConfigMap it keeps a push in (the identity provider deleted the user): %v", err)
	}
}

func TestOperatorCannotDeleteLeases(t *testing.T) {
	op := asOperator(t)
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "roster-system", Name: "roster.identity.roster.dev"}}
	if err := op.Create(context.Background(), lease); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("the operator cannot take its leader election lease: %v", err)
	}
	if err := op.Delete(context.Background(), lease); !apierrors.IsForbidden(err) {
		t.Fatalf("the operator deleted a lease: err %v, want Forbidden", err)
	}
}
