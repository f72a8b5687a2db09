package install

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/test/testenv"
)

// A DirectorySync preview can map any attribute of the source's records, so making one
// needs the preview verb on that DirectorySync: someone allowed only to create
// previews is refused by the API server, with the reason; a CI job bound to the
// directory-previewer ClusterRole, and an editor, make one, and the operator, under its
// rendered RBAC, answers and lets it be deleted.
func TestDirectoryPreviewsNeedThePreviewVerb(t *testing.T) {
	ctx := context.Background()
	runOperator(t)
	ns := "previews"
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "people"},
			Data: map[string]string{"people.csv": "id,email,department,salary\nE1,ada@example.com,eng,120000\n"}},
		&identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr"},
			Spec: identityv1alpha1.DirectorySyncSpec{HRIS: &identityv1alpha1.HRISSource{Format: "CSV",
				ConfigMapRef: &identityv1alpha1.ConfigMapKeySelector{Name: "people", Key: "people.csv"}}}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "preview-objects-only"}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{identityv1alpha1.GroupVersion.Group}, Resources: []string{"directorysyncpreviews"}, Verbs: []string{"create", "get", "delete"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "linus"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "preview-objects-only"},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "linus"}}},
	}
	for _, who := range []struct{ user, role string }{{"ci", "roster-directory-previewer"}, {"alice", "roster-identity-editor-role"}} {
		objs = append(objs, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: who.user},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: who.role},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: who.user}}})
	}
	for _, obj := range objs {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	salaries := func(name string) *identityv1alpha1.DirectorySyncPreview {
		return &identityv1alpha1.DirectorySyncPreview{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: identityv1alpha1.DirectorySyncPreviewSpec{DirectorySyncName: "hr",
				Mapping: []identityv1alpha1.ExpressionMapping{{Target: "attributes.salary", Expression: "record.salary"}}}}
	}

	// The API server loads admission policies a moment after they are created.
	linus := as(t, "linus")
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err = linus.Create(ctx, salaries("by-linus")); err != nil || time.Now().After(deadline) {
			break
		}
		_ = env.Client.Delete(ctx, salaries("by-linus"))
	}
	wantRefused(t, "a preview without the preview verb", err, "linus may not preview changes to the DirectorySync hr: previewing needs the preview verb on directorysyncs")

	for _, who := range []string{"ci", "alice"} {
		c := as(t, who)
		p := salaries("by-" + who)
		if err := c.Create(ctx, p); err != nil {
			t.Fatalf("%s could not preview: %v", who, err)
		}
		testenv.WaitFor(t, 60*time.Second, "the operator's answer to "+who, func() (bool, string) {
			_ = c.Get(ctx, client.ObjectKeyFromObject(p), p)
			return meta.IsStatusConditionTrue(p.Status.Conditions, identityv1alpha1.ConditionReady) && p.Status.Counts.Updated == 1,
				fmt.Sprintf("%+v", p.Status)
		})
		if patch := p.Status.Users[0].Patch; !strings.Contains(patch, `"salary":"120000"`) {
			t.Errorf("the answer to %s: %s", who, patch)
		}
		if err := c.Delete(ctx, p); err != nil {
			t.Errorf("%s could not delete the preview: %v", who, err)
		}
	}
}
