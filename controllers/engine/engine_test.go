package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/mapping"
	"github.com/rosterhq/roster/connectors/memory"
)

// fakeSubjects is a namespace of Users held in memory, for engine unit tests.
type fakeSubjects struct {
	mu    sync.Mutex
	users map[string]Subject
	// read counts the reads of each User's Subject.
	read map[string]int
}

func (f *fakeSubjects) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.users {
		out = append(out, n)
	}
	return out
}

func (f *fakeSubjects) Subject(name string) (Subject, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.read == nil {
		f.read = map[string]int{}
	}
	f.read[name]++
	s, ok := f.users[name]
	return s, ok
}

// reads returns the reads of each User's Subject since the last call.
func (f *fakeSubjects) reads() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.read
	f.read = map[string]int{}
	return r
}

func (f *fakeSubjects) Reports(string) []string { return nil }

func (f *fakeSubjects) set(name string, change func(*Subject)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.users[name]
	if !ok {
		s = Subject{User: &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: identityv1alpha1.UserSpec{UserName: name + "@example.com"}}, Active: true, Assigned: true}
	}
	change(&s)
	f.users[name] = s
}

type nopNotifier struct{}

func (nopNotifier) UsersChanged(string, []string) {}
func (nopNotifier) AppChanged(string)             {}

// recordedNews keeps the Users an engine said changed.
type recordedNews struct {
	mu    sync.Mutex
	users map[string]bool
}

func (r *recordedNews) UsersChanged(_ string, users []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range users {
		r.users[u] = true
	}
}
func (r *recordedNews) AppChanged(string) {}

func (r *recordedNews) told(user string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.users[user]
}

type recordedEvents struct {
	mu      sync.Mutex
	reasons []string
	// appMessages are the messages of the Events on the AppConnection.
	appMessages []string
}

func (r *recordedEvents) User(_, _, _, reason, _ string) {
	r.mu.Lock()
	r.reasons = append(r.reasons, reason)
	r.mu.Unlock()
}
func (r *recordedEvents) App(_, _, reason, message string) {
	r.mu.Lock()
	r.reasons = append(r.reasons, reason)
	r.appMessages = append(r.appMessages, message)
	r.mu.Unlock()
}

