package engine

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rosterhq/roster/connectors"
)

// Member changes are gathered per group, so that many Users' changes go out in as few
// requests as the app allows: a group's changes are sent once they fill a request, once
// the engine has no other User to work on and changes to the group pause for
// groupQuiet, or once the oldest has waited groupMaxWait. A joiner who comes alone is
// in the group about a second after the account is made; during a large sync, a
// group's members go out a full request at a time.
const (
	groupQuiet   = time.Second
	groupMaxWait = 10 * time.Second
)

// groupState is an app group as the engine knows it.
type groupState struct {
	group   connectors.Group
	members map[string]bool
}

// groupChange holds member changes not yet sent: account id → User.
type groupChange struct {
	name   string
	add    map[string]string
	remove map[string]string
	// first and last are when the oldest and the latest change not yet sent came.
	first, last time.Time
}

func (c *groupChange) size() int { return len(c.add) + len(c.remove) }

func newGroupState(g connectors.Group) *groupState {
	gs := &groupState{group: g, members: make(map[string]bool, len(g.Members))}
	for _, m := range g.Members {
		gs.members[m] = true
	}
	return gs
}

// groupsOfLocked lists the display names of the groups an account is in, counting the
// changes already on their way.
func (e *Engine) groupsOfLocked(accountID string) []string {
	var names []string
	for lower, gs := range e.app.groups {
		pending := e.pendingGroups[lower]
		in := gs.members[accountID]
		if pending != nil {
			if _, ok := pending.add[accountID]; ok {
				in = true
			}
			if _, ok := pending.remove[accountID]; ok {
				in = false
			}
		}
		if in {
			names = append(names, gs.group.DisplayName)
		}
	}
	for lower, pending := range e.pendingGroups {
		if _, known := e.app.groups[lower]; !known {
			if _, ok := pending.add[accountID]; ok {
				names = append(names, pending.name)
			}
		}
	}
	sort.Strings(names)
	return names
}

// isManagedGroupLocked: Roster removes members only from groups it manages, the ones it
// has put members in or that an assignment names.
func (e *Engine) isManagedGroupLocked(name string) bool {
	_, ok := e.managedGroups[strings.ToLower(name)]
	return ok
}

// queueGroupsLocked records member changes for the flusher.
func (e *Engine) queueGroupsLocked(user, accountID string, add, remove []string) {
	for _, name := range add {
		e.putChangeLocked(e.groupChangeLocked(name), true, accountID, user)
		if _, ok := e.managedGroups[strings.ToLower(name)]; !ok {
			e.managedGroups[strings.ToLower(name)] = name
			e.appChanged = true
		}
	}
	for _, name := range remove {
		e.putChangeLocked(e.groupChangeLocked(name), false, accountID, user)
	}
	if len(add)+len(remove) > 0 {
		select {
		case e.groupWake <- struct{}{}:
		default:
		}
	}
}

func (e *Engine) groupChangeLocked(name string) *groupChange {
	lower := strings.ToLower(name)
	c := e.pendingGroups[lower]
	if c == nil {
		c = &groupChange{name: name, add: map[string]string{}, remove: map[string]string{}}
		e.pendingGroups[lower] = c
	}
	return c
}

// putChangeLocked records that a User's account joins (add) or leaves a group,
// replacing any change of the account to the group not yet sent.
func (e *Engine) putChangeLocked(c *groupChange, add bool, accountID, user string) {
	into, other := c.add, c.remove
	if !add {
		into, other = c.remove, c.add
	}
	e.dropChangeLocked(other, accountID, "")
	if u, ok := into[accountID]; ok {
		if u == user {
			return
		}
		e.dropChangeLocked(into, accountID, "")
	}
	into[accountID] = user
	e.pendingOf[user]++
	now := e.now()
	if c.first.IsZero() {
		c.first = now
	}
	c.last = now
}

// dropChangeLocked forgets a change not yet sent, if it is still the User's (any User's
// when user is "").
func (e *Engine) dropChangeLocked(changes map[string]string, accountID, user string) {
	u, ok := changes[accountID]
	if !ok || (user != "" && u != user) {
		return
	}
	delete(changes, accountID)
	if e.pendingOf[u]--; e.pendingOf[u] <= 0 {
		delete(e.pendingOf, u)
	}
}

// hasPendingGroupsLocked reports whether a User has member changes not yet sent.
func (e *Engine) hasPendingGroupsLocked(user string) bool { return e.pendingOf[user] > 0 }

