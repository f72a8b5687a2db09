package controllers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/scim"
	"github.com/rosterhq/roster/test/testenv"
)

// send makes one request to the inbound SCIM server with a bearer token.
func send(t *testing.T, method, url, token string) (int, http.Header, string) {
	t.Helper()
	return testenv.SCIMRequest(t, method, url, token, `{"schemas":["`+scim.SchemaUser+`"],"userName":"mallory"}`)
}

// refused: 401, or 429 once failed logins are over the endpoint's limit.
func refused(status int) bool {
	return status == http.StatusUnauthorized || status == http.StatusTooManyRequests
}

func setToken(t *testing.T, ns string, data map[string]string) {
	t.Helper()
	update(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idp-token"}}, func(s *corev1.Secret) {
		s.Data = nil
		s.StringData = data
	})
}

func TestRevokingTheInboundTokenRevokesIt(t *testing.T) {
	ns := namespace(t)
	p := scimSync(t, ns)
	users := p.base + "/Users"
	const rotated, next = "rotated-token-abcdefghijklmnop", "next-token-abcdefghijklmnopqrs"

	setToken(t, ns, map[string]string{"token": rotated})
	waitFor(t, "the rotated token is accepted", func() (bool, string) {
		status, _, body := send(t, http.MethodGet, users, rotated)
		return status == http.StatusOK, body
	})
	if status, _, _ := send(t, http.MethodGet, users, idpToken); !refused(status) {
		t.Fatalf("the token rotated out still gets %d", status)
	}

	setToken(t, ns, map[string]string{"token": next, "previousToken": rotated})
	waitFor(t, "both tokens are accepted while they overlap", func() (bool, string) {
		a, _, _ := send(t, http.MethodGet, users, next)
		b, _, _ := send(t, http.MethodGet, users, rotated)
		return a == http.StatusOK && b == http.StatusOK, ""
	})

	setToken(t, ns, map[string]string{"token": "short"})
	waitFor(t, "a token cut below 16 characters revokes every token", func() (bool, string) {
		a, _, _ := send(t, http.MethodGet, users, next)
		b, _, _ := send(t, http.MethodGet, users, "short")
		return refused(a) && refused(b), ""
	})

	setToken(t, ns, map[string]string{"token": next})
	waitFor(t, "the mended Secret is accepted again", func() (bool, string) {
		status, _, body := send(t, http.MethodGet, users, next)
		return status == http.StatusOK, body
	})
	if err := env.Client.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idp-token"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a deleted Secret revokes its token", func() (bool, string) {
		status, _, body := send(t, http.MethodGet, users, next)
		return refused(status), body
	})
	if status, _, body := send(t, http.MethodPost, users, next); !refused(status) {
		t.Fatalf("a push with a revoked token got %d %s", status, body)
	}
	waitFor(t, "the DirectorySync says why", func() (bool, string) {
		ds := get(t, ns, "okta", &identityv1alpha1.DirectorySync{})
		c := condition(ds.Status.Conditions, identityv1alpha1.ConditionStalled)
		return strings.HasPrefix(c, "True/"+identityv1alpha1.ReasonSecretNotFound), c
	})
	if u, ok := userByUserName(t, ns, "mallory"); ok {
		t.Fatalf("a push with a revoked token made User %s", u.Name)
	}
}

func TestUnknownInboundEndpointsAnswerAsUnauthenticatedOnes(t *testing.T) {
	ns := namespace(t)
	p := scimSync(t, ns)
	base := "http://" + inbound.Addr
	wrong, _, wrongBody := send(t, http.MethodGet, p.base+"/Users", "guess-guess-guess-guess")
	for _, url := range []string{base + "/scim/v2/nobody/nothing/Users", base + "/scim/v2/" + ns, base + "/", base + "/metrics"} {
		status, header, body := send(t, http.MethodGet, url, idpToken)
		if status != wrong || body != wrongBody || header.Get("Content-Type") != scim.MediaType {
			t.Errorf("%s: %d %s %q; want what a wrong token gets: %d %q as SCIM JSON", url, status, header.Get("Content-Type"), body, wrong, wrongBody)
		}
	}
	if wrong != http.StatusUnauthorized {
		t.Fatalf("a wrong token got %d, want 401", wrong)
	}
}

