package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers/directory"
)

// hrExport is an HR export in a ConfigMap, one person per id.
func hrExport(ids ...string) string {
	csv := "id,firstName,lastName,email,department\n"
	for _, id := range ids {
		csv += fmt.Sprintf("%s,%s,Tester,%s@example.com,eng\n", id, id, id)
	}
	return csv
}

// hrSync creates a DirectorySync over an HR export in ConfigMap "hr".
func hrSync(t *testing.T, ns string, ids []string, change func(*identityv1alpha1.DirectorySync)) *identityv1alpha1.DirectorySync {
	t.Helper()
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr"}, Data: map[string]string{"people.csv": hrExport(ids...)}})
	ds := &identityv1alpha1.DirectorySync{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workday"},
		Spec: identityv1alpha1.DirectorySyncSpec{HRIS: &identityv1alpha1.HRISSource{
			Format: "CSV", ConfigMapRef: &identityv1alpha1.ConfigMapKeySelector{Name: "hr", Key: "people.csv"}}},
	}
	if change != nil {
		change(ds)
	}
	create(t, ds)
	waitFor(t, fmt.Sprintf("%d Users from the export", len(ids)), func() (bool, string) {
		n := len(syncedUsers(t, ns, "workday"))
		return n == len(ids), fmt.Sprint(n)
	})
	return ds
}

func setExport(t *testing.T, ns string, ids ...string) {
	t.Helper()
	update(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr"}}, func(cm *corev1.ConfigMap) {
		cm.Data["people.csv"] = hrExport(ids...)
	})
}

func suspendedCount(t *testing.T, ns string) int {
	n := 0
	for _, u := range syncedUsers(t, ns, "workday") {
		if u.Spec.State == identityv1alpha1.UserStateSuspended {
			n++
		}
	}
	return n
}

func stalledMessage(t *testing.T, ns, name string) string {
	got := get(t, ns, name, &identityv1alpha1.DirectorySync{})
	return condition(got.Status.Conditions, identityv1alpha1.ConditionStalled)
}

func TestDirectorySyncThresholdHoldsSuspensionsThatArriveOneByOne(t *testing.T) {
	ns := namespace(t)
	ids := []string{"p0", "p1", "p2", "p3", "p4", "p5"}
	maxCount := int32(3)
	hrSync(t, ns, ids, func(ds *identityv1alpha1.DirectorySync) {
		ds.Spec.SafetyThreshold = &identityv1alpha1.SafetyThreshold{MaxCount: &maxCount}
	})
	for i := 1; i <= 3; i++ {
		setExport(t, ns, ids[i:]...)
		waitFor(t, fmt.Sprintf("%d suspended, one leaver at a time", i), func() (bool, string) {
			n := suspendedCount(t, ns)
			return n == i, fmt.Sprint(n)
		})
	}
	setExport(t, ns, ids[4:]...)
	var msg string
	waitFor(t, "the fourth leaver in the window is held", func() (bool, string) {
		msg = stalledMessage(t, ns, "workday")
		return strings.HasPrefix(msg, "True/"+identityv1alpha1.ReasonSafetyThresholdExceeded), msg
	})
	if n := suspendedCount(t, ns); n != 3 {
		t.Fatalf("%d Users suspended against maxCount 3 over the window, want 3", n)
	}
	if !strings.Contains(msg, "3 already suspended or deleted in the last 10m0s") || !strings.Contains(msg, "1 are held") {
		t.Fatalf("the message %q does not say what was made and what is held", msg)
	}
	got := get(t, ns, "workday", &identityv1alpha1.DirectorySync{})
	if len(got.Status.RecentDeprovisions) == 0 || got.Status.RecentDeprovisions[0].Count != 3 {
		t.Fatalf("status.recentDeprovisions = %+v, want the 3 made", got.Status.RecentDeprovisions)
	}
}

