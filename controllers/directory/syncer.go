package directory

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/mapping"
	"github.com/rosterhq/roster/controllers/safety"
)

// pollEvery is how often a source that reports changes on request (modifyTimestamp,
// DirSync) is asked between full syncs.
const pollEvery = 30 * time.Second

// Config is what a syncer is told by its DirectorySync.
type Config struct {
	Name, Namespace string
	UID             types.UID
	Generation      int64
	Source          connectors.Source
	Mapping         *mapping.Mappings
	Filter          *mapping.Program // nil: every record
	Interval        time.Duration
	// VanishedAction is Suspend or Delete; DeleteAfter deletes a suspended User after it.
	VanishedAction identityv1alpha1.VanishedUserAction
	DeleteAfter    time.Duration
	MaxCount       *int32
	MaxPercent     *int32
	// Window is how long a suspension or deletion counts against MaxCount and
	// MaxPercent; Counted is what the window held before (from status), read at start.
	Window       time.Duration
	Counted      []identityv1alpha1.DeprovisionCount
	ApprovedPlan string
	// PlanApprover is who approved it, as the API server authenticated them.
	PlanApprover string
	// ResyncRequest is the DirectorySync's resync annotation; a new value syncs in full
	// now.
	ResyncRequest string
	// MirrorPrefix, when set, makes one Role per group, named with it.
	MirrorPrefix *string
	// Finalizers, when set, names at each converge what a User carries beside the main
	// finalizer: those of the other shards that run apps of the namespace, so that a new
	// User has them from its creation rather than from a second write. They are left out
	// of the User's applied hash: a change of them alone rewrites no User.
	Finalizers func() []string
}

// Status is the syncer's state for the DirectorySync's status.
type Status struct {
	Generation     int64
	Synced         bool
	Err            error
	LastSync       time.Time
	LastDuration   time.Duration
	Counts         identityv1alpha1.SyncCounts
	Skipped        []identityv1alpha1.SkipReason
	Users          int
	Blocked        bool
	BlockedMessage string
	PlanID         string
	// RecentDeprovisions counts the suspensions and deletions made within the window.
	RecentDeprovisions []identityv1alpha1.DeprovisionCount
	// HeldSuspensions are the Users a person suspended that the source has active.
	HeldSuspensions []string
	// Records is how many records the syncer holds from its source now (full syncs,
	// followed changes and pushes alike).
	Records int
	// Problems are source records that could not be taken as they are (the first
	// maxProblemsListed), of ProblemCount.
	Problems     []identityv1alpha1.RecordProblem
	ProblemCount int
	// InStep is how many Users the first full sync has brought in step with their
	// records so far (written, or found as they should be), while it runs.
	InStep int
}

// ProgressInterval is how often a first full sync, which can take minutes, reports how
// many Users it has brought in step.
var ProgressInterval = 5 * time.Second

// Syncer keeps one DirectorySync's Users in step with its source.
type Syncer struct {
	client client.Client // reads from the cache, writes to the API server
	log    logr.Logger
	notify func()
	now    func() time.Time

	resync chan struct{}
	rearm  chan struct{}
	stripe [64]sync.Mutex // serializes writes per record

	// inStep counts the Users the full sync under way has brought in step.
	inStep atomic.Int32

	mu        sync.Mutex
	cfg       Config
	records   map[string]connectors.Record
	refs      map[string]string // lower-cased id, dn, userName or email → record id
	groups    map[string]connectors.SourceGroup
	members   memberships
	watermark string
	status    Status
	skipped   map[string]*identityv1alpha1.SkipReason
	heldPlan  string
	// heldSuspensions: Users a person suspended that the source has active.
	heldSuspensions map[string]bool
	// names: each record's User name, and each record's problems.
	names       names
	window      *safety.Window // suspensions and deletions made recently
	nextDelete  time.Time
	fieldOwner  string
	vanishOwner string
}

// New returns a syncer; Run starts it.
func New(cfg Config, c client.Client, log logr.Logger, notify func()) *Syncer {
	return &Syncer{
		client: c, log: log, notify: notify, now: time.Now, cfg: cfg,
		resync: make(chan struct{}, 1), rearm: make(chan struct{}, 1),
		records: map[string]connectors.Record{}, groups: map[string]connectors.SourceGroup{},
		skipped:         map[string]*identityv1alpha1.SkipReason{},
		window:          safety.NewWindow(cfg.Window, cfg.Counted),
		heldSuspensions: map[string]bool{},
		names:           newNames(),
		fieldOwner:      "roster-directorysync-" + cfg.Name,
		vanishOwner:     "roster-directorysync-" + cfg.Name + "-lifecycle",
	}
}

