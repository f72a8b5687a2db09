// Package inbound is the inbound SCIM 2.0 directory source: the users and groups an
// identity provider (Okta, Entra ID, OneLogin) pushes to one endpoint. An Endpoint
// answers the SCIM protocol (through scim.NewServer), applies every push through a Sink
// before the identity provider gets its answer, and keeps what must survive a restart
// through a Store. Both are handed to it by the controllers, which own the Kubernetes
// side: the DirectorySync's syncer is the Sink, its Users and a ConfigMap the Store.
package inbound

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/scim"
)

// AnnotationResource is the key, among a pushed record's annotations, under which the
// record carries the resource the identity provider sent, to be kept on its User so
// that the endpoint answers the same after a restart (Store.Users reads them back).
const AnnotationResource = "identity.roster.dev/scim-resource"

// ErrNotReady: the endpoint has not loaded what it keeps yet.
var ErrNotReady = errors.New("the DirectorySync is not ready yet; retry")

// Sink applies the change sets pushes make: the DirectorySync's syncer. A record it
// cannot accept is reported as a *connectors.RejectedError, which the identity provider
// is answered with (400); any other error is the server's (500).
type Sink interface {
	Apply(ctx context.Context, set connectors.ChangeSet) error
}

// Store keeps what an endpoint must find again after a restart. Users are kept by the
// Sink, each on the User its record becomes (AnnotationResource); groups are kept here.
type Store interface {
	// Users returns the resources kept on the Users, oldest first, as JSON.
	Users(ctx context.Context) ([]string, error)
	// Groups returns the groups kept, by id, as JSON.
	Groups(ctx context.Context) (map[string]string, error)
	// SaveGroups keeps the groups, by id, as JSON.
	SaveGroups(ctx context.Context, groups map[string]string) error
}

// Endpoint is one DirectorySync's inbound SCIM users and groups. Membership is kept in
// each user's "groups" attribute. Every write goes through the Sink before the identity
// provider gets its answer.
type Endpoint struct {
	sink   Sink
	store  Store
	server http.Handler

	mu       sync.Mutex
	tokens   [][]byte
	loaded   bool
	users    map[string]scim.Resource
	order    []string
	names    map[string]string // lower-cased userName → id
	groups   map[string]scim.Resource
	gorder   []string
	version  int
	userLock [64]sync.Mutex
}

var (
	_ scim.Store        = (*Endpoint)(nil)
	_ connectors.Source = (*Endpoint)(nil)
)

// New returns an endpoint that applies pushes through sink and keeps its groups in
// store; Load reads back what was kept, before it serves.
func New(sink Sink, store Store) *Endpoint {
	st := &Endpoint{sink: sink, store: store, users: map[string]scim.Resource{}, names: map[string]string{}, groups: map[string]scim.Resource{}}
	st.server = scim.NewServer(scim.ServerOptions{Store: st, Authorize: st.Authorize})
	return st
}

// ServeHTTP answers the SCIM protocol, below the endpoint's base path.
func (st *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) { st.server.ServeHTTP(w, r) }

// SetTokens sets the bearer tokens the endpoint accepts; none refuses every request.
func (st *Endpoint) SetTokens(tokens [][]byte) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.tokens = tokens
}

// Authorize compares a request's bearer token with each accepted one in constant time.
func (st *Endpoint) Authorize(r *http.Request) bool {
	st.mu.Lock()
	tokens := st.tokens
	st.mu.Unlock()
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	match := 0
	for _, token := range tokens {
		if len(token) > 0 {
			match |= subtle.ConstantTimeCompare([]byte(got), token)
		}
	}
	return ok && match == 1
}

// Ready reports whether the endpoint has loaded what it keeps.
func (st *Endpoint) Ready() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.loaded
}

// Load reads back, once, the users and groups the store kept.
func (st *Endpoint) Load(ctx context.Context) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.loaded {
		return nil
	}
	users, err := st.store.Users(ctx)
	if err != nil {
		return err
	}
	for _, kept := range users {
		if r, ok := readBack(kept); ok {
			st.putUserLocked(r)
		}
	}
	groups, err := st.store.Groups(ctx)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(groups))
	for id := range groups {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		var g scim.Resource
		if json.Unmarshal([]byte(groups[id]), &g) == nil && g.ID() == id && displayNameOf(g) != "" {
			st.groups[id] = g
			st.gorder = append(st.gorder, id)
		}
	}
	st.loaded = true
	return nil
}