func testConfig(t *testing.T, app *memory.App) Config {
	t.Helper()
	env, err := mapping.NewEnv(mapping.AccountVars...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := env.CompileMappings(mapping.DefaultAccountMapping, nil)
	if err != nil {
		t.Fatal(err)
	}
	maxCount := int32(25)
	return Config{
		App: "acme/app", Target: app, Mapping: m, MatchBy: connectors.KeyUserName,
		OnSuspend: identityv1alpha1.SuspendDeactivate, OnRemoval: identityv1alpha1.RemovalDeactivate,
		Unmanaged: identityv1alpha1.UnmanagedReport, MaxCount: &maxCount, Mode: identityv1alpha1.ModeEnforce,
		Resync: time.Hour, Workers: 4,
	}
}

func startEngine(t *testing.T, cfg Config, subjects *fakeSubjects, before ...func(*Engine)) (*Engine, *recordedEvents) {
	t.Helper()
	events := &recordedEvents{}
	e := New(cfg, subjects, nopNotifier{}, events, logr.Discard())
	for _, f := range before {
		f(e)
	}
	run(t, e)
	return e, events
}

// run runs an engine until the test ends.
func run(t *testing.T, e *Engine) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func activeAccounts(app *memory.App) int {
	n := 0
	for _, a := range app.Accounts() {
		if a.Active {
			n++
		}
	}
	return n
}

func TestJoinerGetsAnAccountAndGroupsThenLeavesIt(t *testing.T) {
	app := memory.NewApp()
	subjects := &fakeSubjects{users: map[string]Subject{}}
	subjects.set("ada", func(s *Subject) { s.Groups = []string{"eng"} })
	e, events := startEngine(t, testConfig(t, app), subjects)

	eventually(t, "ada has an account in group eng", func() bool {
		gs := app.Groups()
		return activeAccounts(app) == 1 && len(gs) == 1 && len(gs[0].Members) == 1
	})
	if v := e.User("ada"); !v.Known || v.Account.State != identityv1alpha1.AccountStateActive {
		t.Fatalf("ada's account status = %+v %v", v.Account, v.Known)
	}

	subjects.set("ada", func(s *Subject) { s.Active = false })
	e.MarkDirty("ada")
	eventually(t, "ada's account is deactivated and out of eng", func() bool {
		gs := app.Groups()
		return activeAccounts(app) == 0 && len(app.Accounts()) == 1 && len(gs[0].Members) == 0
	})
	if why := e.User("ada").Waiting; why != "" {
		t.Fatalf("not settled after deprovisioning: %s", why)
	}
	events.mu.Lock()
	defer events.mu.Unlock()
	if fmt.Sprint(events.reasons) != "[Provisioned Deprovisioned]" {
		t.Fatalf("events = %v", events.reasons)
	}
}

func TestAMassDeprovisionWaitsForApproval(t *testing.T) {
	app := memory.NewApp()
	subjects := &fakeSubjects{users: map[string]Subject{}}
	for i := range 30 {
		subjects.set(fmt.Sprintf("u%02d", i), func(*Subject) {})
	}
	cfg := testConfig(t, app)
	e, _ := startEngine(t, cfg, subjects)
	eventually(t, "30 accounts", func() bool { return activeAccounts(app) == 30 })

	var names []string
	for i := range 30 {
		name := fmt.Sprintf("u%02d", i)
		subjects.set(name, func(s *Subject) { s.Assigned = false })
		names = append(names, name)
	}
	e.MarkDirty(names...)
	eventually(t, "the plan is blocked", func() bool { return e.Snapshot().Blocked })
	// Blocked is set in the same step that holds the deprovisions: none was sent.
	if activeAccounts(app) != 30 {
		t.Fatalf("%d accounts active while the plan waits for approval, want 30", activeAccounts(app))
	}
	snap := e.Snapshot()
	if snap.Plan.Deactivations != 30 || snap.Plan.ID == "" {
		t.Fatalf("plan = %+v", snap.Plan)
	}
	cfg.ApprovedPlan = snap.Plan.ID
	e.Configure(cfg)
	eventually(t, "the approved plan is applied", func() bool { return activeAccounts(app) == 0 })
}

// threeChunksOfSubjects are 2*planChunk+10 assigned Users, u0000 on: a planning run
// of them takes three chunks.
func threeChunksOfSubjects() *fakeSubjects {
	subjects := &fakeSubjects{users: map[string]Subject{}}
	for i := range 2*planChunk + 10 {
		subjects.set(fmt.Sprintf("u%04d", i), func(*Subject) {})
	}
	return subjects
}

// idle reports whether an engine has nothing to plan and no planning run under way
// (between a run's chunks Snapshot shows no work for the Users still to plan).
func idle(e *Engine) bool {
	if e.Snapshot().Converging {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runLeft == 0
}

// TestAPlanningRunLetsOthersInBetweenChunksAndIsHeldAsOne: a run of more Users than a
// chunk lets go of the engine's lock between chunks (the engine answers for a User
// meanwhile), and its deprovisions, planned over several chunks, are weighed against
// the threshold as one plan: none is sent before the run ends, and all are held.
func TestAPlanningRunLetsOthersInBetweenChunksAndIsHeldAsOne(t *testing.T) {
	app, subjects, n := memory.NewApp(), threeChunksOfSubjects(), 2*planChunk+10
	var leaving atomic.Bool
	var mu sync.Mutex
	var activeBetween []int
	cfg := testConfig(t, app)
	maxCount := int32(planChunk + planChunk/2) // more than a chunk, less than the run
	cfg.MaxCount = &maxCount
	e, _ := startEngine(t, cfg, subjects, func(e *Engine) {
		e.betweenChunks = func() {
			if !leaving.Load() {
				return
			}
			e.User("u0000") // the lock is free: this would wait for the run's end otherwise
			mu.Lock()
			activeBetween = append(activeBetween, activeAccounts(app))
			mu.Unlock()
		}
	})
	eventually(t, fmt.Sprintf("%d accounts, and the engine idle", n), func() bool { return activeAccounts(app) == n && idle(e) })

	leaving.Store(true)
	var names []string
	for i := range n {
		name := fmt.Sprintf("u%04d", i)
		subjects.set(name, func(s *Subject) { s.Assigned = false })
		names = append(names, name)
	}
	e.MarkDirty(names...)
	eventually(t, "the plan is blocked", func() bool { return e.Snapshot().Blocked })
	mu.Lock()
	defer mu.Unlock()
	if len(activeBetween) != 2 || slices.ContainsFunc(activeBetween, func(active int) bool { return active != n }) {
		t.Fatalf("between chunks %v accounts were active, want %d twice (three chunks, nothing sent)", activeBetween, n)
	}
	if got := e.Snapshot().Plan.Deactivations; got != n || activeAccounts(app) != n {
		t.Fatalf("the held plan deactivates %d and %d accounts are active, want %d of %d", got, activeAccounts(app), n, n)
	}
}

// TestALeaverIsNotKeptWaitingForARunUnderWay: a User who leaves while a long run plans
// every User (a resync of a large app) is planned between the run's chunks and
// deactivated before the run ends, once, not after the whole run.
func TestALeaverIsNotKeptWaitingForARunUnderWay(t *testing.T) {
	t.Run("marked", func(t *testing.T) { testALeaverNotKeptWaiting(t, func(*Engine, string) {}) })
	// The User controller reads a User's view as soon as the User changes, which takes
	// the mark in: the leaver is dirty then, but the run must still plan it next.
	t.Run("marked and its status read", func(t *testing.T) {
		testALeaverNotKeptWaiting(t, func(e *Engine, leaver string) { e.User(leaver) })
	})
}

func testALeaverNotKeptWaiting(t *testing.T, afterTheMark func(e *Engine, leaver string)) {
	app, subjects, n := memory.NewApp(), threeChunksOfSubjects(), 2*planChunk+10
	leaver := fmt.Sprintf("u%04d", n-1) // in the run's last chunk
	var replanning, offBeforeTheRunEnded atomic.Bool
	var chunks atomic.Int32
	e, _ := startEngine(t, testConfig(t, app), subjects, func(e *Engine) {
		e.betweenChunks = func() {
			if !replanning.Load() {
				return
			}
			switch chunks.Add(1) {
			case 1:
				subjects.set(leaver, func(s *Subject) { s.Assigned = false })
				e.MarkDirty(leaver)
				afterTheMark(e, leaver)
			case 2: // the engine's lock is free: its workers may write meanwhile
				deadline := time.Now().Add(5 * time.Second)
				for activeAccounts(app) != n-1 && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				offBeforeTheRunEnded.Store(activeAccounts(app) == n-1)
			}
		}
	})
	eventually(t, fmt.Sprintf("%d accounts, and the engine idle", n), func() bool { return activeAccounts(app) == n && idle(e) })

	replanning.Store(true)
	e.MarkDirty(subjects.Names()...)
	eventually(t, "the run over and the leaver's account deactivated", func() bool { return idle(e) && activeAccounts(app) == n-1 })
	if !offBeforeTheRunEnded.Load() {
		t.Fatalf("the leaver's account was still active after the run's second chunk: deprovisioned only once the run ended")
	}
	if got := app.Requests()[memory.OpDeactivate]; got != 1 {
		t.Fatalf("%d deactivate requests, want 1", got)
	}
}

// TestAUserNotPlannedSinceTheListingKeepsWhatItsStatusRecorded: an engine that takes an
// app over (a new leader) lists it, then plans its Users a chunk at a time. A User not
// planned yet must not read as having no account there: the User's status would lose
// the entry, and planning the User afterwards, finding the account the status had
// recorded, would see nothing new to announce and never bring the entry back.
func TestAUserNotPlannedSinceTheListingKeepsWhatItsStatusRecorded(t *testing.T) {
	app, subjects, n := memory.NewApp(), threeChunksOfSubjects(), 2*planChunk+10
	first, _ := startEngine(t, testConfig(t, app), subjects)
	eventually(t, fmt.Sprintf("%d accounts, and the engine idle", n), func() bool { return activeAccounts(app) == n && idle(first) })

	last := fmt.Sprintf("u%04d", n-1) // in the new engine's last chunk
	var before atomic.Pointer[UserView]
	next, _ := startEngine(t, testConfig(t, app), subjects, func(e *Engine) {
		e.betweenChunks = func() {
			if before.Load() == nil {
				v := e.User(last)
				before.Store(&v)
			}
		}
	})
	eventually(t, "the new engine past its first chunk", func() bool { return before.Load() != nil })
	if v := before.Load(); v.Planned || v.Known {
		t.Fatalf("before its plan, %s reads as planned %v with an account known %v: a User's status would drop its entry", last, v.Planned, v.Known)
	}
	eventually(t, "the new engine idle", func() bool { return idle(next) })
	if v := next.User(last); !v.Planned || !v.Known || v.Account.State != identityv1alpha1.AccountStateActive {
		t.Fatalf("once planned, %s reads as planned %v, known %v, %+v; want its active account", last, v.Planned, v.Known, v.Account)
	}
}

// TestARunThatChangesNothingShowsNoWorkBetweenChunks: while a run that finds nothing
// to do (a resync) plans its Users a chunk at a time, the engine shows no work in
// progress, so the AppConnection's status is not written twice for nothing.
func TestARunThatChangesNothingShowsNoWorkBetweenChunks(t *testing.T) {
	app, subjects, n := memory.NewApp(), threeChunksOfSubjects(), 2*planChunk+10
	var replanning atomic.Bool
	var chunks, converging atomic.Int32
	e, _ := startEngine(t, testConfig(t, app), subjects, func(e *Engine) {
		e.betweenChunks = func() {
			if replanning.Load() {
				if e.Snapshot().Converging {
					converging.Add(1)
				}
				chunks.Add(1)
			}
		}
	})
	eventually(t, fmt.Sprintf("%d accounts, and the engine idle", n), func() bool { return activeAccounts(app) == n && idle(e) })

	replanning.Store(true)
	e.MarkDirty(subjects.Names()...)
	eventually(t, "a run of three chunks", func() bool { return chunks.Load() >= 2 })
	if converging.Load() != 0 {
		t.Fatalf("a run with nothing to do showed work in progress between %d of its chunks", converging.Load())
	}
}

func TestPlanModeWritesNothing(t *testing.T) {
	app := memory.NewApp()
	subjects := &fakeSubjects{users: map[string]Subject{}}
	subjects.set("ada", func(s *Subject) { s.Groups = []string{"eng"} })
	subjects.set("grace", func(*Subject) {})
	cfg := testConfig(t, app)
	cfg.Mode = identityv1alpha1.ModePlan
	e, _ := startEngine(t, cfg, subjects)
	eventually(t, "the plan shows two creates", func() bool { return e.Snapshot().Plan.Creates == 2 })
	if n := app.Requests()[memory.OpCreate]; n != 0 {
		t.Fatalf("Plan mode created %d accounts", n)
	}
	cfg.Mode = identityv1alpha1.ModeEnforce
	e.Configure(cfg)
	eventually(t, "Enforce applies the plan", func() bool { return activeAccounts(app) == 2 })
}

func TestMoverChangesGroupsOnly(t *testing.T) {
	app := memory.NewApp()
	subjects := &fakeSubjects{users: map[string]Subject{}}
	subjects.set("ada", func(s *Subject) { s.Groups = []string{"eng"} })
	e, _ := startEngine(t, testConfig(t, app), subjects)
	members := func(name string) int {
		for _, g := range app.Groups() {
			if g.DisplayName == name {
				return len(g.Members)
			}
		}
		return -1
	}
	eventually(t, "ada is in eng", func() bool { return members("eng") == 1 })
	subjects.set("ada", func(s *Subject) { s.Groups = []string{"ops"} })
	e.MarkDirty("ada")
	eventually(t, "ada moved from eng to ops", func() bool { return members("eng") == 0 && members("ops") == 1 })
	if n := app.Requests()[memory.OpCreate]; n != 1 {
		t.Fatalf("%d creates", n)
	}
}

func TestABulkJoinRecordsABoundedNumberOfUserEventsAndASummary(t *testing.T) {
	app := memory.NewApp()
	subjects := &fakeSubjects{users: map[string]Subject{}}
	const joiners = userEventBurst + 50
	for i := range joiners {
		subjects.set(fmt.Sprintf("user-%03d", i), func(*Subject) {})
	}
	_, events := startEngine(t, testConfig(t, app), subjects, summarizeSoon)

	eventually(t, "every joiner has an account and the events left out are summed up", func() bool {
		return activeAccounts(app) == joiners && events.userEventsAndSummed() == joiners
	})
	events.mu.Lock()
	defer events.mu.Unlock()
	userEvents := len(events.reasons) - len(events.appMessages)
	if userEvents >= joiners || userEvents < userEventBurst {
		t.Fatalf("%d Events about single Users for %d joiners, want the burst of %d and not one per joiner", userEvents, joiners, userEventBurst)
	}
	if !strings.Contains(events.appMessages[0], "more accounts provisioned in acme/app") {
		t.Fatalf("summaries %q", events.appMessages)
	}
}

func TestTheAppsOfANamespaceShareOneBudgetForUserEvents(t *testing.T) {
	subjects := &fakeSubjects{users: map[string]Subject{}}
	const joiners = userEventBurst
	for i := range joiners {
		subjects.set(fmt.Sprintf("user-%03d", i), func(*Subject) {})
	}
	budget := NewUserEventBudget()
	var apps []*memory.App
	var events []*recordedEvents
	for _, name := range []string{"acme/app-a", "acme/app-b"} {
		app := memory.NewApp()
		cfg := testConfig(t, app)
		cfg.App, cfg.UserEvents = name, budget
		_, ev := startEngine(t, cfg, subjects, summarizeSoon)
		apps, events = append(apps, app), append(events, ev)
	}
	eventually(t, "every joiner has an account in both apps and every event left out is summed up", func() bool {
		return activeAccounts(apps[0]) == joiners && activeAccounts(apps[1]) == joiners &&
			events[0].userEventsAndSummed()+events[1].userEventsAndSummed() == 2*joiners
	})
	userEvents := 0
	for _, ev := range events {
		ev.mu.Lock()
		userEvents += len(ev.reasons) - len(ev.appMessages)
		ev.mu.Unlock()
	}
	// The refill of one a second lets a few more through while the accounts are made.
	if userEvents >= 2*joiners-10 {
		t.Fatalf("%d Events about single Users for %d accounts in two apps, want about the one burst of %d the apps share", userEvents, 2*joiners, userEventBurst)
	}
}

func TestAUserAssignedWhileTheAppCannotBeReachedIsTold(t *testing.T) {
	app := memory.NewApp()
	app.FailWith(&connectors.PermanentError{Status: 401, Err: connectors.ErrUnauthorized, Message: "token revoked"}, memory.OpValidate)
	subjects := &fakeSubjects{users: map[string]Subject{}}
	news := &recordedNews{users: map[string]bool{}}
	e := New(testConfig(t, app), subjects, news, &recordedEvents{}, logr.Discard())
	run(t, e)
	eventually(t, "the engine finds the app's credentials rejected", func() bool { return e.Snapshot().Health == HealthFailing })

	subjects.set("late", func(*Subject) {})
	e.MarkDirty("late")
	eventually(t, "the User assigned after the app failed is news, for its status to say why", func() bool { return news.told("late") })
	if v := e.User("late"); !errors.Is(v.Unreachable, connectors.ErrUnauthorized) {
		t.Fatalf("the User's view says %v, want the rejected credentials", v.Unreachable)
	}
}

// summarizeSoon has an engine sum up the Events it left out soon after the first.
func summarizeSoon(e *Engine) { e.userEvents.every = 50 * time.Millisecond }

// userEventsAndSummed is how many Events about single Users were recorded or counted in
// a summary.
func (r *recordedEvents) userEventsAndSummed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.reasons) - len(r.appMessages)
	for _, m := range r.appMessages {
		var more int
		if _, err := fmt.Sscanf(m, "%d more accounts", &more); err == nil {
			n += more
		}
	}
	return n
}

