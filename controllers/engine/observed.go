package engine

import (
	"strings"

	"github.com/rosterhq/roster/connectors"
)

// observedApp is the engine's picture of its app: the accounts and groups as the last
// listing showed them, kept current by the engine's own writes, and which User holds
// which account. It is guarded by the engine's mutex.
type observedApp struct {
	accounts map[string]*observed   // by account id
	byKey    map[string]string      // keyIndex of the matching key → account id
	groups   map[string]*groupState // by lower-cased display name
	links    map[string]string      // User → the account id Roster manages for it
	linkedBy map[string]string      // account id → User
	// managed counts the active accounts Users hold, and unmanagedIDs are the active
	// accounts no User holds, both kept as accounts and links change: every plan that
	// deprovisions weighs itself against the first, and every status tells both.
	managed      int
	unmanagedIDs map[string]bool
	// written holds the accounts Roster wrote while a listing runs (nil: deleted), so
	// that the listing's older view does not overwrite them; nil when none runs.
	written map[string]*observed
}

func newObservedApp() *observedApp {
	return &observedApp{
		accounts: map[string]*observed{}, byKey: map[string]string{}, groups: map[string]*groupState{},
		links: map[string]string{}, linkedBy: map[string]string{}, unmanagedIDs: map[string]bool{},
	}
}

// observed is an account of the app as the engine keeps it. Attributes decoded from an
// app's answers are maps of maps, about 1.5 KiB an account; packed (packed.go) they
// take a seventh of that, so the account itself carries none: planning a User unpacks
// its one account, and what the account is found and named by is kept aside.
type observed struct {
	connectors.Account
	packed   []byte // the attributes, packed
	index    string // the account's entry in byKey, "" if it has no matching key
	stamp    string // its entry in byKey by externalId, "" if it has none
	userName string
}

// pack keeps an account with all its attributes, as an app showed it, indexed by the
// matching key matchBy.
func pack(acc *connectors.Account, matchBy connectors.KeyKind) *observed {
	o := &observed{Account: connectors.Account{ID: acc.ID, Active: acc.Active, Version: acc.Version, Note: acc.Note, LastLogin: acc.LastLogin}, userName: acc.UserName()}
	if v := acc.KeyValue(matchBy); v != "" {
		o.index = keyIndex(matchBy, v)
	}
	if v := acc.ExternalID(); v != "" {
		o.stamp = keyIndex(connectors.KeyExternalID, v)
	}
	if acc.Attributes != nil {
		data, err := attributeNames.pack(acc.Attributes)
		if err != nil {
			o.Attributes = acc.Attributes // attributes JSON cannot hold are kept as they are
		}
		o.packed = data
	}
	return o
}

// unpack returns the account with all its attributes (nil for nil).
func (o *observed) unpack() *connectors.Account {
	if o == nil {
		return nil
	}
	full := o.Account
	if o.Attributes == nil && o.packed != nil {
		full.Attributes, _ = attributeNames.unpack(o.packed)
	}
	return &full
}

func keyIndex(kind connectors.KeyKind, value string) string {
	return string(kind) + "\x00" + strings.ToLower(value)
}

// beginListing starts keeping Roster's own writes apart until endListing.
func (a *observedApp) beginListing() { a.written = map[string]*observed{} }

func (a *observedApp) endListing() { a.written = nil }

// replace takes a full listing: the accounts listed, with Roster's writes made while
// it ran kept over them, and the groups listed, but for those named in keepGroups
// (changes on their way) which keep what the engine knows. Users linked to accounts
// gone from the app are unlinked.
func (a *observedApp) replace(accounts []*observed, groups []connectors.Group, keepGroups func(lower string) bool) {
	fresh := make(map[string]*observed, len(accounts))
	for _, o := range accounts {
		fresh[o.ID] = o
	}
	for id, o := range a.written {
		if o == nil {
			delete(fresh, id)
		} else {
			fresh[id] = o
		}
	}
	a.accounts = fresh
	a.reindex()
	for user, id := range a.links {
		if _, ok := fresh[id]; !ok {
			a.unlink(user)
		}
	}
	a.recount()
	freshGroups := make(map[string]*groupState, len(groups))
	for _, g := range groups {
		freshGroups[strings.ToLower(g.DisplayName)] = newGroupState(g)
	}
	for lower, gs := range a.groups {
		if keepGroups(lower) {
			freshGroups[lower] = gs
		}
	}
	a.groups = freshGroups
}