func TestDeletingADirectorySyncOrphansItsUsersByDefault(t *testing.T) {
	ns := namespace(t)
	ds := hrSync(t, ns, []string{"a1", "a2"}, nil)
	// The Users carry no owner reference, so that no propagation policy (foreground
	// included) lets the garbage collector take them.
	for _, u := range syncedUsers(t, ns, "workday") {
		if len(u.OwnerReferences) != 0 {
			t.Fatalf("User %s has owner references %v", u.Name, u.OwnerReferences)
		}
	}
	if err := env.Client.Delete(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the DirectorySync is gone", func() (bool, string) {
		err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(ds), &identityv1alpha1.DirectorySync{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	var users identityv1alpha1.UserList
	if err := env.Client.List(context.Background(), &users, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(users.Items) != 2 {
		t.Fatalf("%d Users left after their DirectorySync was deleted, want both kept", len(users.Items))
	}
	for _, u := range users.Items {
		if u.DeletionTimestamp != nil || u.Labels[directory.LabelDirectorySync] != "" || len(u.OwnerReferences) != 0 {
			t.Fatalf("User %s was not released: deleting %v, labels %v, owners %v", u.Name, u.DeletionTimestamp != nil, u.Labels, u.OwnerReferences)
		}
	}
}

func TestDeletingADirectorySyncWithDeletePolicyStaysWithinTheThreshold(t *testing.T) {
	ns := namespace(t)
	maxCount := int32(2)
	ds := hrSync(t, ns, []string{"b1", "b2", "b3"}, func(ds *identityv1alpha1.DirectorySync) {
		ds.Spec.DeletionPolicy = identityv1alpha1.DeletionDelete
		ds.Spec.SafetyThreshold = &identityv1alpha1.SafetyThreshold{MaxCount: &maxCount}
	})
	if err := env.Client.Delete(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	var msg string
	waitFor(t, "the deletion of three Users is held", func() (bool, string) {
		msg = stalledMessage(t, ns, "workday")
		return strings.HasPrefix(msg, "True/"+identityv1alpha1.ReasonSafetyThresholdExceeded), msg
	})
	for _, u := range syncedUsers(t, ns, "workday") {
		if u.DeletionTimestamp != nil {
			t.Fatalf("User %s is being deleted while the deletion waits for approval", u.Name)
		}
	}
	planID := msg[strings.Index(msg, identityv1alpha1.AnnotationApprovePlan+"=")+len(identityv1alpha1.AnnotationApprovePlan)+1:]
	planID = planID[:strings.IndexAny(planID, ", ")]
	update(t, ds, func(d *identityv1alpha1.DirectorySync) {
		d.Annotations = map[string]string{identityv1alpha1.AnnotationApprovePlan: planID}
	})
	waitFor(t, "the approved deletion takes the Users", func() (bool, string) {
		var users identityv1alpha1.UserList
		_ = env.Client.List(context.Background(), &users, client.InNamespace(ns))
		return len(users.Items) == 0, fmt.Sprint(len(users.Items))
	})
}

func TestAPersonsSuspensionOfADirectoryUserHoldsAgainstTheSource(t *testing.T) {
	ns := namespace(t)
	hrSync(t, ns, []string{"c1", "c2"}, nil)
	u := syncedUsers(t, ns, "workday")["c1@example.com"]
	update(t, &u, func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateSuspended })

	// The source still has c1 active; a full sync and a push of an unrelated change run.
	update(t, &identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workday"}}, func(d *identityv1alpha1.DirectorySync) {
		d.Annotations = map[string]string{identityv1alpha1.AnnotationResync: "1"}
	})
	waitFor(t, "the DirectorySync reports the held suspension", func() (bool, string) {
		got := get(t, ns, "workday", &identityv1alpha1.DirectorySync{})
		return len(got.Status.HeldSuspensions) == 1 && got.Status.HeldSuspensions[0] == u.Name, fmt.Sprint(got.Status.HeldSuspensions)
	})
	setExport(t, ns, "c1", "c2", "c3")
	waitFor(t, "c3 joins", func() (bool, string) { return len(syncedUsers(t, ns, "workday")) == 3, "" })
	if got := syncedUsers(t, ns, "workday")["c1@example.com"]; got.Spec.State != identityv1alpha1.UserStateSuspended {
		t.Fatalf("the sync turned a person's suspension back to %s", got.Spec.State)
	}
	waitFor(t, "an Event says the suspension is held", func() (bool, string) {
		return hasEvent(t, ns, "workday", "SuspensionHeld"), ""
	})

	// A person lifts it: the source speaks again.
	update(t, &u, func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateActive })
	update(t, &identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workday"}}, func(d *identityv1alpha1.DirectorySync) {
		d.Annotations = map[string]string{identityv1alpha1.AnnotationResync: "2"}
	})
	waitFor(t, "the hold is released", func() (bool, string) {
		got := get(t, ns, "workday", &identityv1alpha1.DirectorySync{})
		c1 := syncedUsers(t, ns, "workday")["c1@example.com"]
		return len(got.Status.HeldSuspensions) == 0 && c1.Annotations[directory.AnnotationSuspensionHeld] == "", fmt.Sprint(got.Status.HeldSuspensions)
	})
	if got := syncedUsers(t, ns, "workday")["c1@example.com"]; got.Spec.State != identityv1alpha1.UserStateActive {
		t.Fatalf("c1 is %s after a person set it Active", got.Spec.State)
	}
}