// withAccounts starts an engine over n Users that each have an active account.
func withAccounts(t *testing.T, n int, cfg func(*Config)) (*Engine, *memory.App, *fakeSubjects, Config) {
	t.Helper()
	app := memory.NewApp()
	subjects := &fakeSubjects{users: map[string]Subject{}}
	for i := range n {
		subjects.set(fmt.Sprintf("u%02d", i), func(*Subject) {})
	}
	c := testConfig(t, app)
	if cfg != nil {
		cfg(&c)
	}
	e, _ := startEngine(t, c, subjects)
	eventually(t, fmt.Sprintf("%d accounts", n), func() bool { return activeAccounts(app) == n })
	return e, app, subjects, c
}

func (e *Engine) heldCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.held)
}

func TestThresholdHoldsDeprovisionsThatArriveOneByOne(t *testing.T) {
	e, app, subjects, cfg := withAccounts(t, 30, nil)
	for i := range 30 {
		name := fmt.Sprintf("u%02d", i)
		subjects.set(name, func(s *Subject) { s.Deleting = true; s.Assigned = false })
		e.MarkDirty(name)
		time.Sleep(5 * time.Millisecond) // as a GitOps prune deletes them
	}
	eventually(t, "every deprovision is sent or held", func() bool { return 30-activeAccounts(app)+e.heldCount() == 30 })
	deprovisioned := 30 - activeAccounts(app)
	if deprovisioned > 25 || !e.Snapshot().Blocked {
		t.Fatalf("%d accounts deprovisioned one by one against maxCount 25 (blocked: %v), want at most 25 and the rest held", deprovisioned, e.Snapshot().Blocked)
	}
	msg := e.Snapshot().BlockedMessage
	if !strings.Contains(msg, fmt.Sprintf("%d already deprovisioned in the last 10m0s", deprovisioned)) || !strings.Contains(msg, "kubectl annotate appconnection app "+identityv1alpha1.AnnotationApprovePlan) {
		t.Fatalf("blocked message %q does not say how many were sent and how to approve", msg)
	}
	cfg.ApprovedPlan = e.Snapshot().Plan.ID
	e.Configure(cfg)
	eventually(t, "the approved remainder is deprovisioned", func() bool { return activeAccounts(app) == 0 })
	if got := e.window.Count(time.Now()); got != 30 {
		t.Fatalf("the window counts %d deprovisions after approval, want 30", got)
	}
}

