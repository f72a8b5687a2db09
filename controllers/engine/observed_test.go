package engine

import (
	"context"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	"github.com/go-logr/logr"

	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/memory"
)

func TestAnAccountIsKeptPackedAndUnpackedWhole(t *testing.T) {
	e := New(testConfig(t, memory.NewApp()), &fakeSubjects{users: map[string]Subject{}}, nopNotifier{}, &recordedEvents{}, logr.Discard())
	attrs := map[string]any{
		"userName": "ada@example.com", "externalId": "E1", "name.givenName": "Ada",
		"emails": []any{map[string]any{"value": "ada@work.example", "type": "work"}, map[string]any{"value": "ada@example.com", "primary": true}},
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "eng",
	}
	e.app.put("42", pack(&connectors.Account{ID: "42", Active: true, Version: `W/"3"`, Attributes: attrs}, e.cfg.MatchBy))

	kept := e.app.accounts["42"]
	if kept.Attributes != nil || kept.userName != "ada@example.com" {
		t.Fatalf("kept %v and userName %q, want no attributes and the userName aside", kept.Attributes, kept.userName)
	}
	if e.app.byKey[keyIndex(connectors.KeyUserName, "ADA@example.com")] != "42" {
		t.Fatal("the kept account is not found by its userName, ignoring letter case")
	}
	full := kept.unpack()
	if !reflect.DeepEqual(full.Attributes, attrs) || full.ID != "42" || !full.Active || full.Version != `W/"3"` {
		t.Fatalf("unpacked %+v, want every attribute back", full)
	}
	if connectors.Differences(attrs, full.Attributes) != nil {
		t.Fatal("an unpacked account differs from what the app showed")
	}

	e.cfg.MatchBy = connectors.KeyEmail
	e.app.rekey(e.cfg.MatchBy)
	if e.app.byKey[keyIndex(connectors.KeyEmail, "Ada@Example.com")] != "42" || e.app.byKey[keyIndex(connectors.KeyExternalID, "e1")] != "42" || len(e.app.byKey) != 2 {
		t.Fatalf("after the matching key changed to email, the index is %v; want the email and the externalId", e.app.byKey)
	}

	e.app.put("42", nil)
	if len(e.app.accounts)+len(e.app.byKey) != 0 {
		t.Fatalf("a deleted account leaves %d accounts and %d index entries behind", len(e.app.accounts), len(e.app.byKey))
	}
}

func TestTheManagedAndUnmanagedAccountsFollowEveryChange(t *testing.T) {
	a := newObservedApp()
	rng := rand.New(rand.NewPCG(1, 2))
	ids := []string{"1", "2", "3", "4", "5", "6"}
	users := []string{"ada", "bob", "cy", "dee"}
	account := func() *observed {
		id := ids[rng.IntN(len(ids))]
		return pack(&connectors.Account{ID: id, Active: rng.IntN(3) > 0, Attributes: map[string]any{"userName": id}}, connectors.KeyUserName)
	}
	for step := range 5000 {
		switch op := rng.IntN(10); {
		case op < 4:
			o := account()
			a.put(o.ID, o)
		case op < 5:
			a.put(ids[rng.IntN(len(ids))], nil)
		case op < 8:
			a.link(users[rng.IntN(len(users))], ids[rng.IntN(len(ids))])
		case op < 9:
			a.unlink(users[rng.IntN(len(users))])
		default:
			var listed []*observed
			for range rng.IntN(len(ids)) {
				listed = append(listed, account())
			}
			if rng.IntN(2) == 0 {
				a.beginListing()
				o := account()
				a.put(o.ID, o)
			}
			a.replace(listed, nil, func(string) bool { return false })
			a.endListing()
		}
		managed, unmanaged := 0, map[string]bool{}
		for id, acc := range a.accounts {
			switch {
			case acc.Active && a.linkedBy[id] != "":
				managed++
			case acc.Active:
				unmanaged[id] = true
			}
		}
		if got := a.managedCount(); got != managed {
			t.Fatalf("step %d: %d managed accounts counted, %d held and active", step, got, managed)
		}
		got := map[string]bool{}
		for _, o := range a.unmanaged() {
			got[o.ID] = true
		}
		if !reflect.DeepEqual(got, unmanaged) {
			t.Fatalf("step %d: unmanaged %v, want the active accounts no User holds, %v", step, got, unmanaged)
		}
	}
}

// reconfiguredWhileListed is an app whose first listing, once begun, sees the engine
// configured anew (the AppConnection's matching key changed) before it answers.
type reconfiguredWhileListed struct {
	*memory.App
	once      sync.Once
	configure func()
}

func (r *reconfiguredWhileListed) ListAccounts(ctx context.Context, cursor string) (connectors.AccountPage, error) {
	r.once.Do(r.configure)
	return r.App.ListAccounts(ctx, cursor)
}

// TestAMatchingKeyChangedDuringAListingIndexesWhatItListedByTheNewKey: accounts are
// packed page by page as the listing goes, by the matching key of its start; a key
// changed meanwhile indexes them again once the listing is in.
func TestAMatchingKeyChangedDuringAListingIndexesWhatItListedByTheNewKey(t *testing.T) {
	app := &reconfiguredWhileListed{App: memory.NewApp()}
	if _, err := app.Create(context.Background(), connectors.Account{Active: true, Attributes: map[string]any{
		"userName": "ada", "emails": []any{map[string]any{"value": "ada@example.com", "primary": true}},
	}}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, app.App)
	cfg.Target = app
	e := New(cfg, &fakeSubjects{users: map[string]Subject{}}, nopNotifier{}, &recordedEvents{}, logr.Discard())
	app.configure = func() {
		byEmail := cfg
		byEmail.MatchBy = connectors.KeyEmail
		e.Configure(byEmail)
	}
	run(t, e)
	eventually(t, "the app listed", func() bool { return e.Snapshot().Health == HealthReady })
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.app.byMatchingKey(connectors.KeyEmail, "ADA@example.com") == nil {
		t.Fatalf("the account is not found by its email after the matching key changed to email during the listing; index %v", e.app.byKey)
	}
}
