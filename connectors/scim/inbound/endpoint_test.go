package inbound

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/scim"
)

const token = "a-bearer-token-of-32-characters!"

// memory is a Store in memory that every replica (endpoint) over it shares, and that
// tells each replica what was written, as the API server's watch does.
type memory struct {
	mu        sync.Mutex
	objects   map[string]Object // by kind/id
	revision  int
	observers []*Endpoint
	// quiet: writes are not passed on, as when a replica's watch lags behind.
	quiet bool
}

func newMemory() *memory { return &memory{objects: map[string]Object{}} }

func keyOf(kind Kind, id string) string { return string(kind) + "/" + id }

func (m *memory) Load(context.Context) ([]Object, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Object
	for _, o := range m.objects {
		out = append(out, o.clone())
	}
	return out, nil
}

func (m *memory) Get(_ context.Context, kind Kind, id string) (Object, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[keyOf(kind, id)]
	if !ok {
		return Object{}, connectors.ErrNotFound
	}
	return o.clone(), nil
}

func (m *memory) Put(_ context.Context, o Object) (Object, error) {
	m.mu.Lock()
	current, exists := m.objects[keyOf(o.Kind, o.ID)]
	switch {
	case o.Version == 1 && exists, o.Version > 1 && exists && current.Revision != o.Revision:
		m.mu.Unlock()
		return Object{}, ErrStale
	case o.Version > 1 && !exists:
		m.mu.Unlock()
		return Object{}, connectors.ErrNotFound
	}
	m.revision++
	o = o.clone()
	o.Revision = fmt.Sprint(m.revision)
	m.objects[keyOf(o.Kind, o.ID)] = o
	observers := m.passOn()
	m.mu.Unlock()
	for _, ep := range observers {
		ep.Observe(o.clone())
	}
	return o.clone(), nil
}

func (m *memory) Delete(_ context.Context, o Object) error {
	m.mu.Lock()
	current, exists := m.objects[keyOf(o.Kind, o.ID)]
	if !exists {
		m.mu.Unlock()
		return connectors.ErrNotFound
	}
	if current.Revision != o.Revision {
		m.mu.Unlock()
		return ErrStale
	}
	delete(m.objects, keyOf(o.Kind, o.ID))
	observers := m.passOn()
	m.mu.Unlock()
	for _, ep := range observers {
		ep.Gone(o.Kind, o.ID, current.Version)
	}
	return nil
}

func (m *memory) passOn() []*Endpoint {
	if m.quiet {
		return nil
	}
	return slices.Clone(m.observers)
}

func (m *memory) user(t *testing.T, id string) scim.Resource {
	t.Helper()
	o, err := m.Get(context.Background(), KindUser, id)
	if err != nil {
		t.Fatal(err)
	}
	return o.Resource
}

// sink records the change sets applied, and refuses one userName.
type sink struct {
	mu   sync.Mutex
	sets []connectors.ChangeSet
}

