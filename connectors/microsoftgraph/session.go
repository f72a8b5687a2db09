package microsoftgraph

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/httpx"
)

// Access is how a target or a source reaches the tenant.
type Access struct {
	Credentials
	// AuthorityURL and GraphURL are the cloud's; "" are the global cloud's.
	AuthorityURL, GraphURL string
	// RateLimit is the object's; nil is Graph's documented limits.
	RateLimit  *identityv1alpha1.RateLimit
	Timeout    time.Duration
	RootCAs    []byte
	ServerName string
	// App names the object in metrics.
	App string
}

// accessOf reads a block's Secrets.
func accessOf(ctx context.Context, spec identityv1alpha1.MicrosoftGraphApp, secrets connectors.SecretReader, limit *identityv1alpha1.RateLimit, app string) (Access, error) {
	a := Access{Credentials: Credentials{TenantID: spec.TenantID, ClientID: spec.ClientID},
		AuthorityURL: spec.AuthorityURL, GraphURL: spec.GraphURL, RateLimit: limit, App: app}
	switch {
	case spec.ClientSecretRef != nil:
		secret, err := secrets.SecretValue(ctx, spec.ClientSecretRef.Name, spec.ClientSecretRef.Key)
		if err != nil {
			return Access{}, err
		}
		a.Secret = strings.TrimSpace(string(secret))
	case spec.ClientCertificateSecretRef != nil:
		cert, err := secrets.SecretValue(ctx, spec.ClientCertificateSecretRef.Name, spec.ClientCertificateSecretRef.Key)
		if err != nil {
			return Access{}, err
		}
		a.Certificate = cert
	}
	if spec.RequestTimeout != nil {
		a.Timeout = spec.RequestTimeout.Duration
	}
	var tls httpx.Options
	if err := httpx.FromSpec(ctx, &tls, nil, spec.TLS, secrets); err != nil {
		return Access{}, err
	}
	a.RootCAs, a.ServerName = tls.RootCAs, tls.ServerName
	return a, nil
}

// session sends requests to Graph under the budget, with a token per request.
type session struct {
	client   *httpx.Client
	graphURL string
}

// connect checks the URLs and the credentials' form and builds the clients; it sends
// nothing.
func connect(ctx context.Context, a Access) (*session, error) {
	authority, graph := cmp.Or(a.AuthorityURL, defaultAuthorityURL), cmp.Or(a.GraphURL, defaultGraphURL)
	for name, u := range map[string]string{"authorityURL": authority, "graphURL": graph} {
		if err := httpx.SafeURL(u); err != nil {
			return nil, &connectors.PermanentError{Message: name + " " + err.Error()}
		}
	}
	graph = strings.TrimSuffix(graph, "/") + "/"
	opts := httpx.Options{RequestsPerSecond: defaultRequestsPerSecond, Burst: 100, WritesPerSecond: float64(defaultWrites) / defaultWritePeriod.Seconds(),
		WriteBurst: 20, WriteBudget: httpx.Budget{N: defaultWrites, Per: defaultWritePeriod}, MaxConcurrency: 8,
		Timeout: a.Timeout, RootCAs: a.RootCAs, ServerName: a.ServerName, App: a.App, MaxBodyBytes: 16 << 20}
	httpx.ApplyRateLimit(&opts, a.RateLimit)
	tokens := &tokenHolder{}
	opts.Auth = func(r *http.Request) error {
		t, err := tokens.source.Token()
		if err != nil {
			return err
		}
		t.SetAuthHeader(r)
		return nil
	}
	client, err := httpx.New(opts)
	if err != nil {
		return nil, err
	}
	tokenClient := &http.Client{Timeout: client.Timeout(), Transport: client.Unbudgeted(), CheckRedirect: httpx.SameOrigin}
	if tokens.source, err = tokenSource(ctx, a.Credentials, authority, graph, tokenClient); err != nil {
		return nil, err
	}
	return &session{client: client, graphURL: graph}, nil
}

type tokenHolder struct{ source oauth2.TokenSource }

// send sends a request to a path below the Graph URL, with a JSON body unless nil,
// and reads a JSON answer into out unless nil.
func (s *session) send(ctx context.Context, method, path string, body, out any) error {
	resp, err := s.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	if out != nil && len(resp.Body) > 0 {
		if err := json.Unmarshal(resp.Body, out); err != nil {
			// The request was carried out; its result is unknown until read again.
			return &connectors.TransientError{Status: resp.Status, Err: fmt.Errorf("the answer is not the JSON expected: %w", err)}
		}
	}
	return nil
}

func (s *session) do(ctx context.Context, method, path string, body any) (*httpx.Response, error) {
	header := http.Header{"Accept": {"application/json"}}
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return nil, err
		}
		header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(ctx, method, s.graphURL+path, header, data)
	if err != nil {
		return nil, err
	}
	if resp.Status/100 != 2 {
		return nil, answerError(resp.Status, resp.Body)
	}
	return resp, nil
}

// relative is a nextLink or deltaLink as a path below the Graph URL; a link to
// another place is refused, as it would be sent the token.
func (s *session) relative(link string) (string, error) {
	if link == "" {
		return "", nil
	}
	if !strings.HasPrefix(link, s.graphURL) {
		return "", &connectors.PermanentError{Message: "Microsoft Graph gave a next page elsewhere: " + truncate(link, 200)}
	}
	return strings.TrimPrefix(link, s.graphURL), nil
}

// graphError is Graph's error answer.
type graphError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// answerError reads an error answer: its status and Graph's code.
func answerError(status int, body []byte) error {
	var e graphError
	_ = json.Unmarshal(body, &e)
	code, message := e.Error.Code, truncate(e.Error.Message, 300)
	what := fmt.Sprintf("Microsoft Graph answered %d %s: %s", status, code, message)
	switch {
	case status == http.StatusNotFound || code == "Request_ResourceNotFound":
		return fmt.Errorf("%s: %w", what, connectors.ErrNotFound)
	case status == http.StatusConflict || strings.Contains(message, "already exists") || code == "ObjectConflict":
		return fmt.Errorf("%s: %w", what, connectors.ErrConflict)
	case status == http.StatusUnauthorized:
		return &connectors.PermanentError{Status: status, Err: connectors.ErrUnauthorized, Message: what}
	case status == http.StatusForbidden:
		return &connectors.PermanentError{Status: status, Err: connectors.ErrUnauthorized,
			Message: what + " (the app registration needs the application permissions Roster's documentation lists, granted with admin consent: User.ReadWrite.All and Group.ReadWrite.All to provision, Directory.Read.All to read)"}
	case status >= 500 || status == http.StatusPreconditionFailed:
		return &connectors.TransientError{Status: status, Err: errors.New(what)}
	}
	return &connectors.PermanentError{Status: status, Message: what}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// isSignInRefusal tells a refusal of signInActivity: a tenant without Entra ID P1, or
// an app without AuditLog.Read.All.
func isSignInRefusal(err error) bool {
	var p *connectors.PermanentError
	return errors.As(err, &p) && (p.Status == http.StatusForbidden || p.Status == http.StatusBadRequest) &&
		(strings.Contains(p.Message, "signInActivity") || strings.Contains(p.Message, "NonPremiumTenant"))
}
