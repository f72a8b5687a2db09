package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/memory"
	"github.com/rosterhq/roster/connectors/scim"
)

// scimUser reads a user from a SCIM app by userName (ignoring letter case).
func (s *scimServer) user(userName string) scim.Resource {
	all, _ := s.store.List(context.Background(), scim.Users, nil)
	for _, u := range all {
		if strings.EqualFold(u["userName"].(string), userName) {
			return u
		}
	}
	return nil
}

// groupMembers lists the userNames in a SCIM app's group.
func (s *scimServer) groupMembers(name string) []string {
	groups, _ := s.store.List(context.Background(), scim.Groups, nil)
	users, _ := s.store.List(context.Background(), scim.Users, nil)
	byID := map[string]string{}
	for _, u := range users {
		byID[u.ID()] = u["userName"].(string)
	}
	for _, g := range groups {
		if !strings.EqualFold(g["displayName"].(string), name) {
			continue
		}
		var out []string
		members, _ := g["members"].([]any)
		for _, m := range members {
			out = append(out, byID[m.(map[string]any)["value"].(string)])
		}
		sort.Strings(out)
		return out
	}
	return nil
}

// memoryGroupMembers lists the userNames in a memory app's group.
func memoryGroupMembers(app *memory.App, name string) []string {
	byID := map[string]string{}
	for _, a := range app.Accounts() {
		byID[a.ID] = a.UserName()
	}
	for _, g := range app.Groups() {
		if strings.EqualFold(g.DisplayName, name) {
			var out []string
			for _, m := range g.Members {
				out = append(out, byID[m])
			}
			sort.Strings(out)
			return out
		}
	}
	return nil
}

func memoryAccount(app *memory.App, userName string) (connectors.Account, bool) {
	for _, a := range app.Accounts() {
		if strings.EqualFold(a.UserName(), userName) {
			return a, true
		}
	}
	return connectors.Account{}, false
}

func accountState(u *identityv1alpha1.User, app string) identityv1alpha1.AccountState {
	for _, a := range u.Status.Accounts {
		if a.App == app {
			return a.State
		}
	}
	return ""
}

