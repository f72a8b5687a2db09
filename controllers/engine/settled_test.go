package engine

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/memory"
)

// TestAResyncPlansAgainOnlyWhatTheListingChanged: a full resync of an app at rest plans
// no User again (once each User's last plan found nothing to do), and one that lists changes made in the app behind Roster's back plans
// exactly their Users and puts every change right: an attribute edited, an account
// deactivated, a member taken out of a group, and an account made with the stamp of a
// User who should have none.
func TestAResyncPlansAgainOnlyWhatTheListingChanged(t *testing.T) {
	app := memory.NewApp()
	subjects := &fakeSubjects{users: map[string]Subject{}}
	for _, name := range []string{"ada", "bob", "cy", "dee", "eve"} {
		subjects.set(name, func(s *Subject) { s.Groups = []string{"eng"} })
	}
	subjects.set("zed", func(s *Subject) { s.Assigned = false })
	cfg := testConfig(t, app)
	e, _ := startEngine(t, cfg, subjects)
	eventually(t, "five accounts in eng, and the engine idle", func() bool {
		gs := app.Groups()
		return activeAccounts(app) == 5 && len(gs) == 1 && len(gs[0].Members) == 5 && idle(e)
	})

	// The first resync plans again the Users whose last plan had changes to make; the
	// second has no one to plan.
	resync(t, e, &cfg)
	subjects.reads()
	resync(t, e, &cfg)
	if reads := subjects.reads(); len(reads) != 0 {
		t.Fatalf("a resync of an app at rest planned Users again: %v", reads)
	}

	ctx := context.Background()
	account := func(userName string) connectors.Account {
		for _, a := range app.Accounts() {
			if a.UserName() == userName {
				return a
			}
		}
		t.Fatalf("no account %s in the app", userName)
		return connectors.Account{}
	}
	bob, cy, dee := account("bob@example.com"), account("cy@example.com"), account("dee@example.com")
	edited := connectors.Account{Active: true, Attributes: map[string]any{"title": "edited in the app"}}
	if _, err := app.Update(ctx, bob, edited); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Deactivate(ctx, cy); err != nil {
		t.Fatal(err)
	}
	if err := app.ChangeMembers(ctx, app.Groups()[0], nil, []string{dee.ID}); err != nil {
		t.Fatal(err)
	}
	stamped := connectors.Account{Active: true, Attributes: map[string]any{"userName": "zed@example.com", "externalId": "zed"}}
	if _, err := app.Create(ctx, stamped); err != nil {
		t.Fatal(err)
	}
	resync(t, e, &cfg)

	if got := account("bob@example.com").Attributes["title"]; got != nil {
		t.Errorf("bob's title edited in the app is %v after the resync, want it removed", got)
	}
	if !account("cy@example.com").Active {
		t.Errorf("cy's account deactivated in the app is still inactive after the resync")
	}
	if !slices.Contains(app.Groups()[0].Members, dee.ID) {
		t.Errorf("dee, taken out of eng in the app, is not back in it after the resync")
	}
	if account("zed@example.com").Active {
		t.Errorf("the account stamped with zed's name, who should have none, is still active after the resync")
	}
	reads := subjects.reads()
	for _, name := range []string{"bob", "cy", "dee", "zed"} {
		if reads[name] == 0 {
			t.Errorf("%s, whose account changed in the app, was not planned again by the resync", name)
		}
	}
	for _, name := range []string{"ada", "eve"} {
		if reads[name] != 0 {
			t.Errorf("%s, unchanged, was planned again by the resync: %v", name, reads)
		}
	}
}

// resync asks an engine for a full resync and waits until it has listed the app and
// planned what the listing marked.
func resync(t *testing.T, e *Engine, cfg *Config) {
	t.Helper()
	listed := e.Snapshot().LastFullSync
	cfg.ResyncRequest = time.Now().Format(time.RFC3339Nano)
	e.Configure(*cfg)
	eventually(t, "the resync listed and planned", func() bool { return e.Snapshot().LastFullSync.After(listed) && settledDown(e) })
}

// settledDown reports whether an engine has nothing marked, planned or under way.
func settledDown(e *Engine) bool {
	e.mu.Lock()
	marked := len(e.dirty) + len(e.planned) + len(e.inbox.users)
	e.mu.Unlock()
	return marked == 0 && idle(e)
}

// TestASettledUserReadAsPendingDuringAResyncIsAnnouncedOnceItIsNot: a User read while a
// listing has marked it reads as pending; when the run passes it by, unchanged, it is
// announced, so that its status does not stay on pending.
func TestASettledUserReadAsPendingDuringAResyncIsAnnouncedOnceItIsNot(t *testing.T) {
	app := memory.NewApp()
	subjects := &fakeSubjects{users: map[string]Subject{}}
	subjects.set("ada", func(*Subject) {})
	news := &recordedNews{users: map[string]bool{}}
	cfg := testConfig(t, app)
	e := New(cfg, subjects, news, &recordedEvents{}, logr.Discard())
	run(t, e)
	eventually(t, "ada's account, and the engine idle", func() bool { return activeAccounts(app) == 1 && settledDown(e) })
	resync(t, e, &cfg) // plans her again, against the account as listed
	eventually(t, "the resync's news told", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.changedUsers) == 0
	})
	subjects.reads()
	e.mu.Lock()
	e.markAllLocked() // as a listing does
	_, settled := e.settled["ada"]
	e.mu.Unlock()
	if !settled {
		t.Fatal("ada is not settled after a resync planned her with nothing to do")
	}
	news.mu.Lock()
	clear(news.users)
	news.mu.Unlock()
	if !e.User("ada").Pending {
		t.Fatal("ada, marked by the listing, does not read as pending")
	}
	e.signal()
	eventually(t, "ada announced", func() bool { return news.told("ada") })
	if v := e.User("ada"); v.Pending || !v.Planned {
		t.Fatalf("after the run ada reads as pending %v, planned %v", v.Pending, v.Planned)
	}
	if reads := subjects.reads(); len(reads) != 0 {
		t.Fatalf("the run planned ada again: %v", reads)
	}
}
