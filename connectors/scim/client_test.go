package scim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rosterhq/roster/connectors"
)

var ctx = context.Background()

func TestLifecycleAgainstTheInProcessServer(t *testing.T) {
	app := newTestApp(t, ServerOptions{})
	c := newTestClient(t, connection(app.baseURL(), "generic"), bearerSecrets)

	caps, err := c.Validate(ctx)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if !caps.Groups || !caps.Patch || !caps.Filter || caps.ETag {
		t.Fatalf("capabilities = %+v, want groups, patch and filter without etag", caps)
	}

	created, err := c.Create(ctx, user("Ada@Example.com", map[string]any{
		"externalId": "E1", "name.givenName": "Ada", "title": "Engineer",
		"emails": []any{map[string]any{"value": "ada@example.com", "type": "work", "primary": true}},
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "R&D",
	}))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if created.ID == "" || !created.Active || created.Attributes["name.givenName"] != "Ada" {
		t.Fatalf("created = %+v", created)
	}
	var posted Resource
	_ = json.Unmarshal(app.last(http.MethodPost).body, &posted)
	if schemas, _ := posted["schemas"].([]any); len(schemas) != 2 || schemas[1] != SchemaEnterpriseUser {
		t.Fatalf("POST schemas = %v, want core and enterprise", posted["schemas"])
	}
	if ct := app.last(http.MethodPost).header.Get("Content-Type"); ct != MediaType {
		t.Fatalf("Content-Type = %q, want %q", ct, MediaType)
	}

	for _, key := range []connectors.Key{
		{Kind: connectors.KeyUserName, Value: "ada@example.COM"},
		{Kind: connectors.KeyExternalID, Value: "E1"},
		{Kind: connectors.KeyEmail, Value: "ADA@example.com"},
	} {
		found, err := c.Lookup(ctx, key)
		if err != nil || found.ID != created.ID {
			t.Fatalf("Lookup(%+v) = %v, %v; want %s", key, found.ID, err, created.ID)
		}
	}

	desired := created
	desired.Attributes = map[string]any{"userName": "Ada@Example.com", "title": "Principal Engineer", "name.givenName": "Ada"}
	app.reset()
	updated, err := c.Update(ctx, created, desired)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if updated.Attributes["title"] != "Principal Engineer" {
		t.Fatalf("title after update = %v", updated.Attributes["title"])
	}
	var patch PatchRequest
	_ = json.Unmarshal(app.last(http.MethodPatch).body, &patch)
	if len(patch.Operations) != 1 || patch.Operations[0].Path != "title" || patch.Operations[0].Op != "replace" {
		t.Fatalf("PATCH = %+v, want one replace of title", patch.Operations)
	}
	if _, err := c.Update(ctx, updated, desired); err != nil || app.count(http.MethodPatch, "/Users") != 1 {
		t.Fatalf("an update with nothing to change sent a request (err %v)", err)
	}

	deactivated, err := c.Deactivate(ctx, updated)
	if err != nil || deactivated.Active {
		t.Fatalf("Deactivate = %+v, %v", deactivated, err)
	}
	_ = json.Unmarshal(app.last(http.MethodPatch).body, &patch)
	if op := patch.Operations[0]; op.Path != "active" || op.Value != false {
		t.Fatalf("deactivation PATCH = %+v, want replace active=false", patch.Operations)
	}
	stored, _ := app.store.Get(ctx, Users, created.ID)
	if stored.Active() || stored["title"] != "Principal Engineer" {
		t.Fatalf("stored after deactivation = %v; the account must stay, inactive", stored)
	}
	reactivated, err := c.Update(ctx, deactivated, connectors.Account{Active: true, Attributes: deactivated.Attributes})
	if err != nil || !reactivated.Active {
		t.Fatalf("Update to reactivate = %+v, %v", reactivated, err)
	}

	if err := c.Delete(ctx, created.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := c.Delete(ctx, created.ID); err != nil {
		t.Fatalf("Delete of a missing account must succeed, got %v", err)
	}
	if _, err := c.Lookup(ctx, connectors.Key{Kind: connectors.KeyUserName, Value: "ada@example.com"}); !errors.Is(err, connectors.ErrNotFound) {
		t.Fatalf("Lookup after delete = %v, want ErrNotFound", err)
	}
}

func TestCreateOfAnExistingAccountIsAConflict(t *testing.T) {
	app := newTestApp(t, ServerOptions{})
	c := newTestClient(t, connection(app.baseURL(), "generic"), bearerSecrets)
	if _, err := c.Create(ctx, user("grace", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, user("GRACE", nil)); !errors.Is(err, connectors.ErrConflict) {
		t.Fatalf("second create = %v, want ErrConflict", err)
	}
}

func TestLookupTreatsEmptyListAnd404AsNotFound(t *testing.T) {
	cases := []struct {
		reason  string
		profile string
		answer  func(w http.ResponseWriter)
		// requests to /Users a miss costs: one filtered query, plus a listing unless the
		// profile trusts the app's filter.
		wantRequests int
	}{
		{"an empty ListResponse, trusted filter", "slack", nil, 1},
		{"a 404, as Okta's convention has it, trusted filter", "slack", func(w http.ResponseWriter) {
			writeError(w, http.StatusNotFound, "", "no match")
		}, 1},
		{"an empty ListResponse, untrusted filter confirmed by listing", "generic", nil, 2},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			app := newTestApp(t, ServerOptions{})
			if tc.answer != nil {
				app.intercept = func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
					if r.Method == http.MethodGet && r.URL.Query().Get("filter") != "" {
						tc.answer(w)
						return true
					}
					return false
				}
			}
			c := newTestClient(t, connection(app.baseURL(), tc.profile), bearerSecrets)
			if _, err := c.discover(ctx); err != nil {
				t.Fatal(err)
			}
			app.reset()
			_, err := c.Lookup(ctx, connectors.Key{Kind: connectors.KeyUserName, Value: "nobody"})
			if !errors.Is(err, connectors.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
			if n := app.count(http.MethodGet, "/Users"); n != tc.wantRequests {
				t.Fatalf("%d requests, want %d", n, tc.wantRequests)
			}
		})
	}
}