// TestJoinerMoverLeaver follows one person through two apps: hired into engineering,
// moved to operations, suspended, and the deactivated accounts deleted after the grace.
func TestJoinerMoverLeaver(t *testing.T) {
	ns := namespace(t)
	app := newSCIMApp(t)
	sc := scimConnection(t, app, ns, "scimapp", app.token)
	sc.Spec.Deprovision = identityv1alpha1.DeprovisionPolicy{
		OnSuspend: identityv1alpha1.SuspendDeactivate, OnRemoval: identityv1alpha1.RemovalDeactivate,
		DeleteAfter: &metav1.Duration{Duration: 3 * time.Second},
	}
	create(t, memoryConnection(ns, "memapp"), sc,
		roleWithGrants(ns, "eng", `user.department == "eng"`, grant("memapp", "eng"), grant("scimapp", "engineering")),
		roleWithGrants(ns, "ops", `user.department == "ops"`, grant("memapp", "ops"), grant("scimapp", "operations")),
		newUser(ns, "ada", "eng"))
	mem := memoryApp(ns, "memapp")

	// Joiner: both accounts, the app-side groups, status shows both, Ready.
	waitFor(t, "ada has both accounts and is Ready", func() (bool, string) {
		u := get(t, ns, "ada", &identityv1alpha1.User{})
		ok, why := ready(u.Status.Conditions)
		both := accountState(u, "memapp") == identityv1alpha1.AccountStateActive && accountState(u, "scimapp") == identityv1alpha1.AccountStateActive
		return ok && both && u.Status.Phase == identityv1alpha1.UserPhaseActive, fmt.Sprintf("%s accounts %+v", why, u.Status.Accounts)
	})
	waitFor(t, "ada is in the eng groups of both apps", func() (bool, string) {
		m, s := memoryGroupMembers(mem, "eng"), app.groupMembers("engineering")
		return slices.Equal(m, []string{"ada@example.com"}) && slices.Equal(s, []string{"ada@example.com"}), fmt.Sprint(m, s)
	})
	scimID := app.user("ada@example.com").ID()
	memAcc, _ := memoryAccount(mem, "ada@example.com")

	// Mover: groups change in each app, no account is recreated.
	update(t, &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"}}, func(u *identityv1alpha1.User) { u.Spec.Department = "ops" })
	waitFor(t, "ada moved from eng to ops in both apps", func() (bool, string) {
		got := [][]string{memoryGroupMembers(mem, "eng"), memoryGroupMembers(mem, "ops"), app.groupMembers("engineering"), app.groupMembers("operations")}
		return len(got[0]) == 0 && slices.Equal(got[1], []string{"ada@example.com"}) && len(got[2]) == 0 &&
			slices.Equal(got[3], []string{"ada@example.com"}), fmt.Sprint(got)
	})
	if app.user("ada@example.com").ID() != scimID || mem.Requests()[memory.OpCreate] != 1 {
		t.Fatal("moving recreated an account")
	}
	if a, _ := memoryAccount(mem, "ada@example.com"); a.ID != memAcc.ID {
		t.Fatal("moving recreated the memory account")
	}

	// Leaver: the kill switch deactivates every account, SCIM active=false.
	update(t, &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"}}, func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateSuspended })
	waitFor(t, "every account of ada is deactivated", func() (bool, string) {
		acc, _ := memoryAccount(mem, "ada@example.com")
		s := app.user("ada@example.com")
		return !acc.Active && s != nil && !s.Active(), fmt.Sprintf("memory active=%v scim=%v", acc.Active, s)
	})
	waitFor(t, "ada is Suspended and Ready", func() (bool, string) {
		u := get(t, ns, "ada", &identityv1alpha1.User{})
		ok, why := ready(u.Status.Conditions)
		return ok && u.Status.Phase == identityv1alpha1.UserPhaseSuspended && accountState(u, "scimapp") == identityv1alpha1.AccountStateDeactivated, why
	})
	// deleteAfter: the SCIM account goes after its grace; the memory app keeps its own.
	waitFor(t, "the deactivated SCIM account is deleted after deleteAfter", func() (bool, string) {
		return app.user("ada@example.com") == nil, "still there"
	})
	if _, ok := memoryAccount(mem, "ada@example.com"); !ok {
		t.Fatal("the memory account was deleted though its app has no deleteAfter")
	}
	waitFor(t, "ada's status shows the SCIM account Deleted", func() (bool, string) {
		u := get(t, ns, "ada", &identityv1alpha1.User{})
		return accountState(u, "scimapp") == identityv1alpha1.AccountStateDeleted, string(accountState(u, "scimapp"))
	})
	assertEvents(t, ns, "ada", "Provisioned", "Deprovisioned")
}

func assertEvents(t *testing.T, ns, user string, reasons ...string) {
	t.Helper()
	waitFor(t, "events "+strings.Join(reasons, ", ")+" on "+user, func() (bool, string) {
		var events corev1.EventList
		if err := env.Client.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		seen := map[string]bool{}
		var all []string
		for _, e := range events.Items {
			if e.InvolvedObject.Name == user {
				seen[e.Reason] = true
				all = append(all, e.Reason)
			}
		}
		for _, r := range reasons {
			if !seen[r] {
				return false, fmt.Sprint(all)
			}
		}
		return true, ""
	})
}

// TestScheduledOnboardingAndContractEnd: activeFrom keeps a User Pending without
// accounts until then; activeUntil deprovisions when it passes.
func TestScheduledOnboardingAndContractEnd(t *testing.T) {
	ns := namespace(t)
	// The API keeps whole seconds: so do the times the test compares with.
	start := metav1.NewTime(time.Now().Add(4 * time.Second).Truncate(time.Second))
	end := metav1.NewTime(time.Now().Add(10 * time.Second).Truncate(time.Second))
	hire := newUser(ns, "newhire", "eng")
	hire.Spec.ActiveFrom, hire.Spec.ActiveUntil = &start, &end
	create(t, memoryConnection(ns, "memapp"), roleWithGrants(ns, "eng", `user.department == "eng"`, grant("memapp")), hire)
	mem := memoryApp(ns, "memapp")

	waitFor(t, "the new hire is Pending", func() (bool, string) {
		u := get(t, ns, "newhire", &identityv1alpha1.User{})
		ok, why := ready(u.Status.Conditions)
		return ok && u.Status.Phase == identityv1alpha1.UserPhasePending, why
	})
	if _, ok := memoryAccount(mem, "newhire@example.com"); ok && time.Now().Before(start.Time) {
		t.Fatal("an account exists before activeFrom")
	}
	waitFor(t, "the account exists once activeFrom passes", func() (bool, string) {
		acc, ok := memoryAccount(mem, "newhire@example.com")
		return ok && acc.Active, "no active account"
	})
	if time.Now().Before(start.Time) {
		t.Fatal("the account was created before activeFrom")
	}
	waitFor(t, "the account is deactivated once activeUntil passes", func() (bool, string) {
		acc, ok := memoryAccount(mem, "newhire@example.com")
		return ok && !acc.Active, "still active"
	})
	if time.Now().Before(end.Time) {
		t.Fatal("the account was deactivated before activeUntil")
	}
	waitFor(t, "the User is Expired", func() (bool, string) {
		u := get(t, ns, "newhire", &identityv1alpha1.User{})
		return u.Status.Phase == identityv1alpha1.UserPhaseExpired, string(u.Status.Phase)
	})
}

// TestTimeBoundAssignmentExpires: access granted until validUntil is removed then.
func TestTimeBoundAssignmentExpires(t *testing.T) {
	ns := namespace(t)
	until := metav1.NewTime(time.Now().Add(5 * time.Second).Truncate(time.Second))
	create(t, memoryConnection(ns, "memapp"), newUser(ns, "contractor", "ops"), &identityv1alpha1.AppAssignment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "contractor-memapp"},
		Spec: identityv1alpha1.AppAssignmentSpec{UserRef: &identityv1alpha1.LocalObjectReference{Name: "contractor"},
			App: "memapp", ValidUntil: &until},
	})
	mem := memoryApp(ns, "memapp")
	waitFor(t, "the assignment provisions one account", func() (bool, string) {
		a := get(t, ns, "contractor-memapp", &identityv1alpha1.AppAssignment{})
		ok, why := ready(a.Status.Conditions)
		return ok && a.Status.Desired == 1 && a.Status.Provisioned == 1, why
	})
	waitFor(t, "access is removed at validUntil", func() (bool, string) {
		acc, ok := memoryAccount(mem, "contractor@example.com")
		return ok && !acc.Active, "still active"
	})
	if time.Now().Before(until.Time) {
		t.Fatal("access was removed before validUntil")
	}
	waitFor(t, "the assignment reports it expired", func() (bool, string) {
		a := get(t, ns, "contractor-memapp", &identityv1alpha1.AppAssignment{})
		ok, why := ready(a.Status.Conditions)
		return ok && strings.Contains(why, identityv1alpha1.ReasonExpired), why
	})
}

