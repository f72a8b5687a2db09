package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// ownWrites remembers the resourceVersion of a reconciler's last write to each object
// until the cache has it. A reconcile that reads from the cache an object older than
// its own last write computes from a status that is no longer there: the status it
// computes may equal the stale one, so it writes nothing, and what the last write said
// stays for good (a User left converging in an app that has long finished). Such a
// reconcile waits for the cache instead: the write's arrival queues the object again.
type ownWrites struct {
	mu      sync.Mutex
	pending map[types.NamespacedName]*ownWrite
}

type ownWrite struct {
	resourceVersion string
	awaited         bool // a reconcile read the object before the write reached the cache
}

// awaitedWriteRetry is how soon a reconcile that waits for its own write looks again
// should the write's arrival in the cache not queue it first.
const awaitedWriteRetry = time.Second

// waitForOwnWrite is the result of a reconcile that read an object behind its own last
// write to it.
var waitForOwnWrite = ctrl.Result{RequeueAfter: awaitedWriteRetry}

func newOwnWrites() *ownWrites {
	return &ownWrites{pending: map[types.NamespacedName]*ownWrite{}}
}

// wrote records the object's resourceVersion after a reconcile, if a write changed it
// from read.
func (w *ownWrites) wrote(obj client.Object, read string) {
	if obj.GetResourceVersion() == read {
		return
	}
	w.mu.Lock()
	w.pending[client.ObjectKeyFromObject(obj)] = &ownWrite{resourceVersion: obj.GetResourceVersion()}
	w.mu.Unlock()
}

// behind reports whether obj, as read from the cache, is older than this reconciler's
// last write to it; the write's arrival then queues the object again.
func (w *ownWrites) behind(obj client.Object) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.caughtUpLocked(obj) {
		return false
	}
	w.pending[client.ObjectKeyFromObject(obj)].awaited = true
	return true
}

// caughtUpLocked reports whether obj holds this reconciler's last write to it (or there
// is none on its way), and forgets the write if so. Versions that do not compare are
// taken as caught up: the object is read as it is.
func (w *ownWrites) caughtUpLocked(obj client.Object) bool {
	key := client.ObjectKeyFromObject(obj)
	last, ok := w.pending[key]
	if !ok {
		return true
	}
	cmp, err := resourceversion.CompareResourceVersion(obj.GetResourceVersion(), last.resourceVersion)
	if err != nil || cmp >= 0 {
		delete(w.pending, key)
		return true
	}
	return false
}

// forget drops an object that is gone.
func (w *ownWrites) forget(key types.NamespacedName) {
	w.mu.Lock()
	delete(w.pending, key)
	w.mu.Unlock()
}

// or passes what preds pass, and the arrival of a write a reconcile waits for.
func (w *ownWrites) or(preds ...predicate.Predicate) predicate.Predicate {
	return predicate.Or(append([]predicate.Predicate{w.arrived()}, preds...)...)
}

// arrived passes an update that brings into the cache a write a reconcile waits for,
// and forgets every write once the cache has it. It must see every update: put it
// first in a predicate.Or, which stops at the first that passes.
func (w *ownWrites) arrived() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			w.mu.Lock()
			defer w.mu.Unlock()
			last, ok := w.pending[client.ObjectKeyFromObject(e.ObjectNew)]
			return ok && w.caughtUpLocked(e.ObjectNew) && last.awaited
		},
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}
