package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// waitForPreview waits for a DirectorySyncPreview's Ready condition to have the reason.
func waitForPreview(t *testing.T, ns, name, reason string) *identityv1alpha1.DirectorySyncPreview {
	t.Helper()
	var p *identityv1alpha1.DirectorySyncPreview
	waitFor(t, "the preview "+name+" "+reason, func() (bool, string) {
		p = get(t, ns, name, &identityv1alpha1.DirectorySyncPreview{})
		c := meta.FindStatusCondition(p.Status.Conditions, identityv1alpha1.ConditionReady)
		return c != nil && c.Reason == reason, fmt.Sprintf("%+v", p.Status)
	})
	return p
}

// A preview answers what a proposed mapping and filter would do to a DirectorySync's
// Users, from the records it holds, and changes nothing: a department taken from
// another column updates two Users, a filter that leaves out sales suspends two (more
// than the sync's threshold holds), a mapping that fails on one record skips it; a
// preview that does not compile, or names no DirectorySync, says so.
func TestDirectorySyncPreview(t *testing.T) {
	ns := namespace(t)
	one := int32(1)
	csv := "id,firstName,lastName,email,department,team,costCenter\n" +
		"E1,Ada,Lovelace,ada@example.com,eng,platform,100\n" +
		"E2,Grace,Hopper,grace@example.com,eng,compilers,none\n" +
		"E3,Mary,Jackson,mary@example.com,sales,emea,300\n" +
		"E4,Katherine,Johnson,katherine@example.com,sales,,400\n"
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr"}, Data: map[string]string{"people.csv": csv}},
		&identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workday"},
			Spec: identityv1alpha1.DirectorySyncSpec{
				HRIS:            &identityv1alpha1.HRISSource{Format: "CSV", ConfigMapRef: &identityv1alpha1.ConfigMapKeySelector{Name: "hr", Key: "people.csv"}},
				SafetyThreshold: &identityv1alpha1.SafetyThreshold{MaxCount: &one},
			}})
	waitFor(t, "four Users", func() (bool, string) {
		n := len(syncedUsers(t, ns, "workday"))
		return n == 4, fmt.Sprint(n)
	})

	create(t, &identityv1alpha1.DirectorySyncPreview{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "by-team"},
		Spec: identityv1alpha1.DirectorySyncPreviewSpec{DirectorySyncName: "workday", Filter: `record.department != "sales"`,
			Mapping: []identityv1alpha1.ExpressionMapping{
				{Target: "department", Expression: `record.team`},
				{Target: "attributes.costCenter", Expression: `string(int(record.costCenter))`},
			}}})
	p := waitForPreview(t, ns, "by-team", identityv1alpha1.ReasonReconciled)
	if got, want := p.Status.Counts, (identityv1alpha1.PreviewCounts{Records: 4, Updated: 1, Suspended: 2, Skipped: 1}); got != want {
		t.Fatalf("counts %+v, want %+v; users %+v", got, want, p.Status.Users)
	}
	byUserName := map[string]identityv1alpha1.PreviewedUser{}
	for _, u := range p.Status.Users {
		byUserName[u.UserName] = u
	}
	if u := byUserName["ada@example.com"]; u.Action != identityv1alpha1.PreviewUpdate ||
		u.Patch != `{"spec":{"attributes":{"costCenter":"100"},"department":"platform"}}` {
		t.Errorf("ada: %+v", u)
	}
	if u := byUserName["grace@example.com"]; u.Action != identityv1alpha1.PreviewSkip || !strings.Contains(u.Message, "MappingError") {
		t.Errorf("grace, whose cost centre is no number: %+v", u)
	}
	for _, who := range []string{"mary@example.com", "katherine@example.com"} {
		if u := byUserName[who]; u.Action != identityv1alpha1.PreviewSuspend || u.Patch != `{"spec":{"state":"Suspended"}}` {
			t.Errorf("%s: %+v", who, u)
		}
	}
	if !strings.Contains(p.Status.Held, "2 suspensions and deletions (with 0 already in the window) exceed the DirectorySync's safety threshold") {
		t.Errorf("held: %q", p.Status.Held)
	}
	for name, u := range syncedUsers(t, ns, "workday") {
		if u.Spec.State == identityv1alpha1.UserStateSuspended || (u.Spec.Department != "eng" && u.Spec.Department != "sales") {
			t.Errorf("the preview changed %s: %+v", name, u.Spec)
		}
	}

	create(t, &identityv1alpha1.DirectorySyncPreview{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "broken"},
		Spec: identityv1alpha1.DirectorySyncPreviewSpec{DirectorySyncName: "workday", Filter: `record.department ==`}},
		&identityv1alpha1.DirectorySyncPreview{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nowhere"},
			Spec: identityv1alpha1.DirectorySyncPreviewSpec{DirectorySyncName: "okta"}})
	p = waitForPreview(t, ns, "broken", identityv1alpha1.ReasonInvalidSpec)
	if c := meta.FindStatusCondition(p.Status.Conditions, identityv1alpha1.ConditionStalled); c == nil || !strings.Contains(c.Message, "filter does not compile") {
		t.Errorf("a filter that does not compile: %+v", p.Status.Conditions)
	}
	p = waitForPreview(t, ns, "nowhere", identityv1alpha1.ReasonInvalidSpec)
	if c := meta.FindStatusCondition(p.Status.Conditions, identityv1alpha1.ConditionReady); !strings.Contains(c.Message, "there is no DirectorySync okta in this namespace") {
		t.Errorf("no such DirectorySync: %+v", c)
	}

	p = get(t, ns, "by-team", &identityv1alpha1.DirectorySyncPreview{})
	p.Spec.Filter = ""
	if err := env.Client.Update(context.Background(), p); err == nil || !strings.Contains(err.Error(), "a preview cannot be changed") {
		t.Errorf("changing a preview: %v", err)
	}
}