func TestAUserWhoseAppIsPausedCanBeDeletedWithItsAccountsOrphaned(t *testing.T) {
	ns := namespace(t)
	conn := memoryConnection(ns, "stuck")
	create(t, conn, roleWithGrants(ns, "eng", `user.department == "eng"`, grant("stuck")), newUser(ns, "dora", "eng"))
	mem := memoryApp(ns, "stuck")
	waitFor(t, "dora has an account", func() (bool, string) {
		acc, ok := memoryAccount(mem, "dora@example.com")
		return ok && acc.Active, ""
	})
	update(t, conn, func(c *identityv1alpha1.AppConnection) {
		c.Annotations = map[string]string{identityv1alpha1.AnnotationPaused: "true"}
	})
	waitFor(t, "the app is paused", func() (bool, string) {
		ok, why := ready(get(t, ns, "stuck", &identityv1alpha1.AppConnection{}).Status.Conditions)
		return !ok && strings.Contains(why, identityv1alpha1.ReasonPaused), why
	})
	dora := get(t, ns, "dora", &identityv1alpha1.User{})
	if err := env.Client.Delete(context.Background(), dora); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dora's deletion waits for the paused app", func() (bool, string) {
		u := get(t, ns, "dora", &identityv1alpha1.User{})
		c := condition(u.Status.Conditions, identityv1alpha1.ConditionReady)
		return strings.Contains(c, "/"+identityv1alpha1.ReasonDeprovisioning+":") && strings.Contains(c, "paused"), c
	})
	update(t, dora, func(u *identityv1alpha1.User) {
		u.Annotations = map[string]string{identityv1alpha1.AnnotationOrphanAccounts: "true"}
	})
	waitFor(t, "dora is gone", func() (bool, string) {
		err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(dora), &identityv1alpha1.User{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if acc, ok := memoryAccount(mem, "dora@example.com"); !ok || !acc.Active {
		t.Fatalf("dora's account = %+v, %v; want it left as it was", acc, ok)
	}
	waitFor(t, "an Event records the orphaned accounts", func() (bool, string) {
		return hasEvent(t, ns, "dora", "AccountsOrphaned"), ""
	})
	update(t, conn, func(c *identityv1alpha1.AppConnection) { delete(c.Annotations, identityv1alpha1.AnnotationPaused) })
	waitFor(t, "the unpaused app counts the account as unmanaged", func() (bool, string) {
		got := get(t, ns, "stuck", &identityv1alpha1.AppConnection{})
		return got.Status.Accounts.Unmanaged == 1, fmt.Sprintf("%+v", got.Status.Accounts)
	})
	if acc, _ := memoryAccount(mem, "dora@example.com"); !acc.Active {
		t.Fatal("dora's orphaned account was deactivated once the app was unpaused")
	}
}

// hasEvent reports whether an Event with reason is recorded about the named object.
func hasEvent(t *testing.T, ns, name, reason string) bool {
	t.Helper()
	return eventMessage(t, ns, name, reason) != ""
}

func TestMessySourceRecordsAreNeitherMergedNorDroppedSilently(t *testing.T) {
	ns := namespace(t)
	csv := "id,firstName,lastName,email,department,manager\n" +
		"E-10/ÄB,Anna,Berg,anna@example.com,eng,\n" +
		"E-10/ÖB,Otto,Berg,otto@example.com,eng,\n" +
		"e-10-b,Emil,Berg,emil@example.com,eng,E-10/ÄB\n" +
		"E-11,Maja,Lind,maja@example.com,eng,E-404\n" +
		"E-12,Maja,Lind,MAJA@example.com,ops,\n"
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr"}, Data: map[string]string{"people.csv": csv}},
		&identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "people"},
			Spec: identityv1alpha1.DirectorySyncSpec{HRIS: &identityv1alpha1.HRISSource{
				Format: "CSV", ConfigMapRef: &identityv1alpha1.ConfigMapKeySelector{Name: "hr", Key: "people.csv"}}}})
	waitFor(t, "five Users, one per person", func() (bool, string) {
		users := syncedUsers(t, ns, "people")
		return len(users) == 5, fmt.Sprint(len(users))
	})
	if emil := syncedUsers(t, ns, "people")["emil@example.com"]; emil.Spec.Manager == nil || emil.Spec.Manager.Name != syncedUsers(t, ns, "people")["anna@example.com"].Name {
		t.Fatalf("emil's manager is %+v, want anna's User", emil.Spec.Manager)
	}
	var ds *identityv1alpha1.DirectorySync
	waitFor(t, "the DirectorySync names the unknown manager and the duplicate userName", func() (bool, string) {
		ds = get(t, ns, "people", &identityv1alpha1.DirectorySync{})
		found := map[string]bool{}
		for _, p := range ds.Status.Problems {
			found[p.Reason+" "+p.Record] = true
		}
		c := condition(ds.Status.Conditions, identityv1alpha1.ConditionReady)
		return found["UnknownManager E-11"] && found["DuplicateUserName E-11"] && found["DuplicateUserName E-12"] && ds.Status.ProblemCount == 3 &&
			strings.Contains(c, "3 source records have problems"), fmt.Sprintf("%+v %s", ds.Status.Problems, c)
	})
	waitFor(t, "an Event names the problems", func() (bool, string) { return hasEvent(t, ns, "people", "SourceProblems"), "" })
}
