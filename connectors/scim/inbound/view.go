package inbound

import (
	"slices"
	"strings"

	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/scim"
)

// The endpoint's view of what the store keeps: taken in as the store reports it
// (Observe, Gone) and as the endpoint's own writes land (wroteLocked), turned into the
// directory records the syncer reads and the resources the identity provider reads.

// Observe takes an object as the store now keeps it, written by this replica or
// another; what is newer than the endpoint's view is passed on to the watcher.
func (st *Endpoint) Observe(o Object) {
	o, ok := sanitize(o)
	if !ok {
		return
	}
	st.mu.Lock()
	set, changed := st.observeLocked(o)
	watch := st.watch
	st.mu.Unlock()
	if changed && watch != nil {
		watch(set)
	}
}

// wroteLocked takes into the view an object this endpoint just kept (unless a newer
// one arrived meanwhile) and returns the change from previous (nil: none) for the Sink.
func (st *Endpoint) wroteLocked(saved Object, previous *Object) connectors.ChangeSet {
	after := saved
	if known, ok := st.objLocked(saved.Kind, saved.ID); ok && known.Version > saved.Version {
		after = known
	} else {
		st.putLocked(saved)
	}
	if after.Kind == KindUser {
		return connectors.ChangeSet{Changed: []connectors.Record{st.recordLocked(after.ID)}}
	}
	var before []string
	if previous != nil {
		before = previous.Members
	}
	set := st.membersChangedLocked(after.ID, before, after.Members)
	set.Groups = []connectors.SourceGroup{{ID: after.ID, Name: displayNameOf(after.Resource)}}
	return set
}

func (st *Endpoint) observeLocked(o Object) (connectors.ChangeSet, bool) {
	if !st.loaded {
		return connectors.ChangeSet{}, false // Load reads it
	}
	if known, ok := st.objLocked(o.Kind, o.ID); ok && known.Version >= o.Version {
		return connectors.ChangeSet{}, false
	}
	set := st.putLocked(o)
	return set, st.writing[writeKey(o.Kind, o.ID)] != o.Version
}

func writeKey(kind Kind, id string) string { return string(kind) + "/" + id }

// writingNow marks the version of an object this endpoint writes until done is called.
func (st *Endpoint) writingNow(kind Kind, id string, version int64) (done func()) {
	key := writeKey(kind, id)
	st.mu.Lock()
	st.writing[key] = version
	st.mu.Unlock()
	return func() {
		st.mu.Lock()
		delete(st.writing, key)
		st.mu.Unlock()
	}
}

// Gone takes the removal of an object from the store, at the version it had.
func (st *Endpoint) Gone(kind Kind, id string, version int64) {
	st.mu.Lock()
	known, ok := st.objLocked(kind, id)
	if !ok || known.Version > version {
		st.mu.Unlock()
		return
	}
	set := st.dropLocked(known)
	watch := st.watch
	mine := st.writing[writeKey(kind, id)] == deleting
	st.mu.Unlock()
	if watch != nil && !mine {
		watch(set)
	}
}

func (st *Endpoint) objLocked(kind Kind, id string) (Object, bool) {
	if kind == KindGroup {
		o, ok := st.groups[id]
		return o, ok
	}
	o, ok := st.users[id]
	return o, ok
}

// putLocked takes an object into the view and returns the change it makes to records.
func (st *Endpoint) putLocked(o Object) connectors.ChangeSet {
	if o.Kind == KindGroup {
		return st.putGroupLocked(o)
	}
	if old, ok := st.users[o.ID]; ok {
		delete(st.names, strings.ToLower(userNameOf(old.Resource)))
	} else {
		st.order = append(st.order, o.ID)
	}
	st.users[o.ID] = o
	st.names[strings.ToLower(userNameOf(o.Resource))] = o.ID
	return connectors.ChangeSet{Changed: []connectors.Record{st.recordLocked(o.ID)}}
}

func (st *Endpoint) putGroupLocked(g Object) connectors.ChangeSet {
	var before []string
	if old, ok := st.groups[g.ID]; ok {
		before = old.Members
	} else {
		st.gorder = append(st.gorder, g.ID)
	}
	st.groups[g.ID] = g
	set := st.membersChangedLocked(g.ID, before, g.Members)
	set.Groups = []connectors.SourceGroup{{ID: g.ID, Name: displayNameOf(g.Resource)}}
	return set
}

// membersChangedLocked updates who is in a group and returns the records of the users
// who joined or left it.
func (st *Endpoint) membersChangedLocked(gid string, before, after []string) connectors.ChangeSet {
	var set connectors.ChangeSet
	changed := func(uid string) {
		if _, ok := st.users[uid]; ok {
			set.Changed = append(set.Changed, st.recordLocked(uid))
		}
	}
	for _, uid := range before {
		if !slices.Contains(after, uid) {
			st.memberOf[uid] = slices.DeleteFunc(st.memberOf[uid], func(x string) bool { return x == gid })
			changed(uid)
		}
	}
	for _, uid := range after {
		if !slices.Contains(before, uid) {
			if !slices.Contains(st.memberOf[uid], gid) {
				st.memberOf[uid] = append(st.memberOf[uid], gid)
			}
			changed(uid)
		}
	}
	return set
}

// dropLocked removes an object, as last known, from the view and returns the change
// it makes.
func (st *Endpoint) dropLocked(last Object) connectors.ChangeSet {
	id := last.ID
	if last.Kind == KindGroup {
		if _, ok := st.groups[id]; ok {
			delete(st.groups, id)
			st.gorder = slices.DeleteFunc(st.gorder, func(x string) bool { return x == id })
		}
		set := st.membersChangedLocked(id, last.Members, nil)
		set.Deleted = []string{id}
		return set
	}
	if u, ok := st.users[id]; ok {
		delete(st.names, strings.ToLower(userNameOf(u.Resource)))
		delete(st.users, id)
		st.order = slices.DeleteFunc(st.order, func(x string) bool { return x == id })
	}
	return connectors.ChangeSet{Deleted: []string{id}}
}

// recordLocked is a pushed user as a directory record.
func (st *Endpoint) recordLocked(id string) connectors.Record {
	u := st.users[id].Resource
	rec := connectors.Record{ID: id, Attributes: u.Clone(), Disabled: !u.Active()}
	for _, gid := range st.memberOf[id] {
		if _, ok := st.groups[gid]; ok {
			rec.Groups = append(rec.Groups, gid)
		}
	}
	return rec
}

// userLocked is a user as the identity provider reads it: with its groups.
func (st *Endpoint) userLocked(id string) scim.Resource {
	out := st.users[id].Resource.Clone()
	var groups []any
	for _, gid := range st.memberOf[id] {
		if g, ok := st.groups[gid]; ok {
			groups = append(groups, map[string]any{"value": gid, "display": displayNameOf(g.Resource), "type": "direct"})
		}
	}
	if groups != nil {
		out["groups"] = groups
	}
	return out
}

// groupLocked is a group as the identity provider reads it: with its members.
func (st *Endpoint) groupLocked(id string) scim.Resource {
	g := st.groups[id]
	out := g.Resource.Clone()
	members := []any{}
	for _, uid := range g.Members {
		if u, ok := st.users[uid]; ok {
			members = append(members, map[string]any{"value": uid, "display": userNameOf(u.Resource), "type": "User"})
		}
	}
	out["members"] = members
	return out
}
