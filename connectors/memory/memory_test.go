package memory

import (
	"context"
	"errors"
	"testing"

	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/conformance"
)

func TestConformance(t *testing.T) {
	conformance.Target(t, func(t *testing.T) connectors.Target { return NewApp() })
}

func TestCountsRequestsByKind(t *testing.T) {
	ctx := context.Background()
	app := NewApp()
	var ids []string
	for _, name := range []string{"a", "b", "c"} {
		acc, err := app.Create(ctx, connectors.Account{Active: true, Attributes: map[string]any{"userName": name}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, acc.ID)
	}
	g, _ := app.EnsureGroup(ctx, "all")
	many := make([]string, 0, 150)
	for range 50 {
		many = append(many, ids...)
	}
	if err := app.ChangeMembers(ctx, g, many, nil); err != nil {
		t.Fatal(err)
	}
	got := app.Requests()
	if got[OpCreate] != 3 || got[OpEnsureGroup] != 1 || got[OpGroupMembers] != 2 {
		t.Fatalf("requests = %v, want 3 creates, 1 group, 2 member batches for 150 changes", got)
	}
}

func TestInjectedFailures(t *testing.T) {
	app := NewApp()
	boom := &connectors.PermanentError{Status: 401, Err: connectors.ErrUnauthorized, Message: "token revoked"}
	app.FailWith(boom, OpValidate)
	if _, err := app.Validate(context.Background()); !errors.Is(err, connectors.ErrUnauthorized) {
		t.Fatalf("Validate = %v, want the injected failure", err)
	}
	if _, err := app.Create(context.Background(), connectors.Account{Attributes: map[string]any{"userName": "x"}}); err != nil {
		t.Fatalf("Create failed though only validate was set to fail: %v", err)
	}
	app.FailWith(nil)
	if _, err := app.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSourceReportsChangesSinceAWatermark(t *testing.T) {
	ctx := context.Background()
	app := NewApp()
	a, _ := app.Create(ctx, connectors.Account{Active: true, Attributes: map[string]any{"userName": "a"}})
	b, _ := app.Create(ctx, connectors.Account{Active: true, Attributes: map[string]any{"userName": "b"}})
	src := app.AsSource()
	snap, err := src.Snapshot(ctx)
	if err != nil || len(snap.Records) != 2 {
		t.Fatalf("Snapshot = %d records, %v", len(snap.Records), err)
	}
	if _, err := app.Deactivate(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := app.Delete(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	changes, err := src.Changes(ctx, snap.Watermark)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes.Changed) != 1 || changes.Changed[0].ID != a.ID || !changes.Changed[0].Disabled {
		t.Fatalf("changed = %+v, want a, disabled", changes.Changed)
	}
	if len(changes.Deleted) != 1 || changes.Deleted[0] != b.ID {
		t.Fatalf("deleted = %v, want b", changes.Deleted)
	}
	if again, _ := src.Changes(ctx, changes.Watermark); len(again.Changed)+len(again.Deleted) != 0 {
		t.Fatalf("changes after the latest watermark = %+v, want none", again)
	}
}
