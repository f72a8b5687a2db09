package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/controllers/safety"
)

// notifyEvery bounds how often the engine asks for status writes while it converges.
const notifyEvery = time.Second

// maxManagerWait bounds how long a User's create waits for its manager's account.
const maxManagerWait = 10 * time.Second

// Engine converges one AppConnection's accounts. Create it with New, start it with Run,
// feed it with MarkDirty and Configure.
type Engine struct {
	subjects Subjects
	notifier Notifier
	events   Events
	log      logr.Logger
	now      func() time.Time

	queue     *workQueue
	timers    *timers
	wake      chan struct{} // the planner has work
	resync    chan struct{} // a full sync is asked for
	groupWake chan struct{} // member changes wait to be sent

	// inbox holds the Users marked dirty from outside, until the engine takes them.
	inbox struct {
		sync.Mutex
		users map[string]time.Time
	}

	mu  sync.Mutex
	cfg Config
	// health and what the app was found to support.
	health Health
	err    error
	caps   connectors.Capabilities
	synced bool
	// app is what the engine knows of the app's accounts and groups, and who holds them.
	app *observedApp
	// accountStates: each User's account as the User's status shows it; failedUsers: the
	// Users among them whose account failed, for the counts of every status snapshot.
	accountStates map[string]*accountState
	failedUsers   map[string]*accountState
	// planning.
	dirty      map[string]time.Time // user → when it was first marked since planned
	version    map[string]uint64
	planned    map[string]plannedUser
	held       map[string]bool // deprovisions waiting for approval
	heldPlanID string
	heldSent   int             // deprovisions sent within the window when the plan was held
	window     *safety.Window  // deprovisions sent recently, for the safety threshold
	cleared    map[string]bool // deprovisions the planner let through
	released   map[string]bool // Users going away whose accounts are left as they are
	lastSent   map[string]sent // user → what its last update sent
	// unsureCreates: Users whose last create failed without telling whether the app
	// made the account; their next create looks the account up first, and a leaver
	// among them is looked for by key in the next listing.
	unsureCreates map[string]unsureCreate
	retry         map[string]*backoff
	// settled: Users whose last plan had nothing to do, marked since by listings alone,
	// and what that plan was made against (settled.go).
	settled map[string]settledUser
	seed    maphash.Seed
	// arrived: Users marked from outside (MarkDirty) since a planning run last took
	// them, whoever drained the inbox; a long run plans them between its chunks.
	arrived map[string]bool
	// converging: when a User with planned changes was first marked, and what the latest
	// plan does, for the metric.
	converging map[string]converging
	// askedPending: Users reported pending; they are announced once they are not.
	askedPending map[string]bool
	// groups.
	managedGroups map[string]string // lower-cased → display name
	pendingGroups map[string]*groupChange
	pendingOf     map[string]int // User → member changes not yet sent
	// waitsFor holds back Users whose manager's account is being created: User →
	// manager, and manager → Users (some may have been planned again since).
	waitsFor     map[string]string
	awaitedBy    map[string][]string
	waitingSince map[string]time.Time
	lastFullSync time.Time
	// listedFrom is when the last complete listing began: a create whose answer was lost
	// before then is in it if the app made the account (one lost later may not be).
	listedFrom time.Time
	// checkUnmanaged: the next planning run looks for unmanaged accounts to deactivate.
	checkUnmanaged bool
	// runLeft counts the Users of the planning run under way not planned yet: dirty,
	// but not news, since the run will plan them (a resync that finds nothing to do
	// shows no work in progress).
	runLeft int
	// betweenChunks, for tests, runs between two chunks of a planning run, with the lock
	// let go.
	betweenChunks func()
	// status publication.
	changedUsers map[string]bool
	appChanged   bool
	userEvents   *userEvents
	quarantine   time.Time
	failStreak   int
}

// Events records Kubernetes events about the work.
type Events interface {
	User(app, user, eventType, reason, message string)
	App(app, eventType, reason, message string)
}