// caseSensitiveFilter plays a server whose userName eq filter compares with letter case
// (SCIMMY does), which the RFC says it must not.
func caseSensitiveFilter(app *testApp) func(http.ResponseWriter, *http.Request, []byte) bool {
	return func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		expr := r.URL.Query().Get("filter")
		if r.Method != http.MethodGet || expr == "" || !strings.HasSuffix(r.URL.Path, "/Users") {
			return false
		}
		f, _ := ParseFilter(expr)
		_, want, _ := Equality(f)
		all, _ := app.store.List(r.Context(), Users, nil)
		list := ListResponse{Schemas: []string{MessageListResponse}, StartIndex: 1, Resources: []Resource{}}
		for _, u := range all {
			if u["userName"] == want {
				list.Resources = append(list.Resources, u)
			}
		}
		list.TotalResults, list.ItemsPerPage = len(list.Resources), len(list.Resources)
		writeJSON(w, http.StatusOK, list)
		return true
	}
}

func TestLookupIgnoresCaseWhenTheServerDoesNot(t *testing.T) {
	app := newTestApp(t, ServerOptions{})
	app.intercept = caseSensitiveFilter(app)
	c := newTestClient(t, connection(app.baseURL(), "generic"), bearerSecrets)
	created, err := c.Create(ctx, user("Mixed.Case@Example.com", nil))
	if err != nil {
		t.Fatal(err)
	}
	found, err := c.Lookup(ctx, connectors.Key{Kind: connectors.KeyUserName, Value: "mixed.case@example.com"})
	if err != nil || found.ID != created.ID {
		t.Fatalf("Lookup = %v, %v; want %s found by listing", found.ID, err, created.ID)
	}
}

