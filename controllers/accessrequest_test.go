package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/controllers"
)

// requestRetention is how long the tests' operator keeps ended requests.
const requestRetention = 20 * time.Second

// requestableApp is a memory app people may ask for, with the eng group, approved by the
// person's manager.
func requestableApp(ns, name string, policy identityv1alpha1.RequestPolicy) *identityv1alpha1.AppConnection {
	conn := memoryConnection(ns, name)
	conn.Spec.Requestable = &identityv1alpha1.AppRequestPolicy{RequestPolicy: policy, Groups: []string{"eng"}}
	return conn
}

func accessRequest(ns, name, user, app string, d time.Duration, groups ...string) *identityv1alpha1.AccessRequest {
	return &identityv1alpha1.AccessRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: identityv1alpha1.AccessRequestSpec{UserRef: identityv1alpha1.LocalObjectReference{Name: user},
			Requester: user + "@example.com", App: app, Entitlements: identityv1alpha1.Entitlements{Groups: groups},
			Duration: metav1.Duration{Duration: d}, Justification: "incident 4711"}}
}

// decide adds a decision as the admission policy would let it through.
func decide(t *testing.T, ns, name, by string, decision identityv1alpha1.Decision) {
	t.Helper()
	update(t, &identityv1alpha1.AccessRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, func(ar *identityv1alpha1.AccessRequest) {
		ar.Spec.Decisions = append(ar.Spec.Decisions, identityv1alpha1.AccessDecision{By: by, Decision: decision})
	})
}

func waitForPhase(t *testing.T, ns, name string, phase identityv1alpha1.AccessRequestPhase) *identityv1alpha1.AccessRequest {
	t.Helper()
	ar := &identityv1alpha1.AccessRequest{}
	waitFor(t, fmt.Sprintf("request %s %s", name, phase), func() (bool, string) {
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ar); err != nil {
			return false, err.Error()
		}
		_, msg := ready(ar.Status.Conditions)
		return ar.Status.Phase == phase, fmt.Sprintf("phase %s, %s", ar.Status.Phase, msg)
	})
	return ar
}

// accountIn is the app's account of a userName, if any.
func accountIn(ns, app, userName string) (connectors.Account, bool) {
	if a := memoryApp(ns, app); a != nil {
		return memoryAccount(a, userName)
	}
	return connectors.Account{}, false
}