type plannedUser struct {
	userPlan
	version uint64
	since   time.Time // when the User was first marked for this plan
}

// converging is a User on its way to converged: since when, and what change.
type converging struct {
	since  time.Time
	change string
}

type accountState struct {
	status AccountStatus
	// rateLimited: the last write failed because the app asked Roster to slow down.
	rateLimited bool
}

// unsureCreate is a create whose outcome is unknown: the account's matching key, and
// when the create failed.
type unsureCreate struct {
	key    string
	failed time.Time
}

type backoff struct {
	next  time.Time
	delay time.Duration
	// deprovision: the failed write was a deprovision. A deprovision does not wait out
	// the backoff of another kind of write (a create the app answered 429 to): the kill
	// switch goes first.
	deprovision bool
}

// New returns an engine for cfg; Run starts it.
func New(cfg Config, subjects Subjects, notifier Notifier, events Events, log logr.Logger) *Engine {
	e := &Engine{
		subjects: subjects, notifier: notifier, events: events, log: log, now: time.Now,
		queue: newWorkQueue(), timers: newTimers(),
		wake: make(chan struct{}, 1), resync: make(chan struct{}, 1), groupWake: make(chan struct{}, 1),
		health: HealthConnecting,
		app:    newObservedApp(), accountStates: map[string]*accountState{}, failedUsers: map[string]*accountState{},
		dirty: map[string]time.Time{}, arrived: map[string]bool{}, version: map[string]uint64{}, planned: map[string]plannedUser{},
		held: map[string]bool{}, cleared: map[string]bool{}, released: map[string]bool{}, lastSent: map[string]sent{}, unsureCreates: map[string]unsureCreate{}, retry: map[string]*backoff{}, converging: map[string]converging{}, askedPending: map[string]bool{},
		managedGroups: map[string]string{}, pendingGroups: map[string]*groupChange{}, pendingOf: map[string]int{}, waitsFor: map[string]string{}, awaitedBy: map[string][]string{}, waitingSince: map[string]time.Time{},
		changedUsers: map[string]bool{}, userEvents: newUserEvents(cfg.UserEvents),
		settled: map[string]settledUser{}, seed: maphash.MakeSeed(),
	}
	startConvergence(cfg.App)
	e.cfg = cfg
	e.window = safety.NewWindow(cfg.Window, cfg.Counted)
	e.inbox.users = map[string]time.Time{}
	for _, g := range cfg.ManagedGroups {
		e.managedGroups[strings.ToLower(g)] = g
	}
	return e
}

// Configure replaces the engine's configuration. A new Target (new endpoint or
// credentials) makes the engine connect and list the app again; other changes to what
// decides a plan make it plan every User again; anything else changes nothing.
func (e *Engine) Configure(cfg Config) {
	e.mu.Lock()
	old := e.cfg
	e.cfg = cfg
	e.window.SetSpan(cfg.Window)
	for _, g := range cfg.ManagedGroups {
		e.managedGroups[strings.ToLower(g)] = g
	}
	if cfg.MatchBy != old.MatchBy {
		e.app.rekey(e.cfg.MatchBy)
	}
	newTarget := cfg.Target != old.Target
	relist := newTarget || cfg.ResyncRequest != old.ResyncRequest
	replan := newTarget || !sameDecisions(old, cfg)
	if newTarget {
		e.health, e.synced, e.err = HealthConnecting, false, nil
	}
	if replan {
		clear(e.settled)
		e.markAllLocked()
		e.appChanged = true
	}
	e.mu.Unlock()
	if relist {
		e.askResync()
	}
	if replan {
		e.signal()
	}
}

// sameDecisions reports whether two configurations plan alike.
func sameDecisions(a, b Config) bool {
	return a.Generation == b.Generation && a.Mapping == b.Mapping && a.MatchBy == b.MatchBy &&
		a.OnSuspend == b.OnSuspend && a.OnRemoval == b.OnRemoval && a.DeleteAfter == b.DeleteAfter &&
		a.Unmanaged == b.Unmanaged && equalInt(a.MaxCount, b.MaxCount) && equalInt(a.MaxPercent, b.MaxPercent) &&
		a.Window == b.Window && a.Mode == b.Mode && a.Paused == b.Paused && a.ApprovedPlan == b.ApprovedPlan && a.PlanApprover == b.PlanApprover && a.Removing == b.Removing
}