// Configure replaces the configuration; a change makes the syncer sync in full.
func (s *Syncer) Configure(cfg Config) {
	s.mu.Lock()
	changed := cfg.Generation != s.cfg.Generation || cfg.Source != s.cfg.Source || cfg.ApprovedPlan != s.cfg.ApprovedPlan || cfg.PlanApprover != s.cfg.PlanApprover ||
		cfg.ResyncRequest != s.cfg.ResyncRequest
	s.cfg = cfg
	s.window.SetSpan(cfg.Window)
	s.mu.Unlock()
	if changed {
		s.SyncNow()
	}
}

// SyncNow asks for a full sync.
func (s *Syncer) SyncNow() {
	select {
	case s.resync <- struct{}{}:
	default:
	}
}

// Status returns the syncer's state.
func (s *Syncer) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Generation = s.cfg.Generation
	st.RecentDeprovisions = s.window.Counted(s.now())
	st.Records = len(s.records)
	if !st.Synced {
		st.InStep = int(s.inStep.Load())
	}
	st.Problems, st.ProblemCount = s.names.report()
	for name := range s.heldSuspensions {
		st.HeldSuspensions = append(st.HeldSuspensions, name)
	}
	sort.Strings(st.HeldSuspensions)
	st.Skipped = nil
	for _, r := range s.skipped {
		st.Skipped = append(st.Skipped, *r)
	}
	sort.Slice(st.Skipped, func(i, j int) bool { return st.Skipped[i].Reason < st.Skipped[j].Reason })
	if len(st.Skipped) > 16 {
		st.Skipped = st.Skipped[:16]
	}
	return st
}

// Run syncs in full at the interval, follows changes between, and deletes Users whose
// grace has passed at that moment, until ctx ends.
//
// A panic in any of its goroutines stops the syncer and comes back as a *safety.Crash.
func (s *Syncer) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	crashes := safety.NewCrashes(cancel)
	var wg sync.WaitGroup
	crashes.Run(func() { s.run(ctx, crashes, &wg) })
	cancel()
	wg.Wait()
	return crashes.Err()
}

func (s *Syncer) run(ctx context.Context, crashes *safety.Crashes, wg *sync.WaitGroup) {
	watching := make(chan struct{})
	crashes.Go(wg, func() { s.follow(ctx, watching, crashes, wg) })
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	nextFull, failures := s.now(), 0
	for {
		s.mu.Lock()
		due := nextFull
		if d := s.nextDelete; !d.IsZero() && d.Before(due) {
			due = d
		}
		s.mu.Unlock()
		timer.Reset(max(due.Sub(s.now()), 0))
		select {
		case <-ctx.Done():
			return
		case <-s.rearm:
			continue // a deletion was scheduled: recompute when to wake
		case <-s.resync:
		case <-timer.C:
		}
		err := s.FullSync(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			failures++
			wait := min(time.Duration(1<<min(failures, 8))*time.Second, s.interval())
			s.log.Info("Directory sync failed; retrying", "directorysync", s.cfg.Name, "retryIn", wait, "error", err.Error())
			nextFull = s.now().Add(wait)
		default:
			failures = 0
			nextFull = s.now().Add(s.interval())
			select {
			case <-watching:
			default:
				close(watching) // the first full sync is done: changes can be followed
			}
		}
	}
}

// scheduleDeletionLocked makes the syncer wake when a suspended User's grace passes.
func (s *Syncer) scheduleDeletionLocked(due time.Time) {
	if s.nextDelete.IsZero() || due.Before(s.nextDelete) {
		s.nextDelete = due
		select {
		case s.rearm <- struct{}{}:
		default:
		}
	}
}

func (s *Syncer) interval() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.Interval <= 0 {
		return 15 * time.Minute
	}
	return s.cfg.Interval
}

// follow applies changes as the source reports them: by watching where it can, by
// polling where it can be asked, not at all otherwise. The watch starts with the first
// full sync, so that the source's own catching up (syncrepl's refresh) overlaps it;
// what it reports is applied once the full sync is done, the latest word on each entry
// winning, and what the full sync already wrote is skipped.
func (s *Syncer) follow(ctx context.Context, ready <-chan struct{}, crashes *safety.Crashes, wg *sync.WaitGroup) {
	queue := newChangeQueue()
	crashes.Go(wg, func() { s.applyQueued(ctx, queue, ready) })
	for retry := time.Second; ctx.Err() == nil; retry = min(2*retry, 5*time.Minute) {
		s.mu.Lock()
		src := s.cfg.Source
		s.mu.Unlock()
		watcher, watches := src.(connectors.WatchingSource)
		if !watches {
			break
		}
		err := watcher.Watch(ctx, queue.add)
		if errors.Is(err, connectors.ErrUnsupported) {
			break
		}
		if ctx.Err() == nil {
			s.log.Info("Following directory changes stopped; restarting", "directorysync", s.cfg.Name, "error", fmt.Sprint(err))
			s.SyncNow() // changes may have been missed meanwhile
		}
		if !sleep(ctx, retry) {
			return
		}
	}
	select {
	case <-ctx.Done():
	case <-ready:
		s.poll(ctx)
	}
}