func (s *sink) Apply(_ context.Context, set connectors.ChangeSet) error {
	for _, r := range set.Changed {
		if r.Attributes["userName"] == "rejected@example.com" {
			return &connectors.RejectedError{Reason: "InvalidName", Detail: "the mapping refused it"}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sets = append(s.sets, set)
	return nil
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sets)
}

// replica is one endpoint over the shared store, served over HTTP.
func replica(t *testing.T, m *memory, sk Sink) (*Endpoint, *httptest.Server) {
	t.Helper()
	ep := New(sk, m)
	ep.SetTokens([][]byte{[]byte(token)})
	if err := ep.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.observers = append(m.observers, ep)
	m.mu.Unlock()
	srv := httptest.NewServer(ep)
	t.Cleanup(srv.Close)
	return ep, srv
}

func serve(t *testing.T, m *memory, sk Sink) *httptest.Server {
	t.Helper()
	_, srv := replica(t, m, sk)
	return srv
}

func call(t *testing.T, srv *httptest.Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestAPushIsAppliedThroughTheSinkAndKeptThroughTheStore: a user and a group pushed to
// one endpoint are kept and applied before the answer, and a new endpoint over the same
// store (a restart) answers the same.
func TestAPushIsAppliedThroughTheSinkAndKeptThroughTheStore(t *testing.T) {
	m, sk := newMemory(), &sink{}
	srv := serve(t, m, sk)
	code, ada := call(t, srv, "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@example.com","active":true,"password":"never-kept"}`)
	if code != http.StatusCreated || ada["id"] == nil {
		t.Fatalf("create answered %d %v", code, ada)
	}
	id := ada["id"].(string)
	code, group := call(t, srv, "POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"staff","members":[{"value":"`+id+`"},{"value":"nobody"}]}`)
	if code != http.StatusCreated {
		t.Fatalf("group create answered %d %v", code, group)
	}
	gid := group["id"].(string)
	kept, err := m.Get(context.Background(), KindGroup, gid)
	if sk.count() != 2 || m.user(t, id)["password"] != nil || err != nil || !slices.Equal(kept.Members, []string{id}) {
		t.Fatalf("the sink got %d change sets; the store keeps %v and the group's members %v (%v); want 2, no password, and ada alone", sk.count(), m.user(t, id), kept.Members, err)
	}
	if groups := sk.sets[1].Changed; len(groups) != 1 || !slices.Equal(groups[0].Groups, []string{gid}) {
		t.Fatalf("the group's change set changed %v, want ada's record, in the group", groups)
	}

	restarted := serve(t, m, &sink{})
	code, again := call(t, restarted, "GET", "/Users/"+id, "")
	if code != http.StatusOK || again["userName"] != "ada@example.com" || len(listOf(again["groups"])) != 1 {
		t.Fatalf("after a restart the user reads %d %v, want ada in one group", code, again)
	}
	code, g := call(t, restarted, "GET", "/Groups/"+gid, "")
	if code != http.StatusOK || len(listOf(g["members"])) != 1 {
		t.Fatalf("after a restart the group reads %d %v, want ada as its member", code, g)
	}
	if code, _ := call(t, restarted, "POST", "/Users", `{"userName":"ADA@example.com"}`); code != http.StatusConflict {
		t.Fatalf("a second ada (other letter case) answered %d, want 409", code)
	}
}

// TestARecordTheSinkRejectsIsTheIdentityProvidersError: 400 with scimType invalidValue,
// and nothing is kept of it.
func TestARecordTheSinkRejectsIsTheIdentityProvidersError(t *testing.T) {
	m := newMemory()
	srv := serve(t, m, &sink{})
	code, body := call(t, srv, "POST", "/Users", `{"userName":"rejected@example.com"}`)
	if code != http.StatusBadRequest || body["scimType"] != "invalidValue" {
		t.Fatalf("a rejected record answered %d %v, want 400 invalidValue", code, body)
	}
	if code, list := call(t, srv, "GET", "/Users", ""); code != http.StatusOK || list["totalResults"] != float64(0) || len(m.objects) != 0 {
		t.Fatalf("after the rejection the endpoint lists %d %v and the store keeps %d objects, want none", code, list, len(m.objects))
	}
}

// elsewhere is the Sink of a replica where the DirectorySync's syncer does not run.
type elsewhere struct{}

func (elsewhere) Apply(context.Context, connectors.ChangeSet) error { return nil }

// watched collects what an endpoint passes on to its watcher.
func watched(t *testing.T, ep *Endpoint) func() []connectors.ChangeSet {
	t.Helper()
	var mu sync.Mutex
	var sets []connectors.ChangeSet
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		_ = ep.Watch(ctx, func(set connectors.ChangeSet) {
			mu.Lock()
			sets = append(sets, set)
			mu.Unlock()
		})
	}()
	for {
		ep.mu.Lock()
		ready := ep.watch != nil
		ep.mu.Unlock()
		if ready {
			break
		}
		runtime.Gosched()
	}
	return func() []connectors.ChangeSet {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(sets)
	}
}