func equalInt(a, b *int32) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// Release lets go of a User's account without touching it, for a User being deleted
// with its accounts orphaned: the account stays in the app as it is, no longer managed
// by Roster (the unmanaged accounts policy applies to it from then on).
func (e *Engine) Release(user string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.released[user] = true
	e.app.unlink(user)
	for _, pending := range []map[string]bool{e.held, e.cleared, e.askedPending} {
		delete(pending, user)
	}
	delete(e.planned, user)
	delete(e.dirty, user)
	delete(e.settled, user)
	delete(e.lastSent, user)
	delete(e.unsureCreates, user)
	e.dropAccountStateLocked(user)
	e.appChanged = true
}

// MarkDirty asks the engine to look at these Users again. It never waits for the
// engine's work: the marks wait in an inbox of their own, which the engine drains.
func (e *Engine) MarkDirty(users ...string) {
	if len(users) == 0 {
		return
	}
	now := e.now()
	e.inbox.Lock()
	for _, u := range users {
		if _, ok := e.inbox.users[u]; !ok {
			e.inbox.users[u] = now
		}
	}
	e.inbox.Unlock()
	e.signal()
}

// drainInboxLocked marks the Users of the inbox dirty and arrived. While the app
// cannot be reached, they are news too: their status should say why nothing happens
// (those marked before the app failed are told when it fails).
func (e *Engine) drainInboxLocked() {
	e.inbox.Lock()
	marks := e.inbox.users
	if len(marks) == 0 {
		// Not ranged over once the inbox is unlocked: it is the inbox's own map, which
		// MarkDirty may be writing by then.
		e.inbox.Unlock()
		return
	}
	e.inbox.users = map[string]time.Time{}
	e.inbox.Unlock()
	for u, at := range marks {
		e.markAtLocked(u, at)
		e.arrived[u] = true
		if e.health == HealthFailing {
			e.changedUsers[u] = true
		}
	}
}

func (e *Engine) markLocked(user string) { e.markAtLocked(user, e.now()) }

// markAtLocked marks a User for something other than a listing: its next plan is made
// afresh, whatever the listings say.
func (e *Engine) markAtLocked(user string, at time.Time) {
	delete(e.settled, user)
	e.touchLocked(user, at)
}

func (e *Engine) touchLocked(user string, at time.Time) {
	if _, ok := e.dirty[user]; !ok {
		e.dirty[user] = at
	}
	e.version[user]++
}

// markAllLocked marks every User for a listing: those settled are planned again only
// if the listing changed what their last plan was made against.
func (e *Engine) markAllLocked() {
	now := e.now()
	for _, u := range e.subjects.Names() {
		e.touchLocked(u, now)
	}
	for u := range e.app.links {
		e.touchLocked(u, now)
	}
	for u := range e.accountStates {
		e.touchLocked(u, now)
	}
}

func (e *Engine) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) askResync() {
	select {
	case e.resync <- struct{}{}:
	default:
	}
}

// Run works until ctx ends: it connects, lists the app, plans and applies. A panic in
// any of its goroutines stops the engine and comes back as a *safety.Crash.
func (e *Engine) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	crashes := safety.NewCrashes(cancel)
	var wg sync.WaitGroup
	e.mu.Lock()
	workers := max(1, e.cfg.Workers)
	e.mu.Unlock()
	for range workers {
		crashes.Go(&wg, func() { e.work(ctx) })
	}
	crashes.Go(&wg, func() { e.flushGroups(ctx) })
	crashes.Go(&wg, func() { e.runTimers(ctx) })
	crashes.Go(&wg, func() { e.publish(ctx) })
	e.mu.Lock()
	e.markAllLocked() // so that every User shows as pending until the app is listed
	e.mu.Unlock()
	e.askResync()
	crashes.Run(func() { e.plan(ctx) })
	e.queue.close()
	wg.Wait()
	return crashes.Err()
}