// applyQueued applies the watched changes, from when the first full sync is done.
func (s *Syncer) applyQueued(ctx context.Context, queue *changeQueue, ready <-chan struct{}) {
	select {
	case <-ctx.Done():
		return
	case <-ready:
	}
	for {
		set, ok := queue.take(ctx)
		if !ok {
			return
		}
		if set = s.dropKnown(set); len(set.Changed)+len(set.Groups)+len(set.Deleted) > 0 {
			_, _ = s.applyChanges(ctx, set)
		}
	}
}

func (s *Syncer) poll(ctx context.Context) {
	for sleep(ctx, pollEvery) {
		s.mu.Lock()
		src, watermark := s.cfg.Source, s.watermark
		s.mu.Unlock()
		inc, ok := src.(connectors.IncrementalSource)
		if !ok {
			return
		}
		set, err := inc.Changes(ctx, watermark)
		if errors.Is(err, connectors.ErrUnsupported) {
			return
		}
		if err != nil {
			s.log.Info("Could not read directory changes", "directorysync", s.cfg.Name, "error", err.Error())
			continue
		}
		_, _ = s.applyChanges(ctx, set)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// FullSync reads the whole source and brings every User in step with it.
func (s *Syncer) FullSync(ctx context.Context) error {
	start := s.now()
	s.mu.Lock()
	src := s.cfg.Source
	s.mu.Unlock()
	snap, err := src.Snapshot(ctx)
	if err != nil {
		s.setErr(err)
		return err
	}
	s.mu.Lock()
	s.records = make(map[string]connectors.Record, len(snap.Records))
	s.refs = make(map[string]string, 2*len(snap.Records))
	for _, r := range snap.Records {
		s.putRecordLocked(r)
	}
	s.groups = make(map[string]connectors.SourceGroup, len(snap.Groups))
	for _, g := range snap.Groups {
		s.groups[g.ID] = g
	}
	s.members = expand(s.records, s.groups)
	s.watermark = snap.Watermark
	s.skipped = map[string]*identityv1alpha1.SkipReason{}
	s.status.Counts = identityv1alpha1.SyncCounts{Seen: int32(len(snap.Records))}
	ids := make([]string, 0, len(s.records))
	for id := range s.records {
		ids = append(ids, id)
	}
	first := !s.status.Synced
	s.mu.Unlock()
	s.inStep.Store(0)
	if first {
		defer s.reportProgress()()
	}
	_, err = s.converge(ctx, ids, true, nil)
	if err == nil {
		err = s.mirrorGroups(ctx)
	}
	s.mu.Lock()
	s.status.Synced, s.status.LastSync, s.status.LastDuration = err == nil, s.now(), s.now().Sub(start)
	s.status.Err = err
	name := s.cfg.Namespace + "/" + s.cfg.Name
	s.mu.Unlock()
	lastSync.WithLabelValues(name).SetToCurrentTime()
	lastSyncDuration.WithLabelValues(name).Set(s.status.LastDuration.Seconds())
	s.notify()
	return err
}

// reportProgress tells the DirectorySync's reconciler at once that the source is read,
// and then every ProgressInterval how far its Users are, until the returned stop.
func (s *Syncer) reportProgress() (stop func()) {
	s.notify()
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(ProgressInterval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				s.notify()
			}
		}
	}()
	return func() { close(done) }
}

