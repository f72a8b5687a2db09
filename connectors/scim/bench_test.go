package scim

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// BenchmarkAddingMembersToALargeGroup adds 100 members to a group of 10,000, as a
// batch of Roster's or an identity provider's does; its cost should be a pass over the
// members, not one per member added.
func BenchmarkAddingMembersToALargeGroup(b *testing.B) {
	members := make([]any, 10000)
	for i := range members {
		members[i] = map[string]any{"value": fmt.Sprintf("u%d", i)}
	}
	added := make([]any, 100)
	for i := range added {
		added[i] = map[string]any{"value": fmt.Sprintf("new%d", i)}
	}
	for b.Loop() {
		g := Resource{"id": "g1", "displayName": "eng", "members": slices.Clone(members)}
		if err := ApplyPatch(g, []PatchOperation{{Op: "add", Path: "members", Value: added}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRemovingMembersFromALargeGroup removes 100 members from a group of 10,000
// the way Roster's client and Entra ID send it, one `members[value eq "id"]` operation
// each; its cost should be a pass over the members, not one per member removed.
func BenchmarkRemovingMembersFromALargeGroup(b *testing.B) {
	members := make([]any, 10000)
	for i := range members {
		members[i] = map[string]any{"value": fmt.Sprintf("u%d", i)}
	}
	removed := make([]PatchOperation, 100)
	for i := range removed {
		removed[i] = PatchOperation{Op: "remove", Path: fmt.Sprintf(`members[value eq "u%d"]`, i*100)}
	}
	for b.Loop() {
		g := Resource{"id": "g1", "displayName": "eng", "members": slices.Clone(members)}
		if err := ApplyPatch(g, removed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListingAPageOfALargeApp reads one page of 100 users from an app of 50,000,
// as each request of a full listing does; its cost should be the page's, not the
// app's.
func BenchmarkListingAPageOfALargeApp(b *testing.B) {
	store := NewMemoryStore()
	for i := range 50000 {
		if _, err := store.Create(b.Context(), Users, Resource{"userName": fmt.Sprintf("u%d@example.com", i), "active": true}); err != nil {
			b.Fatal(err)
		}
	}
	server := NewServer(ServerOptions{Store: store, Authorize: func(*http.Request) bool { return true }})
	for b.Loop() {
		w := httptest.NewRecorder()
		server.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/Users?startIndex=25001&count=100", nil))
		if w.Code != http.StatusOK {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkPatchingALargeGroupThroughTheServer adds 100 members to a stored group of
// 50,000 through the server, as each batch of a large app's initial sync does; what the
// store copies per change shows in the bytes allocated.
func BenchmarkPatchingALargeGroupThroughTheServer(b *testing.B) {
	store := NewMemoryStore()
	members := make([]any, 50000)
	for i := range members {
		members[i] = map[string]any{"value": fmt.Sprintf("u%d", i)}
	}
	g, err := store.Create(b.Context(), Groups, Resource{"displayName": "eng", "members": members})
	if err != nil {
		b.Fatal(err)
	}
	server := NewServer(ServerOptions{Store: store, Authorize: func(*http.Request) bool { return true }})
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		var body strings.Builder
		body.WriteString(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[`)
		for i := range 100 {
			if i > 0 {
				body.WriteString(",")
			}
			fmt.Fprintf(&body, `{"value":"new%d"}`, n)
			n++
		}
		body.WriteString(`]}]}`)
		w := httptest.NewRecorder()
		server.ServeHTTP(w, httptest.NewRequest(http.MethodPatch, "/Groups/"+g.ID(), strings.NewReader(body.String())))
		if w.Code != http.StatusNoContent {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