func TestPagingHonoursItemsPerPageAndTotalResults(t *testing.T) {
	app := newTestApp(t, ServerOptions{MaxResults: 200})
	app.seedUsers(t, 1050)
	conn := connection(app.baseURL(), "slack") // asks for pages of 1,000
	c := newTestClient(t, conn, bearerSecrets)
	if _, err := c.discover(ctx); err != nil {
		t.Fatal(err)
	}
	c.spc.Filter.MaxResults = 0 // the server does not say its limit: the client must follow itemsPerPage
	app.reset()
	seen := map[string]bool{}
	cursor := ""
	for {
		page, err := c.ListAccounts(ctx, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page.Accounts {
			if seen[a.ID] {
				t.Fatalf("%s listed twice", a.UserName())
			}
			seen[a.ID] = true
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if len(seen) != 1050 {
		t.Fatalf("listed %d users, want 1050", len(seen))
	}
	if n := app.count(http.MethodGet, "/Users"); n != 6 {
		t.Fatalf("%d page requests, want 6 (1050 users at 200 a page)", n)
	}
}

func TestCursorPaging(t *testing.T) {
	app := newTestApp(t, ServerOptions{CursorPaging: true, MaxResults: 100})
	app.seedUsers(t, 250)
	c := newTestClient(t, connection(app.baseURL(), "atlassian"), bearerSecrets)
	total, cursor := 0, ""
	for {
		page, err := c.ListAccounts(ctx, cursor)
		if err != nil {
			t.Fatal(err)
		}
		total += len(page.Accounts)
		if page.Next == "" {
			break
		}
		if !strings.HasPrefix(page.Next, "c:") {
			t.Fatalf("next page %q is not a cursor", page.Next)
		}
		cursor = page.Next
	}
	if total != 250 {
		t.Fatalf("listed %d, want 250", total)
	}
	last := app.last(http.MethodGet)
	if !strings.Contains(last.query, "cursor=") || strings.Contains(last.query, "startIndex") {
		t.Fatalf("query %q, want cursor paging without startIndex", last.query)
	}
}

func TestPutOnlyServerKeepsEveryAttributeAndActive(t *testing.T) {
	app := newTestApp(t, ServerOptions{DisablePatch: true})
	c := newTestClient(t, connection(app.baseURL(), "generic"), bearerSecrets)
	created, err := c.Create(ctx, user("linus", map[string]any{"title": "Maintainer"}))
	if err != nil {
		t.Fatal(err)
	}
	// The app sets an attribute of its own that Roster does not manage.
	if _, err := app.store.Update(ctx, Users, created.ID, "", func(r Resource) error { r["nickName"] = "torvalds"; return nil }); err != nil {
		t.Fatal(err)
	}
	current, err := c.Lookup(ctx, connectors.Key{Kind: connectors.KeyUserName, Value: "linus"})
	if err != nil {
		t.Fatal(err)
	}
	desired := current
	desired.Attributes = map[string]any{"userName": "linus", "title": "BDFL"}
	updated, err := c.Update(ctx, current, desired)
	if err != nil {
		t.Fatalf("Update on a PUT-only server: %v", err)
	}
	if app.count(http.MethodPatch, "/") != 0 || app.count(http.MethodPut, "/Users") != 1 {
		t.Fatal("the update did not go as one PUT")
	}
	stored, _ := app.store.Get(ctx, Users, created.ID)
	if stored["title"] != "BDFL" || stored["nickName"] != "torvalds" || !stored.Active() {
		t.Fatalf("stored after PUT = %v; want the new title, the app's nickName kept, active", stored)
	}
	deactivated, err := c.Deactivate(ctx, updated)
	if err != nil || deactivated.Active {
		t.Fatalf("Deactivate by PUT = %+v, %v", deactivated, err)
	}
	stored, _ = app.store.Get(ctx, Users, created.ID)
	if stored.Active() || stored["nickName"] != "torvalds" || stored["title"] != "BDFL" {
		t.Fatalf("stored after deactivation by PUT = %v; want inactive with every attribute kept", stored)
	}

	group, err := c.EnsureGroup(ctx, "kernel")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ChangeMembers(ctx, group, []string{created.ID}, nil); err != nil {
		t.Fatalf("ChangeMembers by PUT: %v", err)
	}
	g, _ := app.store.Get(ctx, Groups, group.ID)
	if members, _ := g["members"].([]any); len(members) != 1 {
		t.Fatalf("members after PUT = %v", g["members"])
	}
}

func TestETagsSendIfMatch(t *testing.T) {
	app := newTestApp(t, ServerOptions{ETags: true})
	c := newTestClient(t, connection(app.baseURL(), "generic"), bearerSecrets)
	created, err := c.Create(ctx, user("ken", map[string]any{"title": "Author"}))
	if err != nil {
		t.Fatal(err)
	}
	desired := created
	desired.Attributes = map[string]any{"userName": "ken", "title": "Retired"}
	updated, err := c.Update(ctx, created, desired)
	if err != nil {
		t.Fatal(err)
	}
	if got := app.last(http.MethodPatch).header.Get("If-Match"); got == "" || got != created.Version {
		t.Fatalf("If-Match = %q, want the version read, %q", got, created.Version)
	}
	// A write from a stale read is refused by the app, not silently applied.
	desired.Attributes = map[string]any{"userName": "ken", "title": "Stale"}
	if _, err := c.Update(ctx, created, desired); err == nil {
		t.Fatal("an update with a stale version succeeded")
	}
	if stored, _ := app.store.Get(ctx, Users, created.ID); stored["title"] != updated.Attributes["title"] {
		t.Fatalf("title = %v after a stale write", stored["title"])
	}
}

func TestGroupMembershipGoesInChunks(t *testing.T) {
	cases := []struct {
		reason       string
		batch        int32
		wantRequests int
	}{
		{"the default of 100 members a request", 0, 11},
		{"a batch size set on the AppConnection", 500, 3},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			app := newTestApp(t, ServerOptions{MaxBodyBytes: 8 << 20})
			app.seedUsers(t, 1050)
			conn := connection(app.baseURL(), "generic")
			if tc.batch > 0 {
				conn.Spec.SCIM.GroupMemberBatchSize = &tc.batch
			}
			c := newTestClient(t, conn, bearerSecrets)
			group, err := c.EnsureGroup(ctx, "everyone")
			if err != nil {
				t.Fatal(err)
			}
			var posted Resource
			_ = json.Unmarshal(app.last(http.MethodPost).body, &posted)
			if members, ok := posted["members"].([]any); !ok || len(members) != 0 {
				t.Fatalf("group created with members %v, want none", posted["members"])
			}
			users, _ := app.store.List(ctx, Users, nil)
			ids := make([]string, len(users))
			for i, u := range users {
				ids[i] = u.ID()
			}
			app.reset()
			if err := c.ChangeMembers(ctx, group, ids, nil); err != nil {
				t.Fatal(err)
			}
			if n := app.count(http.MethodPatch, "/Groups"); n != tc.wantRequests {
				t.Fatalf("%d PATCH requests for 1050 members, want %d", n, tc.wantRequests)
			}
			stored, _ := app.store.Get(ctx, Groups, group.ID)
			if members, _ := stored["members"].([]any); len(members) != 1050 {
				t.Fatalf("group has %d members, want 1050", len(members))
			}
			if err := c.ChangeMembers(ctx, group, nil, ids[:150]); err != nil {
				t.Fatal(err)
			}
			stored, _ = app.store.Get(ctx, Groups, group.ID)
			if members, _ := stored["members"].([]any); len(members) != 900 {
				t.Fatalf("group has %d members after removing 150, want 900", len(members))
			}
		})
	}
}

func TestEnsureGroupFindsBeforeCreatingAndSkipsMembers(t *testing.T) {
	app := newTestApp(t, ServerOptions{})
	c := newTestClient(t, connection(app.baseURL(), "generic"), bearerSecrets)
	first, err := c.EnsureGroup(ctx, "Engineering")
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.EnsureGroup(ctx, "engineering")
	if err != nil || again.ID != first.ID {
		t.Fatalf("second EnsureGroup = %v, %v; want the same group", again.ID, err)
	}
	if n := app.count(http.MethodPost, "/Groups"); n != 1 {
		t.Fatalf("%d groups created, want 1", n)
	}
	if q := app.last(http.MethodGet).query; !strings.Contains(q, "excludedAttributes=members") {
		t.Fatalf("group lookup query %q does not exclude members", q)
	}
}

// TestACreateWhoseAnswerWasLostIsLookedUpNotSentAgain: a POST that the app carried out
// but whose answer Roster could not read (the connection died, the body was cut, empty,
// or without an id) is not sent again by the client (an app need not refuse a second
// account of the same name); the error says the outcome is unknown, and the next
// attempt looks the account up and adopts it.
func TestACreateWhoseAnswerWasLostIsLookedUpNotSentAgain(t *testing.T) {
	answered := func(w http.ResponseWriter, rec *httptest.ResponseRecorder, body []byte) {
		w.Header().Set("Content-Type", rec.Header().Get("Content-Type"))
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	}
	losses := map[string]func(w http.ResponseWriter, rec *httptest.ResponseRecorder){
		"the connection dies": func(w http.ResponseWriter, _ *httptest.ResponseRecorder) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.(*net.TCPConn).SetLinger(0)
				_ = conn.Close()
			}
		},
		"the body is cut": func(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
			answered(w, rec, rec.Body.Bytes()[:rec.Body.Len()/2])
		},
		"the body is empty": func(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
			answered(w, rec, nil)
		},
		"the body has no id": func(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
			answered(w, rec, []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"joan"}`))
		},
	}
	for name, lose := range losses {
		t.Run(name, func(t *testing.T) {
			app := newTestApp(t, ServerOptions{})
			var lost atomic.Bool
			inner := NewServer(ServerOptions{Store: app.store})
			app.intercept = func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
				if r.Method != http.MethodPost || !lost.CompareAndSwap(false, true) {
					return false
				}
				rec := httptest.NewRecorder() // the app creates the account
				http.StripPrefix("/scim/v2", inner).ServeHTTP(rec, r)
				lose(w, rec)
				return true
			}
			c := newTestClient(t, connection(app.baseURL(), "generic"), bearerSecrets)
			_, _, err := connectors.CreateOrAdopt(ctx, c, user("joan", nil), connectors.KeyUserName)
			if !connectors.OutcomeUnknown(err) {
				t.Fatalf("CreateOrAdopt after a lost answer = %v, want an error whose outcome is unknown", err)
			}
			account, adopted, err := connectors.LookupOrCreate(ctx, c, user("joan", nil), connectors.KeyUserName)
			if err != nil {
				t.Fatalf("LookupOrCreate: %v", err)
			}
			if !adopted || account.ID == "" {
				t.Fatalf("got %+v adopted=%v; want the account the lost create made, adopted", account, adopted)
			}
			users, _ := app.store.List(ctx, Users, nil)
			if len(users) != 1 || users[0].ID() != account.ID {
				t.Fatalf("the app holds %d users, want exactly the one adopted", len(users))
			}
			if n := app.count(http.MethodPost, "/Users"); n != 1 {
				t.Fatalf("%d POSTs, want only the lost one", n)
			}
		})
	}
}

func TestAtlassianHidesDeactivatedAccounts(t *testing.T) {
	app := newTestApp(t, ServerOptions{CursorPaging: true})
	c := newTestClient(t, connection(app.baseURL(), "atlassian"), bearerSecrets)
	created, err := c.Create(ctx, user("ann", nil))
	if err != nil {
		t.Fatal(err)
	}
	deactivated, err := c.Deactivate(ctx, created)
	if err != nil {
		t.Fatal(err)
	}
	app.intercept = func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if strings.HasSuffix(r.URL.Path, "/Users/"+created.ID) {
			writeError(w, http.StatusNotFound, "", "user not found")
			return true
		}
		return false
	}
	_, err = c.Update(ctx, deactivated, connectors.Account{Active: true, Attributes: deactivated.Attributes})
	if err == nil || !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "reactivate ann in the app's administration") {
		t.Fatalf("Update to reactivate = %v, want a permanent error that says what to do", err)
	}
}

func TestAWSIdentityCenterGetsOneEmail(t *testing.T) {
	app := newTestApp(t, ServerOptions{})
	c := newTestClient(t, connection(app.baseURL(), "aws-identity-center"), bearerSecrets)
	_, err := c.Create(ctx, user("mo", map[string]any{"emails": []any{
		map[string]any{"value": "mo@home.example", "type": "home"},
		map[string]any{"value": "mo@example.com", "type": "work", "primary": true},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	var posted Resource
	_ = json.Unmarshal(app.last(http.MethodPost).body, &posted)
	emails, _ := posted["emails"].([]any)
	if len(emails) != 1 || emails[0].(map[string]any)["value"] != "mo@example.com" {
		t.Fatalf("emails sent = %v, want only the primary", posted["emails"])
	}
}

// TestAnUpdateAnswered204IsWhatWasSent: an app that carries out a PUT or a PATCH and
// answers 204 without a body has the account Roster sent; the update is done, not
// failed and sent again.
func TestAnUpdateAnswered204IsWhatWasSent(t *testing.T) {
	for _, profile := range []string{"zoom", "generic"} { // PUT, PATCH
		t.Run(profile, func(t *testing.T) {
			app := newTestApp(t, ServerOptions{})
			c := newTestClient(t, connection(app.baseURL(), profile), bearerSecrets)
			created, err := c.Create(ctx, user("zed", map[string]any{"title": "A"}))
			if err != nil {
				t.Fatal(err)
			}
			inner := NewServer(ServerOptions{Store: app.store})
			app.intercept = func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
				if r.Method != http.MethodPut && r.Method != http.MethodPatch {
					return false
				}
				http.StripPrefix("/scim/v2", inner).ServeHTTP(httptest.NewRecorder(), r)
				w.WriteHeader(http.StatusNoContent)
				return true
			}
			desired := created
			desired.Attributes = map[string]any{"userName": "zed", "title": "B"}
			updated, err := c.Update(ctx, created, desired)
			if err != nil || updated.ID != created.ID || updated.Attributes["title"] != "B" {
				t.Fatalf("Update answered 204 = %+v, %v; want the account sent, title B", updated, err)
			}
			if stored, _ := app.store.Get(ctx, Users, created.ID); stored["title"] != "B" {
				t.Fatalf("the app holds title %v, want B", stored["title"])
			}
		})
	}
}

func TestZoomUpdatesByPutAndDeactivatesByPatch(t *testing.T) {
	app := newTestApp(t, ServerOptions{})
	c := newTestClient(t, connection(app.baseURL(), "zoom"), bearerSecrets)
	created, err := c.Create(ctx, user("zed", map[string]any{"title": "A"}))
	if err != nil {
		t.Fatal(err)
	}
	desired := created
	desired.Attributes = map[string]any{"userName": "zed", "title": "B"}
	updated, err := c.Update(ctx, created, desired)
	if err != nil {
		t.Fatal(err)
	}
	if app.count(http.MethodPut, "/Users") != 1 || app.count(http.MethodPatch, "/Users") != 0 {
		t.Fatal("zoom attribute update did not go by PUT")
	}
	if _, err := c.Deactivate(ctx, updated); err != nil {
		t.Fatal(err)
	}
	if app.count(http.MethodPatch, "/Users") != 1 {
		t.Fatal("zoom deactivation did not go by PATCH")
	}
}

func TestProfilesAreComplete(t *testing.T) {
	for _, name := range []string{"generic", "slack", "github-emu", "zoom", "atlassian", "aws-identity-center"} {
		p, err := ProfileNamed(name)
		if err != nil {
			t.Fatal(err)
		}
		if p.Name != name || p.MemberBatchSize <= 0 || p.PageSize <= 0 || p.RequestsPerSecond <= 0 || p.Burst <= 0 || p.MaxConcurrency <= 0 {
			t.Errorf("profile %s is incomplete: %+v", name, p)
		}
	}
	if Profiles["aws-identity-center"].MemberBatchSize != 100 {
		t.Error("aws-identity-center must send at most 100 member changes per PATCH")
	}
	if !Profiles["atlassian"].DeactivatedNotFound || Profiles["atlassian"].Paging != PagingCursor {
		t.Error("atlassian must page by cursor and read 404 after deactivation as inactive")
	}
	if _, err := ProfileNamed("unknown"); err == nil {
		t.Error("an unknown profile was accepted")
	}
}

func TestEveryRequestSaysWhoItIs(t *testing.T) {
	app := newTestApp(t, ServerOptions{})
	c := newTestClient(t, connection(app.baseURL(), "generic"), bearerSecrets)
	if _, err := c.Create(ctx, user("ua", nil)); err != nil {
		t.Fatal(err)
	}
	for _, r := range app.requests {
		if ua := r.header.Get("User-Agent"); !strings.HasPrefix(ua, "Roster/") {
			t.Fatalf("%s %s had User-Agent %q", r.method, r.path, ua)
		}
		if r.method == http.MethodPost && r.header.Get("Content-Type") != MediaType {
			t.Fatalf("POST had Content-Type %q", r.header.Get("Content-Type"))
		}
	}
}

func TestRateLimitedAppIsRetriedAfterItsRetryAfter(t *testing.T) {
	app := newTestApp(t, ServerOptions{})
	var limited atomic.Int32
	app.intercept = func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.Method == http.MethodPost && limited.Add(1) <= 2 {
			w.Header().Set("Retry-After", "0")
			writeError(w, http.StatusTooManyRequests, "", "slow down")
			return true
		}
		return false
	}
	c := newTestClient(t, connection(app.baseURL(), "generic"), bearerSecrets)
	if _, err := c.Create(ctx, user("patient", nil)); err != nil {
		t.Fatalf("create through two 429s: %v", err)
	}
	if n := app.count(http.MethodPost, "/Users"); n != 3 {
		t.Fatalf("%d POSTs, want 2 refused and 1 accepted", n)
	}
}

func TestErrorsAreTyped(t *testing.T) {
	cases := []struct {
		status int
		check  func(error) bool
		want   string
	}{
		{http.StatusUnauthorized, func(err error) bool { return errors.Is(err, connectors.ErrUnauthorized) }, "ErrUnauthorized"},
		{http.StatusForbidden, func(err error) bool { return errors.Is(err, connectors.ErrUnauthorized) }, "ErrUnauthorized"},
		{http.StatusBadRequest, connectors.IsPermanent, "a PermanentError"},
		{http.StatusConflict, func(err error) bool { return errors.Is(err, connectors.ErrConflict) }, "ErrConflict"},
		{http.StatusNotImplemented, func(err error) bool { return errors.Is(err, connectors.ErrUnsupported) }, "ErrUnsupported"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			app := newTestApp(t, ServerOptions{})
			app.intercept = func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
				if r.Method == http.MethodPost {
					writeError(w, tc.status, "", "refused")
					return true
				}
				return false
			}
			c := newTestClient(t, connection(app.baseURL(), "generic"), bearerSecrets)
			if _, err := c.Create(ctx, user("x", nil)); !tc.check(err) {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
	}
}

func TestAListingThatRepeatsItsCursorStopsWithAnError(t *testing.T) {
	app := newTestApp(t, ServerOptions{CursorPaging: true, MaxResults: 100})
	app.seedUsers(t, 3)
	var lists atomic.Int32
	app.intercept = func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/Users") {
			return false
		}
		lists.Add(1)
		w.Header().Set("Content-Type", MediaType)
		_, _ = w.Write([]byte(`{"schemas":["` + MessageListResponse + `"],"Resources":[{"id":"1","userName":"a"}],"nextCursor":"same"}`))
		return true
	}
	c := newTestClient(t, connection(app.baseURL(), "atlassian"), bearerSecrets)
	_, err := connectors.ListAll(ctx, "accounts", func(ctx context.Context, cursor string) ([]connectors.Account, string, error) {
		page, err := c.ListAccounts(ctx, cursor)
		return page.Accounts, page.Next, err
	})
	if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "a second time") {
		t.Fatalf("a cursor handed back for ever = %v, want a permanent error", err)
	}
	if n := lists.Load(); n != 2 {
		t.Fatalf("the app was asked for %d pages, want 2 (the first and the repeat)", n)
	}
}

func TestCapabilitiesComeFromWhatTheAppSays(t *testing.T) {
	cases := []struct {
		reason       string
		server       ServerOptions
		silent       bool // the app's /ServiceProviderConfig says nothing of pagination
		wantCursor   bool
		wantQueryKey string
	}{
		{"the app offers no cursor: the atlassian profile does not claim one", ServerOptions{}, false, false, "startIndex="},
		{"the app offers cursors: the atlassian profile uses them", ServerOptions{CursorPaging: true}, false, true, "cursor="},
		{"the app says nothing: the profile fills the gap", ServerOptions{}, true, true, "cursor="},
	}
	for _, tc := range cases {
		app := newTestApp(t, tc.server)
		if tc.silent {
			app.intercept = func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
				if !strings.HasSuffix(r.URL.Path, "/ServiceProviderConfig") {
					return false
				}
				w.Header().Set("Content-Type", MediaType)
				_, _ = w.Write([]byte(`{"schemas":["` + SchemaServiceProviderConfig + `"],"patch":{"supported":true},"filter":{"supported":true,"maxResults":100}}`))
				return true
			}
		}
		c := newTestClient(t, connection(app.baseURL(), "atlassian"), bearerSecrets)
		caps, err := c.Validate(ctx)
		if err != nil {
			t.Fatalf("%s: %v", tc.reason, err)
		}
		if _, err := c.ListAccounts(ctx, ""); err != nil {
			t.Fatalf("%s: %v", tc.reason, err)
		}
		if caps.CursorPaging != tc.wantCursor || !strings.Contains(app.last(http.MethodGet).query, tc.wantQueryKey) {
			t.Errorf("%s: CursorPaging %v and query %q, want %v and %s", tc.reason, caps.CursorPaging, app.last(http.MethodGet).query, tc.wantCursor, tc.wantQueryKey)
		}
	}
}