// applyChanges applies what a source reported changed: records, groups and deletions.
// A group change reaches every record whose memberships it changes. It returns why
// records were not written, and the first error.
func (s *Syncer) applyChanges(ctx context.Context, set connectors.ChangeSet) (map[string]skip, error) {
	s.mu.Lock()
	affected := map[string]bool{}
	var vanished []string
	for _, r := range set.Changed {
		s.putRecordLocked(r)
		affected[r.ID] = true
	}
	groupsChanged := len(set.Groups) > 0
	for _, g := range set.Groups {
		s.groups[g.ID] = g
	}
	for _, id := range set.Deleted {
		if _, isGroup := s.groups[id]; isGroup {
			delete(s.groups, id)
			groupsChanged = true
			continue
		}
		if _, ok := s.records[id]; ok {
			s.dropRecordLocked(id)
			s.names.setUserName(id, "")
			s.names.reset(id)
			vanished = append(vanished, id)
		}
	}
	switch {
	case groupsChanged || s.members.parents == nil:
		before := s.members
		s.members = expand(s.records, s.groups)
		for id := range s.records {
			if fmt.Sprint(before.expanded[id]) != fmt.Sprint(s.members.expanded[id]) {
				affected[id] = true
			}
		}
	default:
		for _, r := range set.Changed {
			s.members.expandRecord(r.ID, r, s.groups)
		}
		for _, id := range vanished {
			s.members.forget(id)
		}
	}
	if set.Watermark != "" {
		s.watermark = set.Watermark
	}
	ids := make([]string, 0, len(affected))
	for id := range affected {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	skips, err := s.converge(ctx, ids, false, vanished)
	if err != nil {
		s.log.Info("Could not apply directory changes", "directorysync", s.cfg.Name, "error", err.Error())
	}
	if groupsChanged {
		if merr := s.mirrorGroups(ctx); merr != nil {
			s.log.Info("Could not mirror directory groups as Roles", "directorysync", s.cfg.Name, "error", merr.Error())
		}
	}
	s.notify()
	return skips, err
}

// dropKnown leaves out of a watched change set the records and groups the syncer
// already has as they are: a watch's refresh resends every entry.
func (s *Syncer) dropKnown(set connectors.ChangeSet) connectors.ChangeSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := connectors.ChangeSet{Deleted: set.Deleted, Watermark: set.Watermark}
	for _, r := range set.Changed {
		if known, ok := s.records[r.ID]; !ok || !reflect.DeepEqual(known, r) {
			out.Changed = append(out.Changed, r)
		}
	}
	for _, g := range set.Groups {
		if known, ok := s.groups[g.ID]; !ok || !reflect.DeepEqual(known, g) {
			out.Groups = append(out.Groups, g)
		}
	}
	return out
}

// Apply applies records pushed to the syncer (by the inbound SCIM server) and reports
// a record it could not write as a connectors.RejectedError, so that the push is answered with it.
func (s *Syncer) Apply(ctx context.Context, set connectors.ChangeSet) error {
	skips, err := s.applyChanges(ctx, set)
	if err != nil {
		return err
	}
	for _, r := range set.Changed {
		if sk, ok := skips[r.ID]; ok {
			return &connectors.RejectedError{Reason: sk.reason, Detail: sk.detail}
		}
	}
	return nil
}

// noteHeldSuspensionLocked keeps the list of suspensions held against the source.
func (s *Syncer) noteHeldSuspensionLocked(d desiredUser) {
	switch {
	case !d.suspensionHeld:
		delete(s.heldSuspensions, d.name)
	case !s.heldSuspensions[d.name]:
		s.heldSuspensions[d.name] = true
		s.log.Info("Held a person's suspension against the source", "directorysync", s.cfg.Name, "user", d.name)
	}
}

func (s *Syncer) setErr(err error) {
	s.mu.Lock()
	s.status.Err = err
	s.mu.Unlock()
	s.notify()
}

func (s *Syncer) skip(id string, sk skip) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.skipLocked(id, sk)
}

// putRecordLocked keeps a record and the keys a reference to it may use, so that
// resolving a manager costs a lookup, not a pass over the directory per change.
func (s *Syncer) putRecordLocked(r connectors.Record) {
	if old, ok := s.records[r.ID]; ok {
		s.unrefLocked(old)
	}
	s.records[r.ID] = r
	if s.refs == nil {
		s.refs = map[string]string{}
	}
	for _, k := range refKeys(r) {
		s.refs[k] = r.ID
	}
}

func (s *Syncer) dropRecordLocked(id string) {
	if old, ok := s.records[id]; ok {
		s.unrefLocked(old)
		delete(s.records, id)
	}
}

func (s *Syncer) unrefLocked(r connectors.Record) {
	for _, k := range refKeys(r) {
		if s.refs[k] == r.ID {
			delete(s.refs, k)
		}
	}
}

// refKeys are the values a reference to a record may use: its id, dn, userName or email.
func refKeys(r connectors.Record) []string {
	keys := []string{strings.ToLower(r.ID)}
	for _, k := range []string{"dn", "userName", "email", "mail"} {
		if v, ok := r.Attributes[k].(string); ok && v != "" {
			keys = append(keys, strings.ToLower(v))
		}
	}
	return keys
}
