package controllers

import (
	"context"
	"fmt"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/test/testenv"
)

// countedReader counts the AppAssignments its lists return.
type countedReader struct {
	client.Reader
	assignments int
}

func (c *countedReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	err := c.Reader.List(ctx, list, opts...)
	if l, ok := list.(*identityv1alpha1.AppAssignmentList); ok {
		c.assignments += len(l.Items)
	}
	return err
}

// TestAUsersEntitlementsReadOnlyTheAssignmentsThatMayGrantThem: an app assigned to
// thousands of Users one by one (access requests, GitOps) costs one User's plan its
// own assignments and the Roles', not every other User's.
func TestAUsersEntitlementsReadOnlyTheAssignmentsThatMayGrantThem(t *testing.T) {
	assign := func(name, app string, subject identityv1alpha1.AppAssignmentSpec, groups ...string) *identityv1alpha1.AppAssignment {
		subject.App, subject.Groups = app, groups
		return &identityv1alpha1.AppAssignment{ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: name}, Spec: subject}
	}
	toUser := func(u string) identityv1alpha1.AppAssignmentSpec {
		return identityv1alpha1.AppAssignmentSpec{UserRef: &identityv1alpha1.LocalObjectReference{Name: u}}
	}
	ada := testUser("ada", "eng", nil, nil)
	objs := []client.Object{&ada, testRole("eng", 1, identityv1alpha1.RoleMembers{Users: []string{"ada"}}),
		assign("eng-wiki", "wiki", identityv1alpha1.AppAssignmentSpec{RoleRef: &identityv1alpha1.LocalObjectReference{Name: "eng"}}, "Engineering"),
		assign("ada-wiki", "wiki", toUser("ada"), "Wiki-Admins"),
		assign("ada-crm", "crm", toUser("ada"), "Sales")}
	for i := range 2000 {
		objs = append(objs, assign(fmt.Sprintf("u%04d-wiki", i), "wiki", toUser(fmt.Sprintf("u%04d", i)), "Readers"))
	}
	cache, roles, _, _, err := memoryCache(testenv.Scheme(), objs)
	if err != nil {
		t.Fatal(err)
	}
	membership, _ := NewMembership()
	if _, err := membership.SetRole(&roles[0], listed([]identityv1alpha1.User{ada})); err != nil {
		t.Fatal(err)
	}
	counted := &countedReader{Reader: cache}
	subj, ok := (&subjects{cache: counted, membership: membership, namespace: "acme", app: "wiki"}).Subject("ada")
	if !ok || !subj.Assigned || !slices.Equal(subj.Groups, []string{"Engineering", "Wiki-Admins"}) {
		t.Fatalf("ada in the wiki: assigned %v, groups %v", subj.Assigned, subj.Groups)
	}
	if counted.assignments != 2 {
		t.Fatalf("planning ada read %d assignments, want her own and her Role's, 2", counted.assignments)
	}
}
