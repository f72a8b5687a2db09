// Package memory is an app that lives in the operator's memory. It implements
// connectors.Target with the same semantics as a real app (case-insensitive unique
// userName, conflicts on create, idempotent delete, batched group membership) and
// connectors.Source over the same accounts, and counts every request by kind so that
// tests and benchmarks can read them. The demo and the engine tests provision into it.
package memory

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/rosterhq/roster/connectors"
)

// Request kinds counted by an App.
const (
	OpValidate     = "validate"
	OpLookup       = "lookup"
	OpList         = "list"
	OpCreate       = "create"
	OpUpdate       = "update"
	OpDeactivate   = "deactivate"
	OpDelete       = "delete"
	OpListGroups   = "listGroups"
	OpEnsureGroup  = "ensureGroup"
	OpGroupMembers = "groupMembers"
)

// PageSize is how many accounts or groups one list request returns.
const PageSize = 100

// MemberBatchSize is how many member changes one group request carries.
const MemberBatchSize = 100

// App is one in-memory app.
type App struct {
	mu       sync.Mutex
	accounts map[string]connectors.Account
	order    []string
	byName   map[string]string // lower-cased userName → id
	groups   map[string]*connectors.Group
	gorder   []string
	requests map[string]int
	changes  []logEntry // the source's change log
	fail     func(op string) error
}

type logEntry struct {
	id      string
	deleted bool
}

// NewApp returns an empty app.
func NewApp() *App {
	return &App{
		accounts: map[string]connectors.Account{},
		byName:   map[string]string{},
		groups:   map[string]*connectors.Group{},
		requests: map[string]int{},
	}
}

var _ connectors.GroupTarget = (*App)(nil)

// FailWith makes every request of the given kinds fail with err until called with nil.
func (a *App) FailWith(err error, ops ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		a.fail = nil
		return
	}
	a.fail = func(op string) error {
		if len(ops) == 0 || slices.Contains(ops, op) {
			return err
		}
		return nil
	}
}

// Requests returns how many requests of each kind the app has served.
func (a *App) Requests() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.requests)
}

// Accounts returns every account, in creation order.
func (a *App) Accounts() []connectors.Account {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]connectors.Account, 0, len(a.order))
	for _, id := range a.order {
		out = append(out, clone(a.accounts[id]))
	}
	return out
}

// Groups returns every group with its members, in creation order.
func (a *App) Groups() []connectors.Group {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]connectors.Group, 0, len(a.gorder))
	for _, id := range a.gorder {
		g := *a.groups[id]
		g.Members = slices.Clone(g.Members)
		out = append(out, g)
	}
	return out
}

// request counts a request and returns the failure injected for it, if any. The
// caller holds a.mu.
func (a *App) request(op string, n int) error {
	a.requests[op] += n
	if a.fail != nil {
		return a.fail(op)
	}
	return nil
}

// Validate succeeds unless a failure is injected.
func (a *App) Validate(context.Context) (connectors.Capabilities, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.request(OpValidate, 1); err != nil {
		return connectors.Capabilities{}, err
	}
	return connectors.Capabilities{Groups: true, Patch: true, Filter: true, MaxResults: PageSize}, nil
}

// Lookup finds an account by key, ignoring letter case.
func (a *App) Lookup(_ context.Context, key connectors.Key) (connectors.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.request(OpLookup, 1); err != nil {
		return connectors.Account{}, err
	}
	for _, id := range a.order {
		if acc := a.accounts[id]; key.Matches(acc) {
			return clone(acc), nil
		}
	}
	return connectors.Account{}, connectors.ErrNotFound
}

// ListAccounts returns a page of accounts.
func (a *App) ListAccounts(_ context.Context, cursor string) (connectors.AccountPage, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.request(OpList, 1); err != nil {
		return connectors.AccountPage{}, err
	}
	ids, next, err := page(a.order, cursor)
	if err != nil {
		return connectors.AccountPage{}, err
	}
	out := connectors.AccountPage{Next: next}
	for _, id := range ids {
		out.Accounts = append(out.Accounts, clone(a.accounts[id]))
	}
	return out, nil
}

// Create creates an account; an existing userName (any letter case) is a conflict.
func (a *App) Create(_ context.Context, desired connectors.Account) (connectors.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.request(OpCreate, 1); err != nil {
		return connectors.Account{}, err
	}
	name := strings.ToLower(desired.UserName())
	if name == "" {
		return connectors.Account{}, &connectors.PermanentError{Status: 400, Message: "userName is required"}
	}
	if _, taken := a.byName[name]; taken {
		return connectors.Account{}, fmt.Errorf("userName %q: %w", desired.UserName(), connectors.ErrConflict)
	}
	acc := clone(desired)
	acc.ID = newID()
	acc.Version = "1"
	acc.Attributes = nonEmpty(acc.Attributes)
	a.accounts[acc.ID] = acc
	a.order = append(a.order, acc.ID)
	a.byName[name] = acc.ID
	a.changes = append(a.changes, logEntry{id: acc.ID})
	return clone(acc), nil
}

