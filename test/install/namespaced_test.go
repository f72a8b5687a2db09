package install

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/test/testenv"
)

// A namespaced install: the chart's watchNamespaces binds the operator's role in those
// namespaces only and passes --watch-namespaces; an operator so bound, watching one
// namespace, provisions its people and leaves another namespace's alone.
func TestANamespacedInstallManagesItsNamespacesOnly(t *testing.T) {
	ctx := context.Background()
	chart := helm(t, "template", "roster", "charts/roster", "-n", "roster-system", "--set", "watchNamespaces={team-a}")
	objs := byKindAndName(decodeDocs(t, []byte(chart)))
	if _, cluster := objs["ClusterRoleBinding/roster-manager-rolebinding"]; cluster {
		t.Error("a namespaced install binds the operator's role cluster-wide")
	}
	if b, ok := objs["RoleBinding/roster-manager-rolebinding"]; !ok || b.GetNamespace() != "team-a" {
		t.Errorf("no RoleBinding of the operator's role in team-a: %v", b)
	}
	if !strings.Contains(chart, "- --watch-namespaces=team-a") {
		t.Error("the Deployment does not pass --watch-namespaces")
	}

	asOperator(t) // the ClusterRoles
	const operator = "namespaced-operator"
	for _, ns := range []string{"team-a", "team-b"} {
		objs := []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
			&identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wiki"},
				Spec: identityv1alpha1.AppConnectionSpec{Memory: &identityv1alpha1.MemoryConnector{}}},
			&identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"}, Spec: identityv1alpha1.UserSpec{UserName: "ada@" + ns + ".example"}},
			&identityv1alpha1.AppAssignment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada-wiki"},
				Spec: identityv1alpha1.AppAssignmentSpec{UserRef: &identityv1alpha1.LocalObjectReference{Name: "ada"}, App: "wiki"}}}
		if ns == "team-a" {
			objs = append(objs, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "roster-manager-rolebinding"},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "roster-manager-role"},
				Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: operator}}})
		}
		for _, o := range objs {
			if err := env.Client.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	runOperatorAs(t, rest.ImpersonationConfig{UserName: operator, Groups: []string{"system:authenticated"}},
		map[string]cache.Config{"team-a": {}})
	testenv.WaitFor(t, 60*time.Second, "team-a's ada provisioned", func() (bool, string) {
		u := &identityv1alpha1.User{}
		_ = env.Client.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "ada"}, u)
		return len(u.Status.Accounts) == 1 && u.Status.Accounts[0].State == identityv1alpha1.AccountStateActive, fmt.Sprintf("%+v", u.Status)
	})
	other := &identityv1alpha1.User{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "team-b", Name: "ada"}, other); err != nil || other.Status.Phase != "" || len(other.Finalizers) > 0 {
		t.Fatalf("the operator touched team-b: %+v %v", other, err)
	}
}