// plan is the planner loop: connect and list when asked, plan what is dirty.
func (e *Engine) plan(ctx context.Context) {
	resyncTimer := time.NewTimer(time.Hour)
	defer resyncTimer.Stop()
	retryTimer := time.NewTimer(time.Hour)
	defer retryTimer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.resync:
			e.fullSync(ctx, resyncTimer, retryTimer)
		case <-resyncTimer.C:
			e.fullSync(ctx, resyncTimer, retryTimer)
		case <-retryTimer.C:
			e.fullSync(ctx, resyncTimer, retryTimer)
		case <-e.wake:
		}
		e.planDirty()
	}
}

// fullSync connects if needed and lists the whole app, then marks every User.
func (e *Engine) fullSync(ctx context.Context, resyncTimer, retryTimer *time.Timer) {
	e.mu.Lock()
	cfg := e.cfg
	e.mu.Unlock()
	if cfg.Target == nil {
		return
	}
	if err := e.connectAndList(ctx, cfg); err != nil {
		if ctx.Err() != nil {
			return
		}
		delay := e.failed(err)
		e.log.Info("Could not sync the app; retrying", "app", cfg.App, "retryIn", delay, "error", err.Error())
		retryTimer.Reset(delay)
		return
	}
	resync := cfg.Resync
	if resync <= 0 {
		resync = time.Hour
	}
	resyncTimer.Reset(jittered(resync))
}

// jittered is a resync interval stretched by up to a tenth at random, so that apps
// whose engines started together (a restart, a shard taken over) do not all list and
// plan every User again at the same moment.
func jittered(interval time.Duration) time.Duration {
	return interval + rand.N(interval/10+1)
}

// failed records a connection failure and returns how long to wait before trying again.
func (e *Engine) failed(err error) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.settled) // once the app answers again, every User is planned afresh
	if e.health != HealthFailing {
		e.drainInboxLocked()
		for u := range e.dirty { // their status should say why nothing happens
			e.changedUsers[u] = true
		}
	}
	e.health, e.err = HealthFailing, err
	e.failStreak++
	e.appChanged = true
	delay := time.Duration(1<<min(e.failStreak-1, 8)) * time.Second // 1s … 4m16s
	if wait, limited := connectors.RetryAfter(err); limited && wait > delay {
		delay = wait
	}
	if e.failStreak >= 5 {
		e.quarantine = e.now().Add(delay)
	}
	return delay
}

// planChunk is how many Users planDirty plans under one hold of the engine's lock.
// Between chunks the lock is let go, so that the User controller's reads, the
// workers' writes and the watches' news are not kept waiting while a run plans
// tens of thousands of Users (a full resync, or every User of a large organisation).
const planChunk = 256

// planDirty plans every dirty User as one run, a chunk at a time, hands the provisions
// to the workers as each chunk is planned, and checks the whole run's deprovisions
// against the safety threshold at its end: a run is held or sent as one, however many
// chunks it took. Users marked from outside while it runs (a leaver during a resync of
// every User) do not wait for its end: between two chunks they are planned as a run of
// their own, weighed against the threshold with the deprovisions already sent or held,
// as if they had come just before the run.
func (e *Engine) planDirty() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.drainInboxLocked()
	if !e.synced || len(e.dirty) == 0 {
		return
	}
	users := make([]string, 0, len(e.dirty))
	for u := range e.dirty {
		users = append(users, u)
	}
	sort.Strings(users)
	e.runLeft = len(users)
	defer func() { e.runLeft = 0 }()
	clear(e.arrived) // they are in the run
	var deprovisions []string
	for from := 0; from < len(users); from += planChunk {
		if from > 0 {
			e.mu.Unlock()
			if e.betweenChunks != nil {
				e.betweenChunks()
			}
			e.mu.Lock()
			e.drainInboxLocked()
			if !e.synced {
				return // a new connection lists the app again and plans every User anew
			}
			if arrived := e.takeArrivedLocked(); len(arrived) > 0 {
				e.checkSafetyLocked(e.planChunkLocked(arrived))
			}
		}
		chunk := users[from:min(len(users), from+planChunk)]
		e.runLeft -= len(chunk)
		deprovisions = append(deprovisions, e.planChunkLocked(chunk)...)
	}
	if e.checkUnmanaged {
		e.checkUnmanaged = false
		deprovisions = append(deprovisions, e.planUnmanagedAccountsLocked()...)
	}
	e.checkSafetyLocked(deprovisions)
	e.appChanged = true
}

