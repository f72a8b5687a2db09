package engine

import (
	"hash/maphash"
	"time"

	"github.com/rosterhq/roster/connectors"
)

// A full resync lists the app and marks every User, but in an organisation at rest
// most Users were last planned with nothing to do, and nothing of theirs has changed
// since: not the User, its Roles or its assignments (a change to those marks it from
// outside, and a User marked so is always planned afresh), nor its account as the app
// lists it. A resync plans such a User again only when the listing changed what its
// last plan was made against: planning every User of a large organisation again on
// every resync costs minutes of CPU, and leavers wait behind it.

// settledUser is what a User's last plan, which had nothing to do, was made against and
// a listing can change: its manager (whose account id its mapping may read) and a hash
// of what the app showed (seenLocked).
type settledUser struct {
	manager string
	seen    uint64
}

// rememberSettledLocked records a User whose plan had nothing to do. A User with a
// problem (another User's name or account in its way), a create whose outcome is
// unknown, an account kept unpacked, or no User object is always planned again.
func (e *Engine) rememberSettledLocked(p userPlan) {
	_, unsure := e.unsureCreates[p.user]
	acc := e.app.accountOf(p.user)
	unpacked := acc != nil && acc.Attributes != nil // attributes JSON could not hold: no hash of them
	if !p.exists || p.problem != "" || unsure || unpacked || isUnmanagedKey(p.user) {
		delete(e.settled, p.user)
		return
	}
	e.settled[p.user] = settledUser{manager: p.manager, seen: e.seenLocked(p.user, p.manager)}
}

// unchangedSinceSettledLocked reports whether a User marked only by listings since its
// last plan had nothing to do would be planned against the same app as then.
func (e *Engine) unchangedSinceSettledLocked(user string) bool {
	s, ok := e.settled[user]
	return ok && e.seenLocked(user, s.manager) == s.seen
}

// seenLocked hashes what a User's plan reads of the app: its account with every
// attribute and its groups (and whether Roster manages each), an unlinked account
// stamped with its name, and its manager's account id.
func (e *Engine) seenLocked(user, manager string) uint64 {
	var h maphash.Hash
	h.SetSeed(e.seed)
	field := func(s string) {
		h.WriteString(s)
		h.WriteByte(0)
	}
	if acc := e.app.accountOf(user); acc != nil {
		field(acc.ID)
		field(acc.Version)
		field(acc.Note)
		field(acc.LastLogin.Format(time.RFC3339Nano))
		field(acc.index)
		field(acc.stamp)
		field(acc.userName)
		if acc.Active {
			h.WriteByte(1)
		}
		h.Write(acc.packed)
		h.WriteByte(0)
		for _, g := range e.groupsOfLocked(acc.ID) {
			field(g)
			if e.isManagedGroupLocked(g) {
				h.WriteByte(1)
			}
		}
	}
	h.WriteByte(0)
	field(e.app.byKey[keyIndex(connectors.KeyExternalID, user)])
	field(e.app.links[manager])
	return h.Sum64()
}
