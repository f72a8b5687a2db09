package inbound

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rosterhq/roster/connectors"
)

const token = "a-bearer-token-of-32-characters!"

// memory is a Sink and a Store in memory: the Users its records become, by record id,
// each keeping the resource it carries, and the groups.
type memory struct {
	mu     sync.Mutex
	users  map[string]string
	order  []string
	groups map[string]string
	sets   int
}

func newMemory() *memory { return &memory{users: map[string]string{}, groups: map[string]string{}} }

func (m *memory) Apply(_ context.Context, set connectors.ChangeSet) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range set.Changed {
		if r.Attributes["userName"] == "rejected@example.com" {
			return &connectors.RejectedError{Reason: "InvalidName", Detail: "the mapping refused it"}
		}
	}
	m.sets++
	for _, r := range set.Changed {
		if _, ok := m.users[r.ID]; !ok {
			m.order = append(m.order, r.ID)
		}
		m.users[r.ID] = r.Annotations[AnnotationResource]
	}
	return nil
}

func (m *memory) Users(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, id := range m.order {
		out = append(out, m.users[id])
	}
	return out, nil
}

func (m *memory) Groups(context.Context) (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for k, v := range m.groups {
		out[k] = v
	}
	return out, nil
}

func (m *memory) SaveGroups(_ context.Context, groups map[string]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.groups = groups
	return nil
}

func serve(t *testing.T, m *memory) *httptest.Server {
	t.Helper()
	ep := New(m, m)
	ep.SetTokens([][]byte{[]byte(token)})
	if err := ep.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ep)
	t.Cleanup(srv.Close)
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
// one endpoint are applied before the answer, and a new endpoint over the same Sink and
// Store (a restart) answers the same.
func TestAPushIsAppliedThroughTheSinkAndKeptThroughTheStore(t *testing.T) {
	m := newMemory()
	srv := serve(t, m)
	code, ada := call(t, srv, "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@example.com","active":true,"password":"never-kept"}`)
	if code != http.StatusCreated || ada["id"] == nil {
		t.Fatalf("create answered %d %v", code, ada)
	}
	id := ada["id"].(string)
	code, group := call(t, srv, "POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"staff","members":[{"value":"`+id+`"}]}`)
	if code != http.StatusCreated {
		t.Fatalf("group create answered %d %v", code, group)
	}
	if m.sets != 2 || strings.Contains(m.users[id], "never-kept") || !strings.Contains(m.users[id], group["id"].(string)) {
		t.Fatalf("the sink got %d change sets and keeps %s; want 2, with the group and without the password", m.sets, m.users[id])
	}

	restarted := serve(t, m)
	code, again := call(t, restarted, "GET", "/Users/"+id, "")
	if code != http.StatusOK || again["userName"] != "ada@example.com" {
		t.Fatalf("after a restart the user reads %d %v", code, again)
	}
	code, g := call(t, restarted, "GET", "/Groups/"+group["id"].(string), "")
	members, _ := g["members"].([]any)
	if code != http.StatusOK || len(members) != 1 {
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
	srv := serve(t, m)
	code, body := call(t, srv, "POST", "/Users", `{"userName":"rejected@example.com"}`)
	if code != http.StatusBadRequest || body["scimType"] != "invalidValue" {
		t.Fatalf("a rejected record answered %d %v, want 400 invalidValue", code, body)
	}
	if code, list := call(t, srv, "GET", "/Users", ""); code != http.StatusOK || list["totalResults"] != float64(0) {
		t.Fatalf("after the rejection the endpoint lists %d %v, want no user", code, list)
	}
}

// TestOnlyTheTokensSetAreAccepted: no token, a wrong one and, after SetTokens(nil), the
// right one are all refused.
func TestOnlyTheTokensSetAreAccepted(t *testing.T) {
	ep := New(newMemory(), newMemory())
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