// TestAdoptionIgnoresLetterCase: an account that already exists in the app is adopted,
// not duplicated, though its userName differs in letter case.
func TestAdoptionIgnoresLetterCase(t *testing.T) {
	ns := namespace(t)
	app := newSCIMApp(t)
	existing, err := app.store.Create(context.Background(), scim.Users, scim.Resource{"userName": "Grace@Example.COM", "active": true, "title": "old"})
	if err != nil {
		t.Fatal(err)
	}
	create(t, scimConnection(t, app, ns, "scimapp", app.token), newUser(ns, "grace", "eng"),
		roleWithGrants(ns, "eng", `user.department == "eng"`, grant("scimapp")))
	waitFor(t, "grace's status links the existing account", func() (bool, string) {
		u := get(t, ns, "grace", &identityv1alpha1.User{})
		for _, a := range u.Status.Accounts {
			if a.App == "scimapp" && a.ExternalID == existing.ID() && a.State == identityv1alpha1.AccountStateActive {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", u.Status.Accounts)
	})
	all, _ := app.store.List(context.Background(), scim.Users, nil)
	if len(all) != 1 {
		t.Fatalf("the app has %d users, want the one adopted", len(all))
	}
	waitFor(t, "the adopted account gets the declared attributes", func() (bool, string) {
		u := app.user("grace@example.com")
		name, _ := u["name"].(map[string]any)
		return name != nil && name["givenName"] == "grace", fmt.Sprint(u)
	})
	assertEvents(t, ns, "grace", "Adopted")
}

// TestPlanModeThenEnforce: Plan mode writes nothing and shows the plan; Enforce applies it.
func TestPlanModeThenEnforce(t *testing.T) {
	ns := namespace(t)
	conn := memoryConnection(ns, "memapp")
	conn.Spec.Mode = identityv1alpha1.ModePlan
	create(t, conn, roleWithGrants(ns, "eng", `user.department == "eng"`, grant("memapp", "eng")),
		newUser(ns, "u1", "eng"), newUser(ns, "u2", "eng"))
	mem := memoryApp(ns, "memapp")
	waitFor(t, "the plan is published", func() (bool, string) {
		c := get(t, ns, "memapp", &identityv1alpha1.AppConnection{})
		ok, why := ready(c.Status.Conditions)
		p := c.Status.Plan
		return ok && strings.Contains(why, identityv1alpha1.ReasonPlanOnly) && p != nil && p.Creates == 2 && p.GroupChanges == 2 && len(p.Sample) == 2,
			fmt.Sprintf("%s plan %+v", why, p)
	})
	// The plan is published after the engine decided not to send it: nothing can be in
	// flight that the status does not show.
	if n := mem.Requests()[memory.OpCreate] + mem.Requests()[memory.OpEnsureGroup] + mem.Requests()[memory.OpGroupMembers]; n != 0 {
		t.Fatalf("Plan mode sent %d writes to the app", n)
	}
	update(t, conn, func(c *identityv1alpha1.AppConnection) { c.Spec.Mode = identityv1alpha1.ModeEnforce })
	waitFor(t, "Enforce applies the plan", func() (bool, string) {
		c := get(t, ns, "memapp", &identityv1alpha1.AppConnection{})
		return len(mem.Accounts()) == 2 && slices.Equal(memoryGroupMembers(mem, "eng"), []string{"u1@example.com", "u2@example.com"}) &&
			c.Status.Plan == nil && c.Status.Accounts.Managed == 2, fmt.Sprintf("plan %+v", c.Status.Plan)
	})
	if got := mem.Requests()[memory.OpCreate]; got != 2 {
		t.Fatalf("%d creates, want exactly the 2 planned", got)
	}
}

// TestSafetyThresholdHoldsAMassDeprovision: a Role edited to match nobody would
// deprovision everyone; the plan waits for an approval annotation.
func TestSafetyThresholdHoldsAMassDeprovision(t *testing.T) {
	ns := namespace(t)
	maxCount := int32(5)
	conn := memoryConnection(ns, "memapp")
	conn.Spec.SafetyThreshold = &identityv1alpha1.SafetyThreshold{MaxCount: &maxCount}
	role := roleWithGrants(ns, "everyone", `user.department == "eng"`, grant("memapp"))
	create(t, conn, role)
	for i := range 8 {
		create(t, newUser(ns, fmt.Sprintf("p%d", i), "eng"))
	}
	mem := memoryApp(ns, "memapp")
	waitFor(t, "8 accounts", func() (bool, string) { return len(mem.Accounts()) == 8, fmt.Sprint(len(mem.Accounts())) })

	update(t, role, func(r *identityv1alpha1.Role) { r.Spec.Members.Rule = `user.department == "nobody"` })
	var planID string
	waitFor(t, "the AppConnection is Stalled by the safety threshold", func() (bool, string) {
		c := get(t, ns, "memapp", &identityv1alpha1.AppConnection{})
		for _, cond := range c.Status.Conditions {
			if cond.Type == identityv1alpha1.ConditionStalled && cond.Status == metav1.ConditionTrue && cond.Reason == identityv1alpha1.ReasonSafetyThresholdExceeded {
				if c.Status.Plan != nil {
					planID = c.Status.Plan.ID
				}
				return strings.Contains(cond.Message, "would deprovision 8 accounts") && planID != "", cond.Message
			}
		}
		return false, fmt.Sprintf("%+v", c.Status.Conditions)
	})
	// The held plan is published after the engine held it: nothing of it was sent.
	for _, a := range mem.Accounts() {
		if !a.Active {
			t.Fatal("an account was deactivated while the plan waited for approval")
		}
	}
	update(t, conn, func(c *identityv1alpha1.AppConnection) {
		c.Annotations = map[string]string{identityv1alpha1.AnnotationApprovePlan: planID, identityv1alpha1.AnnotationPlanApprovedBy: "alice@example.com"}
	})
	waitFor(t, "the approved plan deprovisions all 8", func() (bool, string) {
		n := 0
		for _, a := range mem.Accounts() {
			if !a.Active {
				n++
			}
		}
		return n == 8, fmt.Sprintf("%d deactivated", n)
	})
	waitFor(t, "the AppConnection is Ready again", func() (bool, string) {
		return ready(get(t, ns, "memapp", &identityv1alpha1.AppConnection{}).Status.Conditions)
	})
	assertEvents(t, ns, "memapp", "PlanBlocked", identityv1alpha1.EventPlanApproved)
	if msg := eventMessage(t, ns, "memapp", identityv1alpha1.EventPlanApproved); msg != "plan "+planID+" applied as approved by alice@example.com: 8 deprovisions" {
		t.Fatalf("the approval's Event says %q", msg)
	}
}

// eventMessage is the message of the Event with reason about the named object.
func eventMessage(t *testing.T, ns, name, reason string) string {
	t.Helper()
	var events corev1.EventList
	if err := env.Client.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.InvolvedObject.Name == name && e.Reason == reason {
			return e.Message
		}
	}
	return ""
}

// TestDeletionsLeaveTheAppAsDeclared: deleting a User, an AppAssignment and an
// AppConnection each deprovisions first; no finalizer is left behind.
func TestDeletionsLeaveTheAppAsDeclared(t *testing.T) {
	ns := namespace(t)
	create(t, memoryConnection(ns, "memapp"), newUser(ns, "del-user", "x"), newUser(ns, "del-assignment", "x"), newUser(ns, "del-app", "x"))
	for _, u := range []string{"del-user", "del-assignment", "del-app"} {
		create(t, &identityv1alpha1.AppAssignment{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: u},
			Spec:       identityv1alpha1.AppAssignmentSpec{UserRef: &identityv1alpha1.LocalObjectReference{Name: u}, App: "memapp"},
		})
	}
	mem := memoryApp(ns, "memapp")
	waitFor(t, "three active accounts", func() (bool, string) {
		n := 0
		for _, a := range mem.Accounts() {
			if a.Active {
				n++
			}
		}
		return n == 3, fmt.Sprint(n)
	})
	active := func(userName string) bool { a, _ := memoryAccount(mem, userName); return a.Active }
	gone := func(obj client.Object) func() (bool, string) {
		return func() (bool, string) {
			err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
			return client.IgnoreNotFound(err) == nil && err != nil, fmt.Sprintf("finalizers %v", obj.GetFinalizers())
		}
	}

	user := &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "del-user"}}
	if err := env.Client.Delete(context.Background(), user); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted User is gone", gone(user))
	if active("del-user@example.com") {
		t.Fatal("the User went before its account was deactivated")
	}

	assignment := &identityv1alpha1.AppAssignment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "del-assignment"}}
	if err := env.Client.Delete(context.Background(), assignment); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unassigned account is deactivated", func() (bool, string) { return !active("del-assignment@example.com"), "active" })

	conn := &identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "memapp"}}
	if err := env.Client.Delete(context.Background(), conn); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted AppConnection is gone", gone(conn))
	if active("del-app@example.com") {
		t.Fatal("the AppConnection went before its accounts were released")
	}
	waitFor(t, "del-app's status drops the gone app", func() (bool, string) {
		u := get(t, ns, "del-app", &identityv1alpha1.User{})
		return len(u.Status.Accounts) == 0, fmt.Sprintf("%+v", u.Status.Accounts)
	})
}