// takeArrivedLocked returns the Users marked from outside since the last call, sorted.
func (e *Engine) takeArrivedLocked() []string {
	if len(e.arrived) == 0 {
		return nil
	}
	users := slices.Sorted(maps.Keys(e.arrived))
	clear(e.arrived)
	return users
}

// planChunkLocked plans the Users of a chunk that are still dirty, dispatches their
// provisions and returns their deprovisions.
func (e *Engine) planChunkLocked(users []string) (deprovisions []string) {
	now := e.now()
	var provisions []string
	for _, u := range users {
		since, dirty := e.dirty[u]
		if !dirty {
			continue
		}
		delete(e.dirty, u)
		if e.unchangedSinceSettledLocked(u) {
			e.announceIfDoneLocked(u) // read as pending while it was marked
			continue
		}
		delete(e.waitsFor, u)
		p := e.planUserLocked(u, now)
		if !p.changes() {
			delete(e.planned, u)
			delete(e.held, u)
			delete(e.cleared, u)
			e.releaseReportsLocked(u)
			e.settleLocked(u, p)
			e.rememberSettledLocked(p)
			e.announceIfDoneLocked(u)
			continue
		}
		delete(e.settled, u)
		e.planned[u] = plannedUser{userPlan: p, version: e.version[u], since: since}
		c, ok := e.converging[u]
		if !ok {
			c.since = since
		}
		c.change = p.change()
		e.converging[u] = c
		e.noteLocked(u, p)
		if p.deprovision() {
			deprovisions = append(deprovisions, u)
		} else {
			provisions = append(provisions, u)
		}
	}
	for _, u := range provisions {
		delete(e.held, u)
		if !e.awaitManagerLocked(u) {
			e.dispatchLocked(u, false)
		}
	}
	return deprovisions
}

// awaitManagerLocked holds back the create of a User whose manager is to have an
// account here and has none yet, so that the account is created once, with its
// manager, instead of created and then updated. The manager's outcome releases it
// (releaseReportsLocked); it waits maxManagerWait at most.
func (e *Engine) awaitManagerLocked(user string) bool {
	p := e.planned[user]
	manager := p.awaitsManager
	if p.action != actCreate || manager == "" {
		delete(e.waitingSince, user)
		return false
	}
	now := e.now()
	since, waited := e.waitingSince[user]
	if !waited {
		since = now
	}
	mp, planned := e.planned[manager]
	switch {
	case now.Sub(since) >= maxManagerWait:
		return false
	case planned && mp.action == actCreate:
	case !planned && e.willProvisionLocked(manager): // its plan is on its way
	default:
		return false
	}
	for m, steps := manager, 0; m != "" && steps < 64; m, steps = e.waitsFor[m], steps+1 {
		if m == user {
			return false // a management cycle: one of them goes first
		}
	}
	e.waitsFor[user] = manager
	e.waitingSince[user] = since
	e.awaitedBy[manager] = append(e.awaitedBy[manager], user)
	e.timers.schedule(user, since.Add(maxManagerWait))
	return true
}

// willProvisionLocked reports whether a User is to have an active account here and
// nothing stands in the way.
func (e *Engine) willProvisionLocked(user string) bool {
	if r := e.accountStates[user]; r != nil && r.status.State == identityv1alpha1.AccountStateFailed {
		return false
	}
	s, ok := e.subjects.Subject(user)
	return ok && s.Assigned && s.Active && !s.Deleting && !s.Duplicate && !s.AssignmentUnknown
}

