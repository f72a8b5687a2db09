package engine

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rosterhq/roster/connectors"
)

// groupFlushDelay gathers member changes for a moment, so that many Users' changes to
// one group go out in as few requests as the app allows.
const groupFlushDelay = 50 * time.Millisecond

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
}

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
	for lower, gs := range e.groups {
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
		if _, known := e.groups[lower]; !known {
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
		c := e.groupChangeLocked(name)
		delete(c.remove, accountID)
		c.add[accountID] = user
		if _, ok := e.managedGroups[strings.ToLower(name)]; !ok {
			e.managedGroups[strings.ToLower(name)] = name
			e.appChanged = true
		}
	}
	for _, name := range remove {
		c := e.groupChangeLocked(name)
		delete(c.add, accountID)
		c.remove[accountID] = user
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

// hasPendingGroupsLocked reports whether a User has member changes not yet sent.
func (e *Engine) hasPendingGroupsLocked(user string) bool {
	for _, c := range e.pendingGroups {
		for _, u := range c.add {
			if u == user {
				return true
			}
		}
		for _, u := range c.remove {
			if u == user {
				return true
			}
		}
	}
	return false
}

// flushGroups sends the gathered member changes, one group at a time.
func (e *Engine) flushGroups(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.groupWake:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(groupFlushDelay):
		}
		e.mu.Lock()
		batch := make([]groupChange, 0, len(e.pendingGroups))
		for _, c := range e.pendingGroups {
			batch = append(batch, groupChange{name: c.name, add: clone(c.add), remove: clone(c.remove)})
		}
		target, paused := e.cfg.Target, e.cfg.Paused || e.health == HealthFailing
		e.mu.Unlock()
		if paused {
			continue
		}
		for _, c := range batch {
			e.sendGroupChange(ctx, target, c)
		}
	}
}

func (e *Engine) sendGroupChange(ctx context.Context, target connectors.Target, c groupChange) {
	lower := strings.ToLower(c.name)
	e.mu.Lock()
	gs := e.groups[lower]
	e.mu.Unlock()
	if gs == nil {
		if len(c.add) == 0 {
			e.finishGroupChange(lower, c, nil)
			return // removing from a group the app does not have is done
		}
		g, err := target.EnsureGroup(ctx, c.name)
		if err != nil {
			e.groupChangeFailed(lower, c, err)
			return
		}
		if g.Members == nil {
			g.Members = []string{}
		}
		gs = newGroupState(g)
		e.mu.Lock()
		e.groups[lower] = gs
		e.mu.Unlock()
	}
	e.mu.Lock()
	group := gs.group
	group.Members = keys(gs.members)
	e.mu.Unlock()
	add, remove := sortedKeys(c.add), sortedKeys(c.remove)
	if err := target.ChangeMembers(ctx, group, add, remove); err != nil {
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
	pending := e.pendingGroups[lower]
	users := map[string]bool{}
	for id, u := range c.add {
		if gs != nil {
			gs.members[id] = true
		}
		if pending != nil && pending.add[id] == u {
			delete(pending.add, id)
		}
		users[u] = true
	}
	for id, u := range c.remove {
		if gs != nil {
			delete(gs.members, id)
		}
		if pending != nil && pending.remove[id] == u {
			delete(pending.remove, id)
		}
		users[u] = true
	}
	if pending != nil && len(pending.add)+len(pending.remove) == 0 {
		delete(e.pendingGroups, lower)
	}
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
	pending := e.pendingGroups[lower]
	var users []string
	for id, u := range c.add {
		if pending != nil && pending.add[id] == u {
			delete(pending.add, id)
		}
		users = append(users, u)
	}
	for id, u := range c.remove {
		if pending != nil && pending.remove[id] == u {
			delete(pending.remove, id)
		}
		users = append(users, u)
	}
	if pending != nil && len(pending.add)+len(pending.remove) == 0 {
		delete(e.pendingGroups, lower)
	}
	for _, u := range dedupe(users) {
		e.failLocked(u, err)
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
