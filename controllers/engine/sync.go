package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

// unmanagedPrefix marks plan entries for accounts no User holds.
const unmanagedPrefix = "account:"

// connectAndList validates the connection, unless it is up and unchanged since it was
// validated, and lists every account and group, page by page, then marks every User for
// planning. Roster's own writes made while the listing ran are kept over what the
// listing saw.
func (e *Engine) connectAndList(ctx context.Context, cfg Config) error {
	e.mu.Lock()
	connected, caps := e.synced && e.health == HealthReady, e.caps
	e.mu.Unlock()
	if !connected {
		var err error
		if caps, err = cfg.Target.Validate(ctx); err != nil {
			return err
		}
	}
	e.mu.Lock()
	e.caps = caps
	if !e.synced {
		e.health = HealthSyncing
	}
	e.syncing, e.touched = true, map[string]*observed{}
	e.appChanged = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.syncing, e.touched = false, nil
		e.mu.Unlock()
	}()

	accounts, err := listAccounts(ctx, cfg.Target)
	if err != nil {
		return err
	}
	var groups []connectors.Group
	if gt, ok := cfg.Target.(connectors.GroupTarget); ok && caps.Groups {
		if groups, err = listGroups(ctx, gt); err != nil {
			return err
		}
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if cfg.Target != e.cfg.Target {
		return nil // reconfigured while listing: the next sync is already asked for
	}
	e.replaceObservedLocked(accounts, groups)
	e.synced, e.health, e.err, e.failStreak, e.quarantine = true, HealthReady, nil, 0, time.Time{}
	e.lastFullSync = e.now()
	e.checkUnmanaged = true
	e.markAllLocked()
	e.appChanged = true
	return nil
}

func listAccounts(ctx context.Context, t connectors.Target) ([]connectors.Account, error) {
	return connectors.ListAll(ctx, "accounts", func(ctx context.Context, cursor string) ([]connectors.Account, string, error) {
		page, err := t.ListAccounts(ctx, cursor)
		return page.Accounts, page.Next, err
	})
}

func listGroups(ctx context.Context, t connectors.GroupTarget) ([]connectors.Group, error) {
	return connectors.ListAll(ctx, "groups", func(ctx context.Context, cursor string) ([]connectors.Group, string, error) {
		page, err := t.ListGroups(ctx, cursor)
		return page.Groups, page.Next, err
	})
}

func (e *Engine) replaceObservedLocked(accounts []connectors.Account, groups []connectors.Group) {
	fresh := make(map[string]*observed, len(accounts))
	for i := range accounts {
		fresh[accounts[i].ID] = e.observe(&accounts[i])
	}
	for id, o := range e.touched {
		if o == nil {
			delete(fresh, id)
		} else {
			fresh[id] = o
		}
	}
	e.accounts = fresh
	e.reindexLocked()
	// Links to accounts that are gone from the app are dropped; their Users re-plan.
	for user, id := range e.links {
		if _, ok := fresh[id]; !ok {
			e.unlinkLocked(user)
		}
	}
	freshGroups := make(map[string]*groupState, len(groups))
	for _, g := range groups {
		freshGroups[strings.ToLower(g.DisplayName)] = newGroupState(g)
	}
	// Groups Roster changed while the listing ran keep what Roster knows of them.
	for lower := range e.pendingGroups {
		if gs, ok := e.groups[lower]; ok {
			freshGroups[lower] = gs
		}
	}
	e.groups = freshGroups
}

func keyIndex(kind connectors.KeyKind, value string) string {
	return string(kind) + "\x00" + strings.ToLower(value)
}

// indexLocked finds an account by the connection's matching key (only that one:
// rekeyLocked follows a change of key).
func (e *Engine) indexLocked(o *observed) {
	if o.index != "" {
		e.byKey[o.index] = o.ID
	}
}

func (e *Engine) unindexLocked(o *observed) {
	if o.index != "" && e.byKey[o.index] == o.ID {
		delete(e.byKey, o.index)
	}
}

func (e *Engine) reindexLocked() {
	e.byKey = make(map[string]string, len(e.accounts))
	for _, o := range e.accounts {
		e.indexLocked(o)
	}
}

// rekeyLocked indexes every account by a new matching key.
func (e *Engine) rekeyLocked() {
	for _, o := range e.accounts {
		o.index = ""
		if v := o.unpack().KeyValue(e.cfg.MatchBy); v != "" {
			o.index = keyIndex(e.cfg.MatchBy, v)
		}
	}
	e.reindexLocked()
}

// observeLocked records an account as Roster just wrote it (nil: deleted).
func (e *Engine) observeLocked(id string, acc *connectors.Account) {
	if old := e.accounts[id]; old != nil {
		e.unindexLocked(old)
	}
	var o *observed
	if acc == nil {
		delete(e.accounts, id)
	} else {
		o = e.observe(acc)
		e.accounts[id] = o
		e.indexLocked(o)
	}
	if e.syncing {
		e.touched[id] = o
	}
}

func (e *Engine) linkLocked(user, id string) {
	if old, ok := e.links[user]; ok && old != id {
		delete(e.linkedBy, old)
	}
	e.links[user] = id
	e.linkedBy[id] = user
}

func (e *Engine) unlinkLocked(user string) {
	if id, ok := e.links[user]; ok {
		delete(e.linkedBy, id)
		delete(e.links, user)
	}
}