// releaseReportsLocked plans again the Users held back for a manager whose plan is done,
// or failed.
func (e *Engine) releaseReportsLocked(manager string) {
	reports := e.awaitedBy[manager]
	if len(reports) == 0 {
		return
	}
	delete(e.awaitedBy, manager)
	for _, report := range reports {
		if e.waitsFor[report] == manager {
			delete(e.waitsFor, report)
			delete(e.waitingSince, report)
			e.markLocked(report)
		}
	}
	e.signal()
}

// planUnmanagedAccountsLocked plans the deactivation of active accounts no User holds,
// when the AppConnection asks for it.
func (e *Engine) planUnmanagedAccountsLocked() []string {
	if e.cfg.Unmanaged != identityv1alpha1.UnmanagedDeactivate {
		return nil
	}
	var keys []string
	for _, acc := range e.app.unmanaged() {
		key := unmanagedPrefix + acc.ID
		e.markLocked(key)
		delete(e.dirty, key)
		e.planned[key] = plannedUser{userPlan: e.planUnmanagedLocked(key, acc.ID), version: e.version[key], since: e.now()}
		keys = append(keys, key)
	}
	return keys
}

// checkSafetyLocked lets the run's deprovisions (and any held ones) through, or holds
// them when, with the deprovisions already sent within the safety window, they exceed
// the safety threshold and the held plan is not approved. Deprovisions let through
// before (and planned again while in flight) are not counted twice.
func (e *Engine) checkSafetyLocked(deprovisions []string) {
	for u := range e.held {
		if p, ok := e.planned[u]; ok && p.deprovision() {
			deprovisions = append(deprovisions, u)
		}
	}
	var fresh []string
	for _, u := range dedupe(deprovisions) {
		if e.cleared[u] {
			e.dispatchLocked(u, true)
		} else {
			fresh = append(fresh, u)
		}
	}
	if len(fresh) == 0 || e.cfg.Mode == identityv1alpha1.ModePlan || e.cfg.Paused {
		e.held, e.heldPlanID = map[string]bool{}, "" // nothing is sent, so nothing counts
		return
	}
	now := e.now()
	sent := e.window.Count(now)
	id := planID(fresh, e.planned)
	if safety.Exceeds(sent+len(fresh), e.app.managedCount()+sent, e.cfg.MaxCount, e.cfg.MaxPercent) {
		if e.cfg.ApprovedPlan != id {
			e.holdLocked(id, fresh, sent)
			return
		}
		e.events.App(e.cfg.App, "Normal", identityv1alpha1.EventPlanApproved,
			fmt.Sprintf("plan %s applied as approved by %s: %d deprovisions", id, e.cfg.PlanApprover, len(fresh)))
		e.log.Info("Approved plan applied", "app", e.cfg.App, "plan", id, "approvedBy", e.cfg.PlanApprover, "deprovisions", len(fresh))
	}
	e.held, e.heldPlanID = map[string]bool{}, ""
	e.window.Add(now, len(fresh))
	for _, u := range fresh {
		e.cleared[u] = true
		e.dispatchLocked(u, true)
	}
}

// holdLocked holds deprovisions for approval, and looks at them again when those sent
// before stop counting.
func (e *Engine) holdLocked(id string, users []string, sent int) {
	if e.heldPlanID != id {
		e.events.App(e.cfg.App, "Warning", identityv1alpha1.EventPlanBlocked, e.blockedMessage(id, len(users), sent))
		e.log.Info("Plan blocked by the safety threshold", "app", e.cfg.App, "plan", id, "deprovisions", len(users), "sentInWindow", sent)
	}
	e.heldPlanID, e.heldSent = id, sent
	e.held = make(map[string]bool, len(users))
	expiry := e.window.NextExpiry()
	for _, u := range users {
		e.held[u] = true
		if sent > 0 {
			e.timers.schedule(u, expiry)
		}
	}
}