func TestThresholdCountsWhatWasSentBeforeARestart(t *testing.T) {
	sentBefore := []identityv1alpha1.DeprovisionCount{{Since: metav1.NewTime(time.Now().Add(-time.Minute)), Count: 25}}
	e, app, subjects, _ := withAccounts(t, 3, func(c *Config) { c.Counted = sentBefore })
	subjects.set("u00", func(s *Subject) { s.Active = false })
	e.MarkDirty("u00")
	eventually(t, "the deprovision is held", func() bool { return e.heldCount() == 1 })
	if activeAccounts(app) != 3 {
		t.Fatalf("%d accounts active, want 3: 25 deprovisions were sent a minute before the restart", activeAccounts(app))
	}
	if got := e.Snapshot().RecentDeprovisions; len(got) != 1 || got[0].Count != 25 {
		t.Fatalf("status keeps %+v of the window, want the 25 sent before", got)
	}
}

func TestThresholdForgetsDeprovisionsOlderThanItsWindow(t *testing.T) {
	old := []identityv1alpha1.DeprovisionCount{{Since: metav1.NewTime(time.Now().Add(-time.Hour)), Count: 25}}
	e, app, subjects, _ := withAccounts(t, 3, func(c *Config) { c.Counted = old; c.Window = 10 * time.Minute })
	subjects.set("u00", func(s *Subject) { s.Active = false })
	e.MarkDirty("u00")
	eventually(t, "the deprovision is sent", func() bool { return activeAccounts(app) == 2 })
	if e.Snapshot().Blocked {
		t.Fatal("blocked by deprovisions sent an hour ago, outside a 10m window")
	}
}

