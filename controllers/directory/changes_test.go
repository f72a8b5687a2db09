package directory

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/rosterhq/roster/connectors"
)

func record(id, title string) connectors.Record {
	return connectors.Record{ID: id, Attributes: map[string]any{"title": title}}
}

// The queue keeps the later word on each id, whatever came before it, and hands all of
// it over at once.
func TestChangeQueueKeepsTheLaterWord(t *testing.T) {
	q := newChangeQueue()
	for _, set := range []connectors.ChangeSet{
		{Changed: []connectors.Record{record("ada", "Engineer"), record("bob", "Engineer")}, Watermark: "1"},
		{Changed: []connectors.Record{record("ada", "Director")}},            // changed again
		{Deleted: []string{"bob", "eng"}, Watermark: "2"},                    // a person and a group leave
		{Groups: []connectors.SourceGroup{{ID: "eng", Name: "Engineering"}}}, // the group is back
		{Groups: []connectors.SourceGroup{{ID: "ops", Name: "Operations"}}},  // and another is added
		{Deleted: []string{"ops"}}, // then deleted
		{Changed: []connectors.Record{record("cy", "Analyst")}, Deleted: []string{"dee"}}, // an unknown id deleted
	} {
		q.add(set)
	}
	got, ok := q.take(context.Background())
	if !ok {
		t.Fatal("take returned nothing")
	}
	want := connectors.ChangeSet{
		Changed:   []connectors.Record{record("ada", "Director"), record("cy", "Analyst")},
		Groups:    []connectors.SourceGroup{{ID: "eng", Name: "Engineering"}},
		Deleted:   []string{"bob", "dee", "ops"},
		Watermark: "2",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("took\n%+v\nwant\n%+v", got, want)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if set, ok := q.take(ctx); ok {
		t.Errorf("a second take found %+v, after the first took everything", set)
	}
}

// A refresh arriving one entry at a time is one change set of every entry.
func TestChangeQueueGathersARefresh(t *testing.T) {
	q := newChangeQueue()
	const n = 10000
	for i := range n {
		q.add(connectors.ChangeSet{Changed: []connectors.Record{record(fmt.Sprintf("p%05d", i), "Engineer")}})
	}
	got, _ := q.take(context.Background())
	seen := map[string]bool{}
	for _, r := range got.Changed {
		seen[r.ID] = true
	}
	if len(got.Changed) != n || len(seen) != n {
		t.Errorf("took %d records, %d distinct; want %d", len(got.Changed), len(seen), n)
	}
}
