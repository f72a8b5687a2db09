// Package conformance is the contract every connectors.Target must keep, as a test
// suite: run it from a connector's tests against a real (or in-process) app.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/rosterhq/roster/connectors"
)

// Target runs the suite. newTarget returns a Target over an empty app.
func Target(t *testing.T, newTarget func(t *testing.T) connectors.Target) {
	TargetOf(t, newTarget, App{})
}

// App says what an app holds where it holds less than an account directory does.
type App struct {
	// Keys are the matching keys it can find accounts by; nil is every key.
	Keys []connectors.KeyKind
	// Attribute is a path an update changes and the app keeps, with its new value;
	// "" is title.
	Attribute string
	Value     any
	// OneAccountPerKey: a create of a key that has an account is that account (a GitHub
	// membership), never a second one, so there is no conflict to adopt from.
	OneAccountPerKey bool
	// DeactivateRemoves: the app has no inactive accounts, and deactivation takes the
	// account away (a GitHub organization removes the member).
	DeactivateRemoves bool
	// UserName turns the suite's user names into ones the app takes (an email in the
	// app's domain); nil takes them as they are.
	UserName func(string) string
	// Attributes are added to every account the suite creates (names an app requires).
	Attributes map[string]any
}

// TargetOf runs the suite on an app that holds what app says.
func TargetOf(t *testing.T, newTarget func(t *testing.T) connectors.Target, app App) {
	ctx := context.Background()
	if app.Attribute == "" {
		app.Attribute, app.Value = "title", "Admiral"
	}
	if app.Keys == nil {
		app.Keys = []connectors.KeyKind{connectors.KeyUserName, connectors.KeyEmail, connectors.KeyExternalID}
	}
	if app.UserName == nil {
		app.UserName = func(s string) string { return s }
	}
	un := app.UserName
	keeps := func(a connectors.Account) bool {
		return len(connectors.Differences(map[string]any{app.Attribute: app.Value}, a.Attributes)) == 0
	}
	account := func(userName, email string) connectors.Account {
		attrs := map[string]any{
			connectors.AttrUserName: un(userName), connectors.AttrExternalID: "ext-" + userName,
			connectors.AttrEmails: []any{map[string]any{"value": email, "type": "work", "primary": true}},
			"title":               "Engineer",
		}
		maps.Copy(attrs, app.Attributes)
		return connectors.Account{Active: true, Attributes: attrs}
	}

	t.Run("validate", func(t *testing.T) {
		if _, err := newTarget(t).Validate(ctx); err != nil {
			t.Fatalf("Validate: %v", err)
		}
	})

	t.Run("create, find by every key in any letter case, conflict on a second create", func(t *testing.T) {
		target := newTarget(t)
		created, err := target.Create(ctx, account("Conf.Ada", "Conf.Ada@Example.com"))
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if created.ID == "" || !created.Active || created.UserName() != un("Conf.Ada") {
			t.Fatalf("created %+v", created)
		}
		for _, key := range []connectors.Key{
			{Kind: connectors.KeyUserName, Value: un("conf.ada")},
			{Kind: connectors.KeyEmail, Value: "conf.ada@example.com"},
			{Kind: connectors.KeyExternalID, Value: "ext-Conf.Ada"},
		} {
			if !slices.Contains(app.Keys, key.Kind) {
				continue
			}
			found, err := target.Lookup(ctx, key)
			if err != nil || found.ID != created.ID {
				t.Fatalf("Lookup(%v %q) = %q, %v; want %q", key.Kind, key.Value, found.ID, err, created.ID)
			}
		}
		again, err := target.Create(ctx, account("CONF.ADA", "other@example.com"))
		switch {
		case app.OneAccountPerKey && (err != nil || again.ID != created.ID):
			t.Fatalf("creating the same userName in other letters = %q, %v; want the same account, %q", again.ID, err, created.ID)
		case !app.OneAccountPerKey && !errors.Is(err, connectors.ErrConflict):
			t.Fatalf("creating the same userName in other letters = %v, want ErrConflict", err)
		}
		if !app.OneAccountPerKey {
			adopted, wasAdopted, err := connectors.CreateOrAdopt(ctx, target, account("conf.ada", "conf.ada@example.com"), connectors.KeyUserName)
			if err != nil || !wasAdopted || adopted.ID != created.ID {
				t.Fatalf("CreateOrAdopt = %q adopted=%v %v; want %q adopted", adopted.ID, wasAdopted, err, created.ID)
			}
		}
		if _, err := target.Lookup(ctx, connectors.Key{Kind: connectors.KeyUserName, Value: un("conf.nobody")}); !errors.Is(err, connectors.ErrNotFound) {
			t.Fatalf("Lookup of nobody = %v, want ErrNotFound", err)
		}
	})

	t.Run("update, deactivate, reactivate, delete twice", func(t *testing.T) {
		target := newTarget(t)
		created, err := target.Create(ctx, account("conf.grace", "conf.grace@example.com"))
		if err != nil {
			t.Fatal(err)
		}
		desired := created
		desired.Attributes = map[string]any{connectors.AttrUserName: un("conf.grace"), app.Attribute: app.Value}
		updated, err := target.Update(ctx, created, desired)
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		found, err := target.Lookup(ctx, connectors.Key{Kind: connectors.KeyUserName, Value: un("conf.grace")})
		if err != nil || !keeps(found) {
			t.Fatalf("after update the app has %s %v (%v)", app.Attribute, found.Attributes[app.Attribute], err)
		}
		deactivated, err := target.Deactivate(ctx, updated)
		if err != nil || deactivated.Active {
			t.Fatalf("Deactivate = active %v, %v", deactivated.Active, err)
		}
		found, err = target.Lookup(ctx, connectors.Key{Kind: connectors.KeyUserName, Value: un("conf.grace")})
		if app.DeactivateRemoves {
			if err == nil && found.Active {
				t.Fatalf("a deactivated account is still active: %+v", found)
			}
			if _, err := target.Create(ctx, desired); err != nil {
				t.Fatalf("creating a deactivated account again: %v", err)
			}
		} else {
			if err != nil || found.Active || !keeps(found) {
				t.Fatalf("a deactivated account must stay, inactive, with its attributes; got %+v, %v", found, err)
			}
			reactivated, err := target.Update(ctx, found, connectors.Account{Active: true, Attributes: found.Attributes})
			if err != nil || !reactivated.Active {
				t.Fatalf("Update to reactivate = active %v, %v", reactivated.Active, err)
			}
		}
		if err := target.Delete(ctx, created.ID); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if err := target.Delete(ctx, created.ID); err != nil {
			t.Fatalf("Delete of a deleted account = %v, want success", err)
		}
		if _, err := target.Lookup(ctx, connectors.Key{Kind: connectors.KeyUserName, Value: un("conf.grace")}); !errors.Is(err, connectors.ErrNotFound) {
			t.Fatalf("Lookup after Delete = %v, want ErrNotFound", err)
		}
	})

	t.Run("list every account page by page", func(t *testing.T) {
		target := newTarget(t)
		want := map[string]bool{}
		for i := range 130 {
			a, err := target.Create(ctx, account(fmt.Sprintf("conf.list%03d", i), fmt.Sprintf("list%03d@example.com", i)))
			if err != nil {
				t.Fatal(err)
			}
			want[a.ID] = true
		}
		seen := map[string]bool{}
		cursor, pages := "", 0
		for {
			page, err := target.ListAccounts(ctx, cursor)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, a := range page.Accounts {
				if seen[a.ID] {
					t.Fatalf("%s listed twice", a.UserName())
				}
				seen[a.ID] = true
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
		for id := range want {
			if !seen[id] {
				t.Fatalf("account %s was not listed", id)
			}
		}
		if pages < 2 {
			t.Fatalf("130 accounts came in %d page; the suite wants paging exercised", pages)
		}
	})

	t.Run("groups: ensure once, change members in both directions", func(t *testing.T) {
		target, ok := newTarget(t).(connectors.GroupTarget)
		if !ok {
			t.Fatal("the target has no groups")
		}
		var ids []string
		for i := range 5 {
			a, err := target.Create(ctx, account(fmt.Sprintf("conf.member%d", i), fmt.Sprintf("member%d@example.com", i)))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, a.ID)
		}
		group, err := target.EnsureGroup(ctx, "conf-engineering")
		if err != nil {
			t.Fatalf("EnsureGroup: %v", err)
		}
		again, err := target.EnsureGroup(ctx, "conf-engineering")
		if err != nil || again.ID != group.ID {
			t.Fatalf("second EnsureGroup = %q, %v; want %q", again.ID, err, group.ID)
		}
		if err := target.ChangeMembers(ctx, group, ids, nil); err != nil {
			t.Fatalf("adding members: %v", err)
		}
		if err := target.ChangeMembers(ctx, group, nil, ids[:2]); err != nil {
			t.Fatalf("removing members: %v", err)
		}
		members := listedMembers(t, target, group.ID)
		slices.Sort(members)
		want := slices.Clone(ids[2:])
		slices.Sort(want)
		if !slices.Equal(members, want) {
			t.Fatalf("members = %v, want %v", members, want)
		}
	})
}

func listedMembers(t *testing.T, target connectors.GroupTarget, groupID string) []string {
	t.Helper()
	cursor := ""
	for {
		page, err := target.ListGroups(context.Background(), cursor)
		if err != nil {
			t.Fatalf("ListGroups: %v", err)
		}
		for _, g := range page.Groups {
			if g.ID == groupID {
				return g.Members
			}
		}
		if page.Next == "" {
			t.Fatalf("group %s was not listed", groupID)
		}
		cursor = page.Next
	}
}
