package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/memory"
	"github.com/rosterhq/roster/controllers"
)

func condition(conds []metav1.Condition, typ string) string {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return "absent"
	}
	return fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
}

// TestRoleStatusAndGrants: member count, grants as owned AppAssignments, and a rule
// that does not compile stalls the Role with the compiler's message and takes no
// access away.
func TestRoleStatusAndGrants(t *testing.T) {
	ns := namespace(t)
	role := roleWithGrants(ns, "eng", `user.department == "eng"`, grant("memapp", "eng"), grant("other", "x"))
	create(t, memoryConnection(ns, "memapp"), role, newUser(ns, "a", "eng"), newUser(ns, "b", "eng"), newUser(ns, "c", "ops"))
	waitFor(t, "the Role counts 2 members and is Ready", func() (bool, string) {
		r := get(t, ns, "eng", &identityv1alpha1.Role{})
		ok, why := ready(r.Status.Conditions)
		return ok && r.Status.MemberCount == 2 && r.Status.ObservedGeneration == r.Generation, fmt.Sprintf("%s members=%d", why, r.Status.MemberCount)
	})
	a := get(t, ns, "eng-memapp", &identityv1alpha1.AppAssignment{})
	if !metav1.IsControlledBy(a, get(t, ns, "eng", &identityv1alpha1.Role{})) || a.Spec.RoleRef.Name != "eng" || a.Spec.Groups[0] != "eng" {
		t.Fatalf("grant assignment = %+v", a)
	}
	waitFor(t, "the grant to a missing app says so", func() (bool, string) {
		a := get(t, ns, "eng-other", &identityv1alpha1.AppAssignment{})
		got := condition(a.Status.Conditions, identityv1alpha1.ConditionReady)
		return strings.HasPrefix(got, "False/"+identityv1alpha1.ReasonAppNotFound), got
	})
	mem := memoryApp(ns, "memapp")
	waitFor(t, "two accounts", func() (bool, string) { return len(mem.Accounts()) == 2, fmt.Sprint(len(mem.Accounts())) })

	update(t, role, func(r *identityv1alpha1.Role) {
		r.Spec.Members.Rule = `user.department ==`
		r.Spec.Grants = r.Spec.Grants[:1]
	})
	waitFor(t, "the Role is Stalled with the compiler's message", func() (bool, string) {
		r := get(t, ns, "eng", &identityv1alpha1.Role{})
		got := condition(r.Status.Conditions, identityv1alpha1.ConditionStalled)
		return strings.HasPrefix(got, "True/"+identityv1alpha1.ReasonInvalidSpec) && strings.Contains(got, "members.rule does not compile") &&
			strings.HasPrefix(condition(r.Status.Conditions, identityv1alpha1.ConditionReady), "False/"), got
	})
	waitFor(t, "the removed grant's AppAssignment is deleted", func() (bool, string) {
		var list identityv1alpha1.AppAssignmentList
		_ = env.Client.List(testCtx, &list)
		for _, a := range list.Items {
			if a.Namespace == ns && a.Name == "eng-other" {
				return false, "still there"
			}
		}
		return true, ""
	})
	for _, acc := range mem.Accounts() {
		if !acc.Active {
			t.Fatal("a rule that does not compile deprovisioned an account")
		}
	}
}

// TestAssignmentReportsAMissingSubject: a missing User is a condition, not an error loop.
func TestAssignmentReportsAMissingSubject(t *testing.T) {
	ns := namespace(t)
	create(t, memoryConnection(ns, "memapp"), &identityv1alpha1.AppAssignment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ghost"},
		Spec:       identityv1alpha1.AppAssignmentSpec{UserRef: &identityv1alpha1.LocalObjectReference{Name: "ghost"}, App: "memapp"},
	})
	waitFor(t, "SubjectNotFound", func() (bool, string) {
		a := get(t, ns, "ghost", &identityv1alpha1.AppAssignment{})
		got := condition(a.Status.Conditions, identityv1alpha1.ConditionReady)
		return strings.HasPrefix(got, "False/"+identityv1alpha1.ReasonSubjectNotFound) && strings.Contains(got, "the User ghost does not exist"), got
	})
	create(t, newUser(ns, "ghost", "x"))
	waitFor(t, "the assignment provisions once the User exists", func() (bool, string) {
		a := get(t, ns, "ghost", &identityv1alpha1.AppAssignment{})
		ok, why := ready(a.Status.Conditions)
		return ok && a.Status.Provisioned == 1, why
	})
}

// TestDuplicateUserNamesStall: two Users with one userName (in other letters) — the
// newer one gets no account and says why.
func TestDuplicateUserNamesStall(t *testing.T) {
	ns := namespace(t)
	first := newUser(ns, "first", "eng")
	first.Spec.UserName = "Same@Example.com"
	create(t, memoryConnection(ns, "memapp"), roleWithGrants(ns, "eng", `user.department == "eng"`, grant("memapp")), first)
	mem := memoryApp(ns, "memapp")
	waitFor(t, "first has its account", func() (bool, string) { return len(mem.Accounts()) == 1, "" })
	second := newUser(ns, "second", "eng")
	second.Spec.UserName = "same@example.com"
	create(t, second)
	waitFor(t, "second is Stalled with DuplicateUserName", func() (bool, string) {
		u := get(t, ns, "second", &identityv1alpha1.User{})
		got := condition(u.Status.Conditions, identityv1alpha1.ConditionStalled)
		return strings.HasPrefix(got, "True/"+identityv1alpha1.ReasonDuplicateUserName), got
	})
	if len(mem.Accounts()) != 1 {
		t.Fatal("a duplicate userName got an account")
	}
}

