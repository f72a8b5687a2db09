// Package inbound is the inbound SCIM 2.0 directory source: the users and groups an
// identity provider (Okta, Entra ID, OneLogin) pushes to one endpoint.
//
// Every replica of the operator serves the endpoint. What the identity provider pushed
// is kept in a Store that all replicas share (the API server); each write names the
// version it replaces, so that two replicas never overwrite each other (ErrStale: read
// again, change again, write again). Each replica answers from its view of the Store,
// kept current by Observe and Gone as the Store reports changes, whoever made them.
// A push is answered once it is kept; where the DirectorySync's syncer runs in the same
// process (the leader), it is also applied before the answer, through the Sink, so that
// a record the mapping refuses is the identity provider's error. Elsewhere the leader's
// syncer applies it as it follows the endpoint (Watch).
package inbound

import (
	"context"
	crand "crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/scim"
)

// ErrNotReady: the endpoint has not loaded what is kept yet.
var ErrNotReady = errors.New("the DirectorySync is not ready yet; retry")

// ErrStale: the kept object is not the one a write replaces: another replica wrote it.
var ErrStale = errors.New("the object was changed by another writer")

// Sink applies the change sets pushes make: the DirectorySync's syncer, where it runs
// in this process; elsewhere Apply does nothing (the leader applies what is kept). A
// record it cannot accept is reported as a *connectors.RejectedError, which the identity
// provider is answered with (400); any other error is the server's (500).
type Sink interface {
	Apply(ctx context.Context, set connectors.ChangeSet) error
}

// Kind is what a kept object is.
type Kind string

const (
	KindUser  Kind = "User"
	KindGroup Kind = "Group"
)

// Object is one pushed user or group, as kept.
type Object struct {
	Kind Kind
	ID   string
	// Version is 1 when the object is created and one more at every write: writes are
	// made in turn (each names the revision it replaces), so a higher version is newer.
	Version int64
	// Resource is a user without its groups, or a group without its members.
	Resource scim.Resource
	// Members are a group's members, by user id.
	Members []string
	// Revision is the Store's own version of the object, which a write must name.
	Revision string
}

func (o Object) clone() Object {
	o.Resource = o.Resource.Clone()
	o.Members = slices.Clone(o.Members)
	return o
}

// Store keeps what an endpoint's identity provider pushed, for every replica.
type Store interface {
	// Load returns every object kept.
	Load(ctx context.Context) ([]Object, error)
	// Get reads one object as it is kept now; connectors.ErrNotFound if it is not.
	Get(ctx context.Context, kind Kind, id string) (Object, error)
	// Put keeps obj: version 1 creates it, a later version replaces the object at
	// obj.Revision. ErrStale if the object exists (a create) or changed since (a
	// replace); connectors.ErrNotFound if a replaced object is gone. It returns obj with
	// its new Revision.
	Put(ctx context.Context, obj Object) (Object, error)
	// Delete removes the object at obj.Revision: ErrStale if it changed since,
	// connectors.ErrNotFound if it is gone.
	Delete(ctx context.Context, obj Object) error
}

// deleting stands, among the versions being written, for a delete.
const deleting = -1

// maxWriteAttempts bounds how often a write is tried again when another replica wrote
// the same object meanwhile.
const maxWriteAttempts = 8

// Endpoint is one DirectorySync's inbound SCIM users and groups.
type Endpoint struct {
	sink   Sink
	store  Store
	server http.Handler

	mu       sync.Mutex
	tokens   [][]byte
	loaded   bool
	users    map[string]Object
	order    []string
	names    map[string]string // lower-cased userName → id
	groups   map[string]Object
	gorder   []string
	memberOf map[string][]string // user id → group ids
	// writing: the version of each object this endpoint is writing now (deleting for a
	// delete), so that the store's word of it, which may come before the write returns,
	// is not passed on as another replica's.
	writing  map[string]int64
	watch    func(connectors.ChangeSet)
	watchers int            // how many watches began
	writeMu  [64]sync.Mutex // one write per object at a time in this process
}

var (
	_ scim.Store                = (*Endpoint)(nil)
	_ connectors.WatchingSource = (*Endpoint)(nil)
)