// A request waits for the person's manager, who alone is given the right to decide on
// it; the manager's approval grants the app with a time-bound AppAssignment the request
// owns, and at expiry the account is deactivated and the approver's right taken back.
func TestAManagerApprovesAndTheAccessExpires(t *testing.T) {
	ns := namespace(t)
	ada, grace := newUser(ns, "ada", "eng"), newUser(ns, "grace", "eng")
	ada.Spec.Manager = &identityv1alpha1.LocalObjectReference{Name: "grace"}
	create(t, grace, ada, requestableApp(ns, "wiki", identityv1alpha1.RequestPolicy{}),
		accessRequest(ns, "ada-wiki", "ada", "wiki", 6*time.Second, "eng"))

	ar := waitForPhase(t, ns, "ada-wiki", identityv1alpha1.AccessRequestPending)
	if c := stalledCondition(ar.Status.Conditions); c == nil || c.Reason != identityv1alpha1.ReasonAwaitingApproval ||
		!strings.Contains(c.Message, "approve with: kubectl patch accessrequest -n "+ns+" ada-wiki") {
		t.Fatalf("a pending request's Stalled condition: %+v", c)
	}
	if !slices.Equal(ar.Status.Approvers, []string{"grace@example.com"}) || ar.Status.Approvals != "0/1" || ar.Status.UserName != "ada@example.com" {
		t.Fatalf("approvers %v, approvals %q, userName %q", ar.Status.Approvers, ar.Status.Approvals, ar.Status.UserName)
	}
	binding := get(t, ns, "roster-access-request-ada-wiki", &rbacv1.RoleBinding{})
	if len(binding.Subjects) != 1 || binding.Subjects[0].Name != "grace@example.com" || !metav1.IsControlledBy(binding, ar) {
		t.Fatalf("approver binding: %+v", binding)
	}
	role := get(t, ns, "roster-access-request-ada-wiki", &rbacv1.Role{})
	if len(role.Rules) != 2 || !slices.Equal(role.Rules[0].ResourceNames, []string{"ada-wiki"}) || role.Rules[0].Verbs[0] != "approve" {
		t.Fatalf("approver role: %+v", role.Rules)
	}
	if _, found := accountIn(ns, "wiki", "ada@example.com"); found {
		t.Fatal("an account exists before approval")
	}

	decide(t, ns, "ada-wiki", "grace@example.com", identityv1alpha1.DecisionApprove)
	ar = waitForPhase(t, ns, "ada-wiki", identityv1alpha1.AccessRequestActive)
	if d := ar.Status.Decisions; len(d) != 1 || d[0].By != "grace@example.com" || d[0].Decision != identityv1alpha1.DecisionApprove {
		t.Fatalf("decisions: %+v", d)
	}
	asg := get(t, ns, "ada-wiki.wiki", &identityv1alpha1.AppAssignment{})
	if !metav1.IsControlledBy(asg, ar) || !asg.Spec.ValidUntil.Equal(ar.Status.ExpiryTime) || !asg.Spec.ValidFrom.Equal(ar.Status.ApprovedTime) ||
		!slices.Equal(asg.Spec.Groups, []string{"eng"}) {
		t.Fatalf("assignment: %+v (request approved %v, expires %v)", asg.Spec, ar.Status.ApprovedTime, ar.Status.ExpiryTime)
	}
	if acc, found := accountIn(ns, "wiki", "ada@example.com"); !found || !acc.Active {
		t.Fatalf("ada's wiki account while the request is active: %+v", acc)
	}
	expiry := ar.Status.ExpiryTime.Time

	waitFor(t, "ada's wiki account deactivated", func() (bool, string) {
		acc, _ := accountIn(ns, "wiki", "ada@example.com")
		return !acc.Active, fmt.Sprintf("%+v", acc)
	})
	if now := time.Now(); now.Before(expiry) {
		t.Fatalf("the account was deactivated at %v, before the expiry %v", now, expiry)
	}
	t.Logf("deactivated %v after the expiry", time.Since(expiry))
	ar = waitForPhase(t, ns, "ada-wiki", identityv1alpha1.AccessRequestExpired)
	if !ar.Status.EndTime.Equal(ar.Status.ExpiryTime) {
		t.Fatalf("ended %v, expiry %v", ar.Status.EndTime, ar.Status.ExpiryTime)
	}
	assertEvents(t, ns, "ada-wiki", "AccessPending", "AccessApproved", "AccessActive", "AccessExpired")
	if msg := eventMessage(t, ns, "ada-wiki", "AccessApproved"); msg != "wiki for ada, 6s approved by grace@example.com" {
		t.Errorf("the approval's Event says %q", msg)
	}
	for _, obj := range []client.Object{&rbacv1.RoleBinding{}, &rbacv1.Role{}} {
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "roster-access-request-ada-wiki"}, obj); !apierrors.IsNotFound(err) {
			t.Errorf("the approvers' %T is still there after the request ended: %v", obj, err)
		}
	}
}

// An approver's Revoke ends granted access early; the requester's Withdraw takes back a
// request; a decision made by the requester for themselves, or a withdrawal by someone
// else, is recorded and not counted.
func TestRevokeWithdrawAndSelfApproval(t *testing.T) {
	ns := namespace(t)
	ada, grace := newUser(ns, "ada", "eng"), newUser(ns, "grace", "eng")
	ada.Spec.Manager = &identityv1alpha1.LocalObjectReference{Name: "grace"}
	create(t, grace, ada, requestableApp(ns, "wiki", identityv1alpha1.RequestPolicy{}),
		accessRequest(ns, "revoked", "ada", "wiki", time.Hour), accessRequest(ns, "withdrawn", "ada", "wiki", time.Hour))

	waitForPhase(t, ns, "revoked", identityv1alpha1.AccessRequestPending)
	decide(t, ns, "revoked", "ada@example.com", identityv1alpha1.DecisionApprove)
	decide(t, ns, "revoked", "grace@example.com", identityv1alpha1.DecisionApprove)
	ar := waitForPhase(t, ns, "revoked", identityv1alpha1.AccessRequestActive)
	if d := ar.Status.Decisions[0]; d.By != "ada@example.com" || !strings.Contains(d.Comment, "not counted: nobody approves a request they made") {
		t.Fatalf("the self-approval was recorded as %+v", d)
	}
	decide(t, ns, "revoked", "grace@example.com", identityv1alpha1.DecisionRevoke)
	ar = waitForPhase(t, ns, "revoked", identityv1alpha1.AccessRequestRevoked)
	if _, msg := ready(ar.Status.Conditions); !strings.Contains(msg, "revoked by grace@example.com") {
		t.Fatalf("condition: %s", msg)
	}
	waitFor(t, "the revoked account deactivated", func() (bool, string) {
		acc, _ := accountIn(ns, "wiki", "ada@example.com")
		return !acc.Active, fmt.Sprintf("%+v", acc)
	})
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "revoked.wiki"}, &identityv1alpha1.AppAssignment{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the revoked request's assignment: %v", err)
	}

	// Without the admission policy anyone could pose as Roster's auto-approval: it is not
	// taken for one.
	decide(t, ns, "withdrawn", controllers.AutoApprovedBy, identityv1alpha1.DecisionApprove)
	decide(t, ns, "withdrawn", "grace@example.com", identityv1alpha1.DecisionWithdraw)
	decide(t, ns, "withdrawn", "ada@example.com", identityv1alpha1.DecisionWithdraw)
	ar = waitForPhase(t, ns, "withdrawn", identityv1alpha1.AccessRequestWithdrawn)
	if d := ar.Status.Decisions; len(d) != 3 || d[0].By != "not-a-person:"+controllers.AutoApprovedBy ||
		!strings.HasPrefix(d[1].Comment, "not counted: only the requester") || d[2].By != "ada@example.com" || ar.Status.ApprovedTime != nil {
		t.Fatalf("decisions: %+v", d)
	}
}