// TestBadTokenIsReportedWithoutTheToken: a rejected token shows as Ready=False with a
// clear reason on the AppConnection and the affected Users; the token appears in no
// status, event or log.
func TestBadTokenIsReportedWithoutTheToken(t *testing.T) {
	ns := namespace(t)
	const wrongToken = "wrong-token-d41d8cd98f"
	app := newSCIMApp(t)
	create(t, scimConnection(t, app, ns, "scimapp", wrongToken), newUser(ns, "victim", "eng"),
		roleWithGrants(ns, "eng", `user.department == "eng"`, grant("scimapp")))
	waitFor(t, "the AppConnection reports the rejected credentials", func() (bool, string) {
		c := get(t, ns, "scimapp", &identityv1alpha1.AppConnection{})
		ok, why := ready(c.Status.Conditions)
		return !ok && strings.Contains(why, identityv1alpha1.ReasonCredentialsRejected), why
	})
	waitFor(t, "the User reports it cannot be provisioned", func() (bool, string) {
		u := get(t, ns, "victim", &identityv1alpha1.User{})
		ok, why := ready(u.Status.Conditions)
		return !ok && strings.Contains(why, identityv1alpha1.ReasonCredentialsRejected) && strings.Contains(why, "scimapp"), why
	})
	c := get(t, ns, "scimapp", &identityv1alpha1.AppConnection{})
	u := get(t, ns, "victim", &identityv1alpha1.User{})
	var events corev1.EventList
	if err := env.Client.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	everything := fmt.Sprintf("%+v %+v %+v %s", c.Status, u.Status, events.Items, logs.String())
	for _, secret := range []string{wrongToken, app.token} {
		if strings.Contains(everything, secret) {
			t.Fatalf("a token appears in status, events or logs")
		}
	}

	// Fixing the Secret brings the AppConnection back and provisions the User.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scimapp-token"}}
	update(t, secret, func(s *corev1.Secret) { s.Data = map[string][]byte{"token": []byte(app.token)} })
	waitFor(t, "the User is provisioned once the token is fixed", func() (bool, string) {
		u := get(t, ns, "victim", &identityv1alpha1.User{})
		ok, why := ready(u.Status.Conditions)
		return ok && app.user("victim@example.com") != nil, why
	})
}