// readBack reads a pushed user kept on its User. Anyone who can edit Users can edit
// it, so what does not have the shape the store writes is dropped: a resource without
// an id or userName, group entries that are not {"value": "<id>"}, and attributes never
// to be kept (a password).
func readBack(annotation string) (scim.Resource, bool) {
	var r scim.Resource
	if annotation == "" || json.Unmarshal([]byte(annotation), &r) != nil || r.ID() == "" || userNameOf(r) == "" {
		return nil, false
	}
	scim.DropNeverReturned(r) // kept by an earlier version: the next sync rewrites the annotation
	if _, ok := r["groups"]; ok {
		var kept []any
		for _, g := range listOf(r["groups"]) {
			if groupIDOf(g) != "" {
				kept = append(kept, g)
			}
		}
		if r["groups"] = kept; len(kept) == 0 {
			delete(r, "groups")
		}
	}
	return r, true
}

// groupIDOf is the id of one entry of a user's groups, "" if it is not one.
func groupIDOf(entry any) string {
	m, _ := entry.(map[string]any)
	id, _ := m["value"].(string)
	return id
}

func listOf(v any) []any {
	list, _ := v.([]any)
	return list
}

func (st *Endpoint) putUserLocked(r scim.Resource) {
	id := r.ID()
	if old, ok := st.users[id]; ok {
		delete(st.names, strings.ToLower(userNameOf(old)))
	} else {
		st.order = append(st.order, id)
	}
	st.users[id] = r
	st.names[strings.ToLower(userNameOf(r))] = id
}

func userNameOf(r scim.Resource) string { s, _ := r["userName"].(string); return s }

func displayNameOf(r scim.Resource) string { s, _ := r["displayName"].(string); return s }

// Validate: the store serves what it holds.
func (st *Endpoint) Validate(context.Context) error { return nil }

// Snapshot is every user and group the identity provider pushed.
func (st *Endpoint) Snapshot(context.Context) (connectors.Snapshot, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.loaded {
		return connectors.Snapshot{}, ErrNotReady
	}
	var snap connectors.Snapshot
	for _, id := range st.order {
		snap.Records = append(snap.Records, record(st.users[id]))
	}
	for _, id := range st.gorder {
		snap.Groups = append(snap.Groups, connectors.SourceGroup{ID: id, Name: displayNameOf(st.groups[id])})
	}
	return snap, nil
}

// record is a pushed user as a directory record; it carries itself to be kept on the User.
func record(r scim.Resource) connectors.Record {
	data, _ := json.Marshal(r)
	rec := connectors.Record{ID: r.ID(), Attributes: r.Clone(), Disabled: !r.Active(),
		Annotations: map[string]string{AnnotationResource: string(data)}}
	for _, g := range listOf(r["groups"]) {
		if id := groupIDOf(g); id != "" {
			rec.Groups = append(rec.Groups, id)
		}
	}
	return rec
}

// Get returns a user, or a group with its members.
func (st *Endpoint) Get(_ context.Context, typ, id string) (scim.Resource, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if typ == scim.Users {
		if r, ok := st.users[id]; ok {
			return r.Clone(), nil
		}
		return nil, connectors.ErrNotFound
	}
	if g, ok := st.groups[id]; ok {
		return st.withMembersLocked(g), nil
	}
	return nil, connectors.ErrNotFound
}

func (st *Endpoint) withMembersLocked(g scim.Resource) scim.Resource {
	out := g.Clone()
	members := []any{}
	for _, uid := range st.order {
		if slices.Contains(record(st.users[uid]).Groups, g.ID()) {
			members = append(members, map[string]any{"value": uid, "display": userNameOf(st.users[uid]), "type": "User"})
		}
	}
	out["members"] = members
	return out
}

// List returns the matching resources in the order they were created.
func (st *Endpoint) List(_ context.Context, typ string, filter scim.Filter) ([]scim.Resource, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []scim.Resource
	if typ == scim.Users {
		if p, v, ok := scim.Equality(filter); ok && p.Schema == "" && p.Sub == "" && strings.EqualFold(p.Attr, "userName") {
			if id, ok := st.names[strings.ToLower(v)]; ok {
				return []scim.Resource{st.users[id].Clone()}, nil
			}
			return nil, nil
		}
		for _, id := range st.order {
			if r := st.users[id]; filter == nil || filter.Match(r) {
				out = append(out, r.Clone())
			}
		}
		return out, nil
	}
	for _, id := range st.gorder {
		if g := st.withMembersLocked(st.groups[id]); filter == nil || filter.Match(g) {
			out = append(out, g)
		}
	}
	return out, nil
}

// Create stores a new user or group and applies it before answering.
func (st *Endpoint) Create(ctx context.Context, typ string, r scim.Resource) (scim.Resource, error) {
	if typ == scim.Users {
		return st.createUser(ctx, r)
	}
	return st.createGroup(ctx, r)
}

