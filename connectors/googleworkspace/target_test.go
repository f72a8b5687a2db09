package googleworkspace_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/conformance"
	"github.com/rosterhq/roster/connectors/googleworkspace"
	"github.com/rosterhq/roster/test/googleapi"
)

func serve(t *testing.T, opts googleapi.Options) *googleapi.Server {
	return googleapi.StartTest(t, opts)
}

func target(t *testing.T, srv *googleapi.Server, change ...func(*googleworkspace.Config)) *googleworkspace.Target {
	t.Helper()
	burst := int32(1000)
	cfg := googleworkspace.Config{Domain: "example.com", Access: googleworkspace.Access{AdminEmail: "admin@example.com", ServiceAccountKey: srv.Key,
		APIURL: srv.URL, Timeout: 5 * time.Second, RateLimit: &identityv1alpha1.RateLimit{Requests: 10000, Burst: &burst}}}
	for _, c := range change {
		c(&cfg)
	}
	tg, err := googleworkspace.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func person(email, given, family string) connectors.Account {
	return connectors.Account{Active: true, Attributes: map[string]any{connectors.AttrUserName: email,
		"name.givenName": given, "name.familyName": family, connectors.AttrExternalID: "ext-" + strings.Split(email, "@")[0]}}
}

var googleApp = conformance.App{
	UserName:   func(s string) string { return s + "@example.com" },
	Attributes: map[string]any{"name.givenName": "Conf", "name.familyName": "Ormance"},
}

func TestConformance(t *testing.T) {
	conformance.TargetOf(t, func(t *testing.T) connectors.Target { return target(t, serve(t, googleapi.Options{})) }, googleApp)
}

func TestAJoinerIsInsertedWithARandomPasswordAndTheirOrgUnit(t *testing.T) {
	ctx := context.Background()
	srv := serve(t, googleapi.Options{})
	tg := target(t, srv, func(c *googleworkspace.Config) { c.MustChangePassword = true })
	desired := person("ada@example.com", "Ada", "Lovelace")
	desired.Attributes["title"] = "Engineer"
	desired.Attributes[googleworkspace.AttrOrgUnitPath] = "/Engineering"
	ada, err := tg.Create(ctx, desired)
	if err != nil {
		t.Fatal(err)
	}
	u := srv.User("ada@example.com")
	orgs, _ := u["organizations"].([]any)
	if ada.ID == "" || u["orgUnitPath"] != "/Engineering" || u["changePasswordAtNextLogin"] != true || len(orgs) != 1 || orgs[0].(map[string]any)["title"] != "Engineer" {
		t.Fatalf("Google holds %v", u)
	}
	if _, kept := u["password"]; kept {
		t.Fatal("the test account keeps passwords; it must not")
	}
	_, err = tg.Create(ctx, person("grace@elsewhere.org", "Grace", "Hopper"))
	if err == nil || !connectors.IsPermanent(err) {
		t.Fatalf("a user outside the account's domains = %v, want a permanent refusal", err)
	}
	_, err = tg.Create(ctx, person("nameless@example.com", "", ""))
	if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "given and a family name") {
		t.Fatalf("a user without names = %v, want a clear refusal", err)
	}
}