func (e *Engine) blockedMessage(id string, n, sent int) string {
	return blockedMessage(e.cfg.App, id, n, sent, e.window.Span(), e.app.managedCount()+sent, e.cfg.MaxCount, e.cfg.MaxPercent)
}

func (e *Engine) dispatchLocked(user string, urgent bool) {
	if e.cfg.Mode == identityv1alpha1.ModePlan || e.cfg.Paused {
		return
	}
	if b := e.retry[user]; b != nil && e.now().Before(b.next) && (!urgent || b.deprovision) {
		e.timers.schedule(user, b.next)
		return
	}
	e.queue.add(user, urgent)
}

func dedupe(users []string) []string {
	sort.Strings(users)
	out := users[:0]
	for i, u := range users {
		if i == 0 || u != users[i-1] {
			out = append(out, u)
		}
	}
	return out
}

// work is one worker: it applies planned Users until the queue closes.
func (e *Engine) work(ctx context.Context) {
	for {
		user, ok := e.queue.get()
		if !ok {
			return
		}
		e.converge(ctx, user)
		e.queue.done(user)
	}
}

// converge applies one User's plan, if it still holds.
func (e *Engine) converge(ctx context.Context, user string) {
	e.mu.Lock()
	p, ok := e.planned[user]
	switch {
	case !ok || e.cfg.Mode == identityv1alpha1.ModePlan || e.cfg.Paused || e.health == HealthFailing:
		e.mu.Unlock()
		return
	case p.version != e.version[user]:
		e.mu.Unlock() // marked again since planned: the planner takes it from here
		return
	case p.deprovision() && !e.cleared[user]:
		e.mu.Unlock()
		return
	case e.staleLocked(p.userPlan):
		e.markLocked(user) // what it was planned against changed meanwhile: plan again
		e.mu.Unlock()
		e.signal()
		return
	}
	target := e.cfg.Target
	e.mu.Unlock()

	outcome := e.apply(ctx, target, p.userPlan)

	e.mu.Lock()
	defer e.mu.Unlock()
	e.appliedLocked(p, outcome)
}

// staleLocked reports whether a plan was made against an account that has changed
// since: a create for a User who has an account by now (a create that finished while
// the User was planned again), or a change to an account that is no longer as observed.
func (e *Engine) staleLocked(p userPlan) bool {
	if p.action == actCreate {
		_, linked := e.app.links[p.user]
		return linked
	}
	return p.observed != nil && !isUnmanagedKey(p.user) && e.app.accounts[p.observed.ID] != p.observed
}

// runTimers marks Users dirty when their time comes.
func (e *Engine) runTimers(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		users, next := e.timers.due(e.now())
		if len(users) > 0 {
			e.MarkDirty(users...)
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(0, next.Sub(e.now()))
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.timers.wake:
		}
	}
}

// publish tells the controllers what changed, at most once a second.
func (e *Engine) publish(ctx context.Context) {
	tick := time.NewTicker(notifyEvery / 4)
	defer tick.Stop()
	last := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		e.mu.Lock()
		if e.health == HealthFailing {
			e.drainInboxLocked() // nothing else does while the app cannot be reached
		}
		users := make([]string, 0, len(e.changedUsers))
		for u := range e.changedUsers {
			users = append(users, u)
		}
		e.changedUsers = map[string]bool{}
		appChanged := e.appChanged && time.Since(last) >= notifyEvery
		if appChanged {
			e.appChanged = false
		}
		app := e.cfg.App
		e.mu.Unlock()
		if len(users) > 0 {
			e.notifier.UsersChanged(app, users)
		}
		if appChanged {
			last = time.Now()
			e.notifier.AppChanged(app)
		}
		e.summarizeUserEvents(time.Now())
	}
}

// errUnauthorized reports whether err is a credentials failure.
func errUnauthorized(err error) bool { return errors.Is(err, connectors.ErrUnauthorized) }
