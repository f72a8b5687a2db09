package directory

import (
	"context"
	"sync"

	"github.com/rosterhq/roster/connectors"
)

// changeQueue gathers the changes a watching source reports while earlier ones are
// being applied, so that a burst (a directory's refresh, a mass change) is applied in a
// few batches instead of one entry at a time, and a lone change at once.
type changeQueue struct {
	mu      sync.Mutex
	pending connectors.ChangeSet
	has     bool
	wake    chan struct{}
}

func newChangeQueue() *changeQueue { return &changeQueue{wake: make(chan struct{}, 1)} }

// add merges a change set into the pending one.
func (q *changeQueue) add(set connectors.ChangeSet) {
	q.mu.Lock()
	q.pending = mergeChanges(q.pending, set)
	q.has = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take waits for pending changes and returns them all; false once ctx ends.
func (q *changeQueue) take(ctx context.Context) (connectors.ChangeSet, bool) {
	for {
		q.mu.Lock()
		if q.has {
			set := q.pending
			q.pending, q.has = connectors.ChangeSet{}, false
			q.mu.Unlock()
			return set, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return connectors.ChangeSet{}, false
		case <-q.wake:
		}
	}
}

// mergeChanges is a then b: the later word on a record or group wins.
func mergeChanges(a, b connectors.ChangeSet) connectors.ChangeSet {
	later := map[string]bool{}
	for _, r := range b.Changed {
		later[r.ID] = true
	}
	for _, id := range b.Deleted {
		later[id] = true
	}
	out := connectors.ChangeSet{Watermark: a.Watermark}
	for _, r := range a.Changed {
		if !later[r.ID] {
			out.Changed = append(out.Changed, r)
		}
	}
	for _, id := range a.Deleted {
		if !later[id] {
			out.Deleted = append(out.Deleted, id)
		}
	}
	out.Changed = append(out.Changed, b.Changed...)
	out.Deleted = append(out.Deleted, b.Deleted...)
	laterGroup := map[string]bool{}
	for _, g := range b.Groups {
		laterGroup[g.ID] = true
	}
	for _, g := range a.Groups {
		if !laterGroup[g.ID] {
			out.Groups = append(out.Groups, g)
		}
	}
	out.Groups = append(out.Groups, b.Groups...)
	if b.Watermark != "" {
		out.Watermark = b.Watermark
	}
	return out
}
