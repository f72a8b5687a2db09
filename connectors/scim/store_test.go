package scim

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// A change stores a new resource that shares the elements of its multi-valued
// attributes with the one it replaces; a page being written from the old one must not
// see the change, whatever the operation.
func TestAChangeLeavesWhatAListingReturnedAsItWas(t *testing.T) {
	ctx := t.Context()
	store := NewMemoryStore()
	user, err := store.Create(ctx, Users, Resource{
		"userName": "ada",
		"name":     map[string]any{"givenName": "Ada"},
		"emails":   []any{map[string]any{"type": "work", "value": "ada@example.com"}, map[string]any{"type": "home", "value": "ada@home.example", "primary": true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	listed, err := store.List(ctx, Users, nil)
	if err != nil || len(listed) != 1 {
		t.Fatalf("listed %v, %v", listed, err)
	}
	asListed := listed[0].Clone()

	ops := []PatchOperation{
		{Op: "replace", Path: `emails[type eq "work"].value`, Value: "lovelace@example.com"},
		{Op: "remove", Path: `emails[type eq "home"].primary`},
		{Op: "replace", Path: `emails[type eq "home"]`, Value: map[string]any{"display": "home"}},
		{Op: "replace", Path: "name", Value: map[string]any{"familyName": "Lovelace"}},
		{Op: "add", Path: "emails", Value: []any{map[string]any{"type": "other", "value": "a@other.example"}}},
	}
	changed, err := store.Update(ctx, Users, user.ID(), "", func(r Resource) error { return ApplyPatch(r, ops) })
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(listed[0], asListed) {
		t.Errorf("the listed resource changed with the update:\n got %v\nwant %v", listed[0], asListed)
	}
	emails, _ := changed.Get(Path{Attr: "emails"})
	want := []any{
		map[string]any{"type": "work", "value": "lovelace@example.com"},
		map[string]any{"type": "home", "value": "ada@home.example", "display": "home"},
		map[string]any{"type": "other", "value": "a@other.example"},
	}
	if !reflect.DeepEqual(emails, want) {
		t.Errorf("emails after the change = %v, want %v", emails, want)
	}
	if name, _ := changed.Get(Path{Attr: "name"}); !reflect.DeepEqual(name, map[string]any{"givenName": "Ada", "familyName": "Lovelace"}) {
		t.Errorf("name after the change = %v", name)
	}
}

// The server trims its answer to what the client asked for; the stored resource keeps
// every attribute.
func TestAnAnswerTrimmedToTheAttributesAskedForLeavesTheStoredResourceWhole(t *testing.T) {
	store := NewMemoryStore()
	user, err := store.Create(t.Context(), Users, Resource{"userName": "ada", "title": "Countess", "emails": []any{map[string]any{"value": "ada@example.com"}}})
	if err != nil {
		t.Fatal(err)
	}
	server := NewServer(ServerOptions{Store: store, Authorize: func(*http.Request) bool { return true }})
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodPatch, "/Users/"+user.ID()+"?attributes=userName", strings.NewReader(`{"Operations":[{"op":"replace","path":"title","value":"Analyst"}]}`)),
		httptest.NewRequest(http.MethodPut, "/Users/"+user.ID()+"?excludedAttributes=emails,title", strings.NewReader(`{"userName":"ada","title":"Analyst","emails":[{"value":"ada@example.com"}]}`)),
	} {
		w := httptest.NewRecorder()
		server.ServeHTTP(w, req)
		if w.Code != http.StatusOK || strings.Contains(w.Body.String(), "Analyst") {
			t.Fatalf("%s: %d %s", req.Method, w.Code, w.Body)
		}
		stored, err := store.Get(t.Context(), Users, user.ID())
		if err != nil {
			t.Fatal(err)
		}
		if stored["title"] != "Analyst" || stored["emails"] == nil {
			t.Errorf("after %s the store holds %v", req.Method, stored)
		}
	}
}
