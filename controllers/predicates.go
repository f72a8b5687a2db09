package controllers

import (
	"context"
	"encoding/json"
	"reflect"
	"time"

	"k8s.io/apimachinery/pkg/types"
	kworkqueue "k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers/engine"
)

type workqueue = kworkqueue.TypedRateLimitingInterface[reconcile.Request]

// specOrLabelsChanged passes an update that changed the spec (generation), the labels,
// the deletion timestamp or the orphan-accounts annotation: what membership and
// provisioning depend on; and, once deleted, its finalizers (a shard let go of it).
// Status-only updates (Roster's own) pass nothing on.
func specOrLabelsChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld, e.ObjectNew
		return o.GetGeneration() != n.GetGeneration() ||
			!reflect.DeepEqual(o.GetLabels(), n.GetLabels()) ||
			(o.GetDeletionTimestamp() == nil) != (n.GetDeletionTimestamp() == nil) ||
			o.GetAnnotations()[identityv1alpha1.AnnotationOrphanAccounts] != n.GetAnnotations()[identityv1alpha1.AnnotationOrphanAccounts] ||
			(n.GetDeletionTimestamp() != nil && len(o.GetFinalizers()) != len(n.GetFinalizers()))
	}}
}

// countsEvery is how often, at most, a Role's member count, an AppAssignment's account
// counts and a DirectorySync's sync counts are written while a sync or an identity
// provider's pushes change them by the thousand.
const countsEvery = 2 * time.Second

// coalesced enqueues an object at most once per interval, however often its news come:
// they come in bursts (an account of each of thousands of Users), and one reconcile
// after them says it all.
func coalesced(interval time.Duration) handler.EventHandler {
	return coalescedBySize(func(types.NamespacedName) time.Duration { return interval })
}

// coalescedBySize is coalesced with an interval of each object's own: the time its last
// reconcile's count over all its accounts or members may take to be worth repeating.
func coalescedBySize(interval func(types.NamespacedName) time.Duration) handler.EventHandler {
	return handler.Funcs{GenericFunc: func(_ context.Context, e event.GenericEvent, q workqueue) {
		key := client.ObjectKeyFromObject(e.Object)
		q.AddAfter(reconcile.Request{NamespacedName: key}, interval(key))
	}}
}

// Intervals in proportion to size, so that recounting a large organisation's status
// while thousands of its accounts change costs no larger a share of a core than a small
// one's: an AppAssignment's counts look each member up in the engine's accounts under
// its lock, an app's snapshot walks each of its accounts under that lock (about a
// microsecond each).
const (
	countEveryPerMember  = time.Millisecond      // 2 s up to 2,000 members, 10 s at 10,000
	snapshotEveryAccount = 40 * time.Microsecond // at once for a small app, 2 s at 50,000 accounts
)

// StatusSettlesWithin is how long after an organisation's last change the operator's
// deferred writes may still come: counts coalesced in proportion to the largest Role's
// members and the largest app's accounts, a count that only moves the numbers held
// back, and the summary of Events about single Users left out. A reader that waits for
// the status to stop moving (a benchmark, a script that checks counts) waits at least
// this long.
func StatusSettlesWithin(largestRole, largestApp int) time.Duration {
	return max(countsEvery, time.Duration(largestRole)*countEveryPerMember,
		time.Duration(largestApp)*snapshotEveryAccount, countsProgressEvery, engine.SummarizeEvery)
}

// equalJSON compares two values by their JSON form.
func equalJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}