// New returns an endpoint that keeps pushes in store and applies them through sink;
// Load reads back what was kept, before it serves.
func New(sink Sink, store Store) *Endpoint {
	st := &Endpoint{sink: sink, store: store}
	st.reset()
	st.server = scim.NewServer(scim.ServerOptions{Store: st, Authorize: st.Authorize})
	return st
}

func (st *Endpoint) reset() {
	st.users, st.names, st.groups, st.memberOf = map[string]Object{}, map[string]string{}, map[string]Object{}, map[string][]string{}
	st.writing = map[string]int64{}
	st.order, st.gorder = nil, nil
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

// Ready reports whether the endpoint has loaded what is kept.
func (st *Endpoint) Ready() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.loaded
}

// Load reads, once, what the store kept. Objects without the shape the endpoint writes
// (anyone who can edit the store's objects can forge them) are left out.
func (st *Endpoint) Load(ctx context.Context) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.loaded {
		return nil
	}
	objs, err := st.store.Load(ctx)
	if err != nil {
		return err
	}
	slices.SortStableFunc(objs, func(a, b Object) int {
		return strings.Compare(createdOf(a.Resource)+a.ID, createdOf(b.Resource)+b.ID)
	})
	st.reset()
	for _, o := range objs {
		if o, ok := sanitize(o); ok {
			st.putLocked(o)
		}
	}
	st.loaded = true
	return nil
}

func createdOf(r scim.Resource) string {
	meta, _ := r["meta"].(map[string]any)
	s, _ := meta["created"].(string)
	return s
}

// sanitize checks an object read from the store and drops what must never be kept (a
// password); false if it is not one the endpoint could have written.
func sanitize(o Object) (Object, bool) {
	if o.ID == "" || o.Resource == nil || o.Version < 1 || o.Resource.ID() != o.ID {
		return o, false
	}
	switch o.Kind {
	case KindUser:
		scim.DropNeverReturned(o.Resource) // kept by an earlier version
		delete(o.Resource, "groups")
		o.Members = nil
		return o, userNameOf(o.Resource) != ""
	case KindGroup:
		delete(o.Resource, "members")
		return o, displayNameOf(o.Resource) != ""
	}
	return o, false
}

func userNameOf(r scim.Resource) string { s, _ := r["userName"].(string); return s }

func displayNameOf(r scim.Resource) string { s, _ := r["displayName"].(string); return s }

// Validate: the endpoint serves what it holds.
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
		snap.Records = append(snap.Records, st.recordLocked(id))
	}
	for _, id := range st.gorder {
		snap.Groups = append(snap.Groups, connectors.SourceGroup{ID: id, Name: displayNameOf(st.groups[id].Resource)})
	}
	return snap, nil
}

// Watch passes on every change other replicas make (and this one's, where no Sink
// applied them) until ctx ends.
// A later watch replaces an earlier one.
func (st *Endpoint) Watch(ctx context.Context, changed func(connectors.ChangeSet)) error {
	st.mu.Lock()
	st.watchers++
	mine := st.watchers
	st.watch = changed
	st.mu.Unlock()
	<-ctx.Done()
	st.mu.Lock()
	if st.watchers == mine {
		st.watch = nil
	}
	st.mu.Unlock()
	return ctx.Err()
}

// Get returns a user with its groups, or a group with its members.
func (st *Endpoint) Get(_ context.Context, typ, id string) (scim.Resource, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if typ == scim.Users {
		if _, ok := st.users[id]; ok {
			return st.userLocked(id), nil
		}
		return nil, connectors.ErrNotFound
	}
	if _, ok := st.groups[id]; ok {
		return st.groupLocked(id), nil
	}
	return nil, connectors.ErrNotFound
}

// List returns the matching resources in the order they were created.
func (st *Endpoint) List(_ context.Context, typ string, filter scim.Filter) ([]scim.Resource, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []scim.Resource
	if typ == scim.Users {
		if p, v, ok := scim.Equality(filter); ok && p.Schema == "" && p.Sub == "" && strings.EqualFold(p.Attr, "userName") {
			if id, ok := st.names[strings.ToLower(v)]; ok {
				return []scim.Resource{st.userLocked(id)}, nil
			}
			return nil, nil
		}
		for _, id := range st.order {
			if r := st.userLocked(id); filter == nil || filter.Match(r) {
				out = append(out, r)
			}
		}
		return out, nil
	}
	for _, id := range st.gorder {
		if g := st.groupLocked(id); filter == nil || filter.Match(g) {
			out = append(out, g)
		}
	}
	return out, nil
}