// The policy refuses what it does not offer and durations over its longest; a Role's
// members approve when the policy names the Role; two approvals are needed when it
// says so; a rule approves without a person.
func TestRequestPolicies(t *testing.T) {
	ns := namespace(t)
	ada, linus, grace, ken := newUser(ns, "ada", "eng"), newUser(ns, "linus", "ops"), newUser(ns, "grace", "sec"), newUser(ns, "ken", "sec")
	week := metav1.Duration{Duration: 168 * time.Hour}
	create(t, ada, linus, grace, ken, roleWithGrants(ns, "security", `user.department == "sec"`),
		requestableApp(ns, "wiki", identityv1alpha1.RequestPolicy{Approvals: 2, MaxDuration: &week,
			Approvers:   identityv1alpha1.RequestApprovers{Manager: identityv1alpha1.ManagerNone, Roles: []string{"security"}},
			AutoApprove: `request.duration <= duration("1h") && user.department == "eng" && request.groups.size() == 0`}),
		accessRequest(ns, "not-offered", "ada", "wiki", time.Hour, "admins"),
		accessRequest(ns, "too-long", "ada", "wiki", 169*time.Hour),
		accessRequest(ns, "auto", "ada", "wiki", time.Hour),
		accessRequest(ns, "two", "linus", "wiki", time.Hour))

	ar := waitForPhase(t, ns, "not-offered", identityv1alpha1.AccessRequestDenied)
	if _, msg := ready(ar.Status.Conditions); msg != "Ready=True Denied: refused: the policy does not offer group admins" {
		t.Fatalf("not offered: %s", msg)
	}
	ar = waitForPhase(t, ns, "too-long", identityv1alpha1.AccessRequestDenied)
	if _, msg := ready(ar.Status.Conditions); !strings.Contains(msg, "169h0m0s is longer than the 168h0m0s the policy allows") {
		t.Fatalf("too long: %s", msg)
	}
	ar = waitForPhase(t, ns, "auto", identityv1alpha1.AccessRequestActive)
	if d := ar.Status.Decisions; len(d) != 1 || d[0].By != controllers.AutoApprovedBy || ar.Status.Approvals != "auto" {
		t.Fatalf("auto-approval: %+v", d)
	}

	ar = waitForPhase(t, ns, "two", identityv1alpha1.AccessRequestPending)
	if !slices.Equal(ar.Status.Approvers, []string{"grace@example.com", "ken@example.com"}) {
		t.Fatalf("the security Role's members should approve, not %v", ar.Status.Approvers)
	}
	decide(t, ns, "two", "grace@example.com", identityv1alpha1.DecisionApprove)
	decide(t, ns, "two", "grace@example.com", identityv1alpha1.DecisionApprove)
	waitFor(t, "grace's approvals counted once", func() (bool, string) {
		ar = get(t, ns, "two", &identityv1alpha1.AccessRequest{})
		return len(ar.Status.Decisions) == 2 && ar.Status.Approvals == "1/2" && ar.Status.Phase == identityv1alpha1.AccessRequestPending,
			fmt.Sprintf("%s %s %+v", ar.Status.Phase, ar.Status.Approvals, ar.Status.Decisions)
	})
	decide(t, ns, "two", "ken@example.com", identityv1alpha1.DecisionApprove)
	waitForPhase(t, ns, "two", identityv1alpha1.AccessRequestActive)
}