func TestAnUpdatePatchesOnlyWhatChangedAndKeepsWhatRosterDoesNotWrite(t *testing.T) {
	ctx := context.Background()
	srv := serve(t, googleapi.Options{})
	tg := target(t, srv)
	desired := person("ada@example.com", "Ada", "Lovelace")
	desired.Attributes["title"] = "Engineer"
	ada, err := tg.Create(ctx, desired)
	if err != nil {
		t.Fatal(err)
	}
	same, err := tg.Update(ctx, ada, desired)
	if err != nil || srv.Calls("directory.users.patch") != 0 || same.ID != ada.ID {
		t.Fatalf("an update with nothing changed sent %d patches (%v)", srv.Calls("directory.users.patch"), err)
	}
	moved := person("ada@example.com", "Ada", "Lovelace")
	moved.Attributes["title"] = "Principal Engineer"
	moved.Attributes["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"] = "R&D"
	if _, err := tg.Update(ctx, ada, moved); err != nil {
		t.Fatal(err)
	}
	org := srv.User("ada@example.com")["organizations"].([]any)[0].(map[string]any)
	if srv.Calls("directory.users.patch") != 1 || org["title"] != "Principal Engineer" || org["department"] != "R&D" {
		t.Fatalf("after a move: %d patches, organization %v", srv.Calls("directory.users.patch"), org)
	}
	renamed := moved
	renamed.Attributes = map[string]any{connectors.AttrUserName: "ada.lovelace@example.com"}
	found, _ := tg.Lookup(ctx, connectors.Key{Kind: connectors.KeyUserName, Value: "ada@example.com"})
	if _, err := tg.Update(ctx, found, renamed); err != nil {
		t.Fatal(err)
	}
	u := srv.User("ada.lovelace@example.com")
	if u == nil || u["id"] != ada.ID || u["organizations"].([]any)[0].(map[string]any)["title"] != "Principal Engineer" {
		t.Fatalf("a rename must keep the user and what was not changed: %v", u)
	}
}

func TestALeaverIsSuspendedAndAReturnerUnsuspended(t *testing.T) {
	ctx := context.Background()
	srv := serve(t, googleapi.Options{})
	tg := target(t, srv)
	ada, err := tg.Create(ctx, person("ada@example.com", "Ada", "Lovelace"))
	if err != nil {
		t.Fatal(err)
	}
	gone, err := tg.Deactivate(ctx, ada)
	if err != nil || gone.Active || srv.User(ada.ID)["suspended"] != true {
		t.Fatalf("Deactivate = %+v, %v; Google has %v", gone, err, srv.User(ada.ID))
	}
	back := gone
	back.Active = true
	if _, err := tg.Update(ctx, gone, back); err != nil || srv.User(ada.ID)["suspended"] != false {
		t.Fatalf("a returner: %v; Google has %v", err, srv.User(ada.ID))
	}
}