// ListPage builds only the users or groups of one page of an unfiltered listing.
func (st *Endpoint) ListPage(_ context.Context, typ string, start, count int) ([]scim.Resource, int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	ids, build := st.order, st.userLocked
	if typ != scim.Users {
		ids, build = st.gorder, st.groupLocked
	}
	page := scim.PageOf(ids, start, count)
	out := make([]scim.Resource, len(page))
	for i, id := range page {
		out[i] = build(id)
	}
	return out, len(ids), nil
}

// Create keeps a new user or group and applies it before answering.
func (st *Endpoint) Create(ctx context.Context, typ string, r scim.Resource) (scim.Resource, error) {
	if typ == scim.Users {
		return st.createUser(ctx, r)
	}
	return st.createGroup(ctx, r)
}

func (st *Endpoint) createUser(ctx context.Context, r scim.Resource) (scim.Resource, error) {
	if userNameOf(r) == "" {
		return nil, &scim.PatchError{ScimType: scim.ErrInvalidValue, Detail: "userName is required"}
	}
	r = scim.DropNeverReturned(r.Clone())
	delete(r, "groups") // read-only: membership comes from groups
	r["id"] = newUID()
	if _, ok := r["active"]; !ok {
		r["active"] = true
	}
	o := Object{Kind: KindUser, ID: r.ID(), Resource: r}
	if err := st.create(ctx, &o); err != nil {
		return nil, err
	}
	st.mu.Lock()
	out := st.userLocked(o.ID)
	st.mu.Unlock()
	return out, nil
}

func (st *Endpoint) createGroup(ctx context.Context, g scim.Resource) (scim.Resource, error) {
	name := displayNameOf(g)
	if name == "" {
		return nil, &scim.PatchError{ScimType: scim.ErrInvalidValue, Detail: "displayName is required"}
	}
	id := newUID()
	o := Object{Kind: KindGroup, ID: id, Members: memberIDs(g),
		Resource: scim.Resource{"schemas": []any{scim.SchemaGroup}, "id": id, "displayName": name}}
	if ext, ok := g["externalId"]; ok && ext != nil {
		o.Resource["externalId"] = ext
	}
	if err := st.create(ctx, &o); err != nil {
		return nil, err
	}
	st.mu.Lock()
	out := st.groupLocked(id)
	st.mu.Unlock()
	return out, nil
}

// create keeps a new object, then applies it; an object the Sink refuses is taken back.
func (st *Endpoint) create(ctx context.Context, o *Object) error {
	st.mu.Lock()
	if err := st.checkLocked(o); err != nil {
		st.mu.Unlock()
		return err
	}
	st.stamp(o, nil)
	name := strings.ToLower(userNameOf(o.Resource))
	if o.Kind == KindUser {
		st.names[name] = o.ID // taken while it is written
	}
	st.mu.Unlock()
	done := st.writingNow(o.Kind, o.ID, o.Version)
	saved, err := st.store.Put(ctx, *o)
	done()
	if err != nil {
		st.mu.Lock()
		if _, kept := st.users[o.ID]; !kept && o.Kind == KindUser && st.names[name] == o.ID {
			delete(st.names, name)
		}
		st.mu.Unlock()
		if errors.Is(err, ErrStale) {
			return fmt.Errorf("%s %s: %w", o.Kind, o.ID, connectors.ErrConflict)
		}
		return err
	}
	*o = saved
	st.mu.Lock()
	set := st.wroteLocked(saved.clone(), nil)
	st.mu.Unlock()
	if err := st.apply(ctx, set); err != nil {
		st.takeBack(ctx, saved, nil)
		return err
	}
	return nil
}

// checkLocked refuses an object whose userName or displayName another one has, and
// keeps of a group's members only users the endpoint knows.
func (st *Endpoint) checkLocked(o *Object) error {
	if o.Kind == KindUser {
		name := userNameOf(o.Resource)
		if owner, taken := st.names[strings.ToLower(name)]; taken && owner != o.ID {
			return fmt.Errorf("userName %q: %w", name, connectors.ErrConflict)
		}
		return nil
	}
	name := displayNameOf(o.Resource)
	for id, g := range st.groups {
		if id != o.ID && strings.EqualFold(displayNameOf(g.Resource), name) {
			return fmt.Errorf("displayName %q: %w", name, connectors.ErrConflict)
		}
	}
	members := make([]string, 0, len(o.Members))
	for _, uid := range o.Members {
		if _, ok := st.users[uid]; ok && !slices.Contains(members, uid) {
			members = append(members, uid)
		}
	}
	o.Members = members
	return nil
}

