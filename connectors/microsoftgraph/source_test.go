package microsoftgraph_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/microsoftgraph"
	"github.com/rosterhq/roster/test/graphapi"
)

func entraUser(t *testing.T, srv *graphapi.Server, upn, department string) string {
	t.Helper()
	u := srv.Admin(t, "POST", "/users", fmt.Sprintf(`{"accountEnabled":true,"displayName":%q,"mailNickname":"x","userPrincipalName":%q,
		"passwordProfile":{"password":"a-long-password"},"department":%q,"givenName":"Given"}`, upn, upn, department))
	return u["id"].(string)
}

func bindMember(t *testing.T, srv *graphapi.Server, group, member string) {
	t.Helper()
	srv.Admin(t, "PATCH", "/groups/"+group, fmt.Sprintf(`{"members@odata.bind":[%q]}`, srv.URL+"v1.0/directoryObjects/"+member))
}

// The first read lists every user (with their manager) and group page by page, with
// nested groups as members; each later read follows the deltaLinks and gives only what changed: a user
// edited, one disabled, one deleted, one joined to a group (the group whole), and then
// nothing.
func TestEntraSourceDelta(t *testing.T) {
	ctx := context.Background()
	srv := serve(t, graphapi.Options{MaxPage: 2})
	ada, grace, bob := entraUser(t, srv, "ada@example.com", "eng"), entraUser(t, srv, "grace@example.com", "eng"), entraUser(t, srv, "bob@example.com", "ops")
	eng := srv.Admin(t, "POST", "/groups", `{"displayName":"Engineering","mailEnabled":false,"mailNickname":"eng","securityEnabled":true}`)["id"].(string)
	platform := srv.Admin(t, "POST", "/groups", `{"displayName":"Platform","mailEnabled":false,"mailNickname":"platform","securityEnabled":true}`)["id"].(string)
	bindMember(t, srv, eng, platform)
	bindMember(t, srv, platform, ada)
	srv.Admin(t, "PUT", "/users/"+ada+"/manager/$ref", fmt.Sprintf(`{"@odata.id":%q}`, srv.URL+"v1.0/users/"+grace))

	src, err := microsoftgraph.NewSource(ctx, access(srv))
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Validate(ctx); err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	records := map[string]connectors.Record{}
	for _, r := range snap.Records {
		records[r.ID] = r
	}
	if len(records) != 3 || records[ada].Attributes["userName"] != "ada@example.com" || records[bob].Attributes["department"] != "ops" || records[ada].Disabled ||
		records[ada].Attributes["manager"] != grace || records[grace].Attributes["manager"] != nil {
		t.Fatalf("records: %+v", records)
	}
	groups := map[string]connectors.SourceGroup{}
	for _, g := range snap.Groups {
		groups[g.ID] = g
	}
	if !slices.Equal(groups[eng].Members, []string{platform}) || !slices.Equal(groups[platform].Members, []string{ada}) || groups[eng].Name != "Engineering" {
		t.Fatalf("groups: %+v", groups)
	}

	srv.Admin(t, "PATCH", "/users/"+ada, `{"jobTitle":"Principal Engineer"}`)
	srv.Admin(t, "PATCH", "/users/"+grace, `{"accountEnabled":false}`)
	srv.Admin(t, "DELETE", "/users/"+bob, "")
	carol := entraUser(t, srv, "carol@example.com", "eng")
	bindMember(t, srv, platform, carol)
	listed := srv.Calls("GET /users/delta")
	set, err := src.Changes(ctx, snap.Watermark)
	if err != nil {
		t.Fatal(err)
	}
	changed := map[string]connectors.Record{}
	for _, r := range set.Changed {
		changed[r.ID] = r
	}
	if len(changed) != 3 || changed[ada].Attributes["title"] != "Principal Engineer" || changed[ada].Attributes["manager"] != grace || !changed[grace].Disabled || changed[carol].Attributes["userName"] != "carol@example.com" {
		t.Errorf("changed: %+v", changed)
	}
	if !slices.Equal(set.Deleted, []string{bob}) {
		t.Errorf("deleted: %v, want bob %s", set.Deleted, bob)
	}
	want := []string{ada, carol}
	slices.Sort(want)
	if len(set.Groups) != 1 || set.Groups[0].ID != platform || set.Groups[0].Name != "Platform" || !slices.Equal(set.Groups[0].Members, want) {
		t.Errorf("groups: %+v, want Platform with %v", set.Groups, want)
	}
	if n := srv.Calls("GET /users/delta") - listed; n != 2 {
		t.Errorf("%d pages read for 4 changed users at 2 a page, want 2", n)
	}

	again, err := src.Changes(ctx, set.Watermark)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Changed)+len(again.Deleted)+len(again.Groups) != 0 {
		t.Errorf("nothing changed, yet: %+v", again)
	}
}