// dueGroupChangesLocked takes the member changes to send now: whole groups that are due,
// and the full requests' worth of the others. It returns when the next group falls due.
func (e *Engine) dueGroupChangesLocked(now time.Time) ([]groupChange, time.Time) {
	var out []groupChange
	var next time.Time
	busy := e.busyLocked()
	for _, c := range e.pendingGroups {
		if c.size() == 0 {
			continue
		}
		due := c.first.Add(groupMaxWait)
		if quiet := c.last.Add(groupQuiet); !busy && quiet.Before(due) {
			due = quiet
		}
		if !now.Before(due) {
			out = append(out, groupChange{name: c.name, add: clone(c.add), remove: clone(c.remove)})
			continue
		}
		if batch := e.caps.MemberBatch; batch > 0 && c.size() >= batch {
			out = append(out, fullRequests(c, batch))
		}
		if busy { // look again once the engine may have gone idle
			if soon := now.Add(groupQuiet); soon.Before(due) {
				due = soon
			}
		}
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return out, next
}

// busyLocked reports whether Users are waiting to be planned or applied (not held for
// approval): their member changes are still to come.
func (e *Engine) busyLocked() bool {
	e.drainInboxLocked()
	return len(e.dirty) > 0 || len(e.planned) > len(e.held)
}

// fullRequests takes as many of a group's changes as fill whole requests of batch
// changes, removals first, as the connector sends them.
func fullRequests(c *groupChange, batch int) groupChange {
	n := c.size() / batch * batch
	out := groupChange{name: c.name, add: map[string]string{}, remove: map[string]string{}}
	for _, id := range sortedKeys(c.remove) {
		if len(out.remove) == n {
			break
		}
		out.remove[id] = c.remove[id]
	}
	for _, id := range sortedKeys(c.add) {
		if len(out.remove)+len(out.add) == n {
			break
		}
		out.add[id] = c.add[id]
	}
	return out
}

// flushGroups sends the gathered member changes as they fall due, one group at a time.
func (e *Engine) flushGroups(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.groupWake:
		case <-timer.C:
		}
		e.mu.Lock()
		target, paused := e.cfg.Target, e.cfg.Paused || e.health == HealthFailing
		var batch []groupChange
		next := e.now().Add(groupMaxWait)
		if !paused {
			batch, next = e.dueGroupChangesLocked(e.now())
		}
		e.mu.Unlock()
		for _, c := range batch {
			e.sendGroupChange(ctx, target, c)
		}
		wait := time.Hour
		switch {
		case len(batch) > 0:
			wait = 0 // more may have come, or fallen due, meanwhile
		case !next.IsZero():
			wait = max(0, time.Until(next))
		}
		timer.Reset(wait)
	}
}

func (e *Engine) sendGroupChange(ctx context.Context, target connectors.Target, c groupChange) {
	lower := strings.ToLower(c.name)
	groupTarget, ok := target.(connectors.GroupTarget)
	if !ok {
		e.groupChangeFailed(lower, c, &connectors.PermanentError{Message: "this app has no groups Roster can manage", Err: connectors.ErrUnsupported})
		return
	}
	e.mu.Lock()
	gs := e.app.groups[lower]
	e.mu.Unlock()
	if gs == nil {
		if len(c.add) == 0 {
			e.finishGroupChange(lower, c, nil)
			return // removing from a group the app does not have is done
		}
		g, err := groupTarget.EnsureGroup(ctx, c.name)
		if err != nil {
			e.groupChangeFailed(lower, c, err)
			return
		}
		if g.Members == nil {
			g.Members = []string{}
		}
		gs = newGroupState(g)
		e.mu.Lock()
		e.app.groups[lower] = gs
		e.mu.Unlock()
	}
	e.mu.Lock()
	group := gs.group
	group.Members = keys(gs.members)
	e.mu.Unlock()
	add, remove := sortedKeys(c.add), sortedKeys(c.remove)
	if err := groupTarget.ChangeMembers(ctx, group, add, remove); err != nil {
		e.groupChangeFailed(lower, c, err)
		return
	}
	e.finishGroupChange(lower, c, gs)
}

// finishGroupChange applies sent changes to what is observed and drops them from the
// pending ones, unless they changed meanwhile.
func (e *Engine) finishGroupChange(lower string, c groupChange, gs *groupState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	users := map[string]bool{}
	for id, u := range c.add {
		if gs != nil {
			gs.members[id] = true
		}
		users[u] = true
	}
	for id, u := range c.remove {
		if gs != nil {
			delete(gs.members, id)
		}
		users[u] = true
	}
	e.settleGroupChangeLocked(lower, c)
	for u := range users {
		e.changedUsers[u] = true
		e.observeConvergedLocked(u)
		e.announceIfDoneLocked(u)
	}
	e.appChanged = true
}

func (e *Engine) groupChangeFailed(lower string, c groupChange, err error) {
	e.log.Info("Could not change group members; the Users will be planned again", "app", e.cfg.App, "group", c.name, "error", err.Error())
	e.mu.Lock()
	defer e.mu.Unlock()
	var users []string
	for _, u := range c.add {
		users = append(users, u)
	}
	for _, u := range c.remove {
		users = append(users, u)
	}
	e.settleGroupChangeLocked(lower, c)
	for _, u := range dedupe(users) {
		e.failLocked(u, err)
	}
}

// settleGroupChangeLocked drops sent changes from the pending ones, unless they changed
// meanwhile; what is left waits anew.
func (e *Engine) settleGroupChangeLocked(lower string, sent groupChange) {
	pending := e.pendingGroups[lower]
	if pending == nil {
		return
	}
	for id, u := range sent.add {
		e.dropChangeLocked(pending.add, id, u)
	}
	for id, u := range sent.remove {
		e.dropChangeLocked(pending.remove, id, u)
	}
	if pending.size() == 0 {
		delete(e.pendingGroups, lower)
	} else {
		pending.first = e.now()
	}
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
