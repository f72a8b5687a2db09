package webhook

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"

	"github.com/rosterhq/roster/connectors"
)

// sentPage is how many accounts a page of what was sent holds.
const sentPage = 100

// sentState is what Roster sent to a receiver that cannot list: its accounts and
// groups as the receiver was asked to make them, kept in the journal so that a restart
// does not send everything again. A nil *sentState (a receiver that lists) keeps
// nothing.
type sentState struct {
	journal connectors.Journal // nil: kept in memory only

	mu       sync.Mutex
	accounts map[string]connectors.Account
	groups   map[string]connectors.Group
}

func accountKey(id string) string { return "account/" + id }
func groupKey(id string) string   { return "group/" + id }

// loadSent reads what was sent from the journal.
func loadSent(ctx context.Context, journal connectors.Journal) (*sentState, error) {
	s := &sentState{journal: journal, accounts: map[string]connectors.Account{}, groups: map[string]connectors.Group{}}
	if journal == nil {
		return s, nil
	}
	entries, err := journal.Entries(ctx)
	if err != nil {
		return nil, err
	}
	for key, value := range entries {
		kind, _, _ := strings.Cut(key, "/")
		switch kind {
		case "account":
			var a Account
			if json.Unmarshal(value, &a) == nil && a.ID != "" {
				s.accounts[a.ID] = fromAccount(a)
			}
		case "group":
			var g Group
			if json.Unmarshal(value, &g) == nil && g.ID != "" {
				s.groups[g.ID] = connectors.Group{ID: g.ID, DisplayName: g.DisplayName, Members: g.Members}
			}
		}
	}
	return s, nil
}

func (s *sentState) keep(ctx context.Context, key string, v any) error {
	if s.journal == nil {
		return nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.journal.Put(ctx, key, data)
}

func (s *sentState) put(ctx context.Context, a connectors.Account) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	s.accounts[a.ID] = a
	s.mu.Unlock()
	return s.keep(ctx, accountKey(a.ID), toAccount(a))
}

func (s *sentState) remove(ctx context.Context, key string) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	kind, id, _ := strings.Cut(key, "/")
	if kind == "account" {
		delete(s.accounts, id)
		for gid, g := range s.groups {
			g.Members = slices.DeleteFunc(slices.Clone(g.Members), func(m string) bool { return m == id })
			s.groups[gid] = g
		}
	}
	s.mu.Unlock()
	if s.journal == nil {
		return nil
	}
	return s.journal.Remove(ctx, key)
}

func (s *sentState) lookup(key connectors.Key) (connectors.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.accounts {
		if key.Matches(a) {
			return a, nil
		}
	}
	return connectors.Account{}, connectors.ErrNotFound
}

// accountPage returns the accounts after cursor (an id), in id order.
func (s *sentState) accountPage(cursor string) connectors.AccountPage {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.accounts))
	for id := range s.accounts {
		if id > cursor {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var page connectors.AccountPage
	for _, id := range ids[:min(len(ids), sentPage)] {
		page.Accounts = append(page.Accounts, s.accounts[id])
	}
	if len(ids) > sentPage {
		page.Next = ids[sentPage-1]
	}
	return page
}

func (s *sentState) groupPage() connectors.GroupPage {
	s.mu.Lock()
	defer s.mu.Unlock()
	var page connectors.GroupPage
	for _, g := range s.groups {
		g.Members = slices.Clone(g.Members)
		page.Groups = append(page.Groups, g)
	}
	return page
}

func (s *sentState) groupNamed(name string) (connectors.Group, bool) {
	if s == nil {
		return connectors.Group{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.groups {
		if strings.EqualFold(g.DisplayName, name) {
			return g, true
		}
	}
	return connectors.Group{}, false
}

func (s *sentState) putGroup(ctx context.Context, g connectors.Group) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	if kept, ok := s.groups[g.ID]; ok {
		g.Members = kept.Members
	}
	s.groups[g.ID] = g
	s.mu.Unlock()
	return s.keep(ctx, groupKey(g.ID), Group{ID: g.ID, DisplayName: g.DisplayName, Members: g.Members})
}

func (s *sentState) changeMembers(ctx context.Context, group connectors.Group, add, remove []string) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	g, ok := s.groups[group.ID]
	if !ok {
		g = connectors.Group{ID: group.ID, DisplayName: group.DisplayName}
	}
	gone := make(map[string]bool, len(remove))
	for _, m := range remove {
		gone[m] = true
	}
	members := slices.DeleteFunc(slices.Clone(g.Members), func(m string) bool { return gone[m] })
	held := make(map[string]bool, len(members)+len(add))
	for _, m := range members {
		held[m] = true
	}
	for _, m := range add {
		if !held[m] {
			held[m] = true
			members = append(members, m)
		}
	}
	g.Members = members
	s.groups[g.ID] = g
	s.mu.Unlock()
	return s.keep(ctx, groupKey(g.ID), Group{ID: g.ID, DisplayName: g.DisplayName, Members: g.Members})
}
