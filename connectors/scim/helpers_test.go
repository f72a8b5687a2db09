package scim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

const testToken = "s3cr3t-token"

// testApp is an in-process SCIM app: the package's Server over a MemoryStore, behind a
// recorder, with an optional interceptor to play an app's quirks or faults.
type testApp struct {
	*httptest.Server
	store     *MemoryStore
	mu        sync.Mutex
	requests  []recorded
	intercept func(w http.ResponseWriter, r *http.Request, body []byte) bool
}

type recorded struct {
	method, path, query string
	header              http.Header
	body                []byte
}

func newTestApp(t *testing.T, opts ServerOptions) *testApp {
	t.Helper()
	app := &testApp{store: NewMemoryStore()}
	opts.Store = app.store
	if opts.Authorize == nil {
		opts.Authorize = func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+testToken }
	}
	server := http.StripPrefix("/scim/v2", NewServer(opts))
	app.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		app.mu.Lock()
		app.requests = append(app.requests, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
		intercept := app.intercept
		app.mu.Unlock()
		if intercept != nil && intercept(w, r, body) {
			return
		}
		server.ServeHTTP(w, r)
	}))
	t.Cleanup(app.Close)
	return app
}

func (a *testApp) baseURL() string { return a.URL + "/scim/v2" }

// count counts recorded requests by method and path prefix (after /scim/v2).
func (a *testApp) count(method, prefix string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, r := range a.requests {
		if r.method == method && strings.HasPrefix(strings.TrimPrefix(r.path, "/scim/v2"), prefix) {
			n++
		}
	}
	return n
}

func (a *testApp) last(method string) recorded {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.requests) - 1; i >= 0; i-- {
		if a.requests[i].method == method {
			return a.requests[i]
		}
	}
	return recorded{}
}

func (a *testApp) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests = nil
}

// seedUsers stores n users straight into the app.
func (a *testApp) seedUsers(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		_, err := a.store.Create(context.Background(), Users, Resource{"userName": fmt.Sprintf("user%04d@example.com", i), "active": true})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// secrets is a connectors.SecretReader over a map of Secret name → key → value.
type secrets map[string]map[string]string

func (s secrets) SecretValue(_ context.Context, name, key string) ([]byte, error) {
	v, ok := s[name][key]
	if !ok {
		return nil, fmt.Errorf("secret %s key %s: %w", name, key, connectors.ErrSecretNotFound)
	}
	return []byte(v), nil
}

var bearerSecrets = secrets{"app-token": {KeyToken: testToken}}

func connection(baseURL, profile string) *identityv1alpha1.AppConnection {
	return &identityv1alpha1.AppConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: "app"},
		Spec: identityv1alpha1.AppConnectionSpec{SCIM: &identityv1alpha1.SCIMConnector{
			BaseURL: baseURL,
			Profile: identityv1alpha1.SCIMProfile(profile),
			Auth: identityv1alpha1.SCIMAuth{
				Type:      identityv1alpha1.SCIMAuthBearer,
				SecretRef: identityv1alpha1.LocalObjectReference{Name: "app-token"},
			},
		}},
	}
}

// newTestClient builds a client through the factory, as the engine does.
func newTestClient(t *testing.T, conn *identityv1alpha1.AppConnection, s secrets) *Client {
	t.Helper()
	if conn.Spec.RateLimit == nil {
		burst := int32(1000)
		conn.Spec.RateLimit = &identityv1alpha1.RateLimit{Requests: 10000, Burst: &burst}
	}
	target, err := NewFactory()(context.Background(), conn, s)
	if err != nil {
		t.Fatalf("building the client: %v", err)
	}
	return target.(*Client)
}

func user(userName string, extra map[string]any) connectors.Account {
	attrs := map[string]any{"userName": userName}
	for k, v := range extra {
		attrs[k] = v
	}
	return connectors.Account{Active: true, Attributes: attrs}
}