// stamp sets an object's version and meta, as the next after previous (nil: a new one).
func (st *Endpoint) stamp(o *Object, previous *Object) {
	now := time.Now().UTC().Format(time.RFC3339)
	meta := map[string]any{"resourceType": string(o.Kind), "created": now}
	o.Version = 1
	if previous != nil {
		o.Version = previous.Version + 1
		o.Revision = previous.Revision
		if m, ok := previous.Resource["meta"].(map[string]any); ok {
			meta = clonedMap(m)
		}
	}
	meta["lastModified"] = now
	meta["version"] = fmt.Sprintf(`W/"%d"`, o.Version)
	o.Resource["meta"] = meta
}

func clonedMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Update changes a user or group through change and applies it before answering.
func (st *Endpoint) Update(ctx context.Context, typ, id, _ string, change func(scim.Resource) error) (scim.Resource, error) {
	if typ == scim.Users {
		if err := st.update(ctx, KindUser, id, func(o *Object, current scim.Resource) error {
			if err := change(current); err != nil {
				return err
			}
			scim.DropNeverReturned(current)
			delete(current, "groups") // read-only
			current["id"] = id
			if userNameOf(current) == "" {
				return &scim.PatchError{ScimType: scim.ErrInvalidValue, Detail: "userName is required"}
			}
			o.Resource = current
			return nil
		}); err != nil {
			return nil, err
		}
		return st.Get(ctx, typ, id)
	}
	if err := st.update(ctx, KindGroup, id, func(o *Object, current scim.Resource) error {
		if err := change(current); err != nil {
			return err
		}
		name := displayNameOf(current)
		if name == "" {
			return &scim.PatchError{ScimType: scim.ErrInvalidValue, Detail: "displayName is required"}
		}
		o.Members = memberIDs(current)
		o.Resource = scim.Resource{"schemas": []any{scim.SchemaGroup}, "id": id, "displayName": name}
		if ext, ok := current["externalId"]; ok && ext != nil {
			o.Resource["externalId"] = ext
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return st.Get(ctx, typ, id)
}

// update writes one object changed by change from its view as the identity provider
// reads it (again, after another replica wrote it). Then it applies the change; a change
// the Sink refuses is taken back.
func (st *Endpoint) update(ctx context.Context, kind Kind, id string, change func(o *Object, current scim.Resource) error) error {
	return st.whileStale(ctx, kind, id, func() error {
		st.mu.Lock()
		current, ok := st.objLocked(kind, id)
		if !ok {
			st.mu.Unlock()
			return connectors.ErrNotFound
		}
		view := st.userLocked
		if kind == KindGroup {
			view = st.groupLocked
		}
		next := current.clone()
		err := change(&next, view(id))
		if err == nil {
			err = st.checkLocked(&next)
		}
		if err != nil {
			st.mu.Unlock()
			return err
		}
		st.stamp(&next, &current)
		st.mu.Unlock()
		done := st.writingNow(kind, id, next.Version)
		saved, err := st.store.Put(ctx, next)
		done()
		if errors.Is(err, connectors.ErrNotFound) {
			st.forget(kind, id)
		}
		if err != nil {
			return err
		}
		st.mu.Lock()
		set := st.wroteLocked(saved.clone(), &current)
		st.mu.Unlock()
		if err := st.apply(ctx, set); err != nil {
			st.takeBack(ctx, saved, &current)
			return err
		}
		return nil
	})
}

// whileStale makes one write of an object at a time in this process, and makes it
// again while the store refuses it as stale (another replica wrote the object since
// the view last saw it), up to maxWriteAttempts: each time after a pause, longer each
// attempt and jittered so that two replicas writing one object in step do not keep
// colliding, and after reading the object as kept now.
func (st *Endpoint) whileStale(ctx context.Context, kind Kind, id string, write func() error) error {
	lock := &st.writeMu[stripe(id)]
	lock.Lock()
	defer lock.Unlock()
	for attempt := 1; ; attempt++ {
		err := write()
		if !errors.Is(err, ErrStale) {
			return err
		}
		if attempt == maxWriteAttempts {
			return fmt.Errorf("%s %s kept changing while it was written; retry: %w", kind, id, err)
		}
		pause := time.Duration(attempt) * 10 * time.Millisecond
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause + rand.N(pause)):
		}
		fresh, err := st.store.Get(ctx, kind, id)
		if errors.Is(err, connectors.ErrNotFound) {
			st.forget(kind, id)
		}
		if err != nil {
			return err
		}
		st.Observe(fresh)
	}
}

// forget drops from the view an object the store no longer keeps.
func (st *Endpoint) forget(kind Kind, id string) {
	st.mu.Lock()
	known, ok := st.objLocked(kind, id)
	st.mu.Unlock()
	if ok {
		st.Gone(kind, id, known.Version)
	}
}

// takeBack undoes a write the Sink refused: the created object is removed, a replaced
// one written back as it was. What cannot be undone is left for the leader's syncer,
// which reports it in the DirectorySync's status.
func (st *Endpoint) takeBack(ctx context.Context, saved Object, previous *Object) {
	if previous == nil {
		done := st.writingNow(saved.Kind, saved.ID, deleting)
		err := st.store.Delete(ctx, saved)
		done()
		if err == nil {
			st.mu.Lock()
			st.dropLocked(saved)
			st.mu.Unlock()
		}
		return
	}
	back := previous.clone()
	back.Resource["meta"] = saved.Resource["meta"]
	st.stamp(&back, &saved)
	done := st.writingNow(back.Kind, back.ID, back.Version)
	restored, err := st.store.Put(ctx, back)
	done()
	if err == nil {
		st.mu.Lock()
		st.wroteLocked(restored, &saved)
		st.mu.Unlock()
	}
}

// Delete removes a user (its User is suspended, then deleted after the grace) or a group.
func (st *Endpoint) Delete(ctx context.Context, typ, id string) error {
	kind := KindUser
	if typ == scim.Groups {
		kind = KindGroup
	}
	return st.whileStale(ctx, kind, id, func() error {
		st.mu.Lock()
		current, ok := st.objLocked(kind, id)
		st.mu.Unlock()
		if !ok {
			return connectors.ErrNotFound
		}
		done := st.writingNow(kind, id, deleting)
		err := st.store.Delete(ctx, current)
		done()
		if err != nil && !errors.Is(err, connectors.ErrNotFound) {
			return err
		}
		st.mu.Lock()
		set := st.dropLocked(current)
		st.mu.Unlock()
		return st.apply(ctx, set)
	})
}

// Legacy reads what earlier versions kept: each pushed user's resource, as JSON, with
// its groups in its "groups" attribute, and the groups by id, as JSON. It returns the
// objects the endpoint keeps now (version 1), leaving out what does not have the shape
// the endpoint wrote.
func Legacy(users []string, groups map[string]string) []Object {
	var objs []Object
	members := map[string][]string{}
	for _, data := range users {
		var r scim.Resource
		if json.Unmarshal([]byte(data), &r) != nil || r == nil {
			continue
		}
		for _, g := range listOf(r["groups"]) {
			if gid := valueOf(g); gid != "" {
				members[gid] = append(members[gid], r.ID())
			}
		}
		objs = append(objs, Object{Kind: KindUser, ID: r.ID(), Version: 1, Resource: r})
	}
	for id, data := range groups {
		var g scim.Resource
		if json.Unmarshal([]byte(data), &g) == nil && g != nil {
			objs = append(objs, Object{Kind: KindGroup, ID: id, Version: 1, Resource: g, Members: members[id]})
		}
	}
	kept := objs[:0]
	for _, o := range objs {
		if o, ok := sanitize(o); ok {
			kept = append(kept, o)
		}
	}
	return kept
}

func memberIDs(g scim.Resource) []string {
	var ids []string
	for _, m := range listOf(g["members"]) {
		if id := valueOf(m); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// valueOf is the id of one entry of a members list, "" if it is not one.
func valueOf(entry any) string {
	m, _ := entry.(map[string]any)
	id, _ := m["value"].(string)
	return id
}

func listOf(v any) []any {
	list, _ := v.([]any)
	return list
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
	_, _ = crand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
