package memory

import (
	"context"
	"strconv"

	"github.com/rosterhq/roster/connectors"
)

// Source is the app read as a directory: each account a record (disabled when
// inactive), each group a group of account ids.
type Source struct{ *App }

// AsSource returns the app as a connectors.IncrementalSource.
func (a *App) AsSource() Source { return Source{a} }

var _ connectors.IncrementalSource = Source{}

// Validate succeeds unless a failure is injected.
func (s Source) Validate(ctx context.Context) error {
	_, err := s.App.Validate(ctx)
	return err
}

// Snapshot reads every account and group.
func (a *App) Snapshot(context.Context) (connectors.Snapshot, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.request(OpList, 1); err != nil {
		return connectors.Snapshot{}, err
	}
	snap := connectors.Snapshot{Watermark: strconv.Itoa(len(a.changes))}
	memberOf := a.memberships()
	for _, id := range a.order {
		snap.Records = append(snap.Records, a.record(id, memberOf))
	}
	snap.Groups = a.sourceGroups()
	return snap, nil
}

// Changes returns the records changed or deleted since watermark.
func (a *App) Changes(_ context.Context, watermark string) (connectors.ChangeSet, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.request(OpList, 1); err != nil {
		return connectors.ChangeSet{}, err
	}
	from, err := strconv.Atoi(watermark)
	if err != nil || from < 0 || from > len(a.changes) {
		return connectors.ChangeSet{}, &connectors.PermanentError{Message: "watermark " + strconv.Quote(watermark) + " is not one this app gave"}
	}
	set := connectors.ChangeSet{Watermark: strconv.Itoa(len(a.changes))}
	memberOf := a.memberships()
	seen := map[string]bool{}
	for _, c := range a.changes[from:] {
		if seen[c.id] {
			continue
		}
		seen[c.id] = true
		if _, exists := a.accounts[c.id]; exists {
			set.Changed = append(set.Changed, a.record(c.id, memberOf))
		} else if c.deleted {
			set.Deleted = append(set.Deleted, c.id)
		}
	}
	set.Groups = a.sourceGroups()
	return set, nil
}

func (a *App) record(id string, memberOf map[string][]string) connectors.Record {
	acc := clone(a.accounts[id])
	return connectors.Record{ID: id, Attributes: acc.Attributes, Disabled: !acc.Active, Groups: memberOf[id]}
}

func (a *App) memberships() map[string][]string {
	out := map[string][]string{}
	for _, gid := range a.gorder {
		for _, m := range a.groups[gid].Members {
			out[m] = append(out[m], gid)
		}
	}
	return out
}

func (a *App) sourceGroups() []connectors.SourceGroup {
	var out []connectors.SourceGroup
	for _, gid := range a.gorder {
		g := a.groups[gid]
		out = append(out, connectors.SourceGroup{ID: g.ID, Name: g.DisplayName, Members: append([]string(nil), g.Members...)})
	}
	return out
}
