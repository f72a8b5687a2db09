package scim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rosterhq/roster/connectors"
)

// Resource types a Server serves.
const (
	Users  = "Users"
	Groups = "Groups"
)

// ErrVersionMismatch: an If-Match precondition failed.
var ErrVersionMismatch = errors.New("the resource changed since it was read")

// Store keeps the resources a Server serves. Errors are connectors.ErrNotFound,
// connectors.ErrConflict (uniqueness) and ErrVersionMismatch.
type Store interface {
	Get(ctx context.Context, typ, id string) (Resource, error)
	// List returns the resources matching filter (nil: all) in a stable order. They
	// may be the store's own: the caller copies what it changes.
	List(ctx context.Context, typ string, filter Filter) ([]Resource, error)
	// Create stores a new resource, assigning id and meta.
	Create(ctx context.Context, typ string, r Resource) (Resource, error)
	// Update changes a resource through change, if its version is ifMatch (when set),
	// and returns it as stored: it may be the store's own, and the caller copies it
	// before changing it.
	Update(ctx context.Context, typ, id, ifMatch string, change func(Resource) error) (Resource, error)
	Delete(ctx context.Context, typ, id string) error
}

// PageStore is a Store that can build one page of an unfiltered listing without
// building every resource before it: a Server uses it for listings without a filter, so
// that an identity provider reading every page costs each resource once, not once per
// page before it.
type PageStore interface {
	Store
	// ListPage returns at most count resources from the start-th (1-based) on, in
	// List's order, and how many there are in all.
	ListPage(ctx context.Context, typ string, start, count int) ([]Resource, int, error)
}

// MemoryStore is a Store in memory, for tests, the demo and benchmarks. userName
// (Users) and displayName (Groups) are unique, compared case-insensitively.
type MemoryStore struct {
	mu     sync.RWMutex
	tables map[string]*table
	now    func() time.Time
}

type table struct {
	uniqueAttr string
	// lenient: the attribute is not kept unique, as some apps do not.
	lenient bool
	order   []string
	byID    map[string]Resource
	unique  map[string]string // lower-cased unique value → id
	version map[string]int
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		tables: map[string]*table{Users: newTable("userName"), Groups: newTable("displayName")},
		now:    time.Now,
	}
}

// NewLenientMemoryStore returns a store that, like some apps, takes a second user with
// a userName already taken: a client that creates twice leaves a duplicate there.
func NewLenientMemoryStore() *MemoryStore {
	s := NewMemoryStore()
	s.tables[Users].lenient = true
	return s
}

func newTable(unique string) *table {
	return &table{uniqueAttr: unique, byID: map[string]Resource{}, unique: map[string]string{}, version: map[string]int{}}
}

func (s *MemoryStore) table(typ string) (*table, error) {
	t, ok := s.tables[typ]
	if !ok {
		return nil, fmt.Errorf("unknown resource type %q: %w", typ, connectors.ErrNotFound)
	}
	return t, nil
}

// Get returns a copy of the resource.
func (s *MemoryStore) Get(_ context.Context, typ, id string) (Resource, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, err := s.table(typ)
	if err != nil {
		return nil, err
	}
	r, ok := t.byID[id]
	if !ok {
		return nil, connectors.ErrNotFound
	}
	return r.Clone(), nil
}

// List returns the matching resources in creation order: the stored ones, not copies,
// since a stored resource is never changed (an update stores a new one), and a page of
// a large listing should not copy every resource.
func (s *MemoryStore) List(_ context.Context, typ string, filter Filter) ([]Resource, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, err := s.table(typ)
	if err != nil {
		return nil, err
	}
	if filter != nil {
		if p, v, ok := Equality(filter); ok && !t.lenient && p.Schema == "" && p.Sub == "" && strings.EqualFold(p.Attr, t.uniqueAttr) {
			if id, ok := t.unique[strings.ToLower(v)]; ok {
				return []Resource{t.byID[id]}, nil
			}
			return nil, nil
		}
	}
	var out []Resource
	for _, id := range t.order {
		r := t.byID[id]
		if filter == nil || filter.Match(r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Range calls fn with each resource of a type in creation order, without copying, until
// fn returns false. fn must not change the resource or call the store.
func (s *MemoryStore) Range(typ string, fn func(Resource) bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, err := s.table(typ)
	if err != nil {
		return
	}
	for _, id := range t.order {
		if !fn(t.byID[id]) {
			return
		}
	}
}

// Create stores r with a new id.
func (s *MemoryStore) Create(_ context.Context, typ string, r Resource) (Resource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.table(typ)
	if err != nil {
		return nil, err
	}
	key, err := t.uniqueKey(r)
	if err != nil {
		return nil, err
	}
	if _, taken := t.unique[key]; taken && !t.lenient {
		return nil, fmt.Errorf("%s %q: %w", t.uniqueAttr, key, connectors.ErrConflict)
	}
	r = r.Clone()
	id := newID()
	r["id"] = id
	now := s.now().UTC().Format(time.RFC3339)
	r["meta"] = map[string]any{"resourceType": strings.TrimSuffix(typ, "s"), "created": now}
	t.order = append(t.order, id)
	t.unique[key] = id
	t.store(id, r, now)
	return r.Clone(), nil
}

// Update applies change to a copy and stores it.
func (s *MemoryStore) Update(_ context.Context, typ, id, ifMatch string, change func(Resource) error) (Resource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.table(typ)
	if err != nil {
		return nil, err
	}
	current, ok := t.byID[id]
	if !ok {
		return nil, connectors.ErrNotFound
	}
	if ifMatch != "" && ifMatch != "*" && ifMatch != current.Version() {
		return nil, ErrVersionMismatch
	}
	next := current.cloneForChange()
	if err := change(next); err != nil {
		return nil, err
	}
	next["id"] = id
	next["meta"] = current.lookup("meta")
	oldKey, _ := t.uniqueKey(current)
	newKey, err := t.uniqueKey(next)
	if err != nil {
		return nil, err
	}
	if owner, taken := t.unique[newKey]; taken && owner != id && !t.lenient {
		return nil, fmt.Errorf("%s %q: %w", t.uniqueAttr, newKey, connectors.ErrConflict)
	}
	delete(t.unique, oldKey)
	t.unique[newKey] = id
	t.store(id, next, s.now().UTC().Format(time.RFC3339))
	return next, nil
}

// Delete removes a resource.
func (s *MemoryStore) Delete(_ context.Context, typ, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.table(typ)
	if err != nil {
		return err
	}
	r, ok := t.byID[id]
	if !ok {
		return connectors.ErrNotFound
	}
	key, _ := t.uniqueKey(r)
	delete(t.unique, key)
	delete(t.byID, id)
	t.order = slices.DeleteFunc(t.order, func(x string) bool { return x == id })
	return nil
}

func (t *table) uniqueKey(r Resource) (string, error) {
	v, _ := r.lookup(t.uniqueAttr).(string)
	if v == "" {
		return "", &PatchError{ScimType: ErrInvalidValue, Detail: t.uniqueAttr + " is required"}
	}
	return strings.ToLower(v), nil
}

func (t *table) store(id string, r Resource, now string) {
	t.version[id]++
	meta, _ := r["meta"].(map[string]any)
	meta = Resource(meta).Clone()
	meta["lastModified"] = now
	meta["version"] = fmt.Sprintf(`W/"%d"`, t.version[id])
	r["meta"] = meta
	t.byID[id] = r
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
