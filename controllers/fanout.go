package controllers

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// The fan-out: how a change to a User, to a Role's members or to an AppAssignment
// reaches the engines it concerns. It lives here and nowhere else; the Membership
// index is kept current on the way, so that an engine asked about a User sees the
// User and what it is assigned alike.

// usersToEngines evaluates a changed User against the Roles of its namespace, tells
// the Roles whose members changed (roleChanged, and their AppAssignments), and then
// the engines of the namespace: a User at a time, in the order they changed, so that
// a manager reaches the apps before its reports.
func (es *Engines) usersToEngines(roleChanged func(q workqueue, namespace, role string)) handler.EventHandler {
	changed := func(q workqueue, namespace, user string, roles []string) {
		for _, role := range roles {
			roleChanged(q, namespace, role)
			es.roleMembersChanged(namespace, role, []string{user})
		}
		es.markDirty(namespace, user)
	}
	set := func(obj client.Object, q workqueue) {
		if u, ok := obj.(*identityv1alpha1.User); ok {
			changed(q, u.Namespace, u.Name, es.membership.SetUser(u))
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue) { set(e.Object, q) },
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue) {
			set(e.ObjectNew, q)
			es.renamedManager(e.ObjectOld, e.ObjectNew)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue) {
			ns, name := e.Object.GetNamespace(), e.Object.GetName()
			changed(q, ns, name, es.membership.DeleteUser(ns, name))
		},
	}
}

// renamedManager tells the engines about the reports of a User whose userName changed:
// an app's mapping may give an account its manager's userName.
func (es *Engines) renamedManager(old, renamed client.Object) {
	before, ok := old.(*identityv1alpha1.User)
	after, ok2 := renamed.(*identityv1alpha1.User)
	if !ok || !ok2 || before.Spec.UserName == after.Spec.UserName {
		return
	}
	reports := (&subjects{cache: es.cache, namespace: after.Namespace}).Reports(after.Name)
	es.markDirty(after.Namespace, reports...)
}

// roleMembersChanged tells the engines of a namespace, and the Role's AppAssignments,
// that these Users joined or left a Role.
func (es *Engines) roleMembersChanged(namespace, role string, users []string) {
	if len(users) == 0 {
		return
	}
	es.markDirty(namespace, users...)
	es.entitlementsChanged(namespace, users)
	assignments, err := assignmentsBy(context.Background(), es.cache, indexAssignmentRole, namespace, role)
	if err != nil {
		return
	}
	for _, a := range assignments {
		es.assignmentEvents <- event.GenericEvent{Object: &identityv1alpha1.AppAssignment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: a.Name}}}
	}
}

// assignmentsToEngines tells an AppAssignment's app engine about the Users its subject
// names, before and after a change.
func (es *Engines) assignmentsToEngines() handler.EventHandler {
	mark := func(objs ...client.Object) {
		for _, obj := range objs {
			if a, ok := obj.(*identityv1alpha1.AppAssignment); ok {
				if e := es.Get(types.NamespacedName{Namespace: a.Namespace, Name: a.Spec.App}); e != nil {
					e.MarkDirty(subjectUsers(es.membership, a)...)
				} else {
					es.entitlementsChanged(a.Namespace, subjectUsers(es.membership, a))
				}
			}
		}
	}
	return handler.Funcs{
		CreateFunc:  func(_ context.Context, e event.CreateEvent, _ workqueue) { mark(e.Object) },
		UpdateFunc:  func(_ context.Context, e event.UpdateEvent, _ workqueue) { mark(e.ObjectOld, e.ObjectNew) },
		DeleteFunc:  func(_ context.Context, e event.DeleteEvent, _ workqueue) { mark(e.Object) },
		GenericFunc: func(_ context.Context, e event.GenericEvent, _ workqueue) { mark(e.Object) },
	}
}

// markDirty asks every engine of a namespace to look at these Users again.
func (es *Engines) markDirty(namespace string, users ...string) {
	for _, e := range es.InNamespace(namespace) {
		e.MarkDirty(users...)
	}
}

// entitlementsChanged reconciles Users whose Roles or AppAssignments changed, on the
// main shard's replica, when another shard runs an app of their namespace: the main
// replica's Ready counts what such an app still owes a User (owedByShard), and no engine
// of its own tells it that the User's entitlement to that app changed. The User's own
// watch is not enough: it may run before the Roles' members are counted again.
func (es *Engines) entitlementsChanged(namespace string, users []string) {
	if len(users) == 0 || es.shards == nil || !es.shards.main() || !es.othersRunAppsIn(namespace) {
		return
	}
	for _, u := range users {
		es.userEvents <- event.GenericEvent{Object: &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: u}}}
	}
}

// othersRunAppsIn says whether a namespace has an AppConnection this replica does not run.
func (es *Engines) othersRunAppsIn(namespace string) bool {
	var conns identityv1alpha1.AppConnectionList
	if err := es.cache.List(context.Background(), &conns, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return true
	}
	for i := range conns.Items {
		if !es.shards.Owns(&conns.Items[i]) {
			return true
		}
	}
	return false
}

// subjectUsers lists the Users an AppAssignment's subject names.
func subjectUsers(m *Membership, a *identityv1alpha1.AppAssignment) []string {
	switch {
	case a.Spec.UserRef != nil:
		return []string{a.Spec.UserRef.Name}
	case a.Spec.RoleRef != nil:
		return m.Members(a.Namespace, a.Spec.RoleRef.Name)
	}
	return nil
}
