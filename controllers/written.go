package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// ownWrites remembers the resourceVersion of a reconciler's last write to each object
// until the cache has it. A reconcile that reads from the cache an object older than
// its own last write computes from a status that is no longer there: the status it
// computes may equal the stale one, so it writes nothing, and what the last write said
// stays for good (a User left converging in an app that has long finished). Such a
// reconcile waits for the cache instead.
type ownWrites struct {
	mu      sync.Mutex
	pending map[types.NamespacedName]string
}

func newOwnWrites() *ownWrites {
	return &ownWrites{pending: map[types.NamespacedName]string{}}
}

// wrote records the object's resourceVersion after a reconcile, if a write changed it
// from read.
func (w *ownWrites) wrote(obj client.Object, read string) {
	if obj.GetResourceVersion() == read {
		return
	}
	w.mu.Lock()
	w.pending[client.ObjectKeyFromObject(obj)] = obj.GetResourceVersion()
	w.mu.Unlock()
}

// behind reports whether obj, as read from the cache, is older than this reconciler's
// last write to it.
func (w *ownWrites) behind(obj client.Object) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	key := client.ObjectKeyFromObject(obj)
	last, ok := w.pending[key]
	if !ok {
		return false
	}
	cmp, err := resourceversion.CompareResourceVersion(obj.GetResourceVersion(), last)
	if err != nil || cmp >= 0 {
		delete(w.pending, key) // caught up (or versions that do not compare: read as is)
		return false
	}
	return true
}

// forget drops an object that is gone.
func (w *ownWrites) forget(key types.NamespacedName) {
	w.mu.Lock()
	delete(w.pending, key)
	w.mu.Unlock()
}

// observer lets every event through, and forgets a write once the cache has it, so
// that only writes on their way are remembered.
func (w *ownWrites) observer() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			w.behind(e.ObjectNew)
			return true
		},
		DeleteFunc: func(e event.DeleteEvent) bool {
			w.forget(client.ObjectKeyFromObject(e.Object))
			return true
		},
	}
}
