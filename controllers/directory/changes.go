package directory

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/rosterhq/roster/connectors"
)

// changeQueue gathers the changes a watching source reports while earlier ones are
// being applied, so that a burst (a directory's refresh, a mass change) is applied in a
// few batches instead of one entry at a time, and a lone change at once. It keeps the
// later word on each record or group, by id: a refresh of 10,000 entries arriving one
// at a time costs 10,000 map writes, not a copy of everything pending per entry.
type changeQueue struct {
	mu      sync.Mutex
	pending pendingChanges
	wake    chan struct{}
}

// pendingChanges holds each id at most once: changed, a group, or deleted. Its maps
// are made by the first change set added, so that nil maps mean nothing is pending.
type pendingChanges struct {
	changed   map[string]connectors.Record
	groups    map[string]connectors.SourceGroup
	deleted   map[string]bool
	watermark string
}

func newChangeQueue() *changeQueue { return &changeQueue{wake: make(chan struct{}, 1)} }

// add puts a change set after the pending ones.
func (q *changeQueue) add(set connectors.ChangeSet) {
	q.mu.Lock()
	q.pending.add(set)
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
		if q.pending.changed != nil {
			set := q.pending.set()
			q.pending = pendingChanges{}
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

func (p *pendingChanges) add(set connectors.ChangeSet) {
	if p.changed == nil {
		p.changed, p.groups, p.deleted = map[string]connectors.Record{}, map[string]connectors.SourceGroup{}, map[string]bool{}
	}
	for _, r := range set.Changed {
		delete(p.deleted, r.ID)
		p.changed[r.ID] = r
	}
	for _, g := range set.Groups {
		delete(p.deleted, g.ID)
		p.groups[g.ID] = g
	}
	for _, id := range set.Deleted {
		delete(p.changed, id)
		delete(p.groups, id)
		p.deleted[id] = true
	}
	if set.Watermark != "" {
		p.watermark = set.Watermark
	}
}

// set is the pending changes as one change set, each part in the order of its ids.
func (p *pendingChanges) set() connectors.ChangeSet {
	out := connectors.ChangeSet{Watermark: p.watermark, Deleted: slices.Sorted(maps.Keys(p.deleted))}
	for _, id := range slices.Sorted(maps.Keys(p.changed)) {
		out.Changed = append(out.Changed, p.changed[id])
	}
	for _, id := range slices.Sorted(maps.Keys(p.groups)) {
		out.Groups = append(out.Groups, p.groups[id])
	}
	return out
}