func TestAReleasedUserKeepsItsAccountAsItIs(t *testing.T) {
	e, app, subjects, _ := withAccounts(t, 2, nil)
	e.Release("u00")
	subjects.set("u00", func(s *Subject) { s.Deleting = true })
	e.MarkDirty("u00", "u01")
	subjects.set("u01", func(s *Subject) { s.Active = false })
	e.MarkDirty("u01")
	eventually(t, "u01, not released, is deactivated", func() bool { return activeAccounts(app) == 1 })
	if acc, ok := app.Lookup(context.Background(), connectors.Key{Kind: connectors.KeyUserName, Value: "u00@example.com"}); ok != nil || !acc.Active {
		t.Fatalf("the released account = %+v, %v; want it active, as it was", acc, ok)
	}
	if why := e.User("u00").Waiting; why != "" {
		t.Fatalf("a released User is not settled: %s", why)
	}
	if e.Snapshot().Unmanaged != 1 {
		t.Fatalf("unmanaged = %d, want the released account counted as unmanaged", e.Snapshot().Unmanaged)
	}
}

func TestARateLimitedUpdateDoesNotHoldBackTheKillSwitch(t *testing.T) {
	e, app, subjects, _ := withAccounts(t, 1, nil)
	app.FailWith(&connectors.RateLimitedError{RetryAfter: 365 * 24 * time.Hour, Message: "slow down"}, "update")
	subjects.set("u00", func(s *Subject) { s.User.Spec.Title = "Engineer" })
	e.MarkDirty("u00")
	eventually(t, "the update fails, rate limited", func() bool {
		st := e.User("u00").Account
		return st.State == identityv1alpha1.AccountStateFailed
	})
	e.mu.Lock()
	wait := e.retry["u00"].next.Sub(e.now())
	e.mu.Unlock()
	if wait > connectors.MaxRetryAfter {
		t.Fatalf("the app's Retry-After of a year holds the User for %s, over the cap of %s", wait, connectors.MaxRetryAfter)
	}
	subjects.set("u00", func(s *Subject) { s.Active = false }) // the kill switch
	e.MarkDirty("u00")
	eventually(t, "the account is deactivated at once", func() bool { return activeAccounts(app) == 0 })
}