// planUserLocked plans one User (or one unmanaged account) against what is observed.
func (e *Engine) planUserLocked(user string, now time.Time) userPlan {
	if id, ok := strings.CutPrefix(user, unmanagedPrefix); ok {
		return e.planUnmanagedLocked(user, id)
	}
	s, exists := e.subjects.Subject(user)
	if e.released[user] {
		if !exists || s.Deleting {
			return userPlan{user: user} // its account was let go as it is
		}
		delete(e.released, user) // a new User of that name
	}
	if !exists {
		s = Subject{User: &identityv1alpha1.User{}}
		s.User.Name = user
	}
	e.seedRecordLocked(user, s.Recorded)
	var desired map[string]any
	var mapErr error
	if exists && s.Assigned && s.Active && !s.Deleting {
		desired, mapErr = e.cfg.Mapping.Apply(mapVars(s, e.links[s.Manager]))
	}
	seen, adopted := e.currentLocked(user, s, desired)
	current := seen.unpack()
	in := planInput{
		subject: s, exists: exists, cfg: &e.cfg, current: current, adopted: adopted,
		desired: desired, mapErr: mapErr, managed: e.isManagedGroupLocked, now: now, lastSent: e.lastSent[user],
	}
	if current != nil {
		in.groupsNow = e.groupsOfLocked(current.ID)
	}
	if r := e.records[user]; r != nil {
		in.since = r.status.LastTransitionTime
	}
	p := plan(in)
	p.observed = seen
	if exists && s.Manager != "" && e.links[s.Manager] == "" {
		p.awaitsManager = s.Manager
	}
	if adopted && current != nil {
		e.linkLocked(user, current.ID)
		if e.cfg.Mode == identityv1alpha1.ModeEnforce && !e.cfg.Paused {
			e.userEventLocked(user, "Normal", identityv1alpha1.EventAdopted,
				fmt.Sprintf("Adopted the existing account %s in %s (matched by %s)", current.UserName(), e.cfg.App, e.cfg.MatchBy))
		}
	}
	if !p.wake.IsZero() {
		e.timers.schedule(user, p.wake)
	}
	return p
}

// currentLocked finds the User's account: the one linked, the one its status recorded,
// or, for a User who should have one, an unlinked account with the same matching key.
func (e *Engine) currentLocked(user string, s Subject, desired map[string]any) (*observed, bool) {
	if id, ok := e.links[user]; ok {
		if acc := e.accounts[id]; acc != nil {
			return acc, false
		}
		e.unlinkLocked(user)
	}
	if r := s.Recorded; r != nil && r.ExternalID != "" && r.State != identityv1alpha1.AccountStateDeleted {
		if acc := e.accounts[r.ExternalID]; acc != nil && e.linkedBy[acc.ID] == "" {
			e.linkLocked(user, acc.ID)
			return acc, false
		}
	}
	if desired == nil {
		return nil, false
	}
	key := connectors.Account{Attributes: desired}.KeyValue(e.cfg.MatchBy)
	if key == "" {
		return nil, false
	}
	if id := e.byKey[keyIndex(e.cfg.MatchBy, key)]; id != "" && e.linkedBy[id] == "" {
		return e.accounts[id], true
	}
	return nil, false
}

func (e *Engine) planUnmanagedLocked(key, id string) userPlan {
	acc := e.accounts[id]
	p := userPlan{user: key}
	if acc == nil || !acc.Active || e.linkedBy[id] != "" || e.cfg.Unmanaged != identityv1alpha1.UnmanagedDeactivate {
		return p
	}
	p.current, p.observed, p.action = acc.unpack(), acc, actDeactivate
	return p
}

// unmanagedLocked lists the active accounts no User holds.
func (e *Engine) unmanagedLocked() []*observed {
	var out []*observed
	for id, acc := range e.accounts {
		if acc.Active && e.linkedBy[id] == "" {
			out = append(out, acc)
		}
	}
	return out
}

func (e *Engine) managedCountLocked() int {
	n := 0
	for id := range e.linkedBy {
		if acc := e.accounts[id]; acc != nil && acc.Active {
			n++
		}
	}
	return n
}

func blockedMessage(app, id string, n, sent int, window time.Duration, managed int, maxCount, maxPercent *int32) string {
	var limits []string
	if maxCount != nil {
		limits = append(limits, fmt.Sprintf("%d accounts", *maxCount))
	}
	if maxPercent != nil {
		limits = append(limits, fmt.Sprintf("%d%% of %d managed", *maxPercent, managed))
	}
	name := app[strings.Index(app, "/")+1:]
	return fmt.Sprintf("plan %s would deprovision %d accounts, with %d already deprovisioned in the last %s over the safety threshold (%s); "+
		"%d deprovisions are held and were not sent. Check status.plan, then approve it with: kubectl annotate appconnection %s %s=%s",
		id, n, sent, window, strings.Join(limits, ", "), n, name, identityv1alpha1.AnnotationApprovePlan, id)
}

// planID identifies a set of deprovisions, so that an approval covers exactly it.
func planID(users []string, planned map[string]plannedUser) string {
	h := sha256.New()
	for _, u := range users {
		fmt.Fprintf(h, "%s:%s\n", u, planned[u].action)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}