// put keeps an account as Roster just wrote it (nil: deleted).
func (a *observedApp) put(id string, o *observed) {
	before := a.standingOf(id)
	if old := a.accounts[id]; old != nil {
		a.unindex(old)
	}
	if o == nil {
		delete(a.accounts, id)
	} else {
		a.accounts[id] = o
		a.index(o)
	}
	a.counted(id, before)
	if a.written != nil {
		a.written[id] = o
	}
}

// index finds an account by the connection's matching key (rekey follows a change of
// key) and by its externalId.
func (a *observedApp) index(o *observed) {
	for _, k := range []string{o.index, o.stamp} {
		if k != "" {
			a.byKey[k] = o.ID
		}
	}
}

func (a *observedApp) unindex(o *observed) {
	for _, k := range []string{o.index, o.stamp} {
		if k != "" && a.byKey[k] == o.ID {
			delete(a.byKey, k)
		}
	}
}

func (a *observedApp) reindex() {
	a.byKey = make(map[string]string, len(a.accounts))
	for _, o := range a.accounts {
		a.index(o)
	}
}

// rekey indexes every account by a new matching key.
func (a *observedApp) rekey(matchBy connectors.KeyKind) {
	for _, o := range a.accounts {
		o.index = ""
		if v := o.unpack().KeyValue(matchBy); v != "" {
			o.index = keyIndex(matchBy, v)
		}
	}
	a.reindex()
}

func (a *observedApp) link(user, id string) {
	if old, ok := a.links[user]; ok && old != id {
		before := a.standingOf(old)
		delete(a.linkedBy, old)
		a.counted(old, before)
	}
	before := a.standingOf(id)
	a.links[user] = id
	a.linkedBy[id] = user
	a.counted(id, before)
}

func (a *observedApp) unlink(user string) {
	if id, ok := a.links[user]; ok {
		before := a.standingOf(id)
		delete(a.linkedBy, id)
		delete(a.links, user)
		a.counted(id, before)
	}
}

// standing is how an active account counts: held by a User (managed) or by none.
type standing int8

const (
	inactiveOrGone standing = iota
	managedAccount
	unmanagedAccount
)

func (a *observedApp) standingOf(id string) standing {
	switch acc := a.accounts[id]; {
	case acc == nil || !acc.Active:
		return inactiveOrGone
	case a.linkedBy[id] != "":
		return managedAccount
	default:
		return unmanagedAccount
	}
}

// counted brings the counts up to date after a change to the account with id, which
// stood as before.
func (a *observedApp) counted(id string, before standing) {
	now := a.standingOf(id)
	if now == before {
		return
	}
	switch before {
	case managedAccount:
		a.managed--
	case unmanagedAccount:
		delete(a.unmanagedIDs, id)
	}
	switch now {
	case managedAccount:
		a.managed++
	case unmanagedAccount:
		a.unmanagedIDs[id] = true
	}
}

// recount counts the accounts afresh, after a listing replaced them all.
func (a *observedApp) recount() {
	a.managed, a.unmanagedIDs = 0, map[string]bool{}
	for id := range a.accounts {
		a.counted(id, inactiveOrGone)
	}
}

// accountOf returns the account linked to a User, nil if none.
func (a *observedApp) accountOf(user string) *observed {
	return a.accounts[a.links[user]]
}

// unlinked returns the account with id when no User holds it, nil otherwise.
func (a *observedApp) unlinked(id string) *observed {
	if a.linkedBy[id] != "" {
		return nil
	}
	return a.accounts[id]
}

// byMatchingKey returns the account no User holds whose matching key is value.
func (a *observedApp) byMatchingKey(kind connectors.KeyKind, value string) *observed {
	if id := a.byKey[keyIndex(kind, value)]; id != "" {
		return a.unlinked(id)
	}
	return nil
}

// unmanaged lists the active accounts no User holds.
func (a *observedApp) unmanaged() []*observed {
	out := make([]*observed, 0, len(a.unmanagedIDs))
	for id := range a.unmanagedIDs {
		out = append(out, a.accounts[id])
	}
	return out
}

// managedCount is the number of active accounts Users hold.
func (a *observedApp) managedCount() int { return a.managed }