// lostAnswers is an app whose first create goes through while its answer is lost, as
// when a connection is reset or times out after the app made the account.
type lostAnswers struct {
	*memory.App
	mu      sync.Mutex
	creates int
}

func (l *lostAnswers) Create(ctx context.Context, desired connectors.Account) (connectors.Account, error) {
	l.mu.Lock()
	l.creates++
	first := l.creates == 1
	l.mu.Unlock()
	acc, err := l.App.Create(ctx, desired)
	if first && err == nil {
		return connectors.Account{}, &connectors.TransientError{Err: errors.New("connection reset by peer")}
	}
	return acc, err
}

// TestACreateWhoseAnswerWasLostIsLookedUpBeforeItIsSentAgain: an app need not refuse
// a second account with the same userName, so after a create whose outcome is unknown
// the engine looks the account up, finds it and adopts it, and creates nothing more.
func TestACreateWhoseAnswerWasLostIsLookedUpBeforeItIsSentAgain(t *testing.T) {
	app := &lostAnswers{App: memory.NewApp()}
	cfg := testConfig(t, app.App)
	cfg.Target = app
	subjects := &fakeSubjects{users: map[string]Subject{}}
	subjects.set("ada", func(*Subject) {})
	e, _ := startEngine(t, cfg, subjects)
	eventually(t, "ada's account is known to the engine", func() bool {
		v := e.User("ada")
		return v.Known && v.Account.State == identityv1alpha1.AccountStateActive
	})
	app.mu.Lock()
	defer app.mu.Unlock()
	if app.creates != 1 || len(app.Accounts()) != 1 || app.Requests()[memory.OpLookup] == 0 {
		t.Fatalf("%d creates, %d accounts, %d lookups; want the one account looked up and adopted, not created again",
			app.creates, len(app.Accounts()), app.Requests()[memory.OpLookup])
	}
}