// TestPauseHoldsWrites: a paused AppConnection writes nothing until the annotation goes.
func TestPauseHoldsWrites(t *testing.T) {
	ns := namespace(t)
	conn := memoryConnection(ns, "memapp")
	conn.Annotations = map[string]string{identityv1alpha1.AnnotationPaused: "true"}
	create(t, conn, roleWithGrants(ns, "eng", `user.department == "eng"`, grant("memapp")), newUser(ns, "paula", "eng"))
	mem := memoryApp(ns, "memapp")
	waitFor(t, "the AppConnection says it is paused, with paula's create planned", func() (bool, string) {
		c := get(t, ns, "memapp", &identityv1alpha1.AppConnection{})
		_, why := ready(c.Status.Conditions)
		return strings.Contains(why, identityv1alpha1.ReasonPaused) && c.Status.Plan != nil && c.Status.Plan.Creates == 1, fmt.Sprintf("%s %+v", why, c.Status.Plan)
	})
	// The plan is published after the paused engine decided not to send it.
	if n := mem.Requests()[memory.OpCreate]; n != 0 {
		t.Fatalf("a paused AppConnection created %d accounts", n)
	}
	update(t, conn, func(c *identityv1alpha1.AppConnection) { delete(c.Annotations, identityv1alpha1.AnnotationPaused) })
	waitFor(t, "the account is created once unpaused", func() (bool, string) {
		_, ok := memoryAccount(mem, "paula@example.com")
		return ok, "no account"
	})
}

