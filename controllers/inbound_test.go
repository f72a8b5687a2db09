package controllers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/httpx"
	"github.com/rosterhq/roster/connectors/scim"
)

const idpToken = "idp-bearer-token-0123456789abcdef"

// idp plays an identity provider pushing to a DirectorySync's inbound endpoint.
type idp struct {
	t    *testing.T
	base string
}

func scimSync(t *testing.T, ns string) *idp {
	t.Helper()
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idp-token"}, StringData: map[string]string{"token": idpToken}},
		&identityv1alpha1.DirectorySync{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "okta"},
			Spec: identityv1alpha1.DirectorySyncSpec{
				SCIM:                &identityv1alpha1.SCIMSource{TokenSecretRef: identityv1alpha1.SecretKeySelector{Name: "idp-token", Key: "token"}},
				MirrorGroupsAsRoles: &identityv1alpha1.GroupRoleMirror{NamePrefix: "idp-"},
			},
		})
	p := &idp{t: t, base: "http://" + inbound.Addr + "/scim/v2/" + ns + "/okta"}
	// Once the DirectorySync is Ready its syncer runs on the leader, which applies every
	// push to its User before answering.
	waitFor(t, "the endpoint serves, and the DirectorySync is Ready", func() (bool, string) {
		status, body := p.do(http.MethodGet, "/ServiceProviderConfig", "")
		ready := condition(get(t, ns, "okta", &identityv1alpha1.DirectorySync{}).Status.Conditions, identityv1alpha1.ConditionReady)
		return status == http.StatusOK && strings.HasPrefix(ready, "True"), body + " " + ready
	})
	return p
}