// Approved access to an app in Plan mode is planned, not made: the request stays
// Granting and says why.
func TestARequestForAnAppInPlanModeStaysGranting(t *testing.T) {
	ns := namespace(t)
	conn := requestableApp(ns, "wiki", identityv1alpha1.RequestPolicy{AutoApprove: "true"})
	conn.Spec.Mode = identityv1alpha1.ModePlan
	create(t, newUser(ns, "ada", "eng"), conn, accessRequest(ns, "ada-wiki", "ada", "wiki", time.Hour))
	ar := waitForPhase(t, ns, "ada-wiki", identityv1alpha1.AccessRequestApproved)
	waitFor(t, "the request says why it is not active", func() (bool, string) {
		ar = get(t, ns, "ada-wiki", &identityv1alpha1.AccessRequest{})
		_, msg := ready(ar.Status.Conditions)
		return strings.Contains(msg, "Granting: wiki: ") && strings.Contains(msg, "Plan mode"), msg
	})
	if c := meta.FindStatusCondition(ar.Status.Conditions, identityv1alpha1.ConditionReady); c.Reason != identityv1alpha1.ReasonGranting {
		t.Fatalf("reason %s", c.Reason)
	}
}

// An ended request is kept for the retention period, then deleted with what it owns.
func TestEndedRequestsAreKeptThenCleaned(t *testing.T) {
	ns := namespace(t)
	create(t, newUser(ns, "ada", "eng"), requestableApp(ns, "wiki", identityv1alpha1.RequestPolicy{}),
		accessRequest(ns, "ada-wiki", "ada", "wiki", time.Hour, "admins"))
	ar := waitForPhase(t, ns, "ada-wiki", identityv1alpha1.AccessRequestDenied)
	waitFor(t, "the denied request deleted after the retention", func() (bool, string) {
		err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "ada-wiki"}, &identityv1alpha1.AccessRequest{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if kept := time.Since(ar.Status.EndTime.Time); kept < requestRetention {
		t.Fatalf("deleted %s after it ended, before the retention of %s", kept, requestRetention)
	}
}

// A Role asked for gives its grants, each as an AppAssignment for the person; a denial
// ends the request before anything is granted.
func TestARoleIsRequested(t *testing.T) {
	ns := namespace(t)
	ada, grace := newUser(ns, "ada", "eng"), newUser(ns, "grace", "eng")
	oncall := roleWithGrants(ns, "oncall", `user.department == "nobody"`, grant("pager"), grant("wiki", "oncall"))
	oncall.Spec.Requestable = &identityv1alpha1.RequestPolicy{Approvers: identityv1alpha1.RequestApprovers{Users: []string{"grace"}}}
	asRole := func(name string) *identityv1alpha1.AccessRequest {
		ar := accessRequest(ns, name, "ada", "", time.Hour)
		ar.Spec.RoleRef = &identityv1alpha1.LocalObjectReference{Name: "oncall"}
		return ar
	}
	create(t, grace, ada, memoryConnection(ns, "pager"), memoryConnection(ns, "wiki"), oncall, asRole("oncall"), asRole("denied"))

	waitForPhase(t, ns, "oncall", identityv1alpha1.AccessRequestPending)
	decide(t, ns, "oncall", "grace@example.com", identityv1alpha1.DecisionApprove)
	ar := waitForPhase(t, ns, "oncall", identityv1alpha1.AccessRequestActive)
	if !slices.Equal(ar.Status.Assignments, []string{"oncall.pager", "oncall.wiki"}) {
		t.Fatalf("assignments: %v", ar.Status.Assignments)
	}
	for _, app := range []string{"pager", "wiki"} {
		if acc, found := accountIn(ns, app, "ada@example.com"); !found || !acc.Active {
			t.Errorf("ada's %s account: %+v", app, acc)
		}
	}
	decide(t, ns, "denied", "grace@example.com", identityv1alpha1.DecisionDeny)
	ar = waitForPhase(t, ns, "denied", identityv1alpha1.AccessRequestDenied)
	if ar.Status.ApprovedTime != nil || len(ar.Status.Assignments) != 0 {
		t.Fatalf("a denied request was granted: %+v", ar.Status)
	}
}