// heldApp is an app whose first create's answer is lost, and whose creates and
// listings can be held: a held create waits to be let go before the app makes the
// account; a held listing reads the accounts when it starts and answers when let go, so
// what the app made meanwhile is not in it.
type heldApp struct {
	*lostAnswers
	creates, listings hold
}

// hold makes the calls that reach it wait, while on, until they are let go.
type hold struct {
	on      atomic.Bool
	started chan struct{}
	release chan struct{}
}

func newHold() hold { return hold{started: make(chan struct{}), release: make(chan struct{})} }

func (h *hold) wait() {
	if h.on.Load() {
		h.started <- struct{}{}
		<-h.release
	}
}

func (h *heldApp) Create(ctx context.Context, desired connectors.Account) (connectors.Account, error) {
	h.creates.wait()
	return h.lostAnswers.Create(ctx, desired)
}

func (h *heldApp) ListAccounts(ctx context.Context, cursor string) (connectors.AccountPage, error) {
	page, err := h.App.ListAccounts(ctx, cursor)
	h.listings.wait()
	return page, err
}

// TestALeaverWhoseCreateWasLostDuringAListingLosesTheAccount: ada's create is on its
// way when a listing starts; the app makes her account after the listing read the
// accounts, and the create's answer is lost; the listing ends without her account; then
// she leaves. The listing does not prove the create did nothing: the engine lists
// again, finds the account and deactivates it.
func TestALeaverWhoseCreateWasLostDuringAListingLosesTheAccount(t *testing.T) {
	app := &heldApp{lostAnswers: &lostAnswers{App: memory.NewApp()}, creates: newHold(), listings: newHold()}
	cfg := testConfig(t, app.App)
	cfg.Target = app
	subjects := &fakeSubjects{users: map[string]Subject{}}
	e, _ := startEngine(t, cfg, subjects)
	eventually(t, "the first listing", func() bool { return !e.Snapshot().LastFullSync.IsZero() })

	app.creates.on.Store(true)
	subjects.set("ada", func(*Subject) {})
	e.MarkDirty("ada")
	<-app.creates.started
	app.listings.on.Store(true)
	e.askResync()
	<-app.listings.started // the listing has read the accounts, without ada's
	app.creates.on.Store(false)
	close(app.creates.release)
	eventually(t, "ada's create made her account, its answer lost", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		_, unsure := e.unsureCreates["ada"]
		return unsure
	})
	lost := time.Now()
	app.listings.on.Store(false)
	close(app.listings.release)
	eventually(t, "the listing's end", func() bool { return e.Snapshot().LastFullSync.After(lost) })
	subjects.set("ada", func(s *Subject) { s.Assigned = false })
	e.MarkDirty("ada")
	eventually(t, "ada's account, made by the lost create, is deactivated", func() bool {
		accounts := app.Accounts()
		return len(accounts) == 1 && !accounts[0].Active
	})
}

// slowCreates is an app whose creates wait until they are let go.
type slowCreates struct {
	*memory.App
	started chan struct{}
	release chan struct{}
}

func (s *slowCreates) Create(ctx context.Context, desired connectors.Account) (connectors.Account, error) {
	s.started <- struct{}{}
	<-s.release
	return s.App.Create(ctx, desired)
}

// TestAUserWhoLeavesWhileTheirCreateIsInFlightLosesTheAccount: a User stops being
// entitled (a Role's rule changed) while the create of their account is still on its
// way; the engine plans them again when it lands, and deactivates it.
func TestAUserWhoLeavesWhileTheirCreateIsInFlightLosesTheAccount(t *testing.T) {
	app := &slowCreates{App: memory.NewApp(), started: make(chan struct{}, 1), release: make(chan struct{})}
	cfg := testConfig(t, app.App)
	cfg.Target = app
	subjects := &fakeSubjects{users: map[string]Subject{}}
	subjects.set("ada", func(*Subject) {})
	e, _ := startEngine(t, cfg, subjects)
	<-app.started
	subjects.set("ada", func(s *Subject) { s.Assigned = false })
	e.MarkDirty("ada")
	eventually(t, "ada planned again while her create is in flight", func() bool {
		e.inbox.Lock()
		waiting := len(e.inbox.users)
		e.inbox.Unlock()
		e.mu.Lock()
		defer e.mu.Unlock()
		_, dirty := e.dirty["ada"]
		return waiting == 0 && !dirty
	})
	close(app.release)
	eventually(t, "ada's account, created after she left, is deactivated", func() bool {
		accounts := app.Accounts()
		return len(accounts) == 1 && !accounts[0].Active
	})
}

