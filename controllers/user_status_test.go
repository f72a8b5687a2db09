package controllers_test

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers"
)

// adaWithStatus creates the User ada and waits for the operator's first status write.
func adaWithStatus(t *testing.T, ns string) {
	t.Helper()
	create(t, newUser(ns, "ada", "eng"))
	waitFor(t, "ada's status is written", func() (bool, string) {
		u := get(t, ns, "ada", &identityv1alpha1.User{})
		return u.Status.ObservedGeneration == u.Generation, condition(u.Status.Conditions, identityv1alpha1.ConditionReady)
	})
}

// A User's status write is answered with the User's metadata alone: the User keeps the
// status it sent and the spec it had, and takes the resourceVersion its write made.
func TestAUserStatusWriteTakesOnlyTheMetadataOfItsAnswer(t *testing.T) {
	ns := namespace(t)
	adaWithStatus(t, ns)
	u := get(t, ns, "ada", &identityv1alpha1.User{})
	before := u.DeepCopy()
	// A condition the operator keeps as it is (it sets only its own types).
	meta.SetStatusCondition(&u.Status.Conditions, metav1.Condition{Type: "Audited", Status: metav1.ConditionTrue, Reason: "Test", Message: "by the test"})
	u.Spec.Title = "kept here, not sent" // a status write sends no spec
	if err := controllers.PatchUserStatusForMetadata(testCtx, k8s, u, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	if u.Spec.Title != "kept here, not sent" || condition(u.Status.Conditions, "Audited") != "True/Test: by the test" {
		t.Errorf("the answer replaced what the User held: title %q, Audited %q", u.Spec.Title, condition(u.Status.Conditions, "Audited"))
	}
	if cmp, err := resourceversion.CompareResourceVersion(u.ResourceVersion, before.ResourceVersion); err != nil || cmp <= 0 {
		t.Errorf("resourceVersion %s after the write, %s before (%v)", u.ResourceVersion, before.ResourceVersion, err)
	}
	live := get(t, ns, "ada", &identityv1alpha1.User{})
	if cmp, err := resourceversion.CompareResourceVersion(live.ResourceVersion, u.ResourceVersion); err != nil || cmp < 0 {
		t.Errorf("the User's resourceVersion %s is older than the one its write answered, %s (%v)", live.ResourceVersion, u.ResourceVersion, err)
	}
	if got := condition(live.Status.Conditions, "Audited"); got != "True/Test: by the test" || live.Spec.Title == u.Spec.Title {
		t.Errorf("the API server holds Audited %q and title %q", got, live.Spec.Title)
	}
}

// A status write sends the status alone, takes away what the status no longer holds,
// and, locked, is refused when the object changed since it was read.
func TestAStatusWriteSendsTheStatusAloneAndLocksWhenAsked(t *testing.T) {
	ns := namespace(t)
	adaWithStatus(t, ns)
	audited := metav1.Condition{Type: "Audited", Status: metav1.ConditionTrue, Reason: "Test", Message: "by the test"}
	u := get(t, ns, "ada", &identityv1alpha1.User{})
	stale := u.DeepCopy()
	before := u.DeepCopy()
	meta.SetStatusCondition(&u.Status.Conditions, audited)
	u.Spec.Title = "not sent"
	if err := k8s.Status().Patch(testCtx, u, controllers.StatusPatch(before, u.Status, before.Status, false)); err != nil {
		t.Fatal(err)
	}
	if got := get(t, ns, "ada", &identityv1alpha1.User{}); condition(got.Status.Conditions, "Audited") != "True/Test: by the test" || got.Spec.Title == "not sent" {
		t.Fatalf("after the write: Audited %q, title %q", condition(got.Status.Conditions, "Audited"), got.Spec.Title)
	}

	locked := stale.DeepCopy()
	meta.SetStatusCondition(&locked.Status.Conditions, metav1.Condition{Type: "Reviewed", Status: metav1.ConditionTrue, Reason: "Test", Message: "late"})
	err := k8s.Status().Patch(testCtx, locked, controllers.StatusPatch(stale, locked.Status, stale.Status, true))
	if !apierrors.IsConflict(err) {
		t.Fatalf("a locked write from a stale read answered %v, want a conflict", err)
	}

	u = get(t, ns, "ada", &identityv1alpha1.User{})
	before = u.DeepCopy()
	meta.RemoveStatusCondition(&u.Status.Conditions, "Audited")
	if err := k8s.Status().Patch(testCtx, u, controllers.StatusPatch(before, u.Status, before.Status, true)); err != nil {
		t.Fatal(err)
	}
	if got := get(t, ns, "ada", &identityv1alpha1.User{}); condition(got.Status.Conditions, "Audited") != "absent" || condition(got.Status.Conditions, "Reviewed") != "absent" {
		t.Errorf("after taking Audited away: Audited %q, Reviewed %q", condition(got.Status.Conditions, "Audited"), condition(got.Status.Conditions, "Reviewed"))
	}
	if patch := controllers.StatusPatch(u, u.Status, *u.Status.DeepCopy(), false); patch != nil {
		t.Errorf("an unchanged status is written: %v", patch)
	}
}

// A locked status write of an object read from nowhere (no resourceVersion) is refused
// before it is sent, not sent unlocked.
func TestALockedStatusWriteNeedsAResourceVersion(t *testing.T) {
	u := newUser("any", "ada", "eng")
	after := u.Status.DeepCopy()
	after.Phase = identityv1alpha1.UserPhaseActive
	patch := controllers.StatusPatch(u, *after, u.Status, true)
	if _, err := patch.Data(u); err == nil {
		t.Fatal("a locked status write without a resourceVersion was made")
	}
	u.ResourceVersion = "7"
	data, err := controllers.StatusPatch(u, *after, u.Status, true).Data(u)
	if err != nil || !strings.Contains(string(data), `"resourceVersion":"7"`) || !strings.Contains(string(data), `"phase":"Active"`) {
		t.Errorf("the locked write sends %s (%v)", data, err)
	}
	data, err = controllers.StatusPatch(u, *after, u.Status, false).Data(u)
	if err != nil || strings.Contains(string(data), "resourceVersion") || strings.Contains(string(data), "spec") {
		t.Errorf("the unlocked write sends %s (%v)", data, err)
	}
}
