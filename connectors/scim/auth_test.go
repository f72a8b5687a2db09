package scim

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

func TestBearerTokenIsSentAndAWrongOneIsRejected(t *testing.T) {
	app := newTestApp(t, ServerOptions{})
	if _, err := newTestClient(t, connection(app.baseURL(), "generic"), bearerSecrets).Validate(ctx); err != nil {
		t.Fatalf("Validate with the right token: %v", err)
	}
	wrong := secrets{"app-token": {KeyToken: "guess"}}
	_, err := newTestClient(t, connection(app.baseURL(), "generic"), wrong).Validate(ctx)
	if !errors.Is(err, connectors.ErrUnauthorized) {
		t.Fatalf("Validate with a wrong token = %v, want ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), "guess") || strings.Contains(err.Error(), testToken) {
		t.Fatalf("the error %q carries a token", err)
	}
}

func TestBasicAuth(t *testing.T) {
	app := newTestApp(t, ServerOptions{Authorize: func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		return ok && u == "roster" && p == "pa55"
	}})
	conn := connection(app.baseURL(), "generic")
	conn.Spec.SCIM.Auth = identityv1alpha1.SCIMAuth{Type: identityv1alpha1.SCIMAuthBasic, SecretRef: identityv1alpha1.LocalObjectReference{Name: "basic"}}
	c := newTestClient(t, conn, secrets{"basic": {KeyUsername: "roster", KeyPassword: "pa55"}})
	if _, err := c.Validate(ctx); err != nil {
		t.Fatalf("Validate with basic auth: %v", err)
	}
}

func TestOAuth2ClientCredentials(t *testing.T) {
	var tokenRequests atomic.Int32
	tokenServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokenRequests.Add(1)
		id, secret, _ := r.BasicAuth()
		if r.FormValue("grant_type") != "client_credentials" || id != "roster-client" || secret != "client-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "issued-token", "token_type": "Bearer", "expires_in": 3600})
	}))
	defer tokenServer.Close()
	app := newTestApp(t, ServerOptions{Authorize: func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer issued-token" }})
	conn := connection(app.baseURL(), "generic")
	conn.Spec.SCIM.Auth = identityv1alpha1.SCIMAuth{
		Type: identityv1alpha1.SCIMAuthOAuth2ClientCredentials, SecretRef: identityv1alpha1.LocalObjectReference{Name: "oauth"},
		TokenURL: tokenServer.URL, Scopes: []string{"scim"},
	}
	c := newTestClient(t, conn, secrets{"oauth": {KeyClientID: "roster-client", KeyClientSecret: "client-secret"}})
	if _, err := c.Validate(ctx); err != nil {
		t.Fatalf("Validate with client credentials: %v", err)
	}
	if _, err := c.Create(ctx, user("oauth-user", nil)); err != nil {
		t.Fatal(err)
	}
	if n := tokenRequests.Load(); n != 1 {
		t.Fatalf("%d token requests, want one token reused", n)
	}

	bad := newTestClient(t, conn, secrets{"oauth": {KeyClientID: "roster-client", KeyClientSecret: "wrong"}})
	if _, err := bad.Validate(ctx); !errors.Is(err, connectors.ErrUnauthorized) {
		t.Fatalf("Validate with a wrong client secret = %v, want ErrUnauthorized", err)
	}
}

func TestHeadersFromSecretsAndValues(t *testing.T) {
	app := newTestApp(t, ServerOptions{})
	conn := connection(app.baseURL(), "generic")
	conn.Spec.SCIM.Headers = []identityv1alpha1.HTTPHeader{
		{Name: "X-Tenant", Value: "acme"},
		{Name: "X-Api-Key", ValueFrom: &identityv1alpha1.SecretKeySelector{Name: "app-token", Key: "apiKey"}},
	}
	s := secrets{"app-token": {KeyToken: testToken, "apiKey": "k-123"}}
	if _, err := newTestClient(t, conn, s).Validate(ctx); err != nil {
		t.Fatal(err)
	}
	h := app.last(http.MethodGet).header
	if h.Get("X-Tenant") != "acme" || h.Get("X-Api-Key") != "k-123" {
		t.Fatalf("headers = %v", h)
	}
}

func TestTLSWithACustomCA(t *testing.T) {
	store := NewMemoryStore()
	server := httptest.NewTLSServer(http.StripPrefix("/scim/v2", NewServer(ServerOptions{Store: store})))
	defer server.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: server.Certificate().Raw})

	untrusting := newTestClient(t, connection(server.URL+"/scim/v2", "generic"), bearerSecrets)
	if _, err := untrusting.Validate(ctx); err == nil {
		t.Fatal("a server signed by an unknown CA was trusted")
	}
	conn := connection(server.URL+"/scim/v2", "generic")
	conn.Spec.SCIM.TLS = &identityv1alpha1.TLSConfig{CASecretRef: &identityv1alpha1.SecretKeySelector{Name: "ca", Key: "ca.crt"}}
	s := secrets{"app-token": {KeyToken: testToken}, "ca": {"ca.crt": string(caPEM)}}
	if _, err := newTestClient(t, conn, s).Validate(ctx); err != nil {
		t.Fatalf("Validate trusting the server's CA: %v", err)
	}
}

func TestAMissingSecretIsReported(t *testing.T) {
	_, err := NewFactory()(ctx, connection("https://scim.example.com", "generic"), secrets{})
	if !errors.Is(err, connectors.ErrSecretNotFound) {
		t.Fatalf("got %v, want ErrSecretNotFound", err)
	}
}
