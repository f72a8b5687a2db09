package install

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/memory"
	"github.com/rosterhq/roster/controllers"
	"github.com/rosterhq/roster/test/testenv"
)

// runOperator runs Roster's controllers as the operator's service account, with the
// permissions the rendered install gives it, until the test ends.
func runOperator(t *testing.T) {
	t.Helper()
	asOperator(t)
	runOperatorAs(t, rest.ImpersonationConfig{UserName: operatorAccount,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:roster-system", "system:authenticated"}}, nil)
}

// runOperatorAs runs Roster's controllers as someone, watching the given namespaces
// (every one when nil), until the test ends.
func runOperatorAs(t *testing.T, who rest.ImpersonationConfig, namespaces map[string]cache.Config) {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = who
	mgr, err := ctrl.NewManager(cfg, controllers.ManagerOptions(ctrl.Options{Scheme: env.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0", Cache: cache.Options{DefaultNamespaces: namespaces},
		// Each test runs an operator of its own in this process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)}}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	if err := controllers.Setup(ctx, mgr, controllers.Options{Registry: controllers.Connectors(memory.NewApps(), nil)}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// addDecision appends a decision with a JSON patch, as the documented command does.
func addDecision(ctx context.Context, c client.Client, ns, name, by string, decision identityv1alpha1.Decision) error {
	patch, _ := json.Marshal([]map[string]any{{"op": "add", "path": "/spec/decisions/-",
		"value": map[string]any{"by": by, "decision": decision}}})
	ar := &identityv1alpha1.AccessRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	return c.Patch(ctx, ar, client.RawPatch(types.JSONPatchType, patch))
}

func wantRefused(t *testing.T, what string, err error, message string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), message) {
		t.Fatalf("%s: got %v, want an error saying %q", what, err, message)
	}
}

// Decisions on access requests are the API server's to authenticate: a request names
// its real requester; the requester cannot approve; an editor who is not an approver is
// refused with a clear message, as is a decision in another's name; the manager, who
// holds no Roster permission of her own, approves through the right the operator gave
// her for this one request, and is recorded as the identity the API server saw; only
// the requester withdraws; decisions are never removed.
func TestAccessRequestDecisionsAreAuthenticated(t *testing.T) {
	ctx := context.Background()
	runOperator(t)
	ns := "requests"
	ada := &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"},
		Spec: identityv1alpha1.UserSpec{UserName: "ada@example.com", Manager: &identityv1alpha1.LocalObjectReference{Name: "grace"}}}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, ada,
		&identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "grace"}, Spec: identityv1alpha1.UserSpec{UserName: "grace@example.com"}},
		&identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wiki"},
			Spec: identityv1alpha1.AppConnectionSpec{Memory: &identityv1alpha1.MemoryConnector{}, Requestable: &identityv1alpha1.AppRequestPolicy{}}},
	}
	for _, who := range []struct{ user, role string }{
		{"ada@example.com", "roster-access-requester"}, {"linus@example.com", "roster-identity-editor-role"},
		{"root@example.com", "roster-access-request-approver"}, {"root@example.com", "roster-access-requester"},
	} {
		objs = append(objs, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: strings.Split(who.user, "@")[0] + "-" + who.role},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: who.role},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: who.user}}})
	}
	for _, obj := range objs {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	people := map[string]client.Client{}
	for _, name := range []string{"ada", "grace", "linus", "root"} {
		people[name] = as(t, name+"@example.com")
	}
	request := func(name, requester string) *identityv1alpha1.AccessRequest {
		return &identityv1alpha1.AccessRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: identityv1alpha1.AccessRequestSpec{UserRef: identityv1alpha1.LocalObjectReference{Name: "ada"}, Requester: requester,
				App: "wiki", Duration: metav1.Duration{Duration: time.Hour}, Justification: "on call this week"}}
	}

	// The API server loads admission policies a moment after they are created.
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err = people["ada"].Create(ctx, request("wiki-for-ada", "grace@example.com")); err != nil || time.Now().After(deadline) {
			break
		}
		_ = env.Client.Delete(ctx, request("wiki-for-ada", ""))
	}
	wantRefused(t, "a request in another's name", err, "set spec.requester to ada@example.com")
	if err := people["ada"].Create(ctx, request("wiki-for-ada", "ada@example.com")); err != nil {
		t.Fatalf("ada could not ask for access: %v", err)
	}
	ar := &identityv1alpha1.AccessRequest{}
	testenv.WaitFor(t, 60*time.Second, "the request waiting for grace", func() (bool, string) {
		_ = env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "wiki-for-ada"}, ar)
		return slices.Equal(ar.Status.Approvers, []string{"grace@example.com"}), fmt.Sprintf("%+v", ar.Status)
	})

	wantRefused(t, "the requester approving", addDecision(ctx, people["ada"], ns, "wiki-for-ada", "ada@example.com", identityv1alpha1.DecisionApprove),
		"ada@example.com may not decide on this request")
	wantRefused(t, "an editor approving", addDecision(ctx, people["linus"], ns, "wiki-for-ada", "linus@example.com", identityv1alpha1.DecisionApprove),
		"linus@example.com may not decide on this request: deciding needs the approve verb on accessrequests/approval")
	wantRefused(t, "a decision in the approver's name", addDecision(ctx, people["linus"], ns, "wiki-for-ada", "grace@example.com", identityv1alpha1.DecisionApprove),
		"set by to linus@example.com")
	if err := people["root"].Create(ctx, request("rooted", "root@example.com")); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "an admin approving her own request", addDecision(ctx, people["root"], ns, "rooted", "root@example.com", identityv1alpha1.DecisionApprove),
		"nobody approves a request they made")
	if err := people["grace"].Get(ctx, client.ObjectKey{Namespace: ns, Name: "rooted"}, &identityv1alpha1.AccessRequest{}); err == nil {
		t.Fatal("grace can read a request she does not approve")
	}

	if err := addDecision(ctx, people["grace"], ns, "wiki-for-ada", "grace@example.com", identityv1alpha1.DecisionApprove); err != nil {
		t.Fatalf("the manager could not approve: %v", err)
	}
	testenv.WaitFor(t, 60*time.Second, "the request active", func() (bool, string) {
		_ = env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "wiki-for-ada"}, ar)
		return ar.Status.Phase == identityv1alpha1.AccessRequestActive, fmt.Sprintf("%+v", ar.Status)
	})
	if d := ar.Status.Decisions; len(d) != 1 || d[0].By != "grace@example.com" || d[0].Decision != identityv1alpha1.DecisionApprove {
		t.Fatalf("recorded decisions: %+v", d)
	}

	wantRefused(t, "removing a decision", people["ada"].Patch(ctx, ar, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"decisions":[]}}`))),
		"decisions are only added, never changed or removed")
	wantRefused(t, "withdrawing another's request", addDecision(ctx, people["root"], ns, "wiki-for-ada", "root@example.com", identityv1alpha1.DecisionWithdraw),
		"only the requester withdraws a request")
	if err := addDecision(ctx, people["ada"], ns, "wiki-for-ada", "ada@example.com", identityv1alpha1.DecisionWithdraw); err != nil {
		t.Fatalf("the requester could not withdraw: %v", err)
	}
	testenv.WaitFor(t, 60*time.Second, "the request withdrawn", func() (bool, string) {
		_ = env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "wiki-for-ada"}, ar)
		return ar.Status.Phase == identityv1alpha1.AccessRequestWithdrawn, fmt.Sprintf("%+v", ar.Status)
	})
	wantRefused(t, "the manager approving after the request ended", addDecision(ctx, people["grace"], ns, "wiki-for-ada", "grace@example.com", identityv1alpha1.DecisionRevoke),
		"forbidden")
}