// TestUnmanagedAccounts: accounts no User holds are reported, or deactivated.
func TestUnmanagedAccounts(t *testing.T) {
	for _, policy := range []identityv1alpha1.UnmanagedAccountsPolicy{identityv1alpha1.UnmanagedReport, identityv1alpha1.UnmanagedDeactivate} {
		t.Run(string(policy), func(t *testing.T) {
			ns := namespace(t)
			mem := memoryApp(ns, "memapp")
			for _, stray := range []string{"stray1", "stray2"} {
				if _, err := mem.Create(context.Background(), connectors.Account{Active: true, Attributes: map[string]any{"userName": stray}}); err != nil {
					t.Fatal(err)
				}
			}
			conn := memoryConnection(ns, "memapp")
			conn.Spec.UnmanagedAccounts = policy
			create(t, conn, roleWithGrants(ns, "eng", `user.department == "eng"`, grant("memapp")), newUser(ns, "kept", "eng"))
			if policy == identityv1alpha1.UnmanagedReport {
				waitFor(t, "two unmanaged accounts reported", func() (bool, string) {
					c := get(t, ns, "memapp", &identityv1alpha1.AppConnection{})
					return c.Status.Accounts.Unmanaged == 2 && slices.Equal(c.Status.UnmanagedAccounts, []string{"stray1", "stray2"}) &&
						c.Status.Accounts.Managed == 1, fmt.Sprintf("%+v %v", c.Status.Accounts, c.Status.UnmanagedAccounts)
				})
				return
			}
			waitFor(t, "the unmanaged accounts are deactivated, the managed one kept", func() (bool, string) {
				var states []string
				for _, a := range mem.Accounts() {
					states = append(states, fmt.Sprintf("%s=%v", a.UserName(), a.Active))
				}
				sort.Strings(states)
				return slices.Equal(states, []string{"kept@example.com=true", "stray1=false", "stray2=false"}), fmt.Sprint(states)
			})
		})
	}
}