func (p *idp) do(method, path, body string) (int, string) {
	p.t.Helper()
	req, err := http.NewRequest(method, p.base+path, strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+idpToken)
	req.Header.Set("Content-Type", scim.MediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// expect sends a request and checks the status, returning the body as JSON.
func (p *idp) expect(method, path, body string, status int) map[string]any {
	p.t.Helper()
	got, data := p.do(method, path, body)
	if got != status {
		p.t.Fatalf("%s %s: %d %s, want %d", method, path, got, data, status)
	}
	var out map[string]any
	_ = json.Unmarshal([]byte(data), &out)
	return out
}

func userByUserName(t *testing.T, ns, userName string) (identityv1alpha1.User, bool) {
	for _, u := range syncedUsers(t, ns, "okta") {
		if strings.EqualFold(u.Spec.UserName, userName) {
			return u, true
		}
	}
	return identityv1alpha1.User{}, false
}

// TestInboundSCIMAsOktaSendsIt replays the requests of Okta's SCIM 2.0 provisioning.
func TestInboundSCIMAsOktaSendsIt(t *testing.T) {
	ns := namespace(t)
	p := scimSync(t, ns)
	q := "/Users?" + url.Values{"filter": {`userName eq "test.user@okta.local"`}, "startIndex": {"1"}, "count": {"100"}}.Encode()
	if list := p.expect(http.MethodGet, q, "", 200); list["totalResults"] != float64(0) {
		t.Fatalf("lookup of a new user = %v, want an empty ListResponse", list)
	}
	created := p.expect(http.MethodPost, "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
		"userName":"test.user@okta.local","name":{"givenName":"Test","familyName":"User"},
		"emails":[{"primary":true,"value":"test.user@okta.local","type":"work"}],"displayName":"Test User",
		"locale":"en-US","externalId":"00ujl29u0le5T6Aj10h7","groups":[],"password":"1mz050nq","active":true}`, 201)
	id := created["id"].(string)
	u, ok := userByUserName(t, ns, "test.user@okta.local")
	if !ok || u.Spec.Name.GivenName != "Test" || u.Spec.ExternalID != id || u.Spec.Emails[0].Value != "test.user@okta.local" {
		t.Fatalf("the User was not written before the answer: %+v", u.Spec)
	}
	p.expect(http.MethodPost, "/Users", `{"userName":"TEST.USER@okta.local","active":true}`, 409)
	p.expect(http.MethodGet, "/Users/"+id, "", 200)
	p.expect(http.MethodGet, "/Users/does-not-exist", "", 404)

	p.expect(http.MethodPatch, "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"replace","value":{"active":false}}]}`, 200)
	if u, _ := userByUserName(t, ns, "test.user@okta.local"); u.Spec.State != identityv1alpha1.UserStateSuspended {
		t.Fatalf("deactivation left state %q", u.Spec.State)
	}
	if got := p.expect(http.MethodGet, "/Users/"+id, "", 200); got["active"] != false {
		t.Fatal("a deactivated user must still answer GET, inactive")
	}
	// Okta custom apps send a full PUT for every update; active is kept when left out.
	p.expect(http.MethodPut, "/Users/"+id, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"`+id+`",
		"userName":"test.user@okta.local","name":{"givenName":"Tess","familyName":"User"},
		"emails":[{"primary":true,"value":"test.user@okta.local","type":"work"}]}`, 200)
	if u, _ := userByUserName(t, ns, "test.user@okta.local"); u.Spec.Name.GivenName != "Tess" || u.Spec.State != identityv1alpha1.UserStateSuspended {
		t.Fatalf("after PUT: %+v", u.Spec)
	}
	p.expect(http.MethodPatch, "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":true}}]}`, 200)

	group := p.expect(http.MethodPost, "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Test SCIMv2","members":[]}`, 201)
	gid := group["id"].(string)
	p.expect(http.MethodPatch, "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
		{"op":"replace","value":{"id":"`+gid+`","displayName":"Test SCIMv2"}},
		{"op":"add","path":"members","value":[{"value":"`+id+`","display":"test.user@okta.local"}]}]}`, 204)
	waitFor(t, "the group is on the User and mirrored as a Role", func() (bool, string) {
		u, _ := userByUserName(t, ns, "test.user@okta.local")
		r := &identityv1alpha1.Role{}
		err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "idp-test-scimv2"}, r)
		return slices.Equal(u.Spec.Groups, []string{"Test SCIMv2"}) && err == nil, fmt.Sprint(u.Spec.Groups, err)
	})
	if members := p.expect(http.MethodGet, "/Groups/"+gid, "", 200)["members"].([]any); len(members) != 1 {
		t.Fatalf("group members = %v", members)
	}
	p.expect(http.MethodPatch, "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
		{"op":"remove","path":"members[value eq \"`+id+`\"]"}]}`, 204)
	if u, _ := userByUserName(t, ns, "test.user@okta.local"); len(u.Spec.Groups) != 0 {
		t.Fatalf("groups after removal = %v", u.Spec.Groups)
	}
	p.expect(http.MethodGet, "/ResourceTypes", "", 200)
	p.expect(http.MethodGet, "/Schemas", "", 200)
	waitFor(t, "the DirectorySync counts the pushed records", func() (bool, string) {
		c := condition(get(t, ns, "okta", &identityv1alpha1.DirectorySync{}).Status.Conditions, identityv1alpha1.ConditionReady)
		return strings.Contains(c, "1 Users from 1 scim records"), c
	})

	// No token, or a wrong one: refused.
	req, _ := http.NewRequest(http.MethodGet, p.base+"/Users", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("a wrong token got %v %v", resp.StatusCode, err)
	}
	endpoint := map[string]string{"endpoint": ns + "/okta", "method": "POST", "code": "201"}
	if n, _ := metricValue(t, "roster_inbound_scim_requests_total", endpoint); n != 2 {
		t.Fatalf("roster_inbound_scim_requests_total%v = %v, want the 2 creates", endpoint, n)
	}
}

// TestInboundSCIMAsEntraSendsIt replays the requests of Entra ID's provisioning service.
func TestInboundSCIMAsEntraSendsIt(t *testing.T) {
	ns := namespace(t)
	p := scimSync(t, ns)
	list := p.expect(http.MethodGet, "/Users?"+url.Values{"filter": {`userName eq "non-existent user"`}}.Encode(), "", 200)
	if list["totalResults"] != float64(0) || list["Resources"] == nil {
		t.Fatalf("Entra's test connection needs 200 and an empty ListResponse, got %v", list)
	}
	created := p.expect(http.MethodPost, "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
		"externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","userName":"Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1","active":true,
		"emails":[{"primary":true,"type":"work","value":"Test_User_fd0ea19b@testuser.com"}],"meta":{"resourceType":"User"},
		"name":{"formatted":"givenName familyName","familyName":"familyName","givenName":"givenName"},"roles":[],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales"}}`, 201)
	id := created["id"].(string)
	for _, filter := range []string{
		`userName eq "test_user_ab6490ee-1e48-479e-a20b-2d77186b5dd1"`,
		`externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"`,
		`emails[type eq "work"].value eq "Test_User_fd0ea19b@testuser.com"`,
	} {
		if got := p.expect(http.MethodGet, "/Users?"+url.Values{"filter": {filter}}.Encode(), "", 200); got["totalResults"] != float64(1) {
			t.Fatalf("filter %s found %v", filter, got["totalResults"])
		}
	}
	p.expect(http.MethodPatch, "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
		{"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},
		{"op":"Replace","path":"name.familyName","value":"updatedFamilyName"}]}`, 200)
	// aadOptscim062020: a no-path replace with dotted keys.
	p.expect(http.MethodPatch, "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
		{"op":"Replace","value":{"name.givenName":"Updated","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"Marketing"}}]}`, 200)
	u, _ := userByUserName(t, ns, "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1")
	if u.Spec.Emails[0].Value != "updatedEmail@microsoft.com" || u.Spec.Name.FamilyName != "updatedFamilyName" || u.Spec.Name.GivenName != "Updated" || u.Spec.Department != "Marketing" {
		t.Fatalf("after Entra's PATCHes: %+v", u.Spec)
	}
	p.expect(http.MethodPatch, "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`, 200)
	if u, _ := userByUserName(t, ns, "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"); u.Spec.State != identityv1alpha1.UserStateSuspended {
		t.Fatalf(`"False" as a string did not suspend: %q`, u.Spec.State)
	}

	group := p.expect(http.MethodPost, "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159","displayName":"Sales Team","meta":{"resourceType":"Group"}}`, 201)
	gid := group["id"].(string)
	p.expect(http.MethodPatch, "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"members","value":[{"$ref":null,"value":"`+id+`"}]}]}`, 204)
	if got := p.expect(http.MethodGet, "/Groups/"+gid+"?excludedAttributes=members", "", 200); got["members"] != nil {
		t.Fatal("excludedAttributes=members returned members")
	}
	if u, _ := userByUserName(t, ns, "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"); !slices.Equal(u.Spec.Groups, []string{"Sales Team"}) {
		t.Fatalf("groups = %v", u.Spec.Groups)
	}
	p.expect(http.MethodPatch, "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Remove","path":"members","value":[{"$ref":null,"value":"`+id+`"}]}]}`, 204)
	if u, _ := userByUserName(t, ns, "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"); len(u.Spec.Groups) != 0 {
		t.Fatalf("groups after removal = %v", u.Spec.Groups)
	}
	p.expect(http.MethodDelete, "/Users/"+id, "", 204)
	waitFor(t, "the deleted user's User is suspended", func() (bool, string) {
		u, ok := userByUserName(t, ns, "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1")
		return ok && u.Spec.State == identityv1alpha1.UserStateSuspended && u.Annotations["identity.roster.dev/vanished"] == "true", string(u.Spec.State)
	})
	big := bytes.Repeat([]byte("x"), 2<<20)
	if status, _ := p.do(http.MethodPost, "/Users", `{"userName":"`+string(big)+`"}`); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 2 MiB body got %d, want 413", status)
	}
}

// TestInboundSCIMWithRostersOwnClient provisions through Roster's SCIM client into
// Roster's inbound endpoint: the connector contract holds end to end.
func TestInboundSCIMWithRostersOwnClient(t *testing.T) {
	ns := namespace(t)
	p := scimSync(t, ns)
	httpClient, _ := httpx.New(httpx.Options{RequestsPerSecond: 1000, Burst: 100, Header: http.Header{"Authorization": {"Bearer " + idpToken}}})
	c, err := scim.NewClient(scim.ClientConfig{BaseURL: p.base, HTTP: httpClient, Profile: scim.Profiles["generic"]})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Validate(ctx); err != nil {
		t.Fatal(err)
	}
	acc, err := c.Create(ctx, connectors.Account{Active: true, Attributes: map[string]any{
		"userName": "client@example.com", "name.givenName": "Cli", "emails": []any{map[string]any{"value": "client@example.com", "primary": true}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.EnsureGroup(ctx, "engineering")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ChangeMembers(ctx, g, []string{acc.ID}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Deactivate(ctx, acc); err != nil {
		t.Fatal(err)
	}
	u, _ := userByUserName(t, ns, "client@example.com")
	if u.Spec.State != identityv1alpha1.UserStateSuspended || !slices.Equal(u.Spec.Groups, []string{"engineering"}) || u.Spec.Name.GivenName != "Cli" {
		t.Fatalf("User = %+v", u.Spec)
	}
}

// TestInboundFollowsOnlyTheConfigMapsThatKeepPushes: the endpoint's cache holds the
// ConfigMaps that keep pushed users and groups, not the namespace's other ConfigMaps,
// however large: those stay out of the operator's memory.
func TestInboundFollowsOnlyTheConfigMapsThatKeepPushes(t *testing.T) {
	ns := namespace(t)
	p := scimSync(t, ns)
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-settings"},
		Data: map[string]string{"settings.json": strings.Repeat("x", 512<<10)}})
	pushed := p.expect(http.MethodPost, "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"kept@example.com","active":true}`, http.StatusCreated)
	keeps := "okta-scim-user-" + pushed["id"].(string)
	var kept []string
	waitFor(t, "the endpoint's cache holds the pushed user's ConfigMap", func() (bool, string) {
		var err error
		kept, err = inbound.KeptConfigMaps(context.Background(), ns)
		return err == nil && slices.Contains(kept, keeps), fmt.Sprint(kept, err)
	})
	if slices.Contains(kept, "app-settings") {
		t.Fatalf("the endpoint's cache holds a ConfigMap that keeps no push: %v", kept)
	}
}