// TestARenameDuringAnUnrecordedCreateRenamesTheAccount: Roster created ada's account and
// was restarted before it recorded the account's id; meanwhile ada was renamed. Her
// account still carries her name as its externalId: it is adopted and renamed, not
// made a second time.
func TestARenameDuringAnUnrecordedCreateRenamesTheAccount(t *testing.T) {
	app := memory.NewApp()
	if _, err := app.Create(context.Background(), connectors.Account{Active: true, Attributes: map[string]any{
		connectors.AttrUserName: "ada@example.com", connectors.AttrExternalID: "ada",
	}}); err != nil {
		t.Fatal(err)
	}
	subjects := &fakeSubjects{users: map[string]Subject{}}
	subjects.set("ada", func(s *Subject) { s.User.Spec.UserName = "ada.lovelace@example.com" })
	startEngine(t, testConfig(t, app), subjects)
	eventually(t, "ada's one account renamed", func() bool {
		accounts := app.Accounts()
		return len(accounts) == 1 && accounts[0].UserName() == "ada.lovelace@example.com"
	})
}

// TestAnUnrecordedCreateForSomeoneNoLongerEntitledIsDeprovisioned: Roster created ada's
// account and was restarted before it recorded the account's id; meanwhile a Role's
// rule stopped granting her the app. Her account carries her name as its externalId: it
// is hers, and deactivated, not left active as an unmanaged account. An account with
// another User's name is theirs, not hers; one without the stamp stays unmanaged.
func TestAnUnrecordedCreateForSomeoneNoLongerEntitledIsDeprovisioned(t *testing.T) {
	app := memory.NewApp()
	for _, a := range []struct{ userName, stamp string }{{"ada@example.com", "ada"}, {"grace@example.com", "grace-in-another-system"}} {
		if _, err := app.Create(context.Background(), connectors.Account{Active: true, Attributes: map[string]any{
			connectors.AttrUserName: a.userName, connectors.AttrExternalID: a.stamp,
		}}); err != nil {
			t.Fatal(err)
		}
	}
	subjects := &fakeSubjects{users: map[string]Subject{}}
	subjects.set("ada", func(s *Subject) { s.Assigned = false })
	subjects.set("grace", func(s *Subject) { s.Assigned = false })
	cfg := testConfig(t, app)
	cfg.OnRemoval = identityv1alpha1.RemovalDeactivate
	e, _ := startEngine(t, cfg, subjects)
	eventually(t, "ada's account deactivated as hers", func() bool {
		v := e.User("ada")
		return v.Known && v.Account.State == identityv1alpha1.AccountStateDeactivated
	})
	for _, a := range app.Accounts() {
		if a.UserName() == "ada@example.com" && a.Active {
			t.Fatal("ada's account is still active")
		}
		if a.UserName() == "grace@example.com" && !a.Active {
			t.Fatal("an account without grace's stamp was deactivated as hers")
		}
	}
}

// TestResyncsOfAppsStartedTogetherAreSpread: each resync interval is stretched by up to
// a tenth at random, so engines started at once do not list and plan all at once again.
func TestResyncsOfAppsStartedTogetherAreSpread(t *testing.T) {
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for range 1000 {
		d := jittered(time.Hour)
		if d < time.Hour || d > time.Hour+6*time.Minute {
			t.Fatalf("a resync of 1h came after %s, want 1h to 1h6m", d)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if hi-lo < time.Minute {
		t.Fatalf("1,000 resyncs of 1h all came between %s and %s, want them spread over minutes", lo, hi)
	}
}

// TestTheAppsFailureCountsFollowEachUsersAccount: the snapshot counts the failed
// accounts as Users' writes fail, recover and go away.
func TestTheAppsFailureCountsFollowEachUsersAccount(t *testing.T) {
	e, app, subjects, _ := withAccounts(t, 3, nil)
	counted := func(failed, rateLimited int, sampled ...string) func() bool {
		return func() bool {
			s := e.Snapshot()
			if s.Failed != failed || s.RateLimited != rateLimited || len(s.FailureSample) != len(sampled) {
				return false
			}
			for i, u := range sampled {
				if !strings.HasPrefix(s.FailureSample[i], u+": ") {
					return false
				}
			}
			return true
		}
	}
	app.FailWith(&connectors.RateLimitedError{RetryAfter: 50 * time.Millisecond, Message: "slow down"}, "update")
	for _, u := range []string{"u00", "u01"} {
		subjects.set(u, func(s *Subject) { s.User.Spec.Title = "Engineer" })
		e.MarkDirty(u)
	}
	subjects.set("dup", func(s *Subject) { s.Duplicate = true }) // never had an account
	e.MarkDirty("dup")
	eventually(t, "two updates rate limited and a duplicate", counted(3, 2, "dup", "u00", "u01"))
	app.FailWith(nil)
	eventually(t, "the updates through at their retry", counted(1, 0, "dup"))
	subjects.mu.Lock()
	delete(subjects.users, "dup")
	subjects.mu.Unlock()
	e.MarkDirty("dup")
	eventually(t, "the duplicate gone", counted(0, 0))
}