func TestMemberChangesTravelInBatchesOfAThousandCalls(t *testing.T) {
	ctx := context.Background()
	srv := serve(t, googleapi.Options{})
	tg := target(t, srv)
	var ids []string
	for i := range 1100 {
		a, err := tg.Create(ctx, person(fmt.Sprintf("p%04d@example.com", i), "P", fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	eng, err := tg.EnsureGroup(ctx, "Engineering")
	if err != nil {
		t.Fatal(err)
	}
	if eng.DisplayName != "engineering" || srv.Calls("directory.groups.insert") != 1 {
		t.Fatalf("EnsureGroup = %+v after %d inserts; want engineering@example.com, named by its local part", eng, srv.Calls("directory.groups.insert"))
	}
	if err := tg.ChangeMembers(ctx, eng, ids, nil); err != nil {
		t.Fatal(err)
	}
	if got := len(srv.Members("engineering@example.com")); got != 1100 || srv.Batches() != 2 || srv.Calls("directory.members.insert") != 1100 {
		t.Fatalf("%d members after %d batches of %d inserts; want 1100 in 2", got, srv.Batches(), srv.Calls("directory.members.insert"))
	}
	// Sent again, the same adds and the removal of someone not in it are no failure.
	if err := tg.ChangeMembers(ctx, eng, ids[:3], []string{ids[3], ids[3]}); err != nil {
		t.Fatalf("adding members already in and removing one twice: %v", err)
	}
	if got := len(srv.Members("engineering@example.com")); got != 1099 {
		t.Fatalf("%d members; want 1099", got)
	}
	other, err := tg.EnsureGroup(ctx, "Sales@Example.com")
	if err != nil || other.DisplayName != "sales" {
		t.Fatalf("a group named by its email = %+v, %v", other, err)
	}
	if _, err := tg.EnsureGroup(ctx, "Research and Development"); !connectors.IsPermanent(err) {
		t.Fatalf("a group name that is no email = %v, want a permanent refusal", err)
	}
}

func TestGroupsAreListedWithTheirMembers(t *testing.T) {
	ctx := context.Background()
	srv := serve(t, googleapi.Options{})
	tg := target(t, srv)
	ada, _ := tg.Create(ctx, person("ada@example.com", "Ada", "Lovelace"))
	grace, _ := tg.Create(ctx, person("grace@example.com", "Grace", "Hopper"))
	eng, _ := tg.EnsureGroup(ctx, "eng")
	if err := tg.ChangeMembers(ctx, eng, []string{ada.ID, grace.ID}, nil); err != nil {
		t.Fatal(err)
	}
	page, err := tg.ListGroups(ctx, "")
	if err != nil || len(page.Groups) != 1 {
		t.Fatalf("ListGroups = %+v, %v", page, err)
	}
	members := page.Groups[0].Members
	slices.Sort(members)
	want := []string{ada.ID, grace.ID}
	slices.Sort(want)
	if !slices.Equal(members, want) {
		t.Fatalf("members %v, want %v", members, want)
	}
}

func TestGooglesQuotaAnswersAreRateLimits(t *testing.T) {
	ctx := context.Background()
	for _, status := range []int{http.StatusForbidden, http.StatusTooManyRequests} {
		srv := serve(t, googleapi.Options{})
		tg := target(t, srv)
		srv.Throttle(1, status)
		_, err := tg.Create(ctx, person("ada@example.com", "Ada", "Lovelace"))
		var limited *connectors.RateLimitedError
		if !errors.As(err, &limited) || limited.RetryAfter <= 0 {
			t.Fatalf("Google answering %d for its quota = %v, want a rate limit with a wait", status, err)
		}
		ada, _ := tg.Create(ctx, person("ada@example.com", "Ada", "Lovelace"))
		eng, _ := tg.EnsureGroup(ctx, "eng")
		srv.Throttle(1, status)
		if err := tg.ChangeMembers(ctx, eng, []string{ada.ID}, nil); !errors.As(err, &limited) {
			t.Fatalf("a batch call refused for the quota = %v, want a rate limit", err)
		}
		if err := tg.ChangeMembers(ctx, eng, []string{ada.ID}, nil); err != nil || len(srv.Members("eng@example.com")) != 1 {
			t.Fatalf("the batch sent again: %v, members %v", err, srv.Members("eng@example.com"))
		}
	}
}

func TestCredentialsGoogleRefusesAreSaidPlainly(t *testing.T) {
	ctx := context.Background()
	srv := serve(t, googleapi.Options{})
	_, err := target(t, srv, func(c *googleworkspace.Config) { c.AdminEmail = "someone@example.com" }).Validate(ctx)
	if !errors.Is(err, connectors.ErrUnauthorized) || !strings.Contains(err.Error(), "domain-wide delegation") {
		t.Fatalf("acting for someone the delegation does not cover = %v", err)
	}
	narrow := serve(t, googleapi.Options{Delegated: []string{"https://www.googleapis.com/auth/admin.directory.user.readonly"}})
	if _, err := target(t, narrow).Validate(ctx); !errors.Is(err, connectors.ErrUnauthorized) {
		t.Fatalf("a delegation without the scopes = %v", err)
	}
	if _, err := googleworkspace.New(ctx, googleworkspace.Config{Domain: "example.com", Access: googleworkspace.Access{AdminEmail: "admin@example.com", ServiceAccountKey: []byte(`{"type":"authorized_user"}`)}}); !connectors.IsPermanent(err) {
		t.Fatalf("a key that is no service account's = %v", err)
	}
	key := strings.Replace(string(srv.Key), `"token_uri":"http://127.0.0.1`, `"token_uri":"http://evil.example`, 1)
	if _, err := googleworkspace.New(ctx, googleworkspace.Config{Domain: "example.com", Access: googleworkspace.Access{AdminEmail: "admin@example.com", ServiceAccountKey: []byte(key)}}); !connectors.IsPermanent(err) {
		t.Fatalf("a key whose token_uri is plain http to another host = %v, want refused", err)
	}
}