// TestEveryReplicaAnswersWhatAnyOtherWrote: pushes to a replica without the syncer are
// kept, read on the other replica, and passed on to the syncer's watch there; the
// syncer's own replica applies its pushes through the Sink and does not pass them on
// again.
func TestEveryReplicaAnswersWhatAnyOtherWrote(t *testing.T) {
	m, sk := newMemory(), &sink{}
	leader, a := replica(t, m, sk)
	_, b := replica(t, m, elsewhere{})
	news := watched(t, leader)

	_, ada := call(t, b, "POST", "/Users", `{"userName":"ada@example.com","title":"engineer"}`)
	id, _ := ada["id"].(string)
	if code, got := call(t, a, "GET", "/Users/"+id, ""); code != http.StatusOK || got["title"] != "engineer" {
		t.Fatalf("a user created on one replica reads %d %v on the other", code, got)
	}
	if code, _ := call(t, a, "PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"title","value":"manager"}]}`); code != http.StatusOK {
		t.Fatalf("patch answered %d", code)
	}
	_, group := call(t, b, "POST", "/Groups", `{"displayName":"staff","members":[{"value":"`+id+`"}]}`)
	if code, got := call(t, a, "GET", "/Users/"+id, ""); code != http.StatusOK || got["title"] != "manager" || len(listOf(got["groups"])) != 1 {
		t.Fatalf("after a patch on one replica and a group on the other, the user reads %d %v", code, got)
	}
	if code := deleteOn(t, a, "/Users/"+id); code != http.StatusNoContent {
		t.Fatalf("delete answered %d", code)
	}
	if code, _ := call(t, b, "GET", "/Users/"+id, ""); code != http.StatusNotFound {
		t.Fatalf("a user deleted on one replica reads %d on the other, want 404", code)
	}

	// The syncer's replica applied its own two writes (the patch and the delete) through
	// the Sink, and heard of the other replica's two (the create and the group).
	got := news()
	if sk.count() != 2 || len(got) != 2 {
		t.Fatalf("the sink applied %d change sets and the watch heard %d, want 2 and 2: %v", sk.count(), len(got), got)
	}
	if len(got[0].Changed) != 1 || got[0].Changed[0].ID != id || len(got[1].Groups) != 1 || got[1].Groups[0].ID != group["id"] {
		t.Fatalf("the watch heard %v, want ada's create, then the group", got)
	}
}

func deleteOn(t *testing.T, srv *httptest.Server, path string) int {
	t.Helper()
	code, _ := call(t, srv, "DELETE", path, "")
	return code
}