func (st *Endpoint) createUser(ctx context.Context, r scim.Resource) (scim.Resource, error) {
	name := userNameOf(r)
	if name == "" {
		return nil, &scim.PatchError{ScimType: scim.ErrInvalidValue, Detail: "userName is required"}
	}
	st.mu.Lock()
	if _, taken := st.names[strings.ToLower(name)]; taken {
		st.mu.Unlock()
		return nil, fmt.Errorf("userName %q: %w", name, connectors.ErrConflict)
	}
	r = scim.DropNeverReturned(r.Clone())
	r["id"] = newUID()
	if _, ok := r["active"]; !ok {
		r["active"] = true
	}
	delete(r, "groups") // read-only: membership comes from groups
	st.stampLocked(r, "User", true)
	st.putUserLocked(r)
	st.mu.Unlock()
	if err := st.apply(ctx, connectors.ChangeSet{Changed: []connectors.Record{record(r)}}); err != nil {
		st.mu.Lock()
		st.dropUserLocked(r.ID())
		st.mu.Unlock()
		return nil, err
	}
	return r.Clone(), nil
}

func (st *Endpoint) dropUserLocked(id string) {
	if r, ok := st.users[id]; ok {
		delete(st.names, strings.ToLower(userNameOf(r)))
		delete(st.users, id)
		st.order = slices.DeleteFunc(st.order, func(x string) bool { return x == id })
	}
}

func (st *Endpoint) stampLocked(r scim.Resource, resourceType string, created bool) {
	st.version++
	now := time.Now().UTC().Format(time.RFC3339)
	meta, _ := r["meta"].(map[string]any)
	if meta == nil || created {
		meta = map[string]any{"resourceType": resourceType, "created": now}
	}
	meta["lastModified"] = now
	meta["version"] = fmt.Sprintf(`W/"%d"`, st.version)
	r["meta"] = meta
}

// Update changes a user or group through change and applies it before answering.
func (st *Endpoint) Update(ctx context.Context, typ, id, _ string, change func(scim.Resource) error) (scim.Resource, error) {
	if typ == scim.Users {
		return st.updateUser(ctx, id, change)
	}
	return st.updateGroup(ctx, id, change)
}

func (st *Endpoint) updateUser(ctx context.Context, id string, change func(scim.Resource) error) (scim.Resource, error) {
	lock := &st.userLock[stripe(id)]
	lock.Lock()
	defer lock.Unlock()
	st.mu.Lock()
	current, ok := st.users[id]
	if !ok {
		st.mu.Unlock()
		return nil, connectors.ErrNotFound
	}
	next := current.Clone()
	if err := change(next); err != nil {
		st.mu.Unlock()
		return nil, err
	}
	scim.DropNeverReturned(next)
	next["id"], next["meta"] = id, current["meta"]
	if groups, ok := current["groups"]; ok {
		next["groups"] = groups // read-only
	} else {
		delete(next, "groups")
	}
	name := userNameOf(next)
	if name == "" {
		st.mu.Unlock()
		return nil, &scim.PatchError{ScimType: scim.ErrInvalidValue, Detail: "userName is required"}
	}
	if owner, taken := st.names[strings.ToLower(name)]; taken && owner != id {
		st.mu.Unlock()
		return nil, fmt.Errorf("userName %q: %w", name, connectors.ErrConflict)
	}
	st.stampLocked(next, "User", false)
	st.putUserLocked(next)
	st.mu.Unlock()
	if err := st.apply(ctx, connectors.ChangeSet{Changed: []connectors.Record{record(next)}}); err != nil {
		st.mu.Lock()
		st.putUserLocked(current)
		st.mu.Unlock()
		return nil, err
	}
	return next.Clone(), nil
}

// Delete removes a user (its User is suspended, then deleted after the grace) or a group.
func (st *Endpoint) Delete(ctx context.Context, typ, id string) error {
	if typ == scim.Groups {
		return st.deleteGroup(ctx, id)
	}
	st.mu.Lock()
	if _, ok := st.users[id]; !ok {
		st.mu.Unlock()
		return connectors.ErrNotFound
	}
	st.dropUserLocked(id)
	st.mu.Unlock()
	return st.apply(ctx, connectors.ChangeSet{Deleted: []string{id}})
}

