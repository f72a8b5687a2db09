package microsoftgraph_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/conformance"
	"github.com/rosterhq/roster/connectors/microsoftgraph"
	"github.com/rosterhq/roster/test/graphapi"
)

func serve(t *testing.T, opts graphapi.Options) *graphapi.Server {
	return graphapi.StartTest(t, opts)
}

func access(srv *graphapi.Server) microsoftgraph.Access {
	burst := int32(1000)
	return microsoftgraph.Access{Credentials: microsoftgraph.Credentials{TenantID: graphapi.TenantID, ClientID: graphapi.ClientID, Secret: graphapi.Secret},
		AuthorityURL: srv.URL, GraphURL: srv.URL, Timeout: 5 * time.Second, RateLimit: &identityv1alpha1.RateLimit{Requests: 10000, Burst: &burst}}
}

func target(t *testing.T, srv *graphapi.Server, change ...func(*microsoftgraph.Config)) *microsoftgraph.Target {
	t.Helper()
	cfg := microsoftgraph.Config{Access: access(srv), UsageLocation: "DE", RevokeSessions: true}
	for _, c := range change {
		c(&cfg)
	}
	tg, err := microsoftgraph.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func person(upn string, more map[string]any) connectors.Account {
	attrs := map[string]any{connectors.AttrUserName: upn, "displayName": "Ada Lovelace", "name.givenName": "Ada", "name.familyName": "Lovelace"}
	for k, v := range more {
		attrs[k] = v
	}
	return connectors.Account{Active: true, Attributes: attrs}
}

func TestConformance(t *testing.T) {
	conformance.TargetOf(t, func(t *testing.T) connectors.Target { return target(t, serve(t, graphapi.Options{})) }, conformance.App{
		UserName:   func(s string) string { return s + "@example.com" },
		Attributes: map[string]any{"displayName": "Conf Ormance"},
	})
}

// A joiner is one POST with what Graph requires (a nickname, a password profile, the
// default usage location) and one assignLicense for the assignment's licence; a mover
// is one PATCH of what changed, and a licence change one assignLicense that swaps.
func TestJoinerAndMoverWithALicence(t *testing.T) {
	ctx := context.Background()
	srv := serve(t, graphapi.Options{})
	tg := target(t, srv, func(c *microsoftgraph.Config) { c.MustChangePassword = true })
	created, err := tg.Create(ctx, person("ada.lovelace@example.com", map[string]any{"title": "Engineer", microsoftgraph.AttrLicenses: []any{graphapi.SkuE3},
		connectors.AttrEmails: []any{map[string]any{"value": "ada@example.com", "primary": true}}}))
	if err != nil {
		t.Fatal(err)
	}
	u := srv.User("ada.lovelace@example.com")
	if u["id"] != created.ID || u["mailNickname"] != "ada.lovelace" || u["usageLocation"] != "DE" || u["jobTitle"] != "Engineer" ||
		u["mail"] != "ada@example.com" || fmt.Sprint(u["assignedLicenses"]) != fmt.Sprintf("[map[disabledPlans:[] skuId:%s]]", graphapi.SkuE3) {
		t.Fatalf("created %v", u)
	}
	if n := srv.Calls("POST /users") + srv.Calls("POST /users/{id}/assignLicense"); n != 2 {
		t.Errorf("%d requests to create, want 2", n)
	}

	desired := person("ada.lovelace@example.com", map[string]any{"title": "Principal Engineer", microsoftgraph.AttrLicenses: []any{graphapi.SkuE5},
		connectors.AttrEmails: []any{map[string]any{"value": "ada@example.com", "primary": true}}})
	if _, err := tg.Update(ctx, created, desired); err != nil {
		t.Fatal(err)
	}
	u = srv.User(created.ID)
	if u["jobTitle"] != "Principal Engineer" || fmt.Sprint(u["assignedLicenses"]) != fmt.Sprintf("[map[disabledPlans:[] skuId:%s]]", graphapi.SkuE5) {
		t.Fatalf("updated %v", u)
	}
	if srv.Calls("PATCH /users/{id}") != 1 || srv.Calls("POST /users/{id}/assignLicense") != 2 {
		t.Errorf("a mover took %d PATCH and %d assignLicense, want 1 and 1", srv.Calls("PATCH /users/{id}"), srv.Calls("POST /users/{id}/assignLicense")-1)
	}
	page, err := tg.ListAccounts(ctx, "")
	if err != nil || len(page.Accounts) != 1 {
		t.Fatal(page, err)
	}
	if diff := connectors.Differences(desired.Attributes, page.Accounts[0].Attributes); len(diff) != 0 {
		t.Errorf("the listing differs from what was written in %v", diff)
	}
	if _, err := tg.Update(ctx, page.Accounts[0], desired); err != nil || srv.Calls("PATCH /users/{id}") != 1 {
		t.Errorf("an update with nothing to change sent a PATCH (%v)", err)
	}
}

// A create whose answer is cut is not sent again: the error says its outcome is
// unknown, and the next attempt looks the user up and adopts them.
func TestACreateWhoseAnswerIsCutIsLookedUpNotSentAgain(t *testing.T) {
	ctx := context.Background()
	srv := serve(t, graphapi.Options{})
	tg := target(t, srv)
	srv.CutAnswers(1)
	_, _, err := connectors.CreateOrAdopt(ctx, tg, person("ada@example.com", nil), connectors.KeyUserName)
	if !connectors.OutcomeUnknown(err) {
		t.Fatalf("CreateOrAdopt with its answer cut = %v, want an error whose outcome is unknown", err)
	}
	a, adopted, err := connectors.LookupOrCreate(ctx, tg, person("ada@example.com", nil), connectors.KeyUserName)
	if err != nil || !adopted || a.ID != srv.User("ada@example.com")["id"] {
		t.Fatalf("LookupOrCreate = %+v adopted %v, %v; want the user the cut create made, adopted", a, adopted, err)
	}
	if n := srv.Calls("POST /users"); n != 1 {
		t.Fatalf("%d POST /users, want only the one whose answer was cut", n)
	}
}

// A leaver is disabled and their sign-in sessions are revoked; a return enables the
// same account; deletion is a soft delete, and a second one is no error.
func TestLeaverIsDisabledWithSessionsRevoked(t *testing.T) {
	ctx := context.Background()
	srv := serve(t, graphapi.Options{})
	tg := target(t, srv)
	created, err := tg.Create(ctx, person("grace@example.com", nil))
	if err != nil {
		t.Fatal(err)
	}
	off, err := tg.Deactivate(ctx, created)
	if err != nil {
		t.Fatal(err)
	}
	if srv.User(created.ID)["accountEnabled"] != false || srv.Revocations(created.ID) != 1 || off.Active {
		t.Fatalf("deactivated: %v, %d revocations", srv.User(created.ID), srv.Revocations(created.ID))
	}
	back := person("grace@example.com", nil)
	if _, err := tg.Update(ctx, off, back); err != nil || srv.User(created.ID)["accountEnabled"] != true {
		t.Fatalf("returned: %v %v", srv.User(created.ID), err)
	}
	if err := tg.Delete(ctx, created.ID); err != nil || srv.User(created.ID) != nil {
		t.Fatalf("deleted: %v", err)
	}
	if err := tg.Delete(ctx, created.ID); err != nil {
		t.Errorf("deleting a deleted user: %v", err)
	}
}

// 45 members added are 3 binds of up to 20 in one batch; 25 removed are 25 deletes in
// two batches; a bind that meets a member already there is sent again one by one.
func TestMembersAreBoundTwentyAtATimeInBatches(t *testing.T) {
	ctx := context.Background()
	srv := serve(t, graphapi.Options{MaxPage: 1000})
	tg := target(t, srv)
	var ids []string
	for i := range 45 {
		a, err := tg.Create(ctx, person(fmt.Sprintf("p%02d@example.com", i), nil))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	group, err := tg.EnsureGroup(ctx, "Engineering")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := tg.EnsureGroup(ctx, "Engineering"); err != nil || again.ID != group.ID {
		t.Fatalf("ensuring the group again: %v %v", again, err)
	}
	if err := tg.ChangeMembers(ctx, group, ids, nil); err != nil {
		t.Fatal(err)
	}
	if got := len(srv.Members("Engineering")); got != 45 || srv.Batches() != 1 || srv.Calls("PATCH /groups/{id}") != 3 {
		t.Fatalf("%d members after %d batches of %d binds", got, srv.Batches(), srv.Calls("PATCH /groups/{id}"))
	}
	if err := tg.ChangeMembers(ctx, group, nil, ids[:25]); err != nil {
		t.Fatal(err)
	}
	if got := len(srv.Members("Engineering")); got != 20 || srv.Batches() != 3 {
		t.Fatalf("%d members after removing 25 in %d batches", got, srv.Batches()-1)
	}
	// Two new members and one already there: the bind fails whole, then each goes alone.
	if err := tg.ChangeMembers(ctx, group, []string{ids[0], ids[1], ids[30]}, nil); err != nil {
		t.Fatal(err)
	}
	if got := len(srv.Members("Engineering")); got != 22 {
		t.Fatalf("%d members, want 22", got)
	}
	page, err := tg.ListGroups(ctx, "")
	if err != nil || len(page.Groups) != 1 || len(page.Groups[0].Members) != 22 || page.Groups[0].DisplayName != "Engineering" {
		t.Fatalf("groups listed: %+v %v", page, err)
	}
}

// Throttling (429 with Retry-After) is waited out; a tenant without Entra ID P1 is
// listed without last sign-ins, one with them gives them.
func TestThrottlingAndSignInActivity(t *testing.T) {
	ctx := context.Background()
	for _, premium := range []bool{true, false} {
		srv := serve(t, graphapi.Options{NoSignInActivity: !premium})
		tg := target(t, srv)
		a, err := tg.Create(ctx, person("ada@example.com", nil))
		if err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
		srv.SignIn(a.ID, at)
		srv.Throttle(2)
		page, err := tg.ListAccounts(ctx, "")
		if err != nil || len(page.Accounts) != 1 {
			t.Fatalf("premium %v: %v %v", premium, page, err)
		}
		if got := page.Accounts[0].LastLogin; premium != got.Equal(at) {
			t.Errorf("premium %v: last login %v", premium, got)
		}
	}
}

// Credentials: a certificate signs a client assertion; a wrong secret is refused as
// such; a next page on another host is never followed.
func TestCredentials(t *testing.T) {
	ctx := context.Background()
	srv := serve(t, graphapi.Options{})
	tg := target(t, srv, func(c *microsoftgraph.Config) { c.Secret, c.Certificate = "", srv.Certificate })
	if _, err := tg.Validate(ctx); err != nil {
		t.Fatalf("with the certificate: %v", err)
	}
	_, err := target(t, srv, func(c *microsoftgraph.Config) { c.Secret = "wrong" }).Validate(ctx)
	if !connectors.IsPermanent(err) || !errors.Is(err, connectors.ErrUnauthorized) {
		t.Errorf("a wrong secret: %v", err)
	}
	if _, err := microsoftgraph.New(ctx, microsoftgraph.Config{Access: microsoftgraph.Access{GraphURL: "http://graph.example.com/",
		Credentials: microsoftgraph.Credentials{TenantID: graphapi.TenantID, ClientID: graphapi.ClientID, Secret: "x"}}}); !connectors.IsPermanent(err) {
		t.Errorf("plain http to another host: %v", err)
	}
	if _, err := tg.ListAccounts(ctx, "https://elsewhere.example.com/v1.0/users"); err == nil {
		t.Error("a cursor to another host was followed")
	}
	cert := slices.Clone(srv.Certificate)
	if _, err := microsoftgraph.New(ctx, microsoftgraph.Config{Access: microsoftgraph.Access{Credentials: microsoftgraph.Credentials{
		TenantID: graphapi.TenantID, ClientID: graphapi.ClientID, Certificate: cert[:len(cert)/2]}}}); !connectors.IsPermanent(err) {
		t.Errorf("half a certificate: %v", err)
	}
}