// TestAWriteOnAStaleViewIsReadAgainNotLost: two replicas that have not heard of each
// other's writes change the same user and the same group; the store keeps both changes.
func TestAWriteOnAStaleViewIsReadAgainNotLost(t *testing.T) {
	m := newMemory()
	_, a := replica(t, m, elsewhere{})
	_, b := replica(t, m, elsewhere{})
	_, ada := call(t, a, "POST", "/Users", `{"userName":"ada@example.com"}`)
	_, bob := call(t, a, "POST", "/Users", `{"userName":"bob@example.com"}`)
	_, group := call(t, a, "POST", "/Groups", `{"displayName":"staff"}`)
	id, gid := ada["id"].(string), group["id"].(string)

	m.quiet = true // from here the replicas' views lag behind the store
	patch := func(srv *httptest.Server, path, op string) {
		t.Helper()
		if code, body := call(t, srv, "PATCH", path, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[`+op+`]}`); code != http.StatusOK && code != http.StatusNoContent {
			t.Fatalf("patch %s answered %d %v", op, code, body)
		}
	}
	patch(a, "/Users/"+id, `{"op":"replace","path":"title","value":"engineer"}`)
	patch(b, "/Users/"+id, `{"op":"replace","path":"nickName","value":"countess"}`)
	patch(a, "/Groups/"+gid, `{"op":"add","path":"members","value":[{"value":"`+id+`"}]}`)
	patch(b, "/Groups/"+gid, `{"op":"add","path":"members","value":[{"value":"`+bob["id"].(string)+`"}]}`)

	if u := m.user(t, id); u["title"] != "engineer" || u["nickName"] != "countess" {
		t.Fatalf("the store keeps %v, want both replicas' changes", u)
	}
	if g, err := m.Get(context.Background(), KindGroup, gid); err != nil || len(g.Members) != 2 || g.Version != 3 {
		t.Fatalf("the store keeps the group %+v (%v), want both members at version 3", g, err)
	}
}

// TestWhatTheStoreKeepsIsCheckedWhenRead: objects anyone who can edit the store could
// forge are left out, and a password kept by an earlier version is not read back.
func TestWhatTheStoreKeepsIsCheckedWhenRead(t *testing.T) {
	m := newMemory()
	for i, o := range []Object{
		{Kind: KindUser, ID: "u1", Version: 1, Resource: scim.Resource{"id": "u1", "userName": "ada", "password": "old"}},
		{Kind: KindUser, ID: "u2", Version: 1, Resource: scim.Resource{"id": "other", "userName": "grace"}},
		{Kind: KindUser, ID: "u3", Version: 1, Resource: scim.Resource{"id": "u3"}},
		{Kind: KindUser, ID: "u4", Version: 0, Resource: scim.Resource{"id": "u4", "userName": "linus"}},
		{Kind: KindGroup, ID: "g1", Version: 1, Resource: scim.Resource{"id": "g1", "displayName": 7}},
		{Kind: "Role", ID: "r1", Version: 1, Resource: scim.Resource{"id": "r1", "displayName": "admins"}},
	} {
		o.Revision = fmt.Sprint(i)
		m.objects[keyOf(o.Kind, o.ID)] = o
	}
	srv := serve(t, m, &sink{})
	_, list := call(t, srv, "GET", "/Users", "")
	_, groups := call(t, srv, "GET", "/Groups", "")
	users := listOf(list["Resources"])
	if len(users) != 1 || users[0].(map[string]any)["password"] != nil || groups["totalResults"] != float64(0) {
		t.Fatalf("read back users %v and groups %v, want ada alone, without a password, and no group", users, groups)
	}
}

// TestOnlyTheTokensSetAreAccepted: no token, a wrong one and, after SetTokens(nil), the
// right one are all refused.
func TestOnlyTheTokensSetAreAccepted(t *testing.T) {
	ep := New(&sink{}, newMemory())
	ep.SetTokens([][]byte{[]byte(token)})
	for _, header := range []string{"", "Bearer wrong-token-of-32-characters!!", "Basic " + token} {
		r := httptest.NewRequest("GET", "/Users", nil)
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		if ep.Authorize(r) {
			t.Errorf("Authorization %q was accepted", header)
		}
	}
	r := httptest.NewRequest("GET", "/Users", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	if !ep.Authorize(r) {
		t.Fatal("the token set was refused")
	}
	ep.SetTokens(nil)
	if ep.Authorize(r) {
		t.Fatal("a revoked token was accepted")
	}
}

// TestEveryPageOfAListingIsTheListingInOrder: an unfiltered listing, built a page at a
// time, reads as the same listing through a filter every resource matches, with its
// totals, its groups and members, and an empty page past the end.
func TestEveryPageOfAListingIsTheListingInOrder(t *testing.T) {
	srv := serve(t, newMemory(), &sink{})
	var ids []string
	for i := range 7 {
		_, u := call(t, srv, "POST", "/Users", fmt.Sprintf(`{"userName":"u%d@example.com"}`, i))
		ids = append(ids, u["id"].(string))
	}
	for i := range 3 {
		call(t, srv, "POST", "/Groups", fmt.Sprintf(`{"displayName":"g%d","members":[{"value":%q}]}`, i, ids[i]))
	}
	read := func(path string) (names []string, total any) {
		for start := 1; start <= 10; start += 3 {
			code, page := call(t, srv, "GET", fmt.Sprintf("%s&startIndex=%d&count=3", path, start), "")
			if code != http.StatusOK || page["Resources"] == nil {
				t.Fatalf("%s from %d answered %d %v", path, start, code, page)
			}
			for _, r := range listOf(page["Resources"]) {
				r := r.(map[string]any)
				names = append(names, fmt.Sprint(r["userName"], r["displayName"], len(listOf(r["groups"])), len(listOf(r["members"]))))
			}
			total = page["totalResults"]
		}
		return names, total
	}
	for _, typ := range []string{"Users", "Groups"} {
		paged, total := read("/" + typ + "?attributes=userName,displayName,groups,members")
		filtered, filteredTotal := read("/" + typ + "?filter=id%20pr")
		want := map[string]int{"Users": 7, "Groups": 3}[typ]
		if len(paged) != want || !slices.Equal(paged, filtered) || total != float64(want) || filteredTotal != total {
			t.Fatalf("%s read page by page: %v of %v; through a filter: %v of %v; want the same %d", typ, paged, total, filtered, filteredTotal, want)
		}
	}
}

// BenchmarkListingAPageOfALargeEndpoint reads one page of 100 users from an endpoint of
// 10,000, as each request of an identity provider's full listing does: unfiltered, only
// the page is built; through a filter every user matches, every user is.
func BenchmarkListingAPageOfALargeEndpoint(b *testing.B) {
	ep := New(&sink{}, newMemory())
	ep.SetTokens([][]byte{[]byte(token)})
	if err := ep.Load(b.Context()); err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		if _, err := ep.Create(b.Context(), scim.Users, scim.Resource{"userName": fmt.Sprintf("u%d@example.com", i)}); err != nil {
			b.Fatal(err)
		}
	}
	for _, path := range []string{"/Users?startIndex=5001&count=100", "/Users?filter=id%20pr&startIndex=5001&count=100"} {
		b.Run(path, func(b *testing.B) {
			for b.Loop() {
				w := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodGet, path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				ep.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