// TestMetricsArePublished: accounts by state, writes by result, HTTP answers and the
// time to converge, a joiner's and then a leaver's, on the manager's registry.
func TestMetricsArePublished(t *testing.T) {
	ns := namespace(t)
	app := newSCIMApp(t)
	create(t, scimConnection(t, app, ns, "scimapp", app.token), roleWithGrants(ns, "eng", `user.department == "eng"`, grant("scimapp")), newUser(ns, "metric", "eng"))
	appLabel := ns + "/scimapp"
	gather := func() (map[string]float64, error) {
		families, err := ctrlmetrics.Registry.Gather()
		if err != nil {
			return nil, err
		}
		found := map[string]float64{}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["app"] != appLabel {
					continue
				}
				key := f.GetName() + "{" + labels["state"] + labels["operation"] + labels["result"] + labels["method"] + labels["code"] + labels["change"] + "}"
				switch {
				case m.GetGauge() != nil:
					found[key] = m.GetGauge().GetValue()
				case m.GetCounter() != nil:
					found[key] = m.GetCounter().GetValue()
				case m.GetHistogram() != nil:
					found[key] = float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
		return found, nil
	}
	waitFor(t, "the metrics show the converged account", func() (bool, string) {
		found, err := gather()
		if err != nil {
			return false, err.Error()
		}
		ok := found["roster_accounts{managed}"] == 1 && found["roster_connector_requests_total{createok}"] == 1 &&
			found["roster_connector_http_responses_total{POST201}"] >= 1 && found["roster_convergence_seconds{joiner}"] == 1
		return ok, fmt.Sprint(found)
	})
	u := get(t, ns, "metric", &identityv1alpha1.User{})
	u.Spec.State = identityv1alpha1.UserStateSuspended
	if err := env.Client.Update(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the metrics show the leaver", func() (bool, string) {
		found, err := gather()
		if err != nil {
			return false, err.Error()
		}
		return found["roster_convergence_seconds{leaver}"] == 1 && found["roster_convergence_seconds{joiner}"] == 1, fmt.Sprint(found)
	})
}