// Update sets the desired attributes and active state.
func (a *App) Update(_ context.Context, current, desired connectors.Account) (connectors.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.request(OpUpdate, 1); err != nil {
		return connectors.Account{}, err
	}
	return a.modify(current.ID, func(acc *connectors.Account) error {
		newName := strings.ToLower(desired.UserName())
		if owner, taken := a.byName[newName]; newName != "" && taken && owner != acc.ID {
			return fmt.Errorf("userName %q: %w", desired.UserName(), connectors.ErrConflict)
		}
		for k, v := range desired.Attributes {
			if connectors.IsEmpty(v) {
				delete(acc.Attributes, k)
			} else {
				acc.Attributes[k] = v
			}
		}
		acc.Active = desired.Active
		return nil
	})
}

// Deactivate sets active=false.
func (a *App) Deactivate(_ context.Context, current connectors.Account) (connectors.Account, error) {
	return a.setActive(OpDeactivate, current.ID, false)
}

func (a *App) setActive(op, id string, active bool) (connectors.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.request(op, 1); err != nil {
		return connectors.Account{}, err
	}
	return a.modify(id, func(acc *connectors.Account) error { acc.Active = active; return nil })
}

// modify changes an account in place; the caller holds a.mu.
func (a *App) modify(id string, mutate func(*connectors.Account) error) (connectors.Account, error) {
	acc, ok := a.accounts[id]
	if !ok {
		return connectors.Account{}, connectors.ErrNotFound
	}
	acc = clone(acc)
	oldName := strings.ToLower(acc.UserName())
	if err := mutate(&acc); err != nil {
		return connectors.Account{}, err
	}
	version, _ := strconv.Atoi(acc.Version)
	acc.Version = strconv.Itoa(version + 1)
	delete(a.byName, oldName)
	a.byName[strings.ToLower(acc.UserName())] = id
	a.accounts[id] = acc
	a.changes = append(a.changes, logEntry{id: id})
	return clone(acc), nil
}

// Delete deletes an account; a missing one is fine.
func (a *App) Delete(_ context.Context, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.request(OpDelete, 1); err != nil {
		return err
	}
	acc, ok := a.accounts[id]
	if !ok {
		return nil
	}
	delete(a.byName, strings.ToLower(acc.UserName()))
	delete(a.accounts, id)
	a.order = slices.DeleteFunc(a.order, func(x string) bool { return x == id })
	for _, g := range a.groups {
		g.Members = slices.DeleteFunc(g.Members, func(x string) bool { return x == id })
	}
	a.changes = append(a.changes, logEntry{id: id, deleted: true})
	return nil
}

// ListGroups returns a page of groups with members.
func (a *App) ListGroups(_ context.Context, cursor string) (connectors.GroupPage, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.request(OpListGroups, 1); err != nil {
		return connectors.GroupPage{}, err
	}
	ids, next, err := page(a.gorder, cursor)
	if err != nil {
		return connectors.GroupPage{}, err
	}
	out := connectors.GroupPage{Next: next}
	for _, id := range ids {
		g := *a.groups[id]
		g.Members = slices.Clone(g.Members)
		out.Groups = append(out.Groups, g)
	}
	return out, nil
}

// EnsureGroup finds a group by name, ignoring letter case, or creates it.
func (a *App) EnsureGroup(_ context.Context, displayName string) (connectors.Group, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.request(OpEnsureGroup, 1); err != nil {
		return connectors.Group{}, err
	}
	for _, id := range a.gorder {
		if g := a.groups[id]; strings.EqualFold(g.DisplayName, displayName) {
			return connectors.Group{ID: g.ID, DisplayName: g.DisplayName, Version: g.Version}, nil
		}
	}
	g := &connectors.Group{ID: newID(), DisplayName: displayName, Members: []string{}, Version: "1"}
	a.groups[g.ID] = g
	a.gorder = append(a.gorder, g.ID)
	return *g, nil
}

// ChangeMembers adds and removes members, counting one request per 100 changes.
func (a *App) ChangeMembers(_ context.Context, group connectors.Group, add, remove []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := len(add) + len(remove)
	if n == 0 {
		return nil
	}
	if err := a.request(OpGroupMembers, (n+MemberBatchSize-1)/MemberBatchSize); err != nil {
		return err
	}
	g, ok := a.groups[group.ID]
	if !ok {
		return connectors.ErrNotFound
	}
	g.Members = slices.DeleteFunc(g.Members, func(id string) bool { return slices.Contains(remove, id) })
	for _, id := range add {
		if _, exists := a.accounts[id]; !exists {
			return &connectors.PermanentError{Status: 400, Message: fmt.Sprintf("no account %s", id)}
		}
		if !slices.Contains(g.Members, id) {
			g.Members = append(g.Members, id)
		}
	}
	for _, id := range append(slices.Clone(add), remove...) {
		a.changes = append(a.changes, logEntry{id: id})
	}
	return nil
}

func page(ids []string, cursor string) ([]string, string, error) {
	start := 0
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 0 {
			return nil, "", &connectors.PermanentError{Message: fmt.Sprintf("bad page cursor %q", cursor)}
		}
		start = n
	}
	if start >= len(ids) {
		return nil, "", nil
	}
	end := min(start+PageSize, len(ids))
	next := ""
	if end < len(ids) {
		next = strconv.Itoa(end)
	}
	return slices.Clone(ids[start:end]), next, nil
}

func clone(a connectors.Account) connectors.Account {
	a.Attributes = maps.Clone(a.Attributes)
	if a.Attributes == nil {
		a.Attributes = map[string]any{}
	}
	return a
}

func nonEmpty(attrs map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range attrs {
		if !connectors.IsEmpty(v) {
			out[k] = v
		}
	}
	return out
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