func TestFailedInboundLoginsAreLimitedAndReported(t *testing.T) {
	ns := namespace(t)
	p := scimSync(t, ns)
	limited := 0
	for range 40 {
		status, header, _ := send(t, http.MethodGet, p.base+"/Users", "guess-guess-guess-guess")
		if status == http.StatusTooManyRequests && header.Get("Retry-After") != "" {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("40 failed logins in a row were all answered 401: nothing limits guessing")
	}
	if status, _, body := send(t, http.MethodGet, p.base+"/Users", idpToken); status != http.StatusOK {
		t.Fatalf("the identity provider's own token got %d %s while the endpoint was under attack", status, body)
	}
	waitFor(t, "an Event reports the failed logins", func() (bool, string) { return hasEvent(t, ns, "okta", "FailedLogins"), "" })
}

// TestAForgedKeptPushIsNotTrusted: a namespace editor rewrites the ConfigMaps that keep
// a user and a group with shapes the endpoint never writes; the endpoint leaves them
// out and keeps answering.
func TestAForgedKeptPushIsNotTrusted(t *testing.T) {
	ns := namespace(t)
	p := scimSync(t, ns)
	eve := p.expect(http.MethodPost, "/Users", `{"schemas":["`+scim.SchemaUser+`"],"userName":"eve@example.com"}`, http.StatusCreated)
	staff := p.expect(http.MethodPost, "/Groups", `{"schemas":["`+scim.SchemaGroup+`"],"displayName":"staff","members":[{"value":"`+eve["id"].(string)+`"}]}`, http.StatusCreated)
	kept := func(kind, id string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "okta-scim-" + kind + "-" + id}}
	}
	update(t, kept("user", eve["id"].(string)), func(cm *corev1.ConfigMap) {
		cm.Data["resource"] = `{"id":"someone-else","userName":"mallory@example.com","groups":["x",7,{"value":3}]}`
		cm.Data["version"] = "99"
	})
	update(t, kept("group", staff["id"].(string)), func(cm *corev1.ConfigMap) {
		cm.Data["members"] = "x\n7\n\n" + strings.Repeat("y", 300)
		cm.Data["version"] = "99"
	})
	waitFor(t, "the group read again, without the forged members", func() (bool, string) {
		_, body := p.do(http.MethodGet, "/Groups/"+staff["id"].(string), "")
		return strings.Contains(body, `"members":[]`), body
	})
	if got := p.expect(http.MethodGet, "/Users/"+eve["id"].(string), "", http.StatusOK); got["userName"] != "eve@example.com" {
		t.Fatalf("after a forged rewrite eve reads %v", got)
	}
	if _, body := p.do(http.MethodGet, "/Users?filter="+url.QueryEscape(`userName eq "mallory@example.com"`), ""); !strings.Contains(body, `"totalResults":0`) {
		t.Fatalf("the forged userName is answered: %s", body)
	}
}

func TestInboundSCIMNeverReturnsOrKeepsAPassword(t *testing.T) {
	ns := namespace(t)
	p := scimSync(t, ns)
	const password = "correct-horse-battery-staple"
	created := p.expect(http.MethodPost, "/Users", `{"schemas":["`+scim.SchemaUser+`"],"userName":"pat@example.com","Password":"`+password+`"}`, http.StatusCreated)
	id, _ := created["id"].(string)
	p.expect(http.MethodPatch, "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"password","value":"`+password+`2"}]}`, http.StatusOK)
	for _, path := range []string{"/Users/" + id, "/Users?filter=" + url.QueryEscape(`userName eq "pat@example.com"`), "/Users", "/Users/" + id + "?attributes=password"} {
		if _, body := p.do(http.MethodGet, path, ""); strings.Contains(strings.ToLower(body), "password") || strings.Contains(body, password) {
			t.Fatalf("GET %s returned the password: %s", path, body)
		}
	}
	var u identityv1alpha1.User
	waitFor(t, "pat's User", func() (bool, string) {
		var ok bool
		u, ok = userByUserName(t, ns, "pat@example.com")
		return ok, ""
	})
	for k, v := range u.Annotations {
		if strings.Contains(v, password) {
			t.Fatalf("the User's annotation %s keeps the password", k)
		}
	}
	var kept corev1.ConfigMapList
	if err := env.Client.List(context.Background(), &kept, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, cm := range kept.Items {
		for k, v := range cm.Data {
			if strings.Contains(v, password) {
				t.Fatalf("ConfigMap %s keeps the password in %s", cm.Name, k)
			}
		}
	}
}