// TestAnAssignmentsCountHeldWhileOnlyNumbersMoveIsWrittenAfterwards: an AppAssignment
// that already says ProvisioningFailed and gains one more failed account changes only
// its numbers, so its write is held (a reconcile requeued for later, not a write); the
// held count still reaches the API server once the interval is over.
func TestAnAssignmentsCountHeldWhileOnlyNumbersMoveIsWrittenAfterwards(t *testing.T) {
	ns := namespace(t)
	memoryApp(ns, "memapp").FailWith(&connectors.PermanentError{Status: 400, Message: "the plan has no seats left"}, memory.OpCreate)
	create(t, memoryConnection(ns, "memapp"), roleWithGrants(ns, "eng", `user.department == "eng"`, grant("memapp")),
		newUser(ns, "ada", "eng"), newUser(ns, "grace", "eng"))
	failed := func(what string, n int32) {
		t.Helper()
		waitFor(t, what, func() (bool, string) {
			a := &identityv1alpha1.AppAssignment{}
			if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "eng-memapp"}, a); err != nil {
				return false, err.Error() // the Role writes it
			}
			got := condition(a.Status.Conditions, identityv1alpha1.ConditionReady)
			return strings.HasPrefix(got, "False/"+identityv1alpha1.ReasonProvisioningFailed) && a.Status.Failed == n && a.Status.Desired == n, got
		})
	}
	failed("two accounts failed", 2)
	heldReconciles := map[string]string{"controller": "appassignment", "result": "requeue_after"}
	heldBefore, _ := metricValue(t, "controller_runtime_reconcile_total", heldReconciles)
	create(t, newUser(ns, "linus", "eng"))
	failed("three accounts failed, written once the interval is over", 3)
	if held, _ := metricValue(t, "controller_runtime_reconcile_total", heldReconciles); held <= heldBefore {
		t.Fatalf("no AppAssignment reconcile was requeued (%v before, %v after): the third failure was written at once, not held", heldBefore, held)
	}
}

// TestTheEnginesReadTheCachesIndexWithoutCopies: read by index from the informer cache,
// an app's AppAssignments are the cache's own objects, the same at every read (no list
// of copies made per read); any other reader still lists them.
func TestTheEnginesReadTheCachesIndexWithoutCopies(t *testing.T) {
	ns := namespace(t)
	for _, a := range []struct{ name, user, app string }{{"ada-wiki", "ada", "wiki"}, {"grace-wiki", "grace", "wiki"}, {"ada-crm", "ada", "crm"}} {
		if err := k8s.Create(testCtx, &identityv1alpha1.AppAssignment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: a.name},
			Spec: identityv1alpha1.AppAssignmentSpec{App: a.app, UserRef: &identityv1alpha1.LocalObjectReference{Name: a.user}}}); err != nil {
			t.Fatal(err)
		}
	}
	names := func(as []*identityv1alpha1.AppAssignment) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.Name)
		}
		slices.Sort(out)
		return out
	}
	var first []*identityv1alpha1.AppAssignment
	waitFor(t, "the cache to hold the wiki's two assignments", func() (bool, string) {
		var err error
		first, err = controllers.AssignmentsOfApp(testCtx, cached, ns, "wiki")
		return err == nil && slices.Equal(names(first), []string{"ada-wiki", "grace-wiki"}), fmt.Sprint(names(first), err)
	})
	again, err := controllers.AssignmentsOfApp(testCtx, cached, ns, "wiki")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range first {
		if !slices.Contains(again, a) {
			t.Fatalf("%s read again is another object: the cache's index was not read", a.Name)
		}
	}
	listed, err := controllers.AssignmentsOfApp(testCtx, k8s, ns, "wiki")
	if err != nil || !slices.Equal(names(listed), []string{"ada-wiki", "grace-wiki"}) || slices.Contains(first, listed[0]) {
		t.Fatalf("listed through a client: %v, %v", names(listed), err)
	}

	if err := k8s.Create(testCtx, &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"}, Spec: identityv1alpha1.UserSpec{UserName: "ada@example.com"}}); err != nil {
		t.Fatal(err)
	}
	var users []*identityv1alpha1.User
	waitFor(t, "the cache to hold the namespace's User", func() (bool, string) {
		users, err = controllers.UsersIn(testCtx, cached, ns)
		return err == nil && len(users) == 1, fmt.Sprint(len(users), err)
	})
	if again, _ := controllers.UsersIn(testCtx, cached, ns); len(again) != 1 || again[0] != users[0] {
		t.Fatal("the namespace's Users read again are other objects: the cache's namespace index was not read")
	}
}