// TestManagerIsTheManagersAccountID: the enterprise manager attribute carries the
// manager's id in the same app, filled in once the manager has an account.
func TestManagerIsTheManagersAccountID(t *testing.T) {
	ns := namespace(t)
	app := newSCIMApp(t)
	worker := newUser(ns, "worker", "eng")
	worker.Spec.Manager = &identityv1alpha1.LocalObjectReference{Name: "boss"}
	create(t, scimConnection(t, app, ns, "scimapp", app.token), roleWithGrants(ns, "eng", `user.department == "eng"`, grant("scimapp")),
		worker, newUser(ns, "boss", "eng"))
	waitFor(t, "worker's manager.value is boss's id", func() (bool, string) {
		w, b := app.user("worker@example.com"), app.user("boss@example.com")
		if w == nil || b == nil {
			return false, "accounts missing"
		}
		ext, _ := w[scim.SchemaEnterpriseUser].(map[string]any)
		mgr, _ := ext["manager"].(map[string]any)
		return mgr != nil && mgr["value"] == b.ID(), fmt.Sprint(ext)
	})
}

// TestAManagersNewUserNameReachesTheirReportsAccounts: a mapping may write a manager's
// userName into their reports' accounts; renaming the manager updates those accounts
// at once, not at the next resync.
func TestAManagersNewUserNameReachesTheirReportsAccounts(t *testing.T) {
	ns := namespace(t)
	app := newSCIMApp(t)
	conn := scimConnection(t, app, ns, "scimapp", app.token)
	conn.Spec.Mapping = []identityv1alpha1.ExpressionMapping{{Target: "title", Expression: `"reports to " + manager.userName`}}
	worker := newUser(ns, "worker", "eng")
	worker.Spec.Manager = &identityv1alpha1.LocalObjectReference{Name: "boss"}
	boss := newUser(ns, "boss", "eng")
	// The manager's account first, so that the report's create does not wait for it
	// (a wait that ends by the clock, and plans the report again).
	create(t, conn, roleWithGrants(ns, "eng", `user.department == "eng"`, grant("scimapp")), boss)
	waitFor(t, "boss's account", func() (bool, string) { return app.user("boss@example.com") != nil, "" })
	create(t, worker)
	title := func(want string) func() (bool, string) {
		return func() (bool, string) {
			w := app.user("worker@example.com")
			if w == nil {
				return false, "worker has no account"
			}
			return w["title"] == want, fmt.Sprint(w["title"])
		}
	}
	waitFor(t, "worker's title names boss", title("reports to boss@example.com"))

	update(t, boss, func(u *identityv1alpha1.User) { u.Spec.UserName = "chief@example.com" })
	waitFor(t, "worker's title names boss's new userName", title("reports to chief@example.com"))
}

// TestARolesAssignmentCountsItsActiveMembers: a Role's AppAssignment counts as desired
// only the members that may hold an account now, and follows each one's lifecycle.
func TestARolesAssignmentCountsItsActiveMembers(t *testing.T) {
	ns := namespace(t)
	create(t, memoryConnection(ns, "memapp"), roleWithGrants(ns, "eng", `user.department == "eng"`, grant("memapp")),
		newUser(ns, "ada", "eng"), newUser(ns, "grace", "eng"), newUser(ns, "linus", "eng"))
	counts := func(what string, desired, provisioned int32) {
		t.Helper()
		waitFor(t, what, func() (bool, string) {
			a := get(t, ns, "eng-memapp", &identityv1alpha1.AppAssignment{})
			ok, why := ready(a.Status.Conditions)
			return ok && a.Status.Desired == desired && a.Status.Provisioned == provisioned,
				fmt.Sprintf("%s; %d of %d", why, a.Status.Provisioned, a.Status.Desired)
		})
	}
	counts("three members, three accounts", 3, 3)
	update(t, newUser(ns, "grace", "eng"), func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateSuspended })
	counts("a suspended member is no longer desired", 2, 2)
	start := metav1.NewTime(time.Now().Add(time.Hour))
	update(t, newUser(ns, "linus", "eng"), func(u *identityv1alpha1.User) { u.Spec.ActiveFrom = &start })
	counts("a member who starts later is not desired yet", 1, 1)
	update(t, newUser(ns, "grace", "eng"), func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateActive })
	counts("a member back from suspension is desired again", 2, 2)
}