func (st *Endpoint) createGroup(ctx context.Context, g scim.Resource) (scim.Resource, error) {
	name := displayNameOf(g)
	if name == "" {
		return nil, &scim.PatchError{ScimType: scim.ErrInvalidValue, Detail: "displayName is required"}
	}
	st.mu.Lock()
	for _, existing := range st.groups {
		if strings.EqualFold(displayNameOf(existing), name) {
			st.mu.Unlock()
			return nil, fmt.Errorf("displayName %q: %w", name, connectors.ErrConflict)
		}
	}
	g = g.Clone()
	id := newUID()
	members := memberIDs(g)
	g = scim.Resource{"schemas": []any{scim.SchemaGroup}, "id": id, "displayName": name, "externalId": g["externalId"]}
	if g["externalId"] == nil {
		delete(g, "externalId")
	}
	st.stampLocked(g, "Group", true)
	st.groups[id] = g
	st.gorder = append(st.gorder, id)
	set := st.setMembersLocked(id, name, members)
	out := st.withMembersLocked(g)
	st.mu.Unlock()
	if err := st.saveGroups(ctx); err != nil {
		return nil, err
	}
	set.Groups = []connectors.SourceGroup{{ID: id, Name: name}}
	return out, st.apply(ctx, set)
}

func (st *Endpoint) updateGroup(ctx context.Context, id string, change func(scim.Resource) error) (scim.Resource, error) {
	st.mu.Lock()
	current, ok := st.groups[id]
	if !ok {
		st.mu.Unlock()
		return nil, connectors.ErrNotFound
	}
	view := st.withMembersLocked(current)
	if err := change(view); err != nil {
		st.mu.Unlock()
		return nil, err
	}
	name := displayNameOf(view)
	if name == "" {
		st.mu.Unlock()
		return nil, &scim.PatchError{ScimType: scim.ErrInvalidValue, Detail: "displayName is required"}
	}
	next := scim.Resource{"schemas": []any{scim.SchemaGroup}, "id": id, "displayName": name, "meta": current["meta"]}
	if ext, ok := view["externalId"]; ok {
		next["externalId"] = ext
	}
	renamed := name != displayNameOf(current)
	st.stampLocked(next, "Group", false)
	st.groups[id] = next
	set := st.setMembersLocked(id, name, memberIDs(view))
	out := st.withMembersLocked(next)
	st.mu.Unlock()
	if renamed {
		if err := st.saveGroups(ctx); err != nil {
			return nil, err
		}
	}
	set.Groups = []connectors.SourceGroup{{ID: id, Name: name}}
	return out, st.apply(ctx, set)
}

func (st *Endpoint) deleteGroup(ctx context.Context, id string) error {
	st.mu.Lock()
	if _, ok := st.groups[id]; !ok {
		st.mu.Unlock()
		return connectors.ErrNotFound
	}
	set := st.setMembersLocked(id, "", nil)
	delete(st.groups, id)
	st.gorder = slices.DeleteFunc(st.gorder, func(x string) bool { return x == id })
	st.mu.Unlock()
	if err := st.saveGroups(ctx); err != nil {
		return err
	}
	set.Deleted = []string{id}
	return st.apply(ctx, set)
}

// setMembersLocked makes exactly these users members of a group, by updating each
// user's groups attribute, and returns the users whose membership changed.
func (st *Endpoint) setMembersLocked(gid, name string, members []string) connectors.ChangeSet {
	want := map[string]bool{}
	for _, m := range members {
		if _, ok := st.users[m]; ok {
			want[m] = true
		}
	}
	var set connectors.ChangeSet
	for _, uid := range st.order {
		u := st.users[uid]
		groups := listOf(u["groups"])
		in := slices.IndexFunc(groups, func(g any) bool { return groupIDOf(g) == gid })
		switch {
		case want[uid] && in < 0:
			u = u.Clone()
			u["groups"] = append(groups, map[string]any{"value": gid, "display": name, "type": "direct"})
		case !want[uid] && in >= 0:
			u = u.Clone()
			if kept := slices.Delete(slices.Clone(groups), in, in+1); len(kept) > 0 {
				u["groups"] = kept
			} else {
				delete(u, "groups")
			}
		default:
			continue
		}
		st.putUserLocked(u)
		set.Changed = append(set.Changed, record(u))
	}
	return set
}

func memberIDs(g scim.Resource) []string {
	var ids []string
	for _, m := range listOf(g["members"]) {
		if id := groupIDOf(m); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// saveGroups keeps the groups through the store.
func (st *Endpoint) saveGroups(ctx context.Context) error {
	st.mu.Lock()
	data := make(map[string]string, len(st.groups))
	for id, g := range st.groups {
		b, _ := json.Marshal(g)
		data[id] = string(b)
	}
	st.mu.Unlock()
	return st.store.SaveGroups(ctx, data)
}

// apply applies a change through the sink; a record it cannot turn into a User is the
// identity provider's error (400), anything else the server's.
func (st *Endpoint) apply(ctx context.Context, set connectors.ChangeSet) error {
	err := st.sink.Apply(ctx, set)
	var rejected *connectors.RejectedError
	if errors.As(err, &rejected) {
		return &scim.PatchError{ScimType: scim.ErrInvalidValue, Detail: rejected.Error()}
	}
	return err
}

func stripe(id string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32() % 64)
}

func newUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
